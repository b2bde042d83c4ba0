//! Scheduled audits (CreateScheduledAudit and friends) and what the scheduler needs to
//! start each one once per period.

use async_trait::async_trait;

#[async_trait]
pub trait ScheduledAuditStore: Send + Sync {}
