use std::collections::HashMap;

use deadpool_postgres::Transaction;

use super::error::Fail;
use crate::{Scope, Tag};

/// First key of the advisory locks that serialise tag writes per resource.
const RESOURCE_LOCK_SPACE: i32 = 2;

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
