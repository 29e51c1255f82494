//! Queue cases: SQS semantics (batch limits, long poll, visibility timeout, receipts, receive
//! counts, dead-letter redrive) that every [`Queue`](sluice_core::ports::Queue) adapter must show.
//!
//! Only what SQS itself gives is checked: a receipt handle superseded by a later receive may be
//! accepted or refused (the port promises neither), so no case uses one; adapters that refuse it
//! test that in their own crates.

use crate::{Factory, message, message_with};
use sluice_core::ports::{Queue, QueueDepth, QueueError, ReceivedMessage};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const SECOND: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(30);

fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// Body, attributes (including non-ASCII values), message id, receive count and sent time
/// arrive as sent.
pub async fn queue_round_trips_body_and_attributes<F: Factory>(f: &F) {
    let q = f.queue().await;
    let before = OffsetDateTime::now_utc();
    let sent = message_with(
        r#"{"hello":"wörld","n":[1,2,3]}"#,
        &[
            ("request_id", "req-1"),
            ("tenant", "acme"),
            ("note", "ünïcode 🚀 and spaces"),
        ],
    );
    let id = q.send(sent.clone()).await.unwrap();
    let got = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.message_id, id);
    assert_eq!(m.body, sent.body);
    assert_eq!(m.attributes, sent.attributes);
    assert_eq!(m.receive_count, 1);
    let slack = time::Duration::seconds(2);
    assert!(
        m.sent_at >= before - slack && m.sent_at <= OffsetDateTime::now_utc() + slack,
        "{}",
        m.sent_at
    );
}

/// A batch of ten gets ten distinct ids, and exactly those messages come back.
pub async fn queue_send_batch_returns_one_id_per_message<F: Factory>(f: &F) {
    let q = f.queue().await;
    let batch: Vec<_> = (0..10).map(|i| message(&format!("m{i}"))).collect();
    let ids = q.send_batch(batch).await.unwrap();
    assert_eq!(ids.len(), 10);
    let sent: BTreeSet<_> = ids.into_iter().collect();
    assert_eq!(sent.len(), 10, "ids are distinct");
    let mut received = BTreeSet::new();
    for _ in 0..5 {
        for m in q.receive(10, SECOND, LONG).await.unwrap() {
            received.insert(m.message_id);
        }
        if received.len() == 10 {
            break;
        }
    }
    assert_eq!(received, sent);
}

/// More than ten messages per send or receive, or zero per receive, is refused, and a refused
/// batch sends nothing.
pub async fn queue_rejects_oversized_batches<F: Factory>(f: &F) {
    let q = f.queue().await;
    let eleven: Vec<_> = (0..11).map(|i| message(&format!("m{i}"))).collect();
    assert!(matches!(q.send_batch(eleven).await, Err(QueueError::Invalid(_))));
    assert!(matches!(
        q.receive(11, Duration::ZERO, LONG).await,
        Err(QueueError::Invalid(_))
    ));
    assert!(matches!(
        q.receive(0, Duration::ZERO, LONG).await,
        Err(QueueError::Invalid(_))
    ));
    assert_eq!(q.depth().await.unwrap().total(), 0);
}

/// Messages come back in the order they were sent (best effort on a standard SQS queue; exact on
/// the embedded queue and on moto).
pub async fn queue_receives_in_send_order<F: Factory>(f: &F) {
    let q = f.queue().await;
    for chunk in 0..3 {
        let batch: Vec<_> = (0..5).map(|i| message(&format!("{}", chunk * 5 + i))).collect();
        q.send_batch(batch).await.unwrap();
    }
    let mut got = q.receive(10, SECOND, LONG).await.unwrap();
    got.extend(q.receive(10, SECOND, LONG).await.unwrap());
    let expected: Vec<String> = (0..15).map(|i| i.to_string()).collect();
    assert_eq!(bodies(&got), expected.iter().map(String::as_str).collect::<Vec<_>>());
}

/// A receive returns at most `max` messages and leaves the rest for the next one.
pub async fn queue_receive_returns_at_most_max<F: Factory>(f: &F) {
    let q = f.queue().await;
    q.send_batch((0..5).map(|i| message(&format!("m{i}"))).collect())
        .await
        .unwrap();
    assert_eq!(q.receive(2, SECOND, LONG).await.unwrap().len(), 2);
    assert_eq!(q.receive(10, SECOND, LONG).await.unwrap().len(), 3);
}

/// An empty queue answers a long poll with nothing after the wait, not before and not much later.
pub async fn queue_long_poll_returns_empty_after_wait<F: Factory>(f: &F) {
    let q = f.queue().await;
    let start = Instant::now();
    let got = q.receive(10, SECOND, LONG).await.unwrap();
    let took = start.elapsed();
    assert!(got.is_empty());
    assert!(took >= Duration::from_millis(900), "returned after {took:?}");
    assert!(took < Duration::from_millis(1900), "returned after {took:?}");
}

