//! [`EmbeddedEvents`]: the [`EventStore`] port on the store database's `events` table.
//!
//! Rows are keyed like the DynamoDB items (`(tenant, id)` clustered `WITHOUT ROWID`, so one
//! tenant's events sit together in id order, as in a partition). The process step stores many
//! events at once, so a batch put is one writer command and its events share an fsync. Each new
//! row takes its tenant's next feed seq in the same transaction (see `feed.rs`).

use crate::sqlite::DbFailure;
use crate::store::StoreDb;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sluice_core::payload::Payload;
use sluice_core::ports::{Deleted, Deletion, ErasureRecord, FeedEntry, FeedError, FeedPage, FeedQuery};
use sluice_core::ports::{EventStore, ListQuery, Page, PutOutcome, StoreError};
use sluice_core::{EventId, EventType, IdempotencyKey, RequestId, StoredEvent, Tenant};
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The largest page a list returns (DynamoDB's `Limit` has no such cap, the query API does).
pub const MAX_LIST_LIMIT: usize = 1000;

/// The [`EventStore`] port on a [`StoreDb`]; made by [`StoreDb::events`]. Cheap to clone: it
/// shares the database handle.
#[derive(Debug, Clone)]
pub struct EmbeddedEvents {
    db: Arc<StoreDb>,
}

impl EmbeddedEvents {
    pub(crate) fn new(db: Arc<StoreDb>) -> Self {
        Self { db }
    }
}

/// Now, as `expires_at_ms` compares: reads by id and lists hide expired rows at once.
fn now_ms() -> i64 {
    crate::feed::ms(OffsetDateTime::now_utc())
}

fn store_unavailable(f: DbFailure) -> StoreError {
    StoreError::Unavailable(f.reason())
}

fn rfc3339(t: OffsetDateTime) -> Result<String, StoreError> {
    t.format(&Rfc3339)
        .map_err(|_| StoreError::Unavailable("a time cannot be stored".into()))
}

/// An event row as stored, decoded outside the database thread.
pub(crate) struct EventRow {
    tenant: String,
    id: String,
    event_type: String,
    data: String,
    occurred_at: String,
    received_at: String,
    request_id: String,
    subject: Option<String>,
    /// The [`sluice_core::event::WebhookOrigin`] as JSON.
    webhook: Option<String>,
    /// The extension attributes as a JSON object; none when there are none.
    extensions: Option<String>,
    /// The request's trace id.
    trace_id: Option<String>,
    /// The feed position (set by the insert, read back by reads).
    pub(crate) seq: Option<i64>,
    expires_at_ms: Option<i64>,
    idempotency_key: Option<String>,
}

/// The conditional puts of one writer command, inside the writer's transaction: each row is
/// inserted unless its (tenant, id) exists, and takes its tenant's next seq when it goes in.
///
/// Each tenant's counter is read once per command and written back once, not per row: the
/// command holds the write lock, so nothing else moves it meanwhile. The conflict target is the
/// key only: a clash on (tenant, seq) would be a bug, and must fail the group rather than pass as
/// a duplicate. A deleted event's redelivery finds its tombstone and is a duplicate: a deletion
/// stays.
fn insert_all_if_absent(c: &Connection, rows: &[EventRow]) -> rusqlite::Result<Vec<PutOutcome>> {
    let mut next: std::collections::HashMap<&str, (i64, bool)> = std::collections::HashMap::new();
    let mut counter = c.prepare_cached("SELECT last_seq FROM feed_counters WHERE tenant = ?1")?;
    let mut insert = c.prepare_cached(
        "INSERT INTO events \
         (tenant, id, event_type, data, occurred_at, received_at, request_id, subject, webhook, extensions, trace_id, \
          expires_at_ms, idempotency_key, seq) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14 \
         WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE tenant = ?1 AND deleted = ?2) \
         ON CONFLICT (tenant, id) DO NOTHING",
    )?;
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = match next.get_mut(row.tenant.as_str()) {
            Some(s) => s,
            None => {
                let last: i64 = counter.query_row([&row.tenant], |r| r.get(0)).optional()?.unwrap_or(0);
                next.entry(row.tenant.as_str()).or_insert((last, false))
            }
        };
        let n = insert.execute(params![
            row.tenant,
            row.id,
            row.event_type,
            row.data,
            row.occurred_at,
            row.received_at,
            row.request_id,
            row.subject,
            row.webhook,
            row.extensions,
            row.trace_id,
            row.expires_at_ms,
            row.idempotency_key,
            seq.0 + 1
        ])?;
        if n == 1 {
            *seq = (seq.0 + 1, true);
            outcomes.push(PutOutcome::Created);
        } else {
            outcomes.push(PutOutcome::AlreadyExists);
        }
    }
    let mut save = c.prepare_cached(
        "INSERT INTO feed_counters (tenant, last_seq) VALUES (?1, ?2) \
         ON CONFLICT (tenant) DO UPDATE SET last_seq = excluded.last_seq",
    )?;
    for (tenant, (last, moved)) in next {
        if moved {
            save.execute(params![tenant, last])?;
        }
    }
    Ok(outcomes)
}

