//! Device Defender audits through the real `aws-sdk-iot` client: the account audit
//! configuration (validation, merging, SNS target, delete, isolation), on-demand audit
//! tasks run by the background worker (limits, progress, cancel, listing), each check
//! Palisade evaluates over a non-compliant and a compliant fleet, and the findings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::describe_audit_task::DescribeAuditTaskOutput;
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditCheckRunStatus, AuditFinding, AuditFindingSeverity,
    AuditNotificationTarget, AuditNotificationType, AuditTaskStatus, AuditTaskType,
    CaCertificateStatus, CertificateMode, CertificateStatus, ConfigName, LogLevel,
    LoggingOptionsPayload, PolicyVersionIdentifier, ResourceIdentifier, ResourceType,
};
use aws_sdk_iot::Client;

/// Every check, in the order DescribeAccountAuditConfiguration lists them.
const ALL_CHECKS: [&str; 17] = [
    "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
    "CA_CERTIFICATE_EXPIRING_CHECK",
    "CA_CERTIFICATE_KEY_QUALITY_CHECK",
    "CONFLICTING_CLIENT_IDS_CHECK",
    "DEVICE_CERTIFICATE_AGE_CHECK",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    "DEVICE_CERTIFICATE_SHARED_CHECK",
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK",
    "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK",
    "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK",
    "LOGGING_DISABLED_CHECK",
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
    "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
];

/// The checks a fresh account cannot have evaluated, with the error code they fail with:
/// nothing says which Amazon Cognito identity pools it has.
const UNAVAILABLE: [(&str, &str); 2] = [
    (
        "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
        "DATA_SOURCE_NOT_AVAILABLE",
    ),
    (
        "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
        "DATA_SOURCE_NOT_AVAILABLE",
    ),
];
const ROLE_ALIAS_PERMISSIVE: &str = "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK";
const ROLE_ALIAS_UNUSED: &str = "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK";

const AGE: &str = "DEVICE_CERTIFICATE_AGE_CHECK";
const EXPIRING: &str = "DEVICE_CERTIFICATE_EXPIRING_CHECK";
const CA_EXPIRING: &str = "CA_CERTIFICATE_EXPIRING_CHECK";
const KEY_QUALITY: &str = "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK";
const CA_KEY_QUALITY: &str = "CA_CERTIFICATE_KEY_QUALITY_CHECK";
const PERMISSIVE: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
const MISCONFIG: &str = "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK";
const LOGGING: &str = "LOGGING_DISABLED_CHECK";
const SHARED: &str = "DEVICE_CERTIFICATE_SHARED_CHECK";
const REVOKED: &str = "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK";
const REVOKED_CA: &str = "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK";
const INTERMEDIATE: &str = "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK";
const CONFLICTING: &str = "CONFLICTING_CLIENT_IDS_CHECK";

const AUDIT_ROLE: &str = "arn:aws:iam::111122223333:role/palisade-e2e-audit";
const AUDIT_ROLE_B: &str = "arn:aws:iam::444455556666:role/palisade-e2e-audit";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

// Genuine vulnerable and sound public keys (crates/key-quality/testdata/README.md).
const ROCA_KEY: &str = include_str!("../../../key-quality/testdata/roca/badkeys-rsa-roca.spki.pem");
const DEBIAN_KEY: &str =
    include_str!("../../../key-quality/testdata/debian/badkeys-rsa-debianweak.spki.pem");
const GOOD_RSA_KEY: &str = include_str!("../../../key-quality/testdata/good/rsa2048.spki.pem");
const ROCA_CODE: &str = "CERTIFICATE_KEY_VULNERABILITY_CVE-2017-15361";
const DEBIAN_CODE: &str = "CERTIFICATE_KEY_VULNERABILITY_CVE-2008-0166";

// ------------------------------------------------------------------------------------
// Helpers

fn enabled(on: bool) -> AuditCheckConfiguration {
    AuditCheckConfiguration::builder().enabled(on).build()
}

