//! Storage of the registry's policies (with their versions), role aliases and logging
//! options, written once for both engines.
//!
//! Every write that reads a policy before changing its versions first locks the policy
//! row (`SELECT ... FOR UPDATE`), so such writes on one policy queue behind each other
//! on every node: the version limit, the next version id and "is this the default" are
//! decided on the latest committed state. On SQLite the IMMEDIATE transaction already
//! holds the database's write lock, which makes the same checks and the writes they
//! guard atomic. Name uniqueness is the primary key's job.

use palisade_store_macros::engines;

use crate::db::{sql_limit, Db, DbResult, Param, Row, Sql};
use crate::tags;
use crate::{Scope, StoreResult, Tag};

mod logging;
mod role_aliases;

pub(crate) use logging::put_v2_logging_options_in;
pub use logging::{LoggingOptionsRecord, LoggingStore, V2LoggingOptionsRecord};
pub use role_aliases::{RoleAliasRecord, RoleAliasStore, RoleAliasUpdate};

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

// Column lists beside their mapping functions. The `p.`/`v.` forms are for the joins of
// a policy with its versions; keep them in step with the plain ones.
macro_rules! policy_columns {
    () => {
        "name, arn, default_version_id, generation_id, created_at_ms, updated_at_ms"
    };
}
macro_rules! joined_policy_columns {
    () => {
        "p.name, p.arn, p.default_version_id, p.generation_id, p.created_at_ms, p.updated_at_ms"
    };
}
macro_rules! joined_version_columns {
    () => {
        "v.version_id, v.document, v.created_at_ms"
    };
}
const POLICY_COLUMNS: usize = 6;

pub(crate) fn policy(row: &Row<'_>) -> DbResult<PolicyRecord> {
    Ok(from_row!(row => PolicyRecord {
        name, arn, default_version_id, generation_id, created_at_ms, updated_at_ms
    }))
}

/// A policy and the version columns that follow its own in a joined row; no version
/// (NULLs) when the outer join found none.
fn policy_and_version(row: &Row<'_>) -> DbResult<(PolicyRecord, Option<PolicyVersionRecord>)> {
    let at = POLICY_COLUMNS;
    let version = match row.get::<Option<i64>>(at)? {
        Some(version_id) => Some(PolicyVersionRecord {
            version_id,
            document: row.get(at + 1)?,
            created_at_ms: row.get(at + 2)?,
        }),
        None => None,
    };
    Ok((policy(row)?, version))
}

/// IoT policies and their versions.
///
/// Every write that touches a policy's versions serialises with the others on that
/// policy, on every node, so the version limit and the never-reused version ids hold
/// under concurrent calls.
#[engines]
pub trait PolicyStore: Send + Sync {
    /// Inserts the policy, its version 1 (the default) and its tags atomically.
    /// `AlreadyExists` (and nothing written) if the name is taken in the scope.
    async fn create_policy(
        &self,
        scope: &Scope,
        policy: &NewPolicy,
        tags: &[Tag],
    ) -> StoreResult<()> {
        let (scope, policy, tags) = (scope.clone(), policy.clone(), tags.to_vec());
        self.write(async move |db| create_policy(db, &scope, &policy, &tags).await)
            .await
    }

