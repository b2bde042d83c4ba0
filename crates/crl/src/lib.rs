//! Certificate revocation lists (RFC 5280 §5) for the revocation audit checks:
//! REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK, REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK
//! and INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK all ask whether a
//! certificate appears on its issuer's CRL.
//!
//! This crate holds the stateless parts: [`Crl::parse`] (DER, or one PEM block),
//! [`Crl::verify_signature`] against the issuer's key, [`Crl::is_revoked`] lookup, and
//! [`fetch`], a plain-HTTP GET of a CRL distribution point. Caching and refresh live
//! with the store: a [`Crl`] owns its DER ([`Crl::der`]), which is what a cache should
//! persist and re-parse on load ([`Crl::from_der`]; a million entries take a fraction of
//! a second). Beyond the DER a parsed CRL costs 10 to 20 bytes per revoked serial (the
//! lookup table holds positions in the DER, not copies). It is immutable, so a cache
//! can share one behind an `Arc` rather than clone it.
//!
//! Serial numbers are compared as magnitudes: both the CRL entry's INTEGER and the
//! hex serial Palisade stores (`hex(cert.raw_serial())`, which keeps a 0x00 sign byte)
//! lose their leading zero bytes before comparison; see [`Crl::is_revoked`].
//!
//! x509-parser reads the CRL's header (issuer name, times, algorithm identifiers,
//! extensions) and checks signatures; the revoked-certificate entries are walked by a
//! small DER reader here, because x509-parser's per-entry decoding is too slow for CRLs
//! with hundreds of thousands of entries.

mod cert;
mod der;
mod fetch;
mod serial;

use std::fmt;
use std::ops::Range;

use x509_parser::asn1_rs::{BitString, Oid};
use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::oid_registry::{
    OID_PKCS1_SHA1WITHRSA, OID_PKIX_AUTHORITY_INFO_ACCESS, OID_SHA1_WITH_RSA,
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_CRL_NUMBER,
    OID_X509_EXT_DELTA_CRL_INDICATOR, OID_X509_EXT_FRESHEST_CRL, OID_X509_EXT_ISSUER_ALT_NAME,
    OID_X509_EXT_ISSUER_DISTRIBUTION_POINT,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::time::ASN1Time;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo, X509Name};

use der::{Reader, Tlv};
use serial::RevokedSet;

pub use cert::{ca_issuers_urls, is_signed_by, IssuerCertificate};
pub use fetch::fetch;

/// Why a CRL could not be parsed, verified or fetched. Messages are written to be shown
/// to an operator as they are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// The bytes are not a (well-formed) CRL.
    #[error("not a CRL: {0}")]
    NotACrl(String),
    /// The bytes are not a (well-formed) X.509 certificate.
    #[error("not a certificate: {0}")]
    NotACertificate(String),
    /// PEM input with more than one block; a CRL file must hold exactly one CRL.
    #[error("not a CRL: the input holds {0} PEM blocks; import one CRL at a time")]
    MultiplePemBlocks(usize),
    /// RFC 5280 §5.2: a CRL with a critical extension the reader does not understand
    /// must not be used.
    #[error("the CRL has a critical extension that is not supported ({0}), so it cannot be used")]
    UnsupportedCriticalExtension(String),
    /// The issuer's public key given for verification could not be read or used.
    #[error("the issuer's public key cannot be used: {0}")]
    BadIssuerKey(String),
    /// The CRL is signed with an algorithm (or algorithm and key combination) that
    /// cannot be checked.
    #[error("the CRL's signature algorithm ({0}) is not supported with the issuer's key")]
    UnsupportedSignatureAlgorithm(String),
    /// The signature algorithm named inside the signed part differs from the one
    /// outside it (RFC 5280 §5.1.2.2 requires them to be identical).
    #[error("the CRL's signature algorithm fields disagree, so its signature cannot be trusted")]
    SignatureAlgorithmMismatch,
    /// The signature is not valid for the issuer's key.
    #[error("signature does not verify with the issuer's key")]
    BadSignature,
    /// The CRL names a different issuer than the certificate it was checked against.
    #[error("the CRL was issued by \"{crl_issuer}\", not by \"{expected}\"")]
    IssuerMismatch {
        crl_issuer: String,
        expected: String,
    },
    /// Only `http://` distribution points are fetched.
    #[error(
        "cannot fetch {url}: only http:// CRL distribution points are supported, not {scheme}://"
    )]
    UnsupportedScheme { url: String, scheme: String },
    /// The distribution point is not a usable URL.
    #[error("cannot fetch \"{url}\": {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The server answered with a status other than 200 OK.
    #[error("fetching {url} failed: the server answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    /// More redirects than [`fetch`] follows.
    #[error("fetching {url} failed: more than {max} redirects")]
    TooManyRedirects { url: String, max: usize },
    /// The body exceeded the size limit.
    #[error("fetching {url} failed: the CRL is larger than the limit of {max_bytes} bytes")]
    TooLarge { url: String, max_bytes: usize },
    /// The whole fetch (connect, redirects, body) took longer than allowed.
    #[error("fetching {url} failed: no complete answer within {}", seconds(*timeout))]
    Timeout {
        url: String,
        timeout: std::time::Duration,
    },
    /// A connection or protocol failure.
    #[error("fetching {url} failed: {reason}")]
    Fetch { url: String, reason: String },
}

