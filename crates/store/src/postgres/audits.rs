//! Audit configuration, tasks and findings on PostgreSQL.
//!
//! The in-progress limit is counted under an advisory lock on (scope, task type), so
//! creators on every node queue on it and none can miss another's insert in flight;
//! uniqueness of task and work ids is the primary keys' job. Findings are written with
//! one `INSERT ... SELECT FROM unnest(...)` per call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::error::{insert_err, Fail};
use super::work::insert_work_item;
use super::{count_to_usize, rows, sql_limit, PostgresStore};
use crate::{
    AuditConfigurationRecord, AuditFindingFilter, AuditFindingHead, AuditFindingKey,
    AuditFindingRecord, AuditStore, AuditTaskFilter, AuditTaskKey, AuditTaskRecord,
    AuditTaskRefusal, NewWorkItem, Scope, StoreResult,
};

/// First key of the advisory locks on (scope, task type) that serialise task creation;
/// 1 to 5 are taken by actions, tags, things, CA subjects and policy targets.
const AUDIT_TASK_LOCK_SPACE: i32 = 6;

/// First key of the one advisory lock that lets a single node purge at a time, so two
/// purges never pick the same task and the row counts they report add up.
const AUDIT_PURGE_LOCK_SPACE: i32 = 7;

/// The version-conditional update of a task (see `AuditStore::update_audit_task`).
const UPDATE_TASK_SQL: &str = "UPDATE audit_tasks
     SET status = $4, finished_at_ms = $5, checks_json = $6, version = $7
     WHERE account_id = $1 AND region = $2 AND task_id = $3 AND version = $8";

/// Rows the purge deletes per transaction: each statement stays far inside the
/// statement timeout however much history has piled up.
const PURGE_CHUNK: usize = 2_000;

