//! In-memory adapters for every port, for tests that need ports but not a database: one set,
//! shared by the test crates, and held to the same conformance suite as the real adapters (see
//! this crate's `tests/conformance.rs`), so a test that passes on them does not lean on a
//! behaviour no real adapter has.
//!
//! - [`MemoryQueue`]: SQS semantics (batches of at most ten, long poll, visibility timeout,
//!   receive counts, redrive to a dead-letter queue after too many receives). Like the embedded
//!   queue, it refuses a superseded receipt handle, which the port allows but does not require.
//! - [`MemoryEvents`], [`MemoryIdempotency`], [`MemoryKeys`], [`MemorySources`]: the
//!   DynamoDB-shaped stores; [`MemoryPlans`]: tenant plans.
//!
//! Nothing persists, and each value is its own backend: a clone of an `Arc` shares it. Besides
//! the ports, each type has a few synchronous helpers to seed or inspect it from test code that
//! is not async (`seed`, `messages`, `len`). State sits behind a `std` mutex that is never held
//! across an await.

use async_trait::async_trait;
use sluice_core::ports::{
    Claim, Deleted, Deletion, ErasureRecord, EventStore, FeedEntry, FeedError, FeedPage, FeedQuery, IdempotencyError,
    IdempotencyRecord, IdempotencyStore, KeyRecord, KeyStore, KeyStoreError, ListQuery, MAX_BATCH, MessageAttributes,
    OutgoingMessage, Page, PlanError, PutOutcome, Queue, QueueDepth, QueueError, ReceiptHandle, ReceivedMessage,
    SourceRecord, SourceSecret, SourceStore, SourceStoreError, StoreError, TenantLimits, TenantPlans, Tombstone,
    check_limits,
};
use sluice_core::{EventId, IdempotencyKey, KeyId, SourceId, StoredEvent, Tenant};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use sluice_core::ports::{check_receive, check_send_batch, check_visibility};

/// Message ids are unique across every queue of the process, since a redriven message keeps its
/// id in the dead-letter queue.
static NEXT_MESSAGE: AtomicU64 = AtomicU64::new(0);

/// Locks `m`, ignoring poisoning: a test that panicked while holding it has failed already, and
/// the state is plain data that stays consistent between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One message as the queue holds it.
#[derive(Debug, Clone)]
struct Held {
    message_id: String,
    body: String,
    attributes: MessageAttributes,
    sent_at: OffsetDateTime,
    visible_at: Instant,
    receive_count: u32,
    /// The token of the latest receive; `None` until received (and again after a redrive).
    token: Option<u64>,
    /// Kept and returned; this double hands out in send order, without fairness across groups.
    group: Option<String>,
}

#[derive(Debug, Default)]
struct QueueState {
    /// In send order: the key is a sequence number, so a message whose visibility ran out is
    /// handed out before later sends.
    messages: BTreeMap<u64, Held>,
    next_seq: u64,
    next_token: u64,
    /// Every receipt handle this queue has issued: deleting with one of a message that is gone is
    /// a success (as on SQS), a handle never issued here is not.
    issued: HashSet<String>,
}

impl QueueState {
    fn push(&mut self, held: Held) {
        self.messages.insert(self.next_seq, held);
        self.next_seq += 1;
    }

    /// The message a receipt names, if it is still here: `Err` for a handle this queue never
    /// issued or one superseded by a later receive.
    fn find(&self, receipt: &ReceiptHandle) -> Result<Option<u64>, QueueError> {
        if !self.issued.contains(&receipt.0) {
            return Err(QueueError::InvalidReceipt);
        }
        let (id, token) = receipt.0.rsplit_once('#').ok_or(QueueError::InvalidReceipt)?;
        let token: u64 = token.parse().map_err(|_| QueueError::InvalidReceipt)?;
        match self.messages.iter().find(|(_, m)| m.message_id == id) {
            None => Ok(None),
            Some((seq, m)) if m.token == Some(token) => Ok(Some(*seq)),
            Some(_) => Err(QueueError::InvalidReceipt),
        }
    }
}

/// Where a queue's messages go after too many receives.
#[derive(Debug, Clone)]
struct DeadLetter {
    queue: Arc<MemoryQueue>,
    max_receive_count: u32,
}

