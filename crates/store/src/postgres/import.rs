//! Bulk import on PostgreSQL: each batch is read with a few `= ANY($n)` queries and
//! written with one multi-row `INSERT ... SELECT FROM unnest(...)` per table, in one
//! transaction.
//!
//! Locks are those of the single-resource methods, so an import and concurrent API calls
//! exclude each other the same way: existing things it attaches certificates to or adds
//! to groups take the per-thing advisory lock (DeleteThing's), existing certificates are
//! held `FOR NO KEY UPDATE` and their policy targets take the per-target advisory lock,
//! referenced groups are held `FOR KEY SHARE`, policies by the attachments' foreign keys.
//! New rows need no lock: nobody sees them before commit, and a concurrent creation of
//! the same key makes the insert fail, after which the chunk is read and decided again.
//!
//! Bulk loading outruns the planner's statistics. A table that has never been analyzed
//! (or was analyzed while nearly empty) gets default selectivities, under which
//! `account_id = $1 AND region = $2` looks like a handful of rows; the planner then
//! serves `name = ANY(...)` and, worse, the foreign-key checks of every inserted row
//! from whichever index starts with those two columns, scanning the whole account per
//! row. Imports therefore ANALYZE the tables they fill whenever the items of one kind
//! (policies, groups, things, certificates) imported since the last ANALYZE reach the
//! number of that kind counted then (a doubling schedule per kind: about
//! log2(rows / batch) ANALYZEs in all). Counting per kind matters: a fleet file of
//! 100,000 policies followed by things would otherwise fill `things` with statistics
//! from when it was empty until the overall count doubled, and the foreign-key checks
//! planned from them scan the whole table per row. ANALYZE invalidates cached plans, the
//! foreign-key checks' included. Autovacuum does the same for ordinary API traffic,
//! where it is enabled; imports do not count on it.
//!
//! PostgreSQL keeps advisory locks in a shared table of bounded size (by default 64 per
//! connection slot), so a batch that would take more than [`MAX_LOCKS`] of them (a
//! re-import attaching to thousands of existing things) is written in several
//! transactions of at most that many locks each.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::certificates::POLICY_TARGET_LOCK_SPACE;
use super::error::Fail;
use super::PostgresStore;
use crate::certificates::join_uris;
use crate::import::{plan, Keys, Known, KnownCertificate, KnownGroup, KnownThing, Writes};
use crate::things::THING_LOCK_SPACE;
use crate::{
    Attributes, ImportItem, ImportLimits, ImportOutcome, ImportStore, Scope, StoreResult,
    ThingGroupRecord, ThingRecord,
};

/// Most advisory locks one import transaction takes.
const MAX_LOCKS: usize = 256;

/// How often a chunk is tried again after a concurrent writer created a key it inserts.
const CONFLICT_RETRIES: usize = 3;

/// Rows an import inserts before its first ANALYZE.
const FIRST_ANALYZE_AFTER: u64 = 2_000;

/// The tables an import writes, whose statistics it keeps current.
const IMPORTED_TABLES: &str = "things, thing_attributes, thing_groups, thing_group_attributes, \
     thing_group_tree, thing_group_members, certificates, thing_principals, policies, \
     policy_versions, policy_attachments";

/// The kinds of item counted apart: policies, thing groups, things, certificates.
const KINDS: usize = 4;

fn kind(item: &ImportItem) -> usize {
    match item {
        ImportItem::Policy(_) => 0,
        ImportItem::ThingGroup(_) => 1,
        ImportItem::Thing { .. } => 2,
        ImportItem::Certificate(_) => 3,
    }
}

/// The import's ANALYZE schedule (see the module documentation).
#[derive(Default)]
pub(super) struct StatsSchedule {
    /// Items of each kind imported since the last ANALYZE.
    since: [AtomicU64; KINDS],
    /// Items of each kind imported in all when the last ANALYZE ran.
    total_at_last: [AtomicU64; KINDS],
    /// One ANALYZE at a time; the others go on importing meanwhile.
    running: tokio::sync::Mutex<()>,
}

