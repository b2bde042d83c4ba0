//! Palisade's storage layer: traits the engine programs against, and the engines
//! that implement them: embedded SQLite (the default) and PostgreSQL (for several nodes).
//!
//! Every record that belongs to a customer is keyed by [`Scope`] (account and region), so
//! isolation between accounts is enforced by the key of every query, not by callers.

use async_trait::async_trait;

mod audits;
mod certificates;
mod crls;
mod import;
mod mitigation_tasks;
mod policies;
mod postgres;
mod related;
mod scheduled;
mod sqlite;
mod suppressions;
mod things;

/// The engine-agnostic storage test suite; see the module docs.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use audits::{
    AuditConfigurationRecord, AuditFindingFilter, AuditFindingHead, AuditFindingKey,
    AuditFindingRecord, AuditStore, AuditTaskFilter, AuditTaskKey, AuditTaskRecord,
    AuditTaskRefusal,
};
pub use certificates::{
    status_change_allowed, status_in_use, CaCertificateRecord, CaCertificateUpdate,
    CertificateFacts, CertificateInUse, CertificateKey, CertificateOutcome, CertificatePages,
    CertificateRecord, CertificateRefusal, CertificateStore, IssuingCaRecord, PolicyRef,
    PolicyTarget, PrincipalOutcome, PrincipalRefusal, PrincipalStore, RegistrationConfigChange,
    RegistrationConfigRecord, DELETABLE_STATUSES,
};
pub use crls::{CrlRecord, CrlStore};
pub use import::{
    CertificateImport, ImportItem, ImportLimits, ImportOutcome, ImportRefusal, ImportStore,
};
pub use mitigation_tasks::{
    FindingRef, MitigationCancelRefusal, MitigationCheckStats, MitigationEffect,
    MitigationExecutionRecord, MitigationStage, MitigationStep, MitigationTaskCreated,
    MitigationTaskFilter, MitigationTaskRecord, MitigationTaskStore, StageOutcome,
};
pub use policies::{
    LoggingOptionsRecord, LoggingStore, NewPolicy, NewPolicyVersion, PolicyOutcome, PolicyRecord,
    PolicyRefusal, PolicyStore, PolicyVersionRecord, RoleAliasRecord, RoleAliasStore,
    RoleAliasUpdate, V2LoggingOptionsRecord,
};
pub use postgres::{PostgresOptions, PostgresStore};
pub use related::{RelatedResourceRecord, RelatedResourceStore};
pub use scheduled::{
    DueScheduledAudit, ScheduledAuditRecord, ScheduledAuditRefusal, ScheduledAuditStore,
    ScheduledAuditUpdate, ScheduledRunOutcome,
};
pub use sqlite::SqliteStore;
pub use suppressions::{
    AuditSuppressionFilter, AuditSuppressionKey, AuditSuppressionRecord, AuditSuppressionStore,
    AuditSuppressionUpdate, SuppressionCreated, SuppressionRefusal,
};
pub use things::{
    AttributeChange, AttributeFilter, Attributes, GroupRef, GroupSelection, ThingFilter,
    ThingGroupRecord, ThingGroupUpdate, ThingGroupView, ThingRecord, ThingRefusal, ThingStore,
    ThingUpdate, ValueMatch,
};

/// Fresh, throwaway PostgreSQL databases for tests.
#[cfg(any(test, feature = "conformance"))]
pub mod testing;

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

/// The account and region every customer record belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account_id: String,
    pub region: String,
}

/// An access key pair and the account it acts for. Credentials are global (not
/// per region): one key works in every region the server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A mitigation action definition as stored. `params_json` is the `actionParams`
/// document exactly as the engine validated it; the store does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationActionRecord {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub action_type: String,
    pub role_arn: String,
    pub params_json: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Changes to a mitigation action; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MitigationActionUpdate {
    pub role_arn: Option<String>,
    /// New `(action_type, params_json)`.
    pub params: Option<(String, String)>,
    pub updated_at_ms: i64,
}

