//! Things, thing groups and membership on PostgreSQL.
//!
//! Every write to an existing thing (update, delete, membership) first takes a
//! transaction-scoped advisory lock on the thing, so check-then-write rules (version,
//! the group limit, one group per hierarchy) see every other writer's committed result,
//! on every node. Groups are guarded by row locks instead: an update holds its row `FOR
//! NO KEY UPDATE`, a delete `FOR UPDATE`, and whoever needs a group to go on existing
//! until it commits (a new child, a new member) holds it `FOR KEY SHARE`, which only a
//! delete waits for. Read committed gives each statement a fresh snapshot taken after
//! the locks it waited for were released.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::error::{insert_err, Fail};
use super::{count_to_usize, sql_limit, tags, PostgresStore};
use crate::things::plan_membership_change;
use crate::{
    AttributeChange, Attributes, GroupRef, GroupSelection, Scope, StoreError, StoreResult, Tag,
    ThingFilter, ThingGroupRecord, ThingGroupUpdate, ThingGroupView, ThingRecord, ThingRefusal,
    ThingStore, ThingUpdate, ValueMatch,
};

/// First key of the advisory locks that serialise writes per thing (1 and 2 are the
/// action scope and tag resource locks).
pub(super) const THING_LOCK_SPACE: i32 = 3;

macro_rules! thing_columns {
    () => {
        "name, id, arn, thing_type_name, billing_group_name, version, created_at_ms, updated_at_ms"
    };
}

/// Maps a row of `thing_columns!()` followed by one attribute's name and value (NULL
/// when the thing has none); attributes are gathered by [`fold`].
fn thing_row(row: &Row) -> Result<(ThingRecord, Option<(String, String)>), Fail> {
    let record = ThingRecord {
        name: row.try_get(0)?,
        id: row.try_get(1)?,
        arn: row.try_get(2)?,
        thing_type_name: row.try_get(3)?,
        billing_group_name: row.try_get(4)?,
        attributes: Attributes::new(),
        version: row.try_get(5)?,
        created_at_ms: row.try_get(6)?,
        updated_at_ms: row.try_get(7)?,
    };
    Ok((record, attribute(row, 8)?))
}

macro_rules! group_columns {
    () => {
        "name, id, arn, parent_name, description, version, created_at_ms, updated_at_ms"
    };
}

fn group_row(row: &Row) -> Result<(ThingGroupRecord, Option<(String, String)>), Fail> {
    let record = ThingGroupRecord {
        name: row.try_get(0)?,
        id: row.try_get(1)?,
        arn: row.try_get(2)?,
        parent_name: row.try_get(3)?,
        description: row.try_get(4)?,
        attributes: Attributes::new(),
        version: row.try_get(5)?,
        created_at_ms: row.try_get(6)?,
        updated_at_ms: row.try_get(7)?,
    };
    Ok((record, attribute(row, 8)?))
}

fn attribute(row: &Row, at: usize) -> Result<Option<(String, String)>, Fail> {
    let name: Option<String> = row.try_get(at)?;
    let value: Option<String> = row.try_get(at + 1)?;
    Ok(name.zip(value))
}

fn group_ref(row: &Row) -> Result<GroupRef, Fail> {
    Ok(GroupRef {
        name: row.try_get(0)?,
        arn: row.try_get(1)?,
    })
}

fn map_all<T>(rows: &[Row], f: fn(&Row) -> Result<T, Fail>) -> Result<Vec<T>, Fail> {
    rows.iter().map(f).collect()
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
             WHERE account_id = $1 AND region = $2 AND thing_name = $3",
    delete_all: "DELETE FROM thing_attributes
                 WHERE account_id = $1 AND region = $2 AND thing_name = $3",
    insert: "INSERT INTO thing_attributes (account_id, region, thing_name, attr_name, attr_value)
             SELECT $1::text, $2::text, $3::text, n, v FROM UNNEST($4::text[], $5::text[]) AS a (n, v)",
};

const GROUP_ATTRIBUTES: AttributeTable = AttributeTable {
    select: "SELECT attr_name, attr_value FROM thing_group_attributes
             WHERE account_id = $1 AND region = $2 AND group_name = $3",
    delete_all: "DELETE FROM thing_group_attributes
                 WHERE account_id = $1 AND region = $2 AND group_name = $3",
    insert: "INSERT INTO thing_group_attributes
             (account_id, region, group_name, attr_name, attr_value)
             SELECT $1::text, $2::text, $3::text, n, v FROM UNNEST($4::text[], $5::text[]) AS a (n, v)",
};

