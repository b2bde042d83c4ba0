//! Reading shapes: Rust types, reachability, constraints.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{names, Model};

/// Type names the generated code uses unqualified; a shape must not shadow them.
const RESERVED: &[&str] = &[
    "Option",
    "String",
    "Vec",
    "BTreeMap",
    "Result",
    "Box",
    "Request",
    "RequestError",
    "Path",
    "Violations",
    "Validate",
    "Timestamp",
    "Blob",
    "RawRequest",
    "OperationSpec",
    "Paginator",
    "ErrorSpec",
    "Regex",
    "LazyLock",
];

impl Model {
    pub fn shape(&self, name: &str) -> Result<&Value> {
        self.shapes
            .get(name)
            .with_context(|| format!("shape {name} missing from the model"))
    }

    pub fn kind(&self, name: &str) -> Result<&str> {
        self.shape(name)?
            .get("type")
            .and_then(Value::as_str)
            .with_context(|| format!("shape {name} has no type"))
    }

    pub fn is_enum(&self, name: &str) -> Result<bool> {
        Ok(self.kind(name)? == "string" && self.shape(name)?.get("enum").is_some())
    }

    /// The Rust type a reference to `name` is written as.
    pub fn rust_type(&self, name: &str) -> Result<String> {
        let s = self.shape(name)?;
        Ok(match self.kind(name)? {
            "string" if s.get("enum").is_some() => names::type_name(name),
            "string" => "String".into(),
            "integer" => "i32".into(),
            "long" => "i64".into(),
            "double" | "float" => "f64".into(),
            "boolean" => "bool".into(),
            "timestamp" => "Timestamp".into(),
            "blob" => "Blob".into(),
            "list" => format!("Vec<{}>", self.rust_type(&target(s, "member")?)?),
            "map" => format!(
                "BTreeMap<String, {}>",
                self.rust_type(&target(s, "value")?)?
            ),
            "structure" => names::type_name(name),
            other => bail!("shape {name}: unsupported type {other}"),
        })
    }

    /// Every shape reachable from `roots`, following members, list items and map values.
    pub fn reachable(&self, roots: &[String]) -> Result<BTreeSet<String>> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.to_vec();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if RESERVED.contains(&names::type_name(&name).as_str())
                && matches!(self.kind(&name)?, "structure")
                || (self.is_enum(&name)? && RESERVED.contains(&names::type_name(&name).as_str()))
            {
                bail!("shape {name} would shadow a name the generated code uses");
            }
            let s = self.shape(&name)?;
            for (_, m) in members(s) {
                stack.push(target(m, "")?);
            }
            for key in ["member", "key", "value"] {
                if s.get(key).is_some() {
                    stack.push(target(s, key)?);
                }
            }
        }
        Ok(seen)
    }

    /// Whether values of this shape carry any constraint worth a validator call.
    pub fn has_constraints(&self, name: &str, memo: &mut BTreeMap<String, bool>) -> Result<bool> {
        if let Some(&b) = memo.get(name) {
            return Ok(b);
        }
        // Assume no constraints while recursing so cycles terminate; structures always
        // get a validator anyway.
        memo.insert(name.to_owned(), false);
        let s = self.shape(name)?;
        let own = ["min", "max", "pattern", "enum"]
            .iter()
            .any(|k| s.get(*k).is_some());
        let nested = match self.kind(name)? {
            "structure" => true,
            "list" => self.has_constraints(&target(s, "member")?, memo)?,
            "map" => {
                self.has_constraints(&target(s, "key")?, memo)?
                    || self.has_constraints(&target(s, "value")?, memo)?
            }
            _ => false,
        };
        let b = own || nested;
        memo.insert(name.to_owned(), b);
        Ok(b)
    }
}

/// The shape a member (key "") or a list/map part (key "member"/"key"/"value") refers to.
pub fn target(v: &Value, key: &str) -> Result<String> {
    let r = if key.is_empty() {
        v
    } else {
        v.get(key).context("missing shape reference")?
    };
    r.get("shape")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("reference without a shape")
}

pub fn members(s: &Value) -> Vec<(&String, &Value)> {
    s.get("members")
        .and_then(Value::as_object)
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

pub fn required(s: &Value) -> BTreeSet<String> {
    s.get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn num(s: &Value, key: &str) -> Option<String> {
    let v = s.get(key)?;
    v.as_i64()
        .map(|n| n.to_string())
        .or_else(|| v.as_f64().map(|f| format!("{f:?}")))
}

/// The model's patterns are Java regular expressions that must match the whole value.
/// Java's POSIX-style classes are not Unicode properties in Rust's regex, so they are
/// rewritten; the result is compiled here so a bad translation fails generation, not
/// the server.
pub fn rust_pattern(java: &str) -> Result<String> {
    let mut p = java.to_owned();
    for (from, to) in [
        (r"\p{Graph}", "[[:graph:]]"),
        (r"\p{Print}", "[[:print:]]"),
        (r"\p{Alnum}", "[[:alnum:]]"),
        (r"\p{Punct}", "[[:punct:]]"),
        (r"\p{Alpha}", "[[:alpha:]]"),
        (r"\p{Digit}", "[[:digit:]]"),
        (r"\p{Space}", "[[:space:]]"),
        (r"\p{ASCII}", "[[:ascii:]]"),
        (r"\p{Upper}", "[[:upper:]]"),
        (r"\p{Lower}", "[[:lower:]]"),
    ] {
        p = p.replace(from, to);
    }
    // Inside a bracket expression the class must lose its own brackets: "[[[:graph:]]\x20]"
    // is valid in Rust's syntax too, so nothing more is needed.
    let full = format!("^(?:{p})$");
    regex::Regex::new(&full)
        .with_context(|| format!("pattern {java:?} does not compile as {full:?}"))?;
    if full.contains("\"#") {
        bail!("pattern {java:?} cannot be written as a raw string");
    }
    Ok(full)
}
