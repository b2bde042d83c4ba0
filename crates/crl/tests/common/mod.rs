//! Test fixtures: CAs, certificates and CRLs made with rcgen, and a small DER writer for
//! CRLs rcgen cannot make (odd serial encodings, unusual extensions, RSA-PSS).

// Each test binary uses a different subset.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
    SignatureAlgorithm,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// 2025-01-01T00:00:00Z and 2025-01-08T00:00:00Z.
pub const THIS_UPDATE_S: i64 = 1_735_689_600;
pub const NEXT_UPDATE_S: i64 = THIS_UPDATE_S + 7 * 86_400;

pub const RSA_A: &str = include_str!("../data/rsa2048-a.pk8.pem");
pub const RSA_B: &str = include_str!("../data/rsa2048-b.pk8.pem");

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub cert_der: Vec<u8>,
}

pub fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).expect("generate key")
}

/// rcgen's ring backend cannot generate RSA keys, so RSA CAs use the fixture keys.
pub fn rsa_key(pem: &str, alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::from_pem_and_sign_algo(pem, alg).expect("RSA fixture key")
}

pub fn ca(name: &str, key: KeyPair) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Palisade tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca {
        cert_der: cert.der().to_vec(),
        issuer: Issuer::new(params, key),
    }
}

impl Ca {
    /// A device certificate with this serial (rcgen writes it as a positive INTEGER:
    /// leading zeros dropped, a 0x00 added when the top bit is set).
    pub fn issue(&self, serial: &[u8]) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, "device");
        params.serial_number = Some(SerialNumber::from_slice(serial));
        let device_key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        params
            .signed_by(&device_key, &self.issuer)
            .expect("issue device certificate")
            .der()
            .to_vec()
    }

    pub fn crl(&self, revoked: Vec<RevokedCertParams>) -> rcgen::CertificateRevocationList {
        CertificateRevocationListParams {
            this_update: time(THIS_UPDATE_S),
            next_update: time(NEXT_UPDATE_S),
            crl_number: SerialNumber::from_slice(&[0x01, 0x02]),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("sign CRL")
    }

    pub fn subject_der(&self) -> Vec<u8> {
        parsed(&self.cert_der, |c| c.subject().as_raw().to_vec())
    }

    pub fn spki_der(&self) -> Vec<u8> {
        parsed(&self.cert_der, |c| c.public_key().raw.to_vec())
    }
}

pub fn time(unix_s: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix_s).expect("time")
}

pub fn revoked(serial: &[u8], reason: Option<RevocationReason>) -> RevokedCertParams {
    RevokedCertParams {
        serial_number: SerialNumber::from_slice(serial),
        revocation_time: time(THIS_UPDATE_S - 3600),
        reason_code: reason,
        invalidity_date: None,
    }
}

pub fn parsed<T>(der: &[u8], f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let (_, cert) = X509Certificate::from_der(der).expect("certificate");
    f(&cert)
}

/// The serial exactly as palisade-engine stores it (`serial_number:
/// hex(cert.raw_serial())` in crates/engine/src/certificates.rs).
pub fn engine_serial(cert_der: &[u8]) -> String {
    parsed(cert_der, |cert| {
        cert.raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

// ---- A small DER writer ----

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv(0x06, content)
}

pub fn int(content: &[u8]) -> Vec<u8> {
    tlv(0x02, content)
}

pub fn utc(text: &str) -> Vec<u8> {
    tlv(0x17, text.as_bytes())
}

pub fn extension(oid_content: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![oid(oid_content)];
    if critical {
        parts.push(tlv(0x01, &[0xff]));
    }
    parts.push(tlv(0x04, value));
    seq(&parts)
}

pub const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
pub const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
pub const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
pub const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
pub const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
pub const OID_REASON_CODE: &[u8] = &[0x55, 0x1d, 0x15];
pub const OID_CERTIFICATE_ISSUER: &[u8] = &[0x55, 0x1d, 0x1d];
pub const OID_DELTA_CRL_INDICATOR: &[u8] = &[0x55, 0x1d, 0x1b];
pub const OID_CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];

pub fn alg_ecdsa_sha256() -> Vec<u8> {
    seq(&[oid(OID_ECDSA_SHA256)])
}

pub fn alg_rsa_sha256() -> Vec<u8> {
    seq(&[oid(OID_SHA256_RSA), tlv(0x05, &[])])
}

/// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 4055).
pub fn alg_rsa_pss_sha256() -> Vec<u8> {
    let sha256 = seq(&[oid(OID_SHA256), tlv(0x05, &[])]);
    seq(&[
        oid(OID_RSA_PSS),
        seq(&[
            tlv(0xa0, &sha256),
            tlv(0xa1, &seq(&[oid(OID_MGF1), sha256.clone()])),
            tlv(0xa2, &int(&[32])),
        ]),
    ])
}

/// A Name with one CN.
pub fn name(cn: &str) -> Vec<u8> {
    seq(&[tlv(
        0x31,
        &seq(&[oid(&[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())]),
    )])
}

/// One revokedCertificates entry; `serial` is the INTEGER's content octets, as given.
pub fn entry(serial: &[u8], extensions: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = vec![int(serial), utc("241231000000Z")];
    if !extensions.is_empty() {
        parts.push(seq(extensions));
    }
    seq(&parts)
}

pub fn reason(code: u8) -> Vec<u8> {
    extension(OID_REASON_CODE, false, &tlv(0x0a, &[code]))
}

/// A v2 TBSCertList.
pub fn tbs(alg: &[u8], issuer: &[u8], entries: &[Vec<u8>], extensions: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = vec![
        int(&[1]),
        alg.to_vec(),
        issuer.to_vec(),
        utc("250101000000Z"),
        utc("250108000000Z"),
    ];
    if !entries.is_empty() {
        parts.push(seq(entries));
    }
    if !extensions.is_empty() {
        parts.push(tlv(0xa0, &seq(extensions)));
    }
    seq(&parts)
}

pub fn certificate_list(tbs: &[u8], alg: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature);
    seq(&[tbs.to_vec(), alg.to_vec(), tlv(0x03, &bits)])
}

/// A hand-built CRL with an ECDSA algorithm identifier and a placeholder signature,
/// for tests that only parse.
pub fn unsigned_crl(issuer: &[u8], entries: &[Vec<u8>], extensions: &[Vec<u8>]) -> Vec<u8> {
    let alg = alg_ecdsa_sha256();
    certificate_list(&tbs(&alg, issuer, entries, extensions), &alg, &[0x30, 0x00])
}
