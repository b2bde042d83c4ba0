//! [`CertificateStore`] on both engines: registration codes, the account's issuing CA
//! and CA certificates here, device certificates in [`super::device`].

use super::{ca_certificate, device, facts_params, found, join_uris, page, CA_SUBJECT_LOCK_SPACE};
use crate::db::{joined, Db, DbResult, Fail, Param, Row, Sql};
use crate::{
    tags, CaCertificateRecord, CaCertificateUpdate, CertificateKey, CertificateOutcome,
    CertificatePages, CertificateRecord, CertificateRefusal, IssuingCaRecord,
    RegistrationConfigChange, RegistrationConfigRecord, Scope, StoreError, StoreResult, Tag,
};
use palisade_store_macros::engines;

fn issuing_ca(row: &Row<'_>) -> DbResult<IssuingCaRecord> {
    Ok(from_row!(row => IssuingCaRecord { id, certificate_pem, private_key_pem, created_at_ms }))
}

const REGISTRATION_CODE: &Sql<'static> =
    sql!("SELECT code FROM registration_codes WHERE account_id = $1 AND region = $2");

const ISSUING_CA: &Sql<'static> = sql!(
    "SELECT id, certificate_pem, private_key_pem, created_at_ms FROM issuing_cas",
    " WHERE account_id = $1 AND region = $2"
);

/// Device and CA certificates, the registration code and the account's issuing CA.
///
/// Listings are keyset pages by `(created_at_ms, id)`, ascending or descending: up to
/// `limit` records strictly after `after` in the listing's order.
#[engines]
pub trait CertificateStore: Send + Sync {
    /// The scope's registration code: the stored one, or `candidate` stored now if there
    /// is none (whoever stores first wins; everyone gets the winner).
    async fn registration_code(&self, scope: &Scope, candidate: &str) -> StoreResult<String> {
        if let Some(code) = self.get_registration_code(scope).await? {
            return Ok(code);
        }
        let (scope, candidate) = (scope.clone(), candidate.to_owned());
        self.write(async move |db| {
            // A racing insert waits on the primary key and then does nothing; the
            // read that follows, a statement of its own, sees whichever committed.
            db.execute(
                sql!(
                    "INSERT INTO registration_codes (account_id, region, code, created_at_ms)",
                    " VALUES ($1, $2, $3, 0) ON CONFLICT (account_id, region) DO NOTHING"
                ),
                &[&scope.account_id, &scope.region, &candidate],
            )
            .await?;
            db.query_one(
                REGISTRATION_CODE,
                &[&scope.account_id, &scope.region],
                |row| row.get(0),
            )
            .await
        })
        .await
    }

    /// The scope's registration code, if GetRegistrationCode made one.
    async fn get_registration_code(&self, scope: &Scope) -> StoreResult<Option<String>> {
        self.read(async |db| {
            db.value(REGISTRATION_CODE, &[&scope.account_id, &scope.region])
                .await
        })
        .await
    }

    async fn get_issuing_ca(&self, scope: &Scope) -> StoreResult<Option<IssuingCaRecord>> {
        self.read(async |db| {
            db.query_opt(ISSUING_CA, &[&scope.account_id, &scope.region], issuing_ca)
                .await
        })
        .await
    }

    /// Stores `candidate` unless the scope already has an issuing CA; returns the one
    /// stored (so concurrent first uses agree on one CA).
    async fn put_issuing_ca(
        &self,
        scope: &Scope,
        candidate: &IssuingCaRecord,
    ) -> StoreResult<IssuingCaRecord> {
        let (scope, ca) = (scope.clone(), candidate.clone());
        self.write(async move |db| {
            // As for the registration code: the first one stored stays.
            db.execute(
                sql!(
                    "INSERT INTO issuing_cas (account_id, region, id, certificate_pem,",
                    " private_key_pem, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    " ON CONFLICT (account_id, region) DO NOTHING"
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &ca.id,
                    &ca.certificate_pem,
                    &ca.private_key_pem,
                    &ca.created_at_ms,
                ],
            )
            .await?;
            db.query_one(ISSUING_CA, &[&scope.account_id, &scope.region], issuing_ca)
                .await
        })
        .await
    }

