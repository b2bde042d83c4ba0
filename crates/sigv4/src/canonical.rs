//! The canonical request and string to sign, rebuilt from the request as received.

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SigV4 leaves only RFC 3986 unreserved characters unencoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Paths keep their separators.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// The canonical request's parts. The query and payload hash may each have
/// more than one candidate (see `Verifier::verify`).
#[derive(Debug)]
pub(crate) struct CanonicalParts<'a> {
    pub(crate) method: &'a str,
    pub(crate) uri: String,
    /// Candidate canonical query strings, most likely first; never empty.
    pub(crate) queries: Vec<String>,
    /// `name:value\n` per signed header.
    pub(crate) headers: String,
    /// The signed header names, joined with `;` where they are written.
    pub(crate) signed_headers: &'a [String],
}

impl CanonicalParts<'_> {
    /// Hands the canonical request to `sink` piece by piece: `verify` hashes the pieces
    /// as they come instead of first joining them into one string (an allocation and a
    /// copy per request), and `request` joins them for tests, so both see the same bytes.
    pub(crate) fn write_request(
        &self,
        query: &str,
        payload_hash: &str,
        sink: &mut impl FnMut(&[u8]),
    ) {
        for piece in [
            self.method,
            "\n",
            &self.uri,
            "\n",
            query,
            "\n",
            &self.headers,
            "\n",
        ] {
            sink(piece.as_bytes());
        }
        for (i, name) in self.signed_headers.iter().enumerate() {
            if i > 0 {
                sink(b";");
            }
            sink(name.as_bytes());
        }
        sink(b"\n");
        sink(payload_hash.as_bytes());
    }

    pub(crate) fn request(&self, query: &str, payload_hash: &str) -> String {
        let mut out = Vec::new();
        self.write_request(query, payload_hash, &mut |b| out.extend_from_slice(b));
        // Every piece was a `&str`.
        String::from_utf8(out).unwrap_or_default()
    }

    /// SHA-256 of the canonical request, as it goes in the string to sign.
    pub(crate) fn request_digest(&self, query: &str, payload_hash: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        self.write_request(query, payload_hash, &mut |b| hasher.update(b));
        hasher.finalize().into()
    }
}

/// Hands the string to sign to `sink` piece by piece (see `write_request`).
pub(crate) fn write_string_to_sign(
    amz_date: &str,
    scope: &str,
    request_digest: &[u8; 32],
    sink: &mut impl FnMut(&[u8]),
) {
    for piece in [ALGORITHM, "\n", amz_date, "\n", scope, "\n"] {
        sink(piece.as_bytes());
    }
    sink(&lower_hex_32(request_digest));
}

pub(crate) fn string_to_sign(amz_date: &str, scope: &str, digest: &[u8; 32]) -> String {
    let mut out = Vec::new();
    write_string_to_sign(amz_date, scope, digest, &mut |b| out.extend_from_slice(b));
    // Every piece was a `&str` or hex digits.
    String::from_utf8(out).unwrap_or_default()
}

/// SHA-256 of an empty body, the payload hash of every GET: not worth hashing each time.
const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    if data.is_empty() {
        return EMPTY_SHA256_HEX.to_owned();
    }
    lower_hex(&Sha256::digest(data))
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of a digest, on the stack.
pub(crate) fn lower_hex_32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(b >> 4)];
        pair[1] = HEX_DIGITS[usize::from(b & 0x0f)];
    }
    out
}

/// Lowercase hex. `hex::encode` goes through a char iterator, which showed up in
/// request profiles; a signature check encodes twice per request.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX_DIGITS[usize::from(b >> 4)]);
        out.push(HEX_DIGITS[usize::from(b & 0x0f)]);
    }
    // Only ASCII digits were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// Canonical URI from the path as it was on the wire (still percent-encoded).
///
/// With `double_encode` (every AWS SDK for every service but S3) the already
/// encoded path is URI-encoded once more, so `%20` on the wire is `%2520` here;
/// without it (S3 style) the wire path is used as it is.
pub(crate) fn canonical_uri(raw_path: &str, normalize: bool, double_encode: bool) -> String {
    // The common case, a rooted path with nothing to normalize, is encoded straight from
    // the wire form without intermediate copies.
    let path: std::borrow::Cow<'_, str> = if raw_path.starts_with('/') {
        raw_path.into()
    } else {
        format!("/{raw_path}").into()
    };
    let path = if normalize && !is_normalized(&path) {
        normalize_path(&path).into()
    } else {
        path
    };
    if double_encode {
        let mut out = String::with_capacity(path.len() + 8);
        out.extend(percent_encode(path.as_bytes(), PATH));
        out
    } else {
        path.into_owned()
    }
}

/// Whether `normalize_path` would return `path` unchanged: rooted, no empty, `.` or
/// `..` segment, except that the last segment may be empty (a trailing slash).
fn is_normalized(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return false,
            "" if !last => return false,
            _ => {}
        }
    }
    true
}

