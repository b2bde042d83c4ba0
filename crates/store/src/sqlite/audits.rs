//! What stays of audits on SQLite once they are written over the seam (`crate::audits`):
//! the task insert for scheduled audits, which are not on the seam yet, and the hook
//! that PostgreSQL uses to refresh statistics.

use rusqlite::Transaction;

use super::error::insert_err;
use super::SqliteStore;
use crate::audits::insert_task_sql;
pub(super) use crate::audits::IfTaken;
use crate::{AuditTaskRecord, Scope, StoreResult};

impl SqliteStore {
    /// Called with the count of every batch of findings inserted. Nothing to do here:
    /// only PostgreSQL's planner needs audit_findings' statistics refreshed as audits
    /// write them (see `postgres/audits.rs`).
    pub(crate) fn findings_inserted(&self, _n: u64) {}
}

/// [`crate::audits::insert_task`] inside a rusqlite transaction; returns whether it
/// inserted (false only with `IfTaken::Skip`).
pub(super) fn insert_task(
    tx: &Transaction<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    if_taken: IfTaken,
) -> StoreResult<bool> {
    tx.prepare_cached(insert_task_sql(if_taken).lite)
        .and_then(|mut stmt| {
            stmt.execute((
                &scope.account_id,
                &scope.region,
                &task.task_id,
                &task.task_type,
                &task.status,
                &task.scheduled_audit_name,
                task.started_at_ms,
                task.finished_at_ms,
                &task.checks_json,
                task.version,
            ))
        })
        .map(|n| n == 1)
        .map_err(insert_err)
}
