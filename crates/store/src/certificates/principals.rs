//! [`PrincipalStore`] on both engines: things' principals (certificates) and policies'
//! targets. The locks each write takes on PostgreSQL are listed in the docs of
//! `crate::certificates`; SQLite's single writer needs none of them.

use super::device::{CERTIFICATE_FOR_KEY_SHARE, CERTIFICATE_FOR_NO_KEY_UPDATE};
use super::{exclusive_conflict, found, POLICY_TARGET_LOCK_SPACE};
use crate::db::{sql_limit, Db, DbResult, Dialect, Param, Query, Row, Sql};
use crate::things::lock_thing;
use crate::{PolicyRef, PolicyTarget, PrincipalOutcome, PrincipalRefusal, Scope, StoreResult};
use palisade_store_macros::engines;

const THING: &Sql<'static> =
    sql!("SELECT 1 FROM things WHERE account_id = $1 AND region = $2 AND name = $3");

fn policy_ref(row: &Row<'_>) -> DbResult<PolicyRef> {
    Ok(from_row!(row => PolicyRef { name, arn }))
}

/// Things' principals (certificates) and policies' targets.
///
/// Listings are keyset pages in byte order of what they list (certificate ids, thing
/// names, policy names, target ARNs).
#[engines]
pub trait PrincipalStore: Send + Sync {
    /// Attaches the certificate to the thing; attaching again succeeds (and records the
    /// latest `exclusive`). Refusals: `ThingNotFound`, `CertificateNotFound`, `Exclusive`
    /// (the certificate is attached exclusively to another thing, or `exclusive` and it
    /// is attached to another thing).
    async fn attach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
        exclusive: bool,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>> {
        let (scope, thing, certificate) = (
            scope.clone(),
            thing_name.to_owned(),
            certificate_id.to_owned(),
        );
        self.write(async move |db| {
            attach_thing_principal(db, &scope, &thing, &certificate, exclusive, now_ms).await
        })
        .await
    }

    /// Detaches; returns whether it was attached. Refusal: `ThingNotFound`.
    async fn detach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
    ) -> StoreResult<PrincipalOutcome<bool>> {
        let (scope, thing, certificate) = (
            scope.clone(),
            thing_name.to_owned(),
            certificate_id.to_owned(),
        );
        self.write(async move |db| {
            if !found(db, THING, &[&scope.account_id, &scope.region, &thing]).await? {
                return Ok(Err(PrincipalRefusal::ThingNotFound));
            }
            let deleted = db
                .execute(
                    sql!(
                        "DELETE FROM thing_principals WHERE account_id = $1 AND region = $2",
                        " AND thing_name = $3 AND certificate_id = $4"
                    ),
                    &[&scope.account_id, &scope.region, &thing, &certificate],
                )
                .await?;
            Ok(Ok(deleted > 0))
        })
        .await
    }

    /// Ids of the certificates attached to the thing; `None` if there is no such thing.
    async fn list_thing_principals(
        &self,
        scope: &Scope,
        thing_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        self.read(async |db| {
            let page = sql!(
                "SELECT certificate_id FROM thing_principals",
                " WHERE account_id = $1 AND region = $2 AND thing_name = $3",
                " AND certificate_id > $4 ORDER BY certificate_id LIMIT $5"
            );
            names_of(db, scope, THING, page, thing_name, after, limit).await
        })
        .await
    }

    /// Names of the things the certificate is attached to.
    async fn list_principal_things(
        &self,
        scope: &Scope,
        certificate_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.read(async |db| {
            principal_things(db, scope, certificate_id, after.unwrap_or(""), limit).await
        })
        .await
    }

    /// Attaches the policy to the target; attaching again succeeds. Refusals:
    /// `PolicyNotFound`, `CertificateNotFound` / `GroupNotFound` (the target),
    /// `TooManyPolicies` if the target already has `max_per_target` others.
    async fn attach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target: &PolicyTarget,
        max_per_target: usize,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>> {
        let (scope, policy, target) = (scope.clone(), policy_name.to_owned(), target.clone());
        self.write(async move |db| {
            attach_policy(db, &scope, &policy, &target, max_per_target, now_ms).await
        })
        .await
    }

    /// Detaches; returns whether it was attached.
    async fn detach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target_arn: &str,
    ) -> StoreResult<bool> {
        let (scope, policy, target) =
            (scope.clone(), policy_name.to_owned(), target_arn.to_owned());
        self.write_one(async move |db| {
            let deleted = db
                .execute(
                    sql!(
                        "DELETE FROM policy_attachments WHERE account_id = $1",
                        " AND region = $2 AND policy_name = $3 AND target = $4"
                    ),
                    &[&scope.account_id, &scope.region, &policy, &target],
                )
                .await?;
            Ok(deleted > 0)
        })
        .await
    }

    /// The policies attached to any of `target_arns` (each once), by policy name.
    async fn list_attached_policies(
        &self,
        scope: &Scope,
        target_arns: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRef>> {
        if target_arns.is_empty() {
            return Ok(Vec::new());
        }
        let (after, limit) = (after.unwrap_or(""), sql_limit(limit));
        self.read(async |db| {
            if db.dialect() == Dialect::Postgres {
                let sql = attached_policies("= ANY($5::text[])");
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
                    &scope.account_id,
                    &scope.region,
                    &after,
                    &limit,
                    &target_arns,
                ];
                return db.query_pg(&sql, &params, policy_ref).await;
            }
            // Bound in the order of their places: $1 to $4, then the targets.
            let mut q = Query::default();
            q.bind(scope.account_id.clone());
            q.bind(scope.region.clone());
            q.bind(after.to_owned());
            q.bind(limit);
            let marks: Vec<String> = target_arns.iter().map(|arn| q.bind(arn.clone())).collect();
            q.push(&attached_policies(&format!("IN ({})", marks.join(", "))));
            q.query(db, policy_ref).await
        })
        .await
    }

    /// ARNs of the policy's targets; `None` if there is no such policy.
    async fn list_targets_for_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        self.read(async |db| {
            let policy =
                sql!("SELECT 1 FROM policies WHERE account_id = $1 AND region = $2 AND name = $3");
            let page = sql!(
                "SELECT target FROM policy_attachments",
                " WHERE account_id = $1 AND region = $2 AND policy_name = $3",
                " AND target > $4 ORDER BY target LIMIT $5"
            );
            names_of(db, scope, policy, page, policy_name, after, limit).await
        })
        .await
    }
}

