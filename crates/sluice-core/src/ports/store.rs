//! The event store port: DynamoDB semantics (items keyed by tenant and id, conditional writes,
//! paged queries), each tenant's feed (events in the order they became readable, with
//! tombstones for deletions), and the erasure records that keep erased subjects out.
//!
//! The feed's contract, which every adapter keeps and the conformance suite checks: each stored
//! event and each tombstone gets a `seq`, an integer per tenant, strictly increasing in the order
//! entries become readable and never reused. Once any read has returned entries up to `M`, no
//! entry with `seq <= M` appears afterwards, whatever the concurrency, redeliveries or crashes:
//! a consumer may checkpoint `M`.

use crate::event::{EventType, StoredEvent};
use crate::ids::{EventId, IdempotencyKey};
use crate::tenant::Tenant;
use async_trait::async_trait;
use time::OffsetDateTime;

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The event was absent and is now stored.
    Created,
    /// An event with this tenant and id was already stored; nothing changed.
    AlreadyExists,
}

/// A page request over one tenant's events, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only events of this type.
    pub event_type: Option<EventType>,
    /// At most this many events (1 to 1000).
    pub limit: usize,
    /// Continue strictly after (older than) this id.
    pub after: Option<EventId>,
}

/// One page of events.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Newest first.
    pub events: Vec<StoredEvent>,
    /// Set when more events may follow: the `LastEvaluatedKey`.
    pub last: Option<EventId>,
}

/// A read of one tenant's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    /// Entries with a greater `seq` (0: from the oldest retained entry).
    pub after: u64,
    /// At most this many entries (1 to 1000).
    pub limit: usize,
    /// Only events of this type, and the tombstones of events of this type.
    pub event_type: Option<EventType>,
}

/// A deleted event's place in the feed, so a consumer that keeps copies can apply the deletion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tombstone {
    /// The tombstone's own place in the feed (after the deleted event's).
    pub seq: u64,
    /// The id of the deleted event.
    pub deleted: EventId,
    /// When it was deleted.
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: OffsetDateTime,
    /// The deleted event's type, for type-filtered feeds; not shown.
    #[serde(skip)]
    pub event_type: EventType,
    /// When retention removes the tombstone; not shown.
    #[serde(skip)]
    pub expires_at: Option<OffsetDateTime>,
}

/// One entry of a feed: an event, or the tombstone of a deleted one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum FeedEntry {
    /// A stored event.
    Event(Box<StoredEvent>),
    /// A deleted event.
    Tombstone(Tombstone),
}

impl FeedEntry {
    /// The entry's place in the feed.
    pub fn seq(&self) -> u64 {
        match self {
            FeedEntry::Event(e) => e.seq,
            FeedEntry::Tombstone(t) => t.seq,
        }
    }
}

/// One page of a feed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FeedPage {
    /// Ascending by `seq`.
    pub entries: Vec<FeedEntry>,
    /// Pass back as `after`: the last `seq` this read covered. It can be past the last entry
    /// returned (entries of other types, removed ones), and equals `after` when nothing is new.
    pub next_after: u64,
}

/// Why a feed read failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Retention has removed entries after `after`: reading on would skip them silently. Start
    /// again from `earliest_after` (410).
    #[error("entries after this point have expired; the earliest valid after is {earliest_after}")]
    Expired {
        /// The smallest `after` from which nothing has been removed.
        earliest_after: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a deletion removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The deleted event's id.
    pub id: EventId,
    /// The tombstone's place in the feed.
    pub tombstone_seq: u64,
    /// The `Idempotency-Key` that produced it, whose record is to be forgotten.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// How a deletion is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    /// When.
    pub at: OffsetDateTime,
    /// When retention removes the tombstone.
    pub tombstone_expires_at: Option<OffsetDateTime>,
}

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureStatus {
    /// Recorded; events accepted before `requested_at` are being removed.
    Running,
    /// Done: the receipt's counts are final.
    Completed,
}

impl ErasureStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStatus::Running => "running",
            ErasureStatus::Completed => "completed",
        }
    }

    /// Parses [`ErasureStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(ErasureStatus::Running),
            "completed" => Some(ErasureStatus::Completed),
            _ => None,
        }
    }
}

/// An erasure of one subject's events, and its receipt once done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureRecord {
    /// `era_<ULID>`.
    pub id: String,
    /// The owner; never shown.
    #[serde(skip_serializing)]
    pub tenant: Tenant,
    /// SHA-256 of the subject, hex: the record never keeps the subject it erased.
    pub subject_sha256: String,
    /// Who asked (an API key id, a JWT subject, `cli`).
    pub requested_by: String,
    /// Events received before this instant are erased; later ones are kept.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Running or completed.
    pub status: ErasureStatus,
    /// Stored events deleted (each leaves a tombstone in the feed).
    pub events_deleted: u64,
    /// Idempotency records forgotten.
    pub idempotency_records: u64,
    /// Messages dropped from the queue.
    pub queued_dropped: u64,
    /// Messages dropped from the dead-letter queue.
    pub dead_lettered_dropped: u64,
    /// When it completed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub completed_at: Option<OffsetDateTime>,
}

