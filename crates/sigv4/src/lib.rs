//! Verify-only AWS Signature Version 4 (`AWS4-HMAC-SHA256`).
//!
//! Authenticates requests signed by AWS SDKs and tools, with the signature in
//! an `Authorization` header or in the query string (presigned URL).
//!
//! # Check order
//!
//! Checks run cheapest first, so that garbage, replays and misdirected requests
//! are turned away before any secret lookup or hashing:
//!
//! 1. [`Verifier::parse`]: find the auth data (header *or* query, never both),
//!    parse it, check the algorithm and that `host` is signed;
//! 2. credential scope: region, service, `aws4_request`;
//! 3. request date: well formed, same day as the scope, within the clock-skew
//!    (or presign expiry) window;
//! 4. the caller looks up the secret for [`ParsedAuth::access_key_id`]
//!    (unknown key: [`SigV4Error::UnknownAccessKey`]); doing it only now keeps
//!    the key store from being probed with requests that would fail anyway;
//! 5. [`Verifier::verify`]: payload hash (`x-amz-content-sha256` must match the
//!    body), then the canonical request, string to sign and signing key (cached
//!    per key and day);
//! 6. constant-time comparison of the signatures, so response timing does not
//!    reveal how much of a forged signature was right.
//!
//! Steps 1 to 3 do no hashing at all; step 5 is the only one whose cost grows
//! with the body.
//!
//! # Conventions (the SDKs' defaults for every service but S3)
//!
//! - The path is signed URI-encoded once more than on the wire (`%20` is signed
//!   as `%2520`), after removing `.`/`..` segments and empty segments;
//!   [`VerifierConfig::double_encode_path`] and
//!   [`VerifierConfig::normalize_path`] switch this off for S3-style signers.
//! - Query components are decoded and strictly re-encoded; `+` is a literal
//!   plus, not a space.
//! - Header values are trimmed and runs of spaces collapsed; repeated headers
//!   are joined with `,`.
//! - Presigned requests without `x-amz-content-sha256` are accepted with either
//!   the body's hash (what the SDKs sign for non-S3 services and the AWS test
//!   suite expects) or `UNSIGNED-PAYLOAD` (S3-style presigners).
//! - A presigned URL's `X-Amz-Security-Token` is accepted signed or unsigned:
//!   STS-style presigners (e.g. for IoT WebSockets) append it after signing.
//!   This is safe only because a session token carries no authority here:
//!   the secret is looked up by access key id alone.

mod auth;
mod canonical;
mod dates;
mod error;
mod key;

use std::time::Duration;

use hmac::Mac;
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;

pub use auth::ParsedAuth;
pub use error::SigV4Error;

use auth::{AuthKind, Q_SECURITY_TOKEN, Q_SIGNATURE};
use canonical::CanonicalParts;

const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A received request, as borrowed views of its wire form.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path exactly as on the wire, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as on the wire, without `?`.
    pub raw_query: Option<&'a str>,
    /// All request headers; names in any case, a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// The raw body bytes (after any transfer decoding).
    pub body: &'a [u8],
}

/// What a [`Verifier`] accepts.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Signing name of the service, e.g. `iot`.
    pub service: String,
    /// The only region accepted in credential scopes.
    pub region: String,
    /// How far the request date may be from the server clock.
    pub max_skew: Duration,
    /// Sign the path URI-encoded again (all AWS SDKs except for S3).
    pub double_encode_path: bool,
    /// Remove `.`, `..` and empty path segments before signing (all AWS SDKs
    /// except for S3).
    pub normalize_path: bool,
}

impl VerifierConfig {
    /// The SDKs' non-S3 conventions and a 15 minute skew.
    pub fn new(service: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            region: region.into(),
            max_skew: Duration::from_secs(15 * 60),
            double_encode_path: true,
            normalize_path: true,
        }
    }
}

impl Default for VerifierConfig {
    /// `iot` in `us-east-1`.
    fn default() -> Self {
        Self::new("iot", "us-east-1")
    }
}

/// Verifies SigV4 signatures for one service and region.
#[derive(Debug)]
pub struct Verifier {
    cfg: VerifierConfig,
    keys: key::KeyCache,
}

impl Verifier {
    /// A verifier with an empty signing-key cache.
    pub fn new(cfg: VerifierConfig) -> Self {
        Self {
            cfg,
            keys: key::KeyCache::default(),
        }
    }

    /// The configuration this verifier was built with.
    pub fn config(&self) -> &VerifierConfig {
        &self.cfg
    }

    /// Every check that needs no secret (steps 1–3 of the crate docs).
    ///
    /// `now` is the server clock, normally `OffsetDateTime::now_utc()`.
    pub fn parse(
        &self,
        req: &RequestView<'_>,
        now: OffsetDateTime,
    ) -> Result<ParsedAuth, SigV4Error> {
        auth::parse(req, &self.cfg, now)
    }

