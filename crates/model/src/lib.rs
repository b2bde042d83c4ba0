//! The AWS IoT API model as Rust: request and response shapes with AWS member names,
//! enums, constraint checks, the HTTP binding of every operation and the error shapes.
//!
//! Everything under `generated/` is written by `palisade-codegen` from AWS's own model;
//! `runtime` is the small hand-written support it calls.

mod generated;
pub mod runtime;

pub use generated::errors;
pub use generated::*;
pub use runtime::{
    ErrorSpec, OperationSpec, Paginator, RawRequest, RequestError, Timestamp, Validate,
};
