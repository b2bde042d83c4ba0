//! Things, thing groups and membership on SQLite. Every write is one IMMEDIATE
//! transaction on the single writer, so each rule is checked and applied with no other
//! writer (of this or another process) in between.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Row, Transaction};

use super::error::{insert_err, sql_err};
use super::{sql_limit, tags, SqliteStore};
use crate::things::plan_membership_change;
use crate::{
    AttributeChange, Attributes, GroupRef, GroupSelection, Scope, StoreError, StoreResult, Tag,
    ThingFilter, ThingGroupRecord, ThingGroupUpdate, ThingGroupView, ThingRecord, ThingRefusal,
    ThingStore, ThingUpdate, ValueMatch,
};

macro_rules! thing_columns {
    () => {
        "name, id, arn, thing_type_name, billing_group_name, version, created_at_ms, updated_at_ms"
    };
}

/// Maps a row of `thing_columns!()` followed by one attribute's name and value (NULL
/// when the thing has none); attributes are gathered by [`fold`].
fn thing_row(row: &Row<'_>) -> rusqlite::Result<(ThingRecord, Option<(String, String)>)> {
    let record = ThingRecord {
        name: row.get(0)?,
        id: row.get(1)?,
        arn: row.get(2)?,
        thing_type_name: row.get(3)?,
        billing_group_name: row.get(4)?,
        attributes: Attributes::new(),
        version: row.get(5)?,
        created_at_ms: row.get(6)?,
        updated_at_ms: row.get(7)?,
    };
    Ok((record, attribute(row, 8)?))
}

macro_rules! group_columns {
    () => {
        "name, id, arn, parent_name, description, version, created_at_ms, updated_at_ms"
    };
}

fn group_row(row: &Row<'_>) -> rusqlite::Result<(ThingGroupRecord, Option<(String, String)>)> {
    let record = ThingGroupRecord {
        name: row.get(0)?,
        id: row.get(1)?,
        arn: row.get(2)?,
        parent_name: row.get(3)?,
        description: row.get(4)?,
        attributes: Attributes::new(),
        version: row.get(5)?,
        created_at_ms: row.get(6)?,
        updated_at_ms: row.get(7)?,
    };
    Ok((record, attribute(row, 8)?))
}

