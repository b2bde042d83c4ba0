//! Device Defender audit suppressions: a (check, resource) pair whose findings are
//! reported as suppressed until the suppression expires or is deleted.
//!
//! The resource is keyed by the engine's canonical text of its identifier
//! (`resource_key`); the identifier itself is kept as the engine's JSON so Describe and
//! List can return it as it was given.

use palisade_store_macros::engines;

use crate::db::{sql_limit, Db, DbResult, Row};
use crate::{Scope, StoreResult};

/// One suppression as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSuppressionRecord {
    pub check_name: String,
    pub resource_key: String,
    /// The resource identifier, JSON owned by the engine.
    pub resource_json: String,
    /// `None` exactly when `suppress_indefinitely` is set.
    pub expiration_ms: Option<i64>,
    pub suppress_indefinitely: bool,
    pub description: Option<String>,
    pub client_request_token: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// How a create that was not refused went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppressionCreated {
    /// The suppression was inserted.
    Created,
    /// A suppression with the same client request token and the same key exists: a
    /// retry of the create that made it; nothing was changed.
    Replayed(AuditSuppressionRecord),
}

/// Why a suppression was not created. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionRefusal {
    /// A suppression for the same (check, resource key) exists, under another token.
    KeyExists,
    /// The client request token belongs to a suppression of another key.
    TokenInUse,
    /// The scope already holds the limit's worth of suppressions.
    LimitReached,
}

/// Changes to a suppression; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSuppressionUpdate {
    /// New `(expiration_ms, suppress_indefinitely)`, always replaced together so the
    /// two never contradict each other.
    pub lifetime: Option<(Option<i64>, bool)>,
    pub description: Option<String>,
    pub updated_at_ms: i64,
}

/// Which suppressions ListAuditSuppressions wants. All given conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSuppressionFilter {
    pub check_name: Option<String>,
    pub resource_key: Option<String>,
}

/// Where a page of suppressions continues: after this position in the listing order
/// (expiration, then check name, then resource key). Indefinite suppressions sort as if
/// they expired at `i64::MAX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSuppressionKey {
    pub expires_ms: i64,
    pub check_name: String,
    pub resource_key: String,
}

impl AuditSuppressionRecord {
    /// The record's position in the listing order.
    pub fn listing_key(&self) -> AuditSuppressionKey {
        AuditSuppressionKey {
            expires_ms: self.expiration_ms.unwrap_or(i64::MAX),
            check_name: self.check_name.clone(),
            resource_key: self.resource_key.clone(),
        }
    }
}

/// First key of the advisory locks that serialise suppression creation per scope;
/// 1 to 7 are taken (actions, tags, things, CA subjects, policy targets, audit tasks,
/// the audit purge).
const SUPPRESSION_LOCK_SPACE: i32 = 8;

macro_rules! suppression_columns {
    () => {
        "check_name, resource_key, resource_json, expiration_ms, suppress_indefinitely, \
         description, client_request_token, created_at_ms, updated_at_ms"
    };
}

fn suppression(row: &Row<'_>) -> DbResult<AuditSuppressionRecord> {
    Ok(from_row!(row => AuditSuppressionRecord {
        check_name, resource_key, resource_json, expiration_ms, suppress_indefinitely,
        description, client_request_token, created_at_ms, updated_at_ms
    }))
}

#[engines]
pub trait AuditSuppressionStore: Send + Sync {
    /// Inserts the suppression unless a refusal applies. The token, key and limit
    /// checks and the insert are atomic against concurrent creates in the scope, so of
    /// two racing creates of one key exactly one succeeds.
    async fn create_audit_suppression(
        &self,
        scope: &Scope,
        record: &AuditSuppressionRecord,
        limit: usize,
    ) -> StoreResult<Result<SuppressionCreated, SuppressionRefusal>> {
        let (scope, record) = (scope.clone(), record.clone());
        self.write(async move |db| create(db, &scope, &record, limit).await)
            .await
    }

    async fn get_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<Option<AuditSuppressionRecord>> {
        self.read(async |db| get(db, scope, check_name, resource_key).await)
            .await
    }

    /// Applies the update and returns the record as it is afterwards; `None` if there
    /// is no such suppression.
    async fn update_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
        update: &AuditSuppressionUpdate,
    ) -> StoreResult<Option<AuditSuppressionRecord>> {
        let (scope, check, key, update) = (
            scope.clone(),
            check_name.to_owned(),
            resource_key.to_owned(),
            update.clone(),
        );
        self.write_one(async move |db| {
            let (expiration, indefinitely) = update.lifetime.unzip();
            db.query_opt(
                sql!(
                    "UPDATE audit_suppressions SET",
                    " expiration_ms = CASE WHEN $5::BOOLEAN THEN $6::BIGINT",
                    " ELSE expiration_ms END,",
                    " suppress_indefinitely = CASE WHEN $5::BOOLEAN THEN $7::BOOLEAN",
                    " ELSE suppress_indefinitely END,",
                    " description = COALESCE($8::TEXT, description), updated_at_ms = $9",
                    " WHERE account_id = $1 AND region = $2 AND check_name = $3",
                    " AND resource_key = $4 RETURNING ",
                    suppression_columns!()
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &check,
                    &key,
                    &update.lifetime.is_some(),
                    &expiration.flatten(),
                    &indefinitely.unwrap_or(false),
                    &update.description,
                    &update.updated_at_ms,
                ],
                suppression,
            )
            .await
        })
        .await
    }

    /// Returns whether there was such a suppression.
    async fn delete_audit_suppression(
        &self,
        scope: &Scope,
        check_name: &str,
        resource_key: &str,
    ) -> StoreResult<bool> {
        let (scope, check, key) = (
            scope.clone(),
            check_name.to_owned(),
            resource_key.to_owned(),
        );
        self.write_one(async move |db| {
            let n = db
                .execute(
                    sql!(
                        "DELETE FROM audit_suppressions WHERE account_id = $1",
                        " AND region = $2 AND check_name = $3 AND resource_key = $4"
                    ),
                    &[&scope.account_id, &scope.region, &check, &key],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Ordered by (expiration, check name, resource key), ascending or descending,
    /// strictly after `after` in that order. Expired suppressions are listed too.
    async fn list_audit_suppressions(
        &self,
        scope: &Scope,
        filter: &AuditSuppressionFilter,
        ascending: bool,
        after: Option<&AuditSuppressionKey>,
        limit: usize,
    ) -> StoreResult<Vec<AuditSuppressionRecord>> {
        self.read(async |db| list(db, scope, filter, ascending, after, limit).await)
            .await
    }

    /// The resource keys of the check's suppressions in force at `now_ms`: indefinite
    /// ones and those expiring after it.
    async fn active_audit_suppression_keys(
        &self,
        scope: &Scope,
        check_name: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT resource_key FROM audit_suppressions",
                    " WHERE account_id = $1 AND region = $2 AND check_name = $3",
                    " AND (suppress_indefinitely OR expiration_ms > $4)"
                ),
                &[&scope.account_id, &scope.region, &check_name, &now_ms],
                |row| row.get(0),
            )
            .await
        })
        .await
    }
}