    /// Inserts the CA certificate and its tags. `AlreadyExists` if the id is taken.
    /// Refusal: `TooManyWithSubject` if the scope already holds `max_same_subject` CAs
    /// with this subject.
    async fn register_ca_certificate(
        &self,
        scope: &Scope,
        record: &CaCertificateRecord,
        tags: &[Tag],
        max_same_subject: usize,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, record, tags) = (scope.clone(), record.clone(), tags.to_vec());
        self.write(async move |db| register_ca(db, &scope, &record, &tags, max_same_subject).await)
            .await
    }

    async fn get_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CaCertificateRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    ca_columns!(),
                    " FROM ca_certificates",
                    " WHERE account_id = $1 AND region = $2 AND id = $3"
                ),
                &[&scope.account_id, &scope.region, &id],
                ca_certificate,
            )
            .await
        })
        .await
    }

    /// The scope's CA certificates whose subject is exactly `subject_der`, oldest first.
    async fn find_ca_certificates_by_subject(
        &self,
        scope: &Scope,
        subject_der: &[u8],
    ) -> StoreResult<Vec<CaCertificateRecord>> {
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT ",
                    ca_columns!(),
                    " FROM ca_certificates",
                    " WHERE account_id = $1 AND region = $2 AND subject_der = $3",
                    " ORDER BY created_at_ms, id"
                ),
                &[&scope.account_id, &scope.region, &subject_der],
                ca_certificate,
            )
            .await
        })
        .await
    }

    /// CA certificates, only those whose registration template is `template_name` if given.
    async fn list_ca_certificates(
        &self,
        scope: &Scope,
        template_name: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CaCertificateRecord>> {
        let q = page(
            concat!("SELECT ", ca_columns!(), " FROM ca_certificates c"),
            scope,
            template_name.map(|t| ("template_name", t)),
            after,
            descending,
            limit,
        );
        self.read(async |db| q.query(db, ca_certificate).await)
            .await
    }

    /// Applies the update; `Ok(None)` if there is no such CA certificate.
    async fn update_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
        update: &CaCertificateUpdate,
    ) -> StoreResult<Option<CaCertificateRecord>> {
        let (scope, id, update) = (scope.clone(), id.to_owned(), update.clone());
        self.write_one(async move |db| update_ca_certificate_in(db, &scope, &id, &update).await)
            .await
    }

    /// Deletes the CA certificate and its tags. Refusals: `NotFound`; `State` unless it is
    /// INACTIVE. Device certificates registered under it stay.
    async fn delete_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, id) = (scope.clone(), id.to_owned());
        self.write(async move |db| delete_ca(db, &scope, &id).await)
            .await
    }

    /// Inserts the device certificate. `AlreadyExists` if the id is taken. Refusal:
    /// `CaNotFound` if `record.ca_certificate_id` names no CA of the scope.
    async fn register_certificate(
        &self,
        scope: &Scope,
        record: &CertificateRecord,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, record) = (scope.clone(), record.clone());
        self.write(async move |db| device::register(db, &scope, &record).await)
            .await
    }

    async fn get_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CertificateRecord>> {
        self.read(async |db| device::get(db, scope, id, false).await)
            .await
    }

    /// Device certificates, only those registered under `ca_certificate_id` if given.
    async fn list_certificates(
        &self,
        scope: &Scope,
        ca_certificate_id: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CertificateRecord>> {
        self.read(async |db| {
            device::list(db, scope, ca_certificate_id, after, descending, limit).await
        })
        .await
    }

    /// Sets the status (see [`status_change_allowed`]); setting the current status again
    /// changes nothing. Otherwise the customer version goes up by one and the generation
    /// id is replaced. Refusals: `NotFound`, `State`.
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
        self.write(async move |db| {
            device::update_status(db, &scope, &id, &status, generation_id, now_ms).await
        })
        .await
    }

    /// Deletes the certificate. Refusals, in this order: `NotFound`; `State` unless its
    /// status is one of [`DELETABLE_STATUSES`]; `AttachedToThings`; `AttachedToPolicies`
    /// unless `detach_policies`, which detaches them in the same transaction.
    async fn delete_certificate(
        &self,
        scope: &Scope,
        id: &str,
        detach_policies: bool,
    ) -> StoreResult<CertificateOutcome<()>> {
        let (scope, id) = (scope.clone(), id.to_owned());
        self.write(async move |db| device::delete(db, &scope, &id, detach_policies).await)
            .await
    }

    /// Every device certificate of the scope in use (see [`status_in_use`]), in creation
    /// order, in pages of up to `page`: the read of an audit's device certificate pass.
    /// `now_ms` is the caller's clock, the one certificates' creation times come from.
    /// Here page by page over [`list_certificates`](Self::list_certificates), each page
    /// as of its own read; SQLite judges older certificates by their state when the scan
    /// starts (see its engine for why).
    fn certificates_in_use<'a>(
        &'a self,
        scope: &'a Scope,
        page: usize,
        now_ms: i64,
    ) -> CertificatePages<'a> {
        // Tuned per engine: sqlite/certificates.rs and postgres/certificates.rs.
        self.certificate_pages_in_use(scope, page, now_ms)
    }
}

