//! What stays SQLite's own of certificates: the device certificate pass of an audit
//! (`CertificateStore::certificates_in_use`, tuned for this engine), and the helpers the
//! import and the mitigation stages, not on the seam yet, still run on their own
//! rusqlite transaction: the shared statements and row mapping of `crate::certificates`,
//! bound here. Inside the writer's IMMEDIATE transaction nothing else changes a
//! certificate between the checks and the writes.

use rusqlite::{params, Connection, Transaction};

use super::error::{fail_err, sql_err};
use super::{sql_limit, SqliteStore};
use crate::certificates::{
    ca_certificate, facts, facts_columns, join_uris, registration_change, row_params, source_slots,
    state_params, statuses_that_may_become, unapplied_status_change, StatusChange, CA_STATUS,
    INSERT_CERTIFICATE, INSERT_ROW, PRINCIPAL_THINGS, STATE_STATUS, UPDATE_CA_CERTIFICATE,
    UPDATE_STATE,
};
use crate::db::{DbResult, Param, Row, Sql};
use crate::{
    CaCertificateRecord, CaCertificateUpdate, CertificateInUse, CertificateKey, CertificateOutcome,
    CertificatePages, CertificateRecord, Scope, StoreResult,
};

/// Past this many certificates not in use, a scan looks up each state instead of
/// holding their ids (about 100 bytes each) in memory.
const IDLE_SET_LIMIT: usize = 250_000;

/// Certificates created this shortly before a scan starts, or later, have their state
/// read with their row: one created just before may commit after the idle ids are read
/// (its creation time is stamped before its transaction), and one created during the
/// scan is not in them at all.
const RECENT_MS: i64 = 120_000;

/// A page of an audit's scan from the row `c` alone, except the state of recent ones
/// (created at or after `?3`); keyset after `(?4, ?5)`, up to `?6` rows.
const IN_USE_PAGE: &str = concat!(
    "SELECT c.id, c.pem, c.created_at_ms, ",
    facts_columns!(),
    ", CASE WHEN c.created_at_ms >= ?3 THEN (SELECT s.status FROM certificate_states s \
     WHERE s.account_id = c.account_id AND s.region = c.region AND s.id = c.id) END \
     FROM certificates c WHERE c.account_id = ?1 AND c.region = ?2 \
     AND (c.created_at_ms, c.id) > (?4, ?5) ORDER BY c.created_at_ms, c.id LIMIT ?6"
);

/// The column of [`IN_USE_PAGE`] with the state of a recent certificate.
const RECENT_STATUS: usize = 15;

fn certificate_in_use(row: &Row<'_>) -> DbResult<CertificateInUse> {
    Ok(CertificateInUse {
        id: row.get(0)?,
        pem: row.get(1)?,
        created_at_ms: row.get(2)?,
        facts: facts(row, 3)?,
    })
}

/// The scope's device certificates in use, in creation order, sent `page` at a time
/// from a connection of its own (so the pool's readers stay free for the API while an
/// audit reads), each page its own short read.
///
/// Looking up each certificate's state by id costs a random probe into a tree of a
/// million states (about 7 µs; a million-certificate audit took 7 s longer with it), so
/// the scan first reads the states sequentially for the ids not in use, usually few,
/// and then walks `certificates` alone, leaving those out: states are as of the scan's
/// start, except for certificates created within [`RECENT_MS`] of it or later, whose
/// state is read with their row. With more than `idle_limit` ids not in use it reads
/// every state with its row. Pages are short reads, not one long snapshot, because a WAL
/// reader holding its snapshot keeps every checkpoint from restarting the WAL: an audit
/// writing a million findings meanwhile grew it to 17 GB.
fn scan_in_use(
    path: &std::path::Path,
    scope: &Scope,
    page: usize,
    now_ms: i64,
    idle_limit: usize,
    tx: &tokio::sync::mpsc::Sender<StoreResult<Vec<CertificateInUse>>>,
) -> StoreResult<()> {
    let conn = super::open_reader(path)?;
    let idle = idle_certificate_ids(&conn, scope, idle_limit)?;
    let recent_from = match idle {
        Some(_) => now_ms.saturating_sub(RECENT_MS),
        None => i64::MIN,
    };
    let mut stmt = conn.prepare(IN_USE_PAGE).map_err(sql_err)?;
    let mut after: CertificateKey = (i64::MIN, String::new());
    loop {
        let mut batch = Vec::with_capacity(page);
        let (mut read, mut last) = (0, None);
        let mut rows = stmt
            .query(params![
                scope.account_id,
                scope.region,
                recent_from,
                after.0,
                after.1,
                sql_limit(page)
            ])
            .map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            let cert = certificate_in_use(&Row::Lite(row)).map_err(fail_err)?;
            read += 1;
            last = Some((cert.created_at_ms, cert.id.clone()));
            let in_use = if cert.created_at_ms >= recent_from {
                row.get::<_, Option<String>>(RECENT_STATUS)
                    .map_err(sql_err)?
                    .is_some_and(|status| crate::status_in_use(&status))
            } else {
                !idle.as_ref().is_some_and(|idle| idle.contains(&cert.id))
            };
            if in_use {
                batch.push(cert);
            }
        }
        drop(rows);
        if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
            // The reader stopped listening: the audit ended or failed.
            return Ok(());
        }
        match last {
            Some(key) if read == page => after = key,
            _ => return Ok(()),
        }
    }
}

