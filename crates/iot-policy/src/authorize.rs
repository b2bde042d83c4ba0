//! Authorizing one request of a device against its IoT policies, as AWS IoT Core's
//! gateway does (`../shared/reference/iot-core-data-plane.md`, section 2): everything is
//! denied by default, an Allow that applies grants, and an explicit Deny in any policy
//! overrides every Allow.
//!
//! A statement applies to a request when its `Action`/`NotAction` covers the action
//! (case-insensitive, `*` and `?` wildcards), its `Resource`/`NotResource` covers the
//! resource ARN (case-sensitive, `*` any run of characters, `?` one; MQTT's `+` and `#`
//! are literal) and every condition of its `Condition` block holds.
//!
//! Policy variables (`${iot:ClientId}`, `${iot:Connection.Thing.ThingName}`,
//! `${iot:Certificate.Subject.CommonName}`, ...) in resources and condition values take
//! their value from the request's [`Context`], as literal text (a client id `*` matches
//! only `*`); `${*}`, `${?}` and `${$}` are those literal characters. A variable the
//! context does not resolve stays as its literal `${...}` text, which no real resource
//! matches, so the statement grants nothing (AWS answers access denied). As AWS does for
//! certificate variables, a certificate value holding a wildcard character (`*`, `$`,
//! `+`, `?`, `#`) or longer than 1,024 characters is not substituted. A multi-valued
//! variable stands for its first value; `X.1` is its second.
//!
//! Conditions: the `String*`, `Arn*`, `Bool` and `Null` operators, with `...IfExists` and
//! the `ForAnyValue:`/`ForAllValues:` qualifiers, evaluated as IAM does: the values listed
//! for a key are alternatives, all keys and operators of the block must hold; a key
//! missing from the context makes a condition false, except for the negated operators
//! (`StringNotEquals`, `ArnNotLike`, ...), `...IfExists`, `Null` and `ForAllValues:`.
//! Other operators (numeric, date, IP address) are not evaluated: such a condition never
//! holds in an Allow (no grant) and always holds in a Deny (the Deny stands), so an
//! operator Palisade does not know never opens access.

use std::collections::HashMap;

use crate::document::{self, Effect, Json};
use crate::PolicyError;

/// Values of the policy variables and condition keys of one request: for an MQTT
/// connection, `iot:ClientId`, `iot:Connection.Thing.*`, `iot:Certificate.*`, ...
/// Keys are case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets a single-valued key.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Context {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    /// Sets a multi-valued key (an empty list is the same as an absent key).
    pub fn set_list(&mut self, key: &str, values: Vec<String>) -> &mut Context {
        self.values.insert(key.to_ascii_lowercase(), values);
        self
    }

    fn values(&self, key: &str) -> &[String] {
        self.values
            .get(&key.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// A policy variable's value: the key's first value, or `X.n` its (n+1)-th.
    fn variable(&self, name: &str) -> Option<&str> {
        if let Some(value) = self.values(name).first() {
            return Some(value);
        }
        let (key, index) = name.rsplit_once('.')?;
        let index: usize = index.parse().ok()?;
        self.values(key).get(index).map(String::as_str)
    }
}

/// The outcome of [`PolicySet::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow applies and no Deny does.
    Allowed,
    /// A Deny applies.
    ExplicitDeny,
    /// Nothing applies: denied by default.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allowed
    }
}

/// The policies in effect for a principal (its own and its thing groups'), read once and
/// evaluated for every request.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    effect: Effect,
    action: Patterns,
    resource: Patterns,
    conditions: Vec<Condition>,
}

