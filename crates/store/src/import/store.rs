//! [`ImportStore`] on both engines: each batch read with a few list queries, decided by
//! [`plan`], written with one multi-row insert per table (a statement per row on
//! SQLite, in process), in one transaction.
//!
//! Locks are those of the single-resource methods, so an import and concurrent API calls
//! exclude each other the same way on PostgreSQL: existing things it attaches
//! certificates to or adds to groups take the per-thing advisory lock (DeleteThing's),
//! existing certificates are held `FOR NO KEY UPDATE` and their policy targets take the
//! per-target advisory lock, referenced groups are held `FOR KEY SHARE`, policies by the
//! attachments' foreign keys. New rows need no lock: nobody sees them before commit, and
//! a concurrent creation of the same key makes the insert fail, after which the chunk is
//! read and decided again. SQLite's writer has the database to itself for the batch.
//!
//! PostgreSQL keeps advisory locks in a shared table of bounded size (by default 64 per
//! connection slot), so a batch that would take more than [`MAX_LOCKS`] of them (a
//! re-import attaching to thousands of existing things) is written in several
//! transactions of at most that many locks each.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use palisade_store_macros::engines;

use super::plan::{plan, Keys, Known, KnownCertificate, KnownGroup, KnownThing, Writes};
use super::{CertificateImport, ImportItem, ImportLimits, ImportOutcome};
use crate::certificates::{insert_certificates, POLICY_TARGET_LOCK_SPACE};
use crate::db::{is_key_conflict, Db, DbResult, Dialect, Fail, Param, Row, Sql};
use crate::things::THING_LOCK_SPACE;
use crate::{Attributes, Scope, StoreError, StoreResult, ThingGroupRecord, ThingRecord};

/// Most advisory locks one import transaction takes.
const MAX_LOCKS: usize = 256;

/// How often a chunk is tried again after a concurrent writer created a key it inserts.
const CONFLICT_RETRIES: usize = 3;

/// Page cache of SQLite's writer while it imports: big enough that the certificate
/// indexes (random keys) of a large fleet stay in memory between batches. Negative: KiB.
const SQLITE_IMPORT_CACHE_KIB: i64 = 512 * 1024;

/// Bulk writes for imports.
#[engines]
pub trait ImportStore: Send + Sync {
    /// Applies `items` in order in one transaction (see the module docs) and returns one
    /// outcome per item, in order.
    async fn import_batch(
        &self,
        scope: &Scope,
        items: Vec<ImportItem>,
        limits: &ImportLimits,
    ) -> StoreResult<Vec<ImportOutcome>> {
        let items = std::sync::Arc::new(items);
        let mut outcomes = Vec::with_capacity(items.len());
        let mut start = 0;
        while start < items.len() {
            let len = {
                let rest = &items[start..];
                self.read(async |db| chunk_len(db, scope, rest).await)
                    .await?
            };
            let mut attempt = 0;
            let chunk = loop {
                attempt += 1;
                let (scope, limits, items) = (scope.clone(), limits.clone(), items.clone());
                let range = start..start + len;
                let done = self
                    .write(async move |db| import_chunk(db, &scope, &items[range], &limits).await)
                    .await;
                match done {
                    // Someone created a key this chunk inserts: decide again with it seen.
                    Err(StoreError::AlreadyExists) if attempt < CONFLICT_RETRIES => continue,
                    other => break other?,
                }
            };
            outcomes.extend(chunk);
            start += len;
        }
        self.imported(&items).await;
        Ok(outcomes)
    }
}

