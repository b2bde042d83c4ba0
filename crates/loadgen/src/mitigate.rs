//! `mitigate`: the client side of the mitigation benchmark. Creates an
//! UPDATE_DEVICE_CERTIFICATE mitigation action, starts an audit mitigation actions task
//! over every finding of one check of a finished audit, and, until the task ends, asks
//! DescribeAuditMitigationActionsTask at a steady rate (open loop, see `poll`), recording
//! the latency of every answer and the task's progress.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::audit::{call, call_ok};
use crate::client::{self, Target};
use crate::poll::{self, Sender};

#[derive(Debug, Clone)]
pub struct MitigateConfig {
    /// The audit whose findings the task targets; `None`: the newest finished on-demand
    /// audit of the last 89 days (ListAuditTasks).
    pub audit_task_id: Option<String>,
    /// The check mapped to the action.
    pub check: String,
    /// The UPDATE_DEVICE_CERTIFICATE action, created if missing.
    pub action_name: String,
    pub role_arn: String,
    /// The mitigation task's id; `None`: `bench-<unix ms>`.
    pub task_id: Option<String>,
    /// DescribeAuditMitigationActionsTask requests per second while the task runs.
    pub rate: u32,
    /// Give up (and fail) if the task has not ended by then.
    pub timeout: Duration,
    /// How often to print the task's progress.
    pub progress_every: Duration,
}

#[derive(Debug)]
pub struct MitigateReport {
    pub task_id: String,
    pub audit_task_id: String,
    pub status: String,
    /// The check's non-compliant resources in the audit.
    pub findings: i64,
    /// Executions the task recorded as run (succeeded or failed), over all checks.
    pub executions: i64,
    /// How long StartAuditMitigationActionsTask took to answer.
    pub start_call: Duration,
    /// From sending StartAuditMitigationActionsTask to the first answer saying the task ended.
    pub wall: Duration,
    /// The task's endTime − startTime, as the server recorded them.
    pub server_seconds: Option<f64>,
    pub statistics: Value,
    /// (seconds since the start, findings processed) at each progress report.
    pub progress: Vec<(f64, i64)>,
    pub poll: poll::PollReport,
}

