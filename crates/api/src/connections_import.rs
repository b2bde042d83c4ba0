//! `POST /palisade/connections`: connection history as JSON Lines (docs/IMPORT.md), for
//! fleets whose devices connect to a broker of their own, imported into the caller's
//! account and the server's region; answered with a JSON summary and every failed line.
//! Outside the AWS API, but authenticated like it (SigV4, service `iot`), like
//! `POST /palisade/import` (import.rs), whose limits it shares.

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use palisade_engine::ConnectionImportSummary;
use serde::Serialize;

use crate::error::ApiError;
use crate::request::{answer_json, read_signed, AppState, SignedRequest};

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
    answer_json("PalisadeImportConnections", |span| async move {
        process(&state, req, &span).await
    })
    .await
}

async fn process(
    state: &AppState,
    req: Request,
    span: &tracing::Span,
) -> Result<Vec<u8>, ApiError> {
    let SignedRequest { scope, query, body } = read_signed(state, req, span).await?;
    if let Some((key, _)) = query.into_iter().next() {
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