/// `Action`/`Resource` (the request must match one) or `NotAction`/`NotResource` (it
/// must match none); both present, which IAM's grammar forbids, is read as either.
#[derive(Debug, Clone, Default)]
struct Patterns {
    only: Option<Vec<String>>,
    except: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct Condition {
    operator: Operator,
    qualifier: Qualifier,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals { negated: bool, ignore_case: bool },
    StringLike { negated: bool },
    Bool,
    Null,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

impl PolicySet {
    /// Reads the documents (each a policy's default version). Statements or elements that
    /// cannot be read are skipped, as in [`crate::analyse`]; a document that is not a JSON
    /// object with a Statement is an error.
    pub fn parse<'d>(documents: impl IntoIterator<Item = &'d str>) -> Result<Self, PolicyError> {
        let mut rules = Vec::new();
        for text in documents {
            let json = Json::parse(text)?;
            for s in document::statements(&json)? {
                let owned = |list: Option<Vec<&str>>| {
                    list.map(|l| l.into_iter().map(str::to_owned).collect())
                };
                rules.push(Rule {
                    effect: s.effect,
                    action: Patterns {
                        only: owned(s.action),
                        except: owned(s.not_action),
                    },
                    resource: Patterns {
                        only: owned(s.resource),
                        except: owned(s.not_resource),
                    },
                    conditions: s.condition.map(conditions).unwrap_or_default(),
                });
            }
        }
        Ok(PolicySet { rules })
    }

    /// Whether `action` (`iot:Connect`, `iot:Publish`, ...) on `resource` (the full ARN,
    /// `arn:aws:iot:{region}:{account}:topic/a/b`) is allowed in `context`.
    pub fn authorize(&self, action: &str, resource: &str, context: &Context) -> Decision {
        let action = action.to_ascii_lowercase();
        let mut allowed = false;
        for rule in &self.rules {
            let deny = rule.effect == Effect::Deny;
            // Once allowed, only a Deny can change the outcome.
            if (allowed && !deny) || !rule.applies(&action, resource, context) {
                continue;
            }
            if deny {
                return Decision::ExplicitDeny;
            }
            allowed = true;
        }
        if allowed {
            Decision::Allowed
        } else {
            Decision::ImplicitDeny
        }
    }
}

impl Rule {
    fn applies(&self, action: &str, resource: &str, context: &Context) -> bool {
        let deny = self.effect == Effect::Deny;
        self.action
            .covers(|p| glob(&literal(&p.to_ascii_lowercase()), action))
            && self
                .resource
                .covers(|p| glob(&substituted(p, context), resource))
            && self.conditions.iter().all(|c| c.holds(context, deny))
    }
}

impl Patterns {
    fn covers(&self, matches: impl Fn(&str) -> bool) -> bool {
        let only = self.only.as_ref().map(|l| l.iter().any(|p| matches(p)));
        let except = self.except.as_ref().map(|l| !l.iter().any(|p| matches(p)));
        match (only, except) {
            (None, None) => false,
            (Some(a), None) | (None, Some(a)) => a,
            (Some(a), Some(b)) => a || b,
        }
    }
}

/// The Condition block's conditions: `{"Operator": {"key": value or [values]}}`.
fn conditions(block: &Json<'_>) -> Vec<Condition> {
    let mut out = Vec::new();
    for (name, keys) in block.as_object().unwrap_or_default() {
        let (qualifier, name) = match name.split_once(':') {
            Some((q, rest)) if q.eq_ignore_ascii_case("ForAnyValue") => {
                (Qualifier::ForAnyValue, rest)
            }
            Some((q, rest)) if q.eq_ignore_ascii_case("ForAllValues") => {
                (Qualifier::ForAllValues, rest)
            }
            Some(_) => (Qualifier::Single, "?"),
            None => (Qualifier::Single, name.as_ref()),
        };
        let (name, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let operator = operator(name);
        let Some(keys) = keys.as_object() else {
            out.push(unknown());
            continue;
        };
        for (key, value) in keys {
            let values = match value {
                Json::Array(items) => items.iter().filter_map(text).collect(),
                one => text(one).into_iter().collect(),
            };
            out.push(Condition {
                operator,
                qualifier,
                if_exists,
                key: key.to_string(),
                values,
            });
        }
    }
    out
}

fn unknown() -> Condition {
    Condition {
        operator: Operator::Unknown,
        qualifier: Qualifier::Single,
        if_exists: false,
        key: String::new(),
        values: Vec::new(),
    }
}

fn text(value: &Json<'_>) -> Option<String> {
    match value {
        Json::Str(s) => Some(s.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn operator(name: &str) -> Operator {
    let (negated, base) = match name
        .strip_prefix("StringNot")
        .or(name.strip_prefix("ArnNot"))
    {
        Some(rest) => (true, rest),
        None => (
            false,
            name.strip_prefix("String")
                .or(name.strip_prefix("Arn"))
                .unwrap_or(name),
        ),
    };
    let is_arn = name.starts_with("Arn");
    match (base, is_arn) {
        ("Equals", false) => Operator::StringEquals {
            negated,
            ignore_case: false,
        },
        ("EqualsIgnoreCase", false) => Operator::StringEquals {
            negated,
            ignore_case: true,
        },
        ("Like", _) | ("Equals", true) => Operator::StringLike { negated },
        _ if name == "Bool" => Operator::Bool,
        _ if name == "Null" => Operator::Null,
        _ => Operator::Unknown,
    }
}

impl Condition {
    /// Whether the condition holds; `in_deny`: an operator not evaluated holds in a Deny
    /// and fails in an Allow (see the module docs).
    fn holds(&self, context: &Context, in_deny: bool) -> bool {
        let present = context.values(&self.key);
        let negated = matches!(
            self.operator,
            Operator::StringEquals { negated: true, .. } | Operator::StringLike { negated: true }
        );
        match self.operator {
            Operator::Unknown => return in_deny,
            Operator::Null => {
                // "true": the key must be absent; "false": present.
                let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
                return present.is_empty() == want_absent;
            }
            _ => {}
        }
        if present.is_empty() {
            return self.if_exists || negated || self.qualifier == Qualifier::ForAllValues;
        }
        // Whether one request value matches one of the policy's (before negation).
        let matches_one = |value: &str| {
            self.values.iter().any(|p| {
                let p = substituted(p, context);
                match self.operator {
                    Operator::StringEquals { ignore_case, .. } => {
                        let p: String = p.iter().map(Tok::text).collect();
                        if ignore_case {
                            p.eq_ignore_ascii_case(value)
                        } else {
                            p == value
                        }
                    }
                    Operator::StringLike { .. } => glob(&p, value),
                    Operator::Bool => {
                        let p: String = p.iter().map(Tok::text).collect();
                        p.eq_ignore_ascii_case(value)
                    }
                    Operator::Null | Operator::Unknown => false,
                }
            })
        };
        let satisfies = |value: &str| matches_one(value) != negated;
        match self.qualifier {
            Qualifier::Single => satisfies(&present[0]),
            Qualifier::ForAnyValue => present.iter().any(|v| satisfies(v)),
            Qualifier::ForAllValues => present.iter().all(|v| satisfies(v)),
        }
    }
}

/// A pattern element: a literal character, `*` or `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    One,
}

impl Tok {
    fn text(&self) -> char {
        match self {
            Tok::Lit(c) => *c,
            Tok::Any => '*',
            Tok::One => '?',
        }
    }
}

/// A pattern with no variables.
fn literal(pattern: &str) -> Vec<Tok> {
    pattern.chars().map(wildcard).collect()
}

fn wildcard(c: char) -> Tok {
    match c {
        '*' => Tok::Any,
        '?' => Tok::One,
        c => Tok::Lit(c),
    }
}

/// Longest certificate value AWS substitutes.
const MAX_CERTIFICATE_VALUE: usize = 1024;

/// `pattern` with its `${...}` variables replaced by their values (literal text).
fn substituted(pattern: &str, context: &Context) -> Vec<Tok> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        out.extend(rest[..start].chars().map(wildcard));
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.extend(rest[start..].chars().map(Tok::Lit));
            return out;
        };
        let name = &after[..end];
        match name {
            "*" | "?" | "$" => out.extend(name.chars().map(Tok::Lit)),
            _ => match value_of(name, context) {
                Some(value) => out.extend(value.chars().map(Tok::Lit)),
                None => out.extend(rest[start..start + 3 + end].chars().map(Tok::Lit)),
            },
        }
        rest = &after[end + 1..];
    }
    out.extend(rest.chars().map(wildcard));
    out
}

fn value_of<'c>(name: &str, context: &'c Context) -> Option<&'c str> {
    let value = context.variable(name)?;
    let certificate = name
        .get(..16)
        .is_some_and(|p| p.eq_ignore_ascii_case("iot:Certificate."));
    if certificate
        && (value.len() > MAX_CERTIFICATE_VALUE || value.contains(['*', '$', '+', '?', '#']))
    {
        return None;
    }
    Some(value)
}

