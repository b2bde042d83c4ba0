//! Device certificates on both engines.
//!
//! On SQLite a device certificate's changing state (status, generation id, version,
//! update time) lives in `certificate_states`, a narrow `WITHOUT ROWID` table keyed by
//! id that also holds the id key for every lookup; the wide row with the PEM sits in
//! `certificates`, reached through the state's `row_id` (migration 0011: a mitigation
//! stage's deactivations of neighbouring ids then dirty a few state pages, not a page
//! per certificate). PostgreSQL keeps one table. So the statements that read or write a
//! certificate's state are written per engine; the flow around them once.

use std::collections::{HashMap, HashSet};

use super::{
    certificate, facts_params, found, join_uris, page, statuses_that_may_become,
    unapplied_status_change, StatusChange, CERTIFICATE_STATUSES,
};
use crate::db::{corrupt, joined, Db, DbResult, Dialect, Param, Sql};
use crate::{
    CertificateKey, CertificateOutcome, CertificateRecord, CertificateRefusal, Scope,
    DELETABLE_STATUSES,
};

/// A device certificate by id (`$1` to `$3`): PostgreSQL reads its row, with the lock
/// given; SQLite its state, which holds the id key, and the row the state names.
macro_rules! certificate_by_id {
    ($lock:literal) => {
        Sql::per_dialect(
            concat!(
                "SELECT ",
                certificate_columns!(),
                " FROM certificates c WHERE c.account_id = $1 AND c.region = $2 AND c.id = $3",
                $lock
            ),
            concat!(
                "SELECT ",
                certificate_columns!(),
                " FROM certificate_states s JOIN certificates c ON c.row_id = s.row_id",
                " WHERE s.account_id = ?1 AND s.region = ?2 AND s.id = ?3"
            ),
        )
    };
}

/// Whether a device certificate exists (`$1` to `$3`), holding its row on PostgreSQL
/// with the lock given; SQLite looks up its state.
macro_rules! certificate_exists {
    ($lock:literal) => {
        Sql::per_dialect(
            concat!(
                "SELECT 1 FROM certificates WHERE account_id = $1 AND region = $2 AND id = $3",
                $lock
            ),
            "SELECT 1 FROM certificate_states WHERE account_id = ?1 AND region = ?2 AND id = ?3",
        )
    };
}

const CERTIFICATE: &Sql<'static> = &certificate_by_id!("");
/// Row-locked for the rest of the transaction on PostgreSQL.
const LOCK_CERTIFICATE: &Sql<'static> = &certificate_by_id!(" FOR UPDATE");

/// Attaching to a thing: one attachment of a certificate at a time decides exclusivity.
pub(super) const CERTIFICATE_FOR_NO_KEY_UPDATE: &Sql<'static> =
    &certificate_exists!(" FOR NO KEY UPDATE");
/// Attaching a policy: the certificate cannot be deleted until commit.
pub(super) const CERTIFICATE_FOR_KEY_SHARE: &Sql<'static> = &certificate_exists!(" FOR KEY SHARE");

/// A listing's `SELECT ... FROM`: on SQLite each row, walked in creation order, joins its
/// state by id.
const LISTED: Sql<'static> = Sql::per_dialect(
    concat!("SELECT ", certificate_columns!(), " FROM certificates c"),
    concat!(
        "SELECT ",
        certificate_columns!(),
        " FROM certificates c JOIN certificate_states s",
        " ON s.account_id = c.account_id AND s.region = c.region AND s.id = c.id"
    ),
);

/// A device certificate's own columns, without its state.
macro_rules! certificate_row_columns {
    () => {
        concat!(
            "account_id, region, id, arn, pem, certificate_mode, ca_certificate_id, \
             issuer_certificate_id, owned_by, previous_owned_by, ",
            facts_columns!(),
            ", created_at_ms"
        )
    };
}