/// The advisory locks an item needs, given what is stored.
fn lock_keys(scope: &Scope, item: &ImportItem, known: &Known<'_>, keys: &mut Vec<(i32, String)>) {
    let key = |k: &str| format!("{}/{k}", scope.key());
    let certificate = |keys: &mut Vec<(i32, String)>, c: &CertificateImport| {
        for t in &c.things {
            if known.things.contains_key(t) {
                keys.push((THING_LOCK_SPACE, key(t)));
            }
        }
        if !c.policies.is_empty() && known.certificates.contains_key(&c.record.id) {
            keys.push((POLICY_TARGET_LOCK_SPACE, key(&c.record.arn)));
        }
    };
    match item {
        ImportItem::Thing {
            record,
            certificate: c,
            ..
        } => {
            if known.things.contains_key(&record.name) {
                keys.push((THING_LOCK_SPACE, key(&record.name)));
            }
            if let Some(c) = c {
                certificate(keys, c);
            }
        }
        ImportItem::Certificate(c) => certificate(keys, c),
        ImportItem::Policy(_) | ImportItem::ThingGroup(_) => {}
    }
}

/// How many of `items` (at least one) fit in one transaction's locks; all of them on
/// SQLite, which takes none.
async fn chunk_len(db: &Db<'_>, scope: &Scope, items: &[ImportItem]) -> DbResult<usize> {
    if db.dialect() == Dialect::Sqlite {
        return Ok(items.len());
    }
    let keys = Keys::of(items);
    let mut known = Known::default();
    read_existence(db, scope, &keys, &mut known).await?;
    let mut locks = Vec::new();
    let mut distinct = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        lock_keys(scope, item, &known, &mut locks);
        distinct.extend(locks.drain(..));
        if distinct.len() > MAX_LOCKS {
            return Ok(i.max(1));
        }
    }
    Ok(items.len())
}

async fn import_chunk(
    db: &Db<'_>,
    scope: &Scope,
    items: &[ImportItem],
    limits: &ImportLimits,
) -> DbResult<Vec<ImportOutcome>> {
    if let Some(conn) = db.lite() {
        conn.pragma_update(None, "cache_size", -SQLITE_IMPORT_CACHE_KIB)?;
    }
    let keys = Keys::of(items);
    let mut known = load(db, scope, &keys).await?;
    // Lock what exists, then read again under the locks; repeat for what someone else
    // created meanwhile (SQLite takes no locks, so it reads once).
    let mut held: HashSet<(i32, String)> = HashSet::new();
    loop {
        let mut wanted = Vec::new();
        for item in items {
            lock_keys(scope, item, &known, &mut wanted);
        }
        wanted.retain(|k| !held.contains(k));
        wanted.sort();
        wanted.dedup();
        if !db.lock_all(&wanted).await? {
            break;
        }
        held.extend(wanted);
        known = load(db, scope, &keys).await?;
    }
    let (outcomes, writes) = plan(items, limits, &mut known);
    match write(db, scope, &writes).await {
        Err(e) if is_key_conflict(&e) => Err(Fail::Store(StoreError::AlreadyExists)),
        other => other.map(|()| outcomes),
    }
}

fn text(row: &Row<'_>) -> DbResult<String> {
    row.get(0)
}

/// Marks the things and certificates of `keys` that exist, without their details.
async fn read_existence(
    db: &Db<'_>,
    scope: &Scope,
    keys: &Keys<'_>,
    known: &mut Known<'_>,
) -> DbResult<()> {
    let s: [&dyn Param; 2] = [&scope.account_id, &scope.region];
    let things: Vec<&str> = keys
        .things
        .iter()
        .chain(&keys.thing_refs)
        .copied()
        .collect();
    let sql = sql!(
        "SELECT name FROM things WHERE account_id = $1 AND region = $2 AND name = ANY($3::text[])"
    );
    for name in db.query_any(sql, &s, &things, text).await? {
        known.things.insert(
            name,
            KnownThing {
                record: None,
                groups: Vec::new(),
            },
        );
    }
    let sql = Sql::per_dialect(
        "SELECT id FROM certificates WHERE account_id = $1 AND region = $2 AND id = ANY($3::text[])",
        "SELECT id FROM certificate_states WHERE account_id = ?1 AND region = ?2 AND id = ?3",
    );
    for id in db.query_any(&sql, &s, &keys.certificates, text).await? {
        known.certificates.insert(id, KnownCertificate::default());
    }
    Ok(())
}

