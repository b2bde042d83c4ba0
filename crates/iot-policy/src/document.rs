//! Reading a policy document into statements, leniently: the server validates documents
//! when they are created, so anything odd here (a non-string action, an unknown Effect)
//! is skipped rather than reported, and nothing on any input panics.
//!
//! The JSON is read into a small borrowed tree ([`Json`]) rather than
//! `serde_json::Value`: strings without escapes stay slices of the document and objects
//! are short vectors, which makes reading a typical policy several times cheaper (an
//! audit reads every policy of the account). serde_json's recursion limit still applies.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::PolicyError;

/// A JSON value borrowing its strings from the document where it can.
#[derive(Debug, PartialEq)]
pub(crate) enum Json<'a> {
    /// null, booleans and numbers: the analysis needs none of their values except a
    /// boolean's (IsAttached).
    Bool(bool),
    Other,
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in document order.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    pub(crate) fn parse(document: &'a str) -> Result<Self, PolicyError> {
        serde_json::from_str(document).map_err(|e| PolicyError::NotJson(e.to_string()))
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&[(Cow<'a, str>, Json<'a>)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }
}

/// A member of an object; with duplicate keys the last one counts, as in serde_json.
fn get<'j, 'a>(object: &'j [(Cow<'a, str>, Json<'a>)], key: &str) -> Option<&'j Json<'a>> {
    object.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Json::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Json::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Json::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Other)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((key, value)) = map.next_entry::<Json<'de>, Json<'de>>()? {
            // serde_json only ever hands over string keys.
            if let Json::Str(key) = key {
                members.push((key, value));
            }
        }
        Ok(Json::Object(members))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// One statement, borrowing its strings from the parsed document. Each element is
/// `None` when absent; a present element that is neither a string nor an array yields an
/// empty list (it names nothing).
#[derive(Debug)]
pub(crate) struct Statement<'a> {
    pub effect: Effect,
    pub action: Option<Vec<&'a str>>,
    pub not_action: Option<Vec<&'a str>>,
    pub resource: Option<Vec<&'a str>>,
    pub not_resource: Option<Vec<&'a str>>,
    /// The statement requires `iot:Connection.Thing.IsAttached` to be true.
    pub is_attached: bool,
    /// The statement has a non-empty Condition block (of any kind).
    pub conditional: bool,
    /// The Condition block as written, for evaluating it (authorize.rs).
    pub condition: Option<&'a Json<'a>>,
}

/// The statements of a document. Errors only when the document is not a JSON object
/// with a `Statement` that is an object or an array; array members that are not objects,
/// and statements whose Effect is neither Allow nor Deny, are skipped.
pub(crate) fn statements<'a>(document: &'a Json<'a>) -> Result<Vec<Statement<'a>>, PolicyError> {
    let Json::Object(top) = document else {
        return Err(PolicyError::NotAnObject);
    };
    match get(top, "Statement") {
        None => Err(PolicyError::MissingStatement),
        Some(Json::Object(one)) => Ok(statement(one).into_iter().collect()),
        Some(Json::Array(many)) => Ok(many
            .iter()
            .filter_map(Json::as_object)
            .filter_map(statement)
            .collect()),
        Some(_) => Err(PolicyError::InvalidStatement),
    }
}

fn statement<'a>(object: &'a [(Cow<'a, str>, Json<'a>)]) -> Option<Statement<'a>> {
    let effect = match get(object, "Effect").and_then(Json::as_str) {
        Some(e) if e.eq_ignore_ascii_case("Allow") => Effect::Allow,
        Some(e) if e.eq_ignore_ascii_case("Deny") => Effect::Deny,
        _ => return None,
    };
    let condition = get(object, "Condition");
    Some(Statement {
        effect,
        action: strings(get(object, "Action")),
        not_action: strings(get(object, "NotAction")),
        resource: strings(get(object, "Resource")),
        not_resource: strings(get(object, "NotResource")),
        is_attached: condition.is_some_and(requires_attached_thing),
        conditional: match condition {
            None => false,
            Some(Json::Object(c)) => !c.is_empty(),
            Some(Json::Other) => false, // null
            Some(_) => true,
        },
        condition,
    })
}