/// Adds a device certificate: PostgreSQL's whole row (the row's [`row_params`], then
/// the state's last four [`state_params`]); SQLite's state (the [`state_params`]),
/// naming the row [`INSERT_ROW`] has just added.
const INSERT_CERTIFICATE: &Sql<'static> = &Sql::per_dialect(
    concat!(
        "INSERT INTO certificates (",
        certificate_row_columns!(),
        ", status, generation_id, customer_version, updated_at_ms)",
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,",
        " $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
    ),
    "INSERT INTO certificate_states (account_id, region, id, status, generation_id, \
     customer_version, updated_at_ms, row_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, last_insert_rowid())",
);

/// SQLite only: a device certificate's row ([`row_params`]), before its state.
const INSERT_ROW: &Sql<'static> = sql!(
    "INSERT INTO certificates (",
    certificate_row_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,",
    " $17, $18, $19, $20, $21, $22, $23)"
);

/// The parameters of [`INSERT_ROW`]; `crl` is the joined distribution points.
fn row_params<'a>(
    scope: &'a Scope,
    r: &'a CertificateRecord,
    crl: &'a Option<String>,
) -> [&'a dyn Param; 23] {
    joined([&scope.account_id, &scope.region], row_values(r, crl))
}

/// [`row_params`] after the scope's two keys.
fn row_values<'a>(r: &'a CertificateRecord, crl: &'a Option<String>) -> [&'a dyn Param; 21] {
    let own: [&dyn Param; 8] = [
        &r.id,
        &r.arn,
        &r.pem,
        &r.certificate_mode,
        &r.ca_certificate_id,
        &r.issuer_certificate_id,
        &r.owned_by,
        &r.previous_owned_by,
    ];
    let described: [&dyn Param; 20] = joined(own, facts_params(&r.facts, crl));
    joined(described, [&r.created_at_ms])
}

/// The parameters of SQLite's [`INSERT_CERTIFICATE`]: the key, then the state.
fn state_params<'a>(scope: &'a Scope, r: &'a CertificateRecord) -> [&'a dyn Param; 7] {
    [
        &scope.account_id,
        &scope.region,
        &r.id,
        &r.status,
        &r.generation_id,
        &r.customer_version,
        &r.updated_at_ms,
    ]
}

/// SQLite only: a certificate's row, through its state (`$1` to `$3`).
const DELETE_ROW: &Sql<'static> = sql!(
    "DELETE FROM certificates WHERE row_id = (SELECT row_id FROM certificate_states",
    " WHERE account_id = $1 AND region = $2 AND id = $3)"
);

/// Deletes a certificate: PostgreSQL's row; SQLite's state, after [`DELETE_ROW`] (the
/// state is what thing_principals' key points at).
const DELETE_CERTIFICATE: &Sql<'static> = &Sql::per_dialect(
    "DELETE FROM certificates WHERE account_id = $1 AND region = $2 AND id = $3",
    "DELETE FROM certificate_states WHERE account_id = ?1 AND region = ?2 AND id = ?3",
);

/// SQLite: one certificate's state update (`$1` to `$6`), only from one of the statuses
/// `$8` to `$13` unless `$7`. One statement text whatever the sources (unused places are
/// bound NULL, which `IN` never matches; see [`source_slots`]), so the hot path of a
/// mitigation stage neither formats nor re-prepares SQL.
pub(crate) const UPDATE_STATE: &Sql<'static> = sql!(
    "UPDATE certificate_states SET status = $4, generation_id = $5,",
    " customer_version = customer_version + 1, updated_at_ms = $6",
    " WHERE account_id = $1 AND region = $2 AND id = $3",
    " AND ($7 OR status IN ($8, $9, $10, $11, $12, $13))"
);

/// SQLite: a certificate's status (`$1` to `$3`).
pub(crate) const STATE_STATUS: &Sql<'static> =
    sql!("SELECT status FROM certificate_states WHERE account_id = $1 AND region = $2 AND id = $3");

