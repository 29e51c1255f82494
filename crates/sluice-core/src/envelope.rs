//! The envelope: what one accepted event looks like inside the queue.
//!
//! The ingest step seals each envelope with an HMAC-SHA256 over its exact body bytes; the process
//! step opens it and refuses anything whose signature does not verify (T-2: never trust the queue).
//! Source metadata travels both inside the signed body and as message attributes, so a message in
//! the dead-letter queue can be attributed without decoding it (R-2).

use crate::event::{EventType, Extensions, WebhookOrigin};
use crate::ids::{EventId, RequestId};
use crate::json::check_strict;
use crate::payload::Payload;
use crate::ports::{MessageAttributes, OutgoingMessage, ReceivedMessage};
use crate::tenant::Tenant;
use crate::text::hex_digest;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use time::OffsetDateTime;

/// The current envelope format version.
pub const VERSION: u8 = 1;

/// Message attribute names. SQS allows at most 10 attributes: a sealed message has at most 8,
/// leaving room for the two the dead-letter path adds. (No digest of the body: `signature`
/// already binds it, and the slot is better spent on [`attr::WEBHOOK`].)
pub mod attr {
    /// The request id.
    pub const REQUEST_ID: &str = "request_id";
    /// RFC 3339 time of acceptance.
    pub const RECEIVED_AT: &str = "received_at";
    /// The caller's IP address.
    pub const SOURCE_IP: &str = "source_ip";
    /// The tenant.
    pub const TENANT: &str = "tenant";
    /// The event id.
    pub const EVENT_ID: &str = "event_id";
    /// The webhook delivery, `<source id> <delivery id>` (neither holds a space), on events that
    /// came through a source.
    pub const WEBHOOK: &str = "webhook";
    /// `<kid>:<hex>`: which signing key made it, and HMAC-SHA256 of the body. (One attribute:
    /// SQS allows ten per message, and a dead-lettered one carries two more.)
    pub const SIGNATURE: &str = "signature";
    /// Which signing key made `signature`, on messages sealed before the key id moved into it;
    /// still read, never written.
    pub const SIGNATURE_KID: &str = "signature_kid";
    /// The W3C `traceparent` of the request that carried the event (R-1); the SQS adapter also
    /// sends it as X-Ray's `AWSTraceHeader`.
    pub const TRACEPARENT: &str = "traceparent";
    /// Why the message was dead-lettered.
    pub const DLQ_REASON: &str = "dlq_reason";
    /// When the message was dead-lettered.
    pub const DLQ_AT: &str = "dlq_at";
}

/// One accepted event on its way to the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Format version.
    pub v: u8,
    /// The event id assigned at ingest.
    pub id: EventId,
    /// The owner.
    pub tenant: Tenant,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The payload, as it was sent.
    pub data: Payload,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The request that carried it.
    pub request_id: RequestId,
    /// The caller's address as the gateway saw it.
    pub source_ip: Option<String>,
    /// Who or what the event is about. Left out when absent, so envelopes without one keep the
    /// exact bytes (and signatures) they had before subjects existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The webhook delivery that carried it; left out when absent, as `subject` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookOrigin>,
    /// CloudEvents extension attributes; left out when empty, as `subject` is.
    #[serde(default, skip_serializing_if = "Extensions::is_empty")]
    pub extensions: Extensions,
    /// The W3C `traceparent` of the ingest hop (R-1); left out when absent, as `subject` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The request's `Idempotency-Key`, so deleting the event can forget its record; left out
    /// when absent, as `subject` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<crate::ids::IdempotencyKey>,
}

/// One HMAC key with its id.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    /// The HMAC state after absorbing the key: cloning it saves hashing the padded key again for
    /// every message.
    keyed: Hmac<Sha256>,
}

impl SigningKey {
    /// A key named `kid` (visible in attributes) with `secret` (at least 32 bytes).
    pub fn new(kid: &str, secret: Vec<u8>) -> Result<Self, EnvelopeError> {
        if secret.len() < 32 {
            return Err(EnvelopeError::WeakKey);
        }
        // HMAC takes keys of any length; the error arm exists only because the API is generic.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&secret).map_err(|_| EnvelopeError::WeakKey)?;
        Ok(Self {
            kid: kid.to_owned(),
            keyed,
        })
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.kid)
    }
}