#[async_trait]
impl AuditStore for PostgresStore {
    async fn get_audit_configuration(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<AuditConfigurationRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        audit_configuration_columns!(),
                        " FROM audit_configurations WHERE account_id = $1 AND region = $2"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region])
                    .await?;
                row.as_ref().map(rows::audit_configuration).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn put_audit_configuration(
        &self,
        scope: &Scope,
        record: &AuditConfigurationRecord,
    ) -> StoreResult<()> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "INSERT INTO audit_configurations (account_id, region, ",
                        audit_configuration_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6)",
                        " ON CONFLICT (account_id, region) DO UPDATE SET",
                        " role_arn = excluded.role_arn, checks_json = excluded.checks_json,",
                        " notifications_json = excluded.notifications_json,",
                        " updated_at_ms = excluded.updated_at_ms"
                    ))
                    .await?;
                conn.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &record.role_arn,
                        &record.checks_json,
                        &record.notifications_json,
                        &record.updated_at_ms,
                    ],
                )
                .await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_audit_configuration(&self, scope: &Scope) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "DELETE FROM audit_configurations WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                Ok(conn
                    .execute(&stmt, &[&scope.account_id, &scope.region])
                    .await?
                    > 0)
            })
            .await;
        conn.finish(outcome)
    }

    async fn create_audit_task(
        &self,
        scope: &Scope,
        task: &AuditTaskRecord,
        work: &NewWorkItem,
        max_in_progress: Option<usize>,
    ) -> StoreResult<Result<(), AuditTaskRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                // Taken even without a limit, so that a limited creator's count cannot
                // miss an unlimited insert in flight. Read committed gives the count a
                // snapshot taken after the lock is held.
                lock_task_type(&tx, scope, &task.task_type).await?;
                if let Some(max) = max_in_progress {
                    if count_in_progress(&tx, scope, &task.task_type).await? >= max {
                        return Ok(Err(AuditTaskRefusal::TooManyInProgress));
                    }
                }
                insert_task(&tx, scope, task, IfTaken::Fail).await?;
                // A taken work id aborts the transaction, so the task goes too.
                insert_work_item(&tx, work).await?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_audit_task(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Option<AuditTaskRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        audit_task_columns!(),
                        " FROM audit_tasks WHERE account_id = $1 AND region = $2 AND task_id = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &task_id])
                    .await?;
                row.as_ref().map(rows::audit_task).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn update_audit_task(&self, scope: &Scope, task: &AuditTaskRecord) -> StoreResult<bool> {
        // No version precedes i64::MIN, so nothing can match it.
        let Some(previous) = task.version.checked_sub(1) else {
            return Ok(false);
        };
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn.prepare_cached(UPDATE_TASK_SQL).await?;
                Ok(conn
                    .execute(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &task.task_id,
                            &task.status,
                            &task.finished_at_ms,
                            &task.checks_json,
                            &task.version,
                            &previous,
                        ],
                    )
                    .await?
                    == 1)
            })
            .await;
        conn.finish(outcome)
    }

    async fn update_audit_task_with_work(
        &self,
        scope: &Scope,
        task: &AuditTaskRecord,
        work: &NewWorkItem,
    ) -> StoreResult<bool> {
        let Some(previous) = task.version.checked_sub(1) else {
            return Ok(false);
        };
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx.prepare_cached(UPDATE_TASK_SQL).await?;
                let updated = tx
                    .execute(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &task.task_id,
                            &task.status,
                            &task.finished_at_ms,
                            &task.checks_json,
                            &task.version,
                            &previous,
                        ],
                    )
                    .await?
                    == 1;
                if !updated {
                    return Ok(false);
                }
                // A taken work id aborts the transaction, so the update goes too.
                insert_work_item(&tx, work).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_audit_tasks(
        &self,
        scope: &Scope,
        filter: &AuditTaskFilter,
        after: Option<&AuditTaskKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditTaskRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![
                    &scope.account_id,
                    &scope.region,
                    &filter.started_from_ms,
                    &filter.started_to_ms,
                    &filter.task_type,
                    &filter.status,
                ];
                if let Some(key) = after {
                    params.push(&key.started_at_ms);
                    params.push(&key.task_id);
                }
                params.push(&limit);
                let stmt = conn.prepare_cached(list_tasks_sql(after.is_some())).await?;
                rows::all(&conn.query(&stmt, &params).await?, rows::audit_task)
            })
            .await;
        conn.finish(outcome)
    }

    async fn insert_audit_findings(
        &self,
        scope: &Scope,
        findings: &[AuditFindingRecord],
    ) -> StoreResult<u64> {
        if findings.is_empty() {
            return Ok(0);
        }
        // Concurrent calls with overlapping ids wait on each other's uncommitted rows;
        // inserting in id order makes them wait in one direction, never in a cycle.
        let mut sorted: Vec<&AuditFindingRecord> = findings.iter().collect();
        sorted.sort_unstable_by(|a, b| a.finding_id.cmp(&b.finding_id));
        let col = |f: fn(&AuditFindingRecord) -> &str| -> Vec<&str> {
            sorted.iter().map(|r| f(r)).collect()
        };
        let (ids, tasks, checks, resources, bodies) = (
            col(|r| r.finding_id.as_str()),
            col(|r| r.task_id.as_str()),
            col(|r| r.check_name.as_str()),
            col(|r| r.resource_key.as_str()),
            col(|r| r.body_json.as_str()),
        );
        let task_starts: Vec<i64> = sorted.iter().map(|r| r.task_start_ms).collect();
        let times: Vec<i64> = sorted.iter().map(|r| r.finding_time_ms).collect();
        let suppressed: Vec<bool> = sorted.iter().map(|r| r.is_suppressed).collect();
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // One statement, so one implicit transaction: all of the call or none.
                let stmt = conn
                    .prepare_cached(concat!(
                        "INSERT INTO audit_findings (account_id, region, ",
                        audit_finding_columns!(),
                        ") SELECT $1, $2, u.* FROM unnest($3::text[], $4::text[], $5::text[],",
                        " $6::int8[], $7::int8[], $8::text[], $9::bool[], $10::text[])",
                        " AS u(finding_id, task_id, check_name, task_start_ms, finding_time_ms,",
                        " resource_key, is_suppressed, body_json)",
                        " ON CONFLICT DO NOTHING"
                    ))
                    .await?;
                Ok(conn
                    .execute(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &ids,
                            &tasks,
                            &checks,
                            &task_starts,
                            &times,
                            &resources,
                            &suppressed,
                            &bodies,
                        ],
                    )
                    .await?)
            })
            .await;
        let inserted = conn.finish(outcome)?;
        self.findings_inserted(inserted);
        Ok(inserted)
    }

    async fn get_audit_finding(
        &self,
        scope: &Scope,
        finding_id: &str,
    ) -> StoreResult<Option<AuditFindingRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        audit_finding_columns!(),
                        " FROM audit_findings",
                        " WHERE account_id = $1 AND region = $2 AND finding_id = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &finding_id])
                    .await?;
                row.as_ref().map(rows::audit_finding).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_audit_findings(
        &self,
        scope: &Scope,
        filter: &AuditFindingFilter,
        after: Option<&AuditFindingKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditFindingRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                let from = filter.found_from_ms.unwrap_or(i64::MIN);
                let to = filter.found_to_ms.unwrap_or(i64::MAX);
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![
                    &scope.account_id,
                    &scope.region,
                    &from,
                    &to,
                    &filter.check_name,
                    &filter.resource_key,
                    &filter.suppressed,
                ];
                if let Some(task_id) = &filter.task_id {
                    params.push(task_id);
                }
                if let Some(key) = after {
                    params.push(&key.finding_time_ms);
                    params.push(&key.finding_id);
                }
                params.push(&limit);
                let sql = list_findings_sql(filter.task_id.is_some(), after.is_some());
                let stmt = conn.prepare_cached(sql).await?;
                rows::all(&conn.query(&stmt, &params).await?, rows::audit_finding)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_audit_finding_heads(
        &self,
        scope: &Scope,
        audit_task_id: &str,
        after: Option<&AuditFindingKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditFindingHead>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                // Every column is in audit_findings_by_task (migration 0012). The first
                // page starts after the lowest possible key, so one statement serves all.
                let (after_time, after_id) = after.map_or((i64::MIN, ""), |k| {
                    (k.finding_time_ms, k.finding_id.as_str())
                });
                let stmt = conn
                    .prepare_cached(
                        "SELECT finding_id, check_name, finding_time_ms, resource_key, is_suppressed
                         FROM audit_findings
                         WHERE account_id = $1 AND region = $2 AND task_id = $3
                           AND (finding_time_ms, finding_id) > ($4, $5)
                         ORDER BY finding_time_ms, finding_id LIMIT $6",
                    )
                    .await?;
                let rows = conn
                    .query(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &audit_task_id,
                            &after_time,
                            &after_id,
                            &limit,
                        ],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(AuditFindingHead {
                            finding_id: r.try_get(0)?,
                            check_name: r.try_get(1)?,
                            finding_time_ms: r.try_get(2)?,
                            resource_key: r.try_get(3)?,
                            is_suppressed: r.try_get(4)?,
                        })
                    })
                    .collect()
            })
            .await;
        conn.finish(outcome)
    }

    async fn purge_audit_history(&self, before_ms: i64) -> StoreResult<u64> {
        let mut purged = 0;
        loop {
            let mut conn = self.conn().await?;
            let outcome = self
                .deadline(async {
                    let tx = conn.transaction().await?;
                    let stmt = tx
                        .prepare_cached("SELECT pg_advisory_xact_lock($1, 0)")
                        .await?;
                    tx.execute(&stmt, &[&AUDIT_PURGE_LOCK_SPACE]).await?;
                    let chunk = purge_chunk(&tx, before_ms, PURGE_CHUNK).await?;
                    tx.commit().await?;
                    Ok(chunk)
                })
                .await;
            let (deleted, done) = conn.finish(outcome)?;
            purged += deleted;
            if done {
                return Ok(purged);
            }
        }
    }
}

