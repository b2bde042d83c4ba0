//! `setup`: create the benchmark mitigation action.

use anyhow::{bail, Result};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;

use crate::client::{self, Target, Template};

/// Request body of the benchmark CreateMitigationAction call.
pub const CREATE_BODY: &str = r#"{"roleArn":"arn:aws:iam::000000000000:role/bench-role","actionParams":{"publishFindingToSnsParams":{"topicArn":"arn:aws:sns:us-east-1:000000000000:bench"}}}"#;

pub async fn setup(target: &Target) -> Result<()> {
    let mut sender = client::connect::<Full<Bytes>>(&target.endpoint).await?;
    let template = Template::new(target, Method::POST, &target.action_path(), true)?;
    let body = Bytes::from_static(CREATE_BODY.as_bytes());
    let request = template.signed(target, &body, Full::new(body.clone()))?;
    let (status, headers, body) = client::send_collect(&mut sender, request).await?;
    let text = String::from_utf8_lossy(&body);
    match status {
        s if s.is_success() => {
            println!("created mitigation action {:?}: {text}", target.name);
            Ok(())
        }
        StatusCode::CONFLICT => {
            println!(
                "mitigation action {:?} already exists (409), continuing",
                target.name
            );
            Ok(())
        }
        s => {
            let kind = headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            bail!("CreateMitigationAction failed: HTTP {s} ({kind}): {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_is_valid_json() {
        let v: serde_json::Value = serde_json::from_str(super::CREATE_BODY).unwrap();
        assert_eq!(v["roleArn"], "arn:aws:iam::000000000000:role/bench-role");
    }
}
