//! [`MitigationTaskStore`] on both engines.
//!
//! Several PostgreSQL nodes run the stages of one task at once, so what SQLite gets
//! from its single writer comes from locks there:
//! - a stage and a cancel both lock the task row (`FOR UPDATE`) first, so they run one
//!   after the other: a cancel never lands in the middle of a stage, the counters of
//!   concurrent stages add up exactly, and the stage that finishes the last chunk sees
//!   every other stage's counters when it decides between COMPLETED and FAILED;
//! - a stage then locks its chunk's work item while checking the lease, so a claimer
//!   (which skips locked items) cannot take the chunk over until the stage has
//!   committed or rolled back;
//! - creating a task counts the scope's running tasks under an advisory lock on the
//!   scope, so concurrent starts cannot both take the last slot.

use palisade_store_macros::engines;
use std::collections::HashMap;

use super::stage::{apply_stage, CANCELED, IN_PROGRESS};
use crate::db::{sql_limit, Db, DbResult, Dialect, Param, Query, Row, Sql};
use crate::purge::{self, delete_some};
use crate::work::insert_work_item;
use crate::{
    AuditFindingKey, AuditTaskKey, ExplainRefusal, MitigationCancelRefusal, MitigationCheckStats,
    MitigationExecutionRecord, MitigationStage, MitigationTaskCreated, MitigationTaskFilter,
    MitigationTaskRecord, NewWorkItem, Scope, StageOutcome, StoreResult,
};

/// First key of the advisory locks on a scope that serialise task creation (for the
/// in-progress limit); 1 to 8 and 10 are taken by the other stores.
const MITIGATION_TASK_LOCK_SPACE: i32 = 11;

/// First key of the one advisory lock that lets a single node purge at a time.
const MITIGATION_PURGE_LOCK_SPACE: i32 = 12;

macro_rules! task_columns {
    () => {
        "task_id, client_request_token, status, started_at_ms, finished_at_ms, audit_task_id, \
         body_json"
    };
}
const TASK_COLUMNS: usize = 7;

/// A task row; its finding ids are read separately ([`finding_ids`]).
fn task(row: &Row<'_>) -> DbResult<MitigationTaskRecord> {
    Ok(from_row!(row => MitigationTaskRecord {
        task_id, client_request_token, status, started_at_ms, finished_at_ms, audit_task_id,
        body_json; finding_ids: Vec::new()
    }))
}

/// Statistics columns at `at`; `None` when an outer join found no row.
fn stats(row: &Row<'_>, at: usize) -> DbResult<Option<MitigationCheckStats>> {
    let Some(check_name) = row.get::<Option<String>>(at)? else {
        return Ok(None);
    };
    Ok(Some(MitigationCheckStats {
        check_name,
        total: row.get(at + 1)?,
        succeeded: row.get(at + 2)?,
        failed: row.get(at + 3)?,
        skipped: row.get(at + 4)?,
        canceled: row.get(at + 5)?,
    }))
}

fn execution(row: &Row<'_>) -> DbResult<MitigationExecutionRecord> {
    let index: i32 = row.get(1)?;
    Ok(MitigationExecutionRecord {
        finding_id: row.get(0)?,
        action_index: u32::try_from(index)
            .map_err(|_| crate::db::corrupt(format!("negative action index {index}")))?,
        status: row.get(2)?,
        started_at_ms: row.get(3)?,
        finished_at_ms: row.get(4)?,
        error_code: row.get(5)?,
        message: row.get(6)?,
    })
}

fn action_index(index: u32) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

#[engines]
pub trait MitigationTaskStore: Send + Sync {
    /// Inserts the task, its statistics rows and its chunks' work items (one chunk left
    /// per item) in one transaction, unless a task with this id exists in the scope or
    /// `max_in_progress` tasks are `IN_PROGRESS` there (checked atomically).
    async fn create_mitigation_task(
        &self,
        scope: &Scope,
        task: &MitigationTaskRecord,
        stats: &[MitigationCheckStats],
        chunks: &[NewWorkItem],
        max_in_progress: usize,
    ) -> StoreResult<MitigationTaskCreated> {
        let (scope, task, stats, chunks) =
            (scope.clone(), task.clone(), stats.to_vec(), chunks.to_vec());
        self.write(async move |db| {
            db.lock(MITIGATION_TASK_LOCK_SPACE, &scope.key()).await?;
            if let Some(existing) = task_in(db, &scope, &task.task_id).await? {
                return Ok(MitigationTaskCreated::Exists(existing));
            }
            // `status = 'IN_PROGRESS'` spelled out so the partial index applies.
            let running = db
                .count(
                    sql!(
                        "SELECT COUNT(*) FROM mitigation_tasks",
                        " WHERE account_id = $1 AND region = $2 AND status = 'IN_PROGRESS'"
                    ),
                    &[&scope.account_id, &scope.region],
                )
                .await?;
            if running >= max_in_progress {
                return Ok(MitigationTaskCreated::TooManyInProgress);
            }
            insert_task(db, &scope, &task, &stats, &chunks).await?;
            Ok(MitigationTaskCreated::Created)
        })
        .await
    }