#[async_trait]
impl ImportStore for PostgresStore {
    async fn import_batch(
        &self,
        scope: &Scope,
        items: Vec<ImportItem>,
        limits: &ImportLimits,
    ) -> StoreResult<Vec<ImportOutcome>> {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut rest: &[ImportItem] = &items;
        while !rest.is_empty() {
            let existing = self.existing_lock_keys(scope, rest).await?;
            let len = chunk_len(scope, rest, &existing);
            let (chunk, after) = rest.split_at(len);
            outcomes.extend(self.import_chunk(scope, chunk, limits).await?);
            rest = after;
        }
        let mut imported = [0u64; KINDS];
        for item in &items {
            imported[kind(item)] += 1;
        }
        self.refresh_statistics(imported).await;
        Ok(outcomes)
    }
}

impl PostgresStore {
    /// Counts `imported` items (by kind) and runs ANALYZE when the schedule says so.
    async fn refresh_statistics(&self, imported: [u64; KINDS]) {
        let schedule = &self.inner.import_stats;
        for (since, n) in schedule.since.iter().zip(imported) {
            since.fetch_add(n, Ordering::Relaxed);
        }
        let due = || {
            schedule
                .since
                .iter()
                .zip(&schedule.total_at_last)
                .any(|(since, at_last)| {
                    since.load(Ordering::Relaxed)
                        >= FIRST_ANALYZE_AFTER.max(at_last.load(Ordering::Relaxed))
                })
        };
        if !due() {
            return;
        }
        let Ok(_running) = schedule.running.try_lock() else {
            return;
        };
        // Another importer may have analyzed between the count and the lock.
        if !due() {
            return;
        }
        let counted: Vec<u64> = schedule
            .since
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        let started = std::time::Instant::now();
        match self.analyze().await {
            Ok(()) => {
                for ((since, at_last), n) in schedule
                    .since
                    .iter()
                    .zip(&schedule.total_at_last)
                    .zip(counted)
                {
                    since.fetch_sub(n, Ordering::Relaxed);
                    at_last.fetch_add(n, Ordering::Relaxed);
                }
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "import: statistics refreshed"
                );
            }
            // The import goes on, only more slowly; the next batch tries again.
            Err(e) => tracing::warn!(error = %e, "import: ANALYZE failed"),
        }
    }

    async fn analyze(&self) -> StoreResult<()> {
        let conn = self.conn().await?;
        let sql = format!("ANALYZE {IMPORTED_TABLES}");
        let outcome = self
            .deadline(async { conn.batch_execute(&sql).await.map_err(Fail::from) })
            .await;
        conn.finish(outcome)
    }
}

/// The advisory locks an item needs, given which things and certificates exist.
fn lock_keys(scope: &Scope, item: &ImportItem, existing: &Existing) -> Vec<(i32, String)> {
    let key = |k: &str| format!("{}/{}/{k}", scope.account_id, scope.region);
    let mut keys = Vec::new();
    let certificate = |keys: &mut Vec<(i32, String)>, c: &crate::CertificateImport| {
        for t in &c.things {
            if existing.things.contains(t) {
                keys.push((THING_LOCK_SPACE, key(t)));
            }
        }
        if !c.policies.is_empty() && existing.certificates.contains(&c.record.id) {
            keys.push((POLICY_TARGET_LOCK_SPACE, key(&c.record.arn)));
        }
    };
    match item {
        ImportItem::Thing {
            record,
            certificate: c,
            ..
        } => {
            if existing.things.contains(&record.name) {
                keys.push((THING_LOCK_SPACE, key(&record.name)));
            }
            if let Some(c) = c {
                certificate(&mut keys, c);
            }
        }
        ImportItem::Certificate(c) => certificate(&mut keys, c),
        ImportItem::Policy(_) | ImportItem::ThingGroup(_) => {}
    }
    keys
}

/// How many of `items` (at least one) fit in one transaction's locks.
fn chunk_len(scope: &Scope, items: &[ImportItem], existing: &Existing) -> usize {
    let mut keys = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        keys.extend(lock_keys(scope, item, existing));
        if keys.len() > MAX_LOCKS {
            return i.max(1);
        }
    }
    items.len()
}

/// Which of the things and certificates a batch names exist.
#[derive(Default)]
struct Existing {
    things: HashSet<String>,
    certificates: HashSet<String>,
}