fn seconds(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn not_a_crl(why: impl Into<String>) -> CrlError {
    CrlError::NotACrl(why.into())
}

/// The reasonCode value RFC 5280 §5.3.1 calls removeFromCRL: in a delta CRL it means
/// the certificate is no longer revoked (it was on hold and has been released).
const REMOVE_FROM_CRL: u8 = 8;

// CRL entry extension OIDs, as DER content octets, matched without decoding the OID.
/// 2.5.29.21 reasonCode
const OID_REASON_CODE: &[u8] = &[0x55, 0x1d, 0x15];
/// 2.5.29.23 holdInstructionCode
const OID_HOLD_INSTRUCTION: &[u8] = &[0x55, 0x1d, 0x17];
/// 2.5.29.24 invalidityDate
const OID_INVALIDITY_DATE: &[u8] = &[0x55, 0x1d, 0x18];
/// 2.5.29.29 certificateIssuer
const OID_CERTIFICATE_ISSUER: &[u8] = &[0x55, 0x1d, 0x1d];

/// A parsed certificate revocation list.
///
/// Owns its DER; everything else is derived from it, so a cache that persists
/// [`Crl::der`] can rebuild an identical value with [`Crl::from_der`].
#[derive(Clone)]
pub struct Crl {
    der: Vec<u8>,
    issuer: Range<usize>,
    this_update_ms: i64,
    next_update_ms: Option<i64>,
    /// The signed part, the signatureAlgorithm inside it, and the outer
    /// signatureAlgorithm and signatureValue.
    tbs: Range<usize>,
    inner_signature_algorithm: Range<usize>,
    signature_algorithm: Range<usize>,
    signature_value: Range<usize>,
    crl_number: Option<Vec<u8>>,
    delta: bool,
    revoked: RevokedSet,
}

impl fmt::Debug for Crl {
    // The DER and the serial set can be megabytes; show what identifies the CRL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crl")
            .field("issuer", &self.issuer_name())
            .field("this_update_ms", &self.this_update_ms)
            .field("next_update_ms", &self.next_update_ms)
            .field("crl_number", &self.crl_number.as_deref().map(hex))
            .field("delta", &self.delta)
            .field("revoked_count", &self.revoked.len())
            .field("der_len", &self.der.len())
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Crl {
    /// Parses a CRL from DER, or from PEM with `-----BEGIN X509 CRL-----` armour.
    /// PEM input must hold exactly one block; whitespace around it is ignored.
    pub fn parse(bytes: &[u8]) -> Result<Crl, CrlError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Err(not_a_crl("the input is empty"));
        }
        if trimmed.starts_with(b"-----BEGIN ") {
            return Crl::from_der(pem_contents(trimmed)?);
        }
        // DER starts with the SEQUENCE tag and is taken untouched: its last bytes may
        // well be 0x20 or 0x0a. Only non-DER input is searched for misplaced armour.
        if bytes.first() != Some(&der::SEQUENCE) && contains(bytes, b"-----BEGIN ") {
            return Err(not_a_crl(
                "there is text before the PEM block; it must start with -----BEGIN X509 CRL-----",
            ));
        }
        Crl::from_der(bytes.to_vec())
    }

    /// Parses a CRL from DER, taking ownership so nothing is copied (for a cache
    /// loading what it persisted from [`Crl::der`]).
    pub fn from_der(der: Vec<u8>) -> Result<Crl, CrlError> {
        let parts = parse_der(&der)?;
        Ok(Crl {
            der,
            issuer: parts.issuer,
            this_update_ms: parts.this_update_ms,
            next_update_ms: parts.next_update_ms,
            tbs: parts.tbs,
            inner_signature_algorithm: parts.inner_signature_algorithm,
            signature_algorithm: parts.signature_algorithm,
            signature_value: parts.signature_value,
            crl_number: parts.crl_number,
            delta: parts.delta,
            revoked: parts.revoked,
        })
    }

    /// The whole CRL, DER-encoded, exactly as it was read.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Gives up the DER without copying it.
    pub fn into_der(self) -> Vec<u8> {
        self.der
    }

    /// The issuer Name, DER-encoded (whole TLV), as stored: compare it byte for byte
    /// with a certificate's `subject_der` to find the CRL's CA.
    pub fn issuer_der(&self) -> &[u8] {
        self.der.get(self.issuer.clone()).unwrap_or_default()
    }

    /// The issuer Name in RFC 4514-like text (`CN=..., O=...`), for messages.
    pub fn issuer_name(&self) -> String {
        name_text(self.issuer_der())
    }

    /// thisUpdate, in milliseconds since the epoch.
    pub fn this_update_ms(&self) -> i64 {
        self.this_update_ms
    }

    /// nextUpdate, in milliseconds since the epoch; `None` if the CRL does not say
    /// (RFC 5280 requires it, but older CAs omit it).
    pub fn next_update_ms(&self) -> Option<i64> {
        self.next_update_ms
    }

    /// Whether the CRL is past its nextUpdate at `now_ms`, so a fresh one should be
    /// fetched. A CRL without nextUpdate never expires by this rule.
    pub fn is_expired_at(&self, now_ms: i64) -> bool {
        self.next_update_ms.is_some_and(|next| now_ms >= next)
    }

    /// The cRLNumber extension, as big-endian bytes without leading zeros; a higher
    /// number is a newer CRL from the same issuer.
    pub fn crl_number(&self) -> Option<&[u8]> {
        self.crl_number.as_deref()
    }

    /// Whether this is a delta CRL (deltaCRLIndicator): it lists only changes since a
    /// base CRL, so a serial missing from it says nothing.
    pub fn is_delta(&self) -> bool {
        self.delta
    }

    /// Checks the CRL's signature with the issuer's public key (DER
    /// SubjectPublicKeyInfo). Supported: RSA PKCS#1 v1.5 with SHA-256/384/512 (keys of
    /// 2048 bits or more) and SHA-1 (for old CRLs), RSA-PSS with SHA-256/384/512,
    /// ECDSA on P-256/P-384 with SHA-256/384, and Ed25519.
    ///
    /// This does not compare names; see [`Crl::verify_issued_by`].
    pub fn verify_signature(&self, issuer_spki_der: &[u8]) -> Result<(), CrlError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(issuer_spki_der)
            .map_err(|_| CrlError::BadIssuerKey("it is not a DER SubjectPublicKeyInfo".into()))?;
        if !rest.is_empty() {
            return Err(CrlError::BadIssuerKey(
                "there is data after the SubjectPublicKeyInfo".into(),
            ));
        }
        let outer = self.slice(&self.signature_algorithm);
        if outer != self.slice(&self.inner_signature_algorithm) {
            return Err(CrlError::SignatureAlgorithmMismatch);
        }
        let (_, algorithm) = AlgorithmIdentifier::from_der(outer)
            .map_err(|_| not_a_crl("its signature algorithm is malformed"))?;
        let (_, signature) = BitString::from_der(self.slice(&self.signature_value))
            .map_err(|_| not_a_crl("its signature value is malformed"))?;
        let sha1 = algorithm.algorithm == OID_PKCS1_SHA1WITHRSA
            || algorithm.algorithm == OID_SHA1_WITH_RSA;
        // ring checks SHA-2 RSA signatures only for 2048-bit keys and up; without this
        // a CA with a 1024-bit key would see "signature does not verify".
        if let Ok(PublicKey::RSA(rsa)) = spki.parsed() {
            let bits = rsa.key_size();
            if bits < 2048 && !sha1 {
                return Err(CrlError::BadIssuerKey(format!(
                    "its RSA key has {bits} bits; CRL signatures are checked only for RSA keys \
                     of 2048 bits or more"
                )));
            }
        }
        x509_parser::verify::verify_signature(&spki, &algorithm, &signature, self.slice(&self.tbs))
            .map_err(|e| match e {
                x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => {
                    CrlError::UnsupportedSignatureAlgorithm(oid_name(&algorithm.algorithm))
                }
                _ => CrlError::BadSignature,
            })
    }

    /// Checks that the CRL was issued by the CA with this subject (DER Name, compared
    /// byte for byte like [`Crl::issuer_der`]) and signed with its key.
    pub fn verify_issued_by(
        &self,
        issuer_subject_der: &[u8],
        issuer_spki_der: &[u8],
    ) -> Result<(), CrlError> {
        if self.issuer_der() != issuer_subject_der {
            return Err(CrlError::IssuerMismatch {
                crl_issuer: self.issuer_name(),
                expected: name_text(issuer_subject_der),
            });
        }
        self.verify_signature(issuer_spki_der)
    }

    /// Whether the certificate with this serial is revoked by this CRL.
    ///
    /// `serial_hex` is the serial as Palisade stores it: lowercase hex of the DER
    /// INTEGER's content octets, no separators (upper case, `:` separators and odd
    /// lengths are accepted too). Leading zero bytes are ignored on both sides, so
    /// `00ff01` and `ff01` name the same certificate. Entries with reason
    /// removeFromCRL, and entries an indirect CRL attributes to another issuer, do not
    /// count. Text that is not hex is never revoked.
    pub fn is_revoked(&self, serial_hex: &str) -> bool {
        serial::from_hex(serial_hex).is_some_and(|serial| self.is_revoked_raw(&serial))
    }

    /// [`Crl::is_revoked`] for a serial given as bytes (such as x509-parser's
    /// `raw_serial()`), normalised the same way.
    pub fn is_revoked_raw(&self, serial: &[u8]) -> bool {
        self.revoked.contains(&self.der, serial)
    }

    /// How many distinct serials the CRL revokes.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    fn slice(&self, range: &Range<usize>) -> &[u8] {
        self.der.get(range.clone()).unwrap_or_default()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The DER inside a single `X509 CRL` PEM block (`text` already trimmed).
