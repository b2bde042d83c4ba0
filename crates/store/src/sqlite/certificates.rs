//! Certificates, CA certificates, thing principals and policy attachments on SQLite.
//!
//! Every write runs in the single writer's IMMEDIATE transaction, so the checks below
//! (a status, "still attached", the per-subject CA limit) and the writes they guard are
//! atomic against every other connection and process on the file.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, Transaction};

use super::error::{insert_err, sql_err};
use super::{sql_limit, tags, SqliteStore};
use crate::certificates::{
    exclusive_conflict, join_uris, split_uris, statuses_that_may_become, StatusChange,
    CERTIFICATE_STATUSES,
};
use crate::{
    status_change_allowed, CaCertificateRecord, CaCertificateUpdate, CertificateFacts,
    CertificateInUse, CertificateKey, CertificateOutcome, CertificatePages, CertificateRecord,
    CertificateRefusal, CertificateStore, IssuingCaRecord, PolicyRef, PolicyTarget,
    PrincipalOutcome, PrincipalRefusal, PrincipalStore, RegistrationConfigChange,
    RegistrationConfigRecord, Scope, StoreError, StoreResult, Tag, DELETABLE_STATUSES,
};

// Column lists beside their mapping functions, as in rows.rs. The facts columns are
// shared by both certificate tables and always follow the table's own columns.
macro_rules! facts_columns {
    () => {
        "subject, issuer, subject_der, issuer_der, serial_number, not_before_ms, \
         not_after_ms, key_algorithm, key_bits, key_curve, public_key, crl_distribution_points"
    };
}

fn facts(row: &Row<'_>, at: usize) -> rusqlite::Result<CertificateFacts> {
    Ok(CertificateFacts {
        subject: row.get(at)?,
        issuer: row.get(at + 1)?,
        subject_der: row.get(at + 2)?,
        issuer_der: row.get(at + 3)?,
        serial_number: row.get(at + 4)?,
        not_before_ms: row.get(at + 5)?,
        not_after_ms: row.get(at + 6)?,
        key_algorithm: row.get(at + 7)?,
        key_bits: row.get(at + 8)?,
        key_curve: row.get(at + 9)?,
        public_key_der: row.get(at + 10)?,
        crl_distribution_points: split_uris(row.get(at + 11)?),
    })
}

macro_rules! ca_columns {
    () => {
        concat!(
            "id, arn, pem, status, certificate_mode, auto_registration_status, role_arn, \
             template_body, template_name, owned_by, generation_id, customer_version, ",
            facts_columns!(),
            ", created_at_ms, updated_at_ms"
        )
    };
}

fn ca_certificate(row: &Row<'_>) -> rusqlite::Result<CaCertificateRecord> {
    Ok(CaCertificateRecord {
        id: row.get(0)?,
        arn: row.get(1)?,
        pem: row.get(2)?,
        status: row.get(3)?,
        certificate_mode: row.get(4)?,
        auto_registration_status: row.get(5)?,
        registration_config: RegistrationConfigRecord {
            role_arn: row.get(6)?,
            template_body: row.get(7)?,
            template_name: row.get(8)?,
        },
        owned_by: row.get(9)?,
        generation_id: row.get(10)?,
        customer_version: row.get(11)?,
        facts: facts(row, 12)?,
        created_at_ms: row.get(24)?,
        updated_at_ms: row.get(25)?,
    })
}

/// A device certificate's columns, from its row `c` in `certificates` and its state `s`
/// in `certificate_states` (migration 0011 says why they are apart).
macro_rules! cert_columns {
    () => {
        concat!(
            "c.id, c.arn, c.pem, s.status, c.certificate_mode, c.ca_certificate_id, \
             c.issuer_certificate_id, c.owned_by, c.previous_owned_by, s.generation_id, \
             s.customer_version, ",
            facts_columns!(),
            ", c.created_at_ms, s.updated_at_ms"
        )
    };
}

/// A certificate by id: its state (the id key) first, then its row.
macro_rules! cert_by_id {
    () => {
        concat!(
            "SELECT ",
            cert_columns!(),
            " FROM certificate_states s JOIN certificates c ON c.row_id = s.row_id \
             WHERE s.account_id = ?1 AND s.region = ?2 AND s.id = ?3"
        )
    };
}