    /// The task and its statistics, ordered by check name.
    async fn get_mitigation_task(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Option<(MitigationTaskRecord, Vec<MitigationCheckStats>)>> {
        self.read(async |db| {
            // The task and its counters in one statement, so they agree (a stage
            // commits both at once); the finding ids never change.
            let rows = db
                .query(
                    sql!(
                        "SELECT t.task_id, t.client_request_token, t.status, t.started_at_ms,",
                        " t.finished_at_ms, t.audit_task_id, t.body_json,",
                        " s.check_name, s.total, s.succeeded, s.failed, s.skipped, s.canceled",
                        " FROM mitigation_tasks t LEFT JOIN mitigation_task_stats s",
                        " ON s.account_id = t.account_id AND s.region = t.region",
                        " AND s.task_id = t.task_id",
                        " WHERE t.account_id = $1 AND t.region = $2 AND t.task_id = $3",
                        " ORDER BY s.check_name"
                    ),
                    &[&scope.account_id, &scope.region, &task_id],
                    |row| Ok((task(row)?, stats(row, TASK_COLUMNS)?)),
                )
                .await?;
            let mut rows = rows.into_iter();
            let Some((mut task, first)) = rows.next() else {
                return Ok(None);
            };
            let stats = first
                .into_iter()
                .chain(rows.filter_map(|(_, s)| s))
                .collect();
            task.finding_ids = finding_ids(db, scope, &[task_id])
                .await?
                .remove(task_id)
                .unwrap_or_default();
            Ok(Some((task, stats)))
        })
        .await
    }

    /// Newest first (start time descending, then task id descending), after `after`.
    async fn list_mitigation_tasks(
        &self,
        scope: &Scope,
        filter: &MitigationTaskFilter,
        after: Option<&AuditTaskKey>,
        limit: usize,
    ) -> StoreResult<Vec<MitigationTaskRecord>> {
        self.read(async |db| list(db, scope, filter, after, limit).await)
            .await
    }

    /// Ends an in-progress task as CANCELED at `now_ms`: each check's not yet processed
    /// findings (total − succeeded − failed − skipped) become canceled. Chunks still
    /// queued are left for the workers, whose stages then answer `TaskNotInProgress`.
    async fn cancel_mitigation_task(
        &self,
        scope: &Scope,
        task_id: &str,
        now_ms: i64,
    ) -> StoreResult<Result<(), MitigationCancelRefusal>> {
        let (scope, task_id) = (scope.clone(), task_id.to_owned());
        self.write(async move |db| {
            let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &task_id];
            // Waits for a stage of the task in flight, and then sees what it wrote.
            let status: Option<String> = db
                .value(
                    sql!(
                        "SELECT status FROM mitigation_tasks",
                        " WHERE account_id = $1 AND region = $2 AND task_id = $3 FOR UPDATE"
                    ),
                    &key,
                )
                .await?;
            match status {
                None => return Ok(Err(MitigationCancelRefusal::NotFound)),
                Some(status) if status != IN_PROGRESS => {
                    return Ok(Err(MitigationCancelRefusal::NotInProgress(status)))
                }
                Some(_) => {}
            }
            db.execute(
                sql!(
                    "UPDATE mitigation_tasks SET status = $4, finished_at_ms = $5",
                    " WHERE account_id = $1 AND region = $2 AND task_id = $3"
                ),
                &[key[0], key[1], key[2], &CANCELED, &now_ms],
            )
            .await?;
            db.execute(
                sql!(
                    "UPDATE mitigation_task_stats SET canceled = CASE",
                    " WHEN total - succeeded - failed - skipped > 0",
                    " THEN total - succeeded - failed - skipped ELSE 0 END",
                    " WHERE account_id = $1 AND region = $2 AND task_id = $3"
                ),
                &key,
            )
            .await?;
            Ok(Ok(()))
        })
        .await
    }

