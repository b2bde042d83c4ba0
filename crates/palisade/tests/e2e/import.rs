//! Bulk import (docs/IMPORT.md): the engine's importer on both engines, checked through
//! the real `aws-sdk-iot` client, and `palisade fleet import` run as a process next to a
//! running server.

use std::io::Cursor;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::{CertificateMode, CertificateStatus};
use aws_sdk_iot::Client;
use palisade_engine::{Engine, ImportObserver, ImportOptions, ImportSummary, LineError, Scope};
use serde_json::{json, Value};

const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

/// Collects every error as `(line, code, message)`.
#[derive(Default)]
struct Collect {
    errors: Vec<(u64, String, String)>,
    last_progress: Option<(u64, u64)>,
}

impl ImportObserver for Collect {
    fn progress(&mut self, done: u64, total: u64) {
        self.last_progress = Some((done, total));
    }
    fn error(&mut self, e: LineError) {
        let line = e.line;
        let message = e.error.to_string();
        let code = palisade_api::ApiError::from(e.error).code.to_owned();
        self.errors.push((line, code, message));
    }
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect::<String>()
}

fn scope_a() -> Scope {
    Scope {
        account_id: ACCOUNT_A.into(),
        region: REGION.into(),
    }
}

async fn run_import(engine: &Engine, text: &str, batch_size: usize) -> (ImportSummary, Collect) {
    let mut observer = Collect::default();
    let summary = engine
        .import(
            &scope_a(),
            Cursor::new(text.as_bytes().to_vec()),
            &ImportOptions {
                batch_size,
                workers: 2,
            },
            &mut observer,
        )
        .await
        .expect("import runs");
    (summary, observer)
}

fn cert_arn(id: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{id}")
}

async fn principals_of(client: &Client, thing: &str) -> Vec<String> {
    let mut out: Vec<String> = client
        .list_thing_principals()
        .thing_name(thing)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListThingPrincipals {thing}: {}", DisplayErrorContext(e)))
        .principals()
        .to_vec();
    out.sort();
    out
}

async fn attached_policies(client: &Client, target: &str) -> Vec<String> {
    client
        .list_attached_policies()
        .target(target)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAttachedPolicies: {}", DisplayErrorContext(e)))
        .policies()
        .iter()
        .filter_map(|p| p.policy_name().map(str::to_owned))
        .collect()
}

async fn groups_of(client: &Client, thing: &str) -> Vec<String> {
    client
        .list_thing_groups_for_thing()
        .thing_name(thing)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListThingGroupsForThing: {}", DisplayErrorContext(e)))
        .thing_groups()
        .iter()
        .filter_map(|g| g.group_name().map(str::to_owned))
        .collect()
}

/// A small fleet where every line refers forward, to lines further down.
fn forward_fleet(c1: &str, c2: &str) -> String {
    jsonl(&[
        json!({"type": "certificate", "pem": c2, "status": "ACTIVE",
               "things": ["sensor-1", "sensor-2"], "policies": ["connect"]}),
        json!({"type": "thing", "name": "sensor-1", "attributes": {"floor": "2", "empty": ""},
               "groups": ["floor-2"], "certificatePem": c1, "certificateStatus": "ACTIVE",
               "certificatePolicies": ["connect"]}),
        json!({"type": "thing", "name": "sensor-2"}),
        json!({"type": "thingGroup", "name": "floor-2", "parent": "building",
               "description": "second floor"}),
        json!({"type": "thingGroup", "name": "building", "attributes": {"city": "Lyon"}}),
        json!({"type": "policy", "name": "connect", "document": DOC}),
        json!({"type": "policy", "name": "as-object",
               "document": {"Version": "2012-10-17",
                            "Statement": {"Effect": "Deny", "Action": "iot:*", "Resource": "*"}}}),
    ])
}

