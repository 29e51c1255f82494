//! The process step over the real SQLite adapters: redelivery after a crashed worker, poison
//! records, and a panicking record that does not take its neighbours down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

use serde_json::json;
use sluice_core::clock::SystemClock;
use sluice_core::envelope::{Envelope, Sealer, SigningKey, VERSION};
use sluice_core::ports::{EventStore, ListQuery, Queue, ReceivedMessage};
use sluice_core::process::{Outcome, Processor};
use sluice_core::validate::Validator;
use sluice_core::{EventId, EventType, RequestId, Tenant};
use sluice_embedded::{EmbeddedEvents, EmbeddedQueue, QueueConfig, QueueDb, Redrive, StoreDb};
use sluice_host::settle::{SettlePolicy, settle};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::new(vec![SigningKey::new("k", vec![3; 32]).unwrap()], 32).unwrap())
}

/// A fresh directory holding the main queue `events`, its `dlq` and a store, with one signing key.
struct Rig {
    dir: tempfile::TempDir,
    queue: EmbeddedQueue,
    dlq: EmbeddedQueue,
    store: Arc<StoreDb>,
    sealer: Arc<Sealer>,
}

/// A [`Rig`] whose main queue has the `events` settings.
fn rig(events: QueueConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let qdb = QueueDb::open(&dir.path().join("queue.db")).unwrap();
    let store = StoreDb::open(&dir.path().join("store.db")).unwrap();
    Rig {
        queue: qdb.queue("events", events),
        dlq: qdb.queue("dlq", QueueConfig::default()),
        dir,
        store,
        sealer: sealer(),
    }
}

fn processor(store: Arc<dyn EventStore>, sealer: &Arc<Sealer>) -> Processor {
    Processor::new(store, sealer.clone(), Arc::new(Validator::default()))
}

fn envelope(n: i64) -> Envelope {
    let now = OffsetDateTime::now_utc();
    Envelope {
        traceparent: None,
        idempotency_key: None,
        v: VERSION,
        id: EventId::new_at(now),
        tenant: Tenant::parse("acme").unwrap(),
        event_type: EventType::parse("t").unwrap(),
        data: json!({ "n": n }).into(),
        occurred_at: now,
        received_at: now,
        request_id: RequestId::generate(),
        source_ip: None,
        subject: None,
        webhook: None,
        extensions: Default::default(),
    }
}

#[tokio::test]
async fn a_record_redelivered_after_a_worker_crash_is_stored_once() {
    let Rig {
        dir: _dir,
        queue,
        dlq,
        store,
        sealer,
    } = rig(QueueConfig::default());
    let processor = processor(Arc::new(store.events()), &sealer);
    queue.send(sealer.seal(&envelope(1)).unwrap()).await.unwrap();

    // First delivery: stored, then the worker dies before deleting the message.
    let batch = queue
        .receive(10, Duration::from_secs(1), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(processor.process_batch(&batch).await, vec![Outcome::Stored]);
    drop(batch);

    // After the visibility timeout the message comes back; the conditional put sees it is done.
    let batch = queue
        .receive(10, Duration::from_secs(3), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].receive_count, 2);
    let outcomes = processor.process_batch(&batch).await;
    assert_eq!(outcomes, vec![Outcome::Duplicate]);
    let left = settle(
        SettlePolicy::LocalBackoff {
            queue: &queue,
            max_backoff: Duration::from_secs(1),
        },
        &dlq,
        &batch,
        &outcomes,
        OffsetDateTime::now_utc(),
    )
    .await;
    assert!(left.is_empty());
    let tenant = Tenant::parse("acme").unwrap();
    let page = store
        .events()
        .list(
            &tenant,
            &ListQuery {
                event_type: None,
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(queue.depth().await.unwrap().total(), 0);
}

#[tokio::test]
async fn t2_poison_records_go_to_the_dlq_at_once_while_their_neighbours_are_stored() {
    let Rig {
        dir: _dir,
        queue,
        dlq,
        store,
        sealer,
    } = rig(QueueConfig {
        redrive: Some(Redrive {
            dead_letter_queue: "dlq".into(),
            max_receive_count: 5,
        }),
        ..QueueConfig::default()
    });
    let processor = processor(Arc::new(store.events()), &sealer);
    let good1 = sealer.seal(&envelope(1)).unwrap();
    let mut bad = sealer.seal(&envelope(2)).unwrap();
    bad.body = bad.body.replace("\"n\":2", "\"n\":3");
    let good2 = sealer.seal(&envelope(4)).unwrap();
    queue.send_batch(vec![good1, bad, good2]).await.unwrap();
    let batch = queue
        .receive(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    let outcomes = processor.process_batch(&batch).await;
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Stored).count(), 2);
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Permanent(r) if r.contains("signature")))
    );
    settle(
        SettlePolicy::LocalBackoff {
            queue: &queue,
            max_backoff: Duration::from_secs(1),
        },
        &dlq,
        &batch,
        &outcomes,
        OffsetDateTime::now_utc(),
    )
    .await;
    assert_eq!(
        queue.depth().await.unwrap().total(),
        0,
        "nothing left to burn retries on"
    );
    let dead = dlq.peek(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].attributes["dlq_reason"].contains("signature"));
    assert!(dead[0].attributes.contains_key("request_id"));
    let _ = SystemClock;
}