/// What is stored of everything `keys` names.
async fn load<'a>(db: &Db<'_>, scope: &Scope, keys: &Keys<'_>) -> DbResult<Known<'a>> {
    let s: [&dyn Param; 2] = [&scope.account_id, &scope.region];
    let mut known = Known::default();
    let policies = sql!(
        "SELECT p.name, v.document FROM policies p JOIN policy_versions v",
        " ON v.account_id = p.account_id AND v.region = p.region",
        " AND v.policy_name = p.name AND v.version_id = p.default_version_id",
        " WHERE p.account_id = $1 AND p.region = $2 AND p.name = ANY($3::text[])"
    );
    for (name, document) in db.query_any(policies, &s, &keys.policies, pair).await? {
        known.policies.insert(name, Cow::Owned(document));
    }
    // Held FOR KEY SHARE, as a new child or member holds its group: no one deletes them
    // before this commits.
    let groups = sql!(
        "SELECT name, id, arn, parent_name, description, version, created_at_ms,",
        " updated_at_ms, root_name FROM thing_groups WHERE account_id = $1 AND region = $2",
        " AND name = ANY($3::text[]) FOR KEY SHARE"
    );
    for (record, root) in db.query_any(groups, &s, &keys.groups, group).await? {
        let group = KnownGroup {
            record: Cow::Owned(record),
            root,
            ancestors: Vec::new(),
        };
        known.groups.insert(group.record.name.clone(), group);
    }
    let attributes = sql!(
        "SELECT group_name, attr_name, attr_value FROM thing_group_attributes",
        " WHERE account_id = $1 AND region = $2 AND group_name = ANY($3::text[])"
    );
    for (name, k, v) in db.query_any(attributes, &s, &keys.groups, triple).await? {
        if let Some(g) = known.groups.get_mut(&name) {
            g.record.to_mut().attributes.insert(k, v);
        }
    }
    let tree = sql!(
        "SELECT group_name, ancestor_name, depth FROM thing_group_tree",
        " WHERE account_id = $1 AND region = $2 AND group_name = ANY($3::text[])",
        " ORDER BY group_name, depth"
    );
    let ancestors = db.query_any(tree, &s, &keys.groups, |row| {
        Ok((row.get::<String>(0)?, row.get(1)?, row.get(2)?))
    });
    for (name, ancestor, depth) in ancestors.await? {
        if let Some(g) = known.groups.get_mut(&name) {
            g.ancestors.push((ancestor, depth));
        }
    }
    load_things(db, scope, keys, &mut known).await?;
    load_certificates(db, scope, keys, &mut known).await?;
    let cas = sql!(
        "SELECT id FROM ca_certificates",
        " WHERE account_id = $1 AND region = $2 AND id = ANY($3::text[])"
    );
    known.cas = db
        .query_any(cas, &s, &keys.cas, text)
        .await?
        .into_iter()
        .collect();
    Ok(known)
}

fn pair(row: &Row<'_>) -> DbResult<(String, String)> {
    Ok((row.get(0)?, row.get(1)?))
}

fn triple(row: &Row<'_>) -> DbResult<(String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn group(row: &Row<'_>) -> DbResult<(ThingGroupRecord, String)> {
    let record = from_row!(row => ThingGroupRecord {
        name, id, arn, parent_name, description, version, created_at_ms, updated_at_ms;
        attributes: Attributes::new()
    });
    Ok((record, row.get(8)?))
}

