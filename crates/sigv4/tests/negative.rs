//! Requests that must be rejected, with the right code and message.

mod common;

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignatureLocation, SigningSettings,
};
use common::{aws_sign, OwnedRequest, ACCESS_KEY, SECRET};
use hmac::{Hmac, Mac};
use palisade_sigv4::{SigV4Error, Verifier, VerifierConfig};
use sha2::Sha256;
use time::macros::datetime;
use time::OffsetDateTime;

const HOST: &str = "iot.us-east-1.amazonaws.com";
const NOW: OffsetDateTime = datetime!(2024-01-02 03:04:05 UTC);
const BODY: &[u8] = br#"{"roleArn":"arn:aws:iam::123456789012:role/r"}"#;

fn minutes(n: i64) -> time::Duration {
    time::Duration::minutes(n)
}

struct Signing {
    at: OffsetDateTime,
    service: &'static str,
    region: &'static str,
    presign_expires: Option<u64>,
    content_sha256: bool,
}

impl Default for Signing {
    fn default() -> Self {
        Self {
            at: NOW,
            service: "iot",
            region: "us-east-1",
            presign_expires: None,
            content_sha256: false,
        }
    }
}

/// A POST signed by aws-sigv4 as described by `s`.
fn signed(s: Signing) -> OwnedRequest {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "https://{HOST}/mitigationactions/actions/my-action?x=1"
        ))
        .header("host", HOST)
        .header("content-type", "application/json")
        .header("user-agent", "tests")
        .body(BODY.to_vec())
        .unwrap();
    let mut settings = SigningSettings::default();
    if let Some(secs) = s.presign_expires {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(secs));
    }
    if s.content_sha256 {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let time =
        SystemTime::UNIX_EPOCH + Duration::from_secs(s.at.unix_timestamp().try_into().unwrap());
    aws_sign(
        &mut req,
        settings,
        SignableBody::Bytes(BODY),
        s.service,
        s.region,
        time,
        None,
    );
    OwnedRequest::from_http(&req)
}

fn verifier() -> Verifier {
    Verifier::new(VerifierConfig::new("iot", "us-east-1"))
}

/// What the API layer does: parse, look the secret up by key id, verify.
fn authenticate(req: &OwnedRequest, now: OffsetDateTime) -> Result<(), SigV4Error> {
    let verifier = verifier();
    req.with_view(|view| {
        let parsed = verifier.parse(view, now)?;
        if parsed.access_key_id != ACCESS_KEY {
            return Err(SigV4Error::UnknownAccessKey);
        }
        verifier.verify(&parsed, view, SECRET)
    })
}

fn header(req: &OwnedRequest, name: &str) -> String {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .unwrap()
}

#[track_caller]
fn assert_code(result: Result<(), SigV4Error>, code: &str) -> SigV4Error {
    let err = result.expect_err("request was accepted");
    assert_eq!(err.code(), code, "{err}");
    err
}

#[test]
fn baseline_is_accepted() {
    authenticate(&signed(Signing::default()), NOW).unwrap();
}

