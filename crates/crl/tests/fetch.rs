//! `fetch` against a local HTTP/1.1 server on 127.0.0.1:0.
//!
//! The server is written on raw sockets rather than with hyper so that it can misbehave
//! on purpose: never answer, or stream a body without end.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use palisade_crl::{fetch, Crl, CrlError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX: usize = 64 * 1024;

/// Starts the test server; returns its address. `crl` is served at /crl.
async fn server(crl: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let crl = crl.clone();
            tokio::spawn(async move {
                let _ = handle(stream, addr, &crl).await;
            });
        }
    });
    addr
}

async fn handle(mut stream: TcpStream, addr: SocketAddr, crl: &[u8]) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let line = head.lines().next().unwrap_or_default().to_owned();
    assert!(line.starts_with("GET "), "{line}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nhost: 127.0.0.1:"),
        "{head}"
    );
    let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
    let redirect = |status: &str, location: String| {
        format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    };
    let response = match path.as_str() {
        "/crl" => ok(crl),
        "/missing" => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
                .to_vec()
        }
        "/error" => {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        }
        "/moved" => redirect("302 Found", "/crl".into()).into_bytes(),
        "/moved-absolute" => {
            redirect("301 Moved Permanently", format!("http://{addr}/crl")).into_bytes()
        }
        "/dir/relative" => redirect("307 Temporary Redirect", "../crl".into()).into_bytes(),
        "/hop1" => redirect("302 Found", "/hop2".into()).into_bytes(),
        "/hop2" => redirect("308 Permanent Redirect", "/hop3".into()).into_bytes(),
        "/hop3" => redirect("303 See Other", "/crl".into()).into_bytes(),
        "/hop0" => redirect("302 Found", "/hop1".into()).into_bytes(),
        "/to-https" => redirect("302 Found", format!("https://{addr}/crl")).into_bytes(),
        "/no-location" => {
            b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
        "/big" => ok(&vec![0x30; MAX + 1]),
        "/exact" => ok(&vec![0x30; MAX]),
        "/endless" => {
            // Chunked, no Content-Length, never ending: only the client's limit stops it.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = [0x41u8; 4096];
            loop {
                stream.write_all(b"1000\r\n").await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
        }
        "/hang" => {
            // Read the request, then say nothing.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        "/slow-body" => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
                .await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        _ => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn test_crl() -> Vec<u8> {
    let ca = common::ca("Fetch CA", common::key(&rcgen::PKCS_ECDSA_P256_SHA256));
    ca.crl(vec![common::revoked(&[0x2a], None)]).der().to_vec()
}

#[tokio::test]
async fn fetches_a_crl_with_200() {
    let crl = test_crl();
    let addr = server(crl.clone()).await;
    let body = fetch(&format!("http://{addr}/crl"), TIMEOUT, MAX)
        .await
        .expect("fetch");
    assert_eq!(body, crl);
    assert!(Crl::parse(&body).expect("parse").is_revoked("2a"));
}

#[tokio::test]
async fn non_200_names_the_status() {
    let addr = server(test_crl()).await;
    let url = format!("http://{addr}/missing");
    let err = fetch(&url, TIMEOUT, MAX).await.expect_err("404");
    assert_eq!(
        err,
        CrlError::HttpStatus {
            url: url.clone(),
            status: 404
        }
    );
    assert_eq!(
        err.to_string(),
        format!("fetching {url} failed: the server answered HTTP 404")
    );
    let err = fetch(&format!("http://{addr}/error"), TIMEOUT, MAX)
        .await
        .expect_err("503");
    assert!(
        matches!(err, CrlError::HttpStatus { status: 503, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn follows_redirects() {
    let crl = test_crl();
    let addr = server(crl.clone()).await;
    for path in ["/moved", "/moved-absolute", "/dir/relative", "/hop1"] {
        let body = fetch(&format!("http://{addr}{path}"), TIMEOUT, MAX)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(body, crl, "{path}");
    }
}

#[tokio::test]
async fn at_most_three_redirects() {
    let addr = server(test_crl()).await;
    let url = format!("http://{addr}/hop0");
    let err = fetch(&url, TIMEOUT, MAX).await.expect_err("4 redirects");
    assert_eq!(err, CrlError::TooManyRedirects { url, max: 3 });

    let err = fetch(&format!("http://{addr}/no-location"), TIMEOUT, MAX)
        .await
        .expect_err("no Location");
    assert!(matches!(err, CrlError::Fetch { .. }), "{err}");
}

#[tokio::test]
async fn redirect_to_https_is_refused() {
    let addr = server(test_crl()).await;
    let err = fetch(&format!("http://{addr}/to-https"), TIMEOUT, MAX)
        .await
        .expect_err("https redirect");
    assert!(
        matches!(&err, CrlError::UnsupportedScheme { scheme, .. } if scheme == "https"),
        "{err}"
    );
}

#[tokio::test]
async fn body_size_limit() {
    let addr = server(test_crl()).await;
    let url = format!("http://{addr}/big");
    let err = fetch(&url, TIMEOUT, MAX).await.expect_err("too large");
    assert_eq!(
        err,
        CrlError::TooLarge {
            url,
            max_bytes: MAX
        }
    );
    let body = fetch(&format!("http://{addr}/exact"), TIMEOUT, MAX)
        .await
        .expect("exactly the limit");
    assert_eq!(body.len(), MAX);

    // No Content-Length and no end: the limit must stop it while streaming.
    let start = Instant::now();
    let err = fetch(&format!("http://{addr}/endless"), TIMEOUT, MAX)
        .await
        .expect_err("endless body");
    assert!(matches!(err, CrlError::TooLarge { .. }), "{err}");
    assert!(start.elapsed() < TIMEOUT);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let addr = server(test_crl()).await;
    for path in ["/hang", "/slow-body"] {
        let url = format!("http://{addr}{path}");
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let err = fetch(&url, timeout, MAX).await.expect_err("timeout");
        let elapsed = start.elapsed();
        assert_eq!(
            err,
            CrlError::Timeout {
                url: url.clone(),
                timeout
            }
        );
        assert!(
            elapsed >= timeout && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("fetching {url} failed: no complete answer within 0.3 s")
        );
    }

    // Accepts the connection but never reads or writes.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/crl", silent.local_addr().expect("addr"));
    let err = fetch(&url, Duration::from_millis(300), MAX)
        .await
        .expect_err("timeout");
    assert!(matches!(err, CrlError::Timeout { .. }), "{err}");
    drop(silent);
}

#[tokio::test]
async fn only_http_urls() {
    for (url, scheme) in [
        ("https://127.0.0.1:1/ca.crl", "https"),
        ("HTTPS://crl.example.com/ca.crl", "https"),
        (
            "ldap://ldap.example.com/cn=CA,o=Example?certificateRevocationList",
            "ldap",
        ),
        ("ftp://crl.example.com/ca.crl", "ftp"),
        ("file:///etc/ca.crl", "file"),
    ] {
        let err = fetch(url, TIMEOUT, MAX).await.expect_err(url);
        assert_eq!(
            err,
            CrlError::UnsupportedScheme {
                url: url.into(),
                scheme: scheme.into()
            }
        );
        assert!(err.to_string().contains("only http://"), "{err}");
    }
    for url in [
        "",
        "crl.example.com/ca.crl",
        "http://",
        "http:///ca.crl",
        "http://exa mple/",
    ] {
        assert!(
            matches!(
                fetch(url, TIMEOUT, MAX).await,
                Err(CrlError::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
}

#[tokio::test]
async fn connection_refused_is_a_fetch_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = fetch(&format!("http://{addr}/crl"), TIMEOUT, MAX)
        .await
        .expect_err("refused");
    match &err {
        CrlError::Fetch { reason, .. } => assert!(reason.contains("refused"), "{reason}"),
        other => panic!("expected Fetch, got {other:?}"),
    }
}
