//! kill -9 during an audit of a large fleet: the audit completes after a restart, with no
//! duplicate findings and the counts an uninterrupted audit has.
//!
//! The real binary runs on a fleet imported with `palisade fleet import`, with a short
//! work lease (`--audit-work-lease-ms`) so the restarted server resumes the task within
//! seconds rather than after the production minute. The server is killed twice: once
//! while the device certificate checks write their findings, once (after it resumed)
//! while the policy checks do.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::common::process::*;
use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::describe_audit_task::DescribeAuditTaskOutput;
use aws_sdk_iot::types::{AuditCheckConfiguration, AuditFinding, AuditTaskStatus, CertificateMode};
use aws_sdk_iot::Client;
use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use serde_json::json;

const ACCOUNT: &str = "000000000000";
const ROLE: &str = "arn:aws:iam::000000000000:role/palisade-crash-audit";
/// The restarted server resumes the task once the dead one's lease lapses.
const LEASE_MS: &str = "2000";

/// Large enough that each device check takes a while in a debug build, so the kill
/// lands mid-check; small enough to generate and import in seconds.
const DEVICE_CERTS: usize = 12_000;
/// Every third device certificate expires within the 30-day threshold.
const EXPIRING_EVERY: usize = 3;
/// Half of them broad: more findings than one write batch (1,000), so the second kill
/// can land while the policy check is part-way through writing them.
const POLICIES: usize = 6_000;
/// Registered CAs; the first two expire within 30 days.
const CAS: usize = 3;
const EXPIRING_CAS: usize = 2;

const AGE: &str = "DEVICE_CERTIFICATE_AGE_CHECK";
const EXPIRING: &str = "DEVICE_CERTIFICATE_EXPIRING_CHECK";
const KEY_QUALITY: &str = "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK";
const CA_EXPIRING: &str = "CA_CERTIFICATE_EXPIRING_CHECK";
const CA_KEY_QUALITY: &str = "CA_CERTIFICATE_KEY_QUALITY_CHECK";
const PERMISSIVE: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
const MISCONFIG: &str = "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK";
const LOGGING: &str = "LOGGING_DISABLED_CHECK";
const CHECKS: [&str; 8] = [
    AGE,
    EXPIRING,
    KEY_QUALITY,
    CA_EXPIRING,
    CA_KEY_QUALITY,
    PERMISSIVE,
    MISCONFIG,
    LOGGING,
];

/// The kind of policy number `i` of the fleet, so expectations follow from the index.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    /// iot:* on *: an overly permissive finding.
    Broad,
    /// A Deny whose topic has an MQTT wildcard: a misconfiguration finding.
    DenyWildcard,
    Compliant,
}

fn policy_kind(i: usize) -> PolicyKind {
    match i % 4 {
        0 | 2 => PolicyKind::Broad,
        1 => PolicyKind::DenyWildcard,
        _ => PolicyKind::Compliant,
    }
}

fn policy_document(i: usize) -> serde_json::Value {
    let arn = |rest: &str| format!("arn:aws:iot:{REGION}:{ACCOUNT}:{rest}");
    let own_client = arn("client/${iot:Connection.Thing.ThingName}");
    let own_topic = arn(&format!(
        "topic/sensors/{i}/${{iot:Connection.Thing.ThingName}}"
    ));
    let statements = match policy_kind(i) {
        PolicyKind::Broad => json!([{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]),
        PolicyKind::DenyWildcard => json!([
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": own_client},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": own_topic},
            {"Effect": "Deny", "Action": "iot:Publish",
             "Resource": arn(&format!("topic/building/{i}/+/control"))},
        ]),
        PolicyKind::Compliant => json!([
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": own_client},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": own_topic},
        ]),
    };
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The fleet as JSON Lines for `palisade fleet import`: the policies, then one thing per
/// device certificate. One key signs every certificate (each has its own serial and
/// subject, so its own id); signing runs on two threads.
fn fleet_jsonl() -> String {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Palisade crash-test issuer");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, ca_key);
    let device_key = KeyPair::generate().expect("device key");
    let device = |i: usize| {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("crash-thing-{i:06}"));
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&(i as u64 + 1).to_be_bytes()));
        let days = if i.is_multiple_of(EXPIRING_EVERY) {
            10
        } else {
            1000
        };
        set_validity(&mut params, -86_400, days * 86_400);
        let pem = params
            .signed_by(&device_key, &issuer)
            .expect("device certificate")
            .pem();
        json!({"type": "thing", "name": format!("crash-thing-{i:06}"),
               "certificatePem": pem, "certificateStatus": "ACTIVE",
               "certificatePolicies": [format!("crash-policy-{:05}", i % POLICIES)]})
        .to_string()
    };
    let halves: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|half| {
                let device = &device;
                s.spawn(move || (half..DEVICE_CERTS).step_by(2).map(device).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread"))
            .collect()
    });
    let mut out = String::new();
    for i in 0..POLICIES {
        let line = json!({"type": "policy", "name": format!("crash-policy-{i:05}"),
                          "document": policy_document(i)});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    for line in halves.iter().flatten() {
        out.push_str(line);
        out.push('\n');
    }
    out
}

