//! Scheduled audits on SQLite.

use async_trait::async_trait;

use super::SqliteStore;
use crate::ScheduledAuditStore;

#[async_trait]
impl ScheduledAuditStore for SqliteStore {}