/// The stored form of an erasure record: every field, the tenant included, as one JSON string
/// (both adapters keep it as one column or attribute).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredErasure {
    tenant: String,
    id: String,
    subject_sha256: String,
    requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    requested_at: OffsetDateTime,
    status: String,
    events_deleted: u64,
    idempotency_records: u64,
    queued_dropped: u64,
    dead_lettered_dropped: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    completed_at: Option<OffsetDateTime>,
}

/// An erasure record as an adapter stores it.
pub fn encode_erasure(r: &ErasureRecord) -> Result<String, StoreError> {
    serde_json::to_string(&StoredErasure {
        tenant: r.tenant.as_str().to_owned(),
        id: r.id.clone(),
        subject_sha256: r.subject_sha256.clone(),
        requested_by: r.requested_by.clone(),
        requested_at: r.requested_at,
        status: r.status.as_str().to_owned(),
        events_deleted: r.events_deleted,
        idempotency_records: r.idempotency_records,
        queued_dropped: r.queued_dropped,
        dead_lettered_dropped: r.dead_lettered_dropped,
        completed_at: r.completed_at,
    })
    .map_err(|_| StoreError::Unavailable("an erasure record cannot be encoded".into()))
}

/// Reads [`encode_erasure`]'s form back.
pub fn decode_erasure(json: &str) -> Result<ErasureRecord, StoreError> {
    let corrupt = || StoreError::Corrupt("a bad erasure record".into());
    let s: StoredErasure = serde_json::from_str(json).map_err(|_| corrupt())?;
    Ok(ErasureRecord {
        tenant: Tenant::parse(&s.tenant).map_err(|_| corrupt())?,
        id: s.id,
        subject_sha256: s.subject_sha256,
        requested_by: s.requested_by,
        requested_at: s.requested_at,
        status: ErasureStatus::parse(&s.status).ok_or_else(corrupt)?,
        events_deleted: s.events_deleted,
        idempotency_records: s.idempotency_records,
        queued_dropped: s.queued_dropped,
        dead_lettered_dropped: s.dead_lettered_dropped,
        completed_at: s.completed_at,
    })
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot serve now (throttled, locked, disk full); retry with backoff (D-4).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored item could not be decoded: data written by something other than Sluice (T-3).
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

/// An event store with DynamoDB semantics.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores the event only if no event with its tenant and id exists (`attribute_not_exists`).
    async fn put_if_absent(&self, event: &StoredEvent) -> Result<PutOutcome, StoreError>;

    /// [`EventStore::put_if_absent`] for each of `events` (distinct ids): one result per event, in
    /// order, so one failure does not decide the others. The default puts them concurrently one
    /// by one (DynamoDB's `BatchWriteItem` has no conditions); a store that can write them
    /// together (one transaction) overrides it.
    async fn put_batch_if_absent(&self, events: &[StoredEvent]) -> Vec<Result<PutOutcome, StoreError>> {
        futures::future::join_all(events.iter().map(|e| self.put_if_absent(e))).await
    }

    /// The event with this id, if it belongs to `tenant`.
    async fn get(&self, tenant: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// One page of `tenant`'s events, newest first.
    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<Page, StoreError>;

    /// Entries of `tenant`'s feed after `query.after`, ascending, keeping the checkpoint
    /// guarantee (see the module). Entries whose `expires_at` is at or before `now` are never
    /// returned; an `after` they lie beyond is [`FeedError::Expired`] (except `after = 0`, which
    /// starts after them).
    async fn feed(&self, tenant: &Tenant, query: &FeedQuery, now: OffsetDateTime) -> Result<FeedPage, FeedError>;

    /// Deletes `tenant`'s event `id` and appends its tombstone; `None` when there is no such
    /// event (absent, expired or another tenant's).
    async fn delete(&self, tenant: &Tenant, id: &EventId, how: Deletion) -> Result<Option<Deleted>, StoreError>;

    /// Deletes `tenant`'s events about `subject` received before `before`, each as
    /// [`EventStore::delete`] does; at most `max` of them per call (call again while it returns
    /// `max`).
    async fn delete_subject(
        &self,
        tenant: &Tenant,
        subject: &str,
        before: OffsetDateTime,
        how: Deletion,
        max: usize,
    ) -> Result<Vec<Deleted>, StoreError>;

    /// Creates or replaces an erasure record, and marks its subject erased up to its
    /// `requested_at` (the latest such instant wins).
    async fn put_erasure(&self, record: &ErasureRecord) -> Result<(), StoreError>;

    /// `tenant`'s erasure record `id`.
    async fn get_erasure(&self, tenant: &Tenant, id: &str) -> Result<Option<ErasureRecord>, StoreError>;

    /// The latest instant up to which `subject` (by its SHA-256, hex) has been erased for
    /// `tenant`: an event about it received before that instant must not be stored.
    async fn erased_until(&self, tenant: &Tenant, subject_sha256: &str) -> Result<Option<OffsetDateTime>, StoreError>;
}