    async fn get_policy(&self, scope: &Scope, name: &str) -> StoreResult<Option<PolicyRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    policy_columns!(),
                    " FROM policies",
                    " WHERE account_id = $1 AND region = $2 AND name = $3"
                ),
                &[&scope.account_id, &scope.region, &name],
                policy,
            )
            .await
        })
        .await
    }

    /// The policy and one of its versions (`None`: the default one), read together.
    /// `None` if the policy does not exist; `Some((policy, None))` if the version does not.
    async fn get_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: Option<i64>,
    ) -> StoreResult<Option<(PolicyRecord, Option<PolicyVersionRecord>)>> {
        self.read(async |db| {
            // One statement, so the policy and the version come from one snapshot.
            db.query_opt(
                sql!(
                    "SELECT ",
                    joined_policy_columns!(),
                    ", ",
                    joined_version_columns!(),
                    " FROM policies p LEFT JOIN policy_versions v",
                    " ON v.account_id = p.account_id AND v.region = p.region",
                    " AND v.policy_name = p.name",
                    " AND v.version_id = COALESCE($4::BIGINT, p.default_version_id)",
                    " WHERE p.account_id = $1 AND p.region = $2 AND p.name = $3"
                ),
                &[&scope.account_id, &scope.region, &name, &version_id],
                policy_and_version,
            )
            .await
        })
        .await
    }

    /// Up to `limit` policies ordered by name (descending if `descending`), with names
    /// strictly after `after` in that order.
    async fn list_policies(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRecord>> {
        self.read(async |db| list_policies(db, scope, after, descending, limit).await)
            .await
    }

    /// Up to `limit` policies by ascending name after `after`, each with its default
    /// version (`None` only if it vanished): one read per page for the audit's policy checks, where a read per
    /// policy would cost a round trip each on PostgreSQL.
    async fn list_policies_with_default_versions(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(PolicyRecord, Option<PolicyVersionRecord>)>> {
        macro_rules! page {
            ($cond:literal) => {
                sql!(
                    "SELECT ",
                    joined_policy_columns!(),
                    ", ",
                    joined_version_columns!(),
                    " FROM policies p LEFT JOIN policy_versions v",
                    " ON v.account_id = p.account_id AND v.region = p.region",
                    " AND v.policy_name = p.name AND v.version_id = p.default_version_id",
                    " WHERE p.account_id = $1 AND p.region = $2",
                    $cond,
                    " ORDER BY p.name LIMIT $4"
                )
            };
        }
        self.read(async |db| {
            // `after` is bound either way; the first page's statement ignores it.
            let sql = match after {
                Some(_) => page!(" AND p.name > $3"),
                None => page!(" AND $3::TEXT IS NULL"),
            };
            let limit = sql_limit(limit);
            let params: [&dyn Param; 4] = [&scope.account_id, &scope.region, &after, &limit];
            db.query(sql, &params, policy_and_version).await
        })
        .await
    }

    /// Deletes the policy, its (default) version and its tags, unless it has other
    /// versions (`OtherVersions`) or is attached to anything (`Attached`).
    async fn delete_policy(&self, scope: &Scope, name: &str) -> StoreResult<PolicyOutcome<()>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write(async move |db| delete_policy(db, &scope, &name).await)
            .await
    }

    /// Adds a version with the next id, making it the default if asked; refused with
    /// `TooManyVersions` if the policy already holds `max_versions`. Returns the policy
    /// as it is afterwards and the new version.
    async fn create_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version: &NewPolicyVersion,
        max_versions: usize,
    ) -> StoreResult<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>> {
        let (scope, name, version) = (scope.clone(), name.to_owned(), version.clone());
        self.write(async move |db| {
            create_policy_version_in(db, &scope, &name, &version, max_versions).await
        })
        .await
    }

    /// The policy and all its versions ordered by id, read together; `None` if the
    /// policy does not exist.
    async fn list_policy_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<(PolicyRecord, Vec<PolicyVersionRecord>)>> {
        self.read(async |db| {
            // One statement, so the default version id and the versions agree.
            let rows = db
                .query(
                    sql!(
                        "SELECT ",
                        joined_policy_columns!(),
                        ", ",
                        joined_version_columns!(),
                        " FROM policies p LEFT JOIN policy_versions v",
                        " ON v.account_id = p.account_id AND v.region = p.region",
                        " AND v.policy_name = p.name",
                        " WHERE p.account_id = $1 AND p.region = $2 AND p.name = $3",
                        " ORDER BY v.version_id"
                    ),
                    &[&scope.account_id, &scope.region, &name],
                    policy_and_version,
                )
                .await?;
            let mut found: Option<(PolicyRecord, Vec<PolicyVersionRecord>)> = None;
            for (p, v) in rows {
                let (_, versions) = found.get_or_insert_with(|| (p, Vec::new()));
                versions.extend(v);
            }
            Ok(found)
        })
        .await
    }

    /// Makes the version the default, with a new generation id. Making the default
    /// version the default again changes nothing. Returns the policy as it is afterwards.
    async fn set_default_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: i64,
        generation_id: &str,
        now_ms: i64,
    ) -> StoreResult<PolicyOutcome<PolicyRecord>> {
        let (scope, name, generation_id) =
            (scope.clone(), name.to_owned(), generation_id.to_owned());
        self.write(async move |db| {
            set_default_version(db, &scope, &name, version_id, &generation_id, now_ms).await
        })
        .await
    }

    /// Deletes a version other than the default (`DefaultVersion` for that one).
    async fn delete_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: i64,
        now_ms: i64,
    ) -> StoreResult<PolicyOutcome<()>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write(async move |db| {
            delete_policy_version(db, &scope, &name, version_id, now_ms).await
        })
        .await
    }
}

