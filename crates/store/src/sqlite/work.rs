//! The work queue and once-only markers. SQLite has one writer at a time (per file,
//! across processes), so a claim inside a `BEGIN IMMEDIATE` transaction is already
//! exclusive: the single-writer equivalent of PostgreSQL's `FOR UPDATE SKIP LOCKED`.

use rusqlite::Transaction;

use super::error::insert_err;
use crate::{NewWorkItem, StoreResult};

/// Adds a work item inside the caller's transaction (enqueue_work, and writes that
/// enqueue the work they create in the same transaction).
pub(super) fn insert_work_item(tx: &Transaction<'_>, item: &NewWorkItem) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO work_items (id, queue, payload, attempts, run_after_ms) VALUES (?1, ?2, ?3, 0, ?4)",
    )
    .and_then(|mut stmt| stmt.execute((&item.id, &item.queue, &item.payload, item.run_after_ms)))
    .map_err(insert_err)?;
    Ok(())
}
