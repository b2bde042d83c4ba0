//! The request pipeline and the server loop.

use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use palisade_engine::{Engine, Scope};
use palisade_model::RawRequest;
use palisade_sigv4::{RequestView, Verifier, VerifierConfig};
use percent_encoding::percent_decode_str;
use tracing::{field, Instrument};

use crate::dispatch::dispatch;
use crate::error::ApiError;
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

pub(crate) struct AppState {
    pub(crate) engine: Engine,
    verifier: Verifier,
    routes: Routes,
    region: String,
    body_limit: usize,
    pub(crate) import_body_limit: usize,
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
    let request_id = uuid::Uuid::new_v4().to_string();
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
    set_request_id(&mut resp, &request_id);
    resp
}

pub(crate) fn set_request_id(resp: &mut Response, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
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
    let out = dispatch(&state.engine, &scope, request).await?;
    let status = StatusCode::from_u16(spec.success_status).unwrap_or(StatusCode::OK);
    Ok((status, out))
}

/// SigV4: the cheap checks, then the caller's secret; the scope the caller acts in.
pub(crate) async fn authenticate(
    state: &AppState,
    view: &RequestView<'_>,
    span: &tracing::Span,
) -> Result<Scope, ApiError> {
    let parsed = state
        .verifier
        .parse(view, time::OffsetDateTime::now_utc())?;
    span.record("access_key_id", parsed.access_key_id.as_str());
    let cred = state
        .engine
        .credential(&parsed.access_key_id)
        .await?
        .ok_or_else(|| {
            ApiError::other(
                "UnrecognizedClientException",
                403,
                "The security token included in the request is invalid.",
            )
        })?;
    state
        .verifier
        .verify(&parsed, view, &cred.secret_access_key)?;
    span.record("account", cred.account_id.as_str());
    Ok(Scope {
        account_id: cred.account_id,
        region: state.region.clone(),
    })
}

pub(crate) async fn read_body(
    body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        // Broken chunked framing, or a client that went away mid-body.
        Err(e) => Err(ApiError::invalid(format!(
            "The request body could not be read: {e}"
        ))),
    }
}

/// Splits a raw query string into percent-decoded pairs. `+` stays a plus sign: AWS
/// SDKs encode spaces as `%20`, and SigV4 canonicalises the query the same way.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .ok()
            .filter(|c| !c.contains('\0'))
            .map(|c| c.into_owned())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "The query string parameter '{s}' is not valid percent-encoded UTF-8 without NUL characters."
                ))
            })
    };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded_and_plus_is_literal() {
        let q = parse_query(Some(
            "resourceArn=arn%3Aaws%3Aiot%3Aus-east-1&nextToken=a+b%2Bc&flag&=v",
        ))
        .unwrap();
        assert_eq!(
            q,
            vec![
                ("resourceArn".into(), "arn:aws:iot:us-east-1".into()),
                ("nextToken".into(), "a+b+c".into()),
                ("flag".into(), String::new()),
                (String::new(), "v".into()),
            ]
        );
        assert!(parse_query(Some("a=%FF")).is_err());
        assert!(parse_query(Some("a=x%00y")).is_err());
        assert!(parse_query(None).unwrap().is_empty());
    }
}