async fn attach_thing_principal(
    db: &Db<'_>,
    scope: &Scope,
    thing: &str,
    certificate: &str,
    exclusive: bool,
    now_ms: i64,
) -> DbResult<PrincipalOutcome<()>> {
    // DeleteThing's lock: the thing cannot go while this attachment is written.
    lock_thing(db, scope, thing).await?;
    if !found(db, THING, &[&scope.account_id, &scope.region, &thing]).await? {
        return Ok(Err(PrincipalRefusal::ThingNotFound));
    }
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &certificate];
    if !found(db, CERTIFICATE_FOR_NO_KEY_UPDATE, &key).await? {
        return Ok(Err(PrincipalRefusal::CertificateNotFound));
    }
    let others: Vec<(String, bool)> = db
        .query(
            sql!(
                "SELECT thing_name, exclusive FROM thing_principals",
                " WHERE account_id = $1 AND region = $2 AND certificate_id = $3",
                " AND thing_name <> $4 ORDER BY thing_name"
            ),
            &[&scope.account_id, &scope.region, &certificate, &thing],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .await?;
    if let Some(conflict) = exclusive_conflict(&others, exclusive) {
        return Ok(Err(conflict));
    }
    db.execute(
        sql!(
            "INSERT INTO thing_principals",
            " (account_id, region, thing_name, certificate_id, exclusive, attached_at_ms)",
            " VALUES ($1, $2, $3, $4, $5, $6)",
            " ON CONFLICT (account_id, region, thing_name, certificate_id)",
            " DO UPDATE SET exclusive = excluded.exclusive"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &thing,
            &certificate,
            &exclusive,
            &now_ms,
        ],
    )
    .await?;
    Ok(Ok(()))
}