async fn create_policy(
    db: &Db<'_>,
    scope: &Scope,
    policy: &NewPolicy,
    tags: &[Tag],
) -> DbResult<()> {
    // A concurrent insert of the same name waits on the primary key and then fails
    // here, on whichever node it runs.
    db.insert(
        sql!(
            "INSERT INTO policies (account_id, region, name, arn, default_version_id,",
            " last_version_id, generation_id, created_at_ms, updated_at_ms)",
            " VALUES ($1, $2, $3, $4, 1, 1, $5, $6, $6)"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &policy.name,
            &policy.arn,
            &policy.generation_id,
            &policy.created_at_ms,
        ],
    )
    .await?;
    let first = PolicyVersionRecord {
        version_id: 1,
        document: policy.document.clone(),
        created_at_ms: policy.created_at_ms,
    };
    insert_version(db, scope, &policy.name, &first).await?;
    tags::upsert(db, scope, &policy.arn, tags).await?;
    Ok(())
}

/// One statement per (paged, direction) so each is a plain range scan on the primary
/// key.
async fn list_policies(
    db: &Db<'_>,
    scope: &Scope,
    after: Option<&str>,
    descending: bool,
    limit: usize,
) -> DbResult<Vec<PolicyRecord>> {
    macro_rules! list {
        ($cond:literal, $order:literal, $limit:literal) => {
            sql!(
                "SELECT ",
                policy_columns!(),
                " FROM policies WHERE account_id = $1 AND region = $2",
                $cond,
                " ORDER BY name ",
                $order,
                " LIMIT ",
                $limit
            )
        };
    }
    let sql = match (after.is_some(), descending) {
        (false, false) => list!("", "ASC", "$3"),
        (true, false) => list!(" AND name > $3", "ASC", "$4"),
        (false, true) => list!("", "DESC", "$3"),
        (true, true) => list!(" AND name < $3", "DESC", "$4"),
    };
    let limit = sql_limit(limit);
    let mut params: Vec<&dyn Param> = vec![&scope.account_id, &scope.region];
    params.extend(after.as_ref().map(|a| a as &dyn Param));
    params.push(&limit);
    db.query(sql, &params, policy).await
}

async fn delete_policy(db: &Db<'_>, scope: &Scope, name: &str) -> DbResult<PolicyOutcome<()>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &name];
    let Some((current, _)) = db.query_opt(LOCK_POLICY, &key, locked_policy).await? else {
        return Ok(Err(PolicyRefusal::NoSuchPolicy));
    };
    if db.count(COUNT_VERSIONS, &key).await? > 1 {
        return Ok(Err(PolicyRefusal::OtherVersions));
    }
    // An attachment's foreign key takes a key-share lock on the policy row, which the
    // row lock above excludes: none can be added between this check and the deletion.
    let attached: Option<bool> = db
        .value(
            sql!(
                "SELECT EXISTS (SELECT 1 FROM policy_attachments",
                " WHERE account_id = $1 AND region = $2 AND policy_name = $3)"
            ),
            &key,
        )
        .await?;
    if attached == Some(true) {
        return Ok(Err(PolicyRefusal::Attached));
    }
    db.execute(
        sql!(
            "DELETE FROM policy_versions",
            " WHERE account_id = $1 AND region = $2 AND policy_name = $3"
        ),
        &key,
    )
    .await?;
    db.execute(
        sql!("DELETE FROM policies WHERE account_id = $1 AND region = $2 AND name = $3"),
        &key,
    )
    .await?;
    tags::delete_all(db, scope, &current.arn).await?;
    Ok(Ok(()))
}

async fn set_default_version(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    version_id: i64,
    generation_id: &str,
    now_ms: i64,
) -> DbResult<PolicyOutcome<PolicyRecord>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &name];
    let Some((current, _)) = db.query_opt(LOCK_POLICY, &key, locked_policy).await? else {
        return Ok(Err(PolicyRefusal::NoSuchPolicy));
    };
    let exists: Option<bool> = db
        .value(
            sql!(
                "SELECT EXISTS (SELECT 1 FROM policy_versions WHERE account_id = $1",
                " AND region = $2 AND policy_name = $3 AND version_id = $4)"
            ),
            &[&scope.account_id, &scope.region, &name, &version_id],
        )
        .await?;
    if exists != Some(true) {
        return Ok(Err(PolicyRefusal::NoSuchVersion));
    }
    if current.default_version_id == version_id {
        return Ok(Ok(current));
    }
    let updated = db
        .query_one(
            sql!(
                "UPDATE policies SET default_version_id = $4, generation_id = $5,",
                " updated_at_ms = $6 WHERE account_id = $1 AND region = $2 AND name = $3",
                " RETURNING ",
                policy_columns!()
            ),
            &[
                &scope.account_id,
                &scope.region,
                &name,
                &version_id,
                &generation_id,
                &now_ms,
            ],
            policy,
        )
        .await?;
    Ok(Ok(updated))
}

