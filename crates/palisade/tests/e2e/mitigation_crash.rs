//! kill -9 during an audit mitigation actions task over 10,000 findings: after each
//! restart the task goes on, and it ends COMPLETED with exact statistics and every
//! execution applied exactly once.
//!
//! The real binary runs on a fleet imported with `palisade fleet import`: 10,000 things,
//! each with its own device certificate expiring in 10 days (a
//! DEVICE_CERTIFICATE_EXPIRING_CHECK finding each), and 200 policies granting `iot:*`
//! (an IOT_POLICY_OVERLY_PERMISSIVE_CHECK finding each). The task deactivates every
//! certificate (countable: each ends INACTIVE) and replaces the default version of every
//! policy (not idempotent: a repeated execution would leave a third version). A short
//! work lease (`--audit-work-lease-ms`) lets the restarted server take over the chunks
//! the killed one held within seconds.

use std::time::{Duration, Instant};

use crate::common::mitigation::*;
use crate::common::process::*;
use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditMitigationActionsExecutionStatus as Ex,
    AuditMitigationActionsTaskStatus as Status, CertificateStatus, MitigationActionType,
};
use aws_sdk_iot::Client;

const ACCOUNT: &str = "000000000000";
const ROLE: &str = "arn:aws:iam::000000000000:role/palisade-crash-mitigation";
const LEASE_MS: &str = "2000";
const THINGS: usize = 10_000;
const POLICIES: usize = 200;
/// Kills aimed at the task while it runs; at least [`MIN_KILLS`] must land before it ends.
const KILLS: usize = 4;
const MIN_KILLS: usize = 2;

/// How many findings the task has processed so far (all checks).
fn processed(
    out: &aws_sdk_iot::operation::describe_audit_mitigation_actions_task::DescribeAuditMitigationActionsTaskOutput,
) -> i64 {
    stats(out)
        .values()
        .map(|s| s.succeeded + s.failed + s.skipped + s.canceled)
        .sum()
}

async fn create(client: &Client, name: &str, t: MitigationActionType) {
    client
        .create_mitigation_action()
        .action_name(name)
        .role_arn(ROLE)
        .action_params(params_for(&t))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateMitigationAction {name}: {}", DisplayErrorContext(e)));
}

