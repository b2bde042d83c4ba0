//! Helpers for the audit mitigation actions task tests (`mitigation_tasks.rs`,
//! `mitigation_crash.rs`, `mitigation_multi_node.rs`): audits to get findings from,
//! starting and watching tasks, their statistics and executions, registry reads that
//! show what the actions did, and large fleets as JSON Lines for `palisade fleet import`
//! or `POST /palisade/import`.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_iot::error::{DisplayErrorContext, SdkError};
use aws_sdk_iot::operation::describe_audit_mitigation_actions_task::DescribeAuditMitigationActionsTaskOutput;
use aws_sdk_iot::operation::start_audit_mitigation_actions_task::{
    StartAuditMitigationActionsTaskError, StartAuditMitigationActionsTaskOutput,
};
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditFinding, AuditMitigationActionExecutionMetadata,
    AuditMitigationActionsExecutionStatus, AuditMitigationActionsTaskStatus,
    AuditMitigationActionsTaskTarget, AuditTaskStatus, CertificateStatus,
};
use aws_sdk_iot::Client;
use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use serde_json::json;

pub const AGE: &str = "DEVICE_CERTIFICATE_AGE_CHECK";
pub const EXPIRING: &str = "DEVICE_CERTIFICATE_EXPIRING_CHECK";
pub const CA_EXPIRING: &str = "CA_CERTIFICATE_EXPIRING_CHECK";
pub const PERMISSIVE: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
pub const MISCONFIG: &str = "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK";
pub const LOGGING: &str = "LOGGING_DISABLED_CHECK";
pub const AUDIT_ROLE: &str = "arn:aws:iam::111122223333:role/palisade-e2e-audit";

/// The document REPLACE_DEFAULT_POLICY_VERSION writes (a policy that grants nothing).
pub const BLANK_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

/// `iot:*` on `*`: an IOT_POLICY_OVERLY_PERMISSIVE_CHECK finding.
pub const BROAD_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;

/// A policy no check objects to.
pub fn narrow_policy(account: &str, n: usize) -> String {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect",
         "Resource": format!("arn:aws:iot:us-east-1:{account}:client/${{iot:Connection.Thing.ThingName}}")},
        {"Effect": "Allow", "Action": "iot:Publish",
         "Resource": format!("arn:aws:iot:us-east-1:{account}:topic/narrow/{n}/${{iot:Connection.Thing.ThingName}}")},
    ]})
    .to_string()
}

