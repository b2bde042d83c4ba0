//! Audit notifications: when an audit task ends (COMPLETED, FAILED or CANCELED) and the
//! account's SNS notification target is enabled, the task's summary is published to
//! that topic (the payload of AWS's `arn:aws:iot:::schema:auditnotification/1.0`).
//!
//! Durability: the summary is built when the task ends and enqueued on the durable work
//! queue ([`NOTIFICATION_QUEUE`]) in the same store transaction that records the end
//! (`AuditStore::update_audit_task_with_work`), so a task is never recorded as over
//! without the notification it owes, whatever crashes after. Every node runs a
//! notification worker beside its audit worker: it claims one item at a time with a
//! lease, publishes it, and deletes it; an unreachable endpoint or an SNS error worth
//! retrying puts the item back with exponential backoff, and after [`MAX_ATTEMPTS`]
//! claims it is dropped with an error in the log. Delivery is at least once: a node that
//! dies between publishing and deleting the item leaves it to be published again.
//!
//! The audit never waits for SNS: a task's end costs one store transaction more than
//! without notifications, and publishing happens beside the audit worker, not in it.

use std::time::Duration;

use palisade_sns::{Publisher, PublisherSettings};
use palisade_store::{AuditTaskRecord, NewWorkItem, Scope, WorkItem};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::tasks::{self, decode_checks};
use crate::{Engine, EngineError, EngineResult};

/// The work queue audit notifications wait on.
pub(crate) const NOTIFICATION_QUEUE: &str = "audit-notification";

/// The notification target type (`auditNotificationTargetConfigurations` key) for SNS.
const SNS_TARGET: &str = "SNS";
/// The type of tasks a scheduled audit starts, the only ones with a scheduled audit name.
const SCHEDULED_TASK: &str = "SCHEDULED_AUDIT_TASK";

/// A publish takes at most the SDK's connect plus operation timeouts (25 s); the lease
/// outlasts that, so no other node publishes the same item while one is at it.
const LEASE_MS: i64 = 60_000;
/// How often an idle notification worker looks for work (enqueued here or elsewhere).
const POLL: Duration = Duration::from_secs(1);
/// Claims of one notification before it is given up on.
const MAX_ATTEMPTS: u32 = 10;
/// The first retry's delay; each later one doubles, up to [`MAX_RETRY_DELAY_MS`]. Ten
/// attempts span about 40 minutes, enough to ride out an SNS or network outage of that
/// order without keeping a dead item forever.
const FIRST_RETRY_DELAY_MS: i64 = 5_000;
const MAX_RETRY_DELAY_MS: i64 = 15 * 60 * 1000;

/// The published summary of a finished audit, field for field as AWS documents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditNotification {
    pub account_id: String,
    pub task_id: String,
    /// `COMPLETED`, `FAILED` or `CANCELED`.
    pub task_status: String,
    /// `ON_DEMAND_AUDIT_TASK` or `SCHEDULED_AUDIT_TASK`.
    pub task_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_audit_name: Option<String>,
    pub failed_checks_count: i64,
    pub canceled_checks_count: i64,
    pub non_compliant_checks_count: i64,
    pub compliant_checks_count: i64,
    pub total_checks_count: i64,
    /// Epoch milliseconds.
    pub task_start_time: i64,
    pub audit_details: Vec<NotificationCheck>,
}

/// One check's line in [`AuditNotification`]. The counts are always present (AWS's
/// schema requires them), zero for checks that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotificationCheck {
    pub check_name: String,
    pub check_run_status: String,
    pub non_compliant_resources_count: i64,
    pub total_resources_count: i64,
    /// Newer AWS documentation adds the suppressed count; its name follows
    /// `AuditCheckDetails`.
    pub suppressed_non_compliant_resources_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// A notification waiting on the queue: where it goes and what it says, fixed when the
/// task ended.
#[derive(Debug, Serialize, Deserialize)]
struct NotificationWork {
    account_id: String,
    region: String,
    task_id: String,
    topic_arn: String,
    /// The JSON document to publish.
    message: String,
}