/// A [`Queue`] in memory with SQS semantics. `Default` is an empty queue without a dead-letter
/// queue; [`MemoryQueue::with_dead_letter_queue`] adds one.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
    notify: Notify,
    dead_letter: Option<DeadLetter>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue whose messages move to `dlq` once they have been received
    /// `max_receive_count` times (SQS `RedrivePolicy`): on the next receive they are moved
    /// instead of handed out.
    pub fn with_dead_letter_queue(dlq: Arc<MemoryQueue>, max_receive_count: u32) -> Self {
        Self {
            dead_letter: Some(DeadLetter {
                queue: dlq,
                max_receive_count,
            }),
            ..Self::default()
        }
    }

    /// Every message the queue holds, visible or not, in send order, as it was sent: for tests
    /// that check what reached the queue without receiving it.
    pub fn messages(&self) -> Vec<OutgoingMessage> {
        lock(&self.state)
            .messages
            .values()
            .map(|m| OutgoingMessage {
                body: m.body.clone(),
                attributes: m.attributes.clone(),
                group: m.group.clone(),
            })
            .collect()
    }

    /// Takes a message moved here from another queue: same id, body, attributes and sent time,
    /// a fresh receive count, visible at once.
    fn accept_dead_letter(&self, mut held: Held) {
        held.receive_count = 0;
        held.token = None;
        held.visible_at = Instant::now();
        lock(&self.state).push(held);
        self.notify.notify_waiters();
    }

    /// One receive attempt: the messages handed out, and when the earliest hidden one becomes
    /// visible again.
    fn receive_now(&self, max: usize, visibility: Duration) -> (Vec<ReceivedMessage>, Option<Instant>) {
        let now = Instant::now();
        let mut dead = Vec::new();
        let mut out = Vec::new();
        let next_visible = {
            let mut state = lock(&self.state);
            let due: Vec<u64> = state
                .messages
                .iter()
                .filter(|(_, m)| m.visible_at <= now)
                .map(|(seq, _)| *seq)
                .collect();
            for seq in due {
                if out.len() == max {
                    break;
                }
                if let Some(dl) = &self.dead_letter
                    && state.messages[&seq].receive_count >= dl.max_receive_count
                {
                    if let Some(held) = state.messages.remove(&seq) {
                        dead.push(held);
                    }
                    continue;
                }
                let token = state.next_token;
                state.next_token += 1;
                let Some(m) = state.messages.get_mut(&seq) else {
                    continue;
                };
                m.receive_count = m.receive_count.saturating_add(1);
                m.visible_at = now + visibility;
                m.token = Some(token);
                let receipt = ReceiptHandle(format!("{}#{token}", m.message_id));
                out.push(ReceivedMessage {
                    message_id: m.message_id.clone(),
                    receipt: receipt.clone(),
                    body: m.body.clone(),
                    attributes: m.attributes.clone(),
                    receive_count: m.receive_count,
                    sent_at: m.sent_at,
                    group: m.group.clone(),
                });
                state.issued.insert(receipt.0);
            }
            state.messages.values().map(|m| m.visible_at).filter(|t| *t > now).min()
        };
        if let Some(dl) = &self.dead_letter {
            for held in dead {
                dl.queue.accept_dead_letter(held);
            }
        }
        (out, next_visible)
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        check_send_batch(&messages)?;
        let now = Instant::now();
        let sent_at = OffsetDateTime::now_utc();
        let ids = {
            let mut state = lock(&self.state);
            messages
                .into_iter()
                .map(|m| {
                    let message_id = format!("msg-{}", NEXT_MESSAGE.fetch_add(1, Ordering::Relaxed));
                    state.push(Held {
                        message_id: message_id.clone(),
                        body: m.body,
                        attributes: m.attributes,
                        sent_at,
                        visible_at: now,
                        receive_count: 0,
                        token: None,
                        group: m.group,
                    });
                    message_id
                })
                .collect()
        };
        self.notify.notify_waiters();
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        check_receive(max, wait, visibility)?;
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a send between the look and the sleep still wakes us.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (got, next_visible) = self.receive_now(max, visibility);
            let now = Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let wake = next_visible.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), QueueError> {
        let mut state = lock(&self.state);
        // A message already gone is a success, so retried deletes are harmless.
        if let Some(seq) = state.find(receipt)? {
            state.messages.remove(&seq);
        }
        Ok(())
    }

    async fn delete_batch(&self, receipts: &[ReceiptHandle]) -> Vec<Result<(), QueueError>> {
        if receipts.len() > MAX_BATCH {
            let e = QueueError::Invalid(format!("delete at most {MAX_BATCH} messages at once"));
            return receipts.iter().map(|_| Err(e.clone())).collect();
        }
        let mut out = Vec::with_capacity(receipts.len());
        for r in receipts {
            out.push(self.delete(r).await);
        }
        out
    }

    async fn change_visibility(&self, receipt: &ReceiptHandle, visibility: Duration) -> Result<(), QueueError> {
        check_visibility(visibility)?;
        {
            let mut state = lock(&self.state);
            let seq = state.find(receipt)?.ok_or(QueueError::InvalidReceipt)?;
            if let Some(m) = state.messages.get_mut(&seq) {
                m.visible_at = Instant::now() + visibility;
            }
        }
        if visibility.is_zero() {
            self.notify.notify_waiters();
        }
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let now = Instant::now();
        let state = lock(&self.state);
        let visible = state.messages.values().filter(|m| m.visible_at <= now).count() as u64;
        Ok(QueueDepth {
            visible,
            in_flight: state.messages.len() as u64 - visible,
        })
    }
}

