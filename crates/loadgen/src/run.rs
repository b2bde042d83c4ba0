//! `run`: N connections, one worker each, every request signed individually.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;

use crate::client::{self, Target, Template};

type Sender = SendRequest<Empty<Bytes>>;

/// Highest latency the histogram tracks exactly, in microseconds (larger values saturate).
const HIST_MAX_US: u64 = 60_000_000;
/// How much of the first error body is kept for the report.
const ERROR_BODY_LIMIT: usize = 2048;
/// Largest listing page kept (a page of 250 certificates is some 60 KB).
const PAGE_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// What every request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `GET /mitigationactions/actions/{name}`.
    DescribeMitigationAction,
    /// `GET /certificates/{id}`.
    DescribeCertificate(String),
    /// `GET /certificates?pageSize=N&marker=M`: each connection pages through the whole
    /// listing, following `nextMarker`, and starts over at the end.
    ListCertificates { page_size: u32 },
}

impl Op {
    /// The request path (the first page, for a listing).
    fn path(&self, target: &Target) -> String {
        match self {
            Op::DescribeMitigationAction => target.action_path(),
            Op::DescribeCertificate(id) => format!("/certificates/{id}"),
            Op::ListCertificates { page_size } => list_path(*page_size, None),
        }
    }
}

/// A ListCertificates page; the marker (base64) percent-encoded for the query.
fn list_path(page_size: u32, marker: Option<&str>) -> String {
    let mut path = format!("/certificates?pageSize={page_size}");
    if let Some(marker) = marker {
        path.push_str("&marker=");
        for c in marker.chars() {
            match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' => path.push(c),
                other => {
                    let mut buf = [0u8; 4];
                    for b in other.encode_utf8(&mut buf).bytes() {
                        path.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
    }
    path
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub op: Op,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: Option<u64>,
}

/// State shared, read-only except for the atomics, by all workers.
struct Shared {
    target: Target,
    op: Op,
    path: String,
    template: Template,
    /// Requests issued before this instant are warm-up and not recorded.
    measure_start: Instant,
    /// No request is started at or after this instant.
    deadline: Instant,
    max_requests: Option<u64>,
    issued: AtomicU64,
    first_error: OnceLock<String>,
}

struct WorkerStats {
    histogram: Histogram<u64>,
    /// Successful (200) requests started in the measured window.
    ok: u64,
    /// Listed items (certificates) in the measured window, for listings.
    items: u64,
    /// Failed requests (non-200 or transport errors), any phase.
    errors: u64,
    /// (status, count) of failures; status 0 means a transport error.
    errors_by_status: Vec<(u16, u64)>,
    finished: Instant,
}

impl WorkerStats {
    fn new() -> Result<Self> {
        Ok(Self {
            histogram: Histogram::new_with_bounds(1, HIST_MAX_US, 3)
                .context("creating histogram")?,
            ok: 0,
            items: 0,
            errors: 0,
            errors_by_status: Vec::new(),
            finished: Instant::now(),
        })
    }

    fn error(&mut self, status: u16) {
        self.errors += 1;
        match self.errors_by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.errors_by_status.push((status, 1)),
        }
    }
}

/// Outcome of one request: the status, or a transport error.
enum Outcome {
    Status(StatusCode),
    Transport(anyhow::Error),
}

/// Sends one request and drains the body frame by frame. The body is kept in `buf` in
/// full with `keep_body` (a listing page), else only the start of a failure's body.
async fn exchange(
    sender: &mut Sender,
    request: http::Request<Empty<Bytes>>,
    buf: &mut Vec<u8>,
    keep_body: bool,
) -> Outcome {
    if let Err(e) = sender.ready().await {
        return Outcome::Transport(anyhow::Error::new(e).context("connection closed"));
    }
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => return Outcome::Transport(anyhow::Error::new(e).context("sending request")),
    };
    let status = response.status();
    let capture = keep_body || status != StatusCode::OK;
    let limit = if keep_body {
        PAGE_BODY_LIMIT
    } else {
        ERROR_BODY_LIMIT
    };
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if capture {
                    if let Some(data) = frame.data_ref() {
                        let room = limit.saturating_sub(buf.len());
                        buf.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
            Err(e) => return Outcome::Transport(anyhow::Error::new(e).context("reading body")),
        }
    }
    Outcome::Status(status)
}

async fn worker(shared: Arc<Shared>, mut sender: Sender) -> Result<WorkerStats> {
    let mut stats = WorkerStats::new()?;
    let mut body = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        if Instant::now() >= shared.deadline {
            break;
        }
        if let Some(max) = shared.max_requests {
            if shared.issued.fetch_add(1, Ordering::Relaxed) >= max {
                break;
            }
        }
        let (request, path) = match &shared.op {
            Op::ListCertificates { page_size } => {
                let path = list_path(*page_size, marker.as_deref());
                let template = Template::new(&shared.target, Method::GET, &path, false)?;
                let request = template
                    .signed(&shared.target, b"", Empty::new())
                    .context("signing request")?;
                (request, path)
            }
            _ => (
                shared
                    .template
                    .signed(&shared.target, b"", Empty::new())
                    .context("signing request")?,
                shared.path.clone(),
            ),
        };
        let listing = matches!(shared.op, Op::ListCertificates { .. });
        let capture = shared.first_error.get().is_none();
        body.clear();
        let started = Instant::now();
        let outcome = exchange(&mut sender, request, &mut body, listing).await;
        let elapsed = started.elapsed();
        let measured = started >= shared.measure_start;
        match outcome {
            Outcome::Status(StatusCode::OK) => {
                if listing {
                    let page: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let n = page["certificates"].as_array().map_or(0, Vec::len) as u64;
                    if measured {
                        stats.items += n;
                    }
                    marker = page["nextMarker"].as_str().map(str::to_owned);
                }
                if measured {
                    stats.ok += 1;
                    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                    stats.histogram.saturating_record(us.max(1));
                }
            }
            Outcome::Status(status) => {
                stats.error(status.as_u16());
                if capture {
                    let _ = shared.first_error.set(format!(
                        "HTTP {status} for GET {path}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
            }
            Outcome::Transport(e) => {
                stats.error(0);
                let _ = shared.first_error.set(format!("transport error: {e:#}"));
                // The connection is unusable: open a new one (a few tries), or give up.
                let mut reconnected = None;
                for _ in 0..3 {
                    if Instant::now() >= shared.deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(s) = client::connect(&shared.target.endpoint).await {
                        reconnected = Some(s);
                        break;
                    }
                }
                match reconnected {
                    Some(s) => sender = s,
                    None => break,
                }
            }
        }
    }
    stats.finished = Instant::now();
    Ok(stats)
}

#[derive(Debug)]
pub struct Report {
    pub endpoint: String,
    pub connections: usize,
    pub warmup: Duration,
    pub elapsed: Duration,
    pub requests: u64,
    /// Listed items (listings only).
    pub items: u64,
    pub errors: u64,
    pub errors_by_status: Vec<(u16, u64)>,
    pub first_error: Option<String>,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Report {
    fn from_stats(
        shared: &Shared,
        config: &RunConfig,
        all: Vec<WorkerStats>,
        run_end: Instant,
    ) -> Result<Self> {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3)?;
        let mut requests = 0;
        let mut items = 0;
        let mut errors = 0;
        let mut errors_by_status: Vec<(u16, u64)> = Vec::new();
        let mut last_finish = shared.measure_start;
        for s in &all {
            histogram.add(&s.histogram).context("merging histograms")?;
            requests += s.ok;
            items += s.items;
            errors += s.errors;
            for &(status, n) in &s.errors_by_status {
                match errors_by_status.iter_mut().find(|(st, _)| *st == status) {
                    Some((_, total)) => *total += n,
                    None => errors_by_status.push((status, n)),
                }
            }
            last_finish = last_finish.max(s.finished);
        }
        errors_by_status.sort_unstable();
        let last_finish = if all.is_empty() { run_end } else { last_finish };
        let elapsed = last_finish.saturating_duration_since(shared.measure_start);
        let secs = elapsed.as_secs_f64();
        let ms = |us: u64| us as f64 / 1000.0;
        let quantile = |q: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                ms(histogram.value_at_quantile(q))
            }
        };
        Ok(Self {
            endpoint: shared.target.endpoint.url(""),
            connections: config.connections,
            warmup: config.warmup,
            elapsed,
            requests,
            items,
            errors,
            errors_by_status,
            first_error: shared.first_error.get().cloned(),
            throughput: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            p50_ms: quantile(0.50),
            p90_ms: quantile(0.90),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: if histogram.is_empty() {
                0.0
            } else {
                ms(histogram.max())
            },
            mean_ms: if histogram.is_empty() {
                0.0
            } else {
                histogram.mean() / 1000.0
            },
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        let by_status: serde_json::Map<String, serde_json::Value> = self
            .errors_by_status
            .iter()
            .map(|(s, n)| {
                let key = if *s == 0 {
                    "transport".to_string()
                } else {
                    s.to_string()
                };
                (key, (*n).into())
            })
            .collect();
        serde_json::json!({
            "endpoint": self.endpoint,
            "connections": self.connections,
            "warmup_s": self.warmup.as_secs_f64(),
            "elapsed_s": round3(self.elapsed.as_secs_f64()),
            "requests": self.requests,
            "items": self.items,
            "items_per_s": round3(if self.elapsed.as_secs_f64() > 0.0 {
                self.items as f64 / self.elapsed.as_secs_f64()
            } else {
                0.0
            }),
            "errors": self.errors,
            "errors_by_status": by_status,
            "throughput_rps": round3(self.throughput),
            "p50_ms": round3(self.p50_ms),
            "p90_ms": round3(self.p90_ms),
            "p99_ms": round3(self.p99_ms),
            "p999_ms": round3(self.p999_ms),
            "max_ms": round3(self.max_ms),
            "mean_ms": round3(self.mean_ms),
            "first_error": self.first_error,
        })
    }

    pub fn human(&self) -> String {
        let mut out = format!(
            "target       {}\n\
             connections  {}\n\
             measured     {:.2} s (after {:.1} s warm-up)\n\
             requests     {}\n\
             items        {}\n\
             errors       {}\n\
             throughput   {:.0} req/s\n\
             latency ms   p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}\n",
            self.endpoint,
            self.connections,
            self.elapsed.as_secs_f64(),
            self.warmup.as_secs_f64(),
            self.requests,
            self.items,
            self.errors,
            self.throughput,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.mean_ms,
        );
        if !self.errors_by_status.is_empty() {
            let parts: Vec<String> = self
                .errors_by_status
                .iter()
                .map(|(s, n)| match s {
                    0 => format!("transport: {n}"),
                    s => format!("{s}: {n}"),
                })
                .collect();
            out.push_str(&format!("errors by    {}\n", parts.join(", ")));
        }
        if let Some(e) = &self.first_error {
            out.push_str(&format!("first error  {e}\n"));
        }
        out
    }

    /// With `json`, the human summary goes to stderr and one JSON line to stdout.
    pub fn print(&self, json: bool) {
        if json {
            eprint!("{}", self.human());
            println!("{}", self.to_json());
        } else {
            print!("{}", self.human());
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One signed request on a dedicated connection: fail fast (with the server's answer) if the
/// target does not serve the action, instead of running a whole benchmark of errors.
async fn preflight(target: &Target, template: &Template, path: &str) -> Result<()> {
    let mut sender: Sender = client::connect(&target.endpoint).await?;
    let request = template.signed(target, b"", Empty::new())?;
    let (status, headers, body) = client::send_collect(&mut sender, request).await?;
    if status != StatusCode::OK {
        let kind = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        bail!(
            "preflight GET {path} answered HTTP {status} ({kind}): {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

pub async fn run(target: Target, config: RunConfig) -> Result<Report> {
    let path = config.op.path(&target);
    let template = Template::new(&target, Method::GET, &path, false)?;
    preflight(&target, &template, &path).await?;

    // Open every connection first, so the clock starts with all of them ready.
    let mut senders = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        senders.push(client::connect::<Empty<Bytes>>(&target.endpoint).await?);
    }

    let start = Instant::now();
    let measure_start = start + config.warmup;
    let shared = Arc::new(Shared {
        target,
        op: config.op.clone(),
        path,
        template,
        measure_start,
        deadline: measure_start + config.duration,
        max_requests: config.max_requests,
        issued: AtomicU64::new(0),
        first_error: OnceLock::new(),
    });
    let handles: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(worker(Arc::clone(&shared), sender)))
        .collect();
    let mut all = Vec::with_capacity(handles.len());
    for handle in handles {
        all.push(handle.await.context("worker panicked")??);
    }
    Report::from_stats(&shared, &config, all, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TargetArgs;

    async fn spawn_ceiling() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, crate::ceiling::router())
                .await
                .unwrap();
        });
        addr
    }

    fn target(addr: std::net::SocketAddr, name: &str) -> Target {
        Target::from_args(&TargetArgs {
            endpoint: format!("http://{addr}"),
            access_key: "AKIDEXAMPLE".into(),
            secret: "secret".into(),
            region: "us-east-1".into(),
            name: name.into(),
        })
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_against_ceiling() {
        let addr = spawn_ceiling().await;
        let report = run(
            target(addr, "bench-action"),
            RunConfig {
                op: Op::DescribeMitigationAction,
                connections: 4,
                duration: Duration::from_millis(300),
                warmup: Duration::from_millis(100),
                max_requests: None,
            },
        )
        .await
        .unwrap();
        assert!(report.requests > 0, "{report:?}");
        assert_eq!(report.errors, 0, "{report:?}");
        assert!(report.p50_ms > 0.0 && report.p50_ms <= report.max_ms);
        let json = report.to_json();
        assert_eq!(json["connections"], 4);
        assert!(json["throughput_rps"].as_f64().unwrap() > 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_requests_bounds_the_run() {
        let addr = spawn_ceiling().await;
        let report = run(
            target(addr, "bench-action"),
            RunConfig {
                op: Op::DescribeMitigationAction,
                connections: 2,
                duration: Duration::from_secs(30),
                warmup: Duration::ZERO,
                max_requests: Some(50),
            },
        )
        .await
        .unwrap();
        assert_eq!(report.requests, 50);
        assert!(report.elapsed < Duration::from_secs(10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn preflight_reports_server_errors() {
        use axum::routing::get;
        let app = axum::Router::new().route(
            "/mitigationactions/actions/{name}",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    [("x-amzn-ErrorType", "ResourceNotFoundException")],
                    r#"{"message":"no such action"}"#,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = RunConfig {
            op: Op::DescribeMitigationAction,
            connections: 1,
            duration: Duration::from_millis(100),
            warmup: Duration::ZERO,
            max_requests: None,
        };
        let err = run(target(addr, "missing"), config.clone())
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("404"), "{msg}");
        assert!(msg.contains("ResourceNotFoundException"), "{msg}");
        assert!(msg.contains("no such action"), "{msg}");

        // A closed port fails at connect time.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let err = run(target(closed_addr, "x"), config).await.unwrap_err();
        assert!(format!("{err:#}").contains("connecting"), "{err:#}");
    }
}