/// The things of thing items in full, with their attributes and groups; the other
/// things named only as existing.
async fn load_things(
    db: &Db<'_>,
    scope: &Scope,
    keys: &Keys<'_>,
    known: &mut Known<'_>,
) -> DbResult<()> {
    let s: [&dyn Param; 2] = [&scope.account_id, &scope.region];
    let things = sql!(
        "SELECT name, id, arn, thing_type_name, billing_group_name, version, created_at_ms,",
        " updated_at_ms FROM things",
        " WHERE account_id = $1 AND region = $2 AND name = ANY($3::text[])"
    );
    let records = db.query_any(things, &s, &keys.things, |row| {
        Ok(from_row!(row => ThingRecord {
            name, id, arn, thing_type_name, billing_group_name, version, created_at_ms,
            updated_at_ms;
            attributes: Attributes::new()
        }))
    });
    for record in records.await? {
        let thing = KnownThing {
            record: None,
            groups: Vec::new(),
        };
        let name = record.name.clone();
        known.things.entry(name).or_insert(thing).record = Some(Cow::Owned(record));
    }
    let found: Vec<&str> = keys
        .things
        .iter()
        .copied()
        .filter(|t| known.things.contains_key(*t))
        .collect();
    let attributes = sql!(
        "SELECT thing_name, attr_name, attr_value FROM thing_attributes",
        " WHERE account_id = $1 AND region = $2 AND thing_name = ANY($3::text[])"
    );
    let mut attrs: HashMap<String, Attributes> = HashMap::new();
    for (name, k, v) in db.query_any(attributes, &s, &found, triple).await? {
        attrs.entry(name).or_default().insert(k, v);
    }
    let members = sql!(
        "SELECT thing_name, group_name, root_name FROM thing_group_members",
        " WHERE account_id = $1 AND region = $2 AND thing_name = ANY($3::text[])"
    );
    for (name, group, root) in db.query_any(members, &s, &found, triple).await? {
        if let Some(thing) = known.things.get_mut(&name) {
            thing.groups.push((group, root));
        }
    }
    for (name, thing) in known.things.iter_mut() {
        if let Some(record) = thing.record.as_mut() {
            record.to_mut().attributes = attrs.remove(name).unwrap_or_default();
        }
    }
    let refs = sql!(
        "SELECT name FROM things",
        " WHERE account_id = $1 AND region = $2 AND name = ANY($3::text[])"
    );
    for name in db.query_any(refs, &s, &keys.thing_refs, text).await? {
        known.things.insert(
            name,
            KnownThing {
                record: None,
                groups: Vec::new(),
            },
        );
    }
    Ok(())
}

/// The certificates named, with the things and policies attached to them; held as
/// attach_thing_principal holds them, so exclusivity is decided in turn.
async fn load_certificates(
    db: &Db<'_>,
    scope: &Scope,
    keys: &Keys<'_>,
    known: &mut Known<'_>,
) -> DbResult<()> {
    let s: [&dyn Param; 2] = [&scope.account_id, &scope.region];
    let certificates = Sql::per_dialect(
        "SELECT id, arn FROM certificates WHERE account_id = $1 AND region = $2
           AND id = ANY($3::text[]) FOR NO KEY UPDATE",
        "SELECT c.id, c.arn FROM certificate_states s JOIN certificates c ON c.row_id = s.row_id
         WHERE s.account_id = ?1 AND s.region = ?2 AND s.id = ?3",
    );
    let found = db
        .query_any(&certificates, &s, &keys.certificates, pair)
        .await?;
    let mut by_arn = HashMap::new();
    for (id, arn) in &found {
        known
            .certificates
            .insert(id.clone(), KnownCertificate::default());
        by_arn.insert(arn.as_str(), id.as_str());
    }
    let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
    let principals = sql!(
        "SELECT certificate_id, thing_name, exclusive FROM thing_principals",
        " WHERE account_id = $1 AND region = $2 AND certificate_id = ANY($3::text[])",
        " ORDER BY certificate_id, thing_name"
    );
    let attached = db.query_any(principals, &s, &ids, |row| {
        Ok((row.get::<String>(0)?, row.get(1)?, row.get(2)?))
    });
    for (id, thing, exclusive) in attached.await? {
        if let Some(c) = known.certificates.get_mut(&id) {
            c.things.push((thing, exclusive));
        }
    }
    let arns: Vec<&str> = by_arn.keys().copied().collect();
    let policies = sql!(
        "SELECT target, policy_name FROM policy_attachments",
        " WHERE account_id = $1 AND region = $2 AND target = ANY($3::text[])"
    );
    for (target, policy) in db.query_any(policies, &s, &arns, pair).await? {
        let id = by_arn.get(target.as_str());
        if let Some(c) = id.and_then(|id| known.certificates.get_mut(*id)) {
            c.policies.push(policy);
        }
    }
    Ok(())
}