/// The summary of `task`, which has ended, in `scope`'s account. Counts come from the
/// same functions as DescribeAuditTask's, so the two never disagree.
pub(crate) fn notification(
    scope: &Scope,
    task: &AuditTaskRecord,
) -> EngineResult<AuditNotification> {
    let checks = decode_checks(task)?;
    let stats = tasks::statistics(&checks);
    let count = |n: Option<i32>| i64::from(n.unwrap_or(0));
    Ok(AuditNotification {
        account_id: scope.account_id.clone(),
        task_id: task.task_id.clone(),
        task_status: task.status.clone(),
        task_type: task.task_type.clone(),
        scheduled_audit_name: task
            .scheduled_audit_name
            .clone()
            .filter(|_| task.task_type == SCHEDULED_TASK),
        failed_checks_count: count(stats.failed_checks),
        canceled_checks_count: count(stats.canceled_checks),
        non_compliant_checks_count: count(stats.non_compliant_checks),
        compliant_checks_count: count(stats.compliant_checks),
        total_checks_count: count(stats.total_checks),
        task_start_time: task.started_at_ms,
        audit_details: checks
            .iter()
            .map(|(name, progress)| {
                let d = tasks::details(progress);
                NotificationCheck {
                    check_name: name.clone(),
                    check_run_status: progress.status.clone(),
                    non_compliant_resources_count: d.non_compliant_resources_count.unwrap_or(0),
                    total_resources_count: d.total_resources_count.unwrap_or(0),
                    suppressed_non_compliant_resources_count: d
                        .suppressed_non_compliant_resources_count
                        .unwrap_or(0),
                    message: d.message,
                    error_code: d.error_code,
                }
            })
            .collect(),
    })
}

/// How long to wait before the next attempt after `attempts` failed ones.
fn retry_delay_ms(attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(20);
    FIRST_RETRY_DELAY_MS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_DELAY_MS)
}

impl Engine {
    /// Records a task's new state (`AuditStore::update_audit_task`'s compare-and-set).
    /// When the task has ended and the account's SNS target is enabled at that moment,
    /// the notification is enqueued in the same transaction.
    pub(crate) async fn record_task(
        &self,
        scope: &Scope,
        task: &AuditTaskRecord,
    ) -> EngineResult<bool> {
        if task.status == tasks::IN_PROGRESS {
            return Ok(self.store().update_audit_task(scope, task).await?);
        }
        let config = self.audit_configuration(scope).await?;
        let topic = config
            .notifications
            .get(SNS_TARGET)
            .filter(|t| t.enabled)
            .and_then(|t| t.target_arn.clone());
        let Some(topic_arn) = topic else {
            return Ok(self.store().update_audit_task(scope, task).await?);
        };
        let message = serde_json::to_string(&notification(scope, task)?)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let work = NewWorkItem {
            id: format!("audit-notification/{}", task.task_id),
            queue: NOTIFICATION_QUEUE.into(),
            payload: serde_json::to_string(&NotificationWork {
                account_id: scope.account_id.clone(),
                region: scope.region.clone(),
                task_id: task.task_id.clone(),
                topic_arn,
                message,
            })
            .map_err(|e| EngineError::Internal(e.to_string()))?,
            run_after_ms: self.now_ms(),
        };
        Ok(self
            .store()
            .update_audit_task_with_work(scope, task, &work)
            .await?)
    }

    /// The SNS publisher the settings describe.
    pub(crate) fn sns_publisher(&self) -> Publisher {
        let sns = &self.audit_settings().sns;
        Publisher::new(PublisherSettings {
            endpoint_url: sns.endpoint_url.clone(),
            access_key_id: sns.access_key_id.clone(),
            secret_access_key: sns.secret_access_key.clone(),
            ..PublisherSettings::default()
        })
    }

