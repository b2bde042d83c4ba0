//! The audit benchmark's client side: `register-cas` registers the fleet's CAs through
//! the API (the import format has no CA line), and `audit` enables the checks, starts an
//! on-demand audit and, until it ends, asks DescribeAuditTask at a steady rate, recording
//! the latency of every answer.
//!
//! The DescribeAuditTask load is open-loop (see `poll`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::client::{self, Target, Template};
use crate::poll::{self, Sender};

/// Every check Palisade evaluates from its own data: the certificate checks (the three
/// revocation checks included), the policy checks and LOGGING_DISABLED_CHECK.
pub const DEFAULT_CHECKS: &[&str] = &[
    "CA_CERTIFICATE_EXPIRING_CHECK",
    "CA_CERTIFICATE_KEY_QUALITY_CHECK",
    "DEVICE_CERTIFICATE_AGE_CHECK",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK",
    "LOGGING_DISABLED_CHECK",
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
];

/// One signed request with a JSON body (or none); the status, error type and body.
pub(crate) async fn call(
    sender: &mut Sender,
    target: &Target,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, String, Bytes)> {
    let payload = Bytes::from(body.map(Value::to_string).unwrap_or_default());
    let template = Template::new(target, method, path, body.is_some())?;
    let request = template.signed(target, &payload, Full::new(payload.clone()))?;
    let (status, headers, body) = client::send_collect(sender, request).await?;
    let kind = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    Ok((status, kind, body))
}

/// Like [`call`], failing loudly on anything but 200.
pub(crate) async fn call_ok(
    sender: &mut Sender,
    target: &Target,
    method: Method,
    path: &str,
    body: Option<&Value>,
    what: &str,
) -> Result<Value> {
    let (status, kind, bytes) = call(sender, target, method, path, body).await?;
    if status != StatusCode::OK {
        bail!(
            "{what} failed: HTTP {status} ({kind}): {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{what}: the answer is not JSON"))
}