async fn mitigation_survives_kill_9(engine: StoreKind) {
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
    std::fs::write(&fleet, expiring_fleet_jsonl("crash", THINGS, POLICIES)).expect("fleet");
    fleet_import(&fleet, ACCOUNT, &data, &db_args);
    eprintln!("fleet generated and imported in {:?}", started.elapsed());

    let mut server = ServerProcess::start_with(&data, &serve_args).await;
    let keys = read_profile(&data.join("credentials"), "palisade");
    let client_for =
        |s: &ServerProcess| sdk_client(&s.endpoint, &keys.access_key_id, &keys.secret_access_key);
    let mut client = client_for(&server);
    let mut config = client.update_account_audit_configuration().role_arn(ROLE);
    for check in [EXPIRING, PERMISSIVE] {
        config = config.audit_check_configurations(
            check,
            AuditCheckConfiguration::builder().enabled(true).build(),
        );
    }
    config
        .send()
        .await
        .unwrap_or_else(|e| panic!("enabling the checks: {}", DisplayErrorContext(e)));
    let audit = run_audit_within(&client, &[EXPIRING, PERMISSIVE], Duration::from_secs(120)).await;
    create(
        &client,
        "deactivate",
        MitigationActionType::UpdateDeviceCertificate,
    )
    .await;
    create(
        &client,
        "blank",
        MitigationActionType::ReplaceDefaultPolicyVersion,
    )
    .await;
    eprintln!("audit done at {:?}", started.elapsed());

    start_task(
        &client,
        "crash",
        audit_target(&audit),
        &[(EXPIRING, &["deactivate"]), (PERMISSIVE, &["blank"])],
    )
    .await;
    let task_started = Instant::now();

    // Kill soon after the task has made progress since the last restart (the first time:
    // at once), so every kill lands while chunks are claimed and stages are being written.
    let mut landed = Vec::new();
    let mut seen = 0;
    'kills: for kill in 0..KILLS {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = describe_task(&client, "crash").await;
            assert_task_consistent(&out);
            if out.task_status() != Some(&Status::InProgress) {
                eprintln!("the task ended before kill {kill}");
                break 'kills;
            }
            let now = processed(&out);
            if kill == 0 || now > seen {
                // Somewhere inside the next stage rather than right after a commit.
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 100)).await;
                server.kill_hard();
                seen = now;
                landed.push(now);
                eprintln!(
                    "kill {kill} at {now} processed findings, {:?} into the task",
                    task_started.elapsed()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no progress within 60 s: {out:?}\nserver log:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server = ServerProcess::start_with(&data, &serve_args).await;
        client = client_for(&server);
    }
    assert!(
        landed.len() >= MIN_KILLS,
        "only {} kill(s) landed while the task ran ({landed:?}): make the fleet larger",
        landed.len()
    );

    let out = wait_task_within(&client, "crash", Duration::from_secs(120)).await;
    eprintln!(
        "task ended {:?} after it started, after {} kills",
        task_started.elapsed(),
        landed.len()
    );
    assert_eq!(
        out.task_status(),
        Some(&Status::Completed),
        "{out:?}\nserver log:\n{}",
        server.log_text()
    );
    assert_task_consistent(&out);
    assert_eq!(
        stats(&out),
        stats_of(&[
            (EXPIRING, st(THINGS as i64, THINGS as i64, 0, 0, 0)),
            (PERMISSIVE, st(POLICIES as i64, POLICIES as i64, 0, 0, 0)),
        ])
    );

    // The registry: every certificate INACTIVE, every policy with exactly one more version.
    let certs = all_cert_statuses(&client).await;
    assert_eq!(certs.len(), THINGS);
    let active: Vec<&String> = certs
        .iter()
        .filter(|(_, s)| **s != CertificateStatus::Inactive)
        .map(|(id, _)| id)
        .collect();
    assert!(
        active.is_empty(),
        "{} not INACTIVE: {:?}",
        active.len(),
        &active[..active.len().min(5)]
    );
    for i in 0..POLICIES {
        let name = format!("crash-broad-{i:05}");
        assert_eq!(
            policy_versions(&client, &name).await,
            [("1".to_owned(), false), ("2".to_owned(), true)],
            "{name}"
        );
    }
    let (_, doc) = default_policy(&client, "crash-broad-00000").await;
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(BLANK_POLICY).unwrap()
    );

    // Exactly one execution per finding (a sample of them), COMPLETED.
    let findings = audit_findings(&client, &audit, None).await;
    assert_eq!(findings.len(), THINGS + POLICIES);
    for (i, f) in findings.iter().enumerate() {
        let policy = f.check_name() == Some(PERMISSIVE);
        if !policy && i % 100 != 0 {
            continue;
        }
        let action = if policy { "blank" } else { "deactivate" };
        assert_eq!(
            executions(&client, "crash", &finding_id(f)).await,
            [ex(action, Ex::Completed, None)],
            "{f:?}"
        );
    }
    // No run of the server panicked (each wrote its own log beside the data dir).
    for entry in std::fs::read_dir(root.path()).expect("tempdir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!log.contains("panicked"), "{}:\n{log}", path.display());
        }
    }
    eprintln!("crash test done in {:?}", started.elapsed());
    drop(server);
    drop(pg);
}

#[tokio::test]
async fn mitigation_survives_kill_9_sqlite() {
    mitigation_survives_kill_9(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn mitigation_survives_kill_9_postgres() {
    mitigation_survives_kill_9(StoreKind::Postgres).await;
}
