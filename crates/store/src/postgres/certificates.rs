//! Certificates, CA certificates, thing principals and policy attachments on PostgreSQL.
//!
//! Rules that SQLite gets from its single writer come from locks here:
//! - a certificate's writers row-lock it: status changes and deletion `FOR UPDATE`,
//!   attaching it to a thing `FOR NO KEY UPDATE` (so two attachments of one certificate
//!   decide exclusivity one after the other), attaching a policy to it `FOR KEY SHARE`;
//!   a deletion therefore waits for every attachment in flight and then sees it;
//! - attaching to a thing takes the thing's advisory lock (the one DeleteThing takes),
//!   and attaching a policy to a group holds the group `FOR KEY SHARE` (DeleteThingGroup
//!   holds it `FOR UPDATE`); the policy row is key-share locked by the attachment's
//!   foreign key, which DeletePolicy's `FOR UPDATE` waits for;
//! - the per-subject CA limit and the per-target policy limit are counted under
//!   advisory locks on the subject and the target.
//!
//! Uniqueness (a certificate registered twice) is the primary key's job, as elsewhere.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::error::{insert_err, Fail};
use super::{count_to_usize, sql_limit, tags, things, PostgresStore};
use crate::certificates::{
    exclusive_conflict, join_uris, split_uris, statuses_that_may_become, StatusChange,
};
use crate::{
    status_change_allowed, CaCertificateRecord, CaCertificateUpdate, CertificateFacts,
    CertificateKey, CertificateOutcome, CertificateRecord, CertificateRefusal, CertificateStore,
    IssuingCaRecord, PolicyRef, PolicyTarget, PrincipalOutcome, PrincipalRefusal, PrincipalStore,
    RegistrationConfigChange, RegistrationConfigRecord, Scope, StoreError, StoreResult, Tag,
    DELETABLE_STATUSES,
};

/// First key of the advisory locks on a CA subject (for the per-subject limit) and on
/// a policy target (for the per-target limit); 1 to 3 are taken by actions, tags and
/// things.
const CA_SUBJECT_LOCK_SPACE: i32 = 4;
pub(super) const POLICY_TARGET_LOCK_SPACE: i32 = 5;

macro_rules! facts_columns {
    () => {
        "subject, issuer, subject_der, issuer_der, serial_number, not_before_ms, \
         not_after_ms, key_algorithm, key_bits, key_curve, public_key, crl_distribution_points"
    };
}

