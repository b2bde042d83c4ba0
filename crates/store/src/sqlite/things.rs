//! The thing helpers other SQLite modules (mitigation tasks) still call inside their
//! own rusqlite transaction; the store itself is in `crate::things`, whose `&Db`
//! versions of these replace them once those callers move onto the seam.

use rusqlite::{OptionalExtension, Transaction};

use super::error::sql_err;
use crate::things::plan_membership_change;
use crate::{Scope, StoreResult, ThingRefusal};

/// The root of an existing group's hierarchy; mitigation stages also use it to check
/// that a group exists.
pub(super) fn group_root(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> StoreResult<Option<String>> {
    tx.prepare_cached(
        "SELECT root_name FROM thing_groups WHERE account_id = ?1 AND region = ?2 AND name = ?3",
    )
    .and_then(|mut stmt| {
        stmt.query_row((&scope.account_id, &scope.region, name), |row| row.get(0))
            .optional()
    })
    .map_err(sql_err)
}

/// Changes the thing's memberships inside the caller's transaction (see
/// `ThingStore::change_thing_groups`); mitigation stages add things to groups with it.
pub(super) fn change_thing_groups_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    thing: &str,
    add: &[String],
    remove: &[String],
    max_groups: usize,
) -> StoreResult<Result<(), ThingRefusal>> {
    let key = (&scope.account_id, &scope.region, thing);
    let exists = tx
        .prepare_cached("SELECT 1 FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3")
        .and_then(|mut stmt| stmt.exists(key))
        .map_err(sql_err)?;
    if !exists {
        return Ok(Err(ThingRefusal::ThingNotFound(thing.to_owned())));
    }
    let mut adds = Vec::with_capacity(add.len());
    for group in add {
        match group_root(tx, scope, group)? {
            Some(root) => adds.push((group.clone(), root)),
            None => return Ok(Err(ThingRefusal::GroupNotFound(group.clone()))),
        }
    }
    for group in remove {
        if group_root(tx, scope, group)?.is_none() {
            return Ok(Err(ThingRefusal::GroupNotFound(group.clone())));
        }
    }
    let current: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT group_name, root_name FROM thing_group_members
                 WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map(key, |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)?
    };
    let inserts = match plan_membership_change(&current, &adds, remove, max_groups) {
        Ok(inserts) => inserts,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut delete = tx
        .prepare_cached(
            "DELETE FROM thing_group_members
             WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3 AND group_name = ?4",
        )
        .map_err(sql_err)?;
    for group in remove {
        delete
            .execute((&scope.account_id, &scope.region, thing, group))
            .map_err(sql_err)?;
    }
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO thing_group_members
             (account_id, region, thing_name, group_name, root_name)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(sql_err)?;
    for (group, root) in &inserts {
        insert
            .execute((&scope.account_id, &scope.region, thing, group, root))
            .map_err(sql_err)?;
    }
    Ok(Ok(()))
}