/// The ids of the scope's certificates not in use, or `None` if there are more than
/// `limit`.
fn idle_certificate_ids(
    conn: &Connection,
    scope: &Scope,
    limit: usize,
) -> StoreResult<Option<std::collections::HashSet<String>>> {
    let mut stmt = conn
        .prepare(
            "SELECT id FROM certificate_states WHERE account_id = ?1 AND region = ?2 \
             AND status NOT IN ('ACTIVE', 'PENDING_TRANSFER')",
        )
        .map_err(sql_err)?;
    let mut rows = stmt
        .query(params![scope.account_id, scope.region])
        .map_err(sql_err)?;
    let mut idle = std::collections::HashSet::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        if idle.len() == limit {
            return Ok(None);
        }
        idle.insert(row.get::<_, String>(0).map_err(sql_err)?);
    }
    Ok(Some(idle))
}

impl SqliteStore {
    /// `CertificateStore::certificates_in_use`: see [`scan_in_use`].
    pub(crate) fn certificate_pages_in_use<'a>(
        &'a self,
        scope: &'a Scope,
        page: usize,
        now_ms: i64,
    ) -> CertificatePages<'a> {
        // Pages cross from a blocking thread; two in flight keep the reader ahead of the
        // audit without buffering the fleet.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let path = self.path().to_owned();
        let scope = scope.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = scan_in_use(&path, &scope, page.max(1), now_ms, IDLE_SET_LIMIT, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }
}

/// The shared `insert_certificate` (certificates/device.rs) on the caller's transaction:
/// the row, then its state naming it.
pub(super) fn insert_certificate(
    tx: &Transaction<'_>,
    scope: &Scope,
    r: &CertificateRecord,
) -> rusqlite::Result<()> {
    let crl = join_uris(&r.facts.crl_distribution_points);
    execute(tx, INSERT_ROW, &row_params(scope, r, &crl))?;
    execute(tx, INSERT_CERTIFICATE, &state_params(scope, r)).map(drop)
}

/// `crate::certificates::set_certificate_statuses` for one certificate on the caller's
/// transaction: one `UPDATE` decides and applies an allowed change; only when it changes
/// nothing does a read tell a missing certificate, a refused change and a status already
/// set apart. Mitigation stages run this once per certificate, so the common case is
/// that one statement.
pub(super) fn set_certificate_status(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
    status: &str,
    generation_id: &str,
    now_ms: i64,
) -> StoreResult<CertificateOutcome<StatusChange>> {
    let sources = statuses_that_may_become(status);
    if update_state(tx, scope, id, status, generation_id, now_ms, Some(&sources))? {
        return Ok(Ok(StatusChange::Changed));
    }
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &id];
    let current: Option<String> = first(tx, STATE_STATUS, &key, |row| row.get(0))?;
    match unapplied_status_change(current.as_deref(), status) {
        Some(decided) => Ok(decided),
        // A status the list of sources does not know, which the rules allow.
        None => {
            update_state(tx, scope, id, status, generation_id, now_ms, None)?;
            Ok(Ok(StatusChange::Changed))
        }
    }
}

/// [`UPDATE_STATE`]: whether it changed the certificate.
fn update_state(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
    status: &str,
    generation_id: &str,
    now_ms: i64,
    sources: Option<&[&str]>,
) -> StoreResult<bool> {
    let (any, from) = (sources.is_none(), source_slots(sources));
    let params: [&dyn Param; 13] = [
        &scope.account_id,
        &scope.region,
        &id,
        &status,
        &generation_id,
        &now_ms,
        &any,
        &from[0],
        &from[1],
        &from[2],
        &from[3],
        &from[4],
        &from[5],
    ];
    Ok(execute(tx, UPDATE_STATE, &params).map_err(sql_err)? == 1)
}

/// `crate::certificates::update_ca_certificate_in` on the caller's transaction.
pub(super) fn update_ca_certificate_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
    u: &CaCertificateUpdate,
) -> StoreResult<Option<CaCertificateRecord>> {
    let (keep, config) = registration_change(&u.registration_config);
    let params: [&dyn Param; 11] = [
        &scope.account_id,
        &scope.region,
        &id,
        &u.status,
        &u.auto_registration_status,
        &keep,
        &config.role_arn,
        &config.template_body,
        &config.template_name,
        &u.generation_id,
        &u.updated_at_ms,
    ];
    first(tx, UPDATE_CA_CERTIFICATE, &params, ca_certificate)
}

