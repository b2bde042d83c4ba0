//! Scheduled audits on PostgreSQL.
//!
//! A create takes an advisory lock on its scope first, so creators on every node queue
//! on it and the name check and count see every create committed before. Starting a
//! run is an `UPDATE ... WHERE next_run_ms = expected`: a second node's update waits on
//! the first one's row lock, re-reads the row once it commits and matches nothing, so
//! only one of them goes on to insert the task.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::audits::{insert_task, IfTaken};
use super::error::{insert_err, Fail};
use super::work::insert_work_item;
use super::{count_to_usize, sql_limit, tags, PostgresStore};
use crate::{
    AuditTaskRecord, DueScheduledAudit, NewWorkItem, ScheduledAuditRecord, ScheduledAuditRefusal,
    ScheduledAuditStore, ScheduledAuditUpdate, ScheduledRunOutcome, Scope, StoreResult, Tag,
};

/// First key of the advisory locks that serialise scheduled audit creation per scope;
/// 1 to 8 are taken (actions, tags, things, CA subjects, policy targets, audit tasks,
/// the audit purge, suppressions). Not 9, which a table written alongside this one
/// might take: two lock spaces sharing a number would make unrelated writers wait.
const SCHEDULED_AUDIT_LOCK_SPACE: i32 = 10;

/// The columns [`record`] reads, in its order.
macro_rules! scheduled_columns {
    () => {
        "name, arn, frequency, day_of_week, day_of_month, checks_json, anchor_ms, \
         next_run_ms, created_at_ms, updated_at_ms"
    };
}

/// Maps a row of [`scheduled_columns`] starting at column `at`.
fn record_at(row: &Row, at: usize) -> Result<ScheduledAuditRecord, Fail> {
    Ok(ScheduledAuditRecord {
        name: row.try_get(at)?,
        arn: row.try_get(at + 1)?,
        frequency: row.try_get(at + 2)?,
        day_of_week: row.try_get(at + 3)?,
        day_of_month: row.try_get(at + 4)?,
        checks_json: row.try_get(at + 5)?,
        anchor_ms: row.try_get(at + 6)?,
        next_run_ms: row.try_get(at + 7)?,
        created_at_ms: row.try_get(at + 8)?,
        updated_at_ms: row.try_get(at + 9)?,
    })
}

fn record(row: &Row) -> Result<ScheduledAuditRecord, Fail> {
    record_at(row, 0)
}

const GET_SQL: &str = concat!(
    "SELECT ",
    scheduled_columns!(),
    " FROM scheduled_audits WHERE account_id = $1 AND region = $2 AND name = $3"
);

