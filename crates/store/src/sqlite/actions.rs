use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction};

use super::error::{insert_err, sql_err};
use super::{rows, sql_limit, tags, SqliteStore};
use crate::{
    MitigationActionRecord, MitigationActionStore, MitigationActionUpdate, Scope, StoreError,
    StoreResult, Tag,
};

#[async_trait]
impl MitigationActionStore for SqliteStore {
    async fn create_mitigation_action(
        &self,
        scope: &Scope,
        record: &MitigationActionRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write(move |tx| {
            // Counting inside the IMMEDIATE transaction holds the write lock, so no other
            // connection or process can slip an insert in between count and insert.
            if count_actions(tx, &scope)? >= limit {
                return Err(StoreError::LimitExceeded { limit });
            }
            insert_action(tx, &scope, &record)?;
            tags::upsert(tx, &scope, &record.arn, &tags)
        })
        .await
    }

    async fn get_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<MitigationActionRecord>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                action_columns!(),
                " FROM mitigation_actions",
                " WHERE account_id = ?1 AND region = ?2 AND name = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (&scope.account_id, &scope.region, &name),
                    rows::mitigation_action,
                )
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn update_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
        update: &MitigationActionUpdate,
    ) -> StoreResult<MitigationActionRecord> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write(move |tx| {
            let (action_type, params_json) = update.params.unzip();
            tx.prepare_cached(concat!(
                "UPDATE mitigation_actions SET",
                " role_arn = COALESCE(?4, role_arn),",
                " action_type = COALESCE(?5, action_type),",
                " params_json = COALESCE(?6, params_json),",
                " updated_at_ms = ?7",
                " WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                " RETURNING ",
                action_columns!()
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (
                        &scope.account_id,
                        &scope.region,
                        &name,
                        &update.role_arn,
                        &action_type,
                        &params_json,
                        update.updated_at_ms,
                    ),
                    rows::mitigation_action,
                )
                .optional()
            })
            .map_err(sql_err)?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn delete_mitigation_action(&self, scope: &Scope, name: &str) -> StoreResult<bool> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write(move |tx| {
            let arn: Option<String> = tx
                .prepare_cached(
                    "DELETE FROM mitigation_actions
                     WHERE account_id = ?1 AND region = ?2 AND name = ?3
                     RETURNING arn",
                )
                .and_then(|mut stmt| {
                    stmt.query_row((&scope.account_id, &scope.region, &name), |row| row.get(0))
                        .optional()
                })
                .map_err(sql_err)?;
            match arn {
                Some(arn) => tags::delete_all(tx, &scope, &arn).map(|()| true),
                None => Ok(false),
            }
        })
        .await
    }

    async fn list_mitigation_actions(
        &self,
        scope: &Scope,
        action_type: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<MitigationActionRecord>> {
        let scope = scope.clone();
        let (action_type, after) = (action_type.map(str::to_owned), after.map(str::to_owned));
        self.read(move |conn| {
            let sql = list_sql(action_type.is_some(), after.is_some());
            let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &action_type,
                        &after,
                        sql_limit(limit),
                    ),
                    rows::mitigation_action,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }
}

/// A separate statement per filter combination (rather than `?3 IS NULL OR ...`) so
/// each is planned as a plain range scan on the primary key or the by-type index.
/// Unused parameters are still bound; SQLite ignores numbered parameters a statement
/// does not mention.
fn list_sql(by_type: bool, paged: bool) -> &'static str {
    macro_rules! list {
        ($($cond:literal),*) => {
            concat!(
                "SELECT ",
                action_columns!(),
                " FROM mitigation_actions WHERE account_id = ?1 AND region = ?2",
                $($cond,)*
                " ORDER BY name LIMIT ?5"
            )
        };
    }
    match (by_type, paged) {
        (false, false) => list!(),
        (true, false) => list!(" AND action_type = ?3"),
        (false, true) => list!(" AND name > ?4"),
        (true, true) => list!(" AND action_type = ?3", " AND name > ?4"),
    }
}

fn count_actions(tx: &Transaction<'_>, scope: &Scope) -> StoreResult<usize> {
    let count: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM mitigation_actions WHERE account_id = ?1 AND region = ?2",
        )
        .and_then(|mut stmt| stmt.query_row((&scope.account_id, &scope.region), |row| row.get(0)))
        .map_err(sql_err)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// The name is taken if and only if the primary key rejects the row, which also holds
/// against a concurrent writer in another process.
fn insert_action(
    tx: &Transaction<'_>,
    scope: &Scope,
    record: &MitigationActionRecord,
) -> StoreResult<()> {
    tx.prepare_cached(concat!(
        "INSERT INTO mitigation_actions (account_id, region, ",
        action_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))
    .and_then(|mut stmt| {
        stmt.execute((
            &scope.account_id,
            &scope.region,
            &record.name,
            &record.id,
            &record.arn,
            &record.action_type,
            &record.role_arn,
            &record.params_json,
            record.created_at_ms,
            record.updated_at_ms,
        ))
    })
    .map_err(insert_err)?;
    Ok(())
}
