//! The [`KeyStore`] port on the keys table.
//!
//! Item layout: `pk` = key id, `tenant`, `secret_hash` (SHA-256 of the secret half, hex; the
//! secret itself is never stored), `label`, `created_at`, and the optional `expires_at` and
//! `revoked_at` (RFC 3339 strings; absent means never).

use super::{Corrupt, Item, PK, Reader, get_item, put_new, scan_all, string_attr, time_attr, update_existing};
use crate::error::Failure;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use sluice_core::ids::KeyId;
use sluice_core::ports::{KeyRecord, KeyStore, KeyStoreError};
use sluice_core::tenant::Tenant;
use time::OffsetDateTime;

const TABLE: &str = "keys";

impl From<Corrupt> for KeyStoreError {
    fn from(c: Corrupt) -> Self {
        KeyStoreError::Unavailable(c.to_string())
    }
}

fn unavailable(f: Failure) -> KeyStoreError {
    KeyStoreError::Unavailable(f.to_string())
}

fn encode(r: &KeyRecord) -> Result<Item, Corrupt> {
    let mut item = Item::from([
        (PK.to_owned(), string_attr(r.id.as_str())),
        ("tenant".to_owned(), string_attr(r.tenant.as_str())),
        ("secret_hash".to_owned(), string_attr(&r.secret_hash)),
        ("label".to_owned(), string_attr(&r.label)),
        ("created_at".to_owned(), time_attr(TABLE, r.created_at)?),
    ]);
    if let Some(t) = r.expires_at {
        item.insert("expires_at".to_owned(), time_attr(TABLE, t)?);
    }
    if let Some(t) = r.revoked_at {
        item.insert("revoked_at".to_owned(), time_attr(TABLE, t)?);
    }
    Ok(item)
}

fn decode(item: &Item) -> Result<KeyRecord, Corrupt> {
    let r = Reader::new(TABLE, item);
    Ok(KeyRecord {
        id: r.parsed(PK, KeyId::parse)?,
        tenant: r.parsed("tenant", Tenant::parse)?,
        secret_hash: r.str("secret_hash")?.to_owned(),
        label: r.str("label")?.to_owned(),
        created_at: r.time("created_at")?,
        expires_at: r.opt_time("expires_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

/// The [`KeyStore`] port on one DynamoDB keys table. Cheap to clone: the client is shared.
#[derive(Debug, Clone)]
pub struct DynamoKeys {
    client: Client,
    table: String,
}

impl DynamoKeys {
    /// The API keys in `table`, reached through `client` (build the client once and share it).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Runs `update` on an existing key; a missing key is [`KeyStoreError::NotFound`].
    async fn update_key(
        &self,
        id: &KeyId,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<(), KeyStoreError> {
        match update_existing(update, &self.table, id.as_str()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(KeyStoreError::NotFound),
            Err(f) => Err(unavailable(f)),
        }
    }
}

#[async_trait]
impl KeyStore for DynamoKeys {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyStoreError> {
        // Never overwrite a key (and its hash) that already exists under this id.
        match put_new(&self.client, &self.table, encode(record)?).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(KeyStoreError::Unavailable("a key with this id already exists".into())),
            Err(f) => Err(unavailable(f)),
        }
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError> {
        let item = get_item(&self.client, &self.table, id.as_str())
            .await
            .map_err(unavailable)?;
        Ok(item.as_ref().map(decode).transpose()?)
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError> {
        let items = scan_all(&self.client, &self.table).await.map_err(unavailable)?;
        let mut records = items.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn revoke(&self, id: &KeyId, at: OffsetDateTime) -> Result<(), KeyStoreError> {
        let update = self
            .client
            .update_item()
            // `if_not_exists` keeps the first revocation time when a key is revoked twice.
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :at)")
            .expression_attribute_values(":at", time_attr(TABLE, at)?);
        self.update_key(id, update).await
    }

    async fn set_expiry(&self, id: &KeyId, expires_at: Option<OffsetDateTime>) -> Result<(), KeyStoreError> {
        let update = match expires_at {
            Some(t) => self
                .client
                .update_item()
                .update_expression("SET expires_at = :e")
                .expression_attribute_values(":e", time_attr(TABLE, t)?),
            None => self.client.update_item().update_expression("REMOVE expires_at"),
        };
        self.update_key(id, update).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_records_round_trip_with_and_without_optional_times() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut r = KeyRecord {
            id: KeyId::generate(),
            tenant: Tenant::parse("acme").unwrap(),
            secret_hash: "00".repeat(32),
            label: "ci".into(),
            created_at: t,
            expires_at: None,
            revoked_at: None,
        };
        assert_eq!(decode(&encode(&r).unwrap()).unwrap(), r);
        r.expires_at = Some(t);
        r.revoked_at = Some(t);
        assert_eq!(decode(&encode(&r).unwrap()).unwrap(), r);
    }
}
