//! Input validation (T-1, E-2): untrusted request bytes in, [`NewEvent`]s or a list of violations out.
//!
//! Order matters: the size limit is enforced by the transport while reading; here the strict JSON
//! reader bounds depth and refuses duplicate keys before anything looks at the content; then each
//! event is parsed field by field, and its `data` checked against the type's JSON Schema, if any.
//! A batch is all or nothing: one bad event refuses the whole request.

use crate::event::{EventType, Extensions, NewEvent, check_subject};
use crate::json::{JsonError, check_strict, escape_pointer_token};
use crate::payload::Payload;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Limits on what one request may contain. Every one has a safe default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes (enforced while reading by the transport).
    pub max_body_bytes: usize,
    /// Deepest nesting of the whole body (the array of a batch counts as one level).
    pub max_depth: usize,
    /// Most events in one request.
    pub max_batch: usize,
    /// How far in the past `occurred_at` may be, in seconds.
    pub max_past_secs: u64,
    /// How far in the future `occurred_at` may be, in seconds (clock skew allowance).
    pub max_future_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_depth: 32,
            max_batch: 100,
            max_past_secs: 30 * 24 * 3600,
            max_future_secs: 5 * 60,
        }
    }
}

/// One reason an event was refused, located by a JSON Pointer into the request body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// RFC 6901 pointer into the request body.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The body is not acceptable JSON (syntax, depth, duplicate keys): 400.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The JSON is well formed but breaks the contract: 422.
    #[error("{} violation(s)", .0.len())]
    Invalid(Vec<Violation>),
}

/// Why a schema could not be compiled. Reading schema files is the host's job (`sluice-host`'s
/// `files`); this crate only compiles what it is handed.
#[derive(Debug, thiserror::Error)]
#[error("the schema for {event_type} is not a valid JSON Schema: {message}")]
pub struct SchemaError {
    /// The event type the schema is for.
    pub event_type: String,
    /// What the schema compiler said.
    pub message: String,
}

/// Compiled per-type JSON Schemas for event `data`.
#[derive(Default)]
pub struct Schemas {
    by_type: HashMap<EventType, jsonschema::Validator>,
    require: bool,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas")
            .field("types", &self.by_type.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Schemas {
    /// No schemas: any `data` is accepted.
    pub fn none() -> Self {
        Self::default()
    }

    /// Compiles one schema per `(type, schema)` pair.
    /// Remote `$ref`s are never fetched (the crate's `resolve-http` feature is off).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (EventType, Value)>) -> Result<Self, SchemaError> {
        let mut by_type = HashMap::new();
        for (t, schema) in pairs {
            let v = jsonschema::validator_for(&schema).map_err(|e| SchemaError {
                event_type: t.to_string(),
                message: e.to_string(),
            })?;
            by_type.insert(t, v);
        }
        Ok(Self {
            by_type,
            require: false,
        })
    }

    /// When set, an event whose type has no schema is refused.
    pub fn require_schema(mut self, require: bool) -> Self {
        self.require = require;
        self
    }

    /// How many types have a schema.
    pub fn len(&self) -> usize {
        self.by_type.len()
    }

    /// Whether no type has a schema.
    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// Checks `data` against `t`'s schema; `base` builds the event's pointer, only for a violation.
    /// The payload is read as a tree only here, and only for a type that has a schema.
    fn check(&self, t: &EventType, data: &Payload, base: impl Fn() -> String, out: &mut Vec<Violation>) {
        match self.by_type.get(t) {
            Some(v) => {
                let Some(data) = data.to_value() else {
                    out.push(Violation {
                        pointer: format!("{}/data", base()),
                        message: "nests too deep to check against the type's schema".into(),
                    });
                    return;
                };
                for e in v.iter_errors(&data).take(MAX_VIOLATIONS) {
                    let mut message = e.to_string();
                    truncate(&mut message, 200);
                    out.push(Violation {
                        pointer: format!("{}/data{}", base(), e.instance_path),
                        message,
                    });
                }
            }
            None if self.require => out.push(Violation {
                pointer: format!("{}/type", base()),
                message: "no schema is registered for this event type".into(),
            }),
            None => {}
        }
    }
}

pub(crate) const MAX_VIOLATIONS: usize = 50;

fn truncate(s: &mut String, max: usize) {
    if crate::text::truncate_at_char_boundary(s, max) {
        s.push('…');
    }
}

/// The shape of an accepted body: one event or a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// A single JSON object.
    One(NewEvent),
    /// A JSON array of events (all valid).
    Many(Vec<NewEvent>),
}

impl Submission {
    /// The events, in request order.
    pub fn events(&self) -> &[NewEvent] {
        match self {
            Submission::One(e) => std::slice::from_ref(e),
            Submission::Many(v) => v,
        }
    }

