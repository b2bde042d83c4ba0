//! Storage of device and CA certificates, thing principals and policy attachments:
//! records, traits and row mapping here, the implementation for both engines in
//! [`store`] (registration codes, the issuing CA, CA certificates), [`device`] (device
//! certificates) and [`principals`].
//!
//! The store never parses X.509: the engine extracts what audits need once, at
//! registration ([`CertificateFacts`]), and the store keeps it in columns. Domain
//! refusals that depend on what is stored (a status that forbids a change, an
//! attachment that forbids a delete) are answered as `Ok(Err(refusal))`, decided inside
//! the transaction of the write they guard, so a refused call changes nothing.
//!
//! On SQLite every write runs in the single writer's IMMEDIATE transaction, so those
//! checks and the writes they guard are atomic against every other connection and
//! process on the file. What SQLite gets from its single writer comes from locks on
//! PostgreSQL:
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

use std::pin::Pin;

use futures_util::Stream;

use crate::db::{sql_limit, Db, DbResult, Param, Query, Row, Sql};
use crate::{Scope, StoreResult};

// Column lists beside their mapping functions (below). The facts columns are shared by
// both certificate tables and always follow the table's own columns.
macro_rules! facts_columns {
    () => {
        "subject, issuer, subject_der, issuer_der, serial_number, not_before_ms, \
         not_after_ms, key_algorithm, key_bits, key_curve, public_key, crl_distribution_points"
    };
}
pub(crate) use facts_columns;

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

/// A device certificate's columns, read from its table as `c`. On SQLite the state
/// (status, generation id, version, update time) lives in `certificate_states`, joined
/// as `s` (migration 0011 says why): of these columns only the id is in both tables, so
/// only it is named by its table, and the same list reads either engine.
macro_rules! certificate_columns {
    () => {
        concat!(
            "c.id, arn, pem, status, certificate_mode, ca_certificate_id, \
             issuer_certificate_id, owned_by, previous_owned_by, generation_id, \
             customer_version, ",
            facts_columns!(),
            ", created_at_ms, updated_at_ms"
        )
    };
}

mod device;
mod principals;
mod store;

pub use principals::PrincipalStore;
pub use store::CertificateStore;

pub(crate) use device::{insert_certificates, set_certificate_statuses};
pub(crate) use principals::principal_things;
pub(crate) use store::{lock_ca_certificate_status, update_ca_certificate_in};

/// First key of the advisory locks on a CA subject (for the per-subject limit) and on a
/// policy target (for the per-target limit); 1 to 3 are taken by actions, tags and things.
pub(crate) const CA_SUBJECT_LOCK_SPACE: i32 = 4;
pub(crate) const POLICY_TARGET_LOCK_SPACE: i32 = 5;

/// What the engine read from a certificate when it was registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The subject and issuer names as text (RFC 4514 style), for people.
    pub subject: String,
    pub issuer: String,
    /// The DER of the subject and issuer names, for exact matching (finding a device
    /// certificate's CA by issuer).
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    /// The serial number in lowercase hex, without separators.
    pub serial_number: String,
    /// Milliseconds since the epoch.
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// `RSA`, `EC`, ...
    pub key_algorithm: String,
    /// The key's size in bits (the modulus for RSA, the field for EC).
    pub key_bits: Option<i32>,
    /// The named curve of an EC key (`P-256`, ...).
    pub key_curve: Option<String>,
    /// The SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
    /// URIs of the CRL distribution points extension, in certificate order.
    pub crl_distribution_points: Vec<String>,
}

/// A CA certificate's automatic-registration settings (RegisterCACertificate's
/// `registrationConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationConfigRecord {
    pub role_arn: Option<String>,
    pub template_body: Option<String>,
    pub template_name: Option<String>,
}

/// A registered CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificateRecord {
    /// Lowercase hex SHA-256 of the DER.
    pub id: String,
    pub arn: String,
    /// Normalised PEM (one certificate, 64-character lines).
    pub pem: String,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// `DEFAULT` or `SNI_ONLY`.
    pub certificate_mode: String,
    /// `ENABLE` or `DISABLE`.
    pub auto_registration_status: String,
    pub registration_config: RegistrationConfigRecord,
    pub owned_by: String,
    /// Opaque to the store; replaced on every update.
    pub generation_id: String,
    /// 1 on registration, one more on every update.
    pub customer_version: i64,
    pub facts: CertificateFacts,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// How an update changes a CA's registration config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationConfigChange {
    Keep,
    Replace(RegistrationConfigRecord),
    Remove,
}

