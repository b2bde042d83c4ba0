//! Audit mitigation actions tasks through the real `aws-sdk-iot` client: the whole flow
//! from registry to audit to task to executions to the registry's new state, for every
//! action type; idempotency; every rejection of StartAuditMitigationActionsTask; the
//! limit of ten in progress; cancel (before and during the work); suppressed and
//! filtered findings; failing actions (order, SKIPPED, rule violations); the snapshot of
//! the action definitions; the task and execution listings; retention.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::mitigation::*;
use crate::common::moto::Moto;
use crate::common::*;
use crate::pki::*;
use crate::revocation::{register_device, FileServer, INTERMEDIATE};
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::{
    AuditFinding, AuditMitigationActionsExecutionStatus as Ex,
    AuditMitigationActionsTaskStatus as Status, AuditMitigationActionsTaskTarget,
    CaCertificateStatus, CertificateStatus, LogLevel, MitigationAction, MitigationActionParams,
    MitigationActionType, PublishFindingToSnsParams, ResourceIdentifier, ResourceType,
};
use aws_sdk_iot::Client;
use palisade_engine::AuditSettings;
use serde_json::Value;

const APPROACHING: &str = "CERTIFICATE_APPROACHING_EXPIRATION";
const PAST: &str = "CERTIFICATE_PAST_EXPIRATION";

/// A start that must be refused: what it tests, the target, the mapping, and what the
/// message must mention.
type Rejection = (
    &'static str,
    AuditMitigationActionsTaskTarget,
    Vec<(&'static str, Vec<&'static str>)>,
    Vec<&'static str>,
);

// ------------------------------------------------------------------------------------
// Registry fixtures

/// Registers a certificate without a CA: (id, arn).
async fn register_cert(client: &Client, pem: &str, status: CertificateStatus) -> (String, String) {
    let out = client
        .register_certificate_without_ca()
        .certificate_pem(pem)
        .status(status)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RegisterCertificateWithoutCA: {}", DisplayErrorContext(e)));
    (
        out.certificate_id().expect("certificateId").to_owned(),
        out.certificate_arn().expect("certificateArn").to_owned(),
    )
}

/// An ACTIVE certificate expiring in 10 days (CERTIFICATE_APPROACHING_EXPIRATION).
async fn expiring_cert(client: &Client, name: &str) -> (String, String) {
    register_cert(
        client,
        &self_signed_valid(name, -1, 10),
        CertificateStatus::Active,
    )
    .await
}

/// An ACTIVE certificate that expired yesterday (CERTIFICATE_PAST_EXPIRATION).
async fn expired_cert(client: &Client, name: &str) -> (String, String) {
    register_cert(
        client,
        &self_signed_valid(name, -30, -1),
        CertificateStatus::Active,
    )
    .await
}

/// An ACTIVE certificate no check objects to.
async fn sound_cert(client: &Client, name: &str) -> (String, String) {
    register_cert(
        client,
        &self_signed_valid(name, -1, 400),
        CertificateStatus::Active,
    )
    .await
}

/// Creates `thing` and attaches it to the certificate `arn`.
async fn thing(client: &Client, name: &str, arn: &str) {
    client
        .create_thing()
        .thing_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateThing {name}: {}", DisplayErrorContext(e)));
    client
        .attach_thing_principal()
        .thing_name(name)
        .principal(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AttachThingPrincipal {name}: {}", DisplayErrorContext(e)));
}

async fn group(client: &Client, name: &str, parent: Option<&str>) {
    client
        .create_thing_group()
        .thing_group_name(name)
        .set_parent_group_name(parent.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateThingGroup {name}: {}", DisplayErrorContext(e)));
}

async fn add_to_group(client: &Client, group: &str, thing: &str) {
    client
        .add_thing_to_thing_group()
        .thing_group_name(group)
        .thing_name(thing)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "AddThingToThingGroup {group} {thing}: {}",
                DisplayErrorContext(e)
            )
        });
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

async fn add_policy_version(client: &Client, name: &str, document: &str, default: bool) {
    client
        .create_policy_version()
        .policy_name(name)
        .policy_document(document)
        .set_as_default(default)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreatePolicyVersion {name}: {}", DisplayErrorContext(e)));
}

async fn set_cert_status(client: &Client, id: &str, status: CertificateStatus) {
    client
        .update_certificate()
        .certificate_id(id)
        .new_status(status)
        .send()
        .await
        .unwrap_or_else(|e| panic!("UpdateCertificate {id}: {}", DisplayErrorContext(e)));
}

async fn ca_status(client: &Client, id: &str) -> CaCertificateStatus {
    client
        .describe_ca_certificate()
        .certificate_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeCACertificate {id}: {}", DisplayErrorContext(e)))
        .certificate_description()
        .and_then(|d| d.status())
        .expect("status")
        .clone()
}

// ------------------------------------------------------------------------------------
// Actions

fn params(t: MitigationActionType) -> MitigationActionParams {
    params_for(&t)
}

fn groups_params(names: &[&str]) -> MitigationActionParams {
    MitigationActionParams::builder()
        .add_things_to_thing_group_params(thing_groups(names, false))
        .build()
}

fn logging_params(level: LogLevel) -> MitigationActionParams {
    MitigationActionParams::builder()
        .enable_io_t_logging_params(logging(level))
        .build()
}

fn publish_params(topic: &str) -> MitigationActionParams {
    MitigationActionParams::builder()
        .publish_finding_to_sns_params(
            PublishFindingToSnsParams::builder()
                .topic_arn(topic)
                .build()
                .expect("params"),
        )
        .build()
}

/// Creates the action `deactivate` (UPDATE_DEVICE_CERTIFICATE).
async fn deactivate_action(client: &Client) {
    create_action(
        client,
        "deactivate",
        params(MitigationActionType::UpdateDeviceCertificate),
    )
    .await;
}

// ------------------------------------------------------------------------------------
// Findings and executions

/// The one finding of `check` in the audit.
async fn only_finding(client: &Client, audit: &str, check: &str) -> AuditFinding {
    let mut found = audit_findings(client, audit, Some(check)).await;
    assert_eq!(found.len(), 1, "{check}: {found:?}");
    found.remove(0)
}

/// The executions of a finding, checking each one's members against the task and the
/// finding: ids, the action ids of the snapshot, times, and errorCode/message exactly on
/// FAILED ones.
async fn checked_executions(
    client: &Client,
    task_id: &str,
    finding: &str,
    task: &aws_sdk_iot::operation::describe_audit_mitigation_actions_task::DescribeAuditMitigationActionsTaskOutput,
) -> Vec<Exec> {
    let all = executions_paged(client, task_id, finding, None, None).await;
    let ids: BTreeMap<&str, &str> = task
        .actions_definition()
        .iter()
        .map(|a| (a.name().expect("name"), a.id().expect("id")))
        .collect();
    for e in &all {
        assert_eq!(e.task_id(), Some(task_id), "{e:?}");
        assert_eq!(e.finding_id(), Some(finding), "{e:?}");
        let name = e.action_name().expect("actionName");
        assert_eq!(
            e.action_id(),
            ids.get(name).copied(),
            "actionId of {name}: {e:?}"
        );
        let status = e.status().expect("status");
        match status {
            Ex::Completed | Ex::Failed => {
                let start = millis(e.start_time());
                let end = millis(e.end_time());
                assert!(start <= end, "{e:?}");
                assert!(start >= millis(task.start_time()) - 1000, "{e:?} {task:?}");
                if let Some(task_end) = task.end_time() {
                    assert!(end <= millis(Some(task_end)) + 1000, "{e:?} {task:?}");
                }
            }
            Ex::Pending | Ex::Canceled => {
                assert_eq!(e.end_time(), None, "{e:?}");
            }
            _ => {}
        }
        if status == &Ex::Failed {
            assert!(e.error_code().is_some_and(|c| !c.is_empty()), "{e:?}");
            assert!(e.message().is_some_and(|m| !m.is_empty()), "{e:?}");
        } else {
            assert_eq!(e.error_code(), None, "{e:?}");
        }
    }
    all.iter().map(exec_summary).collect()
}

fn completed(action: &str) -> Exec {
    ex(action, Ex::Completed, None)
}

fn skipped(action: &str) -> Exec {
    ex(action, Ex::Skipped, None)
}

fn failed(action: &str, code: &str) -> Exec {
    ex(action, Ex::Failed, Some(code))
}

/// The actionsDefinition of a description, by name.
fn definitions(
    out: &aws_sdk_iot::operation::describe_audit_mitigation_actions_task::DescribeAuditMitigationActionsTaskOutput,
) -> BTreeMap<String, MitigationAction> {
    out.actions_definition()
        .iter()
        .map(|a| (a.name().expect("name").to_owned(), a.clone()))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// JSON Lines for `POST /palisade/import`.
fn import_request(body: &str) -> RawRequest {
    let mut req =
        RawRequest::new("POST", "/palisade/import").header("content-type", "application/x-ndjson");
    req.body = body.as_bytes().to_vec();
    req
}

/// The device certificate ids ListRelatedResourcesForAuditFinding lists for a finding,
/// in its order (pages of 250).
async fn related_certificates(client: &Client, finding: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_related_resources_for_audit_finding()
            .finding_id(finding)
            .max_results(250)
            .set_next_token(next.take())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "ListRelatedResourcesForAuditFinding: {}",
                    DisplayErrorContext(e)
                )
            });
        for r in page.related_resources() {
            assert_eq!(
                r.resource_type(),
                Some(&ResourceType::DeviceCertificate),
                "{r:?}"
            );
            let id = r
                .resource_identifier()
                .and_then(|i| i.device_certificate_id());
            out.push(id.expect("deviceCertificateId").to_owned());
        }
        match page.next_token() {
            Some(t) => next = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// A registered intermediate CA revoked by its (unregistered) root, whose CRL and
/// certificate `files` serves: its findings of INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_
/// CERTIFICATES_CHECK name it, with the device certificates it signed as related
/// resources.
async fn revoked_intermediate(client: &Client, files: &FileServer, name: &str) -> TestCa {
    let root = TestCa::new(&format!("{name} root"));
    let slug = name.to_lowercase().replace(' ', "-");
    let (crl, root_der) = (format!("/{slug}-root.crl"), format!("/{slug}-root.der"));
    let revoked = root.intermediate(name, Some(&files.url(&crl)), Some(&files.url(&root_der)));
    register_ca(client, &revoked, true).await;
    files.put(&root_der, root.der.clone());
    files.put(&crl, root.crl(&[&revoked.pem], 1, -60, 3600));
    revoked
}

/// The one execution of a finding in a task, whole (for its message).
async fn only_execution(
    client: &Client,
    task_id: &str,
    finding: &str,
) -> aws_sdk_iot::types::AuditMitigationActionExecutionMetadata {
    let mut all = executions_paged(client, task_id, finding, None, None).await;
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// Every message on the queue until `n` arrived (or 30 s passed).
async fn receive_n(moto: &Moto, queue_url: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        for body in moto.receive(queue_url, Duration::from_secs(5)).await {
            out.push(
                serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("message {body:?} is not JSON: {e}")),
            );
        }
    }
    out
}

