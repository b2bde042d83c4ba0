//! The retention purge of finished tasks (audits, mitigation actions tasks), in chunks:
//! each chunk is one transaction that deletes up to a budget of rows, oldest task
//! first, so neither SQLite's single writer nor a PostgreSQL statement is held long
//! however big the purged tasks were.

use std::future::Future;

use crate::db::{sql_limit, Db, DbResult, Dialect, Sql};
use crate::StoreResult;

/// Rows one chunk deletes at most.
pub(crate) const CHUNK: usize = 2_000;

/// What a purge deletes: finished tasks that started before the retention, each with
/// its rows in other tables.
pub(crate) struct History {
    /// The PostgreSQL advisory lock (`space`, 0) that lets one node purge at a time;
    /// SQLite's writer already purges alone.
    pub(crate) lock_space: i32,
    /// The oldest purgeable task's account, region and id, of those started before $1.
    pub(crate) oldest: &'static Sql<'static>,
    /// Deletes up to $4 of the task's ($1, $2, $3) rows from one table each, in order:
    /// the task row goes only once none of them is left.
    pub(crate) rows: &'static [Sql<'static>],
    /// Deletes the task ($1, $2, $3) if it is still finished.
    pub(crate) task: &'static Sql<'static>,
}

/// Runs `chunk` (a write of [`chunk`]) until nothing purgeable remains; the rows
/// deleted.
pub(crate) async fn all<F>(mut chunk: impl FnMut() -> F) -> StoreResult<u64>
where
    F: Future<Output = StoreResult<(u64, bool)>>,
{
    let mut purged = 0;
    loop {
        let (deleted, done) = chunk().await?;
        purged += deleted;
        if done {
            return Ok(purged);
        }
    }
}

/// Deletes up to about `budget` rows of purgeable history; the rows deleted and whether
/// nothing purgeable remains.
pub(crate) async fn chunk(
    db: &Db<'_>,
    history: &History,
    before_ms: i64,
    budget: usize,
) -> DbResult<(u64, bool)> {
    if db.dialect() == Dialect::Postgres {
        db.execute_pg(
            "SELECT pg_advisory_xact_lock($1, 0)",
            &[&history.lock_space],
        )
        .await?;
    }
    let mut left = budget;
    let mut deleted = 0u64;
    while left > 0 {
        let oldest = db
            .query_opt(history.oldest, &[&before_ms], |row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<String>(1)?,
                    row.get::<String>(2)?,
                ))
            })
            .await?;
        let Some((account_id, region, task_id)) = oldest else {
            return Ok((deleted, true));
        };
        for rows in history.rows {
            let n = db
                .execute(rows, &[&account_id, &region, &task_id, &sql_limit(left)])
                .await?;
            deleted += n;
            left = left.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
            if left == 0 {
                // Rows may remain; the task goes in a later chunk.
                return Ok((deleted, false));
            }
        }
        deleted += db
            .execute(history.task, &[&account_id, &region, &task_id])
            .await?;
        left -= 1;
    }
    Ok((deleted, false))
}

/// Deletes up to `$4` of one task's rows from a table, which neither engine can say
/// with `DELETE ... LIMIT`: by PostgreSQL's `ctid`, by SQLite's `rowid` (or by the
/// primary key of a `WITHOUT ROWID` table, given as its columns).
macro_rules! delete_some {
    ($table:literal) => {
        delete_some!($table, "rowid")
    };
    ($table:literal, $key:literal) => {
        $crate::db::Sql::per_dialect(
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
                " WHERE (",
                $key,
                ") IN (SELECT ",
                $key,
                " FROM ",
                $table,
                " WHERE account_id = ?1 AND region = ?2 AND task_id = ?3 LIMIT ?4)"
            ),
        )
    };
}
pub(crate) use delete_some;
