use palisade_store::StoreError;

/// Why an operation failed, in domain terms. The API crate maps each variant to
/// exactly one AWS error code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    AlreadyExists {
        message: String,
        resource_id: Option<String>,
        resource_arn: Option<String>,
    },
    #[error("{0}")]
    LimitExceeded(String),
    /// An `expectedVersion` did not match the resource's version.
    #[error("{0}")]
    VersionConflict(String),
    /// The resource is still in use (attached, has children or other versions).
    #[error("{0}")]
    DeleteConflict(String),
    /// A policy document is not a valid IoT policy.
    #[error("{0}")]
    MalformedPolicy(String),
    /// A policy already has the most versions it may have.
    #[error("{0}")]
    VersionsLimitExceeded(String),
    /// An account setting that was never set is read.
    #[error("{0}")]
    NotConfigured(String),
    /// A certificate could not be parsed or verified.
    #[error("{0}")]
    CertificateValidation(String),
    /// A CA verification certificate does not carry the account's registration code.
    #[error("{0}")]
    RegistrationCodeValidation(String),
    /// More than one registered CA could have signed a certificate.
    #[error("{0}")]
    CertificateConflict(String),
    /// A certificate's status does not allow the operation.
    #[error("{0}")]
    CertificateState(String),
    /// A task id is taken by a task started with another client request token.
    #[error("{0}")]
    TaskAlreadyExists(String),
    /// Storage could not be reached; the request may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("internal failure: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => EngineError::Unavailable(m),
            other => EngineError::Internal(other.to_string()),
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// A required member of a request. The model's validation has already refused requests
/// without it, so this only turns the `Option` of the generated shape into a value.
pub(crate) fn required<T>(value: Option<T>, member: &str) -> EngineResult<T> {
    value.ok_or_else(|| EngineError::InvalidRequest(format!("{member} is required.")))
}
