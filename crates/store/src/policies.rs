//! Storage of the registry's policies (with their versions), role aliases and logging
//! options: records and traits; engines in sqlite/ and postgres/.

use async_trait::async_trait;

use crate::{Scope, StoreResult, Tag};

/// A policy as stored: its identity and which version is in effect. Documents live
/// with the versions ([`PolicyVersionRecord`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub name: String,
    pub arn: String,
    pub default_version_id: i64,
    /// Opaque to the store; replaced whenever the default version changes.
    pub generation_id: String,
    pub created_at_ms: i64,
    /// Last time a version was created or deleted or the default changed.
    pub updated_at_ms: i64,
}

/// One version of a policy. Versions are immutable once created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRecord {
    /// Issued by the store: 1 for the version a policy is created with, then one more
    /// than the highest ever issued for the policy, so an id is never reused.
    pub version_id: i64,
    /// Exactly as the caller gave it (whitespace included).
    pub document: String,
    pub created_at_ms: i64,
}

/// A policy to create, with its first version (id 1, the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPolicy {
    pub name: String,
    pub arn: String,
    pub document: String,
    pub generation_id: String,
    pub created_at_ms: i64,
}

/// A version to add to an existing policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPolicyVersion {
    pub document: String,
    /// Make the new version the default in the same transaction (CreatePolicyVersion
    /// with `setAsDefault`, and the REPLACE_DEFAULT_POLICY_VERSION mitigation).
    pub set_as_default: bool,
    /// The policy's new generation id; used only when `set_as_default`.
    pub generation_id: String,
    pub created_at_ms: i64,
}

/// Why a policy write was refused. Each refusal is decided inside the write's
/// transaction and leaves the database as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRefusal {
    /// No policy of that name in the scope.
    NoSuchPolicy,
    /// The policy exists but has no version with that id.
    NoSuchVersion,
    /// The policy already holds `limit` versions.
    TooManyVersions { limit: usize },
    /// The default version cannot be deleted on its own.
    DefaultVersion,
    /// The policy still has versions besides the default.
    OtherVersions,
    /// The policy is still attached to a target.
    Attached,
}

/// The outcome of a policy write: refused for a domain reason, or done.
pub type PolicyOutcome<T> = Result<T, PolicyRefusal>;

/// IoT policies and their versions.
///
/// Every write that touches a policy's versions serialises with the others on that
/// policy, on every node, so the version limit and the never-reused version ids hold
/// under concurrent calls.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Inserts the policy, its version 1 (the default) and its tags atomically.
    /// `AlreadyExists` (and nothing written) if the name is taken in the scope.
    async fn create_policy(
        &self,
        scope: &Scope,
        policy: &NewPolicy,
        tags: &[Tag],
    ) -> StoreResult<()>;
    async fn get_policy(&self, scope: &Scope, name: &str) -> StoreResult<Option<PolicyRecord>>;
    /// The policy and one of its versions (`None`: the default one), read together.
    /// `None` if the policy does not exist; `Some((policy, None))` if the version does not.
    async fn get_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: Option<i64>,
    ) -> StoreResult<Option<(PolicyRecord, Option<PolicyVersionRecord>)>>;
    /// Up to `limit` policies ordered by name (descending if `descending`), with names
    /// strictly after `after` in that order.
    async fn list_policies(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRecord>>;
    /// Up to `limit` policies by ascending name after `after`, each with its default
    /// version (`None` only if it vanished): one read per page for the audit's policy checks, where a read per
    /// policy would cost a round trip each on PostgreSQL.
    async fn list_policies_with_default_versions(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(PolicyRecord, Option<PolicyVersionRecord>)>>;
    /// Deletes the policy, its (default) version and its tags, unless it has other
    /// versions (`OtherVersions`) or is attached to anything (`Attached`).
    async fn delete_policy(&self, scope: &Scope, name: &str) -> StoreResult<PolicyOutcome<()>>;
    /// Adds a version with the next id, making it the default if asked; refused with
    /// `TooManyVersions` if the policy already holds `max_versions`. Returns the policy
    /// as it is afterwards and the new version.
    async fn create_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version: &NewPolicyVersion,
        max_versions: usize,
    ) -> StoreResult<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>>;
    /// The policy and all its versions ordered by id, read together; `None` if the
    /// policy does not exist.
    async fn list_policy_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<(PolicyRecord, Vec<PolicyVersionRecord>)>>;
    /// Makes the version the default, with a new generation id. Making the default
    /// version the default again changes nothing. Returns the policy as it is afterwards.
    async fn set_default_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: i64,
        generation_id: &str,
        now_ms: i64,
    ) -> StoreResult<PolicyOutcome<PolicyRecord>>;
    /// Deletes a version other than the default (`DefaultVersion` for that one).
    async fn delete_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: i64,
        now_ms: i64,
    ) -> StoreResult<PolicyOutcome<()>>;
}

