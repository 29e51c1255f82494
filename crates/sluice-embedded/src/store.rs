//! The embedded store: one SQLite file standing in for DynamoDB, with the event table, the
//! idempotency records and the API keys.
//!
//! Tables are keyed like their DynamoDB counterparts (`(tenant, id)` clustered `WITHOUT ROWID`,
//! so one tenant's events sit together in id order, as in a partition). Writes go through the
//! file's group-commit [writer](crate::writer): the process step stores many events at once and
//! they share fsyncs. Reads use separate read-only connections on the blocking pool.

use crate::EmbeddedError;
use crate::sqlite::{DbFailure, ReadPool, from_nanos, open_writer, to_nanos};
use crate::writer::{Writer, WriterStats};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sluice_core::ports::{
    Claim, EventStore, IdempotencyError, IdempotencyRecord, IdempotencyStore, KeyRecord, KeyStore, KeyStoreError,
    ListQuery, Page, PutOutcome, StoreError,
};
use sluice_core::{EventId, EventType, IdempotencyKey, KeyId, RequestId, StoredEvent, Tenant};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The largest page a list returns (DynamoDB's `Limit` has no such cap, the query API does).
pub const MAX_LIST_LIMIT: usize = 1000;

/// Expired idempotency records are deleted at most this often (in the caller's clock, nanos).
const IDEMPOTENCY_PURGE_EVERY_NS: i64 = 60 * 1_000_000_000;

const MIGRATIONS: &[&str] = &["
    CREATE TABLE events (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        data TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        request_id TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_type ON events (tenant, event_type, id);

    CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        ids TEXT NOT NULL,
        single INTEGER NOT NULL,
        payload TEXT NOT NULL,
        completed INTEGER NOT NULL,
        expires_at_ns INTEGER NOT NULL,
        PRIMARY KEY (tenant, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_at_ns);

    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY NOT NULL,
        tenant TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at_ns INTEGER NOT NULL,
        expires_at_ns INTEGER,
        revoked_at_ns INTEGER
    ) WITHOUT ROWID;
"];

/// One SQLite file holding events, idempotency records and API keys (one DynamoDB account's
/// tables). Implements [`EventStore`], [`IdempotencyStore`] and [`KeyStore`].
pub struct StoreDb {
    writer: Writer,
    reader: Arc<ReadPool>,
    /// The caller's `now` at the last purge of expired idempotency records.
    last_idempotency_purge_ns: Arc<AtomicI64>,
}

impl std::fmt::Debug for StoreDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDb").finish_non_exhaustive()
    }
}

impl StoreDb {
    /// Opens (creating and migrating if needed) the store database at `path`.
    pub fn open(path: &Path) -> Result<Arc<StoreDb>, EmbeddedError> {
        let conn = open_writer(path, MIGRATIONS)?;
        let writer = Writer::spawn("sluice-store-writer", conn, None).map_err(EmbeddedError::Spawn)?;
        let reader = ReadPool::new(path)?;
        Ok(Arc::new(StoreDb {
            writer,
            reader,
            last_idempotency_purge_ns: Arc::new(AtomicI64::new(i64::MIN)),
        }))
    }

    /// Commit counters of the writer, for tests of group commit.
    #[doc(hidden)]
    pub fn stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Caps the file at its current size plus `extra_pages` (`None` lifts the cap), so tests can
    /// make writes fail with `SQLITE_FULL` as on a full disk.
    #[doc(hidden)]
    pub async fn limit_pages(&self, extra_pages: Option<u64>) -> Result<(), StoreError> {
        self.writer
            .run(move |c| crate::queue::limit_pages(c, extra_pages))
            .await
            .map_err(store_unavailable)
    }
}

fn store_unavailable(f: DbFailure) -> StoreError {
    StoreError::Unavailable(f.reason())
}

fn idem_unavailable(f: DbFailure) -> IdempotencyError {
    IdempotencyError::Unavailable(f.reason())
}

fn keys_unavailable(f: DbFailure) -> KeyStoreError {
    KeyStoreError::Unavailable(f.reason())
}

fn rfc3339(t: OffsetDateTime) -> Result<String, StoreError> {
    t.format(&Rfc3339)
        .map_err(|_| StoreError::Unavailable("a time cannot be stored".into()))
}

/// An event row as stored, decoded outside the database thread.
struct EventRow {
    tenant: String,
    id: String,
    event_type: String,
    data: String,
    occurred_at: String,
    received_at: String,
    request_id: String,
}

/// The conditional put, inside the writer's transaction. OR IGNORE is the condition: an existing
/// (tenant, id) is left untouched.
fn insert_if_absent(c: &Connection, row: &EventRow) -> rusqlite::Result<PutOutcome> {
    let n = c
        .prepare_cached(
            "INSERT OR IGNORE INTO events (tenant, id, event_type, data, occurred_at, received_at, request_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            row.tenant,
            row.id,
            row.event_type,
            row.data,
            row.occurred_at,
            row.received_at,
            row.request_id
        ])?;
    Ok(if n == 1 {
        PutOutcome::Created
    } else {
        PutOutcome::AlreadyExists
    })
}

