//! Device and CA certificates: GetRegistrationCode, RegisterCACertificate and the other
//! CA operations, RegisterCertificate(WithoutCA), CreateKeysAndCertificate,
//! CreateCertificateFromCsr, DescribeCertificate, ListCertificates(ByCA),
//! UpdateCertificate and DeleteCertificate; plus the CA ARN check tagging needs.
//!
//! Certificates are parsed (x509-parser) once, when they enter the registry; what audits
//! need is stored beside the PEM ([`CertificateFacts`]). Signatures are checked
//! cryptographically (ring). Certificates Palisade issues come from a per-account
//! "Palisade CA" (rcgen) created on first use; its key is stored so later certificates
//! can be issued. Generated keys are ECDSA P-256: rcgen's ring backend cannot generate
//! RSA keys, and P-256 is one of the key types AWS IoT accepts for devices.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use palisade_model::{
    AutoRegistrationStatus, CACertificate, CACertificateDescription, CACertificateStatus,
    Certificate, CertificateDescription, CertificateMode, CertificateStatus, CertificateValidity,
    CreateCertificateFromCsrRequest, CreateCertificateFromCsrResponse,
    CreateKeysAndCertificateRequest, CreateKeysAndCertificateResponse, DeleteCACertificateRequest,
    DeleteCACertificateResponse, DeleteCertificateRequest, DescribeCACertificateRequest,
    DescribeCACertificateResponse, DescribeCertificateRequest, DescribeCertificateResponse,
    GetRegistrationCodeRequest, GetRegistrationCodeResponse, KeyPair, ListCACertificatesRequest,
    ListCACertificatesResponse, ListCertificatesByCARequest, ListCertificatesByCAResponse,
    ListCertificatesRequest, ListCertificatesResponse, RegisterCACertificateRequest,
    RegisterCACertificateResponse, RegisterCertificateRequest, RegisterCertificateResponse,
    RegisterCertificateWithoutCARequest, RegisterCertificateWithoutCAResponse, RegistrationConfig,
    Timestamp, UpdateCACertificateRequest, UpdateCertificateRequest,
};
use palisade_store::{
    CaCertificateRecord, CaCertificateUpdate, CertificateFacts, CertificateKey, CertificateRecord,
    CertificateRefusal, IssuingCaRecord, RegistrationConfigChange, RegistrationConfigRecord,
    StoreError,
};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::required;
use crate::tagging::checked_tags;
use crate::{paging, Engine, EngineError, EngineResult, Scope};

const CERTIFICATES_LISTING: &str = "certificates";
const CA_CERTIFICATES_LISTING: &str = "ca-certificates";
/// Page size when the request names none; AWS documents no default.
const DEFAULT_PAGE: usize = 250;
/// AWS: at most 10 CA certificates with the same subject per account (and region).
const MAX_CA_CERTIFICATES_PER_SUBJECT: usize = 10;
/// The smallest RSA key AWS IoT accepts.
const MIN_RSA_BITS: usize = 2048;

pub(crate) fn certificate_arn(scope: &Scope, id: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:cert/{id}",
        scope.region, scope.account_id
    )
}

pub(crate) fn ca_certificate_arn(scope: &Scope, id: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:cacert/{id}",
        scope.region, scope.account_id
    )
}

/// Certificate ids are lowercase hex; the model also allows uppercase, which names the
/// same certificate.
pub(crate) fn normalise_id(id: &str) -> String {
    id.to_ascii_lowercase()
}

pub(crate) fn certificate_not_found(id: &str) -> EngineError {
    EngineError::NotFound(format!("The certificate {id} does not exist."))
}

fn ca_not_found(id: &str) -> EngineError {
    EngineError::NotFound(format!("The CA certificate {id} does not exist."))
}

pub(crate) fn invalid_certificate(member: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::CertificateValidation(format!("{member} is not a valid certificate: {why}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate as it enters the registry.
pub(crate) struct Parsed {
    pub(crate) der: Vec<u8>,
    pub(crate) id: String,
    pub(crate) pem: String,
    pub(crate) facts: CertificateFacts,
    /// The subject's common name, if it has one.
    common_name: Option<String>,
}

/// PEM (one certificate, 64-character lines) of a DER certificate.
fn pem_of(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The first PEM block of `text` with one of `labels`, decoded; `why` if there is none.
fn pem_block(text: &str, labels: &[&str]) -> Result<Vec<u8>, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes())
        .map_err(|_| "it is not PEM-encoded".to_owned())?;
    if !labels.contains(&pem.label.as_str()) {
        return Err(format!(
            "the PEM block is a {}, not a {}",
            pem.label, labels[0]
        ));
    }
    Ok(pem.contents)
}

/// The key algorithm, size and curve of a SubjectPublicKeyInfo, or why AWS IoT would not
/// accept the key.
fn key_facts(
    spki: &SubjectPublicKeyInfo<'_>,
) -> Result<(String, Option<i32>, Option<String>), String> {
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
            _ => return Err("its RSA public key cannot be read".into()),
        };
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "its RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
            ));
        }
        return Ok(("RSA".into(), i32::try_from(bits).ok(), None));
    }
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let (name, bits) = match curve {
            Some(c) if c == OID_EC_P256 => ("P-256", 256),
            Some(c) if c == OID_NIST_EC_P384 => ("P-384", 384),
            Some(c) if c == OID_NIST_EC_P521 => ("P-521", 521),
            _ => return Err("its EC key is not on a supported curve (P-256, P-384, P-521)".into()),
        };
        return Ok(("EC".into(), Some(bits), Some(name.into())));
    }
    Err(format!(
        "its key algorithm ({alg}) is not supported; use RSA (2048 bits or more) or ECDSA"
    ))
}

fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    for name in names {
                        if let GeneralName::URI(uri) = name {
                            out.push((*uri).to_owned());
                        }
                    }
                }
            }
        }
    }
    out
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// Parses a certificate from DER, extracting what the registry keeps.
fn parse_der(der: Vec<u8>) -> Result<Parsed, String> {
    let (rest, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("it cannot be parsed ({e})"))?;
    if !rest.is_empty() {
        return Err("it has trailing data after the certificate".into());
    }
    let (key_algorithm, key_bits, key_curve) = key_facts(cert.public_key())?;
    let validity = cert.validity();
    let facts = CertificateFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        subject_der: cert.subject().as_raw().to_vec(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        serial_number: hex(cert.raw_serial()),
        not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
        not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
        key_algorithm,
        key_bits,
        key_curve,
        public_key_der: cert.public_key().raw.to_vec(),
        crl_distribution_points: uris(&cert),
    };
    let common_name = common_name(cert.subject());
    drop(cert);
    Ok(Parsed {
        id: hex(&Sha256::digest(&der)),
        pem: pem_of("CERTIFICATE", &der),
        der,
        facts,
        common_name,
    })
}

/// Parses a PEM certificate given in `member`; CertificateValidationException if it is
/// not one Palisade can register.
pub(crate) fn parse_pem(text: &str, member: &str) -> EngineResult<Parsed> {
    let der = pem_block(text, &["CERTIFICATE"]).map_err(|why| invalid_certificate(member, why))?;
    parse_der(der).map_err(|why| invalid_certificate(member, why))
}

/// Whether the certificate `der` carries a valid signature by the key `issuer_spki`.
pub(crate) fn signed_by(der: &[u8], issuer_spki: &[u8]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(issuer_spki) else {
        return false;
    };
    cert.verify_signature(Some(&spki)).is_ok()
}

/// RegisterCertificate's rule for a CA named by `caCertificatePem`: `ca` (the registered
/// CA with that certificate's id, if any) must exist in the account and have signed the
/// certificate `der`.
pub(crate) fn check_given_ca(
    der: &[u8],
    ca: Option<CaCertificateRecord>,
) -> EngineResult<CaCertificateRecord> {
    let ca = ca.ok_or_else(|| {
        EngineError::CertificateValidation(
            "The CA certificate given in caCertificatePem is not registered in this account."
                .into(),
        )
    })?;
    if !signed_by(der, &ca.facts.public_key_der) {
        return Err(EngineError::CertificateValidation(
            "The certificate is not signed by the CA certificate given in caCertificatePem.".into(),
        ));
    }
    Ok(ca)
}

/// The status a registration asks for: `setAsActive` and `status` must agree.
pub(crate) fn registration_status(
    set_as_active: Option<bool>,
    status: Option<CertificateStatus>,
) -> EngineResult<String> {
    let status = match (set_as_active, status) {
        (Some(true), Some(s)) if s != CertificateStatus::Active => {
            return Err(EngineError::InvalidRequest(format!(
                "setAsActive is true but status is {}.",
                s.as_str()
            )))
        }
        (Some(true), _) => CertificateStatus::Active,
        (_, Some(s)) => s,
        (_, None) => CertificateStatus::Inactive,
    };
    if status == CertificateStatus::PendingTransfer {
        return Err(EngineError::CertificateState(
            "A certificate cannot be registered with status PENDING_TRANSFER.".into(),
        ));
    }
    Ok(status.as_str().to_owned())
}

/// A listing position as a marker key: creation time, then id.
fn position_key(created_at_ms: i64, id: &str) -> String {
    format!("{created_at_ms}/{id}")
}

fn open_position(key: Option<String>) -> EngineResult<Option<CertificateKey>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let invalid = || EngineError::InvalidRequest("The marker is invalid.".into());
    let (created, id) = key.split_once('/').ok_or_else(invalid)?;
    Ok(Some((
        created.parse().map_err(|_| invalid())?,
        id.to_owned(),
    )))
}

fn validity(facts: &CertificateFacts) -> CertificateValidity {
    CertificateValidity {
        not_after: Some(Timestamp::from_millis(facts.not_after_ms)),
        not_before: Some(Timestamp::from_millis(facts.not_before_ms)),
    }
}

fn registration_config(c: &RegistrationConfigRecord) -> Option<RegistrationConfig> {
    (c.role_arn.is_some() || c.template_body.is_some() || c.template_name.is_some()).then(|| {
        RegistrationConfig {
            role_arn: c.role_arn.clone(),
            template_body: c.template_body.clone(),
            template_name: c.template_name.clone(),
        }
    })
}