/// Changes to a CA certificate; `None` leaves a field as it is. Every update raises the
/// customer version and replaces the generation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificateUpdate {
    pub status: Option<String>,
    pub auto_registration_status: Option<String>,
    pub registration_config: RegistrationConfigChange,
    pub generation_id: String,
    pub updated_at_ms: i64,
}

/// A device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Lowercase hex SHA-256 of the DER.
    pub id: String,
    pub arn: String,
    /// Normalised PEM.
    pub pem: String,
    /// A `CertificateStatus` as on the wire.
    pub status: String,
    pub certificate_mode: String,
    /// The registered CA it was registered under (RegisterCertificate), if any.
    pub ca_certificate_id: Option<String>,
    /// The id of the certificate whose key was verified to have signed this one: the
    /// registered CA, or the account's Palisade CA for issued certificates. `None` when
    /// nobody checked (RegisterCertificateWithoutCA).
    pub issuer_certificate_id: Option<String>,
    pub owned_by: String,
    pub previous_owned_by: Option<String>,
    pub generation_id: String,
    pub customer_version: i64,
    pub facts: CertificateFacts,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A device certificate in use (ACTIVE or PENDING_TRANSFER), with what an audit's
/// device certificate checks examine: see [`CertificateStore::certificates_in_use`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInUse {
    pub id: String,
    pub pem: String,
    pub facts: CertificateFacts,
    pub created_at_ms: i64,
}

impl From<CertificateRecord> for CertificateInUse {
    fn from(c: CertificateRecord) -> Self {
        CertificateInUse {
            id: c.id,
            pem: c.pem,
            facts: c.facts,
            created_at_ms: c.created_at_ms,
        }
    }
}

/// Whether a certificate with this status is in use, the ones audits examine.
pub fn status_in_use(status: &str) -> bool {
    status == "ACTIVE" || status == "PENDING_TRANSFER"
}

/// The pages of [`CertificateStore::certificates_in_use`].
pub type CertificatePages<'a> =
    Pin<Box<dyn Stream<Item = StoreResult<Vec<CertificateInUse>>> + Send + 'a>>;

/// The account's own issuing CA ("Palisade CA"), which signs the certificates of
/// CreateKeysAndCertificate and CreateCertificateFromCsr. Not a registered CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingCaRecord {
    pub id: String,
    pub certificate_pem: String,
    /// PKCS#8 PEM.
    pub private_key_pem: String,
    pub created_at_ms: i64,
}

/// A listing position: certificates are listed by creation time, then id.
pub type CertificateKey = (i64, String);

/// Why a certificate write was refused (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateRefusal {
    /// The certificate (or CA certificate) does not exist.
    NotFound,
    /// The CA a device certificate is registered under does not exist (any more).
    CaNotFound,
    /// The account already has `limit` CA certificates with this subject.
    TooManyWithSubject { limit: usize },
    /// The certificate's `status` does not allow the operation.
    State { status: String },
    /// The certificate is attached to one or more things.
    AttachedToThings,
    /// The certificate is attached to one or more policies.
    AttachedToPolicies,
}

pub type CertificateOutcome<T> = Result<T, CertificateRefusal>;

/// Statuses from which a device certificate may be deleted.
pub const DELETABLE_STATUSES: [&str; 2] = ["INACTIVE", "REVOKED"];

/// Whether a device certificate in `current` may move to `new`; decided by the store
/// inside the update's transaction. A revoked certificate stays revoked (it could
/// otherwise be revived through INACTIVE), and one being transferred cannot change
/// until the transfer ends. Targets no caller may set at all (PENDING_TRANSFER,
/// PENDING_ACTIVATION) are the engine's to refuse.
pub fn status_change_allowed(current: &str, new: &str) -> bool {
    match current {
        "REVOKED" => new == "REVOKED",
        "PENDING_TRANSFER" => false,
        _ => true,
    }
}

/// Every status a device certificate can have (`CertificateStatus` on the wire).
pub(crate) const CERTIFICATE_STATUSES: [&str; 6] = [
    "ACTIVE",
    "INACTIVE",
    "REVOKED",
    "PENDING_TRANSFER",
    "REGISTER_INACTIVE",
    "PENDING_ACTIVATION",
];

