//! Parsing, lookup and signature verification against CRLs made at test time.

mod common;

use common::*;
use palisade_crl::{Crl, CrlError};
use rcgen::{RevocationReason, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

fn p256_ca(name: &str) -> Ca {
    ca(name, key(&PKCS_ECDSA_P256_SHA256))
}

#[test]
fn der_and_pem_parse_to_the_same_crl() {
    let ca = p256_ca("Test CA");
    let crl = ca.crl(vec![revoked(&[0x11, 0x22], None)]);
    let from_der = Crl::parse(crl.der()).expect("DER");
    let pem = crl.pem().expect("PEM");
    let from_pem = Crl::parse(format!("\n  \r\n{pem}\r\n\n\t").as_bytes()).expect("PEM");

    for parsed in [&from_der, &from_pem] {
        assert_eq!(parsed.der(), crl.der().as_ref());
        assert_eq!(parsed.issuer_der(), ca.subject_der().as_slice());
        assert_eq!(parsed.this_update_ms(), THIS_UPDATE_S * 1000);
        assert_eq!(parsed.next_update_ms(), Some(NEXT_UPDATE_S * 1000));
        assert_eq!(parsed.crl_number(), Some(&[0x01, 0x02][..]));
        assert!(!parsed.is_delta());
        assert_eq!(parsed.revoked_count(), 1);
        assert!(parsed.is_revoked("1122"));
        assert_eq!(parsed.issuer_name(), "CN=Test CA, O=Palisade tests");
    }
    // What a cache persists re-parses to the same thing.
    let again = Crl::from_der(from_pem.clone().into_der()).expect("round trip");
    assert_eq!(again.der(), from_der.der());
    assert!(again.is_revoked("1122"));
}

#[test]
fn pem_with_crlf_line_endings() {
    let ca = p256_ca("CRLF CA");
    let pem = ca.crl(vec![]).pem().expect("PEM").replace('\n', "\r\n");
    let crl = Crl::parse(pem.as_bytes()).expect("CRLF PEM");
    assert_eq!(crl.revoked_count(), 0);
}

#[test]
fn next_update_and_expiry() {
    let ca = p256_ca("Expiry CA");
    let crl = Crl::parse(ca.crl(vec![]).der()).expect("CRL");
    let next = NEXT_UPDATE_S * 1000;
    assert_eq!(crl.next_update_ms(), Some(next));
    assert!(!crl.is_expired_at(next - 1));
    assert!(crl.is_expired_at(next));
    assert!(crl.is_expired_at(next + 1));

    // nextUpdate is optional in the ASN.1; such a CRL never expires by date.
    let alg = alg_ecdsa_sha256();
    let mut tbs_parts = vec![int(&[1]), alg.clone(), name("Old CA"), utc("250101000000Z")];
    tbs_parts.push(seq(&[entry(&[0x05], &[])]));
    let der = certificate_list(&seq(&tbs_parts), &alg, &[0x30, 0x00]);
    let old = Crl::parse(&der).expect("CRL without nextUpdate");
    assert_eq!(old.next_update_ms(), None);
    assert!(!old.is_expired_at(i64::MAX));
    assert!(old.is_revoked("05"));
}

/// Serials compared with what the engine stores for the very same certificates.
#[test]
fn revocation_matches_engine_serials() {
    let ca = p256_ca("Serial CA");
    let serials: [&[u8]; 7] = [
        &[0x01],
        &[0x7f, 0xff, 0x00, 0x10],
        // Top bit set: DER adds a 0x00 sign byte, which the engine keeps.
        &[0x80],
        &[0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88],
        // Leading zeros: rcgen drops them.
        &[0x00, 0x00, 0x42, 0x01],
        // 20 bytes with the top bit set: 21 content octets.
        &[0xc3; 20],
        &[0x5a; 16],
    ];
    let certs: Vec<Vec<u8>> = serials.iter().map(|s| ca.issue(s)).collect();
    let engine: Vec<String> = certs.iter().map(|c| engine_serial(c)).collect();
    assert_eq!(engine[2], "0080", "the engine keeps the sign byte");
    assert_eq!(engine[4], "4201");
    assert_eq!(engine[5], format!("00{}", "c3".repeat(20)));

    // Revoke every other certificate.
    let listed: Vec<usize> = vec![0, 2, 3, 5];
    let crl = Crl::parse(
        ca.crl(
            listed
                .iter()
                .map(|i| revoked(serials[*i], Some(RevocationReason::KeyCompromise)))
                .collect(),
        )
        .der(),
    )
    .expect("CRL");
    assert_eq!(crl.revoked_count(), listed.len());
    for (i, serial) in engine.iter().enumerate() {
        let want = listed.contains(&i);
        assert_eq!(crl.is_revoked(serial), want, "serial {serial}");
        assert_eq!(crl.is_revoked(&serial.to_uppercase()), want, "{serial}");
        let raw = parsed(&certs[i], |c| c.raw_serial().to_vec());
        assert_eq!(crl.is_revoked_raw(&raw), want, "raw {serial}");
    }
    // The same serials without the sign byte, or with extra zeros, still match.
    assert!(crl.is_revoked("80"));
    assert!(crl.is_revoked("000080"));
    assert!(crl.is_revoked(&"c3".repeat(20)));
    assert!(crl.is_revoked("00:80"));
    assert!(!crl.is_revoked("8000"));
    assert!(!crl.is_revoked("not hex"));
    assert!(!crl.is_revoked(""));
}

/// CAs that encode serials oddly: non-minimal zeros, or a top-bit-set value without
/// the sign byte (a negative INTEGER in DER terms, meant as unsigned).
#[test]
fn odd_serial_encodings_in_the_crl() {
    let der = unsigned_crl(
        &name("Odd CA"),
        &[
            entry(&[0x00, 0x00, 0x12, 0x34], &[]),
            entry(&[0x80, 0x01], &[]),
            entry(&[0x00], &[]),
        ],
        &[],
    );
    let crl = Crl::parse(&der).expect("CRL");
    assert_eq!(crl.revoked_count(), 3);
    assert!(crl.is_revoked("1234"));
    assert!(crl.is_revoked("001234"));
    // A conforming certificate's stored serial for 0x8001.
    assert!(crl.is_revoked("008001"));
    assert!(crl.is_revoked("8001"));
    assert!(crl.is_revoked("00"));
    assert!(crl.is_revoked("0"));
    assert!(!crl.is_revoked("01"));
}

#[test]
fn reasons_and_remove_from_crl() {
    let ca = p256_ca("Reason CA");
    let crl = Crl::parse(
        ca.crl(vec![
            revoked(&[0x01], None),
            revoked(&[0x02], Some(RevocationReason::KeyCompromise)),
            revoked(&[0x03], Some(RevocationReason::CertificateHold)),
            revoked(&[0x04], Some(RevocationReason::RemoveFromCrl)),
            revoked(&[0x05], Some(RevocationReason::Superseded)),
        ])
        .der(),
    )
    .expect("CRL");
    assert!(crl.is_revoked("01"));
    assert!(crl.is_revoked("02"));
    // On hold is revoked until released.
    assert!(crl.is_revoked("03"));
    assert!(
        !crl.is_revoked("04"),
        "removeFromCRL releases a certificate"
    );
    assert!(crl.is_revoked("05"));
    assert_eq!(crl.revoked_count(), 4);
}

#[test]
fn delta_crls_and_their_remove_entries() {
    let der = unsigned_crl(
        &name("Delta CA"),
        &[entry(&[0x01], &[reason(1)]), entry(&[0x02], &[reason(8)])],
        &[
            extension(OID_CRL_NUMBER, false, &int(&[0x00, 0x99])),
            extension(OID_DELTA_CRL_INDICATOR, true, &int(&[0x07])),
        ],
    );
    let crl = Crl::parse(&der).expect("delta CRL");
    assert!(crl.is_delta());
    assert_eq!(crl.crl_number(), Some(&[0x99][..]));
    assert!(crl.is_revoked("01"));
    assert!(!crl.is_revoked("02"));
}

#[test]
fn indirect_crl_entries_for_other_issuers_do_not_count() {
    let ours = name("Our CA");
    let other_names = |dn: &[u8]| {
        // GeneralNames with a URI and a directoryName [4].
        seq(&[tlv(0x86, b"http://x.example"), tlv(0xa4, dn)])
    };
    let der = unsigned_crl(
        &ours,
        &[
            entry(&[0x01], &[]),
            entry(
                &[0x02],
                &[extension(
                    OID_CERTIFICATE_ISSUER,
                    true,
                    &other_names(&name("Other CA")),
                )],
            ),
            // Inherits the other issuer.
            entry(&[0x03], &[]),
            entry(
                &[0x04],
                &[extension(OID_CERTIFICATE_ISSUER, true, &other_names(&ours))],
            ),
            entry(&[0x05], &[]),
        ],
        &[],
    );
    let crl = Crl::parse(&der).expect("indirect CRL");
    assert!(crl.is_revoked("01"));
    assert!(!crl.is_revoked("02"));
    assert!(!crl.is_revoked("03"));
    assert!(crl.is_revoked("04"));
    assert!(crl.is_revoked("05"));
    assert_eq!(crl.revoked_count(), 3);
}

#[test]
fn critical_extensions_we_do_not_know_make_the_crl_unusable() {
    let unknown = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x15, 0x01];
    // Non-critical: ignored.
    let fine = unsigned_crl(
        &name("Ext CA"),
        &[entry(&[0x01], &[extension(&unknown, false, &[0x05, 0x00])])],
        &[extension(&unknown, false, &[0x05, 0x00])],
    );
    assert!(Crl::parse(&fine).expect("CRL").is_revoked("01"));

    let on_crl = unsigned_crl(
        &name("Ext CA"),
        &[],
        &[extension(&unknown, true, &[0x05, 0x00])],
    );
    let err = Crl::parse(&on_crl).expect_err("critical CRL extension");
    assert!(
        matches!(&err, CrlError::UnsupportedCriticalExtension(oid) if oid.contains("1.3.6.1.4.1.311.21.1")),
        "{err}"
    );

    let on_entry = unsigned_crl(
        &name("Ext CA"),
        &[entry(&[0x01], &[extension(&unknown, true, &[0x05, 0x00])])],
        &[],
    );
    assert!(matches!(
        Crl::parse(&on_entry),
        Err(CrlError::UnsupportedCriticalExtension(_))
    ));
}

