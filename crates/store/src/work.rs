//! The durable work queue with leases, and once-only markers.

use crate::db::{corrupt, sql_limit, Db, DbResult, Row};
use crate::StoreResult;
use palisade_store_macros::engines;

/// A durable unit of background work, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub id: String,
    pub queue: String,
    /// Opaque to the store (JSON written by the engine).
    pub payload: String,
    /// How many times the item has been claimed, this claim included.
    pub attempts: u32,
    /// Not claimable before this time (milliseconds since the epoch).
    pub run_after_ms: i64,
    /// The worker holding the lease, while one does.
    pub lease_owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
}

/// A work item to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorkItem {
    pub id: String,
    pub queue: String,
    pub payload: String,
    pub run_after_ms: i64,
}

macro_rules! work_columns {
    () => {
        "id, queue, payload, attempts, run_after_ms, lease_owner, lease_expires_at_ms"
    };
}

fn work_item(row: &Row<'_>) -> DbResult<WorkItem> {
    let attempts: i32 = row.get(3)?;
    Ok(WorkItem {
        id: row.get(0)?,
        queue: row.get(1)?,
        payload: row.get(2)?,
        attempts: u32::try_from(attempts).map_err(|_| {
            corrupt(format!(
                "work item has a negative attempt count ({attempts})"
            ))
        })?,
        run_after_ms: row.get(4)?,
        lease_owner: row.get(5)?,
        lease_expires_at_ms: row.get(6)?,
    })
}

/// Adds a work item inside the caller's transaction (enqueue_work, and writes that
/// enqueue the work they create in the same transaction).
pub(crate) async fn insert_work_item(db: &Db<'_>, item: &NewWorkItem) -> DbResult<()> {
    db.insert(
        sql!(
            "INSERT INTO work_items (id, queue, payload, attempts, run_after_ms)",
            " VALUES ($1, $2, $3, 0, $4)"
        ),
        &[&item.id, &item.queue, &item.payload, &item.run_after_ms],
    )
    .await
    .map(drop)
}

/// A durable work queue with leases, shared by every node on one database.
///
/// A worker claims items with a lease; while it renews the lease before it runs out, no
/// other worker gets the item. A worker that dies stops renewing, the lease expires and
/// the item is claimed again by someone else, so work survives crashes and restarts.
/// Completing or releasing requires still holding the lease, so a worker that lost its
/// lease (it stalled past expiry and another took over) learns it and stops.
#[engines]
pub trait WorkQueue: Send + Sync {
    /// Adds an item. `AlreadyExists` if an item with this id exists (so enqueueing is
    /// idempotent under retries).
    async fn enqueue_work(&self, item: &NewWorkItem) -> StoreResult<()> {
        let item = item.clone();
        self.write_one(async move |db| insert_work_item(db, &item).await)
            .await
    }

    /// Claims up to `max` items of `queue` that are due (`run_after_ms <= now_ms`) and not
    /// leased, or whose lease expired (`lease_expires_at_ms <= now_ms`), oldest due
    /// first (then by id). Each gets a lease for `worker` until `now_ms + lease_ms` and
    /// its attempt count goes up by one. Concurrent claimers never get the same item.
    async fn claim_work(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<WorkItem>> {
        let (queue, worker) = (queue.to_owned(), worker.to_owned());
        self.write_one(async move |db| claim(db, &queue, &worker, max, now_ms, lease_ms).await)
            .await
    }

    /// Extends the lease to `now_ms + lease_ms` if `worker` still holds an unexpired lease
    /// on the item; returns whether it did.
    async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        let expires = now_ms.saturating_add(lease_ms);
        self.write_one(async move |db| {
            let n = db
                .execute(
                    sql!(
                        "UPDATE work_items SET lease_expires_at_ms = $4",
                        " WHERE id = $1 AND lease_owner = $2 AND lease_expires_at_ms > $3"
                    ),
                    &[&id, &worker, &now_ms, &expires],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Deletes the item if `worker` holds its lease (expired or not, as long as nobody
    /// else claimed it since); returns whether it did.
    async fn complete_work(&self, id: &str, worker: &str) -> StoreResult<bool> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        self.write_one(async move |db| {
            let n = db
                .execute(
                    sql!("DELETE FROM work_items WHERE id = $1 AND lease_owner = $2"),
                    &[&id, &worker],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Gives the item back, claimable again from `run_after_ms` (a retry with backoff),
    /// if `worker` holds its lease; returns whether it did.
    async fn release_work(&self, id: &str, worker: &str, run_after_ms: i64) -> StoreResult<bool> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        self.write_one(async move |db| {
            let n = db
                .execute(
                    sql!(
                        "UPDATE work_items",
                        " SET lease_owner = NULL, lease_expires_at_ms = NULL, run_after_ms = $3",
                        " WHERE id = $1 AND lease_owner = $2"
                    ),
                    &[&id, &worker, &run_after_ms],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// The item, if it exists (for inspection and tests).
    async fn get_work(&self, id: &str) -> StoreResult<Option<WorkItem>> {
        self.read(async |db| {
            db.query_opt(
                sql!("SELECT ", work_columns!(), " FROM work_items WHERE id = $1"),
                &[&id],
                work_item,
            )
            .await
        })
        .await
    }
}

/// Once-only markers: "this schedule fired for this period" is recorded exactly once,
/// however many nodes race to record it.
#[engines]
pub trait OnceMarkers: Send + Sync {
    /// Records `key`; returns true for the one caller that recorded it first and false
    /// for everyone after.
    async fn mark_once(&self, key: &str, now_ms: i64) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write_one(async move |db| {
            let n = db
                .execute(
                    sql!(
                        "INSERT INTO once_markers (key, marked_at_ms) VALUES ($1, $2)",
                        " ON CONFLICT (key) DO NOTHING"
                    ),
                    &[&key, &now_ms],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }
}

/// The claim, one statement on both engines. On PostgreSQL, `SKIP LOCKED` lets
/// concurrent claimers each take different due items instead of queueing on the same
/// rows; on SQLite the single writer makes the claim exclusive by itself.
async fn claim(
    db: &Db<'_>,
    queue: &str,
    worker: &str,
    max: usize,
    now_ms: i64,
    lease_ms: i64,
) -> DbResult<Vec<WorkItem>> {
    let expires = now_ms.saturating_add(lease_ms);
    let mut items = db
        .query(
            sql!(
                "UPDATE work_items",
                " SET lease_owner = $2, lease_expires_at_ms = $4, attempts = attempts + 1",
                " FROM (SELECT id AS due_id FROM work_items",
                " WHERE queue = $1 AND run_after_ms <= $3",
                " AND (lease_expires_at_ms IS NULL OR lease_expires_at_ms <= $3)",
                " ORDER BY run_after_ms, id LIMIT $5",
                " FOR UPDATE SKIP LOCKED) AS due",
                " WHERE id = due_id",
                " RETURNING ",
                work_columns!()
            ),
            &[&queue, &worker, &now_ms, &expires, &sql_limit(max)],
            work_item,
        )
        .await?;
    // RETURNING has no order; hand items out oldest due first, as promised.
    items.sort_by(|a, b| (a.run_after_ms, &a.id).cmp(&(b.run_after_ms, &b.id)));
    Ok(items)
}
