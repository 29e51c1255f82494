//! The feed on the store database: seq assignment, feed reads, deletions with tombstones,
//! retention and erasure records, as statements run by [`crate::events::EmbeddedEvents`].
//!
//! Why the checkpoint guarantee holds here: seqs come from `feed_counters` inside the single
//! writer's transaction, so a transaction's seqs are all greater than every committed one, and
//! a reader's snapshot (one read transaction) holds each tenant's committed seqs as a prefix.
//! A read returns entries from that snapshot only, and its `next_after` never passes the
//! snapshot's counter, so nothing at or below a returned seq can commit later.

use crate::events::EventRow;
use rusqlite::{Connection, OptionalExtension, params};
use sluice_core::ports::{Deleted, Deletion, ErasureRecord, FeedQuery, StoreError, Tombstone};
use sluice_core::{EventId, EventType, IdempotencyKey};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Rows the housekeeping removes per run, so one run never holds the write lock for long.
const PURGE_BATCH: i64 = 10_000;

/// Milliseconds since the epoch, as `expires_at_ms` stores instants.
pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_ms(v: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000).ok()
}

/// The tenant's next seq, taken inside the caller's (the writer's) transaction.
pub(crate) fn next_seq(c: &Connection, tenant: &str) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO feed_counters (tenant, last_seq) VALUES (?1, 1) \
         ON CONFLICT (tenant) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
    )?
    .query_row([tenant], |r| r.get(0))
}

/// One entry as read, before decoding.
pub(crate) enum RawEntry {
    Event(Box<EventRow>),
    Tombstone {
        seq: i64,
        deleted: String,
        deleted_at: String,
        event_type: String,
        expires_at_ms: Option<i64>,
    },
}

/// What one feed read saw in its snapshot.
pub(crate) struct RawFeed {
    pub(crate) entries: Vec<RawEntry>,
    /// The counter in the same snapshot: every seq up to it is committed.
    pub(crate) last_seq: i64,
    /// The highest seq removed by retention (purged, or expired and not yet purged), 0 if none.
    pub(crate) floor: i64,
}

/// Reads the feed in one read transaction (one snapshot).
pub(crate) fn read_feed(c: &Connection, tenant: &str, q: &FeedQuery, now_ms: i64) -> rusqlite::Result<RawFeed> {
    c.execute_batch("BEGIN")?;
    let out = read_feed_in_snapshot(c, tenant, q, now_ms);
    let _ = c.execute_batch("COMMIT");
    out
}

