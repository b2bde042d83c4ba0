//! Two `palisade serve` processes on one PostgreSQL database share the chunks of one big
//! audit mitigation actions task: it ends with exact statistics and one execution per
//! finding, also when one of the nodes is killed part-way and the other takes over its
//! chunks once their leases run out.

use std::path::PathBuf;
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
use palisade_testdb::TestDatabase;
use tempfile::TempDir;

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/palisade-multi-node-mitigation";
const LEASE_MS: &str = "2000";

/// Two nodes on one fresh database with a fleet of `things` expiring certificates
/// imported into [`ACCOUNT`], the expiring check audited, and the action `deactivate`.
struct Cluster {
    nodes: Vec<ServerProcess>,
    keys: Keys,
    audit: String,
    db: TestDatabase,
    root: TempDir,
}

impl Cluster {
    async fn start(things: usize) -> Self {
        let started = Instant::now();
        let db = TestDatabase::create().await;
        let root = tempfile::tempdir().expect("tempdir");
        let db_args = ["--database-url", db.url.as_str()];
        let fleet = root.path().join("fleet.jsonl");
        std::fs::write(&fleet, expiring_fleet_jsonl("multi", things, 0)).expect("fleet");
        fleet_import(&fleet, ACCOUNT, &root.path().join("import"), &db_args);
        let keys = parse_created(&stdout_of(&palisade(&[
            "credentials",
            "create",
            "--account-id",
            ACCOUNT,
            "--database-url",
            &db.url,
        ])));
        let serve_args = [
            "--database-url",
            db.url.as_str(),
            "--audit-work-lease-ms",
            LEASE_MS,
        ];
        let (dir_a, dir_b): (PathBuf, PathBuf) =
            (root.path().join("node-a"), root.path().join("node-b"));
        let (a, b) = tokio::join!(
            ServerProcess::start_with(&dir_a, &serve_args),
            ServerProcess::start_with(&dir_b, &serve_args),
        );
        let mut cluster = Self {
            nodes: vec![a, b],
            keys,
            audit: String::new(),
            db,
            root,
        };
        let client = cluster.client(0);
        let mut config = client.update_account_audit_configuration().role_arn(ROLE);
        config = config.audit_check_configurations(
            EXPIRING,
            AuditCheckConfiguration::builder().enabled(true).build(),
        );
        config
            .send()
            .await
            .unwrap_or_else(|e| panic!("enabling the check: {}", DisplayErrorContext(e)));
        client
            .create_mitigation_action()
            .action_name("deactivate")
            .role_arn(ROLE)
            .action_params(params_for(&MitigationActionType::UpdateDeviceCertificate))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateMitigationAction: {}", DisplayErrorContext(e)));
        cluster.audit = run_audit_within(&client, &[EXPIRING], Duration::from_secs(120)).await;
        eprintln!(
            "cluster with {things} findings ready in {:?}",
            started.elapsed()
        );
        cluster
    }

    fn client(&self, node: usize) -> Client {
        sdk_client(
            &self.nodes[node].endpoint,
            &self.keys.access_key_id,
            &self.keys.secret_access_key,
        )
    }

    /// What each node's log says about mitigation work, for the report.
    fn mitigation_log_lines(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                n.log_text()
                    .lines()
                    .filter(|l| l.contains("mitigation"))
                    .count()
            })
            .collect()
    }

    /// The task ended COMPLETED with every finding deactivated exactly once: exact
    /// statistics, every certificate INACTIVE, one COMPLETED execution per finding
    /// (a sample, read through both nodes).
    async fn assert_all_done(&self, task: &str, things: usize, reader: usize) {
        let client = self.client(reader);
        let out = wait_task_within(&client, task, Duration::from_secs(120)).await;
        assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
        assert_task_consistent(&out);
        assert_eq!(
            stats(&out),
            stats_of(&[(EXPIRING, st(things as i64, things as i64, 0, 0, 0))])
        );
        let certs = all_cert_statuses(&client).await;
        assert_eq!(certs.len(), things);
        assert!(
            certs.values().all(|s| *s == CertificateStatus::Inactive),
            "{} certificates not INACTIVE",
            certs
                .values()
                .filter(|s| **s != CertificateStatus::Inactive)
                .count()
        );
        let findings = audit_findings(&client, &self.audit, None).await;
        assert_eq!(findings.len(), things);
        for (i, f) in findings.iter().enumerate().step_by(97) {
            let via = self.client(i % 2);
            assert_eq!(
                executions(&via, task, &finding_id(f)).await,
                [ex("deactivate", Ex::Completed, None)],
                "{f:?}"
            );
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let log = n.log_text();
            assert!(!log.contains("panicked"), "node {i} log:\n{log}");
        }
    }
}

