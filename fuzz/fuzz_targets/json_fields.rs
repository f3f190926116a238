//! Fuzzes the store's field operations on session data (`JsonObject`):
//! arbitrary documents and edits, checked against a model, an ordered
//! `serde_json::Map`, that follows the module's documented rules (a repeated
//! key keeps its first position and its last value; values keep their text).
//! What `check_portable` accepts, serde_json must read.
#![no_main]

use std::borrow::Cow;

use arbitrary::Arbitrary;
use edge_session::session::json_object::{
    IncrementError, JsonObject, MAX_NESTING, check_portable, parse_value,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

#[derive(Arbitrary, Debug)]
struct Input {
    document: Document,
    ops: Vec<Op>,
}

/// An object built from fields, so that most inputs parse, with fuzzed text
/// spliced in: escapes, whitespace, repeated keys, or plain breakage.
#[derive(Arbitrary, Debug)]
struct Document {
    fields: Vec<(String, Json)>,
    splice: Option<(u16, String)>,
}

impl Document {
    fn text(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(name, value)| format!("{} : {}", Json::Str(name.clone()).text(), value.text()))
            .collect();
        let mut text = format!("{{ {} }}", fields.join(", "));
        if let Some((at, spliced)) = &self.splice {
            let mut at = *at as usize % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.insert_str(at, spliced);
        }
        text
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Get(Field),
    Set(Field, Json),
    Remove(Field),
    Increment(Field, i64),
}

/// Which field an operation edits.
#[derive(Arbitrary, Debug)]
enum Field {
    /// One of the fields the object has, so that edits hit existing fields.
    Existing(u8),
    Named(String),
}

/// The text of a JSON value.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Str(String),
    /// Any text, as a guest may send it: not always JSON.
    Raw(String),
}

impl Json {
    fn text(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Int(n) => n.to_string(),
            Json::Unsigned(n) => n.to_string(),
            // JSON has no NaN or infinity: stand in a number too large for an f64.
            Json::Float(x) => serde_json::to_string(x)
                .ok()
                .filter(|text| text != "null")
                .unwrap_or_else(|| "1e999".into()),
            Json::Str(s) => serde_json::to_string(s).expect("strings serialize"),
            Json::Raw(text) => text.clone(),
        }
    }
}

impl Field {
    fn name(&self, model: &Map<String, Value>) -> String {
        match self {
            Field::Existing(i) if !model.is_empty() => {
                model.keys().nth(*i as usize % model.len()).unwrap().clone()
            }
            Field::Existing(_) => String::new(),
            Field::Named(name) => name.clone(),
        }
    }
}

fuzz_target!(|input: Input| {
    let text = input.document.text();
    let parsed = JsonObject::parse(&text);
    // The model reads numbers into f64, i64 or u64, so it refuses some valid
    // JSON (1e999) that the object keeps as text; skip those documents.
    let Ok(mut model) = serde_json::from_str::<Map<String, Value>>(&text) else {
        // What the host stores for guests, serde_json must read back.
        assert!(
            check_portable(&text, MAX_NESTING).is_err(),
            "portable but unreadable: {text:?}"
        );
        return;
    };
    let mut object = parsed.unwrap_or_else(|e| panic!("a JSON object was refused: {e}"));
    for name in model.keys() {
        let found = JsonObject::field(&text, name).expect("the object parsed");
        assert_eq!(found, object.get(name), "field reads as get: {name:?}");
    }
    check_against_model(&object, &model);

    for op in &input.ops {
        match op {
            Op::Get(field) => {
                let name = field.name(&model);
                assert_eq!(object.get(&name).is_some(), model.contains_key(&name));
                let json = object.to_json();
                let found = JsonObject::field(&json, &name).expect("to_json parses");
                assert_eq!(found, object.get(&name), "field reads as get");
            }
            Op::Set(field, value) => {
                let name = field.name(&model);
                let text = value.text();
                // The sessions host sends only what parse_value accepts.
                let Ok(value) = parse_value(&text) else {
                    continue;
                };
                let Ok(model_value) = serde_json::from_str::<Value>(value) else {
                    assert!(
                        check_portable(value, MAX_NESTING - 1).is_err(),
                        "portable but unreadable: {value:?}"
                    );
                    continue;
                };
                object.set(&name, Cow::Owned(value.to_owned()));
                assert_eq!(object.get(&name), Some(value), "set keeps the value's text");
                model.insert(name, model_value);
            }
            Op::Remove(field) => {
                let name = field.name(&model);
                assert_eq!(object.remove(&name), model.shift_remove(&name).is_some());
            }
            Op::Increment(field, delta) => {
                let name = field.name(&model);
                let expected = match model.get(&name) {
                    None => Ok(0),
                    Some(value) => value.as_i64().ok_or(IncrementError::NotAnInteger),
                }
                .and_then(|current| current.checked_add(*delta).ok_or(IncrementError::Overflow));
                assert_eq!(object.increment(&name, *delta), expected, "{name:?}");
                if let Ok(sum) = expected {
                    model.insert(name, sum.into());
                }
            }
        }
        check_against_model(&object, &model);
    }

    let json = object.to_json();
    let reparsed: Map<String, Value> =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("to_json gave {json:?}: {e}"));
    assert_eq!(reparsed, model);
    assert!(reparsed.keys().eq(model.keys()), "field order");
    let again = JsonObject::parse(&json).expect("to_json parses").to_json();
    assert_eq!(again, json, "to_json is a fixed point");
});

/// Every model field reads back as the same value, in its own JSON text.
fn check_against_model(object: &JsonObject<'_>, model: &Map<String, Value>) {
    for (name, expected) in model {
        let raw = object
            .get(name)
            .unwrap_or_else(|| panic!("{name:?} is missing"));
        assert_eq!(parse_value(raw).ok(), Some(raw), "raw value {raw:?}");
        assert_eq!(&serde_json::from_str::<Value>(raw).unwrap(), expected);
    }
}