fn certificate(row: &Row<'_>) -> rusqlite::Result<CertificateRecord> {
    Ok(CertificateRecord {
        id: row.get(0)?,
        arn: row.get(1)?,
        pem: row.get(2)?,
        status: row.get(3)?,
        certificate_mode: row.get(4)?,
        ca_certificate_id: row.get(5)?,
        issuer_certificate_id: row.get(6)?,
        owned_by: row.get(7)?,
        previous_owned_by: row.get(8)?,
        generation_id: row.get(9)?,
        customer_version: row.get(10)?,
        facts: facts(row, 11)?,
        created_at_ms: row.get(23)?,
        updated_at_ms: row.get(24)?,
    })
}

fn issuing_ca(row: &Row<'_>) -> rusqlite::Result<IssuingCaRecord> {
    Ok(IssuingCaRecord {
        id: row.get(0)?,
        certificate_pem: row.get(1)?,
        private_key_pem: row.get(2)?,
        created_at_ms: row.get(3)?,
    })
}

/// `WHERE` and `ORDER BY` of a keyset page by `(created_at_ms, id)` of table alias
/// `t`; `after` binds to `?{at}` and `?{at + 1}`.
fn keyset(t: &str, paged: bool, descending: bool, at: usize) -> String {
    let (cmp, order) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let cond = if paged {
        format!(
            " AND ({t}.created_at_ms, {t}.id) {cmp} (?{at}, ?{})",
            at + 1
        )
    } else {
        String::new()
    };
    format!("{cond} ORDER BY {t}.created_at_ms {order}, {t}.id {order}")
}

/// One keyset page of a certificate table (alias `t` in `select`) in `scope`,
/// optionally filtered on one of its columns: the SQL (one of a few shapes, so
/// `prepare_cached` keeps every one) and its arguments.
fn page_query(
    (select, t): (&str, &str),
    scope: &Scope,
    filter: Option<(&str, &str)>,
    after: Option<&CertificateKey>,
    descending: bool,
    limit: usize,
) -> (String, Vec<Value>) {
    let mut args = scope_params(scope);
    let mut sql = format!("{select} WHERE {t}.account_id = ?1 AND {t}.region = ?2");
    if let Some((column, value)) = filter {
        args.push(Value::Text(value.to_owned()));
        sql.push_str(&format!(" AND {t}.{column} = ?{}", args.len()));
    }
    sql.push_str(&keyset(t, after.is_some(), descending, args.len() + 1));
    args.extend(keyset_params(after));
    args.push(Value::Integer(sql_limit(limit)));
    sql.push_str(&format!(" LIMIT ?{}", args.len()));
    (sql, args)
}

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

fn certificate_in_use(row: &Row<'_>) -> rusqlite::Result<CertificateInUse> {
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
            let cert = certificate_in_use(row).map_err(sql_err)?;
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
    async fn page<T: Send + 'static>(
        &self,
        (sql, args): (String, Vec<Value>),
        map: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        self.read_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(params_from_iter(args), map)
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }
}

fn keyset_params(after: Option<&CertificateKey>) -> Vec<Value> {
    match after {
        Some((created, id)) => vec![Value::Integer(*created), Value::Text(id.clone())],
        None => Vec::new(),
    }
}

fn scope_params(scope: &Scope) -> Vec<Value> {
    vec![
        Value::Text(scope.account_id.clone()),
        Value::Text(scope.region.clone()),
    ]
}

fn exists(tx: &Transaction<'_>, sql: &str, args: &[&dyn rusqlite::ToSql]) -> StoreResult<bool> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.exists(args))
        .map_err(sql_err)
}

fn certificate_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> StoreResult<Option<CertificateRecord>> {
    tx.prepare_cached(cert_by_id!())
        .and_then(|mut stmt| {
            stmt.query_row((&scope.account_id, &scope.region, id), certificate)
                .optional()
        })
        .map_err(sql_err)
}