impl AttributeTable {
    async fn read(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        owner: &str,
    ) -> Result<Attributes, Fail> {
        let stmt = tx.prepare_cached(self.select).await?;
        let rows = tx
            .query(&stmt, &[&scope.account_id, &scope.region, &owner])
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        owner: &str,
        attributes: &Attributes,
    ) -> Result<(), Fail> {
        if attributes.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = attributes.keys().map(String::as_str).collect();
        let values: Vec<&str> = attributes.values().map(String::as_str).collect();
        let stmt = tx.prepare_cached(self.insert).await?;
        tx.execute(
            &stmt,
            &[&scope.account_id, &scope.region, &owner, &names, &values],
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, tx: &Transaction<'_>, scope: &Scope, owner: &str) -> Result<(), Fail> {
        let stmt = tx.prepare_cached(self.delete_all).await?;
        tx.execute(&stmt, &[&scope.account_id, &scope.region, &owner])
            .await?;
        Ok(())
    }

    /// Applies `change` to the stored attributes, refusing (before writing) if the
    /// result has more than `max`.
    async fn change(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        owner: &str,
        change: &AttributeChange,
        max: usize,
    ) -> Result<Result<Attributes, ThingRefusal>, Fail> {
        let after = change.apply(self.read(tx, scope, owner).await?);
        if after.len() > max {
            return Ok(Err(ThingRefusal::TooManyAttributes { limit: max }));
        }
        self.delete(tx, scope, owner).await?;
        self.insert(tx, scope, owner, &after).await?;
        Ok(Ok(after))
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

/// A statement assembled from optional conditions, with its parameters numbered in the
/// order they are bound.
#[derive(Default)]
struct Query {
    sql: String,
    params: Vec<Param>,
}

impl Query {
    /// Binds `value` and returns its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Shared with attaching a principal (certificates.rs), which must exclude DeleteThing.
pub(super) async fn lock_thing(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> Result<(), Fail> {
    let key = format!("{}/{}/{name}", scope.account_id, scope.region);
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    tx.execute(&stmt, &[&THING_LOCK_SPACE, &key]).await?;
    Ok(())
}

async fn thing_version(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Option<i64>, Fail> {
    let stmt = tx
        .prepare_cached(
            "SELECT version FROM things WHERE account_id = $1 AND region = $2 AND name = $3",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

async fn get_thing_in(
    client: &impl GenericQuery,
    scope: &Scope,
    name: &str,
) -> Result<Option<ThingRecord>, Fail> {
    let rows = client
        .query_cached(
            concat!(
                "SELECT ",
                thing_columns!(),
                ", attr_name, attr_value FROM things t LEFT JOIN thing_attributes a",
                " ON a.account_id = t.account_id AND a.region = t.region AND a.thing_name = t.name",
                " WHERE t.account_id = $1 AND t.region = $2 AND t.name = $3 ORDER BY a.attr_name"
            ),
            &[&scope.account_id, &scope.region, &name],
        )
        .await?;
    Ok(fold(map_all(&rows, thing_row)?).pop())
}

async fn get_group_in(
    client: &impl GenericQuery,
    scope: &Scope,
    name: &str,
) -> Result<Option<ThingGroupRecord>, Fail> {
    let rows = client
        .query_cached(
            concat!(
                "SELECT ",
                group_columns!(),
                ", attr_name, attr_value FROM thing_groups g LEFT JOIN thing_group_attributes a",
                " ON a.account_id = g.account_id AND a.region = g.region AND a.group_name = g.name",
                " WHERE g.account_id = $1 AND g.region = $2 AND g.name = $3 ORDER BY a.attr_name"
            ),
            &[&scope.account_id, &scope.region, &name],
        )
        .await?;
    Ok(fold(map_all(&rows, group_row)?).pop())
}

/// Prepared-statement queries on a pooled client or inside a transaction alike.
#[async_trait]
trait GenericQuery: Sync {
    async fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error>;
}

#[async_trait]
impl GenericQuery for deadpool_postgres::ClientWrapper {
    async fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let stmt = self.prepare_cached(sql).await?;
        self.query(&stmt, params).await
    }
}

#[async_trait]
impl GenericQuery for Transaction<'_> {
    async fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let stmt = self.prepare_cached(sql).await?;
        self.query(&stmt, params).await
    }
}

/// The root of an existing group, holding the group `FOR KEY SHARE` until commit so a
/// concurrent delete waits for this transaction (and then sees what it wrote).
/// Mitigation stages also use it to check that a group exists.
pub(super) async fn keep_group(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Option<String>, Fail> {
    let stmt = tx
        .prepare_cached(
            "SELECT root_name FROM thing_groups
             WHERE account_id = $1 AND region = $2 AND name = $3 FOR KEY SHARE",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Version and ARN of a group, row-locked until commit: `FOR UPDATE` to delete it (which
/// waits for every `FOR KEY SHARE` holder), `FOR NO KEY UPDATE` to update it (which does
/// not, as an update changes no key).
async fn lock_group(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    for_delete: bool,
) -> Result<Option<(i64, String)>, Fail> {
    let sql = if for_delete {
        "SELECT version, arn FROM thing_groups
         WHERE account_id = $1 AND region = $2 AND name = $3 FOR UPDATE"
    } else {
        "SELECT version, arn FROM thing_groups
         WHERE account_id = $1 AND region = $2 AND name = $3 FOR NO KEY UPDATE"
    };
    let stmt = tx.prepare_cached(sql).await?;
    let row = tx
        .query_opt(&stmt, &[&scope.account_id, &scope.region, &name])
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

async fn execute_keyed(
    tx: &Transaction<'_>,
    sql: &str,
    scope: &Scope,
    name: &str,
) -> Result<(), Fail> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(&stmt, &[&scope.account_id, &scope.region, &name])
        .await?;
    Ok(())
}

/// Changes the thing's memberships inside the caller's transaction (see
/// `ThingStore::change_thing_groups`), under the thing's lock; mitigation stages add
/// things to groups with it.
pub(super) async fn change_thing_groups_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    thing_name: &str,
    add: &[String],
    remove: &[String],
    max_groups: usize,
) -> Result<Result<(), ThingRefusal>, Fail> {
    lock_thing(tx, scope, thing_name).await?;
    if thing_version(tx, scope, thing_name).await?.is_none() {
        return Ok(Err(ThingRefusal::ThingNotFound(thing_name.to_owned())));
    }
    // Every named group, held FOR KEY SHARE until commit (see `keep_group`), in
    // one round trip however many the request names.
    let named: Vec<&str> = add.iter().chain(remove).map(String::as_str).collect();
    let rows = tx
        .query_cached(
            "SELECT name, root_name FROM thing_groups
             WHERE account_id = $1 AND region = $2 AND name = ANY($3::text[])
             FOR KEY SHARE",
            &[&scope.account_id, &scope.region, &named],
        )
        .await?;
    let roots = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<HashMap<String, String>, Fail>>()?;
    if let Some(missing) = named.iter().find(|g| !roots.contains_key(**g)) {
        return Ok(Err(ThingRefusal::GroupNotFound((*missing).to_owned())));
    }
    let adds: Vec<(String, String)> = add
        .iter()
        .filter_map(|g| roots.get(g).map(|root| (g.clone(), root.clone())))
        .collect();
    let rows = tx
        .query_cached(
            "SELECT group_name, root_name FROM thing_group_members
             WHERE account_id = $1 AND region = $2 AND thing_name = $3",
            &[&scope.account_id, &scope.region, &thing_name],
        )
        .await?;
    let current = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<(String, String)>, Fail>>()?;
    let inserts = match plan_membership_change(&current, &adds, remove, max_groups) {
        Ok(inserts) => inserts,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if !remove.is_empty() {
        let stmt = tx
            .prepare_cached(
                "DELETE FROM thing_group_members
                 WHERE account_id = $1 AND region = $2 AND thing_name = $3
                   AND group_name = ANY($4::text[])",
            )
            .await?;
        tx.execute(
            &stmt,
            &[&scope.account_id, &scope.region, &thing_name, &remove],
        )
        .await?;
    }
    if !inserts.is_empty() {
        let (groups, roots): (Vec<&str>, Vec<&str>) = inserts
            .iter()
            .map(|(g, r)| (g.as_str(), r.as_str()))
            .unzip();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO thing_group_members
                 (account_id, region, thing_name, group_name, root_name)
                 SELECT $1::text, $2::text, $3::text, g, r
                 FROM UNNEST($4::text[], $5::text[]) AS m (g, r)",
            )
            .await?;
        tx.execute(
            &stmt,
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

#[async_trait]
impl ThingStore for PostgresStore {
    async fn create_thing(&self, scope: &Scope, record: &ThingRecord) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let stmt = tx
                    .prepare_cached(concat!(
                        "INSERT INTO things (account_id, region, ",
                        thing_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    ))
                    .await?;
                // The primary key decides a race between creators of one name.
                tx.execute(
                    &stmt,
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
                .await
                .map_err(insert_err)?;
                THING_ATTRIBUTES
                    .insert(&tx, scope, &record.name, &record.attributes)
                    .await?;
                tx.commit().await?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_thing(&self, scope: &Scope, name: &str) -> StoreResult<Option<ThingRecord>> {
        let conn = self.conn().await?;
        // One statement, so the thing and its attributes come from one snapshot.
        let outcome = self
            .deadline(async { get_thing_in(&*conn, scope, name).await })
            .await;
        conn.finish(outcome)
    }

    async fn update_thing(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingUpdate,
    ) -> StoreResult<Result<ThingRecord, ThingRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                lock_thing(&tx, scope, name).await?;
                let Some(version) = thing_version(&tx, scope, name).await? else {
                    return Ok(Err(ThingRefusal::ThingNotFound(name.to_owned())));
                };
                if update.expected_version.is_some_and(|v| v != version) {
                    return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
                }
                if let Some(change) = &update.attributes {
                    if let Err(refusal) = THING_ATTRIBUTES
                        .change(&tx, scope, name, change, update.max_attributes)
                        .await?
                    {
                        return Ok(Err(refusal));
                    }
                }
                let stmt = tx
                    .prepare_cached(
                        "UPDATE things SET version = version + 1, updated_at_ms = $4,
                             thing_type_name = CASE WHEN $5 THEN NULL ELSE thing_type_name END
                         WHERE account_id = $1 AND region = $2 AND name = $3",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &name,
                        &update.updated_at_ms,
                        &update.remove_thing_type,
                    ],
                )
                .await?;
                let after = get_thing_in(&tx, scope, name).await?;
                tx.commit().await?;
                Ok(after.ok_or_else(|| ThingRefusal::ThingNotFound(name.to_owned())))
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_thing(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<Result<bool, ThingRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                lock_thing(&tx, scope, name).await?;
                let Some(version) = thing_version(&tx, scope, name).await? else {
                    return Ok(Ok(false));
                };
                if expected_version.is_some_and(|v| v != version) {
                    return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
                }
                // Principals (certificates.rs) must be detached first, as on AWS; their
                // attachment takes this thing's lock too, so this sees every one.
                let principals = tx
                    .query_cached(
                        "SELECT 1 FROM thing_principals
                         WHERE account_id = $1 AND region = $2 AND thing_name = $3 LIMIT 1",
                        &[&scope.account_id, &scope.region, &name],
                    )
                    .await?;
                if !principals.is_empty() {
                    return Ok(Err(ThingRefusal::HasPrincipals));
                }
                for sql in [
                    "DELETE FROM thing_group_members
                     WHERE account_id = $1 AND region = $2 AND thing_name = $3",
                    THING_ATTRIBUTES.delete_all,
                    "DELETE FROM things WHERE account_id = $1 AND region = $2 AND name = $3",
                ] {
                    execute_keyed(&tx, sql, scope, name).await?;
                }
                tx.commit().await?;
                Ok(Ok(true))
            })
            .await;
        conn.finish(outcome)
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
                    // The range bound lets the index narrow the scan; starts_with decides.
                    let p = q.bind(v.clone());
                    q.push(&format!(
                        " AND x.attr_value >= {p} AND starts_with(x.attr_value, {p})"
                    ));
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
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let rows = conn.query_cached(&q.sql, &q.params()).await?;
                Ok(fold(map_all(&rows, thing_row)?))
            })
            .await;
        conn.finish(outcome)
    }

    async fn create_thing_group(
        &self,
        scope: &Scope,
        record: &ThingGroupRecord,
        tags: &[Tag],
        max_depth: usize,
    ) -> StoreResult<Result<(), ThingRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                if keep_group(&tx, scope, &record.name).await?.is_some() {
                    return Err(StoreError::AlreadyExists.into());
                }
                let root = match &record.parent_name {
                    None => record.name.clone(),
                    Some(parent) => {
                        // Held until commit, so the parent cannot be deleted under its new
                        // child (a delete waits, then finds the child).
                        let Some(root) = keep_group(&tx, scope, parent).await? else {
                            return Ok(Err(ThingRefusal::GroupNotFound(parent.clone())));
                        };
                        let stmt = tx
                            .prepare_cached(
                                "SELECT COUNT(*) FROM thing_group_tree
                                 WHERE account_id = $1 AND region = $2 AND group_name = $3",
                            )
                            .await?;
                        let levels: i64 = tx
                            .query_one(&stmt, &[&scope.account_id, &scope.region, parent])
                            .await?
                            .try_get(0)?;
                        if count_to_usize(levels) >= max_depth {
                            return Ok(Err(ThingRefusal::TooDeep { limit: max_depth }));
                        }
                        root
                    }
                };
                let stmt = tx
                    .prepare_cached(concat!(
                        "INSERT INTO thing_groups (account_id, region, ",
                        group_columns!(),
                        ", root_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    ))
                    .await?;
                // The primary key decides a race between creators of one name.
                tx.execute(
                    &stmt,
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
                .await
                .map_err(insert_err)?;
                GROUP_ATTRIBUTES
                    .insert(&tx, scope, &record.name, &record.attributes)
                    .await?;
                // The group is its own ancestor at depth 0; the parent's ancestors are the
                // group's, one level further away.
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO thing_group_tree
                         (account_id, region, ancestor_name, group_name, depth)
                         SELECT $1::text, $2::text, $3::text, $3::text, 0
                         UNION ALL
                         SELECT account_id, region, ancestor_name, $3::text, depth + 1
                         FROM thing_group_tree
                         WHERE account_id = $1 AND region = $2 AND group_name = $4",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &record.name,
                        &record.parent_name,
                    ],
                )
                .await?;
                if !tags.is_empty() {
                    tags::lock_resource(&tx, scope, &record.arn).await?;
                    tags::upsert(&tx, scope, &record.arn, tags).await?;
                }
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_thing_group(
        &self,
        scope: &Scope,
        name: &str,
    ) -> StoreResult<Option<ThingGroupView>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // Two statements: a repeatable-read transaction keeps them on one snapshot.
                let tx = conn
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let Some(group) = get_group_in(&tx, scope, name).await? else {
                    return Ok(None);
                };
                let rows = tx
                    .query_cached(
                        "SELECT g.name, g.arn FROM thing_group_tree t JOIN thing_groups g
                           ON g.account_id = t.account_id AND g.region = t.region
                          AND g.name = t.ancestor_name
                         WHERE t.account_id = $1 AND t.region = $2 AND t.group_name = $3
                           AND t.depth > 0
                         ORDER BY t.depth DESC",
                        &[&scope.account_id, &scope.region, &name],
                    )
                    .await?;
                let root_to_parent = map_all(&rows, group_ref)?;
                tx.commit().await?;
                Ok(Some(ThingGroupView {
                    group,
                    root_to_parent,
                }))
            })
            .await;
        conn.finish(outcome)
    }

    async fn update_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        update: &ThingGroupUpdate,
    ) -> StoreResult<Result<ThingGroupRecord, ThingRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let Some((version, _)) = lock_group(&tx, scope, name, false).await? else {
                    return Ok(Err(ThingRefusal::GroupNotFound(name.to_owned())));
                };
                if update.expected_version.is_some_and(|v| v != version) {
                    return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
                }
                if let Some(change) = &update.attributes {
                    if let Err(refusal) = GROUP_ATTRIBUTES
                        .change(&tx, scope, name, change, update.max_attributes)
                        .await?
                    {
                        return Ok(Err(refusal));
                    }
                }
                let stmt = tx
                    .prepare_cached(
                        "UPDATE thing_groups SET version = version + 1, updated_at_ms = $4,
                             description = COALESCE($5, description)
                         WHERE account_id = $1 AND region = $2 AND name = $3",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &name,
                        &update.updated_at_ms,
                        &update.description,
                    ],
                )
                .await?;
                let after = get_group_in(&tx, scope, name).await?;
                tx.commit().await?;
                Ok(after.ok_or_else(|| ThingRefusal::GroupNotFound(name.to_owned())))
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_thing_group(
        &self,
        scope: &Scope,
        name: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<Result<bool, ThingRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                // Waits for anyone holding the group FOR KEY SHARE (a new child or member
                // being written), so the checks below see what they committed.
                let Some((version, arn)) = lock_group(&tx, scope, name, true).await? else {
                    return Ok(Ok(false));
                };
                if expected_version.is_some_and(|v| v != version) {
                    return Ok(Err(ThingRefusal::VersionMismatch { current: version }));
                }
                let rows = tx
                    .query_cached(
                        "SELECT 1 FROM thing_groups
                         WHERE account_id = $1 AND region = $2 AND parent_name = $3 LIMIT 1",
                        &[&scope.account_id, &scope.region, &name],
                    )
                    .await?;
                if !rows.is_empty() {
                    return Ok(Err(ThingRefusal::HasChildGroups));
                }
                for sql in [
                    "DELETE FROM thing_group_members
                     WHERE account_id = $1 AND region = $2 AND group_name = $3",
                    "DELETE FROM thing_group_tree
                     WHERE account_id = $1 AND region = $2 AND group_name = $3",
                    GROUP_ATTRIBUTES.delete_all,
                    "DELETE FROM thing_groups WHERE account_id = $1 AND region = $2 AND name = $3",
                ] {
                    execute_keyed(&tx, sql, scope, name).await?;
                }
                // Policies attached to the group (certificates.rs) are detached with it;
                // attaching holds the group FOR KEY SHARE, so this sees every one.
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM policy_attachments
                         WHERE account_id = $1 AND region = $2 AND target = $3",
                    )
                    .await?;
                tx.execute(&stmt, &[&scope.account_id, &scope.region, &arn])
                    .await?;
                // Under the resource's lock, so tags a concurrent tag_resource is about to
                // commit on this ARN are seen and removed too.
                tags::lock_resource(&tx, scope, &arn).await?;
                tags::delete_all(&tx, scope, &arn).await?;
                tx.commit().await?;
                Ok(Ok(true))
            })
            .await;
        conn.finish(outcome)
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
            q.push(&format!(" AND g.name >= {p} AND starts_with(g.name, {p})"));
        }
        if let Some(after) = after {
            let p = q.bind(after.to_owned());
            q.push(&format!(" AND g.name > {p}"));
        }
        let l = q.bind(sql_limit(limit));
        q.push(&format!(" ORDER BY g.name LIMIT {l}"));
        self.query_refs(q).await
    }

    async fn change_thing_groups(
        &self,
        scope: &Scope,
        thing_name: &str,
        add: &[String],
        remove: &[String],
        max_groups: usize,
    ) -> StoreResult<Result<(), ThingRefusal>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let changed =
                    change_thing_groups_in(&tx, scope, thing_name, add, remove, max_groups).await?;
                if changed.is_ok() {
                    tx.commit().await?;
                }
                Ok(changed)
            })
            .await;
        conn.finish(outcome)
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
        let l = q.bind(sql_limit(limit));
        q.push(&format!(" ORDER BY m.group_name LIMIT {l}"));
        self.query_refs(q).await
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
        let l = q.bind(sql_limit(limit));
        q.push(&format!(" ORDER BY m.thing_name LIMIT {l}"));
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let rows = conn.query_cached(&q.sql, &q.params()).await?;
                rows.iter()
                    .map(|row| Ok(row.try_get(0)?))
                    .collect::<Result<Vec<String>, Fail>>()
            })
            .await;
        conn.finish(outcome)
    }
}

impl PostgresStore {
    async fn query_refs(&self, q: Query) -> StoreResult<Vec<GroupRef>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let rows = conn.query_cached(&q.sql, &q.params()).await?;
                map_all(&rows, group_ref)
            })
            .await;
        conn.finish(outcome)
    }
}
