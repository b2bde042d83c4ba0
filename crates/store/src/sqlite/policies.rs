//! What the mitigation stages, not on the seam yet, still run on their own rusqlite
//! transaction: the shared statements and row mapping of `crate::policies`, bound here.
//! Inside the writer's IMMEDIATE transaction nothing else changes the policy between
//! the checks and the writes.

use rusqlite::Transaction;

use super::error::{fail_err, sql_err};
use crate::db::{DbResult, Param, Row, Sql};
use crate::policies::{
    locked_policy, policy, COUNT_VERSIONS, INSERT_VERSION, LOCK_POLICY, PUT_V2_LOGGING_OPTIONS,
    VERSION_ADDED,
};
use crate::{
    NewPolicyVersion, PolicyOutcome, PolicyRecord, PolicyRefusal, PolicyVersionRecord, Scope,
    StoreError, StoreResult, V2LoggingOptionsRecord,
};

/// `crate::policies::create_policy_version_in` on the caller's transaction.
pub(super) fn create_policy_version_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version: &NewPolicyVersion,
    max_versions: usize,
) -> StoreResult<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &name];
    let Some((_, last_version_id)) = run(tx, LOCK_POLICY, &key, locked_policy)? else {
        return Ok(Err(PolicyRefusal::NoSuchPolicy));
    };
    let count: i64 = run(tx, COUNT_VERSIONS, &key, |row| row.get(0))?.unwrap_or(0);
    if usize::try_from(count).unwrap_or(usize::MAX) >= max_versions {
        return Ok(Err(PolicyRefusal::TooManyVersions {
            limit: max_versions,
        }));
    }
    let created = PolicyVersionRecord {
        version_id: last_version_id + 1,
        document: version.document.clone(),
        created_at_ms: version.created_at_ms,
    };
    let params: [&dyn Param; 6] = [
        &scope.account_id,
        &scope.region,
        &name,
        &created.version_id,
        &created.document,
        &created.created_at_ms,
    ];
    run(tx, INSERT_VERSION, &params, |_| Ok(()))?;
    let params: [&dyn Param; 7] = [
        &scope.account_id,
        &scope.region,
        &name,
        &created.version_id,
        &version.set_as_default,
        &version.generation_id,
        &created.created_at_ms,
    ];
    let updated = run(tx, VERSION_ADDED, &params, policy)?
        .ok_or_else(|| StoreError::Internal("a locked policy vanished".into()))?;
    Ok(Ok((updated, created)))
}

/// `crate::policies::put_v2_logging_options_in` on the caller's transaction.
pub(super) fn put_v2_logging_options_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    options: &V2LoggingOptionsRecord,
) -> StoreResult<()> {
    let params: [&dyn Param; 7] = [
        &scope.account_id,
        &scope.region,
        &options.role_arn,
        &options.default_log_level,
        &options.disable_all_logs,
        &options.event_configurations_json,
        &options.updated_at_ms,
    ];
    run(tx, PUT_V2_LOGGING_OPTIONS, &params, |_| Ok(())).map(drop)
}

/// Runs a shared statement on the transaction; its first row, mapped, if it returns one.
fn run<T>(
    tx: &Transaction<'_>,
    sql: &Sql<'_>,
    params: &[&dyn Param],
    map: impl FnOnce(&Row<'_>) -> DbResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = tx.prepare_cached(sql.lite).map_err(sql_err)?;
    let params = rusqlite::params_from_iter(params.iter().map(|p| p.lite()));
    let mut rows = stmt.query(params).map_err(sql_err)?;
    match rows.next().map_err(sql_err)? {
        Some(found) => map(&Row::Lite(found)).map(Some).map_err(fail_err),
        None => Ok(None),
    }
}
