//! Opaque list cursors, signed and bound to one tenant and one filter.
//!
//! A cursor is `base64url(payload).base64url(hmac)`. The payload names the tenant, the type filter
//! and the last id returned. A client can read it but not forge it, and a cursor issued to one
//! tenant is refused for another, so paging can never reach across tenants.

use crate::event::EventType;
use crate::ids::EventId;
use crate::tenant::Tenant;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor we issued, or altered since.
    #[error("the cursor is invalid")]
    Invalid,
    /// Issued for another tenant or another filter.
    #[error("the cursor does not belong to this query")]
    Mismatch,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    t: String,
    ty: Option<String>,
    a: EventId,
}

/// Encodes and checks cursors with a secret key.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorCodec(<redacted>)")
    }
}

impl CursorCodec {
    /// A codec with `key` (use at least 32 random bytes).
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &[u8]) -> Result<Hmac<Sha256>, CursorError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).map_err(|_| CursorError::Invalid)?;
        mac.update(b"sluice-cursor-v1\0");
        mac.update(payload);
        Ok(mac)
    }

    /// A cursor that continues `tenant`'s listing (with filter `ty`) after `after`.
    pub fn encode(&self, tenant: &Tenant, ty: Option<&EventType>, after: &EventId) -> Result<String, CursorError> {
        let payload = Payload {
            t: tenant.to_string(),
            ty: ty.map(ToString::to_string),
            a: *after,
        };
        let bytes = serde_json::to_vec(&payload).map_err(|_| CursorError::Invalid)?;
        let tag = self.mac(&bytes)?.finalize().into_bytes();
        Ok(format!("{}.{}", B64.encode(&bytes), B64.encode(tag)))
    }

    /// The id to continue after, if `cursor` is genuine and was issued for this tenant and filter.
    pub fn decode(&self, tenant: &Tenant, ty: Option<&EventType>, cursor: &str) -> Result<EventId, CursorError> {
        if cursor.len() > 1024 {
            return Err(CursorError::Invalid);
        }
        let (p, t) = cursor.split_once('.').ok_or(CursorError::Invalid)?;
        let bytes = B64.decode(p).map_err(|_| CursorError::Invalid)?;
        let tag = B64.decode(t).map_err(|_| CursorError::Invalid)?;
        self.mac(&bytes)?.verify_slice(&tag).map_err(|_| CursorError::Invalid)?;
        let payload: Payload = serde_json::from_slice(&bytes).map_err(|_| CursorError::Invalid)?;
        if payload.t != tenant.as_str() || payload.ty.as_deref() != ty.map(EventType::as_str) {
            return Err(CursorError::Mismatch);
        }
        Ok(payload.a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_for_the_same_tenant_and_filter() {
        let c = CursorCodec::new(vec![1; 32]);
        let t = Tenant::parse("acme").unwrap();
        let id = EventId::new_at(time::OffsetDateTime::now_utc());
        let ty = EventType::parse("a").unwrap();
        let s = c.encode(&t, Some(&ty), &id).unwrap();
        assert_eq!(c.decode(&t, Some(&ty), &s), Ok(id));
    }

    #[test]
    fn cursor_forgery_is_refused() {
        let c = CursorCodec::new(vec![1; 32]);
        let acme = Tenant::parse("acme").unwrap();
        let evil = Tenant::parse("evil").unwrap();
        let id = EventId::new_at(time::OffsetDateTime::now_utc());
        let s = c.encode(&acme, None, &id).unwrap();
        assert_eq!(c.decode(&evil, None, &s), Err(CursorError::Mismatch));
        assert_eq!(
            c.decode(&acme, Some(&EventType::parse("a").unwrap()), &s),
            Err(CursorError::Mismatch)
        );
        // Re-signing the payload for another tenant needs the key.
        let (_, tag) = s.split_once('.').unwrap();
        let forged_payload = B64.encode(format!(r#"{{"t":"evil","ty":null,"a":"{id}"}}"#));
        assert_eq!(
            c.decode(&evil, None, &format!("{forged_payload}.{tag}")),
            Err(CursorError::Invalid)
        );
        let other_key = CursorCodec::new(vec![2; 32]).encode(&evil, None, &id).unwrap();
        assert_eq!(c.decode(&evil, None, &other_key), Err(CursorError::Invalid));
        for junk in ["", ".", "abc", "a.b", &"x".repeat(2000)] {
            assert_eq!(c.decode(&acme, None, junk), Err(CursorError::Invalid), "{junk:?}");
        }
    }
}