/// A long poll returns as soon as a message is sent, well before its wait ends.
pub async fn queue_long_poll_wakes_when_a_message_arrives<F: Factory>(f: &F) {
    let q = f.queue().await;
    let receiver = q.clone();
    let start = Instant::now();
    let poll = tokio::spawn(async move {
        let got = receiver.receive(10, Duration::from_secs(2), LONG).await.unwrap();
        (got, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.send(message("wake up")).await.unwrap();
    let (got, took) = poll.await.unwrap();
    assert_eq!(bodies(&got), ["wake up"]);
    assert!(took < Duration::from_millis(1500), "woke after {took:?}");
}

/// A received message is hidden until its visibility timeout passes, then comes back with the
/// same id, a higher receive count and a new receipt.
pub async fn queue_hides_received_messages_until_visibility_expires<F: Factory>(f: &F) {
    let q = f.queue().await;
    q.send(message("m")).await.unwrap();
    let first = q.receive(10, SECOND, SECOND).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty(),
        "hidden while in flight"
    );
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 1
        }
    );
    let again = q.receive(10, Duration::from_secs(2), LONG).await.unwrap();
    assert_eq!(again.len(), 1, "visible again after the timeout");
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt, first[0].receipt);
}

/// Exactly one message is left, visible, and it is `body`.
async fn assert_only_left(q: &dyn Queue, body: &str) {
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 1,
            in_flight: 0
        }
    );
    let rest = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(bodies(&rest), [body]);
}

/// Delete removes the message for good; deleting it again with the same receipt is fine.
pub async fn queue_delete_removes_the_message_and_repeats_are_ok<F: Factory>(f: &F) {
    let q = f.queue().await;
    q.send_batch(vec![message("gone"), message("stays")]).await.unwrap();
    let got = q.receive(1, SECOND, LONG).await.unwrap();
    assert_eq!(bodies(&got), ["gone"]);
    q.delete(&got[0].receipt).await.unwrap();
    q.delete(&got[0].receipt).await.unwrap();
    assert_only_left(q.as_ref(), "stays").await;
}

/// A batch delete removes each named message and answers per receipt; a receipt named twice, or
/// of a message already gone, is fine (as with single deletes), and unnamed messages stay.
pub async fn queue_delete_batch_answers_per_receipt<F: Factory>(f: &F) {
    let q = f.queue().await;
    q.send_batch(vec![message("a"), message("b"), message("c")])
        .await
        .unwrap();
    let got = q.receive(2, SECOND, LONG).await.unwrap();
    assert_eq!(bodies(&got), ["a", "b"]);
    q.delete(&got[1].receipt).await.unwrap();
    let receipts = [got[0].receipt.clone(), got[1].receipt.clone(), got[0].receipt.clone()];
    let results = q.delete_batch(&receipts).await;
    assert_eq!(results.len(), 3);
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_only_left(q.as_ref(), "c").await;
    assert!(q.delete_batch(&[]).await.is_empty());
}

/// Setting the visibility of a received message to zero makes it receivable at once.
pub async fn queue_change_visibility_zero_makes_a_message_visible_now<F: Factory>(f: &F) {
    let q = f.queue().await;
    q.send(message("m")).await.unwrap();
    let first = q.receive(10, SECOND, LONG).await.unwrap();
    q.change_visibility(&first[0].receipt, Duration::ZERO).await.unwrap();
    let start = Instant::now();
    let again = q.receive(10, SECOND, LONG).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(900), "visible at once");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
}

/// Extending the visibility of a received message keeps it hidden past its first timeout.
pub async fn queue_change_visibility_extends_hiding<F: Factory>(f: &F) {
    let q = f.queue().await;
    q.send(message("m")).await.unwrap();
    let first = q.receive(10, SECOND, SECOND).await.unwrap();
    q.change_visibility(&first[0].receipt, Duration::from_secs(3))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        q.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty(),
        "still hidden"
    );
    assert_eq!(q.depth().await.unwrap().in_flight, 1);
    q.change_visibility(&first[0].receipt, Duration::ZERO).await.unwrap();
    assert_eq!(q.receive(10, SECOND, LONG).await.unwrap().len(), 1);
}

/// `ApproximateReceiveCount` counts every receive.
pub async fn queue_counts_receives<F: Factory>(f: &F) {
    let q = f.queue().await;
    q.send(message("m")).await.unwrap();
    for expected in 1..=3 {
        let got = q.receive(10, SECOND, LONG).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, expected);
        q.change_visibility(&got[0].receipt, Duration::ZERO).await.unwrap();
    }
}

