//! Scheduled audits (CreateScheduledAudit and friends) and what the scheduler needs to
//! start each one once per period.
//!
//! The engine owns the calendar: it computes every schedule's next occurrence
//! (`next_run_ms`) and hands it over. The store keeps it as an indexed column, so the
//! scheduler's "what is due" is one range read across all accounts, and starting a run
//! is a compare-and-set on it: of several nodes racing to start the same occurrence,
//! exactly one moves `next_run_ms` on and inserts the task.

use palisade_store_macros::engines;

use crate::audits::{insert_task, IfTaken};
use crate::db::{sql_limit, Db, DbResult, Row};
use crate::work::insert_work_item;
use crate::{tags, AuditTaskRecord, NewWorkItem, Scope, StoreResult, Tag};

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

/// First key of the advisory locks that serialise scheduled audit creation per scope;
/// 1 to 8 are taken (actions, tags, things, CA subjects, policy targets, audit tasks,
/// the audit purge, suppressions). Not 9, which a table written alongside this one
/// might take: two lock spaces sharing a number would make unrelated writers wait.
const SCHEDULED_AUDIT_LOCK_SPACE: i32 = 10;

macro_rules! scheduled_columns {
    () => {
        "name, arn, frequency, day_of_week, day_of_month, checks_json, anchor_ms, \
         next_run_ms, created_at_ms, updated_at_ms"
    };
}

/// Maps a row of `scheduled_columns!()` starting at column `at`.
fn record_at(row: &Row<'_>, at: usize) -> DbResult<ScheduledAuditRecord> {
    Ok(from_row!(row, at => ScheduledAuditRecord {
        name, arn, frequency, day_of_week, day_of_month, checks_json, anchor_ms, next_run_ms,
        created_at_ms, updated_at_ms
    }))
}

fn record(row: &Row<'_>) -> DbResult<ScheduledAuditRecord> {
    record_at(row, 0)
}