async fn register_ca(
    db: &Db<'_>,
    scope: &Scope,
    r: &CaCertificateRecord,
    tags: &[Tag],
    max_same_subject: usize,
) -> DbResult<CertificateOutcome<()>> {
    let f = &r.facts;
    let subject: String = f.subject_der.iter().map(|b| format!("{b:02x}")).collect();
    db.lock(CA_SUBJECT_LOCK_SPACE, &format!("{}/{subject}", scope.key()))
        .await?;
    let taken = found(
        db,
        sql!("SELECT 1 FROM ca_certificates WHERE account_id = $1 AND region = $2 AND id = $3"),
        &[&scope.account_id, &scope.region, &r.id],
    )
    .await?;
    if taken {
        return Err(Fail::Store(StoreError::AlreadyExists));
    }
    let same_subject = db
        .count(
            sql!(
                "SELECT COUNT(*) FROM ca_certificates",
                " WHERE account_id = $1 AND region = $2 AND subject_der = $3"
            ),
            &[&scope.account_id, &scope.region, &f.subject_der],
        )
        .await?;
    if same_subject >= max_same_subject {
        return Ok(Err(CertificateRefusal::TooManyWithSubject {
            limit: max_same_subject,
        }));
    }
    let config = &r.registration_config;
    let crl = join_uris(&f.crl_distribution_points);
    db.insert(
        sql!(
            "INSERT INTO ca_certificates (account_id, region, ",
            ca_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,",
            " $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
        ),
        &joined::<26, 2, 28>(
            joined::<14, 12, 26>(
                [
                    &scope.account_id,
                    &scope.region,
                    &r.id,
                    &r.arn,
                    &r.pem,
                    &r.status,
                    &r.certificate_mode,
                    &r.auto_registration_status,
                    &config.role_arn,
                    &config.template_body,
                    &config.template_name,
                    &r.owned_by,
                    &r.generation_id,
                    &r.customer_version,
                ],
                facts_params(f, &crl),
            ),
            [&r.created_at_ms, &r.updated_at_ms],
        ),
    )
    .await?;
    tags::upsert(db, scope, &r.arn, tags).await?;
    Ok(Ok(()))
}

async fn delete_ca(db: &Db<'_>, scope: &Scope, id: &str) -> DbResult<CertificateOutcome<()>> {
    let key: [&dyn Param; 3] = [&scope.account_id, &scope.region, &id];
    let current = db
        .query_opt(
            sql!(
                "SELECT status, arn FROM ca_certificates",
                " WHERE account_id = $1 AND region = $2 AND id = $3 FOR UPDATE"
            ),
            &key,
            |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)),
        )
        .await?;
    let Some((status, arn)) = current else {
        return Ok(Err(CertificateRefusal::NotFound));
    };
    if status != "INACTIVE" {
        return Ok(Err(CertificateRefusal::State { status }));
    }
    db.execute(
        sql!("DELETE FROM ca_certificates WHERE account_id = $1 AND region = $2 AND id = $3"),
        &key,
    )
    .await?;
    tags::delete_all(db, scope, &arn).await?;
    Ok(Ok(()))
}

// The statements below are also run by sqlite/certificates.rs, on the rusqlite
// transaction of the mitigation stages that are not on the seam yet.

/// Applies a CA certificate update; `$6` keeps the registration config, otherwise `$7`
/// to `$9` replace it (see [`registration_change`]).
pub(crate) const UPDATE_CA_CERTIFICATE: &Sql<'static> = sql!(
    "UPDATE ca_certificates SET",
    " status = COALESCE($4::text, status),",
    " auto_registration_status = COALESCE($5::text, auto_registration_status),",
    " role_arn = CASE WHEN $6 THEN role_arn ELSE $7::text END,",
    " template_body = CASE WHEN $6 THEN template_body ELSE $8::text END,",
    " template_name = CASE WHEN $6 THEN template_name ELSE $9::text END,",
    " generation_id = $10, customer_version = customer_version + 1, updated_at_ms = $11",
    " WHERE account_id = $1 AND region = $2 AND id = $3 RETURNING ",
    ca_columns!()
);

/// A CA certificate's status, row-locked (`FOR UPDATE`) for the rest of the transaction.
pub(crate) const CA_STATUS: &Sql<'static> = sql!(
    "SELECT status FROM ca_certificates",
    " WHERE account_id = $1 AND region = $2 AND id = $3 FOR UPDATE"
);

/// Whether an update keeps the registration config, and the one it sets if not.
pub(crate) fn registration_change(
    change: &RegistrationConfigChange,
) -> (bool, RegistrationConfigRecord) {
    match change {
        RegistrationConfigChange::Keep => (true, RegistrationConfigRecord::default()),
        RegistrationConfigChange::Replace(c) => (false, c.clone()),
        RegistrationConfigChange::Remove => (false, RegistrationConfigRecord::default()),
    }
}

/// Applies a CA certificate update (`CertificateStore::update_ca_certificate`, and the
/// mitigation that deactivates a CA); `None` if there is no such CA.
pub(crate) async fn update_ca_certificate_in(
    db: &Db<'_>,
    scope: &Scope,
    id: &str,
    update: &CaCertificateUpdate,
) -> DbResult<Option<CaCertificateRecord>> {
    let (keep, config) = registration_change(&update.registration_config);
    let params: [&dyn Param; 11] = [
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
    ];
    db.query_opt(UPDATE_CA_CERTIFICATE, &params, ca_certificate)
        .await
}

/// [`CA_STATUS`]: a CA certificate's status, locked until commit.
pub(crate) async fn lock_ca_certificate_status(
    db: &Db<'_>,
    scope: &Scope,
    id: &str,
) -> DbResult<Option<String>> {
    db.value(CA_STATUS, &[&scope.account_id, &scope.region, &id])
        .await
}
