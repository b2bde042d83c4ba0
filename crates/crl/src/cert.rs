//! The few things the revocation checks need from certificates themselves: an issuer
//! certificate's subject and key (to verify a CRL with), whether a certificate was
//! signed by a given key, and where its Authority Information Access says the issuer's
//! certificate can be fetched.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::CrlError;

fn not_a_certificate(why: impl Into<String>) -> CrlError {
    CrlError::NotACertificate(why.into())
}

/// A certificate that may have issued a CRL: its DER, subject Name (DER) and
/// SubjectPublicKeyInfo (DER), ready for [`crate::Crl::verify_issued_by`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerCertificate {
    der: Vec<u8>,
    subject_der: Vec<u8>,
    spki_der: Vec<u8>,
}

impl IssuerCertificate {
    /// Reads one certificate, DER or PEM (`-----BEGIN CERTIFICATE-----`; exactly one
    /// block, as an AIA caIssuers URL or an operator's file may serve either).
    pub fn parse(bytes: &[u8]) -> Result<IssuerCertificate, CrlError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Err(not_a_certificate("the input is empty"));
        }
        let der = if trimmed.starts_with(b"-----BEGIN ") {
            let (rest, pem) = x509_parser::pem::parse_x509_pem(trimmed)
                .map_err(|e| not_a_certificate(format!("its PEM armour is malformed ({e})")))?;
            if pem.label != "CERTIFICATE" {
                return Err(not_a_certificate(format!(
                    "the PEM block is a {}, not a CERTIFICATE",
                    pem.label
                )));
            }
            if !rest.trim_ascii().is_empty() {
                return Err(not_a_certificate(
                    "there is data after the PEM block; give one certificate",
                ));
            }
            pem.contents
        } else {
            bytes.to_vec()
        };
        let (subject_der, spki_der) = {
            let cert = certificate(&der)?;
            (
                cert.subject().as_raw().to_vec(),
                cert.public_key().raw.to_vec(),
            )
        };
        Ok(IssuerCertificate {
            der,
            subject_der,
            spki_der,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject Name, DER (whole TLV), comparable with [`crate::Crl::issuer_der`].
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }
}

fn certificate(der: &[u8]) -> Result<X509Certificate<'_>, CrlError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(not_a_certificate("there is data after the certificate")),
        Err(_) => Err(not_a_certificate(
            "it is neither a DER nor a PEM X.509 certificate",
        )),
    }
}

/// Whether the certificate `cert_der` carries a valid signature by the key
/// `issuer_spki_der` (DER SubjectPublicKeyInfo). Used to accept an issuer certificate
/// found through AIA only if it really is the key that signed the certificate.
pub fn is_signed_by(cert_der: &[u8], issuer_spki_der: &[u8]) -> bool {
    let Ok(cert) = certificate(cert_der) else {
        return false;
    };
    let Ok(([], spki)) = SubjectPublicKeyInfo::from_der(issuer_spki_der) else {
        return false;
    };
    cert.verify_signature(Some(&spki)).is_ok()
}

/// The `http://` URIs of the certificate's Authority Information Access caIssuers
/// entries, in certificate order (other schemes cannot be fetched, so are left out).
/// Empty if there are none or the certificate does not parse.
pub fn ca_issuers_urls(cert_der: &[u8]) -> Vec<String> {
    let Ok(cert) = certificate(cert_der) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for desc in &aia.accessdescs {
                if desc.access_method != OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS {
                    continue;
                }
                if let GeneralName::URI(uri) = desc.access_location {
                    let is_http = uri
                        .get(..7)
                        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
                    if is_http {
                        out.push(uri.to_owned());
                    }
                }
            }
        }
    }
    out
}
