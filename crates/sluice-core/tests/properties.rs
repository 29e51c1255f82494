//! Property tests (bad-input fuzzing without nightly) of the three decoders that face untrusted
//! bytes: the request validator (T-1, D-5), the envelope decoder (T-4) and the cursor decoder (T-5).
//!
//! Each property runs `PROPTEST_CASES` cases (default [`DEFAULT_CASES`]), counts the cases it
//! actually executed, prints the count and appends it to `<target>/tmp/proptest-executions.log`,
//! so CI can report how much fuzzing ran.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use sluice_core::cursor::{CursorCodec, CursorError};
use sluice_core::envelope::{Envelope, EnvelopeError, Sealer, SigningKey, VERSION, attr};
use sluice_core::json::JsonError;
use sluice_core::ports::MessageAttributes;
use sluice_core::validate::{Limits, Schemas, Submission, ValidationError, Validator};
use sluice_core::{EventId, EventType, RequestId, Tenant};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 4096;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Runs `test` over `strategy` for the configured number of cases, fails on the first
/// counter-example (shrunk), and records how many cases ran.
fn run<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let executed = AtomicU64::new(0);
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        executed.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    let n = executed.load(Ordering::Relaxed);
    let line = format!("{name}: {n} cases executed");
    println!("{line}");
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("proptest-executions.log");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{line}");
    }
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    assert!(n >= u64::from(cases()), "{name}: only {n} cases ran");
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn validator() -> Validator {
    Validator::new(Limits::default(), Schemas::none())
}

/// Arbitrary JSON values, nested at most `depth` levels.
fn arb_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Every finite float must come back bit for bit (serde_json's `float_roundtrip` is on).
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        // Control characters, quotes, backslashes, line separators.
        "[\\x00-\\x1f\"\\\\\u{2028}\u{2029}\u{7f}]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_type() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,40}"
}

/// A valid event as a client would send it.
fn arb_event() -> impl Strategy<Value = Value> {
    (arb_type(), arb_json(4), proptest::option::of(-2_000_000i64..200)).prop_map(|(t, data, offset)| {
        let mut e = json!({"type": t, "data": data});
        if let Some(secs) = offset {
            let at = now() + time::Duration::seconds(secs);
            e["occurred_at"] = json!(at.format(&time::format_description::well_known::Rfc3339).unwrap());
        }
        e
    })
}

#[test]
fn t1_validator_never_panics_on_arbitrary_bytes() {
    let v = validator();
    run(
        "t1_validator_never_panics_on_arbitrary_bytes",
        proptest::collection::vec(any::<u8>(), 0..1024),
        |bytes| {
            if let Ok(s) = v.parse_body(&bytes, now()) {
                // Whatever it accepts is JSON serde_json agrees with, and an event or a batch.
                let reference: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| TestCaseError::fail(format!("accepted non-JSON: {e}")))?;
                prop_assert!(reference.is_object() || reference.is_array());
                prop_assert!(!s.events().is_empty());
            }
            Ok(())
        },
    );
}

#[test]
fn t1_validator_never_panics_on_mutated_json() {
    let v = validator();
    let strategy = (
        proptest::collection::vec(arb_event(), 1..4),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0..3u8,
    );
    run(
        "t1_validator_never_panics_on_mutated_json",
        strategy,
        |(events, at, byte, op)| {
            let mut bytes = serde_json::to_vec(&events).unwrap();
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => {
                    bytes.remove(i);
                }
            }
            let _ = v.parse_body(&bytes, now());
            Ok(())
        },
    );
}

#[test]
fn t1_valid_events_are_accepted_exactly_as_sent() {
    let v = validator();
    run(
        "t1_valid_events_are_accepted_exactly_as_sent",
        proptest::collection::vec(arb_event(), 1..5),
        |events| {
            let body = serde_json::to_vec(&events).unwrap();
            let s = v
                .parse_body(&body, now())
                .map_err(|e| TestCaseError::fail(format!("refused a valid batch: {e:?}")))?;
            prop_assert!(matches!(s, Submission::Many(_)));
            prop_assert_eq!(s.events().len(), events.len());
            for (got, sent) in s.events().iter().zip(&events) {
                prop_assert_eq!(got.event_type.as_str(), sent["type"].as_str().unwrap());
                prop_assert_eq!(&got.data, &sent["data"]);
            }
            Ok(())
        },
    );
}

