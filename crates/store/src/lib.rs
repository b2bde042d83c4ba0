//! Palisade's storage layer: traits the engine programs against, and the engines
//! that implement them: embedded SQLite (the default) and PostgreSQL (for several nodes).
//!
//! Every record that belongs to a customer is keyed by [`Scope`] (account and region), so
//! isolation between accounts is enforced by the key of every query, not by callers.

#[macro_use]
mod db;

mod actions;
mod audits;
mod certificates;
mod connections;
mod credentials;
mod crls;
mod error;
mod gateway;
mod iam;
mod import;
mod meta;
mod migrations;
mod mitigation_tasks;
mod policies;
mod postgres;
mod purge;
mod related;
mod scheduled;
mod scope;
mod sqlite;
mod suppressions;
mod tags;
mod things;
mod work;

/// The engine-agnostic storage test suite; see the module docs.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use actions::{MitigationActionRecord, MitigationActionStore, MitigationActionUpdate};
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
pub use connections::{
    ConnectionClose, ConnectionKey, ConnectionOrder, ConnectionRecord, ConnectionStore,
    DUPLICATE_CLIENTID,
};
pub use credentials::CredentialStore;
pub use crls::{CrlRecord, CrlStore};
pub use error::{StoreError, StoreResult};
pub use gateway::{AttachedThing, CertificateRegistration, EffectivePolicy, GatewayStore};
pub use iam::{IamDocument, IamStore};
pub use import::{
    CertificateImport, ImportItem, ImportLimits, ImportOutcome, ImportRefusal, ImportStore,
};
pub use meta::MetaStore;
pub use mitigation_tasks::{
    EffectRefusal, ExecutionError, ExplainRefusal, FindingRef, MitigationCancelRefusal,
    MitigationCheckStats, MitigationEffect, MitigationExecutionRecord, MitigationStage,
    MitigationStep, MitigationTaskCreated, MitigationTaskFilter, MitigationTaskRecord,
    MitigationTaskStore, StageOutcome,
};
pub use policies::{
    LoggingOptionsRecord, LoggingStore, NewPolicy, NewPolicyVersion, PolicyOutcome, PolicyRecord,
    PolicyRefusal, PolicyStore, PolicyVersionRecord, RoleAliasRecord, RoleAliasStore,
    RoleAliasUpdate, V2LoggingOptionsRecord,
};
pub use postgres::{describe_error as describe_postgres_error, PostgresOptions, PostgresStore};
pub use related::{RelatedResourceRecord, RelatedResourceStore};
pub use scheduled::{
    DueScheduledAudit, ScheduledAuditRecord, ScheduledAuditRefusal, ScheduledAuditStore,
    ScheduledAuditUpdate, ScheduledRunOutcome,
};
pub use scope::{Credential, Scope};
pub use sqlite::SqliteStore;
pub use suppressions::{
    AuditSuppressionFilter, AuditSuppressionKey, AuditSuppressionRecord, AuditSuppressionStore,
    AuditSuppressionUpdate, SuppressionCreated, SuppressionRefusal,
};
pub use tags::{Tag, TagStore};
pub use things::{
    AttributeChange, AttributeFilter, Attributes, GroupRef, GroupSelection, ThingFilter,
    ThingGroupRecord, ThingGroupUpdate, ThingGroupView, ThingRecord, ThingRefusal, ThingStore,
    ThingUpdate, ValueMatch,
};

pub use work::{NewWorkItem, OnceMarkers, WorkItem, WorkQueue};

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
    + ConnectionStore
    + GatewayStore
    + IamStore
{
}

impl Store for SqliteStore {}
impl Store for PostgresStore {}
