//! Bulk import on SQLite: one IMMEDIATE transaction per batch on the single writer, so
//! the state read at its start stays true until it commits. Reads are point lookups and
//! writes are single-row inserts, all through statements prepared once per connection
//! (SQLite runs them in-process, so a statement per row costs no round trip).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};

use super::certificates::insert_certificate;
use super::error::sql_err;
use super::SqliteStore;
use crate::import::{plan, Keys, Known, KnownCertificate, KnownGroup, KnownThing, Writes};
use crate::{
    Attributes, ImportItem, ImportLimits, ImportOutcome, ImportStore, Scope, StoreResult,
    ThingGroupRecord, ThingRecord,
};

/// Page cache of the writer while it imports: big enough that the certificate indexes
/// (random keys) of a large fleet stay in memory between batches. Negative: KiB.
const IMPORT_CACHE_KIB: i64 = 512 * 1024;

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_batch(
        &self,
        scope: &Scope,
        items: Vec<ImportItem>,
        limits: &ImportLimits,
    ) -> StoreResult<Vec<ImportOutcome>> {
        let (scope, limits) = (scope.clone(), limits.clone());
        self.write_tx(move |tx| {
            tx.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)
                .map_err(sql_err)?;
            let keys = Keys::of(&items);
            let mut known = load(tx, &scope, &keys)?;
            let (outcomes, writes) = plan(&items, &limits, &mut known);
            write(tx, &scope, &writes)?;
            Ok(outcomes)
        })
        .await
    }
}

fn attributes(
    tx: &Transaction<'_>,
    sql: &str,
    scope: &Scope,
    owner: &str,
) -> StoreResult<Attributes> {
    let mut stmt = tx.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map((&scope.account_id, &scope.region, owner), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(sql_err)?;
    rows.collect::<Result<_, _>>().map_err(sql_err)
}

fn pairs<A, B>(
    tx: &Transaction<'_>,
    sql: &str,
    scope: &Scope,
    key: &str,
) -> StoreResult<Vec<(A, B)>>
where
    A: rusqlite::types::FromSql,
    B: rusqlite::types::FromSql,
{
    let mut stmt = tx.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map((&scope.account_id, &scope.region, key), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(sql_err)?;
    rows.collect::<Result<_, _>>().map_err(sql_err)
}

fn exists(tx: &Transaction<'_>, sql: &str, scope: &Scope, key: &str) -> StoreResult<bool> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.exists((&scope.account_id, &scope.region, key)))
        .map_err(sql_err)
}

fn load(tx: &Transaction<'_>, scope: &Scope, keys: &Keys) -> StoreResult<Known> {
    let mut known = Known::default();
    for name in &keys.policies {
        let document: Option<String> = tx
            .prepare_cached(
                "SELECT v.document FROM policies p JOIN policy_versions v
                   ON v.account_id = p.account_id AND v.region = p.region
                  AND v.policy_name = p.name AND v.version_id = p.default_version_id
                 WHERE p.account_id = ?1 AND p.region = ?2 AND p.name = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region, name), |row| row.get(0))
                    .optional()
            })
            .map_err(sql_err)?;
        if let Some(document) = document {
            known.policies.insert(name.clone(), document);
        }
    }
    for name in &keys.groups {
        let found = tx
            .prepare_cached(
                "SELECT id, arn, parent_name, description, version, created_at_ms,
                        updated_at_ms, root_name
                 FROM thing_groups WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region, name), |row| {
                    Ok((
                        ThingGroupRecord {
                            name: name.clone(),
                            id: row.get(0)?,
                            arn: row.get(1)?,
                            parent_name: row.get(2)?,
                            description: row.get(3)?,
                            attributes: Attributes::new(),
                            version: row.get(4)?,
                            created_at_ms: row.get(5)?,
                            updated_at_ms: row.get(6)?,
                        },
                        row.get::<_, String>(7)?,
                    ))
                })
                .optional()
            })
            .map_err(sql_err)?;
        let Some((mut record, root)) = found else {
            continue;
        };
        record.attributes = attributes(
            tx,
            "SELECT attr_name, attr_value FROM thing_group_attributes
             WHERE account_id = ?1 AND region = ?2 AND group_name = ?3",
            scope,
            name,
        )?;
        let ancestors = pairs(
            tx,
            "SELECT ancestor_name, depth FROM thing_group_tree
             WHERE account_id = ?1 AND region = ?2 AND group_name = ?3 ORDER BY depth",
            scope,
            name,
        )?;
        known.groups.insert(
            name.clone(),
            KnownGroup {
                record,
                root,
                ancestors,
            },
        );
    }
    for name in &keys.things {
        let found = tx
            .prepare_cached(
                "SELECT id, arn, thing_type_name, billing_group_name, version, created_at_ms,
                        updated_at_ms
                 FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region, name), |row| {
                    Ok(ThingRecord {
                        name: name.clone(),
                        id: row.get(0)?,
                        arn: row.get(1)?,
                        thing_type_name: row.get(2)?,
                        billing_group_name: row.get(3)?,
                        attributes: Attributes::new(),
                        version: row.get(4)?,
                        created_at_ms: row.get(5)?,
                        updated_at_ms: row.get(6)?,
                    })
                })
                .optional()
            })
            .map_err(sql_err)?;
        let Some(mut record) = found else {
            continue;
        };
        record.attributes = attributes(
            tx,
            "SELECT attr_name, attr_value FROM thing_attributes
             WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3",
            scope,
            name,
        )?;
        let groups = pairs(
            tx,
            "SELECT group_name, root_name FROM thing_group_members
             WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3",
            scope,
            name,
        )?;
        known.things.insert(
            name.clone(),
            KnownThing {
                record: Some(record),
                groups,
            },
        );
    }
    for name in &keys.thing_refs {
        if exists(
            tx,
            "SELECT 1 FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            scope,
            name,
        )? {
            known.things.insert(
                name.clone(),
                KnownThing {
                    record: None,
                    groups: Vec::new(),
                },
            );
        }
    }
    for id in &keys.certificates {
        let arn: Option<String> = tx
            .prepare_cached(
                "SELECT c.arn FROM certificate_states s JOIN certificates c ON c.row_id = s.row_id
                 WHERE s.account_id = ?1 AND s.region = ?2 AND s.id = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region, id), |row| row.get(0))
                    .optional()
            })
            .map_err(sql_err)?;
        let Some(arn) = arn else {
            continue;
        };
        let things = pairs(
            tx,
            "SELECT thing_name, exclusive FROM thing_principals
             WHERE account_id = ?1 AND region = ?2 AND certificate_id = ?3 ORDER BY thing_name",
            scope,
            id,
        )?;
        let policies = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT policy_name FROM policy_attachments
                     WHERE account_id = ?1 AND region = ?2 AND target = ?3",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map((&scope.account_id, &scope.region, &arn), |row| row.get(0))
                .map_err(sql_err)?;
            rows.collect::<Result<Vec<String>, _>>().map_err(sql_err)?
        };
        known
            .certificates
            .insert(id.clone(), KnownCertificate { things, policies });
    }
    for id in &keys.cas {
        if exists(
            tx,
            "SELECT 1 FROM ca_certificates WHERE account_id = ?1 AND region = ?2 AND id = ?3",
            scope,
            id,
        )? {
            known.cas.insert(id.clone());
        }
    }
    Ok(known)
}

