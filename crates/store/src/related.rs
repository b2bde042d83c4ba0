//! The related resources of audit findings that can have more than DescribeAuditFinding
//! shows (INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK: every active
//! device certificate a revoked intermediate signed), for
//! ListRelatedResourcesForAuditFinding.
//!
//! Rows are written before their finding, in batches, and keyed by (finding, sort key):
//! a check re-run after a crash writes the same keys again, which are skipped. They are
//! purged with their task's findings.

use palisade_store_macros::engines;

use crate::db::{sql_limit, Db, DbResult, Row};
use crate::{Scope, StoreResult};

/// One related resource of a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedResourceRecord {
    /// Unique within the finding; listings are in its byte order.
    pub sort_key: String,
    /// The `RelatedResource`, JSON owned by the engine.
    pub resource_json: String,
}

fn related_resource(row: &Row<'_>) -> DbResult<RelatedResourceRecord> {
    Ok(from_row!(row => RelatedResourceRecord { sort_key, resource_json }))
}

#[engines]
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
    ) -> StoreResult<u64> {
        if resources.is_empty() {
            return Ok(0);
        }
        let (scope, task_id, finding_id, resources) = (
            scope.clone(),
            task_id.to_owned(),
            finding_id.to_owned(),
            resources.to_vec(),
        );
        self.write_one(async move |db| insert(db, &scope, &task_id, &finding_id, &resources).await)
            .await
    }

    /// Up to `limit` of the finding's related resources, ascending by sort key, after
    /// `after`.
    async fn list_related_resources(
        &self,
        scope: &Scope,
        finding_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RelatedResourceRecord>> {
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT sort_key, resource_json FROM audit_finding_related_resources",
                    " WHERE account_id = $1 AND region = $2 AND finding_id = $3",
                    " AND ($4::text IS NULL OR sort_key > $4)",
                    " ORDER BY sort_key LIMIT $5"
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &finding_id,
                    &after,
                    &sql_limit(limit),
                ],
                related_resource,
            )
            .await
        })
        .await
    }
}

/// Inserts a batch in one transaction, skipping sort keys the finding has.
async fn insert(
    db: &Db<'_>,
    scope: &Scope,
    task_id: &str,
    finding_id: &str,
    resources: &[RelatedResourceRecord],
) -> DbResult<u64> {
    if let Some(conn) = db.lite() {
        // One row per execution of a cached statement, as for findings (see
        // audits/findings.rs).
        let mut stmt = conn.prepare_cached(
            sql!(
                "INSERT INTO audit_finding_related_resources",
                " (account_id, region, finding_id, task_id, sort_key, resource_json)",
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            )
            .lite,
        )?;
        let mut inserted = 0;
        for r in resources {
            inserted += stmt.execute((
                &scope.account_id,
                &scope.region,
                finding_id,
                task_id,
                &r.sort_key,
                &r.resource_json,
            ))?;
        }
        return Ok(u64::try_from(inserted).unwrap_or(u64::MAX));
    }
    // Concurrent calls with overlapping keys wait on each other's uncommitted rows;
    // inserting in key order makes them wait in one direction, never in a cycle.
    let mut sorted: Vec<&RelatedResourceRecord> = resources.iter().collect();
    sorted.sort_unstable_by(|a, b| a.sort_key.cmp(&b.sort_key));
    let keys: Vec<&str> = sorted.iter().map(|r| r.sort_key.as_str()).collect();
    let bodies: Vec<&str> = sorted.iter().map(|r| r.resource_json.as_str()).collect();
    db.execute_pg(
        "INSERT INTO audit_finding_related_resources
             (account_id, region, finding_id, task_id, sort_key, resource_json)
         SELECT $1, $2, $3, $4, u.* FROM unnest($5::text[], $6::text[])
             AS u(sort_key, resource_json)
         ON CONFLICT DO NOTHING",
        &[
            &scope.account_id,
            &scope.region,
            &finding_id,
            &task_id,
            &keys,
            &bodies,
        ],
    )
    .await
}
