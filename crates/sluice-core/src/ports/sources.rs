//! The source store port: webhook sources, each with the secrets its provider signs with.
//!
//! Unlike API keys, a source's secret cannot be kept as a hash: verifying an HMAC needs the
//! secret itself. The port hands records only to the ingest path and the operator's CLI; every
//! adapter keeps them where only those can read them (the embedded store file is private to its
//! owner; on AWS the table is encrypted with the stack's key and readable by the ingest role
//! alone). [`SourceSecret`]'s `Debug` never prints the secret, so neither does a log line.

use crate::ids::SourceId;
use crate::tenant::Tenant;
use crate::webhook::SourceKind;
use async_trait::async_trait;
use time::OffsetDateTime;

/// One secret of a source, with the time it stops verifying (a rotation's overlap).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceSecret {
    /// The secret as the provider shows it (Standard Webhooks: `whsec_<base64>`).
    pub secret: String,
    /// After this the secret no longer verifies; `None`: until rotated away.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SourceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSecret")
            .field("secret", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A webhook source as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// The id in the source's URL.
    pub id: SourceId,
    /// The tenant its deliveries are stored for.
    pub tenant: Tenant,
    /// How its deliveries are signed.
    pub kind: SourceKind,
    /// Its secrets, newest first; more than one only during a rotation's overlap.
    pub secrets: Vec<SourceSecret>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// When it was deleted: its deliveries are refused like an unknown source's.
    pub deleted_at: Option<OffsetDateTime>,
}

impl SourceRecord {
    /// The secrets that verify at `now`; none once the source is deleted.
    pub fn live_secrets(&self, now: OffsetDateTime) -> Vec<&[u8]> {
        if self.deleted_at.is_some_and(|d| d <= now) {
            return Vec::new();
        }
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|e| now < e))
            .map(|s| s.secret.as_bytes())
            .collect()
    }
}

/// Why a source store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceStoreError {
    /// The backing store is unavailable.
    #[error("source store unavailable: {0}")]
    Unavailable(String),
    /// No source has this id.
    #[error("no such source")]
    NotFound,
}

/// Storage of webhook sources.
#[async_trait]
pub trait SourceStore: Send + Sync + 'static {
    /// Stores a new source; an id that exists already is an error, never an overwrite.
    async fn insert(&self, record: &SourceRecord) -> Result<(), SourceStoreError>;
    /// The source with this id, deleted or not.
    async fn get(&self, id: &SourceId) -> Result<Option<SourceRecord>, SourceStoreError>;
    /// Every source, oldest first.
    async fn list(&self) -> Result<Vec<SourceRecord>, SourceStoreError>;
    /// Replaces a source's secrets (a rotation).
    async fn set_secrets(&self, id: &SourceId, secrets: &[SourceSecret]) -> Result<(), SourceStoreError>;
    /// Marks a source deleted at `at`; deleting twice keeps the first time.
    async fn delete(&self, id: &SourceId, at: OffsetDateTime) -> Result<(), SourceStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    #[test]
    fn s1_live_secrets_follow_the_overlap_and_deletion_and_debug_never_shows_one() {
        let mut r = SourceRecord {
            id: SourceId::generate(),
            tenant: Tenant::parse("acme").unwrap(),
            kind: SourceKind::GitHub,
            secrets: vec![
                SourceSecret {
                    secret: "new-secret".into(),
                    expires_at: None,
                },
                SourceSecret {
                    secret: "old-secret".into(),
                    expires_at: Some(at(100)),
                },
            ],
            created_at: at(0),
            deleted_at: None,
        };
        assert_eq!(r.live_secrets(at(99)), vec![&b"new-secret"[..], &b"old-secret"[..]]);
        assert_eq!(r.live_secrets(at(100)), vec![&b"new-secret"[..]]);
        assert!(!format!("{r:?}").contains("secret\""), "{r:?}");
        assert!(!format!("{r:?}").contains("new-secret"));
        r.deleted_at = Some(at(50));
        assert!(r.live_secrets(at(60)).is_empty());
    }

    #[test]
    fn kinds_are_stored_by_name_with_the_generic_schemes_settings() {
        for (kind, json) in [
            (SourceKind::Stripe, r#"{"kind":"stripe"}"#),
            (SourceKind::GitHub, r#"{"kind":"github"}"#),
            (SourceKind::StandardWebhooks, r#"{"kind":"standard-webhooks"}"#),
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), json);
            assert_eq!(serde_json::from_str::<SourceKind>(json).unwrap(), kind);
        }
        let generic: SourceKind = serde_json::from_str(
            r#"{"kind":"hmac-sha256","header":"x-sig","encoding":"base64","event_type":"partner.event"}"#,
        )
        .unwrap();
        let SourceKind::Hmac(s) = &generic else {
            panic!("{generic:?}")
        };
        assert_eq!((s.tolerance_secs, s.prefix.as_str()), (300, ""));
        let back: SourceKind = serde_json::from_str(&serde_json::to_string(&generic).unwrap()).unwrap();
        assert_eq!(back, generic);
    }
}
