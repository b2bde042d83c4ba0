//! Hand-written support that the generated code calls: request decoding helpers,
//! timestamps, and constraint checks that render AWS-style validation messages.

use std::fmt::{self, Write as _};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The parts of an HTTP request an operation's input is bound from. Labels and query
/// values are already percent-decoded; header names are lowercase.
#[derive(Debug, Default)]
pub struct RawRequest<'a> {
    pub labels: &'a [(&'static str, String)],
    pub query: &'a [(String, String)],
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// A request that cannot be decoded or violates the model. Always answered with
/// InvalidRequestException; the message names the member and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub message: String,
}

impl RequestError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

/// Where a value sits in the input, rendered only when a check fails so that
/// validating a valid request allocates nothing.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root,
    Member(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
    Key(&'a Path<'a>, &'a str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Member(parent, name) => {
                if matches!(parent, Path::Root) {
                    f.write_str(name)
                } else {
                    write!(f, "{parent}.{name}")
                }
            }
            // AWS numbers list members from 1 in its validation messages.
            Path::Index(parent, i) => write!(f, "{parent}.{}.member", i + 1),
            Path::Key(parent, k) => write!(f, "{parent}.{k}"),
        }
    }
}

/// Collected constraint violations, rendered the way AWS renders them.
#[derive(Default)]
pub struct Violations(Vec<String>);

impl Violations {
    pub fn push(&mut self, path: &Path<'_>, value: Option<&dyn fmt::Display>, rule: &str) {
        let mut s = String::new();
        match value {
            Some(v) => {
                let _ = write!(
                    s,
                    "Value '{v}' at '{path}' failed to satisfy constraint: {rule}"
                );
            }
            None => {
                let _ = write!(
                    s,
                    "Value null at '{path}' failed to satisfy constraint: {rule}"
                );
            }
        }
        self.0.push(s);
    }

    pub fn into_result(self) -> Result<(), RequestError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(RequestError::new(format!(
                "1 validation error detected: {}",
                self.0[0]
            ))),
            n => Err(RequestError::new(format!(
                "{n} validation errors detected: {}",
                self.0.join("; ")
            ))),
        }
    }
}

/// Implemented by every generated shape: checks the model's constraints.
pub trait Validate {
    fn validate_at(&self, path: &Path<'_>, v: &mut Violations);

    fn validate(&self) -> Result<(), RequestError> {
        let mut v = Violations::default();
        self.validate_at(&Path::Root, &mut v);
        v.into_result()
    }
}

impl<T: Validate> Validate for Vec<T> {
    fn validate_at(&self, path: &Path<'_>, v: &mut Violations) {
        for (i, item) in self.iter().enumerate() {
            item.validate_at(&Path::Index(path, i), v);
        }
    }
}

impl<T: Validate> Validate for std::collections::BTreeMap<String, T> {
    fn validate_at(&self, path: &Path<'_>, v: &mut Violations) {
        for (k, item) in self {
            item.validate_at(&Path::Key(path, k), v);
        }
    }
}

macro_rules! no_nested_constraints {
    ($($t:ty),*) => {$(
        impl Validate for $t {
            fn validate_at(&self, _: &Path<'_>, _: &mut Violations) {}
        }
    )*};
}
no_nested_constraints!(String, bool, i32, i64, f64, Timestamp, Blob);

pub fn check_required<T>(value: &Option<T>, path: &Path<'_>, v: &mut Violations) {
    if value.is_none() {
        v.push(path, None, "Member must not be null");
    }
}

/// Length of a string in characters, which is what the model's min/max count.
pub fn check_str_len(
    s: &str,
    min: Option<i64>,
    max: Option<i64>,
    path: &Path<'_>,
    v: &mut Violations,
) {
    let len = s.chars().count() as i64;
    check_len_value(&s, len, min, max, path, v);
}

pub fn check_len_value(
    shown: &dyn fmt::Display,
    len: i64,
    min: Option<i64>,
    max: Option<i64>,
    path: &Path<'_>,
    v: &mut Violations,
) {
    if let Some(min) = min {
        if len < min {
            v.push(
                path,
                Some(shown),
                &format!("Member must have length greater than or equal to {min}"),
            );
        }
    }
    if let Some(max) = max {
        if len > max {
            v.push(
                path,
                Some(shown),
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }
}

/// Shows a collection in a message by its size rather than its contents.
pub struct Count(pub usize);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} items]", self.0)
    }
}