/// One tenant's partition in [`MemoryEvents`].
#[derive(Debug, Default)]
struct Partition {
    events: BTreeMap<EventId, StoredEvent>,
    tombstones: BTreeMap<u64, Tombstone>,
    last_seq: u64,
}

/// An [`EventStore`] in memory: one partition per tenant, ordered by event id, with its feed.
/// Every call holds one lock, so each is atomic and the feed's guarantee holds trivially.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    partitions: Mutex<HashMap<Tenant, Partition>>,
    erasures: Mutex<HashMap<(Tenant, String), ErasureRecord>>,
    erased: Mutex<HashMap<(Tenant, String), OffsetDateTime>>,
}

fn live(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    expires_at.is_none_or(|t| t > now)
}

impl MemoryEvents {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The conditional put, without awaiting: for seeding from test code that is not async.
    pub fn seed(&self, mut event: StoredEvent) -> PutOutcome {
        let mut partitions = lock(&self.partitions);
        let p = partitions.entry(event.tenant.clone()).or_default();
        if p.events.contains_key(&event.id) || p.tombstones.values().any(|t| t.deleted == event.id) {
            return PutOutcome::AlreadyExists;
        }
        p.last_seq += 1;
        event.seq = p.last_seq;
        p.events.insert(event.id, event);
        PutOutcome::Created
    }

    /// How many events are stored, over all tenants.
    pub fn len(&self) -> usize {
        lock(&self.partitions).values().map(|p| p.events.len()).sum()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn delete_in(p: &mut Partition, id: &EventId, how: Deletion, now: OffsetDateTime) -> Option<Deleted> {
        if !p.events.get(id).is_some_and(|e| live(e.expires_at, now)) {
            return None;
        }
        let e = p.events.remove(id)?;
        p.last_seq += 1;
        p.tombstones.insert(
            p.last_seq,
            Tombstone {
                seq: p.last_seq,
                deleted: e.id,
                deleted_at: how.at,
                event_type: e.event_type,
                expires_at: how.tombstone_expires_at,
            },
        );
        Some(Deleted {
            id: e.id,
            tombstone_seq: p.last_seq,
            idempotency_key: e.idempotency_key,
        })
    }
}

#[async_trait]
impl EventStore for MemoryEvents {
    async fn put_if_absent(&self, event: &StoredEvent) -> Result<PutOutcome, StoreError> {
        Ok(self.seed(event.clone()))
    }

    async fn get(&self, tenant: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let now = OffsetDateTime::now_utc();
        Ok(lock(&self.partitions)
            .get(tenant)
            .and_then(|p| p.events.get(id))
            .filter(|e| live(e.expires_at, now))
            .cloned())
    }

    /// Newest first; `last` is set only when another matching event follows, as on the real
    /// stores.
    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.limit.max(1);
        let now = OffsetDateTime::now_utc();
        let partitions = lock(&self.partitions);
        let mut matching = partitions
            .get(tenant)
            .into_iter()
            .flat_map(|p| p.events.values().rev())
            .filter(|e| live(e.expires_at, now))
            .filter(|e| query.after.is_none_or(|after| e.id < after))
            .filter(|e| query.event_type.as_ref().is_none_or(|t| &e.event_type == t));
        let page: Vec<StoredEvent> = matching.by_ref().take(limit).cloned().collect();
        let last = if matching.next().is_some() {
            page.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Page { events: page, last })
    }

