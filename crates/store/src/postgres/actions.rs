use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::error::{insert_err, Fail};
use super::{count_to_usize, rows, sql_limit, tags, PostgresStore};
use crate::{
    MitigationActionRecord, MitigationActionStore, MitigationActionUpdate, Scope, StoreError,
    StoreResult, Tag,
};

/// First key of the advisory locks that serialise action creation per scope; tags use
/// their own (see `tags::lock_resource`), so the two never contend by accident.
const SCOPE_LOCK_SPACE: i32 = 1;

#[async_trait]
impl MitigationActionStore for PostgresStore {
    async fn create_mitigation_action(
        &self,
        scope: &Scope,
        record: &MitigationActionRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                // Creators in one scope queue on this lock, on every node, so the count
                // below cannot miss an insert that is in flight elsewhere. Read committed
                // gives each statement a fresh snapshot, taken after the lock is held.
                lock_scope(&tx, scope).await?;
                if count_actions(&tx, scope).await? >= limit {
                    return Err(StoreError::LimitExceeded { limit }.into());
                }
                insert_action(&tx, scope, record).await?;
                if !tags.is_empty() {
                    tags::lock_resource(&tx, scope, &record.arn).await?;
                    tags::upsert(&tx, scope, &record.arn, tags).await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<MitigationActionRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        action_columns!(),
                        " FROM mitigation_actions",
                        " WHERE account_id = $1 AND region = $2 AND name = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
                    .await?;
                row.as_ref().map(rows::mitigation_action).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn update_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
        update: &MitigationActionUpdate,
    ) -> StoreResult<MitigationActionRecord> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let (action_type, params_json) = match &update.params {
                    Some((action_type, params_json)) => {
                        (Some(action_type.as_str()), Some(params_json.as_str()))
                    }
                    None => (None, None),
                };
                let stmt = conn
                    .prepare_cached(concat!(
                        "UPDATE mitigation_actions SET",
                        " role_arn = COALESCE($4, role_arn),",
                        " action_type = COALESCE($5, action_type),",
                        " params_json = COALESCE($6, params_json),",
                        " updated_at_ms = $7",
                        " WHERE account_id = $1 AND region = $2 AND name = $3",
                        " RETURNING ",
                        action_columns!()
                    ))
                    .await?;
                let row = conn
                    .query_opt(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &name,
                            &update.role_arn,
                            &action_type,
                            &params_json,
                            &update.updated_at_ms,
                        ],
                    )
                    .await?;
                match row {
                    Some(row) => rows::mitigation_action(&row),
                    None => Err(StoreError::NotFound.into()),
                }
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_mitigation_action(&self, scope: &Scope, name: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM mitigation_actions
                         WHERE account_id = $1 AND region = $2 AND name = $3
                         RETURNING arn",
                    )
                    .await?;
                let Some(row) = tx
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
                    .await?
                else {
                    return Ok(false);
                };
                let arn: String = row.try_get(0)?;
                // Under the resource's lock, so tags a concurrent tag_resource is about to
                // commit on this ARN are seen and removed too.
                tags::lock_resource(&tx, scope, &arn).await?;
                tags::delete_all(&tx, scope, &arn).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_mitigation_actions(
        &self,
        scope: &Scope,
        action_type: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<MitigationActionRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&scope.account_id, &scope.region];
                params.extend(action_type.as_ref().map(|t| t as &(dyn ToSql + Sync)));
                params.extend(after.as_ref().map(|a| a as &(dyn ToSql + Sync)));
                params.push(&limit);
                let stmt = conn
                    .prepare_cached(list_sql(action_type.is_some(), after.is_some()))
                    .await?;
                rows::all(&conn.query(&stmt, &params).await?, rows::mitigation_action)
            })
            .await;
        conn.finish(outcome)
    }
}

/// A separate statement per filter combination (rather than `$3 IS NULL OR ...`) so
/// each is planned as a plain range scan on the primary key or the by-type index.
/// Parameters are numbered in the order [`list_mitigation_actions`] binds them: scope,
/// then the type filter and the `after` bound when present, then the limit.
fn list_sql(by_type: bool, paged: bool) -> &'static str {
    macro_rules! list {
        ($($cond:literal),*; $limit:literal) => {
            concat!(
                "SELECT ",
                action_columns!(),
                " FROM mitigation_actions WHERE account_id = $1 AND region = $2",
                $($cond,)*
                " ORDER BY name LIMIT ",
                $limit
            )
        };
    }
    match (by_type, paged) {
        (false, false) => list!(; "$3"),
        (true, false) => list!(" AND action_type = $3"; "$4"),
        (false, true) => list!(" AND name > $3"; "$4"),
        (true, true) => list!(" AND action_type = $3", " AND name > $4"; "$5"),
    }
}

async fn lock_scope(tx: &Transaction<'_>, scope: &Scope) -> Result<(), Fail> {
    let key = format!("{}/{}", scope.account_id, scope.region);
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&stmt, &[&SCOPE_LOCK_SPACE, &key]).await?;
    Ok(())
}

async fn count_actions(tx: &Transaction<'_>, scope: &Scope) -> Result<usize, Fail> {
    let stmt = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM mitigation_actions WHERE account_id = $1 AND region = $2",
        )
        .await?;
    let count: i64 = tx
        .query_one(&stmt, &[&scope.account_id, &scope.region])
        .await?
        .try_get(0)?;
    Ok(count_to_usize(count))
}

/// The name is taken if and only if the primary key rejects the row, which also holds
/// against a concurrent writer on another node.
async fn insert_action(
    tx: &Transaction<'_>,
    scope: &Scope,
    record: &MitigationActionRecord,
) -> Result<(), Fail> {
    let stmt = tx
        .prepare_cached(concat!(
            "INSERT INTO mitigation_actions (account_id, region, ",
            action_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .await?;
    tx.execute(
        &stmt,
        &[
            &scope.account_id,
            &scope.region,
            &record.name,
            &record.id,
            &record.arn,
            &record.action_type,
            &record.role_arn,
            &record.params_json,
            &record.created_at_ms,
            &record.updated_at_ms,
        ],
    )
    .await
    .map_err(insert_err)?;
    Ok(())
}
