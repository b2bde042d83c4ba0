//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use palisade_sigv4::RequestView;

pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A request that owns its parts; `with_view` lends them as a `RequestView`.
#[derive(Debug, Clone)]
pub struct OwnedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OwnedRequest {
    /// Parses the test suite's request text: request line, `Name:value`
    /// headers (indented lines continue the previous one), blank line, body.
    ///
    /// Like an HTTP server: header values lose surrounding whitespace, and an
    /// obsolete line fold becomes a single space (RFC 9112 §5.2).
    pub fn from_suite_text(text: &str) -> Self {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let request_line = lines.next().expect("request line");
        let (method, target) = request_line.split_once(' ').expect("method");
        let target = target.strip_suffix(" HTTP/1.1").unwrap_or(target);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("continuation after a header");
                last.1.push(' ');
                last.1.push_str(line.trim_matches([' ', '\t']));
            } else {
                let (name, value) = line.split_once(':').expect("header line");
                headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
            }
        }
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn from_http(req: &http::Request<Vec<u8>>) -> Self {
        Self {
            method: req.method().as_str().to_owned(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect(),
            body: req.body().clone(),
        }
    }

    pub fn with_view<R>(&self, f: impl FnOnce(&RequestView<'_>) -> R) -> R {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let view = RequestView {
            method: &self.method,
            raw_path: &self.path,
            raw_query: self.query.as_deref(),
            headers: &headers,
            body: &self.body,
        };
        f(&view)
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// Signs `req` in place with the independent `aws-sigv4` signer. `req` must
/// carry its `host` header, as it would on the wire.
pub fn aws_sign(
    req: &mut http::Request<Vec<u8>>,
    settings: SigningSettings,
    body: SignableBody<'_>,
    service: &str,
    region: &str,
    time: SystemTime,
    session_token: Option<&str>,
) {
    let identity = Credentials::new(
        ACCESS_KEY,
        SECRET,
        session_token.map(str::to_owned),
        None,
        "tests",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(req);
}
