//! Policies with their versions, role aliases and logging options on SQLite.
//!
//! Every write runs in the single writer's IMMEDIATE transaction, so the checks below
//! (version limit, "is this the default", "other versions left") and the writes they
//! guard are atomic against every other connection and process on the file.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, Transaction};

use super::error::{insert_err, sql_err};
use super::{sql_limit, tags, SqliteStore};
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

fn policy(row: &Row<'_>) -> rusqlite::Result<PolicyRecord> {
    Ok(PolicyRecord {
        name: row.get(0)?,
        arn: row.get(1)?,
        default_version_id: row.get(2)?,
        generation_id: row.get(3)?,
        created_at_ms: row.get(4)?,
        updated_at_ms: row.get(5)?,
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
            " WHERE p.account_id = ?1 AND p.region = ?2"
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
fn joined_version(row: &Row<'_>) -> rusqlite::Result<Option<PolicyVersionRecord>> {
    let at = POLICY_COLUMNS;
    let Some(version_id) = row.get::<_, Option<i64>>(at)? else {
        return Ok(None);
    };
    Ok(Some(PolicyVersionRecord {
        version_id,
        document: row.get(at + 1)?,
        created_at_ms: row.get(at + 2)?,
    }))
}

fn policy_and_version(
    row: &Row<'_>,
) -> rusqlite::Result<(PolicyRecord, Option<PolicyVersionRecord>)> {
    Ok((policy(row)?, joined_version(row)?))
}

macro_rules! role_alias_columns {
    () => {
        "alias, arn, role_arn, credential_duration_seconds, created_at_ms, updated_at_ms"
    };
}

fn role_alias(row: &Row<'_>) -> rusqlite::Result<RoleAliasRecord> {
    Ok(RoleAliasRecord {
        alias: row.get(0)?,
        arn: row.get(1)?,
        role_arn: row.get(2)?,
        credential_duration_seconds: row.get(3)?,
        created_at_ms: row.get(4)?,
        updated_at_ms: row.get(5)?,
    })
}

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn create_policy(
        &self,
        scope: &Scope,
        policy: &NewPolicy,
        tags: &[Tag],
    ) -> StoreResult<()> {
        let (scope, policy, tags) = (scope.clone(), policy.clone(), tags.to_vec());
        self.write_tx(move |tx| {
            // The name is taken if and only if the primary key rejects the row.
            tx.prepare_cached(
                "INSERT INTO policies (account_id, region, name, arn, default_version_id,
                     last_version_id, generation_id, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, 1, 1, ?5, ?6, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &policy.name,
                    &policy.arn,
                    &policy.generation_id,
                    policy.created_at_ms,
                ))
            })
            .map_err(insert_err)?;
            insert_version(
                tx,
                &scope,
                &policy.name,
                &PolicyVersionRecord {
                    version_id: 1,
                    document: policy.document.clone(),
                    created_at_ms: policy.created_at_ms,
                },
            )?;
            tags::upsert(tx, &scope, &policy.arn, &tags)
        })
        .await
    }

    async fn get_policy(&self, scope: &Scope, name: &str) -> StoreResult<Option<PolicyRecord>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.read_conn(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                policy_columns!(),
                " FROM policies WHERE account_id = ?1 AND region = ?2 AND name = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region, &name), policy)
                    .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn get_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: Option<i64>,
    ) -> StoreResult<Option<(PolicyRecord, Option<PolicyVersionRecord>)>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.read_conn(move |conn| {
            // One statement, so the policy and the version come from one snapshot.
            conn.prepare_cached(concat!(
                "SELECT ",
                joined_policy_columns!(),
                ", ",
                joined_version_columns!(),
                " FROM policies p LEFT JOIN policy_versions v",
                " ON v.account_id = p.account_id AND v.region = p.region",
                " AND v.policy_name = p.name",
                " AND v.version_id = COALESCE(?4, p.default_version_id)",
                " WHERE p.account_id = ?1 AND p.region = ?2 AND p.name = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (&scope.account_id, &scope.region, &name, version_id),
                    policy_and_version,
                )
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn list_policies(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRecord>> {
        let (scope, after) = (scope.clone(), after.map(str::to_owned));
        self.read_conn(move |conn| {
            let sql = list_policies_sql(after.is_some(), descending);
            let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (&scope.account_id, &scope.region, &after, sql_limit(limit)),
                    policy,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn list_policies_with_default_versions(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(PolicyRecord, Option<PolicyVersionRecord>)>> {
        let (scope, after) = (scope.clone(), after.map(str::to_owned));
        self.read_conn(move |conn| {
            // `after` is bound either way; the first page's statement ignores it.
            let sql = if after.is_some() {
                concat!(
                    policies_with_default_versions_sql!(),
                    " AND p.name > ?3 ORDER BY p.name LIMIT ?4"
                )
            } else {
                concat!(
                    policies_with_default_versions_sql!(),
                    " AND ?3 IS NULL ORDER BY p.name LIMIT ?4"
                )
            };
            let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (&scope.account_id, &scope.region, &after, sql_limit(limit)),
                    policy_and_version,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn delete_policy(&self, scope: &Scope, name: &str) -> StoreResult<PolicyOutcome<()>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write_tx(move |tx| {
            let Some(current) = locked_policy(tx, &scope, &name)? else {
                return Ok(Err(PolicyRefusal::NoSuchPolicy));
            };
            if count_versions(tx, &scope, &name)? > 1 {
                return Ok(Err(PolicyRefusal::OtherVersions));
            }
            if is_attached(tx, &scope, &name)? {
                return Ok(Err(PolicyRefusal::Attached));
            }
            let key = (&scope.account_id, &scope.region, &name);
            tx.prepare_cached(
                "DELETE FROM policy_versions
                 WHERE account_id = ?1 AND region = ?2 AND policy_name = ?3",
            )
            .and_then(|mut stmt| stmt.execute(key))
            .map_err(sql_err)?;
            tx.prepare_cached(
                "DELETE FROM policies WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| stmt.execute(key))
            .map_err(sql_err)?;
            tags::delete_all(tx, &scope, &current.record.arn)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn create_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version: &NewPolicyVersion,
        max_versions: usize,
    ) -> StoreResult<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>> {
        let (scope, name, version) = (scope.clone(), name.to_owned(), version.clone());
        self.write_tx(move |tx| create_policy_version_in(tx, &scope, &name, &version, max_versions))
            .await
    }

    async fn list_policy_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<(PolicyRecord, Vec<PolicyVersionRecord>)>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.read_conn(move |conn| {
            // One statement, so the default version id and the versions agree.
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    joined_policy_columns!(),
                    ", ",
                    joined_version_columns!(),
                    " FROM policies p LEFT JOIN policy_versions v",
                    " ON v.account_id = p.account_id AND v.region = p.region",
                    " AND v.policy_name = p.name",
                    " WHERE p.account_id = ?1 AND p.region = ?2 AND p.name = ?3",
                    " ORDER BY v.version_id"
                ))
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (&scope.account_id, &scope.region, &name),
                    policy_and_version,
                )
                .map_err(sql_err)?;
            let mut found: Option<(PolicyRecord, Vec<PolicyVersionRecord>)> = None;
            for row in rows {
                let (p, v) = row.map_err(sql_err)?;
                let (_, versions) = found.get_or_insert_with(|| (p, Vec::new()));
                versions.extend(v);
            }
            Ok(found)
        })
        .await
    }

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
        self.write_tx(move |tx| {
            let Some(current) = locked_policy(tx, &scope, &name)? else {
                return Ok(Err(PolicyRefusal::NoSuchPolicy));
            };
            if !version_exists(tx, &scope, &name, version_id)? {
                return Ok(Err(PolicyRefusal::NoSuchVersion));
            }
            if current.record.default_version_id == version_id {
                return Ok(Ok(current.record));
            }
            let updated = tx
                .prepare_cached(concat!(
                    "UPDATE policies SET default_version_id = ?4, generation_id = ?5,",
                    " updated_at_ms = ?6",
                    " WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                    " RETURNING ",
                    policy_columns!()
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(
                        (
                            &scope.account_id,
                            &scope.region,
                            &name,
                            version_id,
                            &generation_id,
                            now_ms,
                        ),
                        policy,
                    )
                })
                .map_err(sql_err)?;
            Ok(Ok(updated))
        })
        .await
    }

    async fn delete_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        version_id: i64,
        now_ms: i64,
    ) -> StoreResult<PolicyOutcome<()>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write_tx(move |tx| {
            let Some(current) = locked_policy(tx, &scope, &name)? else {
                return Ok(Err(PolicyRefusal::NoSuchPolicy));
            };
            if current.record.default_version_id == version_id {
                return Ok(Err(PolicyRefusal::DefaultVersion));
            }
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM policy_versions
                     WHERE account_id = ?1 AND region = ?2 AND policy_name = ?3
                       AND version_id = ?4",
                )
                .and_then(|mut stmt| {
                    stmt.execute((&scope.account_id, &scope.region, &name, version_id))
                })
                .map_err(sql_err)?;
            if deleted == 0 {
                return Ok(Err(PolicyRefusal::NoSuchVersion));
            }
            tx.prepare_cached(
                "UPDATE policies SET updated_at_ms = ?4
                 WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, &name, now_ms)))
            .map_err(sql_err)?;
            Ok(Ok(()))
        })
        .await
    }
}

/// Adds a policy version inside the caller's transaction (see
/// `PolicyStore::create_policy_version`); the REPLACE_DEFAULT_POLICY_VERSION mitigation
/// uses it too.
pub(super) fn create_policy_version_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version: &NewPolicyVersion,
    max_versions: usize,
) -> StoreResult<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>> {
    let Some(current) = locked_policy(tx, scope, name)? else {
        return Ok(Err(PolicyRefusal::NoSuchPolicy));
    };
    if count_versions(tx, scope, name)? >= max_versions {
        return Ok(Err(PolicyRefusal::TooManyVersions {
            limit: max_versions,
        }));
    }
    let created = PolicyVersionRecord {
        version_id: current.last_version_id + 1,
        document: version.document.clone(),
        created_at_ms: version.created_at_ms,
    };
    insert_version(tx, scope, name, &created)?;
    let updated = tx
        .prepare_cached(concat!(
            "UPDATE policies SET last_version_id = ?4,",
            " default_version_id = CASE WHEN ?5 THEN ?4 ELSE default_version_id END,",
            " generation_id = CASE WHEN ?5 THEN ?6 ELSE generation_id END,",
            " updated_at_ms = ?7",
            " WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            " RETURNING ",
            policy_columns!()
        ))
        .and_then(|mut stmt| {
            stmt.query_row(
                (
                    &scope.account_id,
                    &scope.region,
                    name,
                    created.version_id,
                    version.set_as_default,
                    &version.generation_id,
                    created.created_at_ms,
                ),
                policy,
            )
        })
        .map_err(sql_err)?;
    Ok(Ok((updated, created)))
}

/// Replaces the scope's v2 logging options inside the caller's transaction (see
/// `LoggingStore::put_v2_logging_options`); the ENABLE_IOT_LOGGING mitigation uses it too.
pub(super) fn put_v2_logging_options_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    options: &V2LoggingOptionsRecord,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO v2_logging_options (account_id, region, role_arn,
             default_log_level, disable_all_logs, event_configurations, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (account_id, region) DO UPDATE SET
             role_arn = excluded.role_arn,
             default_log_level = excluded.default_log_level,
             disable_all_logs = excluded.disable_all_logs,
             event_configurations = excluded.event_configurations,
             updated_at_ms = excluded.updated_at_ms",
    )
    .and_then(|mut stmt| {
        stmt.execute((
            &scope.account_id,
            &scope.region,
            &options.role_arn,
            &options.default_log_level,
            options.disable_all_logs,
            &options.event_configurations_json,
            options.updated_at_ms,
        ))
    })
    .map_err(sql_err)?;
    Ok(())
}