/// RFC 3986 dot-segment removal plus collapsing empty segments, as the SDKs
/// do before signing: `//a/./b/../` becomes `/a/`.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    // A path ending in a separator (or a dot segment, which stands for one)
    // keeps its trailing slash; the empty result is the root.
    let trailing = ["/", "/.", "/.."].iter().any(|end| path.ends_with(end));
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// Splits a raw query into raw `(key, value)` pairs: on `&`, then the first
/// `=`. Empty pieces (`a&&b`) are not parameters.
pub(crate) fn split_query(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// Percent-decodes a query component. `+` stays `+`: SDKs send spaces as `%20`.
pub(crate) fn decode_component(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// Canonical query string: each component decoded then strictly re-encoded, so
/// that whatever (valid) encoding the client used on the wire, we sign the same
/// bytes it signed; then sorted by key, then value.
pub(crate) fn canonical_query(raw: Option<&str>, exclude_keys: &[&str]) -> String {
    let encode = |raw: &str| {
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        percent_encode(&bytes, UNRESERVED).to_string()
    };
    let mut pairs: Vec<(String, String)> = split_query(raw.unwrap_or(""))
        .map(|(k, v)| (encode(k), encode(v)))
        .filter(|(k, _)| !exclude_keys.contains(&k.as_str()))
        .collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (k, v) in &pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Canonical header block for the signed headers, in their signed order.
///
/// Returns `None` when a signed header is absent: the client signed something
/// we did not receive, so the signature cannot match.
pub(crate) fn canonical_headers(headers: &[(&str, &str)], signed: &[String]) -> Option<String> {
    let mut out = String::with_capacity(128);
    for name in signed {
        let mut values = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v);
        let first = values.next()?;
        out.push_str(name);
        out.push(':');
        push_canonical_header_value(&mut out, first);
        for v in values {
            out.push(',');
            push_canonical_header_value(&mut out, v);
        }
        out.push('\n');
    }
    Some(out)
}

/// Appends the value trimmed, with runs of spaces collapsed to one.
///
/// Only spaces collapse inside the value, as aws-sigv4 (Rust) and the Go SDK
/// do; tabs survive. (Leading/trailing tabs are HTTP whitespace and trimmed.)
fn push_canonical_header_value(out: &mut String, value: &str) {
    let value = value.trim_matches([' ', '\t']);
    if !value.contains("  ") {
        out.push_str(value);
        return;
    }
    let mut prev_space = false;
    for c in value.chars() {
        if c == ' ' && prev_space {
            continue;
        }
        prev_space = c == ' ';
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_hex_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(lower_hex(&bytes), hex::encode(&bytes));
        assert_eq!(lower_hex(&[]), "");
        let digest: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(
            lower_hex_32(&digest).as_slice(),
            hex::encode(digest).as_bytes()
        );
    }

    #[test]
    fn empty_body_hash_is_the_sha256_of_nothing() {
        assert_eq!(EMPTY_SHA256_HEX, hex::encode(Sha256::digest(b"")));
        assert_eq!(sha256_hex(b""), EMPTY_SHA256_HEX);
        assert_eq!(sha256_hex(b"x"), hex::encode(Sha256::digest(b"x")));
    }

    #[test]
    fn uri_is_encoded_again() {
        assert_eq!(
            canonical_uri("/mitigationactions/actions/my%20x", true, true),
            "/mitigationactions/actions/my%2520x"
        );
        assert_eq!(
            canonical_uri("/things/a%3Ab", true, true),
            "/things/a%253Ab"
        );
        assert_eq!(canonical_uri("/things/a%3Ab", true, false), "/things/a%3Ab");
        assert_eq!(canonical_uri("", true, true), "/");
        assert_eq!(canonical_uri("", false, true), "/");
        assert_eq!(canonical_uri("/-._~azAZ09", true, true), "/-._~azAZ09");
    }

    #[test]
    fn path_normalization() {
        for (input, expected) in [
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/.", "/"),
            ("/..", "/"),
            ("/../..", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/..", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a/./b/.", "/a/b/"),
            ("/a..b/.c", "/a..b/.c"),
        ] {
            assert_eq!(normalize_path(input), expected, "{input}");
            assert_eq!(is_normalized(input), input == expected, "{input}");
        }
        for path in ["/", "/a", "/a/", "/a/b", "/a/b/", "/.a/b..", "/a./..b/"] {
            assert!(is_normalized(path), "{path}");
            assert_eq!(normalize_path(path), path);
        }
        for path in [
            "", "a", "//", "/a//b", "/a/./b", "/a/../b", "/a/.", "/a/..", "/./", "/a//",
        ] {
            assert!(!is_normalized(path), "{path}");
        }
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        assert_eq!(
            canonical_query(Some("b=2&a=z&a=y&c"), &[]),
            "a=y&a=z&b=2&c="
        );
        assert_eq!(canonical_query(Some("c+d"), &[]), "c%2Bd=");
        assert_eq!(
            canonical_query(Some("k=a%20b&s=a b"), &[]),
            "k=a%20b&s=a%20b"
        );
        assert_eq!(canonical_query(Some("x=a:b/c%3d"), &[]), "x=a%3Ab%2Fc%3D");
        assert_eq!(canonical_query(Some("bad=%zz%"), &[]), "bad=%25zz%25");
        assert_eq!(canonical_query(Some("&&a=1&"), &[]), "a=1");
        assert_eq!(canonical_query(Some("a=1=2"), &[]), "a=1%3D2");
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=ab&a=1"), &["X-Amz-Signature"]),
            "a=1"
        );
        assert_eq!(canonical_query(None, &[]), "");
    }

    #[test]
    fn header_values_are_trimmed_joined_and_collapsed() {
        let headers = [
            ("Host", "example.com"),
            ("My-Header", "  a   b  "),
            ("my-header", "c"),
            ("X-Tab", "\tx\ty  z\t"),
        ];
        let signed = ["host", "my-header", "x-tab"].map(String::from);
        assert_eq!(
            canonical_headers(&headers, &signed).unwrap(),
            "host:example.com\nmy-header:a b,c\nx-tab:x\ty z\n"
        );
        assert!(canonical_headers(&headers, &["absent".to_owned()]).is_none());
    }
}
