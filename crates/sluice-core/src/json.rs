//! A strict JSON reader for untrusted bytes.
//!
//! `serde_json` alone keeps the last of two duplicate keys and allows 128 levels of nesting. Both are
//! attack surface (T-1, E-2): a duplicate key lets two parsers in one pipeline disagree about what an
//! event says, and deep nesting costs stack and CPU downstream. This reader builds the same
//! [`serde_json::Value`] but rejects duplicate keys and anything deeper than a configured limit,
//! reporting where, as a JSON Pointer.
//!
//! It also refuses numbers it could not give back as sent (data integrity): an integer beyond 64
//! bits, or a decimal that an IEEE 754 double does not hold exactly as written (say
//! `0.30000000000000000001`), would otherwise be stored rounded and read back changed. Such
//! values belong in a string. The check only runs over bodies that hold a non-integer number,
//! so integer-only bodies pay nothing for it.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::{Cell, RefCell};
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
    /// A number that would not come back as sent.
    #[error(
        "the number {number} cannot be stored exactly: integers must fit in 64 bits and decimals in a double (IEEE 754); send it as a string"
    )]
    InexactNumber {
        /// The number as sent (at most its first 40 characters).
        number: String,
    },
}

/// Escapes one JSON Pointer reference token (RFC 6901).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

struct State {
    failure: RefCell<Option<JsonError>>,
    max_depth: usize,
    /// Whether any number arrived as a float: a decimal, or an integer beyond 64 bits.
    saw_float: Cell<bool>,
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
        self.state.saw_float.set(true);
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
        saw_float: Cell::new(false),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = Seed {
        state: &state,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) if state.saw_float.get() => check_numbers(bytes).map(|()| v),
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

/// Refuses any number literal in `bytes` (valid JSON) that would not come back as sent.
fn check_numbers(bytes: &[u8]) -> Result<(), JsonError> {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string; an escaped quote does not end it.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                let token = std::str::from_utf8(&bytes[start..i]).unwrap_or_default();
                if !is_exact(token) {
                    let mut number = token.to_owned();
                    crate::text::truncate_at_char_boundary(&mut number, 40);
                    return Err(JsonError::InexactNumber { number });
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Whether the number literal `token` survives the round trip through `serde_json::Value`: an
/// integer that fits in an `i64` or `u64`, or a decimal whose double prints as the same value.
fn is_exact(token: &str) -> bool {
    let integer = !token.contains(['.', 'e', 'E']);
    if integer {
        return token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok();
    }
    let Ok(parsed) = token.parse::<f64>() else {
        return false;
    };
    let Some(printed) = serde_json::Number::from_f64(parsed) else {
        return false;
    };
    match (decimal(token), decimal(&printed.to_string())) {
        (Some(sent), Some(kept)) => sent == kept,
        _ => false,
    }
}

/// A decimal literal as (negative, significant digits, exponent): `-1.50e2` is `(true, "15", 1)`.
/// Zero is `(false, "", 0)` whatever its sign, as `-0.0 == 0.0`.
fn decimal(token: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let mut exponent = exponent.checked_sub(i64::try_from(frac.len()).ok()?)?;
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    exponent = exponent.checked_add(i64::try_from(significant.len() - trimmed.len()).ok()?)?;
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, trimmed.to_owned(), exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn t1_numbers_that_would_come_back_changed_are_refused() {
        for ok in [
            "0",
            "-0",
            "1.5",
            "1.50",
            "-2.25e3",
            "0.1",
            "1e300",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "1E5",
            "0.30000000000000004",
            "-0.0",
        ] {
            let body = format!("{{\"n\":{ok},\"s\":\"1.0000000000000000000001\"}}");
            assert!(parse_strict(body.as_bytes(), 8).is_ok(), "{ok}");
        }
        for bad in [
            "123456789012345678901234567890",
            "18446744073709551616",
            "-9223372036854775809",
            "0.30000000000000000001",
            "3.141592653589793238462643383279",
            "1.00000000000000000000000000001e5",
        ] {
            let body = format!("[1.5, {{\"n\":{bad}}}]");
            match parse_strict(body.as_bytes(), 8) {
                Err(JsonError::InexactNumber { number }) => assert!(bad.starts_with(&number), "{number}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        // Integers alone take the fast path and are exact by construction.
        assert!(parse_strict(b"[1,2,-3]", 8).is_ok());
    }

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