/// A policy as read inside a write, with the bookkeeping the record does not show.
struct Current {
    record: PolicyRecord,
    last_version_id: i64,
}

/// Reads the policy inside the write transaction. The IMMEDIATE transaction already
/// holds the database's write lock, so nothing changes it until the transaction ends.
fn locked_policy(tx: &Transaction<'_>, scope: &Scope, name: &str) -> StoreResult<Option<Current>> {
    tx.prepare_cached(concat!(
        "SELECT ",
        policy_columns!(),
        ", last_version_id FROM policies WHERE account_id = ?1 AND region = ?2 AND name = ?3"
    ))
    .and_then(|mut stmt| {
        stmt.query_row((&scope.account_id, &scope.region, name), |row| {
            Ok(Current {
                record: policy(row)?,
                last_version_id: row.get(POLICY_COLUMNS)?,
            })
        })
        .optional()
    })
    .map_err(sql_err)
}

fn count_versions(tx: &Transaction<'_>, scope: &Scope, name: &str) -> StoreResult<usize> {
    let count: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM policy_versions
             WHERE account_id = ?1 AND region = ?2 AND policy_name = ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_row((&scope.account_id, &scope.region, name), |row| row.get(0))
        })
        .map_err(sql_err)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

fn version_exists(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version_id: i64,
) -> StoreResult<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM policy_versions
         WHERE account_id = ?1 AND region = ?2 AND policy_name = ?3 AND version_id = ?4)",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            (&scope.account_id, &scope.region, name, version_id),
            |row| row.get(0),
        )
    })
    .map_err(sql_err)
}