/// The statuses a device certificate may move from to `new` (by
/// [`status_change_allowed`]), `new` itself excluded: the condition that lets one
/// `UPDATE` both decide and apply a status change. A row whose status is not in the list
/// is not changed by it, and the caller then decides from the status it reads.
pub(crate) fn statuses_that_may_become(new: &str) -> Vec<&'static str> {
    CERTIFICATE_STATUSES
        .into_iter()
        .filter(|current| *current != new && status_change_allowed(current, new))
        .collect()
}

/// A new opaque generation id for a record the store changes on its own (a mitigation
/// action), shaped like the engine's: 64 lowercase hex digits.
pub(crate) fn new_generation_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    rand::random::<[u8; 32]>()
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// What setting a device certificate's status did, when it was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusChange {
    Changed,
    /// The certificate already had the status: nothing was written.
    Unchanged,
}

/// Why an attachment write was refused (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalRefusal {
    ThingNotFound,
    CertificateNotFound,
    PolicyNotFound,
    /// The thing group a policy would be attached to does not exist.
    GroupNotFound,
    /// The target already has `limit` policies attached.
    TooManyPolicies {
        limit: usize,
    },
    /// The principal is attached exclusively to `thing` (or, attaching exclusively, is
    /// attached to `thing` already).
    Exclusive {
        thing: String,
    },
}

pub type PrincipalOutcome<T> = Result<T, PrincipalRefusal>;

/// What a policy can be attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTarget {
    /// A device certificate of the scope, by id; `arn` is its ARN.
    Certificate { id: String, arn: String },
    /// A thing group of the scope, by name; `arn` is its ARN.
    ThingGroup { name: String, arn: String },
}

impl PolicyTarget {
    /// The ARN the attachment is stored under.
    pub fn arn(&self) -> &str {
        match self {
            PolicyTarget::Certificate { arn, .. } | PolicyTarget::ThingGroup { arn, .. } => arn,
        }
    }
}

/// A policy as attachment listings return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRef {
    pub name: String,
    pub arn: String,
}

/// Joins CRL distribution point URIs for their column (URIs hold no newline).
pub(crate) fn join_uris(uris: &[String]) -> Option<String> {
    (!uris.is_empty()).then(|| uris.join("\n"))
}

/// The inverse of [`join_uris`].
pub(crate) fn split_uris(column: Option<String>) -> Vec<String> {
    column
        .map(|s| s.split('\n').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The exclusivity rule of AttachThingPrincipal, given the certificate's attachments to
/// other things (`(thing, exclusive)`).
pub(crate) fn exclusive_conflict(
    others: &[(String, bool)],
    exclusive: bool,
) -> Option<PrincipalRefusal> {
    others
        .iter()
        .find(|(_, other_exclusive)| exclusive || *other_exclusive)
        .map(|(thing, _)| PrincipalRefusal::Exclusive {
            thing: thing.clone(),
        })
}

/// [`CertificateStore::certificates_in_use`] page by page over
/// [`list_certificates`](CertificateStore::list_certificates): the trait's default, and
/// PostgreSQL's.
pub(crate) fn pages_over_listing<'a, S: CertificateStore + ?Sized>(
    store: &'a S,
    scope: &'a Scope,
    page: usize,
) -> CertificatePages<'a> {
    let page = page.max(1);
    // The state is the key to read after, or `None` once the last page is out.
    Box::pin(futures_util::stream::unfold(
        Some(None::<CertificateKey>),
        move |state| async move {
            let after = state?;
            match store
                .list_certificates(scope, None, after.as_ref(), false, page)
                .await
            {
                Err(e) => Some((Err(e), None)),
                Ok(rows) => {
                    let next = match rows.last() {
                        Some(last) if rows.len() == page => {
                            Some(Some((last.created_at_ms, last.id.clone())))
                        }
                        _ => None,
                    };
                    let in_use = rows
                        .into_iter()
                        .filter(|c| status_in_use(&c.status))
                        .map(CertificateInUse::from)
                        .collect();
                    Some((Ok(in_use), next))
                }
            }
        },
    ))
}