fn strings<'a>(value: Option<&'a Json<'_>>) -> Option<Vec<&'a str>> {
    match value? {
        Json::Str(s) => Some(vec![s.as_ref()]),
        Json::Array(items) => Some(items.iter().filter_map(Json::as_str).collect()),
        _ => Some(Vec::new()),
    }
}

const IS_ATTACHED: &str = "iot:Connection.Thing.IsAttached";

/// `"Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}`, with the value
/// as a string, a JSON boolean, or a list whose every value is true (IAM ORs the values
/// of a list, so one "false" would let unattached clients through). Condition keys are
/// case-insensitive in IAM, and so is the operator here.
fn requires_attached_thing(condition: &Json<'_>) -> bool {
    let Some(condition) = condition.as_object() else {
        return false;
    };
    condition
        .iter()
        .filter(|(operator, _)| operator.eq_ignore_ascii_case("Bool"))
        .filter_map(|(_, keys)| keys.as_object())
        .flat_map(|keys| keys.iter())
        .filter(|(key, _)| key.eq_ignore_ascii_case(IS_ATTACHED))
        .any(|(_, value)| match value {
            Json::Array(values) => !values.is_empty() && values.iter().all(is_true),
            value => is_true(value),
        })
}

fn is_true(value: &Json<'_>) -> bool {
    match value {
        Json::Bool(b) => *b,
        Json::Str(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<usize, PolicyError> {
        let value = Json::parse(json)?;
        statements(&value).map(|s| s.len())
    }

    fn attached(condition: &str) -> bool {
        Json::parse(condition).is_ok_and(|c| requires_attached_thing(&c))
    }

    #[test]
    fn reads_json_borrowing_where_it_can() {
        let doc = r#"{"a":"plain","b":"esc\u0061ped","c":[1,-2,3.5,true,null],"a":"last"}"#;
        let Ok(Json::Object(members)) = Json::parse(doc) else {
            panic!("an object");
        };
        assert_eq!(members.len(), 4);
        assert!(matches!(&members[0].1, Json::Str(Cow::Borrowed("plain"))));
        assert_eq!(members[1].1, Json::Str(Cow::Owned("escaped".into())));
        assert_eq!(
            members[2].1,
            Json::Array(vec![
                Json::Other,
                Json::Other,
                Json::Other,
                Json::Bool(true),
                Json::Other
            ])
        );
        assert_eq!(get(&members, "a"), Some(&Json::Str("last".into())));
        assert!(matches!(Json::parse("{"), Err(PolicyError::NotJson(_))));
    }

    #[test]
    fn statement_shapes() {
        assert_eq!(parse(r#"{"Statement":{"Effect":"Allow"}}"#), Ok(1));
        assert_eq!(
            parse(r#"{"Statement":[{"Effect":"Allow"},1,{"Effect":"Maybe"},{"Effect":"deny"}]}"#),
            Ok(2)
        );
        assert_eq!(parse(r#"[]"#), Err(PolicyError::NotAnObject));
        assert_eq!(
            parse(r#"{"Version":"2012-10-17"}"#),
            Err(PolicyError::MissingStatement)
        );
        assert_eq!(
            parse(r#"{"Statement":"x"}"#),
            Err(PolicyError::InvalidStatement)
        );
    }

    #[test]
    fn is_attached_condition_forms() {
        assert!(attached(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}"#
        ));
        assert!(attached(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":true}}"#
        ));
        assert!(attached(
            r#"{"Bool":{"iot:connection.thing.isattached":"True"}}"#
        ));
        assert!(attached(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}"#
        ));
        assert!(!attached(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":["true","false"]}}"#
        ));
        assert!(!attached(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":[]}}"#
        ));
        assert!(!attached(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":"false"}}"#
        ));
        assert!(!attached(
            r#"{"StringEquals":{"iot:Connection.Thing.IsAttached":"true"}}"#
        ));
        assert!(!attached(r#"{"Bool":"true"}"#));
        assert!(!attached(r#""true""#));
    }
}
