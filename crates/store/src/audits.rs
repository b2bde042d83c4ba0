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

use palisade_store_macros::engines;

use crate::db::{DbResult, Row};
use crate::purge;
use crate::work::insert_work_item;
use crate::{NewWorkItem, Scope, StoreResult};

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

macro_rules! audit_configuration_columns {
    () => {
        "role_arn, checks_json, notifications_json, updated_at_ms"
    };
}

fn audit_configuration(row: &Row<'_>) -> DbResult<AuditConfigurationRecord> {
    Ok(from_row!(row => AuditConfigurationRecord {
        role_arn, checks_json, notifications_json, updated_at_ms
    }))
}

macro_rules! audit_task_columns {
    () => {
        "task_id, task_type, status, scheduled_audit_name, started_at_ms, finished_at_ms, \
         checks_json, version"
    };
}

fn audit_task(row: &Row<'_>) -> DbResult<AuditTaskRecord> {
    Ok(from_row!(row => AuditTaskRecord {
        task_id, task_type, status, scheduled_audit_name, started_at_ms, finished_at_ms,
        checks_json, version
    }))
}

macro_rules! audit_finding_columns {
    () => {
        "finding_id, task_id, check_name, task_start_ms, finding_time_ms, resource_key, \
         is_suppressed, body_json"
    };
}

fn audit_finding(row: &Row<'_>) -> DbResult<AuditFindingRecord> {
    Ok(from_row!(row => AuditFindingRecord {
        finding_id, task_id, check_name, task_start_ms, finding_time_ms, resource_key,
        is_suppressed, body_json
    }))
}

macro_rules! audit_finding_head_columns {
    () => {
        "finding_id, check_name, finding_time_ms, resource_key, is_suppressed"
    };
}

fn audit_finding_head(row: &Row<'_>) -> DbResult<AuditFindingHead> {
    Ok(from_row!(row => AuditFindingHead {
        finding_id, check_name, finding_time_ms, resource_key, is_suppressed
    }))
}

mod findings;
mod tasks;

use findings::{insert_findings, list_finding_heads, list_findings, HISTORY};
use tasks::{create_task, list_tasks, update_task};
pub(crate) use tasks::{insert_task, IfTaken};

#[engines]
pub trait AuditStore: Send + Sync {
    async fn get_audit_configuration(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<AuditConfigurationRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    audit_configuration_columns!(),
                    " FROM audit_configurations WHERE account_id = $1 AND region = $2"
                ),
                &[&scope.account_id, &scope.region],
                audit_configuration,
            )
            .await
        })
        .await
    }

    /// Creates or replaces the scope's configuration.
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

    /// Deletes the scope's configuration; returns whether there was one.
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
                    "SELECT ",
                    audit_task_columns!(),
                    " FROM audit_tasks WHERE account_id = $1 AND region = $2 AND task_id = $3"
                ),
                &[&scope.account_id, &scope.region, &task_id],
                audit_task,
            )
            .await
        })
        .await
    }

    /// When the scheduled audit `name` last started a task before `before_ms` (its
    /// previous run, the window of the connection checks); `None` if it never did.
    async fn previous_scheduled_audit_start(
        &self,
        scope: &Scope,
        name: &str,
        before_ms: i64,
    ) -> StoreResult<Option<i64>> {
        self.read(async |db| {
            db.value(
                sql!(
                    "SELECT MAX(started_at_ms) FROM audit_tasks",
                    " WHERE account_id = $1 AND region = $2",
                    " AND task_type = 'SCHEDULED_AUDIT_TASK' AND scheduled_audit_name = $3",
                    " AND started_at_ms < $4"
                ),
                &[&scope.account_id, &scope.region, &name, &before_ms],
            )
            .await
            .map(Option::flatten)
        })
        .await
    }

    /// Replaces status, finished time and checks of the task if its version is still
    /// `task.version - 1`, storing `task.version`; returns whether it did (false: the
    /// task changed meanwhile, or does not exist).
    async fn update_audit_task(&self, scope: &Scope, task: &AuditTaskRecord) -> StoreResult<bool> {
        // No version precedes i64::MIN, so nothing can match it.
        let Some(previous) = task.version.checked_sub(1) else {
            return Ok(false);
        };
        let (scope, task) = (scope.clone(), task.clone());
        self.write_one(async move |db| update_task(db, &scope, &task, previous).await)
            .await
    }

    /// [`update_audit_task`](Self::update_audit_task), enqueueing `work` in the same
    /// transaction if the update lands (a task's end and the notification it owes are
    /// written together or not at all). A taken work id fails the whole call.
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

    /// Newest first (start time descending, then task id descending), after `after`.
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

    /// Inserts the findings, skipping any whose id exists already; returns how many were
    /// new. Callers pass at most a few thousand at a time.
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
                    "SELECT ",
                    audit_finding_columns!(),
                    " FROM audit_findings",
                    " WHERE account_id = $1 AND region = $2 AND finding_id = $3"
                ),
                &[&scope.account_id, &scope.region, &finding_id],
                audit_finding,
            )
            .await
        })
        .await
    }

    /// Ascending by (finding time, finding id), after `after`.
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
        self.read(async |db| list_finding_heads(db, scope, audit_task_id, after, limit).await)
            .await
    }

    /// Deletes, in every scope, tasks that finished and findings whose task started
    /// before `before_ms` (the retention); returns how many rows went.
    async fn purge_audit_history(&self, before_ms: i64) -> StoreResult<u64> {
        purge::all(|| {
            self.write(async move |db| purge::chunk(db, &HISTORY, before_ms, purge::CHUNK).await)
        })
        .await
    }
}
