//! What stays SQLite's own of certificates: the device certificate pass of an audit
//! (`CertificateStore::certificates_in_use`, tuned for this engine).

use rusqlite::{params, Connection};

use super::error::{fail_err, sql_err};
use super::SqliteStore;
use crate::certificates::{facts, facts_columns};

use crate::db::{sql_limit, DbResult, Row};
use crate::{CertificateInUse, CertificateKey, CertificatePages, Scope, StoreResult};

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