#[tokio::test]
async fn two_nodes_finish_one_big_task_together() {
    const THINGS: usize = 6_000;
    let cluster = Cluster::start(THINGS).await;
    let (a, b) = (cluster.client(0), cluster.client(1));
    let started = Instant::now();
    start_task(
        &a,
        "together",
        audit_target(&cluster.audit),
        &[(EXPIRING, &["deactivate"])],
    )
    .await;
    // Both nodes see the same task at every moment.
    let through_b = describe_task(&b, "together").await;
    assert_eq!(
        through_b.target().and_then(|t| t.audit_task_id()),
        Some(cluster.audit.as_str())
    );
    cluster.assert_all_done("together", THINGS, 1).await;
    eprintln!(
        "{THINGS} findings mitigated by two nodes in {:?}; mitigation log lines per node: {:?}",
        started.elapsed(),
        cluster.mitigation_log_lines()
    );

    // A listing token from one node is good on the other.
    let now = now_secs();
    start_task(
        &b,
        "second",
        audit_target(&cluster.audit),
        &[(EXPIRING, &["deactivate"])],
    )
    .await;
    wait_task_within(&a, "second", Duration::from_secs(120)).await;
    let first = a
        .list_audit_mitigation_actions_tasks()
        .start_time(aws_sdk_iot::primitives::DateTime::from_secs(now - 3600))
        .end_time(aws_sdk_iot::primitives::DateTime::from_secs(now + 3600))
        .max_results(1)
        .send()
        .await
        .expect("page 1 through node a");
    let rest = b
        .list_audit_mitigation_actions_tasks()
        .start_time(aws_sdk_iot::primitives::DateTime::from_secs(now - 3600))
        .end_time(aws_sdk_iot::primitives::DateTime::from_secs(now + 3600))
        .next_token(first.next_token().expect("a second page"))
        .send()
        .await
        .expect("page 2 through node b");
    let ids: Vec<&str> = first
        .tasks()
        .iter()
        .chain(rest.tasks())
        .map(|t| t.task_id().unwrap())
        .collect();
    assert_eq!(ids, ["second", "together"]);
}

#[tokio::test]
async fn a_killed_nodes_chunks_are_taken_over() {
    const THINGS: usize = 5_000;
    let mut cluster = Cluster::start(THINGS).await;
    let a = cluster.client(0);
    start_task(
        &a,
        "taken-over",
        audit_target(&cluster.audit),
        &[(EXPIRING, &["deactivate"])],
    )
    .await;
    // Node a, woken by the start, claims chunks at once; kill it once the task has made
    // progress, with chunks left.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = describe_task(&a, "taken-over").await;
        assert_eq!(
            out.task_status(),
            Some(&Status::InProgress),
            "the task finished before node a could be killed (make the fleet larger): {out:?}"
        );
        if stats(&out).get(EXPIRING).is_some_and(|s| s.succeeded > 0) {
            eprintln!("killing node a at {:?}", stats(&out));
            break;
        }
        assert!(Instant::now() < deadline, "no progress in 60 s: {out:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.nodes[0].kill_hard();
    let log_a = cluster.nodes[0].log_text();
    assert!(!log_a.contains("panicked"), "node a log:\n{log_a}");
    // Node b alone finishes it. Node a restarted afterwards reads the same result.
    let b = cluster.client(1);
    let out = wait_task_within(&b, "taken-over", Duration::from_secs(120)).await;
    assert_eq!(out.task_status(), Some(&Status::Completed), "{out:?}");
    let dir_a = cluster.root.path().join("node-a");
    let serve_args = [
        "--database-url",
        cluster.db.url.as_str(),
        "--audit-work-lease-ms",
        LEASE_MS,
    ];
    cluster.nodes[0] = ServerProcess::start_with(&dir_a, &serve_args).await;
    cluster.assert_all_done("taken-over", THINGS, 0).await;
}
