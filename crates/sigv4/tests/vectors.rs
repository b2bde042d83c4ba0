//! The AWS SigV4 test suite (see `tests/aws-signing-test-suite/README.md`).
//!
//! Each case is verified twice, as signed with an `Authorization` header and as
//! a presigned URL, and our canonical request and string to sign are compared
//! with the suite's.

mod common;

use std::path::{Path, PathBuf};

use common::{OwnedRequest, SECRET};
use palisade_sigv4::{Verifier, VerifierConfig};
use time::macros::datetime;
use time::OffsetDateTime;

const SUITE_NOW: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-signing-test-suite/v4")
}

fn read(case: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(suite_dir().join(case).join(file)).ok()
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Header,
    Query,
}

impl Mode {
    fn prefix(self) -> &'static str {
        match self {
            Mode::Header => "header",
            Mode::Query => "query",
        }
    }
}

fn suite_verifier(case: &str) -> Verifier {
    let context = read(case, "context.json").unwrap_or_default();
    let mut cfg = VerifierConfig::new("service", "us-east-1");
    // `"normalize": false` cases are signed S3-style, without path normalization.
    cfg.normalize_path = !context.replace(' ', "").contains("\"normalize\":false");
    Verifier::new(cfg)
}

/// Parses, verifies, and compares intermediates for one case and mode.
fn check_case(case: &str, mode: Mode) -> Result<(), String> {
    let p = mode.prefix();
    let text = read(case, &format!("{p}-signed-request.txt"))
        .ok_or_else(|| format!("{case}: no {p}-signed-request.txt"))?;
    let req = OwnedRequest::from_suite_text(&text);
    let verifier = suite_verifier(case);
    req.with_view(|view| {
        let parsed = verifier
            .parse(view, SUITE_NOW)
            .map_err(|e| format!("{case} ({p}): parse: {e}"))?;
        let candidates = verifier
            .signing_candidates(&parsed, view)
            .map_err(|e| format!("{case} ({p}): canonical: {e}"))?;
        // Presigned requests have several candidates; the suite's must be one.
        let (_, sts) = match read(case, &format!("{p}-canonical-request.txt")) {
            Some(expected) => {
                let expected = expected.trim_end_matches('\n');
                candidates
                    .iter()
                    .find(|(creq, _)| creq == expected)
                    .ok_or_else(|| {
                        format!(
                            "{case} ({p}): canonical request\n--- ours\n{}\n--- suite\n{expected}",
                            candidates[0].0
                        )
                    })?
            }
            None => &candidates[0],
        };
        if let Some(expected) = read(case, &format!("{p}-string-to-sign.txt")) {
            if sts != expected.trim_end_matches('\n') {
                return Err(format!(
                    "{case} ({p}): string to sign\n--- ours\n{sts}\n--- suite\n{expected}"
                ));
            }
        }
        verifier
            .verify(&parsed, view, SECRET)
            .map_err(|e| format!("{case} ({p}): verify: {e}"))
    })
}

/// Cases with a context.json: the suite proper (the two migrated old-format
/// cases have their own tests below).
fn suite_cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(suite_dir())
        .expect("suite dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|name| read(name, "context.json").is_some())
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_suite_case_verifies_with_header_auth() {
    let cases = suite_cases();
    assert!(cases.len() >= 38, "suite incomplete: {cases:?}");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(c, Mode::Header).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_suite_case_verifies_presigned() {
    let cases = suite_cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(c, Mode::Query).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The cases named when this verifier was specified; spelled out so that a
/// case going missing from the data cannot pass silently.
#[test]
fn named_cases_verify() {
    for case in [
        "get-vanilla",
        "get-vanilla-query",
        "get-vanilla-query-order-key-case",
        "get-vanilla-query-unreserved",
        "get-vanilla-utf8-query",
        "get-vanilla-empty-query-key",
        "get-vanilla-with-session-token",
        "get-header-key-duplicate",
        "get-header-value-trim",
        "get-header-value-multiline",
        "get-header-value-order",
        "post-vanilla",
        "post-vanilla-query",
        "post-x-www-form-urlencoded",
        "post-x-www-form-urlencoded-parameters",
        "post-header-key-sort",
        "post-header-key-case",
        "post-sts-header-before",
        "post-sts-header-after",
        "get-space-normalized",
        "get-space-unnormalized",
        "get-utf8",
        "get-unreserved",
        "get-slash-normalized",
        "get-slash-unnormalized",
        "get-slash-dot-slash-normalized",
        "get-slash-pointless-dot-normalized",
        "get-slashes-normalized",
        "get-relative-normalized",
        "get-relative-unnormalized",
        "get-relative-relative-normalized",
        "get-relative-relative-unnormalized",
        "get-query-plus",
    ] {
        for mode in [Mode::Header, Mode::Query] {
            if let Err(e) = check_case(case, mode) {
                panic!("{e}");
            }
        }
    }
}

/// Old-format case: a Lambda ARN in the path, `%3A` on the wire signed as `%253A`.
#[test]
fn double_url_encode_case() {
    let case = "double-url-encode";
    let req = OwnedRequest::from_suite_text(&read(case, "header-signed-request.txt").unwrap());
    let verifier = Verifier::new(VerifierConfig::new("lambda", "us-east-2"));
    let now = datetime!(2021-05-11 15:40:45 UTC);
    req.with_view(|view| {
        let parsed = verifier.parse(view, now).unwrap();
        let (creq, sts) = &verifier.signing_candidates(&parsed, view).unwrap()[0];
        assert_eq!(creq, &read(case, "header-canonical-request.txt").unwrap());
        assert_eq!(
            sts,
            read(case, "header-string-to-sign.txt")
                .unwrap()
                .trim_end_matches('\n')
        );
        verifier.verify(&parsed, view, SECRET).unwrap();
    });
}

/// Old-format case whose files disagree on the date, so only the canonical URI
/// (`@` encoded, `%3D` encoded again) is compared.
#[test]
fn double_encode_path_case() {
    let case = "double-encode-path";
    let req = OwnedRequest::from_suite_text(&read(case, "header-signed-request.txt").unwrap());
    let verifier = Verifier::new(VerifierConfig::new("service", "us-east-1"));
    req.with_view(|view| {
        let parsed = verifier.parse(view, SUITE_NOW).unwrap();
        let (creq, _) = &verifier.signing_candidates(&parsed, view).unwrap()[0];
        let expected = read(case, "header-canonical-request.txt").unwrap();
        assert_eq!(creq.lines().nth(1), expected.lines().nth(1));
        assert_eq!(
            creq.lines().nth(1),
            Some("/test/%40connections/JBDvjfGEIAMCERw%253D")
        );
    });
}
