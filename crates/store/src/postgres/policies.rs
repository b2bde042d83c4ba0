//! Policies with their versions, role aliases and logging options on PostgreSQL.
//!
//! Every write that reads a policy before changing its versions first locks the policy
//! row (`SELECT ... FOR UPDATE`), so such writes on one policy queue behind each other
//! on every node: the version limit, the next version id and "is this the default" are
//! decided on the latest committed state. Name uniqueness is the primary key's job.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::error::{insert_err, Fail};
use super::{count_to_usize, sql_limit, tags, PostgresStore};
use crate::{
    LoggingOptionsRecord, LoggingStore, NewPolicy, NewPolicyVersion, PolicyOutcome, PolicyRecord,
    PolicyRefusal, PolicyStore, PolicyVersionRecord, RoleAliasRecord, RoleAliasStore,
    RoleAliasUpdate, Scope, StoreError, StoreResult, Tag, V2LoggingOptionsRecord,
};

// Column lists beside their mapping functions, as in rows.rs. The `p.`/`v.` forms are
// for the joins of a policy with its versions; keep them in step with the plain ones.
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
const POLICY_COLUMNS: usize = 6;

fn policy(row: &Row) -> Result<PolicyRecord, Fail> {
    Ok(PolicyRecord {
        name: row.try_get(0)?,
        arn: row.try_get(1)?,
        default_version_id: row.try_get(2)?,
        generation_id: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        updated_at_ms: row.try_get(5)?,
    })
}

/// Policies with their default versions, up to the paging condition.
macro_rules! policies_with_default_versions_sql {
    () => {
        concat!(
            "SELECT ",
            joined_policy_columns!(),
            ", ",
            joined_version_columns!(),
            " FROM policies p LEFT JOIN policy_versions v",
            " ON v.account_id = p.account_id AND v.region = p.region",
            " AND v.policy_name = p.name AND v.version_id = p.default_version_id",
            " WHERE p.account_id = $1 AND p.region = $2"
        )
    };
}

macro_rules! joined_version_columns {
    () => {
        "v.version_id, v.document, v.created_at_ms"
    };
}

/// The version columns that follow the policy's in a joined row; absent (NULL) when
/// the outer join found no version.
fn joined_version(row: &Row) -> Result<Option<PolicyVersionRecord>, Fail> {
    let at = POLICY_COLUMNS;
    let Some(version_id) = row.try_get::<_, Option<i64>>(at)? else {
        return Ok(None);
    };
    Ok(Some(PolicyVersionRecord {
        version_id,
        document: row.try_get(at + 1)?,
        created_at_ms: row.try_get(at + 2)?,
    }))
}

macro_rules! role_alias_columns {
    () => {
        "alias, arn, role_arn, credential_duration_seconds, created_at_ms, updated_at_ms"
    };
}

fn role_alias(row: &Row) -> Result<RoleAliasRecord, Fail> {
    Ok(RoleAliasRecord {
        alias: row.try_get(0)?,
        arn: row.try_get(1)?,
        role_arn: row.try_get(2)?,
        credential_duration_seconds: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        updated_at_ms: row.try_get(5)?,
    })
}