fn facts(row: &Row, at: usize) -> Result<CertificateFacts, Fail> {
    Ok(CertificateFacts {
        subject: row.try_get(at)?,
        issuer: row.try_get(at + 1)?,
        subject_der: row.try_get(at + 2)?,
        issuer_der: row.try_get(at + 3)?,
        serial_number: row.try_get(at + 4)?,
        not_before_ms: row.try_get(at + 5)?,
        not_after_ms: row.try_get(at + 6)?,
        key_algorithm: row.try_get(at + 7)?,
        key_bits: row.try_get(at + 8)?,
        key_curve: row.try_get(at + 9)?,
        public_key_der: row.try_get(at + 10)?,
        crl_distribution_points: split_uris(row.try_get(at + 11)?),
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

fn ca_certificate(row: &Row) -> Result<CaCertificateRecord, Fail> {
    Ok(CaCertificateRecord {
        id: row.try_get(0)?,
        arn: row.try_get(1)?,
        pem: row.try_get(2)?,
        status: row.try_get(3)?,
        certificate_mode: row.try_get(4)?,
        auto_registration_status: row.try_get(5)?,
        registration_config: RegistrationConfigRecord {
            role_arn: row.try_get(6)?,
            template_body: row.try_get(7)?,
            template_name: row.try_get(8)?,
        },
        owned_by: row.try_get(9)?,
        generation_id: row.try_get(10)?,
        customer_version: row.try_get(11)?,
        facts: facts(row, 12)?,
        created_at_ms: row.try_get(24)?,
        updated_at_ms: row.try_get(25)?,
    })
}

macro_rules! cert_columns {
    () => {
        concat!(
            "id, arn, pem, status, certificate_mode, ca_certificate_id, issuer_certificate_id, \
             owned_by, previous_owned_by, generation_id, customer_version, ",
            facts_columns!(),
            ", created_at_ms, updated_at_ms"
        )
    };
}

fn certificate(row: &Row) -> Result<CertificateRecord, Fail> {
    Ok(CertificateRecord {
        id: row.try_get(0)?,
        arn: row.try_get(1)?,
        pem: row.try_get(2)?,
        status: row.try_get(3)?,
        certificate_mode: row.try_get(4)?,
        ca_certificate_id: row.try_get(5)?,
        issuer_certificate_id: row.try_get(6)?,
        owned_by: row.try_get(7)?,
        previous_owned_by: row.try_get(8)?,
        generation_id: row.try_get(9)?,
        customer_version: row.try_get(10)?,
        facts: facts(row, 11)?,
        created_at_ms: row.try_get(23)?,
        updated_at_ms: row.try_get(24)?,
    })
}

fn issuing_ca(row: &Row) -> Result<IssuingCaRecord, Fail> {
    Ok(IssuingCaRecord {
        id: row.try_get(0)?,
        certificate_pem: row.try_get(1)?,
        private_key_pem: row.try_get(2)?,
        created_at_ms: row.try_get(3)?,
    })
}

fn all<T>(rows: &[Row], f: fn(&Row) -> Result<T, Fail>) -> Result<Vec<T>, Fail> {
    rows.iter().map(f).collect()
}

/// `WHERE` and `ORDER BY` of a keyset page by `(created_at_ms, id)`; `after` binds to
/// `${at}` and `${at + 1}`.
fn keyset(paged: bool, descending: bool, at: usize) -> String {
    let (cmp, order) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let cond = if paged {
        format!(" AND (created_at_ms, id) {cmp} (${at}, ${})", at + 1)
    } else {
        String::new()
    };
    format!("{cond} ORDER BY created_at_ms {order}, id {order}")
}

impl PostgresStore {
    /// One keyset page of a certificate table in `scope`, optionally filtered on one
    /// column. The SQL takes one of a few shapes, so `prepare_cached` keeps every one.
    #[allow(clippy::too_many_arguments)]
    async fn page<T>(
        &self,
        select: &str,
        scope: &Scope,
        filter: Option<(&str, &str)>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
        map: fn(&Row) -> Result<T, Fail>,
    ) -> StoreResult<Vec<T>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let limit = sql_limit(limit);
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&scope.account_id, &scope.region];
                let mut sql = format!("{select} WHERE account_id = $1 AND region = $2");
                if let Some((column, value)) = &filter {
                    params.push(value);
                    sql.push_str(&format!(" AND {column} = ${}", params.len()));
                }
                sql.push_str(&keyset(after.is_some(), descending, params.len() + 1));
                if let Some((created, id)) = after {
                    params.push(created);
                    params.push(id);
                }
                params.push(&limit);
                sql.push_str(&format!(" LIMIT ${}", params.len()));
                let found = rows(&conn, &sql, &params).await?;
                all(&found, map)
            })
            .await;
        conn.finish(outcome)
    }
}

/// Runs a prepared statement and returns its rows.
async fn rows(
    client: &deadpool_postgres::ClientWrapper,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.query(&stmt, params).await?)
}

async fn tx_rows(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query(&stmt, params).await?)
}

async fn tx_execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Fail> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

