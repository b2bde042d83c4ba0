//! Scheduled audits on SQLite.
//!
//! Every write runs in the single writer's IMMEDIATE transaction: the name check, count
//! and insert of a create see no other writer in between, and the compare-and-set that
//! starts a run reads and moves `next_run_ms` with no other node able to do the same.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, Transaction};

use super::audits::{insert_task, IfTaken};
use super::error::{insert_err, sql_err};
use super::work::insert_work_item;
use super::{sql_limit, tags, SqliteStore};
use crate::{
    AuditTaskRecord, DueScheduledAudit, NewWorkItem, ScheduledAuditRecord, ScheduledAuditRefusal,
    ScheduledAuditStore, ScheduledAuditUpdate, ScheduledRunOutcome, Scope, StoreResult, Tag,
};

/// The columns [`record`] reads, in its order.
macro_rules! scheduled_columns {
    () => {
        "name, arn, frequency, day_of_week, day_of_month, checks_json, anchor_ms, \
         next_run_ms, created_at_ms, updated_at_ms"
    };
}

/// Maps a row of [`scheduled_columns`] starting at column `at`.
fn record_at(row: &Row<'_>, at: usize) -> rusqlite::Result<ScheduledAuditRecord> {
    Ok(ScheduledAuditRecord {
        name: row.get(at)?,
        arn: row.get(at + 1)?,
        frequency: row.get(at + 2)?,
        day_of_week: row.get(at + 3)?,
        day_of_month: row.get(at + 4)?,
        checks_json: row.get(at + 5)?,
        anchor_ms: row.get(at + 6)?,
        next_run_ms: row.get(at + 7)?,
        created_at_ms: row.get(at + 8)?,
        updated_at_ms: row.get(at + 9)?,
    })
}

fn record(row: &Row<'_>) -> rusqlite::Result<ScheduledAuditRecord> {
    record_at(row, 0)
}

const GET_SQL: &str = concat!(
    "SELECT ",
    scheduled_columns!(),
    " FROM scheduled_audits WHERE account_id = ?1 AND region = ?2 AND name = ?3"
);

#[async_trait]
impl ScheduledAuditStore for SqliteStore {
    async fn create_scheduled_audit(
        &self,
        scope: &Scope,
        record: &ScheduledAuditRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<Result<(), ScheduledAuditRefusal>> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write_tx(move |tx| {
            if get(tx, &scope, &record.name)?.is_some() {
                return Ok(Err(ScheduledAuditRefusal::NameExists));
            }
            if count(tx, &scope)? >= limit {
                return Ok(Err(ScheduledAuditRefusal::LimitReached));
            }
            tx.prepare_cached(concat!(
                "INSERT INTO scheduled_audits (account_id, region, ",
                scheduled_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &record.name,
                    &record.arn,
                    &record.frequency,
                    &record.day_of_week,
                    &record.day_of_month,
                    &record.checks_json,
                    record.anchor_ms,
                    record.next_run_ms,
                    record.created_at_ms,
                    record.updated_at_ms,
                ))
            })
            .map_err(insert_err)?;
            tags::upsert(tx, &scope, &record.arn, &tags)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn get_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<ScheduledAuditRecord>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.read_conn(move |conn| {
            conn.prepare_cached(GET_SQL)
                .and_then(|mut stmt| {
                    stmt.query_row((&scope.account_id, &scope.region, &name), record)
                        .optional()
                })
                .map_err(sql_err)
        })
        .await
    }