fn with_setting(name: ConfigName, value: &str) -> AuditCheckConfiguration {
    AuditCheckConfiguration::builder()
        .enabled(true)
        .configuration(name, value)
        .build()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn millis(t: Option<&DateTime>) -> i64 {
    t.expect("timestamp")
        .to_millis()
        .expect("timestamp in range")
}

/// Enables `checks` (and sets the role), panicking on failure.
async fn enable(client: &Client, role: &str, checks: &[&str]) {
    let mut req = client.update_account_audit_configuration().role_arn(role);
    for check in checks {
        req = req.audit_check_configurations(*check, enabled(true));
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("enabling {checks:?}: {}", DisplayErrorContext(e)));
}

/// Sets one check's threshold (enabling it).
async fn set_threshold(client: &Client, check: &str, name: ConfigName, days: &str) {
    client
        .update_account_audit_configuration()
        .audit_check_configurations(check, with_setting(name, days))
        .send()
        .await
        .unwrap_or_else(|e| panic!("setting {check} to {days}: {}", DisplayErrorContext(e)));
}

/// What DescribeAccountAuditConfiguration says: role, per check (enabled, settings),
/// per target (enabled, target ARN, role ARN).
#[derive(Debug, Clone, PartialEq)]
struct ConfigState {
    role_arn: Option<String>,
    checks: BTreeMap<String, (bool, BTreeMap<String, String>)>,
    targets: BTreeMap<String, (bool, Option<String>, Option<String>)>,
}

impl ConfigState {
    fn enabled(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(_, (on, _))| *on)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    fn setting(&self, check: &str) -> BTreeMap<String, String> {
        self.checks.get(check).expect("check listed").1.clone()
    }
}

async fn config_state(client: &Client) -> ConfigState {
    let out = client
        .describe_account_audit_configuration()
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "DescribeAccountAuditConfiguration: {}",
                DisplayErrorContext(e)
            )
        });
    ConfigState {
        role_arn: out.role_arn().map(str::to_owned),
        checks: out
            .audit_check_configurations()
            .expect("auditCheckConfigurations")
            .iter()
            .map(|(name, c)| {
                let settings = c
                    .configuration()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                (name.clone(), (c.enabled(), settings))
            })
            .collect(),
        targets: out
            .audit_notification_target_configurations()
            .map(|m| {
                m.iter()
                    .map(|(k, t)| {
                        (
                            k.as_str().to_owned(),
                            (
                                t.enabled(),
                                t.target_arn().map(str::to_owned),
                                t.role_arn().map(str::to_owned),
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn pairs_map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The state of an account that never configured audits (or deleted its configuration).
#[track_caller]
fn assert_fresh(state: &ConfigState) {
    assert_eq!(state.role_arn, None, "{state:?}");
    assert!(state.targets.is_empty(), "{state:?}");
    assert_eq!(
        state.checks.keys().map(String::as_str).collect::<Vec<_>>(),
        ALL_CHECKS,
        "all 17 checks are listed"
    );
    assert!(state.enabled().is_empty(), "none enabled: {state:?}");
    for (name, (_, settings)) in &state.checks {
        let expected = match name.as_str() {
            AGE => pairs_map(&[("CERT_AGE_THRESHOLD_IN_DAYS", "365")]),
            EXPIRING => pairs_map(&[("CERT_EXPIRATION_THRESHOLD_IN_DAYS", "30")]),
            _ => BTreeMap::new(),
        };
        assert_eq!(settings, &expected, "default settings of {name}");
    }
}

async fn start(client: &Client, checks: &[&str]) -> String {
    client
        .start_on_demand_audit_task()
        .set_target_check_names(Some(checks.iter().map(|c| c.to_string()).collect()))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "StartOnDemandAuditTask {checks:?}: {}",
                DisplayErrorContext(e)
            )
        })
        .task_id()
        .expect("taskId")
        .to_owned()
}

async fn describe_task(client: &Client, task_id: &str) -> DescribeAuditTaskOutput {
    client
        .describe_audit_task()
        .task_id(task_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeAuditTask {task_id}: {}", DisplayErrorContext(e)))
}

/// Polls DescribeAuditTask until the task is no longer IN_PROGRESS (at most 30 s).
async fn wait_done(client: &Client, task_id: &str) -> DescribeAuditTaskOutput {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = describe_task(client, task_id).await;
        if out.task_status() != Some(&AuditTaskStatus::InProgress) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "audit task {task_id} still IN_PROGRESS after 30 s: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts an audit of `checks`, waits for it, and checks it COMPLETED.
async fn run_audit(client: &Client, checks: &[&str]) -> (String, DescribeAuditTaskOutput) {
    let id = start(client, checks).await;
    let out = wait_done(client, &id).await;
    assert_eq!(
        out.task_status(),
        Some(&AuditTaskStatus::Completed),
        "{out:?}"
    );
    assert_consistent(&out, checks.len());
    (id, out)
}

/// Statistics agree with the per-check details of a finished task.
#[track_caller]
fn assert_consistent(out: &DescribeAuditTaskOutput, checks: usize) {
    let stats = out.task_statistics().expect("taskStatistics");
    let details = out.audit_details().expect("auditDetails");
    assert_eq!(details.len(), checks, "{out:?}");
    assert_eq!(stats.total_checks(), Some(checks as i32));
    let count = |s: AuditCheckRunStatus| {
        Some(
            details
                .values()
                .filter(|d| d.check_run_status() == Some(&s))
                .count() as i32,
        )
    };
    assert_eq!(
        stats.compliant_checks(),
        count(AuditCheckRunStatus::CompletedCompliant)
    );
    assert_eq!(
        stats.non_compliant_checks(),
        count(AuditCheckRunStatus::CompletedNonCompliant)
    );
    assert_eq!(stats.failed_checks(), count(AuditCheckRunStatus::Failed));
    assert_eq!(
        stats.canceled_checks(),
        count(AuditCheckRunStatus::Canceled)
    );
    assert_eq!(
        stats.in_progress_checks(),
        count(AuditCheckRunStatus::InProgress)
    );
    assert_eq!(stats.waiting_for_data_collection_checks(), Some(0));
    let finished = stats.compliant_checks().unwrap()
        + stats.non_compliant_checks().unwrap()
        + stats.failed_checks().unwrap()
        + stats.canceled_checks().unwrap();
    if out.task_status() != Some(&AuditTaskStatus::InProgress) {
        assert_eq!(finished, checks as i32, "every check finished: {out:?}");
    }
    for (name, d) in details {
        let completed = matches!(
            d.check_run_status(),
            Some(
                AuditCheckRunStatus::CompletedCompliant
                    | AuditCheckRunStatus::CompletedNonCompliant
            )
        );
        if completed {
            let nc = d
                .non_compliant_resources_count()
                .expect("nonCompliantResourcesCount");
            assert_eq!(
                d.check_compliant(),
                Some(nc == 0),
                "{name}: checkCompliant agrees with the count"
            );
            assert_eq!(
                d.check_run_status() == Some(&AuditCheckRunStatus::CompletedCompliant),
                nc == 0
            );
            assert!(d.total_resources_count().expect("totalResourcesCount") >= nc);
            assert_eq!(d.suppressed_non_compliant_resources_count(), Some(0));
        } else {
            assert_eq!(d.check_compliant(), None, "{name}: not completed: {d:?}");
            assert_eq!(d.total_resources_count(), None, "{name}: {d:?}");
            assert_eq!(d.non_compliant_resources_count(), None, "{name}: {d:?}");
        }
    }
}

/// `(status, total, nonCompliant)` of one check of a task.
#[track_caller]
fn check_result(out: &DescribeAuditTaskOutput, check: &str) -> (AuditCheckRunStatus, i64, i64) {
    let d = out
        .audit_details()
        .and_then(|m| m.get(check))
        .unwrap_or_else(|| panic!("no details for {check}: {out:?}"));
    (
        d.check_run_status().expect("checkRunStatus").clone(),
        d.total_resources_count().unwrap_or(-1),
        d.non_compliant_resources_count().unwrap_or(-1),
    )
}

fn non_compliant(total: i64, found: i64) -> (AuditCheckRunStatus, i64, i64) {
    (AuditCheckRunStatus::CompletedNonCompliant, total, found)
}

fn compliant(total: i64) -> (AuditCheckRunStatus, i64, i64) {
    (AuditCheckRunStatus::CompletedCompliant, total, 0)
}

/// Every finding of a task (optionally of one check), following nextToken.
async fn task_findings(client: &Client, task_id: &str, check: Option<&str>) -> Vec<AuditFinding> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_audit_findings()
            .task_id(task_id)
            .set_check_name(check.map(str::to_owned))
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListAuditFindings: {}", DisplayErrorContext(e)));
        out.extend(page.findings().iter().cloned());
        match page.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// reasonForNonComplianceCode per device certificate id.
fn codes_by_device(findings: &[AuditFinding]) -> BTreeMap<String, String> {
    findings
        .iter()
        .map(|f| {
            let r = f.non_compliant_resource().expect("nonCompliantResource");
            assert_eq!(
                r.resource_type(),
                Some(&ResourceType::DeviceCertificate),
                "{f:?}"
            );
            (
                r.resource_identifier()
                    .and_then(|i| i.device_certificate_id())
                    .expect("deviceCertificateId")
                    .to_owned(),
                f.reason_for_non_compliance_code().expect("code").to_owned(),
            )
        })
        .collect()
}

/// Registers a certificate without a CA; its id.
async fn register(client: &Client, pem: &str, status: CertificateStatus) -> String {
    client
        .register_certificate_without_ca()
        .certificate_pem(pem)
        .status(status)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RegisterCertificateWithoutCA: {}", DisplayErrorContext(e)))
        .certificate_id()
        .expect("certificateId")
        .to_owned()
}

async fn set_certificate_status(client: &Client, id: &str, status: CertificateStatus) {
    client
        .update_certificate()
        .certificate_id(id)
        .new_status(status)
        .send()
        .await
        .unwrap_or_else(|e| panic!("UpdateCertificate {id}: {}", DisplayErrorContext(e)));
}

async fn create_policy(client: &Client, name: &str, document: &str) {
    client
        .create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreatePolicy {name}: {}", DisplayErrorContext(e)));
}

async fn add_version(client: &Client, name: &str, document: &str, default: bool) -> String {
    client
        .create_policy_version()
        .policy_name(name)
        .policy_document(document)
        .set_as_default(default)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreatePolicyVersion {name}: {}", DisplayErrorContext(e)))
        .policy_version_id()
        .expect("policyVersionId")
        .to_owned()
}

fn iot_arn(resource: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:{resource}")
}

/// `iot:*` on `*`.
fn broad_policy() -> String {
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#
        .to_owned()
}

/// A device policy confined to the device's own thing.
fn thing_bound_policy() -> String {
    let thing = "${iot:Connection.Thing.ThingName}";
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": iot_arn(&format!("client/{thing}"))},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
             "Resource": iot_arn(&format!("topic/$aws/things/{thing}/shadow/*"))},
            {"Effect": "Allow", "Action": "iot:Subscribe",
             "Resource": iot_arn(&format!("topicfilter/$aws/things/{thing}/shadow/*"))},
            {"Effect": "Allow", "Action": ["iot:GetThingShadow", "iot:UpdateThingShadow"],
             "Resource": iot_arn(&format!("thing/{thing}"))}
        ]
    })
    .to_string()
}

/// The documented example: an MQTT wildcard in a Deny (`control_room/#` matches only
/// itself), or with `fixed`, the documented correction.
fn building_policy(fixed: bool) -> String {
    let mut statements = vec![
        serde_json::json!({"Effect": "Allow", "Action": "iot:Subscribe",
                           "Resource": iot_arn("topicfilter/building/*")}),
        serde_json::json!({"Effect": "Allow", "Action": "iot:Receive",
                           "Resource": iot_arn("topic/building/*")}),
    ];
    if fixed {
        statements.push(
            serde_json::json!({"Effect": "Deny", "Action": "iot:Subscribe",
            "Resource": iot_arn("topicfilter/building/control_room/*")}),
        );
        statements.push(
            serde_json::json!({"Effect": "Deny", "Action": "iot:Receive",
            "Resource": iot_arn("topic/building/control_room/*")}),
        );
    } else {
        statements.push(
            serde_json::json!({"Effect": "Deny", "Action": "iot:Subscribe",
            "Resource": iot_arn("topicfilter/building/control_room/#")}),
        );
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// The severity the catalogue gives each evaluated check.
fn severity_of(check: &str) -> AuditFindingSeverity {
    match check {
        AGE | LOGGING => AuditFindingSeverity::Low,
        EXPIRING | CA_EXPIRING | MISCONFIG => AuditFindingSeverity::Medium,
        KEY_QUALITY | CA_KEY_QUALITY | PERMISSIVE => AuditFindingSeverity::Critical,
        other => panic!("no severity for {other}"),
    }
}

/// A finding's common members are as the task and the catalogue say.
#[track_caller]
fn assert_finding_shape(f: &AuditFinding, task_id: &str, task: &DescribeAuditTaskOutput) {
    let check = f.check_name().expect("checkName");
    assert_eq!(f.task_id(), Some(task_id), "{f:?}");
    assert_eq!(f.severity(), Some(&severity_of(check)), "{f:?}");
    assert_eq!(f.is_suppressed(), Some(false), "{f:?}");
    assert_eq!(
        millis(f.task_start_time()),
        millis(task.task_start_time()),
        "taskStartTime is the task's"
    );
    assert!(millis(f.finding_time()) >= millis(task.task_start_time()) - 1000);
    assert!(f.finding_id().is_some_and(|id| !id.is_empty()));
    assert!(f.reason_for_non_compliance().is_some_and(|r| !r.is_empty()));
}

fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn list_tasks(
    client: &Client,
    from: i64,
    to: i64,
    status: Option<AuditTaskStatus>,
    task_type: Option<AuditTaskType>,
) -> Vec<(String, AuditTaskStatus)> {
    let out = client
        .list_audit_tasks()
        .start_time(DateTime::from_secs(from))
        .end_time(DateTime::from_secs(to))
        .set_task_status(status)
        .set_task_type(task_type)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAuditTasks: {}", DisplayErrorContext(e)));
    assert_eq!(out.next_token(), None);
    out.tasks()
        .iter()
        .map(|t| {
            assert_eq!(t.task_type(), Some(&AuditTaskType::OnDemandAuditTask));
            (
                t.task_id().expect("taskId").to_owned(),
                t.task_status().expect("taskStatus").clone(),
            )
        })
        .collect()
}

per_engine! {

// ------------------------------------------------------------------------------------
// Account audit configuration

#[tokio::test]
async fn fresh_account_configuration() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    assert_fresh(&config_state(&client).await);
    server.stop().await;
}

#[tokio::test]
async fn first_update_needs_role_and_an_enabled_check() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (f, _) = expect_failure(
        client
            .update_account_audit_configuration()
            .audit_check_configurations(LOGGING, enabled(true))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["roleArn"]);
    // Nothing enabled: no check at all, or only disabled ones.
    let (f, _) = expect_failure(
        client
            .update_account_audit_configuration()
            .role_arn(AUDIT_ROLE)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400)
        .mentions(&["auditCheckConfigurations"]);
    let (f, _) = expect_failure(
        client
            .update_account_audit_configuration()
            .role_arn(AUDIT_ROLE)
            .audit_check_configurations(LOGGING, enabled(false))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    assert_fresh(&config_state(&client).await);
    let (f, _) = expect_failure(client.delete_account_audit_configuration().send().await);
    f.assert("ResourceNotFoundException", 404);

    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    let state = config_state(&client).await;
    assert_eq!(state.role_arn.as_deref(), Some(AUDIT_ROLE));
    assert_eq!(state.enabled(), [LOGGING]);
    // Later updates need neither.
    client
        .update_account_audit_configuration()
        .audit_check_configurations(PERMISSIVE, enabled(true))
        .send()
        .await
        .expect("a later update without roleArn");
    assert_eq!(config_state(&client).await.role_arn.as_deref(), Some(AUDIT_ROLE));
    server.stop().await;
}

#[tokio::test]
async fn invalid_updates_change_nothing() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    // Invalid first updates write nothing either.
    let (f, _) = expect_failure(
        client
            .update_account_audit_configuration()
            .role_arn(AUDIT_ROLE)
            .audit_check_configurations("NO_SUCH_CHECK", enabled(true))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["NO_SUCH_CHECK"]);
    assert_fresh(&config_state(&client).await);

    enable(&client, AUDIT_ROLE, &[LOGGING, EXPIRING]).await;
    let before = config_state(&client).await;

    // An unknown check beside a valid change: refused whole.
    let (f, _) = expect_failure(
        client
            .update_account_audit_configuration()
            .role_arn(ROLE_ARN_2)
            .audit_check_configurations(PERMISSIVE, enabled(true))
            .audit_check_configurations("NOT_A_CHECK", enabled(true))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["NOT_A_CHECK"]);
    assert_eq!(config_state(&client).await, before);

    // Thresholds: whole days from 30 to 3652, nothing else.
    for (check, key) in [
        (EXPIRING, ConfigName::CertExpirationThresholdInDays),
        (AGE, ConfigName::CertAgeThresholdInDays),
    ] {
        for bad in ["29", "3653", "abc", " 30", "30 ", "-30", "30.5", "0"] {
            let (f, _) = expect_failure(
                client
                    .update_account_audit_configuration()
                    .audit_check_configurations(LOGGING, enabled(false))
                    .audit_check_configurations(check, with_setting(key.clone(), bad))
                    .send()
                    .await,
            );
            f.assert("InvalidRequestException", 400)
                .mentions(&[check, key.as_str()]);
            assert_eq!(config_state(&client).await, before, "after {check}={bad:?}");
        }
    }
    // A key the check does not take, and a threshold key on the wrong check.
    for (check, key) in [
        (LOGGING, ConfigName::CertAgeThresholdInDays),
        (AGE, ConfigName::CertExpirationThresholdInDays),
        (EXPIRING, ConfigName::from("SOME_OTHER_KEY")),
    ] {
        let (f, _) = expect_failure(
            client
                .update_account_audit_configuration()
                .audit_check_configurations(check, with_setting(key.clone(), "60"))
                .send()
                .await,
        );
        f.assert("InvalidRequestException", 400)
            .mentions(&[check, key.as_str()]);
        assert_eq!(config_state(&client).await, before);
    }

    // The bounds themselves are accepted.
    set_threshold(&client, EXPIRING, ConfigName::CertExpirationThresholdInDays, "30").await;
    set_threshold(&client, AGE, ConfigName::CertAgeThresholdInDays, "3652").await;
    let state = config_state(&client).await;
    assert_eq!(
        state.setting(EXPIRING),
        pairs_map(&[("CERT_EXPIRATION_THRESHOLD_IN_DAYS", "30")])
    );
    assert_eq!(state.setting(AGE), pairs_map(&[("CERT_AGE_THRESHOLD_IN_DAYS", "3652")]));
    assert_eq!(state.enabled(), [AGE, EXPIRING, LOGGING]);
    server.stop().await;
}

#[tokio::test]
async fn updates_merge() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    // Another check: the first stays enabled.
    client
        .update_account_audit_configuration()
        .audit_check_configurations(PERMISSIVE, enabled(true))
        .send()
        .await
        .expect("enable a second check");
    assert_eq!(config_state(&client).await.enabled(), [PERMISSIVE, LOGGING]);

    // A threshold is kept by a later update of the check that gives no configuration.
    set_threshold(&client, EXPIRING, ConfigName::CertExpirationThresholdInDays, "90").await;
    client
        .update_account_audit_configuration()
        .audit_check_configurations(EXPIRING, enabled(true))
        .role_arn(ROLE_ARN_2)
        .send()
        .await
        .expect("re-enable");
    let state = config_state(&client).await;
    assert_eq!(state.role_arn.as_deref(), Some(ROLE_ARN_2), "roleArn replaced");
    assert_eq!(
        state.setting(EXPIRING),
        pairs_map(&[("CERT_EXPIRATION_THRESHOLD_IN_DAYS", "90")])
    );
    assert_eq!(state.enabled(), [EXPIRING, PERMISSIVE, LOGGING]);

    // Disabling through the SDK (which leaves `enabled: false` off the wire): only the
    // named check changes, and its threshold is kept.
    client
        .update_account_audit_configuration()
        .audit_check_configurations(EXPIRING, enabled(false))
        .send()
        .await
        .expect("disable");
    let state = config_state(&client).await;
    assert_eq!(state.enabled(), [PERMISSIVE, LOGGING]);
    assert_eq!(
        state.setting(EXPIRING),
        pairs_map(&[("CERT_EXPIRATION_THRESHOLD_IN_DAYS", "90")])
    );
    let (f, _) = expect_failure(
        client
            .start_on_demand_audit_task()
            .target_check_names(EXPIRING)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&[EXPIRING]);

    // On the wire: an explicit false disables, and so does an absent `enabled` (the
    // model's default), while an update that does not name a check leaves it alone.
    let patch = |body: &str| {
        server.signed(RawRequest::new("PATCH", "/audit/configuration").json(body.to_owned()))
    };
    let resp = server
        .send(patch(r#"{"auditCheckConfigurations":{"LOGGING_DISABLED_CHECK":{"enabled":false}}}"#))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.message());
    assert_eq!(config_state(&client).await.enabled(), [PERMISSIVE]);
    let resp = server
        .send(patch(r#"{"auditCheckConfigurations":{"LOGGING_DISABLED_CHECK":{"enabled":true}}}"#))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.message());
    let resp = server
        .send(patch(r#"{"auditCheckConfigurations":{"IOT_POLICY_OVERLY_PERMISSIVE_CHECK":{}}}"#))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.message());
    assert_eq!(config_state(&client).await.enabled(), [LOGGING]);
    let resp = server.send(patch(r#"{"roleArn":"arn:aws:iam::111122223333:role/third"}"#)).await;
    assert_eq!(resp.status, 200, "{}", resp.message());
    let state = config_state(&client).await;
    assert_eq!(state.enabled(), [LOGGING]);
    assert_eq!(state.role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/third"));
    server.stop().await;
}

#[tokio::test]
async fn sns_notification_target() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    let before = config_state(&client).await;
    let target = |arn: Option<&str>, role: Option<&str>, on: bool| {
        AuditNotificationTarget::builder()
            .set_target_arn(arn.map(str::to_owned))
            .set_role_arn(role.map(str::to_owned))
            .enabled(on)
            .build()
    };
    for (arn, role) in [
        (None, Some(ROLE_ARN)),
        (Some("not-an-arn"), Some(ROLE_ARN)),
        (Some("arn:aws:sqs:us-east-1:111122223333:queue"), Some(ROLE_ARN)),
        (Some(TOPIC_ARN), None),
    ] {
        let (f, _) = expect_failure(
            client
                .update_account_audit_configuration()
                .audit_notification_target_configurations(
                    AuditNotificationType::Sns,
                    target(arn, role, true),
                )
                .send()
                .await,
        );
        f.assert("InvalidRequestException", 400).mentions(&["SNS"]);
        assert_eq!(config_state(&client).await, before);
    }
    client
        .update_account_audit_configuration()
        .audit_notification_target_configurations(
            AuditNotificationType::Sns,
            target(Some(TOPIC_ARN), Some(ROLE_ARN), true),
        )
        .send()
        .await
        .expect("SNS target");
    let state = config_state(&client).await;
    assert_eq!(
        state.targets,
        BTreeMap::from([(
            "SNS".to_owned(),
            (true, Some(TOPIC_ARN.to_owned()), Some(ROLE_ARN.to_owned()))
        )])
    );
    assert_eq!(state.enabled(), [LOGGING], "checks untouched");
    // A disabled target needs no ARN.
    client
        .update_account_audit_configuration()
        .audit_notification_target_configurations(
            AuditNotificationType::Sns,
            target(None, None, false),
        )
        .send()
        .await
        .expect("disable the target");
    assert_eq!(
        config_state(&client).await.targets,
        BTreeMap::from([("SNS".to_owned(), (false, None, None))])
    );
    server.stop().await;
}

#[tokio::test]
async fn delete_configuration() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING, AGE]).await;
    set_threshold(&client, AGE, ConfigName::CertAgeThresholdInDays, "100").await;
    client
        .update_account_audit_configuration()
        .audit_notification_target_configurations(
            AuditNotificationType::Sns,
            AuditNotificationTarget::builder()
                .target_arn(TOPIC_ARN)
                .role_arn(ROLE_ARN)
                .enabled(true)
                .build(),
        )
        .send()
        .await
        .expect("target");
    client
        .delete_account_audit_configuration()
        .send()
        .await
        .expect("DeleteAccountAuditConfiguration");
    assert_fresh(&config_state(&client).await);
    let (f, _) = expect_failure(client.delete_account_audit_configuration().send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        client
            .start_on_demand_audit_task()
            .target_check_names(LOGGING)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    // Configuring again is a first update again.
    let (f, _) = expect_failure(
        client
            .update_account_audit_configuration()
            .audit_check_configurations(LOGGING, enabled(true))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["roleArn"]);
    server.stop().await;
}

#[tokio::test]
async fn configuration_is_per_account() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    enable(&a, AUDIT_ROLE, &[LOGGING, PERMISSIVE]).await;
    set_threshold(&a, EXPIRING, ConfigName::CertExpirationThresholdInDays, "45").await;
    let a_state = config_state(&a).await;
    assert_fresh(&config_state(&b).await);
    let (f, _) = expect_failure(b.delete_account_audit_configuration().send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(b.start_on_demand_audit_task().target_check_names(LOGGING).send().await);
    f.assert("InvalidRequestException", 400);
    enable(&b, AUDIT_ROLE_B, &[AGE]).await;
    b.delete_account_audit_configuration().send().await.expect("B deletes its own");
    assert_eq!(config_state(&a).await, a_state, "A untouched by B");
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Audit tasks

#[tokio::test]
async fn start_validation() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    let (f, _) = expect_failure(
        client
            .start_on_demand_audit_task()
            .target_check_names(LOGGING)
            .target_check_names(PERMISSIVE)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&[PERMISSIVE]);
    let (f, _) = expect_failure(
        client
            .start_on_demand_audit_task()
            .target_check_names("NO_SUCH_CHECK")
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["NO_SUCH_CHECK"]);
    let (f, _) = expect_failure(
        client
            .start_on_demand_audit_task()
            .set_target_check_names(Some(vec![]))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(client.start_on_demand_audit_task().send().await);
    f.assert("InvalidRequestException", 400).mentions(&["targetCheckNames"]);
    // None of these made a task.
    let now = now_secs();
    assert!(list_tasks(&client, now - 3600, now + 3600, None, None).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn at_most_ten_in_progress_per_account() {
    let server = TestServer::start_without_worker(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    enable(&a, AUDIT_ROLE, &[LOGGING]).await;
    enable(&b, AUDIT_ROLE_B, &[LOGGING]).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(start(&a, &[LOGGING]).await);
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 10, "distinct task ids");
    let (f, _) = expect_failure(a.start_on_demand_audit_task().target_check_names(LOGGING).send().await);
    f.assert("LimitExceededException", 410);
    // Another account has its own quota.
    let b_task = start(&b, &[LOGGING]).await;
    assert_eq!(
        describe_task(&b, &b_task).await.task_status(),
        Some(&AuditTaskStatus::InProgress)
    );
    // A canceled task frees its place.
    a.cancel_audit_task().task_id(&ids[0]).send().await.expect("cancel");
    start(&a, &[LOGGING]).await;
    let (f, _) = expect_failure(a.start_on_demand_audit_task().target_check_names(LOGGING).send().await);
    f.assert("LimitExceededException", 410);
    server.stop().await;
}

#[tokio::test]
async fn unknown_and_foreign_tasks() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    let unknown = "0123456789abcdef0123456789abcdef";
    let (f, _) = expect_failure(a.describe_audit_task().task_id(unknown).send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(a.cancel_audit_task().task_id(unknown).send().await);
    f.assert("ResourceNotFoundException", 404);
    enable(&a, AUDIT_ROLE, &[LOGGING]).await;
    let (id, _) = run_audit(&a, &[LOGGING]).await;
    let (f, _) = expect_failure(b.describe_audit_task().task_id(&id).send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(b.cancel_audit_task().task_id(&id).send().await);
    f.assert("ResourceNotFoundException", 404);
    let now = now_secs();
    assert!(list_tasks(&b, now - 3600, now + 3600, None, None).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn task_runs_every_check_to_completion() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &ALL_CHECKS).await;
    let before = now_secs();
    let id = start(&client, &ALL_CHECKS).await;
    assert!(
        id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "an AuditTaskId: {id}"
    );
    let out = wait_done(&client, &id).await;
    assert_eq!(out.task_status(), Some(&AuditTaskStatus::Completed), "{out:?}");
    assert_eq!(out.task_type(), Some(&AuditTaskType::OnDemandAuditTask));
    assert_eq!(out.scheduled_audit_name(), None);
    let started = millis(out.task_start_time()) / 1000;
    assert!((before - 1..=now_secs() + 1).contains(&started), "taskStartTime {started}");
    assert_consistent(&out, 17);
    let stats = out.task_statistics().unwrap();
    // A fresh account: only logging is non-compliant; the other evaluated checks have
    // nothing to examine (no role alias names a role to judge); the Cognito checks have
    // no pools to go by.
    assert_eq!(stats.non_compliant_checks(), Some(1));
    assert_eq!(stats.compliant_checks(), Some(14));
    assert_eq!(stats.failed_checks(), Some(2));
    assert_eq!(stats.canceled_checks(), Some(0));
    assert_eq!(check_result(&out, LOGGING), non_compliant(1, 1));
    for check in [
        AGE,
        EXPIRING,
        CA_EXPIRING,
        KEY_QUALITY,
        CA_KEY_QUALITY,
        PERMISSIVE,
        MISCONFIG,
        REVOKED,
        REVOKED_CA,
        INTERMEDIATE,
        SHARED,
        CONFLICTING,
        ROLE_ALIAS_PERMISSIVE,
        ROLE_ALIAS_UNUSED,
    ] {
        assert_eq!(check_result(&out, check), compliant(0), "{check}");
    }
    let details = out.audit_details().unwrap();
    for (check, code) in UNAVAILABLE {
        let d = &details[check];
        assert_eq!(d.check_run_status(), Some(&AuditCheckRunStatus::Failed), "{check}");
        assert_eq!(d.error_code(), Some(code), "{check}");
        assert!(
            d.message().is_some_and(|m| m.contains(check) && m.len() > check.len()),
            "{check}: a message naming the check and what is missing: {d:?}"
        );
        assert_eq!(d.check_compliant(), None);
    }
    for check in ALL_CHECKS.iter().filter(|c| !UNAVAILABLE.iter().any(|(u, _)| u == *c)) {
        assert_eq!(details[*check].error_code(), None, "{check}");
        assert_eq!(details[*check].message(), None, "{check}");
    }
    let (f, _) = expect_failure(client.cancel_audit_task().task_id(&id).send().await);
    f.assert("InvalidRequestException", 400).mentions(&["COMPLETED"]);
    let again = describe_task(&client, &id).await;
    assert_eq!(
        (again.task_status(), again.task_statistics(), again.audit_details()),
        (out.task_status(), out.task_statistics(), out.audit_details()),
        "a refused cancel changes nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn connection_checks_without_connections_are_compliant() {
    // With no connection history the two connection checks examine nothing (they used
    // to fail with DATA_SOURCE_NOT_AVAILABLE before the connection history existed).
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[SHARED, CONFLICTING]).await;
    let (_, out) = run_audit(&client, &[SHARED, CONFLICTING]).await;
    let stats = out.task_statistics().unwrap();
    assert_eq!((stats.failed_checks(), stats.compliant_checks()), (Some(0), Some(2)));
    assert_eq!(check_result(&out, SHARED), compliant(0));
    assert_eq!(check_result(&out, CONFLICTING), compliant(0));
    server.stop().await;
}

#[tokio::test]
async fn cancel_an_in_progress_task() {
    let server = TestServer::start_without_worker(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING, PERMISSIVE, SHARED]).await;
    let id = start(&client, &[LOGGING, PERMISSIVE, SHARED]).await;
    let out = describe_task(&client, &id).await;
    assert_eq!(out.task_status(), Some(&AuditTaskStatus::InProgress));
    assert_consistent(&out, 3);
    let stats = out.task_statistics().unwrap();
    assert_eq!(stats.in_progress_checks(), Some(3));
    for d in out.audit_details().unwrap().values() {
        assert_eq!(d.check_run_status(), Some(&AuditCheckRunStatus::InProgress));
        assert_eq!((d.check_compliant(), d.total_resources_count()), (None, None));
    }

    client.cancel_audit_task().task_id(&id).send().await.expect("CancelAuditTask");
    let out = describe_task(&client, &id).await;
    assert_eq!(out.task_status(), Some(&AuditTaskStatus::Canceled));
    assert_consistent(&out, 3);
    let stats = out.task_statistics().unwrap();
    assert_eq!(stats.canceled_checks(), Some(3));
    assert_eq!(stats.in_progress_checks(), Some(0));
    for d in out.audit_details().unwrap().values() {
        assert_eq!(d.check_run_status(), Some(&AuditCheckRunStatus::Canceled));
        assert_eq!(d.check_compliant(), None);
    }
    let (f, _) = expect_failure(client.cancel_audit_task().task_id(&id).send().await);
    f.assert("InvalidRequestException", 400).mentions(&["CANCELED"]);
    let now = now_secs();
    assert_eq!(
        list_tasks(&client, now - 3600, now + 3600, Some(AuditTaskStatus::Canceled), None).await,
        [(id.clone(), AuditTaskStatus::Canceled)]
    );
    // A canceled task has no findings.
    assert!(task_findings(&client, &id, None).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn list_audit_tasks() {
    let clock = Arc::new(TestClock::new());
    let server = TestServer::start_custom(ENGINE, clock.clone(), false).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    // Four tasks two seconds apart (on the engine's clock); the first and third canceled.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(start(&client, &[LOGGING]).await);
        clock.advance_ms(2000);
    }
    for i in [0, 2] {
        client.cancel_audit_task().task_id(&ids[i]).send().await.expect("cancel");
    }
    let now = now_secs();
    let (from, to) = (now - 3600, now + 3600);
    use AuditTaskStatus::{Canceled, InProgress};
    let newest_first = vec![
        (ids[3].clone(), InProgress),
        (ids[2].clone(), Canceled),
        (ids[1].clone(), InProgress),
        (ids[0].clone(), Canceled),
    ];
    assert_eq!(list_tasks(&client, from, to, None, None).await, newest_first);
    assert_eq!(
        list_tasks(&client, from, to, Some(InProgress), None).await,
        [(ids[3].clone(), InProgress), (ids[1].clone(), InProgress)]
    );
    assert_eq!(
        list_tasks(&client, from, to, Some(Canceled), None).await,
        [(ids[2].clone(), Canceled), (ids[0].clone(), Canceled)]
    );
    assert!(list_tasks(&client, from, to, Some(AuditTaskStatus::Completed), None).await.is_empty());
    assert_eq!(
        list_tasks(&client, from, to, None, Some(AuditTaskType::OnDemandAuditTask)).await,
        newest_first
    );
    assert!(list_tasks(&client, from, to, None, Some(AuditTaskType::ScheduledAuditTask))
        .await
        .is_empty());
    // The window is on the start time, inclusive of whole seconds.
    assert!(list_tasks(&client, now + 1800, to, None, None).await.is_empty());
    assert!(list_tasks(&client, from, now - 1800, None, None).await.is_empty());

    // One per page.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    let mut first_token = None;
    loop {
        let out = client
            .list_audit_tasks()
            .start_time(DateTime::from_secs(from))
            .end_time(DateTime::from_secs(to))
            .max_results(1)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("page: {}", DisplayErrorContext(e)));
        assert!(out.tasks().len() <= 1);
        paged.extend(out.tasks().iter().map(|t| {
            (t.task_id().unwrap().to_owned(), t.task_status().unwrap().clone())
        }));
        match out.next_token() {
            Some(t) => {
                first_token.get_or_insert_with(|| t.to_owned());
                token = Some(t.to_owned());
            }
            None => break,
        }
        assert!(paged.len() <= 4, "paging does not end");
    }
    assert_eq!(paged, newest_first);
    let first_token = first_token.expect("more than one page");
    let (f, _) = expect_failure(
        client
            .list_audit_tasks()
            .start_time(DateTime::from_secs(from))
            .end_time(DateTime::from_secs(to))
            .next_token(tamper(&first_token))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["nextToken"]);
    // A token is for its own filter.
    let (f, _) = expect_failure(
        client
            .list_audit_tasks()
            .start_time(DateTime::from_secs(from))
            .end_time(DateTime::from_secs(to))
            .task_status(InProgress)
            .next_token(&first_token)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    // Nor for another account.
    let (f, _) = expect_failure(
        server
            .client_b()
            .list_audit_tasks()
            .start_time(DateTime::from_secs(from))
            .end_time(DateTime::from_secs(to))
            .next_token(&first_token)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);

    // Tasks are kept 90 days: an older start time is refused; so is an end before the start.
    let (f, _) = expect_failure(
        client
            .list_audit_tasks()
            .start_time(DateTime::from_secs(now - 91 * 24 * 3600))
            .end_time(DateTime::from_secs(to))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["90"]);
    client
        .list_audit_tasks()
        .start_time(DateTime::from_secs(now - 89 * 24 * 3600))
        .end_time(DateTime::from_secs(to))
        .send()
        .await
        .expect("89 days back is fine");
    let (f, _) = expect_failure(
        client
            .list_audit_tasks()
            .start_time(DateTime::from_secs(to))
            .end_time(DateTime::from_secs(from))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// The checks

#[tokio::test]
async fn device_certificate_expiring_check() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[EXPIRING]).await;
    let approaching = register(&client, &self_signed_valid("approaching", -1, 10), CertificateStatus::Active).await;
    let past = register(&client, &self_signed_valid("past", -30, -1), CertificateStatus::Active).await;
    let later = register(&client, &self_signed_valid("later", -1, 200), CertificateStatus::Active).await;
    // Not in use: not examined, however expired.
    register(&client, &self_signed_valid("inactive", -30, -2), CertificateStatus::Inactive).await;
    register(&client, &self_signed_valid("revoked", -30, -2), CertificateStatus::Revoked).await;

    let (id, out) = run_audit(&client, &[EXPIRING]).await;
    assert_eq!(check_result(&out, EXPIRING), non_compliant(3, 2));
    let findings = task_findings(&client, &id, None).await;
    assert_eq!(
        codes_by_device(&findings),
        BTreeMap::from([
            (approaching.clone(), "CERTIFICATE_APPROACHING_EXPIRATION".to_owned()),
            (past.clone(), "CERTIFICATE_PAST_EXPIRATION".to_owned()),
        ])
    );
    for f in &findings {
        assert_finding_shape(f, &id, &out);
        assert_eq!(f.severity(), Some(&AuditFindingSeverity::Medium));
    }

    // A longer threshold reaches the certificate that expires in 200 days.
    set_threshold(&client, EXPIRING, ConfigName::CertExpirationThresholdInDays, "365").await;
    let (id, out) = run_audit(&client, &[EXPIRING]).await;
    assert_eq!(check_result(&out, EXPIRING), non_compliant(3, 3));
    let codes = codes_by_device(&task_findings(&client, &id, None).await);
    assert_eq!(codes[&later], "CERTIFICATE_APPROACHING_EXPIRATION");
    assert_eq!(codes[&past], "CERTIFICATE_PAST_EXPIRATION");

    // Compliant fleet: the two bad certificates taken out of use, the default threshold.
    set_threshold(&client, EXPIRING, ConfigName::CertExpirationThresholdInDays, "30").await;
    set_certificate_status(&client, &approaching, CertificateStatus::Inactive).await;
    set_certificate_status(&client, &past, CertificateStatus::Revoked).await;
    let (id, out) = run_audit(&client, &[EXPIRING]).await;
    assert_eq!(check_result(&out, EXPIRING), compliant(1));
    assert_eq!(out.audit_details().unwrap()[EXPIRING].check_compliant(), Some(true));
    assert!(task_findings(&client, &id, None).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn ca_certificate_expiring_check() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[CA_EXPIRING]).await;
    let soon = register_ca(&client, &TestCa::with_validity("ca expiring soon", -1, 10), true).await;
    let expired = register_ca(&client, &TestCa::with_validity("ca expired", -60, -1), true).await;
    register_ca(&client, &TestCa::with_validity("ca long-lived", -1, 800), true).await;
    register_ca(&client, &TestCa::with_validity("ca inactive", -60, -1), false).await;

    let (id, out) = run_audit(&client, &[CA_EXPIRING]).await;
    assert_eq!(check_result(&out, CA_EXPIRING), non_compliant(3, 2));
    let findings = task_findings(&client, &id, None).await;
    let codes: BTreeMap<String, String> = findings
        .iter()
        .map(|f| {
            assert_finding_shape(f, &id, &out);
            let r = f.non_compliant_resource().unwrap();
            assert_eq!(r.resource_type(), Some(&ResourceType::CaCertificate));
            (
                r.resource_identifier().unwrap().ca_certificate_id().expect("caCertificateId").to_owned(),
                f.reason_for_non_compliance_code().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        BTreeMap::from([
            (soon.clone(), "CERTIFICATE_APPROACHING_EXPIRATION".to_owned()),
            (expired.clone(), "CERTIFICATE_PAST_EXPIRATION".to_owned()),
        ])
    );

    // Compliant fleet.
    for ca in [&soon, &expired] {
        client
            .update_ca_certificate()
            .certificate_id(ca)
            .new_status(CaCertificateStatus::Inactive)
            .send()
            .await
            .expect("deactivate CA");
    }
    let (_, out) = run_audit(&client, &[CA_EXPIRING]).await;
    assert_eq!(check_result(&out, CA_EXPIRING), compliant(1));
    server.stop().await;
}

#[tokio::test]
async fn device_certificate_age_check() {
    let clock = Arc::new(TestClock::new());
    let server = TestServer::start_with_clock(ENGINE, clock.clone()).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[AGE]).await;
    let cert = register(&client, &self_signed("aging"), CertificateStatus::Active).await;
    register(&client, &self_signed("aging but inactive"), CertificateStatus::Inactive).await;
    let (_, out) = run_audit(&client, &[AGE]).await;
    assert_eq!(check_result(&out, AGE), compliant(1), "a new certificate");

    clock.advance_days(400);
    let (id, out) = run_audit(&client, &[AGE]).await;
    assert_eq!(check_result(&out, AGE), non_compliant(1, 1));
    let started = millis(out.task_start_time());
    assert!(started >= SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64 + 399 * DAY_MS,
        "the task started on the engine's clock");
    let findings = task_findings(&client, &id, None).await;
    assert_eq!(
        codes_by_device(&findings),
        BTreeMap::from([(cert.clone(), "CERTIFICATE_PAST_AGE_THRESHOLD".to_owned())])
    );
    assert_finding_shape(&findings[0], &id, &out);
    assert!(findings[0].reason_for_non_compliance().unwrap().contains("400"), "{:?}", findings[0]);

    // A longer threshold: compliant again.
    set_threshold(&client, AGE, ConfigName::CertAgeThresholdInDays, "500").await;
    let (_, out) = run_audit(&client, &[AGE]).await;
    assert_eq!(check_result(&out, AGE), compliant(1));
    server.stop().await;
}

#[tokio::test]
async fn history_past_retention_is_purged() {
    let clock = Arc::new(TestClock::new());
    let server = TestServer::start_with_clock(ENGINE, clock.clone()).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    let (old, _) = run_audit(&client, &[LOGGING]).await;
    assert_eq!(task_findings(&client, &old, None).await.len(), 1);

    clock.advance_days(91);
    let (recent, _) = run_audit(&client, &[LOGGING]).await;
    let purged = server.engine.purge_audit_history().await.expect("purge");
    assert!(purged >= 2, "the old task and its finding: {purged}");
    let (failure, _) = expect_failure(client.describe_audit_task().task_id(&old).send().await);
    failure.assert("ResourceNotFoundException", 404);
    assert!(task_findings(&client, &old, None).await.is_empty());
    assert_eq!(task_findings(&client, &recent, None).await.len(), 1);
    assert_eq!(server.engine.purge_audit_history().await.expect("purge"), 0);
    server.stop().await;
}

#[tokio::test]
async fn key_quality_checks() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[KEY_QUALITY, CA_KEY_QUALITY]).await;
    let issuer = TestCa::new("key quality issuer");
    let roca = register(&client, &issuer.issue_for_public_key("roca", ROCA_KEY), CertificateStatus::Active).await;
    let debian = register(&client, &issuer.issue_for_public_key("debian", DEBIAN_KEY), CertificateStatus::Active).await;
    register(&client, &issuer.issue_for_public_key("rsa", GOOD_RSA_KEY), CertificateStatus::Active).await;
    register(&client, &self_signed("ec"), CertificateStatus::Active).await;
    // Weak, but not in use.
    register(
        &client,
        &issuer.issue_for_public_key("roca inactive", ROCA_KEY),
        CertificateStatus::Inactive,
    )
    .await;
    // A CA with a ROCA key, registered without a verification certificate.
    let weak_ca = client
        .register_ca_certificate()
        .ca_certificate(issuer.issue_ca_for_public_key("weak ca", ROCA_KEY))
        .certificate_mode(CertificateMode::SniOnly)
        .set_as_active(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RegisterCACertificate: {}", DisplayErrorContext(e)))
        .certificate_id()
        .unwrap()
        .to_owned();
    register_ca(&client, &TestCa::new("sound ca"), true).await;

    let (id, out) = run_audit(&client, &[KEY_QUALITY, CA_KEY_QUALITY]).await;
    assert_eq!(check_result(&out, KEY_QUALITY), non_compliant(4, 2));
    assert_eq!(check_result(&out, CA_KEY_QUALITY), non_compliant(2, 1));
    let devices = task_findings(&client, &id, Some(KEY_QUALITY)).await;
    assert_eq!(
        codes_by_device(&devices),
        BTreeMap::from([
            (roca.clone(), ROCA_CODE.to_owned()),
            (debian.clone(), DEBIAN_CODE.to_owned()),
        ])
    );
    for f in &devices {
        assert_finding_shape(f, &id, &out);
        assert_eq!(f.severity(), Some(&AuditFindingSeverity::Critical));
    }
    let cas = task_findings(&client, &id, Some(CA_KEY_QUALITY)).await;
    assert_eq!(cas.len(), 1, "{cas:?}");
    let r = cas[0].non_compliant_resource().unwrap();
    assert_eq!(r.resource_type(), Some(&ResourceType::CaCertificate));
    assert_eq!(r.resource_identifier().unwrap().ca_certificate_id(), Some(weak_ca.as_str()));
    assert_eq!(cas[0].reason_for_non_compliance_code(), Some(ROCA_CODE));

    // Compliant fleet.
    set_certificate_status(&client, &roca, CertificateStatus::Inactive).await;
    set_certificate_status(&client, &debian, CertificateStatus::Revoked).await;
    client
        .update_ca_certificate()
        .certificate_id(&weak_ca)
        .new_status(CaCertificateStatus::Inactive)
        .send()
        .await
        .expect("deactivate CA");
    let (_, out) = run_audit(&client, &[KEY_QUALITY, CA_KEY_QUALITY]).await;
    assert_eq!(check_result(&out, KEY_QUALITY), compliant(2));
    assert_eq!(check_result(&out, CA_KEY_QUALITY), compliant(1));
    server.stop().await;
}

#[tokio::test]
async fn policy_overly_permissive_check() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[PERMISSIVE, MISCONFIG]).await;
    // Broad in its default version 2 (version 1 was narrow).
    create_policy(&client, "broad", &thing_bound_policy()).await;
    let v2 = add_version(&client, "broad", &broad_policy(), true).await;
    assert_eq!(v2, "2");
    create_policy(&client, "thing-bound", &thing_bound_policy()).await;
    // Broad only in a version that is not the default.
    create_policy(&client, "was-broad", &broad_policy()).await;
    add_version(&client, "was-broad", &thing_bound_policy(), true).await;

    let (id, out) = run_audit(&client, &[PERMISSIVE, MISCONFIG]).await;
    assert_eq!(check_result(&out, PERMISSIVE), non_compliant(3, 1));
    assert_eq!(check_result(&out, MISCONFIG), compliant(3));
    let findings = task_findings(&client, &id, None).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_finding_shape(f, &id, &out);
    assert_eq!(f.check_name(), Some(PERMISSIVE));
    assert_eq!(f.severity(), Some(&AuditFindingSeverity::Critical));
    assert_eq!(
        f.reason_for_non_compliance_code(),
        Some("ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS")
    );
    assert!(
        f.reason_for_non_compliance().unwrap().contains("iot:Connect"),
        "{f:?}"
    );
    let r = f.non_compliant_resource().unwrap();
    assert_eq!(r.resource_type(), Some(&ResourceType::IotPolicy));
    let pv = r.resource_identifier().unwrap().policy_version_identifier().expect("policyVersionIdentifier");
    assert_eq!((pv.policy_name(), pv.policy_version_id()), (Some("broad"), Some("2")));

    // Compliant fleet: the narrow version made the default again.
    client
        .set_default_policy_version()
        .policy_name("broad")
        .policy_version_id("1")
        .send()
        .await
        .expect("SetDefaultPolicyVersion");
    let (_, out) = run_audit(&client, &[PERMISSIVE]).await;
    assert_eq!(check_result(&out, PERMISSIVE), compliant(3));
    server.stop().await;
}

#[tokio::test]
async fn policy_potential_misconfiguration_check() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[MISCONFIG, PERMISSIVE]).await;
    create_policy(&client, "building", &building_policy(false)).await;
    create_policy(&client, "device", &thing_bound_policy()).await;
    let (id, out) = run_audit(&client, &[MISCONFIG, PERMISSIVE]).await;
    assert_eq!(check_result(&out, MISCONFIG), non_compliant(2, 1));
    assert_eq!(check_result(&out, PERMISSIVE), compliant(2));
    let findings = task_findings(&client, &id, Some(MISCONFIG)).await;
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_finding_shape(f, &id, &out);
    assert_eq!(f.severity(), Some(&AuditFindingSeverity::Medium));
    assert_eq!(
        f.reason_for_non_compliance_code(),
        Some("POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT")
    );
    assert!(
        f.reason_for_non_compliance()
            .unwrap()
            .contains(&iot_arn("topicfilter/building/control_room/#")),
        "{f:?}"
    );
    let r = f.non_compliant_resource().unwrap();
    assert_eq!(r.resource_type(), Some(&ResourceType::IotPolicy));
    let pv = r.resource_identifier().unwrap().policy_version_identifier().unwrap();
    assert_eq!((pv.policy_name(), pv.policy_version_id()), (Some("building"), Some("1")));

    // The documented correction, as the new default version.
    add_version(&client, "building", &building_policy(true), true).await;
    let (_, out) = run_audit(&client, &[MISCONFIG]).await;
    assert_eq!(check_result(&out, MISCONFIG), compliant(2));
    server.stop().await;
}

#[tokio::test]
async fn logging_disabled_check() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    enable(&a, AUDIT_ROLE, &[LOGGING]).await;
    enable(&b, AUDIT_ROLE_B, &[LOGGING]).await;
    let (id, out) = run_audit(&a, &[LOGGING]).await;
    assert_eq!(check_result(&out, LOGGING), non_compliant(1, 1));
    let findings = task_findings(&a, &id, None).await;
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_finding_shape(f, &id, &out);
    assert_eq!(f.reason_for_non_compliance_code(), Some("LOGGING_DISABLED"));
    assert_eq!(f.severity(), Some(&AuditFindingSeverity::Low));
    let r = f.non_compliant_resource().unwrap();
    assert_eq!(r.resource_type(), Some(&ResourceType::AccountSettings));
    assert_eq!(r.resource_identifier().unwrap().account(), Some(ACCOUNT_A));

    // v2 logging at a level that logs, but all logs disabled: still non-compliant.
    a.set_v2_logging_options()
        .role_arn(LOGGING_ROLE_ARN)
        .default_log_level(LogLevel::Info)
        .disable_all_logs(true)
        .send()
        .await
        .expect("SetV2LoggingOptions");
    let (_, out) = run_audit(&a, &[LOGGING]).await;
    assert_eq!(check_result(&out, LOGGING), non_compliant(1, 1));
    a.set_v2_logging_options()
        .role_arn(LOGGING_ROLE_ARN)
        .default_log_level(LogLevel::Disabled)
        .send()
        .await
        .expect("SetV2LoggingOptions");
    let (_, out) = run_audit(&a, &[LOGGING]).await;
    assert_eq!(check_result(&out, LOGGING), non_compliant(1, 1));
    a.set_v2_logging_options()
        .role_arn(LOGGING_ROLE_ARN)
        .default_log_level(LogLevel::Info)
        .send()
        .await
        .expect("SetV2LoggingOptions");
    let (id, out) = run_audit(&a, &[LOGGING]).await;
    assert_eq!(check_result(&out, LOGGING), compliant(1));
    assert!(task_findings(&a, &id, None).await.is_empty());

    // B is on its own: non-compliant until its v1 options log.
    let (_, out) = run_audit(&b, &[LOGGING]).await;
    assert_eq!(check_result(&out, LOGGING), non_compliant(1, 1));
    b.set_logging_options()
        .logging_options_payload(
            LoggingOptionsPayload::builder()
                .role_arn(LOGGING_ROLE_ARN)
                .log_level(LogLevel::Info)
                .build()
                .expect("payload"),
        )
        .send()
        .await
        .expect("SetLoggingOptions");
    let (_, out) = run_audit(&b, &[LOGGING]).await;
    assert_eq!(check_result(&out, LOGGING), compliant(1));
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Findings

#[tokio::test]
async fn list_and_describe_findings() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    enable(&a, AUDIT_ROLE, &[LOGGING, EXPIRING, PERMISSIVE]).await;
    let approaching = register(&a, &self_signed_valid("approaching", -1, 10), CertificateStatus::Active).await;
    let past = register(&a, &self_signed_valid("past", -30, -1), CertificateStatus::Active).await;
    create_policy(&a, "broad", &broad_policy()).await;
    let window_start = now_secs() - 5;
    let checks = [LOGGING, EXPIRING, PERMISSIVE];
    let (task, out) = run_audit(&a, &checks).await;

    let all = task_findings(&a, &task, None).await;
    assert_eq!(all.len(), 4, "{all:?}");
    let ids: BTreeSet<String> = all.iter().map(|f| f.finding_id().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 4, "distinct finding ids");
    for f in &all {
        assert_finding_shape(f, &task, &out);
        // DescribeAuditFinding returns the same finding.
        let d = a
            .describe_audit_finding()
            .finding_id(f.finding_id().unwrap())
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeAuditFinding: {}", DisplayErrorContext(e)));
        assert_eq!(d.finding(), Some(f));
    }
    let per_check: BTreeMap<&str, usize> = checks
        .iter()
        .map(|c| (*c, all.iter().filter(|f| f.check_name() == Some(c)).count()))
        .collect();
    assert_eq!(per_check, BTreeMap::from([(LOGGING, 1), (EXPIRING, 2), (PERMISSIVE, 1)]));

    // By check name.
    let expiring = task_findings(&a, &task, Some(EXPIRING)).await;
    assert_eq!(
        codes_by_device(&expiring).keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([approaching.clone(), past.clone()])
    );
    // By resource.
    let by_resource = a
        .list_audit_findings()
        .task_id(&task)
        .resource_identifier(ResourceIdentifier::builder().device_certificate_id(&approaching).build())
        .send()
        .await
        .expect("by resource");
    assert_eq!(
        codes_by_device(by_resource.findings()),
        BTreeMap::from([(approaching.clone(), "CERTIFICATE_APPROACHING_EXPIRATION".to_owned())])
    );
    let by_policy = a
        .list_audit_findings()
        .task_id(&task)
        .resource_identifier(
            ResourceIdentifier::builder()
                .policy_version_identifier(
                    PolicyVersionIdentifier::builder()
                        .policy_name("broad")
                        .policy_version_id("1")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("by policy");
    assert_eq!(by_policy.findings().len(), 1);
    assert_eq!(by_policy.findings()[0].check_name(), Some(PERMISSIVE));

    // By time, without a task.
    let by_time = |from: i64, to: i64| {
        a.list_audit_findings()
            .start_time(DateTime::from_secs(from))
            .end_time(DateTime::from_secs(to))
            .send()
    };
    let found = by_time(window_start, now_secs() + 5).await.expect("by time");
    assert_eq!(
        found.findings().iter().map(|f| f.finding_id().unwrap().to_owned()).collect::<BTreeSet<_>>(),
        ids
    );
    assert!(by_time(now_secs() + 600, now_secs() + 1200).await.expect("later").findings().is_empty());

    // Exactly one way of choosing.
    let (f, _) = expect_failure(
        a.list_audit_findings()
            .task_id(&task)
            .start_time(DateTime::from_secs(window_start))
            .end_time(DateTime::from_secs(now_secs() + 5))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(a.list_audit_findings().send().await);
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(
        a.list_audit_findings()
            .start_time(DateTime::from_secs(window_start))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);

    // One per page.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    let mut first_token = None;
    loop {
        let page = a
            .list_audit_findings()
            .task_id(&task)
            .max_results(1)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("page: {}", DisplayErrorContext(e)));
        assert!(page.findings().len() <= 1);
        paged.extend(page.findings().iter().cloned());
        match page.next_token() {
            Some(t) => {
                first_token.get_or_insert_with(|| t.to_owned());
                token = Some(t.to_owned());
            }
            None => break,
        }
        assert!(paged.len() <= 4, "paging does not end");
    }
    assert_eq!(paged, all, "the same findings in the same order");
    let (f, _) = expect_failure(
        a.list_audit_findings()
            .task_id(&task)
            .next_token(tamper(first_token.as_deref().expect("several pages")))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["nextToken"]);

    let (f, _) = expect_failure(a.describe_audit_finding().finding_id("0123456789abcdef").send().await);
    f.assert("ResourceNotFoundException", 404);

    // A second audit makes findings of its own.
    let (task2, _) = run_audit(&a, &checks).await;
    let second = task_findings(&a, &task2, None).await;
    assert_eq!(second.len(), 4);
    assert!(second.iter().all(|f| !ids.contains(f.finding_id().unwrap())));
    assert_eq!(task_findings(&a, &task, None).await, all, "the first task's are unchanged");

    // Account B sees none of it.
    for f in &all {
        let (fail, _) = expect_failure(
            b.describe_audit_finding().finding_id(f.finding_id().unwrap()).send().await,
        );
        fail.assert("ResourceNotFoundException", 404);
    }
    assert!(task_findings(&b, &task, None).await.is_empty());
    let b_found = b
        .list_audit_findings()
        .start_time(DateTime::from_secs(window_start))
        .end_time(DateTime::from_secs(now_secs() + 5))
        .send()
        .await
        .expect("B by time");
    assert!(b_found.findings().is_empty());
    server.stop().await;
}

}
