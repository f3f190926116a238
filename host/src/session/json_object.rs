//! Session data as a JSON object, edited field by field.
//!
//! Field operations run on every page load, so they must not pay for a full
//! parse of the session: values stay raw JSON text borrowed from the stored
//! bytes, and only the keys are parsed. Objects keep their field order;
//! a repeated key keeps its first position and its last value, as in
//! JavaScript's `JSON.parse`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A parsed JSON object whose values are raw JSON texts.
#[derive(Debug)]
pub struct JsonObject<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> JsonObject<'a> {
    /// Parses `text`, which must hold exactly one JSON object.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The raw JSON text of one field of `text`, which must hold exactly one
    /// JSON object: the same as `parse(text)?.get(name)`, without collecting
    /// the object's fields (a field read on every page load).
    pub fn field(text: &'a str, name: &str) -> Result<Option<&'a str>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let found = FieldVisitor { name }.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(found)
    }

    /// The raw JSON text of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| &*self.fields[i].1)
    }

    /// Sets a field to `value`, which must be valid JSON text.
    pub fn set(&mut self, name: &str, value: Cow<'a, str>) {
        match self.position(name) {
            Some(i) => self.fields[i].1 = value,
            None => self.fields.push((Cow::Owned(name.to_owned()), value)),
        }
    }

    /// Removes a field; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let found = self.position(name);
        if let Some(i) = found {
            self.fields.remove(i);
        }
        found.is_some()
    }

    /// Adds `delta` to an integer field (absent counts as 0); returns the sum.
    pub fn increment(&mut self, name: &str, delta: i64) -> Result<i64, IncrementError> {
        let current = match self.get(name) {
            Some(raw) => {
                serde_json::from_str::<i64>(raw).map_err(|_| IncrementError::NotAnInteger)?
            }
            None => 0,
        };
        let sum = current.checked_add(delta).ok_or(IncrementError::Overflow)?;
        self.set(name, Cow::Owned(sum.to_string()));
        Ok(sum)
    }

    /// The compact JSON text of the object.
    pub fn to_json(&self) -> String {
        let capacity = 2 + self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>();
        let mut out = String::with_capacity(capacity);
        out.push('{');
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, name);
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
        out
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|(k, _)| k == name)
    }
}

/// Why [`JsonObject::increment`] failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IncrementError {
    #[error("field does not hold an integer")]
    NotAnInteger,
    #[error("increment overflows a signed 64-bit integer")]
    Overflow,
}

/// Checks that `text` is one JSON value and returns it without surrounding
/// whitespace.
pub fn parse_value(text: &str) -> Result<&str, serde_json::Error> {
    let raw: &RawValue = serde_json::from_str(text)?;
    Ok(raw.get())
}

/// How deep session data may nest, counting the session object itself:
/// below serde_json's recursion limit (128), the lowest of common readers.
pub const MAX_NESTING: usize = 100;