per_engine! {
    #[tokio::test]
    async fn imports_a_fleet_whose_lines_refer_forward() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let (c1, c2) = (self_signed("sensor-1"), self_signed("shared"));
        let (id1, id2) = (certificate_id(&c1), certificate_id(&c2));
        // Batches of two: the relations cross batches and phases.
        let (summary, observer) = run_import(&server.engine, &forward_fleet(&c1, &c2), 2).await;
        assert!(observer.errors.is_empty(), "{:?}", observer.errors);
        assert_eq!(summary.lines_read, 7);
        assert_eq!(summary.failed_lines, 0);
        assert_eq!(
            (summary.created.policies, summary.created.thing_groups, summary.created.things,
             summary.created.certificates),
            (2, 2, 2, 2)
        );
        assert_eq!(observer.last_progress, Some((7, 7)));

        let thing = client.describe_thing().thing_name("sensor-1").send().await
            .unwrap_or_else(|e| panic!("DescribeThing: {}", DisplayErrorContext(e)));
        assert_eq!(thing.version(), 1);
        let attributes = thing.attributes().expect("attributes");
        assert_eq!(attributes.len(), 1, "empty values are not stored, as in CreateThing");
        assert_eq!(attributes.get("floor").map(String::as_str), Some("2"));
        assert_eq!(groups_of(&client, "sensor-1").await, ["floor-2"]);
        let group = client.describe_thing_group().thing_group_name("floor-2").send().await
            .unwrap_or_else(|e| panic!("DescribeThingGroup: {}", DisplayErrorContext(e)));
        assert_eq!(
            group.thing_group_metadata().and_then(|m| m.parent_group_name()),
            Some("building")
        );

        let mut both = vec![cert_arn(&id1), cert_arn(&id2)];
        both.sort();
        assert_eq!(principals_of(&client, "sensor-1").await, both);
        assert_eq!(principals_of(&client, "sensor-2").await, [cert_arn(&id2)]);
        let d = client.describe_certificate().certificate_id(&id1).send().await
            .unwrap_or_else(|e| panic!("DescribeCertificate: {}", DisplayErrorContext(e)));
        let d = d.certificate_description().expect("description");
        assert_eq!(d.status(), Some(&CertificateStatus::Active));
        assert_eq!(d.certificate_mode(), Some(&CertificateMode::SniOnly));
        assert_eq!(d.ca_certificate_id(), None);
        assert_eq!(d.certificate_pem().map(|p| p.replace("\r\n", "\n")),
                   Some(c1.replace("\r\n", "\n")));
        assert_eq!(attached_policies(&client, &cert_arn(&id1)).await, ["connect"]);
        assert_eq!(attached_policies(&client, &cert_arn(&id2)).await, ["connect"]);
        let policy = client.get_policy().policy_name("as-object").send().await
            .unwrap_or_else(|e| panic!("GetPolicy: {}", DisplayErrorContext(e)));
        let document: Value = serde_json::from_str(policy.policy_document().unwrap()).unwrap();
        assert_eq!(document["Statement"]["Effect"], "Deny");
        // Account B sees none of it.
        assert!(server.client_b().describe_thing().thing_name("sensor-1").send().await.is_err());
    }

    #[tokio::test]
    async fn bad_lines_are_reported_by_line_and_the_rest_goes_in() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let good_cert = self_signed("good");
        let too_many: serde_json::Map<String, Value> =
            (0..51).map(|i| (format!("a{i}"), json!("v"))).collect();
        let text = [
            "{not json".to_owned(),                                                      // 1
            json!({"type": "gadget", "name": "x"}).to_string(),                          // 2
            json!({"name": "no-type"}).to_string(),                                      // 3
            json!({"type": "thing", "name": "bad name!"}).to_string(),                   // 4
            json!({"type": "thing", "name": "typo", "atributes": {}}).to_string(),       // 5
            json!({"type": "thing", "name": "crowded", "attributes": too_many}).to_string(), // 6
            json!({"type": "policy", "name": "broken", "document": "{}"}).to_string(),   // 7
            json!({"type": "certificate", "pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}).to_string(), // 8
            json!({"type": "certificate", "pem": good_cert, "status": "PENDING_TRANSFER"}).to_string(), // 9
            json!({"type": "thingGroup", "name": "orphan", "parent": "nowhere"}).to_string(), // 10
            json!({"type": "thing", "name": "lost", "groups": ["nowhere"]}).to_string(), // 11
            json!({"type": "certificate", "pem": good_cert, "things": ["ghost"]}).to_string(), // 12
            String::new(),                                                               // 13 (blank)
            json!({"type": "thing", "name": "fine", "attributes": {"k": "v"}}).to_string(), // 14
            json!({"type": "certificate", "pem": good_cert, "things": ["fine"]}).to_string(), // 15
            json!({"type": "thing", "name": "with-bad-cert", "certificatePem": "junk"}).to_string(), // 16
        ]
        .join("\n");
        let (summary, observer) = run_import(&server.engine, &text, 3).await;
        let codes: Vec<(u64, &str)> = {
            let mut v: Vec<(u64, &str)> =
                observer.errors.iter().map(|(l, c, _)| (*l, c.as_str())).collect();
            v.sort();
            v
        };
        assert_eq!(
            codes,
            vec![
                (1, "InvalidRequestException"),
                (2, "InvalidRequestException"),
                (3, "InvalidRequestException"),
                (4, "InvalidRequestException"),
                (5, "InvalidRequestException"),
                (6, "InvalidRequestException"),
                (7, "MalformedPolicyException"),
                (8, "CertificateValidationException"),
                (9, "CertificateStateException"),
                (10, "ResourceNotFoundException"),
                (11, "ResourceNotFoundException"),
                (12, "ResourceNotFoundException"),
                (16, "CertificateValidationException"),
            ],
            "{:#?}",
            observer.errors
        );
        let message = |line: u64| {
            observer.errors.iter().find(|(l, _, _)| *l == line).map(|(_, _, m)| m.clone()).unwrap()
        };
        assert!(message(4).contains("thingName"), "{}", message(4));
        assert!(message(5).contains("atributes"), "{}", message(5));
        assert!(message(6).contains("50"), "{}", message(6));
        assert!(message(10).contains("nowhere"), "{}", message(10));
        assert!(message(12).contains("ghost"), "{}", message(12));
        assert_eq!(summary.lines_read, 15);
        assert_eq!(summary.failed_lines, 13);
        assert_eq!((summary.created.things, summary.created.certificates), (1, 1));
        for missing in ["bad name!", "typo", "crowded", "lost", "with-bad-cert"] {
            assert!(client.describe_thing().thing_name(missing).send().await.is_err(), "{missing}");
        }
        assert_eq!(
            principals_of(&client, "fine").await,
            [cert_arn(&certificate_id(&good_cert))]
        );
    }

    #[tokio::test]
    async fn importing_again_changes_nothing() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let (c1, c2) = (self_signed("s1"), self_signed("s2"));
        let text = forward_fleet(&c1, &c2);
        let (first, observer) = run_import(&server.engine, &text, 100).await;
        assert!(observer.errors.is_empty(), "{:?}", observer.errors);
        let before = client.describe_thing().thing_name("sensor-1").send().await.unwrap();
        let cert_before = client.describe_certificate().certificate_id(certificate_id(&c1))
            .send().await.unwrap();

        let (again, observer) = run_import(&server.engine, &text, 100).await;
        assert!(observer.errors.is_empty(), "{:?}", observer.errors);
        assert_eq!(again.created, Default::default());
        assert_eq!(again.unchanged, first.created);
        let after = client.describe_thing().thing_name("sensor-1").send().await.unwrap();
        assert_eq!(after.version(), before.version());
        assert_eq!(after.thing_id(), before.thing_id());
        let cert_after = client.describe_certificate().certificate_id(certificate_id(&c1))
            .send().await.unwrap();
        assert_eq!(
            cert_after.certificate_description().and_then(|d| d.generation_id()),
            cert_before.certificate_description().and_then(|d| d.generation_id())
        );
        assert_eq!(principals_of(&client, "sensor-2").await.len(), 1);

        // A different definition of an existing resource is refused, and changes nothing.
        let changed = jsonl(&[
            json!({"type": "thing", "name": "sensor-2", "attributes": {"new": "1"}}),
            json!({"type": "policy", "name": "connect",
                   "document": DOC.replace("Allow", "Deny")}),
        ]);
        let (summary, observer) = run_import(&server.engine, &changed, 100).await;
        assert_eq!(summary.failed_lines, 2);
        assert!(observer.errors.iter().all(|(_, c, _)| c == "ResourceAlreadyExistsException"),
                "{:?}", observer.errors);
        let thing = client.describe_thing().thing_name("sensor-2").send().await.unwrap();
        assert!(thing.attributes().is_none_or(|a| a.is_empty()));
    }

    #[tokio::test]
    async fn certificates_registered_under_their_ca() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let ca = TestCa::new("Import CA");
        let ca_id = register_ca(&client, &ca, true).await;
        let unregistered = TestCa::new("Stranger CA");
        let (signed, _) = ca.issue("device-1");
        let (foreign, _) = unregistered.issue("device-2");
        let text = jsonl(&[
            json!({"type": "thing", "name": "device-1"}),
            json!({"type": "certificate", "pem": signed, "caPem": ca.pem, "status": "ACTIVE",
                   "things": ["device-1"]}),
            json!({"type": "certificate", "pem": foreign, "caPem": ca.pem}),
            json!({"type": "certificate", "pem": foreign, "caPem": unregistered.pem}),
        ]);
        let (summary, observer) = run_import(&server.engine, &text, 100).await;
        assert_eq!(summary.created.certificates, 1, "{:?}", observer.errors);
        let mut errors: Vec<(u64, &str)> =
            observer.errors.iter().map(|(l, c, _)| (*l, c.as_str())).collect();
        errors.sort();
        assert_eq!(
            errors,
            [(3, "CertificateValidationException"), (4, "CertificateValidationException")]
        );
        let id = certificate_id(&signed);
        let d = client.describe_certificate().certificate_id(&id).send().await
            .unwrap_or_else(|e| panic!("DescribeCertificate: {}", DisplayErrorContext(e)));
        let d = d.certificate_description().unwrap();
        assert_eq!(d.ca_certificate_id(), Some(ca_id.as_str()));
        assert_eq!(d.certificate_mode(), Some(&CertificateMode::Default));
        let by_ca = client.list_certificates_by_ca().ca_certificate_id(&ca_id).send().await.unwrap();
        assert_eq!(by_ca.certificates().len(), 1);
        assert_eq!(principals_of(&client, "device-1").await, [cert_arn(&id)]);
    }
}

