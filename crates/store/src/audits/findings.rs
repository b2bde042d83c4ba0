//! Audit findings: the batch insert, listings, and the purge of old history.

use super::{audit_finding, audit_finding_head};
use crate::db::{sql_limit, Db, DbResult, Param, Sql};
use crate::purge::{self, delete_some};
use crate::{AuditFindingFilter, AuditFindingHead, AuditFindingKey, AuditFindingRecord, Scope};

/// First key of the one advisory lock that lets a single node purge at a time, so two
/// purges never pick the same task and the row counts they report add up.
const AUDIT_PURGE_LOCK_SPACE: i32 = 7;

/// Findings in (time, id) order. The task filter and the page key pick the index range
/// (by task or by time), so each combination is its own statement; the other
/// conditions are residual filters on that range. Absent time bounds are bound as the
/// extremes, which keeps the range a plain one. Parameters: scope, range, check,
/// resource, suppressed, then the task and the page key when present, then the limit.
pub(super) async fn list_findings(
    db: &Db<'_>,
    scope: &Scope,
    filter: &AuditFindingFilter,
    after: Option<&AuditFindingKey>,
    limit: usize,
) -> DbResult<Vec<AuditFindingRecord>> {
    // `list!(window, conditions..; limit)`: the conditions go before the window.
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
pub(super) async fn list_finding_heads(
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
pub(super) async fn insert_findings(
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

/// Finished audit tasks with their findings, then their findings' related resources
/// (after the findings, so no listed finding ever lacks its related resources).
pub(super) const HISTORY: purge::History = purge::History {
    lock_space: AUDIT_PURGE_LOCK_SPACE,
    oldest: sql!(
        "SELECT account_id, region, task_id FROM audit_tasks",
        " WHERE started_at_ms < $1 AND status <> 'IN_PROGRESS'",
        " ORDER BY started_at_ms LIMIT 1"
    ),
    rows: &[
        delete_some!("audit_findings"),
        delete_some!("audit_finding_related_resources"),
    ],
    task: sql!(
        "DELETE FROM audit_tasks WHERE account_id = $1 AND region = $2 AND task_id = $3",
        " AND status <> 'IN_PROGRESS'"
    ),
};
