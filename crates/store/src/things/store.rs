//! [`ThingStore`] on both engines.
//!
//! Every write to an existing thing (update, delete, membership) first takes a
//! transaction-scoped advisory lock on the thing, so check-then-write rules (version,
//! the group limit, one group per hierarchy) see every other writer's committed result,
//! on every node. Groups are guarded by row locks instead: an update holds its row `FOR
//! NO KEY UPDATE`, a delete `FOR UPDATE`, and whoever needs a group to go on existing
//! until it commits (a new child, a new member) holds it `FOR KEY SHARE`, which only a
//! delete waits for. Read committed gives each statement a fresh snapshot taken after
//! the locks it waited for were released. On SQLite the single writer's IMMEDIATE
//! transaction does all of this: no other writer runs in between.

use palisade_store_macros::engines;
use std::collections::HashMap;

use super::plan_membership_change;
use crate::db::{sql_limit, Db, DbResult, Dialect, Param, Query, Row, Sql};
use crate::{
    tags, AttributeChange, Attributes, GroupRef, GroupSelection, Scope, StoreError, StoreResult,
    Tag, ThingFilter, ThingGroupRecord, ThingGroupUpdate, ThingGroupView, ThingRecord,
    ThingRefusal, ThingUpdate, ValueMatch,
};

/// First key of the advisory locks that serialise writes per thing (1 and 2 are the
/// action scope and tag resource locks).
pub(crate) const THING_LOCK_SPACE: i32 = 3;

macro_rules! thing_columns {
    () => {
        "name, id, arn, thing_type_name, billing_group_name, version, created_at_ms, updated_at_ms"
    };
}

/// Maps a row of `thing_columns!()` followed by one attribute's name and value (NULL
/// when the thing has none); attributes are gathered by [`fold`].
fn thing(row: &Row<'_>) -> DbResult<(ThingRecord, Option<(String, String)>)> {
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
    Ok((record, row.get::<Option<String>>(8)?.zip(row.get(9)?)))
}

macro_rules! group_columns {
    () => {
        "name, id, arn, parent_name, description, version, created_at_ms, updated_at_ms"
    };
}

/// Maps a row of `group_columns!()` followed by two texts, NULL or not together (an
/// attribute's name and value, or an ancestor's name and ARN: see [`read_group`]).
fn group(row: &Row<'_>) -> DbResult<(ThingGroupRecord, Option<(String, String)>)> {
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
    Ok((record, row.get::<Option<String>>(8)?.zip(row.get(9)?)))
}

fn group_ref(row: &Row<'_>) -> DbResult<GroupRef> {
    Ok(from_row!(row => GroupRef { name, arn }))
}

fn pair(row: &Row<'_>) -> DbResult<(String, String)> {
    Ok((row.get(0)?, row.get(1)?))
}

/// Things come one row per attribute (a thing without any has one row with no
/// attribute), things in order; this gathers them back.
fn fold(rows: Vec<(ThingRecord, Option<(String, String)>)>) -> Vec<ThingRecord> {
    let mut out: Vec<ThingRecord> = Vec::new();
    for (record, attr) in rows {
        if out.last().is_none_or(|last| last.name != record.name) {
            out.push(record);
        }
        if let (Some((name, value)), Some(last)) = (attr, out.last_mut()) {
            last.attributes.insert(name, value);
        }
    }
    out
}

/// Statements of one of the two attribute tables, keyed by their owner's name ($3).
struct AttributeTable {
    select: &'static Sql<'static>,
    delete_all: &'static Sql<'static>,
    /// One attribute ($4, $5): SQLite inserts them one by one.
    insert_one: &'static Sql<'static>,
    /// All of them from two arrays ($4, $5), in one PostgreSQL statement.
    insert_all: &'static str,
}

const THING_ATTRIBUTES: AttributeTable = AttributeTable {
    select: sql!(
        "SELECT attr_name, attr_value FROM thing_attributes",
        " WHERE account_id = $1 AND region = $2 AND thing_name = $3"
    ),
    delete_all: sql!(
        "DELETE FROM thing_attributes WHERE account_id = $1 AND region = $2 AND thing_name = $3"
    ),
    insert_one: sql!(
        "INSERT INTO thing_attributes (account_id, region, thing_name, attr_name, attr_value)",
        " VALUES ($1, $2, $3, $4, $5)"
    ),
    insert_all: "INSERT INTO thing_attributes
                 (account_id, region, thing_name, attr_name, attr_value)
                 SELECT $1::text, $2::text, $3::text, n, v
                 FROM UNNEST($4::text[], $5::text[]) AS a (n, v)",
};

