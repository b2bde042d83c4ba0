//! The audit benchmark's client side: `register-cas` registers the fleet's CAs through
//! the API (the import format has no CA line), and `audit` enables the checks, starts an
//! on-demand audit and, until it ends, asks DescribeAuditTask at a steady rate, recording
//! the latency of every answer.
//!
//! The DescribeAuditTask load is open-loop: requests start on a fixed schedule whether or
//! not earlier ones have answered (each takes an idle connection or opens one), and each
//! latency is measured from its scheduled start, so a server that stalls is charged for
//! the requests it delayed rather than hiding them (no coordinated omission).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::client::{self, Target, Template};

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

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

/// Highest latency the histogram tracks, in microseconds.
const HIST_MAX_US: u64 = 60_000_000;

/// One signed request with a JSON body (or none); the status, error type and body.
async fn call(
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
async fn call_ok(
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

/// What the DescribeAuditTask load shares between its requests.
struct Load {
    target: Target,
    template: Template,
    idle: Mutex<Vec<Sender>>,
    histogram: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    first_error: OnceLock<String>,
    /// The first answer whose status is no longer IN_PROGRESS, and when it came.
    finished: OnceLock<(Instant, Value)>,
    done: watch::Sender<bool>,
}

impl Load {
    async fn sender(&self) -> Result<Sender> {
        let idle = self
            .idle
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .pop();
        match idle {
            Some(s) => Ok(s),
            None => client::connect(&self.target.endpoint).await,
        }
    }

    fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let _ = self.first_error.set(message);
    }

    /// One DescribeAuditTask, its latency counted from `scheduled`.
    async fn describe(self: Arc<Self>, scheduled: Instant) {
        let mut sender = match self.sender().await {
            Ok(s) => s,
            Err(e) => return self.error(format!("connecting: {e:#}")),
        };
        let result = async {
            let request = self
                .template
                .signed(&self.target, b"", Full::new(Bytes::new()))?;
            client::send_collect(&mut sender, request).await
        }
        .await;
        let elapsed = scheduled.elapsed();
        match result {
            Ok((StatusCode::OK, _, body)) => {
                if let Ok(mut h) = self.histogram.lock() {
                    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                    h.saturating_record(us.max(1));
                }
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(sender);
                }
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["taskStatus"].as_str() != Some("IN_PROGRESS") {
                    let _ = self.finished.set((Instant::now(), v));
                    let _ = self.done.send(true);
                }
            }
            Ok((status, _, body)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(sender);
                }
                self.error(format!(
                    "DescribeAuditTask: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            // The connection is dropped; the next request opens another.
            Err(e) => self.error(format!("DescribeAuditTask: {e:#}")),
        }
    }
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
    let (done, mut ended) = watch::channel(false);
    let load = Arc::new(Load {
        template: Template::new(target, Method::GET, &path, false)?,
        target: target.clone(),
        idle: Mutex::new(vec![sender]),
        histogram: Mutex::new(Histogram::new_with_bounds(1, HIST_MAX_US, 3)?),
        errors: AtomicU64::new(0),
        first_error: OnceLock::new(),
        finished: OnceLock::new(),
        done,
    });
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / config.rate.max(1));
    // Requests late because the client itself stalled go out at once, keeping the rate.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = started + config.timeout;
    let mut in_flight = Vec::new();
    loop {
        tokio::select! {
            tick = ticks.tick() => {
                if Instant::now() >= deadline {
                    break;
                }
                in_flight.push(tokio::spawn(Arc::clone(&load).describe(tick.into_std())));
                in_flight.retain(|h: &tokio::task::JoinHandle<()>| !h.is_finished());
            }
            _ = ended.changed() => break,
        }
    }
    for h in in_flight {
        let _ = h.await;
    }
    let Some((at, last)) = load.finished.get().cloned() else {
        bail!(
            "audit task {task_id} had not ended after {:?} (first DescribeAuditTask error: {})",
            config.timeout,
            load.first_error.get().map_or("none", String::as_str)
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
    let histogram = load
        .histogram
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let ms = |us: u64| us as f64 / 1000.0;
    let q = |q: f64| {
        if histogram.is_empty() {
            0.0
        } else {
            ms(histogram.value_at_quantile(q))
        }
    };
    Ok(AuditReport {
        task_id,
        status: last["taskStatus"].as_str().unwrap_or("?").to_owned(),
        wall: at.duration_since(started),
        checks,
        statistics: last["taskStatistics"].clone(),
        requests: histogram.len(),
        errors: load.errors.load(Ordering::Relaxed),
        first_error: load.first_error.get().cloned(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: ms(histogram.max()),
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
