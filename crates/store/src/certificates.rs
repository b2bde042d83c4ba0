//! Storage of device and CA certificates, thing principals and policy attachments
//! (records and traits; engines in sqlite/ and postgres/).
//!
//! The store never parses X.509: the engine extracts what audits need once, at
//! registration ([`CertificateFacts`]), and the store keeps it in columns. Domain
//! refusals that depend on what is stored (a status that forbids a change, an
//! attachment that forbids a delete) are answered as `Ok(Err(refusal))`, decided inside
//! the transaction of the write they guard, so a refused call changes nothing.

use std::pin::Pin;

use async_trait::async_trait;
use futures_util::Stream;

use crate::{Scope, StoreResult, Tag};

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

/// Device and CA certificates, the registration code and the account's issuing CA.
///
/// Listings are keyset pages by `(created_at_ms, id)`, ascending or descending: up to
/// `limit` records strictly after `after` in the listing's order.
#[async_trait]
pub trait CertificateStore: Send + Sync {
    /// The scope's registration code: the stored one, or `candidate` stored now if there
    /// is none (whoever stores first wins; everyone gets the winner).
    async fn registration_code(&self, scope: &Scope, candidate: &str) -> StoreResult<String>;
    /// The scope's registration code, if GetRegistrationCode made one.
    async fn get_registration_code(&self, scope: &Scope) -> StoreResult<Option<String>>;

    async fn get_issuing_ca(&self, scope: &Scope) -> StoreResult<Option<IssuingCaRecord>>;
    /// Stores `candidate` unless the scope already has an issuing CA; returns the one
    /// stored (so concurrent first uses agree on one CA).
    async fn put_issuing_ca(
        &self,
        scope: &Scope,
        candidate: &IssuingCaRecord,
    ) -> StoreResult<IssuingCaRecord>;

    /// Inserts the CA certificate and its tags. `AlreadyExists` if the id is taken.
    /// Refusal: `TooManyWithSubject` if the scope already holds `max_same_subject` CAs
    /// with this subject.
    async fn register_ca_certificate(
        &self,
        scope: &Scope,
        record: &CaCertificateRecord,
        tags: &[Tag],
        max_same_subject: usize,
    ) -> StoreResult<CertificateOutcome<()>>;
    async fn get_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CaCertificateRecord>>;
    /// The scope's CA certificates whose subject is exactly `subject_der`, oldest first.
    async fn find_ca_certificates_by_subject(
        &self,
        scope: &Scope,
        subject_der: &[u8],
    ) -> StoreResult<Vec<CaCertificateRecord>>;
    /// CA certificates, only those whose registration template is `template_name` if given.
    async fn list_ca_certificates(
        &self,
        scope: &Scope,
        template_name: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CaCertificateRecord>>;
    /// Applies the update; `Ok(None)` if there is no such CA certificate.
    async fn update_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
        update: &CaCertificateUpdate,
    ) -> StoreResult<Option<CaCertificateRecord>>;
    /// Deletes the CA certificate and its tags. Refusals: `NotFound`; `State` unless it is
    /// INACTIVE. Device certificates registered under it stay.
    async fn delete_ca_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<CertificateOutcome<()>>;

    /// Inserts the device certificate. `AlreadyExists` if the id is taken. Refusal:
    /// `CaNotFound` if `record.ca_certificate_id` names no CA of the scope.
    async fn register_certificate(
        &self,
        scope: &Scope,
        record: &CertificateRecord,
    ) -> StoreResult<CertificateOutcome<()>>;
    async fn get_certificate(
        &self,
        scope: &Scope,
        id: &str,
    ) -> StoreResult<Option<CertificateRecord>>;
    /// Device certificates, only those registered under `ca_certificate_id` if given.
    async fn list_certificates(
        &self,
        scope: &Scope,
        ca_certificate_id: Option<&str>,
        after: Option<&CertificateKey>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<CertificateRecord>>;
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
    ) -> StoreResult<CertificateOutcome<CertificateRecord>>;
    /// Deletes the certificate. Refusals, in this order: `NotFound`; `State` unless its
    /// status is one of [`DELETABLE_STATUSES`]; `AttachedToThings`; `AttachedToPolicies`
    /// unless `detach_policies`, which detaches them in the same transaction.
    async fn delete_certificate(
        &self,
        scope: &Scope,
        id: &str,
        detach_policies: bool,
    ) -> StoreResult<CertificateOutcome<()>>;

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
        // Each page reads every state with its row, so the clock is not needed here.
        let _ = now_ms;
        let page = page.max(1);
        // The state is the key to read after, or `None` once the last page is out.
        Box::pin(futures_util::stream::unfold(
            Some(None::<CertificateKey>),
            move |state| async move {
                let after = state?;
                match self
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

/// Things' principals (certificates) and policies' targets.
///
/// Listings are keyset pages in byte order of what they list (certificate ids, thing
/// names, policy names, target ARNs).
#[async_trait]
pub trait PrincipalStore: Send + Sync {
    /// Attaches the certificate to the thing; attaching again succeeds (and records the
    /// latest `exclusive`). Refusals: `ThingNotFound`, `CertificateNotFound`, `Exclusive`
    /// (the certificate is attached exclusively to another thing, or `exclusive` and it
    /// is attached to another thing).
    async fn attach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
        exclusive: bool,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>>;
    /// Detaches; returns whether it was attached. Refusal: `ThingNotFound`.
    async fn detach_thing_principal(
        &self,
        scope: &Scope,
        thing_name: &str,
        certificate_id: &str,
    ) -> StoreResult<PrincipalOutcome<bool>>;
    /// Ids of the certificates attached to the thing; `None` if there is no such thing.
    async fn list_thing_principals(
        &self,
        scope: &Scope,
        thing_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>>;
    /// Names of the things the certificate is attached to.
    async fn list_principal_things(
        &self,
        scope: &Scope,
        certificate_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>>;

    /// Attaches the policy to the target; attaching again succeeds. Refusals:
    /// `PolicyNotFound`, `CertificateNotFound` / `GroupNotFound` (the target),
    /// `TooManyPolicies` if the target already has `max_per_target` others.
    async fn attach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target: &PolicyTarget,
        max_per_target: usize,
        now_ms: i64,
    ) -> StoreResult<PrincipalOutcome<()>>;
    /// Detaches; returns whether it was attached.
    async fn detach_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        target_arn: &str,
    ) -> StoreResult<bool>;
    /// The policies attached to any of `target_arns` (each once), by policy name.
    async fn list_attached_policies(
        &self,
        scope: &Scope,
        target_arns: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PolicyRef>>;
    /// ARNs of the policy's targets; `None` if there is no such policy.
    async fn list_targets_for_policy(
        &self,
        scope: &Scope,
        policy_name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>>;
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