/// PostgreSQL: every request's update at once (ids `$5`, each with its generation id in
/// `$6`), only from one of the statuses `$7` unless that is empty; the ids it changed.
const UPDATE_STATUSES: &str = "UPDATE certificates AS c SET status = $3,
         generation_id = u.generation_id, customer_version = c.customer_version + 1,
         updated_at_ms = $4
     FROM UNNEST($5::text[], $6::text[]) AS u (id, generation_id)
     WHERE c.account_id = $1 AND c.region = $2 AND c.id = u.id
       AND (cardinality($7::text[]) = 0 OR c.status = ANY($7::text[]))
     RETURNING c.id";

/// PostgreSQL: the statuses of the certificates `$3`, row-locked for the rest of the
/// transaction.
const LOCK_STATUSES: &str = "SELECT id, status FROM certificates
     WHERE account_id = $1 AND region = $2 AND id = ANY($3::text[])
     ORDER BY id FOR UPDATE";

/// The statuses a change may come from as [`UPDATE_STATE`] binds them (`$8` to `$13`).
pub(crate) fn source_slots<'a>(sources: Option<&[&'a str]>) -> [Option<&'a str>; 6] {
    let mut slots = [None; CERTIFICATE_STATUSES.len()];
    for (slot, source) in slots.iter_mut().zip(sources.unwrap_or(&[])) {
        *slot = Some(*source);
    }
    slots
}

pub(super) async fn get(
    db: &Db<'_>,
    scope: &Scope,
    id: &str,
    lock: bool,
) -> DbResult<Option<CertificateRecord>> {
    let sql = if lock { LOCK_CERTIFICATE } else { CERTIFICATE };
    db.query_opt(sql, &[&scope.account_id, &scope.region, &id], certificate)
        .await
}

pub(super) async fn list(
    db: &Db<'_>,
    scope: &Scope,
    ca_certificate_id: Option<&str>,
    after: Option<&CertificateKey>,
    descending: bool,
    limit: usize,
) -> DbResult<Vec<CertificateRecord>> {
    let select = match db.dialect() {
        Dialect::Postgres => LISTED.pg,
        Dialect::Sqlite => LISTED.lite,
    };
    let filter = ca_certificate_id.map(|ca| ("ca_certificate_id", ca));
    page(select, scope, filter, after, descending, limit)
        .query(db, certificate)
        .await
}

pub(super) async fn register(
    db: &Db<'_>,
    scope: &Scope,
    record: &CertificateRecord,
) -> DbResult<CertificateOutcome<()>> {
    if let Some(ca) = &record.ca_certificate_id {
        // Held until commit, so the CA cannot be deleted under the new row.
        let ca_found = found(
            db,
            sql!(
                "SELECT 1 FROM ca_certificates",
                " WHERE account_id = $1 AND region = $2 AND id = $3 FOR KEY SHARE"
            ),
            &[&scope.account_id, &scope.region, ca],
        )
        .await?;
        if !ca_found {
            return Ok(Err(CertificateRefusal::CaNotFound));
        }
    }
    insert_certificate(db, scope, record).await?;
    Ok(Ok(()))
}

/// Adds a device certificate inside the caller's transaction. A certificate id already
/// in the scope fails on the key (SQLite's is the state's) as `AlreadyExists`.
pub(crate) async fn insert_certificate(
    db: &Db<'_>,
    scope: &Scope,
    record: &CertificateRecord,
) -> DbResult<()> {
    let crl = join_uris(&record.facts.crl_distribution_points);
    let row = row_params(scope, record, &crl);
    let state = state_params(scope, record);
    if db.dialect() == Dialect::Sqlite {
        db.execute(INSERT_ROW, &row).await?;
        return db.insert(INSERT_CERTIFICATE, &state).await.map(drop);
    }
    let all: Vec<&dyn Param> = row.iter().chain(&state[3..]).copied().collect();
    db.insert(INSERT_CERTIFICATE, &all).await.map(drop)
}

