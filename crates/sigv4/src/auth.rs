//! Finding and parsing the authentication data: no secret, no hashing.

use time::OffsetDateTime;

use crate::canonical::{decode_component, split_query, ALGORITHM};
use crate::dates::{self, Freshness};
use crate::error::SigV4Error;
use crate::{RequestView, VerifierConfig};

const TERMINATOR: &str = "aws4_request";
/// AWS's limit for presigned URLs: one week.
const MAX_EXPIRES_SECS: u32 = 604_800;
/// Client-controlled text echoed in messages is cut to this many characters.
const ECHO_LIMIT: usize = 256;

const Q_ALGORITHM: &str = "X-Amz-Algorithm";
const Q_CREDENTIAL: &str = "X-Amz-Credential";
const Q_DATE: &str = "X-Amz-Date";
const Q_EXPIRES: &str = "X-Amz-Expires";
const Q_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
pub(crate) const Q_SIGNATURE: &str = "X-Amz-Signature";
pub(crate) const Q_SECURITY_TOKEN: &str = "X-Amz-Security-Token";

/// Any of these in the query means the client attempted presigned auth.
const PRESIGN_MARKERS: [&str; 4] = [Q_ALGORITHM, Q_CREDENTIAL, Q_SIGNED_HEADERS, Q_SIGNATURE];

/// Where the signature was carried; decides the canonical query and the
/// default payload hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    Header,
    Presigned { expires_secs: u32 },
}

/// The result of [`crate::Verifier::parse`]: authentication data that passed
/// every check not needing the secret. Pass it to [`crate::Verifier::verify`]
/// together with the same request.
#[derive(Debug, Clone)]
pub struct ParsedAuth {
    /// The access key id from the credential scope; look its secret up with it.
    pub access_key_id: String,
    pub(crate) kind: AuthKind,
    /// `date/region/service/aws4_request`.
    pub(crate) scope: String,
    pub(crate) scope_date: String,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: String,
    pub(crate) request_time: OffsetDateTime,
    /// The request date as it goes in the string to sign.
    pub(crate) amz_date: String,
}

impl ParsedAuth {
    /// Whether the signature came in the query string (presigned URL).
    pub fn is_presigned(&self) -> bool {
        matches!(self.kind, AuthKind::Presigned { .. })
    }

    /// The signed request date (`X-Amz-Date`, or `Date`).
    pub fn request_time(&self) -> OffsetDateTime {
        self.request_time
    }

    /// Lower-cased names of the headers covered by the signature.
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }
}

/// The authentication fields as sent, before validation.
struct RawAuth {
    kind: AuthKind,
    credential: String,
    signed_headers: String,
    signature: String,
    date: RawDate,
}

enum RawDate {
    /// `X-Amz-Date` header or query parameter.
    Amz(String),
    /// `Date` header, the fallback for header auth.
    Http(String),
}

pub(crate) fn parse(
    req: &RequestView<'_>,
    cfg: &VerifierConfig,
    now: OffsetDateTime,
) -> Result<ParsedAuth, SigV4Error> {
    let raw = locate(req)?;
    let (access_key_id, scope) = CredentialScope::parse(&raw.credential)?;
    let signed_headers = parse_signed_headers(&raw.signed_headers)?;
    scope.check(cfg)?;

    let request_time = match &raw.date {
        RawDate::Amz(s) => {
            dates::parse_amz_date(s).ok_or_else(|| SigV4Error::MalformedAmzDate(clip(s)))?
        }
        RawDate::Http(s) => {
            dates::parse_http_date(s).ok_or_else(|| SigV4Error::MalformedHttpDate(clip(s)))?
        }
    };
    let amz_date = dates::format_amz_date(request_time);
    let request_day = &amz_date[..8];
    if scope.date != request_day {
        return Err(SigV4Error::ScopeDateMismatch {
            scope_date: clip(scope.date),
            request_day: request_day.to_owned(),
            request_date: amz_date,
        });
    }
    let window = match raw.kind {
        AuthKind::Header => Freshness::Skew,
        AuthKind::Presigned { expires_secs } => Freshness::Presigned { expires_secs },
    };
    dates::check_freshness(window, request_time, now, cfg.max_skew)?;

    Ok(ParsedAuth {
        access_key_id: access_key_id.to_owned(),
        kind: raw.kind,
        // `date/region/service/aws4_request` is the credential after the key id and
        // its slash, as `CredentialScope::parse` split it.
        scope: raw.credential[access_key_id.len() + 1..].to_owned(),
        scope_date: scope.date.to_owned(),
        signed_headers,
        signature: raw.signature,
        request_time,
        amz_date,
    })
}

