//! The domain: what Palisade's operations mean, independent of HTTP.
//!
//! The API layer hands the engine decoded, model-validated requests together with the
//! caller's [`Scope`]; the engine applies the domain rules the model cannot express,
//! talks to the store, and answers with model response shapes or an [`EngineError`].

use std::sync::Arc;

mod arn;
mod audits;
mod certificates;
pub mod clock;
pub mod credentials;
mod import;
mod logging;
mod mitigation_actions;
mod paging;
mod policies;
mod principals;
mod role_aliases;
mod settings;
mod tagging;
mod things;

pub use audits::BackgroundWork;
pub use clock::{Clock, IdSource, RandomIds, SystemClock};
pub use import::{
    ImportObserver, ImportOptions, ImportSummary, LineError, NoObserver, Resource, ResourceCounts,
    DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_LINE_BYTES,
};
pub use palisade_store::Scope;
pub use settings::{AuditSettings, CrlSettings, SnsSettings};

use palisade_store::{Store, StoreError};

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

/// Quotas AWS documents for the resources the engine manages.
#[derive(Debug, Clone)]
pub struct Limits {
    pub mitigation_actions_per_account: usize,
    pub tags_per_resource: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            mitigation_actions_per_account: 100,
            tags_per_resource: 50,
        }
    }
}

/// The engine: cheap to clone, shared by every request handler.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    tokens: paging::TokenSigner,
    limits: Limits,
    audit_settings: AuditSettings,
    credentials: credentials::CredentialCache,
    /// Wakes this node's audit worker when a task is started here.
    audit_wakeup: Arc<tokio::sync::Notify>,
    /// Wakes this node's mitigation workers when a mitigation task is started here.
    mitigation_wakeup: Arc<tokio::sync::Notify>,
}

impl Engine {
    /// Builds an engine over a store; reads the store's server secret once.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        limits: Limits,
    ) -> EngineResult<Self> {
        Self::with_settings(store, clock, ids, limits, AuditSettings::default()).await
    }

    /// Builds an engine with audit settings other than the defaults.
    pub async fn with_settings(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        limits: Limits,
        audit_settings: AuditSettings,
    ) -> EngineResult<Self> {
        let secret = store.server_secret().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: paging::TokenSigner::new(&secret),
                credentials: credentials::CredentialCache::new(store.clone()),
                store,
                clock,
                ids,
                limits,
                audit_settings,
                audit_wakeup: Arc::new(tokio::sync::Notify::new()),
                mitigation_wakeup: Arc::new(tokio::sync::Notify::new()),
            }),
        })
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    #[allow(dead_code)] // Read by the scheduler, the SNS publisher and the CRL fetcher.
    fn audit_settings(&self) -> &AuditSettings {
        &self.inner.audit_settings
    }
}
