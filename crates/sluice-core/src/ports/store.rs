//! The event store port: DynamoDB semantics (one partition per tenant, items sorted by id,
//! conditional writes, paged queries).

use crate::event::{EventType, StoredEvent};
use crate::ids::EventId;
use crate::tenant::Tenant;
use async_trait::async_trait;

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
}
