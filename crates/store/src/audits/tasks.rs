//! Audit tasks: creation under the in-progress limit, versioned updates, listing.

use super::audit_task;
use crate::db::{sql_limit, Db, DbResult, Param, Sql};
use crate::work::insert_work_item;
use crate::{AuditTaskFilter, AuditTaskKey, AuditTaskRecord, AuditTaskRefusal, NewWorkItem, Scope};

/// First key of the advisory locks on (scope, task type) that serialise task creation;
/// 1 to 5 are taken by actions, tags, things, CA subjects and policy targets.
const AUDIT_TASK_LOCK_SPACE: i32 = 6;

pub(super) async fn create_task(
    db: &Db<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    work: &NewWorkItem,
    max_in_progress: Option<usize>,
) -> DbResult<Result<(), AuditTaskRefusal>> {
    // Taken even without a limit, so that a limited creator's count cannot miss an
    // unlimited insert in flight; on PostgreSQL, read committed gives the count a
    // snapshot taken after the lock is held. On SQLite no other writer can start or
    // insert a task between this count and the insert below.
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
pub(super) async fn update_task(
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
fn insert_task_sql(if_taken: IfTaken) -> &'static Sql<'static> {
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
pub(super) async fn list_tasks(
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
