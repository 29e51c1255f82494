//! [`EmbeddedSources`]: the [`SourceStore`] port on the store database's `sources` table.
//!
//! A source's secrets must be kept as they are (an HMAC needs the secret itself), so they live in
//! the store file, which sits in the private data directory (`0700`, created by `sluice serve`)
//! and is read by the ingest path and the operator's CLI only. Kind and secrets are JSON
//! columns; times are Unix nanoseconds (NULL for never), so records round-trip exactly.

use crate::sqlite::{DbFailure, from_nanos, to_nanos};
use crate::store::StoreDb;
use async_trait::async_trait;
use rusqlite::params;
use rusqlite::types::Value;
use sluice_core::ports::{SourceRecord, SourceSecret, SourceStore, SourceStoreError};
use sluice_core::webhook::SourceKind;
use sluice_core::{SourceId, Tenant};
use std::sync::Arc;
use time::OffsetDateTime;

/// The [`SourceStore`] port on a [`StoreDb`]; made by [`StoreDb::sources`]. Cheap to clone: it
/// shares the database handle.
#[derive(Debug, Clone)]
pub struct EmbeddedSources {
    db: Arc<StoreDb>,
}

impl EmbeddedSources {
    pub(crate) fn new(db: Arc<StoreDb>) -> Self {
        Self { db }
    }

    /// Runs `sql` (`?1` the id, `?2` the value) on one source; `NotFound` when it matched none.
    async fn update(&self, id: &SourceId, sql: &'static str, value: Value) -> Result<(), SourceStoreError> {
        let id = id.as_str().to_owned();
        let n = self
            .db
            .writer
            .run(move |c| c.prepare_cached(sql)?.execute(params![id, value]))
            .await
            .map_err(unavailable)?;
        if n == 0 {
            Err(SourceStoreError::NotFound)
        } else {
            Ok(())
        }
    }
}

fn unavailable(f: DbFailure) -> SourceStoreError {
    SourceStoreError::Unavailable(f.reason())
}

/// A source row as stored.
type SourceRow = (String, String, String, String, i64, Option<i64>);

const COLUMNS: &str = "id, tenant, kind, secrets, created_at_ns, deleted_at_ns";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn decode(row: SourceRow) -> Result<SourceRecord, SourceStoreError> {
    let (id, tenant, kind, secrets, created, deleted) = row;
    // Never the row's text: it holds secrets.
    let corrupt = || SourceStoreError::Unavailable("a stored source record is corrupt".into());
    Ok(SourceRecord {
        id: SourceId::parse(&id).map_err(|_| corrupt())?,
        tenant: Tenant::parse(&tenant).map_err(|_| corrupt())?,
        kind: serde_json::from_str::<SourceKind>(&kind).map_err(|_| corrupt())?,
        secrets: serde_json::from_str::<Vec<SourceSecret>>(&secrets).map_err(|_| corrupt())?,
        created_at: from_nanos(created).ok_or_else(corrupt)?,
        deleted_at: deleted.map(|n| from_nanos(n).ok_or_else(corrupt)).transpose()?,
    })
}

fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, SourceStoreError> {
    serde_json::to_string(value).map_err(|_| SourceStoreError::Unavailable("a source could not be encoded".into()))
}

#[async_trait]
impl SourceStore for EmbeddedSources {
    async fn insert(&self, record: &SourceRecord) -> Result<(), SourceStoreError> {
        let (kind, secrets) = (encode(&record.kind)?, encode(&record.secrets)?);
        let r = record.clone();
        let inserted = self
            .db
            .writer
            .run(move |c| {
                c.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO sources ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ))?
                .execute(params![
                    r.id.as_str(),
                    r.tenant.as_str(),
                    kind,
                    secrets,
                    to_nanos(r.created_at),
                    r.deleted_at.map(to_nanos)
                ])
            })
            .await
            .map_err(unavailable)?;
        if inserted == 0 {
            // Ids are random ULIDs: a clash is a caller bug, and overwriting could revive a
            // deleted source or replace its secrets, so refuse.
            return Err(SourceStoreError::Unavailable(
                "a source with this id already exists".into(),
            ));
        }
        Ok(())
    }

    async fn get(&self, id: &SourceId) -> Result<Option<SourceRecord>, SourceStoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sources WHERE id = ?1");
        let row = self
            .db
            .select_one(sql, id.as_str().to_owned(), read)
            .await
            .map_err(unavailable)?;
        row.map(decode).transpose()
    }

    async fn list(&self) -> Result<Vec<SourceRecord>, SourceStoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sources ORDER BY created_at_ns, id");
        let rows = self.db.select_all(sql, read).await.map_err(unavailable)?;
        rows.into_iter().map(decode).collect()
    }

    async fn set_secrets(&self, id: &SourceId, secrets: &[SourceSecret]) -> Result<(), SourceStoreError> {
        let secrets = encode(&secrets)?;
        self.update(id, "UPDATE sources SET secrets = ?2 WHERE id = ?1", secrets.into())
            .await
    }

    async fn delete(&self, id: &SourceId, at: OffsetDateTime) -> Result<(), SourceStoreError> {
        self.update(
            id,
            "UPDATE sources SET deleted_at_ns = COALESCE(deleted_at_ns, ?2) WHERE id = ?1",
            to_nanos(at).into(),
        )
        .await
    }
}
