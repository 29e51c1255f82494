//! [`EmbeddedIdempotency`]: the [`IdempotencyStore`] port on the queue database's `idempotency`
//! table, which the queues' claiming sends (`claiming.rs`) share.
//!
//! A claim is one writer command, so checking for a live record and inserting a new one cannot
//! interleave with another claim (the conditional put DynamoDB does in one call). Expired records
//! are deleted now and then inside a claim, on the caller's clock.

use crate::queue_db::QueueDb;
use crate::sqlite::{DbFailure, from_nanos, to_nanos};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sluice_core::ports::{Claim, IdempotencyError, IdempotencyRecord, IdempotencyStore};
use sluice_core::{EventId, IdempotencyKey, Tenant};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// Expired idempotency records are deleted at most this often (in the caller's clock, nanos).
const IDEMPOTENCY_PURGE_EVERY_NS: i64 = 60 * 1_000_000_000;

/// The [`IdempotencyStore`] port on a [`QueueDb`]; made by [`QueueDb::idempotency`]. Cheap to
/// clone: it shares the database handle (and with it the purge schedule).
#[derive(Debug, Clone)]
pub struct EmbeddedIdempotency {
    db: Arc<QueueDb>,
}

impl EmbeddedIdempotency {
    pub(crate) fn new(db: Arc<QueueDb>) -> Self {
        Self { db }
    }
}

fn idem_unavailable(f: DbFailure) -> IdempotencyError {
    IdempotencyError::Unavailable(f.reason())
}

fn decode_idempotency(
    tenant: &Tenant,
    key: &IdempotencyKey,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    let fingerprint: String = r.get(0)?;
    let ids: String = r.get(1)?;
    let single: bool = r.get(2)?;
    let completed: bool = r.get(3)?;
    let expires_at_ns: i64 = r.get(4)?;
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
            completed,
            expires_at,
        }))
}

#[async_trait]
impl IdempotencyStore for EmbeddedIdempotency {
    async fn claim(&self, record: &IdempotencyRecord, now: OffsetDateTime) -> Result<Claim, IdempotencyError> {
        let claim = Claiming::new(record, now, &self.db.last_idempotency_purge_ns)?;
        self.db
            .writer
            .run(move |c| claim.apply(c))
            .await
            .map_err(idem_unavailable)?
    }

    async fn complete(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<(), IdempotencyError> {
        let tenant = tenant.as_str().to_owned();
        let key = key.as_str().to_owned();
        // Not awaited: the mark only spares a later retry a resend (of the same events under the
        // same ids, which the store keeps once), so the request does not wait for its fsync. A
        // claim queued after it on the same writer sees it.
        self.db
            .writer
            .submit("idempotency completion", move |c| {
                c.prepare_cached("UPDATE idempotency SET completed = 1 WHERE tenant = ?1 AND key = ?2")?
                    .execute(params![tenant, key])
                    .map(drop)
            })
            .map_err(idem_unavailable)
    }

    async fn forget(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<bool, IdempotencyError> {
        let tenant = tenant.as_str().to_owned();
        let key = key.as_str().to_owned();
        self.db
            .writer
            .run(move |c| {
                c.prepare_cached("DELETE FROM idempotency WHERE tenant = ?1 AND key = ?2")?
                    .execute(params![tenant, key])
                    .map(|n| n > 0)
            })
            .await
            .map_err(idem_unavailable)
    }
}

/// Expired records are deleted at most this often, on the caller's clock.
fn purge_due(last_purge: &AtomicI64, now_ns: i64) -> bool {
    now_ns.saturating_sub(last_purge.load(Ordering::Relaxed)) >= IDEMPOTENCY_PURGE_EVERY_NS
}

/// One claim, ready to run inside a writer command: on its own ([`IdempotencyStore::claim`]) or
/// with the messages it sends (`claiming.rs`).
pub(crate) struct Claiming {
    record: IdempotencyRecord,
    ids: String,
    now_ns: i64,
    purge: Option<Arc<AtomicI64>>,
}

impl Claiming {
    /// `record`, claimed at `now`; the purge of expired records rides along when it is due.
    pub(crate) fn new(
        record: &IdempotencyRecord,
        now: OffsetDateTime,
        last_purge: &Arc<AtomicI64>,
    ) -> Result<Self, IdempotencyError> {
        let ids = serde_json::to_string(&record.ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|_| IdempotencyError::Unavailable("record cannot be encoded".into()))?;
        let now_ns = to_nanos(now);
        // Purging uses the caller's clock, not the system's, so an injected clock sees the same
        // expiry rules in the purge as in the claim.
        let purge = purge_due(last_purge, now_ns).then(|| Arc::clone(last_purge));
        Ok(Self {
            record: record.clone(),
            ids,
            now_ns,
            purge,
        })
    }

    /// Marks the record completed when it is stored (a claim made with its send).
    pub(crate) fn completed(mut self) -> Self {
        self.record.completed = true;
        self
    }

    /// Checks for a live record and stores this one when there is none.
    pub(crate) fn apply(self, c: &Connection) -> rusqlite::Result<Result<Claim, IdempotencyError>> {
        let Self {
            record,
            ids,
            now_ns,
            purge,
        } = self;
        if let Some(last_purge) = purge {
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
                "SELECT fingerprint, ids, single, completed, expires_at_ns FROM idempotency \
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
                     (tenant, key, fingerprint, ids, single, completed, expires_at_ns) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    record.tenant.as_str(),
                    record.key.as_str(),
                    record.fingerprint,
                    ids,
                    record.single,
                    record.completed,
                    to_nanos(record.expires_at)
                ])?;
                Ok(Ok(Claim::Claimed))
            }
        }
    }
}
