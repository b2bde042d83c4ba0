//! IAM and Amazon Cognito data for the role alias and Cognito audit checks (issue 16):
//! pieces of the AWS CLI's output, kept as the JSON it printed, one row per piece that a
//! re-import replaces. The engine knows what each kind holds.

use palisade_store_macros::engines;

use crate::db::{sql_limit, DbResult, Row};
use crate::{Scope, StoreResult};

/// One stored piece of IAM or Cognito data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamDocument {
    /// What the piece is (`role`, `managed_policy`, `last_accessed`, `identity_pool`).
    pub kind: String,
    /// What it is about, unique within its kind (a role ARN, a policy ARN, a pool id).
    pub key: String,
    /// The JSON.
    pub body: String,
    /// Where it came from, for the findings' messages (the imported file's name).
    pub source: String,
    pub stored_at_ms: i64,
}

macro_rules! iam_columns {
    () => {
        "kind, key, body, source, stored_at_ms"
    };
}

fn document(row: &Row<'_>) -> DbResult<IamDocument> {
    Ok(from_row!(row => IamDocument { kind, key, body, source, stored_at_ms }))
}

#[engines]
pub trait IamStore: Send + Sync {
    /// Stores the pieces in one transaction, each replacing the stored piece of its kind
    /// and key; how many were written.
    async fn put_iam_documents(&self, scope: &Scope, pieces: &[IamDocument]) -> StoreResult<u64> {
        let (scope, pieces) = (scope.clone(), pieces.to_vec());
        self.write(async move |db| {
            for p in &pieces {
                db.execute(
                    sql!(
                        "INSERT INTO iam_documents (account_id, region, ",
                        iam_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        " ON CONFLICT (account_id, region, kind, key) DO UPDATE SET",
                        " body = excluded.body, source = excluded.source,",
                        " stored_at_ms = excluded.stored_at_ms"
                    ),
                    &[
                        &scope.account_id,
                        &scope.region,
                        &p.kind,
                        &p.key,
                        &p.body,
                        &p.source,
                        &p.stored_at_ms,
                    ],
                )
                .await?;
            }
            Ok(pieces.len() as u64)
        })
        .await
    }

    /// Up to `limit` pieces of `kind`, by key, with keys after `after`.
    async fn list_iam_documents(
        &self,
        scope: &Scope,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<IamDocument>> {
        let (after, limit) = (after.unwrap_or(""), sql_limit(limit));
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT ",
                    iam_columns!(),
                    " FROM iam_documents WHERE account_id = $1 AND region = $2",
                    " AND kind = $3 AND key > $4 ORDER BY key LIMIT $5"
                ),
                &[&scope.account_id, &scope.region, &kind, &after, &limit],
                document,
            )
            .await
        })
        .await
    }

    async fn get_iam_document(
        &self,
        scope: &Scope,
        kind: &str,
        key: &str,
    ) -> StoreResult<Option<IamDocument>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    iam_columns!(),
                    " FROM iam_documents WHERE account_id = $1 AND region = $2",
                    " AND kind = $3 AND key = $4"
                ),
                &[&scope.account_id, &scope.region, &kind, &key],
                document,
            )
            .await
        })
        .await
    }
}