fn attribute(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<(String, String)>> {
    let name: Option<String> = row.get(at)?;
    let value: Option<String> = row.get(at + 1)?;
    Ok(name.zip(value))
}

fn group_ref(row: &Row<'_>) -> rusqlite::Result<GroupRef> {
    Ok(GroupRef {
        name: row.get(0)?,
        arn: row.get(1)?,
    })
}

/// Records and their attributes come one row per attribute (a record without any has
/// one row with no attribute), records in order; this gathers them back.
trait WithAttributes {
    fn key(&self) -> &str;
    fn attributes_mut(&mut self) -> &mut Attributes;
}

impl WithAttributes for ThingRecord {
    fn key(&self) -> &str {
        &self.name
    }
    fn attributes_mut(&mut self) -> &mut Attributes {
        &mut self.attributes
    }
}

impl WithAttributes for ThingGroupRecord {
    fn key(&self) -> &str {
        &self.name
    }
    fn attributes_mut(&mut self) -> &mut Attributes {
        &mut self.attributes
    }
}

fn fold<R: WithAttributes>(rows: Vec<(R, Option<(String, String)>)>) -> Vec<R> {
    let mut out: Vec<R> = Vec::new();
    for (record, attr) in rows {
        let same = out.last().is_some_and(|last| last.key() == record.key());
        if !same {
            out.push(record);
        }
        if let (Some((name, value)), Some(last)) = (attr, out.last_mut()) {
            last.attributes_mut().insert(name, value);
        }
    }
    out
}

/// SQL of one of the two attribute tables, keyed by their owner's name.
struct AttributeTable {
    select: &'static str,
    delete_all: &'static str,
    insert: &'static str,
}

const THING_ATTRIBUTES: AttributeTable = AttributeTable {
    select: "SELECT attr_name, attr_value FROM thing_attributes
             WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3",
    delete_all: "DELETE FROM thing_attributes
                 WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3",
    insert: "INSERT INTO thing_attributes (account_id, region, thing_name, attr_name, attr_value)
             VALUES (?1, ?2, ?3, ?4, ?5)",
};

const GROUP_ATTRIBUTES: AttributeTable = AttributeTable {
    select: "SELECT attr_name, attr_value FROM thing_group_attributes
             WHERE account_id = ?1 AND region = ?2 AND group_name = ?3",
    delete_all: "DELETE FROM thing_group_attributes
                 WHERE account_id = ?1 AND region = ?2 AND group_name = ?3",
    insert: "INSERT INTO thing_group_attributes
             (account_id, region, group_name, attr_name, attr_value)
             VALUES (?1, ?2, ?3, ?4, ?5)",
};

impl AttributeTable {
    fn read(&self, tx: &Transaction<'_>, scope: &Scope, owner: &str) -> StoreResult<Attributes> {
        let mut stmt = tx.prepare_cached(self.select).map_err(sql_err)?;
        let rows = stmt
            .query_map((&scope.account_id, &scope.region, owner), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)
    }

    fn insert(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        owner: &str,
        attributes: &Attributes,
    ) -> StoreResult<()> {
        let mut stmt = tx.prepare_cached(self.insert).map_err(sql_err)?;
        for (name, value) in attributes {
            stmt.execute((&scope.account_id, &scope.region, owner, name, value))
                .map_err(sql_err)?;
        }
        Ok(())
    }

    fn delete(&self, tx: &Transaction<'_>, scope: &Scope, owner: &str) -> StoreResult<()> {
        tx.prepare_cached(self.delete_all)
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, owner)))
            .map_err(sql_err)?;
        Ok(())
    }

    /// Applies `change` to the stored attributes, refusing (before writing) if the
    /// result has more than `max`.
    fn change(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        owner: &str,
        change: &AttributeChange,
        max: usize,
    ) -> StoreResult<Result<Attributes, ThingRefusal>> {
        let after = change.apply(self.read(tx, scope, owner)?);
        if after.len() > max {
            return Ok(Err(ThingRefusal::TooManyAttributes { limit: max }));
        }
        self.delete(tx, scope, owner)?;
        self.insert(tx, scope, owner, &after)?;
        Ok(Ok(after))
    }
}

/// A statement assembled from optional conditions, with its parameters numbered in the
/// order they are bound.
#[derive(Default)]
struct Query {
    sql: String,
    params: Vec<Value>,
}

impl Query {
    /// Binds `value` and returns its placeholder.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    fn run<T>(
        &self,
        conn: &Connection,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        let mut stmt = conn.prepare_cached(&self.sql).map_err(sql_err)?;
        let rows = stmt
            .query_map(params_from_iter(self.params.iter()), f)
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)
    }
}

fn limit_value(limit: usize) -> Value {
    Value::Integer(sql_limit(limit))
}

fn thing_version(tx: &Transaction<'_>, scope: &Scope, name: &str) -> StoreResult<Option<i64>> {
    tx.prepare_cached(
        "SELECT version FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3",
    )
    .and_then(|mut stmt| {
        stmt.query_row((&scope.account_id, &scope.region, name), |row| row.get(0))
            .optional()
    })
    .map_err(sql_err)
}

/// Version and ARN of a group.
fn group_state(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> StoreResult<Option<(i64, String)>> {
    tx.prepare_cached(
        "SELECT version, arn FROM thing_groups WHERE account_id = ?1 AND region = ?2 AND name = ?3",
    )
    .and_then(|mut stmt| {
        stmt.query_row((&scope.account_id, &scope.region, name), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
    })
    .map_err(sql_err)
}

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

fn get_thing_in(conn: &Connection, scope: &Scope, name: &str) -> StoreResult<Option<ThingRecord>> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            thing_columns!(),
            ", attr_name, attr_value FROM things t LEFT JOIN thing_attributes a",
            " ON a.account_id = t.account_id AND a.region = t.region AND a.thing_name = t.name",
            " WHERE t.account_id = ?1 AND t.region = ?2 AND t.name = ?3 ORDER BY a.attr_name"
        ))
        .map_err(sql_err)?;
    let rows = stmt
        .query_map((&scope.account_id, &scope.region, name), thing_row)
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    Ok(fold(rows).pop())
}

