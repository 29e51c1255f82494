//! CloudEvents 1.0 in (T-1): the JSON event format (structured mode, one event or a batch) and
//! the HTTP binary mode's attributes, mapped onto [`NewEvent`]s by the same rules as Sluice's own
//! shape, and the `source` + `id` pair that identifies each event for deduplication.
//!
//! The mapping: `type` → the event type (the same type rule), `time` → `occurred_at` (the same
//! window), `data` → `data` (JSON only), `subject` → `subject`, extension attributes → the
//! event's `extensions`, kept as sent. `specversion` must be `"1.0"`; `id` and `source` are
//! non-empty strings that are not stored but make the idempotency key. What Sluice cannot store
//! is refused, never dropped (422 with a pointer to the attribute): `data_base64`, a
//! `datacontenttype` that is not JSON, `dataschema`, and an extension whose value is not one of
//! the CloudEvents type system's scalars Sluice keeps (a string of at most
//! [`MAX_EXTENSION_CHARS`] characters, a boolean, or an integer in the 32-bit range the spec
//! allows), or more than [`MAX_EXTENSIONS`] of them. An attribute whose value is `null` is
//! absent, as the JSON format says.

use crate::event::{NewEvent, StoredEvent};
use crate::ids::IdempotencyKey;
use crate::json::{escape_pointer_token, parse_strict};
use crate::validate::{MAX_VIOLATIONS, Shape, ValidationError, Validator, Violation, violation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The longest CloudEvents `id`, in characters.
pub const MAX_ID_CHARS: usize = 256;
/// The longest CloudEvents `source`, in characters.
pub const MAX_SOURCE_CHARS: usize = 1024;

/// The most extension attributes one event keeps.
pub const MAX_EXTENSIONS: usize = 32;
/// The longest string value of an extension attribute, in characters.
pub const MAX_EXTENSION_CHARS: usize = 1024;

/// Whether `name` is a CloudEvents attribute name: 1 to 20 lowercase ASCII letters or digits.
pub(crate) fn is_extension_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 20 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// An extension attribute's value as kept (`None` for `null`: absent), or why it cannot be.
pub(crate) fn check_extension(value: Value) -> Result<Option<Value>, &'static str> {
    const WHAT: &str = "an extension attribute is a string of at most 1024 characters (no control \
                        characters), a boolean, or an integer from -2147483648 to 2147483647";
    match value {
        Value::Null => Ok(None),
        Value::Bool(_) => Ok(Some(value)),
        Value::Number(ref n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => Ok(Some(value)),
        Value::String(ref s) if s.chars().count() <= MAX_EXTENSION_CHARS && !s.chars().any(char::is_control) => {
            Ok(Some(value))
        }
        _ => Err(WHAT),
    }
}

/// The context attributes checked here; `type`, `time`, `subject` and `data` are mapped by the
/// shared event rules.
const CONTEXT: &[&str] = &[
    "specversion",
    "id",
    "source",
    "datacontenttype",
    "data_base64",
    "dataschema",
];

const CLOUDEVENT: Shape = Shape {
    time: "time",
    checked_elsewhere: CONTEXT,
    extensions: true,
    unknown: |_| "not a CloudEvents attribute name (1 to 20 lowercase letters or digits)",
    not_an_object: "a CloudEvent is a JSON object",
};

/// What identifies one CloudEvent: its `source` and `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEventId {
    /// The `source` attribute.
    pub source: String,
    /// The `id` attribute.
    pub id: String,
}

/// Accepted CloudEvents: the events, whether the request held one (not a batch), and each
/// event's identity, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvents {
    /// The events, in request order.
    pub events: Vec<NewEvent>,
    /// Whether the request held one event (structured or binary mode), not a batch.
    pub single: bool,
    /// Each event's `source` and `id`.
    pub ids: Vec<CloudEventId>,
}

impl CloudEvents {
    /// The idempotency key the request's `source` + `id` pairs make: `ce_` and the SHA-256 (hex)
    /// of every pair, length-prefixed, in order. One event's key is its pair's; a batch's key is
    /// the whole batch's (and differs from any single event's), so the batch is the idempotent
    /// unit. Keys are kept per tenant.
    pub fn idempotency_key(&self) -> Option<IdempotencyKey> {
        let mut h = Sha256::new();
        h.update(if self.single {
            b"cloudevents/1.0 event\n".as_slice()
        } else {
            b"cloudevents/1.0 batch\n"
        });
        for p in &self.ids {
            for part in [&p.source, &p.id] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
        }
        IdempotencyKey::parse(&format!("ce_{}", crate::text::hex_digest(&h.finalize()))).ok()
    }