impl EventRow {
    pub(crate) const COLUMNS: &'static str = "tenant, id, event_type, data, occurred_at, received_at, request_id, subject, \
         webhook, extensions, trace_id, seq, expires_at_ms, idempotency_key";

    pub(crate) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            tenant: r.get(0)?,
            id: r.get(1)?,
            event_type: r.get(2)?,
            data: r.get(3)?,
            occurred_at: r.get(4)?,
            received_at: r.get(5)?,
            request_id: r.get(6)?,
            subject: r.get(7)?,
            webhook: r.get(8)?,
            extensions: r.get(9)?,
            trace_id: r.get(10)?,
            seq: r.get(11)?,
            expires_at_ms: r.get(12)?,
            idempotency_key: r.get(13)?,
        })
    }

    fn encode(e: &StoredEvent) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: e.tenant.as_str().to_owned(),
            id: e.id.to_string(),
            event_type: e.event_type.as_str().to_owned(),
            data: e.data.get().to_owned(),
            occurred_at: rfc3339(e.occurred_at)?,
            received_at: rfc3339(e.received_at)?,
            request_id: e.request_id.as_str().to_owned(),
            subject: e.subject.clone(),
            webhook: e
                .webhook
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|_| StoreError::Unavailable("an event's webhook origin cannot be encoded".into()))?,
            extensions: (!e.extensions.is_empty())
                .then(|| serde_json::to_string(&e.extensions))
                .transpose()
                .map_err(|_| StoreError::Unavailable("an event's extensions cannot be encoded".into()))?,
            trace_id: e.trace_id.clone(),
            seq: None,
            expires_at_ms: e.expires_at.map(crate::feed::ms),
            idempotency_key: e.idempotency_key.as_ref().map(|k| k.as_str().to_owned()),
        })
    }

    pub(crate) fn decode(self) -> Result<StoredEvent, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("bad {what} in event {}", self.id.escape_debug()));
        Ok(StoredEvent {
            seq: self
                .seq
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| corrupt("seq"))?,
            expires_at: self
                .expires_at_ms
                .map(|v| OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000))
                .transpose()
                .map_err(|_| corrupt("expires_at_ms"))?,
            idempotency_key: self
                .idempotency_key
                .as_deref()
                .map(IdempotencyKey::parse)
                .transpose()
                .map_err(|_| corrupt("idempotency_key"))?,
            trace_id: self.trace_id.clone(),
            id: EventId::parse(&self.id).map_err(|_| corrupt("id"))?,
            tenant: Tenant::parse(&self.tenant).map_err(|_| corrupt("tenant"))?,
            event_type: EventType::parse(&self.event_type).map_err(|_| corrupt("type"))?,
            data: Payload::from_json(self.data).map_err(|_| corrupt("data"))?,
            occurred_at: OffsetDateTime::parse(&self.occurred_at, &Rfc3339).map_err(|_| corrupt("occurred_at"))?,
            received_at: OffsetDateTime::parse(&self.received_at, &Rfc3339).map_err(|_| corrupt("received_at"))?,
            request_id: RequestId::parse(&self.request_id).map_err(|_| corrupt("request_id"))?,
            webhook: self
                .webhook
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt("webhook"))?,
            extensions: self
                .extensions
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt("extensions"))?
                .unwrap_or_default(),
            subject: self.subject,
        })
    }
}

