//! What stays of audits on SQLite once they are written over the seam (`crate::audits`):
//! the hook that PostgreSQL uses to refresh statistics.

use super::SqliteStore;

impl SqliteStore {
    /// Called with the count of every batch of findings inserted. Nothing to do here:
    /// only PostgreSQL's planner needs audit_findings' statistics refreshed as audits
    /// write them (see `postgres/audits.rs`).
    pub(crate) fn findings_inserted(&self, _n: u64) {}
}