/// Adds device certificates inside the caller's transaction (an import's): SQLite's
/// rows and states one certificate at a time, PostgreSQL's rows many to a statement.
pub(crate) async fn insert_certificates(
    db: &Db<'_>,
    scope: &Scope,
    records: &[&CertificateRecord],
) -> DbResult<()> {
    if db.dialect() == Dialect::Sqlite {
        for record in records {
            insert_certificate(db, scope, record).await?;
        }
        return Ok(());
    }
    let crls: Vec<Option<String>> = records
        .iter()
        .map(|r| join_uris(&r.facts.crl_distribution_points))
        .collect();
    let rows: Vec<(&CertificateRecord, &Option<String>)> =
        records.iter().copied().zip(&crls).collect();
    db.insert_rows(
        concat!(
            "certificates (",
            certificate_row_columns!(),
            ", status, generation_id, customer_version, updated_at_ms)"
        ),
        scope,
        &rows,
        |(r, crl)| {
            let row = row_values(r, crl);
            let state: [&dyn Param; 4] = [
                &r.status,
                &r.generation_id,
                &r.customer_version,
                &r.updated_at_ms,
            ];
            joined::<21, 4, 25>(row, state)
        },
    )
    .await
}

pub(super) async fn update_status(
    db: &Db<'_>,
    scope: &Scope,
    id: &str,
    status: &str,
    generation_id: String,
    now_ms: i64,
) -> DbResult<CertificateOutcome<CertificateRecord>> {
    let change = set_certificate_statuses(db, scope, &[(id, generation_id)], status, now_ms)
        .await?
        .pop()
        .unwrap_or(Err(CertificateRefusal::NotFound));
    if let Err(refusal) = change {
        return Ok(Err(refusal));
    }
    // Already locked by the change (or by the read that found none needed).
    match get(db, scope, id, true).await? {
        Some(record) => Ok(Ok(record)),
        None => Err(corrupt(format!("certificate {id} vanished"))),
    }
}

pub(super) async fn delete(
    db: &Db<'_>,
    scope: &Scope,
    id: &str,
    detach_policies: bool,
) -> DbResult<CertificateOutcome<()>> {
    // Waits for attachments in flight (they hold the row), so the checks below see them.
    let Some(current) = get(db, scope, id, true).await? else {
        return Ok(Err(CertificateRefusal::NotFound));
    };
    if !DELETABLE_STATUSES.contains(&current.status.as_str()) {
        return Ok(Err(CertificateRefusal::State {
            status: current.status,
        }));
    }
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &id];
    let things = sql!(
        "SELECT 1 FROM thing_principals",
        " WHERE account_id = $1 AND region = $2 AND certificate_id = $3 LIMIT 1"
    );
    if found(db, things, &key).await? {
        return Ok(Err(CertificateRefusal::AttachedToThings));
    }
    let target: [&dyn Param; 3] = [&scope.account_id, &scope.region, &current.arn];
    let policies = sql!(
        "SELECT 1 FROM policy_attachments",
        " WHERE account_id = $1 AND region = $2 AND target = $3 LIMIT 1"
    );
    if found(db, policies, &target).await? {
        if !detach_policies {
            return Ok(Err(CertificateRefusal::AttachedToPolicies));
        }
        db.execute(
            sql!(
                "DELETE FROM policy_attachments",
                " WHERE account_id = $1 AND region = $2 AND target = $3"
            ),
            &target,
        )
        .await?;
    }
    if db.dialect() == Dialect::Sqlite {
        db.execute(DELETE_ROW, &key).await?;
    }
    db.execute(DELETE_CERTIFICATE, &key).await?;
    Ok(Ok(()))
}

