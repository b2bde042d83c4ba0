//! Device Defender audit state: each account's audit configuration, audit tasks with
//! their per-check progress, and the findings they produced.
//!
//! The engine owns the shape of the nested parts (the per-check configuration map, a
//! task's per-check progress, the body of a finding) and hands them over as JSON text:
//! the store keeps as columns only what it filters, orders or limits on.
//!
//! Creating a task checks the in-progress limit and inserts in one transaction that
//! first takes an advisory lock on (scope, task type): creators on every node queue on
//! it, so none can miss another's insert in flight (on SQLite the single writer's
//! IMMEDIATE transaction already excludes every other writer, in any process).
//! Uniqueness of task and work ids is the primary keys' job.

use async_trait::async_trait;

use crate::db::{sql_limit, Db, DbResult, Dialect, Param, Row, Sql};
use crate::work::insert_work_item;
use crate::{NewWorkItem, Scope, StoreResult};

/// What both engines share in applying a stage of an audit mitigation actions task.
pub(crate) mod mitigation_stage;

/// An account's audit configuration (UpdateAccountAuditConfiguration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfigurationRecord {
    pub role_arn: Option<String>,
    /// Check name → `{enabled, configuration}`, JSON owned by the engine.
    pub checks_json: String,
    /// Notification type → target, JSON owned by the engine.
    pub notifications_json: String,
    pub updated_at_ms: i64,
}

/// An audit task, on demand or scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTaskRecord {
    pub task_id: String,
    /// `ON_DEMAND_AUDIT_TASK` or `SCHEDULED_AUDIT_TASK`.
    pub task_type: String,
    /// `IN_PROGRESS`, `COMPLETED`, `FAILED` or `CANCELED`.
    pub status: String,
    pub scheduled_audit_name: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Per-check progress and results, JSON owned by the engine.
    pub checks_json: String,
    /// 1 on creation, one more on every update: updates are conditional on it, so a
    /// cancel and the runner's progress never overwrite each other.
    pub version: i64,
}

/// One finding of one check of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFindingRecord {
    /// Derived from (task, check, resource, reason) by the engine, so writing the same
    /// finding again (a step re-run after a crash) is a no-op.
    pub finding_id: String,
    pub task_id: String,
    pub check_name: String,
    pub task_start_ms: i64,
    pub finding_time_ms: i64,
    /// The non-compliant resource's identifier in a canonical text form, for the
    /// resourceIdentifier filter and suppressions.
    pub resource_key: String,
    pub is_suppressed: bool,
    /// Everything else of the finding (severity, resources, reason), JSON owned by the
    /// engine.
    pub body_json: String,
}

/// A finding without its body (see `AuditStore::list_audit_finding_heads`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFindingHead {
    pub finding_id: String,
    pub check_name: String,
    pub finding_time_ms: i64,
    pub resource_key: String,
    pub is_suppressed: bool,
}

impl From<AuditFindingRecord> for AuditFindingHead {
    fn from(f: AuditFindingRecord) -> Self {
        AuditFindingHead {
            finding_id: f.finding_id,
            check_name: f.check_name,
            finding_time_ms: f.finding_time_ms,
            resource_key: f.resource_key,
            is_suppressed: f.is_suppressed,
        }
    }
}

/// Which tasks ListAuditTasks wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTaskFilter {
    /// Tasks started at or after this.
    pub started_from_ms: i64,
    /// Tasks started at or before this.
    pub started_to_ms: i64,
    pub task_type: Option<String>,
    pub status: Option<String>,
}

/// Where a page of tasks continues: after this (start time, task id), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTaskKey {
    pub started_at_ms: i64,
    pub task_id: String,
}

/// Which findings ListAuditFindings wants. All given conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFindingFilter {
    pub task_id: Option<String>,
    /// Findings found at or after this.
    pub found_from_ms: Option<i64>,
    /// Findings found at or before this.
    pub found_to_ms: Option<i64>,
    pub check_name: Option<String>,
    pub resource_key: Option<String>,
    /// `Some(true)`: only suppressed findings; `Some(false)`: only unsuppressed ones.
    pub suppressed: Option<bool>,
}

/// Where a page of findings continues: after this (finding time, finding id), in
/// ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFindingKey {
    pub finding_time_ms: i64,
    pub finding_id: String,
}

