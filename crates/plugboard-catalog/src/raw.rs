//! Text → `serde_json::Value`, strictly: duplicate keys and non-string keys are errors, key order
//! is kept (serde_json's `preserve_order`), non-finite numbers are rejected. One visitor serves
//! both the YAML and the JSON deserializer, so both formats obey the same rules. Nesting depth is
//! bounded by the deserializers themselves (128 levels each) and YAML alias expansion by
//! serde_yaml_ng's repetition limit.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::util::shown;

/// Parses a manifest document. `.json` files go through serde_json, everything else through
/// YAML (which also reads most JSON).
pub(crate) fn parse_document(source: &str, text: &str) -> Result<Value, String> {
    let is_json = std::path::Path::new(source)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        parse_json(text)
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        StrictValue
            .deserialize(de)
            .map_err(|e| format!("invalid YAML: {e}"))
    }
}

/// Parses a JSON document under the same rules.
pub(crate) fn parse_json(text: &str) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue
        .deserialize(&mut de)
        .map_err(|e| format!("invalid JSON: {e}"))?;
    de.end().map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(value)
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, bool, null, list or mapping")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("numbers must be finite (no .inf or .nan)"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue.deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(StrictKey)? {
            // One hash per key: the duplicate check finds the slot the value goes into.
            match out.entry(key) {
                serde_json::map::Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format!(
                        "duplicate key `{}`",
                        shown(taken.key())
                    )));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(StrictValue)?);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

struct StrictKey;

impl<'de> DeserializeSeed<'de> for StrictKey {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_keep_key_order() {
        let v = parse_document("a.yaml", "b: 1\na: 2\nc: [x, {z: 1, y: 2}]\n").unwrap();
        assert_eq!(v.to_string(), r#"{"b":1,"a":2,"c":["x",{"z":1,"y":2}]}"#);
        let v = parse_document("a.json", r#"{"b":1,"a":{"d":null,"c":true}}"#).unwrap();
        assert_eq!(v.to_string(), r#"{"b":1,"a":{"d":null,"c":true}}"#);
    }

    #[test]
    fn duplicate_keys_are_errors_in_yaml_and_json() {
        let err = parse_document("a.yaml", "id: a\nname: x\nid: b\n").unwrap_err();
        assert!(err.contains("duplicate key `id`"), "{err}");
        let err = parse_document("a.yaml", "mcp:\n  env: {A: 1, A: 2}\n").unwrap_err();
        assert!(err.contains("duplicate key `A`"), "{err}");
        let err = parse_document("a.json", r#"{"id":"a","id":"b"}"#).unwrap_err();
        assert!(err.contains("duplicate key `id`"), "{err}");
    }

    #[test]
    fn non_string_keys_and_non_finite_numbers_are_errors() {
        assert!(parse_document("a.yaml", "1: x\n").is_err());
        assert!(parse_document("a.yaml", "[a]: x\n").is_err());
        assert!(parse_document("a.yaml", "a: .inf\n").is_err());
        assert!(parse_document("a.yaml", "a: .nan\n").is_err());
    }

    #[test]
    fn syntax_errors_trailing_json_and_multiple_documents_are_errors() {
        assert!(parse_document("a.yaml", "a: [1, 2\n").is_err());
        assert!(parse_document("a.json", r#"{"a":1} x"#).is_err());
        assert!(parse_document("a.yaml", "a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_errors_not_crashes() {
        let deep = "[".repeat(10_000);
        assert!(parse_document("a.yaml", &deep).is_err());
        assert!(parse_document("a.json", &deep).is_err());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in 'b'..='p' {
            bomb.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        assert!(parse_document("a.yaml", &bomb).is_err());
    }

    #[test]
    fn yaml_tags_are_errors() {
        assert!(parse_document("a.yaml", "a: !custom x\n").is_err());
    }
}