fn read_feed_in_snapshot(c: &Connection, tenant: &str, q: &FeedQuery, now_ms: i64) -> rusqlite::Result<RawFeed> {
    let (last_seq, purged): (i64, i64) = c
        .prepare_cached("SELECT last_seq, purged_through FROM feed_counters WHERE tenant = ?1")?
        .query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    let expired: i64 = c
        .prepare_cached(
            // INDEXED BY: left to itself SQLite answers MAX(seq) by walking the tenant's whole
            // seq index backwards until an expired row turns up, so a read cost the tenant's
            // size; the expiry index visits only the expired rows not yet purged.
            "SELECT MAX(m) FROM ( \
               SELECT MAX(seq) AS m FROM events INDEXED BY events_by_expiry \
                 WHERE tenant = ?1 AND expires_at_ms IS NOT NULL AND expires_at_ms <= ?2 \
               UNION ALL SELECT MAX(seq) FROM tombstones INDEXED BY tombstones_by_expiry \
                 WHERE tenant = ?1 AND expires_at_ms IS NOT NULL AND expires_at_ms <= ?2)",
        )?
        .query_row(params![tenant, now_ms], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(0);
    let floor = purged.max(expired);
    // `after = 0` starts at the oldest entry still kept: expired ones are filtered below.
    let after = i64::try_from(q.after).unwrap_or(i64::MAX);
    if after != 0 && after < floor {
        return Ok(RawFeed {
            entries: Vec::new(),
            last_seq,
            floor,
        });
    }
    let limit = i64::try_from(q.limit).unwrap_or(1000);
    let ty = q.event_type.as_ref().map(|t| t.as_str().to_owned());
    let cols = EventRow::COLUMNS;
    // Both halves are bounded by the limit and merged by seq; a NULL type matches all.
    let mut events: Vec<EventRow> = c
        .prepare_cached(&format!(
            "SELECT {cols} FROM events WHERE tenant = ?1 AND seq > ?2 AND (?3 IS NULL OR event_type = ?3) \
             AND (expires_at_ms IS NULL OR expires_at_ms > ?4) ORDER BY seq LIMIT ?5"
        ))?
        .query_map(params![tenant, after, ty, now_ms, limit], EventRow::read)?
        .collect::<rusqlite::Result<_>>()?;
    let tombs: Vec<RawEntry> = c
        .prepare_cached(
            "SELECT seq, deleted, deleted_at, event_type, expires_at_ms FROM tombstones \
             WHERE tenant = ?1 AND seq > ?2 AND (?3 IS NULL OR event_type = ?3) \
             AND (expires_at_ms IS NULL OR expires_at_ms > ?4) ORDER BY seq LIMIT ?5",
        )?
        .query_map(params![tenant, after, ty, now_ms, limit], |r| {
            Ok(RawEntry::Tombstone {
                seq: r.get(0)?,
                deleted: r.get(1)?,
                deleted_at: r.get(2)?,
                event_type: r.get(3)?,
                expires_at_ms: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut entries: Vec<RawEntry> = events
        .drain(..)
        .map(|e| RawEntry::Event(Box::new(e)))
        .chain(tombs)
        .collect();
    entries.sort_by_key(RawEntry::seq);
    entries.truncate(q.limit);
    Ok(RawFeed {
        entries,
        last_seq,
        floor,
    })
}

impl RawEntry {
    pub(crate) fn seq(&self) -> i64 {
        match self {
            RawEntry::Event(e) => e.seq.unwrap_or(0),
            RawEntry::Tombstone { seq, .. } => *seq,
        }
    }

    pub(crate) fn decode_tombstone(
        seq: i64,
        deleted: &str,
        deleted_at: &str,
        event_type: &str,
        expires_at_ms: Option<i64>,
    ) -> Result<Tombstone, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("bad tombstone at seq {seq}"));
        Ok(Tombstone {
            seq: u64::try_from(seq).map_err(|_| corrupt())?,
            deleted: EventId::parse(deleted).map_err(|_| corrupt())?,
            deleted_at: OffsetDateTime::parse(deleted_at, &Rfc3339).map_err(|_| corrupt())?,
            event_type: EventType::parse(event_type).map_err(|_| corrupt())?,
            expires_at: expires_at_ms.and_then(from_ms),
        })
    }
}

/// Deletes one event (if present and not expired at `now_ms`) and appends its tombstone.
pub(crate) fn delete_event(
    c: &Connection,
    tenant: &str,
    id: &str,
    how: &Deletion,
    now_ms: i64,
) -> rusqlite::Result<Option<(i64, Option<String>)>> {
    let found: Option<(String, Option<String>)> = c
        .prepare_cached(
            "DELETE FROM events WHERE tenant = ?1 AND id = ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?3) \
             RETURNING event_type, idempotency_key",
        )?
        .query_row(params![tenant, id, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((event_type, key)) = found else {
        return Ok(None);
    };
    let seq = next_seq(c, tenant)?;
    let at = how.at.format(&Rfc3339).map_err(|_| rusqlite::Error::InvalidQuery)?;
    c.prepare_cached(
        "INSERT INTO tombstones (tenant, seq, deleted, deleted_at, event_type, expires_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        tenant,
        seq,
        id,
        at,
        event_type,
        how.tombstone_expires_at.map(ms)
    ])?;
    Ok(Some((seq, key)))
}

/// The ids of `tenant`'s unexpired events about `subject` received before `before`, at most `max`.
pub(crate) fn subject_events(
    c: &Connection,
    tenant: &str,
    subject: &str,
    before: OffsetDateTime,
    now_ms: i64,
    max: usize,
) -> rusqlite::Result<Vec<String>> {
    let rows: Vec<(String, String)> = c
        .prepare_cached(
            "SELECT id, received_at FROM events WHERE tenant = ?1 AND subject = ?2 \
             AND (expires_at_ms IS NULL OR expires_at_ms > ?3) ORDER BY id",
        )?
        .query_map(params![tenant, subject, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows
        .into_iter()
        // Received-at text is compared as an instant: RFC 3339 strings with different
        // fraction lengths do not sort as text.
        .filter(|(_, at)| OffsetDateTime::parse(at, &Rfc3339).is_ok_and(|t| t < before))
        .map(|(id, _)| id)
        .take(max)
        .collect())
}

/// Turns a deletion's raw result into the port's.
pub(crate) fn deleted(id: &str, seq: i64, key: Option<String>) -> Result<Deleted, StoreError> {
    Ok(Deleted {
        id: EventId::parse(id).map_err(|_| StoreError::Corrupt("a deleted row had a bad id".into()))?,
        tombstone_seq: u64::try_from(seq).unwrap_or(0),
        idempotency_key: key.as_deref().and_then(|k| IdempotencyKey::parse(k).ok()),
    })
}

/// Removes events and tombstones expired at `now`, recording the highest seq removed per
/// tenant as its `purged_through` (reads answer 410 for an `after` below it); at most
/// [`PURGE_BATCH`] rows a call, tenant by tenant through each table's expiry index.
pub(crate) fn purge_expired(c: &Connection, now: OffsetDateTime) -> rusqlite::Result<u64> {
    let now_ms = ms(now);
    let tenants: Vec<String> = c
        .prepare_cached("SELECT tenant FROM feed_counters")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut removed = 0u64;
    for tenant in tenants {
        for (table, index) in [("events", "events_by_expiry"), ("tombstones", "tombstones_by_expiry")] {
            let budget = PURGE_BATCH - i64::try_from(removed).unwrap_or(PURGE_BATCH);
            if budget <= 0 {
                return Ok(removed);
            }
            let gone: Vec<i64> = c
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE tenant = ?1 AND seq IN \
                     (SELECT seq FROM {table} INDEXED BY {index} \
                      WHERE tenant = ?1 AND expires_at_ms IS NOT NULL AND expires_at_ms <= ?2 LIMIT ?3) \
                     RETURNING seq"
                ))?
                .query_map(params![tenant, now_ms, budget], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            removed += gone.len() as u64;
            if let Some(top) = gone.iter().max() {
                c.prepare_cached(
                    "UPDATE feed_counters SET purged_through = MAX(purged_through, ?2) WHERE tenant = ?1",
                )?
                .execute(params![tenant, top])?;
            }
        }
    }
    Ok(removed)
}

/// Creates or replaces an erasure record, and moves its subject's marker forward.
pub(crate) fn put_erasure(c: &Connection, r: &ErasureRecord, record_json: &str) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO erasures (tenant, id, record) VALUES (?1, ?2, ?3)")?
        .execute(params![r.tenant.as_str(), r.id, record_json])?;
    let until = i64::try_from(r.requested_at.unix_timestamp_nanos()).unwrap_or(i64::MAX);
    c.prepare_cached(
        "INSERT INTO erased_subjects (tenant, subject_sha256, until_ns) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tenant, subject_sha256) DO UPDATE SET until_ns = MAX(until_ns, excluded.until_ns)",
    )?
    .execute(params![r.tenant.as_str(), r.subject_sha256, until])?;
    Ok(())
}
