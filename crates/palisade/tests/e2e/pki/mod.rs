//! Test PKI for the certificate, CA and principal end-to-end tests: CAs, device
//! certificates, verification certificates and CSRs made with rcgen, and small helpers
//! to read certificates back.
#![allow(dead_code)] // each test module uses a different subset

use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::Client;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use x509_parser::prelude::FromDer;

/// A CA with its key, able to sign certificates.
pub struct TestCa {
    pub pem: String,
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    common_name: String,
    key_pem: String,
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade tests");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Sets `params`' validity to `[now + not_before_secs, now + not_after_secs]` (offsets
/// from the system time, in seconds; negative is in the past).
pub fn set_validity(params: &mut CertificateParams, not_before_secs: i64, not_after_secs: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let at = |offset: i64| {
        let secs = u64::try_from(now + offset).expect("a time after 1970");
        rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs)
    };
    params.not_before = at(not_before_secs);
    params.not_after = at(not_after_secs);
}

const DAY_SECS: i64 = 24 * 60 * 60;

/// A self-signed end-entity certificate valid from `from_days` to `to_days` days from
/// now (negative: in the past).
pub fn self_signed_valid(common_name: &str, from_days: i64, to_days: i64) -> String {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    set_validity(&mut params, from_days * DAY_SECS, to_days * DAY_SECS);
    params.self_signed(&key).expect("self-signed").pem()
}

impl TestCa {
    /// A self-signed root CA valid from `from_days` to `to_days` days from now.
    pub fn with_validity(common_name: &str, from_days: i64, to_days: i64) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = ca_params(common_name);
        set_validity(&mut params, from_days * DAY_SECS, to_days * DAY_SECS);
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            common_name: common_name.to_owned(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for a public key given as a PEM SubjectPublicKeyInfo (whose
    /// private key the test need not have), signed by this CA.
    pub fn issue_for_public_key(&self, common_name: &str, spki_pem: &str) -> String {
        let key = rcgen::SubjectPublicKeyInfo::from_pem(spki_pem).expect("SPKI PEM");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params
            .signed_by(&key, &self.issuer)
            .expect("signed leaf")
            .pem()
    }

    /// A CA certificate for a public key given as a PEM SubjectPublicKeyInfo, signed
    /// by this CA (an intermediate; registrable in SNI_ONLY mode, which needs no
    /// verification certificate and so no private key).
    pub fn issue_ca_for_public_key(&self, common_name: &str, spki_pem: &str) -> String {
        let key = rcgen::SubjectPublicKeyInfo::from_pem(spki_pem).expect("SPKI PEM");
        ca_params(common_name)
            .signed_by(&key, &self.issuer)
            .expect("signed CA")
            .pem()
    }

    /// A self-signed root CA.
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let params = ca_params(common_name);
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            common_name: common_name.to_owned(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A second certificate for this CA: same subject, same key, another serial number,
    /// so another certificate id. Certificates either one signs verify under both.
    pub fn reissued(&self, serial: u64) -> TestCa {
        let key = KeyPair::from_pem(&self.key_pem).expect("CA key");
        let mut params = ca_params(&self.common_name);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            common_name: self.common_name.clone(),
            key_pem: self.key_pem.clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Another CA with the same subject but its own key.
    pub fn same_subject(common_name: &str) -> TestCa {
        TestCa::new(common_name)
    }

    /// A leaf certificate for a new key, signed by this CA; the PEM and the key.
    pub fn issue(&self, common_name: &str) -> (String, KeyPair) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        (cert.pem(), key)
    }

    /// A leaf certificate with a CRL distribution point.
    pub fn issue_with_crl(&self, common_name: &str, crl: &str) -> String {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![crl.to_owned()],
        }];
        params
            .signed_by(&key, &self.issuer)
            .expect("signed leaf")
            .pem()
    }

    /// The private-key verification certificate for `registration_code`.
    pub fn verification_certificate(&self, registration_code: &str) -> String {
        self.issue(registration_code).0
    }
}

/// A self-signed end-entity certificate (for RegisterCertificateWithoutCA).
pub fn self_signed(common_name: &str) -> String {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.self_signed(&key).expect("self-signed").pem()
}

/// A CSR for a new key with subject CN `common_name`; the PEM and the key.
pub fn csr(common_name: &str) -> (String, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    let csr = params.serialize_request(&key).expect("csr");
    (csr.pem().expect("csr pem"), key)
}

/// The DER of the first PEM block.
pub fn der(pem: &str) -> Vec<u8> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    block.contents
}