#[async_trait]
impl PolicyStore for PostgresStore {
    async fn create_policy(
        &self,
        scope: &Scope,
        policy: &NewPolicy,
        tags: &[Tag],
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                // A concurrent insert of the same name waits on the primary key and then
                // fails here, on whichever node it runs.
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO policies (account_id, region, name, arn, default_version_id,
                             last_version_id, generation_id, created_at_ms, updated_at_ms)
                         VALUES ($1, $2, $3, $4, 1, 1, $5, $6, $6)",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &policy.name,
                        &policy.arn,
                        &policy.generation_id,
                        &policy.created_at_ms,
                    ],
                )
                .await
                .map_err(insert_err)?;
                let first = PolicyVersionRecord {
                    version_id: 1,
                    document: policy.document.clone(),
                    created_at_ms: policy.created_at_ms,
                };
                insert_version(&tx, scope, &policy.name, &first).await?;
                if !tags.is_empty() {
                    tags::lock_resource(&tx, scope, &policy.arn).await?;
                    tags::upsert(&tx, scope, &policy.arn, tags).await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_policy(&self, scope: &Scope, name: &str) -> StoreResult<Option<PolicyRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        policy_columns!(),
                        " FROM policies WHERE account_id = $1 AND region = $2 AND name = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
                    .await?;
                row.as_ref().map(policy).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: Option<i64>,
    ) -> StoreResult<Option<(PolicyRecord, Option<PolicyVersionRecord>)>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // One statement, so the policy and the version come from one snapshot.
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        joined_policy_columns!(),
                        ", ",
                        joined_version_columns!(),
                        " FROM policies p LEFT JOIN policy_versions v",
                        " ON v.account_id = p.account_id AND v.region = p.region",
                        " AND v.policy_name = p.name",
                        " AND v.version_id = COALESCE($4::BIGINT, p.default_version_id)",
                        " WHERE p.account_id = $1 AND p.region = $2 AND p.name = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(
                        &stmt,
                        &[&scope.account_id, &scope.region, &name, &version_id],
                    )
                    .await?;
                match row {
                    Some(row) => Ok(Some((policy(&row)?, joined_version(&row)?))),
                    None => Ok(None),
                }
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_policies(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                let stmt = conn
                    .prepare_cached(list_policies_sql(after.is_some(), descending))
                    .await?;
                let rows = match after {
                    None => {
                        conn.query(&stmt, &[&scope.account_id, &scope.region, &limit])
                            .await?
                    }
                    Some(after) => {
                        conn.query(&stmt, &[&scope.account_id, &scope.region, &after, &limit])
                            .await?
                    }
                };
                rows.iter().map(policy).collect()
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_policies_with_default_versions(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(PolicyRecord, Option<PolicyVersionRecord>)>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                // `after` is bound either way; the first page's statement ignores it.
                let stmt = conn
                    .prepare_cached(if after.is_some() {
                        concat!(
                            policies_with_default_versions_sql!(),
                            " AND p.name > $3 ORDER BY p.name LIMIT $4"
                        )
                    } else {
                        concat!(
                            policies_with_default_versions_sql!(),
                            " AND $3::TEXT IS NULL ORDER BY p.name LIMIT $4"
                        )
                    })
                    .await?;
                let rows = conn
                    .query(&stmt, &[&scope.account_id, &scope.region, &after, &limit])
                    .await?;
                rows.iter()
                    .map(|row| Ok((policy(row)?, joined_version(row)?)))
                    .collect()
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_policy(&self, scope: &Scope, name: &str) -> StoreResult<PolicyOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let Some(current) = lock_policy(&tx, scope, name).await? else {
                    return Ok(Err(PolicyRefusal::NoSuchPolicy));
                };
                if count_versions(&tx, scope, name).await? > 1 {
                    return Ok(Err(PolicyRefusal::OtherVersions));
                }
                if is_attached(&tx, scope, name).await? {
                    return Ok(Err(PolicyRefusal::Attached));
                }
                let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                    [&scope.account_id, &scope.region, &name];
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM policy_versions
                         WHERE account_id = $1 AND region = $2 AND policy_name = $3",
                    )
                    .await?;
                tx.execute(&stmt, &key).await?;
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM policies WHERE account_id = $1 AND region = $2 AND name = $3",
                    )
                    .await?;
                tx.execute(&stmt, &key).await?;
                // Under the resource's lock, so tags a concurrent TagResource is about to
                // commit on this ARN are seen and removed too.
                tags::lock_resource(&tx, scope, &current.record.arn).await?;
                tags::delete_all(&tx, scope, &current.record.arn).await?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn create_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version: &NewPolicyVersion,
        max_versions: usize,
    ) -> StoreResult<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let created =
                    create_policy_version_in(&tx, scope, name, version, max_versions).await?;
                if created.is_ok() {
                    tx.commit().await?;
                }
                Ok(created)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_policy_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<(PolicyRecord, Vec<PolicyVersionRecord>)>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // One statement, so the default version id and the versions agree.
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        joined_policy_columns!(),
                        ", ",
                        joined_version_columns!(),
                        " FROM policies p LEFT JOIN policy_versions v",
                        " ON v.account_id = p.account_id AND v.region = p.region",
                        " AND v.policy_name = p.name",
                        " WHERE p.account_id = $1 AND p.region = $2 AND p.name = $3",
                        " ORDER BY v.version_id"
                    ))
                    .await?;
                let rows = conn
                    .query(&stmt, &[&scope.account_id, &scope.region, &name])
                    .await?;
                let mut found: Option<(PolicyRecord, Vec<PolicyVersionRecord>)> = None;
                for row in &rows {
                    let version = joined_version(row)?;
                    let (_, versions) = match &mut found {
                        Some(found) => found,
                        None => found.insert((policy(row)?, Vec::new())),
                    };
                    versions.extend(version);
                }
                Ok(found)
            })
            .await;
        conn.finish(outcome)
    }

    async fn set_default_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: i64,
        generation_id: &str,
        now_ms: i64,
    ) -> StoreResult<PolicyOutcome<PolicyRecord>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let Some(current) = lock_policy(&tx, scope, name).await? else {
                    return Ok(Err(PolicyRefusal::NoSuchPolicy));
                };
                if !version_exists(&tx, scope, name, version_id).await? {
                    return Ok(Err(PolicyRefusal::NoSuchVersion));
                }
                if current.record.default_version_id == version_id {
                    return Ok(Ok(current.record));
                }
                let stmt = tx
                    .prepare_cached(concat!(
                        "UPDATE policies SET default_version_id = $4, generation_id = $5,",
                        " updated_at_ms = $6",
                        " WHERE account_id = $1 AND region = $2 AND name = $3",
                        " RETURNING ",
                        policy_columns!()
                    ))
                    .await?;
                let row = tx
                    .query_one(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &name,
                            &version_id,
                            &generation_id,
                            &now_ms,
                        ],
                    )
                    .await?;
                let updated = policy(&row)?;
                tx.commit().await?;
                Ok(Ok(updated))
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: i64,
        now_ms: i64,
    ) -> StoreResult<PolicyOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let Some(current) = lock_policy(&tx, scope, name).await? else {
                    return Ok(Err(PolicyRefusal::NoSuchPolicy));
                };
                if current.record.default_version_id == version_id {
                    return Ok(Err(PolicyRefusal::DefaultVersion));
                }
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM policy_versions
                         WHERE account_id = $1 AND region = $2 AND policy_name = $3
                           AND version_id = $4",
                    )
                    .await?;
                let deleted = tx
                    .execute(
                        &stmt,
                        &[&scope.account_id, &scope.region, &name, &version_id],
                    )
                    .await?;
                if deleted == 0 {
                    return Ok(Err(PolicyRefusal::NoSuchVersion));
                }
                let stmt = tx
                    .prepare_cached(
                        "UPDATE policies SET updated_at_ms = $4
                         WHERE account_id = $1 AND region = $2 AND name = $3",
                    )
                    .await?;
                tx.execute(&stmt, &[&scope.account_id, &scope.region, &name, &now_ms])
                    .await?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }
}

