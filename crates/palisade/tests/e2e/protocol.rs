//! The rest-json protocol around the operations: unimplemented operations, unknown
//! paths, malformed bodies, the body size limit and the health check.

use crate::common::*;
use aws_sdk_iot::types::MitigationActionType;

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
const LIMIT: usize = 1024 * 1024;

/// A valid CreateMitigationAction body padded with whitespace to exactly `len` bytes.
fn create_body_of_len(len: usize) -> Vec<u8> {
    let json = br#"{"roleArn":"arn:aws:iam::111122223333:role/palisade-e2e","actionParams":{"updateCACertificateParams":{"action":"DEACTIVATE"}}}"#;
    assert!(len >= json.len());
    let mut body = json.to_vec();
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn unimplemented_operation_is_501_naming_it() {
    let server = TestServer::start(ENGINE).await;
    let (failure, _) = expect_failure(server.client_a().list_jobs().send().await);
    failure
        .assert("NotImplementedException", 501)
        .mentions(&["ListJobs"]);
}

#[tokio::test]
async fn unknown_path_is_404_with_an_aws_shaped_body() {
    let server = TestServer::start(ENGINE).await;
    for (method, path) in [
        ("GET", "/no/such/operation"),
        ("PUT", "/mitigationactions/actions/x"),
    ] {
        let resp = server
            .send(server.signed(RawRequest::new(method, path)))
            .await;
        resp.assert_error(404, "UnknownOperationException");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body = resp.json();
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(path)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn malformed_json_is_400_and_creates_nothing() {
    let server = TestServer::start(ENGINE).await;
    let bodies: [&[u8]; 4] = [
        b"{not json",
        br#"{"roleArn": 5, "actionParams": {}}"#,
        br#"["a", "list"]"#,
        b"\xff\xfe",
    ];
    for body in bodies {
        let req = RawRequest::new("POST", &action_path("malformed")).json(body);
        let resp = server.send(server.signed(req)).await;
        resp.assert_error(400, "InvalidRequestException");
    }
    assert!(list_all_names(&server.client_a()).await.is_empty());
}

#[tokio::test]
async fn a_body_at_the_limit_is_accepted() {
    let server = TestServer::start(ENGINE).await;
    let req = RawRequest::new("POST", &action_path("at-limit")).json(create_body_of_len(LIMIT));
    let resp = server.send(server.signed(req)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    describe_action(&server.client_a(), "at-limit").await;
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_a_clean_413() {
    let server = TestServer::start(ENGINE).await;
    let req = RawRequest::new("POST", &action_path("too-big")).json(create_body_of_len(LIMIT + 1));
    let resp = server.send(server.signed(req)).await;
    resp.assert_error(413, "RequestEntityTooLargeException");
    assert!(resp.message().contains("1048576"), "{:?}", resp.message());
    assert!(list_all_names(&server.client_a()).await.is_empty());
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_clean_413() {
    let server = TestServer::start(ENGINE).await;
    let body = create_body_of_len(2 * LIMIT);
    let req = server
        .signed(RawRequest::new("POST", &action_path("too-big")).json(body.clone()))
        .chunked(&body, 64 * 1024);
    let resp = server.send(req).await;
    resp.assert_error(413, "RequestEntityTooLargeException");
    assert!(list_all_names(&server.client_a()).await.is_empty());
}

#[tokio::test]
async fn an_sdk_request_over_the_limit_gets_413() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let huge_role = format!("arn:aws:iam::111122223333:role/{}", "r".repeat(LIMIT));
    let (failure, _) = expect_failure(
        client
            .create_mitigation_action()
            .action_name("too-big")
            .role_arn(huge_role)
            .action_params(params_for(&MitigationActionType::PublishFindingToSns))
            .send()
            .await,
    );
    failure.assert("RequestEntityTooLargeException", 413);
    assert!(list_all_names(&client).await.is_empty());
}

#[tokio::test]
async fn healthz_answers_without_auth() {
    let server = TestServer::start(ENGINE).await;
    let resp = server.send(RawRequest::get("/healthz")).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, b"ok");
}

#[tokio::test]
async fn labels_are_percent_decoded() {
    // The SDK percent-encodes the name in the path; the server decodes it before
    // validating, so the message shows the name as the client gave it.
    let server = TestServer::start(ENGINE).await;
    let (failure, _) = expect_failure(
        server
            .client_a()
            .describe_mitigation_action()
            .action_name("a/b c")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["'a/b c'", "actionName"]);
}

#[tokio::test]
async fn graceful_stop_of_the_in_process_server() {
    let server = TestServer::start(ENGINE).await;
    create_action(
        &server.client_a(),
        "before-stop",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    let addr = server.addr;
    tokio::time::timeout(std::time::Duration::from_secs(10), server.stop())
        .await
        .expect("serve() returns promptly after shutdown");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting connections after stop"
    );
}

#[tokio::test]
async fn query_members_are_validated() {
    let server = TestServer::start(ENGINE).await;
    for (query, member) in [
        ("actionType=BOGUS", "actionType"),
        ("maxResults=abc", "maxResults"),
        ("maxResults=0", "maxResults"),
    ] {
        let target = format!("/mitigationactions/actions?{query}");
        let resp = server.send(server.signed(RawRequest::get(&target))).await;
        resp.assert_error(400, "InvalidRequestException");
        assert!(
            resp.message().contains(member),
            "{query}: {:?}",
            resp.message()
        );
    }
}

#[tokio::test]
async fn describe_on_the_wire_is_rest_json() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_action(
        &client,
        "wire",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    let resp = server
        .send(server.signed(RawRequest::get(&action_path("wire"))))
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.assert_request_id();
    let body = resp.json();
    assert_eq!(body["actionName"], "wire");
    assert_eq!(body["actionType"], "PUBLISH_FINDING_TO_SNS");
    assert_eq!(body["roleArn"], ROLE_ARN);
    assert_eq!(
        body["actionParams"],
        serde_json::json!({"publishFindingToSnsParams": {"topicArn": TOPIC_ARN}})
    );
    // rest-json timestamps are epoch seconds, as numbers.
    for member in ["creationDate", "lastModifiedDate"] {
        let secs = body[member]
            .as_f64()
            .unwrap_or_else(|| panic!("{member} is not a number: {body}"));
        assert!(secs > 1.6e9, "{member} = {secs}");
    }
}

#[tokio::test]
async fn broken_chunked_framing_is_400_not_413() {
    let server = TestServer::start(ENGINE).await;
    let mut req = RawRequest::new("POST", &action_path("framing"))
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked");
    // "zz" is not a hexadecimal chunk size; the body is three bytes, far below the limit.
    req.body = b"zz\r\nabc\r\n0\r\n\r\n".to_vec();
    let resp = server.send(req).await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_ne!(
        resp.header("x-amzn-errortype"),
        Some("RequestEntityTooLargeException")
    );
}

    #[tokio::test]
    async fn a_nul_character_is_a_400_on_every_engine() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let (failure, _) = expect_failure(
            client
                .create_mitigation_action()
                .action_name("nul")
                .role_arn("arn:aws:iam::111122223333:role/\u{0}nul")
                .action_params(params_for(&MitigationActionType::PublishFindingToSns))
                .send()
                .await,
        );
        assert_eq!(failure.status, 400, "{failure:?}");
        assert_eq!(failure.code.as_deref(), Some("InvalidRequestException"));
        let listed = client.list_mitigation_actions().send().await.expect("list");
        assert!(listed.action_identifiers().is_empty());
    }
}
