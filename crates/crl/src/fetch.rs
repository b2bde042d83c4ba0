//! Fetching a CRL from an `http://` distribution point.
//!
//! CRLs are signed, so they are conventionally served over plain HTTP (RFC 5280
//! §4.2.1.13 names HTTP and LDAP; HTTPS would risk a loop, validating the server's
//! certificate needing the very CRL being fetched). Keeping TLS out also keeps this
//! crate free of a TLS stack.

use std::time::Duration;

use http::header::{ACCEPT, CONTENT_LENGTH, LOCATION, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::CrlError;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 3;

/// HTTP GET of a CRL distribution point, returning the body (DER or PEM; pass it to
/// [`crate::Crl::parse`]).
///
/// Only `http://` URLs are fetched; any other scheme, including a redirect to one, is
/// [`CrlError::UnsupportedScheme`]. Up to three redirects are followed. `timeout`
/// bounds the whole fetch (connecting, redirects and the body), and a body longer
/// than `max_bytes` is abandoned as soon as it is seen to be, without buffering it.
/// Any final status but 200 is [`CrlError::HttpStatus`].
pub async fn fetch(url: &str, timeout: Duration, max_bytes: usize) -> Result<Vec<u8>, CrlError> {
    // Checked before anything touches the network so that a non-HTTP distribution
    // point fails the same way whether or not its host is reachable.
    let uri = http_uri(url)?;
    match tokio::time::timeout(timeout, follow(url, uri, max_bytes)).await {
        Ok(result) => result,
        Err(_) => Err(CrlError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

async fn follow(original: &str, mut uri: Uri, max_bytes: usize) -> Result<Vec<u8>, CrlError> {
    // A fresh client per fetch: distribution points are fetched rarely and mostly from
    // different hosts, so a connection pool would only hold sockets open.
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    for redirects in 0..=MAX_REDIRECTS {
        let url = uri.to_string();
        let request = Request::get(uri.clone())
            .header(
                USER_AGENT,
                concat!("palisade-crl/", env!("CARGO_PKG_VERSION")),
            )
            .header(ACCEPT, "application/pkix-crl, application/x-pkcs7-crl, */*")
            .body(Empty::new())
            .map_err(|e| CrlError::InvalidUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let response = client.request(request).await.map_err(|e| CrlError::Fetch {
            url: url.clone(),
            reason: describe(&e),
        })?;
        let status = response.status();
        if is_redirect(status) {
            if redirects == MAX_REDIRECTS {
                return Err(CrlError::TooManyRedirects {
                    url: original.to_owned(),
                    max: MAX_REDIRECTS,
                });
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| CrlError::Fetch {
                    url: url.clone(),
                    reason: format!(
                        "HTTP {} redirect without a usable Location",
                        status.as_u16()
                    ),
                })?;
            uri = http_uri(&resolve(&uri, location))?;
            continue;
        }
        if status != StatusCode::OK {
            return Err(CrlError::HttpStatus {
                url,
                status: status.as_u16(),
            });
        }
        let too_large = || CrlError::TooLarge {
            url: url.clone(),
            max_bytes,
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_bytes as u64) {
            return Err(too_large());
        }
        // The declared length is only a hint for the allocation, never trusted past
        // the limit.
        let capacity = declared
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(0)
            .min(max_bytes);
        let mut body = response.into_body();
        let mut out = Vec::with_capacity(capacity);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CrlError::Fetch {
                url: url.clone(),
                reason: describe(&e),
            })?;
            if let Ok(data) = frame.into_data() {
                if data.len() > max_bytes.saturating_sub(out.len()) {
                    return Err(too_large());
                }
                out.extend_from_slice(&data);
            }
        }
        return Ok(out);
    }
    // The loop returns on its last iteration; this is for the compiler.
    Err(CrlError::TooManyRedirects {
        url: original.to_owned(),
        max: MAX_REDIRECTS,
    })
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// The URI of an `http://` URL, or why it cannot be fetched.
fn http_uri(url: &str) -> Result<Uri, CrlError> {
    let invalid = |reason: &str| CrlError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme)
        .filter(|s| is_scheme(s))
        .ok_or_else(|| invalid("it is not an absolute URL (expected http://host/path)"))?;
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(CrlError::UnsupportedScheme {
            url: url.to_owned(),
            scheme: scheme.to_ascii_lowercase(),
        });
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("it is not a valid http:// URL"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    Ok(uri)
}

/// RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A Location header resolved against the URL that returned it (RFC 3986 §5.2), for
/// the forms servers send: absolute, scheme-relative, absolute-path and relative-path.
fn resolve(base: &Uri, location: &str) -> String {
    let location = location.split('#').next().unwrap_or_default();
    let has_scheme = location
        .split_once(':')
        .is_some_and(|(scheme, _)| is_scheme(scheme));
    if has_scheme {
        return location.to_owned();
    }
    if location.starts_with("//") {
        return format!("http:{location}");
    }
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    if location.starts_with('/') {
        return format!("http://{authority}{}", remove_dot_segments(location));
    }
    let path = base.path();
    let dir = path.rfind('/').and_then(|i| path.get(..=i)).unwrap_or("/");
    format!(
        "http://{authority}{}",
        remove_dot_segments(&format!("{dir}{location}"))
    )
}

/// RFC 3986 §5.2.4 for an absolute path (with an optional query, left alone).
fn remove_dot_segments(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = matches!(segment, "." | "..");
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    let mut text = format!("/{}", out.join("/"));
    if trailing_slash && !text.ends_with('/') {
        text.push('/');
    }
    text.push_str(query);
    text
}

/// An error with its causes: hyper's own messages ("client error (Connect)") say little
/// without the underlying I/O error.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(http_uri("http://crl.example.com/ca.crl").is_ok());
        assert!(http_uri("HTTP://crl.example.com/ca.crl").is_ok());
        assert!(matches!(
            http_uri("https://crl.example.com/ca.crl"),
            Err(CrlError::UnsupportedScheme { scheme, .. }) if scheme == "https"
        ));
        assert!(matches!(
            http_uri("ldap://ldap.example.com/cn=CA?certificateRevocationList;binary"),
            Err(CrlError::UnsupportedScheme { scheme, .. }) if scheme == "ldap"
        ));
        assert!(matches!(
            http_uri("crl.example.com/ca.crl"),
            Err(CrlError::InvalidUrl { .. })
        ));
        assert!(matches!(
            http_uri("http://"),
            Err(CrlError::InvalidUrl { .. })
        ));
        assert!(matches!(http_uri(""), Err(CrlError::InvalidUrl { .. })));
    }

    #[test]
    fn redirect_locations() {
        let base: Uri = "http://a.example:8080/crls/ca.crl?x=1"
            .parse()
            .expect("uri");
        assert_eq!(
            resolve(&base, "http://b.example/x.crl"),
            "http://b.example/x.crl"
        );
        assert_eq!(
            resolve(&base, "https://b.example/x.crl"),
            "https://b.example/x.crl"
        );
        assert_eq!(
            resolve(&base, "//b.example/x.crl"),
            "http://b.example/x.crl"
        );
        assert_eq!(
            resolve(&base, "/other.crl"),
            "http://a.example:8080/other.crl"
        );
        assert_eq!(
            resolve(&base, "new.crl"),
            "http://a.example:8080/crls/new.crl"
        );
        assert_eq!(
            resolve(&base, "../x.crl?v=2"),
            "http://a.example:8080/x.crl?v=2"
        );
        assert_eq!(
            resolve(&base, "./a/./b/../c.crl"),
            "http://a.example:8080/crls/a/c.crl"
        );
        assert_eq!(
            resolve(&base, "/a/../../b.crl#frag"),
            "http://a.example:8080/b.crl"
        );
        assert_eq!(resolve(&base, ".."), "http://a.example:8080/");
    }
}