/// A client request token no other request of the test run uses.
pub fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "tok-{:08x}-{}",
        rand::random::<u32>(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn millis(t: Option<&DateTime>) -> i64 {
    t.expect("timestamp")
        .to_millis()
        .expect("timestamp in range")
}

// ------------------------------------------------------------------------------------
// Audits

/// Enables `checks` with [`AUDIT_ROLE`].
pub async fn enable_checks(client: &Client, checks: &[&str]) {
    let mut req = client
        .update_account_audit_configuration()
        .role_arn(AUDIT_ROLE);
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

/// Starts an on-demand audit of `checks`; its id.
pub async fn start_audit(client: &Client, checks: &[&str]) -> String {
    client
        .start_on_demand_audit_task()
        .set_target_check_names(Some(checks.iter().map(|c| c.to_string()).collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartOnDemandAuditTask: {}", DisplayErrorContext(e)))
        .task_id()
        .expect("taskId")
        .to_owned()
}

/// Runs an audit of `checks` to completion (at most `within`); its id.
pub async fn run_audit_within(client: &Client, checks: &[&str], within: Duration) -> String {
    let id = start_audit(client, checks).await;
    let deadline = Instant::now() + within;
    loop {
        let out = client
            .describe_audit_task()
            .task_id(&id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeAuditTask: {}", DisplayErrorContext(e)));
        if out.task_status() != Some(&AuditTaskStatus::InProgress) {
            assert_eq!(
                out.task_status(),
                Some(&AuditTaskStatus::Completed),
                "{out:?}"
            );
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "audit {id} still running: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs an audit of `checks` to completion; its id.
pub async fn run_audit(client: &Client, checks: &[&str]) -> String {
    run_audit_within(client, checks, Duration::from_secs(30)).await
}

/// Every finding of an audit (of one check if given), in listing order.
pub async fn audit_findings(
    client: &Client,
    audit: &str,
    check: Option<&str>,
) -> Vec<AuditFinding> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_audit_findings()
            .task_id(audit)
            .set_check_name(check.map(str::to_owned))
            .max_results(250)
            .set_next_token(next.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListAuditFindings: {}", DisplayErrorContext(e)));
        out.extend(page.findings().iter().cloned());
        match page.next_token() {
            Some(t) => next = Some(t.to_owned()),
            None => return out,
        }
    }
}

pub fn finding_id(f: &AuditFinding) -> String {
    f.finding_id().expect("findingId").to_owned()
}

/// The device certificate a finding is about, if it is about one.
pub fn device_cert_of(f: &AuditFinding) -> Option<String> {
    f.non_compliant_resource()
        .and_then(|r| r.resource_identifier())
        .and_then(|i| i.device_certificate_id())
        .map(str::to_owned)
}

/// Finding id per device certificate id, for the findings about device certificates.
pub fn findings_by_cert(findings: &[AuditFinding]) -> BTreeMap<String, String> {
    findings
        .iter()
        .filter_map(|f| device_cert_of(f).map(|c| (c, finding_id(f))))
        .collect()
}

// ------------------------------------------------------------------------------------
// Tasks

pub fn audit_target(audit: &str) -> AuditMitigationActionsTaskTarget {
    AuditMitigationActionsTaskTarget::builder()
        .audit_task_id(audit)
        .build()
}

pub fn findings_target(ids: &[String]) -> AuditMitigationActionsTaskTarget {
    AuditMitigationActionsTaskTarget::builder()
        .set_finding_ids(Some(ids.to_vec()))
        .build()
}

/// An audit target restricted to the given checks' reason codes.
pub fn filtered_target(
    audit: &str,
    filter: &[(&str, &[&str])],
) -> AuditMitigationActionsTaskTarget {
    let mut t = AuditMitigationActionsTaskTarget::builder().audit_task_id(audit);
    for (check, codes) in filter {
        t = t.audit_check_to_reason_code_filter(
            *check,
            codes.iter().map(|c| c.to_string()).collect(),
        );
    }
    t.build()
}

pub fn mapping(m: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
    m.iter()
        .map(|(check, actions)| {
            (
                check.to_string(),
                actions.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect()
}

/// StartAuditMitigationActionsTask with a given token, the SDK's result as is.
pub async fn try_start_task_with_token(
    client: &Client,
    task_id: &str,
    target: AuditMitigationActionsTaskTarget,
    actions: &[(&str, &[&str])],
    token: &str,
) -> Result<StartAuditMitigationActionsTaskOutput, SdkError<StartAuditMitigationActionsTaskError>> {
    client
        .start_audit_mitigation_actions_task()
        .task_id(task_id)
        .target(target)
        .set_audit_check_to_actions_mapping(Some(mapping(actions)))
        .client_request_token(token)
        .send()
        .await
}

/// StartAuditMitigationActionsTask with a fresh token, the SDK's result as is.
pub async fn try_start_task(
    client: &Client,
    task_id: &str,
    target: AuditMitigationActionsTaskTarget,
    actions: &[(&str, &[&str])],
) -> Result<StartAuditMitigationActionsTaskOutput, SdkError<StartAuditMitigationActionsTaskError>> {
    try_start_task_with_token(client, task_id, target, actions, &token()).await
}

/// Starts a task, panicking on failure; checks the answer names it.
pub async fn start_task(
    client: &Client,
    task_id: &str,
    target: AuditMitigationActionsTaskTarget,
    actions: &[(&str, &[&str])],
) {
    let out = try_start_task(client, task_id, target, actions)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "StartAuditMitigationActionsTask {task_id}: {}",
                DisplayErrorContext(e)
            )
        });
    assert_eq!(out.task_id(), Some(task_id));
}

pub async fn describe_task(
    client: &Client,
    task_id: &str,
) -> DescribeAuditMitigationActionsTaskOutput {
    client
        .describe_audit_mitigation_actions_task()
        .task_id(task_id)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "DescribeAuditMitigationActionsTask {task_id}: {}",
                DisplayErrorContext(e)
            )
        })
}

/// Polls until the task is no longer IN_PROGRESS (at most `within`).
pub async fn wait_task_within(
    client: &Client,
    task_id: &str,
    within: Duration,
) -> DescribeAuditMitigationActionsTaskOutput {
    let deadline = Instant::now() + within;
    loop {
        let out = describe_task(client, task_id).await;
        if out.task_status() != Some(&AuditMitigationActionsTaskStatus::InProgress) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "mitigation task {task_id} still IN_PROGRESS after {within:?}: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the task is no longer IN_PROGRESS (at most 30 s).
pub async fn wait_task(client: &Client, task_id: &str) -> DescribeAuditMitigationActionsTaskOutput {
    wait_task_within(client, task_id, Duration::from_secs(30)).await
}

/// One check's taskStatistics: (total, succeeded, failed, skipped, canceled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckStats {
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub canceled: i64,
}

/// `CheckStats { total, succeeded, failed, skipped, canceled }`.
pub fn st(total: i64, succeeded: i64, failed: i64, skipped: i64, canceled: i64) -> CheckStats {
    CheckStats {
        total,
        succeeded,
        failed,
        skipped,
        canceled,
    }
}

/// taskStatistics by check name; every count must be present.
pub fn stats(out: &DescribeAuditMitigationActionsTaskOutput) -> BTreeMap<String, CheckStats> {
    out.task_statistics()
        .expect("taskStatistics")
        .iter()
        .map(|(check, s)| {
            let n = |v: Option<i64>, what: &str| {
                v.unwrap_or_else(|| panic!("{check}: no {what}: {s:?}"))
            };
            (
                check.clone(),
                CheckStats {
                    total: n(s.total_findings_count(), "totalFindingsCount"),
                    succeeded: n(s.succeeded_findings_count(), "succeededFindingsCount"),
                    failed: n(s.failed_findings_count(), "failedFindingsCount"),
                    skipped: n(s.skipped_findings_count(), "skippedFindingsCount"),
                    canceled: n(s.canceled_findings_count(), "canceledFindingsCount"),
                },
            )
        })
        .collect()
}

/// `[(check, stats)]` as a map, for comparing with [`stats`].
pub fn stats_of(items: &[(&str, CheckStats)]) -> BTreeMap<String, CheckStats> {
    items.iter().map(|(c, s)| (c.to_string(), *s)).collect()
}

/// The invariants every description satisfies: no negative count, never more processed
/// than there are; a finished task has accounted for every finding and has an end time,
/// a running one has none.
#[track_caller]
pub fn assert_task_consistent(out: &DescribeAuditMitigationActionsTaskOutput) {
    let status = out.task_status().expect("taskStatus");
    assert!(out.start_time().is_some(), "no startTime: {out:?}");
    let running = status == &AuditMitigationActionsTaskStatus::InProgress;
    assert_eq!(
        out.end_time().is_none(),
        running,
        "endTime is set exactly when the task has ended: {out:?}"
    );
    if let Some(end) = out.end_time() {
        assert!(
            millis(Some(end)) >= millis(out.start_time()),
            "ends before it starts: {out:?}"
        );
    }
    for (check, s) in stats(out) {
        for v in [s.total, s.succeeded, s.failed, s.skipped, s.canceled] {
            assert!(v >= 0, "{check}: negative count {s:?}");
        }
        let accounted = s.succeeded + s.failed + s.skipped + s.canceled;
        if running {
            assert!(accounted <= s.total, "{check}: {s:?}");
            assert_eq!(s.canceled, 0, "{check}: canceled while running {s:?}");
        } else {
            assert_eq!(
                accounted, s.total,
                "{check}: total = succeeded + failed + skipped + canceled ({status:?}): {s:?}"
            );
        }
        if status == &AuditMitigationActionsTaskStatus::Completed {
            assert_eq!(
                (s.failed, s.canceled),
                (0, 0),
                "{check} of a COMPLETED task: {s:?}"
            );
        }
    }
    let failed: i64 = stats(out).values().map(|s| s.failed).sum();
    match status {
        AuditMitigationActionsTaskStatus::Failed => {
            assert!(failed > 0, "FAILED without a failed finding: {out:?}")
        }
        AuditMitigationActionsTaskStatus::Completed => {}
        _ => {}
    }
}

/// One execution as (actionName, status, errorCode).
pub type Exec = (
    String,
    AuditMitigationActionsExecutionStatus,
    Option<String>,
);

pub fn exec_summary(e: &AuditMitigationActionExecutionMetadata) -> Exec {
    (
        e.action_name().expect("actionName").to_owned(),
        e.status().expect("status").clone(),
        e.error_code().map(str::to_owned),
    )
}

/// `(action, status, errorCode)` as an [`Exec`].
pub fn ex(action: &str, status: AuditMitigationActionsExecutionStatus, code: Option<&str>) -> Exec {
    (action.to_owned(), status, code.map(str::to_owned))
}

/// Every execution of a finding in a task (with the status filter if given), following
/// nextToken with pages of `page` (the server's default if `None`).
pub async fn executions_paged(
    client: &Client,
    task_id: &str,
    finding: &str,
    status: Option<AuditMitigationActionsExecutionStatus>,
    page: Option<i32>,
) -> Vec<AuditMitigationActionExecutionMetadata> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..1000 {
        let resp = client
            .list_audit_mitigation_actions_executions()
            .task_id(task_id)
            .finding_id(finding)
            .set_action_status(status.clone())
            .set_max_results(page)
            .set_next_token(next.take())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "ListAuditMitigationActionsExecutions {task_id} {finding}: {}",
                    DisplayErrorContext(e)
                )
            });
        if let Some(p) = page {
            assert!(resp.actions_executions().len() <= p as usize, "{resp:?}");
        }
        out.extend(resp.actions_executions().iter().cloned());
        match resp.next_token() {
            Some(t) => next = Some(t.to_owned()),
            None => return out,
        }
    }
    panic!("ListAuditMitigationActionsExecutions paging does not end");
}

/// Every execution of a finding in a task, as [`Exec`]s in listing order.
pub async fn executions(client: &Client, task_id: &str, finding: &str) -> Vec<Exec> {
    executions_paged(client, task_id, finding, None, None)
        .await
        .iter()
        .map(exec_summary)
        .collect()
}

/// Every task ListAuditMitigationActionsTasks gives for the window and filters, following
/// nextToken with pages of `page`: (taskId, status) in listing order.
pub async fn list_tasks(
    client: &Client,
    from_secs: i64,
    to_secs: i64,
    audit: Option<&str>,
    finding: Option<&str>,
    status: Option<AuditMitigationActionsTaskStatus>,
    page: Option<i32>,
) -> Vec<(String, AuditMitigationActionsTaskStatus)> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..1000 {
        let resp = client
            .list_audit_mitigation_actions_tasks()
            .start_time(DateTime::from_secs(from_secs))
            .end_time(DateTime::from_secs(to_secs))
            .set_audit_task_id(audit.map(str::to_owned))
            .set_finding_id(finding.map(str::to_owned))
            .set_task_status(status.clone())
            .set_max_results(page)
            .set_next_token(next.take())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "ListAuditMitigationActionsTasks: {}",
                    DisplayErrorContext(e)
                )
            });
        if let Some(p) = page {
            assert!(resp.tasks().len() <= p as usize, "{resp:?}");
        }
        for t in resp.tasks() {
            assert!(t.start_time().is_some(), "no startTime: {t:?}");
            out.push((
                t.task_id().expect("taskId").to_owned(),
                t.task_status().expect("taskStatus").clone(),
            ));
        }
        match resp.next_token() {
            Some(t) => next = Some(t.to_owned()),
            None => return out,
        }
    }
    panic!("ListAuditMitigationActionsTasks paging does not end");
}

