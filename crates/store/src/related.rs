//! The related resources of audit findings that can have more than DescribeAuditFinding
//! shows (INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK: every active
//! device certificate a revoked intermediate signed), for
//! ListRelatedResourcesForAuditFinding.
//!
//! Rows are written before their finding, in batches, and keyed by (finding, sort key):
//! a check re-run after a crash writes the same keys again, which are skipped. They are
//! purged with their task's findings.

use async_trait::async_trait;

use crate::{Scope, StoreResult};

/// One related resource of a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedResourceRecord {
    /// Unique within the finding; listings are in its byte order.
    pub sort_key: String,
    /// The `RelatedResource`, JSON owned by the engine.
    pub resource_json: String,
}

#[async_trait]
pub trait RelatedResourceStore: Send + Sync {
    /// Adds related resources to the finding `finding_id` of task `task_id` (the finding
    /// itself need not be written yet), skipping sort keys it has; returns how many were
    /// new. Callers pass at most a few thousand at a time.
    async fn insert_related_resources(
        &self,
        scope: &Scope,
        task_id: &str,
        finding_id: &str,
        resources: &[RelatedResourceRecord],
    ) -> StoreResult<u64>;
    /// Up to `limit` of the finding's related resources, ascending by sort key, after
    /// `after`.
    async fn list_related_resources(
        &self,
        scope: &Scope,
        finding_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RelatedResourceRecord>>;
}