fn get_group_in(
    conn: &Connection,
    scope: &Scope,
    name: &str,
) -> StoreResult<Option<ThingGroupRecord>> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            group_columns!(),
            ", attr_name, attr_value FROM thing_groups g LEFT JOIN thing_group_attributes a",
            " ON a.account_id = g.account_id AND a.region = g.region AND a.group_name = g.name",
            " WHERE g.account_id = ?1 AND g.region = ?2 AND g.name = ?3 ORDER BY a.attr_name"
        ))
        .map_err(sql_err)?;
    let rows = stmt
        .query_map((&scope.account_id, &scope.region, name), group_row)
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    Ok(fold(rows).pop())
}

fn insert_thing(tx: &Transaction<'_>, scope: &Scope, record: &ThingRecord) -> StoreResult<()> {
    tx.prepare_cached(concat!(
        "INSERT INTO things (account_id, region, ",
        thing_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))
    .and_then(|mut stmt| {
        stmt.execute((
            &scope.account_id,
            &scope.region,
            &record.name,
            &record.id,
            &record.arn,
            &record.thing_type_name,
            &record.billing_group_name,
            record.version,
            record.created_at_ms,
            record.updated_at_ms,
        ))
    })
    .map_err(insert_err)?;
    THING_ATTRIBUTES.insert(tx, scope, &record.name, &record.attributes)
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
    if thing_version(tx, scope, thing)?.is_none() {
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
            .query_map((&scope.account_id, &scope.region, thing), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
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

#[async_trait]
impl ThingStore for SqliteStore {
    async fn create_thing(&self, scope: &Scope, record: &ThingRecord) -> StoreResult<()> {
        let (scope, record) = (scope.clone(), record.clone());
        self.write_tx(move |tx| insert_thing(tx, &scope, &record))
            .await
    }

    async fn get_thing(&self, scope: &Scope, name: &str) -> StoreResult<Option<ThingRecord>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        // One statement, so the thing and its attributes come from one snapshot.
        self.read_conn(move |conn| get_thing_in(conn, &scope, &name))
            .await
    }

    async fn update_thing(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingUpdate,
    ) -> StoreResult<Result<ThingRecord, ThingRefusal>> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write_tx(move |tx| {
            let Some(version) = thing_version(tx, &scope, &name)? else {
                return Ok(Err(ThingRefusal::ThingNotFound(name)));
            };
            if update.expected_version.is_some_and(|v| v != version) {
                return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
            }
            if let Some(change) = &update.attributes {
                if let Err(refusal) =
                    THING_ATTRIBUTES.change(tx, &scope, &name, change, update.max_attributes)?
                {
                    return Ok(Err(refusal));
                }
            }
            tx.prepare_cached(
                "UPDATE things SET version = version + 1, updated_at_ms = ?4,
                     thing_type_name = CASE WHEN ?5 THEN NULL ELSE thing_type_name END
                 WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &name,
                    update.updated_at_ms,
                    update.remove_thing_type,
                ))
            })
            .map_err(sql_err)?;
            match get_thing_in(tx, &scope, &name)? {
                Some(record) => Ok(Ok(record)),
                None => Ok(Err(ThingRefusal::ThingNotFound(name))),
            }
        })
        .await
    }

    async fn delete_thing(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<Result<bool, ThingRefusal>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write_tx(move |tx| {
            let Some(version) = thing_version(tx, &scope, &name)? else {
                return Ok(Ok(false));
            };
            if expected_version.is_some_and(|v| v != version) {
                return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
            }
            let key = (&scope.account_id, &scope.region, &name);
            // Principals (certificates.rs) must be detached first, as on AWS.
            let has_principals = tx
                .prepare_cached(
                    "SELECT 1 FROM thing_principals
                     WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3 LIMIT 1",
                )
                .and_then(|mut stmt| stmt.exists(key))
                .map_err(sql_err)?;
            if has_principals {
                return Ok(Err(ThingRefusal::HasPrincipals));
            }
            for sql in [
                "DELETE FROM thing_group_members WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3",
                THING_ATTRIBUTES.delete_all,
                "DELETE FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            ] {
                tx.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute(key))
                    .map_err(sql_err)?;
            }
            Ok(Ok(true))
        })
        .await
    }

    async fn list_things(
        &self,
        scope: &Scope,
        filter: &ThingFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ThingRecord>> {
        let mut q = Query::default();
        let (account, region) = (
            q.bind(scope.account_id.clone()),
            q.bind(scope.region.clone()),
        );
        q.push(&format!(
            concat!(
                "SELECT ",
                thing_columns!(),
                ", attr_name, attr_value FROM (SELECT ",
                thing_columns!(),
                " FROM things t WHERE t.account_id = {a} AND t.region = {r}"
            ),
            a = account,
            r = region
        ));
        if let Some(after) = after {
            let p = q.bind(after.to_owned());
            q.push(&format!(" AND t.name > {p}"));
        }
        if let Some(t) = &filter.thing_type_name {
            let p = q.bind(t.clone());
            q.push(&format!(" AND t.thing_type_name = {p}"));
        }
        if let Some(attr) = &filter.attribute {
            let n = q.bind(attr.name.clone());
            q.push(&format!(
                " AND t.name IN (SELECT x.thing_name FROM thing_attributes x
                   WHERE x.account_id = {account} AND x.region = {region} AND x.attr_name = {n}"
            ));
            match &attr.value {
                ValueMatch::Any => {}
                ValueMatch::Exact(v) => {
                    let p = q.bind(v.clone());
                    q.push(&format!(" AND x.attr_value = {p}"));
                }
                ValueMatch::Prefix(v) => {
                    // The range bound lets the index narrow the scan; substr decides.
                    let p = q.bind(v.clone());
                    q.push(&format!(
                        " AND x.attr_value >= {p} AND substr(x.attr_value, 1, length({p})) = {p}"
                    ));
                }
            }
            q.push(")");
        }
        let l = q.bind(limit_value(limit));
        q.push(&format!(
            " ORDER BY t.name LIMIT {l}) t LEFT JOIN thing_attributes a
               ON a.account_id = {account} AND a.region = {region} AND a.thing_name = t.name
             ORDER BY t.name, a.attr_name"
        ));
        self.read_conn(move |conn| q.run(conn, thing_row).map(fold))
            .await
    }

    async fn create_thing_group(
        &self,
        scope: &Scope,
        record: &ThingGroupRecord,
        tags: &[Tag],
        max_depth: usize,
    ) -> StoreResult<Result<(), ThingRefusal>> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write_tx(move |tx| {
            if group_root(tx, &scope, &record.name)?.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            let root = match &record.parent_name {
                None => record.name.clone(),
                Some(parent) => {
                    let Some(root) = group_root(tx, &scope, parent)? else {
                        return Ok(Err(ThingRefusal::GroupNotFound(parent.clone())));
                    };
                    let parent_levels: i64 = tx
                        .prepare_cached(
                            "SELECT COUNT(*) FROM thing_group_tree
                             WHERE account_id = ?1 AND region = ?2 AND group_name = ?3",
                        )
                        .and_then(|mut stmt| {
                            stmt.query_row((&scope.account_id, &scope.region, parent), |row| {
                                row.get(0)
                            })
                        })
                        .map_err(sql_err)?;
                    if usize::try_from(parent_levels).unwrap_or(usize::MAX) >= max_depth {
                        return Ok(Err(ThingRefusal::TooDeep { limit: max_depth }));
                    }
                    root
                }
            };
            tx.prepare_cached(concat!(
                "INSERT INTO thing_groups (account_id, region, ",
                group_columns!(),
                ", root_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &record.name,
                    &record.id,
                    &record.arn,
                    &record.parent_name,
                    &record.description,
                    record.version,
                    record.created_at_ms,
                    record.updated_at_ms,
                    &root,
                ))
            })
            .map_err(insert_err)?;
            GROUP_ATTRIBUTES.insert(tx, &scope, &record.name, &record.attributes)?;
            // The group is its own ancestor at depth 0; the parent's ancestors are the
            // group's, one level further away.
            tx.prepare_cached(
                "INSERT INTO thing_group_tree (account_id, region, ancestor_name, group_name, depth)
                 SELECT ?1, ?2, ?3, ?3, 0
                 UNION ALL
                 SELECT account_id, region, ancestor_name, ?3, depth + 1 FROM thing_group_tree
                 WHERE account_id = ?1 AND region = ?2 AND group_name = ?4",
            )
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &record.name,
                    &record.parent_name,
                ))
            })
            .map_err(sql_err)?;
            tags::upsert(tx, &scope, &record.arn, &tags)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn get_thing_group(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<ThingGroupView>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.read_conn(move |conn| {
            // Two statements: one read transaction keeps them on one snapshot.
            let tx = conn.unchecked_transaction().map_err(sql_err)?;
            let Some(group) = get_group_in(&tx, &scope, &name)? else {
                return Ok(None);
            };
            let mut stmt = tx
                .prepare_cached(
                    "SELECT g.name, g.arn FROM thing_group_tree t JOIN thing_groups g
                       ON g.account_id = t.account_id AND g.region = t.region
                      AND g.name = t.ancestor_name
                     WHERE t.account_id = ?1 AND t.region = ?2 AND t.group_name = ?3
                       AND t.depth > 0
                     ORDER BY t.depth DESC",
                )
                .map_err(sql_err)?;
            let root_to_parent = stmt
                .query_map((&scope.account_id, &scope.region, &name), group_ref)
                .map_err(sql_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_err)?;
            Ok(Some(ThingGroupView {
                group,
                root_to_parent,
            }))
        })
        .await
    }

    async fn update_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingGroupUpdate,
    ) -> StoreResult<Result<ThingGroupRecord, ThingRefusal>> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write_tx(move |tx| {
            let Some((version, _)) = group_state(tx, &scope, &name)? else {
                return Ok(Err(ThingRefusal::GroupNotFound(name)));
            };
            if update.expected_version.is_some_and(|v| v != version) {
                return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
            }
            if let Some(change) = &update.attributes {
                if let Err(refusal) =
                    GROUP_ATTRIBUTES.change(tx, &scope, &name, change, update.max_attributes)?
                {
                    return Ok(Err(refusal));
                }
            }
            tx.prepare_cached(
                "UPDATE thing_groups SET version = version + 1, updated_at_ms = ?4,
                     description = COALESCE(?5, description)
                 WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &name,
                    update.updated_at_ms,
                    &update.description,
                ))
            })
            .map_err(sql_err)?;
            match get_group_in(tx, &scope, &name)? {
                Some(record) => Ok(Ok(record)),
                None => Ok(Err(ThingRefusal::GroupNotFound(name))),
            }
        })
        .await
    }

    async fn delete_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<Result<bool, ThingRefusal>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write_tx(move |tx| {
            let Some((version, arn)) = group_state(tx, &scope, &name)? else {
                return Ok(Ok(false));
            };
            if expected_version.is_some_and(|v| v != version) {
                return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
            }
            let key = (&scope.account_id, &scope.region, &name);
            let has_children = tx
                .prepare_cached(
                    "SELECT 1 FROM thing_groups
                     WHERE account_id = ?1 AND region = ?2 AND parent_name = ?3 LIMIT 1",
                )
                .and_then(|mut stmt| stmt.exists(key))
                .map_err(sql_err)?;
            if has_children {
                return Ok(Err(ThingRefusal::HasChildGroups));
            }
            for sql in [
                "DELETE FROM thing_group_members WHERE account_id = ?1 AND region = ?2 AND group_name = ?3",
                "DELETE FROM thing_group_tree WHERE account_id = ?1 AND region = ?2 AND group_name = ?3",
                GROUP_ATTRIBUTES.delete_all,
                "DELETE FROM thing_groups WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            ] {
                tx.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute(key))
                    .map_err(sql_err)?;
            }
            // Policies attached to the group (certificates.rs) are detached with it.
            tx.prepare_cached(
                "DELETE FROM policy_attachments WHERE account_id = ?1 AND region = ?2 AND target = ?3",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, &arn)))
            .map_err(sql_err)?;
            tags::delete_all(tx, &scope, &arn)?;
            Ok(Ok(true))
        })
        .await
    }

    async fn list_thing_groups(
        &self,
        scope: &Scope,
        selection: &GroupSelection,
        name_prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GroupRef>> {
        let mut q = Query::default();
        let (account, region) = (
            q.bind(scope.account_id.clone()),
            q.bind(scope.region.clone()),
        );
        q.push(&format!(
            "SELECT g.name, g.arn FROM thing_groups g
             WHERE g.account_id = {account} AND g.region = {region}"
        ));
        match selection {
            GroupSelection::All => {}
            GroupSelection::ChildrenOf(parent) => {
                let p = q.bind(parent.clone());
                q.push(&format!(" AND g.parent_name = {p}"));
            }
            GroupSelection::DescendantsOf(ancestor) => {
                let p = q.bind(ancestor.clone());
                q.push(&format!(
                    " AND g.name IN (SELECT t.group_name FROM thing_group_tree t
                       WHERE t.account_id = {account} AND t.region = {region}
                         AND t.ancestor_name = {p} AND t.depth > 0)"
                ));
            }
        }
        if let Some(prefix) = name_prefix {
            let p = q.bind(prefix.to_owned());
            q.push(&format!(
                " AND g.name >= {p} AND substr(g.name, 1, length({p})) = {p}"
            ));
        }
        if let Some(after) = after {
            let p = q.bind(after.to_owned());
            q.push(&format!(" AND g.name > {p}"));
        }
        let l = q.bind(limit_value(limit));
        q.push(&format!(" ORDER BY g.name LIMIT {l}"));
        self.read_conn(move |conn| q.run(conn, group_ref)).await
    }

    async fn change_thing_groups(
        &self,
        scope: &Scope,
        thing_name: &str,
        add: &[String],
        remove: &[String],
        max_groups: usize,
    ) -> StoreResult<Result<(), ThingRefusal>> {
        let (scope, thing) = (scope.clone(), thing_name.to_owned());
        let (add, remove) = (add.to_vec(), remove.to_vec());
        self.write_tx(move |tx| {
            change_thing_groups_in(tx, &scope, &thing, &add, &remove, max_groups)
        })
        .await
    }

    async fn list_thing_groups_for_thing(
        &self,
        scope: &Scope,
        thing_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GroupRef>> {
        let mut q = Query::default();
        let (account, region) = (
            q.bind(scope.account_id.clone()),
            q.bind(scope.region.clone()),
        );
        let thing = q.bind(thing_name.to_owned());
        q.push(&format!(
            "SELECT g.name, g.arn FROM thing_group_members m JOIN thing_groups g
               ON g.account_id = m.account_id AND g.region = m.region AND g.name = m.group_name
             WHERE m.account_id = {account} AND m.region = {region} AND m.thing_name = {thing}"
        ));
        if let Some(after) = after {
            let p = q.bind(after.to_owned());
            q.push(&format!(" AND m.group_name > {p}"));
        }
        let l = q.bind(limit_value(limit));
        q.push(&format!(" ORDER BY m.group_name LIMIT {l}"));
        self.read_conn(move |conn| q.run(conn, group_ref)).await
    }

    async fn list_things_in_thing_group(
        &self,
        scope: &Scope,
        group_name: &str,
        recursive: bool,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut q = Query::default();
        let (account, region) = (
            q.bind(scope.account_id.clone()),
            q.bind(scope.region.clone()),
        );
        let group = q.bind(group_name.to_owned());
        if recursive {
            // A thing is in at most one group of a hierarchy, so no thing repeats; the
            // DISTINCT only guards that invariant.
            q.push(&format!(
                "SELECT DISTINCT m.thing_name FROM thing_group_tree t JOIN thing_group_members m
                   ON m.account_id = t.account_id AND m.region = t.region
                  AND m.group_name = t.group_name
                 WHERE t.account_id = {account} AND t.region = {region}
                   AND t.ancestor_name = {group}"
            ));
        } else {
            q.push(&format!(
                "SELECT m.thing_name FROM thing_group_members m
                 WHERE m.account_id = {account} AND m.region = {region} AND m.group_name = {group}"
            ));
        }
        if let Some(after) = after {
            let p = q.bind(after.to_owned());
            q.push(&format!(" AND m.thing_name > {p}"));
        }
        let l = q.bind(limit_value(limit));
        q.push(&format!(" ORDER BY m.thing_name LIMIT {l}"));
        self.read_conn(move |conn| q.run(conn, |row| row.get(0)))
            .await
    }
}