/// A store that panics on one particular event, to prove a panic is contained to its record.
struct PanickyStore(EmbeddedEvents);

#[async_trait::async_trait]
impl EventStore for PanickyStore {
    async fn put_if_absent(
        &self,
        e: &sluice_core::StoredEvent,
    ) -> Result<sluice_core::ports::PutOutcome, sluice_core::ports::StoreError> {
        if e.data.to_value().is_some_and(|d| d["n"] == 13) {
            panic!("simulated bug while storing");
        }
        self.0.put_if_absent(e).await
    }
    async fn get(
        &self,
        t: &Tenant,
        id: &EventId,
    ) -> Result<Option<sluice_core::StoredEvent>, sluice_core::ports::StoreError> {
        self.0.get(t, id).await
    }
    async fn list(
        &self,
        t: &Tenant,
        q: &ListQuery,
    ) -> Result<sluice_core::ports::Page, sluice_core::ports::StoreError> {
        self.0.list(t, q).await
    }
    async fn feed(
        &self,
        t: &Tenant,
        q: &sluice_core::ports::FeedQuery,
        now: time::OffsetDateTime,
    ) -> Result<sluice_core::ports::FeedPage, sluice_core::ports::FeedError> {
        self.0.feed(t, q, now).await
    }
    async fn delete(
        &self,
        t: &Tenant,
        id: &EventId,
        how: sluice_core::ports::Deletion,
    ) -> Result<Option<sluice_core::ports::Deleted>, sluice_core::ports::StoreError> {
        self.0.delete(t, id, how).await
    }
    async fn delete_subject(
        &self,
        t: &Tenant,
        subject: &str,
        before: time::OffsetDateTime,
        how: sluice_core::ports::Deletion,
        max: usize,
    ) -> Result<Vec<sluice_core::ports::Deleted>, sluice_core::ports::StoreError> {
        self.0.delete_subject(t, subject, before, how, max).await
    }
    async fn put_erasure(&self, r: &sluice_core::ports::ErasureRecord) -> Result<(), sluice_core::ports::StoreError> {
        self.0.put_erasure(r).await
    }
    async fn get_erasure(
        &self,
        t: &Tenant,
        id: &str,
    ) -> Result<Option<sluice_core::ports::ErasureRecord>, sluice_core::ports::StoreError> {
        self.0.get_erasure(t, id).await
    }
    async fn erased_until(
        &self,
        t: &Tenant,
        h: &str,
    ) -> Result<Option<time::OffsetDateTime>, sluice_core::ports::StoreError> {
        self.0.erased_until(t, h).await
    }
}