#[engines]
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
    ) -> StoreResult<Result<(), ScheduledAuditRefusal>> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write(async move |db| create(db, &scope, &record, &tags, limit).await)
            .await
    }

    async fn get_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<ScheduledAuditRecord>> {
        self.read(async |db| get(db, scope, name).await).await
    }

    /// Applies the update and returns the record as it is afterwards; `None` if there
    /// is no such scheduled audit.
    async fn update_scheduled_audit(
        &self,
        scope: &Scope,
        name: &str,
        update: &ScheduledAuditUpdate,
    ) -> StoreResult<Option<ScheduledAuditRecord>> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write_one(async move |db| {
            let (anchor, next) = update.timing.unzip();
            db.query_opt(
                sql!(
                    "UPDATE scheduled_audits SET frequency = $4, day_of_week = $5,",
                    " day_of_month = $6, checks_json = $7,",
                    " anchor_ms = COALESCE($8::BIGINT, anchor_ms),",
                    " next_run_ms = COALESCE($9::BIGINT, next_run_ms),",
                    " updated_at_ms = $10",
                    " WHERE account_id = $1 AND region = $2 AND name = $3 RETURNING ",
                    scheduled_columns!()
                ),
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
                record,
            )
            .await
        })
        .await
    }

    /// Deletes the scheduled audit and the tags on its ARN; returns whether it existed.
    async fn delete_scheduled_audit(&self, scope: &Scope, name: &str) -> StoreResult<bool> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write(async move |db| {
            tags::delete_tagged(
                db,
                &scope,
                sql!(
                    "DELETE FROM scheduled_audits",
                    " WHERE account_id = $1 AND region = $2 AND name = $3 RETURNING arn"
                ),
                &[&scope.account_id, &scope.region, &name],
            )
            .await
        })
        .await
    }

    /// Deletes every scheduled audit of the scope with their tags, in one transaction;
    /// returns how many there were.
    async fn delete_all_scheduled_audits(&self, scope: &Scope) -> StoreResult<u64> {
        let scope = scope.clone();
        self.write(async move |db| {
            let arns: Vec<String> = db
                .query(
                    sql!(
                        "DELETE FROM scheduled_audits WHERE account_id = $1 AND region = $2",
                        " RETURNING arn"
                    ),
                    &[&scope.account_id, &scope.region],
                    |row| row.get(0),
                )
                .await?;
            for arn in &arns {
                tags::delete_all(db, &scope, arn).await?;
            }
            Ok(u64::try_from(arns.len()).unwrap_or(u64::MAX))
        })
        .await
    }

    /// Up to `limit` scheduled audits ordered by name (byte order), with names strictly
    /// greater than `after`.
    async fn list_scheduled_audits(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ScheduledAuditRecord>> {
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT ",
                    scheduled_columns!(),
                    " FROM scheduled_audits WHERE account_id = $1 AND region = $2",
                    " AND ($3::TEXT IS NULL OR name > $3) ORDER BY name LIMIT $4"
                ),
                &[&scope.account_id, &scope.region, &after, &sql_limit(limit)],
                record,
            )
            .await
        })
        .await
    }

    /// Up to `limit` scheduled audits of every scope whose `next_run_ms` is at or
    /// before `now_ms`, earliest first (then by account, region and name).
    async fn due_scheduled_audits(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueScheduledAudit>> {
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT account_id, region, ",
                    scheduled_columns!(),
                    " FROM scheduled_audits WHERE next_run_ms <= $1",
                    " ORDER BY next_run_ms, account_id, region, name LIMIT $2"
                ),
                &[&now_ms, &sql_limit(limit)],
                |row| {
                    Ok(DueScheduledAudit {
                        scope: Scope {
                            account_id: row.get(0)?,
                            region: row.get(1)?,
                        },
                        record: record_at(row, 2)?,
                    })
                },
            )
            .await
        })
        .await
    }

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
    ) -> StoreResult<ScheduledRunOutcome> {
        let (scope, name) = (scope.clone(), name.to_owned());
        let start = start.map(|(task, work)| (task.clone(), work.clone()));
        self.write(async move |db| {
            // The compare-and-set: of several nodes starting the same occurrence, the
            // second one's update waits on the first one's row lock (SQLite: the
            // writer's turn), re-reads the row once it commits and matches nothing.
            let moved = db
                .execute(
                    sql!(
                        "UPDATE scheduled_audits SET next_run_ms = $5",
                        " WHERE account_id = $1 AND region = $2 AND name = $3",
                        " AND next_run_ms = $4"
                    ),
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
            Ok(match &start {
                Some((task, work)) if insert_task(db, &scope, task, IfTaken::Skip).await? => {
                    insert_work_item(db, work).await?;
                    ScheduledRunOutcome::Started
                }
                _ => ScheduledRunOutcome::Advanced,
            })
        })
        .await
    }
}

async fn get(db: &Db<'_>, scope: &Scope, name: &str) -> DbResult<Option<ScheduledAuditRecord>> {
    db.query_opt(
        sql!(
            "SELECT ",
            scheduled_columns!(),
            " FROM scheduled_audits WHERE account_id = $1 AND region = $2 AND name = $3"
        ),
        &[&scope.account_id, &scope.region, &name],
        record,
    )
    .await
}

/// Creators in one scope queue on the scope's lock (SQLite: the writer's turn), so the
/// name check and the count see every create committed before.
async fn create(
    db: &Db<'_>,
    scope: &Scope,
    record: &ScheduledAuditRecord,
    tags: &[Tag],
    limit: usize,
) -> DbResult<Result<(), ScheduledAuditRefusal>> {
    db.lock(SCHEDULED_AUDIT_LOCK_SPACE, &scope.key()).await?;
    if get(db, scope, &record.name).await?.is_some() {
        return Ok(Err(ScheduledAuditRefusal::NameExists));
    }
    let count = db
        .count(
            sql!("SELECT COUNT(*) FROM scheduled_audits WHERE account_id = $1 AND region = $2"),
            &[&scope.account_id, &scope.region],
        )
        .await?;
    if count >= limit {
        return Ok(Err(ScheduledAuditRefusal::LimitReached));
    }
    db.insert(
        sql!(
            "INSERT INTO scheduled_audits (account_id, region, ",
            scheduled_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ),
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
    .await?;
    tags::upsert(db, scope, &record.arn, tags).await?;
    Ok(Ok(()))
}
