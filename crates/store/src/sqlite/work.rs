//! The work queue and once-only markers. SQLite has one writer at a time (per file,
//! across processes), so a claim inside a `BEGIN IMMEDIATE` transaction is already
//! exclusive: the single-writer equivalent of PostgreSQL's `FOR UPDATE SKIP LOCKED`.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction};

use super::error::{insert_err, sql_err};
use super::{rows, sql_limit, SqliteStore};
use crate::{NewWorkItem, OnceMarkers, StoreResult, WorkItem, WorkQueue};

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

#[async_trait]
impl WorkQueue for SqliteStore {
    async fn enqueue_work(&self, item: &NewWorkItem) -> StoreResult<()> {
        let item = item.clone();
        self.write(move |tx| insert_work_item(tx, &item)).await
    }

    async fn claim_work(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<WorkItem>> {
        let (queue, worker) = (queue.to_owned(), worker.to_owned());
        let expires = now_ms.saturating_add(lease_ms);
        self.write(move |tx| {
            let mut items = tx
                .prepare_cached(concat!(
                    "UPDATE work_items SET lease_owner = ?1, lease_expires_at_ms = ?2, attempts = attempts + 1",
                    " WHERE id IN (SELECT id FROM work_items",
                    "   WHERE queue = ?3 AND run_after_ms <= ?4",
                    "     AND (lease_expires_at_ms IS NULL OR lease_expires_at_ms <= ?4)",
                    "   ORDER BY run_after_ms, id LIMIT ?5)",
                    " RETURNING ",
                    work_columns!()
                ))
                .and_then(|mut stmt| {
                    stmt.query_map((&worker, expires, &queue, now_ms, sql_limit(max)), rows::work_item)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(sql_err)?;
            // RETURNING does not promise an order; callers get oldest due first.
            items.sort_by(|a, b| (a.run_after_ms, &a.id).cmp(&(b.run_after_ms, &b.id)));
            Ok(items)
        })
        .await
    }

    async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        let expires = now_ms.saturating_add(lease_ms);
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE work_items SET lease_expires_at_ms = ?1 WHERE id = ?2 AND lease_owner = ?3 AND lease_expires_at_ms > ?4",
            )
            .and_then(|mut stmt| stmt.execute((expires, &id, &worker, now_ms)))
            .map(|n| n == 1)
            .map_err(sql_err)
        })
        .await
    }

    async fn complete_work(&self, id: &str, worker: &str) -> StoreResult<bool> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM work_items WHERE id = ?1 AND lease_owner = ?2")
                .and_then(|mut stmt| stmt.execute((&id, &worker)))
                .map(|n| n == 1)
                .map_err(sql_err)
        })
        .await
    }

    async fn release_work(&self, id: &str, worker: &str, run_after_ms: i64) -> StoreResult<bool> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        self.write(move |tx| {
            tx.prepare_cached(concat!(
                "UPDATE work_items SET lease_owner = NULL, lease_expires_at_ms = NULL, run_after_ms = ?1",
                " WHERE id = ?2 AND lease_owner = ?3"
            ))
            .and_then(|mut stmt| stmt.execute((run_after_ms, &id, &worker)))
            .map(|n| n == 1)
            .map_err(sql_err)
        })
        .await
    }

    async fn get_work(&self, id: &str) -> StoreResult<Option<WorkItem>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                work_columns!(),
                " FROM work_items WHERE id = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([&id], rows::work_item).optional())
            .map_err(sql_err)
        })
        .await
    }
}

#[async_trait]
impl OnceMarkers for SqliteStore {
    async fn mark_once(&self, key: &str, now_ms: i64) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO once_markers (key, marked_at_ms) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute((&key, now_ms)))
            .map(|n| n == 1)
            .map_err(sql_err)
        })
        .await
    }
}
