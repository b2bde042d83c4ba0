//! SigV4 authentication, through the SDK and through hand-signed raw requests.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::common::*;
use aws_sdk_iot::operation::RequestId;
use aws_sdk_iot::types::MitigationActionType;
use aws_sdk_iot::Client;

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
const CREATE_BODY: &str = r#"{"roleArn":"arn:aws:iam::111122223333:role/palisade-e2e","actionParams":{"publishFindingToSnsParams":{"topicArn":"arn:aws:sns:us-east-1:111122223333:t"}}}"#;

/// A CreateMitigationAction request for `name`, unsigned.
fn create_request(name: &str) -> RawRequest {
    RawRequest::new("POST", &action_path(name)).json(CREATE_BODY)
}

/// Lists mitigation actions with `client`, expecting an authentication failure.
async fn list_failure(client: &Client) -> Failure {
    expect_failure(client.list_mitigation_actions().send().await).0
}

#[tokio::test]
async fn wrong_secret_is_invalid_signature_403() {
    let server = TestServer::start(ENGINE).await;
    let client = sdk_client(
        &server.endpoint,
        &server.a.access_key_id,
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    );
    list_failure(&client)
        .await
        .assert("InvalidSignatureException", 403)
        .mentions(&["signature"]);
    // The same key with the right secret works.
    server
        .client_a()
        .list_mitigation_actions()
        .send()
        .await
        .expect("the right secret is accepted");
}

#[tokio::test]
async fn unknown_access_key_is_unrecognized_client_403() {
    let server = TestServer::start(ENGINE).await;
    let client = sdk_client(
        &server.endpoint,
        "AKIAIOSFODNN7EXAMPLE",
        &server.a.secret_access_key,
    );
    list_failure(&client)
        .await
        .assert("UnrecognizedClientException", 403)
        .mentions(&["security token"]);
}

#[tokio::test]
async fn a_signature_for_another_region_is_403() {
    let server = TestServer::start(ENGINE).await;
    let creds = aws_sdk_iot::config::Credentials::new(
        &server.a.access_key_id,
        &server.a.secret_access_key,
        None,
        None,
        "palisade-e2e",
    );
    let client = Client::from_conf(
        sdk_config_builder(&server.endpoint)
            .region(aws_sdk_iot::config::Region::new("eu-west-1"))
            .credentials_provider(creds)
            .build(),
    );
    list_failure(&client)
        .await
        .assert("InvalidSignatureException", 403)
        .mentions(&["eu-west-1"]);
}

#[tokio::test]
async fn unsigned_request_is_missing_authentication_token_403() {
    let server = TestServer::start(ENGINE).await;
    let resp = server
        .send(RawRequest::get("/mitigationactions/actions"))
        .await;
    resp.assert_error(403, "MissingAuthenticationTokenException");
    let resp = server.send(create_request("unsigned")).await;
    resp.assert_error(403, "MissingAuthenticationTokenException");
    assert!(list_all_names(&server.client_a()).await.is_empty());
}

#[tokio::test]
async fn a_hand_signed_request_is_accepted() {
    // The positive control for the raw tests below: the same signer, untampered, works.
    let server = TestServer::start(ENGINE).await;
    let resp = server.send(server.signed(create_request("raw"))).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    resp.assert_request_id();
    assert_eq!(
        resp.json()["actionArn"].as_str(),
        Some(action_arn(ACCOUNT_A, "raw").as_str())
    );
    let d = describe_action(&server.client_a(), "raw").await;
    assert_eq!(
        d.action_type(),
        Some(&MitigationActionType::PublishFindingToSns)
    );
}

#[tokio::test]
async fn a_body_changed_after_signing_is_403() {
    let server = TestServer::start(ENGINE).await;
    let mut req = server.signed(create_request("tampered"));
    req.body = CREATE_BODY
        .replace("role/palisade-e2e", "role/palisade-bad")
        .into_bytes();
    assert_eq!(req.body.len(), CREATE_BODY.len());
    server
        .send(req)
        .await
        .assert_error(403, "InvalidSignatureException");
    assert!(list_all_names(&server.client_a()).await.is_empty());
}

#[tokio::test]
async fn a_path_changed_after_signing_is_403() {
    let server = TestServer::start(ENGINE).await;
    let mut req = server.signed(create_request("original"));
    req.target = action_path("renamed");
    server
        .send(req)
        .await
        .assert_error(403, "InvalidSignatureException");
    assert!(list_all_names(&server.client_a()).await.is_empty());
}