#[async_trait]
impl ScheduledAuditStore for PostgresStore {
    async fn create_scheduled_audit(
        &self,
        scope: &Scope,
        record: &ScheduledAuditRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<Result<(), ScheduledAuditRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                lock_scope(&tx, scope).await?;
                // Read committed: each statement below sees what committed before the
                // lock was granted.
                let stmt = tx.prepare_cached(GET_SQL).await?;
                if tx
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &record.name])
                    .await?
                    .is_some()
                {
                    return Ok(Err(ScheduledAuditRefusal::NameExists));
                }
                let stmt = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM scheduled_audits
                         WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                let n: i64 = tx
                    .query_one(&stmt, &[&scope.account_id, &scope.region])
                    .await?
                    .try_get(0)?;
                if count_to_usize(n) >= limit {
                    return Ok(Err(ScheduledAuditRefusal::LimitReached));
                }
                let stmt = tx
                    .prepare_cached(concat!(
                        "INSERT INTO scheduled_audits (account_id, region, ",
                        scheduled_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    ))
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &record.name,
                        &record.arn,
                        &record.frequency,
                        &record.day_of_week,
                        &record.day_of_month,
                        &record.checks_json,
                        &record.anchor_ms,
                        &record.next_run_ms,
                        &record.created_at_ms,
                        &record.updated_at_ms,
                    ],
                )
                .await
                .map_err(insert_err)?;
                if !tags.is_empty() {
                    tags::lock_resource(&tx, scope, &record.arn).await?;
                    tags::upsert(&tx, scope, &record.arn, tags).await?;
                }
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<ScheduledAuditRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn.prepare_cached(GET_SQL).await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
                    .await?;
                row.as_ref().map(record).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn update_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
        update: &ScheduledAuditUpdate,
    ) -> StoreResult<Option<ScheduledAuditRecord>> {
        let (anchor, next) = update.timing.unzip();
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "UPDATE scheduled_audits SET frequency = $4, day_of_week = $5,",
                        " day_of_month = $6, checks_json = $7,",
                        " anchor_ms = COALESCE($8::BIGINT, anchor_ms),",
                        " next_run_ms = COALESCE($9::BIGINT, next_run_ms),",
                        " updated_at_ms = $10",
                        " WHERE account_id = $1 AND region = $2 AND name = $3 RETURNING ",
                        scheduled_columns!()
                    ))
                    .await?;
                let row = conn
                    .query_opt(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &name,
                            &update.frequency,
                            &update.day_of_week,
                            &update.day_of_month,
                            &update.checks_json,
                            &anchor,
                            &next,
                            &update.updated_at_ms,
                        ],
                    )
                    .await?;
                row.as_ref().map(record).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_scheduled_audit(&self, scope: &Scope, name: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM scheduled_audits
                         WHERE account_id = $1 AND region = $2 AND name = $3 RETURNING arn",
                    )
                    .await?;
                let Some(row) = tx
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
                    .await?
                else {
                    return Ok(false);
                };
                let arn: String = row.try_get(0)?;
                tags::delete_all(&tx, scope, &arn).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_all_scheduled_audits(&self, scope: &Scope) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM scheduled_audits WHERE account_id = $1 AND region = $2
                         RETURNING arn",
                    )
                    .await?;
                let rows = tx.query(&stmt, &[&scope.account_id, &scope.region]).await?;
                for row in &rows {
                    let arn: String = row.try_get(0)?;
                    tags::delete_all(&tx, scope, &arn).await?;
                }
                tx.commit().await?;
                Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_scheduled_audits(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ScheduledAuditRecord>> {
        let limit = sql_limit(limit);
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        scheduled_columns!(),
                        " FROM scheduled_audits WHERE account_id = $1 AND region = $2",
                        " AND ($3::TEXT IS NULL OR name > $3) ORDER BY name LIMIT $4"
                    ))
                    .await?;
                let rows = conn
                    .query(&stmt, &[&scope.account_id, &scope.region, &after, &limit])
                    .await?;
                rows.iter().map(record).collect()
            })
            .await;
        conn.finish(outcome)
    }

    async fn due_scheduled_audits(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueScheduledAudit>> {
        let limit = sql_limit(limit);
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT account_id, region, ",
                        scheduled_columns!(),
                        " FROM scheduled_audits WHERE next_run_ms <= $1",
                        " ORDER BY next_run_ms, account_id, region, name LIMIT $2"
                    ))
                    .await?;
                let rows = conn.query(&stmt, &[&now_ms, &limit]).await?;
                rows.iter()
                    .map(|row| {
                        Ok(DueScheduledAudit {
                            scope: Scope {
                                account_id: row.try_get(0)?,
                                region: row.try_get(1)?,
                            },
                            record: record_at(row, 2)?,
                        })
                    })
                    .collect()
            })
            .await;
        conn.finish(outcome)
    }

    async fn advance_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
        expected_next_ms: i64,
        next_run_ms: i64,
        start: Option<(&AuditTaskRecord, &NewWorkItem)>,
    ) -> StoreResult<ScheduledRunOutcome> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx
                    .prepare_cached(
                        "UPDATE scheduled_audits SET next_run_ms = $5
                         WHERE account_id = $1 AND region = $2 AND name = $3
                           AND next_run_ms = $4",
                    )
                    .await?;
                let moved = tx
                    .execute(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &name,
                            &expected_next_ms,
                            &next_run_ms,
                        ],
                    )
                    .await?;
                if moved == 0 {
                    return Ok(ScheduledRunOutcome::Superseded);
                }
                let outcome = match start {
                    Some((task, work)) if insert_task(&tx, scope, task, IfTaken::Skip).await? => {
                        insert_work_item(&tx, work).await?;
                        ScheduledRunOutcome::Started
                    }
                    _ => ScheduledRunOutcome::Advanced,
                };
                tx.commit().await?;
                Ok(outcome)
            })
            .await;
        conn.finish(outcome)
    }
}

async fn lock_scope(tx: &Transaction<'_>, scope: &Scope) -> Result<(), Fail> {
    let key = format!("{}/{}", scope.account_id, scope.region);
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&stmt, &[&SCHEDULED_AUDIT_LOCK_SPACE, &key])
        .await?;
    Ok(())
}