impl EventRow {
    const COLUMNS: &'static str = "tenant, id, event_type, data, occurred_at, received_at, request_id";

    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            tenant: r.get(0)?,
            id: r.get(1)?,
            event_type: r.get(2)?,
            data: r.get(3)?,
            occurred_at: r.get(4)?,
            received_at: r.get(5)?,
            request_id: r.get(6)?,
        })
    }

    fn encode(e: &StoredEvent) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: e.tenant.as_str().to_owned(),
            id: e.id.to_string(),
            event_type: e.event_type.as_str().to_owned(),
            data: serde_json::to_string(&e.data)
                .map_err(|_| StoreError::Unavailable("event data cannot be encoded".into()))?,
            occurred_at: rfc3339(e.occurred_at)?,
            received_at: rfc3339(e.received_at)?,
            request_id: e.request_id.as_str().to_owned(),
        })
    }

    fn decode(self) -> Result<StoredEvent, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("bad {what} in event {}", self.id.escape_debug()));
        Ok(StoredEvent {
            id: EventId::parse(&self.id).map_err(|_| corrupt("id"))?,
            tenant: Tenant::parse(&self.tenant).map_err(|_| corrupt("tenant"))?,
            event_type: EventType::parse(&self.event_type).map_err(|_| corrupt("type"))?,
            data: serde_json::from_str(&self.data).map_err(|_| corrupt("data"))?,
            occurred_at: OffsetDateTime::parse(&self.occurred_at, &Rfc3339).map_err(|_| corrupt("occurred_at"))?,
            received_at: OffsetDateTime::parse(&self.received_at, &Rfc3339).map_err(|_| corrupt("received_at"))?,
            request_id: RequestId::parse(&self.request_id).map_err(|_| corrupt("request_id"))?,
        })
    }
}

#[async_trait]
impl EventStore for StoreDb {
    async fn put_if_absent(&self, event: &StoredEvent) -> Result<PutOutcome, StoreError> {
        let row = EventRow::encode(event)?;
        self.writer
            .run(move |c| insert_if_absent(c, &row))
            .await
            .map_err(store_unavailable)
    }