    /// Applies and records one stage of a chunk in one transaction; see the module docs.
    /// A step's effect failing writes it FAILED (with `explain`'s wording of the refusal,
    /// or the error of a `Failed` effect) and its `actions_after` SKIPPED, and counts its
    /// finding failed.
    async fn apply_mitigation_stage(
        &self,
        scope: &Scope,
        stage: &MitigationStage,
        explain: ExplainRefusal,
    ) -> StoreResult<StageOutcome> {
        let (scope, stage) = (scope.clone(), stage.clone());
        self.write(async move |db| apply_stage(db, &scope, &stage, explain).await)
            .await
    }

    /// Every stored execution of the finding in the task, by action index.
    async fn get_mitigation_executions(
        &self,
        scope: &Scope,
        task_id: &str,
        finding_id: &str,
    ) -> StoreResult<Vec<MitigationExecutionRecord>> {
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT finding_id, action_index, status, started_at_ms, finished_at_ms,",
                    " error_code, message FROM mitigation_executions",
                    " WHERE account_id = $1 AND region = $2 AND task_id = $3",
                    " AND finding_id = $4 ORDER BY action_index"
                ),
                &[&scope.account_id, &scope.region, &task_id, &finding_id],
                execution,
            )
            .await
        })
        .await
    }

    /// Which of `finding_ids` already have an execution at `action_index` in the task
    /// (SKIPPED after an earlier action failed).
    async fn findings_with_execution(
        &self,
        scope: &Scope,
        task_id: &str,
        finding_ids: &[String],
        action_index: u32,
    ) -> StoreResult<Vec<String>> {
        if finding_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read(async |db| with_execution(db, scope, task_id, finding_ids, action_index).await)
            .await
    }

    /// How many findings the audit task has per check, by check name.
    async fn count_audit_findings_by_check(
        &self,
        scope: &Scope,
        audit_task_id: &str,
    ) -> StoreResult<Vec<(String, i64)>> {
        let (scope, task) = (scope.clone(), audit_task_id.to_owned());
        self.scan(async move |db| count_by_check(db, &scope, &task).await)
            .await
    }

    /// The keys of the audit task's `every`-th, `2·every`-th, … findings in listing order
    /// (ascending by finding time, then finding id): the boundaries of its chunks.
    async fn audit_finding_boundaries(
        &self,
        scope: &Scope,
        audit_task_id: &str,
        every: usize,
    ) -> StoreResult<Vec<AuditFindingKey>> {
        let (scope, task) = (scope.clone(), audit_task_id.to_owned());
        self.scan(async move |db| boundaries(db, &scope, &task, every).await)
            .await
    }

    /// Deletes, in every scope, finished tasks that started before `before_ms` (the
    /// retention) with their statistics and executions; returns how many rows went.
    async fn purge_mitigation_history(&self, before_ms: i64) -> StoreResult<u64> {
        purge::all(|| {
            self.write(async move |db| purge::chunk(db, &HISTORY, before_ms, purge::CHUNK).await)
        })
        .await
    }
}

/// The task with its finding ids.
async fn task_in(
    db: &Db<'_>,
    scope: &Scope,
    task_id: &str,
) -> DbResult<Option<MitigationTaskRecord>> {
    let found = db
        .query_opt(
            sql!(
                "SELECT ",
                task_columns!(),
                " FROM mitigation_tasks WHERE account_id = $1 AND region = $2 AND task_id = $3"
            ),
            &[&scope.account_id, &scope.region, &task_id],
            task,
        )
        .await?;
    let Some(mut task) = found else {
        return Ok(None);
    };
    task.finding_ids = finding_ids(db, scope, &[task_id])
        .await?
        .remove(task_id)
        .unwrap_or_default();
    Ok(Some(task))
}