per_engine! {

// ------------------------------------------------------------------------------------
// The actions, applied for real

#[tokio::test]
async fn device_certificate_actions_change_the_registry() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING, LOGGING]).await;
    let (c1, arn1) = expiring_cert(&c, "dev-1").await;
    let (c2, arn2) = expiring_cert(&c, "dev-2").await;
    let (c3, _) = expiring_cert(&c, "dev-3").await;
    let (ok, ok_arn) = sound_cert(&c, "dev-ok").await;
    thing(&c, "t1a", &arn1).await;
    thing(&c, "t1b", &arn1).await;
    thing(&c, "t2", &arn2).await;
    thing(&c, "bystander", &ok_arn).await;
    group(&c, "quarantine", None).await;
    group(&c, "audit-hold", None).await;
    deactivate_action(&c).await;
    create_action(&c, "quarantine", groups_params(&["quarantine", "audit-hold"])).await;

    let audit = run_audit(&c, &[EXPIRING, LOGGING]).await;
    let by_cert = findings_by_cert(&audit_findings(&c, &audit, Some(EXPIRING)).await);
    assert_eq!(by_cert.keys().cloned().collect::<BTreeSet<_>>(), BTreeSet::from([c1.clone(), c2.clone(), c3.clone()]));
    let logging_finding = finding_id(&only_finding(&c, &audit, LOGGING).await);

    let before = now_secs();
    start_task(&c, "quarantine-then-deactivate", audit_target(&audit),
        &[(EXPIRING, &["quarantine", "deactivate"]), (AGE, &["deactivate"])]).await;
    let out = wait_task(&c, "quarantine-then-deactivate").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    let started = millis(out.start_time()) / 1000;
    assert!((before - 1..=now_secs() + 1).contains(&started), "startTime {started} vs {before}");
    // Every check with findings in the target, and every mapped one (AGE has none).
    assert_eq!(stats(&out), stats_of(&[
        (EXPIRING, st(3, 3, 0, 0, 0)),
        (LOGGING, st(1, 0, 0, 1, 0)),
        (AGE, st(0, 0, 0, 0, 0)),
    ]));

    // The registry's new state.
    for cert in [&c1, &c2, &c3] {
        assert_eq!(cert_status(&c, cert).await, CertificateStatus::Inactive, "{cert}");
    }
    assert_eq!(cert_status(&c, &ok).await, CertificateStatus::Active);
    for t in ["t1a", "t1b", "t2"] {
        assert_eq!(groups_of(&c, t).await, strings(&["audit-hold", "quarantine"]), "{t}");
    }
    assert!(groups_of(&c, "bystander").await.is_empty());

    // The description.
    let target = out.target().expect("target");
    assert_eq!(target.audit_task_id(), Some(audit.as_str()));
    assert!(target.finding_ids().is_empty(), "{target:?}");
    assert_eq!(target.audit_check_to_reason_code_filter(), None);
    let m = out.audit_check_to_actions_mapping().expect("auditCheckToActionsMapping");
    assert_eq!(m.len(), 2);
    assert_eq!(m[EXPIRING], strings(&["quarantine", "deactivate"]), "listed order kept");
    assert_eq!(m[AGE], strings(&["deactivate"]));
    let defs = definitions(&out);
    assert_eq!(defs.keys().cloned().collect::<Vec<_>>(), strings(&["deactivate", "quarantine"]));
    for (name, def) in &defs {
        let described = describe_action(&c, name).await;
        assert_eq!(def.id(), described.action_id(), "{name}");
        assert_eq!(def.role_arn(), Some(ROLE_ARN), "{name}");
        assert_eq!(def.action_params(), described.action_params(), "{name}");
    }

    // Two executions per acted finding, in the listed order; none for the unmapped check.
    for (cert, finding) in &by_cert {
        assert_eq!(
            checked_executions(&c, "quarantine-then-deactivate", finding, &out).await,
            [completed("quarantine"), completed("deactivate")],
            "{cert}"
        );
    }
    assert!(executions(&c, "quarantine-then-deactivate", &logging_finding).await.is_empty());

    // Listed; and invisible to another account.
    assert_eq!(all_tasks(&c).await, [("quarantine-then-deactivate".to_owned(), Status::Completed)]);
    let b = server.client_b();
    let (f, _) = expect_failure(b.describe_audit_mitigation_actions_task().task_id("quarantine-then-deactivate").send().await);
    f.assert("ResourceNotFoundException", 404);
    assert!(all_tasks(&b).await.is_empty());
    assert!(executions(&b, "quarantine-then-deactivate", &by_cert[&c1]).await.is_empty());
    let (f, _) = expect_failure(b.cancel_audit_mitigation_actions_task().task_id("quarantine-then-deactivate").send().await);
    f.assert("ResourceNotFoundException", 404);

    // An unknown task.
    let (f, _) = expect_failure(c.describe_audit_mitigation_actions_task().task_id("no-such-task").send().await);
    f.assert("ResourceNotFoundException", 404);
    server.stop().await;
}

#[tokio::test]
async fn ca_certificate_action_deactivates_the_ca() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[CA_EXPIRING]).await;
    let soon = register_ca(&c, &TestCa::with_validity("mitigation ca soon", -1, 10), true).await;
    let later = register_ca(&c, &TestCa::with_validity("mitigation ca later", -1, 800), true).await;
    create_action(&c, "deactivate-ca", params(MitigationActionType::UpdateCaCertificate)).await;
    let audit = run_audit(&c, &[CA_EXPIRING]).await;
    let finding = finding_id(&only_finding(&c, &audit, CA_EXPIRING).await);

    start_task(&c, "ca", audit_target(&audit), &[(CA_EXPIRING, &["deactivate-ca"])]).await;
    let out = wait_task(&c, "ca").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(CA_EXPIRING, st(1, 1, 0, 0, 0))]));
    assert_eq!(ca_status(&c, &soon).await, CaCertificateStatus::Inactive);
    assert_eq!(ca_status(&c, &later).await, CaCertificateStatus::Active);
    assert_eq!(checked_executions(&c, "ca", &finding, &out).await, [completed("deactivate-ca")]);
    server.stop().await;
}

#[tokio::test]
async fn replace_default_policy_version_writes_a_blank_default() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[PERMISSIVE]).await;
    create_policy(&c, "broad", BROAD_POLICY).await;
    // Five versions already, the broad one the default: no room for another.
    create_policy(&c, "crowded", &narrow_policy(ACCOUNT_A, 0)).await;
    for i in 1..4 {
        add_policy_version(&c, "crowded", &narrow_policy(ACCOUNT_A, i), false).await;
    }
    add_policy_version(&c, "crowded", BROAD_POLICY, true).await;
    create_policy(&c, "narrow", &narrow_policy(ACCOUNT_A, 9)).await;
    create_action(&c, "blank", params(MitigationActionType::ReplaceDefaultPolicyVersion)).await;
    let audit = run_audit(&c, &[PERMISSIVE]).await;
    let findings = audit_findings(&c, &audit, Some(PERMISSIVE)).await;
    let by_policy: BTreeMap<String, String> = findings
        .iter()
        .map(|f| {
            let pv = f.non_compliant_resource().and_then(|r| r.resource_identifier())
                .and_then(|i| i.policy_version_identifier()).expect("policyVersionIdentifier");
            (pv.policy_name().expect("policyName").to_owned(), finding_id(f))
        })
        .collect();
    assert_eq!(by_policy.keys().cloned().collect::<Vec<_>>(), strings(&["broad", "crowded"]));

    start_task(&c, "blank-policies", audit_target(&audit), &[(PERMISSIVE, &["blank"])]).await;
    let out = wait_task(&c, "blank-policies").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "one policy could not take a version: {out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(PERMISSIVE, st(2, 1, 1, 0, 0))]));

    // broad: a second version, blank, now the default; the first kept.
    assert_eq!(policy_versions(&c, "broad").await, [("1".to_owned(), false), ("2".to_owned(), true)]);
    let (default, doc) = default_policy(&c, "broad").await;
    assert_eq!(default, "2");
    assert_eq!(doc, serde_json::from_str::<Value>(BLANK_POLICY).unwrap());
    let v1 = c.get_policy_version().policy_name("broad").policy_version_id("1").send().await.expect("v1");
    assert_eq!(
        serde_json::from_str::<Value>(v1.policy_document().unwrap()).unwrap(),
        serde_json::from_str::<Value>(BROAD_POLICY).unwrap()
    );
    assert_eq!(checked_executions(&c, "blank-policies", &by_policy["broad"], &out).await, [completed("blank")]);

    // crowded: untouched, and the execution says why.
    let crowded = policy_versions(&c, "crowded").await;
    assert_eq!(crowded.len(), 5, "{crowded:?}");
    assert_eq!(default_policy(&c, "crowded").await.0, "5");
    assert_eq!(
        checked_executions(&c, "blank-policies", &by_policy["crowded"], &out).await,
        [failed("blank", "VersionsLimitExceededException")]
    );
    let e = executions_paged(&c, "blank-policies", &by_policy["crowded"], None, None).await;
    assert!(e[0].message().unwrap().contains("crowded"), "the message names the policy: {e:?}");

    // The blank version grants nothing: the next audit finds only crowded.
    let again = run_audit(&c, &[PERMISSIVE]).await;
    let left: Vec<String> = audit_findings(&c, &again, Some(PERMISSIVE)).await.iter()
        .map(|f| f.non_compliant_resource().unwrap().resource_identifier().unwrap()
            .policy_version_identifier().unwrap().policy_name().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["crowded"]);
    server.stop().await;
}

