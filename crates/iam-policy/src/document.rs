//! Reading IAM policy documents: strict JSON (duplicate keys refused), then lenient
//! statements (what cannot be read is skipped, as in palisade-iot-policy).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::PolicyError;

/// Parses `text` as JSON, refusing an object with the same key twice (serde_json's
/// `Value` would silently keep the last). `document` is the index reported in errors.
pub(crate) fn parse_strict(text: &str, document: usize) -> Result<Value, PolicyError> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (_, Some(key)) => Err(PolicyError::DuplicateKey { document, key }),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(PolicyError::NotJson {
            document,
            detail: e.to_string(),
        }),
    }
}

/// A seed building a `serde_json::Value` that records the first duplicate key it meets
/// (and then fails, so parsing stops there).
#[derive(Clone, Copy)]
struct Strict<'c> {
    duplicate: &'c RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                let message = format!("duplicate key `{key}`");
                *self.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(self)?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

/// The statements of a document, as JSON values: errors when the document is not an
/// object with a `Statement` that is an object or an array.
pub(crate) fn statement_values(value: Value, document: usize) -> Result<Vec<Value>, PolicyError> {
    let Value::Object(mut top) = value else {
        return Err(PolicyError::NotAnObject { document });
    };
    match top.remove("Statement") {
        None => Err(PolicyError::MissingStatement { document }),
        Some(one @ Value::Object(_)) => Ok(vec![one]),
        Some(Value::Array(many)) => Ok(many),
        Some(_) => Err(PolicyError::InvalidStatement { document }),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// One statement. Each element is `None` when absent; a present element that is neither
/// a string nor an array names nothing (an empty list), and non-string members of an
/// array are skipped.
#[derive(Debug)]
pub(crate) struct Statement {
    pub effect: Effect,
    pub action: Option<Vec<String>>,
    pub not_action: Option<Vec<String>>,
    pub resource: Option<Vec<String>>,
    pub not_resource: Option<Vec<String>>,
    /// A non-empty Condition block (anything but an empty object or null).
    pub conditional: bool,
}

/// Reads one statement; None for a non-object or an Effect other than Allow/Deny
/// (compared ASCII case-insensitively, like palisade-iot-policy).
pub(crate) fn statement(value: &Value) -> Option<Statement> {
    let object = value.as_object()?;
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some(e) if e.eq_ignore_ascii_case("Allow") => Effect::Allow,
        Some(e) if e.eq_ignore_ascii_case("Deny") => Effect::Deny,
        _ => return None,
    };
    Some(Statement {
        effect,
        action: strings(object.get("Action")),
        not_action: strings(object.get("NotAction")),
        resource: strings(object.get("Resource")),
        not_resource: strings(object.get("NotResource")),
        conditional: match object.get("Condition") {
            None | Some(Value::Null) => false,
            Some(Value::Object(c)) => !c.is_empty(),
            Some(_) => true,
        },
    })
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
        _ => Some(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_at_any_depth_are_refused() {
        assert_eq!(
            parse_strict(r#"{"Statement":{"Effect":"Allow","Effect":"Deny"}}"#, 2),
            Err(PolicyError::DuplicateKey {
                document: 2,
                key: "Effect".into()
            })
        );
        assert!(matches!(
            parse_strict(r#"{"a":[{"b":{"c":1,"c":2}}]}"#, 0),
            Err(PolicyError::DuplicateKey { key, .. }) if key == "c"
        ));
        // The same key in different objects is fine.
        assert!(parse_strict(r#"[{"a":1},{"a":2}]"#, 0).is_ok());
    }

    #[test]
    fn not_json_and_trailing_text() {
        assert!(matches!(
            parse_strict("{", 0),
            Err(PolicyError::NotJson { .. })
        ));
        assert!(matches!(
            parse_strict("{} x", 0),
            Err(PolicyError::NotJson { .. })
        ));
        let deep = "[".repeat(10_000);
        assert!(matches!(
            parse_strict(&deep, 0),
            Err(PolicyError::NotJson { .. })
        ));
    }

    #[test]
    fn statement_shapes() {
        let read = |text: &str| {
            parse_strict(text, 0)
                .and_then(|v| statement_values(v, 0))
                .map(|s| s.iter().filter_map(statement).count())
        };
        assert_eq!(read(r#"{"Statement":{"Effect":"Allow"}}"#), Ok(1));
        assert_eq!(
            read(r#"{"Statement":[{"Effect":"Allow"},1,{"Effect":"Maybe"},{"Effect":"deny"}]}"#),
            Ok(2)
        );
        assert_eq!(read("[]"), Err(PolicyError::NotAnObject { document: 0 }));
        assert_eq!(
            read(r#"{"Version":"2012-10-17"}"#),
            Err(PolicyError::MissingStatement { document: 0 })
        );
        assert_eq!(
            read(r#"{"Statement":"x"}"#),
            Err(PolicyError::InvalidStatement { document: 0 })
        );
    }
}
