//! Audit configuration, tasks and findings on SQLite.
//!
//! Every write runs in the single writer's IMMEDIATE transaction, so the in-progress
//! limit counted at the start of `create_audit_task` still holds when its insert
//! commits, against every other connection and process on the file.
//!
//! Findings go in one row per execution of a cached statement, all in one transaction:
//! SQLite runs in-process, so there is no round trip to save, and a 64-row `VALUES`
//! statement measured no faster than this (about 13 µs a row either way, the index
//! writes being the cost).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction};

use super::error::{insert_err, sql_err};
use super::work::insert_work_item;
use super::{rows, sql_limit, SqliteStore};
use crate::{
    AuditConfigurationRecord, AuditFindingFilter, AuditFindingHead, AuditFindingKey,
    AuditFindingRecord, AuditStore, AuditTaskFilter, AuditTaskKey, AuditTaskRecord,
    AuditTaskRefusal, NewWorkItem, Scope, StoreResult,
};

/// Rows the purge deletes per transaction, so the single writer is never held for
/// long however much history has piled up.
const PURGE_CHUNK: usize = 2_000;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn get_audit_configuration(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<AuditConfigurationRecord>> {
        let scope = scope.clone();
        self.read_conn(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                audit_configuration_columns!(),
                " FROM audit_configurations WHERE account_id = ?1 AND region = ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (&scope.account_id, &scope.region),
                    rows::audit_configuration,
                )
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn put_audit_configuration(
        &self,
        scope: &Scope,
        record: &AuditConfigurationRecord,
    ) -> StoreResult<()> {
        let (scope, record) = (scope.clone(), record.clone());
        self.write_tx(move |tx| {
            tx.prepare_cached(concat!(
                "INSERT INTO audit_configurations (account_id, region, ",
                audit_configuration_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                " ON CONFLICT (account_id, region) DO UPDATE SET",
                " role_arn = excluded.role_arn, checks_json = excluded.checks_json,",
                " notifications_json = excluded.notifications_json,",
                " updated_at_ms = excluded.updated_at_ms"
            ))
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &record.role_arn,
                    &record.checks_json,
                    &record.notifications_json,
                    record.updated_at_ms,
                ))
            })
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_audit_configuration(&self, scope: &Scope) -> StoreResult<bool> {
        let scope = scope.clone();
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "DELETE FROM audit_configurations WHERE account_id = ?1 AND region = ?2",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region)))
            .map(|n| n > 0)
            .map_err(sql_err)
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
        self.write_tx(move |tx| {
            if let Some(max) = max_in_progress {
                // Inside the IMMEDIATE transaction: no other writer can start or insert
                // a task between this count and the insert below.
                if count_in_progress(tx, &scope, &task.task_type)? >= max {
                    return Ok(Err(AuditTaskRefusal::TooManyInProgress));
                }
            }
            insert_task(tx, &scope, &task, IfTaken::Fail)?;
            // A taken work id fails the whole transaction, so the task goes too.
            insert_work_item(tx, &work)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn get_audit_task(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Option<AuditTaskRecord>> {
        let (scope, task_id) = (scope.clone(), task_id.to_owned());
        self.read_conn(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                audit_task_columns!(),
                " FROM audit_tasks WHERE account_id = ?1 AND region = ?2 AND task_id = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (&scope.account_id, &scope.region, &task_id),
                    rows::audit_task,
                )
                .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn update_audit_task(&self, scope: &Scope, task: &AuditTaskRecord) -> StoreResult<bool> {
        // No version precedes i64::MIN, so nothing can match it.
        let Some(previous) = task.version.checked_sub(1) else {
            return Ok(false);
        };
        let (scope, task) = (scope.clone(), task.clone());
        self.write_tx(move |tx| update_task(tx, &scope, &task, previous))
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
        self.write_tx(move |tx| {
            if !update_task(tx, &scope, &task, previous)? {
                return Ok(false);
            }
            // An error here drops the transaction uncommitted: the update goes too.
            insert_work_item(tx, &work)?;
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
        let (scope, filter, after) = (scope.clone(), filter.clone(), after.cloned());
        self.read_conn(move |conn| {
            let (after_start, after_id) = after.map(|k| (k.started_at_ms, k.task_id)).unzip();
            let mut stmt = conn
                .prepare_cached(list_tasks_sql(after_start.is_some()))
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        filter.started_from_ms,
                        filter.started_to_ms,
                        &filter.task_type,
                        &filter.status,
                        after_start,
                        &after_id,
                        sql_limit(limit),
                    ),
                    rows::audit_task,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
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
        self.write_tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(concat!(
                    "INSERT INTO audit_findings (account_id, region, ",
                    audit_finding_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING"
                ))
                .map_err(sql_err)?;
            let mut inserted = 0;
            for f in &findings {
                inserted += stmt
                    .execute((
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
                    ))
                    .map_err(sql_err)?;
            }
            Ok(u64::try_from(inserted).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn get_audit_finding(
        &self,
        scope: &Scope,
        finding_id: &str,
    ) -> StoreResult<Option<AuditFindingRecord>> {
        let (scope, finding_id) = (scope.clone(), finding_id.to_owned());
        self.read_conn(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                audit_finding_columns!(),
                " FROM audit_findings WHERE account_id = ?1 AND region = ?2 AND finding_id = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(
                    (&scope.account_id, &scope.region, &finding_id),
                    rows::audit_finding,
                )
                .optional()
            })
            .map_err(sql_err)
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
        let (scope, filter, after) = (scope.clone(), filter.clone(), after.cloned());
        self.read_conn(move |conn| {
            let (after_time, after_id) = after.map(|k| (k.finding_time_ms, k.finding_id)).unzip();
            let sql = list_findings_sql(filter.task_id.is_some(), after_time.is_some());
            let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &filter.task_id,
                        filter.found_from_ms.unwrap_or(i64::MIN),
                        filter.found_to_ms.unwrap_or(i64::MAX),
                        &filter.check_name,
                        &filter.resource_key,
                        filter.suppressed,
                        after_time,
                        &after_id,
                        sql_limit(limit),
                    ),
                    rows::audit_finding,
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn list_audit_finding_heads(
        &self,
        scope: &Scope,
        audit_task_id: &str,
        after: Option<&AuditFindingKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditFindingHead>> {
        let (scope, audit_task_id, after) =
            (scope.clone(), audit_task_id.to_owned(), after.cloned());
        self.read_conn(move |conn| {
            // Every column is in audit_findings_by_task (migration 0012), so SQLite reads
            // the index alone. The first page starts after the lowest possible key, so
            // one statement serves every page.
            let (after_time, after_id) = after.map(|k| (k.finding_time_ms, k.finding_id)).unzip();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT finding_id, check_name, finding_time_ms, resource_key, is_suppressed
                     FROM audit_findings INDEXED BY audit_findings_by_task
                     WHERE account_id = ?1 AND region = ?2 AND task_id = ?3
                       AND (finding_time_ms, finding_id) > (?4, ?5)
                     ORDER BY finding_time_ms, finding_id LIMIT ?6",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &audit_task_id,
                        after_time.unwrap_or(i64::MIN),
                        after_id.unwrap_or_default(),
                        sql_limit(limit),
                    ),
                    |r| {
                        Ok(AuditFindingHead {
                            finding_id: r.get(0)?,
                            check_name: r.get(1)?,
                            finding_time_ms: r.get(2)?,
                            resource_key: r.get(3)?,
                            is_suppressed: r.get(4)?,
                        })
                    },
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn purge_audit_history(&self, before_ms: i64) -> StoreResult<u64> {
        let mut purged = 0;
        loop {
            let (deleted, done) = self
                .write_tx(move |tx| purge_chunk(tx, before_ms, PURGE_CHUNK))
                .await?;
            purged += deleted;
            if done {
                return Ok(purged);
            }
        }
    }
}

/// Tasks newest first within the filter's (inclusive) start range. Type and status
/// are residual conditions (`?n IS NULL OR ...`) on the start-time index range, so there
/// are only two shapes (with and without the page key). The limit is always the
/// highest-numbered parameter: SQLite ignores the others when a shape does not use
/// them, but the count of parameters is that of the highest number.
fn list_tasks_sql(paged: bool) -> &'static str {
    macro_rules! list {
        ($($cond:literal)?) => {
            concat!(
                "SELECT ",
                audit_task_columns!(),
                " FROM audit_tasks WHERE account_id = ?1 AND region = ?2",
                " AND started_at_ms BETWEEN ?3 AND ?4",
                " AND (?5 IS NULL OR task_type = ?5) AND (?6 IS NULL OR status = ?6)",
                $($cond,)?
                " ORDER BY started_at_ms DESC, task_id DESC LIMIT ?9"
            )
        };
    }
    if paged {
        list!(" AND (started_at_ms, task_id) < (?7, ?8)")
    } else {
        list!()
    }
}

/// Findings in (time, id) order. The task filter and the page key pick the index range
/// (by task or by time), so each combination is its own statement; the other
/// conditions are residual filters on that range. Absent time bounds are bound as the
/// extremes, which keeps the range a plain one.
fn list_findings_sql(by_task: bool, paged: bool) -> &'static str {
    // On a page after a key, the time window is written `+finding_time_ms` so SQLite
    // cannot pick it as the index range: all findings of an audit can share one time,
    // and a range on it alone rescans the task's findings from the first for every page
    // (0.36 s for a page 900,000 findings in); the key seeks there directly.
    macro_rules! list {
        ($($cond:literal),*) => {
            list!(@ " AND finding_time_ms BETWEEN ?4 AND ?5", $($cond),*)
        };
        (@paged $($cond:literal),*) => {
            list!(@ " AND +finding_time_ms BETWEEN ?4 AND ?5", $($cond),*)
        };
        (@ $window:literal, $($cond:literal),*) => {
            concat!(
                "SELECT ",
                audit_finding_columns!(),
                " FROM audit_findings WHERE account_id = ?1 AND region = ?2",
                $($cond,)*
                $window,
                " AND (?6 IS NULL OR check_name = ?6)",
                " AND (?7 IS NULL OR resource_key = ?7)",
                " AND (?8 IS NULL OR is_suppressed = ?8)",
                " ORDER BY finding_time_ms, finding_id LIMIT ?11"
            )
        };
    }
    match (by_task, paged) {
        (false, false) => list!(@ " AND finding_time_ms BETWEEN ?4 AND ?5",),
        (true, false) => list!(" AND task_id = ?3"),
        (false, true) => list!(@paged " AND (finding_time_ms, finding_id) > (?9, ?10)"),
        (true, true) => list!(
            @paged " AND task_id = ?3",
            " AND (finding_time_ms, finding_id) > (?9, ?10)"
        ),
    }
}

/// The version-conditional update of a task; whether it matched.
fn update_task(
    tx: &Transaction<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    previous: i64,
) -> StoreResult<bool> {
    tx.prepare_cached(
        "UPDATE audit_tasks
         SET status = ?4, finished_at_ms = ?5, checks_json = ?6, version = ?7
         WHERE account_id = ?1 AND region = ?2 AND task_id = ?3 AND version = ?8",
    )
    .and_then(|mut stmt| {
        stmt.execute((
            &scope.account_id,
            &scope.region,
            &task.task_id,
            &task.status,
            task.finished_at_ms,
            &task.checks_json,
            task.version,
            previous,
        ))
    })
    .map(|n| n == 1)
    .map_err(sql_err)
}

fn count_in_progress(tx: &Transaction<'_>, scope: &Scope, task_type: &str) -> StoreResult<usize> {
    // `status = 'IN_PROGRESS'` spelled out so the partial index applies.
    let count: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM audit_tasks
             WHERE account_id = ?1 AND region = ?2 AND task_type = ?3
               AND status = 'IN_PROGRESS'",
        )
        .and_then(|mut stmt| {
            stmt.query_row((&scope.account_id, &scope.region, task_type), |row| {
                row.get(0)
            })
        })
        .map_err(sql_err)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// What inserting a task whose id is taken does.
#[derive(Clone, Copy)]
pub(super) enum IfTaken {
    /// Fails with `AlreadyExists` (the primary key rejects the row).
    Fail,
    /// Inserts nothing: a replayed start of the same scheduled run.
    Skip,
}

/// Inserts the task; returns whether it did (false only with `IfTaken::Skip`).
pub(super) fn insert_task(
    tx: &Transaction<'_>,
    scope: &Scope,
    task: &AuditTaskRecord,
    if_taken: IfTaken,
) -> StoreResult<bool> {
    let sql = match if_taken {
        IfTaken::Fail => concat!(
            "INSERT INTO audit_tasks (account_id, region, ",
            audit_task_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        IfTaken::Skip => concat!(
            "INSERT INTO audit_tasks (account_id, region, ",
            audit_task_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING"
        ),
    };
    tx.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.execute((
                &scope.account_id,
                &scope.region,
                &task.task_id,
                &task.task_type,
                &task.status,
                &task.scheduled_audit_name,
                task.started_at_ms,
                task.finished_at_ms,
                &task.checks_json,
                task.version,
            ))
        })
        .map(|n| n == 1)
        .map_err(insert_err)
}

/// Deletes up to about `budget` rows of purgeable history, oldest task first: a task's
/// findings (through the by-task index), then the task once none are left. Returns
/// the rows deleted and whether nothing purgeable remains.
fn purge_chunk(tx: &Transaction<'_>, before_ms: i64, budget: usize) -> StoreResult<(u64, bool)> {
    let mut left = budget;
    let mut deleted = 0;
    while left > 0 {
        let Some((account_id, region, task_id)) = tx
            .prepare_cached(
                "SELECT account_id, region, task_id FROM audit_tasks
                 WHERE started_at_ms < ?1 AND status <> 'IN_PROGRESS'
                 ORDER BY started_at_ms LIMIT 1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([before_ms], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .optional()
            })
            .map_err(sql_err)?
        else {
            return Ok((deleted, true));
        };
        let findings = tx
            .prepare_cached(
                "DELETE FROM audit_findings WHERE rowid IN (
                     SELECT rowid FROM audit_findings
                     WHERE account_id = ?1 AND region = ?2 AND task_id = ?3 LIMIT ?4)",
            )
            .and_then(|mut stmt| stmt.execute((&account_id, &region, &task_id, sql_limit(left))))
            .map_err(sql_err)?;
        deleted += u64::try_from(findings).unwrap_or(u64::MAX);
        left = left.saturating_sub(findings);
        if left == 0 {
            // Findings may remain; the task goes in a later chunk.
            break;
        }
        // After the findings, so no listed finding ever lacks its related resources.
        let related = tx
            .prepare_cached(
                "DELETE FROM audit_finding_related_resources WHERE rowid IN (
                     SELECT rowid FROM audit_finding_related_resources
                     WHERE account_id = ?1 AND region = ?2 AND task_id = ?3 LIMIT ?4)",
            )
            .and_then(|mut stmt| stmt.execute((&account_id, &region, &task_id, sql_limit(left))))
            .map_err(sql_err)?;
        deleted += u64::try_from(related).unwrap_or(u64::MAX);
        left = left.saturating_sub(related);
        if left == 0 {
            break;
        }
        let tasks = tx
            .prepare_cached(
                "DELETE FROM audit_tasks
                 WHERE account_id = ?1 AND region = ?2 AND task_id = ?3
                   AND status <> 'IN_PROGRESS'",
            )
            .and_then(|mut stmt| stmt.execute((&account_id, &region, &task_id)))
            .map_err(sql_err)?;
        deleted += u64::try_from(tasks).unwrap_or(u64::MAX);
        left -= 1;
    }
    Ok((deleted, false))
}