/// `target.findingIds` of each of `task_ids`, in the order given: one statement on
/// PostgreSQL, one per task on SQLite.
async fn finding_ids(
    db: &Db<'_>,
    scope: &Scope,
    task_ids: &[&str],
) -> DbResult<HashMap<String, Vec<String>>> {
    let pair = |row: &Row<'_>| Ok((row.get::<String>(0)?, row.get::<String>(1)?));
    let rows = if db.dialect() == Dialect::Sqlite {
        let mut rows = Vec::new();
        for task_id in task_ids {
            rows.extend(
                db.query(
                    sql!(
                        "SELECT task_id, finding_id FROM mitigation_task_findings",
                        " WHERE account_id = $1 AND region = $2 AND task_id = $3",
                        " ORDER BY position"
                    ),
                    &[&scope.account_id, &scope.region, task_id],
                    pair,
                )
                .await?,
            );
        }
        rows
    } else {
        db.query_pg(
            "SELECT task_id, finding_id FROM mitigation_task_findings
             WHERE account_id = $1 AND region = $2 AND task_id = ANY($3::text[])
             ORDER BY task_id, position",
            &[&scope.account_id, &scope.region, &task_ids],
            pair,
        )
        .await?
    };
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (task_id, finding_id) in rows {
        out.entry(task_id).or_default().push(finding_id);
    }
    Ok(out)
}

async fn insert_task(
    db: &Db<'_>,
    scope: &Scope,
    task: &MitigationTaskRecord,
    stats: &[MitigationCheckStats],
    chunks: &[NewWorkItem],
) -> DbResult<()> {
    let chunks_remaining = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
    db.execute(
        sql!(
            "INSERT INTO mitigation_tasks (account_id, region, ",
            task_columns!(),
            ", chunks_remaining) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &task.task_id,
            &task.client_request_token,
            &task.status,
            &task.started_at_ms,
            &task.finished_at_ms,
            &task.audit_task_id,
            &task.body_json,
            &chunks_remaining,
        ],
    )
    .await?;
    if db.dialect() == Dialect::Sqlite {
        for (position, finding_id) in task.finding_ids.iter().enumerate() {
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            db.execute(
                sql!(
                    "INSERT INTO mitigation_task_findings",
                    " (account_id, region, task_id, finding_id, position)",
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &task.task_id,
                    finding_id,
                    &position,
                ],
            )
            .await?;
        }
        for s in stats {
            db.execute(
                sql!(
                    "INSERT INTO mitigation_task_stats (account_id, region, task_id,",
                    " check_name, total, succeeded, failed, skipped, canceled)",
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &task.task_id,
                    &s.check_name,
                    &s.total,
                    &s.succeeded,
                    &s.failed,
                    &s.skipped,
                    &s.canceled,
                ],
            )
            .await?;
        }
    } else {
        insert_task_rows_pg(db, scope, task, stats).await?;
    }
    for chunk in chunks {
        // A taken work id fails the whole transaction, so the task goes too.
        insert_work_item(db, chunk).await?;
    }
    Ok(())
}

