//! Open-loop polling of one Describe operation while a background task runs, shared by
//! `audit` (DescribeAuditTask) and `mitigate` (DescribeAuditMitigationActionsTask).
//!
//! Requests start on a fixed schedule whether or not earlier ones have answered (each
//! takes an idle connection or opens one), and each latency is measured from its
//! scheduled start, so a server that stalls is charged for the requests it delayed rather
//! than hiding them (no coordinated omission). Polling stops at the first answer whose
//! `taskStatus` is no longer `IN_PROGRESS`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use tokio::sync::watch;

use crate::client::{self, Target, Template};

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Called with the latest answer at each progress report.
pub type Progress<'a> = &'a mut (dyn FnMut(&Value) + Send);

/// Highest latency the histogram tracks, in microseconds.
const HIST_MAX_US: u64 = 60_000_000;

/// What the polling requests share.
struct Load {
    what: &'static str,
    target: Target,
    template: Template,
    idle: Mutex<Vec<Sender>>,
    histogram: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    first_error: OnceLock<String>,
    /// The latest successful answer, for progress reports.
    latest: Mutex<Option<Value>>,
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

    /// One request, its latency counted from `scheduled`.
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
                    let _ = self.finished.set((Instant::now(), v.clone()));
                    let _ = self.done.send(true);
                }
                if let Ok(mut latest) = self.latest.lock() {
                    *latest = Some(v);
                }
            }
            Ok((status, _, body)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(sender);
                }
                self.error(format!(
                    "{}: HTTP {status}: {}",
                    self.what,
                    String::from_utf8_lossy(&body)
                ));
            }
            // The connection is dropped; the next request opens another.
            Err(e) => self.error(format!("{}: {e:#}", self.what)),
        }
    }
}

/// What a polling run saw.
#[derive(Debug)]
pub struct PollReport {
    /// The first answer saying the task ended, and when it came; `None` if the deadline
    /// came first.
    pub finished: Option<(Instant, Value)>,
    /// Successful answers (the latency histogram's count).
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Sends `GET path` at `rate` requests per second until an answer's `taskStatus` is no
/// longer `IN_PROGRESS` or `deadline` passes. `sender` is a connection to reuse;
/// `progress`, if given, is called every `every` with the latest answer.
pub async fn poll_until_ended(
    target: &Target,
    sender: Sender,
    path: &str,
    what: &'static str,
    rate: u32,
    deadline: Instant,
    mut progress: Option<(Duration, Progress<'_>)>,
) -> Result<PollReport> {
    let (done, mut ended) = watch::channel(false);
    let load = Arc::new(Load {
        what,
        template: Template::new(target, Method::GET, path, false)?,
        target: target.clone(),
        idle: Mutex::new(vec![sender]),
        histogram: Mutex::new(Histogram::new_with_bounds(1, HIST_MAX_US, 3)?),
        errors: AtomicU64::new(0),
        first_error: OnceLock::new(),
        latest: Mutex::new(None),
        finished: OnceLock::new(),
        done,
    });
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    // Requests late because the client itself stalled go out at once, keeping the rate.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // Without a progress callback this timer is never polled to completion.
    let every = progress
        .as_ref()
        .map_or(Duration::from_secs(3600), |(d, _)| *d);
    let mut reports = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
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
            _ = reports.tick(), if progress.is_some() => {
                let latest = load.latest.lock().ok().and_then(|l| l.clone());
                if let (Some((_, report)), Some(v)) = (progress.as_mut(), latest) {
                    report(&v);
                }
            }
            _ = ended.changed() => break,
        }
    }
    for h in in_flight {
        let _ = h.await;
    }
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
    Ok(PollReport {
        finished: load.finished.get().cloned(),
        requests: histogram.len(),
        errors: load.errors.load(Ordering::Relaxed),
        first_error: load.first_error.get().cloned(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: ms(histogram.max()),
    })
}
