use async_trait::async_trait;

use deadpool_postgres::Transaction;

use super::error::{insert_err, Fail};
use super::{rows, sql_limit, PostgresStore};
use crate::{NewWorkItem, OnceMarkers, StoreResult, WorkItem, WorkQueue};

/// Adds a work item inside the caller's transaction (enqueue_work, and writes that
/// enqueue the work they create in the same transaction).
pub(super) async fn insert_work_item(tx: &Transaction<'_>, item: &NewWorkItem) -> Result<(), Fail> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO work_items (id, queue, payload, attempts, run_after_ms)
             VALUES ($1, $2, $3, 0, $4)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[&item.id, &item.queue, &item.payload, &item.run_after_ms],
    )
    .await
    .map_err(insert_err)?;
    Ok(())
}

#[async_trait]
impl WorkQueue for PostgresStore {
    async fn enqueue_work(&self, item: &NewWorkItem) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                insert_work_item(&tx, item).await?;
                tx.commit().await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn claim_work(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<WorkItem>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let expires = now_ms.saturating_add(lease_ms);
                // SKIP LOCKED: concurrent claimers each take different due items instead of
                // queueing on the same rows; an item a claimer sees change under it is
                // rechecked against the condition before it is locked.
                let stmt = conn
                    .prepare_cached(concat!(
                        "UPDATE work_items AS w",
                        " SET lease_owner = $2, lease_expires_at_ms = $4,",
                        " attempts = w.attempts + 1",
                        " FROM (SELECT id FROM work_items",
                        " WHERE queue = $1 AND run_after_ms <= $3",
                        " AND (lease_expires_at_ms IS NULL OR lease_expires_at_ms <= $3)",
                        " ORDER BY run_after_ms, id LIMIT $5",
                        " FOR UPDATE SKIP LOCKED) AS due",
                        " WHERE w.id = due.id",
                        " RETURNING w.id, w.queue, w.payload, w.attempts, w.run_after_ms,",
                        " w.lease_owner, w.lease_expires_at_ms"
                    ))
                    .await?;
                let rows = conn
                    .query(
                        &stmt,
                        &[&queue, &worker, &now_ms, &expires, &sql_limit(max)],
                    )
                    .await?;
                let mut items = rows::all(&rows, rows::work_item)?;
                // RETURNING has no order; hand items out oldest due first, as promised.
                items.sort_by(|a, b| (a.run_after_ms, &a.id).cmp(&(b.run_after_ms, &b.id)));
                Ok(items)
            })
            .await;
        conn.finish(outcome)
    }

    async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "UPDATE work_items SET lease_expires_at_ms = $4
                         WHERE id = $1 AND lease_owner = $2 AND lease_expires_at_ms > $3",
                    )
                    .await?;
                let expires = now_ms.saturating_add(lease_ms);
                Ok(conn
                    .execute(&stmt, &[&id, &worker, &now_ms, &expires])
                    .await?
                    > 0)
            })
            .await;
        conn.finish(outcome)
    }

    async fn complete_work(&self, id: &str, worker: &str) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached("DELETE FROM work_items WHERE id = $1 AND lease_owner = $2")
                    .await?;
                Ok(conn.execute(&stmt, &[&id, &worker]).await? > 0)
            })
            .await;
        conn.finish(outcome)
    }

    async fn release_work(&self, id: &str, worker: &str, run_after_ms: i64) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "UPDATE work_items
                         SET lease_owner = NULL, lease_expires_at_ms = NULL, run_after_ms = $3
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .await?;
                Ok(conn.execute(&stmt, &[&id, &worker, &run_after_ms]).await? > 0)
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_work(&self, id: &str) -> StoreResult<Option<WorkItem>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        work_columns!(),
                        " FROM work_items WHERE id = $1"
                    ))
                    .await?;
                let row = conn.query_opt(&stmt, &[&id]).await?;
                row.as_ref().map(rows::work_item).transpose()
            })
            .await;
        conn.finish(outcome)
    }
}

#[async_trait]
impl OnceMarkers for PostgresStore {
    async fn mark_once(&self, key: &str, now_ms: i64) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "INSERT INTO once_markers (key, marked_at_ms) VALUES ($1, $2)
                         ON CONFLICT (key) DO NOTHING",
                    )
                    .await?;
                Ok(conn.execute(&stmt, &[&key, &now_ms]).await? == 1)
            })
            .await;
        conn.finish(outcome)
    }
}