/// Tasks newest first within the filter's (inclusive) start range. Type and status
/// are residual conditions (`$n IS NULL OR ...`) on the start-time index range, so
/// there are only two shapes. Parameters are numbered in the order
/// [`list_audit_tasks`](AuditStore::list_audit_tasks) binds them: scope, range, type,
/// status, the page key when present, then the limit.
fn list_tasks_sql(paged: bool) -> &'static str {
    macro_rules! list {
        ($($cond:literal)?; $limit:literal) => {
            concat!(
                "SELECT ",
                audit_task_columns!(),
                " FROM audit_tasks WHERE account_id = $1 AND region = $2",
                " AND started_at_ms BETWEEN $3 AND $4",
                " AND ($5::text IS NULL OR task_type = $5)",
                " AND ($6::text IS NULL OR status = $6)",
                $($cond,)?
                " ORDER BY started_at_ms DESC, task_id DESC LIMIT ",
                $limit
            )
        };
    }
    if paged {
        list!(" AND (started_at_ms, task_id) < ($7, $8)"; "$9")
    } else {
        list!(; "$7")
    }
}

/// Findings in (time, id) order. The task filter and the page key pick the index range
/// (by task or by time), so each combination is its own statement; the other
/// conditions are residual filters on that range. Absent time bounds are bound as the
/// extremes, which keeps the range a plain one. Parameters: scope, range, check,
/// resource, suppressed, then the task and the page key when present, then the limit.
fn list_findings_sql(by_task: bool, paged: bool) -> &'static str {
    macro_rules! list {
        ($($cond:literal),*; $limit:literal) => {
            concat!(
                "SELECT ",
                audit_finding_columns!(),
                " FROM audit_findings WHERE account_id = $1 AND region = $2",
                $($cond,)*
                " AND finding_time_ms BETWEEN $3 AND $4",
                " AND ($5::text IS NULL OR check_name = $5)",
                " AND ($6::text IS NULL OR resource_key = $6)",
                " AND ($7::bool IS NULL OR is_suppressed = $7)",
                " ORDER BY finding_time_ms, finding_id LIMIT ",
                $limit
            )
        };
    }
    match (by_task, paged) {
        (false, false) => list!(; "$8"),
        (true, false) => list!(" AND task_id = $8"; "$9"),
        (false, true) => list!(" AND (finding_time_ms, finding_id) > ($8, $9)"; "$10"),
        (true, true) => list!(
            " AND task_id = $8",
            " AND (finding_time_ms, finding_id) > ($9, $10)";
            "$11"
        ),
    }
}