    /// The events by value, in request order, and whether the request held a single object.
    pub fn into_events(self) -> (Vec<NewEvent>, bool) {
        match self {
            Submission::One(e) => (vec![e], true),
            Submission::Many(v) => (v, false),
        }
    }
}

/// Validates request bodies against the limits and schemas.
#[derive(Debug, Default)]
pub struct Validator {
    limits: Limits,
    schemas: Schemas,
}

impl Validator {
    /// A validator with these limits and schemas.
    pub fn new(limits: Limits, schemas: Schemas) -> Self {
        Self { limits, schemas }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validates a whole request body received at `now`. The body is checked strictly once and
    /// then read only as far as each event's own members: `data` stays the slice of the body it
    /// was sent as (see [`crate::payload`]).
    pub fn parse_body(&self, body: &[u8], now: OffsetDateTime) -> Result<Submission, ValidationError> {
        let text = check_strict(body, self.limits.max_depth)?;
        let mut violations = Vec::new();
        let submission = match text.trim_start().as_bytes().first() {
            Some(b'{') => {
                let fields = read::<Members<'_>>(text)?;
                self.parse_members(fields, None, now, &mut violations, &NATIVE)
                    .map(Submission::One)
            }
            Some(b'[') => {
                let items = read::<Vec<&RawValue>>(text)?;
                if items.is_empty() {
                    violations.push(violation("", "a batch holds at least one event"));
                } else if items.len() > self.limits.max_batch {
                    violations.push(violation(
                        "",
                        &format!("a batch holds at most {} events", self.limits.max_batch),
                    ));
                }
                let mut events = Vec::with_capacity(items.len());
                if violations.is_empty() {
                    for (i, item) in items.into_iter().enumerate() {
                        let parsed = if item.get().starts_with('{') {
                            let fields = read::<Members<'_>>(item.get())?;
                            self.parse_members(fields, Some(i), now, &mut violations, &NATIVE)
                        } else {
                            violations.push(violation(&format!("/{i}"), NATIVE.not_an_object));
                            None
                        };
                        if let Some(e) = parsed {
                            events.push(e);
                        }
                        if violations.len() >= MAX_VIOLATIONS {
                            break;
                        }
                    }
                }
                Some(Submission::Many(events))
            }
            _ => {
                violations.push(violation("", "the body is an event object or an array of them"));
                None
            }
        };
        match submission {
            Some(s) if violations.is_empty() => Ok(s),
            _ => {
                violations.truncate(MAX_VIOLATIONS);
                Err(ValidationError::Invalid(violations))
            }
        }
    }

    /// Re-checks an event that came back from the queue: type and schema, but not the time window,
    /// which was judged at ingest.
    pub fn recheck(&self, t: &EventType, data: &Payload) -> Result<(), Vec<Violation>> {
        let mut out = Vec::new();
        self.schemas.check(t, data, String::new, &mut out);
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    /// One event object read as its members (each a slice of the body): the small ones are
    /// read as values, `data` is kept as sent.
    fn parse_members(
        &self,
        members: Members<'_>,
        index: Option<usize>,
        now: OffsetDateTime,
        out: &mut Vec<Violation>,
        shape: &Shape,
    ) -> Option<NewEvent> {
        let mut obj = Map::new();
        let mut data = None;
        for (name, raw) in members.0 {
            if name == "data" {
                data = Some(Payload::from_raw(raw));
            } else {
                // Already checked strictly, so reading it again cannot fail.
                let value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                obj.insert(name.into_owned(), value);
            }
        }
        self.parse_fields(obj, data, index, now, out, shape)
    }

    /// Parses one event object of the given [`Shape`]; `index` is its place in a batch.
    pub(crate) fn parse_event_as(
        &self,
        value: Value,
        index: Option<usize>,
        now: OffsetDateTime,
        out: &mut Vec<Violation>,
        shape: &Shape,
    ) -> Option<NewEvent> {
        let Value::Object(mut obj) = value else {
            let base = index.map_or_else(String::new, |i| format!("/{i}"));
            out.push(violation(&base, shape.not_an_object));
            return None;
        };
        let data = obj.remove("data").map(|d| Payload::from_value(&d));
        self.parse_fields(obj, data, index, now, out, shape)
    }

    /// The checks every shape shares, on an event's members other than `data`, and `data` apart.
    fn parse_fields(
        &self,
        mut obj: Map<String, Value>,
        data: Option<Payload>,
        index: Option<usize>,
        now: OffsetDateTime,
        out: &mut Vec<Violation>,
        shape: &Shape,
    ) -> Option<NewEvent> {
        // The event's pointer in the body ("" or "/3"), built only where a violation or a schema
        // check needs it: most events in a batch never do.
        let base = || index.map_or_else(String::new, |i| format!("/{i}"));
        let before = out.len();
        let mut extension_names = Vec::new();
        for key in obj.keys() {
            let known = matches!(key.as_str(), "type" | "data" | "subject") || key == shape.time;
            if known || shape.checked_elsewhere.contains(&key.as_str()) {
                continue;
            }
            if shape.extensions && crate::cloudevents::is_extension_name(key) {
                extension_names.push(key.clone());
            } else {
                out.push(violation(
                    &format!("{}/{}", base(), escape_pointer_token(key)),
                    (shape.unknown)(key),
                ));
            }
        }
        let mut extensions = Extensions::new();
        for name in extension_names {
            let at = || format!("{}/{}", base(), name);
            match obj.remove(&name).map(crate::cloudevents::check_extension) {
                None | Some(Ok(None)) => {}
                Some(Ok(Some(v))) if extensions.len() < crate::cloudevents::MAX_EXTENSIONS => {
                    extensions.insert(name, v);
                }
                Some(Ok(Some(_))) => out.push(violation(
                    &at(),
                    &format!(
                        "an event has at most {} extension attributes",
                        crate::cloudevents::MAX_EXTENSIONS
                    ),
                )),
                Some(Err(message)) => out.push(violation(&at(), message)),
            }
        }
        let event_type = match obj.get("type") {
            Some(Value::String(s)) => match EventType::parse(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    out.push(violation(&format!("{}/type", base()), &e.to_string()));
                    None
                }
            },
            Some(_) => {
                out.push(violation(&format!("{}/type", base()), "must be a string"));
                None
            }
            None => {
                out.push(violation(&format!("{}/type", base()), "is required"));
                None
            }
        };
        if data.is_none() {
            out.push(violation(&format!("{}/data", base()), "is required"));
        }
        let occurred_at = match obj.get(shape.time) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match OffsetDateTime::parse(s, &Rfc3339) {
                Ok(t) => {
                    let past = now - Duration::from_secs(self.limits.max_past_secs);
                    let future = now + Duration::from_secs(self.limits.max_future_secs);
                    if t < past || t > future {
                        out.push(violation(
                            &format!("{}/{}", base(), shape.time),
                            "is outside the accepted time window",
                        ));
                    }
                    Some(t.to_offset(time::UtcOffset::UTC))
                }
                Err(_) => {
                    out.push(violation(
                        &format!("{}/{}", base(), shape.time),
                        "must be an RFC 3339 date-time",
                    ));
                    None
                }
            },
            Some(_) => {
                out.push(violation(
                    &format!("{}/{}", base(), shape.time),
                    "must be an RFC 3339 date-time string",
                ));
                None
            }
        };
        let subject = match obj.remove("subject") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match check_subject(&s) {
                Ok(()) => Some(s),
                Err(e) => {
                    out.push(violation(&format!("{}/subject", base()), &e.to_string()));
                    None
                }
            },
            Some(_) => {
                out.push(violation(&format!("{}/subject", base()), "must be a string"));
                None
            }
        };
        if let (Some(t), Some(d)) = (&event_type, &data) {
            self.schemas.check(t, d, base, out);
        }
        match (event_type, data) {
            (Some(event_type), Some(data)) if out.len() == before => Some(NewEvent {
                event_type,
                data,
                occurred_at,
                subject,
                webhook: None,
                extensions,
            }),
            _ => None,
        }
    }
}