/// Whether `text` matches `pattern` as a whole (`*` any run, `?` one character).
fn glob(pattern: &[Tok], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has absorbed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Tok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|tok| *tok == Tok::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

    fn set(documents: &[&str]) -> PolicySet {
        PolicySet::parse(documents.iter().copied()).expect("valid documents")
    }

    fn device(client: &str) -> Context {
        let mut c = Context::new();
        c.set("iot:ClientId", client);
        c
    }

    #[test]
    fn globs() {
        assert!(glob(&literal("a*c"), "abbbc"));
        assert!(glob(&literal("a*"), "a"));
        assert!(glob(&literal("*"), ""));
        assert!(glob(&literal("a?c"), "abc"));
        assert!(!glob(&literal("a?c"), "ac"));
        assert!(glob(&literal("*/b/*"), "x/b/y/b/z"));
        assert!(!glob(&literal("a*b"), "acbx"));
        assert!(glob(&literal("topic/a/+"), "topic/a/+"));
        assert!(!glob(&literal("topic/a/+"), "topic/a/b"));
    }

    #[test]
    fn default_deny_allow_and_deny_wins() {
        let policies = set(&[
            r#"{"Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#,
            r#"{"Statement":{"Effect":"Deny","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/secret/*"}}"#,
        ]);
        let c = device("d1");
        let topic = |t: &str| format!("{ARN}:topic/{t}");
        assert_eq!(
            policies.authorize("iot:Publish", &topic("open/x"), &c),
            Decision::Allowed
        );
        assert_eq!(
            policies.authorize("iot:Publish", &topic("secret/x"), &c),
            Decision::ExplicitDeny
        );
        assert_eq!(
            policies.authorize("IOT:PUBLISH", &topic("secret/x"), &c),
            Decision::ExplicitDeny
        );
        assert_eq!(
            PolicySet::default().authorize("iot:Connect", &format!("{ARN}:client/d1"), &c),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn variables_are_literal_and_unresolved_ones_grant_nothing() {
        let policies = set(&[r#"{"Statement":[
            {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
            {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:us-east-1:123456789012:topicfilter/dev/${iot:ClientId}/*"},
            {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/lit/${*}"}
        ]}"#]);
        let mut c = device("*");
        let client = format!("{ARN}:client/");
        // No thing resolved: the Connect statement names the literal variable.
        assert!(!policies
            .authorize("iot:Connect", &format!("{client}t1"), &c)
            .is_allowed());
        c.set("iot:Connection.Thing.ThingName", "t1");
        assert!(policies
            .authorize("iot:Connect", &format!("{client}t1"), &c)
            .is_allowed());
        assert!(!policies
            .authorize("iot:Connect", &format!("{client}t2"), &c)
            .is_allowed());
        // A client id `*` is the character, not a wildcard.
        let filter = format!("{ARN}:topicfilter/dev/");
        assert!(policies
            .authorize("iot:Subscribe", &format!("{filter}*/x"), &c)
            .is_allowed());
        assert!(!policies
            .authorize("iot:Subscribe", &format!("{filter}d2/x"), &c)
            .is_allowed());
        let topic = format!("{ARN}:topic/lit/");
        assert!(policies
            .authorize("iot:Publish", &format!("{topic}*"), &c)
            .is_allowed());
        assert!(!policies
            .authorize("iot:Publish", &format!("{topic}x"), &c)
            .is_allowed());
    }

    #[test]
    fn certificate_values_with_wildcards_are_not_substituted() {
        let policies = set(&[r#"{"Statement":{"Effect":"Allow","Action":"iot:Publish",
            "Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:Certificate.Subject.CommonName}"}}"#]);
        let mut c = Context::new();
        c.set("iot:Certificate.Subject.CommonName", "dev#1");
        assert!(!policies
            .authorize("iot:Publish", &format!("{ARN}:topic/dev#1"), &c)
            .is_allowed());
        c.set("iot:Certificate.Subject.CommonName", "dev1");
        assert!(policies
            .authorize("iot:Publish", &format!("{ARN}:topic/dev1"), &c)
            .is_allowed());
    }

    #[test]
    fn not_action_and_not_resource() {
        let policies = set(&[r#"{"Statement":[
            {"Effect":"Allow","NotAction":"iot:Publish","Resource":"*"},
            {"Effect":"Allow","Action":"iot:Publish","NotResource":"arn:aws:iot:*:*:topic/$aws/*"}
        ]}"#]);
        let c = device("d");
        assert!(policies
            .authorize("iot:Subscribe", "anything", &c)
            .is_allowed());
        assert!(policies
            .authorize("iot:Publish", &format!("{ARN}:topic/mine"), &c)
            .is_allowed());
        assert!(!policies
            .authorize("iot:Publish", &format!("{ARN}:topic/$aws/things/x"), &c)
            .is_allowed());
    }

    #[test]
    fn conditions() {
        let policies = set(&[r#"{"Statement":[
            {"Effect":"Allow","Action":"iot:Connect","Resource":"*",
             "Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}},
            {"Effect":"Allow","Action":"iot:Publish","Resource":"*",
             "Condition":{"StringLike":{"iot:ClientId":["sensor-*","probe-?"]}}},
            {"Effect":"Deny","Action":"iot:Publish","Resource":"*",
             "Condition":{"StringNotEqualsIgnoreCase":{"iot:Connection.Thing.ThingTypeName":"Sensor"}}},
            {"Effect":"Allow","Action":"iot:Subscribe","Resource":"*",
             "Condition":{"NumericLessThan":{"iot:Anything":"5"}}},
            {"Effect":"Allow","Action":"iot:Receive","Resource":"*",
             "Condition":{"ForAllValues:StringEquals":{"iot:Certificate.Subject.Organization.List":["A","B"]}}}
        ]}"#]);
        let client = format!("{ARN}:client/x");
        let topic = format!("{ARN}:topic/t");
        let mut c = device("sensor-1");
        assert_eq!(
            policies.authorize("iot:Connect", &client, &c),
            Decision::ImplicitDeny
        );
        c.set("iot:Connection.Thing.IsAttached", "true");
        assert!(policies.authorize("iot:Connect", &client, &c).is_allowed());
        // The Deny's key is missing: a negated operator holds, so it denies.
        assert_eq!(
            policies.authorize("iot:Publish", &topic, &c),
            Decision::ExplicitDeny
        );
        c.set("iot:Connection.Thing.ThingTypeName", "SENSOR");
        assert!(policies.authorize("iot:Publish", &topic, &c).is_allowed());
        let mut other = c.clone();
        other.set("iot:ClientId", "actuator");
        assert_eq!(
            policies.authorize("iot:Publish", &topic, &other),
            Decision::ImplicitDeny
        );
        other.set("iot:ClientId", "probe-7");
        assert!(policies
            .authorize("iot:Publish", &topic, &other)
            .is_allowed());
        // An operator not evaluated never grants.
        c.set("iot:Anything", "1");
        assert!(!policies.authorize("iot:Subscribe", &topic, &c).is_allowed());
        // ForAllValues holds for an absent key and for a subset, not for a stranger.
        assert!(policies.authorize("iot:Receive", &topic, &c).is_allowed());
        c.set_list(
            "iot:Certificate.Subject.Organization.List",
            vec!["A".into(), "B".into()],
        );
        assert!(policies.authorize("iot:Receive", &topic, &c).is_allowed());
        c.set_list(
            "iot:Certificate.Subject.Organization.List",
            vec!["A".into(), "C".into()],
        );
        assert!(!policies.authorize("iot:Receive", &topic, &c).is_allowed());
    }

    #[test]
    fn unknown_operators_keep_a_deny_standing() {
        let policies = set(&[r#"{"Statement":[
            {"Effect":"Allow","Action":"iot:*","Resource":"*"},
            {"Effect":"Deny","Action":"iot:Publish","Resource":"*",
             "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}
        ]}"#]);
        let c = device("d");
        assert_eq!(
            policies.authorize("iot:Publish", &format!("{ARN}:topic/t"), &c),
            Decision::ExplicitDeny
        );
        assert!(policies
            .authorize("iot:Connect", &format!("{ARN}:client/d"), &c)
            .is_allowed());
    }

    #[test]
    fn indexed_variables() {
        let mut c = Context::new();
        c.set_list(
            "iot:Certificate.Subject.Organization",
            vec!["A".into(), "B".into()],
        );
        assert_eq!(
            c.variable("iot:Certificate.Subject.Organization"),
            Some("A")
        );
        assert_eq!(
            c.variable("iot:Certificate.Subject.Organization.1"),
            Some("B")
        );
        assert_eq!(c.variable("iot:Certificate.Subject.Organization.2"), None);
    }
}
