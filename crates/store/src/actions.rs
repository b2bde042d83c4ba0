//! Mitigation action definitions.

use crate::db::{sql_limit, Db, DbResult, Param, Row};
use crate::tags;
use crate::{Scope, StoreError, StoreResult, Tag};
use palisade_store_macros::engines;

/// A mitigation action definition as stored. `params_json` is the `actionParams`
/// document exactly as the engine validated it; the store does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationActionRecord {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub action_type: String,
    pub role_arn: String,
    pub params_json: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Changes to a mitigation action; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MitigationActionUpdate {
    pub role_arn: Option<String>,
    /// New `(action_type, params_json)`.
    pub params: Option<(String, String)>,
    pub updated_at_ms: i64,
}

/// First key of the advisory locks that serialise action creation per scope.
const SCOPE_LOCK_SPACE: i32 = 1;

macro_rules! action_columns {
    () => {
        "name, id, arn, action_type, role_arn, params_json, created_at_ms, updated_at_ms"
    };
}

fn action(row: &Row<'_>) -> DbResult<MitigationActionRecord> {
    Ok(from_row!(row => MitigationActionRecord {
        name, id, arn, action_type, role_arn, params_json, created_at_ms, updated_at_ms
    }))
}

#[engines]
pub trait MitigationActionStore: Send + Sync {
    /// Inserts the action and its tags atomically. `AlreadyExists` if the name is taken
    /// in the scope; `LimitExceeded { limit }` if the scope already holds `limit` actions.
    async fn create_mitigation_action(
        &self,
        scope: &Scope,
        record: &MitigationActionRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write(async move |db| create(db, &scope, &record, &tags, limit).await)
            .await
    }

    async fn get_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<MitigationActionRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    action_columns!(),
                    " FROM mitigation_actions",
                    " WHERE account_id = $1 AND region = $2 AND name = $3"
                ),
                &[&scope.account_id, &scope.region, &name],
                action,
            )
            .await
        })
        .await
    }

    /// Applies the update and returns the record as it is afterwards; `NotFound` if absent.
    async fn update_mitigation_action(
        &self,
        scope: &Scope,
        name: &str,
        update: &MitigationActionUpdate,
    ) -> StoreResult<MitigationActionRecord> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write_one(async move |db| {
            let (action_type, params_json) = update.params.unzip();
            db.query_opt(
                sql!(
                    "UPDATE mitigation_actions SET",
                    " role_arn = COALESCE($4, role_arn),",
                    " action_type = COALESCE($5, action_type),",
                    " params_json = COALESCE($6, params_json),",
                    " updated_at_ms = $7",
                    " WHERE account_id = $1 AND region = $2 AND name = $3",
                    " RETURNING ",
                    action_columns!()
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &name,
                    &update.role_arn,
                    &action_type,
                    &params_json,
                    &update.updated_at_ms,
                ],
                action,
            )
            .await?
            .ok_or(StoreError::NotFound.into())
        })
        .await
    }

    /// Deletes the action and the tags on its ARN; returns whether it existed.
    async fn delete_mitigation_action(&self, scope: &Scope, name: &str) -> StoreResult<bool> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write(async move |db| {
            tags::delete_tagged(
                db,
                &scope,
                sql!(
                    "DELETE FROM mitigation_actions",
                    " WHERE account_id = $1 AND region = $2 AND name = $3 RETURNING arn"
                ),
                &[&scope.account_id, &scope.region, &name],
            )
            .await
        })
        .await
    }

    /// Up to `limit` actions ordered by name, with names strictly greater than `after`,
    /// optionally only those of `action_type`.
    async fn list_mitigation_actions(
        &self,
        scope: &Scope,
        action_type: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<MitigationActionRecord>> {
        self.read(async |db| list(db, scope, action_type, after, limit).await)
            .await
    }
}

async fn create(
    db: &Db<'_>,
    scope: &Scope,
    record: &MitigationActionRecord,
    tags: &[Tag],
    limit: usize,
) -> DbResult<()> {
    // Creators in one scope queue on this lock, on every node, so the count below
    // cannot miss an insert in flight elsewhere (SQLite: the writer's own turn).
    db.lock(SCOPE_LOCK_SPACE, &scope.key()).await?;
    let count = db
        .count(
            sql!("SELECT COUNT(*) FROM mitigation_actions WHERE account_id = $1 AND region = $2"),
            &[&scope.account_id, &scope.region],
        )
        .await?;
    if count >= limit {
        return Err(StoreError::LimitExceeded { limit }.into());
    }
    // The name is taken if and only if the primary key rejects the row, which also
    // holds against a concurrent writer elsewhere.
    db.insert(
        sql!(
            "INSERT INTO mitigation_actions (account_id, region, ",
            action_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &record.name,
            &record.id,
            &record.arn,
            &record.action_type,
            &record.role_arn,
            &record.params_json,
            &record.created_at_ms,
            &record.updated_at_ms,
        ],
    )
    .await?;
    tags::upsert(db, scope, &record.arn, tags).await?;
    Ok(())
}

/// A separate statement per filter combination (rather than `$3 IS NULL OR ...`) so
/// each is planned as a plain range scan on the primary key or the by-type index.
async fn list(
    db: &Db<'_>,
    scope: &Scope,
    action_type: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> DbResult<Vec<MitigationActionRecord>> {
    macro_rules! list {
        ($($cond:literal),*; $limit:literal) => {
            sql!(
                "SELECT ", action_columns!(),
                " FROM mitigation_actions WHERE account_id = $1 AND region = $2",
                $($cond,)* " ORDER BY name LIMIT ", $limit
            )
        };
    }
    let limit = sql_limit(limit);
    let mut params: Vec<&dyn Param> = vec![&scope.account_id, &scope.region];
    params.extend(action_type.as_ref().map(|t| t as &dyn Param));
    params.extend(after.as_ref().map(|a| a as &dyn Param));
    params.push(&limit);
    let sql = match (action_type.is_some(), after.is_some()) {
        (false, false) => list!(; "$3"),
        (true, false) => list!(" AND action_type = $3"; "$4"),
        (false, true) => list!(" AND name > $3"; "$4"),
        (true, true) => list!(" AND action_type = $3", " AND name > $4"; "$5"),
    };
    db.query(sql, &params, action).await
}