    async fn feed(&self, tenant: &Tenant, query: &FeedQuery, now: OffsetDateTime) -> Result<FeedPage, FeedError> {
        let partitions = lock(&self.partitions);
        let Some(p) = partitions.get(tenant) else {
            return Ok(FeedPage {
                entries: Vec::new(),
                next_after: query.after,
            });
        };
        // Retention removes without purging here: expired entries are the floor.
        let floor = p
            .events
            .values()
            .filter(|e| !live(e.expires_at, now))
            .map(|e| e.seq)
            .chain(
                p.tombstones
                    .values()
                    .filter(|t| !live(t.expires_at, now))
                    .map(|t| t.seq),
            )
            .max()
            .unwrap_or(0);
        if query.after != 0 && query.after < floor {
            return Err(FeedError::Expired { earliest_after: floor });
        }
        // `after = 0` starts at the oldest entry kept: expired ones are filtered out below.
        let start = query.after;
        let wanted = |ty: &sluice_core::EventType| query.event_type.as_ref().is_none_or(|t| t == ty);
        let mut entries: Vec<FeedEntry> = p
            .events
            .values()
            .filter(|e| e.seq > start && wanted(&e.event_type) && live(e.expires_at, now))
            .cloned()
            .map(|e| FeedEntry::Event(Box::new(e)))
            .chain(
                p.tombstones
                    .range(start + 1..)
                    .map(|(_, t)| t)
                    .filter(|t| wanted(&t.event_type) && live(t.expires_at, now))
                    .cloned()
                    .map(FeedEntry::Tombstone),
            )
            .collect();
        entries.sort_by_key(FeedEntry::seq);
        let full = entries.len() >= query.limit;
        entries.truncate(query.limit);
        let next_after = match (full, entries.last()) {
            (true, Some(last)) => last.seq(),
            _ => p.last_seq.max(start),
        };
        Ok(FeedPage { entries, next_after })
    }

    async fn delete(&self, tenant: &Tenant, id: &EventId, how: Deletion) -> Result<Option<Deleted>, StoreError> {
        let mut partitions = lock(&self.partitions);
        Ok(partitions
            .get_mut(tenant)
            .and_then(|p| Self::delete_in(p, id, how, OffsetDateTime::now_utc())))
    }

    async fn delete_subject(
        &self,
        tenant: &Tenant,
        subject: &str,
        before: OffsetDateTime,
        how: Deletion,
        max: usize,
    ) -> Result<Vec<Deleted>, StoreError> {
        let mut partitions = lock(&self.partitions);
        let Some(p) = partitions.get_mut(tenant) else {
            return Ok(Vec::new());
        };
        let now = OffsetDateTime::now_utc();
        let ids: Vec<EventId> = p
            .events
            .values()
            .filter(|e| e.subject.as_deref() == Some(subject) && e.received_at < before && live(e.expires_at, now))
            .map(|e| e.id)
            .take(max)
            .collect();
        Ok(ids.iter().filter_map(|id| Self::delete_in(p, id, how, now)).collect())
    }

    async fn put_erasure(&self, record: &ErasureRecord) -> Result<(), StoreError> {
        lock(&self.erasures).insert((record.tenant.clone(), record.id.clone()), record.clone());
        let mut erased = lock(&self.erased);
        let until = erased
            .entry((record.tenant.clone(), record.subject_sha256.clone()))
            .or_insert(record.requested_at);
        *until = (*until).max(record.requested_at);
        Ok(())
    }

    async fn get_erasure(&self, tenant: &Tenant, id: &str) -> Result<Option<ErasureRecord>, StoreError> {
        Ok(lock(&self.erasures).get(&(tenant.clone(), id.to_owned())).cloned())
    }

    async fn erased_until(&self, tenant: &Tenant, subject_sha256: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(lock(&self.erased)
            .get(&(tenant.clone(), subject_sha256.to_owned()))
            .copied())
    }
}

/// An [`IdempotencyStore`] in memory; an expired record counts as absent.
#[derive(Debug, Default)]
pub struct MemoryIdempotency {
    records: Mutex<HashMap<(Tenant, IdempotencyKey), IdempotencyRecord>>,
}

impl MemoryIdempotency {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotency {
    async fn claim(&self, record: &IdempotencyRecord, now: OffsetDateTime) -> Result<Claim, IdempotencyError> {
        let mut records = lock(&self.records);
        let key = (record.tenant.clone(), record.key.clone());
        match records.get(&key) {
            Some(prior) if prior.expires_at > now => Ok(Claim::Existing(prior.clone())),
            _ => {
                records.insert(key, record.clone());
                Ok(Claim::Claimed)
            }
        }
    }