/// Adds a policy version inside the caller's transaction (see
/// `PolicyStore::create_policy_version`), under the policy's row lock; the
/// REPLACE_DEFAULT_POLICY_VERSION mitigation uses it too.
pub(super) async fn create_policy_version_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version: &NewPolicyVersion,
    max_versions: usize,
) -> Result<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>, Fail> {
    let Some(current) = lock_policy(tx, scope, name).await? else {
        return Ok(Err(PolicyRefusal::NoSuchPolicy));
    };
    if count_versions(tx, scope, name).await? >= max_versions {
        return Ok(Err(PolicyRefusal::TooManyVersions {
            limit: max_versions,
        }));
    }
    let created = PolicyVersionRecord {
        version_id: current.last_version_id + 1,
        document: version.document.clone(),
        created_at_ms: version.created_at_ms,
    };
    insert_version(tx, scope, name, &created).await?;
    let stmt = tx
        .prepare_cached(concat!(
            "UPDATE policies SET last_version_id = $4,",
            " default_version_id = CASE WHEN $5 THEN $4 ELSE default_version_id END,",
            " generation_id = CASE WHEN $5 THEN $6 ELSE generation_id END,",
            " updated_at_ms = $7",
            " WHERE account_id = $1 AND region = $2 AND name = $3",
            " RETURNING ",
            policy_columns!()
        ))
        .await?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &scope.account_id,
                &scope.region,
                &name,
                &created.version_id,
                &version.set_as_default,
                &version.generation_id,
                &created.created_at_ms,
            ],
        )
        .await?;
    Ok(Ok((policy(&row)?, created)))
}

/// Replaces the scope's v2 logging options (see `LoggingStore::put_v2_logging_options`)
/// on a pooled connection or inside a transaction; the ENABLE_IOT_LOGGING mitigation
/// uses it too.
pub(super) async fn put_v2_logging_options_in(
    client: &impl GenericClient,
    scope: &Scope,
    options: &V2LoggingOptionsRecord,
) -> Result<(), Fail> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO v2_logging_options (account_id, region, role_arn,
                 default_log_level, disable_all_logs, event_configurations,
                 updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (account_id, region) DO UPDATE SET
                 role_arn = excluded.role_arn,
                 default_log_level = excluded.default_log_level,
                 disable_all_logs = excluded.disable_all_logs,
                 event_configurations = excluded.event_configurations,
                 updated_at_ms = excluded.updated_at_ms",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &scope.account_id,
                &scope.region,
                &options.role_arn,
                &options.default_log_level,
                &options.disable_all_logs,
                &options.event_configurations_json,
                &options.updated_at_ms,
            ],
        )
        .await?;
    Ok(())
}