#[test]
fn wrong_secret() {
    let req = signed(Signing::default());
    let verifier = verifier();
    let err = req.with_view(|view| {
        let parsed = verifier.parse(view, NOW).unwrap();
        verifier
            .verify(&parsed, view, "not-the-secret")
            .unwrap_err()
    });
    assert_eq!(err, SigV4Error::SignatureMismatch);
    assert_eq!(err.code(), "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    );
}

#[test]
fn tampered_body() {
    let mut req = signed(Signing::default());
    req.body = br#"{"roleArn":"arn:aws:iam::123456789012:role/admin"}"#.to_vec();
    let err = assert_code(authenticate(&req, NOW), "InvalidSignatureException");
    assert_eq!(err, SigV4Error::SignatureMismatch);
}

#[test]
fn tampered_body_with_declared_hash() {
    let mut req = signed(Signing {
        content_sha256: true,
        ..Signing::default()
    });
    authenticate(&req, NOW).unwrap();
    req.body.push(b' ');
    let err = assert_code(authenticate(&req, NOW), "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "The provided 'x-amz-content-sha256' header does not match what was computed."
    );
}

#[test]
fn tampered_request_parts() {
    let base = signed(Signing::default());
    let mut tampered = Vec::new();

    let mut r = base.clone();
    r.set_header("content-type", "text/plain");
    tampered.push(("signed header value", r));
    let mut r = base.clone();
    r.headers
        .push(("Content-Type".into(), "application/json".into()));
    tampered.push(("repeated signed header", r));
    let mut r = base.clone();
    r.remove_header("content-type");
    tampered.push(("signed header removed", r));
    let mut r = base.clone();
    r.set_header("host", "evil.example.com");
    tampered.push(("host", r));
    let mut r = base.clone();
    r.method = "PUT".into();
    tampered.push(("method", r));
    let mut r = base.clone();
    r.path = "/mitigationactions/actions/other".into();
    tampered.push(("path", r));
    let mut r = base.clone();
    r.query = Some("x=2".into());
    tampered.push(("query value", r));
    let mut r = base.clone();
    r.query = Some("x=1&admin=true".into());
    tampered.push(("query param added", r));
    let mut r = base.clone();
    r.query = None;
    tampered.push(("query removed", r));

    for (what, req) in tampered {
        let err = authenticate(&req, NOW).expect_err(what);
        assert_eq!(err, SigV4Error::SignatureMismatch, "{what}");
    }

    // Unsigned headers are not covered and may change.
    let mut r = base.clone();
    r.set_header("user-agent", "something else");
    r.headers
        .push(("x-forwarded-for".into(), "10.0.0.1".into()));
    authenticate(&r, NOW).unwrap();
}

#[test]
fn missing_authentication() {
    let mut req = signed(Signing::default());
    req.remove_header("authorization");
    let err = assert_code(
        authenticate(&req, NOW),
        "MissingAuthenticationTokenException",
    );
    assert_eq!(err.message(), "Missing Authentication Token");
}

#[test]
fn stale_date() {
    let req = signed(Signing {
        at: NOW - minutes(20),
        ..Signing::default()
    });
    let err = assert_code(authenticate(&req, NOW), "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "Signature expired: 20240102T024405Z is now earlier than 20240102T024905Z \
         (20240102T030405Z - 15 min.)"
    );
}

#[test]
fn future_date() {
    let req = signed(Signing {
        at: NOW + minutes(20),
        ..Signing::default()
    });
    let err = assert_code(authenticate(&req, NOW), "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "Signature not yet current: 20240102T032405Z is still later than 20240102T031905Z \
         (20240102T030405Z + 15 min.)"
    );
}

#[test]
fn skew_within_window_is_accepted() {
    for offset in [-14, 14] {
        let req = signed(Signing {
            at: NOW + minutes(offset),
            ..Signing::default()
        });
        authenticate(&req, NOW).unwrap();
    }
}

#[test]
fn wrong_region() {
    let req = signed(Signing {
        region: "eu-west-1",
        ..Signing::default()
    });
    let err = assert_code(authenticate(&req, NOW), "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "Credential should be scoped to a valid region, not 'eu-west-1'."
    );
}

#[test]
fn wrong_service() {
    let req = signed(Signing {
        service: "execute-api",
        ..Signing::default()
    });
    let err = assert_code(authenticate(&req, NOW), "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "Credential should be scoped to correct service: 'iot'."
    );
}

#[test]
fn malformed_authorization_header() {
    let req = signed(Signing::default());
    let auth = header(&req, "authorization");
    let without_signature = auth.split(", Signature=").next().unwrap().to_owned();

    let mut r = req.clone();
    r.set_header("authorization", &without_signature);
    let err = assert_code(authenticate(&r, NOW), "IncompleteSignatureException");
    assert!(
        err.message()
            .starts_with("Authorization header requires 'Signature' parameter."),
        "{err}"
    );

    let mut r = req.clone();
    r.set_header("authorization", "AWS4-HMAC-SHA256");
    let err = assert_code(authenticate(&r, NOW), "IncompleteSignatureException");
    assert!(
        err.message().starts_with(
            "Authorization header requires 'Credential' parameter. \
             Authorization header requires 'Signature' parameter. \
             Authorization header requires 'SignedHeaders' parameter."
        ),
        "{err}"
    );

    for bad in [
        "Basic dXNlcjpwYXNz".to_owned(),
        auth.replace("Credential=", "Credential"),
        auth.replace("/aws4_request", ""),
        auth.replace("SignedHeaders=", "SignedHeaders=;"),
        auth.replace("SignedHeaders=", "SignedHeaders=x;")
            .replace(";host", ""),
        format!("{auth}, Signature=00"),
    ] {
        let mut r = req.clone();
        r.set_header("authorization", &bad);
        assert_code(authenticate(&r, NOW), "IncompleteSignatureException");
    }
}

#[test]
fn wrong_terminator_and_algorithm() {
    let req = signed(Signing::default());
    let auth = header(&req, "authorization");
    let mut r = req.clone();
    r.set_header(
        "authorization",
        &auth.replace("aws4_request", "aws5_request"),
    );
    let err = assert_code(authenticate(&r, NOW), "InvalidSignatureException");
    assert!(err.message().contains("'aws5_request'"), "{err}");

    let mut r = req.clone();
    r.set_header(
        "authorization",
        &auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
    );
    assert_code(authenticate(&r, NOW), "IncompleteSignatureException");
}

#[test]
fn date_problems() {
    let req = signed(Signing::default());

    let mut r = req.clone();
    r.set_header("x-amz-date", "2024-01-02T03:04:05Z");
    let err = assert_code(authenticate(&r, NOW), "IncompleteSignatureException");
    assert!(err.message().contains("2024-01-02T03:04:05Z"), "{err}");

    let mut r = req.clone();
    r.set_header("x-amz-date", "20240103T030405Z");
    let err = assert_code(authenticate(&r, NOW), "InvalidSignatureException");
    assert!(matches!(err, SigV4Error::ScopeDateMismatch { .. }), "{err}");

    let mut r = req.clone();
    r.headers
        .push(("X-Amz-Date".into(), header(&req, "x-amz-date")));
    assert_code(authenticate(&r, NOW), "IncompleteSignatureException");

    let mut r = req.clone();
    r.remove_header("x-amz-date");
    let err = assert_code(authenticate(&r, NOW), "IncompleteSignatureException");
    assert!(
        err.message()
            .contains("requires existence of either a 'X-Amz-Date' or a 'Date' header"),
        "{err}"
    );

    // Signed with the same second but a different date header: the string to
    // sign carries the date, so the signature no longer matches.
    let mut r = req.clone();
    r.set_header("x-amz-date", "20240102T030406Z");
    assert_eq!(authenticate(&r, NOW), Err(SigV4Error::SignatureMismatch));
}

#[test]
fn several_auth_mechanisms_are_rejected() {
    let presigned = signed(Signing {
        presign_expires: Some(300),
        ..Signing::default()
    });
    let with_header = signed(Signing::default());
    let mut r = presigned.clone();
    r.set_header("authorization", &header(&with_header, "authorization"));
    let err = assert_code(authenticate(&r, NOW), "InvalidSignatureException");
    assert_eq!(err, SigV4Error::MultipleAuthMethods);

    let mut r = with_header.clone();
    r.headers.push((
        "Authorization".into(),
        header(&with_header, "authorization"),
    ));
    assert_code(authenticate(&r, NOW), "IncompleteSignatureException");
}

#[test]
fn presigned_valid_until_expiry() {
    let req = signed(Signing {
        presign_expires: Some(300),
        ..Signing::default()
    });
    authenticate(&req, NOW).unwrap();
    authenticate(&req, NOW + minutes(5)).unwrap();
    // Clock skew applies to a presigned URL from the future.
    authenticate(&req, NOW - minutes(14)).unwrap();
}

#[test]
fn presigned_expired() {
    let req = signed(Signing {
        presign_expires: Some(300),
        ..Signing::default()
    });
    let err = assert_code(
        authenticate(&req, NOW + minutes(5) + time::Duration::SECOND),
        "InvalidSignatureException",
    );
    assert!(matches!(err, SigV4Error::PresignedExpired { .. }), "{err}");
    assert_eq!(
        err.message(),
        "Signature expired: 20240102T030905Z is now earlier than 20240102T030906Z \
         (20240102T030405Z + 300 sec.)"
    );

    let err = assert_code(
        authenticate(&req, NOW - minutes(16)),
        "InvalidSignatureException",
    );
    assert!(
        matches!(err, SigV4Error::SignatureNotYetCurrent { .. }),
        "{err}"
    );
}

#[test]
fn presigned_parameter_problems() {
    let req = signed(Signing {
        presign_expires: Some(300),
        ..Signing::default()
    });
    let query = req.query.clone().unwrap();
    let drop_param = |name: &str| -> String {
        query
            .split('&')
            .filter(|p| !p.starts_with(&format!("{name}=")))
            .collect::<Vec<_>>()
            .join("&")
    };
    let cases = [
        drop_param("X-Amz-Credential"),
        drop_param("X-Amz-Date"),
        drop_param("X-Amz-Expires"),
        drop_param("X-Amz-SignedHeaders"),
        query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801"),
        query.replace("X-Amz-Expires=300", "X-Amz-Expires=0"),
        query.replace("X-Amz-Expires=300", "X-Amz-Expires=-5"),
        query.replace("X-Amz-Expires=300", "X-Amz-Expires=99999999999999999999"),
        query.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
        format!("{query}&X-Amz-Signature=00"),
    ];
    for q in cases {
        let mut r = req.clone();
        r.query = Some(q.clone());
        let err = authenticate(&r, NOW).expect_err(&q);
        assert_eq!(err.code(), "IncompleteSignatureException", "{q}: {err}");
    }

    let mut r = req.clone();
    r.query = Some(drop_param("X-Amz-Signature"));
    let err = authenticate(&r, NOW).unwrap_err();
    assert!(
        err.message()
            .contains("AWS query-string parameters must include 'X-Amz-Signature'."),
        "{err}"
    );

    // Parameters signed as part of the URL cannot be changed.
    let mut r = req.clone();
    r.query = Some(query.replace("x=1", "x=2"));
    assert_eq!(authenticate(&r, NOW), Err(SigV4Error::SignatureMismatch));
}

#[test]
fn host_must_be_signed() {
    // Hand-made: SDKs always sign host.
    let req = OwnedRequest {
        method: "GET".into(),
        path: "/things".into(),
        query: None,
        headers: vec![
            ("Host".into(), HOST.into()),
            ("X-Amz-Date".into(), "20240102T030405Z".into()),
            (
                "Authorization".into(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/iot/aws4_request, \
                 SignedHeaders=x-amz-date, Signature=00"
                    .into(),
            ),
        ],
        body: Vec::new(),
    };
    let err = assert_code(authenticate(&req, NOW), "IncompleteSignatureException");
    assert_eq!(
        err.message(),
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    );
}

/// No SDK still signs with the `Date` header, so sign by hand: the verifier's
/// own string to sign, but an independent key derivation and HMAC.
#[test]
fn date_header_fallback() {
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    let mut req = OwnedRequest {
        method: "GET".into(),
        path: "/things".into(),
        query: None,
        headers: vec![
            ("Host".into(), HOST.into()),
            ("Date".into(), "Tue, 02 Jan 2024 03:04:05 GMT".into()),
            (
                "Authorization".into(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/iot/aws4_request, \
                 SignedHeaders=date;host, Signature=pending"
                    .into(),
            ),
        ],
        body: Vec::new(),
    };
    let verifier = verifier();
    let sts = req.with_view(|view| {
        let parsed = verifier.parse(view, NOW).unwrap();
        verifier.signing_candidates(&parsed, view).unwrap()[0]
            .1
            .clone()
    });
    assert!(
        sts.starts_with(
            "AWS4-HMAC-SHA256\n20240102T030405Z\n20240102/us-east-1/iot/aws4_request\n"
        ),
        "{sts}"
    );
    let mut key = hmac(format!("AWS4{SECRET}").as_bytes(), b"20240102");
    for part in ["us-east-1", "iot", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, sts.as_bytes()));
    let auth = header(&req, "authorization").replace("pending", &signature);
    req.set_header("Authorization", &auth);
    authenticate(&req, NOW).unwrap();

    req.set_header("Date", "Tue, 02 Jan 2024 03:04:06 GMT");
    assert_eq!(authenticate(&req, NOW), Err(SigV4Error::SignatureMismatch));
    req.set_header("Date", "yesterday");
    assert_code(authenticate(&req, NOW), "IncompleteSignatureException");
}

#[test]
fn unknown_access_key_code() {
    let err = SigV4Error::UnknownAccessKey;
    assert_eq!(err.code(), "UnrecognizedClientException");
    assert_eq!(
        err.message(),
        "The security token included in the request is invalid."
    );
}

/// Changing any single character of a valid Authorization header must not
/// produce an accepted request.
#[test]
fn every_authorization_mutation_is_rejected() {
    let req = signed(Signing::default());
    let auth = header(&req, "authorization");
    for (i, c) in auth.char_indices() {
        let replacement = if c == 'Q' { 'R' } else { 'Q' };
        let mut mutated = auth.clone();
        mutated.replace_range(i..i + c.len_utf8(), &replacement.to_string());
        let mut r = req.clone();
        r.set_header("authorization", &mutated);
        assert!(
            authenticate(&r, NOW).is_err(),
            "accepted with Authorization {mutated:?}"
        );
    }
}