pub fn check_range<T: PartialOrd + fmt::Display + Copy>(
    value: T,
    min: Option<T>,
    max: Option<T>,
    path: &Path<'_>,
    v: &mut Violations,
) {
    if let Some(min) = min {
        if value < min {
            v.push(
                path,
                Some(&value),
                &format!("Member must have value greater than or equal to {min}"),
            );
        }
    }
    if let Some(max) = max {
        if value > max {
            v.push(
                path,
                Some(&value),
                &format!("Member must have value less than or equal to {max}"),
            );
        }
    }
}

pub fn check_pattern(
    s: &str,
    re: &regex::Regex,
    pattern: &str,
    path: &Path<'_>,
    v: &mut Violations,
) {
    if !re.is_match(s) {
        v.push(
            path,
            Some(&s),
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        );
    }
}

pub fn check_enum(value: &str, known: bool, allowed: &[&str], path: &Path<'_>, v: &mut Violations) {
    if !known {
        v.push(
            path,
            Some(&value),
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        );
    }
}

/// A point in time, kept to the millisecond. On the rest-json wire it is epoch seconds
/// (a number, fractional when needed); in query strings ISO 8601 or epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses a query-string timestamp: ISO 8601 / RFC 3339, or epoch seconds.
    pub fn parse_query(s: &str) -> Option<Self> {
        if let Ok(secs) = s.parse::<f64>() {
            return secs_to_ts(secs);
        }
        let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .or_else(|_| {
                time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Iso8601::DEFAULT,
                )
            })
            .ok()?;
        Some(Self((dt.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

fn secs_to_ts(secs: f64) -> Option<Timestamp> {
    // Reject values outside what an i64 of milliseconds can hold (and NaN).
    (secs.is_finite() && secs.abs() < 9.0e15).then(|| Timestamp((secs * 1000.0).round() as i64))
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Num(f64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Num(n) => {
                secs_to_ts(n).ok_or_else(|| de::Error::custom("timestamp out of range"))
            }
            Wire::Text(t) => Timestamp::parse_query(&t)
                .ok_or_else(|| de::Error::custom(format!("invalid timestamp '{t}'"))),
        }
    }
}

/// A blob member, carried base64-encoded exactly as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Blob(pub String);

/// Parses a JSON body into an operation's body members. An empty body means no members.
pub fn parse_body<'a, T: Deserialize<'a> + Default>(body: &'a [u8]) -> Result<T, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // serde would also accept a JSON array for a struct; the protocol only has objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(RequestError::new(
            "Invalid request body: expected a JSON object",
        ));
    }
    if contains_nul_escape(body) {
        return Err(nul_error());
    }
    serde_json::from_slice(body).map_err(|e| RequestError::new(body_error_message(&e)))
}

/// Parses a JSON body that is one structure member (the model's `payload`); an empty body
/// means the member is absent.
pub fn parse_payload<'a, T: Deserialize<'a> + Default>(
    body: &'a [u8],
) -> Result<Option<T>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_body(body).map(Some)
}

/// The error for a NUL character anywhere in the input. No AWS IoT member can hold one,
/// and PostgreSQL text cannot store one, so it is refused before anything else.
pub fn nul_error() -> RequestError {
    RequestError::new("The request contains a NUL character (U+0000), which no member accepts.")
}

/// Whether a JSON text contains the escape `\u0000`. Raw control characters are already
/// invalid JSON, so this escape is the only way a NUL can arrive in a body.
fn contains_nul_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000".as_slice())
            {
                return true;
            }
            // Skip the escaped character, so `\\u0000` (a backslash, then text) is not a NUL.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

fn body_error_message(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("Malformed JSON request body: {e}")
        }
        Category::Data => format!("Invalid request body: {e}"),
    }
}

pub fn label(raw: &RawRequest<'_>, name: &str) -> Option<String> {
    raw.labels
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.clone())
}