fn pem_contents(text: &[u8]) -> Result<Vec<u8>, CrlError> {
    let blocks = count(text, b"-----BEGIN ");
    if blocks > 1 {
        return Err(CrlError::MultiplePemBlocks(blocks));
    }
    let (rest, pem) = x509_parser::pem::parse_x509_pem(text)
        .map_err(|e| not_a_crl(format!("its PEM armour is malformed ({e})")))?;
    if pem.label != "X509 CRL" {
        return Err(not_a_crl(format!(
            "the PEM block is a {}, not an X509 CRL",
            pem.label
        )));
    }
    if !rest.trim_ascii().is_empty() {
        return Err(not_a_crl("there is data after the PEM block"));
    }
    Ok(pem.contents)
}

fn name_text(der: &[u8]) -> String {
    match X509Name::from_der(der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => format!("(unreadable name {})", hex(der)),
    }
}

fn oid_name(oid: &Oid<'_>) -> String {
    match oid2sn(oid, oid_registry()) {
        Ok(name) => format!("{name}, {}", oid.to_id_string()),
        Err(_) => oid.to_id_string(),
    }
}

/// What [`parse_der`] extracts; ranges index the DER it was given.
struct Parts {
    issuer: Range<usize>,
    this_update_ms: i64,
    next_update_ms: Option<i64>,
    tbs: Range<usize>,
    inner_signature_algorithm: Range<usize>,
    signature_algorithm: Range<usize>,
    signature_value: Range<usize>,
    crl_number: Option<Vec<u8>>,
    delta: bool,
    revoked: RevokedSet,
}

/// CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }
fn parse_der(der: &[u8]) -> Result<Parts, CrlError> {
    let mut top = Reader::new(der);
    if top.peek_tag() != Some(der::SEQUENCE) {
        return Err(not_a_crl(
            "it is neither DER (it does not start with a SEQUENCE) nor PEM",
        ));
    }
    let list = top
        .read()
        .ok_or_else(|| not_a_crl("it is truncated or its DER is malformed"))?;
    if !top.is_empty() {
        return Err(not_a_crl("there is data after the CRL"));
    }
    let mut outer = top.inside(&list);
    let tbs = outer
        .read_tag(der::SEQUENCE)
        .ok_or_else(|| not_a_crl("its tbsCertList is missing or malformed"))?;
    let signature_algorithm = outer
        .read_tag(der::SEQUENCE)
        .ok_or_else(|| not_a_crl("its signatureAlgorithm is missing or malformed"))?;
    let signature_value = outer
        .read_tag(der::BIT_STRING)
        .ok_or_else(|| not_a_crl("its signatureValue is missing or malformed"))?;
    if !outer.is_empty() {
        return Err(not_a_crl("there are unexpected fields after the signature"));
    }

    // TBSCertList ::= SEQUENCE { version OPTIONAL, signature, issuer, thisUpdate,
    //   nextUpdate OPTIONAL, revokedCertificates OPTIONAL, [0] crlExtensions OPTIONAL }
    let mut t = outer.inside(&tbs);
    if let Some(version) = t.read_tag(der::INTEGER) {
        // v2 is 1; v1 omits the field, but accept an explicit 0 too.
        let value = t.bytes(version.contents());
        if value != [1] && value != [0] {
            return Err(not_a_crl(format!(
                "its version ({}) is not v1 or v2",
                hex(value)
            )));
        }
    }
    let inner_signature_algorithm = t
        .read_tag(der::SEQUENCE)
        .ok_or_else(|| not_a_crl("its signature algorithm is missing or malformed"))?;
    let issuer = t
        .read_tag(der::SEQUENCE)
        .ok_or_else(|| not_a_crl("its issuer name is missing or malformed"))?;
    let issuer_der = t.bytes(issuer.whole());
    match X509Name::from_der(issuer_der) {
        Ok(([], _)) => {}
        _ => return Err(not_a_crl("its issuer name is malformed")),
    }
    let this_update =
        read_time(&mut t).ok_or_else(|| not_a_crl("its thisUpdate is missing or malformed"))?;
    let next_update = match t.peek_tag() {
        Some(der::UTC_TIME | der::GENERALIZED_TIME) => {
            Some(read_time(&mut t).ok_or_else(|| not_a_crl("its nextUpdate is malformed"))?)
        }
        _ => None,
    };
    let entries = t.read_tag(der::SEQUENCE);
    let extensions = t.read_tag(der::CONTEXT_0);
    if !t.is_empty() {
        return Err(not_a_crl(
            "its tbsCertList has unexpected or misplaced fields",
        ));
    }

    let header = match extensions {
        Some(ext) => crl_extensions(&t, &ext)?,
        None => CrlExtensions::default(),
    };
    let revoked = match entries {
        Some(list) => revoked_serials(&t, &list, issuer_der)?,
        None => RevokedSet::default(),
    };

    Ok(Parts {
        issuer: issuer.whole(),
        this_update_ms: this_update,
        next_update_ms: next_update,
        tbs: tbs.whole(),
        inner_signature_algorithm: inner_signature_algorithm.whole(),
        signature_algorithm: signature_algorithm.whole(),
        signature_value: signature_value.whole(),
        crl_number: header.crl_number,
        delta: header.delta,
        revoked,
    })
}