/// Sets device certificates' statuses inside the caller's transaction (see
/// `CertificateStore::update_certificate_status`), one outcome per request in request
/// order; each request is a certificate id and the generation id it gets if changed.
///
/// One conditional `UPDATE` decides and applies every allowed change (on PostgreSQL one
/// statement for all, whose row locks make it atomic against other writers; on SQLite
/// one per certificate); only the requests it did not change are read (`FOR UPDATE` on
/// PostgreSQL) to tell a missing certificate, a refused change and a status already set
/// apart. A mitigation stage sends all its certificates at once, so the common case is
/// one round trip for the whole stage. A certificate requested twice changes once; the
/// second request finds the status already set.
pub(crate) async fn set_certificate_statuses(
    db: &Db<'_>,
    scope: &Scope,
    requests: &[(&str, String)],
    status: &str,
    now_ms: i64,
) -> DbResult<Vec<CertificateOutcome<StatusChange>>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let sources = statuses_that_may_become(status);
    let mut changed = update_statuses(db, scope, requests, status, now_ms, Some(&sources)).await?;
    let mut outcomes: Vec<Option<CertificateOutcome<StatusChange>>> = requests
        .iter()
        .map(|(id, _)| changed.remove(*id).then_some(Ok(StatusChange::Changed)))
        .collect();
    let left: Vec<&str> = requests
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .map(|((id, _), _)| *id)
        .collect();
    if !left.is_empty() {
        let mut current = current_statuses(db, scope, &left).await?;
        for ((id, generation_id), outcome) in requests.iter().zip(outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            let now = current.get(*id).map(String::as_str);
            *outcome = Some(match unapplied_status_change(now, status) {
                Some(decided) => decided,
                // Changed by someone else between the update and the lock, to a status
                // that may still move (or one the list of sources does not know).
                None => {
                    let request = [(*id, generation_id.clone())];
                    update_statuses(db, scope, &request, status, now_ms, None).await?;
                    current.insert((*id).to_owned(), status.to_owned());
                    Ok(StatusChange::Changed)
                }
            });
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Err(CertificateRefusal::NotFound)))
        .collect())
}

/// The status update itself, only from one of `sources` if given; the ids it changed.
async fn update_statuses(
    db: &Db<'_>,
    scope: &Scope,
    requests: &[(&str, String)],
    status: &str,
    now_ms: i64,
    sources: Option<&[&str]>,
) -> DbResult<HashSet<String>> {
    if db.dialect() == Dialect::Sqlite {
        let (any, from) = (sources.is_none(), source_slots(sources));
        let mut changed = HashSet::new();
        for (id, generation_id) in requests {
            let params: [&dyn Param; 13] = [
                &scope.account_id,
                &scope.region,
                id,
                &status,
                generation_id,
                &now_ms,
                &any,
                &from[0],
                &from[1],
                &from[2],
                &from[3],
                &from[4],
                &from[5],
            ];
            if db.execute(UPDATE_STATE, &params).await? == 1 {
                changed.insert((*id).to_owned());
            }
        }
        return Ok(changed);
    }
    let (ids, generations): (Vec<&str>, Vec<&str>) = requests
        .iter()
        .map(|(id, generation)| (*id, generation.as_str()))
        .unzip();
    let sources = sources.unwrap_or(&[]);
    let changed = db
        .query_pg(
            UPDATE_STATUSES,
            &[
                &scope.account_id,
                &scope.region,
                &status,
                &now_ms,
                &ids,
                &generations,
                &sources,
            ],
            |row| row.get(0),
        )
        .await?;
    Ok(changed.into_iter().collect())
}

/// The statuses of the certificates that exist among `ids`, row-locked on PostgreSQL.
async fn current_statuses(
    db: &Db<'_>,
    scope: &Scope,
    ids: &[&str],
) -> DbResult<HashMap<String, String>> {
    if db.dialect() == Dialect::Sqlite {
        let mut current = HashMap::with_capacity(ids.len());
        for id in ids {
            let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, id];
            if let Some(status) = db.value(STATE_STATUS, &key).await? {
                current.insert((*id).to_owned(), status);
            }
        }
        return Ok(current);
    }
    let found = db
        .query_pg(
            LOCK_STATUSES,
            &[&scope.account_id, &scope.region, &ids],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .await?;
    Ok(found.into_iter().collect())
}