async fn rows(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query(&stmt, params).await?)
}

async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Fail> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

impl PostgresStore {
    async fn existing_lock_keys(
        &self,
        scope: &Scope,
        items: &[ImportItem],
    ) -> StoreResult<Existing> {
        let keys = Keys::of(items);
        let things: Vec<&String> = keys.things.iter().chain(&keys.thing_refs).collect();
        if things.is_empty() && keys.certificates.is_empty() {
            return Ok(Existing::default());
        }
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let (a, r) = (&scope.account_id, &scope.region);
                let mut existing = Existing::default();
                for row in rows(
                    &tx,
                    "SELECT name FROM things WHERE account_id = $1 AND region = $2
                       AND name = ANY($3::text[])",
                    &[a, r, &things],
                )
                .await?
                {
                    existing.things.insert(row.try_get(0)?);
                }
                for row in rows(
                    &tx,
                    "SELECT id FROM certificates WHERE account_id = $1 AND region = $2
                       AND id = ANY($3::text[])",
                    &[a, r, &keys.certificates],
                )
                .await?
                {
                    existing.certificates.insert(row.try_get(0)?);
                }
                tx.commit().await?;
                Ok(existing)
            })
            .await;
        conn.finish(outcome)
    }

    async fn import_chunk(
        &self,
        scope: &Scope,
        items: &[ImportItem],
        limits: &ImportLimits,
    ) -> StoreResult<Vec<ImportOutcome>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.conn().await?;
            let outcome = self
                .deadline(async {
                    let tx = conn.transaction().await?;
                    let keys = Keys::of(items);
                    let existing = existing_in(&tx, scope, &keys).await?;
                    let mut locks: Vec<(i32, String)> = items
                        .iter()
                        .flat_map(|item| lock_keys(scope, item, &existing))
                        .collect();
                    locks.sort();
                    locks.dedup();
                    lock_all(&tx, &locks).await?;
                    let mut known = load(&tx, scope, &keys).await?;
                    // Locked, then read: what a thing created meanwhile by someone else
                    // needs is locked now, and read again under the lock.
                    let now_existing = Existing {
                        things: known.things.keys().cloned().collect(),
                        certificates: known.certificates.keys().cloned().collect(),
                    };
                    let mut late: Vec<(i32, String)> = items
                        .iter()
                        .flat_map(|item| lock_keys(scope, item, &now_existing))
                        .filter(|k| locks.binary_search(k).is_err())
                        .collect();
                    if !late.is_empty() {
                        late.sort();
                        late.dedup();
                        lock_all(&tx, &late).await?;
                        known = load(&tx, scope, &keys).await?;
                    }
                    let (outcomes, writes) = plan(items, limits, &mut known);
                    write(&tx, scope, &writes).await?;
                    tx.commit().await?;
                    Ok(outcomes)
                })
                .await;
            let conflict = matches!(&outcome, Ok(Err(Fail::Pg(e))) if e.code() == Some(&SqlState::UNIQUE_VIOLATION));
            if conflict && attempt < CONFLICT_RETRIES {
                // Someone created a key this chunk inserts: decide again with it seen.
                drop(conn);
                continue;
            }
            return conn.finish(outcome);
        }
    }
}

async fn existing_in(tx: &Transaction<'_>, scope: &Scope, keys: &Keys) -> Result<Existing, Fail> {
    let things: Vec<&String> = keys.things.iter().chain(&keys.thing_refs).collect();
    let (a, r) = (&scope.account_id, &scope.region);
    let mut existing = Existing::default();
    if !things.is_empty() {
        for row in rows(
            tx,
            "SELECT name FROM things WHERE account_id = $1 AND region = $2
               AND name = ANY($3::text[])",
            &[a, r, &things],
        )
        .await?
        {
            existing.things.insert(row.try_get(0)?);
        }
    }
    if !keys.certificates.is_empty() {
        for row in rows(
            tx,
            "SELECT id FROM certificates WHERE account_id = $1 AND region = $2
               AND id = ANY($3::text[])",
            &[a, r, &keys.certificates],
        )
        .await?
        {
            existing.certificates.insert(row.try_get(0)?);
        }
    }
    Ok(existing)
}

