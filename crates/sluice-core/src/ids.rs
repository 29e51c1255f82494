//! Typed identifiers: event ids (time-ordered ULIDs), request ids, API key ids and idempotency keys.

use std::fmt;
use time::OffsetDateTime;
use ulid::Ulid;

/// Why a string is not a valid identifier.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidId {
    /// Not an `evt_` ULID.
    #[error("not an event id")]
    Event,
    /// Not a key id.
    #[error("not a key id")]
    Key,
    /// Not a webhook source id.
    #[error("not a source id")]
    Source,
    /// Not a sane request id token.
    #[error("not a request id")]
    Request,
    /// Not a sane idempotency key.
    #[error("an idempotency key is 1 to 255 visible ASCII characters")]
    Idempotency,
}

/// An event id: `evt_` followed by a ULID, so ids sort by creation time as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Ulid);

impl EventId {
    const PREFIX: &'static str = "evt_";

    /// A new id for an event received at `at`.
    pub fn new_at(at: OffsetDateTime) -> Self {
        let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        Self(Ulid::from_parts(ms, rand::random()))
    }

    /// Parses `evt_<ULID>`.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let rest = s.strip_prefix(Self::PREFIX).ok_or(InvalidId::Event)?;
        if rest.len() != 26 {
            return Err(InvalidId::Event);
        }
        Ulid::from_string(rest).map(Self).map_err(|_| InvalidId::Event)
    }

    /// The next id after this one in the same millisecond, so a batch keeps its request order.
    pub fn successor(&self) -> Option<Self> {
        self.0.increment().map(Self)
    }

    /// The milliseconds since the Unix epoch encoded in the id.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Is `s` a token we are willing to echo, log and store: 1 to `max` of `[A-Za-z0-9._:-]`.
fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A request id: the caller's `x-request-id` if it is a sane token, otherwise one we generate.
///
/// The alphabet is closed so that a request id can never inject a line or a field into a log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Parses a caller-supplied request id: 1 to 128 of `[A-Za-z0-9._:-]`.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if is_token(s, 128) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId::Request)
        }
    }

    /// A fresh random request id.
    pub fn generate() -> Self {
        Self(format!("req_{}", Ulid::new()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The public id of an API key: `key_` followed by a ULID; the secret half is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// A fresh key id.
    pub fn generate() -> Self {
        Self(format!("key_{}", Ulid::new().to_string().to_ascii_lowercase()))
    }

    /// Parses `key_<ulid, lower case>`.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let rest = s.strip_prefix("key_").ok_or(InvalidId::Key)?;
        if rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId::Key)
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        Self::parse(&s)
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a webhook source: `src_` followed by a ULID in lower case. It appears in the
/// source's public URL, so it names the source but grants nothing: the signature does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceId(String);

impl SourceId {
    /// A fresh source id.
    pub fn generate() -> Self {
        Self(format!("src_{}", Ulid::new().to_string().to_ascii_lowercase()))
    }

    /// Parses `src_<ulid, lower case>`.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let rest = s.strip_prefix("src_").ok_or(InvalidId::Source)?;
        if rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId::Source)
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SourceId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        Self::parse(&s)
    }
}

impl From<SourceId> for String {
    fn from(s: SourceId) -> String {
        s.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses an idempotency key header value.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId::Idempotency)
        }
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for IdempotencyKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_sort_by_time() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let a = EventId::new_at(t0);
        let b = EventId::new_at(t0 + time::Duration::milliseconds(1));
        assert!(a.to_string() < b.to_string());
        assert_eq!(EventId::parse(&a.to_string()), Ok(a));
        assert_eq!(EventId::parse("evt_nope"), Err(InvalidId::Event));
        assert_eq!(EventId::parse(&a.to_string()[4..]), Err(InvalidId::Event));
    }

    #[test]
    fn request_ids_refuse_log_injection() {
        assert!(RequestId::parse("abc-123:x.y_z").is_ok());
        for bad in ["", "a b", "a\nb", "a\"b", &"a".repeat(129)] {
            assert!(RequestId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_ids_round_trip() {
        let k = KeyId::generate();
        assert_eq!(KeyId::parse(k.as_str()), Ok(k));
        assert!(KeyId::parse("key_ABC").is_err());
    }
}
