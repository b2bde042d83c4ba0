//! The connection history (issue 15) seen from the control plane, on both engines:
//! imported over `POST /palisade/connections` and with `palisade connections import`,
//! then read by the two connection audit checks (findings, related resources newest
//! first, suppressions), GetThingConnectivityData and DescribeEndpoint, through the
//! real `aws-sdk-iot` client.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditCheckRunStatus, AuditFinding, AuditTaskStatus,
    DisconnectReasonValue, RelatedResource, ResourceIdentifier, ResourceType,
};
use aws_sdk_iot::Client;
use serde_json::{json, Value};

const SHARED: &str = "DEVICE_CERTIFICATE_SHARED_CHECK";
const CONFLICTING: &str = "CONFLICTING_CLIENT_IDS_CHECK";
const ROLE: &str = "arn:aws:iam::111122223333:role/palisade-e2e-audit";
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Times the API answers come back exact only in whole seconds (epoch seconds as a JSON
/// number lose a millisecond to the binary fraction), so tests use such times.
fn whole_seconds(ms: i64) -> i64 {
    ms / 1000 * 1000
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Posts connection lines, signed as account A; the answer's JSON.
async fn post_connections(server: &TestServer, body: &str) -> Value {
    let mut req = RawRequest::new("POST", "/palisade/connections")
        .header("content-type", "application/x-ndjson");
    req.body = body.as_bytes().to_vec();
    let resp = server.send(server.signed(req)).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.assert_request_id();
    resp.json()
}

async fn enable(client: &Client, checks: &[&str]) {
    let mut req = client.update_account_audit_configuration().role_arn(ROLE);
    for check in checks {
        req = req.audit_check_configurations(
            *check,
            AuditCheckConfiguration::builder().enabled(true).build(),
        );
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("enabling {checks:?}: {}", DisplayErrorContext(e)));
}

/// Runs an on-demand audit of `checks` to completion; its id and per-check (status,
/// total, non-compliant).
async fn audit(client: &Client, checks: &[&str]) -> (String, Vec<(AuditCheckRunStatus, i64, i64)>) {
    let id = client
        .start_on_demand_audit_task()
        .set_target_check_names(Some(checks.iter().map(|c| c.to_string()).collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartOnDemandAuditTask: {}", DisplayErrorContext(e)))
        .task_id()
        .expect("taskId")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = client
            .describe_audit_task()
            .task_id(&id)
            .send()
            .await
            .expect("DescribeAuditTask");
        if out.task_status() != Some(&AuditTaskStatus::InProgress) {
            break out;
        }
        assert!(Instant::now() < deadline, "audit still running: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        out.task_status(),
        Some(&AuditTaskStatus::Completed),
        "{out:?}"
    );
    let details = out.audit_details().expect("details");
    let results = checks
        .iter()
        .map(|c| {
            let d = &details[*c];
            (
                d.check_run_status().expect("status").clone(),
                d.total_resources_count().unwrap_or(-1),
                d.non_compliant_resources_count().unwrap_or(-1),
            )
        })
        .collect();
    (id, results)
}

async fn findings(client: &Client, task_id: &str, check: &str) -> Vec<AuditFinding> {
    client
        .list_audit_findings()
        .task_id(task_id)
        .check_name(check)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAuditFindings: {}", DisplayErrorContext(e)))
        .findings()
        .to_vec()
}

/// Every related resource of a finding, following nextToken with pages of 1.
async fn related(client: &Client, finding_id: &str) -> Vec<RelatedResource> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_related_resources_for_audit_finding()
            .finding_id(finding_id)
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListRelatedResources: {}", DisplayErrorContext(e)));
        out.extend(page.related_resources().iter().cloned());
        match page.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// (type, identifier, CONNECTION_TIME, DISCONNECTION_TIME) of related resources.
fn summarise(rs: &[RelatedResource]) -> Vec<(ResourceType, String, String, Option<String>)> {
    rs.iter()
        .map(|r| {
            let id = r.resource_identifier().expect("identifier");
            let info = r.additional_info().expect("additionalInfo");
            (
                r.resource_type().expect("type").clone(),
                id.client_id()
                    .or(id.device_certificate_id())
                    .expect("an id")
                    .to_owned(),
                info["CONNECTION_TIME"].clone(),
                info.get("DISCONNECTION_TIME").cloned(),
            )
        })
        .collect()
}

per_engine! {
    #[tokio::test]
    async fn connection_checks_report_shared_certificates_and_conflicting_client_ids() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let (a, b, c, d) = (
            self_signed("shared"),
            self_signed("first-owner"),
            self_signed("taker"),
            self_signed("old"),
        );
        let (a_id, b_id, c_id) = (certificate_id(&a), certificate_id(&b), certificate_id(&c));
        let base = whole_seconds(now_ms() - DAY);
        let t = |minutes: i64| base + minutes * MINUTE;
        let answer = post_connections(&server, &jsonl(&[
            // Certificate a, used by dev-1 and dev-2 at once; dev-3 later, alone.
            json!({"certificatePem": a, "clientId": "dev-1", "sourceIp": "192.0.2.1",
                   "connectedAt": t(0), "disconnectedAt": t(10),
                   "disconnectReason": "CLIENT_INITIATED_DISCONNECT"}),
            json!({"certificateId": a_id, "clientId": "dev-2", "sourceIp": "192.0.2.2",
                   "connectedAt": t(5), "disconnectedAt": t(20)}),
            json!({"certificateId": a_id, "clientId": "dev-3", "sourceIp": "192.0.2.3",
                   "connectedAt": t(30), "disconnectedAt": t(40)}),
            // Client id "dup": b's session taken over by c.
            json!({"certificateId": b_id, "clientId": "dup", "sourceIp": "198.51.100.1",
                   "connectedAt": t(60), "disconnectedAt": t(120),
                   "disconnectReason": "DUPLICATE_CLIENTID"}),
            json!({"certificateId": c_id, "clientId": "dup", "sourceIp": "198.51.100.2",
                   "sourcePort": 40000, "connectedAt": t(120)}),
            // Fine: one certificate, one client id.
            json!({"certificateId": b_id, "clientId": "ok", "sourceIp": "198.51.100.3",
                   "connectedAt": t(0), "disconnectedAt": t(50)}),
            // Shared and conflicting, but 40 days ago: outside the 31-day window.
            json!({"certificatePem": d, "clientId": "old-1", "sourceIp": "203.0.113.1",
                   "connectedAt": base - 39 * DAY, "disconnectedAt": base - 39 * DAY + 50 * MINUTE,
                   "disconnectReason": "DUPLICATE_CLIENTID"}),
            json!({"certificatePem": d, "clientId": "old-1", "sourceIp": "203.0.113.2",
                   "connectedAt": base - 39 * DAY + 10 * MINUTE,
                   "disconnectedAt": base - 39 * DAY + 60 * MINUTE}),
        ]))
        .await;
        assert_eq!(
            (&answer["linesRead"], &answer["imported"], &answer["failedLines"]),
            (&json!(8), &json!(8), &json!(0)),
            "{answer}"
        );

        enable(&client, &[SHARED, CONFLICTING]).await;
        let (task, results) = audit(&client, &[SHARED, CONFLICTING]).await;
        // Examined: the certificates (a, b, c) and client ids (dev-1..3, dup, ok) that
        // connected in the window.
        assert_eq!(
            results,
            vec![
                (AuditCheckRunStatus::CompletedNonCompliant, 3, 1),
                (AuditCheckRunStatus::CompletedNonCompliant, 5, 1),
            ]
        );

        let shared = findings(&client, &task, SHARED).await;
        assert_eq!(shared.len(), 1, "{shared:?}");
        let f = &shared[0];
        assert_eq!(
            f.reason_for_non_compliance_code(),
            Some("CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES")
        );
        let resource = f.non_compliant_resource().expect("resource");
        assert_eq!(resource.resource_type(), Some(&ResourceType::DeviceCertificate));
        assert_eq!(
            resource.resource_identifier().and_then(|r| r.device_certificate_id()),
            Some(a_id.as_str())
        );
        // The connections that overlapped, newest first; dev-3 overlapped none. The
        // finding carries them too (few here), as listed and as described.
        let expected = vec![
            (ResourceType::ClientId, "dev-2".into(), t(5).to_string(), Some(t(20).to_string())),
            (ResourceType::ClientId, "dev-1".into(), t(0).to_string(), Some(t(10).to_string())),
        ];
        assert_eq!(summarise(&related(&client, f.finding_id().unwrap()).await), expected);
        assert_eq!(summarise(f.related_resources()), expected);
        let described = client
            .describe_audit_finding()
            .finding_id(f.finding_id().unwrap())
            .send()
            .await
            .expect("DescribeAuditFinding");
        assert_eq!(
            summarise(described.finding().expect("finding").related_resources()),
            expected
        );

        let conflicting = findings(&client, &task, CONFLICTING).await;
        assert_eq!(conflicting.len(), 1, "{conflicting:?}");
        let f = &conflicting[0];
        assert_eq!(
            f.reason_for_non_compliance_code(),
            Some("DUPLICATE_CLIENT_ID_ACROSS_CONNECTIONS")
        );
        let resource = f.non_compliant_resource().expect("resource");
        assert_eq!(resource.resource_type(), Some(&ResourceType::ClientId));
        assert_eq!(
            resource.resource_identifier().and_then(|r| r.client_id()),
            Some("dup")
        );
        assert_eq!(
            summarise(&related(&client, f.finding_id().unwrap()).await),
            vec![
                (ResourceType::DeviceCertificate, c_id.clone(), t(120).to_string(), None),
                (
                    ResourceType::DeviceCertificate,
                    b_id.clone(),
                    t(60).to_string(),
                    Some(t(120).to_string())
                ),
            ]
        );

        // A suppression of the shared certificate: the next audit marks its finding
        // suppressed, and the check is compliant.
        client
            .create_audit_suppression()
            .check_name(SHARED)
            .resource_identifier(ResourceIdentifier::builder().device_certificate_id(&a_id).build())
            .suppress_indefinitely(true)
            .client_request_token("suppress-shared")
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateAuditSuppression: {}", DisplayErrorContext(e)));
        let (task, results) = audit(&client, &[SHARED, CONFLICTING]).await;
        assert_eq!(
            results,
            vec![
                (AuditCheckRunStatus::CompletedCompliant, 3, 1),
                (AuditCheckRunStatus::CompletedNonCompliant, 5, 1),
            ]
        );
        let shared = findings(&client, &task, SHARED).await;
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].is_suppressed(), Some(true));
        assert_eq!(findings(&client, &task, CONFLICTING).await[0].is_suppressed(), Some(false));

        // Another account's audit sees none of account A's connections.
        let other = server.client_b();
        enable(&other, &[SHARED, CONFLICTING]).await;
        let (_, results) = audit(&other, &[SHARED, CONFLICTING]).await;
        assert_eq!(
            results,
            vec![
                (AuditCheckRunStatus::CompletedCompliant, 0, 0),
                (AuditCheckRunStatus::CompletedCompliant, 0, 0),
            ]
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn connection_checks_sweep_many_connections_in_pages() {
        // 2,401 connections of 1,200 certificates: the checks' pages of 1,000 end in the
        // middle of groups.
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let t = whole_seconds(now_ms() - DAY);
        let mut lines = Vec::new();
        for i in 0..1200u32 {
            let cert = format!("{:064x}", i + 1);
            let takeover = i % 4 == 0;
            let mut first = json!({"certificateId": cert, "clientId": format!("c{i}-a"),
                                   "sourceIp": "192.0.2.1", "connectedAt": t,
                                   "disconnectedAt": t + 10 * MINUTE});
            if takeover {
                first["disconnectReason"] = json!("DUPLICATE_CLIENTID");
            }
            lines.push(first);
            let second_client = if takeover { format!("c{i}-a") } else { format!("c{i}-b") };
            let start = if i % 3 == 0 { t + 5 * MINUTE } else { t + 10 * MINUTE };
            lines.push(json!({"certificateId": cert, "clientId": second_client,
                              "sourceIp": "192.0.2.2", "connectedAt": start,
                              "disconnectedAt": t + 20 * MINUTE}));
            if i == 0 {
                // A third, alone: every later certificate's pair starts at an odd row.
                lines.push(json!({"certificateId": cert, "clientId": "c0-late",
                                  "sourceIp": "192.0.2.3", "connectedAt": t + 30 * MINUTE,
                                  "disconnectedAt": t + 40 * MINUTE}));
            }
        }
        // And one certificate used by twelve devices at once.
        let busy = "f".repeat(64);
        for k in 0..12 {
            lines.push(json!({"certificateId": busy, "clientId": format!("busy-{k:02}"),
                              "sourceIp": "192.0.2.9", "connectedAt": t + k * MINUTE}));
        }
        let answer = post_connections(&server, &jsonl(&lines)).await;
        assert_eq!(answer["imported"], 2413, "{answer}");
        enable(&client, &[SHARED, CONFLICTING]).await;
        let (task, results) = audit(&client, &[SHARED, CONFLICTING]).await;
        // Shared: overlapping (i % 3 == 0) with two client ids (not i % 4 == 0): 400 - 100.
        // Conflicting: the 300 client ids taken over; 300 + 900 * 2 + 1 + 12 client ids
        // in all.
        assert_eq!(
            results,
            vec![
                (AuditCheckRunStatus::CompletedNonCompliant, 1201, 301),
                (AuditCheckRunStatus::CompletedNonCompliant, 2113, 300),
            ]
        );
        // The certificate of i = 999, whose connections straddle the second page's end
        // (rows 1,999 and 2,000 in certificate order): both related resources.
        let cert = format!("{:064x}", 1000);
        let found = client
            .list_audit_findings()
            .task_id(&task)
            .check_name(SHARED)
            .resource_identifier(ResourceIdentifier::builder().device_certificate_id(&cert).build())
            .send()
            .await
            .expect("findings");
        let f = &found.findings()[0];
        let clients: Vec<String> = summarise(&related(&client, f.finding_id().unwrap()).await)
            .into_iter()
            .map(|(_, c, _, _)| c)
            .collect();
        assert_eq!(clients, vec!["c999-b", "c999-a"]);
        // The busy certificate's finding carries its ten newest; the listing has all 12.
        let found = client
            .list_audit_findings()
            .task_id(&task)
            .check_name(SHARED)
            .resource_identifier(ResourceIdentifier::builder().device_certificate_id(&busy).build())
            .send()
            .await
            .expect("findings");
        let f = &found.findings()[0];
        let names = |rs: &[RelatedResource]| -> Vec<String> {
            summarise(rs).into_iter().map(|(_, c, _, _)| c).collect()
        };
        let all: Vec<String> = (0..12).rev().map(|k| format!("busy-{k:02}")).collect();
        assert_eq!(names(&related(&client, f.finding_id().unwrap()).await), all);
        assert_eq!(names(f.related_resources()), all[..10].to_vec());
        server.stop().await;
    }

    #[tokio::test]
    async fn connections_import_over_http_reports_bad_lines() {
        let server = TestServer::start(ENGINE).await;
        let id = "a".repeat(64);
        let body = format!(
            "{}\n\n{}\nnot json\n{}\n{}\n{}\n",
            json!({"certificateId": id, "clientId": "c1", "sourceIp": "192.0.2.1",
                   "connectedAt": "2026-12-01T10:00:00Z"}),
            json!({"certificateId": id, "sourceIp": "192.0.2.1", "connectedAt": 1}),
            json!({"certificateId": id, "clientId": "c2", "sourceIp": "192.0.2.1",
                   "connectedAt": 5, "disconnectedAt": 6, "disconnectReason": "BORED"}),
            json!({"certificatePem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----",
                   "clientId": "c3", "sourceIp": "192.0.2.1", "connectedAt": 5}),
            json!({"certificateId": id, "clientId": "c4", "sourceIp": "2001:db8::1",
                   "connectedAt": 1_796_637_600_000_i64, "disconnectedAt": "2026-12-07T11:00:00+01:00"}),
        );
        let answer = post_connections(&server, &body).await;
        assert_eq!(answer["linesRead"], 6, "{answer}");
        assert_eq!(answer["imported"], 2, "{answer}");
        assert_eq!(answer["failedLines"], 4, "{answer}");
        let errors = answer["errors"].as_array().expect("errors");
        let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        let message = |i: usize| errors[i]["message"].as_str().unwrap().to_owned();
        assert_eq!(errors[0]["code"], "InvalidRequestException");
        assert!(message(0).contains("clientId"), "{}", message(0));
        assert!(message(1).contains("not a connection object"), "{}", message(1));
        assert!(message(2).contains("disconnectReason") && message(2).contains("DUPLICATE_CLIENTID"));
        assert_eq!(errors[3]["code"], "CertificateValidationException");

        // Unsigned: refused like any request.
        let mut req = RawRequest::new("POST", "/palisade/connections");
        req.body = body.into_bytes();
        let resp = server.send(req).await;
        assert_eq!(resp.status, 403, "{}", String::from_utf8_lossy(&resp.body));
        server.stop().await;
    }

    #[tokio::test]
    async fn thing_connectivity_data_from_the_history() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        for name in ["lamp", "fan", "idle"] {
            client.create_thing().thing_name(name).send().await.expect("CreateThing");
        }
        let id = "b".repeat(64);
        let base = whole_seconds(now_ms() - 3_600_000);
        post_connections(&server, &jsonl(&[
            // lamp: an older closed connection, then an open one naming the thing.
            json!({"certificateId": id, "clientId": "lamp-client", "thingName": "lamp",
                   "sourceIp": "192.0.2.10", "sourcePort": 51000,
                   "connectedAt": base, "disconnectedAt": base + 1_000,
                   "disconnectReason": "CONNECTION_LOST"}),
            json!({"certificateId": id, "clientId": "lamp-client", "thingName": "lamp",
                   "sourceIp": "192.0.2.11", "sourcePort": 51001, "connectedAt": base + 2_000}),
            // fan: known by its client id only, disconnected.
            json!({"certificateId": id, "clientId": "fan", "sourceIp": "192.0.2.12",
                   "connectedAt": base, "disconnectedAt": base + 5_000,
                   "disconnectReason": "MQTT_KEEP_ALIVE_TIMEOUT"}),
        ]))
        .await;

        let lamp = client
            .get_thing_connectivity_data()
            .thing_name("lamp")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetThingConnectivityData: {}", DisplayErrorContext(e)));
        assert_eq!(lamp.thing_name(), Some("lamp"));
        assert_eq!(lamp.connected(), Some(true));
        assert_eq!(lamp.timestamp().and_then(|t| t.to_millis().ok()), Some(base + 2_000));
        assert_eq!(lamp.disconnect_reason(), None);
        assert_eq!(lamp.client_id(), Some("lamp-client"));
        assert_eq!((lamp.source_ip(), lamp.source_port()), (None, None), "no socket information unless asked");
        let lamp = client
            .get_thing_connectivity_data()
            .thing_name("lamp")
            .include_socket_information(true)
            .send()
            .await
            .expect("with socket information");
        assert_eq!((lamp.source_ip(), lamp.source_port()), (Some("192.0.2.11"), Some(51001)));

        let fan = client
            .get_thing_connectivity_data()
            .thing_name("fan")
            .send()
            .await
            .expect("fan");
        assert_eq!(fan.connected(), Some(false));
        assert_eq!(fan.timestamp().and_then(|t| t.to_millis().ok()), Some(base + 5_000));
        assert_eq!(fan.disconnect_reason(), Some(&DisconnectReasonValue::MqttKeepAliveTimeout));
        assert_eq!(fan.client_id(), Some("fan"));

        let idle = client
            .get_thing_connectivity_data()
            .thing_name("idle")
            .send()
            .await
            .expect("idle");
        assert_eq!(idle.connected(), Some(false));
        assert_eq!(
            (idle.timestamp(), idle.disconnect_reason(), idle.client_id()),
            (None, None, None),
            "never connected: nothing but connected=false"
        );

        let (f, _) = expect_failure(
            client.get_thing_connectivity_data().thing_name("ghost").send().await,
        );
        f.assert("ResourceNotFoundException", 404).mentions(&["ghost"]);
        // Another account's thing of the same name is not this one's.
        let (f, _) = expect_failure(
            server.client_b().get_thing_connectivity_data().thing_name("lamp").send().await,
        );
        f.assert("ResourceNotFoundException", 404);
        server.stop().await;
    }

    #[tokio::test]
    async fn describe_endpoint_answers_the_gateway_address() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        // Gateway off (the default until serve sets it): the documented error.
        for t in [None, Some("iot:Data-ATS")] {
            let (f, _) = expect_failure(client.describe_endpoint().set_endpoint_type(t.map(Into::into)).send().await);
            f.assert("InvalidRequestException", 400).mentions(&["gateway is disabled"]);
        }
        server.engine.set_data_endpoint(Some("localhost:18883".into()));
        for t in [None, Some("iot:Data"), Some("iot:Data-ATS")] {
            let out = client
                .describe_endpoint()
                .set_endpoint_type(t.map(Into::into))
                .send()
                .await
                .unwrap_or_else(|e| panic!("DescribeEndpoint {t:?}: {}", DisplayErrorContext(e)));
            assert_eq!(out.endpoint_address(), Some("localhost:18883"), "{t:?}");
        }
        for t in ["iot:CredentialProvider", "iot:Jobs"] {
            let (f, _) = expect_failure(client.describe_endpoint().endpoint_type(t).send().await);
            f.assert("InvalidRequestException", 400).mentions(&[t, "no"]);
        }
        let (f, _) = expect_failure(client.describe_endpoint().endpoint_type("iot:Nope").send().await);
        f.assert("InvalidRequestException", 400)
            .mentions(&["endpointType", "iot:Nope", "iot:Data-ATS", "iot:Jobs"]);
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------------
// The CLI, as a process beside a running server

fn connections_import(args: &[&str]) -> Output {
    Command::new(crate::common::process::BIN)
        .arg("connections")
        .arg("import")
        .args(args)
        .env_remove("PALISADE_DATA_DIR")
        .env_remove("PALISADE_DATABASE_URL")
        .env_remove("PALISADE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("running palisade connections import")
}

async fn cli_import_next_to_a_server(engine: StoreKind) {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let pg = match engine {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => Some(palisade_testdb::TestDatabase::create().await),
    };
    let mut db_args: Vec<String> = Vec::new();
    if let Some(pg) = &pg {
        db_args = vec!["--database-url".into(), pg.url.clone()];
    }
    let db_refs: Vec<&str> = db_args.iter().map(String::as_str).collect();
    let server = crate::common::process::ServerProcess::start_with(&data, &db_refs).await;
    let client = crate::import::profile_client(&server.endpoint, &data);
    client
        .create_thing()
        .thing_name("pump")
        .send()
        .await
        .expect("CreateThing");

    let id = "c".repeat(64);
    let base = whole_seconds(now_ms() - DAY);
    let text = jsonl(&[
        json!({"certificateId": id, "clientId": "pump", "sourceIp": "192.0.2.20",
               "connectedAt": base, "disconnectedAt": base + 10 * MINUTE}),
        json!({"certificateId": id, "clientId": "pump-twin", "sourceIp": "192.0.2.21",
               "connectedAt": base + 5 * MINUTE, "disconnectedAt": base + 15 * MINUTE,
               "disconnectReason": "CONNECTION_LOST"}),
        json!({"certificateId": id, "clientId": "x", "sourceIp": "192.0.2.22",
               "connectedAt": "last tuesday"}),
    ]);
    let file = root.path().join("connections.jsonl");
    std::fs::write(&file, &text).unwrap();
    let errors = root.path().join("errors.jsonl");
    let data_str = data.to_str().unwrap();
    let mut args = vec![
        file.to_str().unwrap(),
        "--account-id",
        "000000000000",
        "--data-dir",
        data_str,
        "--errors-file",
        errors.to_str().unwrap(),
    ];
    args.extend(&db_refs);
    let out = connections_import(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("Imported 3 line(s)") && stdout.contains("2 connection(s) recorded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 3: InvalidRequestException: connectedAt"),
        "{stdout}"
    );
    let recorded: Vec<Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["line"], 3);

    // The running server sees the import at once.
    let pump = client
        .get_thing_connectivity_data()
        .thing_name("pump")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetThingConnectivityData: {}", DisplayErrorContext(e)));
    assert_eq!(pump.connected(), Some(false));
    assert_eq!(
        pump.timestamp().and_then(|t| t.to_millis().ok()),
        Some(base + 10 * MINUTE)
    );
    enable(&client, &[SHARED]).await;
    let (task, results) = audit(&client, &[SHARED]).await;
    assert_eq!(
        results,
        vec![(AuditCheckRunStatus::CompletedNonCompliant, 1, 1)]
    );
    let f = &findings(&client, &task, SHARED).await[0];
    let clients: Vec<String> = summarise(&related(&client, f.finding_id().unwrap()).await)
        .into_iter()
        .map(|(_, c, _, _)| c)
        .collect();
    assert_eq!(clients, vec!["pump-twin", "pump"]);

    // Bad arguments fail before touching anything.
    let out = connections_import(&[
        file.to_str().unwrap(),
        "--account-id",
        "12",
        "--data-dir",
        data_str,
    ]);
    assert_eq!(out.status.code(), Some(1));
    drop(server);
    drop(pg);
}

#[tokio::test]
async fn cli_connections_import_sqlite() {
    cli_import_next_to_a_server(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn cli_connections_import_postgres() {
    cli_import_next_to_a_server(StoreKind::Postgres).await;
}