/// Why a task was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditTaskRefusal {
    /// `max_in_progress` tasks of that type are already in progress in the scope.
    TooManyInProgress,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn get_audit_configuration(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<AuditConfigurationRecord>>;
    /// Creates or replaces the scope's configuration.
    async fn put_audit_configuration(
        &self,
        scope: &Scope,
        record: &AuditConfigurationRecord,
    ) -> StoreResult<()>;
    /// Deletes the scope's configuration; returns whether there was one.
    async fn delete_audit_configuration(&self, scope: &Scope) -> StoreResult<bool>;

    /// Inserts the task and enqueues `work` (the item that runs it) in one transaction,
    /// unless `max_in_progress` is given and that many tasks of the same `task_type` are
    /// already `IN_PROGRESS` in the scope (checked atomically with the insert).
    /// `AlreadyExists` if the task id is taken.
    async fn create_audit_task(
        &self,
        scope: &Scope,
        task: &AuditTaskRecord,
        work: &NewWorkItem,
        max_in_progress: Option<usize>,
    ) -> StoreResult<Result<(), AuditTaskRefusal>>;
    async fn get_audit_task(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Option<AuditTaskRecord>>;
    /// Replaces status, finished time and checks of the task if its version is still
    /// `task.version - 1`, storing `task.version`; returns whether it did (false: the
    /// task changed meanwhile, or does not exist).
    async fn update_audit_task(&self, scope: &Scope, task: &AuditTaskRecord) -> StoreResult<bool>;
    /// [`update_audit_task`](Self::update_audit_task), enqueueing `work` in the same
    /// transaction if the update lands (a task's end and the notification it owes are
    /// written together or not at all). A taken work id fails the whole call.
    async fn update_audit_task_with_work(
        &self,
        scope: &Scope,
        task: &AuditTaskRecord,
        work: &NewWorkItem,
    ) -> StoreResult<bool>;
    /// Newest first (start time descending, then task id descending), after `after`.
    async fn list_audit_tasks(
        &self,
        scope: &Scope,
        filter: &AuditTaskFilter,
        after: Option<&AuditTaskKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditTaskRecord>>;

    /// Inserts the findings, skipping any whose id exists already; returns how many were
    /// new. Callers pass at most a few thousand at a time.
    async fn insert_audit_findings(
        &self,
        scope: &Scope,
        findings: &[AuditFindingRecord],
    ) -> StoreResult<u64>;
    async fn get_audit_finding(
        &self,
        scope: &Scope,
        finding_id: &str,
    ) -> StoreResult<Option<AuditFindingRecord>>;
    /// Ascending by (finding time, finding id), after `after`.
    async fn list_audit_findings(
        &self,
        scope: &Scope,
        filter: &AuditFindingFilter,
        after: Option<&AuditFindingKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditFindingRecord>>;
    /// The audit task's findings as [`list_audit_findings`](Self::list_audit_findings)
    /// lists them, without their bodies: what acting on a finding needs when neither its
    /// reason nor the whole finding is wanted. On SQLite they come from an index alone,
    /// not from rows scattered in the order the audit judged its resources.
    async fn list_audit_finding_heads(
        &self,
        scope: &Scope,
        audit_task_id: &str,
        after: Option<&AuditFindingKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditFindingHead>> {
        let filter = AuditFindingFilter {
            task_id: Some(audit_task_id.to_owned()),
            ..AuditFindingFilter::default()
        };
        let findings = self
            .list_audit_findings(scope, &filter, after, limit)
            .await?;
        Ok(findings.into_iter().map(AuditFindingHead::from).collect())
    }

    /// Deletes, in every scope, tasks that finished and findings whose task started
    /// before `before_ms` (the retention); returns how many rows went.
    async fn purge_audit_history(&self, before_ms: i64) -> StoreResult<u64>;
}

/// First key of the advisory locks on (scope, task type) that serialise task creation;
/// 1 to 5 are taken by actions, tags, things, CA subjects and policy targets.
const AUDIT_TASK_LOCK_SPACE: i32 = 6;

/// First key of the one advisory lock that lets a single node purge at a time, so two
/// purges never pick the same task and the row counts they report add up.
const AUDIT_PURGE_LOCK_SPACE: i32 = 7;

/// Rows the purge deletes per transaction, so neither SQLite's single writer nor a
/// PostgreSQL statement (its timeout) is held for long however much history has piled
/// up.
const PURGE_CHUNK: usize = 2_000;

macro_rules! audit_configuration_columns {
    () => {
        "role_arn, checks_json, notifications_json, updated_at_ms"
    };
}

fn audit_configuration(row: &Row<'_>) -> DbResult<AuditConfigurationRecord> {
    Ok(AuditConfigurationRecord {
        role_arn: row.get(0)?,
        checks_json: row.get(1)?,
        notifications_json: row.get(2)?,
        updated_at_ms: row.get(3)?,
    })
}

macro_rules! audit_task_columns {
    () => {
        "task_id, task_type, status, scheduled_audit_name, started_at_ms, finished_at_ms, \
         checks_json, version"
    };
}

fn audit_task(row: &Row<'_>) -> DbResult<AuditTaskRecord> {
    Ok(AuditTaskRecord {
        task_id: row.get(0)?,
        task_type: row.get(1)?,
        status: row.get(2)?,
        scheduled_audit_name: row.get(3)?,
        started_at_ms: row.get(4)?,
        finished_at_ms: row.get(5)?,
        checks_json: row.get(6)?,
        version: row.get(7)?,
    })
}

macro_rules! audit_finding_columns {
    () => {
        "finding_id, task_id, check_name, task_start_ms, finding_time_ms, resource_key, \
         is_suppressed, body_json"
    };
}

fn audit_finding(row: &Row<'_>) -> DbResult<AuditFindingRecord> {
    Ok(AuditFindingRecord {
        finding_id: row.get(0)?,
        task_id: row.get(1)?,
        check_name: row.get(2)?,
        task_start_ms: row.get(3)?,
        finding_time_ms: row.get(4)?,
        resource_key: row.get(5)?,
        is_suppressed: row.get(6)?,
        body_json: row.get(7)?,
    })
}

macro_rules! audit_finding_head_columns {
    () => {
        "finding_id, check_name, finding_time_ms, resource_key, is_suppressed"
    };
}

fn audit_finding_head(row: &Row<'_>) -> DbResult<AuditFindingHead> {
    Ok(AuditFindingHead {
        finding_id: row.get(0)?,
        check_name: row.get(1)?,
        finding_time_ms: row.get(2)?,
        resource_key: row.get(3)?,
        is_suppressed: row.get(4)?,
    })
}

engines! {
    impl AuditStore {
        async fn get_audit_configuration(
            &self,
            scope: &Scope,
        ) -> StoreResult<Option<AuditConfigurationRecord>> {
            self.read(async |db| {
                db.query_opt(
                    sql!(
                        "SELECT ", audit_configuration_columns!(),
                        " FROM audit_configurations WHERE account_id = $1 AND region = $2"
                    ),
                    &[&scope.account_id, &scope.region],
                    audit_configuration,
                )
                .await
            })
            .await
        }

        async fn put_audit_configuration(
            &self,
            scope: &Scope,
            record: &AuditConfigurationRecord,
        ) -> StoreResult<()> {
            let (scope, record) = (scope.clone(), record.clone());
            self.write_one(async move |db| {
                db.execute(
                    sql!(
                        "INSERT INTO audit_configurations (account_id, region, ",
                        audit_configuration_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6)",
                        " ON CONFLICT (account_id, region) DO UPDATE SET",
                        " role_arn = excluded.role_arn, checks_json = excluded.checks_json,",
                        " notifications_json = excluded.notifications_json,",
                        " updated_at_ms = excluded.updated_at_ms"
                    ),
                    &[
                        &scope.account_id,
                        &scope.region,
                        &record.role_arn,
                        &record.checks_json,
                        &record.notifications_json,
                        &record.updated_at_ms,
                    ],
                )
                .await
                .map(drop)
            })
            .await
        }

        async fn delete_audit_configuration(&self, scope: &Scope) -> StoreResult<bool> {
            let scope = scope.clone();
            self.write_one(async move |db| {
                let n = db
                    .execute(
                        sql!("DELETE FROM audit_configurations WHERE account_id = $1 AND region = $2"),
                        &[&scope.account_id, &scope.region],
                    )
                    .await?;
                Ok(n > 0)
            })
            .await
        }

        async fn create_audit_task(
            &self,
            scope: &Scope,
            task: &AuditTaskRecord,
            work: &NewWorkItem,
            max_in_progress: Option<usize>,
        ) -> StoreResult<Result<(), AuditTaskRefusal>> {
            let (scope, task, work) = (scope.clone(), task.clone(), work.clone());
            self.write(async move |db| create_task(db, &scope, &task, &work, max_in_progress).await)
                .await
        }

        async fn get_audit_task(
            &self,
            scope: &Scope,
            task_id: &str,
        ) -> StoreResult<Option<AuditTaskRecord>> {
            self.read(async |db| {
                db.query_opt(
                    sql!(
                        "SELECT ", audit_task_columns!(),
                        " FROM audit_tasks WHERE account_id = $1 AND region = $2 AND task_id = $3"
                    ),
                    &[&scope.account_id, &scope.region, &task_id],
                    audit_task,
                )
                .await
            })
            .await
        }

        async fn update_audit_task(&self, scope: &Scope, task: &AuditTaskRecord) -> StoreResult<bool> {
            // No version precedes i64::MIN, so nothing can match it.
            let Some(previous) = task.version.checked_sub(1) else {
                return Ok(false);
            };
            let (scope, task) = (scope.clone(), task.clone());
            self.write_one(async move |db| update_task(db, &scope, &task, previous).await)
                .await
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
            let (scope, task, work) = (scope.clone(), task.clone(), work.clone());
            self.write(async move |db| {
                if !update_task(db, &scope, &task, previous).await? {
                    return Ok(false);
                }
                // A taken work id fails the whole transaction, so the update goes too.
                insert_work_item(db, &work).await?;
                Ok(true)
            })
            .await
        }

        async fn list_audit_tasks(
            &self,
            scope: &Scope,
            filter: &AuditTaskFilter,
            after: Option<&AuditTaskKey>,
            limit: usize,
        ) -> StoreResult<Vec<AuditTaskRecord>> {
            self.read(async |db| list_tasks(db, scope, filter, after, limit).await)
                .await
        }

        async fn insert_audit_findings(
            &self,
            scope: &Scope,
            findings: &[AuditFindingRecord],
        ) -> StoreResult<u64> {
            if findings.is_empty() {
                return Ok(0);
            }
            let (scope, findings) = (scope.clone(), findings.to_vec());
            let inserted = self
                .write_one(async move |db| insert_findings(db, &scope, &findings).await)
                .await?;
            self.findings_inserted(inserted);
            Ok(inserted)
        }

        async fn get_audit_finding(
            &self,
            scope: &Scope,
            finding_id: &str,
        ) -> StoreResult<Option<AuditFindingRecord>> {
            self.read(async |db| {
                db.query_opt(
                    sql!(
                        "SELECT ", audit_finding_columns!(), " FROM audit_findings",
                        " WHERE account_id = $1 AND region = $2 AND finding_id = $3"
                    ),
                    &[&scope.account_id, &scope.region, &finding_id],
                    audit_finding,
                )
                .await
            })
            .await
        }

        async fn list_audit_findings(
            &self,
            scope: &Scope,
            filter: &AuditFindingFilter,
            after: Option<&AuditFindingKey>,
            limit: usize,
        ) -> StoreResult<Vec<AuditFindingRecord>> {
            self.read(async |db| list_findings(db, scope, filter, after, limit).await)
                .await
        }

        async fn list_audit_finding_heads(
            &self,
            scope: &Scope,
            audit_task_id: &str,
            after: Option<&AuditFindingKey>,
            limit: usize,
        ) -> StoreResult<Vec<AuditFindingHead>> {
            self.read(async |db| list_finding_heads(db, scope, audit_task_id, after, limit).await)
                .await
        }

        async fn purge_audit_history(&self, before_ms: i64) -> StoreResult<u64> {
            let mut purged = 0;
            loop {
                let (deleted, done) = self
                    .write(async move |db| purge_chunk(db, before_ms, PURGE_CHUNK).await)
                    .await?;
                purged += deleted;
                if done {
                    return Ok(purged);
                }
            }
        }
    }
}

async fn create_task(
    db: &Db<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    work: &NewWorkItem,
    max_in_progress: Option<usize>,
) -> DbResult<Result<(), AuditTaskRefusal>> {
    // Taken even without a limit, so that a limited creator's count cannot miss an
    // unlimited insert in flight. Read committed gives the count a snapshot taken after
    // the lock is held.
    let key = format!("{}/{}", scope.key(), task.task_type);
    db.lock(AUDIT_TASK_LOCK_SPACE, &key).await?;
    if let Some(max) = max_in_progress {
        // `status = 'IN_PROGRESS'` spelled out so the partial index applies.
        let in_progress = db
            .count(
                sql!(
                    "SELECT COUNT(*) FROM audit_tasks",
                    " WHERE account_id = $1 AND region = $2 AND task_type = $3",
                    " AND status = 'IN_PROGRESS'"
                ),
                &[&scope.account_id, &scope.region, &task.task_type],
            )
            .await?;
        if in_progress >= max {
            return Ok(Err(AuditTaskRefusal::TooManyInProgress));
        }
    }
    insert_task(db, scope, task, IfTaken::Fail).await?;
    // A taken work id fails the whole transaction, so the task goes too.
    insert_work_item(db, work).await?;
    Ok(Ok(()))
}

/// The version-conditional update of a task; whether it matched.
async fn update_task(
    db: &Db<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    previous: i64,
) -> DbResult<bool> {
    let n = db
        .execute(
            sql!(
                "UPDATE audit_tasks",
                " SET status = $4, finished_at_ms = $5, checks_json = $6, version = $7",
                " WHERE account_id = $1 AND region = $2 AND task_id = $3 AND version = $8"
            ),
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
        .await?;
    Ok(n == 1)
}

/// What inserting a task whose id is taken does.
#[derive(Clone, Copy)]
pub(crate) enum IfTaken {
    /// Fails with `AlreadyExists`: the primary key rejects the row, which also holds
    /// against a concurrent writer on another node.
    Fail,
    /// Inserts nothing: a replayed start of the same scheduled run.
    Skip,
}

/// The insert of a task, with its parameters in the order [`insert_task`] binds them.
pub(crate) fn insert_task_sql(if_taken: IfTaken) -> &'static Sql<'static> {
    match if_taken {
        IfTaken::Fail => sql!(
            "INSERT INTO audit_tasks (account_id, region, ",
            audit_task_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        IfTaken::Skip => sql!(
            "INSERT INTO audit_tasks (account_id, region, ",
            audit_task_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        ),
    }
}

/// Inserts the task inside the caller's transaction (task creation, and a scheduled
/// audit's start); returns whether it did (false only with `IfTaken::Skip`).
pub(crate) async fn insert_task(
    db: &Db<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    if_taken: IfTaken,
) -> DbResult<bool> {
    let n = db
        .insert(
            insert_task_sql(if_taken),
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
        .await?;
    Ok(n == 1)
}

/// Tasks newest first within the filter's (inclusive) start range. Type and status
/// are residual conditions (`$n IS NULL OR ...`) on the start-time index range, so
/// there are only two shapes. Parameters are numbered in the order they are bound:
/// scope, range, type, status, the page key when present, then the limit.
async fn list_tasks(
    db: &Db<'_>,
    scope: &Scope,
    filter: &AuditTaskFilter,
    after: Option<&AuditTaskKey>,
    limit: usize,
) -> DbResult<Vec<AuditTaskRecord>> {
    macro_rules! list {
        ($($cond:literal)?; $limit:literal) => {
            sql!(
                "SELECT ", audit_task_columns!(),
                " FROM audit_tasks WHERE account_id = $1 AND region = $2",
                " AND started_at_ms BETWEEN $3 AND $4",
                " AND ($5::text IS NULL OR task_type = $5)",
                " AND ($6::text IS NULL OR status = $6)",
                $($cond,)?
                " ORDER BY started_at_ms DESC, task_id DESC LIMIT ", $limit
            )
        };
    }
    let limit = sql_limit(limit);
    let mut params: Vec<&dyn Param> = vec![
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
    let sql = match after {
        Some(_) => list!(" AND (started_at_ms, task_id) < ($7, $8)"; "$9"),
        None => list!(; "$7"),
    };
    db.query(sql, &params, audit_task).await
}

/// Findings in (time, id) order. The task filter and the page key pick the index range
/// (by task or by time), so each combination is its own statement; the other
/// conditions are residual filters on that range. Absent time bounds are bound as the
/// extremes, which keeps the range a plain one. Parameters: scope, range, check,
/// resource, suppressed, then the task and the page key when present, then the limit.
async fn list_findings(
    db: &Db<'_>,
    scope: &Scope,
    filter: &AuditFindingFilter,
    after: Option<&AuditFindingKey>,
    limit: usize,
) -> DbResult<Vec<AuditFindingRecord>> {
    macro_rules! list {
        ($window:literal $(, $cond:literal)*; $limit:literal) => {
            sql!(
                "SELECT ", audit_finding_columns!(),
                " FROM audit_findings WHERE account_id = $1 AND region = $2",
                $($cond,)*
                $window,
                " AND ($5::text IS NULL OR check_name = $5)",
                " AND ($6::text IS NULL OR resource_key = $6)",
                " AND ($7::bool IS NULL OR is_suppressed = $7)",
                " ORDER BY finding_time_ms, finding_id LIMIT ", $limit
            )
        };
    }
    // On a page after a key, SQLite gets the time window written `+finding_time_ms` so
    // it cannot pick it as the index range: all findings of an audit can share one time,
    // and a range on it alone rescans the task's findings from the first for every page
    // (0.36 s for a page 900,000 findings in); the key seeks there directly. PostgreSQL
    // keeps the plain window, which bounds its index scan.
    macro_rules! paged {
        ($($cond:literal),*; $limit:literal) => {
            Sql::per_dialect(
                list!(" AND finding_time_ms BETWEEN $3 AND $4" $(, $cond)*; $limit).pg,
                list!(" AND +finding_time_ms BETWEEN $3 AND $4" $(, $cond)*; $limit).lite,
            )
        };
    }
    let limit = sql_limit(limit);
    let from = filter.found_from_ms.unwrap_or(i64::MIN);
    let to = filter.found_to_ms.unwrap_or(i64::MAX);
    let mut params: Vec<&dyn Param> = vec![
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
    let sql = match (filter.task_id.is_some(), after.is_some()) {
        (false, false) => *list!(" AND finding_time_ms BETWEEN $3 AND $4"; "$8"),
        (true, false) => *list!(
            " AND finding_time_ms BETWEEN $3 AND $4",
            " AND task_id = $8";
            "$9"
        ),
        (false, true) => paged!(" AND (finding_time_ms, finding_id) > ($8, $9)"; "$10"),
        (true, true) => paged!(
            " AND task_id = $8",
            " AND (finding_time_ms, finding_id) > ($9, $10)";
            "$11"
        ),
    };
    db.query(&sql, &params, audit_finding).await
}

/// Every column is in audit_findings_by_task (migration 0012), so the heads come from
/// the index alone; SQLite is told to use it. The first page starts after the lowest
/// possible key, so one statement serves every page.
async fn list_finding_heads(
    db: &Db<'_>,
    scope: &Scope,
    task_id: &str,
    after: Option<&AuditFindingKey>,
    limit: usize,
) -> DbResult<Vec<AuditFindingHead>> {
    macro_rules! heads {
        ($from:literal) => {
            sql!(
                "SELECT ",
                audit_finding_head_columns!(),
                $from,
                " WHERE account_id = $1 AND region = $2 AND task_id = $3",
                " AND (finding_time_ms, finding_id) > ($4, $5)",
                " ORDER BY finding_time_ms, finding_id LIMIT $6"
            )
        };
    }
    let sql = Sql::per_dialect(
        heads!(" FROM audit_findings").pg,
        heads!(" FROM audit_findings INDEXED BY audit_findings_by_task").lite,
    );
    let (after_time, after_id) = after.map_or((i64::MIN, ""), |k| {
        (k.finding_time_ms, k.finding_id.as_str())
    });
    db.query(
        &sql,
        &[
            &scope.account_id,
            &scope.region,
            &task_id,
            &after_time,
            &after_id,
            &sql_limit(limit),
        ],
        audit_finding_head,
    )
    .await
}

/// Inserts a batch of findings in one transaction, skipping ids that exist.
async fn insert_findings(
    db: &Db<'_>,
    scope: &Scope,
    findings: &[AuditFindingRecord],
) -> DbResult<u64> {
    if let Some(conn) = db.lite() {
        // One row per execution of a cached statement: SQLite runs in-process, so there
        // is no round trip to save, and a 64-row `VALUES` statement measured no faster
        // than this (about 13 µs a row either way, the index writes being the cost).
        let mut stmt = conn.prepare_cached(
            sql!(
                "INSERT INTO audit_findings (account_id, region, ",
                audit_finding_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
            )
            .lite,
        )?;
        let mut inserted = 0;
        for f in findings {
            inserted += stmt.execute((
                &scope.account_id,
                &scope.region,
                &f.finding_id,
                &f.task_id,
                &f.check_name,
                f.task_start_ms,
                f.finding_time_ms,
                &f.resource_key,
                f.is_suppressed,
                &f.body_json,
            ))?;
        }
        return Ok(u64::try_from(inserted).unwrap_or(u64::MAX));
    }
    // Concurrent calls with overlapping ids wait on each other's uncommitted rows;
    // inserting in id order makes them wait in one direction, never in a cycle.
    let mut sorted: Vec<&AuditFindingRecord> = findings.iter().collect();
    sorted.sort_unstable_by(|a, b| a.finding_id.cmp(&b.finding_id));
    let col =
        |f: fn(&AuditFindingRecord) -> &str| -> Vec<&str> { sorted.iter().map(|r| f(r)).collect() };
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
    // One statement, so one implicit transaction: all of the call or none.
    db.execute_pg(
        concat!(
            "INSERT INTO audit_findings (account_id, region, ",
            audit_finding_columns!(),
            ") SELECT $1, $2, u.* FROM unnest($3::text[], $4::text[], $5::text[],",
            " $6::int8[], $7::int8[], $8::text[], $9::bool[], $10::text[])",
            " AS u(finding_id, task_id, check_name, task_start_ms, finding_time_ms,",
            " resource_key, is_suppressed, body_json)",
            " ON CONFLICT DO NOTHING"
        ),
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
    .await
}

/// Deletes up to `$4` of one task's rows from a table, which neither engine can say
/// with `DELETE ... LIMIT`: by PostgreSQL's `ctid`, by SQLite's `rowid`.
macro_rules! delete_some {
    ($table:literal) => {
        Sql::per_dialect(
            concat!(
                "DELETE FROM ",
                $table,
                " WHERE ctid = ANY(ARRAY(SELECT ctid FROM ",
                $table,
                " WHERE account_id = $1 AND region = $2 AND task_id = $3 LIMIT $4))"
            ),
            concat!(
                "DELETE FROM ",
                $table,
                " WHERE rowid IN (SELECT rowid FROM ",
                $table,
                " WHERE account_id = ?1 AND region = ?2 AND task_id = ?3 LIMIT ?4)"
            ),
        )
    };
}

/// Deletes up to about `budget` rows of purgeable history, oldest task first: a task's
/// findings (through the by-task index), then the task once none are left. Returns
/// the rows deleted and whether nothing purgeable remains.
async fn purge_chunk(db: &Db<'_>, before_ms: i64, budget: usize) -> DbResult<(u64, bool)> {
    // One node purges at a time (SQLite's writer already purges alone).
    if db.dialect() == Dialect::Postgres {
        db.execute_pg(
            "SELECT pg_advisory_xact_lock($1, 0)",
            &[&AUDIT_PURGE_LOCK_SPACE],
        )
        .await?;
    }
    let mut left = budget;
    let mut deleted = 0;
    while left > 0 {
        let next = db
            .query_opt(
                sql!(
                    "SELECT account_id, region, task_id FROM audit_tasks",
                    " WHERE started_at_ms < $1 AND status <> 'IN_PROGRESS'",
                    " ORDER BY started_at_ms LIMIT 1"
                ),
                &[&before_ms],
                |row| {
                    Ok((
                        row.get::<String>(0)?,
                        row.get::<String>(1)?,
                        row.get::<String>(2)?,
                    ))
                },
            )
            .await?;
        let Some((account_id, region, task_id)) = next else {
            return Ok((deleted, true));
        };
        let findings = db
            .execute(
                &delete_some!("audit_findings"),
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
        let related = db
            .execute(
                &delete_some!("audit_finding_related_resources"),
                &[&account_id, &region, &task_id, &sql_limit(left)],
            )
            .await?;
        deleted += related;
        left = left.saturating_sub(usize::try_from(related).unwrap_or(usize::MAX));
        if left == 0 {
            break;
        }
        deleted += db
            .execute(
                sql!(
                    "DELETE FROM audit_tasks",
                    " WHERE account_id = $1 AND region = $2 AND task_id = $3",
                    " AND status <> 'IN_PROGRESS'"
                ),
                &[&account_id, &region, &task_id],
            )
            .await?;
        left -= 1;
    }
    Ok((deleted, false))
}