// ------------------------------------------------------------------------------------
// The CLI, as a process beside a running server

/// A client reading the server's default credential from its credentials file.
#[allow(deprecated)] // as binary.rs: the profile-file API is aws-config's alias
pub(crate) fn profile_client(endpoint: &str, data_dir: &Path) -> Client {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    use aws_config::profile::ProfileFileCredentialsProvider;
    let files = ProfileFiles::builder()
        .with_file(ProfileFileKind::Credentials, data_dir.join("credentials"))
        .build();
    let provider = ProfileFileCredentialsProvider::builder()
        .profile_files(files)
        .profile_name("palisade")
        .build();
    Client::from_conf(
        sdk_config_builder(endpoint)
            .credentials_provider(provider)
            .build(),
    )
}

fn fleet_import(args: &[&str]) -> Output {
    Command::new(crate::common::process::BIN)
        .arg("fleet")
        .arg("import")
        .args(args)
        .env_remove("PALISADE_DATA_DIR")
        .env_remove("PALISADE_DATABASE_URL")
        .env_remove("PALISADE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("running palisade fleet import")
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
    let client = profile_client(&server.endpoint, &data);

    let (c1, c2) = (self_signed("cli-1"), self_signed("cli-2"));
    let mut text = forward_fleet(&c1, &c2);
    text.push_str("{\"type\": \"thing\", \"name\": \"bad name!\"}\n");
    let file = root.path().join("fleet.jsonl");
    std::fs::write(&file, &text).unwrap();
    let errors = root.path().join("errors.jsonl");
    let data_str = data.to_str().unwrap();
    let mut args = vec![
        file.to_str().unwrap(),
        "--account-id",
        "000000000000",
        "--data-dir",
        data_str,
        "--batch-size",
        "3",
        "--errors-file",
        errors.to_str().unwrap(),
    ];
    args.extend(&db_refs);
    let out = fleet_import(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("Imported 8 line(s)"), "{stdout}");
    assert!(stdout.contains("2 things, 2 certificates"), "{stdout}");
    assert!(stdout.contains("failed:    1 line(s)"), "{stdout}");
    assert!(
        stdout.contains("line 8: thing bad name!: InvalidRequestException"),
        "{stdout}"
    );
    assert!(
        stderr.contains("import: 8/8 lines"),
        "not a terminal: progress lines; {stderr}"
    );
    let recorded: Vec<Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["line"], 8);
    assert_eq!(recorded[0]["code"], "InvalidRequestException");

    // The running server sees the import at once.
    let thing = client
        .describe_thing()
        .thing_name("sensor-1")
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeThing: {}", DisplayErrorContext(e)));
    assert_eq!(
        thing
            .attributes()
            .and_then(|a| a.get("floor"))
            .map(String::as_str),
        Some("2")
    );
    let arn1 = format!(
        "arn:aws:iot:{REGION}:000000000000:cert/{}",
        certificate_id(&c1)
    );
    let principals = client
        .list_thing_principals()
        .thing_name("sensor-1")
        .send()
        .await
        .unwrap();
    assert!(principals.principals().contains(&arn1), "{principals:?}");
    let d = client
        .describe_certificate()
        .certificate_id(certificate_id(&c1))
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeCertificate: {}", DisplayErrorContext(e)));
    assert_eq!(
        d.certificate_description().and_then(|d| d.status()),
        Some(&CertificateStatus::Active)
    );

    // Again, without the bad line: everything is already there, exit 0.
    let good = root.path().join("good.jsonl");
    std::fs::write(&good, forward_fleet(&c1, &c2)).unwrap();
    let mut args = vec![
        good.to_str().unwrap(),
        "--account-id",
        "000000000000",
        "--data-dir",
        data_str,
    ];
    args.extend(&db_refs);
    let out = fleet_import(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("created:   0 policies, 0 thing groups, 0 things, 0 certificates"),
        "{stdout}"
    );

    // Bad arguments fail before touching anything.
    let out = fleet_import(&[
        good.to_str().unwrap(),
        "--account-id",
        "12",
        "--data-dir",
        data_str,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = fleet_import(&[
        "/nonexistent.jsonl",
        "--account-id",
        "000000000000",
        "--data-dir",
        data_str,
    ]);
    assert_eq!(out.status.code(), Some(1));
    drop(server);
    drop(pg);
}

#[tokio::test]
async fn cli_import_sqlite() {
    cli_import_next_to_a_server(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn cli_import_postgres() {
    cli_import_next_to_a_server(StoreKind::Postgres).await;
}