/// One resource tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// `AlreadyExists` if the access key id is taken.
    async fn create_credential(&self, cred: &Credential) -> StoreResult<()>;
    async fn get_credential(&self, access_key_id: &str) -> StoreResult<Option<Credential>>;
    /// All credentials, ordered by account id then access key id.
    async fn list_credentials(&self) -> StoreResult<Vec<Credential>>;
    /// Returns whether a credential was deleted.
    async fn delete_credential(&self, access_key_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait MitigationActionStore: Send + Sync {
    /// Inserts the action and its tags atomically. `AlreadyExists` if the name is taken
    /// in the scope; `LimitExceeded { limit }` if the scope already holds `limit` actions.
    async fn create_mitigation_action(
        &self,
        scope: &Scope,
        record: &MitigationActionRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()>;
    async fn get_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<MitigationActionRecord>>;
    /// Applies the update and returns the record as it is afterwards; `NotFound` if absent.
    async fn update_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
        update: &MitigationActionUpdate,
    ) -> StoreResult<MitigationActionRecord>;
    /// Deletes the action and the tags on its ARN; returns whether it existed.
    async fn delete_mitigation_action(&self, scope: &Scope, name: &str) -> StoreResult<bool>;
    /// Up to `limit` actions ordered by name, with names strictly greater than `after`,
    /// optionally only those of `action_type`.
    async fn list_mitigation_actions(
        &self,
        scope: &Scope,
        action_type: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<MitigationActionRecord>>;
}

#[async_trait]
pub trait TagStore: Send + Sync {
    /// Upserts tags by key on the resource. `LimitExceeded { limit }` (and nothing
    /// written) if the resource would end up with more than `max_tags` tags.
    async fn tag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        tags: &[Tag],
        max_tags: usize,
    ) -> StoreResult<()>;
    /// Removes the given keys; unknown keys are ignored.
    async fn untag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        keys: &[String],
    ) -> StoreResult<()>;
    /// Up to `limit` tags ordered by key, with keys strictly greater than `after`.
    async fn list_tags(
        &self,
        scope: &Scope,
        resource_arn: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Tag>>;
}

#[async_trait]
pub trait MetaStore: Send + Sync {
    /// A 32-byte secret created once per database and shared by every process using
    /// it (pagination tokens are signed with it, so any node can verify any token).
    async fn server_secret(&self) -> StoreResult<Vec<u8>>;
}

/// A durable unit of background work, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub id: String,
    pub queue: String,
    /// Opaque to the store (JSON written by the engine).
    pub payload: String,
    /// How many times the item has been claimed, this claim included.
    pub attempts: u32,
    /// Not claimable before this time (milliseconds since the epoch).
    pub run_after_ms: i64,
    /// The worker holding the lease, while one does.
    pub lease_owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
}

/// A work item to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorkItem {
    pub id: String,
    pub queue: String,
    pub payload: String,
    pub run_after_ms: i64,
}

/// A durable work queue with leases, shared by every node on one database.
///
/// A worker claims items with a lease; while it renews the lease before it runs out, no
/// other worker gets the item. A worker that dies stops renewing, the lease expires and
/// the item is claimed again by someone else, so work survives crashes and restarts.
/// Completing or releasing requires still holding the lease, so a worker that lost its
/// lease (it stalled past expiry and another took over) learns it and stops.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Adds an item. `AlreadyExists` if an item with this id exists (so enqueueing is
    /// idempotent under retries).
    async fn enqueue_work(&self, item: &NewWorkItem) -> StoreResult<()>;
    /// Claims up to `max` items of `queue` that are due (`run_after_ms <= now_ms`) and not
    /// leased, or whose lease expired (`lease_expires_at_ms <= now_ms`), oldest due
    /// first (then by id). Each gets a lease for `worker` until `now_ms + lease_ms` and
    /// its attempt count goes up by one. Concurrent claimers never get the same item.
    async fn claim_work(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<WorkItem>>;
    /// Extends the lease to `now_ms + lease_ms` if `worker` still holds an unexpired lease
    /// on the item; returns whether it did.
    async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<bool>;
    /// Deletes the item if `worker` holds its lease (expired or not, as long as nobody
    /// else claimed it since); returns whether it did.
    async fn complete_work(&self, id: &str, worker: &str) -> StoreResult<bool>;
    /// Gives the item back, claimable again from `run_after_ms` (a retry with backoff),
    /// if `worker` holds its lease; returns whether it did.
    async fn release_work(&self, id: &str, worker: &str, run_after_ms: i64) -> StoreResult<bool>;
    /// The item, if it exists (for inspection and tests).
    async fn get_work(&self, id: &str) -> StoreResult<Option<WorkItem>>;
}

/// Once-only markers: "this schedule fired for this period" is recorded exactly once,
/// however many nodes race to record it.
#[async_trait]
pub trait OnceMarkers: Send + Sync {
    /// Records `key`; returns true for the one caller that recorded it first and false
    /// for everyone after.
    async fn mark_once(&self, key: &str, now_ms: i64) -> StoreResult<bool>;
}

/// Everything the engine needs from storage.
pub trait Store:
    CredentialStore
    + MitigationActionStore
    + TagStore
    + MetaStore
    + WorkQueue
    + OnceMarkers
    + ThingStore
    + PolicyStore
    + RoleAliasStore
    + LoggingStore
    + CertificateStore
    + PrincipalStore
    + ImportStore
    + AuditStore
    + AuditSuppressionStore
    + ScheduledAuditStore
    + CrlStore
    + RelatedResourceStore
    + MitigationTaskStore
{
}

impl<T> Store for T where
    T: CredentialStore
        + MitigationActionStore
        + TagStore
        + MetaStore
        + WorkQueue
        + OnceMarkers
        + ThingStore
        + PolicyStore
        + RoleAliasStore
        + LoggingStore
        + CertificateStore
        + PrincipalStore
        + ImportStore
        + AuditStore
        + AuditSuppressionStore
        + ScheduledAuditStore
        + CrlStore
        + RelatedResourceStore
        + MitigationTaskStore
{
}