    /// A digest of what the request means (attributes and data, not its bytes), so a retry in
    /// another layout or mode is the same request and a changed event under the same pair is not.
    pub fn fingerprint(&self) -> String {
        let items: Vec<Value> = self
            .events
            .iter()
            .zip(&self.ids)
            .map(|(e, p)| {
                serde_json::json!([
                    p.source,
                    p.id,
                    e.event_type.as_str(),
                    e.occurred_at.map(|t| t.unix_timestamp_nanos().to_string()),
                    e.subject,
                    e.extensions,
                    e.data.to_value(),
                ])
            })
            .collect();
        let bytes = serde_json::to_vec(&items).unwrap_or_default();
        crate::text::hex_digest(&Sha256::digest(&bytes))
    }
}

impl Validator {
    /// One CloudEvent in the JSON event format (`application/cloudevents+json`).
    pub fn parse_cloudevent(&self, body: &[u8], now: OffsetDateTime) -> Result<CloudEvents, ValidationError> {
        let value = parse_strict(body, self.limits().max_depth)?;
        let mut out = Vec::new();
        let parsed = self.parse_one(value, None, now, &mut out);
        finish(parsed.map(|p| vec![p]), true, out)
    }

    /// A batch in the JSON batch format (`application/cloudevents-batch+json`): 1 to
    /// `max_batch` events, all or nothing.
    pub fn parse_cloudevent_batch(&self, body: &[u8], now: OffsetDateTime) -> Result<CloudEvents, ValidationError> {
        let value = parse_strict(body, self.limits().max_depth)?;
        let mut out = Vec::new();
        let Value::Array(items) = value else {
            out.push(violation("", "a CloudEvents batch is a JSON array of events"));
            return finish(None, false, out);
        };
        if items.is_empty() {
            out.push(violation("", "a batch holds at least one event"));
        } else if items.len() > self.limits().max_batch {
            out.push(violation(
                "",
                &format!("a batch holds at most {} events", self.limits().max_batch),
            ));
        }
        if !out.is_empty() {
            return finish(None, false, out);
        }
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            if let Some(p) = self.parse_one(item, Some(i), now, &mut out) {
                parsed.push(p);
            }
            if out.len() >= MAX_VIOLATIONS {
                break;
            }
        }
        finish(Some(parsed), false, out)
    }

    /// One CloudEvent in the HTTP binary mode: `attributes` are the `ce-*` headers (name without
    /// the prefix, lower case; value decoded), `body` the JSON `data` (the host checked that the
    /// content type is JSON). Violations point at the attribute as the structured form would
    /// hold it: `/type` for `ce-type`, `/data/...` inside the body.
    pub fn parse_cloudevent_binary(
        &self,
        attributes: &[(String, String)],
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<CloudEvents, ValidationError> {
        let mut obj = Map::new();
        for (name, value) in attributes {
            obj.insert(name.clone(), Value::String(value.clone()));
        }
        if !body.is_empty() {
            // The event object around the data counts one level, as in structured mode.
            let data = parse_strict(body, self.limits().max_depth.saturating_sub(1))?;
            obj.insert("data".into(), data);
        }
        let mut out = Vec::new();
        let parsed = self.parse_one(Value::Object(obj), None, now, &mut out);
        finish(parsed.map(|p| vec![p]), true, out)
    }

    fn parse_one(
        &self,
        value: Value,
        index: Option<usize>,
        now: OffsetDateTime,
        out: &mut Vec<Violation>,
    ) -> Option<(NewEvent, CloudEventId)> {
        let at = |name: &str| {
            let token = escape_pointer_token(name);
            index.map_or_else(|| format!("/{token}"), |i| format!("/{i}/{token}"))
        };
        let before = out.len();
        let mut identity = None;
        if let Value::Object(obj) = &value {
            match obj.get("specversion") {
                Some(Value::String(v)) if v == "1.0" => {}
                None | Some(Value::Null) => out.push(violation(&at("specversion"), "is required")),
                Some(_) => out.push(violation(&at("specversion"), "must be \"1.0\"")),
            }
            let id = required_string(obj, "id", MAX_ID_CHARS, &at, out);
            let source = required_string(obj, "source", MAX_SOURCE_CHARS, &at, out);
            match obj.get("datacontenttype") {
                None | Some(Value::Null) => {}
                Some(Value::String(ct)) if is_json_content_type(ct) => {}
                Some(_) => out.push(violation(
                    &at("datacontenttype"),
                    "only JSON data is stored: application/json or application/*+json",
                )),
            }
            if obj.get("data_base64").is_some_and(|v| !v.is_null()) {
                out.push(violation(
                    &at("data_base64"),
                    "binary data is not stored; send the event's data as JSON in data",
                ));
            }
            if obj.get("dataschema").is_some_and(|v| !v.is_null()) {
                out.push(violation(
                    &at("dataschema"),
                    "dataschema is not stored; data is checked against the type's configured schema",
                ));
            }
            if let (Some(source), Some(id)) = (source, id) {
                identity = Some(CloudEventId { source, id });
            }
        }
        let event = self.parse_event_as(value, index, now, out, &CLOUDEVENT);
        match (event, identity) {
            (Some(e), Some(i)) if out.len() == before => Some((e, i)),
            _ => None,
        }
    }
}