const GROUP_ATTRIBUTES: AttributeTable = AttributeTable {
    select: sql!(
        "SELECT attr_name, attr_value FROM thing_group_attributes",
        " WHERE account_id = $1 AND region = $2 AND group_name = $3"
    ),
    delete_all: sql!(
        "DELETE FROM thing_group_attributes",
        " WHERE account_id = $1 AND region = $2 AND group_name = $3"
    ),
    insert_one: sql!(
        "INSERT INTO thing_group_attributes",
        " (account_id, region, group_name, attr_name, attr_value) VALUES ($1, $2, $3, $4, $5)"
    ),
    insert_all: "INSERT INTO thing_group_attributes
                 (account_id, region, group_name, attr_name, attr_value)
                 SELECT $1::text, $2::text, $3::text, n, v
                 FROM UNNEST($4::text[], $5::text[]) AS a (n, v)",
};

impl AttributeTable {
    async fn insert(
        &self,
        db: &Db<'_>,
        scope: &Scope,
        owner: &str,
        attributes: &Attributes,
    ) -> DbResult<()> {
        if attributes.is_empty() {
            return Ok(());
        }
        if db.dialect() == Dialect::Sqlite {
            for (name, value) in attributes {
                let params: [&dyn Param; 5] =
                    [&scope.account_id, &scope.region, &owner, name, value];
                db.execute(self.insert_one, &params).await?;
            }
            return Ok(());
        }
        let names: Vec<&str> = attributes.keys().map(String::as_str).collect();
        let values: Vec<&str> = attributes.values().map(String::as_str).collect();
        db.execute_pg(
            self.insert_all,
            &[&scope.account_id, &scope.region, &owner, &names, &values],
        )
        .await
        .map(drop)
    }

    /// Applies `change` to the stored attributes, refusing (before writing) if the
    /// result has more than `max`.
    async fn change(
        &self,
        db: &Db<'_>,
        scope: &Scope,
        owner: &str,
        change: &AttributeChange,
        max: usize,
    ) -> DbResult<Result<(), ThingRefusal>> {
        let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &owner];
        let current = db.query(self.select, &key, pair).await?;
        let after = change.apply(current.into_iter().collect());
        if after.len() > max {
            return Ok(Err(ThingRefusal::TooManyAttributes { limit: max }));
        }
        db.execute(self.delete_all, &key).await?;
        self.insert(db, scope, owner, &after).await?;
        Ok(Ok(()))
    }
}

/// Things and static thing groups, with group membership.
///
/// Listings are keyset pages in byte order of the name they list, like every other
/// listing of the store: up to `limit` entries with names strictly greater than `after`.
#[engines]
pub trait ThingStore: Send + Sync {
    /// Inserts the thing with its attributes. `AlreadyExists` if the name is taken.
    async fn create_thing(&self, scope: &Scope, record: &ThingRecord) -> StoreResult<()> {
        let (scope, record) = (scope.clone(), record.clone());
        self.write(async move |db| create_thing(db, &scope, &record).await)
            .await
    }

    async fn get_thing(&self, scope: &Scope, name: &str) -> StoreResult<Option<ThingRecord>> {
        self.read(async |db| read_thing(db, scope, name).await)
            .await
    }