/// A policy as read inside a write, with the bookkeeping the record does not show.
struct Current {
    record: PolicyRecord,
    last_version_id: i64,
}

/// Reads and row-locks the policy for the rest of the transaction. Read committed
/// re-reads a row that changed while we waited for its lock, so what comes back is the
/// latest committed state (or nothing, if the wait ended with its deletion).
async fn lock_policy(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Option<Current>, Fail> {
    let stmt = tx
        .prepare_cached(concat!(
            "SELECT ",
            policy_columns!(),
            ", last_version_id FROM policies",
            " WHERE account_id = $1 AND region = $2 AND name = $3 FOR UPDATE"
        ))
        .await?;
    let Some(row) = tx
        .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Current {
        record: policy(&row)?,
        last_version_id: row.try_get(POLICY_COLUMNS)?,
    }))
}

async fn count_versions(tx: &Transaction<'_>, scope: &Scope, name: &str) -> Result<usize, Fail> {
    let stmt = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM policy_versions
             WHERE account_id = $1 AND region = $2 AND policy_name = $3",
        )
        .await?;
    let count: i64 = tx
        .query_one(&stmt, &[&scope.account_id, &scope.region, &name])
        .await?
        .try_get(0)?;
    Ok(count_to_usize(count))
}

async fn version_exists(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version_id: i64,
) -> Result<bool, Fail> {
    let stmt = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM policy_versions
             WHERE account_id = $1 AND region = $2 AND policy_name = $3 AND version_id = $4)",
        )
        .await?;
    Ok(tx
        .query_one(
            &stmt,
            &[&scope.account_id, &scope.region, &name, &version_id],
        )
        .await?
        .try_get(0)?)
}

/// Whether anything is attached to the policy. Nothing writes attachments yet
/// (AttachPolicy comes with certificates), so today this always finds none.
async fn is_attached(tx: &Transaction<'_>, scope: &Scope, name: &str) -> Result<bool, Fail> {
    let stmt = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM policy_attachments
             WHERE account_id = $1 AND region = $2 AND policy_name = $3)",
        )
        .await?;
    Ok(tx
        .query_one(&stmt, &[&scope.account_id, &scope.region, &name])
        .await?
        .try_get(0)?)
}

async fn insert_version(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version: &PolicyVersionRecord,
) -> Result<(), Fail> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO policy_versions
                 (account_id, region, policy_name, version_id, document, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &scope.account_id,
            &scope.region,
            &name,
            &version.version_id,
            &version.document,
            &version.created_at_ms,
        ],
    )
    .await?;
    Ok(())
}