/// A stored event as a structured CloudEvent (JSON event format): `id` is the Sluice event id and
/// `source` the tenant's Sluice URI-reference `/sluice/tenants/<tenant>` (the original CloudEvent's
/// `id` and `source` are not stored), `time` is `occurred_at`, `data` is JSON.
pub fn to_structured(e: &StoredEvent) -> Value {
    let mut obj = Map::new();
    obj.insert("specversion".into(), "1.0".into());
    obj.insert("id".into(), e.id.to_string().into());
    obj.insert("source".into(), format!("/sluice/tenants/{}", e.tenant).into());
    obj.insert("type".into(), e.event_type.as_str().into());
    obj.insert(
        "time".into(),
        e.occurred_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
            .into(),
    );
    if let Some(subject) = &e.subject {
        obj.insert("subject".into(), subject.clone().into());
    }
    // Extension names never collide with the attributes above: those are checked as context
    // attributes on the way in.
    for (name, value) in &e.extensions {
        obj.entry(name.clone()).or_insert_with(|| value.clone());
    }
    // The event's place in its tenant's feed, as an extension of Sluice's own: a client's own
    // extension of that name (the contract keeps them as sent) is not overwritten.
    if e.seq > 0 {
        obj.entry(SEQ_EXTENSION.to_owned()).or_insert_with(|| e.seq.into());
    }
    obj.insert("datacontenttype".into(), "application/json".into());
    obj.insert("data".into(), e.data.to_value().unwrap_or(Value::Null));
    Value::Object(obj)
}

/// The extension attribute that carries a stored event's `seq` in its CloudEvent form.
pub const SEQ_EXTENSION: &str = "sluiceseq";

fn required_string(
    obj: &Map<String, Value>,
    name: &str,
    max_chars: usize,
    at: &impl Fn(&str) -> String,
    out: &mut Vec<Violation>,
) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) => {
            out.push(violation(&at(name), "is required"));
            None
        }
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n == 0 || n > max_chars || s.chars().any(char::is_control) {
                out.push(violation(
                    &at(name),
                    &format!("must be 1 to {max_chars} characters, none of them a control character"),
                ));
                None
            } else {
                Some(s.clone())
            }
        }
        Some(_) => {
            out.push(violation(&at(name), "must be a string"));
            None
        }
    }
}

/// Whether a `datacontenttype` names JSON: `application/json` or `application/*+json`, with any
/// parameters.
pub fn is_json_content_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|s| s.strip_suffix("+json"))
            .is_some_and(|s| !s.is_empty() && !s.contains('/'))
}