/// Registers (SNI_ONLY, active) every CA of `file` (`{"name", "pem"}` lines, as `fleet
/// --cas` writes them) over `concurrency` connections. A CA already registered counts
/// as done, so running it again is harmless.
pub async fn register_cas(target: &Target, file: &Path, concurrency: usize) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let pems: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| {
            let v: Value = serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not JSON", file.display(), n + 1))?;
            v["pem"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{} line {}: no \"pem\"", file.display(), n + 1))
        })
        .collect::<Result<_>>()?;
    let pems = Arc::new(pems);
    let next = Arc::new(AtomicUsize::new(0));
    let (created, existing) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, 64) {
        let (target, pems, next) = (target.clone(), Arc::clone(&pems), Arc::clone(&next));
        let (created, existing) = (Arc::clone(&created), Arc::clone(&existing));
        workers.push(tokio::spawn(async move {
            let mut sender = client::connect(&target.endpoint).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(pem) = pems.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let body = json!({"caCertificate": pem, "certificateMode": "SNI_ONLY"});
                let path = "/cacertificate?setAsActive=true";
                let (status, kind, bytes) =
                    call(&mut sender, &target, Method::POST, path, Some(&body)).await?;
                match (status, kind.as_str()) {
                    (StatusCode::OK, _) => created.fetch_add(1, Ordering::Relaxed),
                    (_, "ResourceAlreadyExistsException") => {
                        existing.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => bail!(
                        "RegisterCACertificate of CA {} failed: HTTP {status} ({kind}): {}",
                        i + 1,
                        String::from_utf8_lossy(&bytes)
                    ),
                };
            }
        }));
    }
    for w in workers {
        w.await.context("a registering task panicked")??;
    }
    eprintln!(
        "register-cas: {} registered, {} already there, in {:.1} s",
        created.load(Ordering::Relaxed),
        existing.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub checks: Vec<String>,
    pub role_arn: String,
    /// DescribeAuditTask requests per second while the audit runs.
    pub rate: u32,
    /// Give up (and fail) if the audit has not ended by then.
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct AuditReport {
    pub task_id: String,
    pub status: String,
    /// From StartOnDemandAuditTask to the first answer saying the task ended.
    pub wall: Duration,
    /// Per check: run status, total, non-compliant, error code.
    pub checks: BTreeMap<String, (String, i64, i64, Option<String>)>,
    pub statistics: Value,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl AuditReport {
    pub fn print(&self, json_line: bool) {
        eprintln!(
            "audit task {}: {} in {:.2} s",
            self.task_id,
            self.status,
            self.wall.as_secs_f64()
        );
        for (name, (status, total, non_compliant, code)) in &self.checks {
            let code = code
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            eprintln!(
                "  {name:<62} {status:<24} {non_compliant:>9} of {total:>9} non-compliant{code}"
            );
        }
        eprintln!("  taskStatistics: {}", self.statistics);
        eprintln!(
            "DescribeAuditTask during the audit: {} answered, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} error(s)",
            self.requests, self.p50_ms, self.p99_ms, self.max_ms, self.errors
        );
        if let Some(e) = &self.first_error {
            eprintln!("  first error: {e}");
        }
        if json_line {
            let checks: BTreeMap<&String, Value> = self
                .checks
                .iter()
                .map(|(n, (s, t, nc, c))| {
                    (
                        n,
                        json!({"status": s, "total": t, "nonCompliant": nc, "errorCode": c}),
                    )
                })
                .collect();
            println!(
                "{}",
                json!({
                    "taskId": self.task_id,
                    "status": self.status,
                    "wallSeconds": self.wall.as_secs_f64(),
                    "checks": checks,
                    "taskStatistics": self.statistics,
                    "describe": {
                        "requests": self.requests,
                        "errors": self.errors,
                        "p50Ms": self.p50_ms,
                        "p99Ms": self.p99_ms,
                        "maxMs": self.max_ms,
                    },
                })
            );
        }
    }
}

/// Enables the checks, starts an on-demand audit of them and measures DescribeAuditTask
/// until the task ends.
pub async fn audit(target: &Target, config: &AuditConfig) -> Result<AuditReport> {
    let mut sender: Sender = client::connect(&target.endpoint).await?;
    let checks: serde_json::Map<String, Value> = config
        .checks
        .iter()
        .map(|c| (c.clone(), json!({"enabled": true})))
        .collect();
    let update = json!({"roleArn": config.role_arn, "auditCheckConfigurations": checks});
    call_ok(
        &mut sender,
        target,
        Method::PATCH,
        "/audit/configuration",
        Some(&update),
        "UpdateAccountAuditConfiguration",
    )
    .await?;
    let start = json!({"targetCheckNames": config.checks});
    let started = Instant::now();
    let answer = call_ok(
        &mut sender,
        target,
        Method::POST,
        "/audit/tasks",
        Some(&start),
        "StartOnDemandAuditTask",
    )
    .await?;
    let task_id = answer["taskId"]
        .as_str()
        .context("StartOnDemandAuditTask answered without a taskId")?
        .to_owned();
    eprintln!(
        "audit task {task_id} started; DescribeAuditTask at {} req/s until it ends",
        config.rate
    );

    let path = format!("/audit/tasks/{task_id}");
    let poll = poll::poll_until_ended(
        target,
        sender,
        &path,
        "DescribeAuditTask",
        config.rate,
        started + config.timeout,
        None,
    )
    .await?;
    let Some((at, last)) = poll.finished.clone() else {
        bail!(
            "audit task {task_id} had not ended after {:?} (first DescribeAuditTask error: {})",
            config.timeout,
            poll.first_error.as_deref().unwrap_or("none")
        );
    };
    let details = last["auditDetails"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let checks = details
        .iter()
        .map(|(name, d)| {
            (
                name.clone(),
                (
                    d["checkRunStatus"].as_str().unwrap_or("?").to_owned(),
                    d["totalResourcesCount"].as_i64().unwrap_or(0),
                    d["nonCompliantResourcesCount"].as_i64().unwrap_or(0),
                    d["errorCode"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect();
    Ok(AuditReport {
        task_id,
        status: last["taskStatus"].as_str().unwrap_or("?").to_owned(),
        wall: at.duration_since(started),
        checks,
        statistics: last["taskStatistics"].clone(),
        requests: poll.requests,
        errors: poll.errors,
        first_error: poll.first_error,
        p50_ms: poll.p50_ms,
        p99_ms: poll.p99_ms,
        max_ms: poll.max_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_checks_are_known_and_sorted() {
        assert!(DEFAULT_CHECKS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(DEFAULT_CHECKS.len(), 11);
        assert!(DEFAULT_CHECKS.contains(&"LOGGING_DISABLED_CHECK"));
    }
}
