//! SigV4 signing (the real AWS signer) and raw HTTP/1.1 connections.

use std::time::SystemTime;

use anyhow::{Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Uri};
use hyper::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::endpoint::Endpoint;
use crate::TargetArgs;

/// Signing name of AWS IoT.
pub const SERVICE: &str = "iot";

/// Everything needed to address and sign requests for one mitigation action.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub identity: Identity,
    pub region: String,
    pub name: String,
}

impl Target {
    pub fn from_args(args: &TargetArgs) -> Result<Self> {
        let endpoint = Endpoint::parse(&args.endpoint)?;
        crate::check_action_name(&args.name)?;
        let identity = Credentials::new(
            args.access_key.clone(),
            args.secret.clone(),
            None,
            None,
            "palisade-loadgen",
        )
        .into();
        Ok(Self {
            endpoint,
            identity,
            region: args.region.clone(),
            name: args.name.clone(),
        })
    }

    /// `/mitigationactions/actions/{name}`; the name is `[a-zA-Z0-9_-]+`, so no escaping needed.
    pub fn action_path(&self) -> String {
        format!("/mitigationactions/actions/{}", self.name)
    }
}

/// A request template for one method + path: everything that does not change between requests
/// is computed once, so the per-request work is the signing itself plus a few cheap clones.
pub struct Template {
    method: Method,
    /// Absolute URL handed to the signer (the signer takes the host from the `Host` header).
    url: String,
    /// Origin-form URI sent on the wire.
    uri: Uri,
    host: HeaderValue,
    content_type: Option<HeaderValue>,
    settings: SigningSettings,
}

impl Template {
    pub fn new(target: &Target, method: Method, path: &str, json_body: bool) -> Result<Self> {
        Ok(Self {
            method,
            url: target.endpoint.url(path),
            uri: path
                .parse()
                .with_context(|| format!("invalid path {path:?}"))?,
            host: HeaderValue::from_str(target.endpoint.host_header())?,
            content_type: json_body.then(|| HeaderValue::from_static("application/json")),
            settings: signing_settings(),
        })
    }

    /// Builds a freshly signed request (new `X-Amz-Date`, new signature) carrying `body`.
    /// `payload` is the exact body bytes, which the signature covers.
    pub fn signed<B>(&self, target: &Target, payload: &[u8], body: B) -> Result<Request<B>> {
        self.signed_at(target, payload, body, SystemTime::now())
    }

    /// Like [`Template::signed`], with an explicit signing time.
    pub fn signed_at<B>(
        &self,
        target: &Target,
        payload: &[u8],
        body: B,
        time: SystemTime,
    ) -> Result<Request<B>> {
        let host = self.host.to_str()?;
        let content_type = self.content_type.as_ref().map(|v| v.to_str()).transpose()?;
        let headers =
            std::iter::once(("host", host)).chain(content_type.map(|ct| ("content-type", ct)));
        let signable = SignableRequest::new(
            self.method.as_str(),
            self.url.as_str(),
            headers,
            SignableBody::Bytes(payload),
        )?;
        let params = v4::SigningParams::builder()
            .identity(&target.identity)
            .region(&target.region)
            .name(SERVICE)
            .time(time)
            .settings(self.settings.clone())
            .build()?
            .into();
        let (instructions, _signature) = sign(signable, &params)?.into_parts();

        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        if let Some(ct) = &self.content_type {
            headers.insert(CONTENT_TYPE, ct.clone());
        }
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }
}

/// The signer's defaults, minus the excluded-headers list: it only names headers this tool
/// never sends (user-agent, authorization, ...), and without it cloning the settings for each
/// request does not allocate.
fn signing_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    settings
}

/// Opens one TCP connection and performs the HTTP/1.1 client handshake. The connection task is
/// spawned and lives until the `SendRequest` is dropped or the peer closes.
pub async fn connect<B>(endpoint: &Endpoint) -> Result<SendRequest<B>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(endpoint.addr())
        .await
        .with_context(|| format!("connecting to {}", endpoint.addr()))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        // Errors surface through SendRequest as well; nothing more to do here.
        let _ = conn.await;
    });
    Ok(sender)
}

/// Helper for one-off requests: collects the whole body.
pub async fn send_collect<B>(
    sender: &mut SendRequest<B>,
    request: Request<B>,
) -> Result<(http::StatusCode, http::HeaderMap, Bytes)>
where
    B: Body + Send + 'static,
{
    use http_body_util::BodyExt;
    sender.ready().await.context("connection not ready")?;
    let response = sender
        .send_request(request)
        .await
        .context("sending request")?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.context("reading body")?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;

    fn target() -> Target {
        Target::from_args(&TargetArgs {
            endpoint: "http://127.0.0.1:4566".into(),
            access_key: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            name: "bench-action".into(),
        })
        .unwrap()
    }

    #[test]
    fn signs_get() {
        let t = target();
        let tpl = Template::new(&t, Method::GET, &t.action_path(), false).unwrap();
        let req = tpl.signed(&t, b"", Empty::<Bytes>::new()).unwrap();
        assert_eq!(req.uri(), "/mitigationactions/actions/bench-action");
        assert_eq!(req.headers()["host"], "127.0.0.1:4566");
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/iot/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=host;x-amz-date"), "{auth}");
        assert!(req.headers().contains_key("x-amz-date"));
    }

    #[test]
    fn signs_post_with_content_type() {
        let t = target();
        let tpl = Template::new(&t, Method::POST, &t.action_path(), true).unwrap();
        let body = br#"{"a":1}"#;
        let req = tpl
            .signed(
                &t,
                body,
                http_body_util::Full::new(Bytes::from_static(body)),
            )
            .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{auth}"
        );
        assert_eq!(req.headers()["content-type"], "application/json");
    }

    /// Same request, same time, same key as botocore's `SigV4Auth(creds, "iot", "us-east-1")`
    /// (what boto3 and the AWS CLI use): the signatures must be identical.
    #[test]
    fn matches_botocore() {
        let t = target();
        // 2024-01-02T03:04:05Z
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_704_164_645);
        let get = Template::new(&t, Method::GET, &t.action_path(), false)
            .unwrap()
            .signed_at(&t, b"", Empty::<Bytes>::new(), time)
            .unwrap();
        assert_eq!(get.headers()["x-amz-date"], "20240102T030405Z");
        assert_eq!(
            get.headers()["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/iot/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=bc856056a3aa6ee78c9ef472a3bd28666eac78356f415f282816f25e77c00bc8"
        );
        let body = br#"{"a":1}"#;
        let post = Template::new(&t, Method::POST, &t.action_path(), true)
            .unwrap()
            .signed_at(&t, body, Empty::<Bytes>::new(), time)
            .unwrap();
        assert_eq!(
            post.headers()["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/iot/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=1b6503cfca69b6511940bb50f774c5eb009d1591f1db96ef655b9fa6b627947a"
        );
    }

    /// Cost of one signature with the real signer: `cargo test --release -p palisade-loadgen
    /// sign_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sign_speed() {
        let t = target();
        let tpl = Template::new(&t, Method::GET, &t.action_path(), false).unwrap();
        let n = 200_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            let r = tpl.signed(&t, b"", Empty::<Bytes>::new()).unwrap();
            std::hint::black_box(r);
        }
        eprintln!("{:?} per signed request", started.elapsed() / n);
    }
}
