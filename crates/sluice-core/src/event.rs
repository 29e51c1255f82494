//! Events: what a client sends ([`NewEvent`]) and what the store keeps ([`StoredEvent`]).

use crate::ids::{EventId, RequestId, SourceId};
use crate::payload::Payload;
use crate::tenant::Tenant;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use time::OffsetDateTime;

/// Why a string is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event type matches ^[a-z][a-z0-9_.-]{{0,127}}$")]
pub struct InvalidEventType;

/// An event type such as `order.created`: `^[a-z][a-z0-9_.-]{0,127}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    /// Parses an event type.
    pub fn parse(s: &str) -> Result<Self, InvalidEventType> {
        // The pattern by hand: every event pays for this check, and a regex match costs more
        // than the few byte comparisons it comes to.
        let b = s.as_bytes();
        let valid = matches!(b.first(), Some(b'a'..=b'z'))
            && b.len() <= 128
            && b.iter()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidEventType)
        }
    }

    /// The type as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated event as a client submitted it, before it has an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event type.
    pub event_type: EventType,
    /// The payload as sent, already checked against the type's schema if one is configured.
    pub data: Payload,
    /// When the event happened, if the client said so.
    pub occurred_at: Option<OffsetDateTime>,
    /// Who or what the event is about, if the client said so (at most [`MAX_SUBJECT_CHARS`]).
    pub subject: Option<String>,
    /// The webhook delivery that carried it, when it came through a source.
    pub webhook: Option<WebhookOrigin>,
    /// CloudEvents extension attributes, kept as sent (empty for other events).
    pub extensions: Extensions,
}

/// CloudEvents extension attributes by name: strings, booleans and integers (see
/// [`crate::cloudevents`]).
pub type Extensions = BTreeMap<String, Value>;

/// Which source and which provider delivery an event came from (R-2): the provider's delivery
/// id lets a tenant match a stored event to the provider's own delivery log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookOrigin {
    /// The source the delivery was posted to.
    pub source_id: SourceId,
    /// The provider's id for the delivery (1 to 256 visible ASCII characters).
    pub delivery_id: String,
}

/// The longest `subject`, in characters.
pub const MAX_SUBJECT_CHARS: usize = 256;

/// Why a string is not a subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a subject is 1 to 256 characters, none of them a control character")]
pub struct InvalidSubject;

/// Checks a `subject`: 1 to [`MAX_SUBJECT_CHARS`] characters, no control characters.
pub fn check_subject(s: &str) -> Result<(), InvalidSubject> {
    let n = s.chars().count();
    if n == 0 || n > MAX_SUBJECT_CHARS || s.chars().any(char::is_control) {
        return Err(InvalidSubject);
    }
    Ok(())
}

/// An event as the store keeps it and the query API returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredEvent {
    /// Time-ordered id.
    pub id: EventId,
    /// The owner; never shown across tenants.
    #[serde(skip_serializing)]
    pub tenant: Tenant,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The payload, as it was sent.
    pub data: Payload,
    /// When the event happened (the client's claim, or `received_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When the ingest step accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The request that carried it, for tracing one event through every log (R-1).
    pub request_id: RequestId,
    /// Who or what the event is about; absent when the client gave none (and on events stored
    /// before subjects existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The webhook delivery that carried it; absent for events sent with an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookOrigin>,
    /// The CloudEvents extension attributes it was sent with; absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: Extensions,
    /// The trace of the request that carried it (32 hex, W3C), to find the request's access log
    /// line and its process log line (R-1); absent when the request had none recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The event's place in its tenant's feed: assigned by the store when the event is stored,
    /// strictly increasing in the order events become readable, never reused (0 before then).
    #[serde(default)]
    pub seq: u64,
    /// When retention removes it from every read (its type's retention after `received_at`);
    /// absent on events stored before retention existed, which are kept.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// The `Idempotency-Key` of the request that carried it: deleting the event forgets that
    /// key's record, so a retry no longer answers with a deleted event's id. Never shown.
    #[serde(skip)]
    pub idempotency_key: Option<crate::ids::IdempotencyKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_follow_the_contract() {
        for ok in ["order.created", "a", "x_1-2.y"] {
            assert!(EventType::parse(ok).is_ok(), "{ok}");
        }
        let too_long = format!("a{}", "b".repeat(128));
        for bad in ["", "Order", "1a", "a b", "a\n", "a/b", too_long.as_str()] {
            assert_eq!(EventType::parse(bad), Err(InvalidEventType), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_type_check_agrees_with_the_contracts_pattern(s in "[a-zA-Z0-9_./ -]{0,3}[a-z0-9_.-]{0,130}") {
            let pattern = regex::Regex::new(r"^[a-z][a-z0-9_.-]{0,127}$").unwrap();
            proptest::prop_assert_eq!(EventType::parse(&s).is_ok(), pattern.is_match(&s));
        }
    }

    #[test]
    fn t1_subjects_are_bounded_and_printable() {
        for ok in ["user/42", "é", &"x".repeat(256), &"é".repeat(256)] {
            assert!(check_subject(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a\nb", "\u{0}", &"x".repeat(257)] {
            assert_eq!(check_subject(bad), Err(InvalidSubject), "{bad:?}");
        }
    }
}