#[test]
fn signature_verifies_with_the_issuer_key_only() {
    let cases: Vec<(&str, Ca, Ca)> = vec![
        (
            "ECDSA P-256",
            p256_ca("EC CA"),
            p256_ca("EC CA"), // same name, different key
        ),
        (
            "ECDSA P-384",
            ca("P384 CA", key(&PKCS_ECDSA_P384_SHA384)),
            ca("P384 CA", key(&PKCS_ECDSA_P384_SHA384)),
        ),
        (
            "Ed25519",
            ca("Ed CA", key(&PKCS_ED25519)),
            ca("Ed CA", key(&PKCS_ED25519)),
        ),
        (
            "RSA SHA-256",
            ca("RSA CA", rsa_key(RSA_A, &rcgen::PKCS_RSA_SHA256)),
            ca("RSA CA", rsa_key(RSA_B, &rcgen::PKCS_RSA_SHA256)),
        ),
        (
            "RSA SHA-384",
            ca("RSA CA", rsa_key(RSA_A, &rcgen::PKCS_RSA_SHA384)),
            ca("RSA CA", rsa_key(RSA_B, &rcgen::PKCS_RSA_SHA384)),
        ),
        (
            "RSA SHA-512",
            ca("RSA CA", rsa_key(RSA_A, &rcgen::PKCS_RSA_SHA512)),
            ca("RSA CA", rsa_key(RSA_B, &rcgen::PKCS_RSA_SHA512)),
        ),
    ];
    let unrelated_ec = p256_ca("Unrelated");
    let unrelated_rsa = ca("Unrelated", rsa_key(RSA_B, &rcgen::PKCS_RSA_SHA256));
    for (label, issuer, impostor) in &cases {
        let crl = Crl::parse(issuer.crl(vec![revoked(&[0x0b], None)]).der()).expect(label);
        crl.verify_signature(&issuer.spki_der())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        crl.verify_issued_by(&issuer.subject_der(), &issuer.spki_der())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            crl.verify_signature(&impostor.spki_der()),
            Err(CrlError::BadSignature),
            "{label}"
        );
        // A key of another type never verifies, whatever the error says.
        assert!(
            crl.verify_signature(&unrelated_ec.spki_der()).is_err(),
            "{label}"
        );
        assert!(
            crl.verify_signature(&unrelated_rsa.spki_der()).is_err(),
            "{label}"
        );
    }
}

