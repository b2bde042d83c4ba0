//! The account's logging options (v1 and v2).

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, encode_empty, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::SetV2LoggingOptions(i) => {
            encode_empty(engine.set_v2_logging_options(scope, i).await)
        }
        Request::GetV2LoggingOptions(i) => encode(engine.get_v2_logging_options(scope, i).await),
        Request::SetLoggingOptions(i) => encode_empty(engine.set_logging_options(scope, i).await),
        Request::GetLoggingOptions(i) => encode(engine.get_logging_options(scope, i).await),
        other => return Err(other),
    })
}