async fn lock_task_type(tx: &Transaction<'_>, scope: &Scope, task_type: &str) -> Result<(), Fail> {
    let key = format!("{}/{}/{task_type}", scope.account_id, scope.region);
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&stmt, &[&AUDIT_TASK_LOCK_SPACE, &key]).await?;
    Ok(())
}

async fn count_in_progress(
    tx: &Transaction<'_>,
    scope: &Scope,
    task_type: &str,
) -> Result<usize, Fail> {
    // `status = 'IN_PROGRESS'` spelled out so the partial index applies.
    let stmt = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM audit_tasks
             WHERE account_id = $1 AND region = $2 AND task_type = $3
               AND status = 'IN_PROGRESS'",
        )
        .await?;
    let count: i64 = tx
        .query_one(&stmt, &[&scope.account_id, &scope.region, &task_type])
        .await?
        .try_get(0)?;
    Ok(count_to_usize(count))
}

/// What inserting a task whose id is taken does.
#[derive(Clone, Copy)]
pub(super) enum IfTaken {
    /// Fails with `AlreadyExists`: the primary key rejects the row, which also holds
    /// against a concurrent writer on another node.
    Fail,
    /// Inserts nothing: a replayed start of the same scheduled run.
    Skip,
}

/// Inserts the task; returns whether it did (false only with `IfTaken::Skip`).
pub(super) async fn insert_task(
    tx: &Transaction<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    if_taken: IfTaken,
) -> Result<bool, Fail> {
    let sql = match if_taken {
        IfTaken::Fail => concat!(
            "INSERT INTO audit_tasks (account_id, region, ",
            audit_task_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        IfTaken::Skip => concat!(
            "INSERT INTO audit_tasks (account_id, region, ",
            audit_task_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        ),
    };
    let stmt = tx.prepare_cached(sql).await?;
    let inserted = tx
        .execute(
            &stmt,
            &[
                &scope.account_id,
                &scope.region,
                &task.task_id,
                &task.task_type,
                &task.status,
                &task.scheduled_audit_name,
                &task.started_at_ms,
                &task.finished_at_ms,
                &task.checks_json,
                &task.version,
            ],
        )
        .await
        .map_err(insert_err)?;
    Ok(inserted == 1)
}

/// Deletes up to about `budget` rows of purgeable history, oldest task first: a task's
/// findings (through the by-task index), then the task once none are left. Returns
/// the rows deleted and whether nothing purgeable remains.
async fn purge_chunk(
    tx: &Transaction<'_>,
    before_ms: i64,
    budget: usize,
) -> Result<(u64, bool), Fail> {
    let next_task = tx
        .prepare_cached(
            "SELECT account_id, region, task_id FROM audit_tasks
             WHERE started_at_ms < $1 AND status <> 'IN_PROGRESS'
             ORDER BY started_at_ms LIMIT 1",
        )
        .await?;
    let delete_findings = tx
        .prepare_cached(
            "DELETE FROM audit_findings WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM audit_findings
                 WHERE account_id = $1 AND region = $2 AND task_id = $3 LIMIT $4))",
        )
        .await?;
    let delete_related = tx
        .prepare_cached(
            "DELETE FROM audit_finding_related_resources WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM audit_finding_related_resources
                 WHERE account_id = $1 AND region = $2 AND task_id = $3 LIMIT $4))",
        )
        .await?;
    let delete_task = tx
        .prepare_cached(
            "DELETE FROM audit_tasks
             WHERE account_id = $1 AND region = $2 AND task_id = $3
               AND status <> 'IN_PROGRESS'",
        )
        .await?;
    let mut left = budget;
    let mut deleted = 0;
    while left > 0 {
        let Some(row) = tx.query_opt(&next_task, &[&before_ms]).await? else {
            return Ok((deleted, true));
        };
        let (account_id, region, task_id): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let findings = tx
            .execute(
                &delete_findings,
                &[&account_id, &region, &task_id, &sql_limit(left)],
            )
            .await?;
        deleted += findings;
        left = left.saturating_sub(usize::try_from(findings).unwrap_or(usize::MAX));
        if left == 0 {
            // Findings may remain; the task goes in a later chunk.
            break;
        }
        // After the findings, so no listed finding ever lacks its related resources.
        let related = tx
            .execute(
                &delete_related,
                &[&account_id, &region, &task_id, &sql_limit(left)],
            )
            .await?;
        deleted += related;
        left = left.saturating_sub(usize::try_from(related).unwrap_or(usize::MAX));
        if left == 0 {
            break;
        }
        deleted += tx
            .execute(&delete_task, &[&account_id, &region, &task_id])
            .await?;
        left -= 1;
    }
    Ok((deleted, false))
}

