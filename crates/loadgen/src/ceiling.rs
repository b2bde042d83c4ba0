//! `ceiling`: the cheapest server that answers like DescribeMitigationAction.
//!
//! It does no authentication and no storage: it measures what the HTTP stack (axum + hyper +
//! tokio) and the load generator can do on this machine, the upper bound for the real server.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;
use http::header::CONTENT_TYPE;

use crate::endpoint::check_listen;

/// A fixed body shaped like a real DescribeMitigationAction response (~400 bytes).
pub const DESCRIBE_BODY: &str = concat!(
    r#"{"actionName":"bench-action","actionType":"PUBLISH_FINDING_TO_SNS","#,
    r#""actionArn":"arn:aws:iot:us-east-1:000000000000:mitigationaction/bench-action","#,
    r#""actionId":"6f1c2b1e-8a3d-4c55-9d7e-0b5f3a2e1c44","#,
    r#""roleArn":"arn:aws:iam::000000000000:role/bench-role","#,
    r#""actionParams":{"publishFindingToSnsParams":{"topicArn":"arn:aws:sns:us-east-1:000000000000:bench"}},"#,
    r#""creationDate":1.7e9,"lastModifiedDate":1.7e9}"#
);

pub fn router() -> Router {
    Router::new().route(
        "/mitigationactions/actions/{name}",
        get(|| async { ([(CONTENT_TYPE, "application/json")], DESCRIBE_BODY) }),
    )
}

pub async fn serve(listen: SocketAddr) -> Result<()> {
    check_listen(listen)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    eprintln!("ceiling server listening on {}", listener.local_addr()?);
    axum::serve(listener, router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_describe_shaped_json() {
        let v: serde_json::Value = serde_json::from_str(DESCRIBE_BODY).unwrap();
        assert_eq!(v["actionName"], "bench-action");
        assert!(DESCRIBE_BODY.len() > 250 && DESCRIBE_BODY.len() < 500);
    }
}
