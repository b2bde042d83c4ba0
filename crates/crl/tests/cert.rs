//! Issuer certificates: parsing (DER and PEM), signature checks, and AIA caIssuers URLs.

mod common;

use common::*;
use palisade_crl::{ca_issuers_urls, is_signed_by, CrlError, IssuerCertificate};
use rcgen::{CertificateParams, CustomExtension, DnType};

fn pem(label: &str, der: &[u8]) -> String {
    let p = pem_rfc7468_encode(label, der);
    format!("\n{p}\n")
}

/// Minimal PEM encoder (base64 with 64-character lines), so the test needs no crate.
fn pem_rfc7468_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----",
        lines.join("\n")
    )
}

/// AuthorityInfoAccess with the given (access method OID content, URI) pairs.
fn aia(entries: &[(&[u8], &str)]) -> CustomExtension {
    let descs: Vec<Vec<u8>> = entries
        .iter()
        .map(|(method, uri)| seq(&[oid(method), tlv(0x86, uri.as_bytes())]))
        .collect();
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], seq(&descs))
}

const CA_ISSUERS: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
const OCSP: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];

fn leaf_with(ca: &Ca, extensions: Vec<CustomExtension>) -> Vec<u8> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "leaf");
    params.custom_extensions = extensions;
    params
        .signed_by(&key(&rcgen::PKCS_ECDSA_P256_SHA256), &ca.issuer)
        .expect("leaf")
        .der()
        .to_vec()
}

#[test]
fn parses_der_and_pem_alike() {
    let ca = ca("Issuer", key(&rcgen::PKCS_ECDSA_P256_SHA256));
    let from_der = IssuerCertificate::parse(&ca.cert_der).expect("DER");
    let from_pem =
        IssuerCertificate::parse(pem("CERTIFICATE", &ca.cert_der).as_bytes()).expect("PEM");
    assert_eq!(from_der, from_pem);
    assert_eq!(from_der.subject_der(), ca.subject_der());
    assert_eq!(from_der.spki_der(), ca.spki_der());
    assert_eq!(from_der.der(), ca.cert_der.as_slice());
}

#[test]
fn refuses_what_is_not_one_certificate() {
    let ca = ca("Issuer", key(&rcgen::PKCS_ECDSA_P256_SHA256));
    let not = |bytes: &[u8]| {
        matches!(
            IssuerCertificate::parse(bytes),
            Err(CrlError::NotACertificate(_))
        )
    };
    assert!(not(b""));
    assert!(not(b"   \n"));
    assert!(not(b"hello"));
    assert!(not(&ca.cert_der[..ca.cert_der.len() - 1]));
    let mut trailing = ca.cert_der.clone();
    trailing.push(0);
    assert!(not(&trailing));
    assert!(not(pem("X509 CRL", &ca.cert_der).as_bytes()));
    let two = format!(
        "{}{}",
        pem("CERTIFICATE", &ca.cert_der),
        pem("CERTIFICATE", &ca.cert_der)
    );
    assert!(not(two.as_bytes()));
}

#[test]
fn signature_check_names_the_right_key() {
    let ca = ca("Issuer", key(&rcgen::PKCS_ECDSA_P256_SHA256));
    let other = ca_with_name("Issuer");
    let leaf = leaf_with(&ca, Vec::new());
    assert!(is_signed_by(&leaf, &ca.spki_der()));
    assert!(!is_signed_by(&leaf, &other.spki_der()));
    assert!(!is_signed_by(b"junk", &ca.spki_der()));
    assert!(!is_signed_by(&leaf, b"junk"));
}

fn ca_with_name(name: &str) -> Ca {
    ca(name, key(&rcgen::PKCS_ECDSA_P256_SHA256))
}

#[test]
fn ca_issuers_urls_are_the_http_ones_in_order() {
    let ca = ca_with_name("Issuer");
    let leaf = leaf_with(
        &ca,
        vec![aia(&[
            (OCSP, "http://ocsp.example/"),
            (CA_ISSUERS, "http://a.example/root.der"),
            (CA_ISSUERS, "ldap://dir.example/cn=root"),
            (CA_ISSUERS, "HTTP://b.example/root.pem"),
        ])],
    );
    assert_eq!(
        ca_issuers_urls(&leaf),
        vec!["http://a.example/root.der", "HTTP://b.example/root.pem"]
    );
    assert!(ca_issuers_urls(&leaf_with(&ca, Vec::new())).is_empty());
    assert!(ca_issuers_urls(b"not a certificate").is_empty());
}