/// An object's members in order, each value the slice of the body it stands in.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key_seed(crate::json::Key)? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads a part of a body that already passed [`check_strict`]; an error here would be a fault
/// of the check, reported as the syntax error it would be.
fn read<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, JsonError> {
    serde_json::from_str(text).map_err(|e| JsonError::Syntax {
        line: e.line(),
        column: e.column(),
    })
}

/// How one kind of event object names its members: Sluice's own shape, or a CloudEvent.
pub(crate) struct Shape {
    /// The member holding the event's time.
    pub(crate) time: &'static str,
    /// Members the caller checks itself (the CloudEvents context attributes).
    pub(crate) checked_elsewhere: &'static [&'static str],
    /// Whether other members named like CloudEvents extension attributes are kept as
    /// extensions rather than refused.
    pub(crate) extensions: bool,
    /// The message for any other member.
    pub(crate) unknown: fn(&str) -> &'static str,
    /// The message when an item is not an object.
    pub(crate) not_an_object: &'static str,
}

/// Sluice's own shape: `{"type","data","occurred_at"?,"subject"?}`.
const NATIVE: Shape = Shape {
    time: "occurred_at",
    checked_elsewhere: &[],
    extensions: false,
    unknown: |_| "unknown field",
    not_an_object: "an event is a JSON object",
};