    async fn update_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
        update: &ScheduledAuditUpdate,
    ) -> StoreResult<Option<ScheduledAuditRecord>> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write_tx(move |tx| {
            let (anchor, next) = update.timing.unzip();
            tx.prepare_cached(concat!(
                "UPDATE scheduled_audits SET frequency = ?4, day_of_week = ?5,",
                " day_of_month = ?6, checks_json = ?7,",
                " anchor_ms = COALESCE(?8, anchor_ms), next_run_ms = COALESCE(?9, next_run_ms),",
                " updated_at_ms = ?10",
                " WHERE account_id = ?1 AND region = ?2 AND name = ?3 RETURNING ",
                scheduled_columns!()
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (
                        &scope.account_id,
                        &scope.region,
                        &name,
                        &update.frequency,
                        &update.day_of_week,
                        &update.day_of_month,
                        &update.checks_json,
                        anchor,
                        next,
                        update.updated_at_ms,
                    ),
                    record,
                )
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn delete_scheduled_audit(&self, scope: &Scope, name: &str) -> StoreResult<bool> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write_tx(move |tx| {
            let arn: Option<String> = tx
                .prepare_cached(
                    "DELETE FROM scheduled_audits
                     WHERE account_id = ?1 AND region = ?2 AND name = ?3 RETURNING arn",
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

    async fn delete_all_scheduled_audits(&self, scope: &Scope) -> StoreResult<u64> {
        let scope = scope.clone();
        self.write_tx(move |tx| {
            let arns: Vec<String> = {
                let mut stmt = tx
                    .prepare_cached(
                        "DELETE FROM scheduled_audits WHERE account_id = ?1 AND region = ?2
                         RETURNING arn",
                    )
                    .map_err(sql_err)?;
                let rows = stmt
                    .query_map((&scope.account_id, &scope.region), |row| row.get(0))
                    .map_err(sql_err)?;
                rows.collect::<Result<_, _>>().map_err(sql_err)?
            };
            for arn in &arns {
                tags::delete_all(tx, &scope, arn)?;
            }
            Ok(u64::try_from(arns.len()).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn list_scheduled_audits(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ScheduledAuditRecord>> {
        let (scope, after) = (scope.clone(), after.map(str::to_owned));
        self.read_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    scheduled_columns!(),
                    " FROM scheduled_audits WHERE account_id = ?1 AND region = ?2",
                    " AND (?3 IS NULL OR name > ?3) ORDER BY name LIMIT ?4"
                ))
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (&scope.account_id, &scope.region, &after, sql_limit(limit)),
                    record,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn due_scheduled_audits(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueScheduledAudit>> {
        self.read_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT account_id, region, ",
                    scheduled_columns!(),
                    " FROM scheduled_audits WHERE next_run_ms <= ?1",
                    " ORDER BY next_run_ms, account_id, region, name LIMIT ?2"
                ))
                .map_err(sql_err)?;
            let rows = stmt
                .query_map((now_ms, sql_limit(limit)), |row| {
                    Ok(DueScheduledAudit {
                        scope: Scope {
                            account_id: row.get(0)?,
                            region: row.get(1)?,
                        },
                        record: record_at(row, 2)?,
                    })
                })
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn advance_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
        expected_next_ms: i64,
        next_run_ms: i64,
        start: Option<(&AuditTaskRecord, &NewWorkItem)>,
    ) -> StoreResult<ScheduledRunOutcome> {
        let (scope, name) = (scope.clone(), name.to_owned());
        let start = start.map(|(task, work)| (task.clone(), work.clone()));
        self.write_tx(move |tx| {
            let moved = tx
                .prepare_cached(
                    "UPDATE scheduled_audits SET next_run_ms = ?5
                     WHERE account_id = ?1 AND region = ?2 AND name = ?3 AND next_run_ms = ?4",
                )
                .and_then(|mut stmt| {
                    stmt.execute((
                        &scope.account_id,
                        &scope.region,
                        &name,
                        expected_next_ms,
                        next_run_ms,
                    ))
                })
                .map_err(sql_err)?;
            if moved == 0 {
                return Ok(ScheduledRunOutcome::Superseded);
            }
            let Some((task, work)) = start else {
                return Ok(ScheduledRunOutcome::Advanced);
            };
            if !insert_task(tx, &scope, &task, IfTaken::Skip)? {
                return Ok(ScheduledRunOutcome::Advanced);
            }
            insert_work_item(tx, &work)?;
            Ok(ScheduledRunOutcome::Started)
        })
        .await
    }
}

fn get(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> StoreResult<Option<ScheduledAuditRecord>> {
    tx.prepare_cached(GET_SQL)
        .and_then(|mut stmt| {
            stmt.query_row((&scope.account_id, &scope.region, name), record)
                .optional()
        })
        .map_err(sql_err)
}

fn count(tx: &Transaction<'_>, scope: &Scope) -> StoreResult<usize> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM scheduled_audits WHERE account_id = ?1 AND region = ?2",
        )
        .and_then(|mut stmt| stmt.query_row((&scope.account_id, &scope.region), |row| row.get(0)))
        .map_err(sql_err)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
