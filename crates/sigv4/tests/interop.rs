//! Requests signed by the independent `aws-sigv4` signer (what aws-sdk-rust
//! uses) for service `iot` must verify, with its default settings.

mod common;

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignatureLocation, SigningSettings,
};
use common::{aws_sign, OwnedRequest, SECRET};
use palisade_sigv4::{Verifier, VerifierConfig};
use time::macros::datetime;
use time::OffsetDateTime;

const HOST: &str = "iot.us-east-1.amazonaws.com";
const NOW: OffsetDateTime = datetime!(2024-01-02 03:04:05 UTC);

fn system_time(t: OffsetDateTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().try_into().unwrap())
}

fn request(method: &str, path_and_query: &str, body: &[u8]) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(method)
        .uri(format!("https://{HOST}{path_and_query}"))
        .header("host", HOST)
        .header("content-type", "application/json")
        .header("user-agent", "aws-sdk-rust/1.0 palisade-tests")
        .body(body.to_vec())
        .unwrap()
}

/// Signs with aws-sigv4 for `iot`/`us-east-1` at `NOW`, then checks that
/// parse + verify accept the request; returns it for further inspection.
fn sign_and_verify(
    mut req: http::Request<Vec<u8>>,
    settings: SigningSettings,
    unsigned_payload: bool,
    session_token: Option<&str>,
) -> OwnedRequest {
    let body = req.body().clone();
    let signable_body = if unsigned_payload {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(&body)
    };
    aws_sign(
        &mut req,
        settings,
        signable_body,
        "iot",
        "us-east-1",
        system_time(NOW),
        session_token,
    );
    let owned = OwnedRequest::from_http(&req);
    let verifier = Verifier::new(VerifierConfig::new("iot", "us-east-1"));
    owned.with_view(|view| {
        let parsed = verifier
            .parse(view, NOW)
            .unwrap_or_else(|e| panic!("parse {owned:?}: {e}"));
        assert_eq!(parsed.access_key_id, common::ACCESS_KEY);
        verifier
            .verify(&parsed, view, SECRET)
            .unwrap_or_else(|e| panic!("verify {owned:?}: {e}"));
    });
    owned
}

fn canonical_uri(owned: &OwnedRequest) -> String {
    let verifier = Verifier::new(VerifierConfig::new("iot", "us-east-1"));
    owned.with_view(|view| {
        let parsed = verifier.parse(view, NOW).unwrap();
        let candidates = verifier.signing_candidates(&parsed, view).unwrap();
        candidates[0].0.lines().nth(1).unwrap().to_owned()
    })
}

#[test]
fn post_with_json_body() {
    let body = br#"{"actionParams":{"publishFindingToSnsParams":{"topicArn":"arn:aws:sns:us-east-1:123456789012:t"}},"roleArn":"arn:aws:iam::123456789012:role/r"}"#;
    let req = request("POST", "/mitigationactions/actions/my-action", body);
    sign_and_verify(req, SigningSettings::default(), false, None);
}

#[test]
fn post_with_content_sha256_header() {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let req = request("POST", "/mitigationactions/actions/my-action", b"{\"a\":1}");
    let owned = sign_and_verify(req, settings, false, None);
    assert!(owned
        .headers
        .iter()
        .any(|(n, _)| n == "x-amz-content-sha256"));
}

#[test]
fn unsigned_payload_header() {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let req = request("PUT", "/things/thing-1", b"not covered by the signature");
    let owned = sign_and_verify(req, settings, true, None);
    assert!(owned
        .headers
        .iter()
        .any(|(n, v)| n == "x-amz-content-sha256" && v == "UNSIGNED-PAYLOAD"));
}

#[test]
fn get_with_encoded_query_special_characters() {
    let query = "resourceArn=arn%3Aaws%3Aiot%3Aus-east-1%3A123456789012%3Amitigationaction%2Fx\
                 &nextToken=ab%2Bcd%2Fef%3D%3D&name=my%20name%20x&maxResults=10&empty=";
    let req = request("GET", &format!("/mitigationactions/actions?{query}"), b"");
    sign_and_verify(req, SigningSettings::default(), false, None);
}

#[test]
fn get_with_unencoded_query_characters() {
    // ':' and '/' are legal unencoded in a query; we must sign them encoded.
    let query = "resourceArn=arn:aws:iot:us-east-1:123456789012:mitigationaction/x&b=1&a=2&a=1";
    let req = request("GET", &format!("/tags?{query}"), b"");
    sign_and_verify(req, SigningSettings::default(), false, None);
}

#[test]
fn percent_encoded_path_is_double_encoded() {
    let req = request("GET", "/things/a%3Ab", b"");
    let owned = sign_and_verify(req, SigningSettings::default(), false, None);
    assert_eq!(canonical_uri(&owned), "/things/a%253Ab");

    let req = request("DELETE", "/mitigationactions/actions/my%20x", b"");
    let owned = sign_and_verify(req, SigningSettings::default(), false, None);
    assert_eq!(canonical_uri(&owned), "/mitigationactions/actions/my%2520x");
}

#[test]
fn utf8_and_reserved_characters_in_path() {
    let req = request("GET", "/things/%E1%88%B4%2Fx%20y~z", b"");
    sign_and_verify(req, SigningSettings::default(), false, None);
}

#[test]
fn session_token_is_signed_as_a_header() {
    let req = request("GET", "/things", b"");
    let owned = sign_and_verify(
        req,
        SigningSettings::default(),
        false,
        Some("session/token+="),
    );
    assert!(owned
        .headers
        .iter()
        .any(|(n, _)| n == "x-amz-security-token"));
}

#[test]
fn presigned_get() {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(300));
    let req = request("GET", "/things/a%3Ab?thingTypeName=t%201", b"");
    let owned = sign_and_verify(req, settings, false, Some("token"));
    let query = owned.query.as_deref().unwrap();
    assert!(query.contains("X-Amz-Signature="), "{query}");
    assert!(!owned
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization")));
}

#[test]
fn presigned_with_unsigned_payload() {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let req = request("POST", "/mitigationactions/actions/x", b"{\"k\":\"v\"}");
    sign_and_verify(req, settings, true, None);
}
