//! Audit suppressions on PostgreSQL.
//!
//! A create takes an advisory lock on its scope first, so creators on every node queue
//! on it: the token lookup, key check and count each see every create committed
//! before, and the unique indexes are only a backstop.

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::error::{insert_err, Fail};
use super::{count_to_usize, rows, sql_limit, PostgresStore};
use crate::{
    AuditSuppressionFilter, AuditSuppressionKey, AuditSuppressionRecord, AuditSuppressionStore,
    AuditSuppressionUpdate, Scope, StoreResult, SuppressionCreated, SuppressionRefusal,
};

/// First key of the advisory locks that serialise suppression creation per scope;
/// 1 to 7 are taken (actions, tags, things, CA subjects, policy targets, audit tasks,
/// the audit purge).
const SUPPRESSION_LOCK_SPACE: i32 = 8;

const GET_SQL: &str = concat!(
    "SELECT ",
    audit_suppression_columns!(),
    " FROM audit_suppressions WHERE account_id = $1 AND region = $2 AND check_name = $3",
    " AND resource_key = $4"
);

#[async_trait]
impl AuditSuppressionStore for PostgresStore {
    async fn create_audit_suppression(
        &self,
        scope: &Scope,
        record: &AuditSuppressionRecord,
        limit: usize,
    ) -> StoreResult<Result<SuppressionCreated, SuppressionRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                lock_scope(&tx, scope).await?;
                // Read committed: each statement below sees what committed before the
                // lock was granted.
                let stmt = tx
                    .prepare_cached(concat!(
                        "SELECT ",
                        audit_suppression_columns!(),
                        " FROM audit_suppressions WHERE account_id = $1 AND region = $2",
                        " AND client_request_token = $3"
                    ))
                    .await?;
                let by_token = tx
                    .query_opt(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &record.client_request_token,
                        ],
                    )
                    .await?;
                if let Some(row) = by_token {
                    let existing = rows::audit_suppression(&row)?;
                    return Ok(
                        if existing.check_name == record.check_name
                            && existing.resource_key == record.resource_key
                        {
                            Ok(SuppressionCreated::Replayed(existing))
                        } else {
                            Err(SuppressionRefusal::TokenInUse)
                        },
                    );
                }
                let stmt = tx.prepare_cached(GET_SQL).await?;
                if tx
                    .query_opt(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &record.check_name,
                            &record.resource_key,
                        ],
                    )
                    .await?
                    .is_some()
                {
                    return Ok(Err(SuppressionRefusal::KeyExists));
                }
                let stmt = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM audit_suppressions
                         WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                let count: i64 = tx
                    .query_one(&stmt, &[&scope.account_id, &scope.region])
                    .await?
                    .try_get(0)?;
                if count_to_usize(count) >= limit {
                    return Ok(Err(SuppressionRefusal::LimitReached));
                }
                let stmt = tx
                    .prepare_cached(concat!(
                        "INSERT INTO audit_suppressions (account_id, region, ",
                        audit_suppression_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    ))
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &record.check_name,
                        &record.resource_key,
                        &record.resource_json,
                        &record.expiration_ms,
                        &record.suppress_indefinitely,
                        &record.description,
                        &record.client_request_token,
                        &record.created_at_ms,
                        &record.updated_at_ms,
                    ],
                )
                .await
                .map_err(insert_err)?;
                tx.commit().await?;
                Ok(Ok(SuppressionCreated::Created))
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<Option<AuditSuppressionRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn.prepare_cached(GET_SQL).await?;
                let row = conn
                    .query_opt(
                        &stmt,
                        &[&scope.account_id, &scope.region, &check_name, &resource_key],
                    )
                    .await?;
                row.as_ref().map(rows::audit_suppression).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn update_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
        update: &AuditSuppressionUpdate,
    ) -> StoreResult<Option<AuditSuppressionRecord>> {
        let set_lifetime = update.lifetime.is_some();
        let (expiration, indefinitely) = update.lifetime.unzip();
        let (expiration, indefinitely) = (expiration.flatten(), indefinitely.unwrap_or(false));
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "UPDATE audit_suppressions SET",
                        " expiration_ms = CASE WHEN $5::BOOLEAN THEN $6::BIGINT",
                        " ELSE expiration_ms END,",
                        " suppress_indefinitely = CASE WHEN $5::BOOLEAN THEN $7::BOOLEAN",
                        " ELSE suppress_indefinitely END,",
                        " description = COALESCE($8::TEXT, description), updated_at_ms = $9",
                        " WHERE account_id = $1 AND region = $2 AND check_name = $3",
                        " AND resource_key = $4 RETURNING ",
                        audit_suppression_columns!()
                    ))
                    .await?;
                let row = conn
                    .query_opt(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &check_name,
                            &resource_key,
                            &set_lifetime,
                            &expiration,
                            &indefinitely,
                            &update.description,
                            &update.updated_at_ms,
                        ],
                    )
                    .await?;
                row.as_ref().map(rows::audit_suppression).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "DELETE FROM audit_suppressions
                         WHERE account_id = $1 AND region = $2 AND check_name = $3
                           AND resource_key = $4",
                    )
                    .await?;
                Ok(conn
                    .execute(
                        &stmt,
                        &[&scope.account_id, &scope.region, &check_name, &resource_key],
                    )
                    .await?
                    > 0)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_audit_suppressions(
        &self,
        scope: &Scope,
        filter: &AuditSuppressionFilter,
        ascending: bool,
        after: Option<&AuditSuppressionKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditSuppressionRecord>> {
        let limit = sql_limit(limit);
        let exp = after.map(|k| k.expires_ms);
        let check = after.map(|k| k.check_name.as_str());
        let key = after.map(|k| k.resource_key.as_str());
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn.prepare_cached(list_sql(ascending)).await?;
                let found = conn
                    .query(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &filter.check_name,
                            &filter.resource_key,
                            &exp,
                            &check,
                            &key,
                            &limit,
                        ],
                    )
                    .await?;
                rows::all(&found, rows::audit_suppression)
            })
            .await;
        conn.finish(outcome)
    }

    async fn active_audit_suppression_keys(
        &self,
        scope: &Scope,
        check_name: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT resource_key FROM audit_suppressions
                         WHERE account_id = $1 AND region = $2 AND check_name = $3
                           AND (suppress_indefinitely OR expiration_ms > $4)",
                    )
                    .await?;
                let found = conn
                    .query(
                        &stmt,
                        &[&scope.account_id, &scope.region, &check_name, &now_ms],
                    )
                    .await?;
                found
                    .iter()
                    .map(|row| row.try_get(0).map_err(Fail::from))
                    .collect()
            })
            .await;
        conn.finish(outcome)
    }
}

