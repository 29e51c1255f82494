//! Events out: the feed use case (reading a tenant's ordered feed), retention, deletion and
//! erasure by subject (I-3), free of HTTP and of any store.
//!
//! The ordering guarantee itself lives in the adapters (see [`crate::ports::store`]); this module
//! checks the caller's parameters, computes each event's expiry from the retention rules, and
//! runs an erasure in the order that makes it complete: first the subject is marked erased (so
//! the process step drops any of its events still in the queue, or redriven from the
//! dead-letter queue later), then stored events are deleted with tombstones, their idempotency
//! records forgotten, and the queues swept where the backend can sweep them.

use crate::clock::Clock;
use crate::envelope::Sealer;
use crate::event::{EventType, check_subject};
use crate::ids::{EventId, IdempotencyKey};
use crate::ports::{
    Deleted, Deletion, ErasureRecord, ErasureStatus, EventStore, FeedError, FeedPage, FeedQuery, IdempotencyStore,
    QueueError, QueueSweep, StoreError,
};
use crate::tenant::Tenant;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The largest page of a feed read.
pub const MAX_FEED_LIMIT: usize = 1000;
/// The page size when the caller gives none.
pub const DEFAULT_FEED_LIMIT: usize = 100;
/// The longest long-poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 20;
/// Events an erasure deletes per store call.
const ERASE_CHUNK: usize = 100;

/// How long events are kept: a default, and overrides per event type. Tombstones are kept for
/// the default, so a consumer that reads within the retention window sees every deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// For types without an override.
    pub default: Duration,
    /// Per event type.
    pub by_type: BTreeMap<EventType, Duration>,
}

impl Default for Retention {
    /// 30 days for every type.
    fn default() -> Self {
        Self {
            default: Duration::from_secs(30 * 86_400),
            by_type: BTreeMap::new(),
        }
    }
}

impl Retention {
    /// When an event of `ty` received at `received_at` expires.
    pub fn expires_at(&self, ty: &EventType, received_at: OffsetDateTime) -> Option<OffsetDateTime> {
        let keep = self.by_type.get(ty).copied().unwrap_or(self.default);
        received_at.checked_add(time::Duration::try_from(keep).ok()?)
    }

    /// When a tombstone written at `at` expires.
    pub fn tombstone_expires_at(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        at.checked_add(time::Duration::try_from(self.default).ok()?)
    }
}

/// SHA-256 of a subject, hex: how erasure records and markers name a subject without keeping it.
pub fn subject_digest(subject: &str) -> String {
    crate::text::hex_digest(&Sha256::digest(subject.as_bytes()))
}

/// Why a feed, deletion or erasure request failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedServiceError {
    /// A parameter is invalid (400).
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such event or erasure for this tenant (404).
    #[error("not found")]
    NotFound,
    /// Retention removed entries after `after` (410).
    #[error("expired; the earliest valid after is {earliest_after}")]
    Expired {
        /// Where to start again.
        earliest_after: u64,
    },
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A queue failed while an erasure swept it (503).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<FeedError> for FeedServiceError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Expired { earliest_after } => FeedServiceError::Expired { earliest_after },
            FeedError::Store(s) => FeedServiceError::Store(s),
        }
    }
}

/// A feed read's parameters as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct FeedParams<'a> {
    /// `after`.
    pub after: Option<&'a str>,
    /// `limit`.
    pub limit: Option<&'a str>,
    /// `type`.
    pub ty: Option<&'a str>,
    /// `wait`, in seconds.
    pub wait: Option<&'a str>,
}

/// A parsed feed read: the store query and how long to wait for the first entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRead {
    /// The query.
    pub query: FeedQuery,
    /// Long-poll for this long when nothing is new.
    pub wait: Duration,
}

fn invalid(name: &'static str, message: impl Into<String>) -> FeedServiceError {
    FeedServiceError::InvalidParameter {
        name,
        message: message.into(),
    }
}