#[tokio::test]
async fn enable_iot_logging_sets_v2_logging_options() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[LOGGING, EXPIRING]).await;
    let (cert, _) = expiring_cert(&c, "beside-logging").await;
    group(&c, "hold", None).await;
    create_action(&c, "logging", logging_params(LogLevel::Warn)).await;
    create_action(&c, "hold", groups_params(&["hold"])).await;
    deactivate_action(&c).await;
    let audit = run_audit(&c, &[LOGGING, EXPIRING]).await;
    let finding = finding_id(&only_finding(&c, &audit, LOGGING).await);
    let cert_finding = finding_id(&only_finding(&c, &audit, EXPIRING).await);
    // Checks with action lists of different lengths in one task.
    start_task(&c, "logging", audit_target(&audit),
        &[(LOGGING, &["logging"]), (EXPIRING, &["hold", "deactivate"])]).await;
    let out = wait_task(&c, "logging").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(LOGGING, st(1, 1, 0, 0, 0)), (EXPIRING, st(1, 1, 0, 0, 0))]));
    assert_eq!(checked_executions(&c, "logging", &finding, &out).await, [completed("logging")]);
    // A certificate without things: adding "its things" to a group is a success that
    // changes nothing.
    assert_eq!(
        checked_executions(&c, "logging", &cert_finding, &out).await,
        [completed("hold"), completed("deactivate")]
    );
    assert_eq!(cert_status(&c, &cert).await, CertificateStatus::Inactive);

    let opts = c.get_v2_logging_options().send().await.expect("GetV2LoggingOptions");
    assert_eq!(opts.role_arn(), Some(LOGGING_ROLE_ARN));
    assert_eq!(opts.default_log_level(), Some(&LogLevel::Warn));
    assert!(!opts.disable_all_logs());
    // Account B's logging is its own.
    let b = server.client_b().get_v2_logging_options().send().await;
    if let Ok(b) = b {
        assert_ne!(b.role_arn(), Some(LOGGING_ROLE_ARN), "{b:?}");
    }
    // The account now logs: the next audit has no LOGGING finding.
    let again = run_audit(&c, &[LOGGING]).await;
    assert!(audit_findings(&c, &again, None).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn publish_finding_to_sns_sends_the_finding() {
    let moto = Moto::start().await;
    let queue = moto.topic_with_queue("mitigation-findings").await;
    let server = TestServer::start_with_settings(
        ENGINE,
        Arc::new(TestClock::new()),
        true,
        AuditSettings { sns: moto.sns_settings(), ..AuditSettings::default() },
    )
    .await;
    let c = server.client_a();
    enable_checks(&c, &[LOGGING, EXPIRING]).await;
    let (soon, _) = expiring_cert(&c, "sns-soon").await;
    let (past, _) = expired_cert(&c, "sns-past").await;
    create_action(&c, "publish", publish_params(&queue.topic_arn)).await;
    create_action(&c, "publish-nowhere", publish_params(&Moto::topic_arn("no-such-topic"))).await;
    create_action(&c, "logging", logging_params(LogLevel::Error)).await;
    let audit = run_audit(&c, &[LOGGING, EXPIRING]).await;
    let findings = audit_findings(&c, &audit, None).await;
    assert_eq!(findings.len(), 3);

    start_task(&c, "publish", audit_target(&audit), &[(LOGGING, &["publish"]), (EXPIRING, &["publish"])]).await;
    let out = wait_task(&c, "publish").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(LOGGING, st(1, 1, 0, 0, 0)), (EXPIRING, st(2, 2, 0, 0, 0))]));

    // One message per finding: the finding as JSON.
    let messages = receive_n(&moto, &queue.queue_url, 3).await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    let by_id: BTreeMap<String, &Value> = messages
        .iter()
        .map(|m| (m["findingId"].as_str().unwrap_or_else(|| panic!("no findingId: {m}")).to_owned(), m))
        .collect();
    assert_eq!(by_id.len(), 3, "one message per finding: {messages:?}");
    for f in &findings {
        let m = by_id.get(&finding_id(f)).unwrap_or_else(|| panic!("no message for {f:?}: {messages:?}"));
        assert_eq!(m["taskId"], audit.as_str(), "{m}");
        assert_eq!(m["checkName"], f.check_name().unwrap(), "{m}");
        assert_eq!(m["severity"], f.severity().unwrap().as_str(), "{m}");
        assert_eq!(m["reasonForNonComplianceCode"], f.reason_for_non_compliance_code().unwrap(), "{m}");
        assert_eq!(m["reasonForNonCompliance"], f.reason_for_non_compliance().unwrap(), "{m}");
        let r = f.non_compliant_resource().unwrap();
        assert_eq!(m["nonCompliantResource"]["resourceType"], r.resource_type().unwrap().as_str(), "{m}");
        let id = r.resource_identifier().unwrap();
        match device_cert_of(f) {
            Some(cert) => {
                assert!(cert == soon || cert == past);
                assert_eq!(m["nonCompliantResource"]["resourceIdentifier"]["deviceCertificateId"], cert.as_str(), "{m}");
            }
            None => assert_eq!(m["nonCompliantResource"]["resourceIdentifier"]["account"], id.account().unwrap(), "{m}"),
        }
        // Times in epoch milliseconds, as AWS publishes them.
        for (key, t) in [("findingTime", f.finding_time()), ("taskStartTime", f.task_start_time())] {
            let got = m[key].as_i64().unwrap_or_else(|| panic!("{key} is not an integer: {m}"));
            assert!((got - millis(t)).abs() < 1000, "{key} {got} vs {:?}: {m}", t);
        }
    }

    // A publish that fails (no such topic): FAILED, the next action SKIPPED, nothing set.
    let logging_finding = finding_id(&only_finding(&c, &audit, LOGGING).await);
    start_task(&c, "publish-fails", findings_target(std::slice::from_ref(&logging_finding)),
        &[(LOGGING, &["publish-nowhere", "logging"])]).await;
    let out = wait_task(&c, "publish-fails").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(LOGGING, st(1, 0, 1, 0, 0))]));
    let got = checked_executions(&c, "publish-fails", &logging_finding, &out).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((&got[0].0, &got[0].1), (&"publish-nowhere".to_owned(), &Ex::Failed), "{got:?}");
    assert_eq!(got[1], skipped("logging"));
    let opts = c.get_v2_logging_options().send().await;
    if let Ok(opts) = opts {
        assert_ne!(opts.role_arn(), Some(LOGGING_ROLE_ARN), "the skipped action changed nothing: {opts:?}");
    }
    assert!(moto.receive(&queue.queue_url, Duration::from_secs(1)).await.is_empty(), "no stray message");
    server.stop().await;
}

/// A stage that takes longer than the work lease: 100 publishes to moto (some 30 ms
/// each) against a 1 s lease. In production the same happens with the default minute
/// and a slow SNS endpoint: a chunk of 1,000 findings publishing at 60 ms, or two
/// publishing actions at 30 ms, or the second of the two chunks a worker claims at once
/// waiting behind the first. The task must still end, every finding published at least
/// once and counted exactly once.
#[tokio::test]
async fn a_stage_slower_than_the_work_lease_still_finishes() {
    const THINGS: usize = 400;
    let moto = Moto::start().await;
    let queue = moto.topic_with_queue("mitigation-slow").await;
    let server = TestServer::start_with_settings(
        ENGINE,
        Arc::new(TestClock::new()),
        true,
        AuditSettings {
            sns: moto.sns_settings(),
            work_lease: Duration::from_millis(1000),
            ..AuditSettings::default()
        },
    )
    .await;
    let c = server.client_a();
    let resp = server
        .send(server.signed(import_request(&expiring_fleet_jsonl("published", THINGS, 0))))
        .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    enable_checks(&c, &[EXPIRING]).await;
    create_action(&c, "publish", publish_params(&queue.topic_arn)).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    let started = Instant::now();
    start_task(&c, "slow", audit_target(&audit), &[(EXPIRING, &["publish"])]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = describe_task(&c, "slow").await;
    while out.task_status() == Some(&Status::InProgress) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        out = describe_task(&c, "slow").await;
    }
    let published = drain_finding_ids(&moto, &queue.queue_url, Duration::from_secs(2)).await;
    let distinct: BTreeSet<&String> = published.iter().collect();
    let seen = format!(
        "after {:?}: {} messages for {} distinct findings; {:?}",
        started.elapsed(),
        published.len(),
        distinct.len(),
        stats(&out)
    );
    eprintln!("{seen}");
    assert_eq!(out.task_status(), Some(&Status::Completed), "{seen}");
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(THINGS as i64, THINGS as i64, 0, 0, 0))]));
    assert_eq!(distinct.len(), THINGS, "every finding published: {seen}");
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Failing actions

#[tokio::test]
async fn a_failed_action_skips_the_rest_of_its_finding_only() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING]).await;
    // One hierarchy: hold-root > hold-a, hold-b.
    group(&c, "hold-root", None).await;
    group(&c, "hold-a", Some("hold-root")).await;
    group(&c, "hold-b", Some("hold-root")).await;
    group(&c, "free", None).await;
    let (conflict, conflict_arn) = expiring_cert(&c, "conflict").await;
    thing(&c, "t-conflict", &conflict_arn).await;
    add_to_group(&c, "hold-a", "t-conflict").await;
    // Already in ten groups: two more is over the limit.
    let (full, full_arn) = expiring_cert(&c, "full").await;
    thing(&c, "t-full", &full_arn).await;
    let ten: Vec<String> = (0..10).map(|i| format!("g{i}")).collect();
    for g in &ten {
        group(&c, g, None).await;
        add_to_group(&c, g, "t-full").await;
    }
    // Two things, one of them in conflict: neither is moved.
    let (two, two_arn) = expiring_cert(&c, "two").await;
    thing(&c, "t-two-ok", &two_arn).await;
    thing(&c, "t-two-conflict", &two_arn).await;
    add_to_group(&c, "hold-a", "t-two-conflict").await;
    let (ok, ok_arn) = expiring_cert(&c, "ok").await;
    thing(&c, "t-ok", &ok_arn).await;
    // No things; revoked after the audit, so it can no longer become INACTIVE.
    let (revoked, _) = expiring_cert(&c, "revoked").await;
    create_action(&c, "hold", groups_params(&["free", "hold-b"])).await;
    deactivate_action(&c).await;

    let audit = run_audit(&c, &[EXPIRING]).await;
    set_cert_status(&c, &revoked, CertificateStatus::Revoked).await;
    let by_cert = findings_by_cert(&audit_findings(&c, &audit, None).await);
    assert_eq!(by_cert.len(), 5);

    start_task(&c, "hold-then-deactivate", audit_target(&audit), &[(EXPIRING, &["hold", "deactivate"])]).await;
    let out = wait_task(&c, "hold-then-deactivate").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(5, 1, 4, 0, 0))]));

    let task = "hold-then-deactivate";
    assert_eq!(
        checked_executions(&c, task, &by_cert[&conflict], &out).await,
        [failed("hold", "InvalidRequestException"), skipped("deactivate")]
    );
    assert_eq!(
        checked_executions(&c, task, &by_cert[&full], &out).await,
        [failed("hold", "LimitExceededException"), skipped("deactivate")]
    );
    assert_eq!(
        checked_executions(&c, task, &by_cert[&two], &out).await,
        [failed("hold", "InvalidRequestException"), skipped("deactivate")]
    );
    assert_eq!(
        checked_executions(&c, task, &by_cert[&ok], &out).await,
        [completed("hold"), completed("deactivate")]
    );
    assert_eq!(
        checked_executions(&c, task, &by_cert[&revoked], &out).await,
        [completed("hold"), failed("deactivate", "CertificateStateException")]
    );

    // Failed and skipped actions changed nothing.
    for (cert, want) in [
        (&conflict, CertificateStatus::Active),
        (&full, CertificateStatus::Active),
        (&two, CertificateStatus::Active),
        (&ok, CertificateStatus::Inactive),
        (&revoked, CertificateStatus::Revoked),
    ] {
        assert_eq!(cert_status(&c, cert).await, want, "{cert}");
    }
    assert_eq!(groups_of(&c, "t-conflict").await, strings(&["hold-a"]), "not even the free group");
    assert_eq!(groups_of(&c, "t-full").await, sorted(ten.clone()));
    assert!(groups_of(&c, "t-two-ok").await.is_empty());
    assert_eq!(groups_of(&c, "t-two-conflict").await, strings(&["hold-a"]));
    assert_eq!(groups_of(&c, "t-ok").await, strings(&["free", "hold-b"]));

    // A group that does not exist.
    create_action(&c, "ghost", groups_params(&["no-such-group"])).await;
    start_task(&c, "ghost", findings_target(std::slice::from_ref(&by_cert[&ok])), &[(EXPIRING, &["ghost"])]).await;
    let out = wait_task(&c, "ghost").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(1, 0, 1, 0, 0))]));
    assert_eq!(
        checked_executions(&c, "ghost", &by_cert[&ok], &out).await,
        [failed("ghost", "ResourceNotFoundException")]
    );
    assert_eq!(groups_of(&c, "t-ok").await, strings(&["free", "hold-b"]));
    server.stop().await;
}