/// Adds a device certificate inside the caller's transaction: its row, then its state
/// pointing at the row. A certificate id already in the scope fails on the state's key.
pub(super) fn insert_certificate(
    tx: &Transaction<'_>,
    scope: &Scope,
    r: &CertificateRecord,
) -> rusqlite::Result<()> {
    let f = &r.facts;
    tx.prepare_cached(concat!(
        "INSERT INTO certificates (account_id, region, id, arn, pem, certificate_mode, \
         ca_certificate_id, issuer_certificate_id, owned_by, previous_owned_by, ",
        facts_columns!(),
        ", created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
    ))?
    .execute(params![
        scope.account_id,
        scope.region,
        r.id,
        r.arn,
        r.pem,
        r.certificate_mode,
        r.ca_certificate_id,
        r.issuer_certificate_id,
        r.owned_by,
        r.previous_owned_by,
        f.subject,
        f.issuer,
        f.subject_der,
        f.issuer_der,
        f.serial_number,
        f.not_before_ms,
        f.not_after_ms,
        f.key_algorithm,
        f.key_bits,
        f.key_curve,
        f.public_key_der,
        join_uris(&f.crl_distribution_points),
        r.created_at_ms,
    ])?;
    let row_id = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO certificate_states (account_id, region, id, status, generation_id,
             customer_version, updated_at_ms, row_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        scope.account_id,
        scope.region,
        r.id,
        r.status,
        r.generation_id,
        r.customer_version,
        r.updated_at_ms,
        row_id,
    ])?;
    Ok(())
}

/// Sets a device certificate's status inside the caller's transaction (see
/// `CertificateStore::update_certificate_status`): one `UPDATE` decides and applies an
/// allowed change; only when it changes nothing does a read tell a missing certificate,
/// a refused change and a status already set apart. Mitigation stages run this once per
/// certificate, so the common case is that one statement.
pub(super) fn set_certificate_status(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
    status: &str,
    generation_id: &str,
    now_ms: i64,
) -> StoreResult<CertificateOutcome<StatusChange>> {
    let sources = statuses_that_may_become(status);
    if update_status(tx, scope, id, status, generation_id, now_ms, Some(&sources))? {
        return Ok(Ok(StatusChange::Changed));
    }
    let current: Option<String> = tx
        .prepare_cached(
            "SELECT status FROM certificate_states
             WHERE account_id = ?1 AND region = ?2 AND id = ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_row((&scope.account_id, &scope.region, id), |row| row.get(0))
                .optional()
        })
        .map_err(sql_err)?;
    match current {
        None => Ok(Err(CertificateRefusal::NotFound)),
        Some(current) if !status_change_allowed(&current, status) => {
            Ok(Err(CertificateRefusal::State { status: current }))
        }
        Some(current) if current == status => Ok(Ok(StatusChange::Unchanged)),
        // A status the list of sources does not know, which the rules allow.
        Some(_) => {
            update_status(tx, scope, id, status, generation_id, now_ms, None)?;
            Ok(Ok(StatusChange::Changed))
        }
    }
}

/// The status update itself, only from one of `sources` if given; whether it changed
/// the row. One statement text whatever the sources (unused places are bound NULL,
/// which `IN` never matches), so the hot path neither formats nor re-prepares SQL.
fn update_status(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
    status: &str,
    generation_id: &str,
    now_ms: i64,
    sources: Option<&[&str]>,
) -> StoreResult<bool> {
    const SQL: &str = "UPDATE certificate_states SET status = ?4, generation_id = ?5,
             customer_version = customer_version + 1, updated_at_ms = ?6
         WHERE account_id = ?1 AND region = ?2 AND id = ?3
           AND (?7 OR status IN (?8, ?9, ?10, ?11, ?12, ?13))";
    let mut from: [Option<&str>; CERTIFICATE_STATUSES.len()] = [None; CERTIFICATE_STATUSES.len()];
    for (slot, source) in from.iter_mut().zip(sources.unwrap_or(&[])) {
        *slot = Some(source);
    }
    tx.prepare_cached(SQL)
        .and_then(|mut stmt| {
            stmt.execute(params![
                scope.account_id,
                scope.region,
                id,
                status,
                generation_id,
                now_ms,
                sources.is_none(),
                from[0],
                from[1],
                from[2],
                from[3],
                from[4],
                from[5],
            ])
        })
        .map(|n| n == 1)
        .map_err(sql_err)
}

