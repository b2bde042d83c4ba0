//! Scheduled audits on PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use crate::ScheduledAuditStore;

#[async_trait]
impl ScheduledAuditStore for PostgresStore {}