    /// Applies the update and returns the thing as it is afterwards. Refusals:
    /// `ThingNotFound`, `VersionMismatch`, `TooManyAttributes`.
    async fn update_thing(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingUpdate,
    ) -> StoreResult<Result<ThingRecord, ThingRefusal>> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write(async move |db| update_thing(db, &scope, &name, &update).await)
            .await
    }

    /// Deletes the thing, its attributes and its group memberships; `Ok(false)` if there
    /// was no such thing. Refusals (only for an existing thing): `VersionMismatch`,
    /// `HasPrincipals`.
    async fn delete_thing(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<Result<bool, ThingRefusal>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write(async move |db| delete_thing(db, &scope, &name, expected_version).await)
            .await
    }

    async fn list_things(
        &self,
        scope: &Scope,
        filter: &ThingFilter,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ThingRecord>> {
        let q = list_things(scope, filter, after, limit);
        self.read(async |db| Ok(fold(q.query(db, thing).await?)))
            .await
    }

    /// Inserts the group, its attributes, its place under `record.parent_name` and its
    /// tags atomically. `AlreadyExists` if the name is taken (checked first). Refusals:
    /// `GroupNotFound` (the parent), `TooDeep`.
    async fn create_thing_group(
        &self,
        scope: &Scope,
        record: &ThingGroupRecord,
        tags: &[Tag],
        max_depth: usize,
    ) -> StoreResult<Result<(), ThingRefusal>> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write(async move |db| create_group(db, &scope, &record, &tags, max_depth).await)
            .await
    }

    async fn get_thing_group(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<ThingGroupView>> {
        self.read(async |db| read_group(db, scope, name).await)
            .await
    }

    /// Refusals: `GroupNotFound`, `VersionMismatch`, `TooManyAttributes`.
    async fn update_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingGroupUpdate,
    ) -> StoreResult<Result<ThingGroupRecord, ThingRefusal>> {
        let (scope, name, update) = (scope.clone(), name.to_owned(), update.clone());
        self.write(async move |db| update_group(db, &scope, &name, &update).await)
            .await
    }

    /// Deletes the group, its attributes, its memberships, the policies attached to it
    /// (detached) and the tags on its ARN; `Ok(false)` if there was no such group. Refusals (only for an existing group):
    /// `VersionMismatch`, `HasChildGroups`.
    async fn delete_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<Result<bool, ThingRefusal>> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.write(async move |db| delete_group(db, &scope, &name, expected_version).await)
            .await
    }

    /// Groups of `selection` whose names start with `name_prefix`, if given.
    async fn list_thing_groups(
        &self,
        scope: &Scope,
        selection: &GroupSelection,
        name_prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GroupRef>> {
        let q = list_groups(scope, selection, name_prefix, after, limit);
        self.read(async |db| q.query(db, group_ref).await).await
    }

    /// Removes the thing from the groups in `remove`, then adds it to those in `add`, all
    /// or nothing. Being added to a group it is in, or removed from one it is not in,
    /// is not an error. Refusals: `ThingNotFound`; `GroupNotFound` for any named group
    /// (adds checked first, in order); `SameHierarchy` if the thing would end up in two
    /// groups with one root; `TooManyGroups` if it would end up in more than
    /// `max_groups` groups.
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
        self.write(async move |db| {
            change_thing_groups_in(db, &scope, &thing, &add, &remove, max_groups).await
        })
        .await
    }

    /// The groups the thing is directly in, by group name.
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
        let l = q.bind(sql_limit(limit));
        q.push(&format!(" ORDER BY m.group_name LIMIT {l}"));
        self.read(async |db| q.query(db, group_ref).await).await
    }

    /// Names of the things in the group, and with `recursive` in its descendants too.
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
                 WHERE m.account_id = {account} AND m.region = {region}
                   AND m.group_name = {group}"
            ));
        }
        if let Some(after) = after {
            let p = q.bind(after.to_owned());
            q.push(&format!(" AND m.thing_name > {p}"));
        }
        let l = q.bind(sql_limit(limit));
        q.push(&format!(" ORDER BY m.thing_name LIMIT {l}"));
        self.read(async |db| q.query(db, |row| row.get(0)).await)
            .await
    }
}

/// Serialises writes to one thing across nodes (a no-op on SQLite). Shared with
/// attaching a principal, which must exclude DeleteThing.
pub(crate) async fn lock_thing(db: &Db<'_>, scope: &Scope, name: &str) -> DbResult<()> {
    db.lock(THING_LOCK_SPACE, &format!("{}/{name}", scope.key()))
        .await
}

async fn thing_version(db: &Db<'_>, scope: &Scope, name: &str) -> DbResult<Option<i64>> {
    db.value(
        sql!("SELECT version FROM things WHERE account_id = $1 AND region = $2 AND name = $3"),
        &[&scope.account_id, &scope.region, &name],
    )
    .await
}

/// One statement, so the thing and its attributes come from one snapshot.
async fn read_thing(db: &Db<'_>, scope: &Scope, name: &str) -> DbResult<Option<ThingRecord>> {
    let rows = db
        .query(
            sql!(
                "SELECT ",
                thing_columns!(),
                ", attr_name, attr_value FROM things t LEFT JOIN thing_attributes a",
                " ON a.account_id = t.account_id AND a.region = t.region AND a.thing_name = t.name",
                " WHERE t.account_id = $1 AND t.region = $2 AND t.name = $3 ORDER BY a.attr_name"
            ),
            &[&scope.account_id, &scope.region, &name],
            thing,
        )
        .await?;
    Ok(fold(rows).pop())
}