    /// This node's notification worker: publishes queued notifications until stopped.
    pub(crate) async fn notification_loop(
        self,
        worker: String,
        mut stopped: watch::Receiver<bool>,
    ) {
        let publisher = self.sns_publisher();
        loop {
            if *stopped.borrow() {
                return;
            }
            let claimed = self
                .store()
                .claim_work(NOTIFICATION_QUEUE, &worker, 1, self.now_ms(), LEASE_MS)
                .await;
            match claimed {
                Ok(items) if !items.is_empty() => {
                    for item in items {
                        self.publish_notification(&publisher, &worker, item).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "notification worker: claiming work failed"),
            }
            tokio::select! {
                _ = stopped.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn publish_notification(&self, publisher: &Publisher, worker: &str, item: WorkItem) {
        let work: NotificationWork = match serde_json::from_str(&item.payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(item = %item.id, error = %e, "audit notification: unreadable work item; dropping it");
                let _ = self.store().complete_work(&item.id, worker).await;
                return;
            }
        };
        let outcome = publisher
            .publish(&work.topic_arn, &work.message, None)
            .await;
        let done = match outcome {
            Ok(message_id) => {
                tracing::info!(
                    task = %work.task_id,
                    account = %work.account_id,
                    topic = %work.topic_arn,
                    message_id = %message_id,
                    "audit notification published"
                );
                true
            }
            Err(e) if e.is_retryable() && item.attempts < MAX_ATTEMPTS => {
                let delay = retry_delay_ms(item.attempts);
                tracing::warn!(
                    task = %work.task_id,
                    account = %work.account_id,
                    topic = %work.topic_arn,
                    attempt = item.attempts,
                    retry_in_ms = delay,
                    error = %e,
                    "audit notification not published; it will be retried"
                );
                if let Err(e) = self
                    .store()
                    .release_work(&item.id, worker, self.now_ms().saturating_add(delay))
                    .await
                {
                    // The lease lapses by itself and the item is claimed again.
                    tracing::warn!(item = %item.id, error = %e, "audit notification: releasing the item failed");
                }
                false
            }
            Err(e) => {
                tracing::error!(
                    task = %work.task_id,
                    account = %work.account_id,
                    region = %work.region,
                    topic = %work.topic_arn,
                    attempts = item.attempts,
                    error = %e,
                    "audit notification given up"
                );
                true
            }
        };
        if done {
            if let Err(e) = self.store().complete_work(&item.id, worker).await {
                // The item is offered again once the lease lapses: published twice
                // rather than lost.
                tracing::warn!(item = %item.id, error = %e, "audit notification: completing the item failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::audits::tasks::{encode_checks, CheckProgress, TaskChecks};

    fn progress(status: &str, total: i64, non_compliant: i64, suppressed: i64) -> CheckProgress {
        CheckProgress {
            status: status.into(),
            configuration: BTreeMap::new(),
            total,
            non_compliant,
            suppressed,
            error_code: None,
            message: None,
        }
    }

    fn task(
        status: &str,
        task_type: &str,
        name: Option<&str>,
        checks: &TaskChecks,
    ) -> AuditTaskRecord {
        AuditTaskRecord {
            task_id: "4e2bcd1ccbc2a5dd15292a82ab80c380".into(),
            task_type: task_type.into(),
            status: status.into(),
            scheduled_audit_name: name.map(str::to_owned),
            started_at_ms: 1_524_740_766_191,
            finished_at_ms: Some(1_524_740_799_000),
            checks_json: encode_checks(checks).expect("encode"),
            version: 7,
        }
    }

    fn scope() -> Scope {
        Scope {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn completed_on_demand_task_matches_the_documented_shape() {
        let mut checks = TaskChecks::new();
        checks.insert(
            "LOGGING_DISABLED_CHECK".into(),
            progress("COMPLETED_NON_COMPLIANT", 1, 1, 0),
        );
        checks.insert(
            "IOT_POLICY_OVERLY_PERMISSIVE_CHECK".into(),
            progress("COMPLETED_COMPLIANT", 12, 2, 2),
        );
        let mut failed = progress("FAILED", 0, 0, 0);
        failed.error_code = Some("INSUFFICIENT_PERMISSIONS".into());
        failed.message = Some("no access".into());
        checks.insert("DEVICE_CERTIFICATE_SHARED_CHECK".into(), failed);
        let t = task(tasks::COMPLETED, tasks::ON_DEMAND, None, &checks);
        let json =
            serde_json::to_value(notification(&scope(), &t).expect("payload")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "accountId": "123456789012",
                "taskId": "4e2bcd1ccbc2a5dd15292a82ab80c380",
                "taskStatus": "COMPLETED",
                "taskType": "ON_DEMAND_AUDIT_TASK",
                "failedChecksCount": 1,
                "canceledChecksCount": 0,
                "nonCompliantChecksCount": 1,
                "compliantChecksCount": 1,
                "totalChecksCount": 3,
                "taskStartTime": 1_524_740_766_191_i64,
                "auditDetails": [
                    {
                        "checkName": "DEVICE_CERTIFICATE_SHARED_CHECK",
                        "checkRunStatus": "FAILED",
                        "nonCompliantResourcesCount": 0,
                        "totalResourcesCount": 0,
                        "suppressedNonCompliantResourcesCount": 0,
                        "message": "no access",
                        "errorCode": "INSUFFICIENT_PERMISSIONS"
                    },
                    {
                        "checkName": "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
                        "checkRunStatus": "COMPLETED_COMPLIANT",
                        "nonCompliantResourcesCount": 2,
                        "totalResourcesCount": 12,
                        "suppressedNonCompliantResourcesCount": 2
                    },
                    {
                        "checkName": "LOGGING_DISABLED_CHECK",
                        "checkRunStatus": "COMPLETED_NON_COMPLIANT",
                        "nonCompliantResourcesCount": 1,
                        "totalResourcesCount": 1,
                        "suppressedNonCompliantResourcesCount": 0
                    }
                ]
            })
        );
        // Integers, never floats or strings: subscribers compare them as numbers.
        assert!(json["taskStartTime"].is_i64() && json["totalChecksCount"].is_i64());
    }

    #[test]
    fn canceled_task_counts_canceled_checks() {
        let mut checks = TaskChecks::new();
        checks.insert(
            "LOGGING_DISABLED_CHECK".into(),
            progress("COMPLETED_COMPLIANT", 1, 0, 0),
        );
        checks.insert(
            "CA_CERTIFICATE_EXPIRING_CHECK".into(),
            progress("CANCELED", 0, 0, 0),
        );
        let t = task(tasks::CANCELED, tasks::ON_DEMAND, None, &checks);
        let n = notification(&scope(), &t).expect("payload");
        assert_eq!(n.task_status, "CANCELED");
        assert_eq!(
            (
                n.canceled_checks_count,
                n.compliant_checks_count,
                n.total_checks_count
            ),
            (1, 1, 2)
        );
        assert_eq!(n.audit_details[0].check_run_status, "CANCELED");
        assert_eq!(n.audit_details[0].total_resources_count, 0);
    }

    #[test]
    fn scheduled_audit_name_only_for_scheduled_tasks() {
        let mut checks = TaskChecks::new();
        checks.insert(
            "LOGGING_DISABLED_CHECK".into(),
            progress("COMPLETED_COMPLIANT", 1, 0, 0),
        );
        let scheduled = task(tasks::COMPLETED, SCHEDULED_TASK, Some("weekly"), &checks);
        let json = serde_json::to_value(notification(&scope(), &scheduled).expect("payload"))
            .expect("json");
        assert_eq!(json["taskType"], "SCHEDULED_AUDIT_TASK");
        assert_eq!(json["scheduledAuditName"], "weekly");

        // A stray name on an on-demand task is not reported.
        let on_demand = task(tasks::COMPLETED, tasks::ON_DEMAND, Some("weekly"), &checks);
        let json = serde_json::to_value(notification(&scope(), &on_demand).expect("payload"))
            .expect("json");
        assert!(json.get("scheduledAuditName").is_none(), "{json}");
    }

    #[test]
    fn unreadable_progress_is_an_internal_error() {
        let mut t = task(tasks::COMPLETED, tasks::ON_DEMAND, None, &TaskChecks::new());
        t.checks_json = "not json".into();
        assert!(matches!(
            notification(&scope(), &t),
            Err(EngineError::Internal(_))
        ));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        assert_eq!(retry_delay_ms(1), 5_000);
        assert_eq!(retry_delay_ms(2), 10_000);
        assert_eq!(retry_delay_ms(3), 20_000);
        assert_eq!(retry_delay_ms(9), MAX_RETRY_DELAY_MS);
        assert_eq!(retry_delay_ms(u32::MAX), MAX_RETRY_DELAY_MS);
        let total: i64 = (1..MAX_ATTEMPTS).map(retry_delay_ms).sum();
        assert!(
            (30 * 60_000..60 * 60_000).contains(&total),
            "all retries span {total} ms"
        );
    }
}