/// Findings this process inserted before audit_findings' first ANALYZE.
const FIRST_FINDINGS_ANALYZE_AFTER: u64 = 10_000;

/// When audit_findings' statistics are refreshed. An audit writes its findings faster
/// than autoanalyze looks (and autovacuum may be off): a mitigation task or a finding
/// listing started right after a big audit was planned without statistics as a scan of
/// the whole audit per page (1.2 s a page at 1,000,000 findings, 2.9 ms analyzed). Like
/// the import's schedule: ANALYZE whenever the findings inserted since the last one reach
/// the number there were then, so a million findings cost about seven.
#[derive(Default)]
pub(super) struct FindingStats {
    since: AtomicU64,
    at_last: AtomicU64,
    running: AtomicBool,
}

impl PostgresStore {
    /// Counts inserted findings and, when due, refreshes the statistics in the
    /// background: audits never wait for it.
    fn findings_inserted(&self, n: u64) {
        let stats = &self.inner.finding_stats;
        let since = stats.since.fetch_add(n, Ordering::Relaxed) + n;
        if since < FIRST_FINDINGS_ANALYZE_AFTER.max(stats.at_last.load(Ordering::Relaxed)) {
            return;
        }
        if stats.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let stats = &store.inner.finding_stats;
            let counted = stats.since.load(Ordering::Relaxed);
            match store.analyze_findings().await {
                Ok(()) => {
                    stats.since.fetch_sub(counted, Ordering::Relaxed);
                    stats.at_last.fetch_add(counted, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "ANALYZE audit_findings failed"),
            }
            stats.running.store(false, Ordering::Release);
        });
    }

    async fn analyze_findings(&self) -> StoreResult<()> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                conn.batch_execute("ANALYZE audit_findings")
                    .await
                    .map_err(Fail::from)
            })
            .await;
        conn.finish(outcome)
    }
}