/// Picks the auth method: exactly one of header or query must be present.
fn locate(req: &RequestView<'_>) -> Result<RawAuth, SigV4Error> {
    let mut auth_headers = header_values(req.headers, "authorization");
    let (auth_header, repeated) = (auth_headers.next(), auth_headers.next().is_some());
    let query: Vec<(String, String)> = split_query(req.raw_query.unwrap_or(""))
        .map(|(k, v)| (decode_component(k), decode_component(v)))
        .collect();
    let presigned = query
        .iter()
        .any(|(k, _)| PRESIGN_MARKERS.contains(&k.as_str()));

    match (auth_header, presigned) {
        (None, false) => Err(SigV4Error::MissingAuthenticationToken),
        (Some(_), true) => Err(SigV4Error::MultipleAuthMethods),
        (Some(value), false) if !repeated => from_header(value, req.headers),
        (Some(_), false) => Err(SigV4Error::Incomplete(
            "Only one 'Authorization' header may be specified.".to_owned(),
        )),
        (None, true) => from_query(&query),
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
fn from_header(value: &str, headers: &[(&str, &str)]) -> Result<RawAuth, SigV4Error> {
    const PARAMS: [&str; 3] = ["Credential", "Signature", "SignedHeaders"];
    let value = value.trim();
    let (algorithm, params) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{}'. Only '{ALGORITHM}' is supported.",
            clip(algorithm)
        )));
    }

    let mut values: [Option<&str>; 3] = [None; 3];
    for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part.split_once('=').ok_or_else(|| {
            SigV4Error::Incomplete(format!(
                "Authorization header parameter '{}' is not of the form key=value. Authorization={}",
                clip(part),
                clip(value)
            ))
        })?;
        // Unknown parameters are not signed material; ignore them as AWS does.
        let Some(i) = PARAMS.iter().position(|p| *p == key) else {
            continue;
        };
        if values[i].replace(val).is_some() {
            return Err(SigV4Error::Incomplete(format!(
                "Authorization header parameter '{key}' may only be specified once. Authorization={}",
                clip(value)
            )));
        }
    }

    let values = values.map(|v| v.filter(|s| !s.is_empty()));
    match (values, header_date(headers)?) {
        ([Some(credential), Some(signature), Some(signed_headers)], Some(date)) => Ok(RawAuth {
            kind: AuthKind::Header,
            credential: credential.to_owned(),
            signed_headers: signed_headers.to_owned(),
            signature: signature.to_owned(),
            date,
        }),
        (values, date) => {
            let mut missing: Vec<String> = PARAMS
                .iter()
                .zip(values)
                .filter(|(_, v)| v.is_none())
                .map(|(name, _)| format!("Authorization header requires '{name}' parameter."))
                .collect();
            if date.is_none() {
                missing.push(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header."
                        .to_owned(),
                );
            }
            Err(SigV4Error::Incomplete(format!(
                "{} Authorization={}",
                missing.join(" "),
                clip(value)
            )))
        }
    }
}

/// `X-Amz-Date` wins over `Date`, as in the SDKs (which may send both).
fn header_date(headers: &[(&str, &str)]) -> Result<Option<RawDate>, SigV4Error> {
    if let Some(v) = single_header(headers, "x-amz-date")? {
        return Ok(Some(RawDate::Amz(v.trim().to_owned())));
    }
    Ok(single_header(headers, "date")?.map(|v| RawDate::Http(v.trim().to_owned())))
}