async fn advisory_lock(
    tx: &Transaction<'_>,
    space: i32,
    scope: &Scope,
    key: &str,
) -> Result<(), Fail> {
    let key = format!("{}/{}/{key}", scope.account_id, scope.region);
    tx_execute(
        tx,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&space, &key],
    )
    .await?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl CertificateStore for PostgresStore {
    async fn registration_code(&self, scope: &Scope, candidate: &str) -> StoreResult<String> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let a: [&(dyn ToSql + Sync); 3] = [&scope.account_id, &scope.region, &candidate];
                let stmt = conn
                    .prepare_cached(
                        "INSERT INTO registration_codes (account_id, region, code, created_at_ms)
                         VALUES ($1, $2, $3, 0) ON CONFLICT (account_id, region) DO NOTHING",
                    )
                    .await?;
                conn.execute(&stmt, &a).await?;
                let stmt = conn
                    .prepare_cached(
                        "SELECT code FROM registration_codes WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                let row = conn
                    .query_one(&stmt, &[&scope.account_id, &scope.region])
                    .await?;
                Ok(row.try_get(0)?)
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_registration_code(&self, scope: &Scope) -> StoreResult<Option<String>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let found = rows(
                    &conn,
                    "SELECT code FROM registration_codes WHERE account_id = $1 AND region = $2",
                    &[&scope.account_id, &scope.region],
                )
                .await?;
                found.first().map(|r| Ok(r.try_get(0)?)).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_issuing_ca(&self, scope: &Scope) -> StoreResult<Option<IssuingCaRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT id, certificate_pem, private_key_pem, created_at_ms
                         FROM issuing_cas WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region])
                    .await?;
                row.as_ref().map(issuing_ca).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn put_issuing_ca(
        &self,
        scope: &Scope,
        candidate: &IssuingCaRecord,
    ) -> StoreResult<IssuingCaRecord> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // A racing insert waits on the primary key and then does nothing; the
                // select that follows sees whichever committed.
                let stmt = conn
                    .prepare_cached(
                        "INSERT INTO issuing_cas (account_id, region, id, certificate_pem,
                             private_key_pem, created_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (account_id, region) DO NOTHING",
                    )
                    .await?;
                conn.execute(
                    &stmt,
                    &[
                        &scope.account_id,
                        &scope.region,
                        &candidate.id,
                        &candidate.certificate_pem,
                        &candidate.private_key_pem,
                        &candidate.created_at_ms,
                    ],
                )
                .await?;
                let stmt = conn
                    .prepare_cached(
                        "SELECT id, certificate_pem, private_key_pem, created_at_ms
                         FROM issuing_cas WHERE account_id = $1 AND region = $2",
                    )
                    .await?;
                let row = conn
                    .query_one(&stmt, &[&scope.account_id, &scope.region])
                    .await?;
                issuing_ca(&row)
            })
            .await;
        conn.finish(outcome)
    }

    async fn register_ca_certificate(
        &self,
        scope: &Scope,
        record: &CaCertificateRecord,
        tags: &[Tag],
        max_same_subject: usize,
    ) -> StoreResult<CertificateOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let r = record;
                let f = &r.facts;
                advisory_lock(&tx, CA_SUBJECT_LOCK_SPACE, scope, &hex(&f.subject_der)).await?;
                let taken = tx_rows(
                    &tx,
                    "SELECT 1 FROM ca_certificates WHERE account_id = $1 AND region = $2 AND id = $3",
                    &[&scope.account_id, &scope.region, &r.id],
                )
                .await?;
                if !taken.is_empty() {
                    return Err(Fail::Store(StoreError::AlreadyExists));
                }
                let count: i64 = tx_rows(
                    &tx,
                    "SELECT COUNT(*) FROM ca_certificates
                     WHERE account_id = $1 AND region = $2 AND subject_der = $3",
                    &[&scope.account_id, &scope.region, &f.subject_der],
                )
                .await?[0]
                    .try_get(0)?;
                if count_to_usize(count) >= max_same_subject {
                    return Ok(Err(CertificateRefusal::TooManyWithSubject {
                        limit: max_same_subject,
                    }));
                }
                let crl = join_uris(&f.crl_distribution_points);
                tx_execute(
                    &tx,
                    concat!(
                        "INSERT INTO ca_certificates (account_id, region, ",
                        ca_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,",
                        " $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
                    ),
                    &[
                        &scope.account_id,
                        &scope.region,
                        &r.id,
                        &r.arn,
                        &r.pem,
                        &r.status,
                        &r.certificate_mode,
                        &r.auto_registration_status,
                        &r.registration_config.role_arn,
                        &r.registration_config.template_body,
                        &r.registration_config.template_name,
                        &r.owned_by,
                        &r.generation_id,
                        &r.customer_version,
                        &f.subject,
                        &f.issuer,
                        &f.subject_der,
                        &f.issuer_der,
                        &f.serial_number,
                        &f.not_before_ms,
                        &f.not_after_ms,
                        &f.key_algorithm,
                        &f.key_bits,
                        &f.key_curve,
                        &f.public_key_der,
                        &crl,
                        &r.created_at_ms,
                        &r.updated_at_ms,
                    ],
                )
                .await
                .map_err(|e| match e {
                    Fail::Pg(e) => insert_err(e),
                    other => other,
                })?;
                if !tags.is_empty() {
                    tags::lock_resource(&tx, scope, &r.arn).await?;
                    tags::upsert(&tx, scope, &r.arn, tags).await?;
                }
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CaCertificateRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        ca_columns!(),
                        " FROM ca_certificates WHERE account_id = $1 AND region = $2 AND id = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &id])
                    .await?;
                row.as_ref().map(ca_certificate).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn find_ca_certificates_by_subject(
        &self,
        scope: &Scope,
        subject_der: &[u8],
    ) -> StoreResult<Vec<CaCertificateRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        ca_columns!(),
                        " FROM ca_certificates WHERE account_id = $1 AND region = $2",
                        " AND subject_der = $3 ORDER BY created_at_ms, id"
                    ))
                    .await?;
                let found = conn
                    .query(&stmt, &[&scope.account_id, &scope.region, &subject_der])
                    .await?;
                all(&found, ca_certificate)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_ca_certificates(
        &self,
        scope: &Scope,
        template_name: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CaCertificateRecord>> {
        self.page(
            concat!("SELECT ", ca_columns!(), " FROM ca_certificates"),
            scope,
            template_name.map(|t| ("template_name", t)),
            after,
            descending,
            limit,
            ca_certificate,
        )
        .await
    }

    async fn update_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
        update: &CaCertificateUpdate,
    ) -> StoreResult<Option<CaCertificateRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(update_ca_certificate_in(&conn.obj, scope, id, update))
            .await;
        conn.finish(outcome)
    }

    async fn delete_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<CertificateOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let key: [&(dyn ToSql + Sync); 3] = [&scope.account_id, &scope.region, &id];
                let found = tx_rows(
                    &tx,
                    "SELECT status, arn FROM ca_certificates
                     WHERE account_id = $1 AND region = $2 AND id = $3 FOR UPDATE",
                    &key,
                )
                .await?;
                let Some(row) = found.first() else {
                    return Ok(Err(CertificateRefusal::NotFound));
                };
                let (status, arn): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                if status != "INACTIVE" {
                    return Ok(Err(CertificateRefusal::State { status }));
                }
                tx_execute(
                    &tx,
                    "DELETE FROM ca_certificates WHERE account_id = $1 AND region = $2 AND id = $3",
                    &key,
                )
                .await?;
                tags::lock_resource(&tx, scope, &arn).await?;
                tags::delete_all(&tx, scope, &arn).await?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn register_certificate(
        &self,
        scope: &Scope,
        record: &CertificateRecord,
    ) -> StoreResult<CertificateOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let r = record;
                if let Some(ca) = &r.ca_certificate_id {
                    // Held until commit, so the CA cannot be deleted under the new row.
                    let found = tx_rows(
                        &tx,
                        "SELECT 1 FROM ca_certificates
                         WHERE account_id = $1 AND region = $2 AND id = $3 FOR KEY SHARE",
                        &[&scope.account_id, &scope.region, ca],
                    )
                    .await?;
                    if found.is_empty() {
                        return Ok(Err(CertificateRefusal::CaNotFound));
                    }
                }
                let f = &r.facts;
                let crl = join_uris(&f.crl_distribution_points);
                tx_execute(
                    &tx,
                    concat!(
                        "INSERT INTO certificates (account_id, region, ",
                        cert_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,",
                        " $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
                    ),
                    &[
                        &scope.account_id,
                        &scope.region,
                        &r.id,
                        &r.arn,
                        &r.pem,
                        &r.status,
                        &r.certificate_mode,
                        &r.ca_certificate_id,
                        &r.issuer_certificate_id,
                        &r.owned_by,
                        &r.previous_owned_by,
                        &r.generation_id,
                        &r.customer_version,
                        &f.subject,
                        &f.issuer,
                        &f.subject_der,
                        &f.issuer_der,
                        &f.serial_number,
                        &f.not_before_ms,
                        &f.not_after_ms,
                        &f.key_algorithm,
                        &f.key_bits,
                        &f.key_curve,
                        &f.public_key_der,
                        &crl,
                        &r.created_at_ms,
                        &r.updated_at_ms,
                    ],
                )
                .await
                .map_err(|e| match e {
                    Fail::Pg(e) => insert_err(e),
                    other => other,
                })?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CertificateRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        cert_columns!(),
                        " FROM certificates WHERE account_id = $1 AND region = $2 AND id = $3"
                    ))
                    .await?;
                let row = conn
                    .query_opt(&stmt, &[&scope.account_id, &scope.region, &id])
                    .await?;
                row.as_ref().map(certificate).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_certificates(
        &self,
        scope: &Scope,
        ca_certificate_id: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CertificateRecord>> {
        self.page(
            concat!("SELECT ", cert_columns!(), " FROM certificates"),
            scope,
            ca_certificate_id.map(|ca| ("ca_certificate_id", ca)),
            after,
            descending,
            limit,
            certificate,
        )
        .await
    }

    async fn update_certificate_status(
        &self,
        scope: &Scope,
        id: &str,
        status: &str,
        generation_id: &str,
        now_ms: i64,
    ) -> StoreResult<CertificateOutcome<CertificateRecord>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let change = set_certificate_statuses(
                    &tx,
                    scope,
                    &[(id, generation_id.to_owned())],
                    status,
                    now_ms,
                )
                .await?
                .pop()
                .unwrap_or(Err(CertificateRefusal::NotFound));
                if let Err(refusal) = change {
                    return Ok(Err(refusal));
                }
                // Already locked by the change (or by the read that found none needed).
                let Some(record) = lock_certificate(&tx, scope, id).await? else {
                    return Err(StoreError::Internal(format!("certificate {id} vanished")).into());
                };
                tx.commit().await?;
                Ok(Ok(record))
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_certificate(
        &self,
        scope: &Scope,
        id: &str,
        detach_policies: bool,
    ) -> StoreResult<CertificateOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                // Waits for attachments in flight (they hold the row), so the checks
                // below see them.
                let Some(current) = lock_certificate(&tx, scope, id).await? else {
                    return Ok(Err(CertificateRefusal::NotFound));
                };
                if !DELETABLE_STATUSES.contains(&current.status.as_str()) {
                    return Ok(Err(CertificateRefusal::State {
                        status: current.status,
                    }));
                }
                let things = tx_rows(
                    &tx,
                    "SELECT 1 FROM thing_principals
                     WHERE account_id = $1 AND region = $2 AND certificate_id = $3 LIMIT 1",
                    &[&scope.account_id, &scope.region, &id],
                )
                .await?;
                if !things.is_empty() {
                    return Ok(Err(CertificateRefusal::AttachedToThings));
                }
                let target: [&(dyn ToSql + Sync); 3] =
                    [&scope.account_id, &scope.region, &current.arn];
                let policies = tx_rows(
                    &tx,
                    "SELECT 1 FROM policy_attachments
                     WHERE account_id = $1 AND region = $2 AND target = $3 LIMIT 1",
                    &target,
                )
                .await?;
                if !policies.is_empty() {
                    if !detach_policies {
                        return Ok(Err(CertificateRefusal::AttachedToPolicies));
                    }
                    tx_execute(
                        &tx,
                        "DELETE FROM policy_attachments
                         WHERE account_id = $1 AND region = $2 AND target = $3",
                        &target,
                    )
                    .await?;
                }
                tx_execute(
                    &tx,
                    "DELETE FROM certificates WHERE account_id = $1 AND region = $2 AND id = $3",
                    &[&scope.account_id, &scope.region, &id],
                )
                .await?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }
}

