//! What wakes the feed's waiting readers on `sluice serve`: an [`EventStore`] that forwards
//! every call to the real one and, after each write that can add feed entries (a stored event,
//! a tombstone), wakes the long-polls and streams waiting on its [`Notify`]. The process step
//! and the HTTP routes share it, so an entry reaches an open stream without polling. On
//! Lambda another process writes, and readers poll instead.

use async_trait::async_trait;
use sluice_core::ports::{
    Deleted, Deletion, ErasureRecord, EventStore, FeedError, FeedPage, FeedQuery, ListQuery, Page, PutOutcome,
    StoreError,
};
use sluice_core::{EventId, StoredEvent, Tenant};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// An [`EventStore`] that wakes feed readers after writes.
pub struct NotifyingStore {
    inner: Arc<dyn EventStore>,
    notify: Arc<Notify>,
}

impl NotifyingStore {
    /// Wraps `inner`; readers wait on [`NotifyingStore::notify`].
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self {
            inner,
            notify: Arc::new(Notify::new()),
        }
    }

    /// What the feed routes wait on.
    pub fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    fn wake_if<T>(&self, wrote: bool, value: T) -> T {
        if wrote {
            self.notify.notify_waiters();
        }
        value
    }
}

#[async_trait]
impl EventStore for NotifyingStore {
    async fn put_if_absent(&self, event: &StoredEvent) -> Result<PutOutcome, StoreError> {
        let r = self.inner.put_if_absent(event).await;
        let wrote = matches!(r, Ok(PutOutcome::Created));
        self.wake_if(wrote, r)
    }

    async fn put_batch_if_absent(&self, events: &[StoredEvent]) -> Vec<Result<PutOutcome, StoreError>> {
        let r = self.inner.put_batch_if_absent(events).await;
        let wrote = r.iter().any(|o| matches!(o, Ok(PutOutcome::Created)));
        self.wake_if(wrote, r)
    }

    async fn get(&self, tenant: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.inner.get(tenant, id).await
    }

    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<Page, StoreError> {
        self.inner.list(tenant, query).await
    }

    async fn feed(&self, tenant: &Tenant, query: &FeedQuery, now: OffsetDateTime) -> Result<FeedPage, FeedError> {
        self.inner.feed(tenant, query, now).await
    }

    async fn delete(&self, tenant: &Tenant, id: &EventId, how: Deletion) -> Result<Option<Deleted>, StoreError> {
        let r = self.inner.delete(tenant, id, how).await;
        let wrote = matches!(r, Ok(Some(_)));
        self.wake_if(wrote, r)
    }

    async fn delete_subject(
        &self,
        tenant: &Tenant,
        subject: &str,
        before: OffsetDateTime,
        how: Deletion,
        max: usize,
    ) -> Result<Vec<Deleted>, StoreError> {
        let r = self.inner.delete_subject(tenant, subject, before, how, max).await;
        let wrote = r.as_ref().is_ok_and(|d| !d.is_empty());
        self.wake_if(wrote, r)
    }

    async fn put_erasure(&self, record: &ErasureRecord) -> Result<(), StoreError> {
        self.inner.put_erasure(record).await
    }

    async fn get_erasure(&self, tenant: &Tenant, id: &str) -> Result<Option<ErasureRecord>, StoreError> {
        self.inner.get_erasure(tenant, id).await
    }

    async fn erased_until(&self, tenant: &Tenant, subject_sha256: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.inner.erased_until(tenant, subject_sha256).await
    }
}