    async fn put_batch_if_absent(&self, events: &[StoredEvent]) -> Vec<Result<PutOutcome, StoreError>> {
        // Rows that cannot be encoded answer at once; the others go to the writer as one command,
        // so a batch costs one job and one reply however many events it holds.
        let mut rows = Vec::with_capacity(events.len());
        let mut refused: Vec<Option<StoreError>> = Vec::with_capacity(events.len());
        for e in events {
            match EventRow::encode(e) {
                Ok(row) => {
                    rows.push(row);
                    refused.push(None);
                }
                Err(err) => refused.push(Some(err)),
            }
        }
        let written = if rows.is_empty() {
            Ok(Vec::new())
        } else {
            self.writer
                .run(move |c| {
                    rows.iter()
                        .map(|row| insert_if_absent(c, row))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .await
        };
        let mut written = written.map(Vec::into_iter);
        refused
            .into_iter()
            .map(|refusal| match (refusal, &mut written) {
                (Some(err), _) => Err(err),
                (None, Ok(outcomes)) => outcomes
                    .next()
                    .ok_or_else(|| StoreError::Unavailable("the writer skipped an event".into())),
                (None, Err(f)) => Err(store_unavailable(*f)),
            })
            .collect()
    }

    async fn get(&self, tenant: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let tenant = tenant.as_str().to_owned();
        let id = id.to_string();
        let row = self
            .reader
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {} FROM events WHERE tenant = ?1 AND id = ?2",
                    EventRow::COLUMNS
                ))?
                .query_row(params![tenant, id], EventRow::read)
                .optional()
            })
            .await
            .map_err(store_unavailable)?;
        row.map(EventRow::decode).transpose()
    }

    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.limit.clamp(1, MAX_LIST_LIMIT);
        let tenant = tenant.as_str().to_owned();
        let event_type = query.event_type.as_ref().map(|t| t.as_str().to_owned());
        // Ids sort by time as strings, so the string bound is "older than `after`". With no
        // cursor, "evt`" sorts after every "evt_..." id (` is the byte after _).
        let before = query.after.map_or_else(|| "evt`".to_owned(), |a| a.to_string());
        // One extra row tells whether another page exists without a second query.
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let rows = self
            .reader
            .read(move |c| {
                let cols = EventRow::COLUMNS;
                match event_type {
                    Some(t) => c
                        .prepare_cached(&format!(
                            "SELECT {cols} FROM events WHERE tenant = ?1 AND event_type = ?2 AND id < ?3 \
                             ORDER BY id DESC LIMIT ?4"
                        ))?
                        .query_map(params![tenant, t, before, fetch], EventRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>(),
                    None => c
                        .prepare_cached(&format!(
                            "SELECT {cols} FROM events WHERE tenant = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
                        ))?
                        .query_map(params![tenant, before, fetch], EventRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>(),
                }
            })
            .await
            .map_err(store_unavailable)?;
        let more = rows.len() > limit;
        let events = rows
            .into_iter()
            .take(limit)
            .map(EventRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let last = if more { events.last().map(|e| e.id) } else { None };
        Ok(Page { events, last })
    }
}

fn decode_idempotency(
    tenant: &Tenant,
    key: &IdempotencyKey,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    let fingerprint: String = r.get(0)?;
    let ids: String = r.get(1)?;
    let single: bool = r.get(2)?;
    let payload: String = r.get(3)?;
    let completed: bool = r.get(4)?;
    let expires_at_ns: i64 = r.get(5)?;
    let ids: Option<Vec<EventId>> = serde_json::from_str::<Vec<String>>(&ids)
        .ok()
        .and_then(|v| v.iter().map(|s| EventId::parse(s).ok()).collect());
    Ok(ids
        .zip(from_nanos(expires_at_ns))
        .map(|(ids, expires_at)| IdempotencyRecord {
            tenant: tenant.clone(),
            key: key.clone(),
            fingerprint,
            ids,
            single,
            payload,
            completed,
            expires_at,
        }))
}

#[async_trait]
impl IdempotencyStore for StoreDb {
    async fn claim(&self, record: &IdempotencyRecord, now: OffsetDateTime) -> Result<Claim, IdempotencyError> {
        let record = record.clone();
        let ids = serde_json::to_string(&record.ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|_| IdempotencyError::Unavailable("record cannot be encoded".into()))?;
        let now_ns = to_nanos(now);
        // Purging uses the caller's clock, not the system's, so an injected clock sees the same
        // expiry rules in the purge as in the claim.
        let last_purge = self.last_idempotency_purge_ns.clone();
        let purge_due = now_ns.saturating_sub(last_purge.load(Ordering::Relaxed)) >= IDEMPOTENCY_PURGE_EVERY_NS;
        self.writer
            .run(move |c| {
                if purge_due {
                    let n = c
                        .prepare_cached("DELETE FROM idempotency WHERE expires_at_ns <= ?1")?
                        .execute(params![now_ns])?;
                    last_purge.store(now_ns, Ordering::Relaxed);
                    if n > 0 {
                        tracing::debug!(purged = n, "purged expired idempotency records");
                    }
                }
                let existing = c
                    .prepare_cached(
                        "SELECT fingerprint, ids, single, payload, completed, expires_at_ns FROM idempotency \
                         WHERE tenant = ?1 AND key = ?2 AND expires_at_ns > ?3",
                    )?
                    .query_row(params![record.tenant.as_str(), record.key.as_str(), now_ns], |r| {
                        decode_idempotency(&record.tenant, &record.key, r)
                    })
                    .optional()?;
                match existing {
                    Some(Some(prior)) => Ok(Ok(Claim::Existing(prior))),
                    Some(None) => Ok(Err(IdempotencyError::Unavailable("a stored record is corrupt".into()))),
                    None => {
                        c.prepare_cached(
                            "INSERT OR REPLACE INTO idempotency \
                             (tenant, key, fingerprint, ids, single, payload, completed, expires_at_ns) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )?
                        .execute(params![
                            record.tenant.as_str(),
                            record.key.as_str(),
                            record.fingerprint,
                            ids,
                            record.single,
                            record.payload,
                            record.completed,
                            to_nanos(record.expires_at)
                        ])?;
                        Ok(Ok(Claim::Claimed))
                    }
                }
            })
            .await
            .map_err(idem_unavailable)?
    }

    async fn complete(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<(), IdempotencyError> {
        let tenant = tenant.as_str().to_owned();
        let key = key.as_str().to_owned();
        self.writer
            .run(move |c| {
                c.prepare_cached("UPDATE idempotency SET completed = 1 WHERE tenant = ?1 AND key = ?2")?
                    .execute(params![tenant, key])
            })
            .await
            .map_err(idem_unavailable)?;
        Ok(())
    }
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
impl KeyStore for StoreDb {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyStoreError> {
        let r = record.clone();
        let inserted = self
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
        let id = id.as_str().to_owned();
        let row = self
            .reader
            .read(move |c| {
                c.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))?
                    .query_row(params![id], read_key)
                    .optional()
            })
            .await
            .map_err(keys_unavailable)?;
        row.map(decode_key).transpose()
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError> {
        let rows = self
            .reader
            .read(|c| {
                c.prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at_ns, id"
                ))?
                .query_map([], read_key)?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(keys_unavailable)?;
        rows.into_iter().map(decode_key).collect()
    }

    async fn revoke(&self, id: &KeyId, at: OffsetDateTime) -> Result<(), KeyStoreError> {
        let id = id.as_str().to_owned();
        let at = to_nanos(at);
        let n = self
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