/// Why an envelope was refused. Every variant is permanent: retrying cannot fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A signing key shorter than 32 bytes.
    #[error("signing keys are at least 32 bytes")]
    WeakKey,
    /// No signature attribute.
    #[error("the message carries no signature")]
    Unsigned,
    /// Signed with a key we do not have.
    #[error("the message is signed with an unknown key")]
    UnknownKey,
    /// The signature does not match the body: tampered in the queue (T-2).
    #[error("the signature does not match the body")]
    BadSignature,
    /// The body is not a valid envelope.
    #[error("the body is not a valid envelope: {0}")]
    Malformed(String),
}

/// Seals and opens envelopes with a key ring: the first key signs, any key verifies, so keys can
/// be rotated without dropping messages already in the queue.
#[derive(Debug, Clone)]
pub struct Sealer {
    keys: Vec<SigningKey>,
    max_depth: usize,
}

impl Sealer {
    /// A sealer whose first key signs. `max_depth` bounds the JSON of bodies it opens.
    pub fn new(keys: Vec<SigningKey>, max_depth: usize) -> Result<Self, EnvelopeError> {
        if keys.is_empty() {
            return Err(EnvelopeError::WeakKey);
        }
        Ok(Self { keys, max_depth })
    }

    /// Serialises and signs an envelope into a queue message.
    pub fn seal(&self, env: &Envelope) -> Result<OutgoingMessage, EnvelopeError> {
        let body = serde_json::to_string(env).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let key = self.keys.first().ok_or(EnvelopeError::UnknownKey)?;
        let sig = hex_digest(&key.mac(body.as_bytes()).finalize().into_bytes());
        let received_at = env
            .received_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let mut attributes = MessageAttributes::new();
        attributes.insert(attr::REQUEST_ID.into(), env.request_id.to_string());
        attributes.insert(attr::RECEIVED_AT.into(), received_at);
        if let Some(ip) = &env.source_ip {
            attributes.insert(attr::SOURCE_IP.into(), ip.clone());
        }
        attributes.insert(attr::TENANT.into(), env.tenant.to_string());
        attributes.insert(attr::EVENT_ID.into(), env.id.to_string());
        if let Some(w) = &env.webhook {
            attributes.insert(attr::WEBHOOK.into(), format!("{} {}", w.source_id, w.delivery_id));
        }
        if let Some(t) = &env.traceparent {
            attributes.insert(attr::TRACEPARENT.into(), t.clone());
        }
        attributes.insert(attr::SIGNATURE.into(), format!("{}:{sig}", key.kid));
        // The tenant is the fairness group: one tenant's backlog does not hold back another's (D-3).
        Ok(OutgoingMessage {
            body,
            attributes,
            group: Some(env.tenant.to_string()),
        })
    }

    /// Verifies and decodes a received message.
    pub fn open(&self, msg: &ReceivedMessage) -> Result<Envelope, EnvelopeError> {
        self.open_parts(&msg.body, &msg.attributes)
    }