/// ADD_THINGS_TO_THING_GROUP checks its groups even when the certificate has no things
/// attached: a missing group fails the execution, naming the group.
#[tokio::test]
async fn a_missing_group_fails_even_without_things() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING]).await;
    group(&c, "exists", None).await;
    let (bare, _) = expiring_cert(&c, "bare").await;
    create_action(&c, "hold", groups_params(&["exists"])).await;
    create_action(&c, "ghost", groups_params(&["exists", "no-such-group", "gone"])).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    let finding = findings_by_cert(&audit_findings(&c, &audit, None).await)[&bare].clone();

    start_task(&c, "ghost", findings_target(std::slice::from_ref(&finding)), &[(EXPIRING, &["ghost"])]).await;
    let out = wait_task(&c, "ghost").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(1, 0, 1, 0, 0))]));
    assert_eq!(checked_executions(&c, "ghost", &finding, &out).await, [failed("ghost", "ResourceNotFoundException")]);
    let e = only_execution(&c, "ghost", &finding).await;
    assert_eq!(e.message(), Some("Thing group no-such-group does not exist."), "{e:?}");

    // Every group there: a certificate without things succeeds, changing nothing.
    start_task(&c, "hold", findings_target(std::slice::from_ref(&finding)), &[(EXPIRING, &["hold"])]).await;
    let out = wait_task(&c, "hold").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_eq!(checked_executions(&c, "hold", &finding, &out).await, [completed("hold")]);
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Intermediate CA findings: the actions act on the related device certificates

/// UPDATE_DEVICE_CERTIFICATE and ADD_THINGS_TO_THING_GROUP on a finding of
/// INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK act on exactly the
/// device certificates ListRelatedResourcesForAuditFinding lists, all or nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermediate_ca_actions_act_on_the_related_device_certificates() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    let files = FileServer::start().await;
    let revoked = revoked_intermediate(&c, &files, "Revoked Intermediate").await;
    let kept = TestCa::new("Kept CA");
    register_ca(&c, &kept, true).await;
    let mut related = Vec::new();
    let mut arns = BTreeMap::new();
    for i in 0..5 {
        let (pem, _) = revoked.issue(&format!("signed-{i}"));
        let id = register_device(&c, &pem, &revoked.pem, CertificateStatus::Active).await;
        arns.insert(i, format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{id}"));
        related.push(id);
    }
    // d0: t0; d1: t1a and t1b; d2 and d3 share t-shared; d4 has none.
    thing(&c, "t0", &arns[&0]).await;
    thing(&c, "t1a", &arns[&1]).await;
    thing(&c, "t1b", &arns[&1]).await;
    thing(&c, "t-shared", &arns[&2]).await;
    c.attach_thing_principal().thing_name("t-shared").principal(&arns[&3]).send().await.expect("attach");
    // Not related: INACTIVE when the audit ran, or signed by another CA.
    let (pem, _) = revoked.issue("signed-inactive");
    let late = register_device(&c, &pem, &revoked.pem, CertificateStatus::Inactive).await;
    thing(&c, "t-late", &format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{late}")).await;
    let (pem, _) = kept.issue("kept-device");
    let other = register_device(&c, &pem, &kept.pem, CertificateStatus::Active).await;
    thing(&c, "t-other", &format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{other}")).await;
    for g in ["quarantine", "hold", "fresh"] {
        group(&c, g, None).await;
    }
    deactivate_action(&c).await;
    create_action(&c, "quarantine", groups_params(&["quarantine", "hold"])).await;
    create_action(&c, "ghost", groups_params(&["fresh", "no-such-group"])).await;

    enable_checks(&c, &[INTERMEDIATE]).await;
    let audit = run_audit(&c, &[INTERMEDIATE]).await;
    let finding = finding_id(&only_finding(&c, &audit, INTERMEDIATE).await);
    let listed = related_certificates(&c, &finding).await;
    assert_eq!(sorted(listed.clone()), sorted(related.clone()), "the fixture's related certificates");

    start_task(&c, "intermediate", audit_target(&audit), &[(INTERMEDIATE, &["quarantine", "deactivate"])]).await;
    let out = wait_task(&c, "intermediate").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(INTERMEDIATE, st(1, 1, 0, 0, 0))]));
    assert_eq!(
        checked_executions(&c, "intermediate", &finding, &out).await,
        [completed("quarantine"), completed("deactivate")]
    );
    for cert in &listed {
        assert_eq!(cert_status(&c, cert).await, CertificateStatus::Inactive, "{cert}");
    }
    assert_eq!(cert_status(&c, &late).await, CertificateStatus::Inactive, "unchanged");
    assert_eq!(cert_status(&c, &other).await, CertificateStatus::Active, "not related");
    for t in ["t0", "t1a", "t1b", "t-shared"] {
        assert_eq!(groups_of(&c, t).await, strings(&["hold", "quarantine"]), "{t}");
    }
    for t in ["t-late", "t-other"] {
        assert!(groups_of(&c, t).await.is_empty(), "{t} is not a related certificate's");
    }

    // All or nothing: one related certificate REVOKED since fails the deactivation, which
    // then changes none; the finding's next action is SKIPPED.
    set_cert_status(&c, &related[0], CertificateStatus::Active).await;
    set_cert_status(&c, &related[1], CertificateStatus::Active).await;
    set_cert_status(&c, &related[4], CertificateStatus::Revoked).await;
    start_task(&c, "intermediate-revoked", findings_target(std::slice::from_ref(&finding)),
        &[(INTERMEDIATE, &["deactivate", "ghost"])]).await;
    let out = wait_task(&c, "intermediate-revoked").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(INTERMEDIATE, st(1, 0, 1, 0, 0))]));
    let got = executions_paged(&c, "intermediate-revoked", &finding, None, None).await;
    assert_eq!(got.iter().map(exec_summary).collect::<Vec<_>>(),
        [failed("deactivate", "CertificateStateException"), skipped("ghost")]);
    assert!(got[0].message().is_some_and(|m| m.contains(&related[4])), "{got:?}");
    for (cert, want) in [
        (&related[0], CertificateStatus::Active),
        (&related[1], CertificateStatus::Active),
        (&related[2], CertificateStatus::Inactive),
        (&related[4], CertificateStatus::Revoked),
    ] {
        assert_eq!(cert_status(&c, cert).await, want, "{cert}");
    }

    // A missing group: nothing joins, not even the group that exists.
    start_task(&c, "intermediate-ghost", findings_target(std::slice::from_ref(&finding)),
        &[(INTERMEDIATE, &["ghost"])]).await;
    let out = wait_task(&c, "intermediate-ghost").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    let e = only_execution(&c, "intermediate-ghost", &finding).await;
    assert_eq!(exec_summary(&e), failed("ghost", "ResourceNotFoundException"));
    assert_eq!(e.message(), Some("Thing group no-such-group does not exist."), "{e:?}");
    for t in ["t0", "t1a", "t1b", "t-shared", "t-late", "t-other"] {
        assert!(!groups_of(&c, t).await.contains(&"fresh".to_owned()), "{t}");
    }
    server.stop().await;
}

/// An intermediate CA with more related certificates than a page of them: all are
/// deactivated in one execution (up to 10,000); ADD_THINGS_TO_THING_GROUP acts on at most
/// 1,000, and a finding with more fails it with LimitExceededException, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermediate_ca_with_many_related_certificates() {
    const DEVICES: usize = 1_001;
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    let files = FileServer::start().await;
    let revoked = revoked_intermediate(&c, &files, "Busy Intermediate").await;
    let mut fleet = String::new();
    for i in 0..DEVICES {
        let (pem, _) = revoked.issue(&format!("busy-{i:04}"));
        fleet.push_str(&serde_json::json!({"type": "thing", "name": format!("busy-{i:04}")}).to_string());
        fleet.push('\n');
        fleet.push_str(&serde_json::json!({"type": "certificate", "pem": pem, "caPem": revoked.pem,
            "status": "ACTIVE", "things": [format!("busy-{i:04}")]}).to_string());
        fleet.push('\n');
    }
    let resp = server.send(server.signed(import_request(&fleet))).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let summary: Value = serde_json::from_slice(&resp.body).expect("import summary");
    assert_eq!(summary["failedLines"], 0, "{summary}");
    group(&c, "quarantine", None).await;
    deactivate_action(&c).await;
    create_action(&c, "quarantine", groups_params(&["quarantine"])).await;
    enable_checks(&c, &[INTERMEDIATE]).await;
    let audit = run_audit(&c, &[INTERMEDIATE]).await;
    let finding = finding_id(&only_finding(&c, &audit, INTERMEDIATE).await);
    let related = related_certificates(&c, &finding).await;
    assert_eq!(related.len(), DEVICES);

    start_task(&c, "busy-quarantine", audit_target(&audit), &[(INTERMEDIATE, &["quarantine"])]).await;
    let out = wait_task(&c, "busy-quarantine").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_eq!(stats(&out), stats_of(&[(INTERMEDIATE, st(1, 0, 1, 0, 0))]));
    let e = only_execution(&c, "busy-quarantine", &finding).await;
    assert_eq!(exec_summary(&e), failed("quarantine", "LimitExceededException"));
    assert!(e.message().is_some_and(|m| m.contains("1000")), "{e:?}");
    for t in ["busy-0000", "busy-0500", "busy-1000"] {
        assert!(groups_of(&c, t).await.is_empty(), "{t}");
    }

    start_task(&c, "busy-deactivate", audit_target(&audit), &[(INTERMEDIATE, &["deactivate"])]).await;
    let out = wait_task(&c, "busy-deactivate").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_eq!(stats(&out), stats_of(&[(INTERMEDIATE, st(1, 1, 0, 0, 0))]));
    let statuses = all_cert_statuses(&c).await;
    assert_eq!(statuses.len(), DEVICES);
    for cert in &related {
        assert_eq!(statuses.get(cert), Some(&CertificateStatus::Inactive), "{cert}");
    }
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// PUBLISH_FINDING_TO_SNS over many findings

/// A stage publishes its findings concurrently: every message arrives once, and each
/// finding's actions still run in order, a failed publish skipping the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_findings_published_in_one_task() {
    const THINGS: usize = 40;
    let moto = Moto::start().await;
    let queue = moto.topic_with_queue("mitigation-many").await;
    let server = TestServer::start_with_settings(
        ENGINE,
        Arc::new(TestClock::new()),
        true,
        AuditSettings { sns: moto.sns_settings(), ..AuditSettings::default() },
    )
    .await;
    let c = server.client_a();
    let resp = server.send(server.signed(import_request(&expiring_fleet_jsonl("many", THINGS, 0)))).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    enable_checks(&c, &[EXPIRING]).await;
    create_action(&c, "publish", publish_params(&queue.topic_arn)).await;
    create_action(&c, "publish-nowhere", publish_params(&Moto::topic_arn("no-such-topic"))).await;
    deactivate_action(&c).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    let by_cert = findings_by_cert(&audit_findings(&c, &audit, None).await);
    assert_eq!(by_cert.len(), THINGS);

    // Every publish fails: every deactivation is SKIPPED, nothing is published.
    start_task(&c, "nowhere", audit_target(&audit), &[(EXPIRING, &["publish-nowhere", "deactivate"])]).await;
    let out = wait_task(&c, "nowhere").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(THINGS as i64, 0, THINGS as i64, 0, 0))]));
    for finding in by_cert.values().take(5) {
        let got = checked_executions(&c, "nowhere", finding, &out).await;
        assert_eq!((&got[0].0, &got[0].1), (&"publish-nowhere".to_owned(), &Ex::Failed), "{got:?}");
        assert_eq!(got[1], skipped("deactivate"));
    }
    for cert in by_cert.keys() {
        assert_eq!(cert_status(&c, cert).await, CertificateStatus::Active, "{cert}");
    }

    // Three certificates revoked since the audit: their deactivation fails after the
    // publish; every finding is published exactly once.
    let revoked: Vec<String> = by_cert.keys().take(3).cloned().collect();
    for cert in &revoked {
        set_cert_status(&c, cert, CertificateStatus::Revoked).await;
    }
    start_task(&c, "many", audit_target(&audit), &[(EXPIRING, &["publish", "deactivate"])]).await;
    let out = wait_task(&c, "many").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(THINGS as i64, THINGS as i64 - 3, 3, 0, 0))]));
    let published = drain_finding_ids(&moto, &queue.queue_url, Duration::from_secs(2)).await;
    assert_eq!(
        sorted(published.clone()),
        sorted(by_cert.values().cloned().collect()),
        "every finding once, and nothing from the failed task: {published:?}"
    );
    for (cert, finding) in &by_cert {
        let got = checked_executions(&c, "many", finding, &out).await;
        if revoked.contains(cert) {
            assert_eq!(got, [completed("publish"), failed("deactivate", "CertificateStateException")], "{cert}");
            assert_eq!(cert_status(&c, cert).await, CertificateStatus::Revoked);
        } else {
            assert_eq!(got, [completed("publish"), completed("deactivate")], "{cert}");
            assert_eq!(cert_status(&c, cert).await, CertificateStatus::Inactive);
        }
    }
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Starting: idempotency, rejections, limits

