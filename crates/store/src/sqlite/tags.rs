use rusqlite::Transaction;

use super::error::sql_err;
use crate::{Scope, StoreResult, Tag};

/// Inserts or overwrites tags by key; shared with action creation so an action's
/// initial tags are written in the same transaction as the action.
pub(super) fn upsert(
    tx: &Transaction<'_>,
    scope: &Scope,
    arn: &str,
    tags: &[Tag],
) -> StoreResult<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO resource_tags (account_id, region, resource_arn, tag_key, tag_value)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id, region, resource_arn, tag_key)
             DO UPDATE SET tag_value = excluded.tag_value",
        )
        .map_err(sql_err)?;
    for tag in tags {
        stmt.execute((&scope.account_id, &scope.region, arn, &tag.key, &tag.value))
            .map_err(sql_err)?;
    }
    Ok(())
}

pub(super) fn delete_all(tx: &Transaction<'_>, scope: &Scope, arn: &str) -> StoreResult<()> {
    tx.prepare_cached(
        "DELETE FROM resource_tags WHERE account_id = ?1 AND region = ?2 AND resource_arn = ?3",
    )
    .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, arn)))
    .map_err(sql_err)?;
    Ok(())
}
