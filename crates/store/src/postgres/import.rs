//! What PostgreSQL adds to an import (the import itself is crate::import, written once):
//! keeping the planner's statistics current.
//!
//! Bulk loading outruns the planner's statistics. A table that has never been analyzed
//! (or was analyzed while nearly empty) gets default selectivities, under which
//! `account_id = $1 AND region = $2` looks like a handful of rows; the planner then
//! serves `name = ANY(...)` and, worse, the foreign-key checks of every inserted row
//! from whichever index starts with those two columns, scanning the whole account per
//! row. Imports therefore ANALYZE the tables they fill whenever the items of one kind
//! (policies, groups, things, certificates) imported since the last ANALYZE reach the
//! number of that kind counted then (a doubling schedule per kind: about
//! log2(rows / batch) ANALYZEs in all). Counting per kind matters: a fleet file of
//! 100,000 policies followed by things would otherwise fill `things` with statistics
//! from when it was empty until the overall count doubled, and the foreign-key checks
//! planned from them scan the whole table per row. ANALYZE invalidates cached plans, the
//! foreign-key checks' included. Autovacuum does the same for ordinary API traffic,
//! where it is enabled; imports do not count on it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::PostgresStore;
use crate::{ImportItem, StoreResult};

/// Rows an import inserts before its first ANALYZE.
const FIRST_ANALYZE_AFTER: u64 = 2_000;

/// The tables an import writes, whose statistics it keeps current.
const IMPORTED_TABLES: &str = "things, thing_attributes, thing_groups, thing_group_attributes, \
     thing_group_tree, thing_group_members, certificates, thing_principals, policies, \
     policy_versions, policy_attachments";

/// The kinds of item counted apart: policies, thing groups, things, certificates.
const KINDS: usize = 4;

fn kind(item: &ImportItem) -> usize {
    match item {
        ImportItem::Policy(_) => 0,
        ImportItem::ThingGroup(_) => 1,
        ImportItem::Thing { .. } => 2,
        ImportItem::Certificate(_) => 3,
    }
}

/// The import's ANALYZE schedule (see the module documentation).
#[derive(Default)]
pub(super) struct StatsSchedule {
    /// Items of each kind imported since the last ANALYZE.
    since: [AtomicU64; KINDS],
    /// Items of each kind imported in all when the last ANALYZE ran.
    total_at_last: [AtomicU64; KINDS],
    /// One ANALYZE at a time; the others go on importing meanwhile.
    running: tokio::sync::Mutex<()>,
}

impl PostgresStore {
    /// Counts the `items` of a batch just imported, by kind, and runs ANALYZE when the
    /// schedule says so.
    pub(crate) async fn imported(&self, items: &[ImportItem]) {
        let mut imported = [0u64; KINDS];
        for item in items {
            imported[kind(item)] += 1;
        }
        let schedule = &self.inner.import_stats;
        for (since, n) in schedule.since.iter().zip(imported) {
            since.fetch_add(n, Ordering::Relaxed);
        }
        let due = || {
            schedule
                .since
                .iter()
                .zip(&schedule.total_at_last)
                .any(|(since, at_last)| {
                    since.load(Ordering::Relaxed)
                        >= FIRST_ANALYZE_AFTER.max(at_last.load(Ordering::Relaxed))
                })
        };
        if !due() {
            return;
        }
        let Ok(_running) = schedule.running.try_lock() else {
            return;
        };
        // Another importer may have analyzed between the count and the lock.
        if !due() {
            return;
        }
        let counted: Vec<u64> = schedule
            .since
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        let started = std::time::Instant::now();
        match self.analyze().await {
            Ok(()) => {
                for ((since, at_last), n) in schedule
                    .since
                    .iter()
                    .zip(&schedule.total_at_last)
                    .zip(counted)
                {
                    since.fetch_sub(n, Ordering::Relaxed);
                    at_last.fetch_add(n, Ordering::Relaxed);
                }
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "import: statistics refreshed"
                );
            }
            // The import goes on, only more slowly; the next batch tries again.
            Err(e) => tracing::warn!(error = %e, "import: ANALYZE failed"),
        }
    }

    async fn analyze(&self) -> StoreResult<()> {
        let sql = format!("ANALYZE {IMPORTED_TABLES}");
        self.read(async |db| db.batch(&sql).await).await
    }
}