fn config_record(c: RegistrationConfig) -> RegistrationConfigRecord {
    RegistrationConfigRecord {
        role_arn: c.role_arn,
        template_body: c.template_body,
        template_name: c.template_name,
    }
}

fn summary(r: CertificateRecord) -> Certificate {
    Certificate {
        certificate_arn: Some(r.arn),
        certificate_id: Some(r.id),
        certificate_mode: Some(CertificateMode::from_wire(r.certificate_mode.as_str())),
        creation_date: Some(Timestamp::from_millis(r.created_at_ms)),
        status: Some(CertificateStatus::from_wire(r.status.as_str())),
    }
}

fn customer_version(v: i64) -> Option<i32> {
    i32::try_from(v).ok()
}

fn already_exists(kind: &str, id: String, arn: String) -> EngineError {
    EngineError::AlreadyExists {
        message: format!("The {kind} is already registered (id={id})."),
        resource_id: Some(id),
        resource_arn: Some(arn),
    }
}

/// The end of validity of certificates Palisade issues, as AWS's own.
fn issued_not_after() -> time::OffsetDateTime {
    time::macros::datetime!(2049-12-31 23:59:59 UTC)
}

fn issue_error(e: rcgen::Error) -> EngineError {
    EngineError::Internal(format!("issuing a certificate: {e}"))
}

/// A random positive serial number of 16 bytes.
fn serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    rcgen::SerialNumber::from_slice(&bytes)
}

impl Engine {
    pub(crate) fn certificate_generation_id(&self) -> String {
        hex(&Sha256::digest(self.inner.ids.uuid().as_bytes()))
    }

    /// Whether `arn` names an existing CA certificate of the caller (for tagging).
    pub(crate) async fn cacert_arn_exists(
        &self,
        scope: &Scope,
        id: &str,
        arn: &str,
    ) -> EngineResult<bool> {
        Ok(self
            .store()
            .get_ca_certificate(scope, id)
            .await?
            .is_some_and(|c| c.arn == arn))
    }

    pub async fn get_registration_code(
        &self,
        scope: &Scope,
        _input: GetRegistrationCodeRequest,
    ) -> EngineResult<GetRegistrationCodeResponse> {
        let candidate = hex(&Sha256::digest(
            format!("{}{}", self.inner.ids.uuid(), self.inner.ids.uuid()).as_bytes(),
        ));
        let code = self.store().registration_code(scope, &candidate).await?;
        Ok(GetRegistrationCodeResponse {
            registration_code: Some(code),
        })
    }