/// Whether anything is attached to the policy. Nothing writes attachments yet
/// (AttachPolicy comes with certificates), so today this always finds none.
fn is_attached(tx: &Transaction<'_>, scope: &Scope, name: &str) -> StoreResult<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM policy_attachments
         WHERE account_id = ?1 AND region = ?2 AND policy_name = ?3)",
    )
    .and_then(|mut stmt| stmt.query_row((&scope.account_id, &scope.region, name), |row| row.get(0)))
    .map_err(sql_err)
}

fn insert_version(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version: &PolicyVersionRecord,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO policy_versions
             (account_id, region, policy_name, version_id, document, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute((
            &scope.account_id,
            &scope.region,
            name,
            version.version_id,
            &version.document,
            version.created_at_ms,
        ))
    })
    .map_err(sql_err)?;
    Ok(())
}

/// One statement per (paged, direction) so each is a plain range scan on the primary
/// key. `?3` is bound but unused on first pages; SQLite allows that.
fn list_policies_sql(paged: bool, descending: bool) -> &'static str {
    macro_rules! list {
        ($cond:literal, $order:literal) => {
            concat!(
                "SELECT ",
                policy_columns!(),
                " FROM policies WHERE account_id = ?1 AND region = ?2",
                $cond,
                " ORDER BY name ",
                $order,
                " LIMIT ?4"
            )
        };
    }
    match (paged, descending) {
        (false, false) => list!("", "ASC"),
        (true, false) => list!(" AND name > ?3", "ASC"),
        (false, true) => list!("", "DESC"),
        (true, true) => list!(" AND name < ?3", "DESC"),
    }
}