/// Every task of the last day and the next hour, unfiltered.
pub async fn all_tasks(client: &Client) -> Vec<(String, AuditMitigationActionsTaskStatus)> {
    let now = now_secs();
    list_tasks(client, now - 86_400, now + 3_600, None, None, None, None).await
}

// ------------------------------------------------------------------------------------
// The registry

pub async fn cert_status(client: &Client, id: &str) -> CertificateStatus {
    client
        .describe_certificate()
        .certificate_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeCertificate {id}: {}", DisplayErrorContext(e)))
        .certificate_description()
        .and_then(|d| d.status())
        .expect("status")
        .clone()
}

/// Every certificate of the account with its status (ListCertificates, 250 a page).
pub async fn all_cert_statuses(client: &Client) -> BTreeMap<String, CertificateStatus> {
    let mut out = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_certificates()
            .page_size(250)
            .set_marker(marker.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListCertificates: {}", DisplayErrorContext(e)));
        for c in page.certificates() {
            out.insert(
                c.certificate_id().expect("certificateId").to_owned(),
                c.status().expect("status").clone(),
            );
        }
        match page.next_marker() {
            Some(m) => marker = Some(m.to_owned()),
            None => return out,
        }
    }
}

/// The names of the groups a thing is in, sorted.
pub async fn groups_of(client: &Client, thing: &str) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_thing_groups_for_thing()
        .thing_name(thing)
        .max_results(250)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ListThingGroupsForThing {thing}: {}",
                DisplayErrorContext(e)
            )
        })
        .thing_groups()
        .iter()
        .map(|g| g.group_name().expect("groupName").to_owned())
        .collect();
    names.sort();
    names
}

