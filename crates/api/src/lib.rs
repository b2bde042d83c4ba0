//! Palisade's HTTP front door: the AWS IoT rest-json protocol over axum.
//!
//! A request flows: read body (size-limited) -> SigV4 (cheap checks, then the secret) ->
//! route by method and URI template -> decode and validate with the generated model ->
//! engine -> JSON. Any failure on the way becomes an AWS-shaped error in `error`.

mod connections_import;
mod dispatch;
mod error;
mod import;
mod request;
mod routes;
mod server;

pub use error::ApiError;
pub use routes::Routes;
pub use server::{router, serve, ServerConfig};