#[test]
fn tampering_breaks_the_signature() {
    let ca = p256_ca("Tamper CA");
    let good = ca.crl(vec![revoked(&[0x10, 0x20, 0x30], None)]);
    let mut der = good.der().to_vec();
    let at = der
        .windows(3)
        .position(|w| w == [0x10, 0x20, 0x30])
        .expect("serial in DER");
    der[at + 2] = 0x31;
    let crl = Crl::parse(&der).expect("still parses");
    assert!(crl.is_revoked("102031"));
    assert_eq!(
        crl.verify_signature(&ca.spki_der()),
        Err(CrlError::BadSignature)
    );
}

#[test]
fn issuer_name_is_checked_by_verify_issued_by() {
    let ca = p256_ca("Name CA");
    let crl = Crl::parse(ca.crl(vec![]).der()).expect("CRL");
    let other = p256_ca("Other CA");
    let err = crl
        .verify_issued_by(&other.subject_der(), &ca.spki_der())
        .expect_err("name differs");
    assert_eq!(
        err.to_string(),
        "the CRL was issued by \"CN=Name CA, O=Palisade tests\", not by \"CN=Other CA, O=Palisade tests\""
    );
}

#[test]
fn unusable_issuer_keys() {
    let ca = p256_ca("Key CA");
    let crl = Crl::parse(ca.crl(vec![]).der()).expect("CRL");
    assert!(matches!(
        crl.verify_signature(b"not a key"),
        Err(CrlError::BadIssuerKey(_))
    ));
    let mut spki = ca.spki_der();
    spki.push(0);
    assert!(matches!(
        crl.verify_signature(&spki),
        Err(CrlError::BadIssuerKey(_))
    ));
    assert!(matches!(
        crl.verify_signature(&[]),
        Err(CrlError::BadIssuerKey(_))
    ));
}

