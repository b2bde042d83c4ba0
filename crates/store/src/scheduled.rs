//! Scheduled audits (CreateScheduledAudit and friends) and what the scheduler needs to
//! start each one once per period.
//!
//! The engine owns the calendar: it computes every schedule's next occurrence
//! (`next_run_ms`) and hands it over. The store keeps it as an indexed column, so the
//! scheduler's "what is due" is one range read across all accounts, and starting a run
//! is a compare-and-set on it: of several nodes racing to start the same occurrence,
//! exactly one moves `next_run_ms` on and inserts the task.

use async_trait::async_trait;

use crate::{AuditTaskRecord, NewWorkItem, Scope, StoreResult, Tag};

/// One scheduled audit as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledAuditRecord {
    pub name: String,
    pub arn: String,
    /// An `AuditFrequency`, as on the wire.
    pub frequency: String,
    /// A `DayOfWeek`, as on the wire; WEEKLY and BIWEEKLY only.
    pub day_of_week: Option<String>,
    /// `1`..`31` or `LAST`; MONTHLY only.
    pub day_of_month: Option<String>,
    /// The target check names, JSON owned by the engine.
    pub checks_json: String,
    /// When the timing rules (frequency and day) were last set: occurrences before it
    /// never run, and a BIWEEKLY schedule counts its fortnights from it.
    pub anchor_ms: i64,
    /// The next occurrence not yet started.
    pub next_run_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The new state of a scheduled audit, merged by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledAuditUpdate {
    pub frequency: String,
    pub day_of_week: Option<String>,
    pub day_of_month: Option<String>,
    pub checks_json: String,
    /// New `(anchor_ms, next_run_ms)` when the timing rules changed. `None` keeps both,
    /// so an update of the checks alone never moves a run the scheduler is starting.
    pub timing: Option<(i64, i64)>,
    pub updated_at_ms: i64,
}

/// Why a scheduled audit was not created. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledAuditRefusal {
    /// A scheduled audit of that name exists in the scope.
    NameExists,
    /// The scope already holds the limit's worth of scheduled audits.
    LimitReached,
}

/// A scheduled audit whose next run is due, with the scope it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueScheduledAudit {
    pub scope: Scope,
    pub record: ScheduledAuditRecord,
}

/// How an attempt to advance a due schedule went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledRunOutcome {
    /// `next_run_ms` moved on, and the task and its work item were inserted.
    Started,
    /// `next_run_ms` moved on without a new task: none was given, or a task with its
    /// id exists already (that occurrence was started before).
    Advanced,
    /// The schedule is gone or its `next_run_ms` is no longer the expected one (another
    /// node started it, or an update moved it): nothing was written.
    Superseded,
}

#[async_trait]
pub trait ScheduledAuditStore: Send + Sync {
    /// Inserts the scheduled audit and its tags unless a refusal applies; the name
    /// check, the count and the insert are atomic against concurrent creates in the
    /// scope, on every node.
    async fn create_scheduled_audit(
        &self,
        scope: &Scope,
        record: &ScheduledAuditRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<Result<(), ScheduledAuditRefusal>>;
    async fn get_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<ScheduledAuditRecord>>;
    /// Applies the update and returns the record as it is afterwards; `None` if there
    /// is no such scheduled audit.
    async fn update_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
        update: &ScheduledAuditUpdate,
    ) -> StoreResult<Option<ScheduledAuditRecord>>;
    /// Deletes the scheduled audit and the tags on its ARN; returns whether it existed.
    async fn delete_scheduled_audit(&self, scope: &Scope, name: &str) -> StoreResult<bool>;
    /// Deletes every scheduled audit of the scope with their tags, in one transaction;
    /// returns how many there were.
    async fn delete_all_scheduled_audits(&self, scope: &Scope) -> StoreResult<u64>;
    /// Up to `limit` scheduled audits ordered by name (byte order), with names strictly
    /// greater than `after`.
    async fn list_scheduled_audits(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ScheduledAuditRecord>>;

    /// Up to `limit` scheduled audits of every scope whose `next_run_ms` is at or
    /// before `now_ms`, earliest first (then by account, region and name).
    async fn due_scheduled_audits(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueScheduledAudit>>;
    /// In one transaction: if the schedule's `next_run_ms` is still `expected_next_ms`,
    /// sets it to `next_run_ms` and, when `start` is given, inserts that task (skipped
    /// if its id exists) and enqueues its work item. Of several callers racing with the
    /// same expectation, exactly one gets something other than `Superseded`.
    async fn advance_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
        expected_next_ms: i64,
        next_run_ms: i64,
        start: Option<(&AuditTaskRecord, &NewWorkItem)>,
    ) -> StoreResult<ScheduledRunOutcome>;
}