async fn create(
    db: &Db<'_>,
    scope: &Scope,
    record: &AuditSuppressionRecord,
    limit: usize,
) -> DbResult<Result<SuppressionCreated, SuppressionRefusal>> {
    // Creators in one scope queue here (SQLite: the writer's turn); read committed
    // gives each statement below a snapshot taken after the lock was granted.
    db.lock(SUPPRESSION_LOCK_SPACE, &scope.key()).await?;
    let by_token = db
        .query_opt(
            sql!(
                "SELECT ",
                suppression_columns!(),
                " FROM audit_suppressions WHERE account_id = $1 AND region = $2",
                " AND client_request_token = $3"
            ),
            &[
                &scope.account_id,
                &scope.region,
                &record.client_request_token,
            ],
            suppression,
        )
        .await?;
    if let Some(existing) = by_token {
        let same = existing.check_name == record.check_name
            && existing.resource_key == record.resource_key;
        return Ok(if same {
            Ok(SuppressionCreated::Replayed(existing))
        } else {
            Err(SuppressionRefusal::TokenInUse)
        });
    }
    if get(db, scope, &record.check_name, &record.resource_key)
        .await?
        .is_some()
    {
        return Ok(Err(SuppressionRefusal::KeyExists));
    }
    let count = db
        .count(
            sql!("SELECT COUNT(*) FROM audit_suppressions WHERE account_id = $1 AND region = $2"),
            &[&scope.account_id, &scope.region],
        )
        .await?;
    if count >= limit {
        return Ok(Err(SuppressionRefusal::LimitReached));
    }
    db.insert(
        sql!(
            "INSERT INTO audit_suppressions (account_id, region, ",
            suppression_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &record.check_name,
            &record.resource_key,
            &record.resource_json,
            &record.expiration_ms,
            &record.suppress_indefinitely,
            &record.description,
            &record.client_request_token,
            &record.created_at_ms,
            &record.updated_at_ms,
        ],
    )
    .await?;
    Ok(Ok(SuppressionCreated::Created))
}

async fn get(
    db: &Db<'_>,
    scope: &Scope,
    check: &str,
    key: &str,
) -> DbResult<Option<AuditSuppressionRecord>> {
    db.query_opt(
        sql!(
            "SELECT ",
            suppression_columns!(),
            " FROM audit_suppressions WHERE account_id = $1 AND region = $2",
            " AND check_name = $3 AND resource_key = $4"
        ),
        &[&scope.account_id, &scope.region, &check, &key],
        suppression,
    )
    .await
}

/// One statement per direction; the filters and the page key are residual conditions
/// (`$n IS NULL OR ...`): a scope holds few enough suppressions that no index range is
/// worth more statement shapes. Indefinite suppressions sort last ascending (as if
/// they expired at the end of time).
async fn list(
    db: &Db<'_>,
    scope: &Scope,
    filter: &AuditSuppressionFilter,
    ascending: bool,
    after: Option<&AuditSuppressionKey>,
    limit: usize,
) -> DbResult<Vec<AuditSuppressionRecord>> {
    macro_rules! list {
        ($cmp:literal, $dir:literal) => {
            sql!(
                "SELECT ",
                suppression_columns!(),
                " FROM audit_suppressions WHERE account_id = $1 AND region = $2",
                " AND ($3::TEXT IS NULL OR check_name = $3)",
                " AND ($4::TEXT IS NULL OR resource_key = $4)",
                " AND ($5::BIGINT IS NULL OR (COALESCE(expiration_ms, 9223372036854775807),",
                " check_name, resource_key) ",
                $cmp,
                " ($5::BIGINT, $6::TEXT, $7::TEXT))",
                " ORDER BY COALESCE(expiration_ms, 9223372036854775807) ",
                $dir,
                ", check_name ",
                $dir,
                ", resource_key ",
                $dir,
                " LIMIT $8"
            )
        };
    }
    let sql = if ascending {
        list!(">", "ASC")
    } else {
        list!("<", "DESC")
    };
    db.query(
        sql,
        &[
            &scope.account_id,
            &scope.region,
            &filter.check_name,
            &filter.resource_key,
            &after.map(|k| k.expires_ms),
            &after.map(|k| k.check_name.as_str()),
            &after.map(|k| k.resource_key.as_str()),
            &sql_limit(limit),
        ],
        suppression,
    )
    .await
}