/// The task's finding ids and statistics in one statement each.
async fn insert_task_rows_pg(
    db: &Db<'_>,
    scope: &Scope,
    task: &MitigationTaskRecord,
    stats: &[MitigationCheckStats],
) -> DbResult<()> {
    if !task.finding_ids.is_empty() {
        db.execute_pg(
            "INSERT INTO mitigation_task_findings
                 (account_id, region, task_id, finding_id, position)
             SELECT $1::text, $2::text, $3::text, f.id, f.position - 1
             FROM UNNEST($4::text[]) WITH ORDINALITY AS f (id, position)
             ON CONFLICT DO NOTHING",
            &[
                &scope.account_id,
                &scope.region,
                &task.task_id,
                &task.finding_ids,
            ],
        )
        .await?;
    }
    if !stats.is_empty() {
        let checks: Vec<&str> = stats.iter().map(|s| s.check_name.as_str()).collect();
        let column = |f: fn(&MitigationCheckStats) -> i64| stats.iter().map(f).collect::<Vec<_>>();
        db.execute_pg(
            "INSERT INTO mitigation_task_stats (account_id, region, task_id,
                 check_name, total, succeeded, failed, skipped, canceled)
             SELECT $1::text, $2::text, $3::text, s.*
             FROM UNNEST($4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
                 $8::bigint[], $9::bigint[]) AS s",
            &[
                &scope.account_id,
                &scope.region,
                &task.task_id,
                &checks,
                &column(|s| s.total),
                &column(|s| s.succeeded),
                &column(|s| s.failed),
                &column(|s| s.skipped),
                &column(|s| s.canceled),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Tasks newest first within the filter's (inclusive) start range. The auditTaskId
/// filter picks the by-audit index, so it is a condition of its own; status and the
/// findingId filter are residual conditions.
async fn list(
    db: &Db<'_>,
    scope: &Scope,
    filter: &MitigationTaskFilter,
    after: Option<&AuditTaskKey>,
    limit: usize,
) -> DbResult<Vec<MitigationTaskRecord>> {
    let (finding_id, finding_audit) = filter
        .finding
        .clone()
        .map(|f| (f.finding_id, f.audit_task_id))
        .unzip();
    let mut q = Query::new(concat!(
        "SELECT ",
        task_columns!(),
        " FROM mitigation_tasks t"
    ));
    let (account, region) = (
        q.bind(scope.account_id.clone()),
        q.bind(scope.region.clone()),
    );
    let (from, to) = (q.bind(filter.started_from_ms), q.bind(filter.started_to_ms));
    let status = q.bind(filter.status.clone());
    let (finding, audit) = (q.bind(finding_id), q.bind(finding_audit));
    q.push(&format!(
        " WHERE account_id = {account} AND region = {region}
         AND started_at_ms BETWEEN {from} AND {to}
         AND ({status}::text IS NULL OR status = {status})
         AND ({finding}::text IS NULL OR audit_task_id = {audit}::text OR EXISTS (
             SELECT 1 FROM mitigation_task_findings f
             WHERE f.account_id = t.account_id AND f.region = t.region
               AND f.task_id = t.task_id AND f.finding_id = {finding}))"
    ));
    if let Some(audit_task_id) = &filter.audit_task_id {
        let p = q.bind(audit_task_id.clone());
        q.push(&format!(" AND audit_task_id = {p}"));
    }
    if let Some(key) = after {
        let (at, id) = (q.bind(key.started_at_ms), q.bind(key.task_id.clone()));
        q.push(&format!(" AND (started_at_ms, task_id) < ({at}, {id})"));
    }
    let limit = q.bind(sql_limit(limit));
    q.push(&format!(
        " ORDER BY started_at_ms DESC, task_id DESC LIMIT {limit}"
    ));
    let mut tasks = q.query(db, task).await?;
    if !tasks.is_empty() {
        let ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        let mut findings = finding_ids(db, scope, &ids).await?;
        for task in &mut tasks {
            task.finding_ids = findings.remove(&task.task_id).unwrap_or_default();
        }
    }
    Ok(tasks)
}

/// Which of `finding_ids` have an execution at `action_index`: one statement on
/// PostgreSQL; a primary-key lookup per finding on SQLite, which in-process is as cheap
/// as any set-based form.
async fn with_execution(
    db: &Db<'_>,
    scope: &Scope,
    task_id: &str,
    finding_ids: &[String],
    action_index: u32,
) -> DbResult<Vec<String>> {
    let index = self::action_index(action_index);
    if db.dialect() == Dialect::Postgres {
        return db
            .query_pg(
                "SELECT finding_id FROM mitigation_executions
                 WHERE account_id = $1 AND region = $2 AND task_id = $3
                   AND finding_id = ANY($4::text[]) AND action_index = $5",
                &[
                    &scope.account_id,
                    &scope.region,
                    &task_id,
                    &finding_ids,
                    &index,
                ],
                |row| row.get(0),
            )
            .await;
    }
    let mut found = Vec::new();
    for finding_id in finding_ids {
        let exists: Option<i32> = db
            .value(
                sql!(
                    "SELECT 1 FROM mitigation_executions",
                    " WHERE account_id = $1 AND region = $2 AND task_id = $3",
                    " AND finding_id = $4 AND action_index = $5"
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &task_id,
                    finding_id,
                    &index,
                ],
            )
            .await?;
        if exists.is_some() {
            found.push(finding_id.clone());
        }
    }
    Ok(found)
}

/// Finished tasks with their executions, target findings and statistics.
const HISTORY: purge::History = purge::History {
    lock_space: MITIGATION_PURGE_LOCK_SPACE,
    oldest: sql!(
        "SELECT account_id, region, task_id FROM mitigation_tasks",
        " WHERE started_at_ms < $1 AND status <> 'IN_PROGRESS'",
        " ORDER BY started_at_ms LIMIT 1"
    ),
    rows: &[
        delete_some!(
            "mitigation_executions",
            "account_id, region, task_id, finding_id, action_index"
        ),
        delete_some!("mitigation_task_findings"),
        delete_some!("mitigation_task_stats"),
    ],
    task: sql!(
        "DELETE FROM mitigation_tasks WHERE account_id = $1 AND region = $2 AND task_id = $3",
        " AND status <> 'IN_PROGRESS'"
    ),
};

/// The audit's findings per check. PostgreSQL groups them; SQLite counts them along the
/// by-task index, which carries the check (migration 0011), so no finding's row is read:
/// the index is not in check order, so a GROUP BY would sort every finding first (0.75 s
/// for a million, against 0.3 s for this walk).
async fn count_by_check(db: &Db<'_>, scope: &Scope, task: &str) -> DbResult<Vec<(String, i64)>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &task];
    let Some(conn) = db.lite() else {
        let sql = sql!(
            "SELECT check_name, COUNT(*) FROM audit_findings",
            " WHERE account_id = $1 AND region = $2 AND task_id = $3",
            " GROUP BY check_name ORDER BY check_name"
        );
        return db
            .query(sql, &key, |row| Ok((row.get(0)?, row.get(1)?)))
            .await;
    };
    let sql = sql!("SELECT check_name FROM audit_findings WHERE account_id = $1 AND region = $2 AND task_id = $3");
    let mut stmt = conn.prepare_cached(sql.lite)?;
    let mut rows = stmt.query((&scope.account_id, &scope.region, task))?;
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    while let Some(row) = rows.next()? {
        // Borrowed, not a String per finding.
        let check = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        match counts.get_mut(check) {
            Some(n) => *n += 1,
            None => {
                counts.insert(check.to_owned(), 1);
            }
        }
    }
    Ok(counts.into_iter().collect())
}

/// The keys of every `every`-th finding in listing order: a walk along the by-task index
/// (which holds every column used, in listing order), each step `every` entries on from
/// the last boundary. PostgreSQL runs the walk as one recursive statement (about half the
/// time of ROW_NUMBER() over the listing order, which numbers every finding); SQLite, where
/// that window function took 0.6-1.0 s over a million findings and this walk 0.1 s, as a
/// statement per step (in process, no round trip), in one read transaction so that every
/// step sees the same findings.
async fn boundaries(
    db: &Db<'_>,
    scope: &Scope,
    task: &str,
    every: usize,
) -> DbResult<Vec<AuditFindingKey>> {
    let skip = sql_limit(every.max(1) - 1);
    let key = |row: &Row<'_>| Ok(from_row!(row => AuditFindingKey { finding_time_ms, finding_id }));
    if db.dialect() == Dialect::Postgres {
        let walk = Sql::per_dialect(
            "WITH RECURSIVE b (t, id) AS (
                 (SELECT finding_time_ms, finding_id FROM audit_findings
                  WHERE account_id = $1 AND region = $2 AND task_id = $3
                  ORDER BY finding_time_ms, finding_id OFFSET $4 LIMIT 1)
                 UNION ALL
                 SELECT n.finding_time_ms, n.finding_id FROM b CROSS JOIN LATERAL (
                     SELECT finding_time_ms, finding_id FROM audit_findings
                     WHERE account_id = $1 AND region = $2 AND task_id = $3
                       AND (finding_time_ms, finding_id) > (b.t, b.id)
                     ORDER BY finding_time_ms, finding_id OFFSET $4 LIMIT 1) AS n)
             SELECT t, id FROM b ORDER BY t, id",
            "",
        );
        return db
            .query(
                &walk,
                &[&scope.account_id, &scope.region, &task, &skip],
                key,
            )
            .await;
    }
    let step = sql!(
        "SELECT finding_time_ms, finding_id FROM audit_findings",
        " WHERE account_id = $1 AND region = $2 AND task_id = $3",
        " AND (finding_time_ms, finding_id) > ($5, $6)",
        " ORDER BY finding_time_ms, finding_id LIMIT 1 OFFSET $4"
    );
    let walk = async {
        let mut found: Vec<AuditFindingKey> = Vec::new();
        loop {
            let (after_time, after_id) = found.last().map_or((i64::MIN, ""), |k| {
                (k.finding_time_ms, k.finding_id.as_str())
            });
            let params: [&dyn Param; 6] = [
                &scope.account_id,
                &scope.region,
                &task,
                &skip,
                &after_time,
                &after_id,
            ];
            match db.query_opt(step, &params, key).await? {
                Some(k) => found.push(k),
                None => return Ok(found),
            }
        }
    };
    db.batch("BEGIN").await?;
    let found = walk.await;
    // A read transaction: ending it either way releases its snapshot.
    db.batch("COMMIT").await?;
    found
}