/// A role alias as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAliasRecord {
    pub alias: String,
    pub arn: String,
    pub role_arn: String,
    pub credential_duration_seconds: i32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Changes to a role alias; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAliasUpdate {
    pub role_arn: Option<String>,
    pub credential_duration_seconds: Option<i32>,
    pub updated_at_ms: i64,
}

/// Role aliases.
#[async_trait]
pub trait RoleAliasStore: Send + Sync {
    /// Inserts the alias and its tags atomically. `AlreadyExists` (and nothing
    /// written) if the alias is taken in the scope.
    async fn create_role_alias(
        &self,
        scope: &Scope,
        record: &RoleAliasRecord,
        tags: &[Tag],
    ) -> StoreResult<()>;
    async fn get_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
    ) -> StoreResult<Option<RoleAliasRecord>>;
    /// Applies the update and returns the record as it is afterwards; `NotFound` if absent.
    async fn update_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
        update: &RoleAliasUpdate,
    ) -> StoreResult<RoleAliasRecord>;
    /// Deletes the alias and the tags on its ARN; returns whether it existed.
    async fn delete_role_alias(&self, scope: &Scope, alias: &str) -> StoreResult<bool>;
    /// Up to `limit` aliases ordered by alias (descending if `descending`), strictly
    /// after `after` in that order.
    async fn list_role_aliases(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<RoleAliasRecord>>;
}

/// The account's v1 logging options (SetLoggingOptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingOptionsRecord {
    pub role_arn: String,
    /// A log level as on the wire (`ERROR`, ...), if one was given.
    pub log_level: Option<String>,
    pub updated_at_ms: i64,
}

/// The account's v2 logging options (SetV2LoggingOptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2LoggingOptionsRecord {
    pub role_arn: Option<String>,
    /// A log level as on the wire (`ERROR`, ...), if one was given.
    pub default_log_level: Option<String>,
    pub disable_all_logs: bool,
    /// The `eventConfigurations` list as the engine encoded it; opaque to the store.
    pub event_configurations_json: Option<String>,
    pub updated_at_ms: i64,
}

/// Per-account (and region) logging options. AWS keeps v1 and v2 apart, and so do
/// these: setting one never changes the other. An account that never set them has
/// none (`None`).
#[async_trait]
pub trait LoggingStore: Send + Sync {
    /// Replaces the v1 options.
    async fn put_logging_options(
        &self,
        scope: &Scope,
        options: &LoggingOptionsRecord,
    ) -> StoreResult<()>;
    async fn get_logging_options(&self, scope: &Scope)
        -> StoreResult<Option<LoggingOptionsRecord>>;
    /// Replaces the v2 options.
    async fn put_v2_logging_options(
        &self,
        scope: &Scope,
        options: &V2LoggingOptionsRecord,
    ) -> StoreResult<()>;
    async fn get_v2_logging_options(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<V2LoggingOptionsRecord>>;
}