async fn register_cas(client: &Client) {
    for i in 0..CAS {
        let to_days = if i < EXPIRING_CAS { 10 } else { 1000 };
        let ca = TestCa::with_validity(&format!("crash-ca-{i}"), -1, to_days);
        client
            .register_ca_certificate()
            .ca_certificate(&ca.pem)
            .certificate_mode(CertificateMode::SniOnly)
            .set_as_active(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("RegisterCACertificate: {}", DisplayErrorContext(e)));
    }
}

async fn describe(client: &Client, task_id: &str) -> DescribeAuditTaskOutput {
    client
        .describe_audit_task()
        .task_id(task_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeAuditTask: {}", DisplayErrorContext(e)))
}

/// Whether the task has at least one finding of `check` yet.
async fn has_findings(client: &Client, task_id: &str, check: &str) -> bool {
    let page = client
        .list_audit_findings()
        .task_id(task_id)
        .check_name(check)
        .max_results(1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAuditFindings: {}", DisplayErrorContext(e)));
    !page.findings().is_empty()
}

async fn all_findings(client: &Client, task_id: &str) -> Vec<AuditFinding> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_audit_findings()
            .task_id(task_id)
            .max_results(250)
            .set_next_token(token.take())
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

/// Waits until the task has findings of `check` and is still running, then kills the
/// server; the checks that had finished by then, for the report. Panics if the task
/// finished first: the fleet is too small for this machine.
async fn kill_during(
    server: &mut ServerProcess,
    client: &Client,
    task_id: &str,
    check: &str,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        assert!(
            Instant::now() < deadline,
            "no finding of {check} within {within:?}; server log:\n{}",
            server.log_text()
        );
        if has_findings(client, task_id, check).await {
            let task = describe(client, task_id).await;
            assert_eq!(
                task.task_status(),
                Some(&AuditTaskStatus::InProgress),
                "the audit finished before the server could be killed during {check}: \
                 make the fleet larger"
            );
            server.kill_hard();
            return task
                .audit_details()
                .into_iter()
                .flatten()
                .filter(|(_, d)| {
                    d.check_run_status()
                        .is_some_and(|s| s.as_str().starts_with("COMPLETED"))
                })
                .map(|(name, _)| name.clone())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_finished(
    client: &Client,
    task_id: &str,
    within: Duration,
) -> DescribeAuditTaskOutput {
    let deadline = Instant::now() + within;
    loop {
        let task = describe(client, task_id).await;
        if task.task_status() != Some(&AuditTaskStatus::InProgress) {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "the audit did not finish within {within:?}: {task:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (total, non-compliant) resources each check should report for the fleet.
fn expected_counts() -> BTreeMap<&'static str, (i64, i64)> {
    let devices = DEVICE_CERTS as i64;
    let expiring = DEVICE_CERTS.div_ceil(EXPIRING_EVERY) as i64;
    let broad = (0..POLICIES)
        .filter(|&i| policy_kind(i) == PolicyKind::Broad)
        .count() as i64;
    let deny = (0..POLICIES)
        .filter(|&i| policy_kind(i) == PolicyKind::DenyWildcard)
        .count() as i64;
    let policies = POLICIES as i64;
    BTreeMap::from([
        (AGE, (devices, 0)),
        (EXPIRING, (devices, expiring)),
        (KEY_QUALITY, (devices, 0)),
        (CA_EXPIRING, (CAS as i64, EXPIRING_CAS as i64)),
        (CA_KEY_QUALITY, (CAS as i64, 0)),
        (PERMISSIVE, (policies, broad)),
        (MISCONFIG, (policies, deny)),
        // Logging was never enabled.
        (LOGGING, (1, 1)),
    ])
}

async fn audit_survives_kill_9(engine: StoreKind) {
    let started = Instant::now();
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let pg = match engine {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => Some(palisade_testdb::TestDatabase::create().await),
    };
    let mut db_args: Vec<&str> = Vec::new();
    if let Some(pg) = &pg {
        db_args = vec!["--database-url", pg.url.as_str()];
    }
    let mut serve_args = db_args.clone();
    serve_args.extend(["--audit-work-lease-ms", LEASE_MS]);

    let fleet = root.path().join("fleet.jsonl");
    std::fs::write(&fleet, fleet_jsonl()).expect("writing the fleet");
    fleet_import(&fleet, ACCOUNT, &data, &db_args);
    eprintln!("fleet generated and imported in {:?}", started.elapsed());

    let mut server = ServerProcess::start_with(&data, &serve_args).await;
    let keys = read_profile(&data.join("credentials"), "palisade");
    let client_for =
        |s: &ServerProcess| sdk_client(&s.endpoint, &keys.access_key_id, &keys.secret_access_key);
    let client = client_for(&server);
    register_cas(&client).await;
    let mut config = client.update_account_audit_configuration().role_arn(ROLE);
    for check in CHECKS {
        config = config.audit_check_configurations(
            check,
            AuditCheckConfiguration::builder().enabled(true).build(),
        );
    }
    config
        .send()
        .await
        .unwrap_or_else(|e| panic!("enabling the checks: {}", DisplayErrorContext(e)));
    let task_id = client
        .start_on_demand_audit_task()
        .set_target_check_names(Some(CHECKS.iter().map(|c| c.to_string()).collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartOnDemandAuditTask: {}", DisplayErrorContext(e)))
        .task_id()
        .expect("taskId")
        .to_owned();
    let audit_started = Instant::now();

    // First kill: while the device certificate checks run.
    let done = kill_during(
        &mut server,
        &client,
        &task_id,
        EXPIRING,
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "killed {:?} into the audit, checks finished: {done:?}",
        audit_started.elapsed()
    );

    // Second kill: after the restarted server resumed, while the policy checks run.
    let mut server = ServerProcess::start_with(&data, &serve_args).await;
    let client = client_for(&server);
    let done = kill_during(
        &mut server,
        &client,
        &task_id,
        PERMISSIVE,
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "killed again {:?} into the audit, checks finished: {done:?}",
        audit_started.elapsed()
    );

    let server = ServerProcess::start_with(&data, &serve_args).await;
    let client = client_for(&server);
    let task = wait_finished(&client, &task_id, Duration::from_secs(60)).await;
    eprintln!(
        "audit finished {:?} after it started",
        audit_started.elapsed()
    );
    assert_eq!(
        task.task_status(),
        Some(&AuditTaskStatus::Completed),
        "{task:?}\nserver log:\n{}",
        server.log_text()
    );

    // No finding twice: by id, and by what it says.
    let findings = all_findings(&client, &task_id).await;
    let mut ids = HashSet::new();
    let mut claims = HashSet::new();
    let mut per_check: BTreeMap<String, i64> = BTreeMap::new();
    for f in &findings {
        let id = f.finding_id().expect("findingId");
        assert!(ids.insert(id.to_owned()), "finding {id} listed twice");
        let check = f.check_name().expect("checkName").to_owned();
        let resource = format!("{:?}", f.non_compliant_resource());
        let reason = f.reason_for_non_compliance_code().unwrap_or_default();
        assert!(
            claims.insert((check.clone(), resource.clone(), reason.to_owned())),
            "two findings of {check} for {resource} with {reason}"
        );
        *per_check.entry(check).or_default() += 1;
    }

    // The counts of an uninterrupted audit, in the details and in the findings.
    let details = task.audit_details().expect("auditDetails");
    let expected = expected_counts();
    for (check, (total, non_compliant)) in &expected {
        let d = details
            .get(*check)
            .unwrap_or_else(|| panic!("no details for {check}"));
        assert_eq!(
            (d.total_resources_count(), d.non_compliant_resources_count()),
            (Some(*total), Some(*non_compliant)),
            "{check}: {d:?}"
        );
        assert_eq!(
            per_check.get(*check).copied().unwrap_or(0),
            *non_compliant,
            "{check}: findings listed"
        );
        let status = d.check_run_status().map(|s| s.as_str().to_owned());
        let want = if *non_compliant > 0 {
            "COMPLETED_NON_COMPLIANT"
        } else {
            "COMPLETED_COMPLIANT"
        };
        assert_eq!(status.as_deref(), Some(want), "{check}");
    }
    assert_eq!(details.len(), CHECKS.len());
    assert_eq!(
        findings.len() as i64,
        expected.values().map(|(_, n)| n).sum::<i64>()
    );

    let stats = task.task_statistics().expect("taskStatistics");
    let non_compliant_checks = expected.values().filter(|(_, n)| *n > 0).count() as i32;
    assert_eq!(stats.total_checks(), Some(CHECKS.len() as i32), "{stats:?}");
    assert_eq!(stats.in_progress_checks(), Some(0), "{stats:?}");
    assert_eq!(
        stats.waiting_for_data_collection_checks(),
        Some(0),
        "{stats:?}"
    );
    assert_eq!(stats.failed_checks(), Some(0), "{stats:?}");
    assert_eq!(stats.canceled_checks(), Some(0), "{stats:?}");
    assert_eq!(
        stats.non_compliant_checks(),
        Some(non_compliant_checks),
        "{stats:?}"
    );
    assert_eq!(
        stats.compliant_checks(),
        Some(CHECKS.len() as i32 - non_compliant_checks),
        "{stats:?}"
    );
    let log = server.log_text();
    assert!(!log.contains("panicked"), "server log:\n{log}");
    eprintln!("crash test done in {:?}", started.elapsed());
    drop(server);
    drop(pg);
}

#[tokio::test]
async fn audit_survives_kill_9_sqlite() {
    audit_survives_kill_9(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn audit_survives_kill_9_postgres() {
    audit_survives_kill_9(StoreKind::Postgres).await;
}
