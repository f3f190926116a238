//! Session JSON as native Aerospike values, and back.
//!
//! Fields are stored as what they are (integers, strings, booleans, nil,
//! lists, key-ordered maps) rather than as JSON text, so that the server can
//! increment a counter field in place and other tools can read the data.
//! Every other number (fractions, exponents, integers beyond 64 bits) is
//! stored as a blob holding its JSON text: that keeps its value exactly (a
//! float would lose integers beyond 2^53), and the server refuses to increment a blob, as the contract requires (it
//! would happily add to a float). Object keys come back in key order:
//! Aerospike does not keep insertion order.

use std::collections::BTreeMap;

use aerospike::Value;
use serde_json::{Map, Number, Value as Json};

use crate::store::{StoreError, StoreResult};

/// Parses session JSON object text (already validated by the host) into the
/// map stored in the data bin.
pub fn object_to_map(text: &str) -> StoreResult<Value> {
    let object: Map<String, Json> = serde_json::from_str(text).map_err(|e| {
        StoreError::InvalidArgument(format!("session data is not a JSON object: {e}"))
    })?;
    object_value(object)
}

/// Parses one field's JSON text.
pub fn field_to_value(text: &str) -> StoreResult<Value> {
    let json: Json = serde_json::from_str(text)
        .map_err(|e| StoreError::InvalidArgument(format!("field value is not JSON: {e}")))?;
    to_value(json)
}

fn object_value(object: Map<String, Json>) -> StoreResult<Value> {
    let mut map = BTreeMap::new();
    for (key, value) in object {
        map.insert(Value::String(key), to_value(value)?);
    }
    Ok(Value::SortedMap(map))
}

fn to_value(json: Json) -> StoreResult<Value> {
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Blob(n.to_string().into_bytes()),
        },
        Json::String(s) => Value::String(s),
        Json::Array(items) => {
            Value::List(items.into_iter().map(to_value).collect::<Result<_, _>>()?)
        }
        Json::Object(object) => object_value(object)?,
    })
}

/// The data bin as compact JSON object text; a missing bin is `{}`.
pub fn map_to_object(value: Option<&Value>) -> StoreResult<Map<String, Json>> {
    match value {
        None => Ok(Map::new()),
        Some(value) => match to_json(value)? {
            Json::Object(object) => Ok(object),
            _ => Err(unexpected("the data bin does not hold a map")),
        },
    }
}

/// One stored value as JSON.
pub fn to_json(value: &Value) -> StoreResult<Json> {
    Ok(match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Blob(text) => serde_json::from_slice::<Number>(text)
            .map(Json::Number)
            .map_err(|_| unexpected("a stored blob is not a JSON number"))?,
        Value::String(s) => Json::String(s.clone()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::HashMap(_) | Value::OrderedMap(_) | Value::SortedMap(_) => {
            let mut object = Map::new();
            for (key, value) in map_entries(value) {
                let Value::String(key) = key else {
                    return Err(unexpected("a stored map has a key that is not a string"));
                };
                object.insert(key.clone(), to_json(value)?);
            }
            Json::Object(object)
        }
        other => {
            return Err(unexpected(&format!(
                "a stored value has a type JSON cannot express: {other:?}"
            )));
        }
    })
}

/// The entries of any of the client's map shapes (and of key-value lists,
/// which map operations may return); empty for anything else.
pub fn map_entries(value: &Value) -> Vec<(&Value, &Value)> {
    match value {
        Value::HashMap(map) => map.iter().collect(),
        Value::OrderedMap(map) => map.iter().collect(),
        Value::SortedMap(map) => map.iter().collect(),
        Value::KeyValueList(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    }
}

fn unexpected(what: &str) -> StoreError {
    StoreError::Internal(anyhow::anyhow!(
        "unexpected Aerospike record (written by something other than edge-session?): {what}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let map = object_to_map(text).unwrap();
        serde_json::to_string(&map_to_object(Some(&map)).unwrap()).unwrap()
    }

    #[test]
    fn json_values_survive_the_round_trip() {
        let text = r#"{"a":[1,-2.5,"x",true,null,{"n":{}}],"b":9223372036854775807,"c":""}"#;
        assert_eq!(round_trip(text), text);
        assert_eq!(round_trip("{}"), "{}");
    }

    #[test]
    fn objects_come_back_in_key_order() {
        assert_eq!(round_trip(r#"{"z":1,"a":2}"#), r#"{"a":2,"z":1}"#);
    }

    #[test]
    fn numbers_other_than_i64_keep_their_exact_text() {
        for number in ["18446744073709551615", "1.5", "-2e-7", "0.1"] {
            let value = field_to_value(number).unwrap();
            assert!(matches!(value, Value::Blob(_)), "{number}: {value:?}");
            assert_eq!(to_json(&value).unwrap().to_string(), number);
        }
        assert_eq!(
            field_to_value("-9223372036854775808").unwrap(),
            Value::Int(i64::MIN)
        );
    }
}