/// One statement per direction, as on SQLite (see there for why the filters and the
/// page key are residual conditions).
fn list_sql(ascending: bool) -> &'static str {
    macro_rules! list {
        ($cmp:literal, $dir:literal) => {
            concat!(
                "SELECT ",
                audit_suppression_columns!(),
                " FROM audit_suppressions WHERE account_id = $1 AND region = $2",
                " AND ($3::TEXT IS NULL OR check_name = $3)",
                " AND ($4::TEXT IS NULL OR resource_key = $4)",
                " AND ($5::BIGINT IS NULL OR (COALESCE(expiration_ms, 9223372036854775807),",
                " check_name, resource_key) ",
                $cmp,
                " ($5::BIGINT, $6::TEXT, $7::TEXT))",
                " ORDER BY COALESCE(expiration_ms, 9223372036854775807) ",
                $dir,
                ", check_name ",
                $dir,
                ", resource_key ",
                $dir,
                " LIMIT $8"
            )
        };
    }
    if ascending {
        list!(">", "ASC")
    } else {
        list!("<", "DESC")
    }
}

async fn lock_scope(tx: &Transaction<'_>, scope: &Scope) -> Result<(), Fail> {
    let key = format!("{}/{}", scope.account_id, scope.region);
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&stmt, &[&SUPPRESSION_LOCK_SPACE, &key]).await?;
    Ok(())
}