    async fn forget(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<bool, IdempotencyError> {
        Ok(lock(&self.records).remove(&(tenant.clone(), key.clone())).is_some())
    }

    async fn complete(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<(), IdempotencyError> {
        if let Some(r) = lock(&self.records).get_mut(&(tenant.clone(), key.clone())) {
            r.completed = true;
        }
        Ok(())
    }
}

/// A [`KeyStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryKeys {
    records: Mutex<HashMap<KeyId, KeyRecord>>,
}

impl MemoryKeys {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `record` without awaiting, replacing one with the same id: for seeding from test
    /// code that is not async.
    pub fn seed(&self, record: KeyRecord) {
        lock(&self.records).insert(record.id.clone(), record);
    }

    /// Applies `change` to the record `id`, or answers `NotFound`.
    fn update(&self, id: &KeyId, change: impl FnOnce(&mut KeyRecord)) -> Result<(), KeyStoreError> {
        let mut records = lock(&self.records);
        let record = records.get_mut(id).ok_or(KeyStoreError::NotFound)?;
        change(record);
        Ok(())
    }
}

#[async_trait]
impl KeyStore for MemoryKeys {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyStoreError> {
        let mut records = lock(&self.records);
        if records.contains_key(&record.id) {
            // As on the real stores: overwriting could revive a revoked key.
            return Err(KeyStoreError::Unavailable("a key with this id already exists".into()));
        }
        records.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyStoreError> {
        Ok(lock(&self.records).get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError> {
        let mut all: Vec<KeyRecord> = lock(&self.records).values().cloned().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    async fn revoke(&self, id: &KeyId, at: OffsetDateTime) -> Result<(), KeyStoreError> {
        self.update(id, |r| {
            r.revoked_at.get_or_insert(at);
        })
    }

    async fn set_expiry(&self, id: &KeyId, expires_at: Option<OffsetDateTime>) -> Result<(), KeyStoreError> {
        self.update(id, |r| r.expires_at = expires_at)
    }
}

/// The [`SourceStore`] port in memory. It counts its reads, so a test can prove a request was
/// refused before any secret was looked up.
#[derive(Debug, Default)]
pub struct MemorySources {
    records: Mutex<HashMap<SourceId, SourceRecord>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemorySources {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times [`SourceStore::get`] has been called.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Applies `change` to the record `id`, or answers `NotFound`.
    fn update(&self, id: &SourceId, change: impl FnOnce(&mut SourceRecord)) -> Result<(), SourceStoreError> {
        let mut records = lock(&self.records);
        let record = records.get_mut(id).ok_or(SourceStoreError::NotFound)?;
        change(record);
        Ok(())
    }
}

#[async_trait]
impl SourceStore for MemorySources {
    async fn insert(&self, record: &SourceRecord) -> Result<(), SourceStoreError> {
        let mut records = lock(&self.records);
        if records.contains_key(&record.id) {
            return Err(SourceStoreError::Unavailable(
                "a source with this id already exists".into(),
            ));
        }
        records.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get(&self, id: &SourceId) -> Result<Option<SourceRecord>, SourceStoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(lock(&self.records).get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<SourceRecord>, SourceStoreError> {
        let mut all: Vec<SourceRecord> = lock(&self.records).values().cloned().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    async fn set_secrets(&self, id: &SourceId, secrets: &[SourceSecret]) -> Result<(), SourceStoreError> {
        self.update(id, |r| r.secrets = secrets.to_vec())
    }

    async fn delete(&self, id: &SourceId, at: OffsetDateTime) -> Result<(), SourceStoreError> {
        self.update(id, |r| {
            r.deleted_at.get_or_insert(at);
        })
    }
}

/// The [`TenantPlans`] port in memory.
#[derive(Debug, Default)]
pub struct MemoryPlans {
    plans: Mutex<BTreeMap<Tenant, TenantLimits>>,
}

impl MemoryPlans {
    /// No plans.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TenantPlans for MemoryPlans {
    async fn enroll(&self, _tenant: &Tenant) -> Result<(), PlanError> {
        Ok(())
    }

    async fn set(&self, tenant: &Tenant, limits: TenantLimits) -> Result<(), PlanError> {
        check_limits(&limits)?;
        lock(&self.plans).insert(tenant.clone(), limits);
        Ok(())
    }

    async fn get(&self, tenant: &Tenant) -> Result<Option<TenantLimits>, PlanError> {
        Ok(lock(&self.plans).get(tenant).copied())
    }

    async fn list(&self) -> Result<Vec<(Tenant, TenantLimits)>, PlanError> {
        Ok(lock(&self.plans).iter().map(|(t, l)| (t.clone(), *l)).collect())
    }

    async fn clear(&self, tenant: &Tenant) -> Result<bool, PlanError> {
        Ok(lock(&self.plans).remove(tenant).is_some())
    }
}
