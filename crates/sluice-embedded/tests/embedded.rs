//! Adapter-specific behaviour of the SQLite adapters that the shared suite cannot see: group
//! commit, durability across reopening, whole-group failure and recovery, retention, the DLQ
//! tools (`peek`, `move_all_to`) and SQS limits, and the embedded queue's rules that are stricter
//! than the port's (a superseded receipt is refused).

// Helpers outside #[test] fns are test setup: a panic there fails the test, nothing else.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sluice_core::ports::{
    Claim, EventStore, IdempotencyRecord, IdempotencyStore, KeyRecord, KeyStore, ListQuery, OutgoingMessage,
    PutOutcome, Queue, QueueDepth, QueueError, ReceiptHandle, StoreError,
};
use sluice_core::{EventId, EventType, IdempotencyKey, KeyId, RequestId, StoredEvent, Tenant};
use sluice_embedded::{EmbeddedError, QueueConfig, QueueDb, Redrive, StoreDb};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

const LONG: Duration = Duration::from_secs(30);
const SECOND: Duration = Duration::from_secs(1);

fn msg(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        group: None,
        body: body.to_owned(),
        attributes: Default::default(),
    }
}

fn msg_with(body: &str, attrs: &[(&str, &str)]) -> OutgoingMessage {
    OutgoingMessage {
        group: None,
        body: body.to_owned(),
        attributes: attrs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn in_group(body: &str, group: &str) -> OutgoingMessage {
    OutgoingMessage {
        group: Some(group.to_owned()),
        body: body.to_owned(),
        attributes: Default::default(),
    }
}

/// Sends `n` messages in `group`, ten to a batch.
async fn backlog(q: &sluice_embedded::EmbeddedQueue, group: &str, n: usize) {
    let all: Vec<_> = (0..n).map(|i| in_group(&format!("{group}-{i}"), group)).collect();
    for batch in all.chunks(10) {
        q.send_batch(batch.to_vec()).await.unwrap();
    }
}

fn groups_of(got: &[sluice_core::ports::ReceivedMessage]) -> Vec<String> {
    got.iter().map(|m| m.group.clone().unwrap_or_default()).collect()
}

fn event(tenant: &str, n: i64) -> StoredEvent {
    let now = OffsetDateTime::now_utc();
    StoredEvent {
        trace_id: None,
        seq: 0,
        expires_at: None,
        idempotency_key: None,
        id: EventId::new_at(now),
        tenant: Tenant::parse(tenant).unwrap(),
        event_type: EventType::parse("t").unwrap(),
        data: json!({ "n": n }).into(),
        occurred_at: now,
        received_at: now,
        request_id: RequestId::generate(),
        subject: None,
        webhook: None,
        extensions: Default::default(),
    }
}

fn open_queue(dir: &Path) -> (std::sync::Arc<QueueDb>, sluice_embedded::EmbeddedQueue) {
    let db = QueueDb::open(&dir.join("queue.db")).unwrap();
    let q = db.queue("events", QueueConfig::default());
    (db, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (db, q) = open_queue(dir.path());
    let before = db.stats();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { q.send(msg(&format!("m{i}"))).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 200);
    let after = db.stats();
    let commits = after.commits - before.commits;
    assert_eq!(after.commands - before.commands, 200);
    eprintln!("200 sends took {commits} commits");
    assert!(commits <= 50, "200 concurrent sends needed {commits} commits");
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 200,
            in_flight: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreDb::open(&dir.path().join("store.db")).unwrap();
    let before = store.stats();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let events = store.events();
            tokio::spawn(async move { events.put_if_absent(&event("acme", i)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), PutOutcome::Created);
    }
    let commits = store.stats().commits - before.commits;
    eprintln!("200 puts took {commits} commits");
    assert!(commits <= 50, "200 concurrent puts needed {commits} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_reopening_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::parse("acme").unwrap();
    let e = event("acme", 7);
    let key = KeyRecord {
        id: KeyId::generate(),
        tenant: tenant.clone(),
        secret_hash: "ab".repeat(32),
        label: "ci".into(),
        created_at: OffsetDateTime::now_utc(),
        expires_at: None,
        revoked_at: None,
    };
    let now = OffsetDateTime::now_utc();
    let record = IdempotencyRecord {
        tenant: tenant.clone(),
        key: IdempotencyKey::parse("k-1").unwrap(),
        fingerprint: "cd".repeat(32),
        ids: vec![e.id],
        single: true,
        completed: false,
        expires_at: now + time::Duration::hours(1),
    };
    let in_flight_id;
    {
        let (db, q) = open_queue(dir.path());
        q.send_batch(vec![msg_with("a", &[("k", "v")]), msg("b"), msg("c")])
            .await
            .unwrap();
        in_flight_id = q.receive(1, SECOND, LONG).await.unwrap()[0].message_id.clone();
        let store = StoreDb::open(&dir.path().join("store.db")).unwrap();
        store.events().put_if_absent(&e).await.unwrap();
        store.keys().insert(&key).await.unwrap();
        assert_eq!(db.idempotency().claim(&record, now).await.unwrap(), Claim::Claimed);
        db.idempotency().complete(&tenant, &record.key).await.unwrap();
        // The completion is not awaited; a claim queued after it sees it.
        let Claim::Existing(seen) = db.idempotency().claim(&record, now).await.unwrap() else {
            panic!("record lost")
        };
        assert!(seen.completed);
    }
    let (db, q) = open_queue(dir.path());
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 2,
            in_flight: 1
        }
    );
    let listed = q.peek(10).await.unwrap();
    assert_eq!(listed[0].message_id, in_flight_id);
    assert_eq!(listed[0].attributes["k"], "v");
    assert_eq!(listed[0].receive_count, 1);
    let store = StoreDb::open(&dir.path().join("store.db")).unwrap();
    assert_eq!(
        EventStore::get(&store.events(), &tenant, &e.id)
            .await
            .unwrap()
            .map(sluice_testkit::unseq),
        Some(e)
    );
    assert_eq!(KeyStore::get(&store.keys(), &key.id).await.unwrap(), Some(key));
    let Claim::Existing(found) = db.idempotency().claim(&record, now).await.unwrap() else {
        panic!("record lost")
    };
    assert!(found.completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_and_its_send_are_one_step_and_a_live_claim_sends_nothing() {
    use sluice_core::ports::ClaimingQueue;
    let dir = tempfile::tempdir().unwrap();
    let (db, q) = open_queue(dir.path());
    let tenant = Tenant::parse("acme").unwrap();
    let now = OffsetDateTime::now_utc();
    let at = |n: i64| OffsetDateTime::from_unix_timestamp(1_800_000_000 + n).unwrap();
    let record = IdempotencyRecord {
        tenant: tenant.clone(),
        key: IdempotencyKey::parse("delivery:abc").unwrap(),
        fingerprint: "ab".repeat(32),
        ids: vec![EventId::new_at(at(0)), EventId::new_at(at(1))],
        single: false,
        completed: false,
        expires_at: now + time::Duration::hours(1),
    };
    let commits = db.stats().commits;
    let claim = q
        .claim_and_send(&record, now, &[msg("first"), msg("second")])
        .await
        .unwrap();
    assert_eq!(claim, Claim::Claimed);
    assert_eq!(db.stats().commits, commits + 1, "one commit for the claim and its send");
    let got = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    // The record is the idempotency store's, completed with the send.
    let Claim::Existing(stored) = db.idempotency().claim(&record, now).await.unwrap() else {
        panic!("the claim was not kept")
    };
    assert!(stored.completed);
    assert_eq!(stored.ids, record.ids);
    // A live claim: nothing is sent, and the prior record comes back.
    let mut retry = record.clone();
    retry.ids = vec![EventId::new_at(at(5))];
    let again = q.claim_and_send(&retry, now, &[msg("again")]).await.unwrap();
    assert_eq!(again, Claim::Existing(stored.clone()));
    assert!(q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty());
    // A message the queue would refuse refuses the whole step: no claim, nothing sent.
    let mut other = record.clone();
    other.key = IdempotencyKey::parse("delivery:too-big").unwrap();
    let huge = msg(&"x".repeat(sluice_embedded::MAX_MESSAGE_BYTES + 1));
    assert!(q.claim_and_send(&other, now, &[huge]).await.is_err());
    assert_eq!(db.idempotency().claim(&other, now).await.unwrap(), Claim::Claimed);
    // An expired record is replaced, with its send.
    let later = now + time::Duration::hours(2);
    let mut renewed = record.clone();
    renewed.expires_at = later + time::Duration::hours(1);
    assert_eq!(
        q.claim_and_send(&renewed, later, &[msg("renewed")]).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(q.receive(10, SECOND, LONG).await.unwrap()[0].body, "renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_transaction_fails_its_whole_group_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let (db, q) = open_queue(dir.path());
    q.send(msg("before")).await.unwrap();
    db.limit_pages(Some(0)).await.unwrap();

    // Another connection holds the write lock, so the commands below pile up in the channel
    // and the writer applies them as groups once the lock is released.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let filler = tokio::spawn({
        let q = q.clone();
        async move { q.send(msg("filler")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut group = Vec::new();
    for i in 0..9 {
        let q = q.clone();
        group.push(tokio::spawn(async move { q.send(msg(&format!("small {i}"))).await }));
    }
    let big = "x".repeat(200 * 1024);
    group.push(tokio::spawn({
        let q = q.clone();
        async move { q.send(msg(&big)).await }
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = db.stats();
    blocker.execute_batch("COMMIT").unwrap();

    filler.await.unwrap().unwrap();
    for t in group {
        match t.await.unwrap() {
            Err(QueueError::Unavailable(reason)) => assert_eq!(reason, "disk full"),
            other => panic!("a command of the failed group got {other:?}"),
        }
    }
    assert_eq!(db.stats().failed_groups - before.failed_groups, 1);
    assert_eq!(
        q.depth().await.unwrap().total(),
        2,
        "nothing of the failed group was applied"
    );

    db.limit_pages(None).await.unwrap();
    q.send(msg(&"y".repeat(200 * 1024))).await.unwrap();
    assert_eq!(q.depth().await.unwrap().total(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_unavailable_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreDb::open(&dir.path().join("store.db")).unwrap();
    store.limit_pages(Some(0)).await.unwrap();
    let mut e = event("acme", 1);
    e.data = json!("z".repeat(100 * 1024)).into();
    assert!(matches!(store.events().put_if_absent(&e).await, Err(StoreError::Unavailable(r)) if r == "disk full"));
    store.limit_pages(None).await.unwrap();
    assert_eq!(store.events().put_if_absent(&e).await.unwrap(), PutOutcome::Created);
    let query = ListQuery {
        event_type: None,
        limit: 10,
        after: None,
    };
    let page = EventStore::list(&store.events(), &Tenant::parse("acme").unwrap(), &query)
        .await
        .unwrap();
    assert_eq!(
        page.events.into_iter().map(sluice_testkit::unseq).collect::<Vec<_>>(),
        vec![e]
    );
}

/// A batch put that cannot commit answers every event with the failure and stores none of them;
/// once space returns the same batch is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_put_on_a_full_store_fails_every_event_and_stores_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreDb::open(&dir.path().join("store.db")).unwrap();
    store.limit_pages(Some(0)).await.unwrap();
    let batch: Vec<StoredEvent> = (1..=3)
        .map(|n| {
            let mut e = event("acme", n);
            e.data = json!("z".repeat(50 * 1024)).into();
            e
        })
        .collect();
    let results = store.events().put_batch_if_absent(&batch).await;
    assert_eq!(results.len(), 3);
    for r in &results {
        assert!(
            matches!(r, Err(StoreError::Unavailable(reason)) if reason == "disk full"),
            "{results:?}"
        );
    }
    let tenant = Tenant::parse("acme").unwrap();
    for e in &batch {
        assert_eq!(EventStore::get(&store.events(), &tenant, &e.id).await.unwrap(), None);
    }
    store.limit_pages(None).await.unwrap();
    let results = store.events().put_batch_if_absent(&batch).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(PutOutcome::Created))),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_changes_neither_visibility_nor_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    q.send_batch(vec![msg("a"), msg("b")]).await.unwrap();
    q.receive(1, SECOND, LONG).await.unwrap();
    let peeked = q.peek(10).await.unwrap();
    assert_eq!(peeked.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(peeked.iter().map(|m| m.receive_count).collect::<Vec<_>>(), [1, 0]);
    assert_eq!(q.peek(1).await.unwrap().len(), 1);
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 1,
            in_flight: 1
        }
    );
    assert!(matches!(
        q.delete(&peeked[1].receipt).await,
        Err(QueueError::InvalidReceipt)
    ));
    let next = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(next[0].body, "b");
    assert_eq!(next[0].receive_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_all_to_redrives_the_dlq_with_attributes_and_fresh_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = QueueDb::open(&dir.path().join("queue.db")).unwrap();
    let redrive = Redrive {
        dead_letter_queue: "dlq".into(),
        max_receive_count: 1,
    };
    let q = db.queue(
        "events",
        QueueConfig {
            redrive: Some(redrive),
            ..QueueConfig::default()
        },
    );
    let dlq = db.queue("dlq", QueueConfig::default());
    q.send(msg_with("poison", &[("request_id", "r-1"), ("dlq_reason", "boom")]))
        .await
        .unwrap();
    let first = q.receive(10, SECOND, LONG).await.unwrap();
    q.change_visibility(&first[0].receipt, Duration::ZERO).await.unwrap();
    assert!(q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty());
    // The old receipt names a message that left the queue: delete is a harmless no-op.
    q.delete(&first[0].receipt).await.unwrap();

    let dead = dlq.peek(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["dlq_reason"], "boom");
    assert!(matches!(dlq.move_all_to("dlq").await, Err(QueueError::Invalid(_))));
    assert_eq!(dlq.move_all_to("events").await.unwrap(), 1);
    assert_eq!(dlq.depth().await.unwrap().total(), 0);

    let back = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].message_id, first[0].message_id);
    assert_eq!(back[0].body, "poison");
    assert_eq!(back[0].attributes, first[0].attributes);
    assert_eq!(back[0].sent_at, first[0].sent_at);
    assert_eq!(back[0].receive_count, 1, "the count starts over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dlq_long_poll_wakes_when_a_message_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let db = QueueDb::open(&dir.path().join("queue.db")).unwrap();
    let redrive = Redrive {
        dead_letter_queue: "dlq".into(),
        max_receive_count: 1,
    };
    let q = db.queue(
        "events",
        QueueConfig {
            redrive: Some(redrive),
            ..QueueConfig::default()
        },
    );
    let dlq = db.queue("dlq", QueueConfig::default());
    q.send(msg("poison")).await.unwrap();
    let r = q.receive(10, SECOND, LONG).await.unwrap();
    q.change_visibility(&r[0].receipt, Duration::ZERO).await.unwrap();
    let start = std::time::Instant::now();
    let waiter = tokio::spawn(async move { dlq.receive(10, Duration::from_secs(5), LONG).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty());
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert!(start.elapsed() < Duration::from_millis(900), "{:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_retention_are_not_delivered_and_get_purged() {
    let dir = tempfile::tempdir().unwrap();
    let db = QueueDb::open(&dir.path().join("queue.db")).unwrap();
    let q = db.queue(
        "short",
        QueueConfig {
            redrive: None,
            retention: Duration::from_millis(500),
        },
    );
    let keep = db.queue("long", QueueConfig::default());
    q.send(msg("old")).await.unwrap();
    keep.send(msg("kept")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty());
    assert!(q.peek(10).await.unwrap().is_empty());
    assert_eq!(db.purge_now().await.unwrap(), 1);
    assert_eq!(q.depth().await.unwrap().total(), 0);
    assert_eq!(keep.depth().await.unwrap().total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_foreign_receipts_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let db = QueueDb::open(&dir.path().join("queue.db")).unwrap();
    let a = db.queue("a", QueueConfig::default());
    let b = db.queue("b", QueueConfig::default());
    for junk in ["", "nonsense", ":", "id:", ":token"] {
        let r = ReceiptHandle(junk.into());
        assert!(
            matches!(a.delete(&r).await, Err(QueueError::InvalidReceipt)),
            "{junk:?}"
        );
        assert!(
            matches!(a.change_visibility(&r, SECOND).await, Err(QueueError::InvalidReceipt)),
            "{junk:?}"
        );
    }
    a.send(msg("m")).await.unwrap();
    let got = a.receive(10, SECOND, LONG).await.unwrap();
    assert!(matches!(
        b.delete(&got[0].receipt).await,
        Err(QueueError::InvalidReceipt)
    ));
    assert_eq!(a.depth().await.unwrap().in_flight, 1);
    a.delete(&got[0].receipt).await.unwrap();
    assert!(matches!(
        a.change_visibility(&got[0].receipt, SECOND).await,
        Err(QueueError::InvalidReceipt)
    ));
}

/// The embedded queue's own, stricter rule: once a message was received again, the earlier
/// receipt neither deletes nor hides it. The shared `Queue` port does not promise this (SQS
/// standard queues accept a superseded receipt handle), so it is checked here and not in the
/// conformance suite; the embedded queue can keep it because each receipt names its receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_stale_receipt_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    q.send(msg("m")).await.unwrap();
    let first = q.receive(10, SECOND, SECOND).await.unwrap();
    let again = q.receive(10, Duration::from_secs(2), LONG).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert!(matches!(
        q.delete(&first[0].receipt).await,
        Err(QueueError::InvalidReceipt)
    ));
    assert!(matches!(
        q.change_visibility(&first[0].receipt, Duration::ZERO).await,
        Err(QueueError::InvalidReceipt)
    ));
    assert_eq!(
        q.depth().await.unwrap().in_flight,
        1,
        "the stale receipt changed nothing"
    );
    q.delete(&again[0].receipt).await.unwrap();
    assert_eq!(q.depth().await.unwrap().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    let invalid = |r: Result<Vec<String>, QueueError>| matches!(r, Err(QueueError::Invalid(_)));
    assert!(invalid(q.send_batch(vec![]).await));
    assert!(invalid(q.send_batch(vec![msg("")]).await));
    assert!(invalid(
        q.send_batch(vec![msg(&"x".repeat(sluice_embedded::MAX_MESSAGE_BYTES + 1))])
            .await
    ));
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let attrs: Vec<(&str, &str)> = eleven.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(invalid(q.send_batch(vec![msg_with("m", &attrs)]).await));
    assert!(invalid(
        q.send_batch(vec![
            msg("ok"),
            msg(&"x".repeat(sluice_embedded::MAX_MESSAGE_BYTES + 1))
        ])
        .await
    ));
    assert!(
        q.send_batch(vec![msg(&"x".repeat(sluice_embedded::MAX_MESSAGE_BYTES))])
            .await
            .is_ok()
    );
    assert!(matches!(
        q.receive(1, Duration::from_secs(21), LONG).await,
        Err(QueueError::Invalid(_))
    ));
    assert!(matches!(
        q.receive(1, SECOND, Duration::from_secs(43_201)).await,
        Err(QueueError::Invalid(_))
    ));
    assert_eq!(q.depth().await.unwrap().total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_visibility_receive_hands_each_message_out_once_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    q.send_batch(vec![msg("a"), msg("b")]).await.unwrap();
    let got = q.receive(10, Duration::ZERO, Duration::ZERO).await.unwrap();
    assert_eq!(got.len(), 2);
    let again = q.receive(10, Duration::ZERO, Duration::ZERO).await.unwrap();
    assert_eq!(again.iter().map(|m| m.receive_count).collect::<Vec<_>>(), [2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_file_that_is_not_a_database_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    std::fs::write(&path, vec![0x42; 8192]).unwrap();
    let err = QueueDb::open(&path).unwrap_err();
    assert!(
        matches!(err, EmbeddedError::Open { .. } | EmbeddedError::Migrate { .. }),
        "{err:?}"
    );
    let err = StoreDb::open(&path).unwrap_err();
    assert!(
        matches!(err, EmbeddedError::Open { .. } | EmbeddedError::Migrate { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_handle_opened_on_the_same_file_sees_the_same_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (_db1, q1) = open_queue(dir.path());
    let (_db2, q2) = open_queue(dir.path());
    q1.send(msg("shared")).await.unwrap();
    // The other QueueDb has no in-process wake-up from q1: the cross-process recheck finds it.
    let got = q2.receive(10, Duration::from_secs(2), LONG).await.unwrap();
    assert_eq!(got[0].body, "shared");
}

#[tokio::test]
async fn a_delete_batch_over_the_sqs_limit_is_refused_entry_by_entry_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    q.send(msg("kept")).await.unwrap();
    let got = q
        .receive(1, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    let receipts = vec![got[0].receipt.clone(); sluice_embedded::MAX_BATCH + 1];
    let results = q.delete_batch(&receipts).await;
    assert_eq!(results.len(), receipts.len());
    assert!(
        results.iter().all(|r| matches!(r, Err(QueueError::Invalid(_)))),
        "{results:?}"
    );
    assert_eq!(q.depth().await.unwrap().in_flight, 1);
}

/// D-3 per tenant (SQS fair queues): a tenant with a backlog of thousands does not hold back
/// another tenant's single message; it is in the very next receive.
#[tokio::test]
async fn d3_a_backlog_in_one_group_does_not_hold_back_another_groups_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    backlog(&q, "big", 2000).await;
    q.send(in_group("small-0", "small")).await.unwrap();
    let got = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(got.len(), 10);
    let bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
    assert!(bodies.contains(&"small-0"), "{bodies:?}");
    // Within a group, oldest first.
    let big: Vec<_> = bodies.iter().filter(|b| b.starts_with("big-")).copied().collect();
    assert_eq!(big, (0..9).map(|i| format!("big-{i}")).collect::<Vec<_>>());
}

/// Backlogged groups share each receive evenly, and a receive of one message takes each
/// group's turn in rotation rather than always serving the first.
#[tokio::test]
async fn receives_share_between_groups_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    for g in ["a", "b", "c"] {
        backlog(&q, g, 30).await;
    }
    let mut one_each = Vec::new();
    for _ in 0..3 {
        one_each.extend(groups_of(&q.receive(1, SECOND, LONG).await.unwrap()));
    }
    one_each.sort();
    assert_eq!(one_each, ["a", "b", "c"]);
    let got = groups_of(&q.receive(9, SECOND, LONG).await.unwrap());
    for g in ["a", "b", "c"] {
        assert_eq!(got.iter().filter(|x| *x == g).count(), 3, "{got:?}");
    }
    // Messages without a group form one group of their own.
    q.send(msg("no group")).await.unwrap();
    let got = q.receive(10, SECOND, LONG).await.unwrap();
    assert!(got.iter().any(|m| m.body == "no group" && m.group.is_none()));
}

/// A group whose messages are all in flight is passed over without ending the receive: the
/// other groups still fill it.
#[tokio::test]
async fn a_group_with_only_hidden_messages_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, q) = open_queue(dir.path());
    backlog(&q, "a", 3).await;
    let hidden = q.receive(3, SECOND, LONG).await.unwrap();
    assert_eq!(groups_of(&hidden), ["a", "a", "a"]);
    backlog(&q, "b", 5).await;
    let got = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(groups_of(&got), ["b"; 5]);
    assert!(q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty());
}

/// Retention's sweeper removes expired events from the file, not only from reads, and the
/// feed still answers 410 below what it removed: the purge leaves `purged_through` behind.
#[tokio::test]
async fn i3_the_sweeper_purges_expired_events_and_the_feed_remembers_where() {
    use sluice_core::ports::{EventStore, FeedError, FeedQuery};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = StoreDb::open(&path).unwrap();
    let events = store.events();
    let tenant = Tenant::parse("acme").unwrap();
    let now = OffsetDateTime::now_utc();
    let mut batch: Vec<StoredEvent> = (0..5).map(|n| event("acme", n)).collect();
    for e in &mut batch[1..3] {
        e.expires_at = Some(now - time::Duration::seconds(1));
    }
    for r in events.put_batch_if_absent(&batch).await {
        r.unwrap();
    }
    // Another tenant's expired event is purged too; its live ones are not.
    let mut other = event("other", 9);
    other.expires_at = Some(now - time::Duration::seconds(1));
    events.put_if_absent(&other).await.unwrap();
    // The writer's own housekeeping may already have run after the first commit.
    assert!(store.purge_expired(now).await.unwrap() <= 3);
    assert_eq!(store.purge_expired(now).await.unwrap(), 0, "nothing left to purge");
    let count: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3, "the rows are gone from the file");
    let q = |after| FeedQuery {
        after,
        limit: 100,
        event_type: None,
    };
    match events.feed(&tenant, &q(1), now).await {
        Err(FeedError::Expired { earliest_after }) => assert_eq!(earliest_after, 3),
        other => panic!("below a purged entry: {other:?}"),
    }
    let rest = events.feed(&tenant, &q(3), now).await.unwrap();
    assert_eq!(rest.entries.len(), 2);
    let all = events.feed(&tenant, &q(0), now).await.unwrap();
    assert_eq!(all.entries.iter().map(|e| e.seq()).collect::<Vec<_>>(), vec![1, 4, 5]);
}