#[test]
fn t1_a_duplicate_key_at_any_depth_is_always_refused() {
    let v = validator();
    run(
        "t1_a_duplicate_key_at_any_depth_is_always_refused",
        (arb_type(), 0usize..20, "[a-z]{1,8}"),
        |(t, depth, key)| {
            // {"type":t,"data":{"x":{"x":...{key:1,key:2}...}}}
            let inner = format!("{{\"{key}\":1,\"{key}\":2}}");
            let data = (0..depth).fold(inner, |acc, _| format!("{{\"x\":{acc}}}"));
            let body = format!("{{\"type\":\"{t}\",\"data\":{data}}}");
            match v.parse_body(body.as_bytes(), now()) {
                Err(ValidationError::Json(JsonError::DuplicateKey { key: k, .. })) => prop_assert_eq!(k, key),
                other => prop_assert!(false, "accepted a duplicate key: {:?}", other),
            }
            Ok(())
        },
    );
}

#[test]
fn d5_nesting_is_refused_exactly_beyond_the_limit() {
    let v = validator();
    let max = Limits::default().max_depth;
    run(
        "d5_nesting_is_refused_exactly_beyond_the_limit",
        (1usize..300, proptest::collection::vec(any::<bool>(), 300)),
        |(depth, kinds)| {
            // `data` sits at depth 1 of the event object; build `depth` more levels under it.
            let mut open = String::new();
            let mut close = String::new();
            for is_array in kinds.iter().take(depth) {
                if *is_array {
                    open.push('[');
                    close.insert(0, ']');
                } else {
                    open.push_str("{\"k\":");
                    close.insert(0, '}');
                }
            }
            let body = format!("{{\"type\":\"a\",\"data\":{open}1{close}}}");
            let r = v.parse_body(body.as_bytes(), now());
            if depth < max {
                prop_assert!(r.is_ok(), "depth {} refused: {:?}", depth, r);
            } else {
                prop_assert!(
                    matches!(r, Err(ValidationError::Json(JsonError::TooDeep { .. }))),
                    "depth {} not refused as too deep: {:?}",
                    depth,
                    r
                );
            }
            Ok(())
        },
    );
}

#[test]
fn d5_wide_documents_parse_in_bounded_time() {
    let v = validator();
    run(
        "d5_wide_documents_parse_in_bounded_time",
        (1usize..2000, any::<bool>()),
        |(width, object)| {
            let data = if object {
                let members: Vec<String> = (0..width).map(|i| format!("\"k{i}\":{i}")).collect();
                format!("{{{}}}", members.join(","))
            } else {
                format!("[{}]", vec!["0"; width].join(","))
            };
            let body = format!("{{\"type\":\"a\",\"data\":{data}}}");
            let started = std::time::Instant::now();
            let r = v.parse_body(body.as_bytes(), now());
            prop_assert!(r.is_ok());
            prop_assert!(started.elapsed() < std::time::Duration::from_secs(2));
            Ok(())
        },
    );
}

fn sealer() -> Sealer {
    Sealer::new(vec![SigningKey::new("k1", vec![7; 32]).unwrap()], 32).unwrap()
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        "[a-z0-9][a-z0-9_-]{0,20}",
        arb_type(),
        arb_json(3),
        "[A-Za-z0-9._:-]{1,40}",
        proptest::option::of("[0-9.:a-f]{1,39}"),
    )
        .prop_map(|(tenant, t, data, rid, ip)| Envelope {
            traceparent: None,
            idempotency_key: None,
            v: VERSION,
            id: EventId::new_at(now()),
            tenant: Tenant::parse(&tenant).unwrap(),
            event_type: EventType::parse(&t).unwrap(),
            data: data.into(),
            occurred_at: now(),
            received_at: now(),
            request_id: RequestId::parse(&rid).unwrap(),
            source_ip: ip,
            subject: None,
            webhook: None,
            extensions: Default::default(),
        })
}