/// Applies a CA certificate update inside the caller's transaction (see
/// `CertificateStore::update_ca_certificate`); `None` if there is no such CA.
pub(super) fn update_ca_certificate_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
    u: &CaCertificateUpdate,
) -> StoreResult<Option<CaCertificateRecord>> {
    let (keep, config) = match &u.registration_config {
        RegistrationConfigChange::Keep => (true, RegistrationConfigRecord::default()),
        RegistrationConfigChange::Replace(c) => (false, c.clone()),
        RegistrationConfigChange::Remove => (false, RegistrationConfigRecord::default()),
    };
    tx.prepare_cached(concat!(
        "UPDATE ca_certificates SET",
        " status = COALESCE(?4, status),",
        " auto_registration_status = COALESCE(?5, auto_registration_status),",
        " role_arn = CASE WHEN ?6 THEN role_arn ELSE ?7 END,",
        " template_body = CASE WHEN ?6 THEN template_body ELSE ?8 END,",
        " template_name = CASE WHEN ?6 THEN template_name ELSE ?9 END,",
        " generation_id = ?10, customer_version = customer_version + 1,",
        " updated_at_ms = ?11",
        " WHERE account_id = ?1 AND region = ?2 AND id = ?3 RETURNING ",
        ca_columns!()
    ))
    .and_then(|mut stmt| {
        stmt.query_row(
            params![
                scope.account_id,
                scope.region,
                id,
                u.status,
                u.auto_registration_status,
                keep,
                config.role_arn,
                config.template_body,
                config.template_name,
                u.generation_id,
                u.updated_at_ms,
            ],
            ca_certificate,
        )
        .optional()
    })
    .map_err(sql_err)
}

/// A CA certificate's status, read inside the caller's transaction.
pub(super) fn ca_certificate_status(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> StoreResult<Option<String>> {
    tx.prepare_cached(
        "SELECT status FROM ca_certificates WHERE account_id = ?1 AND region = ?2 AND id = ?3",
    )
    .and_then(|mut stmt| {
        stmt.query_row((&scope.account_id, &scope.region, id), |row| row.get(0))
            .optional()
    })
    .map_err(sql_err)
}

/// Names of the things the certificate is attached to, after `after` (see
/// `PrincipalStore::list_principal_things`), on any connection or transaction.
pub(super) fn principal_things(
    conn: &Connection,
    scope: &Scope,
    certificate_id: &str,
    after: &str,
    limit: usize,
) -> StoreResult<Vec<String>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT thing_name FROM thing_principals
             WHERE account_id = ?1 AND region = ?2 AND certificate_id = ?3
               AND thing_name > ?4 ORDER BY thing_name LIMIT ?5",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(
            (
                &scope.account_id,
                &scope.region,
                certificate_id,
                after,
                sql_limit(limit),
            ),
            |row| row.get(0),
        )
        .map_err(sql_err)?;
    rows.collect::<Result<_, _>>().map_err(sql_err)
}