#[tokio::test]
async fn start_is_idempotent_per_client_request_token() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[LOGGING]).await;
    create_action(&c, "logging", logging_params(LogLevel::Info)).await;
    let audit = run_audit(&c, &[LOGGING]).await;
    let finding = finding_id(&only_finding(&c, &audit, LOGGING).await);
    let tok = token();
    let map: &[(&str, &[&str])] = &[(LOGGING, &["logging"])];
    for _ in 0..2 {
        let out = try_start_task_with_token(&c, "same", audit_target(&audit), map, &tok)
            .await
            .unwrap_or_else(|e| panic!("start: {}", DisplayErrorContext(e)));
        assert_eq!(out.task_id(), Some("same"));
    }
    assert_eq!(all_tasks(&c).await.len(), 1);
    // Another token: refused, whatever the rest says.
    for target in [audit_target(&audit), findings_target(std::slice::from_ref(&finding))] {
        let (f, _) = expect_failure(try_start_task_with_token(&c, "same", target, map, &token()).await);
        f.assert("TaskAlreadyExistsException", 400);
    }
    let out = wait_task(&c, "same").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_eq!(stats(&out), stats_of(&[(LOGGING, st(1, 1, 0, 0, 0))]));
    // A replay after the end still answers the task, and runs nothing again.
    let again = try_start_task_with_token(&c, "same", audit_target(&audit), map, &tok)
        .await
        .unwrap_or_else(|e| panic!("replay: {}", DisplayErrorContext(e)));
    assert_eq!(again.task_id(), Some("same"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(all_tasks(&c).await, [("same".to_owned(), Status::Completed)]);
    let after = describe_task(&c, "same").await;
    assert_eq!((after.task_status(), stats(&after)), (out.task_status(), stats(&out)));
    assert_eq!(executions(&c, "same", &finding).await, [completed("logging")]);
    // Task ids are per account: B may use the same one.
    let b = server.client_b();
    enable_checks(&b, &[LOGGING]).await;
    create_action(&b, "logging", logging_params(LogLevel::Info)).await;
    let audit_b = run_audit(&b, &[LOGGING]).await;
    start_task(&b, "same", audit_target(&audit_b), map).await;
    assert_eq!(wait_task(&b, "same").await.task_status(), Some(&Status::Completed));
    server.stop().await;
}

#[tokio::test]
async fn invalid_starts_create_nothing() {
    let server = TestServer::start(ENGINE).await;
    let (c, b) = (server.client_a(), server.client_b());
    enable_checks(&c, &[EXPIRING, LOGGING, PERMISSIVE, CA_EXPIRING]).await;
    expiring_cert(&c, "rejections").await;
    create_policy(&c, "broad", BROAD_POLICY).await;
    register_ca(&c, &TestCa::with_validity("rejections ca", -1, 10), true).await;
    deactivate_action(&c).await;
    create_action(&c, "logging", logging_params(LogLevel::Info)).await;
    create_action(&c, "blank", params(MitigationActionType::ReplaceDefaultPolicyVersion)).await;
    create_action(&c, "deactivate-ca", params(MitigationActionType::UpdateCaCertificate)).await;
    create_action(&c, "publish", params(MitigationActionType::PublishFindingToSns)).await;
    let audit = run_audit(&c, &[EXPIRING, LOGGING, PERMISSIVE, CA_EXPIRING]).await;
    let logging_finding = finding_id(&only_finding(&c, &audit, LOGGING).await);
    enable_checks(&b, &[LOGGING]).await;
    create_action(&b, "b-only", logging_params(LogLevel::Info)).await;
    let audit_b = run_audit(&b, &[LOGGING]).await;
    let b_finding = finding_id(&only_finding(&b, &audit_b, LOGGING).await);

    let both = AuditMitigationActionsTaskTarget::builder()
        .audit_task_id(&audit)
        .finding_ids(&logging_finding)
        .build();
    let filter_without_audit = AuditMitigationActionsTaskTarget::builder()
        .finding_ids(&logging_finding)
        .audit_check_to_reason_code_filter(LOGGING, strings(&["LOGGING_DISABLED"]))
        .build();
    let six = vec!["logging", "publish", "logging", "publish", "logging", "publish"];
    let log = || vec![(LOGGING, vec!["logging"])];
    let cases: Vec<Rejection> = vec![
        ("unknown check", audit_target(&audit), vec![("NO_SUCH_CHECK", vec!["logging"])], vec!["NO_SUCH_CHECK"]),
        ("an unknown check beside a valid one", audit_target(&audit),
            vec![(LOGGING, vec!["logging"]), ("NOT_A_CHECK", vec!["publish"])], vec!["NOT_A_CHECK"]),
        ("unknown check in the filter",
            filtered_target(&audit, &[("NOT_A_CHECK", &["LOGGING_DISABLED"])]), log(), vec!["NOT_A_CHECK"]),
        ("unknown audit task", audit_target("0123456789abcdef0123456789abcdef"), log(),
            vec!["0123456789abcdef0123456789abcdef"]),
        ("another account's audit task", audit_target(&audit_b), log(), vec![]),
        ("unknown finding", findings_target(&[logging_finding.clone(), "no-such-finding-0001".to_owned()]),
            log(), vec!["no-such-finding-0001"]),
        ("another account's finding", findings_target(std::slice::from_ref(&b_finding)), log(), vec![]),
        ("unknown action", audit_target(&audit), vec![(LOGGING, vec!["no-such-action"])], vec!["no-such-action"]),
        ("another account's action", audit_target(&audit), vec![(LOGGING, vec!["b-only"])], vec!["b-only"]),
        ("device action on the logging check", audit_target(&audit), vec![(LOGGING, vec!["deactivate"])], vec![]),
        ("policy action on a device check", audit_target(&audit), vec![(EXPIRING, vec!["blank"])], vec![]),
        ("CA action on a device check", audit_target(&audit), vec![(EXPIRING, vec!["deactivate-ca"])], vec![]),
        ("CA action on a policy check", audit_target(&audit), vec![(PERMISSIVE, vec!["deactivate-ca"])], vec![]),
        ("logging action on a CA check", audit_target(&audit), vec![(CA_EXPIRING, vec!["logging"])], vec![]),
        ("device action on a CA check", audit_target(&audit), vec![(CA_EXPIRING, vec!["deactivate"])], vec![]),
        ("an allowed action beside a disallowed one", audit_target(&audit),
            vec![(EXPIRING, vec!["deactivate", "logging"])], vec![]),
        ("empty target", AuditMitigationActionsTaskTarget::builder().build(), log(), vec![]),
        ("empty findingIds", findings_target(&[]), log(), vec![]),
        ("auditTaskId and findingIds", both, log(), vec![]),
        ("reason-code filter without auditTaskId", filter_without_audit, log(), vec![]),
        ("six actions for a check", audit_target(&audit), vec![(LOGGING, six)], vec![]),
        ("no actions for a check", audit_target(&audit), vec![(LOGGING, vec![])], vec![]),
        ("empty mapping", audit_target(&audit), vec![], vec![]),
    ];
    for (label, target, map, needles) in cases {
        let map: Vec<(&str, &[&str])> = map.iter().map(|(check, actions)| (*check, actions.as_slice())).collect();
        let (f, _) = expect_failure(try_start_task(&c, "rejected", target, &map).await);
        assert_eq!(
            (f.code.as_deref(), f.status),
            (Some("InvalidRequestException"), 400),
            "{label}: {f:?}"
        );
        f.mentions(&needles);
        let (f, _) = expect_failure(c.describe_audit_mitigation_actions_task().task_id("rejected").send().await);
        f.assert("ResourceNotFoundException", 404);
        assert!(all_tasks(&c).await.is_empty(), "{label}: a task was created");
    }
    // Malformed ids and tokens.
    let map: &[(&str, &[&str])] = &[(LOGGING, &["logging"])];
    let (f, _) = expect_failure(try_start_task(&c, "bad id!", audit_target(&audit), map).await);
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(try_start_task(&c, &"x".repeat(129), audit_target(&audit), map).await);
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(try_start_task_with_token(&c, "rejected", audit_target(&audit), map, "bad token!").await);
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(try_start_task_with_token(&c, "rejected", audit_target(&audit), map, &"t".repeat(65)).await);
    f.assert("InvalidRequestException", 400);
    let too_many: Vec<String> = (0..26).map(|i| format!("finding-{i:04}")).collect();
    let (f, _) = expect_failure(try_start_task(&c, "rejected", findings_target(&too_many), map).await);
    f.assert("InvalidRequestException", 400);
    assert!(all_tasks(&c).await.is_empty());

    // Nothing was created: the id is still free, and B saw nothing either.
    start_task(&c, "rejected", audit_target(&audit), map).await;
    assert_eq!(wait_task(&c, "rejected").await.task_status(), Some(&Status::Completed));
    assert!(all_tasks(&b).await.is_empty());
    // DEVICE_CERTIFICATE_AGE_CHECK takes the device certificate actions, like the other
    // device checks; PUBLISH_FINDING_TO_SNS goes with every check.
    start_task(&c, "age", audit_target(&audit), &[(AGE, &["deactivate"]), (LOGGING, &["publish"]),
        (CA_EXPIRING, &["publish", "deactivate-ca"]), (PERMISSIVE, &["publish", "blank"])]).await;
    server.stop().await;
}

#[tokio::test]
async fn unfinished_audits_and_the_limit_of_ten_in_progress() {
    let mut server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[LOGGING]).await;
    create_action(&c, "logging", logging_params(LogLevel::Info)).await;
    let audit = run_audit(&c, &[LOGGING]).await;
    let finding = finding_id(&only_finding(&c, &audit, LOGGING).await);
    let map: &[(&str, &[&str])] = &[(LOGGING, &["logging"])];
    let b = server.client_b();
    enable_checks(&b, &[LOGGING]).await;
    create_action(&b, "logging", logging_params(LogLevel::Info)).await;
    let audit_b = run_audit(&b, &[LOGGING]).await;
    server.pause_background_work().await;

    // An audit still in progress is no target.
    let running = start_audit(&c, &[LOGGING]).await;
    let (f, _) = expect_failure(try_start_task(&c, "too-early", audit_target(&running), map).await);
    f.assert("InvalidRequestException", 400);
    assert!(all_tasks(&c).await.is_empty());

    let mut tokens = Vec::new();
    for i in 0..10 {
        let tok = token();
        try_start_task_with_token(&c, &format!("held-{i}"), findings_target(std::slice::from_ref(&finding)), map, &tok)
            .await
            .unwrap_or_else(|e| panic!("held-{i}: {}", DisplayErrorContext(e)));
        tokens.push(tok);
    }
    let out = describe_task(&c, "held-0").await;
    assert_eq!(out.task_status(), Some(&Status::InProgress));
    assert_eq!(out.end_time(), None);
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(LOGGING, st(1, 0, 0, 0, 0))]));
    let pending = executions_paged(&c, "held-0", &finding, None, None).await;
    assert_eq!(pending.iter().map(exec_summary).collect::<Vec<_>>(), [ex("logging", Ex::Pending, None)]);
    assert_eq!((pending[0].start_time(), pending[0].end_time()), (None, None), "{pending:?}");

    let (f, _) = expect_failure(try_start_task(&c, "eleventh", audit_target(&audit), map).await);
    f.assert("LimitExceededException", 410);
    // A replay of an accepted start is still answered.
    let replay = try_start_task_with_token(&c, "held-3", findings_target(std::slice::from_ref(&finding)), map, &tokens[3]).await;
    assert_eq!(
        replay.map(|o| o.task_id().map(str::to_owned)).map_err(|e| DisplayErrorContext(e).to_string()),
        Ok(Some("held-3".to_owned()))
    );
    // The limit is per account: B still has room.
    start_task(&b, "b-task", audit_target(&audit_b), map).await;

    // One ends: room for one more.
    c.cancel_audit_mitigation_actions_task().task_id("held-0").send().await.expect("cancel");
    start_task(&c, "eleventh", findings_target(std::slice::from_ref(&finding)), map).await;
    let (f, _) = expect_failure(try_start_task(&c, "twelfth", audit_target(&audit), map).await);
    f.assert("LimitExceededException", 410);
    assert_eq!(all_tasks(&c).await.len(), 11);

    // The worker back: everything in progress finishes.
    server.resume_background_work();
    for i in 1..10 {
        let out = wait_task(&c, &format!("held-{i}")).await;
        assert_eq!(out.task_status(), Some(&Status::Completed), "held-{i}: {out:?}");
        assert_eq!(stats(&out), stats_of(&[(LOGGING, st(1, 1, 0, 0, 0))]));
    }
    assert_eq!(wait_task(&c, "eleventh").await.task_status(), Some(&Status::Completed));
    assert_eq!(wait_task(&b, "b-task").await.task_status(), Some(&Status::Completed));
    let out = describe_task(&c, "held-0").await;
    assert_eq!(out.task_status(), Some(&Status::Canceled));
    assert_eq!(stats(&out), stats_of(&[(LOGGING, st(1, 0, 0, 0, 1))]));
    assert_eq!(executions(&c, "held-0", &finding).await, [ex("logging", Ex::Canceled, None)]);
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Cancel