/// A UTCTime or GeneralizedTime, in milliseconds since the epoch.
fn read_time(r: &mut Reader<'_>) -> Option<i64> {
    let tlv = match r.peek_tag()? {
        der::UTC_TIME | der::GENERALIZED_TIME => r.read()?,
        _ => return None,
    };
    let (rest, time) = ASN1Time::from_der(r.bytes(tlv.whole())).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(time.timestamp().saturating_mul(1000))
}

#[derive(Default)]
struct CrlExtensions {
    crl_number: Option<Vec<u8>>,
    delta: bool,
}

/// The `[0] EXPLICIT Extensions` of the TBSCertList. Few and small, so x509-parser
/// decodes them.
fn crl_extensions(r: &Reader<'_>, wrapper: &Tlv) -> Result<CrlExtensions, CrlError> {
    let malformed = || not_a_crl("its extensions are malformed");
    let mut inner = r.inside(wrapper);
    let seq = inner.read_tag(der::SEQUENCE).ok_or_else(malformed)?;
    if !inner.is_empty() {
        return Err(malformed());
    }
    let mut list = inner.inside(&seq);
    let mut out = CrlExtensions::default();
    while !list.is_empty() {
        let tlv = list.read_tag(der::SEQUENCE).ok_or_else(malformed)?;
        let (rest, ext) =
            X509Extension::from_der(list.bytes(tlv.whole())).map_err(|_| malformed())?;
        if !rest.is_empty() {
            return Err(malformed());
        }
        crl_extension(&ext, &mut out)?;
    }
    Ok(out)
}

