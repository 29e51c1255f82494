//! A strict JSON reader for untrusted bytes.
//!
//! `serde_json` alone keeps the last of two duplicate keys and allows 128 levels of nesting. Both are
//! attack surface (T-1, E-2): a duplicate key lets two parsers in one pipeline disagree about what an
//! event says, and deep nesting costs stack and CPU downstream. This reader walks the bytes once
//! without building anything and rejects duplicate keys and anything deeper than a configured
//! limit, reporting where, as a JSON Pointer; what passes can then be read as a
//! [`serde_json::Value`] or borrowed as it stands.
//!
//! It also refuses numbers it could not give back as sent (data integrity): an integer beyond 64
//! bits, or a decimal that an IEEE 754 double does not hold exactly as written (say
//! `0.30000000000000000001`), would otherwise be stored rounded and read back changed. Such
//! values belong in a string. The check only runs over bodies that hold a non-integer number,
//! so integer-only bodies pay nothing for it.

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
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

struct State<'de> {
    failure: RefCell<Option<JsonError>>,
    max_depth: usize,
    /// Whether any number arrived as a float: a decimal, or an integer beyond 64 bits.
    saw_float: Cell<bool>,
    /// The keys of every object being walked, innermost last: one buffer for the whole body
    /// instead of a list per object (per-object lists were a tenth of the walk, in growing).
    keys: RefCell<Vec<Cow<'de, str>>>,
}

impl State<'_> {
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

/// Walks one JSON value without building it: every check of [`check_strict`], no tree.
struct Check<'s, 'de> {
    state: &'s State<'de>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Check<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Check<'_, '_> {
    fn deeper<E: serde::de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > self.state.max_depth {
            return Err(self.state.fail(JsonError::TooDeep {
                max: self.state.max_depth,
            }));
        }
        Ok(depth)
    }
}

impl<'de> Visitor<'de> for Check<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.state.saw_float.set(true);
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.deeper()?;
        let mut index = 0usize;
        loop {
            match seq.next_element_seed(Check {
                state: self.state,
                depth,
            }) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.state.prefix_pointer(&index.to_string());
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.deeper()?;
        let base = self.state.keys.borrow().len();
        let result = self.members(&mut map, depth, base);
        self.state.keys.borrow_mut().truncate(base);
        result
    }
}

impl<'de> Check<'_, 'de> {
    /// The members of one object, whose keys go on the shared stack above `base`. Keys borrow
    /// from the body unless they hold an escape; a few are compared in a list, a wide object's
    /// through a set.
    fn members<A: MapAccess<'de>>(&self, map: &mut A, depth: usize, base: usize) -> Result<(), A::Error> {
        let mut wide: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let repeated = if wide.is_empty() {
                let mut keys = self.state.keys.borrow_mut();
                if keys.len() - base < WIDE {
                    keys[base..].contains(&key)
                } else {
                    wide.extend(keys.drain(base..));
                    wide.contains(&key)
                }
            } else {
                wide.contains(&key)
            };
            if repeated {
                return Err(self.state.fail(JsonError::DuplicateKey {
                    pointer: String::new(),
                    key: key.into_owned(),
                }));
            }
            // No borrow of the stack is held here: the value's own objects push onto it.
            if let Err(e) = map.next_value_seed(Check {
                state: self.state,
                depth,
            }) {
                self.state.prefix_pointer(&key);
                return Err(e);
            }
            if wide.is_empty() {
                self.state.keys.borrow_mut().push(key);
            } else {
                wide.insert(key);
            }
        }
        Ok(())
    }
}

/// Objects with more members than this check for duplicates through a hash set.
const WIDE: usize = 16;