pub fn query_all<'r>(raw: &'r RawRequest<'_>, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
    raw.query
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn query_first<'r>(raw: &'r RawRequest<'_>, name: &str) -> Option<&'r str> {
    raw.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn header<'r>(raw: &'r RawRequest<'_>, name: &str) -> Option<&'r str> {
    raw.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Converts a query-string or header value to a member's type.
pub trait FromWireText: Sized {
    const KIND: &'static str;
    fn from_wire_text(s: &str) -> Option<Self>;
}

impl FromWireText for String {
    const KIND: &'static str = "a string";
    fn from_wire_text(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

impl FromWireText for i32 {
    const KIND: &'static str = "an integer";
    fn from_wire_text(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }
}

impl FromWireText for i64 {
    const KIND: &'static str = "a long integer";
    fn from_wire_text(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }
}

impl FromWireText for f64 {
    const KIND: &'static str = "a number";
    fn from_wire_text(s: &str) -> Option<Self> {
        s.trim().parse().ok().filter(|f: &f64| f.is_finite())
    }
}

impl FromWireText for bool {
    const KIND: &'static str = "a boolean";
    fn from_wire_text(s: &str) -> Option<Self> {
        match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

impl FromWireText for Timestamp {
    const KIND: &'static str = "a timestamp (ISO 8601 or epoch seconds)";
    fn from_wire_text(s: &str) -> Option<Self> {
        Timestamp::parse_query(s)
    }
}

pub fn convert<T: FromWireText>(member: &str, s: &str) -> Result<T, RequestError> {
    T::from_wire_text(s).ok_or_else(|| {
        RequestError::new(format!(
            "1 validation error detected: Value '{s}' at '{member}' failed to satisfy constraint: Member must be {}",
            T::KIND
        ))
    })
}

pub fn query_value<T: FromWireText>(
    raw: &RawRequest<'_>,
    name: &str,
) -> Result<Option<T>, RequestError> {
    query_first(raw, name).map(|s| convert(name, s)).transpose()
}

pub fn query_list<T: FromWireText>(
    raw: &RawRequest<'_>,
    name: &str,
) -> Result<Option<Vec<T>>, RequestError> {
    let mut out = Vec::new();
    for s in query_all(raw, name) {
        out.push(convert(name, s)?);
    }
    Ok((!out.is_empty()).then_some(out))
}

pub fn header_value<T: FromWireText>(
    raw: &RawRequest<'_>,
    name: &str,
) -> Result<Option<T>, RequestError> {
    header(raw, name).map(|s| convert(name, s)).transpose()
}

pub fn label_value<T: FromWireText>(
    raw: &RawRequest<'_>,
    name: &str,
) -> Result<Option<T>, RequestError> {
    label(raw, name).map(|s| convert(name, &s)).transpose()
}

/// Decodes and validates the request of one implemented operation.
pub type DecodeFn = fn(&RawRequest<'_>) -> Result<crate::Request, RequestError>;

/// The HTTP binding of one operation of the model, implemented or not.
#[derive(Debug)]
pub struct OperationSpec {
    pub name: &'static str,
    pub method: &'static str,
    /// URI template, e.g. `/mitigationactions/actions/{actionName}`.
    pub uri: &'static str,
    /// HTTP status of a successful response.
    pub success_status: u16,
    pub paginator: Option<Paginator>,
    /// Decodes and validates a request; `None` for operations Palisade does not implement.
    pub decode: Option<DecodeFn>,
}

#[derive(Debug)]
pub struct Paginator {
    pub input_token: &'static str,
    pub output_token: &'static str,
    pub limit_key: Option<&'static str>,
    pub result_key: &'static str,
}

/// An error shape of the model: its code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorSpec {
    pub code: &'static str,
    pub status: u16,
    pub fault: bool,
}

/// Defines a model string enum: known values as variants, anything else kept in
/// `Unknown` so that validation can name the member and the allowed set.
#[macro_export]
#[doc(hidden)]
macro_rules! string_enum {
    ($name:ident { $($variant:ident => $value:literal),* $(,)? }) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(#[doc = concat!("`", $value, "`")] $variant,)*
            /// A value outside the model's set; rejected by validation.
            Unknown(String),
        }

        impl $name {
            pub const VALUES: &'static [&'static str] = &[$($value),*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $value,)*
                    Self::Unknown(s) => s,
                }
            }

            pub fn from_wire(s: &str) -> Self {
                match s {
                    $($value => Self::$variant,)*
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok(Self::from_wire(&s))
            }
        }

        impl $crate::runtime::FromWireText for $name {
            const KIND: &'static str = "a string";
            fn from_wire_text(s: &str) -> Option<Self> {
                Some(Self::from_wire(s))
            }
        }

        impl $crate::runtime::Validate for $name {
            fn validate_at(&self, path: &$crate::runtime::Path<'_>, v: &mut $crate::runtime::Violations) {
                $crate::runtime::check_enum(
                    self.as_str(),
                    !matches!(self, Self::Unknown(_)),
                    Self::VALUES,
                    path,
                    v,
                );
            }
        }
    };
}
