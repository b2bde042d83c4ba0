//! `POST /palisade/connections`: connection history as JSON Lines (docs/IMPORT.md), for
//! fleets whose devices connect to a broker of their own, imported into the caller's
//! account and the server's region; answered with a JSON summary and every failed line.
//! Outside the AWS API, but authenticated like it (SigV4, service `iot`), like
//! `POST /palisade/import` (import.rs), whose limits it shares.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use palisade_engine::ConnectionImportSummary;
use palisade_sigv4::RequestView;
use serde::Serialize;
use tracing::{field, Instrument};

use crate::error::ApiError;
use crate::request::{authenticate, parse_query, read_body, set_request_id, AppState};

/// Where the endpoint is routed.
pub(crate) const PATH: &str = "/palisade/connections";

/// One failed line, as answered.
#[derive(Serialize)]
struct LineReport {
    line: u64,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(flatten)]
    summary: ConnectionImportSummary,
    errors: Vec<LineReport>,
}

pub(crate) async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        operation = "PalisadeImportConnections",
        access_key_id = field::Empty,
        account = field::Empty,
    );
    let result = AssertUnwindSafe(process(&state, req, &span).instrument(span.clone()))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            span.in_scope(|| tracing::error!("connections import handler panicked"));
            Err(ApiError::internal())
        });
    let mut resp = match result {
        Ok(body) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => {
            span.in_scope(|| tracing::info!(code = e.code, status = e.status, message = %e.message, "connections import rejected"));
            e.into_response()
        }
    };
    set_request_id(&mut resp, &request_id);
    resp
}

async fn process(
    state: &AppState,
    req: Request,
    span: &tracing::Span,
) -> Result<Vec<u8>, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, state.import_body_limit).await?;
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let view = RequestView {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &headers,
        body: &body,
    };
    let scope = authenticate(state, &view, span).await?;
    if let Some((key, _)) = parse_query(parts.uri.query())?.into_iter().next() {
        return Err(ApiError::invalid(format!(
            "Unknown query parameter '{key}'; the connections import takes none."
        )));
    }
    let mut errors = Vec::new();
    let summary = state
        .engine
        .import_connections(&scope, Cursor::new(body), |e| {
            let api = ApiError::from(e.error);
            errors.push(LineReport {
                line: e.line,
                code: api.code,
                message: api.message,
            });
        })
        .await?;
    serde_json::to_vec(&Answer { summary, errors }).map_err(|e| {
        tracing::error!(cause = %e, "encoding the connections import summary");
        ApiError::internal()
    })
}