/// Parses a feed read's parameters: `after` 0 or more, `limit` 1 to 1000, `wait` 0 to 20.
pub fn parse_feed_params(p: &FeedParams<'_>) -> Result<FeedRead, FeedServiceError> {
    let after = match p.after {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| invalid("after", "a whole number, 0 or more"))?,
    };
    let limit = match p.limit {
        None => DEFAULT_FEED_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_FEED_LIMIT).contains(&n) => n,
            _ => return Err(invalid("limit", format!("an integer from 1 to {MAX_FEED_LIMIT}"))),
        },
    };
    let event_type =
        p.ty.map(EventType::parse)
            .transpose()
            .map_err(|e| invalid("type", e.to_string()))?;
    let wait = match p.wait {
        None => 0,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n <= MAX_WAIT_SECS => n,
            _ => return Err(invalid("wait", format!("seconds from 0 to {MAX_WAIT_SECS}"))),
        },
    };
    Ok(FeedRead {
        query: FeedQuery {
            after,
            limit,
            event_type,
        },
        wait: Duration::from_secs(wait),
    })
}

/// Where an erasure also looks for messages: a queue the backend can sweep (the embedded one).
/// SQS cannot remove a chosen message without receiving it, so on AWS the process step's
/// check of the erasure marker drops such messages when they arrive instead.
#[derive(Clone)]
pub struct SweptQueue {
    /// The queue.
    pub queue: Arc<dyn QueueSweep>,
    /// Whether it is the dead-letter queue (for the receipt's counts).
    pub dead_letter: bool,
}

/// The feed, deletion and erasure use cases.
#[derive(Clone)]
pub struct FeedService {
    store: Arc<dyn EventStore>,
    idempotency: Option<Arc<dyn IdempotencyStore>>,
    sealer: Option<Arc<Sealer>>,
    swept: Vec<SweptQueue>,
    retention: Retention,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for FeedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedService").finish_non_exhaustive()
    }
}