/// How a device certificate's status change that the conditional `UPDATE` did not apply
/// ends, given the status the certificate has now; `None` if the change is allowed after
/// all (the status changed in between, or is one the list of sources does not know), so
/// the caller applies it unconditionally.
pub(crate) fn unapplied_status_change(
    current: Option<&str>,
    new: &str,
) -> Option<CertificateOutcome<StatusChange>> {
    match current {
        None => Some(Err(CertificateRefusal::NotFound)),
        Some(now) if !status_change_allowed(now, new) => Some(Err(CertificateRefusal::State {
            status: now.to_owned(),
        })),
        Some(now) if now == new => Some(Ok(StatusChange::Unchanged)),
        Some(_) => None,
    }
}

/// One keyset page by `(created_at_ms, id)` of a certificate table read as `c` (`select`
/// ends with its `FROM`) in `scope`, optionally filtered on one of its columns. Each
/// call makes one of a few statement texts, so every one stays prepared.
fn page(
    select: &str,
    scope: &Scope,
    filter: Option<(&str, &str)>,
    after: Option<&CertificateKey>,
    descending: bool,
    limit: usize,
) -> Query {
    let mut q = Query::new(select);
    let (account, region) = (
        q.bind(scope.account_id.clone()),
        q.bind(scope.region.clone()),
    );
    q.push(&format!(
        " WHERE c.account_id = {account} AND c.region = {region}"
    ));
    if let Some((column, value)) = filter {
        let p = q.bind(value.to_owned());
        q.push(&format!(" AND c.{column} = {p}"));
    }
    let (cmp, order) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((created, id)) = after {
        let (created, id) = (q.bind(*created), q.bind(id.clone()));
        q.push(&format!(
            " AND (c.created_at_ms, c.id) {cmp} ({created}, {id})"
        ));
    }
    let limit = q.bind(sql_limit(limit));
    q.push(&format!(
        " ORDER BY c.created_at_ms {order}, c.id {order} LIMIT {limit}"
    ));
    q
}

/// Whether a `SELECT 1 ...` finds a row.
async fn found(db: &Db<'_>, sql: &Sql<'_>, params: &[&dyn Param]) -> DbResult<bool> {
    Ok(db.value::<i32>(sql, params).await?.is_some())
}

/// The values of `facts_columns!()` in order; `crl` is the joined distribution points.
pub(crate) fn facts_params<'a>(
    f: &'a CertificateFacts,
    crl: &'a Option<String>,
) -> [&'a dyn Param; 12] {
    [
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
        crl,
    ]
}

pub(crate) fn facts(row: &Row<'_>, at: usize) -> DbResult<CertificateFacts> {
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

pub(crate) fn ca_certificate(row: &Row<'_>) -> DbResult<CaCertificateRecord> {
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

fn certificate(row: &Row<'_>) -> DbResult<CertificateRecord> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rules() {
        assert!(status_change_allowed("ACTIVE", "INACTIVE"));
        assert!(status_change_allowed("INACTIVE", "ACTIVE"));
        assert!(status_change_allowed("ACTIVE", "REVOKED"));
        assert!(status_change_allowed("REVOKED", "REVOKED"));
        assert!(!status_change_allowed("REVOKED", "ACTIVE"));
        assert!(!status_change_allowed("REVOKED", "INACTIVE"));
        assert!(!status_change_allowed("PENDING_TRANSFER", "ACTIVE"));
        assert!(status_change_allowed("REGISTER_INACTIVE", "ACTIVE"));
    }

    #[test]
    fn sources_of_a_status_change_follow_the_rules() {
        assert_eq!(
            statuses_that_may_become("INACTIVE"),
            vec!["ACTIVE", "REGISTER_INACTIVE", "PENDING_ACTIVATION"]
        );
        assert_eq!(
            statuses_that_may_become("REVOKED"),
            vec![
                "ACTIVE",
                "INACTIVE",
                "REGISTER_INACTIVE",
                "PENDING_ACTIVATION"
            ]
        );
        let id = new_generation_id();
        assert_eq!(id.len(), 64);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, new_generation_id());
    }

    #[test]
    fn uris_round_trip() {
        assert_eq!(join_uris(&[]), None);
        assert_eq!(split_uris(None), Vec::<String>::new());
        let uris = vec!["http://a/crl".to_owned(), "http://b/crl".to_owned()];
        assert_eq!(split_uris(join_uris(&uris)), uris);
    }
}