#[async_trait]
impl RoleAliasStore for SqliteStore {
    async fn create_role_alias(
        &self,
        scope: &Scope,
        record: &RoleAliasRecord,
        tags: &[Tag],
    ) -> StoreResult<()> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write_tx(move |tx| {
            tx.prepare_cached(concat!(
                "INSERT INTO role_aliases (account_id, region, ",
                role_alias_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &record.alias,
                    &record.arn,
                    &record.role_arn,
                    record.credential_duration_seconds,
                    record.created_at_ms,
                    record.updated_at_ms,
                ))
            })
            .map_err(insert_err)?;
            tags::upsert(tx, &scope, &record.arn, &tags)
        })
        .await
    }

    async fn get_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
    ) -> StoreResult<Option<RoleAliasRecord>> {
        let (scope, alias) = (scope.clone(), alias.to_owned());
        self.read_conn(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                role_alias_columns!(),
                " FROM role_aliases WHERE account_id = ?1 AND region = ?2 AND alias = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region, &alias), role_alias)
                    .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn update_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
        update: &RoleAliasUpdate,
    ) -> StoreResult<RoleAliasRecord> {
        let (scope, alias, update) = (scope.clone(), alias.to_owned(), update.clone());
        self.write_tx(move |tx| {
            tx.prepare_cached(concat!(
                "UPDATE role_aliases SET",
                " role_arn = COALESCE(?4, role_arn),",
                " credential_duration_seconds = COALESCE(?5, credential_duration_seconds),",
                " updated_at_ms = ?6",
                " WHERE account_id = ?1 AND region = ?2 AND alias = ?3",
                " RETURNING ",
                role_alias_columns!()
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (
                        &scope.account_id,
                        &scope.region,
                        &alias,
                        &update.role_arn,
                        update.credential_duration_seconds,
                        update.updated_at_ms,
                    ),
                    role_alias,
                )
                .optional()
            })
            .map_err(sql_err)?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn delete_role_alias(&self, scope: &Scope, alias: &str) -> StoreResult<bool> {
        let (scope, alias) = (scope.clone(), alias.to_owned());
        self.write_tx(move |tx| {
            let arn: Option<String> = tx
                .prepare_cached(
                    "DELETE FROM role_aliases
                     WHERE account_id = ?1 AND region = ?2 AND alias = ?3
                     RETURNING arn",
                )
                .and_then(|mut stmt| {
                    stmt.query_row((&scope.account_id, &scope.region, &alias), |row| row.get(0))
                        .optional()
                })
                .map_err(sql_err)?;
            match arn {
                Some(arn) => tags::delete_all(tx, &scope, &arn).map(|()| true),
                None => Ok(false),
            }
        })
        .await
    }

    async fn list_role_aliases(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<RoleAliasRecord>> {
        let (scope, after) = (scope.clone(), after.map(str::to_owned));
        self.read_conn(move |conn| {
            let sql = list_role_aliases_sql(after.is_some(), descending);
            let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (&scope.account_id, &scope.region, &after, sql_limit(limit)),
                    role_alias,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }
}

/// As [`list_policies_sql`], for role aliases.
fn list_role_aliases_sql(paged: bool, descending: bool) -> &'static str {
    macro_rules! list {
        ($cond:literal, $order:literal) => {
            concat!(
                "SELECT ",
                role_alias_columns!(),
                " FROM role_aliases WHERE account_id = ?1 AND region = ?2",
                $cond,
                " ORDER BY alias ",
                $order,
                " LIMIT ?4"
            )
        };
    }
    match (paged, descending) {
        (false, false) => list!("", "ASC"),
        (true, false) => list!(" AND alias > ?3", "ASC"),
        (false, true) => list!("", "DESC"),
        (true, true) => list!(" AND alias < ?3", "DESC"),
    }
}

#[async_trait]
impl LoggingStore for SqliteStore {
    async fn put_logging_options(
        &self,
        scope: &Scope,
        options: &LoggingOptionsRecord,
    ) -> StoreResult<()> {
        let (scope, options) = (scope.clone(), options.clone());
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "INSERT INTO logging_options (account_id, region, role_arn, log_level, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id, region) DO UPDATE SET
                     role_arn = excluded.role_arn,
                     log_level = excluded.log_level,
                     updated_at_ms = excluded.updated_at_ms",
            )
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &options.role_arn,
                    &options.log_level,
                    options.updated_at_ms,
                ))
            })
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn get_logging_options(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<LoggingOptionsRecord>> {
        let scope = scope.clone();
        self.read_conn(move |conn| {
            conn.prepare_cached(
                "SELECT role_arn, log_level, updated_at_ms FROM logging_options
                 WHERE account_id = ?1 AND region = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region), |row| {
                    Ok(LoggingOptionsRecord {
                        role_arn: row.get(0)?,
                        log_level: row.get(1)?,
                        updated_at_ms: row.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn put_v2_logging_options(
        &self,
        scope: &Scope,
        options: &V2LoggingOptionsRecord,
    ) -> StoreResult<()> {
        let (scope, options) = (scope.clone(), options.clone());
        self.write_tx(move |tx| put_v2_logging_options_in(tx, &scope, &options))
            .await
    }

    async fn get_v2_logging_options(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<V2LoggingOptionsRecord>> {
        let scope = scope.clone();
        self.read_conn(move |conn| {
            conn.prepare_cached(
                "SELECT role_arn, default_log_level, disable_all_logs, event_configurations,
                     updated_at_ms
                 FROM v2_logging_options WHERE account_id = ?1 AND region = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region), |row| {
                    Ok(V2LoggingOptionsRecord {
                        role_arn: row.get(0)?,
                        default_log_level: row.get(1)?,
                        disable_all_logs: row.get(2)?,
                        event_configurations_json: row.get(3)?,
                        updated_at_ms: row.get(4)?,
                    })
                })
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }
}