/// Depth reports waiting and in-flight messages separately.
pub async fn queue_depth_counts_visible_and_in_flight<F: Factory>(f: &F) {
    let q = f.queue().await;
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
    q.send_batch(vec![message("a"), message("b"), message("c")])
        .await
        .unwrap();
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 3,
            in_flight: 0
        }
    );
    let got = q.receive(1, SECOND, LONG).await.unwrap();
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 2,
            in_flight: 1
        }
    );
    q.delete(&got[0].receipt).await.unwrap();
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 2,
            in_flight: 0
        }
    );
}

/// A message received `max_receive_count` times is not handed out again but moved to the
/// dead-letter queue with its id, body, attributes and original sent time.
pub async fn queue_redrives_after_max_receive_count<F: Factory>(f: &F) {
    let (q, dlq) = f.queue_with_dlq(2).await;
    let sent = message_with("poison", &[("request_id", "req-9"), ("tenant", "acme")]);
    q.send_batch(vec![sent.clone(), message("healthy")]).await.unwrap();
    let mut original = None;
    for expected in 1..=2 {
        let got = q.receive(1, SECOND, LONG).await.unwrap();
        assert_eq!(bodies(&got), ["poison"]);
        assert_eq!(got[0].receive_count, expected);
        q.change_visibility(&got[0].receipt, Duration::ZERO).await.unwrap();
        original = got.into_iter().next();
    }
    let original = original.unwrap();
    // The third receive skips the poison message (it moves) and hands out the neighbour.
    let next = q.receive(10, SECOND, LONG).await.unwrap();
    assert_eq!(bodies(&next), ["healthy"]);
    q.delete(&next[0].receipt).await.unwrap();
    assert_eq!(
        q.depth().await.unwrap().total(),
        0,
        "the poison message left the source queue"
    );

    let dead = dlq.receive(10, Duration::from_secs(2), LONG).await.unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.message_id, original.message_id);
    assert_eq!(d.body, sent.body);
    assert_eq!(d.attributes, sent.attributes);
    assert_eq!(d.sent_at, original.sent_at);
}

/// Two queues of one backend never see each other's messages.
pub async fn queue_queues_are_isolated<F: Factory>(f: &F) {
    let a = f.queue().await;
    let b = f.queue().await;
    a.send(message("for a")).await.unwrap();
    assert!(b.receive(10, Duration::ZERO, LONG).await.unwrap().is_empty());
    assert_eq!(b.depth().await.unwrap().total(), 0);
    assert_eq!(bodies(&a.receive(10, SECOND, LONG).await.unwrap()), ["for a"]);
}

/// Many concurrent senders each get an id, and every message is delivered.
pub async fn queue_concurrent_sends_are_each_delivered<F: Factory>(f: &F) {
    let q = f.queue().await;
    let sends: Vec<_> = (0..50)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { q.send(message(&format!("m{i}"))).await.unwrap() })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for s in sends {
        ids.insert(s.await.unwrap());
    }
    assert_eq!(ids.len(), 50);
    let mut received = BTreeSet::new();
    for _ in 0..20 {
        for m in q.receive(10, SECOND, LONG).await.unwrap() {
            q.delete(&m.receipt).await.unwrap();
            assert!(
                received.insert(m.message_id),
                "delivered twice within its visibility timeout"
            );
        }
        if received.len() == ids.len() {
            break;
        }
    }
    assert_eq!(received, ids);
}

/// A message's fairness group (`MessageGroupId`) comes back with it, also from the dead-letter
/// queue; a message sent without one has none; a group SQS would refuse is refused.
pub async fn queue_keeps_each_message_group<F: Factory>(f: &F) {
    let (q, dlq) = f.queue_with_dlq(1).await;
    let grouped = |body: &str, group: &str| {
        let mut m = message(body);
        m.group = Some(group.to_owned());
        m
    };
    q.send_batch(vec![grouped("a", "tenant-a"), message("none")])
        .await
        .unwrap();
    let mut got = q.receive(10, SECOND, LONG).await.unwrap();
    got.sort_by(|x, y| x.body.cmp(&y.body));
    let groups: Vec<_> = got.iter().map(|m| (m.body.as_str(), m.group.as_deref())).collect();
    assert_eq!(groups, [("a", Some("tenant-a")), ("none", None)]);
    for m in &got {
        q.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
    }
    // The second receive moves both to the dead-letter queue, groups and all.
    assert!(q.receive(10, SECOND, LONG).await.unwrap().is_empty());
    let mut dead = dlq.receive(10, Duration::from_secs(2), LONG).await.unwrap();
    dead.sort_by(|x, y| x.body.cmp(&y.body));
    let groups: Vec<_> = dead.iter().map(|m| (m.body.as_str(), m.group.as_deref())).collect();
    assert_eq!(groups, [("a", Some("tenant-a")), ("none", None)]);
    for bad in ["", "has space", &"g".repeat(129)] {
        let r = q.send(grouped("x", bad)).await;
        assert!(matches!(r, Err(QueueError::Invalid(_))), "{bad:?}: {r:?}");
    }
}
