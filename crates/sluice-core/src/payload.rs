//! An event's `data` as the JSON text it was accepted as.
//!
//! Ingest checks the request body once, strictly ([`crate::json::check_strict`]), and from then on
//! the payload is the slice of the body the client sent: the envelope seals it, the queue carries
//! it, the store keeps it and the API returns it without building a tree of it or printing it
//! again (a tree costs an allocation per string, object and array, and printing it back costs as
//! much again). A [`serde_json::Value`] is built only where one is read: a JSON Schema check, or a
//! CloudEvent assembled around it.
//!
//! The text is kept as sent (member order and insignificant whitespace included): what comes back
//! is byte for byte what went in, and equality is by meaning, as JSON's is.

use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;

/// A JSON value held as its text, valid by construction.
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload of `value`, printed compactly.
    pub fn from_value(value: &Value) -> Self {
        // Printing a `Value` cannot fail: its map keys are strings and its numbers finite.
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => Self(raw),
            Err(_) => Self::null(),
        }
    }

    /// The payload `null`.
    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    /// A payload from JSON text this system wrote itself (a store's column, a sealed envelope):
    /// syntax is checked, the strict rules were applied when the text was first accepted.
    pub fn from_json(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// A payload from a slice of a body that passed the strict check.
    pub(crate) fn from_raw(raw: &RawValue) -> Self {
        Self(raw.to_owned())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a tree, for the few readers that walk it. `None` only for a payload nested
    /// deeper than the JSON reader's own recursion limit (128), which the strict check refuses at
    /// ingest unless the depth limit was raised beyond it.
    pub fn to_value(&self) -> Option<Value> {
        serde_json::from_str(self.get()).ok()
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::from_value(&value)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || (self.to_value().is_some() && self.to_value() == other.to_value())
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.to_value().as_ref() == Some(other)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    /// Takes the value's text as it stands in the input; only JSON text deserializers
    /// (`from_str`, `from_slice`, `from_reader`) can hand it out, not a [`Value`].
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_kept_as_sent_and_equality_is_by_meaning() {
        let sent = Payload::from_json(r#"{ "b": 1, "a": [true, null] }"#.to_owned()).unwrap();
        assert_eq!(sent.get(), r#"{ "b": 1, "a": [true, null] }"#);
        assert_eq!(sent, json!({"a": [true, null], "b": 1}));
        assert_eq!(sent, Payload::from_value(&json!({"a": [true, null], "b": 1})));
        assert_ne!(sent, Payload::from_value(&json!({"a": [true], "b": 1})));
        assert_eq!(Payload::from_value(&json!({"b": [1]})).get(), r#"{"b":[1]}"#);
    }

    #[test]
    fn a_payload_is_written_verbatim_inside_a_document_and_read_back() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Doc {
            data: Payload,
        }
        let doc = Doc {
            data: Payload::from_json("[1, \"two\"]".to_owned()).unwrap(),
        };
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(text, r#"{"data":[1, "two"]}"#);
        let back: Doc = serde_json::from_str(&text).unwrap();
        assert_eq!(back.data.get(), "[1, \"two\"]");
        assert!(Payload::from_json("{nope".to_owned()).is_err());
    }
}