/// Lowercase hex SHA-256 of a PEM certificate's DER: its AWS certificate id.
pub fn certificate_id(pem: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der(pem))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The subject CN and SubjectPublicKeyInfo DER of a PEM certificate.
pub fn subject_and_key(pem: &str) -> (String, Vec<u8>) {
    let der = der(pem);
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).expect("cert");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    (cn, cert.public_key().raw.to_vec())
}

/// Whether `pem` is signed by the key of `issuer_pem`.
pub fn verifies(pem: &str, issuer_pem: &str) -> bool {
    let (leaf, issuer) = (der(pem), der(issuer_pem));
    let (_, leaf) = x509_parser::certificate::X509Certificate::from_der(&leaf).expect("leaf");
    let (_, issuer) = x509_parser::certificate::X509Certificate::from_der(&issuer).expect("issuer");
    leaf.verify_signature(Some(issuer.public_key())).is_ok()
}

/// The account's registration code.
pub async fn registration_code(client: &Client) -> String {
    client
        .get_registration_code()
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetRegistrationCode: {}", DisplayErrorContext(e)))
        .registration_code()
        .expect("registrationCode")
        .to_owned()
}

/// Registers `ca` in DEFAULT mode through the registration-code flow; returns its id.
pub async fn register_ca(client: &Client, ca: &TestCa, active: bool) -> String {
    let code = registration_code(client).await;
    client
        .register_ca_certificate()
        .ca_certificate(&ca.pem)
        .verification_certificate(ca.verification_certificate(&code))
        .set_as_active(active)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RegisterCACertificate: {}", DisplayErrorContext(e)))
        .certificate_id()
        .expect("certificateId")
        .to_owned()
}

/// A certificate made by CreateKeysAndCertificate: `(id, arn)`.
pub async fn create_certificate(client: &Client, active: bool) -> (String, String) {
    let out = client
        .create_keys_and_certificate()
        .set_as_active(active)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKeysAndCertificate: {}", DisplayErrorContext(e)));
    (
        out.certificate_id().expect("certificateId").to_owned(),
        out.certificate_arn().expect("certificateArn").to_owned(),
    )
}

// ------------------------------------------------------------------------------------
// Revocation: CRLs, and certificates with CRL distribution points and AIA

/// The time `offset_secs` from now (system clock).
fn at_offset(offset_secs: i64) -> time::OffsetDateTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let secs = u64::try_from(now + offset_secs).expect("a time after 1970");
    rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs)
}

/// An AuthorityInfoAccess extension with one caIssuers URI.
fn aia_ca_issuers(uri: &str) -> rcgen::CustomExtension {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            out.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(content);
        out
    }
    let ca_issuers_oid = tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02]);
    let location = tlv(0x86, uri.as_bytes());
    let desc = tlv(0x30, &[ca_issuers_oid, location].concat());
    rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], tlv(0x30, &desc))
}

impl TestCa {
    /// An intermediate CA signed by this one, able to sign certificates itself; with
    /// a CRL distribution point (where this CA publishes its CRL) and an AIA caIssuers
    /// URL (where this CA's certificate can be fetched) if given.
    pub fn intermediate(
        &self,
        common_name: &str,
        crl: Option<&str>,
        ca_issuers: Option<&str>,
    ) -> TestCa {
        let key = KeyPair::generate().expect("intermediate key");
        let mut params = ca_params(common_name);
        if let Some(uri) = crl {
            params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![uri.to_owned()],
            }];
        }
        if let Some(uri) = ca_issuers {
            params.custom_extensions = vec![aia_ca_issuers(uri)];
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed intermediate");
        TestCa {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            common_name: common_name.to_owned(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A CRL of this CA revoking the certificates `revoked` (PEM), issued
    /// `this_update_secs` from now and due again `next_update_secs` from now; DER.
    pub fn crl(
        &self,
        revoked: &[&str],
        number: u64,
        this_update_secs: i64,
        next_update_secs: i64,
    ) -> Vec<u8> {
        rcgen::CertificateRevocationListParams {
            this_update: at_offset(this_update_secs),
            next_update: at_offset(next_update_secs),
            crl_number: rcgen::SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|pem| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&serial_bytes(pem)),
                    revocation_time: at_offset(this_update_secs - 60),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("signed CRL")
        .der()
        .to_vec()
    }
}

/// The serial number of a PEM certificate: its DER INTEGER's content octets.
pub fn serial_bytes(pem: &str) -> Vec<u8> {
    let der = der(pem);
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).expect("cert");
    cert.raw_serial().to_vec()
}

/// The serial number as Palisade reports it: lowercase hex of [`serial_bytes`].
pub fn serial_hex(pem: &str) -> String {
    serial_bytes(pem)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The subject of a PEM certificate as Palisade writes it (RFC 4514-like text).
pub fn subject_text(pem: &str) -> String {
    let der = der(pem);
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).expect("cert");
    cert.subject().to_string()
}