/// `crate::certificates::lock_ca_certificate_status` on the caller's transaction.
pub(super) fn ca_certificate_status(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> StoreResult<Option<String>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &id];
    first(tx, CA_STATUS, &key, |row| row.get(0))
}

/// `crate::certificates::principal_things` on the caller's transaction.
pub(super) fn principal_things(
    conn: &Connection,
    scope: &Scope,
    certificate_id: &str,
    after: &str,
    limit: usize,
) -> StoreResult<Vec<String>> {
    let limit = sql_limit(limit);
    let params: [&dyn Param; 5] = [
        &scope.account_id,
        &scope.region,
        &certificate_id,
        &after,
        &limit,
    ];
    let mut stmt = conn
        .prepare_cached(PRINCIPAL_THINGS.lite)
        .map_err(sql_err)?;
    let mut rows = stmt.query(lite_params(&params)).map_err(sql_err)?;
    let mut names = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        names.push(row.get(0).map_err(sql_err)?);
    }
    Ok(names)
}

fn lite_params<'p>(
    params: &'p [&'p dyn Param],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = &'p dyn rusqlite::ToSql>> {
    rusqlite::params_from_iter(params.iter().map(|p| p.lite()))
}

/// Runs a shared statement; how many rows it changed.
fn execute(conn: &Connection, sql: &Sql<'_>, params: &[&dyn Param]) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql.lite)?.execute(lite_params(params))
}

/// Runs a shared statement; its first row, mapped, if it returns one.
fn first<T>(
    conn: &Connection,
    sql: &Sql<'_>,
    params: &[&dyn Param],
    map: impl FnOnce(&Row<'_>) -> DbResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql.lite).map_err(sql_err)?;
    let mut rows = stmt.query(lite_params(params)).map_err(sql_err)?;
    match rows.next().map_err(sql_err)? {
        Some(row) => map(&Row::Lite(row)).map(Some).map_err(fail_err),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateFacts, CertificateStore};

    fn record(scope: &Scope, n: u8, status: &str) -> CertificateRecord {
        let id = format!("{n:02x}").repeat(32);
        CertificateRecord {
            id: id.clone(),
            arn: format!(
                "arn:aws:iot:{}:{}:cert/{id}",
                scope.region, scope.account_id
            ),
            pem: format!("pem {id}"),
            status: status.into(),
            certificate_mode: "DEFAULT".into(),
            ca_certificate_id: None,
            issuer_certificate_id: None,
            owned_by: scope.account_id.clone(),
            previous_owned_by: None,
            generation_id: "gen".into(),
            customer_version: 1,
            facts: CertificateFacts {
                subject: "CN=d".into(),
                issuer: "CN=ca".into(),
                subject_der: vec![n],
                issuer_der: vec![0],
                serial_number: format!("{n:x}"),
                not_before_ms: 0,
                not_after_ms: 1,
                key_algorithm: "EC".into(),
                key_bits: Some(256),
                key_curve: Some("P-256".into()),
                public_key_der: vec![n],
                crl_distribution_points: Vec::new(),
            },
            created_at_ms: 1000 - i64::from(n),
            updated_at_ms: 0,
        }
    }

    /// Every way of leaving out certificates not in use gives the same pages: the set of
    /// idle ids, and the state read with the row (past the set's limit, or for recent
    /// certificates).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scan_in_use_with_and_without_the_idle_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let store = SqliteStore::open(&path).unwrap();
        let scope = Scope {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let statuses = [
            "ACTIVE",
            "INACTIVE",
            "PENDING_TRANSFER",
            "REVOKED",
            "ACTIVE",
        ];
        for (n, status) in statuses.iter().enumerate() {
            store
                .register_certificate(&scope, &record(&scope, n as u8, status))
                .await
                .unwrap()
                .unwrap();
        }
        // Created in reverse order of n.
        let expected: Vec<String> = [4u8, 2, 0]
            .iter()
            .map(|n| format!("{n:02x}").repeat(32))
            .collect();
        // Clocks long after the certificates' creation (states from the idle ids) and at
        // it (states read with the rows), with and without room for the idle ids.
        for (now, limit) in [
            (1_000_000, 0),
            (1_000_000, 1),
            (1_000_000, 2),
            (1_000_000, 10),
            (1000, 10),
        ] {
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let (p, s) = (path.clone(), scope.clone());
            tokio::task::spawn_blocking(move || scan_in_use(&p, &s, 2, now, limit, &tx))
                .await
                .unwrap()
                .unwrap();
            let mut ids = Vec::new();
            while let Some(page) = rx.recv().await {
                let page = page.unwrap();
                assert!(page.len() <= 2);
                ids.extend(page.into_iter().map(|c| c.id));
            }
            assert_eq!(ids, expected, "now {now}, idle limit {limit}");
        }
    }
}