#[test]
fn t4_any_change_to_a_sealed_envelope_is_refused() {
    let s = sealer();
    run(
        "t4_any_change_to_a_sealed_envelope_is_refused",
        (arb_envelope(), any::<prop::sample::Index>(), 1u8..=255),
        |(env, at, xor)| {
            let m = s.seal(&env).unwrap();
            let opened = s.open_parts(&m.body, &m.attributes);
            prop_assert_eq!(opened.as_ref(), Ok(&env));
            let mut bytes = m.body.clone().into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            // A change that breaks UTF-8 cannot even be a queue message body.
            let Ok(tampered) = String::from_utf8(bytes) else {
                return Ok(());
            };
            prop_assert_eq!(s.open_parts(&tampered, &m.attributes), Err(EnvelopeError::BadSignature));
            Ok(())
        },
    );
}

#[test]
fn t4_the_envelope_decoder_refuses_arbitrary_messages_without_panicking() {
    let s = sealer();
    let attrs = proptest::collection::btree_map(
        prop_oneof![
            Just(attr::SIGNATURE.to_owned()),
            Just(attr::SIGNATURE_KID.to_owned()),
            "[a-z_]{1,12}"
        ],
        prop_oneof![Just("k1".to_owned()), "[0-9a-f]{0,80}", "\\PC{0,20}"],
        0..5,
    );
    run(
        "t4_the_envelope_decoder_refuses_arbitrary_messages_without_panicking",
        ("\\PC{0,300}", attrs),
        |(body, attributes): (String, MessageAttributes)| {
            // Without the key, nothing verifies: the chance of guessing a 256-bit tag is nil.
            prop_assert!(s.open_parts(&body, &attributes).is_err());
            Ok(())
        },
    );
}

#[test]
fn t5_cursors_cannot_be_forged_altered_or_moved_to_another_query() {
    let codec = CursorCodec::new(vec![3; 32]);
    let acme = Tenant::parse("acme").unwrap();
    run(
        "t5_cursors_cannot_be_forged_altered_or_moved_to_another_query",
        (
            "[a-z0-9][a-z0-9_-]{0,20}",
            proptest::option::of(arb_type()),
            any::<prop::sample::Index>(),
            "[A-Za-z0-9_.-]",
            "\\PC{0,200}",
        ),
        |(tenant, ty, at, replacement, junk)| {
            let tenant = Tenant::parse(&tenant).unwrap();
            let ty = ty.map(|t| EventType::parse(&t).unwrap());
            let id = EventId::new_at(now());
            let c = codec.encode(&tenant, ty.as_ref(), &id).unwrap();
            prop_assert_eq!(codec.decode(&tenant, ty.as_ref(), &c), Ok(id));
            // Any other tenant or filter: refused.
            if tenant != acme {
                prop_assert_eq!(codec.decode(&acme, ty.as_ref(), &c), Err(CursorError::Mismatch));
            }
            let other_ty = EventType::parse("zz.other").unwrap();
            if ty.as_ref() != Some(&other_ty) {
                prop_assert_eq!(codec.decode(&tenant, Some(&other_ty), &c), Err(CursorError::Mismatch));
            }
            // Any one-character change, truncation or arbitrary string: refused.
            let i = at.index(c.len());
            let mut altered = c.clone();
            altered.replace_range(i..=i, &replacement);
            if altered != c {
                prop_assert!(codec.decode(&tenant, ty.as_ref(), &altered).is_err(), "{altered}");
            }
            prop_assert!(codec.decode(&tenant, ty.as_ref(), &c[..i]).is_err());
            if junk != c {
                prop_assert!(codec.decode(&tenant, ty.as_ref(), &junk).is_err());
            }
            Ok(())
        },
    );
}
