//! What stays of audits on PostgreSQL once they are written over the seam
//! (`crate::audits`): the background refresh of audit_findings' statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::PostgresStore;
use crate::StoreResult;

/// Findings this process inserted before audit_findings' first ANALYZE.
const FIRST_FINDINGS_ANALYZE_AFTER: u64 = 10_000;

/// When audit_findings' statistics are refreshed. An audit writes its findings faster
/// than autoanalyze looks (and autovacuum may be off): a mitigation task or a finding
/// listing started right after a big audit was planned without statistics as a scan of
/// the whole audit per page (1.2 s a page at 1,000,000 findings, 2.9 ms analyzed). Like
/// the import's schedule: ANALYZE whenever the findings inserted since the last one reach
/// the number there were then, so a million findings cost about seven.
#[derive(Default)]
pub(super) struct FindingStats {
    since: AtomicU64,
    at_last: AtomicU64,
    running: AtomicBool,
}

impl PostgresStore {
    /// Counts inserted findings and, when due, refreshes the statistics in the
    /// background: audits never wait for it.
    pub(crate) fn findings_inserted(&self, n: u64) {
        let stats = &self.inner.finding_stats;
        let since = stats.since.fetch_add(n, Ordering::Relaxed) + n;
        if since < FIRST_FINDINGS_ANALYZE_AFTER.max(stats.at_last.load(Ordering::Relaxed)) {
            return;
        }
        if stats.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let stats = &store.inner.finding_stats;
            let counted = stats.since.load(Ordering::Relaxed);
            match store.analyze_findings().await {
                Ok(()) => {
                    stats.since.fetch_sub(counted, Ordering::Relaxed);
                    stats.at_last.fetch_add(counted, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "ANALYZE audit_findings failed"),
            }
            stats.running.store(false, Ordering::Release);
        });
    }

    async fn analyze_findings(&self) -> StoreResult<()> {
        self.read(async |db| db.batch("ANALYZE audit_findings").await)
            .await
    }
}