/// A violation at `pointer`.
pub(crate) fn violation(pointer: &str, message: &str) -> Violation {
    Violation {
        pointer: pointer.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn pointers(e: ValidationError) -> Vec<String> {
        match e {
            ValidationError::Invalid(v) => v.into_iter().map(|v| v.pointer).collect(),
            other => vec![format!("not a violation list: {other}")],
        }
    }

    #[test]
    fn accepts_one_event_and_a_batch() {
        let val = Validator::default();
        let one = val.parse_body(br#"{"type":"order.created","data":{"n":1}}"#, now());
        assert!(matches!(one, Ok(Submission::One(_))));
        let many = val.parse_body(
            br#"[{"type":"a","data":1},{"type":"b","data":null,"occurred_at":"2027-01-15T08:00:00Z"}]"#,
            now(),
        );
        match many {
            Ok(Submission::Many(v)) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn t1_reports_every_violation_by_pointer_and_refuses_the_whole_batch() {
        let val = Validator::default();
        let body =
            br#"[{"type":"ok","data":1},{"type":"Bad","data":1,"extra":true},{"data":1,"occurred_at":"yesterday"}]"#;
        let e = val.parse_body(body, now()).map(|_| ()).map_err(pointers);
        assert_eq!(
            e,
            Err(vec![
                "/1/extra".into(),
                "/1/type".into(),
                "/2/type".into(),
                "/2/occurred_at".into()
            ])
        );
    }

    #[test]
    fn t1_an_event_may_name_a_bounded_subject() {
        let val = Validator::default();
        match val.parse_body(br#"{"type":"a","data":1,"subject":"user/42"}"#, now()) {
            Ok(Submission::One(e)) => assert_eq!(e.subject.as_deref(), Some("user/42")),
            other => panic!("{other:?}"),
        }
        let long = json!({"type":"a","data":1,"subject":"x".repeat(257)}).to_string();
        for body in [
            long.as_str(),
            r#"{"type":"a","data":1,"subject":""}"#,
            r#"{"type":"a","data":1,"subject":7}"#,
        ] {
            assert_eq!(
                val.parse_body(body.as_bytes(), now()).map(|_| ()).map_err(pointers),
                Err(vec!["/subject".into()]),
                "{body}"
            );
        }
    }

    #[test]
    fn t1_refuses_times_outside_the_window() {
        let val = Validator::default();
        for t in ["2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"] {
            let body = json!({"type":"a","data":{},"occurred_at":t}).to_string();
            assert_eq!(
                val.parse_body(body.as_bytes(), now()).map(|_| ()).map_err(pointers),
                Err(vec!["/occurred_at".into()])
            );
        }
    }

    #[test]
    fn t1_refuses_empty_and_oversized_batches_and_scalars() {
        let val = Validator::new(
            Limits {
                max_batch: 2,
                ..Limits::default()
            },
            Schemas::none(),
        );
        for body in [
            "[]",
            r#"[{"type":"a","data":1},{"type":"a","data":1},{"type":"a","data":1}]"#,
            "42",
            "\"x\"",
        ] {
            assert_eq!(
                val.parse_body(body.as_bytes(), now()).map(|_| ()).map_err(pointers),
                Err(vec![String::new()]),
                "{body}"
            );
        }
    }

    #[test]
    fn t1_checks_data_against_the_type_schema() {
        let t = EventType::parse("order.created").map_err(|e| e.to_string());
        let schemas = Schemas::from_pairs([(
            t.clone().unwrap_or_else(|_| unreachable!()),
            json!({
                "type":"object","required":["amount"],"properties":{"amount":{"type":"integer","minimum":0}}
            }),
        )]);
        let val = Validator::new(
            Limits::default(),
            schemas.map_err(|e| e.to_string()).unwrap_or_default(),
        );
        assert!(
            val.parse_body(br#"{"type":"order.created","data":{"amount":3}}"#, now())
                .is_ok()
        );
        let e = val.parse_body(
            br#"[{"type":"other","data":1},{"type":"order.created","data":{"amount":-1}}]"#,
            now(),
        );
        assert_eq!(e.map(|_| ()).map_err(pointers), Err(vec!["/1/data/amount".into()]));
    }

    #[test]
    fn require_schema_refuses_unknown_types() {
        let val = Validator::new(Limits::default(), Schemas::none().require_schema(true));
        let e = val.parse_body(br#"{"type":"a","data":1}"#, now());
        assert_eq!(e.map(|_| ()).map_err(pointers), Err(vec!["/type".into()]));
    }

    #[test]
    fn t1_depth_counts_the_batch_array() {
        let val = Validator::new(
            Limits {
                max_depth: 3,
                ..Limits::default()
            },
            Schemas::none(),
        );
        assert!(val.parse_body(br#"[{"type":"a","data":{"x":1}}]"#, now()).is_ok());
        assert!(matches!(
            val.parse_body(br#"[{"type":"a","data":{"x":[1]}}]"#, now()),
            Err(ValidationError::Json(JsonError::TooDeep { max: 3 }))
        ));
    }
}