fn from_query(query: &[(String, String)]) -> Result<RawAuth, SigV4Error> {
    const PARAMS: [&str; 6] = [
        Q_ALGORITHM,
        Q_CREDENTIAL,
        Q_SIGNATURE,
        Q_SIGNED_HEADERS,
        Q_DATE,
        Q_EXPIRES,
    ];
    let mut values: [Option<&str>; 6] = [None; 6];
    for (slot, name) in values.iter_mut().zip(PARAMS) {
        *slot = query_param(query, name)?;
    }
    let [Some(algorithm), Some(credential), Some(signature), Some(signed_headers), Some(date), Some(expires)] =
        values
    else {
        let missing: Vec<String> = PARAMS
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_none())
            .map(|(name, _)| format!("AWS query-string parameters must include '{name}'."))
            .collect();
        return Err(SigV4Error::Incomplete(format!(
            "{} Re-examine the query-string parameters.",
            missing.join(" ")
        )));
    };

    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!(
            "X-Amz-Algorithm only supports '{ALGORITHM}', not '{}'.",
            clip(algorithm)
        )));
    }
    Ok(RawAuth {
        kind: AuthKind::Presigned {
            expires_secs: parse_expires(expires)?,
        },
        credential: credential.to_owned(),
        signed_headers: signed_headers.to_owned(),
        signature: signature.to_owned(),
        date: RawDate::Amz(date.to_owned()),
    })
}

/// A non-empty auth parameter; repeating one is ambiguous, hence an error.
fn query_param<'a>(
    query: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, SigV4Error> {
    let mut values = query
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next().filter(|v| !v.is_empty());
    if values.next().is_some() {
        return Err(SigV4Error::Incomplete(format!(
            "AWS query-string parameter '{name}' may only be specified once."
        )));
    }
    Ok(first)
}

fn parse_expires(raw: &str) -> Result<u32, SigV4Error> {
    let incomplete = |msg: &str| Err(SigV4Error::Incomplete(msg.to_owned()));
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return incomplete("X-Amz-Expires should be a number of seconds.");
    }
    match raw.parse::<u32>() {
        Ok(0) => incomplete("X-Amz-Expires must be positive."),
        Ok(secs) if secs <= MAX_EXPIRES_SECS => Ok(secs),
        _ => incomplete("X-Amz-Expires must be less than a week (in seconds) that is 604800."),
    }
}

/// `host;x-amz-date`, lower-cased. `host` must be signed: otherwise a
/// signature captured for one endpoint would be valid on another.
fn parse_signed_headers(raw: &str) -> Result<Vec<String>, SigV4Error> {
    let names: Vec<String> = raw.split(';').map(str::to_ascii_lowercase).collect();
    if names.iter().any(String::is_empty) {
        return Err(SigV4Error::Incomplete(format!(
            "SignedHeaders must be a ';'-separated list of header names, got '{}'.",
            clip(raw)
        )));
    }
    if !names.iter().any(|n| n == "host") {
        return Err(SigV4Error::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    Ok(names)
}

/// `AKID/yyyyMMdd/region/service/aws4_request`, borrowed from the credential.
struct CredentialScope<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
}

impl<'a> CredentialScope<'a> {
    fn parse(credential: &'a str) -> Result<(&'a str, Self), SigV4Error> {
        let parts: Vec<&str> = credential.split('/').collect();
        match parts.as_slice() {
            [key, date, region, service, terminator] if !key.is_empty() => Ok((
                key,
                Self {
                    date,
                    region,
                    service,
                    terminator,
                },
            )),
            _ => Err(SigV4Error::Incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, \
                 e.g. keyid/date/region/service/term, got '{}'",
                clip(credential)
            ))),
        }
    }

    fn check(&self, cfg: &VerifierConfig) -> Result<(), SigV4Error> {
        if self.region != cfg.region {
            return Err(SigV4Error::WrongRegion(clip(self.region)));
        }
        if self.service != cfg.service {
            return Err(SigV4Error::WrongService {
                expected: cfg.service.clone(),
                got: clip(self.service),
            });
        }
        if self.terminator != TERMINATOR {
            return Err(SigV4Error::WrongTerminator(clip(self.terminator)));
        }
        Ok(())
    }
}

pub(crate) fn header_values<'a>(
    headers: &'a [(&'a str, &'a str)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// A header that must not repeat: two dates (or two payload hashes) would be
/// ambiguous about what was signed.
pub(crate) fn single_header<'a>(
    headers: &'a [(&'a str, &'a str)],
    name: &'a str,
) -> Result<Option<&'a str>, SigV4Error> {
    let mut values = header_values(headers, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(SigV4Error::Incomplete(format!(
            "Header '{name}' may only be specified once."
        )));
    }
    Ok(first)
}

/// Bounds client text echoed back in error messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(ECHO_LIMIT) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}