/// rcgen cannot sign with RSA-PSS; ring can, over a hand-built TBSCertList.
#[test]
fn rsa_pss_signatures() {
    let rng = SystemRandom::new();
    let sign = |pem: &str, tbs: &[u8]| {
        let pkcs8 = rsa_key(pem, &rcgen::PKCS_RSA_SHA256).serialize_der();
        let key = RsaKeyPair::from_pkcs8(&pkcs8).expect("RSA key");
        let mut signature = vec![0u8; key.public().modulus_len()];
        key.sign(&ring::signature::RSA_PSS_SHA256, &rng, tbs, &mut signature)
            .expect("sign");
        signature
    };
    let issuer = ca("PSS CA", rsa_key(RSA_A, &rcgen::PKCS_RSA_SHA256));
    let other = ca("PSS CA", rsa_key(RSA_B, &rcgen::PKCS_RSA_SHA256));
    let alg = alg_rsa_pss_sha256();
    let tbs_der = tbs(&alg, &issuer.subject_der(), &[entry(&[0x77], &[])], &[]);
    let der = certificate_list(&tbs_der, &alg, &sign(RSA_A, &tbs_der));
    let crl = Crl::parse(&der).expect("PSS CRL");
    crl.verify_issued_by(&issuer.subject_der(), &issuer.spki_der())
        .expect("PSS verifies");
    assert_eq!(
        crl.verify_signature(&other.spki_der()),
        Err(CrlError::BadSignature)
    );
}

