use async_trait::async_trait;
use rusqlite::Transaction;

use super::error::sql_err;
use super::{rows, sql_limit, SqliteStore};
use crate::{Scope, StoreError, StoreResult, Tag, TagStore};

#[async_trait]
impl TagStore for SqliteStore {
    async fn tag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        tags: &[Tag],
        max_tags: usize,
    ) -> StoreResult<()> {
        let (scope, arn, tags) = (scope.clone(), resource_arn.to_owned(), tags.to_vec());
        self.write(move |tx| {
            upsert(tx, &scope, &arn, &tags)?;
            // Counting after the upsert gets overwritten keys right for free; returning
            // the error rolls the upsert back, so nothing is written when over the limit.
            if count(tx, &scope, &arn)? > max_tags {
                return Err(StoreError::LimitExceeded { limit: max_tags });
            }
            Ok(())
        })
        .await
    }

    async fn untag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        keys: &[String],
    ) -> StoreResult<()> {
        let (scope, arn, keys) = (scope.clone(), resource_arn.to_owned(), keys.to_vec());
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "DELETE FROM resource_tags
                     WHERE account_id = ?1 AND region = ?2 AND resource_arn = ?3 AND tag_key = ?4",
                )
                .map_err(sql_err)?;
            for key in &keys {
                stmt.execute((&scope.account_id, &scope.region, &arn, key))
                    .map_err(sql_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_tags(
        &self,
        scope: &Scope,
        resource_arn: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Tag>> {
        let (scope, arn, after) = (
            scope.clone(),
            resource_arn.to_owned(),
            after.map(str::to_owned),
        );
        self.read(move |conn| {
            let sql = if after.is_some() {
                LIST_AFTER
            } else {
                LIST_FIRST
            };
            let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &arn,
                        &after,
                        sql_limit(limit),
                    ),
                    rows::tag,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }
}

// Two statements rather than `?4 IS NULL OR ...` so both are plain primary-key range
// scans. `?4` is bound but unused in the first; SQLite allows that.
const LIST_FIRST: &str = concat!(
    "SELECT ",
    tag_columns!(),
    " FROM resource_tags WHERE account_id = ?1 AND region = ?2 AND resource_arn = ?3",
    " ORDER BY tag_key LIMIT ?5"
);
const LIST_AFTER: &str = concat!(
    "SELECT ",
    tag_columns!(),
    " FROM resource_tags WHERE account_id = ?1 AND region = ?2 AND resource_arn = ?3",
    " AND tag_key > ?4 ORDER BY tag_key LIMIT ?5"
);

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

fn count(tx: &Transaction<'_>, scope: &Scope, arn: &str) -> StoreResult<usize> {
    let count: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM resource_tags
             WHERE account_id = ?1 AND region = ?2 AND resource_arn = ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_row((&scope.account_id, &scope.region, arn), |row| row.get(0))
        })
        .map_err(sql_err)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}
