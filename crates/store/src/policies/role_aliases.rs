//! Role aliases.

use palisade_store_macros::engines;

use crate::db::{sql_limit, Db, DbResult, Param, Row};
use crate::tags;
use crate::{Scope, StoreError, StoreResult, Tag};

/// A role alias as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAliasRecord {
    pub alias: String,
    pub arn: String,
    pub role_arn: String,
    pub credential_duration_seconds: i32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Changes to a role alias; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAliasUpdate {
    pub role_arn: Option<String>,
    pub credential_duration_seconds: Option<i32>,
    pub updated_at_ms: i64,
}

macro_rules! role_alias_columns {
    () => {
        "alias, arn, role_arn, credential_duration_seconds, created_at_ms, updated_at_ms"
    };
}

fn role_alias(row: &Row<'_>) -> DbResult<RoleAliasRecord> {
    Ok(from_row!(row => RoleAliasRecord {
        alias, arn, role_arn, credential_duration_seconds, created_at_ms, updated_at_ms
    }))
}

/// Role aliases.
#[engines]
pub trait RoleAliasStore: Send + Sync {
    /// Inserts the alias and its tags atomically. `AlreadyExists` (and nothing
    /// written) if the alias is taken in the scope.
    async fn create_role_alias(
        &self,
        scope: &Scope,
        record: &RoleAliasRecord,
        tags: &[Tag],
    ) -> StoreResult<()> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write(async move |db| create(db, &scope, &record, &tags).await)
            .await
    }

    async fn get_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
    ) -> StoreResult<Option<RoleAliasRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    role_alias_columns!(),
                    " FROM role_aliases",
                    " WHERE account_id = $1 AND region = $2 AND alias = $3"
                ),
                &[&scope.account_id, &scope.region, &alias],
                role_alias,
            )
            .await
        })
        .await
    }

    /// Applies the update and returns the record as it is afterwards; `NotFound` if absent.
    async fn update_role_alias(
        &self,
        scope: &Scope,
        alias: &str,
        update: &RoleAliasUpdate,
    ) -> StoreResult<RoleAliasRecord> {
        let (scope, alias, update) = (scope.clone(), alias.to_owned(), update.clone());
        self.write_one(async move |db| {
            db.query_opt(
                sql!(
                    "UPDATE role_aliases SET",
                    " role_arn = COALESCE($4, role_arn),",
                    " credential_duration_seconds = COALESCE($5, credential_duration_seconds),",
                    " updated_at_ms = $6",
                    " WHERE account_id = $1 AND region = $2 AND alias = $3",
                    " RETURNING ",
                    role_alias_columns!()
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &alias,
                    &update.role_arn,
                    &update.credential_duration_seconds,
                    &update.updated_at_ms,
                ],
                role_alias,
            )
            .await?
            .ok_or(StoreError::NotFound.into())
        })
        .await
    }

    /// Deletes the alias and the tags on its ARN; returns whether it existed.
    async fn delete_role_alias(&self, scope: &Scope, alias: &str) -> StoreResult<bool> {
        let (scope, alias) = (scope.clone(), alias.to_owned());
        self.write(async move |db| {
            tags::delete_tagged(
                db,
                &scope,
                sql!(
                    "DELETE FROM role_aliases",
                    " WHERE account_id = $1 AND region = $2 AND alias = $3 RETURNING arn"
                ),
                &[&scope.account_id, &scope.region, &alias],
            )
            .await
        })
        .await
    }

    /// Up to `limit` aliases ordered by alias (descending if `descending`), strictly
    /// after `after` in that order.
    async fn list_role_aliases(
        &self,
        scope: &Scope,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<RoleAliasRecord>> {
        self.read(async |db| list(db, scope, after, descending, limit).await)
            .await
    }
}

async fn create(
    db: &Db<'_>,
    scope: &Scope,
    record: &RoleAliasRecord,
    tags: &[Tag],
) -> DbResult<()> {
    // The alias is taken if and only if the primary key rejects the row.
    db.insert(
        sql!(
            "INSERT INTO role_aliases (account_id, region, ",
            role_alias_columns!(),
            ")",
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &record.alias,
            &record.arn,
            &record.role_arn,
            &record.credential_duration_seconds,
            &record.created_at_ms,
            &record.updated_at_ms,
        ],
    )
    .await?;
    tags::upsert(db, scope, &record.arn, tags).await?;
    Ok(())
}

/// One statement per (paged, direction) so each is a plain range scan on the primary
/// key.
async fn list(
    db: &Db<'_>,
    scope: &Scope,
    after: Option<&str>,
    descending: bool,
    limit: usize,
) -> DbResult<Vec<RoleAliasRecord>> {
    macro_rules! list {
        ($cond:literal, $order:literal, $limit:literal) => {
            sql!(
                "SELECT ",
                role_alias_columns!(),
                " FROM role_aliases WHERE account_id = $1 AND region = $2",
                $cond,
                " ORDER BY alias ",
                $order,
                " LIMIT ",
                $limit
            )
        };
    }
    let sql = match (after.is_some(), descending) {
        (false, false) => list!("", "ASC", "$3"),
        (true, false) => list!(" AND alias > $3", "ASC", "$4"),
        (false, true) => list!("", "DESC", "$3"),
        (true, true) => list!(" AND alias < $3", "DESC", "$4"),
    };
    let limit = sql_limit(limit);
    let mut params: Vec<&dyn Param> = vec![&scope.account_id, &scope.region];
    params.extend(after.as_ref().map(|a| a as &dyn Param));
    params.push(&limit);
    db.query(sql, &params, role_alias).await
}
