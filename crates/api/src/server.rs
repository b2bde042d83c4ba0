//! The request pipeline and the server loop.

use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::FutureExt;
use palisade_engine::Engine;
use palisade_model::RawRequest;
use palisade_sigv4::{RequestView, Verifier, VerifierConfig};
use tracing::{field, Instrument};

use crate::dispatch::dispatch;
use crate::error::ApiError;
use crate::request::{authenticate, parse_query, read_body, set_request_id, AppState};
use crate::routes::{RouteError, Routes};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub region: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How far a request's signing time may be from the server's clock.
    pub max_clock_skew: Duration,
    /// Largest body of `POST /palisade/import` (a JSON Lines fleet), in bytes.
    pub import_body_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            body_limit: 1024 * 1024,
            max_clock_skew: Duration::from_secs(15 * 60),
            import_body_limit: crate::import::DEFAULT_IMPORT_BODY_LIMIT,
        }
    }
}

/// The axum router answering the AWS IoT API plus `GET /healthz` and Palisade's own
/// `POST /palisade/import` (any other method there goes to the AWS API's fallback).
pub fn router(engine: Engine, cfg: ServerConfig) -> Router {
    let state = Arc::new(AppState {
        engine,
        verifier: Verifier::new(VerifierConfig {
            max_skew: cfg.max_clock_skew,
            ..VerifierConfig::new("iot", cfg.region.clone())
        }),
        routes: Routes::new(),
        region: cfg.region,
        body_limit: cfg.body_limit,
        import_body_limit: cfg.import_body_limit,
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            crate::import::PATH,
            post(crate::import::handle).fallback(handle),
        )
        .route(
            crate::connections_import::PATH,
            post(crate::connections_import::handle).fallback(handle),
        )
        .fallback(handle)
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish for at most
/// `grace`. The bound matters: a client that stalls mid-request would otherwise hold the
/// process open for as long as it likes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let requested = Arc::new(tokio::sync::Notify::new());
    let notify = Arc::clone(&requested);
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        notify.notify_one();
    });
    tokio::select! {
        result = server.into_future() => result,
        () = async {
            requested.notified().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// What a request's log lines name. An info-level span would carry it, but the fmt
/// subscriber formats an enabled span's fields eagerly on every request (about 3% of a
/// DescribeCertificate's CPU), so the span is debug-level and the few lines logged at
/// info or above take their context from here.
#[derive(Default)]
struct RequestLog {
    operation: Option<&'static str>,
    account: Option<String>,
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Formatted on the stack: `to_string` went through the formatting machinery and
    // an allocation on every request.
    let mut request_id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let request_id: &str = uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut request_id);
    let span = tracing::debug_span!(
        "request",
        request_id = %request_id,
        operation = field::Empty,
        access_key_id = field::Empty,
        account = field::Empty,
    );
    let started = Instant::now();
    let method = req.method().clone();
    let mut log = RequestLog::default();
    // A panic is a bug, but it must still answer like AWS would (500 with a request id)
    // rather than drop the connection.
    let result = AssertUnwindSafe(process(&state, req, &span, &mut log).instrument(span.clone()))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(
                request_id = %request_id,
                operation = log.operation,
                account = log.account.as_deref(),
                "request handler panicked"
            );
            Err(ApiError::internal())
        });
    let mut resp = match result {
        Ok((status, body)) => {
            let mut r = (status, body).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => {
            let (operation, account) = (log.operation, log.account.as_deref());
            if e.is_server_error() {
                tracing::error!(request_id = %request_id, operation, account, code = e.code, status = e.status, message = %e.message, "request failed");
            } else {
                tracing::info!(request_id = %request_id, operation, account, code = e.code, status = e.status, message = %e.message, "request rejected");
            }
            e.into_response()
        }
    };
    span.in_scope(|| {
        tracing::debug!(%method, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request done");
    });
    set_request_id(&mut resp, request_id);
    resp
}

async fn healthz() -> Response {
    let mut resp = "ok".into_response();
    set_request_id(&mut resp, &uuid::Uuid::new_v4().to_string());
    resp
}

async fn process(
    state: &AppState,
    req: Request,
    span: &tracing::Span,
    log: &mut RequestLog,
) -> Result<(StatusCode, Vec<u8>), ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, state.body_limit).await?;
    // Borrowed, not copied: SigV4 and the decoder only read them. A value that is not
    // visible ASCII cannot be signed by an SDK, so it is left out like a missing header.
    let header_refs: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let method = parts.method.as_str();
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query();

    let view = RequestView {
        method,
        raw_path,
        raw_query,
        headers: &header_refs,
        body: &body,
    };
    let scope = authenticate(state, &view, span).await?;
    log.account = Some(scope.account_id.clone());

    let matched = state.routes.find(method, raw_path).map_err(|e| match e {
        RouteError::NoSuchPath => ApiError::unknown_path(method, raw_path),
        RouteError::BadLabel(l) => ApiError::invalid(format!(
            "The path segment '{l}' is not valid percent-encoded UTF-8 without NUL characters."
        )),
    })?;
    let spec = matched.spec;
    span.record("operation", spec.name);
    log.operation = Some(spec.name);
    let decode = spec
        .decode
        .ok_or_else(|| ApiError::not_implemented(spec.name))?;
    let query = parse_query(raw_query)?;
    let request = decode(&RawRequest {
        labels: &matched.labels,
        query: &query,
        headers: &header_refs,
        body: &body,
    })?;
    // Boxed: the dispatcher's future is the largest of all operations' (3.7 KB), and
    // inline it made this request's future 5.2 KB, copied whole by axum's `Box::pin` and
    // by every wrapper around it (span, catch_unwind) on each request.
    let out = Box::pin(dispatch(&state.engine, &scope, request)).await?;
    state.engine.operation_done(spec.name);
    let status = StatusCode::from_u16(spec.success_status).unwrap_or(StatusCode::OK);
    Ok((status, out))
}
