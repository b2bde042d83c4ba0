//! Hands a decoded request to the engine and encodes its answer. Thin on purpose: every
//! rule lives in the engine, every wire detail in the model and `server`.

use palisade_engine::{Engine, EngineResult, Scope};
use palisade_model::Request;
use serde::Serialize;

use crate::error::ApiError;

fn encode<T: Serialize>(r: EngineResult<T>) -> Result<Vec<u8>, ApiError> {
    let out = r?;
    // Sized for a typical Describe answer, so that most responses are written without
    // growing the buffer several times from empty.
    let mut buf = Vec::with_capacity(512);
    serde_json::to_writer(&mut buf, &out).map_err(|e| {
        tracing::error!(cause = %e, "encoding response");
        ApiError::internal()
    })?;
    Ok(buf)
}

/// For operations whose model has no output: AWS answers with an empty body.
fn encode_empty(r: EngineResult<()>) -> Result<Vec<u8>, ApiError> {
    r?;
    Ok(Vec::new())
}

/// Every implemented operation goes to the engine method of its name (the match is
/// generated from the model and exhaustive, so an operation the engine lacks does not
/// compile).
pub async fn dispatch(
    engine: &Engine,
    scope: &Scope,
    request: Request,
) -> Result<Vec<u8>, ApiError> {
    palisade_model::dispatch_request!(request, engine, scope, encode, encode_empty)
}