    pub async fn register_ca_certificate(
        &self,
        scope: &Scope,
        input: RegisterCACertificateRequest,
    ) -> EngineResult<RegisterCACertificateResponse> {
        let pem = required(input.ca_certificate, "caCertificate")?;
        let mode = input.certificate_mode.unwrap_or(CertificateMode::Default);
        let tags = checked_tags(
            input.tags.unwrap_or_default(),
            self.inner.limits.tags_per_resource,
        )?;
        let ca = parse_pem(&pem, "caCertificate")?;
        match (&mode, input.verification_certificate) {
            (CertificateMode::SniOnly, Some(_)) => {
                return Err(EngineError::InvalidRequest(
                    "verificationCertificate must be empty when certificateMode is SNI_ONLY."
                        .into(),
                ))
            }
            (CertificateMode::SniOnly, None) => {}
            (_, None) => {
                return Err(EngineError::InvalidRequest(
                    "verificationCertificate is required unless certificateMode is SNI_ONLY."
                        .into(),
                ))
            }
            (_, Some(verification)) => {
                let verification = parse_pem(&verification, "verificationCertificate")?;
                let code = self.store().get_registration_code(scope).await?;
                let matches = match (&code, &verification.common_name) {
                    (Some(code), Some(cn)) => code.eq_ignore_ascii_case(cn.trim()),
                    _ => false,
                };
                if !matches {
                    return Err(EngineError::RegistrationCodeValidation(
                        "The verification certificate's subject common name must be the \
                         account's registration code (see GetRegistrationCode)."
                            .into(),
                    ));
                }
                if !signed_by(&verification.der, &ca.facts.public_key_der) {
                    return Err(EngineError::CertificateValidation(
                        "The verification certificate is not signed by the CA certificate's \
                         private key."
                            .into(),
                    ));
                }
            }
        }
        let now = self.now_ms();
        let record = CaCertificateRecord {
            arn: ca_certificate_arn(scope, &ca.id),
            id: ca.id,
            pem: ca.pem,
            status: if input.set_as_active == Some(true) {
                "ACTIVE"
            } else {
                "INACTIVE"
            }
            .into(),
            certificate_mode: mode.as_str().to_owned(),
            auto_registration_status: if input.allow_auto_registration == Some(true) {
                "ENABLE"
            } else {
                "DISABLE"
            }
            .into(),
            registration_config: input
                .registration_config
                .map(config_record)
                .unwrap_or_default(),
            owned_by: scope.account_id.clone(),
            generation_id: self.certificate_generation_id(),
            customer_version: 1,
            facts: ca.facts,
            created_at_ms: now,
            updated_at_ms: now,
        };
        match self
            .store()
            .register_ca_certificate(scope, &record, &tags, MAX_CA_CERTIFICATES_PER_SUBJECT)
            .await
        {
            Ok(Ok(())) => Ok(RegisterCACertificateResponse {
                certificate_arn: Some(record.arn),
                certificate_id: Some(record.id),
            }),
            Ok(Err(CertificateRefusal::TooManyWithSubject { limit })) => {
                Err(EngineError::LimitExceeded(format!(
                    "An account can register at most {limit} CA certificates with the same subject."
                )))
            }
            Ok(Err(other)) => Err(EngineError::Internal(format!(
                "unexpected refusal {other:?}"
            ))),
            Err(StoreError::AlreadyExists) => {
                Err(already_exists("CA certificate", record.id, record.arn))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn describe_ca_certificate(
        &self,
        scope: &Scope,
        input: DescribeCACertificateRequest,
    ) -> EngineResult<DescribeCACertificateResponse> {
        let id = normalise_id(&required(input.certificate_id, "caCertificateId")?);
        let r = self
            .store()
            .get_ca_certificate(scope, &id)
            .await?
            .ok_or_else(|| ca_not_found(&id))?;
        Ok(DescribeCACertificateResponse {
            registration_config: registration_config(&r.registration_config),
            certificate_description: Some(CACertificateDescription {
                auto_registration_status: Some(AutoRegistrationStatus::from_wire(
                    r.auto_registration_status.as_str(),
                )),
                certificate_arn: Some(r.arn),
                certificate_id: Some(r.id),
                certificate_mode: Some(CertificateMode::from_wire(r.certificate_mode.as_str())),
                certificate_pem: Some(r.pem),
                creation_date: Some(Timestamp::from_millis(r.created_at_ms)),
                customer_version: customer_version(r.customer_version),
                generation_id: Some(r.generation_id),
                last_modified_date: Some(Timestamp::from_millis(r.updated_at_ms)),
                owned_by: Some(r.owned_by),
                status: Some(CACertificateStatus::from_wire(r.status.as_str())),
                validity: Some(validity(&r.facts)),
            }),
        })
    }

    pub async fn list_ca_certificates(
        &self,
        scope: &Scope,
        input: ListCACertificatesRequest,
    ) -> EngineResult<ListCACertificatesResponse> {
        let descending = !input.ascending_order.unwrap_or(true);
        let template = input.template_name.filter(|t| !t.is_empty());
        let listing = format!(
            "{CA_CERTIFICATES_LISTING}/{}",
            template.as_deref().unwrap_or("")
        );
        let after = open_position(self.open_marker(
            scope,
            &listing,
            descending,
            input.marker.as_deref(),
        )?)?;
        let size = paging::page_size(input.page_size, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store().list_ca_certificates(
                scope,
                template.as_deref(),
                after.as_ref(),
                descending,
                n,
            )
        })
        .await?;
        let next_marker = page.next(|last| {
            self.issue_marker(
                scope,
                &listing,
                descending,
                &position_key(last.created_at_ms, &last.id),
            )
        });
        let records = page.items;
        Ok(ListCACertificatesResponse {
            next_marker,
            certificates: Some(
                records
                    .into_iter()
                    .map(|r| CACertificate {
                        certificate_arn: Some(r.arn),
                        certificate_id: Some(r.id),
                        creation_date: Some(Timestamp::from_millis(r.created_at_ms)),
                        status: Some(CACertificateStatus::from_wire(r.status.as_str())),
                    })
                    .collect(),
            ),
        })
    }

    /// UpdateCACertificate; the model has no output.
    pub async fn update_ca_certificate(
        &self,
        scope: &Scope,
        input: UpdateCACertificateRequest,
    ) -> EngineResult<()> {
        let id = normalise_id(&required(input.certificate_id, "caCertificateId")?);
        let remove = input.remove_auto_registration == Some(true);
        let config = match (input.registration_config, remove) {
            (Some(_), true) => {
                return Err(EngineError::InvalidRequest(
                    "registrationConfig cannot be given together with removeAutoRegistration."
                        .into(),
                ))
            }
            (Some(c), false) => RegistrationConfigChange::Replace(config_record(c)),
            (None, true) => RegistrationConfigChange::Remove,
            (None, false) => RegistrationConfigChange::Keep,
        };
        let update = CaCertificateUpdate {
            status: input.new_status.map(|s| s.as_str().to_owned()),
            auto_registration_status: input
                .new_auto_registration_status
                .map(|s| s.as_str().to_owned()),
            registration_config: config,
            generation_id: self.certificate_generation_id(),
            updated_at_ms: self.now_ms(),
        };
        if update.status.is_none()
            && update.auto_registration_status.is_none()
            && update.registration_config == RegistrationConfigChange::Keep
        {
            // Nothing to change: only the CA's existence is checked.
            return match self.store().get_ca_certificate(scope, &id).await? {
                Some(_) => Ok(()),
                None => Err(ca_not_found(&id)),
            };
        }
        match self
            .store()
            .update_ca_certificate(scope, &id, &update)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(ca_not_found(&id)),
        }
    }

    pub async fn delete_ca_certificate(
        &self,
        scope: &Scope,
        input: DeleteCACertificateRequest,
    ) -> EngineResult<DeleteCACertificateResponse> {
        let id = normalise_id(&required(input.certificate_id, "caCertificateId")?);
        match self.store().delete_ca_certificate(scope, &id).await? {
            Ok(()) => Ok(DeleteCACertificateResponse {}),
            Err(CertificateRefusal::NotFound) => Err(ca_not_found(&id)),
            Err(CertificateRefusal::State { status }) => Err(EngineError::CertificateState(
                format!("The CA certificate {id} is {status}; it must be INACTIVE to be deleted."),
            )),
            Err(other) => Err(EngineError::Internal(format!(
                "unexpected refusal {other:?}"
            ))),
        }
    }

    /// Stores a parsed device certificate.
    async fn store_certificate(
        &self,
        scope: &Scope,
        cert: Parsed,
        status: String,
        mode: &str,
        ca_certificate_id: Option<String>,
        issuer_certificate_id: Option<String>,
    ) -> EngineResult<CertificateRecord> {
        let now = self.now_ms();
        let record = CertificateRecord {
            arn: certificate_arn(scope, &cert.id),
            id: cert.id,
            pem: cert.pem,
            status,
            certificate_mode: mode.to_owned(),
            ca_certificate_id,
            issuer_certificate_id,
            owned_by: scope.account_id.clone(),
            previous_owned_by: None,
            generation_id: self.certificate_generation_id(),
            customer_version: 1,
            facts: cert.facts,
            created_at_ms: now,
            updated_at_ms: now,
        };
        match self.store().register_certificate(scope, &record).await {
            Ok(Ok(())) => Ok(record),
            Ok(Err(CertificateRefusal::CaNotFound)) => Err(EngineError::CertificateValidation(
                "The CA certificate that signed this certificate is not registered.".into(),
            )),
            Ok(Err(other)) => Err(EngineError::Internal(format!(
                "unexpected refusal {other:?}"
            ))),
            Err(StoreError::AlreadyExists) => {
                Err(already_exists("certificate", record.id, record.arn))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn register_certificate(
        &self,
        scope: &Scope,
        input: RegisterCertificateRequest,
    ) -> EngineResult<RegisterCertificateResponse> {
        let pem = required(input.certificate_pem, "certificatePem")?;
        let status = registration_status(input.set_as_active, input.status)?;
        let cert = parse_pem(&pem, "certificatePem")?;
        let ca = match input.ca_certificate_pem {
            Some(ca_pem) => {
                let given = parse_pem(&ca_pem, "caCertificatePem")?;
                let ca = self.store().get_ca_certificate(scope, &given.id).await?;
                check_given_ca(&cert.der, ca)?
            }
            None => {
                // Candidates by issuer name, then by signature. Several that verify (the
                // same subject and key registered twice) leave the CA ambiguous, which AWS
                // answers with CertificateConflictException.
                let candidates = self
                    .store()
                    .find_ca_certificates_by_subject(scope, &cert.facts.issuer_der)
                    .await?;
                let verified: Vec<CaCertificateRecord> = candidates
                    .into_iter()
                    .filter(|ca| signed_by(&cert.der, &ca.facts.public_key_der))
                    .collect();
                if verified.len() > 1 {
                    return Err(EngineError::CertificateConflict(
                        "More than one registered CA certificate has this certificate's issuer \
                         subject and public key; give caCertificatePem to choose one."
                            .into(),
                    ));
                }
                verified.into_iter().next().ok_or_else(|| {
                    EngineError::CertificateValidation(
                        "No CA certificate registered in this account signed this certificate; \
                         register its CA first, or use RegisterCertificateWithoutCA."
                            .into(),
                    )
                })?
            }
        };
        let record = self
            .store_certificate(
                scope,
                cert,
                status,
                &ca.certificate_mode,
                Some(ca.id.clone()),
                Some(ca.id),
            )
            .await?;
        Ok(RegisterCertificateResponse {
            certificate_arn: Some(record.arn),
            certificate_id: Some(record.id),
        })
    }

    pub async fn register_certificate_without_ca(
        &self,
        scope: &Scope,
        input: RegisterCertificateWithoutCARequest,
    ) -> EngineResult<RegisterCertificateWithoutCAResponse> {
        let pem = required(input.certificate_pem, "certificatePem")?;
        let status = registration_status(None, input.status)?;
        let cert = parse_pem(&pem, "certificatePem")?;
        let record = self
            .store_certificate(scope, cert, status, "SNI_ONLY", None, None)
            .await?;
        Ok(RegisterCertificateWithoutCAResponse {
            certificate_arn: Some(record.arn),
            certificate_id: Some(record.id),
        })
    }

    /// The account's Palisade CA, created (and stored) on first use.
    async fn issuing_ca(&self, scope: &Scope) -> EngineResult<IssuingCaRecord> {
        if let Some(ca) = self.store().get_issuing_ca(scope).await? {
            return Ok(ca);
        }
        let key = rcgen::KeyPair::generate().map_err(issue_error)?;
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Palisade");
        dn.push(
            rcgen::DnType::CommonName,
            format!("Palisade CA {} {}", scope.account_id, scope.region),
        );
        params.distinguished_name = dn;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = self.now_time();
        params.not_after = issued_not_after();
        params.serial_number = Some(serial());
        let cert = params.self_signed(&key).map_err(issue_error)?;
        let candidate = IssuingCaRecord {
            id: hex(&Sha256::digest(cert.der())),
            certificate_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            created_at_ms: self.now_ms(),
        };
        Ok(self.store().put_issuing_ca(scope, &candidate).await?)
    }

    fn now_time(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(self.now_ms().div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// Issues a device certificate for `public_key` with `subject`, signed by the
    /// account's Palisade CA, and registers it.
    async fn issue(
        &self,
        scope: &Scope,
        public_key: &impl rcgen::PublicKeyData,
        subject: rcgen::DistinguishedName,
        set_as_active: Option<bool>,
    ) -> EngineResult<CertificateRecord> {
        let ca = self.issuing_ca(scope).await?;
        let ca_key = rcgen::KeyPair::from_pem(&ca.private_key_pem).map_err(issue_error)?;
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(&ca.certificate_pem, ca_key).map_err(issue_error)?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = subject;
        params.not_before = self.now_time();
        params.not_after = issued_not_after();
        params.serial_number = Some(serial());
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(public_key, &issuer).map_err(issue_error)?;
        let parsed = parse_der(cert.der().to_vec()).map_err(|why| {
            EngineError::Internal(format!("issued an unreadable certificate: {why}"))
        })?;
        let status = if set_as_active == Some(true) {
            "ACTIVE"
        } else {
            "INACTIVE"
        };
        self.store_certificate(scope, parsed, status.into(), "DEFAULT", None, Some(ca.id))
            .await
    }

    pub async fn create_keys_and_certificate(
        &self,
        scope: &Scope,
        input: CreateKeysAndCertificateRequest,
    ) -> EngineResult<CreateKeysAndCertificateResponse> {
        let key = rcgen::KeyPair::generate().map_err(issue_error)?;
        let mut subject = rcgen::DistinguishedName::new();
        subject.push(rcgen::DnType::CommonName, "AWS IoT Certificate");
        let record = self
            .issue(scope, &key, subject, input.set_as_active)
            .await?;
        Ok(CreateKeysAndCertificateResponse {
            certificate_arn: Some(record.arn),
            certificate_id: Some(record.id),
            certificate_pem: Some(record.pem),
            // Returned once; never stored.
            key_pair: Some(KeyPair {
                private_key: Some(key.serialize_pem()),
                public_key: Some(key.public_key_pem()),
            }),
        })
    }

    pub async fn create_certificate_from_csr(
        &self,
        scope: &Scope,
        input: CreateCertificateFromCsrRequest,
    ) -> EngineResult<CreateCertificateFromCsrResponse> {
        let csr_pem = required(
            input.certificate_signing_request,
            "certificateSigningRequest",
        )?;
        let bad = |why: String| {
            EngineError::InvalidRequest(format!(
                "certificateSigningRequest is not a valid certificate signing request: {why}"
            ))
        };
        let der = pem_block(
            &csr_pem,
            &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
        )
        .map_err(bad)?;
        let (public_key, subject) = {
            let (rest, csr) = X509CertificationRequest::from_der(&der)
                .map_err(|e| bad(format!("it cannot be parsed ({e})")))?;
            if !rest.is_empty() {
                return Err(bad("it has trailing data".into()));
            }
            csr.verify_signature()
                .map_err(|_| bad("its signature does not verify".into()))?;
            let info = &csr.certification_request_info;
            key_facts(&info.subject_pki).map_err(bad)?;
            let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
                .map_err(|e| bad(format!("its public key is not supported ({e})")))?;
            let mut subject = rcgen::DistinguishedName::new();
            for attr in info.subject.iter_attributes() {
                let (Some(oid), Ok(value)) = (attr.attr_type().iter(), attr.as_str()) else {
                    continue;
                };
                let oid: Vec<u64> = oid.collect();
                subject.push(rcgen::DnType::from_oid(&oid), value);
            }
            if subject.iter().next().is_none() {
                subject.push(rcgen::DnType::CommonName, "AWS IoT Certificate");
            }
            (public_key, subject)
        };
        let record = self
            .issue(scope, &public_key, subject, input.set_as_active)
            .await?;
        Ok(CreateCertificateFromCsrResponse {
            certificate_arn: Some(record.arn),
            certificate_id: Some(record.id),
            certificate_pem: Some(record.pem),
        })
    }

    pub async fn describe_certificate(
        &self,
        scope: &Scope,
        input: DescribeCertificateRequest,
    ) -> EngineResult<DescribeCertificateResponse> {
        let id = normalise_id(&required(input.certificate_id, "certificateId")?);
        let r = self
            .store()
            .get_certificate(scope, &id)
            .await?
            .ok_or_else(|| certificate_not_found(&id))?;
        Ok(DescribeCertificateResponse {
            certificate_description: Some(CertificateDescription {
                ca_certificate_id: r.ca_certificate_id,
                certificate_arn: Some(r.arn),
                certificate_id: Some(r.id),
                certificate_mode: Some(CertificateMode::from_wire(r.certificate_mode.as_str())),
                certificate_pem: Some(r.pem),
                creation_date: Some(Timestamp::from_millis(r.created_at_ms)),
                customer_version: customer_version(r.customer_version),
                generation_id: Some(r.generation_id),
                last_modified_date: Some(Timestamp::from_millis(r.updated_at_ms)),
                owned_by: Some(r.owned_by),
                previous_owned_by: r.previous_owned_by,
                status: Some(CertificateStatus::from_wire(r.status.as_str())),
                transfer_data: None,
                validity: Some(validity(&r.facts)),
            }),
        })
    }

    async fn certificate_page(
        &self,
        scope: &Scope,
        ca_certificate_id: Option<&str>,
        ascending: Option<bool>,
        marker: Option<&str>,
        page_size: Option<i32>,
    ) -> EngineResult<(Vec<Certificate>, Option<String>)> {
        let descending = !ascending.unwrap_or(true);
        let listing = format!("{CERTIFICATES_LISTING}/{}", ca_certificate_id.unwrap_or(""));
        let after = open_position(self.open_marker(scope, &listing, descending, marker)?)?;
        let size = paging::page_size(page_size, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_certificates(scope, ca_certificate_id, after.as_ref(), descending, n)
        })
        .await?;
        let next_marker = page.next(|last| {
            self.issue_marker(
                scope,
                &listing,
                descending,
                &position_key(last.created_at_ms, &last.id),
            )
        });
        let records = page.items;
        Ok((records.into_iter().map(summary).collect(), next_marker))
    }

    pub async fn list_certificates(
        &self,
        scope: &Scope,
        input: ListCertificatesRequest,
    ) -> EngineResult<ListCertificatesResponse> {
        let (certificates, next_marker) = self
            .certificate_page(
                scope,
                None,
                input.ascending_order,
                input.marker.as_deref(),
                input.page_size,
            )
            .await?;
        Ok(ListCertificatesResponse {
            certificates: Some(certificates),
            next_marker,
        })
    }

    /// Lists the device certificates registered under a CA; an unknown CA has none (the
    /// model lists no ResourceNotFoundException for this operation).
    pub async fn list_certificates_by_ca(
        &self,
        scope: &Scope,
        input: ListCertificatesByCARequest,
    ) -> EngineResult<ListCertificatesByCAResponse> {
        let ca = normalise_id(&required(input.ca_certificate_id, "caCertificateId")?);
        let (certificates, next_marker) = self
            .certificate_page(
                scope,
                Some(&ca),
                input.ascending_order,
                input.marker.as_deref(),
                input.page_size,
            )
            .await?;
        Ok(ListCertificatesByCAResponse {
            certificates: Some(certificates),
            next_marker,
        })
    }

    /// UpdateCertificate; the model has no output.
    pub async fn update_certificate(
        &self,
        scope: &Scope,
        input: UpdateCertificateRequest,
    ) -> EngineResult<()> {
        let id = normalise_id(&required(input.certificate_id, "certificateId")?);
        let status = required(input.new_status, "newStatus")?;
        if matches!(
            status,
            CertificateStatus::PendingTransfer | CertificateStatus::PendingActivation
        ) {
            return Err(EngineError::CertificateState(format!(
                "The status {} is used internally by AWS IoT and cannot be set.",
                status.as_str()
            )));
        }
        match self
            .store()
            .update_certificate_status(
                scope,
                &id,
                status.as_str(),
                &self.certificate_generation_id(),
                self.now_ms(),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(CertificateRefusal::NotFound) => Err(certificate_not_found(&id)),
            Err(CertificateRefusal::State { status: current }) => {
                Err(EngineError::CertificateState(format!(
                    "The certificate {id} is {current} and cannot be made {}.",
                    status.as_str()
                )))
            }
            Err(other) => Err(EngineError::Internal(format!(
                "unexpected refusal {other:?}"
            ))),
        }
    }

    /// DeleteCertificate; the model has no output.
    ///
    /// `forceDelete`: AWS documents it as "forces the deletion of a certificate if it is
    /// inactive and is not attached to an IoT thing". So it overrides only the policy
    /// rule: the certificate must still be INACTIVE or REVOKED (CertificateStateException)
    /// and attached to no thing (DeleteConflictException), and its policies are detached
    /// as it is deleted, in the same transaction.
    pub async fn delete_certificate(
        &self,
        scope: &Scope,
        input: DeleteCertificateRequest,
    ) -> EngineResult<()> {
        let id = normalise_id(&required(input.certificate_id, "certificateId")?);
        let force = input.force_delete == Some(true);
        match self.store().delete_certificate(scope, &id, force).await? {
            Ok(()) => Ok(()),
            Err(CertificateRefusal::NotFound) => Err(certificate_not_found(&id)),
            Err(CertificateRefusal::State { status }) => Err(EngineError::CertificateState(
                format!(
                    "Certificate must be deactivated (INACTIVE or REVOKED) before deletion; it is {status}. Id: {id}"
                ),
            )),
            Err(CertificateRefusal::AttachedToThings) => Err(EngineError::DeleteConflict(
                format!(
                    "Things must be detached before deletion (arn: {})",
                    certificate_arn(scope, &id)
                ),
            )),
            Err(CertificateRefusal::AttachedToPolicies) => Err(EngineError::DeleteConflict(
                format!(
                    "Certificate policies must be detached before deletion (arn: {})",
                    certificate_arn(scope, &id)
                ),
            )),
            Err(other) => Err(EngineError::Internal(format!(
                "unexpected refusal {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::CertificateParams, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec!["http://crl.example/ca.crl".into()],
        }];
        (params, key)
    }

    #[test]
    fn parses_facts_and_verifies_signatures() {
        let (params, key) = ca();
        let ca_cert = params.self_signed(&key).unwrap();
        let parsed = parse_pem(&ca_cert.pem(), "caCertificate").unwrap();
        assert_eq!(parsed.id, hex(&Sha256::digest(ca_cert.der())));
        assert_eq!(parsed.facts.key_algorithm, "EC");
        assert_eq!(parsed.facts.key_curve.as_deref(), Some("P-256"));
        assert_eq!(parsed.facts.key_bits, Some(256));
        assert_eq!(
            parsed.facts.crl_distribution_points,
            vec!["http://crl.example/ca.crl".to_owned()]
        );
        assert_eq!(parsed.pem, ca_cert.pem().replace("\r\n", "\n"));
        assert!(signed_by(&parsed.der, &parsed.facts.public_key_der));
        let other = rcgen::KeyPair::generate().unwrap();
        let other_spki = parse_der(
            rcgen::CertificateParams::default()
                .self_signed(&other)
                .unwrap()
                .der()
                .to_vec(),
        )
        .unwrap()
        .facts
        .public_key_der;
        assert!(!signed_by(&parsed.der, &other_spki));
    }

    /// DER length octets.
    fn der_len(n: usize) -> Vec<u8> {
        match n {
            0..=127 => vec![n as u8],
            128..=255 => vec![0x81, n as u8],
            _ => vec![0x82, (n >> 8) as u8, n as u8],
        }
    }

    /// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo.
    fn spki_of_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
        let alg = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bits = vec![0x03];
        bits.extend(der_len(pkcs1.len() + 1));
        bits.push(0);
        bits.extend_from_slice(pkcs1);
        let mut out = vec![0x30];
        out.extend(der_len(alg.len() + bits.len()));
        out.extend_from_slice(&alg);
        out.extend(bits);
        out
    }

    /// A certificate around a known-weak RSA key from the shared test data (signed by a
    /// test CA that never needs the device's private key) parses, and its key facts are
    /// what audits will read. Skipped when the shared test data is not beside the tree.
    #[test]
    fn rsa_facts_of_a_certificate_around_a_test_key() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata/keys/rsa-roca.pub.pem"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipped: {path} not found");
            return;
        };
        let pkcs1 = pem_block(&text, &["RSA PUBLIC KEY"]).unwrap();
        let spki = spki_of_pkcs1(&pkcs1);
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(&spki).unwrap();
        let (params, key) = ca();
        let issuer = rcgen::Issuer::new(params, key);
        let cert = rcgen::CertificateParams::default()
            .signed_by(&public_key, &issuer)
            .unwrap();
        let parsed = parse_der(cert.der().to_vec()).unwrap();
        assert_eq!(parsed.facts.key_algorithm, "RSA");
        assert_eq!(parsed.facts.key_bits, Some(2048));
        assert_eq!(parsed.facts.key_curve, None);
        assert_eq!(parsed.facts.public_key_der, spki);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for input in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "-----BEGIN CERTIFICATE-----\n",
        ] {
            assert!(
                matches!(
                    parse_pem(input, "certificatePem"),
                    Err(EngineError::CertificateValidation(_))
                ),
                "{input:?}"
            );
        }
        assert!(!signed_by(b"junk", b"junk"));
    }

    #[test]
    fn status_from_flags() {
        assert_eq!(registration_status(None, None).unwrap(), "INACTIVE");
        assert_eq!(registration_status(Some(true), None).unwrap(), "ACTIVE");
        assert_eq!(
            registration_status(Some(false), Some(CertificateStatus::Revoked)).unwrap(),
            "REVOKED"
        );
        assert!(registration_status(Some(true), Some(CertificateStatus::Inactive)).is_err());
        assert!(matches!(
            registration_status(None, Some(CertificateStatus::PendingTransfer)),
            Err(EngineError::CertificateState(_))
        ));
    }

    #[test]
    fn positions_round_trip() {
        let key = position_key(1_700_000_000_000, "ab12");
        assert_eq!(
            open_position(Some(key)).unwrap(),
            Some((1_700_000_000_000, "ab12".to_owned()))
        );
        assert!(open_position(Some("nonsense".into())).is_err());
        assert!(open_position(None).unwrap().is_none());
    }
}