async fn delete_policy_version(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    version_id: i64,
    now_ms: i64,
) -> DbResult<PolicyOutcome<()>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &name];
    let Some((current, _)) = db.query_opt(LOCK_POLICY, &key, locked_policy).await? else {
        return Ok(Err(PolicyRefusal::NoSuchPolicy));
    };
    if current.default_version_id == version_id {
        return Ok(Err(PolicyRefusal::DefaultVersion));
    }
    let deleted = db
        .execute(
            sql!(
                "DELETE FROM policy_versions WHERE account_id = $1 AND region = $2",
                " AND policy_name = $3 AND version_id = $4"
            ),
            &[&scope.account_id, &scope.region, &name, &version_id],
        )
        .await?;
    if deleted == 0 {
        return Ok(Err(PolicyRefusal::NoSuchVersion));
    }
    db.execute(
        sql!(
            "UPDATE policies SET updated_at_ms = $4",
            " WHERE account_id = $1 AND region = $2 AND name = $3"
        ),
        &[&scope.account_id, &scope.region, &name, &now_ms],
    )
    .await?;
    Ok(Ok(()))
}

/// Adds a policy version inside the caller's transaction, under the policy's row lock
/// (`PolicyStore::create_policy_version`); the REPLACE_DEFAULT_POLICY_VERSION mitigation
/// uses it too.
pub(crate) async fn create_policy_version_in(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    version: &NewPolicyVersion,
    max_versions: usize,
) -> DbResult<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &name];
    let Some((_, last_version_id)) = db.query_opt(LOCK_POLICY, &key, locked_policy).await? else {
        return Ok(Err(PolicyRefusal::NoSuchPolicy));
    };
    if db.count(COUNT_VERSIONS, &key).await? >= max_versions {
        return Ok(Err(PolicyRefusal::TooManyVersions {
            limit: max_versions,
        }));
    }
    let created = PolicyVersionRecord {
        version_id: last_version_id + 1,
        document: version.document.clone(),
        created_at_ms: version.created_at_ms,
    };
    insert_version(db, scope, name, &created).await?;
    let updated = db
        .query_one(
            VERSION_ADDED,
            &[
                &scope.account_id,
                &scope.region,
                &name,
                &created.version_id,
                &version.set_as_default,
                &version.generation_id,
                &created.created_at_ms,
            ],
            policy,
        )
        .await?;
    Ok(Ok((updated, created)))
}

async fn insert_version(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    version: &PolicyVersionRecord,
) -> DbResult<()> {
    let params: [&dyn Param; 6] = [
        &scope.account_id,
        &scope.region,
        &name,
        &version.version_id,
        &version.document,
        &version.created_at_ms,
    ];
    db.execute(INSERT_VERSION, &params).await.map(drop)
}

// The statements below are also run by sqlite/policies.rs, on the rusqlite transaction
// of the mitigation stages that are not on the seam yet.

/// Reads and row-locks the policy, with the highest version id ever issued, for the
/// rest of the transaction ([`locked_policy`] maps the row). Read committed re-reads a
/// row that changed while we waited for its lock, so what comes back is the latest
/// committed state (or nothing, if the wait ended with its deletion).
pub(crate) const LOCK_POLICY: &Sql<'static> = sql!(
    "SELECT ",
    policy_columns!(),
    ", last_version_id FROM policies",
    " WHERE account_id = $1 AND region = $2 AND name = $3 FOR UPDATE"
);

pub(crate) const COUNT_VERSIONS: &Sql<'static> = sql!(
    "SELECT COUNT(*) FROM policy_versions",
    " WHERE account_id = $1 AND region = $2 AND policy_name = $3"
);

pub(crate) const INSERT_VERSION: &Sql<'static> = sql!(
    "INSERT INTO policy_versions",
    " (account_id, region, policy_name, version_id, document, created_at_ms)",
    " VALUES ($1, $2, $3, $4, $5, $6)"
);

/// Records a new version ($4) on its policy, and makes it the default with generation
/// id $6 if $5; returns the policy.
pub(crate) const VERSION_ADDED: &Sql<'static> = sql!(
    "UPDATE policies SET last_version_id = $4,",
    " default_version_id = CASE WHEN $5 THEN $4 ELSE default_version_id END,",
    " generation_id = CASE WHEN $5 THEN $6 ELSE generation_id END,",
    " updated_at_ms = $7",
    " WHERE account_id = $1 AND region = $2 AND name = $3",
    " RETURNING ",
    policy_columns!()
);

/// A row of [`LOCK_POLICY`]: the policy and its last version id.
pub(crate) fn locked_policy(row: &Row<'_>) -> DbResult<(PolicyRecord, i64)> {
    Ok((policy(row)?, row.get(POLICY_COLUMNS)?))
}