/// A policy's versions as (versionId, isDefault), by version number.
pub async fn policy_versions(client: &Client, policy: &str) -> Vec<(String, bool)> {
    let mut versions: Vec<(String, bool)> = client
        .list_policy_versions()
        .policy_name(policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListPolicyVersions {policy}: {}", DisplayErrorContext(e)))
        .policy_versions()
        .iter()
        .map(|v| {
            (
                v.version_id().expect("versionId").to_owned(),
                v.is_default_version(),
            )
        })
        .collect();
    versions.sort_by_key(|(v, _)| v.parse::<u64>().unwrap_or(u64::MAX));
    versions
}

/// The default version of a policy: (versionId, document parsed).
pub async fn default_policy(client: &Client, policy: &str) -> (String, serde_json::Value) {
    let out = client
        .get_policy()
        .policy_name(policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetPolicy {policy}: {}", DisplayErrorContext(e)));
    let doc = out.policy_document().expect("policyDocument");
    (
        out.default_version_id()
            .expect("defaultVersionId")
            .to_owned(),
        serde_json::from_str(doc).unwrap_or_else(|e| panic!("policy document {doc:?}: {e}")),
    )
}

// ------------------------------------------------------------------------------------
// Large fleets

/// A fleet for the big tests: `things` things, each with its own ACTIVE device
/// certificate expiring in 10 days (a DEVICE_CERTIFICATE_EXPIRING_CHECK finding each),
/// named `{prefix}-thing-{i:06}`; and `broad` policies `{prefix}-broad-{i:05}` with
/// `iot:*` on `*` (an IOT_POLICY_OVERLY_PERMISSIVE_CHECK finding each), attached to
/// the certificates round-robin. One key signs every certificate (each has its own
/// serial and subject, so its own id); signing runs on two threads.
pub fn expiring_fleet_jsonl(prefix: &str, things: usize, broad: usize) -> String {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{prefix} issuer"));
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, ca_key);
    let device_key = KeyPair::generate().expect("device key");
    let device = |i: usize| {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{prefix}-thing-{i:06}"));
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&(i as u64 + 1).to_be_bytes()));
        crate::pki::set_validity(&mut params, -86_400, 10 * 86_400);
        let pem = params
            .signed_by(&device_key, &issuer)
            .expect("device certificate")
            .pem();
        let mut line = json!({"type": "thing", "name": format!("{prefix}-thing-{i:06}"),
               "certificatePem": pem, "certificateStatus": "ACTIVE"});
        if broad > 0 {
            line["certificatePolicies"] = json!([format!("{prefix}-broad-{:05}", i % broad)]);
        }
        line.to_string()
    };
    let halves: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|half| {
                let device = &device;
                s.spawn(move || (half..things).step_by(2).map(device).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread"))
            .collect()
    });
    let mut out = String::new();
    for i in 0..broad {
        let line = json!({"type": "policy", "name": format!("{prefix}-broad-{i:05}"),
                          "document": serde_json::from_str::<serde_json::Value>(BROAD_POLICY).unwrap()});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    for line in halves.iter().flatten() {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Reads every message on a moto SQS queue (deleting them) until it stays empty for
/// `quiet` (or 30 s have passed, should something keep publishing), and returns the `findingId` of each (PUBLISH_FINDING_TO_SNS messages), in
/// one Python process: far quicker than one `Moto::receive` per ten messages.
pub async fn drain_finding_ids(
    moto: &super::moto::Moto,
    queue_url: &str,
    quiet: Duration,
) -> Vec<String> {
    const DRAIN: &str = r#"
import json, sys, time
import boto3
endpoint, url, quiet = sys.argv[1], sys.argv[2], float(sys.argv[3])
sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
out, last, begin = [], time.time(), time.time()
while time.time() - last < quiet and time.time() - begin < 30:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    if not got:
        time.sleep(0.1)
        continue
    last = time.time()
    for m in got:
        out.append(json.loads(m["Body"])["findingId"])
    sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
print(json.dumps(out))
"#;
    let python = super::moto::venv().join("bin").join("python");
    let out = tokio::process::Command::new(python)
        .args([
            "-c",
            DRAIN,
            &moto.endpoint,
            queue_url,
            &quiet.as_secs_f64().to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running the drain script");
    assert!(
        out.status.success(),
        "draining {queue_url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("finding ids as JSON")
}