#[tokio::test]
async fn a_panic_in_one_record_fails_only_that_record_and_it_stays_queued() {
    let Rig {
        dir: _dir,
        queue,
        dlq,
        store,
        sealer,
    } = rig(QueueConfig::default());
    let processor = processor(Arc::new(PanickyStore(store.events())), &sealer);
    let msgs = [1, 13, 2].map(|n| sealer.seal(&envelope(n)).unwrap()).to_vec();
    queue.send_batch(msgs).await.unwrap();
    let batch = queue
        .receive(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    let outcomes = processor.process_batch(&batch).await;
    // The batch write panics; written again one by one, a neighbour the batch had already
    // stored comes back as a duplicate: a success all the same.
    let n = |m: &ReceivedMessage| sealer.open(m).unwrap().data.to_value().unwrap()["n"].as_i64().unwrap();
    for (m, o) in batch.iter().zip(&outcomes) {
        if n(m) == 13 {
            assert!(matches!(o, Outcome::Retry(r) if r.contains("panicked")), "{outcomes:?}");
        } else {
            assert!(o.is_success(), "{outcomes:?}");
        }
    }
    let left = settle(
        SettlePolicy::LocalBackoff {
            queue: &queue,
            max_backoff: Duration::from_secs(1),
        },
        &dlq,
        &batch,
        &outcomes,
        OffsetDateTime::now_utc(),
    )
    .await;
    assert_eq!(left.len(), 1, "only the panicking record is left for redelivery");
    assert_eq!(queue.depth().await.unwrap().total(), 1);
    assert!(dlq.peek(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn records_whose_delete_fails_are_left_for_redelivery() {
    let Rig {
        dir: _dir,
        queue,
        dlq,
        sealer,
        ..
    } = rig(QueueConfig::default());
    let msgs = [1, 2].map(|n| sealer.seal(&envelope(n)).unwrap()).to_vec();
    queue.send_batch(msgs).await.unwrap();
    let stale = queue.receive(10, Duration::from_secs(1), Duration::ZERO).await.unwrap();
    // Received again: the first receipts are stale, so deleting with them fails.
    let current = queue
        .receive(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(current.len(), 2);
    let left = settle(
        SettlePolicy::LocalBackoff {
            queue: &queue,
            max_backoff: Duration::from_secs(1),
        },
        &dlq,
        &stale,
        &[Outcome::Stored, Outcome::Stored],
        OffsetDateTime::now_utc(),
    )
    .await;
    let mut expected: Vec<String> = stale.iter().map(|m| m.message_id.clone()).collect();
    expected.sort();
    let mut left = left;
    left.sort();
    assert_eq!(left, expected, "both records stay for redelivery");
    assert_eq!(queue.depth().await.unwrap().in_flight, 2);
}

/// A batch goes to the embedded store as one writer command (one job, one reply), and a record
/// that can never succeed is answered before the store and does not hold its neighbours back.
#[tokio::test]
async fn a_batch_is_written_to_the_store_in_one_command() {
    let Rig {
        dir: _dir,
        queue,
        store,
        sealer,
        ..
    } = rig(QueueConfig::default());
    let processor = processor(Arc::new(store.events()), &sealer);
    let mut msgs: Vec<_> = (1..=3).map(|n| sealer.seal(&envelope(n)).unwrap()).collect();
    msgs[1].body.push(' '); // breaks the signature: permanent
    queue.send_batch(msgs).await.unwrap();
    let batch = queue
        .receive(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(batch.len(), 3);
    let before = store.stats().commands;
    let outcomes = processor.process_batch(&batch).await;
    assert_eq!(store.stats().commands - before, 1, "{outcomes:?}");
    assert_eq!(outcomes[0], Outcome::Stored);
    assert!(
        matches!(&outcomes[1], Outcome::Permanent(r) if r.contains("envelope rejected")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Outcome::Stored);
}
