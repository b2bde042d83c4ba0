//! SNS audit notifications, published to a real SNS implementation (moto) on loopback.
//!
//! Each test runs its own moto server with a topic and a subscribed SQS queue (raw
//! delivery), points Palisade's SNS settings at it, and reads what Palisade published
//! from the queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::moto::{free_port, Moto, TopicQueue};
use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::describe_audit_task::DescribeAuditTaskOutput;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditNotificationTarget, AuditNotificationType, AuditTaskStatus,
};
use aws_sdk_iot::Client;
use palisade_engine::AuditSettings;
use serde_json::Value;

const LOGGING: &str = "LOGGING_DISABLED_CHECK";
const POLICY: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
/// How long a published notification may take to show up on the queue.
const DELIVERY: Duration = Duration::from_secs(20);

fn settings(sns: palisade_engine::SnsSettings) -> AuditSettings {
    AuditSettings {
        sns,
        ..AuditSettings::default()
    }
}

/// Enables LOGGING and POLICY, and the SNS target (`topic`, on or off).
async fn configure(client: &Client, topic: &str, enabled: bool) {
    client
        .update_account_audit_configuration()
        .role_arn(ROLE_ARN)
        .audit_check_configurations(
            LOGGING,
            AuditCheckConfiguration::builder().enabled(true).build(),
        )
        .audit_check_configurations(
            POLICY,
            AuditCheckConfiguration::builder().enabled(true).build(),
        )
        .audit_notification_target_configurations(
            AuditNotificationType::Sns,
            AuditNotificationTarget::builder()
                .target_arn(topic)
                .role_arn(ROLE_ARN)
                .enabled(enabled)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "UpdateAccountAuditConfiguration: {}",
                DisplayErrorContext(e)
            )
        });
}