/// Sets device certificates' statuses inside the caller's transaction (see
/// `CertificateStore::update_certificate_status`), one outcome per request in request
/// order; each request is a certificate id and the generation id it gets if changed.
///
/// One `UPDATE` decides and applies every allowed change (the row locks it takes make
/// it atomic against other writers); only the requests it did not change are read
/// (`FOR UPDATE`) to tell a missing certificate, a refused change and a status already
/// set apart. A mitigation stage sends all its certificates at once, so the common case
/// is one round trip for the whole stage. A certificate requested twice changes once;
/// the second request finds the status already set.
pub(super) async fn set_certificate_statuses(
    tx: &Transaction<'_>,
    scope: &Scope,
    requests: &[(&str, String)],
    status: &str,
    now_ms: i64,
) -> Result<Vec<CertificateOutcome<StatusChange>>, Fail> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let sources = statuses_that_may_become(status);
    let mut changed = update_statuses(tx, scope, requests, status, now_ms, &sources).await?;
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
        let found = tx_rows(
            tx,
            "SELECT id, status FROM certificates
             WHERE account_id = $1 AND region = $2 AND id = ANY($3::text[])
             ORDER BY id FOR UPDATE",
            &[&scope.account_id, &scope.region, &left],
        )
        .await?;
        let mut current = std::collections::HashMap::with_capacity(found.len());
        for row in &found {
            current.insert(row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?);
        }
        for ((id, generation_id), outcome) in requests.iter().zip(outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            *outcome = Some(match current.get(*id) {
                None => Err(CertificateRefusal::NotFound),
                Some(now) if !status_change_allowed(now, status) => {
                    Err(CertificateRefusal::State {
                        status: now.clone(),
                    })
                }
                Some(now) if now == status => Ok(StatusChange::Unchanged),
                // Changed by someone else between the update and the lock, to a status
                // that may still move (or one the list of sources does not know).
                Some(_) => {
                    let request = [(*id, generation_id.clone())];
                    update_statuses(tx, scope, &request, status, now_ms, &[]).await?;
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

/// The status update itself, only from one of `sources` unless that is empty; the ids
/// it changed.
async fn update_statuses(
    tx: &Transaction<'_>,
    scope: &Scope,
    requests: &[(&str, String)],
    status: &str,
    now_ms: i64,
    sources: &[&str],
) -> Result<std::collections::HashSet<String>, Fail> {
    let (ids, generations): (Vec<&str>, Vec<&str>) = requests
        .iter()
        .map(|(id, generation)| (*id, generation.as_str()))
        .unzip();
    let found = tx_rows(
        tx,
        "UPDATE certificates AS c SET status = $3, generation_id = u.generation_id,
             customer_version = c.customer_version + 1, updated_at_ms = $4
         FROM UNNEST($5::text[], $6::text[]) AS u (id, generation_id)
         WHERE c.account_id = $1 AND c.region = $2 AND c.id = u.id
           AND (cardinality($7::text[]) = 0 OR c.status = ANY($7::text[]))
         RETURNING c.id",
        &[
            &scope.account_id,
            &scope.region,
            &status,
            &now_ms,
            &ids,
            &generations,
            &sources,
        ],
    )
    .await?;
    found.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// Applies a CA certificate update (see `CertificateStore::update_ca_certificate`) on a
/// pooled connection or inside a transaction; `None` if there is no such CA.
pub(super) async fn update_ca_certificate_in(
    client: &impl GenericClient,
    scope: &Scope,
    id: &str,
    update: &CaCertificateUpdate,
) -> Result<Option<CaCertificateRecord>, Fail> {
    let (keep, config) = match &update.registration_config {
        RegistrationConfigChange::Keep => (true, RegistrationConfigRecord::default()),
        RegistrationConfigChange::Replace(c) => (false, c.clone()),
        RegistrationConfigChange::Remove => (false, RegistrationConfigRecord::default()),
    };
    let stmt = client
        .prepare_cached(concat!(
            "UPDATE ca_certificates SET",
            " status = COALESCE($4::text, status),",
            " auto_registration_status = COALESCE($5::text, auto_registration_status),",
            " role_arn = CASE WHEN $6 THEN role_arn ELSE $7::text END,",
            " template_body = CASE WHEN $6 THEN template_body ELSE $8::text END,",
            " template_name = CASE WHEN $6 THEN template_name ELSE $9::text END,",
            " generation_id = $10, customer_version = customer_version + 1,",
            " updated_at_ms = $11",
            " WHERE account_id = $1 AND region = $2 AND id = $3 RETURNING ",
            ca_columns!()
        ))
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &scope.account_id,
                &scope.region,
                &id,
                &update.status,
                &update.auto_registration_status,
                &keep,
                &config.role_arn,
                &config.template_body,
                &config.template_name,
                &update.generation_id,
                &update.updated_at_ms,
            ],
        )
        .await?;
    row.as_ref().map(ca_certificate).transpose()
}

/// A CA certificate's status, row-locked (`FOR UPDATE`) for the rest of the
/// transaction.
pub(super) async fn lock_ca_certificate_status(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> Result<Option<String>, Fail> {
    let found = tx_rows(
        tx,
        "SELECT status FROM ca_certificates
         WHERE account_id = $1 AND region = $2 AND id = $3 FOR UPDATE",
        &[&scope.account_id, &scope.region, &id],
    )
    .await?;
    Ok(found.first().map(|r| r.try_get(0)).transpose()?)
}

/// Names of the things the certificate is attached to, after `after` (see
/// `PrincipalStore::list_principal_things`), on a pooled connection or inside a
/// transaction.
pub(super) async fn principal_things(
    client: &impl GenericClient,
    scope: &Scope,
    certificate_id: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, Fail> {
    let stmt = client
        .prepare_cached(
            "SELECT thing_name FROM thing_principals
             WHERE account_id = $1 AND region = $2 AND certificate_id = $3
               AND thing_name > $4 ORDER BY thing_name LIMIT $5",
        )
        .await?;
    let names = client
        .query(
            &stmt,
            &[
                &scope.account_id,
                &scope.region,
                &certificate_id,
                &after,
                &sql_limit(limit),
            ],
        )
        .await?;
    names.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Reads and row-locks the certificate (`FOR UPDATE`) for the rest of the transaction.
async fn lock_certificate(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> Result<Option<CertificateRecord>, Fail> {
    let found = tx_rows(
        tx,
        concat!(
            "SELECT ",
            cert_columns!(),
            " FROM certificates WHERE account_id = $1 AND region = $2 AND id = $3 FOR UPDATE"
        ),
        &[&scope.account_id, &scope.region, &id],
    )
    .await?;
    found.first().map(certificate).transpose()
}

#[async_trait]
impl PrincipalStore for PostgresStore {
    async fn attach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
        exclusive: bool,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                // DeleteThing's lock: the thing cannot go while this attachment is written.
                things::lock_thing(&tx, scope, thing_name).await?;
                let thing = tx_rows(
                    &tx,
                    "SELECT 1 FROM things WHERE account_id = $1 AND region = $2 AND name = $3",
                    &[&scope.account_id, &scope.region, &thing_name],
                )
                .await?;
                if thing.is_empty() {
                    return Ok(Err(PrincipalRefusal::ThingNotFound));
                }
                let cert = tx_rows(
                    &tx,
                    "SELECT 1 FROM certificates
                     WHERE account_id = $1 AND region = $2 AND id = $3 FOR NO KEY UPDATE",
                    &[&scope.account_id, &scope.region, &certificate_id],
                )
                .await?;
                if cert.is_empty() {
                    return Ok(Err(PrincipalRefusal::CertificateNotFound));
                }
                let others = tx_rows(
                    &tx,
                    "SELECT thing_name, exclusive FROM thing_principals
                     WHERE account_id = $1 AND region = $2 AND certificate_id = $3
                       AND thing_name <> $4 ORDER BY thing_name",
                    &[
                        &scope.account_id,
                        &scope.region,
                        &certificate_id,
                        &thing_name,
                    ],
                )
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<(String, bool)>, Fail>>()?;
                if let Some(conflict) = exclusive_conflict(&others, exclusive) {
                    return Ok(Err(conflict));
                }
                tx_execute(
                    &tx,
                    "INSERT INTO thing_principals
                         (account_id, region, thing_name, certificate_id, exclusive, attached_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (account_id, region, thing_name, certificate_id)
                     DO UPDATE SET exclusive = excluded.exclusive",
                    &[
                        &scope.account_id,
                        &scope.region,
                        &thing_name,
                        &certificate_id,
                        &exclusive,
                        &now_ms,
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn detach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
    ) -> StoreResult<PrincipalOutcome<bool>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let thing = tx_rows(
                    &tx,
                    "SELECT 1 FROM things WHERE account_id = $1 AND region = $2 AND name = $3",
                    &[&scope.account_id, &scope.region, &thing_name],
                )
                .await?;
                if thing.is_empty() {
                    return Ok(Err(PrincipalRefusal::ThingNotFound));
                }
                let deleted = tx_execute(
                    &tx,
                    "DELETE FROM thing_principals WHERE account_id = $1 AND region = $2
                       AND thing_name = $3 AND certificate_id = $4",
                    &[
                        &scope.account_id,
                        &scope.region,
                        &thing_name,
                        &certificate_id,
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(Ok(deleted > 0))
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_thing_principals(
        &self,
        scope: &Scope,
        thing_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let found = rows(
                    &conn,
                    "SELECT 1 FROM things WHERE account_id = $1 AND region = $2 AND name = $3",
                    &[&scope.account_id, &scope.region, &thing_name],
                )
                .await?;
                if found.is_empty() {
                    return Ok(None);
                }
                let (after, limit) = (after.unwrap_or(""), sql_limit(limit));
                let ids = rows(
                    &conn,
                    "SELECT certificate_id FROM thing_principals
                     WHERE account_id = $1 AND region = $2 AND thing_name = $3
                       AND certificate_id > $4 ORDER BY certificate_id LIMIT $5",
                    &[
                        &scope.account_id,
                        &scope.region,
                        &thing_name,
                        &after,
                        &limit,
                    ],
                )
                .await?;
                ids.iter()
                    .map(|r| Ok(r.try_get(0)?))
                    .collect::<Result<_, Fail>>()
                    .map(Some)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_principal_things(
        &self,
        scope: &Scope,
        certificate_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(principal_things(
                &conn.obj,
                scope,
                certificate_id,
                after.unwrap_or(""),
                limit,
            ))
            .await;
        conn.finish(outcome)
    }

    async fn attach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target: &PolicyTarget,
        max_per_target: usize,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let arn = target.arn();
                advisory_lock(&tx, POLICY_TARGET_LOCK_SPACE, scope, arn).await?;
                let policy = tx_rows(
                    &tx,
                    "SELECT 1 FROM policies
                     WHERE account_id = $1 AND region = $2 AND name = $3 FOR KEY SHARE",
                    &[&scope.account_id, &scope.region, &policy_name],
                )
                .await?;
                if policy.is_empty() {
                    return Ok(Err(PrincipalRefusal::PolicyNotFound));
                }
                let (sql, key, missing) = match target {
                    PolicyTarget::Certificate { id, .. } => (
                        "SELECT 1 FROM certificates
                         WHERE account_id = $1 AND region = $2 AND id = $3 FOR KEY SHARE",
                        id,
                        PrincipalRefusal::CertificateNotFound,
                    ),
                    PolicyTarget::ThingGroup { name, .. } => (
                        "SELECT 1 FROM thing_groups
                         WHERE account_id = $1 AND region = $2 AND name = $3 FOR KEY SHARE",
                        name,
                        PrincipalRefusal::GroupNotFound,
                    ),
                };
                if tx_rows(&tx, sql, &[&scope.account_id, &scope.region, key])
                    .await?
                    .is_empty()
                {
                    return Ok(Err(missing));
                }
                let others: i64 = tx_rows(
                    &tx,
                    "SELECT COUNT(*) FROM policy_attachments
                     WHERE account_id = $1 AND region = $2 AND target = $3 AND policy_name <> $4",
                    &[&scope.account_id, &scope.region, &arn, &policy_name],
                )
                .await?[0]
                    .try_get(0)?;
                if count_to_usize(others) >= max_per_target {
                    return Ok(Err(PrincipalRefusal::TooManyPolicies {
                        limit: max_per_target,
                    }));
                }
                tx_execute(
                    &tx,
                    "INSERT INTO policy_attachments
                         (account_id, region, policy_name, target, attached_at_ms)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (account_id, region, policy_name, target) DO NOTHING",
                    &[
                        &scope.account_id,
                        &scope.region,
                        &policy_name,
                        &arn,
                        &now_ms,
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(Ok(()))
            })
            .await;
        conn.finish(outcome)
    }

    async fn detach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target_arn: &str,
    ) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "DELETE FROM policy_attachments WHERE account_id = $1 AND region = $2
                           AND policy_name = $3 AND target = $4",
                    )
                    .await?;
                let deleted = conn
                    .execute(
                        &stmt,
                        &[&scope.account_id, &scope.region, &policy_name, &target_arn],
                    )
                    .await?;
                Ok(deleted > 0)
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_attached_policies(
        &self,
        scope: &Scope,
        target_arns: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRef>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let (after, limit) = (after.unwrap_or(""), sql_limit(limit));
                let found = rows(
                    &conn,
                    "SELECT DISTINCT a.policy_name, p.arn FROM policy_attachments a
                     JOIN policies p ON p.account_id = a.account_id AND p.region = a.region
                         AND p.name = a.policy_name
                     WHERE a.account_id = $1 AND a.region = $2 AND a.target = ANY($3::text[])
                       AND a.policy_name > $4
                     ORDER BY a.policy_name LIMIT $5",
                    &[
                        &scope.account_id,
                        &scope.region,
                        &target_arns,
                        &after,
                        &limit,
                    ],
                )
                .await?;
                found
                    .iter()
                    .map(|r| {
                        Ok(PolicyRef {
                            name: r.try_get(0)?,
                            arn: r.try_get(1)?,
                        })
                    })
                    .collect()
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_targets_for_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let found = rows(
                    &conn,
                    "SELECT 1 FROM policies WHERE account_id = $1 AND region = $2 AND name = $3",
                    &[&scope.account_id, &scope.region, &policy_name],
                )
                .await?;
                if found.is_empty() {
                    return Ok(None);
                }
                let (after, limit) = (after.unwrap_or(""), sql_limit(limit));
                let targets = rows(
                    &conn,
                    "SELECT target FROM policy_attachments
                     WHERE account_id = $1 AND region = $2 AND policy_name = $3 AND target > $4
                     ORDER BY target LIMIT $5",
                    &[
                        &scope.account_id,
                        &scope.region,
                        &policy_name,
                        &after,
                        &limit,
                    ],
                )
                .await?;
                targets
                    .iter()
                    .map(|r| Ok(r.try_get(0)?))
                    .collect::<Result<_, Fail>>()
                    .map(Some)
            })
            .await;
        conn.finish(outcome)
    }
}
