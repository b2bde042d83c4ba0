//! The account's logging options (v1 and v2) through the real `aws-sdk-iot` client:
//! the unconfigured state, set and get, replacement, v1 and v2 kept apart, and
//! isolation between accounts.

use crate::common::*;
use aws_sdk_iot::operation::get_v2_logging_options::{
    GetV2LoggingOptionsError, GetV2LoggingOptionsOutput,
};
use aws_sdk_iot::types::{LogEventConfiguration, LogLevel, LoggingOptionsPayload};
use aws_sdk_iot::Client;

fn event(event_type: &str, level: Option<LogLevel>) -> LogEventConfiguration {
    LogEventConfiguration::builder()
        .event_type(event_type)
        .set_log_level(level)
        .build()
        .expect("event configuration")
}

/// What GetV2LoggingOptions says, without the per-response request id.
fn v2_state(
    out: &GetV2LoggingOptionsOutput,
) -> (
    Option<String>,
    Option<LogLevel>,
    bool,
    Vec<LogEventConfiguration>,
) {
    (
        out.role_arn().map(str::to_owned),
        out.default_log_level().cloned(),
        out.disable_all_logs(),
        out.event_configurations().to_vec(),
    )
}

async fn assert_v2_not_configured(client: &Client) {
    let (failure, err) = expect_failure(client.get_v2_logging_options().send().await);
    failure.assert("NotConfiguredException", 404);
    assert!(
        matches!(err, GetV2LoggingOptionsError::NotConfiguredException(_)),
        "{err:?}"
    );
}

async fn get_v2(client: &Client) -> GetV2LoggingOptionsOutput {
    client
        .get_v2_logging_options()
        .send()
        .await
        .expect("get v2 logging options")
}

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
#[tokio::test]
async fn v2_options_start_unconfigured_then_round_trip_and_replace() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    assert_v2_not_configured(&client).await;

    client
        .set_v2_logging_options()
        .role_arn(LOGGING_ROLE_ARN)
        .default_log_level(LogLevel::Info)
        .event_configurations(event("Connect", Some(LogLevel::Debug)))
        .event_configurations(event("Publish-In", None))
        .send()
        .await
        .expect("set");
    let got = get_v2(&client).await;
    assert_eq!(
        v2_state(&got),
        (
            Some(LOGGING_ROLE_ARN.to_owned()),
            Some(LogLevel::Info),
            false,
            vec![event("Connect", Some(LogLevel::Debug)), event("Publish-In", None)]
        )
    );
    // `verbose` is accepted; the answer is the same.
    let verbose = client
        .get_v2_logging_options()
        .verbose(true)
        .send()
        .await
        .expect("get verbose");
    assert_eq!(v2_state(&verbose), v2_state(&got));

    // A set replaces the options as a whole.
    client
        .set_v2_logging_options()
        .disable_all_logs(true)
        .send()
        .await
        .expect("disable all");
    assert_eq!(v2_state(&get_v2(&client).await), (None, None, true, vec![]));
    client
        .set_v2_logging_options()
        .role_arn(LOGGING_ROLE_ARN)
        .default_log_level(LogLevel::Disabled)
        .send()
        .await
        .expect("set disabled level");
    assert_eq!(
        v2_state(&get_v2(&client).await),
        (Some(LOGGING_ROLE_ARN.to_owned()), Some(LogLevel::Disabled), false, vec![])
    );
}

#[tokio::test]
async fn invalid_v2_options_are_refused_and_change_nothing() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (f, _) = expect_failure(
        client
            .set_v2_logging_options()
            .role_arn(LOGGING_ROLE_ARN)
            .event_configurations(event("Connect", Some(LogLevel::Info)))
            .event_configurations(event("Connect", Some(LogLevel::Error)))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["Connect"]);
    assert_v2_not_configured(&client).await;

    client
        .set_v2_logging_options()
        .role_arn(LOGGING_ROLE_ARN)
        .default_log_level(LogLevel::Warn)
        .send()
        .await
        .expect("set");
    let before = v2_state(&get_v2(&client).await);
    for body in [
        r#"{"defaultLogLevel":"LOUD"}"#,
        r#"{"eventConfigurations":[{"logLevel":"INFO"}]}"#,
        r#"{"disableAllLogs":"yes"}"#,
        "{",
    ] {
        let resp = server
            .send(server.signed(RawRequest::new("POST", "/v2LoggingOptions").json(body)))
            .await;
        resp.assert_error(400, "InvalidRequestException");
    }
    assert_eq!(v2_state(&get_v2(&client).await), before);
}