#[tokio::test]
async fn cancel_before_any_work() {
    let mut server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING]).await;
    let (c1, arn1) = expiring_cert(&c, "cancel-1").await;
    let (c2, _) = expiring_cert(&c, "cancel-2").await;
    let (c3, _) = expiring_cert(&c, "cancel-3").await;
    thing(&c, "t-cancel", &arn1).await;
    group(&c, "quarantine", None).await;
    create_action(&c, "quarantine", groups_params(&["quarantine"])).await;
    deactivate_action(&c).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    let by_cert = findings_by_cert(&audit_findings(&c, &audit, None).await);
    server.pause_background_work().await;

    start_task(&c, "to-cancel", audit_target(&audit), &[(EXPIRING, &["quarantine", "deactivate"])]).await;
    let out = describe_task(&c, "to-cancel").await;
    assert_eq!(out.task_status(), Some(&Status::InProgress));
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(3, 0, 0, 0, 0))]));
    for finding in by_cert.values() {
        assert_eq!(
            checked_executions(&c, "to-cancel", finding, &out).await,
            [ex("quarantine", Ex::Pending, None), ex("deactivate", Ex::Pending, None)]
        );
    }
    assert_eq!(
        executions_paged(&c, "to-cancel", &by_cert[&c1], Some(Ex::Pending), Some(1)).await.len(),
        2
    );

    let before_cancel = now_secs();
    c.cancel_audit_mitigation_actions_task().task_id("to-cancel").send().await.expect("cancel");
    let out = describe_task(&c, "to-cancel").await;
    assert_eq!(out.task_status(), Some(&Status::Canceled), "{out:?}");
    assert_task_consistent(&out);
    let ended = millis(out.end_time()) / 1000;
    assert!((before_cancel - 1..=now_secs() + 1).contains(&ended), "endTime {ended}");
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(3, 0, 0, 0, 3))]));
    for finding in by_cert.values() {
        assert_eq!(
            checked_executions(&c, "to-cancel", finding, &out).await,
            [ex("quarantine", Ex::Canceled, None), ex("deactivate", Ex::Canceled, None)]
        );
    }
    let (f, _) = expect_failure(c.cancel_audit_mitigation_actions_task().task_id("to-cancel").send().await);
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(c.cancel_audit_mitigation_actions_task().task_id("no-such-task").send().await);
    f.assert("ResourceNotFoundException", 404);
    let now = now_secs();
    assert_eq!(
        list_tasks(&c, now - 3600, now + 3600, None, None, Some(Status::Canceled), None).await,
        [("to-cancel".to_owned(), Status::Canceled)]
    );

    // The worker back: the canceled task's chunk is dropped, never applied.
    server.resume_background_work();
    start_task(&c, "after", findings_target(std::slice::from_ref(&by_cert[&c2])), &[(EXPIRING, &["quarantine"])]).await;
    assert_eq!(wait_task(&c, "after").await.task_status(), Some(&Status::Completed));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for cert in [&c1, &c2, &c3] {
        assert_eq!(cert_status(&c, cert).await, CertificateStatus::Active, "{cert}");
    }
    assert!(groups_of(&c, "t-cancel").await.is_empty());
    let again = describe_task(&c, "to-cancel").await;
    assert_eq!((again.task_status(), stats(&again), again.end_time()), (out.task_status(), stats(&out), out.end_time()));
    // A finished task cannot be canceled.
    let (f, _) = expect_failure(c.cancel_audit_mitigation_actions_task().task_id("after").send().await);
    f.assert("InvalidRequestException", 400);
    server.stop().await;
}

#[tokio::test]
async fn cancel_while_running_keeps_what_was_applied() {
    // Eight chunks of 1,000: the four workers hold one each, and on SQLite the cancel
    // queues behind the stages in flight, so several chunks may finish between the
    // first sight of progress and the cancel.
    const THINGS: usize = 8_000;
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    let resp = server
        .send(server.signed(import_request(&expiring_fleet_jsonl("midway", THINGS, 0))))
        .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["failedLines"], 0, "{}", String::from_utf8_lossy(&resp.body));
    enable_checks(&c, &[EXPIRING]).await;
    group(&c, "midway-hold", None).await;
    create_action(&c, "hold", groups_params(&["midway-hold"])).await;
    deactivate_action(&c).await;
    let audit = run_audit_within(&c, &[EXPIRING], Duration::from_secs(120)).await;

    // Two stages per chunk, so the cancel may also fall between a finding's actions.
    start_task(&c, "midway", audit_target(&audit), &[(EXPIRING, &["hold", "deactivate"])]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = describe_task(&c, "midway").await;
        assert_task_consistent(&out);
        if stats(&out).get(EXPIRING).is_some_and(|s| s.succeeded > 0) {
            break;
        }
        assert_eq!(out.task_status(), Some(&Status::InProgress), "{out:?}");
        assert!(Instant::now() < deadline, "no progress in 60 s: {out:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancel = c.cancel_audit_mitigation_actions_task().task_id("midway").send().await;
    if let Err(e) = cancel {
        panic!(
            "the task finished before it could be canceled (make the fleet larger): {}\n{:?}",
            DisplayErrorContext(e),
            describe_task(&c, "midway").await
        );
    }
    let out = describe_task(&c, "midway").await;
    assert_eq!(out.task_status(), Some(&Status::Canceled), "{out:?}");
    assert_task_consistent(&out);
    let s = stats(&out)[EXPIRING];
    assert_eq!((s.total, s.failed, s.skipped), (THINGS as i64, 0, 0), "{s:?}");
    assert!(s.succeeded > 0 && s.canceled > 0, "{s:?}");

    // Nothing more happens: the rest of the chunks are dropped.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = describe_task(&c, "midway").await;
    assert_eq!(stats(&later), stats(&out));
    let certs = all_cert_statuses(&c).await;
    let inactive: BTreeSet<&String> = certs.iter().filter(|(_, s)| **s == CertificateStatus::Inactive).map(|(id, _)| id).collect();
    assert_eq!(certs.len(), THINGS);
    assert_eq!(inactive.len() as i64, s.succeeded, "applied changes stay, and only those");
    let mut held = BTreeSet::new();
    let mut next: Option<String> = None;
    loop {
        let page = c.list_things_in_thing_group().thing_group_name("midway-hold").max_results(250)
            .set_next_token(next.take()).send().await.expect("ListThingsInThingGroup");
        held.extend(page.things().iter().cloned());
        match page.next_token() {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    assert!(held.len() as i64 >= s.succeeded, "{} held, {s:?}", held.len());

    // Executions agree with the registry, finding by finding (a sample).
    let by_cert = findings_by_cert(&audit_findings(&c, &audit, None).await);
    assert_eq!(by_cert.len(), THINGS);
    let (mut done, mut half, mut canceled) = (0, 0, 0);
    for (i, (cert, finding)) in by_cert.iter().enumerate() {
        if i % 97 != 0 {
            continue;
        }
        let got = executions(&c, "midway", finding).await;
        let things = c.list_principal_things()
            .principal(format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{cert}"))
            .send().await.expect("ListPrincipalThings");
        assert_eq!(things.things().len(), 1, "{things:?}");
        let in_group = held.contains(&things.things()[0]);
        if inactive.contains(cert) {
            assert!(in_group, "{cert}");
            assert_eq!(got, [completed("hold"), completed("deactivate")], "{cert}");
            done += 1;
        } else if in_group {
            assert_eq!(got, [completed("hold"), ex("deactivate", Ex::Canceled, None)], "{cert}");
            half += 1;
        } else {
            assert_eq!(got, [ex("hold", Ex::Canceled, None), ex("deactivate", Ex::Canceled, None)], "{cert}");
            canceled += 1;
        }
    }
    eprintln!("midway: {s:?}; {} things held; sampled {done} done, {half} half done, {canceled} canceled", held.len());
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Which findings are acted on

#[tokio::test]
async fn suppressed_findings_are_never_mitigated() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING]).await;
    let (quiet, _) = expiring_cert(&c, "suppressed").await;
    let (loud, _) = expiring_cert(&c, "not-suppressed").await;
    c.create_audit_suppression()
        .check_name(EXPIRING)
        .resource_identifier(ResourceIdentifier::builder().device_certificate_id(&quiet).build())
        .suppress_indefinitely(true)
        .client_request_token(token())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAuditSuppression: {}", DisplayErrorContext(e)));
    deactivate_action(&c).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    let findings = audit_findings(&c, &audit, None).await;
    let by_cert = findings_by_cert(&findings);
    assert!(findings.iter().any(|f| f.is_suppressed() == Some(true)), "{findings:?}");

    start_task(&c, "whole-audit", audit_target(&audit), &[(EXPIRING, &["deactivate"])]).await;
    let out = wait_task(&c, "whole-audit").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(2, 1, 0, 1, 0))]));
    assert_eq!(cert_status(&c, &quiet).await, CertificateStatus::Active);
    assert_eq!(cert_status(&c, &loud).await, CertificateStatus::Inactive);
    assert_eq!(checked_executions(&c, "whole-audit", &by_cert[&quiet], &out).await, [skipped("deactivate")]);
    assert_eq!(checked_executions(&c, "whole-audit", &by_cert[&loud], &out).await, [completed("deactivate")]);

    // Named explicitly: still not.
    start_task(&c, "by-id", findings_target(std::slice::from_ref(&by_cert[&quiet])), &[(EXPIRING, &["deactivate"])]).await;
    let out = wait_task(&c, "by-id").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(1, 0, 0, 1, 0))]));
    assert_eq!(cert_status(&c, &quiet).await, CertificateStatus::Active);
    server.stop().await;
}