    /// Checks the signature with the secret of `parsed.access_key_id`.
    ///
    /// `parsed` must come from [`Verifier::parse`] on this same request.
    pub fn verify(
        &self,
        parsed: &ParsedAuth,
        req: &RequestView<'_>,
        secret_access_key: &str,
    ) -> Result<(), SigV4Error> {
        let payload_hashes = payload_hash_candidates(parsed.kind, req)?;
        let parts = self
            .canonical_parts(parsed, req)
            .ok_or(SigV4Error::SignatureMismatch)?;
        let mac = self.keys.signing_mac(
            &parsed.access_key_id,
            secret_access_key,
            &parsed.scope_date,
            &self.cfg.region,
            &self.cfg.service,
        );
        let provided = parsed.signature.as_bytes();
        let mut matched = Choice::from(0);
        for query in &parts.queries {
            for payload_hash in &payload_hashes {
                // The canonical request and string to sign are hashed as they are
                // written, never joined into strings (`signing_candidates` joins the
                // same pieces).
                let digest = parts.request_digest(query, payload_hash);
                let mut mac = mac.clone();
                canonical::write_string_to_sign(
                    &parsed.amz_date,
                    &parsed.scope,
                    &digest,
                    &mut |b| mac.update(b),
                );
                let expected = canonical::lower_hex_32(&mac.finalize().into_bytes().into());
                matched |= expected.as_slice().ct_eq(provided);
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SigV4Error::SignatureMismatch)
        }
    }

    /// Every (canonical request, string to sign) pair `verify` tries, most
    /// likely first; for tests and for debugging signature mismatches. Not a
    /// stable API.
    #[doc(hidden)]
    pub fn signing_candidates(
        &self,
        parsed: &ParsedAuth,
        req: &RequestView<'_>,
    ) -> Result<Vec<(String, String)>, SigV4Error> {
        let payload_hashes = payload_hash_candidates(parsed.kind, req)?;
        let parts = self
            .canonical_parts(parsed, req)
            .ok_or(SigV4Error::SignatureMismatch)?;
        let mut out = Vec::new();
        for query in &parts.queries {
            for payload_hash in &payload_hashes {
                let creq = parts.request(query, payload_hash);
                let digest = parts.request_digest(query, payload_hash);
                let sts = canonical::string_to_sign(&parsed.amz_date, &parsed.scope, &digest);
                out.push((creq, sts));
            }
        }
        Ok(out)
    }

    fn canonical_parts<'a>(
        &self,
        parsed: &'a ParsedAuth,
        req: &RequestView<'a>,
    ) -> Option<CanonicalParts<'a>> {
        let queries = match parsed.kind {
            AuthKind::Header => vec![canonical::canonical_query(req.raw_query, &[])],
            // The signature cannot sign itself. A session token may have been
            // appended after signing (STS-style presigners do), so the query
            // is tried with it signed, then without it.
            AuthKind::Presigned { .. } => {
                let mut queries = vec![canonical::canonical_query(req.raw_query, &[Q_SIGNATURE])];
                let without_token =
                    canonical::canonical_query(req.raw_query, &[Q_SIGNATURE, Q_SECURITY_TOKEN]);
                if without_token != queries[0] {
                    queries.push(without_token);
                }
                queries
            }
        };
        Some(CanonicalParts {
            method: req.method,
            uri: canonical::canonical_uri(
                req.raw_path,
                self.cfg.normalize_path,
                self.cfg.double_encode_path,
            ),
            queries,
            headers: canonical::canonical_headers(req.headers, &parsed.signed_headers)?,
            signed_headers: &parsed.signed_headers,
        })
    }
}

/// The payload hashes the client may have signed, most likely first.
///
/// An explicit `x-amz-content-sha256` is what was signed, and must describe the
/// body we actually got. Without it, header auth signs the body's hash; for
/// presigned URLs signers differ (see crate docs), so both are tried.
fn payload_hash_candidates(
    kind: AuthKind,
    req: &RequestView<'_>,
) -> Result<Vec<String>, SigV4Error> {
    let body_hash = || canonical::sha256_hex(req.body);
    match auth::single_header(req.headers, "x-amz-content-sha256")? {
        Some(declared) => {
            let declared = declared.trim();
            if declared != UNSIGNED_PAYLOAD && !declared.eq_ignore_ascii_case(&body_hash()) {
                return Err(SigV4Error::PayloadHashMismatch);
            }
            Ok(vec![declared.to_owned()])
        }
        None => match kind {
            AuthKind::Header => Ok(vec![body_hash()]),
            AuthKind::Presigned { .. } => Ok(vec![body_hash(), UNSIGNED_PAYLOAD.to_owned()]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<ParsedAuth>();
        assert_send_sync::<SigV4Error>();
    }
}
