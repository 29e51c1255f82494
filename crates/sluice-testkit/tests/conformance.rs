//! The shared port conformance suite, run against this crate's in-memory adapters, so the fakes
//! other crates test with are held to the rules the real adapters follow.

use async_trait::async_trait;
use sluice_core::ports::{EventStore, IdempotencyStore, KeyStore, Queue, SourceStore};
use sluice_testkit::memory::{MemoryEvents, MemoryIdempotency, MemoryKeys, MemoryPlans, MemoryQueue, MemorySources};
use std::sync::Arc;

/// Fresh, empty stores per test; every queue is new.
struct MemoryFactory {
    events: Arc<MemoryEvents>,
    idempotency: Arc<MemoryIdempotency>,
    keys: Arc<MemoryKeys>,
    sources: Arc<MemorySources>,
}

#[async_trait]
impl sluice_testkit::Factory for MemoryFactory {
    async fn create() -> Self {
        Self {
            events: Arc::new(MemoryEvents::new()),
            idempotency: Arc::new(MemoryIdempotency::new()),
            keys: Arc::new(MemoryKeys::new()),
            sources: Arc::new(MemorySources::new()),
        }
    }

    async fn queue(&self) -> Arc<dyn Queue> {
        Arc::new(MemoryQueue::new())
    }

    async fn queue_with_dlq(&self, max_receive_count: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
        let dlq = Arc::new(MemoryQueue::new());
        let queue = MemoryQueue::with_dead_letter_queue(dlq.clone(), max_receive_count);
        (Arc::new(queue), dlq)
    }

    async fn event_store(&self) -> Arc<dyn EventStore> {
        self.events.clone()
    }

    async fn idempotency_store(&self) -> Arc<dyn IdempotencyStore> {
        self.idempotency.clone()
    }

    async fn key_store(&self) -> Arc<dyn KeyStore> {
        self.keys.clone()
    }
}

#[async_trait]
impl sluice_testkit::SourceFactory for MemoryFactory {
    async fn source_store(&self) -> Arc<dyn SourceStore> {
        self.sources.clone()
    }
}

#[async_trait]
impl sluice_testkit::PlansFactory for MemoryFactory {
    async fn plans(&self) -> Arc<dyn sluice_core::ports::TenantPlans> {
        Arc::new(MemoryPlans::new())
    }
}

sluice_testkit::conformance_tests!(memory, MemoryFactory);
sluice_testkit::plan_conformance_tests!(memory_plans, MemoryFactory);
sluice_testkit::source_conformance_tests!(memory_sources, MemoryFactory);
