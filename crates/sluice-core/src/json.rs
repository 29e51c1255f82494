//! A strict JSON reader for untrusted bytes.
//!
//! `serde_json` alone keeps the last of two duplicate keys and allows 128 levels of nesting. Both are
//! attack surface (T-1, E-2): a duplicate key lets two parsers in one pipeline disagree about what an
//! event says, and deep nesting costs stack and CPU downstream. This reader builds the same
//! [`serde_json::Value`] but rejects duplicate keys and anything deeper than a configured limit,
//! reporting where, as a JSON Pointer.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Why bytes were refused as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not valid UTF-8 or not JSON at all.
    #[error("the body is not valid JSON (line {line}, column {column})")]
    Syntax {
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column of the first error.
        column: usize,
    },
    /// Nesting deeper than the limit.
    #[error("the body nests deeper than {max} levels")]
    TooDeep {
        /// The configured limit.
        max: usize,
    },
    /// The same key twice in one object.
    #[error("duplicate key {key:?} in the object at {pointer:?}")]
    DuplicateKey {
        /// JSON Pointer of the object holding the duplicate.
        pointer: String,
        /// The repeated key.
        key: String,
    },
}

/// Escapes one JSON Pointer reference token (RFC 6901).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

struct State {
    failure: RefCell<Option<JsonError>>,
    max_depth: usize,
}

impl State {
    fn fail<E: serde::de::Error>(&self, e: JsonError) -> E {
        let msg = e.to_string();
        *self.failure.borrow_mut() = Some(e);
        E::custom(msg)
    }

    /// Puts `token` in front of a duplicate key's pointer while the error travels up, so the
    /// pointer is only built for a body that fails, and a body that parses allocates no path.
    fn prefix_pointer(&self, token: &str) {
        if let Some(JsonError::DuplicateKey { pointer, .. }) = self.failure.borrow_mut().as_mut() {
            pointer.insert_str(0, &format!("/{}", escape_pointer_token(token)));
        }
    }
}

struct Seed<'s> {
    state: &'s State,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > self.state.max_depth {
            return Err(self.state.fail(JsonError::TooDeep {
                max: self.state.max_depth,
            }));
        }
        let mut out = Vec::new();
        loop {
            let next = seq.next_element_seed(Seed {
                state: self.state,
                depth,
            });
            match next {
                Ok(Some(v)) => out.push(v),
                Ok(None) => break,
                Err(e) => {
                    self.state.prefix_pointer(&out.len().to_string());
                    return Err(e);
                }
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > self.state.max_depth {
            return Err(self.state.fail(JsonError::TooDeep {
                max: self.state.max_depth,
            }));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.state.fail(JsonError::DuplicateKey {
                    pointer: String::new(),
                    key,
                }));
            }
            match map.next_value_seed(Seed {
                state: self.state,
                depth,
            }) {
                Ok(value) => {
                    out.insert(key, value);
                }
                Err(e) => {
                    self.state.prefix_pointer(&key);
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses `bytes` as one JSON document, refusing duplicate keys and nesting deeper than `max_depth`
/// (an array or object at the top level is depth 1).
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let state = State {
        failure: RefCell::new(None),
        max_depth,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = Seed {
        state: &state,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => {
            if let Some(f) = state.failure.into_inner() {
                return Err(f);
            }
            // serde_json's own recursion guard (128) can trip before ours when the limit is set higher.
            if e.to_string().starts_with("recursion limit exceeded") {
                return Err(JsonError::TooDeep {
                    max: max_depth.min(128),
                });
            }
            Err(JsonError::Syntax {
                line: e.line(),
                column: e.column(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ordinary_json() {
        let v = parse_strict(br#"{"a":[1,2,{"b":null}],"c":"x"}"#, 32);
        assert_eq!(v, Ok(serde_json::json!({"a":[1,2,{"b":null}],"c":"x"})));
    }

    #[test]
    fn t1_rejects_duplicate_keys_with_their_location() {
        let e = parse_strict(br#"{"a":{"b":1,"b":2}}"#, 32);
        assert_eq!(
            e,
            Err(JsonError::DuplicateKey {
                pointer: "/a".into(),
                key: "b".into()
            })
        );
        let e = parse_strict(br#"[{"x~/y":{"k":1,"k":1}}]"#, 32);
        assert_eq!(
            e,
            Err(JsonError::DuplicateKey {
                pointer: "/0/x~0~1y".into(),
                key: "k".into()
            })
        );
    }

    #[test]
    fn t1_rejects_nesting_beyond_the_limit() {
        let ok = format!("{}{}", "[".repeat(4), "]".repeat(4));
        assert!(parse_strict(ok.as_bytes(), 4).is_ok());
        let deep = format!("{}{}", "[".repeat(5), "]".repeat(5));
        assert_eq!(parse_strict(deep.as_bytes(), 4), Err(JsonError::TooDeep { max: 4 }));
        let very_deep = "[".repeat(100_000);
        assert_eq!(
            parse_strict(very_deep.as_bytes(), 32),
            Err(JsonError::TooDeep { max: 32 })
        );
        assert!(matches!(
            parse_strict(very_deep.as_bytes(), 1000),
            Err(JsonError::TooDeep { .. })
        ));
    }

    #[test]
    fn t1_rejects_invalid_utf8_and_trailing_garbage() {
        assert!(matches!(parse_strict(b"\"\xff\"", 32), Err(JsonError::Syntax { .. })));
        assert!(matches!(parse_strict(b"{} {}", 32), Err(JsonError::Syntax { .. })));
        assert!(matches!(parse_strict(b"", 32), Err(JsonError::Syntax { .. })));
    }

    proptest! {
        #[test]
        fn never_panics_and_agrees_with_serde_json_when_it_accepts(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = parse_strict(&bytes, 32) {
                let reference: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(v, reference);
            }
        }

        #[test]
        fn accepts_whatever_serde_json_writes(v in arb_json()) {
            let bytes = serde_json::to_vec(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parse_strict(&bytes, 64), Ok(v));
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
