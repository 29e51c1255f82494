//! The [`SourceStore`] port on the sources table.
//!
//! Item layout: `pk` = source id, `tenant`, `kind` and `secrets` (JSON strings, so the generic
//! scheme's settings and every secret with its expiry round-trip exactly), `created_at` and the
//! optional `deleted_at` (RFC 3339). The secrets must be kept as they are (an HMAC needs them),
//! so the deployment encrypts the table with its own KMS key and lets the ingest role alone read
//! it; errors never carry an item's text.

use super::{Corrupt, Item, PK, Reader, get_item, put_new, scan_all, string_attr, time_attr, update_existing};
use crate::error::Failure;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use sluice_core::ids::SourceId;
use sluice_core::ports::{SourceRecord, SourceSecret, SourceStore, SourceStoreError};
use sluice_core::tenant::Tenant;
use sluice_core::webhook::SourceKind;
use time::OffsetDateTime;

const TABLE: &str = "sources";

impl From<Corrupt> for SourceStoreError {
    fn from(c: Corrupt) -> Self {
        SourceStoreError::Unavailable(c.to_string())
    }
}

fn unavailable(f: Failure) -> SourceStoreError {
    SourceStoreError::Unavailable(f.to_string())
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, Corrupt> {
    serde_json::to_string(value).map_err(|_| Corrupt::new(TABLE, "a value that cannot be encoded"))
}

fn encode(r: &SourceRecord) -> Result<Item, Corrupt> {
    let mut item = Item::from([
        (PK.to_owned(), string_attr(r.id.as_str())),
        ("tenant".to_owned(), string_attr(r.tenant.as_str())),
        ("kind".to_owned(), string_attr(json(&r.kind)?)),
        ("secrets".to_owned(), string_attr(json(&r.secrets)?)),
        ("created_at".to_owned(), time_attr(TABLE, r.created_at)?),
    ]);
    if let Some(t) = r.deleted_at {
        item.insert("deleted_at".to_owned(), time_attr(TABLE, t)?);
    }
    Ok(item)
}

fn decode(item: &Item) -> Result<SourceRecord, Corrupt> {
    let r = Reader::new(TABLE, item);
    Ok(SourceRecord {
        id: r.parsed(PK, SourceId::parse)?,
        tenant: r.parsed("tenant", Tenant::parse)?,
        kind: r.parsed("kind", |s| serde_json::from_str::<SourceKind>(s))?,
        secrets: r.parsed("secrets", |s| serde_json::from_str::<Vec<SourceSecret>>(s))?,
        created_at: r.time("created_at")?,
        deleted_at: r.opt_time("deleted_at")?,
    })
}

/// The [`SourceStore`] port on one DynamoDB sources table. Cheap to clone: the client is shared.
#[derive(Debug, Clone)]
pub struct DynamoSources {
    client: Client,
    table: String,
}

impl DynamoSources {
    /// The webhook sources in `table`, reached through `client` (build the client once and share it).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Runs `update` on an existing source; a missing one is [`SourceStoreError::NotFound`].
    async fn update_source(
        &self,
        id: &SourceId,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<(), SourceStoreError> {
        match update_existing(update, &self.table, id.as_str()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SourceStoreError::NotFound),
            Err(f) => Err(unavailable(f)),
        }
    }
}

#[async_trait]
impl SourceStore for DynamoSources {
    async fn insert(&self, record: &SourceRecord) -> Result<(), SourceStoreError> {
        // Never overwrite a source (and its secrets) that already exists under this id.
        match put_new(&self.client, &self.table, encode(record)?).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SourceStoreError::Unavailable(
                "a source with this id already exists".into(),
            )),
            Err(f) => Err(unavailable(f)),
        }
    }

    async fn get(&self, id: &SourceId) -> Result<Option<SourceRecord>, SourceStoreError> {
        let item = get_item(&self.client, &self.table, id.as_str())
            .await
            .map_err(unavailable)?;
        Ok(item.as_ref().map(decode).transpose()?)
    }

    async fn list(&self) -> Result<Vec<SourceRecord>, SourceStoreError> {
        let items = scan_all(&self.client, &self.table).await.map_err(unavailable)?;
        let mut records = items.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(records)
    }

    async fn set_secrets(&self, id: &SourceId, secrets: &[SourceSecret]) -> Result<(), SourceStoreError> {
        let update = self
            .client
            .update_item()
            .update_expression("SET secrets = :s")
            .expression_attribute_values(":s", string_attr(json(secrets)?));
        self.update_source(id, update).await
    }

    async fn delete(&self, id: &SourceId, at: OffsetDateTime) -> Result<(), SourceStoreError> {
        let update = self
            .client
            .update_item()
            // `if_not_exists` keeps the first deletion time when a source is deleted twice.
            .update_expression("SET deleted_at = if_not_exists(deleted_at, :at)")
            .expression_attribute_values(":at", time_attr(TABLE, at)?);
        self.update_source(id, update).await
    }
}