#[tokio::test]
async fn a_signature_twenty_minutes_old_is_expired_403() {
    let server = TestServer::start(ENGINE).await;
    let then = SystemTime::now() - Duration::from_secs(20 * 60);
    let req = create_request("stale").sign(&server.addr.to_string(), &server.a, then);
    let resp = server.send(req).await;
    resp.assert_error(403, "InvalidSignatureException");
    assert!(
        resp.message().contains("expired"),
        "message does not say expired: {:?}",
        resp.message()
    );
    assert!(list_all_names(&server.client_a()).await.is_empty());
}

#[tokio::test]
async fn a_signature_twenty_minutes_ahead_is_403() {
    let server = TestServer::start(ENGINE).await;
    let later = SystemTime::now() + Duration::from_secs(20 * 60);
    let req = RawRequest::get("/mitigationactions/actions").sign(
        &server.addr.to_string(),
        &server.a,
        later,
    );
    server
        .send(req)
        .await
        .assert_error(403, "InvalidSignatureException");
}

#[tokio::test]
async fn a_signature_within_the_allowed_skew_is_accepted() {
    let server = TestServer::start(ENGINE).await;
    let then = SystemTime::now() - Duration::from_secs(10 * 60);
    let req = RawRequest::get("/mitigationactions/actions").sign(
        &server.addr.to_string(),
        &server.a,
        then,
    );
    let resp = server.send(req).await;
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[tokio::test]
async fn every_response_carries_a_distinct_request_id() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let mut ids = HashSet::new();

    // Through the SDK: a success and a modelled error.
    let out = create_action(
        &client,
        "ids",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    ids.insert(out.request_id().expect("request id on success").to_owned());
    let (failure, _) = expect_failure(
        client
            .describe_mitigation_action()
            .action_name("nope")
            .send()
            .await,
    );
    ids.insert(failure.request_id.expect("request id on error"));

    // Raw: success, auth failure, routing failure, health check aside.
    let responses = [
        server
            .send(server.signed(RawRequest::get("/mitigationactions/actions")))
            .await,
        server
            .send(RawRequest::get("/mitigationactions/actions"))
            .await,
        server
            .send(server.signed(RawRequest::get("/no/such/path")))
            .await,
    ];
    for resp in &responses {
        resp.assert_request_id();
        ids.insert(resp.header("x-amzn-requestid").expect("id").to_owned());
    }
    assert_eq!(ids.len(), 5, "request ids repeat: {ids:?}");
}

#[tokio::test]
async fn a_presigned_url_is_accepted_until_it_expires() {
    let server = TestServer::start(ENGINE).await;
    let host = server.addr.to_string();
    let list = || RawRequest::get("/mitigationactions/actions?maxResults=5");

    let fresh = list().presign(&host, &server.a, SystemTime::now(), Duration::from_secs(60));
    assert!(
        fresh.target.contains("X-Amz-Signature="),
        "{}",
        fresh.target
    );
    assert!(
        !fresh
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization")),
        "{fresh:?}"
    );
    let resp = server.send(fresh.clone()).await;
    assert_eq!(resp.status, 200, "{resp:?}");

    // Editing a signed query parameter breaks the signature.
    let mut edited = fresh;
    edited.target = edited.target.replace("maxResults=5", "maxResults=6");
    server
        .send(edited)
        .await
        .assert_error(403, "InvalidSignatureException");

    let then = SystemTime::now() - Duration::from_secs(10 * 60);
    let expired = list().presign(&host, &server.a, then, Duration::from_secs(60));
    let resp = server.send(expired).await;
    resp.assert_error(403, "InvalidSignatureException");
    assert!(resp.message().contains("expired"), "{:?}", resp.message());
}

#[tokio::test]
async fn a_content_hash_header_that_does_not_match_the_body_is_403() {
    let server = TestServer::start(ENGINE).await;
    let req = server
        .signed(create_request("hashed"))
        .header("x-amz-content-sha256", &"0".repeat(64));
    server
        .send(req)
        .await
        .assert_error(403, "InvalidSignatureException");
    assert!(list_all_names(&server.client_a()).await.is_empty());
}
}