#[async_trait]
impl CertificateStore for SqliteStore {
    async fn get_registration_code(&self, scope: &Scope) -> StoreResult<Option<String>> {
        let scope = scope.clone();
        self.read_conn(move |conn| {
            conn.prepare_cached(
                "SELECT code FROM registration_codes WHERE account_id = ?1 AND region = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region), |r| r.get(0))
                    .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn registration_code(&self, scope: &Scope, candidate: &str) -> StoreResult<String> {
        if let Some(code) = self.get_registration_code(scope).await? {
            return Ok(code);
        }
        let (scope, candidate) = (scope.clone(), candidate.to_owned());
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "INSERT INTO registration_codes (account_id, region, code, created_at_ms)
                 VALUES (?1, ?2, ?3, 0) ON CONFLICT (account_id, region) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, &candidate)))
            .map_err(sql_err)?;
            tx.prepare_cached(
                "SELECT code FROM registration_codes WHERE account_id = ?1 AND region = ?2",
            )
            .and_then(|mut stmt| stmt.query_row((&scope.account_id, &scope.region), |r| r.get(0)))
            .map_err(sql_err)
        })
        .await
    }

    async fn get_issuing_ca(&self, scope: &Scope) -> StoreResult<Option<IssuingCaRecord>> {
        let scope = scope.clone();
        self.read_conn(move |conn| {
            conn.prepare_cached(
                "SELECT id, certificate_pem, private_key_pem, created_at_ms FROM issuing_cas
                 WHERE account_id = ?1 AND region = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region), issuing_ca)
                    .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn put_issuing_ca(
        &self,
        scope: &Scope,
        candidate: &IssuingCaRecord,
    ) -> StoreResult<IssuingCaRecord> {
        let (scope, ca) = (scope.clone(), candidate.clone());
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "INSERT INTO issuing_cas
                     (account_id, region, id, certificate_pem, private_key_pem, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (account_id, region) DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute((
                    &scope.account_id,
                    &scope.region,
                    &ca.id,
                    &ca.certificate_pem,
                    &ca.private_key_pem,
                    ca.created_at_ms,
                ))
            })
            .map_err(sql_err)?;
            tx.prepare_cached(
                "SELECT id, certificate_pem, private_key_pem, created_at_ms FROM issuing_cas
                 WHERE account_id = ?1 AND region = ?2",
            )
            .and_then(|mut stmt| stmt.query_row((&scope.account_id, &scope.region), issuing_ca))
            .map_err(sql_err)
        })
        .await
    }

    async fn register_ca_certificate(
        &self,
        scope: &Scope,
        record: &CaCertificateRecord,
        tags: &[Tag],
        max_same_subject: usize,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, r, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write_tx(move |tx| {
            let key = (&scope.account_id, &scope.region, &r.id);
            if exists(
                tx,
                "SELECT 1 FROM ca_certificates WHERE account_id = ?1 AND region = ?2 AND id = ?3",
                &[key.0, key.1, key.2],
            )? {
                return Err(crate::StoreError::AlreadyExists);
            }
            let same_subject: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM ca_certificates
                     WHERE account_id = ?1 AND region = ?2 AND subject_der = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(
                        (&scope.account_id, &scope.region, &r.facts.subject_der),
                        |row| row.get(0),
                    )
                })
                .map_err(sql_err)?;
            if usize::try_from(same_subject).unwrap_or(usize::MAX) >= max_same_subject {
                return Ok(Err(CertificateRefusal::TooManyWithSubject {
                    limit: max_same_subject,
                }));
            }
            let f = &r.facts;
            tx.prepare_cached(concat!(
                "INSERT INTO ca_certificates (account_id, region, ",
                ca_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,",
                " ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    scope.account_id,
                    scope.region,
                    r.id,
                    r.arn,
                    r.pem,
                    r.status,
                    r.certificate_mode,
                    r.auto_registration_status,
                    r.registration_config.role_arn,
                    r.registration_config.template_body,
                    r.registration_config.template_name,
                    r.owned_by,
                    r.generation_id,
                    r.customer_version,
                    f.subject,
                    f.issuer,
                    f.subject_der,
                    f.issuer_der,
                    f.serial_number,
                    f.not_before_ms,
                    f.not_after_ms,
                    f.key_algorithm,
                    f.key_bits,
                    f.key_curve,
                    f.public_key_der,
                    join_uris(&f.crl_distribution_points),
                    r.created_at_ms,
                    r.updated_at_ms,
                ])
            })
            .map_err(insert_err)?;
            tags::upsert(tx, &scope, &r.arn, &tags)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn get_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CaCertificateRecord>> {
        let (scope, id) = (scope.clone(), id.to_owned());
        self.read_conn(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                ca_columns!(),
                " FROM ca_certificates WHERE account_id = ?1 AND region = ?2 AND id = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row((&scope.account_id, &scope.region, &id), ca_certificate)
                    .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn find_ca_certificates_by_subject(
        &self,
        scope: &Scope,
        subject_der: &[u8],
    ) -> StoreResult<Vec<CaCertificateRecord>> {
        let (scope, subject) = (scope.clone(), subject_der.to_vec());
        self.read_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    ca_columns!(),
                    " FROM ca_certificates WHERE account_id = ?1 AND region = ?2",
                    " AND subject_der = ?3 ORDER BY created_at_ms, id"
                ))
                .map_err(sql_err)?;
            let rows = stmt
                .query_map((&scope.account_id, &scope.region, &subject), ca_certificate)
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn list_ca_certificates(
        &self,
        scope: &Scope,
        template_name: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CaCertificateRecord>> {
        let query = page_query(
            (
                concat!("SELECT ", ca_columns!(), " FROM ca_certificates t"),
                "t",
            ),
            scope,
            template_name.map(|t| ("template_name", t)),
            after,
            descending,
            limit,
        );
        self.page(query, ca_certificate).await
    }

    async fn update_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
        update: &CaCertificateUpdate,
    ) -> StoreResult<Option<CaCertificateRecord>> {
        let (scope, id, update) = (scope.clone(), id.to_owned(), update.clone());
        self.write_tx(move |tx| update_ca_certificate_in(tx, &scope, &id, &update))
            .await
    }

    async fn delete_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, id) = (scope.clone(), id.to_owned());
        self.write_tx(move |tx| {
            let current: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT status, arn FROM ca_certificates
                     WHERE account_id = ?1 AND region = ?2 AND id = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.query_row((&scope.account_id, &scope.region, &id), |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
                })
                .map_err(sql_err)?;
            let Some((status, arn)) = current else {
                return Ok(Err(CertificateRefusal::NotFound));
            };
            if status != "INACTIVE" {
                return Ok(Err(CertificateRefusal::State { status }));
            }
            tx.prepare_cached(
                "DELETE FROM ca_certificates WHERE account_id = ?1 AND region = ?2 AND id = ?3",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, &id)))
            .map_err(sql_err)?;
            tags::delete_all(tx, &scope, &arn)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn register_certificate(
        &self,
        scope: &Scope,
        record: &CertificateRecord,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, r) = (scope.clone(), record.clone());
        self.write_tx(move |tx| {
            if let Some(ca) = &r.ca_certificate_id {
                if !exists(
                    tx,
                    "SELECT 1 FROM ca_certificates WHERE account_id = ?1 AND region = ?2 AND id = ?3",
                    &[&scope.account_id, &scope.region, ca],
                )? {
                    return Ok(Err(CertificateRefusal::CaNotFound));
                }
            }
            insert_certificate(tx, &scope, &r).map_err(insert_err)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn get_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CertificateRecord>> {
        let (scope, id) = (scope.clone(), id.to_owned());
        self.read_conn(move |conn| {
            conn.prepare_cached(cert_by_id!())
                .and_then(|mut stmt| {
                    stmt.query_row((&scope.account_id, &scope.region, &id), certificate)
                        .optional()
                })
                .map_err(sql_err)
        })
        .await
    }

    async fn list_certificates(
        &self,
        scope: &Scope,
        ca_certificate_id: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CertificateRecord>> {
        let query = page_query(
            (
                concat!(
                    "SELECT ",
                    cert_columns!(),
                    " FROM certificates c JOIN certificate_states s \
                     ON s.account_id = c.account_id AND s.region = c.region AND s.id = c.id"
                ),
                "c",
            ),
            scope,
            ca_certificate_id.map(|ca| ("ca_certificate_id", ca)),
            after,
            descending,
            limit,
        );
        self.page(query, certificate).await
    }

    fn certificates_in_use<'a>(
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

    async fn update_certificate_status(
        &self,
        scope: &Scope,
        id: &str,
        status: &str,
        generation_id: &str,
        now_ms: i64,
    ) -> StoreResult<CertificateOutcome<CertificateRecord>> {
        let (scope, id, status, generation_id) = (
            scope.clone(),
            id.to_owned(),
            status.to_owned(),
            generation_id.to_owned(),
        );
        self.write_tx(move |tx| {
            if let Err(refusal) =
                set_certificate_status(tx, &scope, &id, &status, &generation_id, now_ms)?
            {
                return Ok(Err(refusal));
            }
            certificate_in(tx, &scope, &id)?
                .map(Ok)
                .ok_or_else(|| StoreError::Internal(format!("certificate {id} vanished")))
        })
        .await
    }

    async fn delete_certificate(
        &self,
        scope: &Scope,
        id: &str,
        detach_policies: bool,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, id) = (scope.clone(), id.to_owned());
        self.write_tx(move |tx| {
            let Some(current) = certificate_in(tx, &scope, &id)? else {
                return Ok(Err(CertificateRefusal::NotFound));
            };
            if !DELETABLE_STATUSES.contains(&current.status.as_str()) {
                return Ok(Err(CertificateRefusal::State {
                    status: current.status,
                }));
            }
            if exists(
                tx,
                "SELECT 1 FROM thing_principals
                 WHERE account_id = ?1 AND region = ?2 AND certificate_id = ?3",
                &[&scope.account_id, &scope.region, &id],
            )? {
                return Ok(Err(CertificateRefusal::AttachedToThings));
            }
            let target = (&scope.account_id, &scope.region, &current.arn);
            if exists(
                tx,
                "SELECT 1 FROM policy_attachments
                 WHERE account_id = ?1 AND region = ?2 AND target = ?3",
                &[target.0, target.1, target.2],
            )? {
                if !detach_policies {
                    return Ok(Err(CertificateRefusal::AttachedToPolicies));
                }
                tx.prepare_cached(
                    "DELETE FROM policy_attachments
                     WHERE account_id = ?1 AND region = ?2 AND target = ?3",
                )
                .and_then(|mut stmt| stmt.execute(target))
                .map_err(sql_err)?;
            }
            // The row through its state, then the state (which thing_principals' key
            // points at).
            tx.prepare_cached(
                "DELETE FROM certificates WHERE row_id = (SELECT row_id FROM certificate_states
                     WHERE account_id = ?1 AND region = ?2 AND id = ?3)",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, &id)))
            .map_err(sql_err)?;
            tx.prepare_cached(
                "DELETE FROM certificate_states WHERE account_id = ?1 AND region = ?2 AND id = ?3",
            )
            .and_then(|mut stmt| stmt.execute((&scope.account_id, &scope.region, &id)))
            .map_err(sql_err)?;
            Ok(Ok(()))
        })
        .await
    }
}

#[async_trait]
impl PrincipalStore for SqliteStore {
    async fn attach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
        exclusive: bool,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>> {
        let (scope, thing, cert) = (
            scope.clone(),
            thing_name.to_owned(),
            certificate_id.to_owned(),
        );
        self.write_tx(move |tx| {
            let (a, r) = (&scope.account_id, &scope.region);
            if !exists(
                tx,
                "SELECT 1 FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                &[a, r, &thing],
            )? {
                return Ok(Err(PrincipalRefusal::ThingNotFound));
            }
            if !exists(
                tx,
                "SELECT 1 FROM certificate_states WHERE account_id = ?1 AND region = ?2 AND id = ?3",
                &[a, r, &cert],
            )? {
                return Ok(Err(PrincipalRefusal::CertificateNotFound));
            }
            let others: Vec<(String, bool)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT thing_name, exclusive FROM thing_principals
                         WHERE account_id = ?1 AND region = ?2 AND certificate_id = ?3
                           AND thing_name <> ?4 ORDER BY thing_name",
                    )
                    .map_err(sql_err)?;
                let rows = stmt
                    .query_map((a, r, &cert, &thing), |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(sql_err)?;
                rows.collect::<Result<_, _>>().map_err(sql_err)?
            };
            if let Some(conflict) = exclusive_conflict(&others, exclusive) {
                return Ok(Err(conflict));
            }
            tx.prepare_cached(
                "INSERT INTO thing_principals
                     (account_id, region, thing_name, certificate_id, exclusive, attached_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account_id, region, thing_name, certificate_id)
                 DO UPDATE SET exclusive = excluded.exclusive",
            )
            .and_then(|mut stmt| stmt.execute((a, r, &thing, &cert, exclusive, now_ms)))
            .map_err(sql_err)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn detach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
    ) -> StoreResult<PrincipalOutcome<bool>> {
        let (scope, thing, cert) = (
            scope.clone(),
            thing_name.to_owned(),
            certificate_id.to_owned(),
        );
        self.write_tx(move |tx| {
            let (a, r) = (&scope.account_id, &scope.region);
            if !exists(
                tx,
                "SELECT 1 FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                &[a, r, &thing],
            )? {
                return Ok(Err(PrincipalRefusal::ThingNotFound));
            }
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM thing_principals WHERE account_id = ?1 AND region = ?2
                       AND thing_name = ?3 AND certificate_id = ?4",
                )
                .and_then(|mut stmt| stmt.execute((a, r, &thing, &cert)))
                .map_err(sql_err)?;
            Ok(Ok(deleted > 0))
        })
        .await
    }

    async fn list_thing_principals(
        &self,
        scope: &Scope,
        thing_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        let (scope, thing, after) = (
            scope.clone(),
            thing_name.to_owned(),
            after.unwrap_or("").to_owned(),
        );
        self.read_conn(move |conn| {
            let found = conn
                .prepare_cached(
                    "SELECT 1 FROM things WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                )
                .and_then(|mut stmt| stmt.exists((&scope.account_id, &scope.region, &thing)))
                .map_err(sql_err)?;
            if !found {
                return Ok(None);
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT certificate_id FROM thing_principals
                     WHERE account_id = ?1 AND region = ?2 AND thing_name = ?3
                       AND certificate_id > ?4 ORDER BY certificate_id LIMIT ?5",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &thing,
                        &after,
                        sql_limit(limit),
                    ),
                    |row| row.get(0),
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map(Some).map_err(sql_err)
        })
        .await
    }

    async fn list_principal_things(
        &self,
        scope: &Scope,
        certificate_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let (scope, cert, after) = (
            scope.clone(),
            certificate_id.to_owned(),
            after.unwrap_or("").to_owned(),
        );
        self.read_conn(move |conn| principal_things(conn, &scope, &cert, &after, limit))
            .await
    }

    async fn attach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target: &PolicyTarget,
        max_per_target: usize,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>> {
        let (scope, policy, target) = (scope.clone(), policy_name.to_owned(), target.clone());
        self.write_tx(move |tx| {
            let (a, r) = (&scope.account_id, &scope.region);
            if !exists(
                tx,
                "SELECT 1 FROM policies WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                &[a, r, &policy],
            )? {
                return Ok(Err(PrincipalRefusal::PolicyNotFound));
            }
            match &target {
                PolicyTarget::Certificate { id, .. } => {
                    if !exists(
                        tx,
                        "SELECT 1 FROM certificate_states WHERE account_id = ?1 AND region = ?2 AND id = ?3",
                        &[a, r, id],
                    )? {
                        return Ok(Err(PrincipalRefusal::CertificateNotFound));
                    }
                }
                PolicyTarget::ThingGroup { name, .. } => {
                    if !exists(
                        tx,
                        "SELECT 1 FROM thing_groups WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                        &[a, r, name],
                    )? {
                        return Ok(Err(PrincipalRefusal::GroupNotFound));
                    }
                }
            }
            let arn = target.arn();
            let others: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM policy_attachments
                     WHERE account_id = ?1 AND region = ?2 AND target = ?3 AND policy_name <> ?4",
                )
                .and_then(|mut stmt| stmt.query_row((a, r, arn, &policy), |row| row.get(0)))
                .map_err(sql_err)?;
            if usize::try_from(others).unwrap_or(usize::MAX) >= max_per_target {
                return Ok(Err(PrincipalRefusal::TooManyPolicies {
                    limit: max_per_target,
                }));
            }
            tx.prepare_cached(
                "INSERT INTO policy_attachments
                     (account_id, region, policy_name, target, attached_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id, region, policy_name, target) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute((a, r, &policy, arn, now_ms)))
            .map_err(sql_err)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn detach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target_arn: &str,
    ) -> StoreResult<bool> {
        let (scope, policy, target) =
            (scope.clone(), policy_name.to_owned(), target_arn.to_owned());
        self.write_tx(move |tx| {
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM policy_attachments
                     WHERE account_id = ?1 AND region = ?2 AND policy_name = ?3 AND target = ?4",
                )
                .and_then(|mut stmt| {
                    stmt.execute((&scope.account_id, &scope.region, &policy, &target))
                })
                .map_err(sql_err)?;
            Ok(deleted > 0)
        })
        .await
    }

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
        let mut args = scope_params(scope);
        let mut marks = Vec::with_capacity(target_arns.len());
        for arn in target_arns {
            args.push(Value::Text(arn.clone()));
            marks.push(format!("?{}", args.len()));
        }
        args.push(Value::Text(after.unwrap_or("").to_owned()));
        let after_at = args.len();
        args.push(Value::Integer(sql_limit(limit)));
        let sql = format!(
            "SELECT DISTINCT a.policy_name, p.arn FROM policy_attachments a
             JOIN policies p ON p.account_id = a.account_id AND p.region = a.region
                 AND p.name = a.policy_name
             WHERE a.account_id = ?1 AND a.region = ?2 AND a.target IN ({})
               AND a.policy_name > ?{after_at}
             ORDER BY a.policy_name LIMIT ?{}",
            marks.join(", "),
            args.len()
        );
        self.read_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(params_from_iter(args), |row| {
                    Ok(PolicyRef {
                        name: row.get(0)?,
                        arn: row.get(1)?,
                    })
                })
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn list_targets_for_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        let (scope, policy, after) = (
            scope.clone(),
            policy_name.to_owned(),
            after.unwrap_or("").to_owned(),
        );
        self.read_conn(move |conn| {
            let found = conn
                .prepare_cached(
                    "SELECT 1 FROM policies WHERE account_id = ?1 AND region = ?2 AND name = ?3",
                )
                .and_then(|mut stmt| stmt.exists((&scope.account_id, &scope.region, &policy)))
                .map_err(sql_err)?;
            if !found {
                return Ok(None);
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT target FROM policy_attachments
                     WHERE account_id = ?1 AND region = ?2 AND policy_name = ?3 AND target > ?4
                     ORDER BY target LIMIT ?5",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(
                    (
                        &scope.account_id,
                        &scope.region,
                        &policy,
                        &after,
                        sql_limit(limit),
                    ),
                    |row| row.get(0),
                )
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map(Some).map_err(sql_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