async fn attach_policy(
    db: &Db<'_>,
    scope: &Scope,
    policy: &str,
    target: &PolicyTarget,
    max_per_target: usize,
    now_ms: i64,
) -> DbResult<PrincipalOutcome<()>> {
    let arn = target.arn();
    db.lock(POLICY_TARGET_LOCK_SPACE, &format!("{}/{arn}", scope.key()))
        .await?;
    let policy_found = found(
        db,
        sql!(
            "SELECT 1 FROM policies",
            " WHERE account_id = $1 AND region = $2 AND name = $3 FOR KEY SHARE"
        ),
        &[&scope.account_id, &scope.region, &policy],
    )
    .await?;
    if !policy_found {
        return Ok(Err(PrincipalRefusal::PolicyNotFound));
    }
    let (sql, key, missing) = match target {
        PolicyTarget::Certificate { id, .. } => (
            CERTIFICATE_FOR_KEY_SHARE,
            id,
            PrincipalRefusal::CertificateNotFound,
        ),
        PolicyTarget::ThingGroup { name, .. } => (
            sql!(
                "SELECT 1 FROM thing_groups",
                " WHERE account_id = $1 AND region = $2 AND name = $3 FOR KEY SHARE"
            ),
            name,
            PrincipalRefusal::GroupNotFound,
        ),
    };
    if !found(db, sql, &[&scope.account_id, &scope.region, key]).await? {
        return Ok(Err(missing));
    }
    let others = db
        .count(
            sql!(
                "SELECT COUNT(*) FROM policy_attachments WHERE account_id = $1",
                " AND region = $2 AND target = $3 AND policy_name <> $4"
            ),
            &[&scope.account_id, &scope.region, &arn, &policy],
        )
        .await?;
    if others >= max_per_target {
        return Ok(Err(PrincipalRefusal::TooManyPolicies {
            limit: max_per_target,
        }));
    }
    db.execute(
        sql!(
            "INSERT INTO policy_attachments",
            " (account_id, region, policy_name, target, attached_at_ms)",
            " VALUES ($1, $2, $3, $4, $5)",
            " ON CONFLICT (account_id, region, policy_name, target) DO NOTHING"
        ),
        &[&scope.account_id, &scope.region, &policy, &arn, &now_ms],
    )
    .await?;
    Ok(Ok(()))
}

/// The policies attached to targets the condition `targets` names (PostgreSQL: an array;
/// SQLite: a list of places), by name after `$3`, up to `$4`.
fn attached_policies(targets: &str) -> String {
    format!(
        "SELECT DISTINCT a.policy_name, p.arn FROM policy_attachments a
         JOIN policies p ON p.account_id = a.account_id AND p.region = a.region
             AND p.name = a.policy_name
         WHERE a.account_id = $1 AND a.region = $2 AND a.target {targets}
           AND a.policy_name > $3
         ORDER BY a.policy_name LIMIT $4"
    )
}

/// Also run by sqlite/certificates.rs on the mitigation stages' rusqlite transaction.
pub(crate) const PRINCIPAL_THINGS: &Sql<'static> = sql!(
    "SELECT thing_name FROM thing_principals",
    " WHERE account_id = $1 AND region = $2 AND certificate_id = $3",
    " AND thing_name > $4 ORDER BY thing_name LIMIT $5"
);

/// Names of the things the certificate is attached to, after `after` (see
/// `PrincipalStore::list_principal_things`); mitigation stages read them too.
pub(crate) async fn principal_things(
    db: &Db<'_>,
    scope: &Scope,
    certificate_id: &str,
    after: &str,
    limit: usize,
) -> DbResult<Vec<String>> {
    let limit = sql_limit(limit);
    db.query(
        PRINCIPAL_THINGS,
        &[
            &scope.account_id,
            &scope.region,
            &certificate_id,
            &after,
            &limit,
        ],
        |row| row.get(0),
    )
    .await
}

/// The first column of `page` (`$1` to `$3` the scope and `owner`, keyset after `$4`,
/// `LIMIT $5`) if `exists` (`$1` to `$3`) finds the owner; `None` if it does not.
async fn names_of(
    db: &Db<'_>,
    scope: &Scope,
    exists: &Sql<'_>,
    page: &Sql<'_>,
    owner: &str,
    after: Option<&str>,
    limit: usize,
) -> DbResult<Option<Vec<String>>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &owner];
    if !found(db, exists, &key).await? {
        return Ok(None);
    }
    let (after, limit) = (after.unwrap_or(""), sql_limit(limit));
    let params: [&dyn Param; 5] = [key[0], key[1], key[2], &after, &limit];
    db.query(page, &params, |row| row.get(0)).await.map(Some)
}