/// A hand-built CRL signed with ECDSA by ring: the path used by the indirect-CRL and
/// odd-serial fixtures also verifies, and the inner/outer algorithm check bites.
#[test]
fn hand_built_crls_verify_and_algorithm_fields_must_agree() {
    let rng = SystemRandom::new();
    let ca_key = key(&PKCS_ECDSA_P256_SHA256);
    let pkcs8 = ca_key.serialize_der();
    let issuer = ca("Hand CA", ca_key);
    let signer =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng).expect("key");
    let alg = alg_ecdsa_sha256();

    let tbs_der = tbs(
        &alg,
        &issuer.subject_der(),
        &[entry(&[0x80, 0x01], &[])],
        &[],
    );
    let signature = signer.sign(&rng, &tbs_der).expect("sign");
    let crl = Crl::parse(&certificate_list(&tbs_der, &alg, signature.as_ref())).expect("CRL");
    crl.verify_issued_by(&issuer.subject_der(), &issuer.spki_der())
        .expect("verifies");

    // Same signature bytes over the same TBS, but the outer algorithm says RSA.
    let mismatched = certificate_list(&tbs_der, &alg_rsa_sha256(), signature.as_ref());
    let crl = Crl::parse(&mismatched).expect("parses");
    assert_eq!(
        crl.verify_signature(&issuer.spki_der()),
        Err(CrlError::SignatureAlgorithmMismatch)
    );
}

#[test]
fn inputs_that_are_not_one_crl() {
    let ca = p256_ca("Input CA");
    let crl = ca.crl(vec![revoked(&[0x01], None)]);
    let pem = crl.pem().expect("PEM");

    let not_a_crl = |bytes: &[u8]| match Crl::parse(bytes) {
        Err(CrlError::NotACrl(why)) => why,
        other => panic!("expected NotACrl, got {other:?}"),
    };
    assert_eq!(not_a_crl(b""), "the input is empty");
    assert_eq!(not_a_crl(b" \n\t "), "the input is empty");
    assert!(not_a_crl(b"hello").contains("neither DER"));

    let two = format!("{pem}{pem}");
    assert_eq!(
        Crl::parse(two.as_bytes()).expect_err("two blocks"),
        CrlError::MultiplePemBlocks(2)
    );
    assert_eq!(
        Crl::parse(two.as_bytes()).expect_err("two").to_string(),
        "not a CRL: the input holds 2 PEM blocks; import one CRL at a time"
    );

    let cert_pem = pem.replace("X509 CRL", "CERTIFICATE");
    assert_eq!(
        not_a_crl(cert_pem.as_bytes()),
        "the PEM block is a CERTIFICATE, not an X509 CRL"
    );
    assert!(not_a_crl(format!("{pem}trailing junk").as_bytes()).contains("after the PEM"));
    assert!(
        not_a_crl(format!("Certificate Revocation List:\n{pem}").as_bytes())
            .contains("before the PEM")
    );
    let broken_base64 = pem.replacen("MI", "M!", 1);
    assert!(not_a_crl(broken_base64.as_bytes()).contains("PEM"));

    let mut trailing = crl.der().to_vec();
    trailing.push(0);
    assert_eq!(not_a_crl(&trailing), "there is data after the CRL");

    // A certificate is a SEQUENCE of three too, but not a CRL.
    assert!(matches!(
        Crl::parse(&ca.cert_der),
        Err(CrlError::NotACrl(_))
    ));

    assert_eq!(CrlError::NotACrl("x".into()).to_string(), "not a CRL: x");
}

