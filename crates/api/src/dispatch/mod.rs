//! Hands a decoded request to the engine and encodes its answer. Thin on purpose: every
//! rule lives in the engine, every wire detail in the model and `server`.

use palisade_engine::{Engine, EngineResult, Scope};
use palisade_model::Request;
use serde::Serialize;

use crate::error::ApiError;

// One module per resource group: each answers the requests of its group and hands any
// other back, so groups are added without touching each other.
mod audits;
mod certificates;
mod logging;
mod mitigation;
mod policies;
mod principals;
mod role_aliases;
mod things;

/// What a group's dispatcher returns: its answer, or the request back if not its own.
type Handled = Result<Result<Vec<u8>, ApiError>, Request>;

fn encode<T: Serialize>(r: EngineResult<T>) -> Result<Vec<u8>, ApiError> {
    let out = r?;
    serde_json::to_vec(&out).map_err(|e| {
        tracing::error!(cause = %e, "encoding response");
        ApiError::internal()
    })
}

/// For operations whose model has no output: AWS answers with an empty body.
#[allow(dead_code)]
fn encode_empty(r: EngineResult<()>) -> Result<Vec<u8>, ApiError> {
    r?;
    Ok(Vec::new())
}

pub async fn dispatch(
    engine: &Engine,
    scope: &Scope,
    request: Request,
) -> Result<Vec<u8>, ApiError> {
    macro_rules! try_group {
        ($group:ident, $request:expr) => {
            match $group::dispatch(engine, scope, $request).await {
                Ok(answer) => return answer,
                Err(not_mine) => not_mine,
            }
        };
    }
    let request = try_group!(mitigation, request);
    let request = try_group!(things, request);
    let request = try_group!(policies, request);
    let request = try_group!(logging, request);
    let request = try_group!(role_aliases, request);
    let request = try_group!(certificates, request);
    let request = try_group!(principals, request);
    let request = try_group!(audits, request);
    // Decoded from the model but not wired to the engine yet.
    Err(ApiError::not_implemented(request.operation_name()))
}
