//! [`EmbeddedKeys`]: the [`KeyStore`] port on the store database's `api_keys` table.
//!
//! Only the SHA-256 of a key's secret half is stored. Times are Unix nanoseconds (NULL for
//! never), so records round-trip exactly.

use crate::sqlite::{DbFailure, from_nanos, to_nanos};
use crate::store::StoreDb;
use async_trait::async_trait;
use rusqlite::params;
use sluice_core::ports::{KeyRecord, KeyStore, KeyStoreError};
use sluice_core::{KeyId, Tenant};
use std::sync::Arc;
use time::OffsetDateTime;

/// The [`KeyStore`] port on a [`StoreDb`]; made by [`StoreDb::keys`]. Cheap to clone: it shares
/// the database handle.
#[derive(Debug, Clone)]
pub struct EmbeddedKeys {
    db: Arc<StoreDb>,
}

impl EmbeddedKeys {
    pub(crate) fn new(db: Arc<StoreDb>) -> Self {
        Self { db }
    }
}

fn keys_unavailable(f: DbFailure) -> KeyStoreError {
    KeyStoreError::Unavailable(f.reason())
}

/// An API key row as stored.
type KeyRow = (String, String, String, String, i64, Option<i64>, Option<i64>);

const KEY_COLUMNS: &str = "id, tenant, secret_hash, label, created_at_ns, expires_at_ns, revoked_at_ns";

fn read_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn decode_key(row: KeyRow) -> Result<KeyRecord, KeyStoreError> {
    let (id, tenant, secret_hash, label, created, expires, revoked) = row;
    let corrupt = || KeyStoreError::Unavailable("a stored key record is corrupt".into());
    let time = |ns: Option<i64>| ns.map(|n| from_nanos(n).ok_or_else(corrupt)).transpose();
    Ok(KeyRecord {
        id: KeyId::parse(&id).map_err(|_| corrupt())?,
        tenant: Tenant::parse(&tenant).map_err(|_| corrupt())?,
        secret_hash,
        label,
        created_at: from_nanos(created).ok_or_else(corrupt)?,
        expires_at: time(expires)?,
        revoked_at: time(revoked)?,
    })
}

#[async_trait]
impl KeyStore for EmbeddedKeys {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyStoreError> {
        let r = record.clone();
        let inserted = self
            .db
            .writer
            .run(move |c| {
                c.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ))?
                .execute(params![
                    r.id.as_str(),
                    r.tenant.as_str(),
                    r.secret_hash,
                    r.label,
                    to_nanos(r.created_at),
                    r.expires_at.map(to_nanos),
                    r.revoked_at.map(to_nanos)
                ])
            })
            .await
            .map_err(keys_unavailable)?;
        if inserted == 0 {
            // Ids are random ULIDs: a clash means a caller bug, and overwriting could revive a
            // revoked key, so refuse.
            return Err(KeyStoreError::Unavailable("a key with this id already exists".into()));
        }
        Ok(())
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1");
        let row = self
            .db
            .select_one(sql, id.as_str().to_owned(), read_key)
            .await
            .map_err(keys_unavailable)?;
        row.map(decode_key).transpose()
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at_ns, id");
        let rows = self.db.select_all(sql, read_key).await.map_err(keys_unavailable)?;
        rows.into_iter().map(decode_key).collect()
    }

    async fn revoke(&self, id: &KeyId, at: OffsetDateTime) -> Result<(), KeyStoreError> {
        let id = id.as_str().to_owned();
        let at = to_nanos(at);
        let n = self
            .db
            .writer
            .run(move |c| {
                c.prepare_cached("UPDATE api_keys SET revoked_at_ns = COALESCE(revoked_at_ns, ?2) WHERE id = ?1")?
                    .execute(params![id, at])
            })
            .await
            .map_err(keys_unavailable)?;
        if n == 0 { Err(KeyStoreError::NotFound) } else { Ok(()) }
    }

    async fn set_expiry(&self, id: &KeyId, expires_at: Option<OffsetDateTime>) -> Result<(), KeyStoreError> {
        let id = id.as_str().to_owned();
        let expires = expires_at.map(to_nanos);
        let n = self
            .db
            .writer
            .run(move |c| {
                c.prepare_cached("UPDATE api_keys SET expires_at_ns = ?2 WHERE id = ?1")?
                    .execute(params![id, expires])
            })
            .await
            .map_err(keys_unavailable)?;
        if n == 0 { Err(KeyStoreError::NotFound) } else { Ok(()) }
    }
}
