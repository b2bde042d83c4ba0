use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::error::Fail;
use super::{count_to_usize, rows, sql_limit, PostgresStore};
use crate::{Scope, StoreError, StoreResult, Tag, TagStore};

/// First key of the advisory locks that serialise tag writes per resource.
const RESOURCE_LOCK_SPACE: i32 = 2;

#[async_trait]
impl TagStore for PostgresStore {
    async fn tag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        tags: &[Tag],
        max_tags: usize,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                lock_resource(&tx, scope, resource_arn).await?;
                upsert(&tx, scope, resource_arn, tags).await?;
                // Counting after the upsert gets overwritten keys right for free; returning
                // the error drops the transaction, which rolls the upsert back.
                if count(&tx, scope, resource_arn).await? > max_tags {
                    return Err(StoreError::LimitExceeded { limit: max_tags }.into());
                }
                tx.commit().await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn untag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        keys: &[String],
    ) -> StoreResult<()> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // Removing tags can only lower the count, so no lock is needed.
                let stmt = conn
                    .prepare_cached(
                        "DELETE FROM resource_tags
                         WHERE account_id = $1 AND region = $2 AND resource_arn = $3
                           AND tag_key = ANY($4::text[])",
                    )
                    .await?;
                conn.execute(
                    &stmt,
                    &[&scope.account_id, &scope.region, &resource_arn, &keys],
                )
                .await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_tags(
        &self,
        scope: &Scope,
        resource_arn: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Tag>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                let rows = match after {
                    None => {
                        let stmt = conn.prepare_cached(LIST_FIRST).await?;
                        conn.query(
                            &stmt,
                            &[&scope.account_id, &scope.region, &resource_arn, &limit],
                        )
                        .await?
                    }
                    Some(after) => {
                        let stmt = conn.prepare_cached(LIST_AFTER).await?;
                        conn.query(
                            &stmt,
                            &[
                                &scope.account_id,
                                &scope.region,
                                &resource_arn,
                                &after,
                                &limit,
                            ],
                        )
                        .await?
                    }
                };
                rows::all(&rows, rows::tag)
            })
            .await;
        conn.finish(outcome)
    }
}

// Two statements rather than `$4 IS NULL OR ...` so both are plain primary-key range
// scans.
const LIST_FIRST: &str = concat!(
    "SELECT ",
    tag_columns!(),
    " FROM resource_tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3",
    " ORDER BY tag_key LIMIT $4"
);
const LIST_AFTER: &str = concat!(
    "SELECT ",
    tag_columns!(),
    " FROM resource_tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3",
    " AND tag_key > $4 ORDER BY tag_key LIMIT $5"
);

/// Serialises tag writes on one resource across nodes, so the count check in
/// [`TagStore::tag_resource`] sees every other writer's committed tags. Shared with
/// action creation and deletion, which write the tags of the action's ARN.
pub(super) async fn lock_resource(
    tx: &Transaction<'_>,
    scope: &Scope,
    arn: &str,
) -> Result<(), Fail> {
    let key = format!("{}/{}/{arn}", scope.account_id, scope.region);
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&stmt, &[&RESOURCE_LOCK_SPACE, &key]).await?;
    Ok(())
}

/// Inserts or overwrites tags by key in one statement; shared with action creation so
/// an action's initial tags are written in the same transaction as the action.
pub(super) async fn upsert(
    tx: &Transaction<'_>,
    scope: &Scope,
    arn: &str,
    tags: &[Tag],
) -> Result<(), Fail> {
    if tags.is_empty() {
        return Ok(());
    }
    // One statement cannot upsert the same key twice, so a key given more than once
    // keeps its last value, as applying the tags one by one would.
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(tags.len());
    let (mut keys, mut values): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for tag in tags {
        match position.get(tag.key.as_str()) {
            Some(&i) => values[i] = &tag.value,
            None => {
                position.insert(&tag.key, keys.len());
                keys.push(&tag.key);
                values.push(&tag.value);
            }
        }
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO resource_tags (account_id, region, resource_arn, tag_key, tag_value)
             SELECT $1::text, $2::text, $3::text, k, v
             FROM UNNEST($4::text[], $5::text[]) AS t (k, v)
             ON CONFLICT (account_id, region, resource_arn, tag_key)
             DO UPDATE SET tag_value = excluded.tag_value",
        )
        .await?;
    tx.execute(
        &stmt,
        &[&scope.account_id, &scope.region, &arn, &keys, &values],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_all(tx: &Transaction<'_>, scope: &Scope, arn: &str) -> Result<(), Fail> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM resource_tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3",
        )
        .await?;
    tx.execute(&stmt, &[&scope.account_id, &scope.region, &arn])
        .await?;
    Ok(())
}

async fn count(tx: &Transaction<'_>, scope: &Scope, arn: &str) -> Result<usize, Fail> {
    let stmt = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM resource_tags
             WHERE account_id = $1 AND region = $2 AND resource_arn = $3",
        )
        .await?;
    let count: i64 = tx
        .query_one(&stmt, &[&scope.account_id, &scope.region, &arn])
        .await?
        .try_get(0)?;
    Ok(count_to_usize(count))
}