#[async_trait]
impl EventStore for EmbeddedEvents {
    async fn put_if_absent(&self, event: &StoredEvent) -> Result<PutOutcome, StoreError> {
        let row = EventRow::encode(event)?;
        self.db
            .writer
            .run(move |c| {
                insert_all_if_absent(c, std::slice::from_ref(&row))
                    .map(|o| o.first().copied().unwrap_or(PutOutcome::AlreadyExists))
            })
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
            self.db.writer.run(move |c| insert_all_if_absent(c, &rows)).await
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
            .db
            .reader
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {} FROM events WHERE tenant = ?1 AND id = ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?3)",
                    EventRow::COLUMNS
                ))?
                .query_row(params![tenant, id, now_ms()], EventRow::read)
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
        let now = now_ms();
        let rows = self
            .db
            .reader
            .read(move |c| {
                let cols = EventRow::COLUMNS;
                match event_type {
                    Some(t) => c
                        .prepare_cached(&format!(
                            "SELECT {cols} FROM events WHERE tenant = ?1 AND event_type = ?2 AND id < ?3 \
                             AND (expires_at_ms IS NULL OR expires_at_ms > ?5) ORDER BY id DESC LIMIT ?4"
                        ))?
                        .query_map(params![tenant, t, before, fetch, now], EventRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>(),
                    None => c
                        .prepare_cached(&format!(
                            "SELECT {cols} FROM events WHERE tenant = ?1 AND id < ?2 \
                             AND (expires_at_ms IS NULL OR expires_at_ms > ?4) ORDER BY id DESC LIMIT ?3"
                        ))?
                        .query_map(params![tenant, before, fetch, now], EventRow::read)?
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

    async fn feed(&self, tenant: &Tenant, query: &FeedQuery, now: OffsetDateTime) -> Result<FeedPage, FeedError> {
        let t = tenant.as_str().to_owned();
        let q = query.clone();
        let now_ms = crate::feed::ms(now);
        let raw = self
            .db
            .reader
            .read(move |c| crate::feed::read_feed(c, &t, &q, now_ms))
            .await
            .map_err(store_unavailable)?;
        let after = query.after;
        let floor = u64::try_from(raw.floor).unwrap_or(0);
        if after != 0 && after < floor {
            return Err(FeedError::Expired { earliest_after: floor });
        }
        let start = after;
        let full = raw.entries.len() >= query.limit;
        let mut entries = Vec::with_capacity(raw.entries.len());
        for e in raw.entries {
            entries.push(match e {
                crate::feed::RawEntry::Event(row) => FeedEntry::Event(Box::new((*row).decode()?)),
                crate::feed::RawEntry::Tombstone {
                    seq,
                    deleted,
                    deleted_at,
                    event_type,
                    expires_at_ms,
                } => FeedEntry::Tombstone(crate::feed::RawEntry::decode_tombstone(
                    seq,
                    &deleted,
                    &deleted_at,
                    &event_type,
                    expires_at_ms,
                )?),
            });
        }
        // A short page covered everything committed in its snapshot: continue from the
        // snapshot's counter, past deleted and filtered-out seqs, never beyond it.
        let next_after = match (full, entries.last()) {
            (true, Some(last)) => last.seq(),
            _ => u64::try_from(raw.last_seq).unwrap_or(0).max(start),
        };
        Ok(FeedPage { entries, next_after })
    }

    async fn delete(&self, tenant: &Tenant, id: &EventId, how: Deletion) -> Result<Option<Deleted>, StoreError> {
        let t = tenant.as_str().to_owned();
        let id_s = id.to_string();
        let now = now_ms();
        let out = self
            .db
            .writer
            .run(move |c| crate::feed::delete_event(c, &t, &id_s, &how, now))
            .await
            .map_err(store_unavailable)?;
        out.map(|(seq, key)| crate::feed::deleted(&id.to_string(), seq, key))
            .transpose()
    }

    async fn delete_subject(
        &self,
        tenant: &Tenant,
        subject: &str,
        before: OffsetDateTime,
        how: Deletion,
        max: usize,
    ) -> Result<Vec<Deleted>, StoreError> {
        let t = tenant.as_str().to_owned();
        let subject = subject.to_owned();
        let now = now_ms();
        // Found and deleted in one writer command: nothing can slip in between.
        let rows = self
            .db
            .writer
            .run(move |c| {
                let ids = crate::feed::subject_events(c, &t, &subject, before, now, max)?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some((seq, key)) = crate::feed::delete_event(c, &t, &id, &how, now)? {
                        out.push((id, seq, key));
                    }
                }
                Ok(out)
            })
            .await
            .map_err(store_unavailable)?;
        rows.into_iter()
            .map(|(id, seq, key)| crate::feed::deleted(&id, seq, key))
            .collect()
    }

    async fn put_erasure(&self, record: &ErasureRecord) -> Result<(), StoreError> {
        let json = sluice_core::ports::store::encode_erasure(record)?;
        let r = record.clone();
        self.db
            .writer
            .run(move |c| crate::feed::put_erasure(c, &r, &json))
            .await
            .map_err(store_unavailable)
    }

    async fn get_erasure(&self, tenant: &Tenant, id: &str) -> Result<Option<ErasureRecord>, StoreError> {
        let t = tenant.as_str().to_owned();
        let id = id.to_owned();
        let json: Option<String> = self
            .db
            .reader
            .read(move |c| {
                c.prepare_cached("SELECT record FROM erasures WHERE tenant = ?1 AND id = ?2")?
                    .query_row(params![t, id], |r| r.get(0))
                    .optional()
            })
            .await
            .map_err(store_unavailable)?;
        json.as_deref()
            .map(sluice_core::ports::store::decode_erasure)
            .transpose()
    }

    async fn erased_until(&self, tenant: &Tenant, subject_sha256: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        let t = tenant.as_str().to_owned();
        let h = subject_sha256.to_owned();
        let ns: Option<i64> = self
            .db
            .reader
            .read(move |c| {
                c.prepare_cached("SELECT until_ns FROM erased_subjects WHERE tenant = ?1 AND subject_sha256 = ?2")?
                    .query_row(params![t, h], |r| r.get(0))
                    .optional()
            })
            .await
            .map_err(store_unavailable)?;
        Ok(ns.and_then(|v| OffsetDateTime::from_unix_timestamp_nanos(i128::from(v)).ok()))
    }
}