fn crl_extension(ext: &X509Extension<'_>, out: &mut CrlExtensions) -> Result<(), CrlError> {
    let oid = &ext.oid;
    if *oid == OID_X509_EXT_CRL_NUMBER {
        if let ParsedExtension::CRLNumber(number) = ext.parsed_extension() {
            let bytes = number.to_bytes_be();
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            out.crl_number = Some(bytes.get(start..).unwrap_or_default().to_vec());
        }
    } else if *oid == OID_X509_EXT_DELTA_CRL_INDICATOR {
        out.delta = true;
    } else if *oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT {
        match ext.parsed_extension() {
            // Serials on such a CRL are attribute certificates', not public-key
            // certificates': matching them against device certificates would be wrong.
            ParsedExtension::IssuingDistributionPoint(idp) if idp.only_contains_attribute_certs => {
                return Err(not_a_crl(
                    "it covers only attribute certificates (issuingDistributionPoint)",
                ));
            }
            ParsedExtension::IssuingDistributionPoint(_) => {}
            _ => {
                return Err(not_a_crl(
                    "its issuingDistributionPoint extension is malformed",
                ))
            }
        }
    } else if *oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
        || *oid == OID_X509_EXT_ISSUER_ALT_NAME
        || *oid == OID_X509_EXT_FRESHEST_CRL
        || *oid == OID_PKIX_AUTHORITY_INFO_ACCESS
    {
        // Understood and irrelevant to lookup, so acceptable even if marked critical.
    } else if ext.critical {
        return Err(CrlError::UnsupportedCriticalExtension(oid_name(oid)));
    }
    Ok(())
}

