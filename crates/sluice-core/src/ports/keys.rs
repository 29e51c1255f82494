//! The key store port: API key records, holding only a hash of each secret.

use crate::ids::KeyId;
use crate::tenant::Tenant;
use async_trait::async_trait;
use time::OffsetDateTime;

/// An API key as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyRecord {
    /// Public id, the first half of the key.
    pub id: KeyId,
    /// The tenant the key acts for.
    pub tenant: Tenant,
    /// SHA-256 of the secret half, hex.
    #[serde(skip_serializing)]
    pub secret_hash: String,
    /// A human label.
    pub label: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this the key is refused (rotation overlap, short-lived credentials).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the key was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Why a key store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The backing store is unavailable.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// No key has this id.
    #[error("no such key")]
    NotFound,
}

/// Storage of API key records.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new record.
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyStoreError>;
    /// The record with this id.
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError>;
    /// Every record, oldest first.
    async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError>;
    /// Marks a key revoked at `at`; revoking twice keeps the first time.
    async fn revoke(&self, id: &KeyId, at: OffsetDateTime) -> Result<(), KeyStoreError>;
    /// Sets or clears a key's expiry.
    async fn set_expiry(&self, id: &KeyId, expires_at: Option<OffsetDateTime>) -> Result<(), KeyStoreError>;
}
