//! Resource tags, keyed by the resource's ARN.

use palisade_store_macros::engines;
use std::collections::HashMap;

use crate::db::{sql_limit, Db, DbResult, Dialect, Param, Row, Sql};
use crate::{Scope, StoreError, StoreResult};

/// One resource tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// First key of the advisory locks that serialise tag writes per resource.
const RESOURCE_LOCK_SPACE: i32 = 2;

pub(crate) fn tag(row: &Row<'_>) -> DbResult<Tag> {
    Ok(from_row!(row => Tag { key, value }))
}

#[engines]
pub trait TagStore: Send + Sync {
    /// Upserts tags by key on the resource. `LimitExceeded { limit }` (and nothing
    /// written) if the resource would end up with more than `max_tags` tags.
    async fn tag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        tags: &[Tag],
        max_tags: usize,
    ) -> StoreResult<()> {
        let (scope, arn, tags) = (scope.clone(), resource_arn.to_owned(), tags.to_vec());
        self.write(async move |db| {
            upsert(db, &scope, &arn, &tags).await?;
            // Counting after the upsert gets overwritten keys right for free; the
            // error rolls the upsert back, so nothing is written when over the limit.
            if count(db, &scope, &arn).await? > max_tags {
                return Err(StoreError::LimitExceeded { limit: max_tags }.into());
            }
            Ok(())
        })
        .await
    }

    /// Removes the given keys; unknown keys are ignored.
    async fn untag_resource(
        &self,
        scope: &Scope,
        resource_arn: &str,
        keys: &[String],
    ) -> StoreResult<()> {
        let (scope, arn, keys) = (scope.clone(), resource_arn.to_owned(), keys.to_vec());
        // Removing tags can only lower the count, so no lock is needed.
        self.write(async move |db| {
            for key in &keys {
                db.execute(
                    sql!(
                        "DELETE FROM resource_tags WHERE account_id = $1 AND region = $2",
                        " AND resource_arn = $3 AND tag_key = $4"
                    ),
                    &[&scope.account_id, &scope.region, &arn, key],
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    /// Up to `limit` tags ordered by key, with keys strictly greater than `after`.
    async fn list_tags(
        &self,
        scope: &Scope,
        resource_arn: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Tag>> {
        self.read(async |db| {
            let limit = sql_limit(limit);
            // Two statements rather than `$4 IS NULL OR ...` so both are plain
            // primary-key range scans.
            match after {
                None => {
                    db.query(
                        sql!(
                            "SELECT tag_key, tag_value FROM resource_tags",
                            " WHERE account_id = $1 AND region = $2 AND resource_arn = $3",
                            " ORDER BY tag_key LIMIT $4"
                        ),
                        &[&scope.account_id, &scope.region, &resource_arn, &limit],
                        tag,
                    )
                    .await
                }
                Some(after) => {
                    db.query(
                        sql!(
                            "SELECT tag_key, tag_value FROM resource_tags",
                            " WHERE account_id = $1 AND region = $2 AND resource_arn = $3",
                            " AND tag_key > $4 ORDER BY tag_key LIMIT $5"
                        ),
                        &[
                            &scope.account_id,
                            &scope.region,
                            &resource_arn,
                            &after,
                            &limit,
                        ],
                        tag,
                    )
                    .await
                }
            }
        })
        .await
    }
}

/// Serialises tag writes on one resource across nodes, so the count check in
/// [`TagStore::tag_resource`] sees every other writer's committed tags. Taken by the
/// creation and deletion of tagged resources too.
async fn lock_resource(db: &Db<'_>, scope: &Scope, arn: &str) -> DbResult<()> {
    db.lock(RESOURCE_LOCK_SPACE, &format!("{}/{arn}", scope.key()))
        .await
}

/// Inserts or overwrites tags by key, inside the caller's transaction (the creation of
/// a tagged resource writes its tags with it), under the resource's lock. A key given
/// twice keeps its last value.
pub(crate) async fn upsert(db: &Db<'_>, scope: &Scope, arn: &str, tags: &[Tag]) -> DbResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    lock_resource(db, scope, arn).await?;
    if db.dialect() == Dialect::Sqlite {
        for tag in tags {
            db.execute(
                sql!(
                    "INSERT INTO resource_tags (account_id, region, resource_arn, tag_key, tag_value)",
                    " VALUES ($1, $2, $3, $4, $5)",
                    " ON CONFLICT (account_id, region, resource_arn, tag_key)",
                    " DO UPDATE SET tag_value = excluded.tag_value"
                ),
                &[&scope.account_id, &scope.region, &arn, &tag.key, &tag.value],
            )
            .await?;
        }
        return Ok(());
    }
    // One statement cannot upsert the same key twice: keep each key's last value.
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
    db.execute_pg(
        "INSERT INTO resource_tags (account_id, region, resource_arn, tag_key, tag_value)
         SELECT $1::text, $2::text, $3::text, k, v
         FROM UNNEST($4::text[], $5::text[]) AS t (k, v)
         ON CONFLICT (account_id, region, resource_arn, tag_key)
         DO UPDATE SET tag_value = excluded.tag_value",
        &[&scope.account_id, &scope.region, &arn, &keys, &values],
    )
    .await
    .map(drop)
}

/// Deletes a tagged resource with `delete`, a statement that returns its ARN, and then
/// its tags; whether it existed.
pub(crate) async fn delete_tagged(
    db: &Db<'_>,
    scope: &Scope,
    delete: &Sql<'_>,
    key: &[&dyn Param],
) -> DbResult<bool> {
    let Some(arn) = db.value::<String>(delete, key).await? else {
        return Ok(false);
    };
    delete_all(db, scope, &arn).await?;
    Ok(true)
}

/// Deletes every tag of a resource being deleted, under the resource's lock, so tags a
/// concurrent TagResource is about to commit on its ARN are seen and removed too.
pub(crate) async fn delete_all(db: &Db<'_>, scope: &Scope, arn: &str) -> DbResult<()> {
    lock_resource(db, scope, arn).await?;
    db.execute(
        sql!(
            "DELETE FROM resource_tags WHERE account_id = $1 AND region = $2 AND resource_arn = $3"
        ),
        &[&scope.account_id, &scope.region, &arn],
    )
    .await
    .map(drop)
}

async fn count(db: &Db<'_>, scope: &Scope, arn: &str) -> DbResult<usize> {
    db.count(
        sql!(
            "SELECT COUNT(*) FROM resource_tags",
            " WHERE account_id = $1 AND region = $2 AND resource_arn = $3"
        ),
        &[&scope.account_id, &scope.region, &arn],
    )
    .await
}