/// The revokedCertificates list, walked by hand for speed (see the crate doc).
///
/// revokedCertificates ::= SEQUENCE OF SEQUENCE {
///     userCertificate CertificateSerialNumber, revocationDate Time,
///     crlEntryExtensions Extensions OPTIONAL }
fn revoked_serials(r: &Reader<'_>, list: &Tlv, crl_issuer: &[u8]) -> Result<RevokedSet, CrlError> {
    let malformed = || not_a_crl("a revoked-certificate entry is malformed");
    let mut entries = r.inside(list);
    // Entries take at least ~20 bytes; reserving for a denser list avoids rehashing a
    // large set repeatedly without overcommitting much for a sparse one.
    let mut out = RevokedSet::with_capacity((list.end - list.content) / 32);
    // In an indirect CRL, a certificateIssuer entry extension switches the issuer for
    // that entry and all that follow (RFC 5280 §5.3.3). Entries for other CAs are left
    // out so that a serial collision cannot revoke one of this issuer's certificates.
    let mut ours = true;
    while !entries.is_empty() {
        let entry = entries.read_tag(der::SEQUENCE).ok_or_else(malformed)?;
        let mut e = entries.inside(&entry);
        let serial = e.read_tag(der::INTEGER).ok_or_else(malformed)?;
        if serial.content == serial.end {
            return Err(malformed());
        }
        match e.peek_tag() {
            Some(der::UTC_TIME | der::GENERALIZED_TIME) => {
                e.read().ok_or_else(malformed)?;
            }
            _ => return Err(malformed()),
        }
        let mut removed = false;
        if let Some(exts) = e.read_tag(der::SEQUENCE) {
            let mut x = e.inside(&exts);
            while !x.is_empty() {
                let ext = entry_extension(&mut x).ok_or_else(malformed)?;
                match ext.oid {
                    OID_REASON_CODE => {
                        removed = reason_code(ext.value).ok_or_else(malformed)? == REMOVE_FROM_CRL;
                    }
                    OID_CERTIFICATE_ISSUER => {
                        ours = names_issuer(ext.value, crl_issuer).ok_or_else(malformed)?;
                    }
                    OID_HOLD_INSTRUCTION | OID_INVALIDITY_DATE => {}
                    other if ext.critical => {
                        return Err(CrlError::UnsupportedCriticalExtension(oid_name(&Oid::new(
                            other.into(),
                        ))));
                    }
                    _ => {}
                }
            }
        }
        if !e.is_empty() {
            return Err(malformed());
        }
        if ours && !removed {
            out.insert(e.buf(), serial.content, serial.end)
                .ok_or_else(|| not_a_crl("it is too large"))?;
        }
    }
    Ok(out)
}

struct EntryExtension<'a> {
    oid: &'a [u8],
    critical: bool,
    /// The contents of extnValue's OCTET STRING.
    value: &'a [u8],
}

/// Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
fn entry_extension<'a>(r: &mut Reader<'a>) -> Option<EntryExtension<'a>> {
    let seq = r.read_tag(der::SEQUENCE)?;
    let mut x = r.inside(&seq);
    let oid = x.read_tag(der::OID)?;
    let critical = match x.read_tag(der::BOOLEAN) {
        Some(b) => x.bytes(b.contents()).first().is_some_and(|v| *v != 0),
        None => false,
    };
    let value = x.read_tag(der::OCTET_STRING)?;
    if !x.is_empty() {
        return None;
    }
    Some(EntryExtension {
        oid: x.bytes(oid.contents()),
        critical,
        value: x.bytes(value.contents()),
    })
}

/// CRLReason ::= ENUMERATED; values are 0..=10, so one content byte.
fn reason_code(value: &[u8]) -> Option<u8> {
    let mut r = Reader::new(value);
    let tlv = r.read_tag(der::ENUMERATED)?;
    if !r.is_empty() {
        return None;
    }
    match r.bytes(tlv.contents()) {
        [code] => Some(*code),
        _ => None,
    }
}

/// Whether a certificateIssuer GeneralNames names `issuer` (a DER Name) as a
/// directoryName. `None` if it is malformed.
fn names_issuer(value: &[u8], issuer: &[u8]) -> Option<bool> {
    let mut r = Reader::new(value);
    let seq = r.read_tag(der::SEQUENCE)?;
    if !r.is_empty() {
        return None;
    }
    let mut names = r.inside(&seq);
    let mut found = false;
    while !names.is_empty() {
        let name = names.read()?;
        if name.tag == der::CONTEXT_4 {
            // directoryName [4] is EXPLICIT (Name is a CHOICE), so it wraps the Name TLV.
            let mut inner = names.inside(&name);
            let dn = inner.read_tag(der::SEQUENCE)?;
            found |= inner.bytes(dn.whole()) == issuer;
        }
    }
    Some(found)
}