async fn create_thing(db: &Db<'_>, scope: &Scope, record: &ThingRecord) -> DbResult<()> {
    // The primary key decides a race between creators of one name.
    db.insert(
        sql!(
            "INSERT INTO things (account_id, region, ",
            thing_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &record.name,
            &record.id,
            &record.arn,
            &record.thing_type_name,
            &record.billing_group_name,
            &record.version,
            &record.created_at_ms,
            &record.updated_at_ms,
        ],
    )
    .await?;
    THING_ATTRIBUTES
        .insert(db, scope, &record.name, &record.attributes)
        .await
}

async fn update_thing(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    update: &ThingUpdate,
) -> DbResult<Result<ThingRecord, ThingRefusal>> {
    lock_thing(db, scope, name).await?;
    let Some(version) = thing_version(db, scope, name).await? else {
        return Ok(Err(ThingRefusal::ThingNotFound(name.to_owned())));
    };
    if update.expected_version.is_some_and(|v| v != version) {
        return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
    }
    if let Some(change) = &update.attributes {
        if let Err(refusal) = THING_ATTRIBUTES
            .change(db, scope, name, change, update.max_attributes)
            .await?
        {
            return Ok(Err(refusal));
        }
    }
    db.execute(
        sql!(
            "UPDATE things SET version = version + 1, updated_at_ms = $4,",
            " thing_type_name = CASE WHEN $5 THEN NULL ELSE thing_type_name END",
            " WHERE account_id = $1 AND region = $2 AND name = $3"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &name,
            &update.updated_at_ms,
            &update.remove_thing_type,
        ],
    )
    .await?;
    let after = read_thing(db, scope, name).await?;
    Ok(after.ok_or_else(|| ThingRefusal::ThingNotFound(name.to_owned())))
}

async fn delete_thing(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    expected_version: Option<i64>,
) -> DbResult<Result<bool, ThingRefusal>> {
    lock_thing(db, scope, name).await?;
    let Some(version) = thing_version(db, scope, name).await? else {
        return Ok(Ok(false));
    };
    if expected_version.is_some_and(|v| v != version) {
        return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
    }
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &name];
    // Principals (certificates.rs) must be detached first, as on AWS; their attachment
    // takes this thing's lock too, so this sees every one.
    let principal: Option<i32> = db
        .value(
            sql!(
                "SELECT 1 FROM thing_principals",
                " WHERE account_id = $1 AND region = $2 AND thing_name = $3 LIMIT 1"
            ),
            &key,
        )
        .await?;
    if principal.is_some() {
        return Ok(Err(ThingRefusal::HasPrincipals));
    }
    for sql in [
        sql!(
            "DELETE FROM thing_group_members",
            " WHERE account_id = $1 AND region = $2 AND thing_name = $3"
        ),
        THING_ATTRIBUTES.delete_all,
        sql!("DELETE FROM things WHERE account_id = $1 AND region = $2 AND name = $3"),
    ] {
        db.execute(sql, &key).await?;
    }
    Ok(Ok(true))
}

fn list_things(scope: &Scope, filter: &ThingFilter, after: Option<&str>, limit: usize) -> Query {
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
                let p = q.bind(v.clone());
                q.push(&format!(" AND {}", starts_with("x.attr_value", &p)));
            }
        }
        q.push(")");
    }
    let l = q.bind(sql_limit(limit));
    q.push(&format!(
        " ORDER BY t.name LIMIT {l}) t LEFT JOIN thing_attributes a
           ON a.account_id = {account} AND a.region = {region} AND a.thing_name = t.name
         ORDER BY t.name, a.attr_name"
    ));
    q
}

/// Whether `column` starts with the text bound at `p`: the range bound lets the index
/// narrow the scan, the comparison of the first characters decides (PostgreSQL's
/// `starts_with` is not in SQLite).
fn starts_with(column: &str, p: &str) -> String {
    format!("{column} >= {p} AND substr({column}, 1, length({p})) = {p}")
}

