/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed. Domain-level outcomes (already exists, limit) are
/// variants so the engine can map them; everything else is `Unavailable`/`Internal`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record already exists")]
    AlreadyExists,
    #[error("record not found")]
    NotFound,
    #[error("limit of {limit} reached")]
    LimitExceeded { limit: usize },
    /// The database could not be reached or is busy beyond its timeout.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage failure: {0}")]
    Internal(String),
}
