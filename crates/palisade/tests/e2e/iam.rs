//! The four checks that judge IAM roles, over IAM and Cognito data imported from the AWS
//! CLI's output (tests/fixtures/iam): findings with their reason codes, related IAM
//! roles and where their data came from; the checks failing, naming what is missing,
//! when it is.

use std::collections::BTreeSet;

use crate::common::mitigation::*;
use crate::common::*;
use aws_sdk_iot::types::{AuditCheckRunStatus, ResourceType};
use aws_sdk_iot::Client;
use palisade_engine::Scope;

const ROLE_ALIAS_PERMISSIVE: &str = "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK";
const ROLE_ALIAS_UNUSED: &str = "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK";
const COGNITO_AUTH: &str = "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK";
const COGNITO_UNAUTH: &str = "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK";
const CHECKS: [&str; 4] = [
    ROLE_ALIAS_PERMISSIVE,
    ROLE_ALIAS_UNUSED,
    COGNITO_AUTH,
    COGNITO_UNAUTH,
];
const POOL: &str = "us-east-1:11111111-2222-3333-4444-555555555555";

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_A}:role/{name}")
}

/// A fixture file (name, text), its last-accessed dates moved to a month ago so that they
/// stay within the year the checks look back.
fn fixture(name: &str) -> (String, String) {
    let path = format!(
        "{}/../../tests/fixtures/iam/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let month_ago = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let stamp = format!("{}T10:00:00+00:00", month_ago.date());
    (
        name.to_owned(),
        text.replace("2026-11-01T10:00:00+00:00", &stamp),
    )
}

async fn import(server: &TestServer, files: &[&str], role_arn: Option<&str>) {
    let scope = Scope {
        account_id: ACCOUNT_A.into(),
        region: REGION.into(),
    };
    let files: Vec<(String, String)> = files.iter().map(|f| fixture(f)).collect();
    server
        .engine
        .import_iam(&scope, &files, role_arn)
        .await
        .expect("import");
}

async fn role_alias(client: &Client, alias: &str, role_arn: &str) -> String {
    client
        .create_role_alias()
        .role_alias(alias)
        .role_arn(role_arn)
        .send()
        .await
        .expect("CreateRoleAlias")
        .role_alias_arn()
        .expect("roleAliasArn")
        .to_owned()
}

/// (resource id, reason code) of every finding of `check`, with each finding's related
/// IAM role checked to be `role_of(resource)` and its message to say where its data came
/// from.
async fn reasons(
    client: &Client,
    audit: &str,
    check: &str,
    role_of: impl Fn(&str) -> String,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for f in audit_findings(client, audit, Some(check)).await {
        let id = f
            .non_compliant_resource()
            .unwrap()
            .resource_identifier()
            .unwrap();
        let resource = id
            .role_alias_arn()
            .or(id.cognito_identity_pool_id())
            .expect("a role alias or an identity pool")
            .to_owned();
        let related = f.related_resources();
        assert_eq!(related.len(), 1, "{f:?}");
        assert_eq!(related[0].resource_type(), Some(&ResourceType::IamRole));
        assert_eq!(
            related[0].resource_identifier().unwrap().iam_role_arn(),
            Some(role_of(&resource).as_str())
        );
        let reason = f.reason_for_non_compliance().unwrap();
        assert!(
            reason.contains("IAM data imported from account-authorization-details.json on"),
            "{reason}"
        );
        out.insert((
            resource,
            f.reason_for_non_compliance_code().unwrap().to_owned(),
        ));
    }
    out
}

/// Runs an audit of `checks` to completion; its id and DescribeAuditTask's answer.
async fn audited(
    client: &Client,
    checks: &[&str],
) -> (
    String,
    aws_sdk_iot::operation::describe_audit_task::DescribeAuditTaskOutput,
) {
    audited_within(client, checks, std::time::Duration::from_secs(30)).await
}

async fn audited_within(
    client: &Client,
    checks: &[&str],
    within: std::time::Duration,
) -> (
    String,
    aws_sdk_iot::operation::describe_audit_task::DescribeAuditTaskOutput,
) {
    let audit = run_audit_within(client, checks, within).await;
    let out = client
        .describe_audit_task()
        .task_id(&audit)
        .send()
        .await
        .expect("DescribeAuditTask");
    (audit, out)
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

per_engine! {
    #[tokio::test]
    async fn imported_roles_and_pools_are_judged() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let broad = role_alias(&client, "broad-alias", &role("device-broad")).await;
        let tidy = role_alias(&client, "tidy-alias", &role("device-tidy")).await;
        import(
            &server,
            &[
                "account-authorization-details.json",
                "list-identity-pools.json",
                "identity-pool-roles.json",
            ],
            None,
        )
        .await;
        import(&server, &["last-accessed-device-broad.json"], Some(&role("device-broad"))).await;
        import(&server, &["last-accessed-device-tidy.json"], Some(&role("device-tidy"))).await;
        enable_checks(&client, &CHECKS).await;
        let (audit, out) = audited(&client, &CHECKS).await;
        let details = out.audit_details().unwrap();
        for check in CHECKS {
            assert_eq!(
                details[check].check_run_status(),
                Some(&AuditCheckRunStatus::CompletedNonCompliant),
                "{check}: {:?}",
                details[check]
            );
        }
        assert_eq!(details[ROLE_ALIAS_PERMISSIVE].total_resources_count(), Some(2));
        assert_eq!(details[COGNITO_AUTH].total_resources_count(), Some(1));

        let alias_role = |arn: &str| {
            if arn == broad { role("device-broad") } else { role("device-tidy") }
        };
        assert_eq!(
            reasons(&client, &audit, ROLE_ALIAS_PERMISSIVE, alias_role).await,
            set(&[
                (&broad, "ALLOWS_BROAD_ACCESS_TO_USED_SERVICES"),
                (&broad, "ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES"),
                (&broad, "ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS"),
                (&broad, "ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS"),
                (&broad, "ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS"),
                (&broad, "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS"),
            ])
        );
        // device-broad never used iam; device-tidy never used s3.
        assert_eq!(
            reasons(&client, &audit, ROLE_ALIAS_UNUSED, alias_role).await,
            set(&[
                (&broad, "ALLOWS_ACCESS_TO_UNUSED_SERVICES"),
                (&tidy, "ALLOWS_ACCESS_TO_UNUSED_SERVICES"),
            ])
        );
        let unused = audit_findings(&client, &audit, Some(ROLE_ALIAS_UNUSED)).await;
        let tidy_finding = unused
            .iter()
            .find(|f| {
                f.non_compliant_resource().unwrap().resource_identifier().unwrap().role_alias_arn()
                    == Some(tidy.as_str())
            })
            .unwrap();
        let message = tidy_finding.reason_for_non_compliance().unwrap();
        assert!(message.contains("[s3]"), "{message}");
        assert!(
            message.contains("last-accessed data imported from last-accessed-device-tidy.json on"),
            "{message}"
        );

        assert_eq!(
            reasons(&client, &audit, COGNITO_AUTH, |_| role("Cognito_FleetAuth_Role")).await,
            set(&[
                (POOL, "ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS"),
                (POOL, "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS"),
            ])
        );
        assert_eq!(
            reasons(&client, &audit, COGNITO_UNAUTH, |_| role("Cognito_FleetUnauth_Role")).await,
            set(&[(POOL, "ALLOWS_ACCESS_TO_IOT_ADMIN_ACTIONS")])
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn missing_data_fails_only_the_checks_that_need_it() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        role_alias(&client, "broad-alias", &role("device-broad")).await;
        role_alias(&client, "stranger-alias", &role("not-imported")).await;
        import(&server, &["account-authorization-details.json"], None).await;
        enable_checks(&client, &CHECKS).await;
        let (audit, out) = audited(&client, &CHECKS).await;
        let details = out.audit_details().unwrap();
        for check in CHECKS {
            let d = &details[check];
            assert_eq!(d.check_run_status(), Some(&AuditCheckRunStatus::Failed), "{check}");
            assert_eq!(d.error_code(), Some("DATA_SOURCE_NOT_AVAILABLE"), "{check}");
        }
        let m = details[ROLE_ALIAS_PERMISSIVE].message().unwrap();
        assert!(m.contains(&role("not-imported")) && m.contains("palisade iam import"), "{m}");
        let m = details[COGNITO_AUTH].message().unwrap();
        assert!(m.contains("list-identity-pools"), "{m}");
        assert!(audit_findings(&client, &audit, None).await.is_empty());

        // With every role known, the role alias checks run; without last-accessed data
        // the unused-services check cannot decide anything, and says so.
        client.delete_role_alias().role_alias("stranger-alias").send().await.unwrap();
        let (_, out) = audited(&client, &CHECKS).await;
        let details = out.audit_details().unwrap();
        let p = &details[ROLE_ALIAS_PERMISSIVE];
        assert_eq!(p.check_run_status(), Some(&AuditCheckRunStatus::CompletedNonCompliant));
        assert!(
            p.message().is_some_and(|m| m.contains("ALLOWS_BROAD_ACCESS_TO_USED_SERVICES")
                && m.contains("broad-alias")),
            "{p:?}"
        );
        let u = &details[ROLE_ALIAS_UNUSED];
        assert_eq!(u.check_run_status(), Some(&AuditCheckRunStatus::Failed), "{u:?}");
        assert!(u.message().unwrap().contains("--role-arn"), "{u:?}");

        // An account that has no identity pools says so with an empty list.
        let scope = Scope { account_id: ACCOUNT_A.into(), region: REGION.into() };
        server
            .engine
            .import_iam(&scope, &[("pools.json".into(), r#"{"IdentityPools": []}"#.into())], None)
            .await
            .unwrap();
        let (_, out) = audited(&client, &[COGNITO_AUTH, COGNITO_UNAUTH]).await;
        for check in [COGNITO_AUTH, COGNITO_UNAUTH] {
            let d = &out.audit_details().unwrap()[check];
            assert_eq!(d.check_run_status(), Some(&AuditCheckRunStatus::CompletedCompliant));
            assert_eq!(d.total_resources_count(), Some(0));
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn a_malformed_file_refuses_the_whole_import() {
        let server = TestServer::start(ENGINE).await;
        let scope = Scope { account_id: ACCOUNT_A.into(), region: REGION.into() };
        let files = vec![
            fixture("list-identity-pools.json"),
            ("broken.json".to_owned(), r#"{"RoleDetailList": [{"RoleName": "x"}]}"#.to_owned()),
        ];
        let err = server.engine.import_iam(&scope, &files, None).await.unwrap_err();
        let err = err.to_string();
        assert!(err.contains("broken.json") && err.contains("Arn"), "{err}");
        // Nothing was stored: the Cognito checks still have no pools to go by.
        let client = server.client_a();
        enable_checks(&client, &[COGNITO_AUTH]).await;
        let (_, out) = audited(&client, &[COGNITO_AUTH]).await;
        assert_eq!(
            out.audit_details().unwrap()[COGNITO_AUTH].check_run_status(),
            Some(&AuditCheckRunStatus::Failed)
        );
        server.stop().await;
    }
}

/// Suppressions and PUBLISH_FINDING_TO_SNS work on these checks' findings as on any
/// other's: a suppressed role alias's findings are counted as suppressed, and a Cognito
/// finding is published to SNS (moto) as its JSON.
async fn suppressed_and_published(engine: StoreKind) {
    use aws_sdk_iot::types::{
        MitigationActionParams, PublishFindingToSnsParams, ResourceIdentifier,
    };
    let moto = crate::common::moto::Moto::start().await;
    let queue = moto.topic_with_queue("iam-findings").await;
    let server = TestServer::start_with_settings(
        engine,
        std::sync::Arc::new(TestClock::new()),
        true,
        palisade_engine::AuditSettings {
            sns: moto.sns_settings(),
            ..palisade_engine::AuditSettings::default()
        },
    )
    .await;
    let client = server.client_a();
    let broad = role_alias(&client, "broad-alias", &role("device-broad")).await;
    import(
        &server,
        &[
            "account-authorization-details.json",
            "list-identity-pools.json",
            "identity-pool-roles.json",
        ],
        None,
    )
    .await;
    client
        .create_audit_suppression()
        .check_name(ROLE_ALIAS_PERMISSIVE)
        .resource_identifier(ResourceIdentifier::builder().role_alias_arn(&broad).build())
        .suppress_indefinitely(true)
        .client_request_token("iam-suppression")
        .send()
        .await
        .expect("CreateAuditSuppression");
    enable_checks(&client, &[ROLE_ALIAS_PERMISSIVE, COGNITO_UNAUTH]).await;
    let (audit, out) = audited(&client, &[ROLE_ALIAS_PERMISSIVE, COGNITO_UNAUTH]).await;
    let d = &out.audit_details().unwrap()[ROLE_ALIAS_PERMISSIVE];
    assert_eq!(
        d.check_run_status(),
        Some(&AuditCheckRunStatus::CompletedCompliant),
        "{d:?}"
    );
    assert_eq!(
        d.non_compliant_resources_count(),
        d.suppressed_non_compliant_resources_count()
    );
    assert!(
        d.non_compliant_resources_count().unwrap_or_default() > 0,
        "{d:?}"
    );

    create_action(
        &client,
        "publish",
        MitigationActionParams::builder()
            .publish_finding_to_sns_params(
                PublishFindingToSnsParams::builder()
                    .topic_arn(&queue.topic_arn)
                    .build()
                    .unwrap(),
            )
            .build(),
    )
    .await;
    let finding = audit_findings(&client, &audit, Some(COGNITO_UNAUTH)).await;
    assert_eq!(finding.len(), 1);
    let id = finding_id(&finding[0]);
    start_task(
        &client,
        "publish-iam",
        findings_target(std::slice::from_ref(&id)),
        &[(COGNITO_UNAUTH, &["publish"])],
    )
    .await;
    let done = wait_task(&client, "publish-iam").await;
    assert_eq!(
        done.task_status(),
        Some(&aws_sdk_iot::types::AuditMitigationActionsTaskStatus::Completed),
        "{done:?}"
    );
    let messages = moto
        .receive(&queue.queue_url, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m: serde_json::Value = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(m["findingId"], id.as_str(), "{m}");
    assert_eq!(
        m["nonCompliantResource"]["resourceIdentifier"]["cognitoIdentityPoolId"], POOL,
        "{m}"
    );
    server.stop().await;
}

#[tokio::test]
async fn suppressed_and_published_sqlite() {
    suppressed_and_published(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn suppressed_and_published_postgres() {
    suppressed_and_published(StoreKind::Postgres).await;
}

// ------------------------------------------------------------------------------------
// `palisade iam import`, as a process beside a running server

fn iam_import(args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::common::process::BIN)
        .args(["iam", "import"])
        .args(args)
        .env_remove("PALISADE_DATA_DIR")
        .env_remove("PALISADE_DATABASE_URL")
        .env_remove("PALISADE_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running palisade iam import")
}

async fn cli_import_next_to_a_server(engine: StoreKind) {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let pg = match engine {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => Some(palisade_testdb::TestDatabase::create().await),
    };
    let db_args: Vec<String> = match &pg {
        Some(pg) => vec!["--database-url".into(), pg.url.clone()],
        None => Vec::new(),
    };
    let db_refs: Vec<&str> = db_args.iter().map(String::as_str).collect();
    let server = crate::common::process::ServerProcess::start_with(&data, &db_refs).await;
    let client = crate::import::profile_client(&server.endpoint, &data);
    role_alias(&client, "broad-alias", &role("device-broad")).await;
    let dir = format!("{}/../../tests/fixtures/iam", env!("CARGO_MANIFEST_DIR"));
    let details = format!("{dir}/account-authorization-details.json");
    let data_str = data.to_str().unwrap();
    let base = ["--account-id", "000000000000", "--data-dir", data_str];

    // A malformed file among good ones: nothing is stored.
    let broken = root.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"ServicesLastAccessed": [], "JobStatus": "COMPLETED"}"#,
    )
    .unwrap();
    let mut args = vec![details.as_str(), broken.to_str().unwrap()];
    args.extend(base);
    args.extend(&db_refs);
    let out = iam_import(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nothing imported") && stderr.contains("--role-arn"),
        "{stderr}"
    );
    enable_checks(&client, &[ROLE_ALIAS_PERMISSIVE]).await;
    let (_, out) = audited(&client, &[ROLE_ALIAS_PERMISSIVE]).await;
    assert_eq!(
        out.audit_details().unwrap()[ROLE_ALIAS_PERMISSIVE].check_run_status(),
        Some(&AuditCheckRunStatus::Failed)
    );

    let mut args = vec![details.as_str()];
    args.extend(base);
    args.extend(&db_refs);
    let out = iam_import(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON summary");
    assert_eq!(summary["roles"], 4, "{summary}");
    assert_eq!(summary["managedPolicies"], 1, "{summary}");

    // The running server judges what was imported at once.
    let (_, out) = audited(&client, &[ROLE_ALIAS_PERMISSIVE]).await;
    assert_eq!(
        out.audit_details().unwrap()[ROLE_ALIAS_PERMISSIVE].check_run_status(),
        Some(&AuditCheckRunStatus::CompletedNonCompliant)
    );
    drop(server);
    drop(pg);
}

#[tokio::test]
async fn cli_iam_import_sqlite() {
    cli_import_next_to_a_server(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn cli_iam_import_postgres() {
    cli_import_next_to_a_server(StoreKind::Postgres).await;
}

// ------------------------------------------------------------------------------------
// Live sources: a moto server for IAM and Cognito

mod live {
    use super::*;
    use crate::common::moto::Moto;
    use palisade_engine::AuditSettings;
    use serde_json::json;

    fn iot(rest: &str) -> String {
        format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:{rest}")
    }

    /// A role made in moto from `spec` (name, inline and managed policies); its ARN.
    async fn moto_role(moto: &Moto, spec: serde_json::Value) -> String {
        moto.boto("iam_role", spec).await["arn"]
            .as_str()
            .expect("the role's ARN")
            .to_owned()
    }

    async fn live_server(engine: StoreKind, iam: &str, cognito: &str) -> TestServer {
        let source = |endpoint: &str| palisade_iam_source::SourceSettings {
            endpoint_url: Some(endpoint.to_owned()),
            access_key_id: crate::common::moto::MOTO_ACCESS_KEY_ID.into(),
            secret_access_key: crate::common::moto::MOTO_SECRET_ACCESS_KEY.into(),
        };
        TestServer::start_with_settings(
            engine,
            std::sync::Arc::new(TestClock::new()),
            true,
            AuditSettings {
                iam: Some(source(iam)),
                cognito: Some(source(cognito)),
                ..AuditSettings::default()
            },
        )
        .await
    }

    per_engine! {
        /// Roles read from IAM (moto), with an imported last-accessed report for one of them
        /// (moto answers 500 to the last-accessed operations): imported data wins for what it
        /// covers, live data fills in the rest, and what neither has is named.
        #[tokio::test]
        async fn live_roles_with_imported_reports() {
            let moto = Moto::start().await;
            let broad = moto_role(&moto, json!({"name": "live-broad", "inline": [
                    {"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}]})).await;
            let tidy = moto_role(&moto, json!({"name": "live-tidy", "managed": [
                    {"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "iot:Connect",
                         "Resource": iot("client/${iot:Connection.Thing.ThingName}"),
                         "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
                        {"Effect": "Allow", "Action": "s3:GetObject",
                         "Resource": "arn:aws:s3:::firmware-bucket/*"}]}]})).await;
            let auditor = moto_role(&moto, json!({"name": "live-auditor", "managed": [
                    {"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "cloudtrail:LookupEvents", "Resource": "*"}]}]})).await;
            let server = live_server(ENGINE, &moto.endpoint, &moto.endpoint).await;
            let client = server.client_a();
            let auditor_alias = role_alias(&client, "auditor-alias", &auditor).await;
            let broad_alias = role_alias(&client, "broad-alias", &broad).await;
            let tidy_alias = role_alias(&client, "tidy-alias", &tidy).await;
            import(&server, &["last-accessed-device-tidy.json"], Some(&tidy)).await;
            enable_checks(&client, &[ROLE_ALIAS_PERMISSIVE, ROLE_ALIAS_UNUSED]).await;
            let (audit, out) = audited(&client, &[ROLE_ALIAS_PERMISSIVE, ROLE_ALIAS_UNUSED]).await;
            let details = out.audit_details().unwrap();

            let p = &details[ROLE_ALIAS_PERMISSIVE];
            assert_eq!(p.check_run_status(), Some(&AuditCheckRunStatus::CompletedNonCompliant), "{p:?}");
            let note = p.message().unwrap_or_default();
            assert!(
                note.contains("broad-alias") && note.contains("LastAccessedDetails"),
            "the undecided alias and why: {note}"
            );
            let findings = audit_findings(&client, &audit, Some(ROLE_ALIAS_PERMISSIVE)).await;
            let codes: BTreeSet<(String, String)> = findings
                .iter()
                .map(|f| {
                    let r = f.reason_for_non_compliance().unwrap();
                    assert!(r.contains("IAM data read from IAM on"), "{r}");
                    (
                        f.non_compliant_resource().unwrap().resource_identifier().unwrap()
                            .role_alias_arn().unwrap().to_owned(),
                        f.reason_for_non_compliance_code().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                codes,
                set(&[
                    (&broad_alias, "ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS"),
                    (&broad_alias, "ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS"),
                    (&broad_alias, "ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS"),
                    (&broad_alias, "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS"),
                    (&auditor_alias, "ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES"),
                ])
            );
            // The tidy role has no finding; all three were judged.
            assert_eq!(p.total_resources_count(), Some(3));

            // Only the alias with a report is judged for unused services: its role never used s3.
            let u = &details[ROLE_ALIAS_UNUSED];
            assert_eq!(u.check_run_status(), Some(&AuditCheckRunStatus::CompletedNonCompliant), "{u:?}");
            assert_eq!(u.total_resources_count(), Some(1));
            assert!(u.message().is_some_and(|m| m.contains("broad-alias") && m.contains("auditor-alias")), "{u:?}");
            let unused = audit_findings(&client, &audit, Some(ROLE_ALIAS_UNUSED)).await;
            assert_eq!(unused.len(), 1);
            let f = &unused[0];
            assert_eq!(
                f.non_compliant_resource().unwrap().resource_identifier().unwrap().role_alias_arn(),
                Some(tidy_alias.as_str())
            );
            let r = f.reason_for_non_compliance().unwrap();
            assert!(r.contains("[s3]") && r.contains("last-accessed data imported from"), "{r}");
            server.stop().await;
        }

        /// Pools listed by Cognito (moto), whose roles moto cannot give (GetIdentityPoolRoles
        /// answers 500): imported roles for the pool complete the checks; without them, the
        /// checks fail naming the operation.
        #[tokio::test]
        async fn live_pools_with_imported_roles() {
            let moto = Moto::start().await;
            let pool = moto.boto("identity_pool", json!({"name": "fleet_app"})).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let server = live_server(ENGINE, &moto.endpoint, &moto.endpoint).await;
            let client = server.client_a();
            enable_checks(&client, &[COGNITO_AUTH, COGNITO_UNAUTH]).await;
            let (_, out) = audited(&client, &[COGNITO_AUTH, COGNITO_UNAUTH]).await;
            let d = &out.audit_details().unwrap()[COGNITO_AUTH];
            assert_eq!(d.check_run_status(), Some(&AuditCheckRunStatus::Failed), "{d:?}");
            let m = d.message().unwrap();
            assert!(m.contains(&pool) && m.contains("GetIdentityPoolRoles"), "{m}");

            // The pool's roles imported (the fixture's, under moto's pool id); the roles
            // themselves imported too, since moto has none of them.
            let (_, text) = fixture("identity-pool-roles.json");
            let roles = text.replace(POOL, &pool);
            let scope = Scope { account_id: ACCOUNT_A.into(), region: REGION.into() };
            server
                .engine
                .import_iam(
                    &scope,
                    &[fixture("account-authorization-details.json"), ("roles.json".into(), roles)],
                    None,
                )
                .await
                .unwrap();
            let (_, out) = audited(&client, &[COGNITO_AUTH, COGNITO_UNAUTH]).await;
            for check in [COGNITO_AUTH, COGNITO_UNAUTH] {
                let d = &out.audit_details().unwrap()[check];
                assert_eq!(d.check_run_status(), Some(&AuditCheckRunStatus::CompletedNonCompliant), "{check}: {d:?}");
                assert_eq!(d.total_resources_count(), Some(1));
            }
            server.stop().await;
        }

        /// An IAM endpoint nobody answers fails the checks that need it, and only those: the
        /// Cognito checks, whose data is all imported, complete.
        #[tokio::test]
        async fn an_unreachable_source_fails_only_what_needs_it() {
            let nowhere = format!("http://127.0.0.1:{}", crate::common::moto::free_port());
            let server = live_server(ENGINE, &nowhere, &nowhere).await;
            let client = server.client_a();
            role_alias(&client, "lonely-alias", &role("nowhere-role")).await;
            import(
                &server,
                &[
                    "account-authorization-details.json",
                    "list-identity-pools.json",
                    "identity-pool-roles.json",
                ],
                None,
            )
            .await;
            let checks = [ROLE_ALIAS_PERMISSIVE, COGNITO_AUTH, COGNITO_UNAUTH, "LOGGING_DISABLED_CHECK"];
            enable_checks(&client, &checks).await;
            let (_, out) = audited_within(&client, &checks, std::time::Duration::from_secs(90)).await;
            let details = out.audit_details().unwrap();
            let p = &details[ROLE_ALIAS_PERMISSIVE];
            assert_eq!(p.check_run_status(), Some(&AuditCheckRunStatus::Failed), "{p:?}");
            let m = p.message().unwrap();
            assert!(m.contains("GetAccountAuthorizationDetails") && m.contains(&nowhere), "{m}");
            for check in [COGNITO_AUTH, COGNITO_UNAUTH, "LOGGING_DISABLED_CHECK"] {
                assert_eq!(
                    details[check].check_run_status(),
                    Some(&AuditCheckRunStatus::CompletedNonCompliant),
                    "{check}: {:?}",
                    details[check]
                );
            }
            server.stop().await;
        }
    }
}