/// Runs `sql` once per row of `rows`, binding the scope first.
fn each<T>(
    tx: &Transaction<'_>,
    sql: &str,
    rows: &[T],
    mut run: impl FnMut(&mut rusqlite::CachedStatement<'_>, &T) -> rusqlite::Result<usize>,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(sql).map_err(sql_err)?;
    for row in rows {
        run(&mut stmt, row).map_err(sql_err)?;
    }
    Ok(())
}

fn write(tx: &Transaction<'_>, scope: &Scope, w: &Writes) -> StoreResult<()> {
    let (a, r) = (&scope.account_id, &scope.region);
    each(
        tx,
        "INSERT INTO policies (account_id, region, name, arn, default_version_id,
             last_version_id, generation_id, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, 1, 1, ?5, ?6, ?6)",
        &w.policies,
        |s, p| {
            s.execute(params![
                a,
                r,
                p.name,
                p.arn,
                p.generation_id,
                p.created_at_ms
            ])
        },
    )?;
    each(
        tx,
        "INSERT INTO policy_versions
             (account_id, region, policy_name, version_id, document, created_at_ms)
         VALUES (?1, ?2, ?3, 1, ?4, ?5)",
        &w.policies,
        |s, p| s.execute(params![a, r, p.name, p.document, p.created_at_ms]),
    )?;
    each(
        tx,
        "INSERT INTO thing_groups (account_id, region, name, id, arn, parent_name,
             description, version, created_at_ms, updated_at_ms, root_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        &w.groups,
        |s, (g, root)| {
            s.execute(params![
                a,
                r,
                g.name,
                g.id,
                g.arn,
                g.parent_name,
                g.description,
                g.version,
                g.created_at_ms,
                g.updated_at_ms,
                root
            ])
        },
    )?;
    each(
        tx,
        "INSERT INTO thing_group_attributes
             (account_id, region, group_name, attr_name, attr_value)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &w.group_attributes,
        |s, (g, k, v)| s.execute(params![a, r, g, k, v]),
    )?;
    each(
        tx,
        "INSERT INTO thing_group_tree (account_id, region, ancestor_name, group_name, depth)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &w.group_tree,
        |s, (anc, g, d)| s.execute(params![a, r, anc, g, d]),
    )?;
    each(
        tx,
        "INSERT INTO things (account_id, region, name, id, arn, thing_type_name,
             billing_group_name, version, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        &w.things,
        |s, t| {
            s.execute(params![
                a,
                r,
                t.name,
                t.id,
                t.arn,
                t.thing_type_name,
                t.billing_group_name,
                t.version,
                t.created_at_ms,
                t.updated_at_ms
            ])
        },
    )?;
    each(
        tx,
        "INSERT INTO thing_attributes (account_id, region, thing_name, attr_name, attr_value)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &w.thing_attributes,
        |s, (t, k, v)| s.execute(params![a, r, t, k, v]),
    )?;
    each(
        tx,
        "INSERT INTO thing_group_members (account_id, region, thing_name, group_name, root_name)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &w.memberships,
        |s, (t, g, root)| s.execute(params![a, r, t, g, root]),
    )?;
    for c in &w.certificates {
        insert_certificate(tx, scope, c).map_err(sql_err)?;
    }
    each(
        tx,
        "INSERT INTO thing_principals
             (account_id, region, thing_name, certificate_id, exclusive, attached_at_ms)
         VALUES (?1, ?2, ?3, ?4, 0, ?5)",
        &w.principals,
        |s, (t, c, at)| s.execute(params![a, r, t, c, at]),
    )?;
    each(
        tx,
        "INSERT INTO policy_attachments (account_id, region, policy_name, target, attached_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &w.attachments,
        |s, (p, target, at)| s.execute(params![a, r, p, target, at]),
    )?;
    Ok(())
}