async fn lock_all(tx: &Transaction<'_>, locks: &[(i32, String)]) -> Result<(), Fail> {
    if locks.is_empty() {
        return Ok(());
    }
    let spaces: Vec<i32> = locks.iter().map(|(s, _)| *s).collect();
    let keys: Vec<&str> = locks.iter().map(|(_, k)| k.as_str()).collect();
    // In the given (sorted) order, so two importers never wait on each other in a cycle.
    execute(
        tx,
        "SELECT pg_advisory_xact_lock(l.space, hashtext(l.key))
         FROM unnest($1::int4[], $2::text[]) WITH ORDINALITY AS l(space, key, n) ORDER BY l.n",
        &[&spaces, &keys],
    )
    .await?;
    Ok(())
}

async fn load(tx: &Transaction<'_>, scope: &Scope, keys: &Keys) -> Result<Known, Fail> {
    let (a, r) = (&scope.account_id, &scope.region);
    let mut known = Known::default();
    if !keys.policies.is_empty() {
        for row in rows(
            tx,
            "SELECT p.name, v.document FROM policies p JOIN policy_versions v
               ON v.account_id = p.account_id AND v.region = p.region
              AND v.policy_name = p.name AND v.version_id = p.default_version_id
             WHERE p.account_id = $1 AND p.region = $2 AND p.name = ANY($3::text[])",
            &[a, r, &keys.policies],
        )
        .await?
        {
            known.policies.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    if !keys.groups.is_empty() {
        // Held FOR KEY SHARE, as a new child or member holds its group: no one deletes
        // them before this commits.
        for row in rows(
            tx,
            "SELECT name, id, arn, parent_name, description, version, created_at_ms,
                    updated_at_ms, root_name
             FROM thing_groups WHERE account_id = $1 AND region = $2
               AND name = ANY($3::text[]) FOR KEY SHARE",
            &[a, r, &keys.groups],
        )
        .await?
        {
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
            known.groups.insert(
                record.name.clone(),
                KnownGroup {
                    record,
                    root: row.try_get(8)?,
                    ancestors: Vec::new(),
                },
            );
        }
        for row in rows(
            tx,
            "SELECT group_name, attr_name, attr_value FROM thing_group_attributes
             WHERE account_id = $1 AND region = $2 AND group_name = ANY($3::text[])",
            &[a, r, &keys.groups],
        )
        .await?
        {
            let group: String = row.try_get(0)?;
            if let Some(g) = known.groups.get_mut(&group) {
                g.record.attributes.insert(row.try_get(1)?, row.try_get(2)?);
            }
        }
        for row in rows(
            tx,
            "SELECT group_name, ancestor_name, depth FROM thing_group_tree
             WHERE account_id = $1 AND region = $2 AND group_name = ANY($3::text[])
             ORDER BY group_name, depth",
            &[a, r, &keys.groups],
        )
        .await?
        {
            let group: String = row.try_get(0)?;
            let depth: i32 = row.try_get(2)?;
            if let Some(g) = known.groups.get_mut(&group) {
                g.ancestors.push((row.try_get(1)?, i64::from(depth)));
            }
        }
    }
    if !keys.things.is_empty() {
        for row in rows(
            tx,
            "SELECT name, id, arn, thing_type_name, billing_group_name, version,
                    created_at_ms, updated_at_ms
             FROM things WHERE account_id = $1 AND region = $2 AND name = ANY($3::text[])",
            &[a, r, &keys.things],
        )
        .await?
        {
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
            known.things.insert(
                record.name.clone(),
                KnownThing {
                    record: Some(record),
                    groups: Vec::new(),
                },
            );
        }
        let found: Vec<&String> = known.things.keys().collect();
        if !found.is_empty() {
            let mut attrs: HashMap<String, Attributes> = HashMap::new();
            for row in rows(
                tx,
                "SELECT thing_name, attr_name, attr_value FROM thing_attributes
                 WHERE account_id = $1 AND region = $2 AND thing_name = ANY($3::text[])",
                &[a, r, &found],
            )
            .await?
            {
                attrs
                    .entry(row.try_get(0)?)
                    .or_default()
                    .insert(row.try_get(1)?, row.try_get(2)?);
            }
            let mut groups: HashMap<String, Vec<(String, String)>> = HashMap::new();
            for row in rows(
                tx,
                "SELECT thing_name, group_name, root_name FROM thing_group_members
                 WHERE account_id = $1 AND region = $2 AND thing_name = ANY($3::text[])",
                &[a, r, &found],
            )
            .await?
            {
                groups
                    .entry(row.try_get(0)?)
                    .or_default()
                    .push((row.try_get(1)?, row.try_get(2)?));
            }
            for (name, thing) in known.things.iter_mut() {
                if let Some(record) = thing.record.as_mut() {
                    record.attributes = attrs.remove(name).unwrap_or_default();
                }
                thing.groups = groups.remove(name).unwrap_or_default();
            }
        }
    }
    if !keys.thing_refs.is_empty() {
        for row in rows(
            tx,
            "SELECT name FROM things WHERE account_id = $1 AND region = $2
               AND name = ANY($3::text[])",
            &[a, r, &keys.thing_refs],
        )
        .await?
        {
            known.things.insert(
                row.try_get(0)?,
                KnownThing {
                    record: None,
                    groups: Vec::new(),
                },
            );
        }
    }
    if !keys.certificates.is_empty() {
        // Held as attach_thing_principal holds them, so exclusivity is decided in turn.
        let mut arns: Vec<String> = Vec::new();
        let mut by_arn: HashMap<String, String> = HashMap::new();
        for row in rows(
            tx,
            "SELECT id, arn FROM certificates WHERE account_id = $1 AND region = $2
               AND id = ANY($3::text[]) FOR NO KEY UPDATE",
            &[a, r, &keys.certificates],
        )
        .await?
        {
            let (id, arn): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            known
                .certificates
                .insert(id.clone(), KnownCertificate::default());
            by_arn.insert(arn.clone(), id);
            arns.push(arn);
        }
        if !arns.is_empty() {
            let ids: Vec<&String> = by_arn.values().collect();
            for row in rows(
                tx,
                "SELECT certificate_id, thing_name, exclusive FROM thing_principals
                 WHERE account_id = $1 AND region = $2 AND certificate_id = ANY($3::text[])
                 ORDER BY certificate_id, thing_name",
                &[a, r, &ids],
            )
            .await?
            {
                let id: String = row.try_get(0)?;
                if let Some(c) = known.certificates.get_mut(&id) {
                    c.things.push((row.try_get(1)?, row.try_get(2)?));
                }
            }
            for row in rows(
                tx,
                "SELECT target, policy_name FROM policy_attachments
                 WHERE account_id = $1 AND region = $2 AND target = ANY($3::text[])",
                &[a, r, &arns],
            )
            .await?
            {
                let target: String = row.try_get(0)?;
                let id = by_arn.get(&target);
                if let Some(c) = id.and_then(|id| known.certificates.get_mut(id)) {
                    c.policies.push(row.try_get(1)?);
                }
            }
        }
    }
    if !keys.cas.is_empty() {
        for row in rows(
            tx,
            "SELECT id FROM ca_certificates WHERE account_id = $1 AND region = $2
               AND id = ANY($3::text[])",
            &[a, r, &keys.cas],
        )
        .await?
        {
            known.cas.insert(row.try_get(0)?);
        }
    }
    Ok(known)
}

/// Column `f` of every row, for an array parameter.
fn col<'a, T, U>(rows: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

async fn write(tx: &Transaction<'_>, scope: &Scope, w: &Writes) -> Result<(), Fail> {
    let (a, r) = (&scope.account_id, &scope.region);
    if !w.policies.is_empty() {
        let p = &w.policies;
        let (names, arns, generations, created, documents) = (
            col(p, |p| p.name.as_str()),
            col(p, |p| p.arn.as_str()),
            col(p, |p| p.generation_id.as_str()),
            col(p, |p| p.created_at_ms),
            col(p, |p| p.document.as_str()),
        );
        execute(
            tx,
            "INSERT INTO policies (account_id, region, name, arn, default_version_id,
                 last_version_id, generation_id, created_at_ms, updated_at_ms)
             SELECT $1, $2, n, arn, 1, 1, g, c, c
             FROM unnest($3::text[], $4::text[], $5::text[], $6::int8[]) AS u(n, arn, g, c)",
            &[a, r, &names, &arns, &generations, &created],
        )
        .await?;
        execute(
            tx,
            "INSERT INTO policy_versions
                 (account_id, region, policy_name, version_id, document, created_at_ms)
             SELECT $1, $2, n, 1, d, c
             FROM unnest($3::text[], $4::text[], $5::int8[]) AS u(n, d, c)",
            &[a, r, &names, &documents, &created],
        )
        .await?;
    }
    if !w.groups.is_empty() {
        let g = &w.groups;
        execute(
            tx,
            "INSERT INTO thing_groups (account_id, region, name, id, arn, parent_name,
                 description, version, created_at_ms, updated_at_ms, root_name)
             SELECT $1, $2, n, id, arn, p, d, v, c, u, root
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::int8[], $9::int8[], $10::int8[], $11::text[])
                  AS x(n, id, arn, p, d, v, c, u, root)",
            &[
                a,
                r,
                &col(g, |(g, _)| g.name.as_str()),
                &col(g, |(g, _)| g.id.as_str()),
                &col(g, |(g, _)| g.arn.as_str()),
                &col(g, |(g, _)| g.parent_name.as_deref()),
                &col(g, |(g, _)| g.description.as_deref()),
                &col(g, |(g, _)| g.version),
                &col(g, |(g, _)| g.created_at_ms),
                &col(g, |(g, _)| g.updated_at_ms),
                &col(g, |(_, root)| root.as_str()),
            ],
        )
        .await?;
    }
    insert_triples(
        tx,
        scope,
        "INSERT INTO thing_group_attributes (account_id, region, group_name, attr_name, attr_value)
         SELECT $1, $2, x, y, z FROM unnest($3::text[], $4::text[], $5::text[]) AS u(x, y, z)",
        &w.group_attributes,
    )
    .await?;
    if !w.group_tree.is_empty() {
        let t = &w.group_tree;
        let depths: Vec<i32> = t
            .iter()
            .map(|(_, _, d)| i32::try_from(*d).unwrap_or(i32::MAX))
            .collect();
        execute(
            tx,
            "INSERT INTO thing_group_tree (account_id, region, ancestor_name, group_name, depth)
             SELECT $1, $2, x, g, d FROM unnest($3::text[], $4::text[], $5::int4[]) AS u(x, g, d)",
            &[
                a,
                r,
                &col(t, |(x, _, _)| x.as_str()),
                &col(t, |(_, g, _)| g.as_str()),
                &depths,
            ],
        )
        .await?;
    }
    if !w.things.is_empty() {
        let t = &w.things;
        execute(
            tx,
            "INSERT INTO things (account_id, region, name, id, arn, thing_type_name,
                 billing_group_name, version, created_at_ms, updated_at_ms)
             SELECT $1, $2, n, id, arn, tt, bg, v, c, u
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::int8[], $9::int8[], $10::int8[]) AS x(n, id, arn, tt, bg, v, c, u)",
            &[
                a,
                r,
                &col(t, |t| t.name.as_str()),
                &col(t, |t| t.id.as_str()),
                &col(t, |t| t.arn.as_str()),
                &col(t, |t| t.thing_type_name.as_deref()),
                &col(t, |t| t.billing_group_name.as_deref()),
                &col(t, |t| t.version),
                &col(t, |t| t.created_at_ms),
                &col(t, |t| t.updated_at_ms),
            ],
        )
        .await?;
    }
    insert_triples(
        tx,
        scope,
        "INSERT INTO thing_attributes (account_id, region, thing_name, attr_name, attr_value)
         SELECT $1, $2, x, y, z FROM unnest($3::text[], $4::text[], $5::text[]) AS u(x, y, z)",
        &w.thing_attributes,
    )
    .await?;
    insert_triples(
        tx,
        scope,
        "INSERT INTO thing_group_members (account_id, region, thing_name, group_name, root_name)
         SELECT $1, $2, x, y, z FROM unnest($3::text[], $4::text[], $5::text[]) AS u(x, y, z)",
        &w.memberships,
    )
    .await?;
    if !w.certificates.is_empty() {
        let c = &w.certificates;
        let uris: Vec<Option<String>> = c
            .iter()
            .map(|c| join_uris(&c.facts.crl_distribution_points))
            .collect();
        execute(
            tx,
            "INSERT INTO certificates (account_id, region, id, arn, pem, status,
                 certificate_mode, ca_certificate_id, issuer_certificate_id, owned_by,
                 previous_owned_by, generation_id, customer_version, subject, issuer,
                 subject_der, issuer_der, serial_number, not_before_ms, not_after_ms,
                 key_algorithm, key_bits, key_curve, public_key, crl_distribution_points,
                 created_at_ms, updated_at_ms)
             SELECT $1, $2, u.* FROM unnest($3::text[], $4::text[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                 $13::int8[], $14::text[], $15::text[], $16::bytea[], $17::bytea[],
                 $18::text[], $19::int8[], $20::int8[], $21::text[], $22::int4[],
                 $23::text[], $24::bytea[], $25::text[], $26::int8[], $27::int8[]) AS u",
            &[
                a,
                r,
                &col(c, |c| c.id.as_str()),
                &col(c, |c| c.arn.as_str()),
                &col(c, |c| c.pem.as_str()),
                &col(c, |c| c.status.as_str()),
                &col(c, |c| c.certificate_mode.as_str()),
                &col(c, |c| c.ca_certificate_id.as_deref()),
                &col(c, |c| c.issuer_certificate_id.as_deref()),
                &col(c, |c| c.owned_by.as_str()),
                &col(c, |c| c.previous_owned_by.as_deref()),
                &col(c, |c| c.generation_id.as_str()),
                &col(c, |c| c.customer_version),
                &col(c, |c| c.facts.subject.as_str()),
                &col(c, |c| c.facts.issuer.as_str()),
                &col(c, |c| c.facts.subject_der.as_slice()),
                &col(c, |c| c.facts.issuer_der.as_slice()),
                &col(c, |c| c.facts.serial_number.as_str()),
                &col(c, |c| c.facts.not_before_ms),
                &col(c, |c| c.facts.not_after_ms),
                &col(c, |c| c.facts.key_algorithm.as_str()),
                &col(c, |c| c.facts.key_bits),
                &col(c, |c| c.facts.key_curve.as_deref()),
                &col(c, |c| c.facts.public_key_der.as_slice()),
                &uris,
                &col(c, |c| c.created_at_ms),
                &col(c, |c| c.updated_at_ms),
            ],
        )
        .await?;
    }
    if !w.principals.is_empty() {
        let p = &w.principals;
        execute(
            tx,
            "INSERT INTO thing_principals
                 (account_id, region, thing_name, certificate_id, exclusive, attached_at_ms)
             SELECT $1, $2, t, c, false, at
             FROM unnest($3::text[], $4::text[], $5::int8[]) AS u(t, c, at)",
            &[
                a,
                r,
                &col(p, |(t, _, _)| t.as_str()),
                &col(p, |(_, c, _)| c.as_str()),
                &col(p, |(_, _, at)| *at),
            ],
        )
        .await?;
    }
    if !w.attachments.is_empty() {
        let p = &w.attachments;
        execute(
            tx,
            "INSERT INTO policy_attachments (account_id, region, policy_name, target, attached_at_ms)
             SELECT $1, $2, p, t, at FROM unnest($3::text[], $4::text[], $5::int8[]) AS u(p, t, at)",
            &[
                a,
                r,
                &col(p, |(x, _, _)| x.as_str()),
                &col(p, |(_, t, _)| t.as_str()),
                &col(p, |(_, _, at)| *at),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn insert_triples(
    tx: &Transaction<'_>,
    scope: &Scope,
    sql: &str,
    rows: &[(String, String, String)],
) -> Result<(), Fail> {
    if rows.is_empty() {
        return Ok(());
    }
    execute(
        tx,
        sql,
        &[
            &scope.account_id,
            &scope.region,
            &col(rows, |(x, _, _)| x.as_str()),
            &col(rows, |(_, y, _)| y.as_str()),
            &col(rows, |(_, _, z)| z.as_str()),
        ],
    )
    .await?;
    Ok(())
}