#[tokio::test]
async fn reason_code_filter_limits_the_findings() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING, LOGGING]).await;
    let (soon, _) = expiring_cert(&c, "soon").await;
    let (past, _) = expired_cert(&c, "past").await;
    deactivate_action(&c).await;
    create_action(&c, "logging", logging_params(LogLevel::Info)).await;
    let audit = run_audit(&c, &[EXPIRING, LOGGING]).await;
    let by_cert = findings_by_cert(&audit_findings(&c, &audit, Some(EXPIRING)).await);
    let logging_finding = finding_id(&only_finding(&c, &audit, LOGGING).await);

    start_task(&c, "past-only", filtered_target(&audit, &[(EXPIRING, &[PAST])]),
        &[(EXPIRING, &["deactivate"]), (LOGGING, &["logging"])]).await;
    let out = wait_task(&c, "past-only").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    // LOGGING is mapped but not in the filter: its finding is left out too.
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(2, 1, 0, 1, 0)), (LOGGING, st(1, 0, 0, 1, 0))]));
    assert_eq!(cert_status(&c, &past).await, CertificateStatus::Inactive);
    assert_eq!(cert_status(&c, &soon).await, CertificateStatus::Active);
    assert_eq!(checked_executions(&c, "past-only", &by_cert[&past], &out).await, [completed("deactivate")]);
    assert_eq!(checked_executions(&c, "past-only", &by_cert[&soon], &out).await, [skipped("deactivate")]);
    assert_eq!(checked_executions(&c, "past-only", &logging_finding, &out).await, [skipped("logging")]);
    let target = out.target().expect("target");
    assert_eq!(target.audit_task_id(), Some(audit.as_str()));
    let filter = target.audit_check_to_reason_code_filter().expect("filter");
    assert_eq!(filter.len(), 1);
    assert_eq!(filter[EXPIRING], strings(&[PAST]));

    // Both codes of the check: every finding of it.
    start_task(&c, "both-codes", filtered_target(&audit, &[(EXPIRING, &[PAST, APPROACHING])]),
        &[(EXPIRING, &["deactivate"])]).await;
    let out = wait_task(&c, "both-codes").await;
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(2, 2, 0, 0, 0)), (LOGGING, st(1, 0, 0, 1, 0))]));
    assert_eq!(cert_status(&c, &soon).await, CertificateStatus::Inactive);
    server.stop().await;
}

#[tokio::test]
async fn finding_ids_from_two_audits() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING, LOGGING]).await;
    let (c1, _) = expiring_cert(&c, "across-1").await;
    let (c2, _) = expiring_cert(&c, "across-2").await;
    deactivate_action(&c).await;
    let first = run_audit(&c, &[EXPIRING]).await;
    let (c3, _) = expiring_cert(&c, "across-3").await;
    let second = run_audit(&c, &[EXPIRING, LOGGING]).await;
    let f1 = findings_by_cert(&audit_findings(&c, &first, None).await)[&c1].clone();
    let later = findings_by_cert(&audit_findings(&c, &second, Some(EXPIRING)).await);
    let (f2, f3) = (later[&c2].clone(), later[&c3].clone());
    // A finding of a check the task does not map: counted, skipped, no executions.
    let unmapped = finding_id(&only_finding(&c, &second, LOGGING).await);

    start_task(&c, "across", findings_target(&[f1.clone(), f3.clone(), unmapped.clone()]),
        &[(EXPIRING, &["deactivate"])]).await;
    let out = wait_task(&c, "across").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(2, 2, 0, 0, 0)), (LOGGING, st(1, 0, 0, 1, 0))]));
    assert!(executions(&c, "across", &unmapped).await.is_empty());
    assert_eq!(cert_status(&c, &c1).await, CertificateStatus::Inactive);
    assert_eq!(cert_status(&c, &c2).await, CertificateStatus::Active);
    assert_eq!(cert_status(&c, &c3).await, CertificateStatus::Inactive);
    let target = out.target().expect("target");
    assert_eq!(target.audit_task_id(), None);
    assert_eq!(
        sorted(target.finding_ids().to_vec()),
        sorted(vec![f1.clone(), f3.clone(), unmapped.clone()])
    );
    assert_eq!(checked_executions(&c, "across", &f1, &out).await, [completed("deactivate")]);
    assert_eq!(checked_executions(&c, "across", &f3, &out).await, [completed("deactivate")]);
    // Not in the target, unknown finding, unknown task: nothing to list.
    assert!(executions(&c, "across", &f2).await.is_empty());
    assert!(executions(&c, "across", "no-such-finding").await.is_empty());
    assert!(executions(&c, "no-such-task", &f1).await.is_empty());
    // Listed under the findings it names.
    let now = now_secs();
    let by_finding = |f: String| {
        let c = c.clone();
        async move { list_tasks(&c, now - 3600, now + 3600, None, Some(&f), None, None).await }
    };
    assert_eq!(by_finding(f1.clone()).await, [("across".to_owned(), Status::Completed)]);
    assert_eq!(by_finding(f3.clone()).await, [("across".to_owned(), Status::Completed)]);
    assert!(by_finding(f2.clone()).await.is_empty());
    assert!(by_finding("no-such-finding".to_owned()).await.is_empty());

    // A finding named twice is one finding: refused, or counted and acted on once.
    let twice = try_start_task(&c, "twice", findings_target(&[f2.clone(), f2.clone()]),
        &[(EXPIRING, &["deactivate"])]).await;
    if twice.is_ok() {
        let out = wait_task(&c, "twice").await;
        assert_task_consistent(&out);
        assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(1, 1, 0, 0, 0))]), "{out:?}");
        assert_eq!(executions(&c, "twice", &f2).await, [completed("deactivate")]);
    } else {
        let (f, _) = expect_failure(twice);
        f.assert("InvalidRequestException", 400);
    }
    server.stop().await;
}

#[tokio::test]
async fn an_audit_without_findings_ends_at_once() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING]).await;
    sound_cert(&c, "nothing-wrong").await;
    deactivate_action(&c).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    assert!(audit_findings(&c, &audit, None).await.is_empty());
    start_task(&c, "nothing-to-do", audit_target(&audit), &[(EXPIRING, &["deactivate"])]).await;
    let out = wait_task(&c, "nothing-to-do").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(0, 0, 0, 0, 0))]));
    // It is not in progress: it neither counts towards the limit nor can be canceled.
    let (f, _) = expect_failure(c.cancel_audit_mitigation_actions_task().task_id("nothing-to-do").send().await);
    f.assert("InvalidRequestException", 400);
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// The snapshot of the action definitions

#[tokio::test]
async fn actions_definition_is_a_snapshot() {
    let mut server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING]).await;
    let (cert, arn) = expiring_cert(&c, "snapshot").await;
    thing(&c, "t-snap", &arn).await;
    group(&c, "first", None).await;
    group(&c, "second", None).await;
    create_action(&c, "move", groups_params(&["first"])).await;
    deactivate_action(&c).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    let finding = findings_by_cert(&audit_findings(&c, &audit, None).await)[&cert].clone();
    server.pause_background_work().await;

    start_task(&c, "snap", audit_target(&audit), &[(EXPIRING, &["move", "deactivate"])]).await;
    let snapshot = definitions(&describe_task(&c, "snap").await);
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot["move"].action_params(), Some(&groups_params(&["first"])));
    let move_id = snapshot["move"].id().expect("id").to_owned();

    // Edited and deleted while the task waits.
    c.update_mitigation_action()
        .action_name("move")
        .role_arn(ROLE_ARN_2)
        .action_params(groups_params(&["second"]))
        .send()
        .await
        .expect("UpdateMitigationAction");
    c.delete_mitigation_action().action_name("deactivate").send().await.expect("DeleteMitigationAction");
    assert_eq!(definitions(&describe_task(&c, "snap").await), snapshot);

    server.resume_background_work();
    let out = wait_task(&c, "snap").await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(1, 1, 0, 0, 0))]));
    assert_eq!(definitions(&out), snapshot);
    // What ran is what was defined at the start.
    assert_eq!(groups_of(&c, "t-snap").await, strings(&["first"]));
    assert_eq!(cert_status(&c, &cert).await, CertificateStatus::Inactive);
    let e = executions_paged(&c, "snap", &finding, None, None).await;
    assert_eq!(e[0].action_id(), Some(move_id.as_str()));
    assert_eq!(e.iter().map(exec_summary).collect::<Vec<_>>(), [completed("move"), completed("deactivate")]);

    // Edits after the end change nothing either; the deleted action is gone for new tasks.
    c.update_mitigation_action()
        .action_name("move")
        .action_params(groups_params(&["first", "second"]))
        .send()
        .await
        .expect("UpdateMitigationAction");
    assert_eq!(definitions(&describe_task(&c, "snap").await), snapshot);
    let (f, _) = expect_failure(try_start_task(&c, "snap-2", audit_target(&audit), &[(EXPIRING, &["deactivate"])]).await);
    f.assert("InvalidRequestException", 400);
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Listings