/// Writes every row of `w`, parents before children.
async fn write(db: &Db<'_>, scope: &Scope, w: &Writes<'_>) -> DbResult<()> {
    db.insert_rows(
        "policies (account_id, region, name, arn, default_version_id, last_version_id, \
         generation_id, created_at_ms, updated_at_ms)",
        scope,
        &w.policies,
        |p| {
            [
                &p.name,
                &p.arn,
                &1i64,
                &1i64,
                &p.generation_id,
                &p.created_at_ms,
                &p.created_at_ms,
            ]
        },
    )
    .await?;
    db.insert_rows(
        "policy_versions (account_id, region, policy_name, version_id, document, created_at_ms)",
        scope,
        &w.policies,
        |p| [&p.name, &1i64, &p.document, &p.created_at_ms],
    )
    .await?;
    db.insert_rows(
        "thing_groups (account_id, region, name, id, arn, parent_name, description, version, \
         created_at_ms, updated_at_ms, root_name)",
        scope,
        &w.groups,
        |(g, root)| {
            [
                &g.name,
                &g.id,
                &g.arn,
                &g.parent_name,
                &g.description,
                &g.version,
                &g.created_at_ms,
                &g.updated_at_ms,
                root,
            ]
        },
    )
    .await?;
    db.insert_rows(
        "thing_group_tree (account_id, region, ancestor_name, group_name, depth)",
        scope,
        &w.group_tree,
        |(ancestor, g, depth)| [ancestor, g, depth],
    )
    .await?;
    db.insert_rows(
        "things (account_id, region, name, id, arn, thing_type_name, billing_group_name, \
         version, created_at_ms, updated_at_ms)",
        scope,
        &w.things,
        |t| {
            [
                &t.name,
                &t.id,
                &t.arn,
                &t.thing_type_name,
                &t.billing_group_name,
                &t.version,
                &t.created_at_ms,
                &t.updated_at_ms,
            ]
        },
    )
    .await?;
    let attributes = [
        (
            "thing_group_attributes (account_id, region, group_name",
            &w.group_attributes,
        ),
        (
            "thing_attributes (account_id, region, thing_name",
            &w.thing_attributes,
        ),
    ];
    for (owner, rows) in attributes {
        let into = format!("{owner}, attr_name, attr_value)");
        db.insert_rows(&into, scope, rows, |(o, k, v)| [o, k, v])
            .await?;
    }
    db.insert_rows(
        "thing_group_members (account_id, region, thing_name, group_name, root_name)",
        scope,
        &w.memberships,
        |(t, g, root)| [t, g, root],
    )
    .await?;
    insert_certificates(db, scope, &w.certificates).await?;
    db.insert_rows(
        "thing_principals (account_id, region, thing_name, certificate_id, exclusive, \
         attached_at_ms)",
        scope,
        &w.principals,
        |(t, c, at)| [t, c, &false, at],
    )
    .await?;
    db.insert_rows(
        "policy_attachments (account_id, region, policy_name, target, attached_at_ms)",
        scope,
        &w.attachments,
        |(p, target, at)| [p, target, at],
    )
    .await
}