    /// Verifies and decodes a body with its attributes.
    pub fn open_parts(&self, body: &str, attributes: &MessageAttributes) -> Result<Envelope, EnvelopeError> {
        let signature = attributes.get(attr::SIGNATURE).ok_or(EnvelopeError::Unsigned)?;
        // `<kid>:<hex>`, or (sealed before) the hex alone with the key id in `signature_kid`.
        let (kid, sig) = match attributes.get(attr::SIGNATURE_KID) {
            Some(kid) => (kid.as_str(), signature.as_str()),
            None => signature.rsplit_once(':').ok_or(EnvelopeError::Unsigned)?,
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(EnvelopeError::UnknownKey)?;
        let sig = hex::decode(sig).map_err(|_| EnvelopeError::BadSignature)?;
        key.mac(body.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| EnvelopeError::BadSignature)?;
        // Even a correctly signed body is checked strictly: the signing key could leak.
        check_strict(body.as_bytes(), self.max_depth + 2).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let env: Envelope = serde_json::from_str(body).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if env.v != VERSION {
            return Err(EnvelopeError::Malformed(format!("unsupported version {}", env.v)));
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealer(kid: &str, byte: u8) -> Sealer {
        Sealer::new(vec![SigningKey::new(kid, vec![byte; 32]).unwrap()], 32).unwrap()
    }

    fn envelope() -> Envelope {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        Envelope {
            traceparent: None,
            idempotency_key: None,
            v: VERSION,
            id: EventId::new_at(now),
            tenant: Tenant::parse("acme").unwrap(),
            event_type: EventType::parse("order.created").unwrap(),
            data: json!({"amount": 3}).into(),
            occurred_at: now,
            received_at: now,
            request_id: RequestId::parse("r-1").unwrap(),
            source_ip: Some("127.0.0.1".into()),
            subject: Some("user/42".into()),
            webhook: Some(WebhookOrigin {
                source_id: crate::ids::SourceId::generate(),
                delivery_id: "evt_1".into(),
            }),
            extensions: Extensions::from([("traceparent".into(), json!("00-abc-01")), ("n".into(), json!(3))]),
        }
    }

    fn received(m: OutgoingMessage) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "m".into(),
            receipt: crate::ports::ReceiptHandle("r".into()),
            body: m.body,
            attributes: m.attributes,
            receive_count: 1,
            sent_at: OffsetDateTime::UNIX_EPOCH,
            group: m.group,
        }
    }

    #[test]
    fn seal_then_open_round_trips_and_carries_source_metadata() {
        let s = sealer("k1", 7);
        let env = envelope();
        let m = s.seal(&env).unwrap();
        for a in [
            attr::REQUEST_ID,
            attr::RECEIVED_AT,
            attr::SOURCE_IP,
            attr::TENANT,
            attr::EVENT_ID,
            attr::WEBHOOK,
        ] {
            assert!(m.attributes.contains_key(a), "{a}");
        }
        assert!(
            m.attributes.len() <= 8,
            "leave room for the DLQ attributes under SQS's 10"
        );
        assert_eq!(s.open(&received(m)).unwrap(), env);
    }

    #[test]
    fn t2_refuses_a_tampered_body_an_unsigned_message_and_a_foreign_key() {
        let s = sealer("k1", 7);
        let m = s.seal(&envelope()).unwrap();
        let mut tampered = received(m.clone());
        tampered.body = tampered.body.replace("acme", "evil");
        assert_eq!(s.open(&tampered), Err(EnvelopeError::BadSignature));
        let mut unsigned = received(m.clone());
        unsigned.attributes.remove(attr::SIGNATURE);
        assert_eq!(s.open(&unsigned), Err(EnvelopeError::Unsigned));
        let forged = received(sealer("k1", 8).seal(&envelope()).unwrap());
        assert_eq!(s.open(&forged), Err(EnvelopeError::BadSignature));
        let other_kid = received(sealer("k2", 7).seal(&envelope()).unwrap());
        assert_eq!(s.open(&other_kid), Err(EnvelopeError::UnknownKey));
    }

    #[test]
    fn a_rotated_key_ring_still_opens_old_messages() {
        let old = sealer("k1", 7);
        let ring = Sealer::new(
            vec![
                SigningKey::new("k2", vec![9; 32]).unwrap(),
                SigningKey::new("k1", vec![7; 32]).unwrap(),
            ],
            32,
        )
        .unwrap();
        let m = received(old.seal(&envelope()).unwrap());
        assert!(ring.open(&m).is_ok());
        let sealed = ring.seal(&envelope()).unwrap();
        assert!(
            sealed.attributes[attr::SIGNATURE].starts_with("k2:"),
            "the first key signs"
        );
        assert!(!sealed.attributes.contains_key(attr::SIGNATURE_KID));
    }

    /// Messages sealed before the key id moved into `signature` (hex in `signature`, the key id
    /// in `signature_kid`) still open, so an upgrade loses nothing queued; a tampered legacy one
    /// does not.
    #[test]
    fn messages_sealed_with_the_key_id_apart_still_open() {
        let s = sealer("k1", 7);
        let mut m = received(s.seal(&envelope()).unwrap());
        let (kid, hex) = m.attributes[attr::SIGNATURE]
            .split_once(':')
            .map(|(k, h)| (k.to_owned(), h.to_owned()))
            .unwrap();
        m.attributes.insert(attr::SIGNATURE.into(), hex);
        m.attributes.insert(attr::SIGNATURE_KID.into(), kid);
        assert!(s.open(&m).is_ok());
        m.body = m.body.replace("\"amount\":3", "\"amount\":4");
        assert_eq!(s.open(&m), Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn weak_keys_are_refused() {
        assert_eq!(
            SigningKey::new("k", vec![1; 31]).map(|_| ()),
            Err(EnvelopeError::WeakKey)
        );
    }
}