fn finish(
    parsed: Option<Vec<(NewEvent, CloudEventId)>>,
    single: bool,
    mut out: Vec<Violation>,
) -> Result<CloudEvents, ValidationError> {
    match parsed {
        Some(parsed) if out.is_empty() => {
            let (events, ids) = parsed.into_iter().unzip();
            Ok(CloudEvents { events, single, ids })
        }
        _ => {
            out.truncate(MAX_VIOLATIONS);
            Err(ValidationError::Invalid(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonError;
    use crate::validate::Limits;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn ce() -> Value {
        json!({
            "specversion": "1.0",
            "id": "A234-1234-1234",
            "source": "https://example.com/orders",
            "type": "com.example.order.created",
            "time": "2027-01-15T08:00:00Z",
            "subject": "order/42",
            "datacontenttype": "application/json",
            "data": {"amount": 42}
        })
    }

    fn pointers(r: Result<CloudEvents, ValidationError>) -> Vec<String> {
        match r {
            Err(ValidationError::Invalid(v)) => v.into_iter().map(|v| v.pointer).collect(),
            other => vec![format!("not a violation list: {other:?}")],
        }
    }

    fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut v = ce();
        if let Some(o) = v.as_object_mut() {
            f(o);
        }
        v.to_string().into_bytes()
    }

    #[test]
    fn a_structured_cloudevent_maps_onto_an_event() {
        let got = Validator::default().parse_cloudevent(&with(|_| {}), now());
        let Ok(ces) = got else { panic!("{got:?}") };
        assert!(ces.single);
        let e = &ces.events[0];
        assert_eq!(e.event_type.as_str(), "com.example.order.created");
        assert_eq!(e.data, json!({"amount": 42}));
        assert_eq!(e.subject.as_deref(), Some("order/42"));
        assert_eq!(
            e.occurred_at,
            OffsetDateTime::parse("2027-01-15T08:00:00Z", &time::format_description::well_known::Rfc3339).ok()
        );
        assert_eq!(
            ces.ids,
            vec![CloudEventId {
                source: "https://example.com/orders".into(),
                id: "A234-1234-1234".into()
            }]
        );
        // Null attributes are absent.
        let nulls = with(|o| {
            o.insert("time".into(), Value::Null);
            o.insert("subject".into(), Value::Null);
            o.insert("datacontenttype".into(), Value::Null);
        });
        assert!(Validator::default().parse_cloudevent(&nulls, now()).is_ok());
    }

    #[test]
    fn t1_every_cloudevent_refusal_points_at_its_attribute() {
        let val = Validator::default();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                with(|o| drop(o.insert("specversion".into(), json!("0.3")))),
                "/specversion",
            ),
            (with(|o| drop(o.remove("specversion"))), "/specversion"),
            (with(|o| drop(o.insert("id".into(), json!("")))), "/id"),
            (with(|o| drop(o.insert("id".into(), json!(7)))), "/id"),
            (with(|o| drop(o.remove("source"))), "/source"),
            (
                with(|o| drop(o.insert("source".into(), json!("s".repeat(1025))))),
                "/source",
            ),
            (with(|o| drop(o.insert("type".into(), json!("Com.Example")))), "/type"),
            (
                with(|o| drop(o.insert("time".into(), json!("2020-01-01T00:00:00Z")))),
                "/time",
            ),
            (with(|o| drop(o.insert("time".into(), json!("yesterday")))), "/time"),
            (
                with(|o| drop(o.insert("subject".into(), json!("x".repeat(257))))),
                "/subject",
            ),
            (
                with(|o| drop(o.insert("datacontenttype".into(), json!("text/xml")))),
                "/datacontenttype",
            ),
            (
                with(|o| {
                    o.remove("data");
                    o.insert("data_base64".into(), json!("AAEC"));
                }),
                "/data_base64",
            ),
            (
                with(|o| drop(o.insert("dataschema".into(), json!("https://x/s.json")))),
                "/dataschema",
            ),
            (
                with(|o| drop(o.insert("traceparent".into(), json!({"v": "00-ab"})))),
                "/traceparent",
            ),
            (with(|o| drop(o.insert("ratio".into(), json!(0.5)))), "/ratio"),
            (with(|o| drop(o.insert("big".into(), json!(2_147_483_648_i64)))), "/big"),
            (with(|o| drop(o.insert("tags".into(), json!(["a"])))), "/tags"),
            (
                with(|o| drop(o.insert("long".into(), json!("x".repeat(1025))))),
                "/long",
            ),
            (with(|o| drop(o.insert("ctl".into(), json!("a\u{7}b")))), "/ctl"),
            (with(|o| drop(o.insert("Bad-Name".into(), json!(1)))), "/Bad-Name"),
            (with(|o| drop(o.remove("data"))), "/data"),
        ];
        for (body, pointer) in cases {
            let got = pointers(val.parse_cloudevent(&body, now()));
            assert!(got.iter().any(|p| p == pointer), "{pointer}: {got:?}");
        }
        assert_eq!(pointers(val.parse_cloudevent(b"[1]", now())), vec![String::new()]);
    }

    #[test]
    fn extension_attributes_are_kept_as_sent_and_count_in_the_fingerprint() {
        let val = Validator::default();
        let body = with(|o| {
            o.insert(
                "traceparent".into(),
                json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            );
            o.insert("partitionkey".into(), json!("p1"));
            o.insert("sampled".into(), json!(true));
            o.insert("sequence".into(), json!(-2_147_483_648_i64));
            o.insert("gone".into(), Value::Null);
        });
        let got = val.parse_cloudevent(&body, now());
        let Ok(ces) = got else { panic!("{got:?}") };
        let ext = &ces.events[0].extensions;
        assert_eq!(ext.len(), 4, "{ext:?}");
        assert_eq!(ext["sampled"], json!(true));
        assert_eq!(ext["sequence"], json!(-2_147_483_648_i64));
        assert!(!ext.contains_key("gone"), "null is absent");
        let plain = val.parse_cloudevent(&with(|_| {}), now()).unwrap();
        assert!(plain.events[0].extensions.is_empty());
        assert_ne!(
            ces.fingerprint(),
            plain.fingerprint(),
            "a changed extension is another event"
        );
        assert_eq!(ces.idempotency_key(), plain.idempotency_key(), "same source and id");
        // Binary mode: every ce-* header that is not a context attribute is an extension.
        let attrs: Vec<(String, String)> = [
            ("specversion", "1.0"),
            ("id", "b-1"),
            ("source", "/s"),
            ("type", "a.b"),
            ("myext", "v"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let bin = val.parse_cloudevent_binary(&attrs, b"1", now()).unwrap();
        assert_eq!(bin.events[0].extensions["myext"], json!("v"));
        // At most MAX_EXTENSIONS.
        let many = with(|o| {
            for i in 0..=MAX_EXTENSIONS {
                o.insert(format!("x{i}"), json!(i));
            }
        });
        assert_eq!(pointers(val.parse_cloudevent(&many, now())).len(), 1);
    }

    #[test]
    fn a_stored_events_extensions_come_back_as_attributes() {
        let now = now();
        let e = StoredEvent {
            trace_id: None,
            seq: 0,
            expires_at: None,
            idempotency_key: None,
            id: crate::ids::EventId::new_at(now),
            tenant: crate::tenant::Tenant::parse("acme").unwrap(),
            event_type: crate::event::EventType::parse("a.b").unwrap(),
            data: json!(1).into(),
            occurred_at: now,
            received_at: now,
            request_id: crate::ids::RequestId::parse("r-1").unwrap(),
            subject: None,
            webhook: None,
            extensions: crate::event::Extensions::from([("traceparent".into(), json!("00-1")), ("n".into(), json!(2))]),
        };
        let ce = to_structured(&e);
        assert_eq!((ce["traceparent"].clone(), ce["n"].clone()), (json!("00-1"), json!(2)));
        assert_eq!(ce["specversion"], "1.0");
        assert!(ce.get(SEQ_EXTENSION).is_none(), "an event not stored yet has no seq");
        // A stored event carries its feed position; a client's own `sluiceseq` is kept as sent.
        let stored = StoredEvent { seq: 7, ..e.clone() };
        assert_eq!(to_structured(&stored)[SEQ_EXTENSION], json!(7));
        let mut theirs = stored.clone();
        theirs.extensions.insert(SEQ_EXTENSION.into(), json!("mine"));
        assert_eq!(to_structured(&theirs)[SEQ_EXTENSION], json!("mine"));
    }

    #[test]
    fn t1_a_cloudevents_batch_is_bounded_and_all_or_nothing() {
        let val = Validator::new(
            Limits {
                max_batch: 2,
                ..Limits::default()
            },
            crate::validate::Schemas::none(),
        );
        let one = ce();
        let mut two = ce();
        two["id"] = json!("second");
        let ok = val.parse_cloudevent_batch(json!([one, two]).to_string().as_bytes(), now());
        let Ok(ces) = ok else { panic!("{ok:?}") };
        assert!(!ces.single);
        assert_eq!(ces.events.len(), 2);
        let mut bad = ce();
        bad["type"] = json!("Bad");
        assert_eq!(
            pointers(val.parse_cloudevent_batch(json!([ce(), bad]).to_string().as_bytes(), now())),
            vec!["/1/type".to_owned()]
        );
        for body in ["[]".to_owned(), json!([ce(), ce(), ce()]).to_string(), ce().to_string()] {
            assert_eq!(
                pointers(val.parse_cloudevent_batch(body.as_bytes(), now())),
                vec![String::new()]
            );
        }
    }

    #[test]
    fn t1_binary_mode_reads_attributes_and_json_data_strictly() {
        let val = Validator::default();
        let attrs = |extra: &[(&str, &str)]| {
            let mut v: Vec<(String, String)> = [
                ("specversion", "1.0"),
                ("id", "1"),
                ("source", "/orders"),
                ("type", "order.created"),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
            v.dedup();
            v
        };
        let got = val.parse_cloudevent_binary(&attrs(&[("subject", "u/1")]), br#"{"amount":1}"#, now());
        let Ok(ces) = got else { panic!("{got:?}") };
        assert_eq!(ces.events[0].subject.as_deref(), Some("u/1"));
        assert_eq!(ces.events[0].data, json!({"amount": 1}));
        assert_eq!(
            pointers(val.parse_cloudevent_binary(&attrs(&[("my_ext", "x")]), b"1", now())),
            vec!["/my_ext".to_owned()]
        );
        assert_eq!(
            pointers(val.parse_cloudevent_binary(&attrs(&[]), b"", now())),
            vec!["/data".to_owned()]
        );
        assert!(matches!(
            val.parse_cloudevent_binary(&attrs(&[]), br#"{"a":1,"a":2}"#, now()),
            Err(ValidationError::Json(JsonError::DuplicateKey { .. }))
        ));
    }

    #[test]
    fn a_stored_event_reads_back_as_a_structured_cloudevent() {
        let at = now();
        let e = StoredEvent {
            trace_id: None,
            seq: 0,
            expires_at: None,
            idempotency_key: None,
            id: crate::ids::EventId::new_at(at),
            tenant: crate::tenant::Tenant::parse("acme").unwrap_or_else(|_| unreachable!()),
            event_type: crate::event::EventType::parse("order.created").unwrap_or_else(|_| unreachable!()),
            data: json!({"amount": 1}).into(),
            occurred_at: at,
            received_at: at,
            request_id: crate::ids::RequestId::generate(),
            subject: Some("order/1".into()),
            webhook: None,
            extensions: Default::default(),
        };
        let ce = to_structured(&e);
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], e.id.to_string());
        assert_eq!(ce["source"], "/sluice/tenants/acme");
        assert_eq!(ce["type"], "order.created");
        assert_eq!(ce["subject"], "order/1");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["data"], json!({"amount": 1}));
        // What it renders is a CloudEvent Sluice itself accepts.
        let back = Validator::default().parse_cloudevent(ce.to_string().as_bytes(), at);
        assert!(back.is_ok(), "{back:?}");
    }

    #[test]
    fn s5_source_and_id_make_a_stable_key_and_a_batch_is_one_unit() {
        let val = Validator::default();
        let a = val.parse_cloudevent(&with(|_| {}), now()).ok();
        // The same event laid out differently is the same request.
        let pretty = serde_json::to_vec_pretty(&ce()).unwrap_or_default();
        let b = val.parse_cloudevent(&pretty, now()).ok();
        let (Some(a), Some(b)) = (a, b) else { panic!() };
        assert_eq!(a.idempotency_key(), b.idempotency_key());
        assert_eq!(a.fingerprint(), b.fingerprint());
        let other_source = val
            .parse_cloudevent(&with(|o| drop(o.insert("source".into(), json!("/elsewhere")))), now())
            .ok();
        let changed = val
            .parse_cloudevent(&with(|o| drop(o.insert("data".into(), json!(1)))), now())
            .ok();
        let (Some(c), Some(d)) = (other_source, changed) else {
            panic!()
        };
        assert_ne!(a.idempotency_key(), c.idempotency_key());
        assert_eq!(a.idempotency_key(), d.idempotency_key());
        assert_ne!(a.fingerprint(), d.fingerprint());
        let batch = val
            .parse_cloudevent_batch(json!([ce()]).to_string().as_bytes(), now())
            .ok();
        assert!(batch.is_some_and(|b| b.idempotency_key() != a.idempotency_key()));
    }
}