/// The root of an existing group, holding the group `FOR KEY SHARE` until commit so a
/// concurrent delete waits for this transaction (and then sees what it wrote).
/// Mitigation stages also use it to check that a group exists.
pub(crate) async fn keep_group(db: &Db<'_>, scope: &Scope, name: &str) -> DbResult<Option<String>> {
    db.value(
        sql!(
            "SELECT root_name FROM thing_groups",
            " WHERE account_id = $1 AND region = $2 AND name = $3 FOR KEY SHARE"
        ),
        &[&scope.account_id, &scope.region, &name],
    )
    .await
}

/// Version and ARN of a group, row-locked until commit: `FOR UPDATE` to delete it (which
/// waits for every `FOR KEY SHARE` holder), `FOR NO KEY UPDATE` to update it (which does
/// not, as an update changes no key).
async fn lock_group(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    for_delete: bool,
) -> DbResult<Option<(i64, String)>> {
    let sql = if for_delete {
        sql!(
            "SELECT version, arn FROM thing_groups",
            " WHERE account_id = $1 AND region = $2 AND name = $3 FOR UPDATE"
        )
    } else {
        sql!(
            "SELECT version, arn FROM thing_groups",
            " WHERE account_id = $1 AND region = $2 AND name = $3 FOR NO KEY UPDATE"
        )
    };
    db.query_opt(sql, &[&scope.account_id, &scope.region, &name], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })
    .await
}

/// The group with its attributes and ancestors, in one statement so all come from one
/// snapshot: a row per ancestor (depth > 0, root first), then a row per attribute
/// (depth 0); a group with neither has one row, of NULLs past its own columns.
async fn read_group(db: &Db<'_>, scope: &Scope, name: &str) -> DbResult<Option<ThingGroupView>> {
    let rows = db
        .query(
            sql!(
                "SELECT ",
                group_columns!(),
                ", x.entry, x.detail, x.depth",
                " FROM thing_groups g LEFT JOIN (",
                " SELECT t.depth, p.name AS entry, p.arn AS detail",
                " FROM thing_group_tree t JOIN thing_groups p",
                " ON p.account_id = t.account_id AND p.region = t.region",
                " AND p.name = t.ancestor_name",
                " WHERE t.account_id = $1 AND t.region = $2 AND t.group_name = $3 AND t.depth > 0",
                " UNION ALL",
                " SELECT 0, attr_name, attr_value FROM thing_group_attributes",
                " WHERE account_id = $1 AND region = $2 AND group_name = $3",
                ") x ON TRUE",
                " WHERE g.account_id = $1 AND g.region = $2 AND g.name = $3",
                " ORDER BY x.depth DESC"
            ),
            &[&scope.account_id, &scope.region, &name],
            |row| Ok((group(row)?, row.get::<Option<i32>>(10)?)),
        )
        .await?;
    let mut view: Option<ThingGroupView> = None;
    for ((record, entry), depth) in rows {
        let view = view.get_or_insert_with(|| ThingGroupView {
            group: record,
            root_to_parent: Vec::new(),
        });
        match (entry, depth) {
            (Some((name, arn)), Some(1..)) => view.root_to_parent.push(GroupRef { name, arn }),
            (Some((name, value)), _) => {
                view.group.attributes.insert(name, value);
            }
            (None, _) => {}
        }
    }
    Ok(view)
}

