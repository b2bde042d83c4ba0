//! Hand-written HTTP/1.1 requests, optionally signed with the independent `aws-sigv4`
//! signer, for the cases an SDK cannot produce (unsigned, tampered, stale, malformed).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use palisade_store::Credential;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    /// Origin form: path and optional `?query`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// Sends `body` with chunked transfer encoding (so without a declared length), in
    /// chunks of at most `chunk` bytes. Sign before calling this, not after.
    pub fn chunked(mut self, body: &[u8], chunk: usize) -> Self {
        let mut encoded = Vec::with_capacity(body.len() + body.len() / chunk * 8 + 8);
        for piece in body.chunks(chunk) {
            encoded.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            encoded.extend_from_slice(piece);
            encoded.extend_from_slice(b"\r\n");
        }
        encoded.extend_from_slice(b"0\r\n\r\n");
        self.body = encoded;
        self.header("transfer-encoding", "chunked")
    }

    /// Sets a JSON body (and its content type).
    pub fn json(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Signs the request as it is now for service `iot` in us-east-1, at `time`, adding
    /// the `host`, `x-amz-date` and `authorization` headers.
    pub fn sign(self, host: &str, cred: &Credential, time: SystemTime) -> Self {
        self.sign_with(host, cred, time, SigningSettings::default())
    }

    /// Presigns the request: the signature travels in the query string, valid for
    /// `expires_in` from `time`.
    pub fn presign(
        self,
        host: &str,
        cred: &Credential,
        time: SystemTime,
        expires_in: Duration,
    ) -> Self {
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
        self.sign_with(host, cred, time, settings)
    }

    fn sign_with(
        self,
        host: &str,
        cred: &Credential,
        time: SystemTime,
        settings: SigningSettings,
    ) -> Self {
        let with_host = self.header("host", host);
        let identity: Identity = Credentials::new(
            &cred.access_key_id,
            &cred.secret_access_key,
            None,
            None,
            "palisade-e2e",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(super::REGION)
            .name("iot")
            .time(time)
            .settings(settings)
            .build()
            .expect("signing params")
            .into();
        let url = format!("http://{host}{}", with_host.target);
        let signable = SignableRequest::new(
            &with_host.method,
            url.clone(),
            with_host
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(&with_host.body),
        )
        .expect("signable request");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();

        // Let the signer place its headers or query parameters, encoded as it means them.
        let mut req = http::Request::builder()
            .method(with_host.method.as_str())
            .uri(url)
            .body(())
            .expect("request");
        instructions.apply_to_request_http1x(&mut req);
        let mut signed = Self {
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
            ..with_host
        };
        for (n, v) in req.headers() {
            signed = signed.header(n.as_str(), v.to_str().expect("ASCII header"));
        }
        signed
    }
}

pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl RawResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `message` member of an error body.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in error body: {self:?}"))
            .to_owned()
    }

    /// Asserts an AWS-shaped error: status, `x-amzn-ErrorType`, a JSON body with a
    /// message, and a request id.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.header("x-amzn-errortype")),
            (status, Some(code)),
            "unexpected response: {self:?}"
        );
        assert!(!self.message().is_empty(), "empty error message: {self:?}");
        self.assert_request_id();
        self
    }

    #[track_caller]
    pub fn assert_request_id(&self) -> &Self {
        assert!(
            self.header("x-amzn-requestid")
                .is_some_and(|v| !v.is_empty()),
            "response without x-amzn-RequestId: {self:?}"
        );
        self
    }
}

/// Sends `req` on a fresh connection and reads one response. The body is written while
/// the response is read, so a server that answers before reading all of a large body
/// is observed correctly; only a connection closed before a whole response arrived fails.
pub async fn send(addr: SocketAddr, req: RawRequest) -> RawResponse {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();

    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    if !req
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (n, v) in &req.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let framed = req.headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed {
        head.push_str(&format!("content-length: {}\r\n", req.body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    let body = req.body;
    // The task hands the write half back instead of dropping it: dropping it would
    // half-close the connection, which the server (like most) takes as the client leaving.
    let write = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        let _ = writer.flush().await;
        writer
    });

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let response = tokio::time::timeout(IO_TIMEOUT, async {
        loop {
            if let Some(resp) = parse_response(&buf) {
                return resp;
            }
            match reader.read(&mut chunk).await {
                Ok(0) => panic!(
                    "connection closed before a whole response arrived; got {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "reading the response failed ({e}); got {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            }
        }
    })
    .await
    .expect("no response within the timeout");
    // The write may legitimately fail once the server has answered and closed.
    write.abort();
    drop(write.await);
    response
}

/// A complete response in `buf`, if there is one yet.
fn parse_response(buf: &[u8]) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("response head is not UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else {
        let len: usize = find("content-length").map_or(0, |v| v.parse().expect("content-length"));
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    };
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

/// A complete chunked body, if all of it has arrived.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