/// Checks that `text`, one JSON value, reads back the same in every JSON
/// reader. Values kept raw are only checked for syntax, which lets through
/// numbers no double holds (`1e999`), lone UTF-16 surrogates (`"\ud800"`)
/// and nesting deeper than readers recurse: a session holding one would be
/// stored, then fail to load in the guest SDKs (serde_json among them).
/// Guest input passes here before it is stored; stored data need not.
pub fn check_portable(text: &str, max_nesting: usize) -> Result<(), serde_json::Error> {
    // Reading every value through serde_json's typed path checks the
    // number range and the surrogate pairs.
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Portable { max_nesting }.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// Reads one value, failing when it nests deeper than `max_nesting`.
#[derive(Clone, Copy)]
struct Portable {
    max_nesting: usize,
}

impl Portable {
    /// What the values of a container may hold.
    fn inner<E: de::Error>(self) -> Result<Portable, E> {
        match self.max_nesting.checked_sub(1) {
            Some(max_nesting) => Ok(Portable { max_nesting }),
            None => Err(E::custom(format_args!(
                "nested too deep (at most {MAX_NESTING} levels in a session)"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Portable {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Portable {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let element = self.inner()?;
        while seq.next_element_seed(element)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let value = self.inner()?;
        while map.next_key_seed(value)?.is_some() {
            map.next_value_seed(value)?;
        }
        Ok(())
    }
}

fn push_json_string(out: &mut String, s: &str) {
    // Serializing a `str` into JSON cannot fail.
    out.push_str(&serde_json::to_string(s).expect("strings always serialize"));
}

impl<'de> Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = JsonObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = JsonObject {
            fields: Vec::with_capacity(map.size_hint().unwrap_or(8)),
        };
        while let Some(Key(name)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            match object.position(&name) {
                Some(i) => object.fields[i].1 = Cow::Borrowed(value.get()),
                None => object.fields.push((name, Cow::Borrowed(value.get()))),
            }
        }
        Ok(object)
    }
}

/// Finds one field of an object; a repeated key's last value wins, as in
/// [`JsonObject`].
struct FieldVisitor<'n> {
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for FieldVisitor<'_> {
    type Value = Option<&'de str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldVisitor<'_> {
    type Value = Option<&'de str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Key(name)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            if name == self.name {
                found = Some(value.get());
            }
        }
        Ok(found)
    }
}

/// An object key, borrowed from the input unless it contains escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        JsonObject::parse(text).unwrap().to_json()
    }

    #[test]
    fn compacts_and_keeps_order() {
        assert_eq!(
            roundtrip(r#" { "b" : 1, "a" : [1, 2] } "#),
            r#"{"b":1,"a":[1, 2]}"#
        );
        assert_eq!(roundtrip("{}"), "{}");
    }

    #[test]
    fn repeated_key_keeps_first_position_and_last_value() {
        assert_eq!(roundtrip(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn escaped_keys_survive() {
        let text = r#"{"quote\"d":1,"\u00e9":2}"#;
        let object = JsonObject::parse(text).unwrap();
        assert_eq!(object.get("quote\"d"), Some("1"));
        assert_eq!(object.get("é"), Some("2"));
        assert_eq!(object.to_json(), r#"{"quote\"d":1,"é":2}"#);
    }

    #[test]
    fn rejects_everything_but_one_object() {
        for bad in [
            "[]", "1", "\"s\"", "null", "{", "{}{}", "{\"a\":}", "", "{1:2}",
        ] {
            assert!(
                JsonObject::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn one_field_reads_like_the_parsed_object() {
        let text = r#"{"a":1,"b":{"a":[2]},"quote\"d":"x","a":3,"\u00e9":4}"#;
        let object = JsonObject::parse(text).unwrap();
        for name in ["a", "b", "quote\"d", "é", "missing", ""] {
            assert_eq!(
                JsonObject::field(text, name).unwrap(),
                object.get(name),
                "{name}"
            );
        }
        assert_eq!(JsonObject::field(text, "a").unwrap(), Some("3"));
        for bad in ["[]", "{", "{}{}", "{\"a\":}", ""] {
            assert!(JsonObject::field(bad, "a").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn field_edits() {
        let mut object = JsonObject::parse(r#"{"a":1,"b":"x"}"#).unwrap();
        object.set("b", Cow::Borrowed("{\"n\":true}"));
        object.set("c", Cow::Borrowed("null"));
        assert!(object.remove("a"));
        assert!(!object.remove("a"));
        assert_eq!(object.to_json(), r#"{"b":{"n":true},"c":null}"#);
    }

    #[test]
    fn increment_rules() {
        let mut object =
            JsonObject::parse(r#"{"n":41,"f":1.5,"s":"1","big":9223372036854775807}"#).unwrap();
        assert_eq!(object.increment("n", 1), Ok(42));
        assert_eq!(object.increment("new", -3), Ok(-3));
        assert_eq!(object.increment("f", 1), Err(IncrementError::NotAnInteger));
        assert_eq!(object.increment("s", 1), Err(IncrementError::NotAnInteger));
        assert_eq!(object.increment("big", 1), Err(IncrementError::Overflow));
        assert_eq!(object.get("n"), Some("42"));
    }

    #[test]
    fn only_values_every_reader_can_read_are_portable() {
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let check = |text: &str| check_portable(text, MAX_NESTING);
        for good in [
            r#"{"a":1.5e300,"b":[1,{"c":null}],"d":"\ud83d\ude00","e":-9223372036854775808}"#,
            r#"{"big":123456789012345678901234567890,"t":true,"s":"\u00e9\n"}"#,
            &deep(MAX_NESTING),
        ] {
            assert!(check(good).is_ok(), "{good:?}: {:?}", check(good));
        }
        for bad in [
            r#"{"a":1e999}"#,
            r#"{"a":[-1e400]}"#,
            r#"{"s":"\ud800"}"#,
            r#"{"s":"x\udc00y"}"#,
            r#"{"\ud800":1}"#,
            &deep(MAX_NESTING + 1),
            "{\"a\":1",
            "{} {}",
            "",
        ] {
            assert!(check(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(check_portable("[]", 1).is_ok());
        assert!(check_portable("[[]]", 1).is_err());
        assert!(check_portable("1", 0).is_ok());
        // The checks JsonObject alone does not make.
        assert!(JsonObject::parse(r#"{"a":1e999,"s":"\ud800"}"#).is_ok());
    }

    #[test]
    fn parse_value_trims_and_validates() {
        assert_eq!(parse_value(" [1, 2] ").unwrap(), "[1, 2]");
        assert!(parse_value("nope").is_err());
        assert!(parse_value("1 2").is_err());
    }
}