async fn start_audit(client: &Client) -> String {
    client
        .start_on_demand_audit_task()
        .target_check_names(LOGGING)
        .target_check_names(POLICY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartOnDemandAuditTask: {}", DisplayErrorContext(e)))
        .task_id()
        .expect("taskId")
        .to_owned()
}

async fn describe(client: &Client, task_id: &str) -> DescribeAuditTaskOutput {
    client
        .describe_audit_task()
        .task_id(task_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeAuditTask: {}", DisplayErrorContext(e)))
}

/// Polls until the task is no longer IN_PROGRESS (at most `within`).
async fn wait_done(client: &Client, task_id: &str, within: Duration) -> DescribeAuditTaskOutput {
    let deadline = Instant::now() + within;
    loop {
        let out = describe(client, task_id).await;
        if out.task_status() != Some(&AuditTaskStatus::InProgress) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "task {task_id} still IN_PROGRESS: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one notification on the queue, parsed.
async fn one_notification(moto: &Moto, queue: &TopicQueue) -> Value {
    let bodies = moto.receive(&queue.queue_url, DELIVERY).await;
    assert_eq!(bodies.len(), 1, "expected one notification: {bodies:?}");
    serde_json::from_str(&bodies[0]).expect("notification is JSON")
}

/// The payload agrees with DescribeAuditTask, field by field, in AWS's names and types.
#[track_caller]
fn assert_matches_task(n: &Value, task_id: &str, out: &DescribeAuditTaskOutput) {
    let stats = out.task_statistics().expect("taskStatistics");
    let int = |v: &Value| {
        v.as_i64()
            .unwrap_or_else(|| panic!("{v} is not an integer: {n}"))
    };
    assert_eq!(n["accountId"], ACCOUNT_A, "{n}");
    assert_eq!(n["taskId"], task_id, "{n}");
    assert_eq!(
        n["taskStatus"],
        out.task_status().expect("status").as_str(),
        "{n}"
    );
    assert_eq!(n["taskType"], "ON_DEMAND_AUDIT_TASK", "{n}");
    assert!(n.get("scheduledAuditName").is_none(), "{n}");
    let stat = |s: Option<i32>| i64::from(s.unwrap_or(0));
    assert_eq!(
        int(&n["totalChecksCount"]),
        stat(stats.total_checks()),
        "{n}"
    );
    assert_eq!(
        int(&n["compliantChecksCount"]),
        stat(stats.compliant_checks()),
        "{n}"
    );
    assert_eq!(
        int(&n["nonCompliantChecksCount"]),
        stat(stats.non_compliant_checks()),
        "{n}"
    );
    assert_eq!(
        int(&n["failedChecksCount"]),
        stat(stats.failed_checks()),
        "{n}"
    );
    assert_eq!(
        int(&n["canceledChecksCount"]),
        stat(stats.canceled_checks()),
        "{n}"
    );
    // DescribeAuditTask sends epoch seconds as a JSON number, whose binary fraction can
    // come back a millisecond short; the notification carries the exact milliseconds.
    let started = out
        .task_start_time()
        .expect("taskStartTime")
        .to_millis()
        .expect("ms");
    let published = int(&n["taskStartTime"]);
    assert!(
        (published - started).abs() <= 1,
        "{published} vs {started}: {n}"
    );
    let details = n["auditDetails"].as_array().expect("auditDetails array");
    let described = out.audit_details().expect("auditDetails");
    assert_eq!(details.len(), described.len(), "{n}");
    for d in details {
        let name = d["checkName"].as_str().expect("checkName");
        let want = &described[name];
        assert_eq!(
            d["checkRunStatus"],
            want.check_run_status().expect("status").as_str(),
            "{n}"
        );
        assert_eq!(
            int(&d["nonCompliantResourcesCount"]),
            want.non_compliant_resources_count().unwrap_or(0),
            "{n}"
        );
        assert_eq!(
            int(&d["totalResourcesCount"]),
            want.total_resources_count().unwrap_or(0),
            "{n}"
        );
        assert_eq!(
            int(&d["suppressedNonCompliantResourcesCount"]),
            want.suppressed_non_compliant_resources_count().unwrap_or(0),
            "{n}"
        );
    }
}

per_engine! {
    #[tokio::test]
    async fn completed_audit_is_published_to_the_topic() {
        let moto = Moto::start().await;
        let queue = moto.topic_with_queue("audit-completed").await;
        let server = TestServer::start_with_settings(
            ENGINE,
            Arc::new(TestClock::new()),
            true,
            settings(moto.sns_settings()),
        )
        .await;
        let client = server.client_a();
        configure(&client, &queue.topic_arn, true).await;

        let task_id = start_audit(&client).await;
        let out = wait_done(&client, &task_id, Duration::from_secs(30)).await;
        assert_eq!(out.task_status(), Some(&AuditTaskStatus::Completed), "{out:?}");
        let n = one_notification(&moto, &queue).await;
        assert_matches_task(&n, &task_id, &out);
        // Logging is off and there are no policies.
        assert_eq!(n["nonCompliantChecksCount"], 1, "{n}");
        assert_eq!(n["compliantChecksCount"], 1, "{n}");
        let logging = n["auditDetails"]
            .as_array()
            .expect("details")
            .iter()
            .find(|d| d["checkName"] == LOGGING)
            .expect("logging check")
            .clone();
        assert_eq!(logging["checkRunStatus"], "COMPLETED_NON_COMPLIANT", "{n}");
        assert_eq!(logging["nonCompliantResourcesCount"], 1, "{n}");
        // Exactly once.
        let more = moto.receive(&queue.queue_url, Duration::from_secs(2)).await;
        assert!(more.is_empty(), "{more:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn canceled_audit_is_published_once_a_worker_runs() {
        let moto = Moto::start().await;
        let queue = moto.topic_with_queue("audit-canceled").await;
        // No worker at first: the task stays IN_PROGRESS until canceled, and the
        // notification waits on the queue (as after a crash) until a worker starts.
        let server = TestServer::start_with_settings(
            ENGINE,
            Arc::new(TestClock::new()),
            false,
            settings(moto.sns_settings()),
        )
        .await;
        let client = server.client_a();
        configure(&client, &queue.topic_arn, true).await;
        let task_id = start_audit(&client).await;
        client
            .cancel_audit_task()
            .task_id(&task_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CancelAuditTask: {}", DisplayErrorContext(e)));
        let nothing = moto.receive(&queue.queue_url, Duration::from_millis(500)).await;
        assert!(nothing.is_empty(), "published without a worker: {nothing:?}");

        let background = server.engine.start_background_work();
        let out = describe(&client, &task_id).await;
        assert_eq!(out.task_status(), Some(&AuditTaskStatus::Canceled), "{out:?}");
        let n = one_notification(&moto, &queue).await;
        assert_matches_task(&n, &task_id, &out);
        assert_eq!(n["taskStatus"], "CANCELED", "{n}");
        assert_eq!(n["canceledChecksCount"], 2, "{n}");
        for d in n["auditDetails"].as_array().expect("details") {
            assert_eq!(d["checkRunStatus"], "CANCELED", "{n}");
        }
        background.stop().await;
        server.stop().await;
    }

    #[tokio::test]
    async fn disabled_target_publishes_nothing() {
        let moto = Moto::start().await;
        let queue = moto.topic_with_queue("audit-disabled").await;
        let server = TestServer::start_with_settings(
            ENGINE,
            Arc::new(TestClock::new()),
            true,
            settings(moto.sns_settings()),
        )
        .await;
        let client = server.client_a();
        configure(&client, &queue.topic_arn, false).await;
        let quiet = start_audit(&client).await;
        wait_done(&client, &quiet, Duration::from_secs(30)).await;
        let nothing = moto.receive(&queue.queue_url, Duration::from_secs(3)).await;
        assert!(nothing.is_empty(), "published while disabled: {nothing:?}");

        // Enabled again, the next audit is published, and only that one.
        configure(&client, &queue.topic_arn, true).await;
        let loud = start_audit(&client).await;
        let out = wait_done(&client, &loud, Duration::from_secs(30)).await;
        let n = one_notification(&moto, &queue).await;
        assert_matches_task(&n, &loud, &out);
        server.stop().await;
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_retried_without_holding_up_audits() {
        // First the endpoint takes connections and drops them (SNS down behind a load
        // balancer); later moto starts on the same port.
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&attempts);
        let dropper = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        let clock = Arc::new(TestClock::new());
        let endpoint = format!("http://127.0.0.1:{port}");
        let server = TestServer::start_with_settings(
            ENGINE,
            Arc::clone(&clock),
            true,
            settings(Moto::sns_settings_for(&endpoint)),
        )
        .await;
        let client = server.client_a();
        let topic = Moto::topic_arn("audit-retried");
        configure(&client, &topic, true).await;

        let task_id = start_audit(&client).await;
        let out = wait_done(&client, &task_id, Duration::from_secs(30)).await;
        assert_eq!(out.task_status(), Some(&AuditTaskStatus::Completed), "{out:?}");
        // The audits go on meanwhile.
        let second = start_audit(&client).await;
        let second_out = wait_done(&client, &second, Duration::from_secs(30)).await;
        assert_eq!(second_out.task_status(), Some(&AuditTaskStatus::Completed));

        let deadline = Instant::now() + Duration::from_secs(20);
        while attempts.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "no publish attempt reached the endpoint");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        dropper.abort();
        let _ = dropper.await;

        let moto = Moto::start_on(port).await;
        let queue = moto.topic_with_queue("audit-retried").await;
        assert_eq!(queue.topic_arn, topic);
        // Past every backoff: the retries are due now.
        clock.advance_ms(60 * 60 * 1000);
        let mut bodies = moto.receive(&queue.queue_url, DELIVERY).await;
        let deadline = Instant::now() + DELIVERY;
        while bodies.len() < 2 && Instant::now() < deadline {
            bodies.extend(moto.receive(&queue.queue_url, Duration::from_secs(2)).await);
        }
        let mut ids: Vec<String> = bodies
            .iter()
            .map(|b| {
                let n: Value = serde_json::from_str(b).expect("JSON");
                n["taskId"].as_str().expect("taskId").to_owned()
            })
            .collect();
        ids.sort();
        let mut want = vec![task_id, second];
        want.sort();
        assert_eq!(ids, want, "{bodies:?}");
        server.stop().await;
    }
}
