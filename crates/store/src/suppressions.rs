//! Device Defender audit suppressions: a (check, resource) pair whose findings are
//! reported as suppressed until the suppression expires or is deleted.
//!
//! The resource is keyed by the engine's canonical text of its identifier
//! (`resource_key`); the identifier itself is kept as the engine's JSON so Describe and
//! List can return it as it was given.

use async_trait::async_trait;

use crate::{Scope, StoreResult};

/// One suppression as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSuppressionRecord {
    pub check_name: String,
    pub resource_key: String,
    /// The resource identifier, JSON owned by the engine.
    pub resource_json: String,
    /// `None` exactly when `suppress_indefinitely` is set.
    pub expiration_ms: Option<i64>,
    pub suppress_indefinitely: bool,
    pub description: Option<String>,
    pub client_request_token: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// How a create that was not refused went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppressionCreated {
    /// The suppression was inserted.
    Created,
    /// A suppression with the same client request token and the same key exists: a
    /// retry of the create that made it; nothing was changed.
    Replayed(AuditSuppressionRecord),
}

/// Why a suppression was not created. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionRefusal {
    /// A suppression for the same (check, resource key) exists, under another token.
    KeyExists,
    /// The client request token belongs to a suppression of another key.
    TokenInUse,
    /// The scope already holds the limit's worth of suppressions.
    LimitReached,
}

/// Changes to a suppression; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSuppressionUpdate {
    /// New `(expiration_ms, suppress_indefinitely)`, always replaced together so the
    /// two never contradict each other.
    pub lifetime: Option<(Option<i64>, bool)>,
    pub description: Option<String>,
    pub updated_at_ms: i64,
}

/// Which suppressions ListAuditSuppressions wants. All given conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSuppressionFilter {
    pub check_name: Option<String>,
    pub resource_key: Option<String>,
}

/// Where a page of suppressions continues: after this position in the listing order
/// (expiration, then check name, then resource key). Indefinite suppressions sort as if
/// they expired at `i64::MAX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSuppressionKey {
    pub expires_ms: i64,
    pub check_name: String,
    pub resource_key: String,
}

impl AuditSuppressionRecord {
    /// The record's position in the listing order.
    pub fn listing_key(&self) -> AuditSuppressionKey {
        AuditSuppressionKey {
            expires_ms: self.expiration_ms.unwrap_or(i64::MAX),
            check_name: self.check_name.clone(),
            resource_key: self.resource_key.clone(),
        }
    }
}

#[async_trait]
pub trait AuditSuppressionStore: Send + Sync {
    /// Inserts the suppression unless a refusal applies. The token, key and limit
    /// checks and the insert are atomic against concurrent creates in the scope, so of
    /// two racing creates of one key exactly one succeeds.
    async fn create_audit_suppression(
        &self,
        scope: &Scope,
        record: &AuditSuppressionRecord,
        limit: usize,
    ) -> StoreResult<Result<SuppressionCreated, SuppressionRefusal>>;
    async fn get_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<Option<AuditSuppressionRecord>>;
    /// Applies the update and returns the record as it is afterwards; `None` if there
    /// is no such suppression.
    async fn update_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
        update: &AuditSuppressionUpdate,
    ) -> StoreResult<Option<AuditSuppressionRecord>>;
    /// Returns whether there was such a suppression.
    async fn delete_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<bool>;
    /// Ordered by (expiration, check name, resource key), ascending or descending,
    /// strictly after `after` in that order. Expired suppressions are listed too.
    async fn list_audit_suppressions(
        &self,
        scope: &Scope,
        filter: &AuditSuppressionFilter,
        ascending: bool,
        after: Option<&AuditSuppressionKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditSuppressionRecord>>;
    /// The resource keys of the check's suppressions in force at `now_ms`: indefinite
    /// ones and those expiring after it.
    async fn active_audit_suppression_keys(
        &self,
        scope: &Scope,
        check_name: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<String>>;
}