#[tokio::test]
async fn list_tasks_filters_and_paging() {
    let clock = Arc::new(TestClock::new());
    let mut server = TestServer::start_with_clock(ENGINE, clock.clone()).await;
    let c = server.client_a();
    let base = now_secs();
    enable_checks(&c, &[LOGGING, EXPIRING]).await;
    let (c1, arn1) = expiring_cert(&c, "listed").await;
    // A thing on the certificate, so that "ghost" has a thing to add to its missing group.
    thing(&c, "t-listed", &arn1).await;
    create_action(&c, "logging", logging_params(LogLevel::Info)).await;
    deactivate_action(&c).await;
    create_action(&c, "ghost", groups_params(&["no-such-group"])).await;
    let audit1 = run_audit(&c, &[LOGGING, EXPIRING]).await;
    let audit2 = run_audit(&c, &[LOGGING]).await;
    let f_c1 = findings_by_cert(&audit_findings(&c, &audit1, Some(EXPIRING)).await)[&c1].clone();
    let f_log2 = finding_id(&only_finding(&c, &audit2, LOGGING).await);

    // A minute apart on the engine's clock.
    start_task(&c, "t0", audit_target(&audit1), &[(LOGGING, &["logging"])]).await;
    wait_task(&c, "t0").await;
    clock.advance_ms(60_000);
    start_task(&c, "t1", findings_target(std::slice::from_ref(&f_c1)), &[(EXPIRING, &["deactivate"])]).await;
    wait_task(&c, "t1").await;
    clock.advance_ms(60_000);
    start_task(&c, "t2", audit_target(&audit2), &[(LOGGING, &["logging"])]).await;
    wait_task(&c, "t2").await;
    clock.advance_ms(60_000);
    start_task(&c, "t3", findings_target(std::slice::from_ref(&f_c1)), &[(EXPIRING, &["ghost"])]).await;
    assert_eq!(wait_task(&c, "t3").await.task_status(), Some(&Status::Failed));
    clock.advance_ms(60_000);
    server.pause_background_work().await;
    start_task(&c, "t4", findings_target(std::slice::from_ref(&f_log2)), &[(LOGGING, &["logging"])]).await;
    c.cancel_audit_mitigation_actions_task().task_id("t4").send().await.expect("cancel");
    start_task(&c, "t5", findings_target(std::slice::from_ref(&f_log2)), &[(LOGGING, &["logging"])]).await;

    use Status::{Canceled, Completed, Failed, InProgress};
    let (from, to) = (base - 3600, base + 3600);
    let list = |audit: Option<&str>, finding: Option<&str>, status: Option<Status>| {
        let c = c.clone();
        let (audit, finding) = (audit.map(str::to_owned), finding.map(str::to_owned));
        async move { list_tasks(&c, from, to, audit.as_deref(), finding.as_deref(), status, None).await }
    };
    let pairs = |items: &[(&str, Status)]| -> Vec<(String, Status)> {
        items.iter().map(|(id, s)| (id.to_string(), s.clone())).collect()
    };
    let newest_first = pairs(&[("t5", InProgress), ("t4", Canceled), ("t3", Failed), ("t2", Completed), ("t1", Completed), ("t0", Completed)]);
    assert_eq!(list(None, None, None).await, newest_first);
    assert_eq!(list(Some(&audit1), None, None).await, pairs(&[("t0", Completed)]));
    assert_eq!(list(Some(&audit2), None, None).await, pairs(&[("t2", Completed)]));
    assert!(list(Some("0123456789abcdef0123456789abcdef"), None, None).await.is_empty());
    assert_eq!(list(None, Some(&f_c1), None).await, pairs(&[("t3", Failed), ("t1", Completed), ("t0", Completed)]));
    assert_eq!(list(None, Some(&f_log2), None).await, pairs(&[("t5", InProgress), ("t4", Canceled), ("t2", Completed)]));
    assert_eq!(list(None, None, Some(Completed)).await, pairs(&[("t2", Completed), ("t1", Completed), ("t0", Completed)]));
    assert_eq!(list(None, None, Some(Failed)).await, pairs(&[("t3", Failed)]));
    assert_eq!(list(None, None, Some(Canceled)).await, pairs(&[("t4", Canceled)]));
    assert_eq!(list(None, None, Some(InProgress)).await, pairs(&[("t5", InProgress)]));
    assert_eq!(list(Some(&audit1), Some(&f_c1), Some(Completed)).await, pairs(&[("t0", Completed)]));
    assert!(list(Some(&audit2), None, Some(Failed)).await.is_empty());

    // The window is on the start time.
    let window = list_tasks(&c, base + 90, base + 200, None, None, None, None).await;
    assert_eq!(window, pairs(&[("t3", Failed), ("t2", Completed)]));
    assert!(list_tasks(&c, base - 7200, base - 3600, None, None, None, None).await.is_empty());

    // Pages of one and of four: the same tasks in the same order.
    for page in [1, 4] {
        assert_eq!(list_tasks(&c, from, to, None, None, None, Some(page)).await, newest_first, "pages of {page}");
    }
    assert_eq!(
        list_tasks(&c, from, to, None, Some(&f_c1), None, Some(1)).await,
        pairs(&[("t3", Failed), ("t1", Completed), ("t0", Completed)])
    );
    let first = c.list_audit_mitigation_actions_tasks()
        .start_time(aws_sdk_iot::primitives::DateTime::from_secs(from))
        .end_time(aws_sdk_iot::primitives::DateTime::from_secs(to))
        .max_results(1)
        .send().await.expect("first page");
    let next = first.next_token().expect("more than one page").to_owned();
    let mut tampered: Vec<char> = next.chars().collect();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let (f, _) = expect_failure(
        c.list_audit_mitigation_actions_tasks()
            .start_time(aws_sdk_iot::primitives::DateTime::from_secs(from))
            .end_time(aws_sdk_iot::primitives::DateTime::from_secs(to))
            .next_token(tampered.into_iter().collect::<String>())
            .send().await,
    );
    f.assert("InvalidRequestException", 400);
    // A token is for its own account.
    let (f, _) = expect_failure(
        server.client_b().list_audit_mitigation_actions_tasks()
            .start_time(aws_sdk_iot::primitives::DateTime::from_secs(from))
            .end_time(aws_sdk_iot::primitives::DateTime::from_secs(to))
            .next_token(&next)
            .send().await,
    );
    f.assert("InvalidRequestException", 400);
    // startTime and endTime are required (the SDK insists too, so on the wire).
    let query = |q: &str| server.signed(RawRequest::get(&format!("/audit/mitigationactions/tasks?{q}")));
    let resp = server.send(query(&format!("startTime={from}&endTime={to}"))).await;
    assert_eq!(resp.status, 200, "{}", resp.message());
    server.send(query(&format!("endTime={to}"))).await.assert_error(400, "InvalidRequestException");
    server.send(query(&format!("startTime={from}"))).await.assert_error(400, "InvalidRequestException");
    server.send(query(&format!("startTime={from}&endTime={to}&maxResults=0"))).await.assert_error(400, "InvalidRequestException");
    server.send(query(&format!("startTime={from}&endTime={to}&taskStatus=DONE"))).await.assert_error(400, "InvalidRequestException");
    server.resume_background_work();
    assert_eq!(wait_task(&c, "t5").await.task_status(), Some(&Completed));
    server.stop().await;
}

#[tokio::test]
async fn list_executions_paging_and_status_filter() {
    let server = TestServer::start(ENGINE).await;
    let c = server.client_a();
    enable_checks(&c, &[EXPIRING]).await;
    let (cert, arn) = expiring_cert(&c, "five").await;
    thing(&c, "t-five", &arn).await;
    for g in ["g1", "g2", "g3"] {
        group(&c, g, None).await;
    }
    create_action(&c, "a1", groups_params(&["g1"])).await;
    create_action(&c, "a2", groups_params(&["g2"])).await;
    create_action(&c, "a3", groups_params(&["no-such-group"])).await;
    create_action(&c, "a4", groups_params(&["g3"])).await;
    create_action(&c, "a5", params(MitigationActionType::UpdateDeviceCertificate)).await;
    let audit = run_audit(&c, &[EXPIRING]).await;
    let finding = findings_by_cert(&audit_findings(&c, &audit, None).await)[&cert].clone();

    start_task(&c, "five", audit_target(&audit), &[(EXPIRING, &["a1", "a2", "a3", "a4", "a5"])]).await;
    let out = wait_task(&c, "five").await;
    assert_eq!(out.task_status(), Some(&Status::Failed), "{out:?}");
    assert_task_consistent(&out);
    assert_eq!(stats(&out), stats_of(&[(EXPIRING, st(1, 0, 1, 0, 0))]));
    let want = vec![
        completed("a1"),
        completed("a2"),
        failed("a3", "ResourceNotFoundException"),
        skipped("a4"),
        skipped("a5"),
    ];
    assert_eq!(checked_executions(&c, "five", &finding, &out).await, want);
    let summary = |v: Vec<aws_sdk_iot::types::AuditMitigationActionExecutionMetadata>| v.iter().map(exec_summary).collect::<Vec<_>>();
    for page in [1, 2, 3, 250] {
        assert_eq!(summary(executions_paged(&c, "five", &finding, None, Some(page)).await), want, "pages of {page}");
    }
    for (status, expected) in [
        (Ex::Completed, vec![completed("a1"), completed("a2")]),
        (Ex::Failed, vec![failed("a3", "ResourceNotFoundException")]),
        (Ex::Skipped, vec![skipped("a4"), skipped("a5")]),
        (Ex::Pending, vec![]),
        (Ex::Canceled, vec![]),
        (Ex::InProgress, vec![]),
    ] {
        for page in [1, 25] {
            assert_eq!(
                summary(executions_paged(&c, "five", &finding, Some(status.clone()), Some(page)).await),
                expected,
                "{status:?}, pages of {page}"
            );
        }
    }
    // The registry: the two groups before the failure, nothing after it.
    assert_eq!(groups_of(&c, "t-five").await, strings(&["g1", "g2"]));
    assert_eq!(cert_status(&c, &cert).await, CertificateStatus::Active);

    // Limits and tokens.
    for bad in [0, 251] {
        let (f, _) = expect_failure(
            c.list_audit_mitigation_actions_executions().task_id("five").finding_id(&finding).max_results(bad).send().await,
        );
        f.assert("InvalidRequestException", 400);
    }
    let first = c.list_audit_mitigation_actions_executions().task_id("five").finding_id(&finding)
        .max_results(1).send().await.expect("first page");
    let next = first.next_token().expect("a next page").to_owned();
    let mut tampered: Vec<char> = next.chars().collect();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let (f, _) = expect_failure(
        c.list_audit_mitigation_actions_executions().task_id("five").finding_id(&finding)
            .next_token(tampered.into_iter().collect::<String>()).send().await,
    );
    f.assert("InvalidRequestException", 400);
    // A token is for its own filter.
    let (f, _) = expect_failure(
        c.list_audit_mitigation_actions_executions().task_id("five").finding_id(&finding)
            .action_status(Ex::Skipped).next_token(&next).send().await,
    );
    f.assert("InvalidRequestException", 400);
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// Retention

#[tokio::test]
async fn finished_tasks_are_purged_after_90_days() {
    let clock = Arc::new(TestClock::new());
    let server = TestServer::start_with_clock(ENGINE, clock.clone()).await;
    let c = server.client_a();
    enable_checks(&c, &[LOGGING]).await;
    create_action(&c, "logging", logging_params(LogLevel::Info)).await;
    let audit = run_audit(&c, &[LOGGING]).await;
    let finding = finding_id(&only_finding(&c, &audit, LOGGING).await);
    start_task(&c, "old", audit_target(&audit), &[(LOGGING, &["logging"])]).await;
    assert_eq!(wait_task(&c, "old").await.task_status(), Some(&Status::Completed));

    clock.advance_days(91);
    let recent_audit = run_audit(&c, &[LOGGING]).await;
    start_task(&c, "recent", audit_target(&recent_audit), &[(LOGGING, &["logging"])]).await;
    assert_eq!(wait_task(&c, "recent").await.task_status(), Some(&Status::Completed));
    server.engine.purge_audit_history().await.expect("purge");
    let (f, _) = expect_failure(c.describe_audit_mitigation_actions_task().task_id("old").send().await);
    f.assert("ResourceNotFoundException", 404);
    assert!(executions(&c, "old", &finding).await.is_empty());
    assert_eq!(describe_task(&c, "recent").await.task_status(), Some(&Status::Completed));
    // The id is free again.
    start_task(&c, "old", audit_target(&recent_audit), &[(LOGGING, &["logging"])]).await;
    server.stop().await;
}

}