impl FeedService {
    /// The use cases over `store`, with `retention` for tombstones.
    pub fn new(store: Arc<dyn EventStore>, retention: Retention, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            idempotency: None,
            sealer: None,
            swept: Vec::new(),
            retention,
            clock,
        }
    }

    /// Deletions forget the idempotency records of deleted events in `store`.
    pub fn with_idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = Some(store);
        self
    }

    /// Erasures also sweep `queues`, opening their messages with `sealer`.
    pub fn with_swept_queues(mut self, sealer: Arc<Sealer>, queues: Vec<SweptQueue>) -> Self {
        self.sealer = Some(sealer);
        self.swept = queues;
        self
    }

    /// The current time by the service's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// One read of `tenant`'s feed (no waiting: the host long-polls by calling again).
    pub async fn read(&self, tenant: &Tenant, query: &FeedQuery) -> Result<FeedPage, FeedServiceError> {
        let mut page = self.store.feed(tenant, query, self.clock.now()).await?;
        // Defence in depth: an adapter bug must not leak another tenant's entries.
        page.entries.retain(|e| match e {
            crate::ports::FeedEntry::Event(ev) => &ev.tenant == tenant,
            crate::ports::FeedEntry::Tombstone(_) => true,
        });
        Ok(page)
    }

    fn deletion(&self, at: OffsetDateTime) -> Deletion {
        Deletion {
            at,
            tombstone_expires_at: self.retention.tombstone_expires_at(at),
        }
    }

    /// Deletes `tenant`'s event `id` (404 exactly as a read answers) and forgets its
    /// idempotency record.
    pub async fn delete(&self, tenant: &Tenant, id: &str) -> Result<Deleted, FeedServiceError> {
        let id = EventId::parse(id).map_err(|_| FeedServiceError::NotFound)?;
        let deleted = self
            .store
            .delete(tenant, &id, self.deletion(self.clock.now()))
            .await?
            .ok_or(FeedServiceError::NotFound)?;
        if let Some(key) = &deleted.idempotency_key {
            self.forget(tenant, key).await;
        }
        Ok(deleted)
    }

    /// Forgets a record; a failure leaves a record that answers with a deleted id until it
    /// expires, which is logged and not worth failing a completed deletion for.
    async fn forget(&self, tenant: &Tenant, key: &IdempotencyKey) -> bool {
        let Some(store) = &self.idempotency else {
            return false;
        };
        match store.forget(tenant, key).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(target: "sluice::feed", tenant = %tenant, error = %e, "an idempotency record could not be forgotten");
                false
            }
        }
    }

    /// Records an erasure of `subject` for `tenant` (events received from now on are kept) and
    /// runs it to completion: the returned record is its receipt.
    pub async fn erase(
        &self,
        tenant: &Tenant,
        subject: &str,
        requested_by: &str,
    ) -> Result<ErasureRecord, FeedServiceError> {
        check_subject(subject).map_err(|e| invalid("subject", e.to_string()))?;
        let now = self.clock.now();
        let mut record = ErasureRecord {
            id: format!("era_{}", ulid::Ulid::from_datetime(now.into())),
            tenant: tenant.clone(),
            subject_sha256: subject_digest(subject),
            requested_by: requested_by.to_owned(),
            requested_at: now,
            status: ErasureStatus::Running,
            events_deleted: 0,
            idempotency_records: 0,
            queued_dropped: 0,
            dead_lettered_dropped: 0,
            completed_at: None,
        };
        // The marker first: from here on the process step drops the subject's queued events.
        self.store.put_erasure(&record).await?;
        loop {
            let batch = self
                .store
                .delete_subject(tenant, subject, now, self.deletion(self.clock.now()), ERASE_CHUNK)
                .await?;
            record.events_deleted += batch.len() as u64;
            for d in &batch {
                if let Some(key) = &d.idempotency_key
                    && self.forget(tenant, key).await
                {
                    record.idempotency_records += 1;
                }
            }
            if batch.len() < ERASE_CHUNK {
                break;
            }
        }
        if let Some(sealer) = &self.sealer {
            for q in &self.swept {
                let matches = |msg: &crate::ports::ReceivedMessage| {
                    sealer.open(msg).is_ok_and(|env| {
                        &env.tenant == tenant && env.subject.as_deref() == Some(subject) && env.received_at < now
                    })
                };
                let dropped = q.queue.drop_matching(tenant.as_str(), &matches).await?;
                if q.dead_letter {
                    record.dead_lettered_dropped += dropped;
                } else {
                    record.queued_dropped += dropped;
                }
            }
        }
        record.status = ErasureStatus::Completed;
        record.completed_at = Some(self.clock.now());
        self.store.put_erasure(&record).await?;
        Ok(record)
    }

    /// `tenant`'s erasure record `id`.
    pub async fn erasure(&self, tenant: &Tenant, id: &str) -> Result<ErasureRecord, FeedServiceError> {
        if !id.starts_with("era_") || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(FeedServiceError::NotFound);
        }
        match self.store.get_erasure(tenant, id).await? {
            Some(r) if &r.tenant == tenant => Ok(r),
            _ => Err(FeedServiceError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_parameters_are_bounded() {
        let ok = parse_feed_params(&FeedParams {
            after: Some("42"),
            limit: Some("1000"),
            ty: Some("a.b"),
            wait: Some("20"),
        })
        .unwrap();
        assert_eq!(ok.query.after, 42);
        assert_eq!(ok.query.limit, 1000);
        assert_eq!(ok.wait, Duration::from_secs(20));
        let d = parse_feed_params(&FeedParams::default()).unwrap();
        assert_eq!(
            (d.query.after, d.query.limit, d.wait),
            (0, DEFAULT_FEED_LIMIT, Duration::ZERO)
        );
        for bad in [
            FeedParams {
                after: Some("-1"),
                ..Default::default()
            },
            FeedParams {
                after: Some("x"),
                ..Default::default()
            },
            FeedParams {
                limit: Some("0"),
                ..Default::default()
            },
            FeedParams {
                limit: Some("1001"),
                ..Default::default()
            },
            FeedParams {
                wait: Some("21"),
                ..Default::default()
            },
            FeedParams {
                ty: Some("Bad"),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(parse_feed_params(&bad), Err(FeedServiceError::InvalidParameter { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn retention_is_per_type_with_a_default() {
        let a = EventType::parse("a").unwrap();
        let b = EventType::parse("b").unwrap();
        let r = Retention {
            default: Duration::from_secs(100),
            by_type: BTreeMap::from([(a.clone(), Duration::from_secs(10))]),
        };
        let t = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(r.expires_at(&a, t), Some(t + time::Duration::seconds(10)));
        assert_eq!(r.expires_at(&b, t), Some(t + time::Duration::seconds(100)));
        assert_eq!(r.tombstone_expires_at(t), Some(t + time::Duration::seconds(100)));
    }
}