/// An object key, borrowed from the body where it can be.
pub(crate) struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Checks that `bytes` are one JSON document this system accepts: valid UTF-8 and syntax, no
/// duplicate key, nesting at most `max_depth` deep (an array or object at the top level is depth
/// 1), and every number one that comes back as sent. Builds nothing, so a body can be checked
/// once and its parts then borrowed as they stand (see [`crate::payload`]). Returns the text.
pub fn check_strict(bytes: &[u8], max_depth: usize) -> Result<&str, JsonError> {
    // UTF-8 once over the whole body, a word at a time, instead of string by string inside the
    // reader; the error then points where the reader would have.
    let Ok(text) = std::str::from_utf8(bytes) else {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        return match serde::de::IgnoredAny::deserialize(&mut de).and_then(|_| de.end()) {
            Err(e) => Err(syntax_or_depth(&e, max_depth)),
            Ok(()) => Err(JsonError::Syntax { line: 1, column: 1 }),
        };
    };
    let state = State {
        failure: RefCell::new(None),
        max_depth,
        saw_float: Cell::new(false),
        keys: RefCell::new(Vec::new()),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Check {
        state: &state,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match result {
        Ok(()) if state.saw_float.get() => check_numbers(bytes).map(|()| text),
        Ok(()) => Ok(text),
        Err(e) => {
            if let Some(f) = state.failure.into_inner() {
                return Err(f);
            }
            Err(syntax_or_depth(&e, max_depth))
        }
    }
}

/// A serde_json error as ours: its own recursion guard (128) can trip before our depth limit
/// when that is set higher.
fn syntax_or_depth(e: &serde_json::Error, max_depth: usize) -> JsonError {
    if e.to_string().starts_with("recursion limit exceeded") {
        return JsonError::TooDeep {
            max: max_depth.min(128),
        };
    }
    JsonError::Syntax {
        line: e.line(),
        column: e.column(),
    }
}

/// Parses `bytes` as one JSON document, refusing what [`check_strict`] refuses.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    check_strict(bytes, max_depth)?;
    serde_json::from_slice(bytes).map_err(|e| syntax_or_depth(&e, max_depth))
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
                let token = &bytes[start..i];
                if !plainly_exact(token) && !is_exact(std::str::from_utf8(token).unwrap_or_default()) {
                    let token = std::str::from_utf8(token).unwrap_or_default();
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

/// Whether the number literal `token` (valid JSON) is exact without parsing it: an integer of at
/// most 18 digits fits an `i64`, and a decimal of at most 15 significant digits (a double's
/// guaranteed decimal precision) with a modest exponent comes back as the same value, since no two
/// such decimals are close enough to share a double. Most numbers take this path; the rest are
/// judged by [`is_exact`].
fn plainly_exact(token: &[u8]) -> bool {
    let (mantissa, exponent) = match token.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(at) => (&token[..at], Some(&token[at + 1..])),
        None => (token, None),
    };
    let mut digits = 0usize;
    let mut leading = true;
    let mut fraction = false;
    for &b in mantissa {
        match b {
            b'.' => fraction = true,
            b'0' if leading => {}
            b'0'..=b'9' => {
                leading = false;
                digits += 1;
            }
            _ => {}
        }
    }
    // A short mantissa and at most two exponent digits keep the value well inside a double's
    // normal range (no leading zeros can push it towards subnormals).
    let modest = mantissa.len() <= 40;
    match exponent {
        None if !fraction => digits <= 18,
        None => digits <= 15 && modest,
        Some(e) => {
            let e = e.strip_prefix(b"+").or_else(|| e.strip_prefix(b"-")).unwrap_or(e);
            digits <= 15 && modest && !e.is_empty() && e.len() <= 2
        }
    }
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

    proptest! {
        #[test]
        fn a_number_judged_exact_without_parsing_is_exact(
            int in "-?(0|[1-9][0-9]{0,19})",
            frac in proptest::option::of("[0-9]{1,20}"),
            exp in proptest::option::of("[eE][+-]?[0-9]{1,3}"),
        ) {
            let token = format!("{int}{}{}", frac.map(|f| format!(".{f}")).unwrap_or_default(), exp.unwrap_or_default());
            if plainly_exact(token.as_bytes()) {
                prop_assert!(is_exact(&token), "{token}");
            }
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
