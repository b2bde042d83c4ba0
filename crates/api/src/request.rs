//! What every request path shares: the server's state, SigV4 authentication, the body
//! and the query string (the AWS API in `server` and the bulk import in `import`).

use axum::body::{Body, HttpBody};
use axum::http::HeaderValue;
use axum::response::Response;
use http_body_util::BodyExt;
use palisade_engine::{Engine, Scope};
use palisade_sigv4::{RequestView, Verifier};
use percent_encoding::percent_decode_str;

use crate::error::ApiError;
use crate::routes::Routes;

pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) verifier: Verifier,
    pub(crate) routes: Routes,
    pub(crate) region: String,
    pub(crate) body_limit: usize,
    pub(crate) import_body_limit: usize,
}

pub(crate) fn set_request_id(resp: &mut Response, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
}

/// SigV4: the cheap checks, then the caller's secret; the scope the caller acts in.
pub(crate) async fn authenticate(
    state: &AppState,
    view: &RequestView<'_>,
    span: &tracing::Span,
) -> Result<Scope, ApiError> {
    let parsed = state
        .verifier
        .parse(view, time::OffsetDateTime::now_utc())?;
    span.record("access_key_id", parsed.access_key_id.as_str());
    let cred = state
        .engine
        .credential(&parsed.access_key_id)
        .await?
        .ok_or_else(|| {
            ApiError::other(
                "UnrecognizedClientException",
                403,
                "The security token included in the request is invalid.",
            )
        })?;
    state
        .verifier
        .verify(&parsed, view, &cred.secret_access_key)?;
    span.record("account", cred.account_id.as_str());
    Ok(Scope {
        account_id: cred.account_id.clone(),
        region: state.region.clone(),
    })
}

pub(crate) async fn read_body(
    body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    // Most requests (every GET) have no body: skip the collecting machinery and its
    // allocations.
    if HttpBody::is_end_stream(&body) {
        return Ok(bytes::Bytes::new());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        // Broken chunked framing, or a client that went away mid-body.
        Err(e) => Err(ApiError::invalid(format!(
            "The request body could not be read: {e}"
        ))),
    }
}

/// Splits a raw query string into percent-decoded pairs. `+` stays a plus sign: AWS
/// SDKs encode spaces as `%20`, and SigV4 canonicalises the query the same way.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .ok()
            .filter(|c| !c.contains('\0'))
            .map(|c| c.into_owned())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "The query string parameter '{s}' is not valid percent-encoded UTF-8 without NUL characters."
                ))
            })
    };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// A signed request to one of Palisade's own endpoints (`POST /palisade/...`), read:
/// the scope its caller acts in, its query parameters and its body (within the import
/// limit).
pub(crate) struct SignedRequest {
    pub(crate) scope: Scope,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: bytes::Bytes,
}

/// Reads and authenticates a request to a Palisade endpoint (the query is parsed only
/// once the caller is known).
pub(crate) async fn read_signed(
    state: &AppState,
    req: axum::extract::Request,
    span: &tracing::Span,
) -> Result<SignedRequest, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, state.import_body_limit).await?;
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let view = RequestView {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &headers,
        body: &body,
    };
    let scope = authenticate(state, &view, span).await?;
    let query = parse_query(parts.uri.query())?;
    Ok(SignedRequest { scope, query, body })
}

/// Answers a Palisade endpoint named `operation`: a request id and a tracing span
/// around `process`, its JSON body with 200, or its AWS-shaped error; a panic is a 500.
pub(crate) async fn answer_json<Fut>(
    operation: &'static str,
    process: impl FnOnce(tracing::Span) -> Fut,
) -> Response
where
    Fut: std::future::Future<Output = Result<Vec<u8>, ApiError>>,
{
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use futures_util::FutureExt;
    use tracing::{field, Instrument};

    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        operation,
        access_key_id = field::Empty,
        account = field::Empty,
    );
    let result = std::panic::AssertUnwindSafe(process(span.clone()).instrument(span.clone()))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            span.in_scope(|| tracing::error!(operation, "handler panicked"));
            Err(ApiError::internal())
        });
    let mut resp = match result {
        Ok(body) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => {
            span.in_scope(|| tracing::info!(code = e.code, status = e.status, message = %e.message, "rejected"));
            e.into_response()
        }
    };
    set_request_id(&mut resp, &request_id);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded_and_plus_is_literal() {
        let q = parse_query(Some(
            "resourceArn=arn%3Aaws%3Aiot%3Aus-east-1&nextToken=a+b%2Bc&flag&=v",
        ))
        .unwrap();
        assert_eq!(
            q,
            vec![
                ("resourceArn".into(), "arn:aws:iot:us-east-1".into()),
                ("nextToken".into(), "a+b+c".into()),
                ("flag".into(), String::new()),
                (String::new(), "v".into()),
            ]
        );
        assert!(parse_query(Some("a=%FF")).is_err());
        assert!(parse_query(Some("a=x%00y")).is_err());
        assert!(parse_query(None).unwrap().is_empty());
    }
}
