use deadpool_postgres::Transaction;

use super::error::{insert_err, Fail};
use crate::NewWorkItem;

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