/// One statement per (paged, direction) so each is a plain range scan on the primary
/// key. Parameters: scope, then the `after` bound when paged, then the limit.
fn list_policies_sql(paged: bool, descending: bool) -> &'static str {
    macro_rules! list {
        ($cond:literal, $order:literal, $limit:literal) => {
            concat!(
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
    match (paged, descending) {
        (false, false) => list!("", "ASC", "$3"),
        (true, false) => list!(" AND name > $3", "ASC", "$4"),
        (false, true) => list!("", "DESC", "$3"),
        (true, true) => list!(" AND name < $3", "DESC", "$4"),
    }
}

#[async_trait]
impl RoleAliasStore for PostgresStore {
    async fn create_role_alias(
        &self,
        scope: &Scope,
        record: &RoleAliasRecord,
        tags: &[Tag],
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx
                    .prepare_cached(concat!(
                        "INSERT INTO role_aliases (account_id, region, ",
                        role_alias_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    ))
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &record.alias,
                        &record.arn,
                        &record.role_arn,
                        &record.credential_duration_seconds,
                        &record.created_at_ms,
                        &record.updated_at_ms,
                    ],
                )
                .await
                .map_err(insert_err)?;
                if !tags.is_empty() {
                    tags::lock_resource(&tx, scope, &record.arn).await?;
                    tags::upsert(&tx, scope, &record.arn, tags).await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
    ) -> StoreResult<Option<RoleAliasRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        role_alias_columns!(),
                        " FROM role_aliases WHERE account_id = $1 AND region = $2 AND alias = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &alias])
                    .await?;
                row.as_ref().map(role_alias).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn update_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
        update: &RoleAliasUpdate,
    ) -> StoreResult<RoleAliasRecord> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "UPDATE role_aliases SET",
                        " role_arn = COALESCE($4, role_arn),",
                        " credential_duration_seconds = COALESCE($5, credential_duration_seconds),",
                        " updated_at_ms = $6",
                        " WHERE account_id = $1 AND region = $2 AND alias = $3",
                        " RETURNING ",
                        role_alias_columns!()
                    ))
                    .await?;
                let row = conn
                    .query_opt(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &alias,
                            &update.role_arn,
                            &update.credential_duration_seconds,
                            &update.updated_at_ms,
                        ],
                    )
                    .await?;
                match row {
                    Some(row) => role_alias(&row),
                    None => Err(StoreError::NotFound.into()),
                }
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_role_alias(&self, scope: &Scope, alias: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM role_aliases
                         WHERE account_id = $1 AND region = $2 AND alias = $3
                         RETURNING arn",
                    )
                    .await?;
                let Some(row) = tx
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &alias])
                    .await?
                else {
                    return Ok(false);
                };
                let arn: String = row.try_get(0)?;
                tags::lock_resource(&tx, scope, &arn).await?;
                tags::delete_all(&tx, scope, &arn).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_role_aliases(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<RoleAliasRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                let stmt = conn
                    .prepare_cached(list_role_aliases_sql(after.is_some(), descending))
                    .await?;
                let rows = match after {
                    None => {
                        conn.query(&stmt, &[&scope.account_id, &scope.region, &limit])
                            .await?
                    }
                    Some(after) => {
                        conn.query(&stmt, &[&scope.account_id, &scope.region, &after, &limit])
                            .await?
                    }
                };
                rows.iter().map(role_alias).collect()
            })
            .await;
        conn.finish(outcome)
    }
}

/// As [`list_policies_sql`], for role aliases.
fn list_role_aliases_sql(paged: bool, descending: bool) -> &'static str {
    macro_rules! list {
        ($cond:literal, $order:literal, $limit:literal) => {
            concat!(
                "SELECT ",
                role_alias_columns!(),
                " FROM role_aliases WHERE account_id = $1 AND region = $2",
                $cond,
                " ORDER BY alias ",
                $order,
                " LIMIT ",
                $limit
            )
        };
    }
    match (paged, descending) {
        (false, false) => list!("", "ASC", "$3"),
        (true, false) => list!(" AND alias > $3", "ASC", "$4"),
        (false, true) => list!("", "DESC", "$3"),
        (true, true) => list!(" AND alias < $3", "DESC", "$4"),
    }
}

#[async_trait]
impl LoggingStore for PostgresStore {
    async fn put_logging_options(
        &self,
        scope: &Scope,
        options: &LoggingOptionsRecord,
    ) -> StoreResult<()> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "INSERT INTO logging_options
                             (account_id, region, role_arn, log_level, updated_at_ms)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (account_id, region) DO UPDATE SET
                             role_arn = excluded.role_arn,
                             log_level = excluded.log_level,
                             updated_at_ms = excluded.updated_at_ms",
                    )
                    .await?;
                conn.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &options.role_arn,
                        &options.log_level,
                        &options.updated_at_ms,
                    ],
                )
                .await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_logging_options(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<LoggingOptionsRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT role_arn, log_level, updated_at_ms FROM logging_options
                         WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                let Some(row) = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region])
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(LoggingOptionsRecord {
                    role_arn: row.try_get(0)?,
                    log_level: row.try_get(1)?,
                    updated_at_ms: row.try_get(2)?,
                }))
            })
            .await;
        conn.finish(outcome)
    }

    async fn put_v2_logging_options(
        &self,
        scope: &Scope,
        options: &V2LoggingOptionsRecord,
    ) -> StoreResult<()> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(put_v2_logging_options_in(&conn.obj, scope, options))
            .await;
        conn.finish(outcome)
    }

    async fn get_v2_logging_options(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<V2LoggingOptionsRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT role_arn, default_log_level, disable_all_logs,
                             event_configurations, updated_at_ms
                         FROM v2_logging_options WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                let Some(row) = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region])
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(V2LoggingOptionsRecord {
                    role_arn: row.try_get(0)?,
                    default_log_level: row.try_get(1)?,
                    disable_all_logs: row.try_get(2)?,
                    event_configurations_json: row.try_get(3)?,
                    updated_at_ms: row.try_get(4)?,
                }))
            })
            .await;
        conn.finish(outcome)
    }
}