impl MitigateReport {
    pub fn executions_per_second(&self) -> f64 {
        self.executions as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn print(&self, json_line: bool) {
        eprintln!(
            "mitigation task {} over audit {}: {} in {:.2} s (Start answered in {:.0} ms; server endTime - startTime {})",
            self.task_id,
            self.audit_task_id,
            self.status,
            self.wall.as_secs_f64(),
            self.start_call.as_secs_f64() * 1000.0,
            self.server_seconds
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s")),
        );
        eprintln!(
            "  {} findings of the check in the audit, {} executions: {:.0} executions/s end to end",
            self.findings,
            self.executions,
            self.executions_per_second()
        );
        eprintln!("  taskStatistics: {}", self.statistics);
        let p = &self.poll;
        eprintln!(
            "DescribeAuditMitigationActionsTask during the task: {} answered, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, {} error(s)",
            p.requests, p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms, p.errors
        );
        if let Some(e) = &p.first_error {
            eprintln!("  first error: {e}");
        }
        if json_line {
            println!(
                "{}",
                json!({
                    "taskId": self.task_id,
                    "auditTaskId": self.audit_task_id,
                    "status": self.status,
                    "findings": self.findings,
                    "executions": self.executions,
                    "executionsPerSecond": self.executions_per_second(),
                    "startCallMs": self.start_call.as_secs_f64() * 1000.0,
                    "wallSeconds": self.wall.as_secs_f64(),
                    "serverSeconds": self.server_seconds,
                    "taskStatistics": self.statistics,
                    "progress": self.progress,
                    "describe": {
                        "requests": p.requests,
                        "errors": p.errors,
                        "p50Ms": p.p50_ms,
                        "p99Ms": p.p99_ms,
                        "p999Ms": p.p999_ms,
                        "maxMs": p.max_ms,
                    },
                })
            );
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rfc3339(t: OffsetDateTime) -> Result<String> {
    Ok(t.format(&Rfc3339)?)
}

/// The newest finished on-demand audit of the last 89 days.
async fn newest_audit(sender: &mut Sender, target: &Target) -> Result<String> {
    let now = OffsetDateTime::now_utc();
    let from = now - time::Duration::days(89);
    let path = format!(
        "/audit/tasks?startTime={}&endTime={}&taskType=ON_DEMAND_AUDIT_TASK&taskStatus=COMPLETED&maxResults=1",
        query_value(&rfc3339(from)?),
        query_value(&rfc3339(now)?),
    );
    let answer = call_ok(sender, target, Method::GET, &path, None, "ListAuditTasks").await?;
    answer["tasks"][0]["taskId"]
        .as_str()
        .map(str::to_owned)
        .context("ListAuditTasks: no COMPLETED on-demand audit in the last 89 days; run one first (palisade-loadgen audit)")
}

/// Creates the UPDATE_DEVICE_CERTIFICATE action, or checks the existing one has that type.
async fn ensure_action(
    sender: &mut Sender,
    target: &Target,
    config: &MitigateConfig,
) -> Result<()> {
    let path = format!("/mitigationactions/actions/{}", config.action_name);
    let body = json!({
        "roleArn": config.role_arn,
        "actionParams": {"updateDeviceCertificateParams": {"action": "DEACTIVATE"}},
    });
    let (status, kind, bytes) = call(sender, target, Method::POST, &path, Some(&body)).await?;
    match (status, kind.as_str()) {
        (StatusCode::OK, _) => Ok(()),
        (_, "ResourceAlreadyExistsException") => {
            let existing = call_ok(
                sender,
                target,
                Method::GET,
                &path,
                None,
                "DescribeMitigationAction",
            )
            .await?;
            if existing["actionType"] != "UPDATE_DEVICE_CERTIFICATE" {
                bail!(
                    "mitigation action {} exists with type {}, not UPDATE_DEVICE_CERTIFICATE",
                    config.action_name,
                    existing["actionType"]
                );
            }
            Ok(())
        }
        _ => bail!(
            "CreateMitigationAction failed: HTTP {status} ({kind}): {}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// Findings processed so far (succeeded, failed, skipped or canceled), over all checks.
fn processed(describe: &Value) -> i64 {
    sum_stats(
        describe,
        &[
            "succeededFindingsCount",
            "failedFindingsCount",
            "skippedFindingsCount",
            "canceledFindingsCount",
        ],
    )
}

fn sum_stats(describe: &Value, keys: &[&str]) -> i64 {
    describe["taskStatistics"]
        .as_object()
        .map(|checks| {
            checks
                .values()
                .map(|s| {
                    keys.iter()
                        .map(|k| s[*k].as_i64().unwrap_or(0))
                        .sum::<i64>()
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Runs the benchmark's task; see the module docs.
pub async fn mitigate(target: &Target, config: &MitigateConfig) -> Result<MitigateReport> {
    let mut sender: Sender = client::connect(&target.endpoint).await?;
    ensure_action(&mut sender, target, config).await?;
    let audit_task_id = match &config.audit_task_id {
        Some(id) => id.clone(),
        None => newest_audit(&mut sender, target).await?,
    };
    let audit = call_ok(
        &mut sender,
        target,
        Method::GET,
        &format!("/audit/tasks/{audit_task_id}"),
        None,
        "DescribeAuditTask",
    )
    .await?;
    if audit["taskStatus"] != "COMPLETED" {
        bail!(
            "audit {audit_task_id} is {}, not COMPLETED",
            audit["taskStatus"]
        );
    }
    let findings = audit["auditDetails"][&config.check]["nonCompliantResourcesCount"]
        .as_i64()
        .with_context(|| format!("audit {audit_task_id} did not run {}", config.check))?;

    let task_id = match &config.task_id {
        Some(id) => id.clone(),
        None => format!(
            "bench-{}",
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()
        ),
    };
    let start = json!({
        "target": {"auditTaskId": audit_task_id},
        "auditCheckToActionsMapping": {config.check.clone(): [config.action_name]},
        "clientRequestToken": task_id,
    });
    let path = format!("/audit/mitigationactions/tasks/{task_id}");
    eprintln!(
        "mitigation task {task_id}: {} × {} over audit {audit_task_id} ({findings} findings); DescribeAuditMitigationActionsTask at {} req/s until it ends",
        config.check, config.action_name, config.rate
    );
    let started = Instant::now();
    call_ok(
        &mut sender,
        target,
        Method::POST,
        &path,
        Some(&start),
        "StartAuditMitigationActionsTask",
    )
    .await?;
    let start_call = started.elapsed();

    let mut progress = Vec::new();
    let mut report = |v: &Value| {
        let t = started.elapsed().as_secs_f64();
        let n = processed(v);
        let rate = n as f64 / t.max(1e-9);
        eprintln!("  {t:6.1} s: {n:>9} of {findings} findings processed ({rate:.0}/s so far)");
        progress.push((t, n));
    };
    let poll = poll::poll_until_ended(
        target,
        sender,
        &path,
        "DescribeAuditMitigationActionsTask",
        config.rate,
        started + config.timeout,
        Some((config.progress_every, &mut report)),
    )
    .await?;
    let Some((at, last)) = poll.finished.clone() else {
        bail!(
            "mitigation task {task_id} had not ended after {:?} (first DescribeAuditMitigationActionsTask error: {})",
            config.timeout,
            poll.first_error.as_deref().unwrap_or("none")
        );
    };
    // One action per finding: each succeeded or failed finding ran exactly one execution.
    let executions = sum_stats(&last, &["succeededFindingsCount", "failedFindingsCount"]);
    let server_seconds = match (last["startTime"].as_f64(), last["endTime"].as_f64()) {
        (Some(s), Some(e)) => Some(e - s),
        _ => None,
    };
    Ok(MitigateReport {
        task_id,
        audit_task_id,
        status: last["taskStatus"].as_str().unwrap_or("?").to_owned(),
        findings,
        executions,
        start_call,
        wall: at.duration_since(started),
        server_seconds,
        statistics: last["taskStatistics"].clone(),
        progress,
        poll,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query_value("2024-01-02T03:04:05Z"),
            "2024-01-02T03%3A04%3A05Z"
        );
        assert_eq!(query_value("a b+c"), "a%20b%2Bc");
    }

    #[test]
    fn statistics_sums() {
        let v = json!({"taskStatistics": {
            "A": {"totalFindingsCount": 10, "succeededFindingsCount": 4, "failedFindingsCount": 1,
                  "skippedFindingsCount": 2, "canceledFindingsCount": 0},
            "B": {"totalFindingsCount": 5, "succeededFindingsCount": 5},
        }});
        assert_eq!(processed(&v), 12);
        assert_eq!(
            sum_stats(&v, &["succeededFindingsCount", "failedFindingsCount"]),
            10
        );
        assert_eq!(processed(&json!({})), 0);
    }
}
