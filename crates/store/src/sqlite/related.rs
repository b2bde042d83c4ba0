//! Related resources of audit findings on SQLite.

use async_trait::async_trait;

use super::error::sql_err;
use super::{sql_limit, SqliteStore};
use crate::{RelatedResourceRecord, RelatedResourceStore, Scope, StoreResult};

#[async_trait]
impl RelatedResourceStore for SqliteStore {
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
        self.write_tx(move |tx| {
            // One row per execution of a cached statement, as for findings (see audits.rs).
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO audit_finding_related_resources
                         (account_id, region, finding_id, sort_key, task_id, resource_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                )
                .map_err(sql_err)?;
            let mut inserted = 0;
            for r in &resources {
                inserted += stmt
                    .execute((
                        &scope.account_id,
                        &scope.region,
                        &finding_id,
                        &r.sort_key,
                        &task_id,
                        &r.resource_json,
                    ))
                    .map_err(sql_err)?;
            }
            Ok(u64::try_from(inserted).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn list_related_resources(
        &self,
        scope: &Scope,
        finding_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<RelatedResourceRecord>> {
        let (scope, finding_id, after) = (
            scope.clone(),
            finding_id.to_owned(),
            after.map(str::to_owned),
        );
        self.read_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT sort_key, resource_json FROM audit_finding_related_resources
                     WHERE account_id = ?1 AND region = ?2 AND finding_id = ?3
                       AND (?4 IS NULL OR sort_key > ?4)
                     ORDER BY sort_key LIMIT ?5",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &finding_id,
                        &after,
                        sql_limit(limit),
                    ),
                    |row| {
                        Ok(RelatedResourceRecord {
                            sort_key: row.get(0)?,
                            resource_json: row.get(1)?,
                        })
                    },
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }
}