#[test]
fn debug_output_stays_small() {
    let der = unsigned_crl(
        &name("Debug CA"),
        &(0u32..5000)
            .map(|i| entry(&i.to_be_bytes(), &[]))
            .collect::<Vec<_>>(),
        &[],
    );
    let crl = Crl::parse(&der).expect("CRL");
    let text = format!("{crl:?}");
    assert!(text.len() < 300, "{text}");
    assert!(text.contains("revoked_count: 5000"), "{text}");
}

/// Every truncation and many byte mutations of real CRLs: parsing, verifying and looking
/// up may fail but must never panic.
#[test]
fn mangled_input_never_panics() {
    let ec = p256_ca("Mangle CA");
    let rsa = ca("Mangle RSA", rsa_key(RSA_A, &rcgen::PKCS_RSA_SHA256));
    let samples = [
        ec.crl(vec![
            revoked(&[0x01], Some(RevocationReason::KeyCompromise)),
            revoked(&[0x80, 0x00], Some(RevocationReason::RemoveFromCrl)),
            revoked(&[0x33; 20], None),
        ])
        .der()
        .to_vec(),
        rsa.crl(vec![revoked(&[0x02], None)]).der().to_vec(),
        unsigned_crl(
            &name("Mangle"),
            &[entry(
                &[0x05],
                &[extension(
                    OID_CERTIFICATE_ISSUER,
                    true,
                    &seq(&[tlv(0xa4, &name("x"))]),
                )],
            )],
            &[extension(OID_DELTA_CRL_INDICATOR, true, &int(&[1]))],
        ),
    ];
    let keys = [ec.spki_der(), rsa.spki_der()];
    let exercise = |bytes: &[u8]| {
        if let Ok(crl) = Crl::parse(bytes) {
            for key in &keys {
                let _ = crl.verify_signature(key);
            }
            let _ = crl.is_revoked("01");
            let _ = crl.issuer_name();
            let _ = format!("{crl:?}");
        }
    };
    // A small deterministic generator keeps failures reproducible.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for der in &samples {
        for len in 0..der.len() {
            exercise(&der[..len]);
        }
        for i in 0..der.len() {
            for value in [0x00, 0xff, 0x80, 0x7f, der[i] ^ 0x01] {
                let mut m = der.clone();
                m[i] = value;
                exercise(&m);
            }
        }
        for _ in 0..2000 {
            let mut m = der.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            exercise(&m);
        }
        // Insertions and deletions shift every length that follows.
        for i in (0..der.len()).step_by(3) {
            let mut m = der.clone();
            m.insert(i, 0x00);
            exercise(&m);
            let mut m = der.clone();
            m.remove(i);
            exercise(&m);
        }
        let pem = format!(
            "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
            b64(der)
        );
        for len in 0..pem.len() {
            exercise(&pem.as_bytes()[..len]);
        }
    }
    for len in 0..512 {
        let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        exercise(&noise);
        let mut framed = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
        framed.extend_from_slice(&noise);
        exercise(&framed);
    }
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The audit looks up every active certificate against CRLs that can list a million
/// serials. This checks that such a CRL parses completely and answers exactly; how fast
/// is measured outside the tests (docs/PERFORMANCE.md), never asserted on a clock.
#[test]
fn a_million_entries_parse_and_answer() {
    const N: u64 = 1_000_000;
    let reason = reason(1);
    let mut entries = Vec::with_capacity(N as usize);
    for i in 0..N {
        let mut serial = vec![0x4a; 8];
        serial.extend_from_slice(&i.to_be_bytes());
        if i % 2 == 0 {
            entries.push(entry(&serial, std::slice::from_ref(&reason)));
        } else {
            entries.push(entry(&serial, &[]));
        }
    }
    let der = unsigned_crl(&name("Big CA"), &entries, &[]);
    drop(entries);

    let crl = Crl::parse(&der).expect("big CRL");
    assert_eq!(crl.revoked_count(), N as usize);
    for i in (0..N).step_by(997) {
        let hex = format!("{}{:016x}", "4a".repeat(8), i);
        assert!(crl.is_revoked(&hex));
    }
    assert!(!crl.is_revoked(&format!("{}{:016x}", "4a".repeat(8), N)));
}
