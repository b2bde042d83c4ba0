//! Audit suppressions on SQLite.
//!
//! A create runs in the single writer's IMMEDIATE transaction, so its token lookup, key
//! check, count and insert see no other writer in between.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction};

use super::error::{insert_err, sql_err};
use super::{rows, sql_limit, SqliteStore};
use crate::{
    AuditSuppressionFilter, AuditSuppressionKey, AuditSuppressionRecord, AuditSuppressionStore,
    AuditSuppressionUpdate, Scope, StoreResult, SuppressionCreated, SuppressionRefusal,
};

#[async_trait]
impl AuditSuppressionStore for SqliteStore {
    async fn create_audit_suppression(
        &self,
        scope: &Scope,
        record: &AuditSuppressionRecord,
        limit: usize,
    ) -> StoreResult<Result<SuppressionCreated, SuppressionRefusal>> {
        let (scope, record) = (scope.clone(), record.clone());
        self.write_tx(move |tx| {
            if let Some(existing) = by_token(tx, &scope, &record.client_request_token)? {
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
            if get(tx, &scope, &record.check_name, &record.resource_key)?.is_some() {
                return Ok(Err(SuppressionRefusal::KeyExists));
            }
            if count(tx, &scope)? >= limit {
                return Ok(Err(SuppressionRefusal::LimitReached));
            }
            tx.prepare_cached(concat!(
                "INSERT INTO audit_suppressions (account_id, region, ",
                audit_suppression_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &record.check_name,
                    &record.resource_key,
                    &record.resource_json,
                    record.expiration_ms,
                    record.suppress_indefinitely,
                    &record.description,
                    &record.client_request_token,
                    record.created_at_ms,
                    record.updated_at_ms,
                ))
            })
            .map_err(insert_err)?;
            Ok(Ok(SuppressionCreated::Created))
        })
        .await
    }

    async fn get_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<Option<AuditSuppressionRecord>> {
        let (scope, check, key) = (
            scope.clone(),
            check_name.to_owned(),
            resource_key.to_owned(),
        );
        self.read_conn(move |conn| {
            conn.prepare_cached(GET_SQL)
                .and_then(|mut stmt| {
                    stmt.query_row(
                        (&scope.account_id, &scope.region, &check, &key),
                        rows::audit_suppression,
                    )
                    .optional()
                })
                .map_err(sql_err)
        })
        .await
    }

    async fn update_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
        update: &AuditSuppressionUpdate,
    ) -> StoreResult<Option<AuditSuppressionRecord>> {
        let (scope, check, key, update) = (
            scope.clone(),
            check_name.to_owned(),
            resource_key.to_owned(),
            update.clone(),
        );
        self.write_tx(move |tx| {
            let (expiration, indefinitely) = update.lifetime.unzip();
            tx.prepare_cached(concat!(
                "UPDATE audit_suppressions SET",
                " expiration_ms = CASE WHEN ?5 THEN ?6 ELSE expiration_ms END,",
                " suppress_indefinitely = CASE WHEN ?5 THEN ?7 ELSE suppress_indefinitely END,",
                " description = COALESCE(?8, description), updated_at_ms = ?9",
                " WHERE account_id = ?1 AND region = ?2 AND check_name = ?3",
                " AND resource_key = ?4 RETURNING ",
                audit_suppression_columns!()
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (
                        &scope.account_id,
                        &scope.region,
                        &check,
                        &key,
                        update.lifetime.is_some(),
                        expiration.flatten(),
                        indefinitely.unwrap_or(false),
                        &update.description,
                        update.updated_at_ms,
                    ),
                    rows::audit_suppression,
                )
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn delete_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<bool> {
        let (scope, check, key) = (
            scope.clone(),
            check_name.to_owned(),
            resource_key.to_owned(),
        );
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "DELETE FROM audit_suppressions
                 WHERE account_id = ?1 AND region = ?2 AND check_name = ?3 AND resource_key = ?4",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, &check, &key)))
            .map(|n| n > 0)
            .map_err(sql_err)
        })
        .await
    }

    async fn list_audit_suppressions(
        &self,
        scope: &Scope,
        filter: &AuditSuppressionFilter,
        ascending: bool,
        after: Option<&AuditSuppressionKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditSuppressionRecord>> {
        let (scope, filter, after) = (scope.clone(), filter.clone(), after.cloned());
        self.read_conn(move |conn| {
            let (exp, check, key) = match after {
                Some(k) => (Some(k.expires_ms), Some(k.check_name), Some(k.resource_key)),
                None => (None, None, None),
            };
            let mut stmt = conn.prepare_cached(list_sql(ascending)).map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &filter.check_name,
                        &filter.resource_key,
                        exp,
                        &check,
                        &key,
                        sql_limit(limit),
                    ),
                    rows::audit_suppression,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn active_audit_suppression_keys(
        &self,
        scope: &Scope,
        check_name: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let (scope, check) = (scope.clone(), check_name.to_owned());
        self.read_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT resource_key FROM audit_suppressions
                     WHERE account_id = ?1 AND region = ?2 AND check_name = ?3
                       AND (suppress_indefinitely OR expiration_ms > ?4)",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map((&scope.account_id, &scope.region, &check, now_ms), |row| {
                    row.get(0)
                })
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }
}

const GET_SQL: &str = concat!(
    "SELECT ",
    audit_suppression_columns!(),
    " FROM audit_suppressions WHERE account_id = ?1 AND region = ?2 AND check_name = ?3",
    " AND resource_key = ?4"
);

/// One statement per direction; the filters and the page key are residual conditions
/// (`?n IS NULL OR ...`): a scope holds few enough suppressions that no index range is
/// worth more statement shapes. Indefinite suppressions sort last ascending (as if
/// they expired at the end of time).
fn list_sql(ascending: bool) -> &'static str {
    macro_rules! list {
        ($cmp:literal, $dir:literal) => {
            concat!(
                "SELECT ",
                audit_suppression_columns!(),
                " FROM audit_suppressions WHERE account_id = ?1 AND region = ?2",
                " AND (?3 IS NULL OR check_name = ?3)",
                " AND (?4 IS NULL OR resource_key = ?4)",
                " AND (?5 IS NULL OR (COALESCE(expiration_ms, 9223372036854775807),",
                " check_name, resource_key) ",
                $cmp,
                " (?5, ?6, ?7))",
                " ORDER BY COALESCE(expiration_ms, 9223372036854775807) ",
                $dir,
                ", check_name ",
                $dir,
                ", resource_key ",
                $dir,
                " LIMIT ?8"
            )
        };
    }
    if ascending {
        list!(">", "ASC")
    } else {
        list!("<", "DESC")
    }
}

fn by_token(
    tx: &Transaction<'_>,
    scope: &Scope,
    token: &str,
) -> StoreResult<Option<AuditSuppressionRecord>> {
    tx.prepare_cached(concat!(
        "SELECT ",
        audit_suppression_columns!(),
        " FROM audit_suppressions WHERE account_id = ?1 AND region = ?2",
        " AND client_request_token = ?3"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(
            (&scope.account_id, &scope.region, token),
            rows::audit_suppression,
        )
        .optional()
    })
    .map_err(sql_err)
}

fn get(
    tx: &Transaction<'_>,
    scope: &Scope,
    check: &str,
    key: &str,
) -> StoreResult<Option<AuditSuppressionRecord>> {
    tx.prepare_cached(GET_SQL)
        .and_then(|mut stmt| {
            stmt.query_row(
                (&scope.account_id, &scope.region, check, key),
                rows::audit_suppression,
            )
            .optional()
        })
        .map_err(sql_err)
}

fn count(tx: &Transaction<'_>, scope: &Scope) -> StoreResult<usize> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM audit_suppressions WHERE account_id = ?1 AND region = ?2",
        )
        .and_then(|mut stmt| stmt.query_row((&scope.account_id, &scope.region), |row| row.get(0)))
        .map_err(sql_err)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