async fn create_group(
    db: &Db<'_>,
    scope: &Scope,
    record: &ThingGroupRecord,
    tags: &[Tag],
    max_depth: usize,
) -> DbResult<Result<(), ThingRefusal>> {
    if keep_group(db, scope, &record.name).await?.is_some() {
        return Err(StoreError::AlreadyExists.into());
    }
    let root = match &record.parent_name {
        None => record.name.clone(),
        Some(parent) => {
            // Held until commit, so the parent cannot be deleted under its new child (a
            // delete waits, then finds the child).
            let Some(root) = keep_group(db, scope, parent).await? else {
                return Ok(Err(ThingRefusal::GroupNotFound(parent.clone())));
            };
            let levels = db
                .count(
                    sql!(
                        "SELECT COUNT(*) FROM thing_group_tree",
                        " WHERE account_id = $1 AND region = $2 AND group_name = $3"
                    ),
                    &[&scope.account_id, &scope.region, parent],
                )
                .await?;
            if levels >= max_depth {
                return Ok(Err(ThingRefusal::TooDeep { limit: max_depth }));
            }
            root
        }
    };
    // The primary key decides a race between creators of one name.
    db.insert(
        sql!(
            "INSERT INTO thing_groups (account_id, region, ",
            group_columns!(),
            ", root_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &record.name,
            &record.id,
            &record.arn,
            &record.parent_name,
            &record.description,
            &record.version,
            &record.created_at_ms,
            &record.updated_at_ms,
            &root,
        ],
    )
    .await?;
    GROUP_ATTRIBUTES
        .insert(db, scope, &record.name, &record.attributes)
        .await?;
    // The group is its own ancestor at depth 0; the parent's ancestors are the group's,
    // one level further away.
    db.execute(
        sql!(
            "INSERT INTO thing_group_tree (account_id, region, ancestor_name, group_name, depth)",
            " SELECT $1::text, $2::text, $3::text, $3::text, 0",
            " UNION ALL",
            " SELECT account_id, region, ancestor_name, $3::text, depth + 1 FROM thing_group_tree",
            " WHERE account_id = $1 AND region = $2 AND group_name = $4"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &record.name,
            &record.parent_name,
        ],
    )
    .await?;
    tags::upsert(db, scope, &record.arn, tags).await?;
    Ok(Ok(()))
}

async fn update_group(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    update: &ThingGroupUpdate,
) -> DbResult<Result<ThingGroupRecord, ThingRefusal>> {
    let Some((version, _)) = lock_group(db, scope, name, false).await? else {
        return Ok(Err(ThingRefusal::GroupNotFound(name.to_owned())));
    };
    if update.expected_version.is_some_and(|v| v != version) {
        return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
    }
    if let Some(change) = &update.attributes {
        if let Err(refusal) = GROUP_ATTRIBUTES
            .change(db, scope, name, change, update.max_attributes)
            .await?
        {
            return Ok(Err(refusal));
        }
    }
    db.execute(
        sql!(
            "UPDATE thing_groups SET version = version + 1, updated_at_ms = $4,",
            " description = COALESCE($5, description)",
            " WHERE account_id = $1 AND region = $2 AND name = $3"
        ),
        &[
            &scope.account_id,
            &scope.region,
            &name,
            &update.updated_at_ms,
            &update.description,
        ],
    )
    .await?;
    let after = read_group(db, scope, name).await?;
    Ok(after
        .map(|view| view.group)
        .ok_or_else(|| ThingRefusal::GroupNotFound(name.to_owned())))
}

async fn delete_group(
    db: &Db<'_>,
    scope: &Scope,
    name: &str,
    expected_version: Option<i64>,
) -> DbResult<Result<bool, ThingRefusal>> {
    // Waits for anyone holding the group FOR KEY SHARE (a new child or member being
    // written), so the checks below see what they committed.
    let Some((version, arn)) = lock_group(db, scope, name, true).await? else {
        return Ok(Ok(false));
    };
    if expected_version.is_some_and(|v| v != version) {
        return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
    }
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &name];
    let child: Option<i32> = db
        .value(
            sql!(
                "SELECT 1 FROM thing_groups",
                " WHERE account_id = $1 AND region = $2 AND parent_name = $3 LIMIT 1"
            ),
            &key,
        )
        .await?;
    if child.is_some() {
        return Ok(Err(ThingRefusal::HasChildGroups));
    }
    for sql in [
        sql!(
            "DELETE FROM thing_group_members",
            " WHERE account_id = $1 AND region = $2 AND group_name = $3"
        ),
        sql!(
            "DELETE FROM thing_group_tree",
            " WHERE account_id = $1 AND region = $2 AND group_name = $3"
        ),
        GROUP_ATTRIBUTES.delete_all,
        sql!("DELETE FROM thing_groups WHERE account_id = $1 AND region = $2 AND name = $3"),
    ] {
        db.execute(sql, &key).await?;
    }
    // Policies attached to the group (certificates.rs) are detached with it; attaching
    // holds the group FOR KEY SHARE, so this sees every one.
    db.execute(
        sql!(
            "DELETE FROM policy_attachments WHERE account_id = $1 AND region = $2 AND target = $3"
        ),
        &[&scope.account_id, &scope.region, &arn],
    )
    .await?;
    tags::delete_all(db, scope, &arn).await?;
    Ok(Ok(true))
}

