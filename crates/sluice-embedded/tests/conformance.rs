//! The shared port conformance suite, run against the SQLite adapters on real files.

// The factory is test setup outside any #[test] fn: a panic there fails the test, nothing else.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use sluice_core::ports::{EventStore, IdempotencyStore, KeyStore, Queue, SourceStore};
use sluice_embedded::{QueueConfig, QueueDb, Redrive, StoreDb};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A temp dir with one queue file and one store file per test.
struct EmbeddedFactory {
    _dir: tempfile::TempDir,
    queues: Arc<QueueDb>,
    store: Arc<StoreDb>,
    next: AtomicU64,
}

impl EmbeddedFactory {
    fn name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[async_trait]
impl sluice_testkit::Factory for EmbeddedFactory {
    async fn create() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let queues = QueueDb::open(&dir.path().join("queue.db")).unwrap();
        let store = StoreDb::open(&dir.path().join("store.db")).unwrap();
        Self {
            _dir: dir,
            queues,
            store,
            next: AtomicU64::new(0),
        }
    }

    async fn queue(&self) -> Arc<dyn Queue> {
        Arc::new(self.queues.queue(&self.name("q"), QueueConfig::default()))
    }

    async fn queue_with_dlq(&self, max_receive_count: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
        let dlq_name = self.name("dlq");
        let dlq = self.queues.queue(&dlq_name, QueueConfig::default());
        let redrive = Redrive {
            dead_letter_queue: dlq_name,
            max_receive_count,
        };
        let q = self.queues.queue(
            &self.name("q"),
            QueueConfig {
                redrive: Some(redrive),
                ..QueueConfig::default()
            },
        );
        (Arc::new(q), Arc::new(dlq))
    }

    async fn event_store(&self) -> Arc<dyn EventStore> {
        Arc::new(self.store.events())
    }

    async fn idempotency_store(&self) -> Arc<dyn IdempotencyStore> {
        Arc::new(self.queues.idempotency())
    }

    async fn key_store(&self) -> Arc<dyn KeyStore> {
        Arc::new(self.store.keys())
    }
}

#[async_trait]
impl sluice_testkit::SourceFactory for EmbeddedFactory {
    async fn source_store(&self) -> Arc<dyn SourceStore> {
        Arc::new(self.store.sources())
    }
}

#[async_trait]
impl sluice_testkit::PlansFactory for EmbeddedFactory {
    async fn plans(&self) -> Arc<dyn sluice_core::ports::TenantPlans> {
        Arc::new(self.store.plans())
    }
}

sluice_testkit::conformance_tests!(embedded, EmbeddedFactory);
sluice_testkit::plan_conformance_tests!(embedded_plans, EmbeddedFactory);
sluice_testkit::source_conformance_tests!(embedded_sources, EmbeddedFactory);