#[tokio::test]
async fn v1_options_start_empty_and_are_kept_apart_from_v2() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let empty = client.get_logging_options().send().await.expect("get unconfigured");
    assert_eq!((empty.role_arn(), empty.log_level()), (None, None));

    client
        .set_logging_options()
        .logging_options_payload(
            LoggingOptionsPayload::builder()
                .role_arn(LOGGING_ROLE_ARN)
                .log_level(LogLevel::Error)
                .build()
                .expect("payload"),
        )
        .send()
        .await
        .expect("set v1");
    let got = client.get_logging_options().send().await.expect("get");
    assert_eq!((got.role_arn(), got.log_level()), (Some(LOGGING_ROLE_ARN), Some(&LogLevel::Error)));
    assert_v2_not_configured(&client).await;

    client
        .set_v2_logging_options()
        .role_arn(ROLE_ARN)
        .default_log_level(LogLevel::Debug)
        .send()
        .await
        .expect("set v2");
    let got = client.get_logging_options().send().await.expect("get");
    assert_eq!((got.role_arn(), got.log_level()), (Some(LOGGING_ROLE_ARN), Some(&LogLevel::Error)));

    client
        .set_logging_options()
        .logging_options_payload(
            LoggingOptionsPayload::builder()
                .role_arn(ROLE_ARN_2)
                .build()
                .expect("payload"),
        )
        .send()
        .await
        .expect("replace v1");
    let got = client.get_logging_options().send().await.expect("get");
    assert_eq!((got.role_arn(), got.log_level()), (Some(ROLE_ARN_2), None));
    assert_eq!(get_v2(&client).await.default_log_level(), Some(&LogLevel::Debug));

    // The payload is the whole body and is required.
    let resp = server
        .send(server.signed(RawRequest::new("POST", "/loggingOptions")))
        .await;
    resp.assert_error(400, "InvalidRequestException");
    let resp = server
        .send(server.signed(RawRequest::new("POST", "/loggingOptions").json(r#"{"logLevel":"INFO"}"#)))
        .await;
    resp.assert_error(400, "InvalidRequestException");
    let got = client.get_logging_options().send().await.expect("get");
    assert_eq!(got.role_arn(), Some(ROLE_ARN_2));
}

#[tokio::test]
async fn set_operations_answer_an_empty_body() {
    let server = TestServer::start(ENGINE).await;
    for (target, body) in [
        ("/v2LoggingOptions", r#"{"roleArn":"arn:aws:iam::111122223333:role/l","defaultLogLevel":"ERROR"}"#),
        ("/loggingOptions", r#"{"roleArn":"arn:aws:iam::111122223333:role/l","logLevel":"WARN"}"#),
    ] {
        let resp = server
            .send(server.signed(RawRequest::new("POST", target).json(body)))
            .await;
        assert_eq!(resp.status, 200, "{target}: {resp:?}");
        assert!(resp.body.is_empty(), "{target}: {resp:?}");
        resp.assert_request_id();
    }
    let resp = server
        .send(server.signed(RawRequest::get("/loggingOptions")))
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.json(),
        serde_json::json!({"roleArn": "arn:aws:iam::111122223333:role/l", "logLevel": "WARN"})
    );
}

#[tokio::test]
async fn logging_options_belong_to_one_account() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let b = server.client_b();
    a.set_v2_logging_options()
        .role_arn(LOGGING_ROLE_ARN)
        .default_log_level(LogLevel::Error)
        .send()
        .await
        .expect("set v2 in a");
    a.set_logging_options()
        .logging_options_payload(
            LoggingOptionsPayload::builder()
                .role_arn(LOGGING_ROLE_ARN)
                .build()
                .expect("payload"),
        )
        .send()
        .await
        .expect("set v1 in a");
    assert_v2_not_configured(&b).await;
    let empty = b.get_logging_options().send().await.expect("get v1 in b");
    assert_eq!((empty.role_arn(), empty.log_level()), (None, None));

    b.set_v2_logging_options()
        .disable_all_logs(true)
        .send()
        .await
        .expect("set v2 in b");
    let theirs = get_v2(&a).await;
    assert_eq!(
        v2_state(&theirs),
        (Some(LOGGING_ROLE_ARN.to_owned()), Some(LogLevel::Error), false, vec![])
    );
}
}