fn list_groups(
    scope: &Scope,
    selection: &GroupSelection,
    name_prefix: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Query {
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
        q.push(&format!(" AND {}", starts_with("g.name", &p)));
    }
    if let Some(after) = after {
        let p = q.bind(after.to_owned());
        q.push(&format!(" AND g.name > {p}"));
    }
    let l = q.bind(sql_limit(limit));
    q.push(&format!(" ORDER BY g.name LIMIT {l}"));
    q
}

/// Changes the thing's memberships inside the caller's transaction (see
/// `ThingStore::change_thing_groups`), under the thing's lock; mitigation stages add
/// things to groups with it.
pub(crate) async fn change_thing_groups_in(
    db: &Db<'_>,
    scope: &Scope,
    thing_name: &str,
    add: &[String],
    remove: &[String],
    max_groups: usize,
) -> DbResult<Result<(), ThingRefusal>> {
    lock_thing(db, scope, thing_name).await?;
    if thing_version(db, scope, thing_name).await?.is_none() {
        return Ok(Err(ThingRefusal::ThingNotFound(thing_name.to_owned())));
    }
    // Every named group, held FOR KEY SHARE until commit (see `keep_group`); on
    // PostgreSQL in one round trip however many the request names.
    let named: Vec<&str> = add.iter().chain(remove).map(String::as_str).collect();
    let roots: HashMap<String, String> = if db.dialect() == Dialect::Sqlite {
        let mut roots = HashMap::new();
        for group in &named {
            if let Some(root) = keep_group(db, scope, group).await? {
                roots.insert((*group).to_owned(), root);
            }
        }
        roots
    } else {
        db.query_pg(
            "SELECT name, root_name FROM thing_groups
             WHERE account_id = $1 AND region = $2 AND name = ANY($3::text[])
             FOR KEY SHARE",
            &[&scope.account_id, &scope.region, &named],
            pair,
        )
        .await?
        .into_iter()
        .collect()
    };
    if let Some(missing) = named.iter().find(|g| !roots.contains_key(**g)) {
        return Ok(Err(ThingRefusal::GroupNotFound((*missing).to_owned())));
    }
    let adds: Vec<(String, String)> = add
        .iter()
        .filter_map(|g| roots.get(g).map(|root| (g.clone(), root.clone())))
        .collect();
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &thing_name];
    let current = db
        .query(
            sql!(
                "SELECT group_name, root_name FROM thing_group_members",
                " WHERE account_id = $1 AND region = $2 AND thing_name = $3"
            ),
            &key,
            pair,
        )
        .await?;
    let inserts = match plan_membership_change(&current, &adds, remove, max_groups) {
        Ok(inserts) => inserts,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if db.dialect() == Dialect::Sqlite {
        for group in remove {
            let params: [&dyn Param; 4] = [key[0], key[1], key[2], group];
            db.execute(
                sql!(
                    "DELETE FROM thing_group_members",
                    " WHERE account_id = $1 AND region = $2 AND thing_name = $3 AND group_name = $4"
                ),
                &params,
            )
            .await?;
        }
        for (group, root) in &inserts {
            let params: [&dyn Param; 5] = [key[0], key[1], key[2], group, root];
            db.execute(
                sql!(
                    "INSERT INTO thing_group_members",
                    " (account_id, region, thing_name, group_name, root_name)",
                    " VALUES ($1, $2, $3, $4, $5)"
                ),
                &params,
            )
            .await?;
        }
        return Ok(Ok(()));
    }
    if !remove.is_empty() {
        db.execute_pg(
            "DELETE FROM thing_group_members
             WHERE account_id = $1 AND region = $2 AND thing_name = $3
               AND group_name = ANY($4::text[])",
            &[&scope.account_id, &scope.region, &thing_name, &remove],
        )
        .await?;
    }
    if !inserts.is_empty() {
        let (groups, roots): (Vec<&str>, Vec<&str>) = inserts
            .iter()
            .map(|(g, r)| (g.as_str(), r.as_str()))
            .unzip();
        db.execute_pg(
            "INSERT INTO thing_group_members
             (account_id, region, thing_name, group_name, root_name)
             SELECT $1::text, $2::text, $3::text, g, r
             FROM UNNEST($4::text[], $5::text[]) AS m (g, r)",
            &[
                &scope.account_id,
                &scope.region,
                &thing_name,
                &groups,
                &roots,
            ],
        )
        .await?;
    }
    Ok(Ok(()))
}
