//! Related resources of audit findings on PostgreSQL.

use async_trait::async_trait;

use super::{sql_limit, PostgresStore};
use crate::{RelatedResourceRecord, RelatedResourceStore, Scope, StoreResult};

#[async_trait]
impl RelatedResourceStore for PostgresStore {
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
        // Concurrent calls with overlapping keys wait on each other's uncommitted rows;
        // inserting in key order makes them wait in one direction, never in a cycle.
        let mut sorted: Vec<&RelatedResourceRecord> = resources.iter().collect();
        sorted.sort_unstable_by(|a, b| a.sort_key.cmp(&b.sort_key));
        let keys: Vec<&str> = sorted.iter().map(|r| r.sort_key.as_str()).collect();
        let bodies: Vec<&str> = sorted.iter().map(|r| r.resource_json.as_str()).collect();
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "INSERT INTO audit_finding_related_resources
                             (account_id, region, finding_id, task_id, sort_key, resource_json)
                         SELECT $1, $2, $3, $4, u.* FROM unnest($5::text[], $6::text[])
                             AS u(sort_key, resource_json)
                         ON CONFLICT DO NOTHING",
                    )
                    .await?;
                Ok(conn
                    .execute(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &finding_id,
                            &task_id,
                            &keys,
                            &bodies,
                        ],
                    )
                    .await?)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_related_resources(
        &self,
        scope: &Scope,
        finding_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RelatedResourceRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT sort_key, resource_json FROM audit_finding_related_resources
                         WHERE account_id = $1 AND region = $2 AND finding_id = $3
                           AND ($4::text IS NULL OR sort_key > $4)
                         ORDER BY sort_key LIMIT $5",
                    )
                    .await?;
                let rows = conn
                    .query(
                        &stmt,
                        &[
                            &scope.account_id,
                            &scope.region,
                            &finding_id,
                            &after,
                            &sql_limit(limit),
                        ],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(RelatedResourceRecord {
                            sort_key: row.try_get(0)?,
                            resource_json: row.try_get(1)?,
                        })
                    })
                    .collect()
            })
            .await;
        conn.finish(outcome)
    }
}
