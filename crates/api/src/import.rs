//! `POST /palisade/import`: a JSON Lines fleet (docs/IMPORT.md) as the body, imported
//! into the caller's account and the server's region; answered with a JSON summary and
//! every failed line. Outside the AWS API, but authenticated like it (SigV4, service
//! `iot`). Thin on purpose: the engine's importer does the work.

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use palisade_engine::{
    EngineError, ImportObserver, ImportOptions, ImportSummary, LineError, DEFAULT_BATCH_SIZE,
};
use serde::Serialize;

use crate::error::ApiError;
use crate::request::{answer_json, read_signed, AppState, SignedRequest};

/// Where the endpoint is routed.
pub(crate) const PATH: &str = "/palisade/import";

/// Default largest import body: 64 MiB, some 60,000 things with a certificate each.
pub(crate) const DEFAULT_IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// One failed line, as answered.
#[derive(Serialize)]
struct LineReport {
    line: u64,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    resource: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(flatten)]
    summary: ImportSummary,
    errors: Vec<LineReport>,
}

/// Keeps every failed line as the API would answer it. Server-side failures (a batch
/// the database refused) come once per line of the batch: they are logged and mapped
/// once, not once per line.
#[derive(Default)]
struct Collector {
    errors: Vec<LineReport>,
    unavailable: Option<(&'static str, String)>,
    internal: Option<(&'static str, String)>,
}

impl ImportObserver for Collector {
    fn error(&mut self, e: LineError) {
        let (code, message) = match e.error {
            EngineError::Unavailable(_) if self.unavailable.is_some() => {
                self.unavailable.clone().unwrap_or_default()
            }
            EngineError::Internal(_) if self.internal.is_some() => {
                self.internal.clone().unwrap_or_default()
            }
            error => {
                let server_side = matches!(
                    error,
                    EngineError::Unavailable(_) | EngineError::Internal(_)
                );
                let unavailable = matches!(error, EngineError::Unavailable(_));
                let api = ApiError::from(error);
                let pair = (api.code, api.message);
                if server_side {
                    let slot = if unavailable {
                        &mut self.unavailable
                    } else {
                        &mut self.internal
                    };
                    *slot = Some(pair.clone());
                }
                pair
            }
        };
        self.errors.push(LineReport {
            line: e.line,
            resource: e.resource.map(|r| r.as_str()),
            name: e.name,
            code,
            message,
        });
    }
}

pub(crate) async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    answer_json("PalisadeImport", |span| async move {
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
    let mut options = ImportOptions::default();
    for (key, value) in query {
        match key.as_str() {
            "batchSize" => {
                options.batch_size = value.parse().map_err(|_| {
                    ApiError::invalid(format!(
                        "batchSize must be a number between 1 and {}; got '{value}'.",
                        palisade_engine::MAX_BATCH_SIZE
                    ))
                })?;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "Unknown query parameter '{other}'; the import takes batchSize (default {DEFAULT_BATCH_SIZE})."
                )))
            }
        }
    }
    let mut collector = Collector::default();
    let summary = state
        .engine
        .import(&scope, Cursor::new(body), &options, &mut collector)
        .await?;
    let mut errors = collector.errors;
    errors.sort_by_key(|e| e.line);
    serde_json::to_vec(&Answer { summary, errors }).map_err(|e| {
        tracing::error!(cause = %e, "encoding the import summary");
        ApiError::internal()
    })
}
