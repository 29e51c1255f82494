//! Feed cases: every stored event gets its tenant's next `seq`, the feed hands entries out in
//! seq order with tombstones for deletions, and the checkpoint guarantee holds under concurrent
//! writers; retention, deletion by subject and erasure records.

use crate::{Factory, event, fresh_tenant};
use sluice_core::ports::{
    Deletion, ErasureRecord, ErasureStatus, EventStore, FeedEntry, FeedError, FeedPage, FeedQuery, PutOutcome,
};
use sluice_core::{EventId, EventType, IdempotencyKey, StoredEvent, Tenant};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

fn query(after: u64, limit: usize) -> FeedQuery {
    FeedQuery {
        after,
        limit,
        event_type: None,
    }
}

fn deletion() -> Deletion {
    Deletion {
        at: OffsetDateTime::now_utc(),
        tombstone_expires_at: Some(OffsetDateTime::now_utc() + time::Duration::days(1)),
    }
}

/// Reads the whole feed from `after`, page by page, until a read brings nothing new; returns
/// the entries and the last `next_after`. Asserts every page's entries ascend past `after`.
async fn drain(store: &dyn EventStore, tenant: &Tenant, mut after: u64, limit: usize) -> (Vec<FeedEntry>, u64) {
    let mut all = Vec::new();
    for _ in 0..1000 {
        let page: FeedPage = store
            .feed(tenant, &query(after, limit), OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert!(page.entries.len() <= limit, "a page holds at most limit entries");
        let mut last = after;
        for e in &page.entries {
            assert!(
                e.seq() > last,
                "entries ascend past the checkpoint: {} after {last}",
                e.seq()
            );
            last = e.seq();
        }
        assert!(page.next_after >= last, "next_after covers the page");
        if page.entries.is_empty() && page.next_after == after {
            return (all, after);
        }
        after = page.next_after;
        all.extend(page.entries);
    }
    panic!("the feed did not end");
}

fn ids(entries: &[FeedEntry]) -> Vec<EventId> {
    entries
        .iter()
        .filter_map(|e| match e {
            FeedEntry::Event(ev) => Some(ev.id),
            FeedEntry::Tombstone(_) => None,
        })
        .collect()
}

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(1) + time::Duration::milliseconds(ms)
}

/// Stored events get seqs 1, 2, 3… in store order; a get returns the same seq; paging with any
/// limit from `after = 0` yields each once, in order; a redelivered event takes no seq.
pub async fn feed_assigns_ascending_seqs_once_each<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let first = event(&tenant, "a", at(0));
    assert_eq!(store.put_if_absent(&first).await.unwrap(), PutOutcome::Created);
    let batch: Vec<StoredEvent> = (1..5).map(|i| event(&tenant, "a", at(i))).collect();
    for r in store.put_batch_if_absent(&batch).await {
        assert_eq!(r.unwrap(), PutOutcome::Created);
    }
    // A redelivery of the first and of the batch: duplicates, no new seq.
    assert_eq!(store.put_if_absent(&first).await.unwrap(), PutOutcome::AlreadyExists);
    for r in store.put_batch_if_absent(&batch).await {
        assert_eq!(r.unwrap(), PutOutcome::AlreadyExists);
    }
    let mut expected: Vec<EventId> = vec![first.id];
    expected.extend(batch.iter().map(|e| e.id));
    for limit in [1, 2, 1000] {
        let (entries, _) = drain(store.as_ref(), &tenant, 0, limit).await;
        let got: BTreeSet<EventId> = ids(&entries).into_iter().collect();
        assert_eq!(
            got,
            expected.iter().copied().collect(),
            "limit {limit}: every event once"
        );
        assert_eq!(entries.len(), expected.len(), "limit {limit}: no entry twice");
    }
    let (entries, _) = drain(store.as_ref(), &tenant, 0, 1000).await;
    assert_eq!(ids(&entries)[0], first.id, "the first stored is first in the feed");
    for e in &entries {
        let FeedEntry::Event(ev) = e else {
            panic!("no tombstones here")
        };
        assert!(ev.seq >= 1);
        let got = store.get(&tenant, &ev.id).await.unwrap().unwrap();
        assert_eq!(got.seq, ev.seq, "get and the feed agree on seq");
        assert_eq!(got, **ev, "the feed returns the stored event");
    }
    let seqs: Vec<u64> = entries.iter().map(FeedEntry::seq).collect();
    let mut sorted = seqs.clone();
    sorted.dedup();
    assert_eq!(seqs, sorted, "seqs strictly increase");
    let (again, next) = drain(store.as_ref(), &tenant, *seqs.last().unwrap(), 10).await;
    assert!(again.is_empty(), "nothing after the last seq");
    assert!(
        next >= *seqs.last().unwrap(),
        "next_after covers the voided seqs of redeliveries too"
    );
}

/// A deletion removes the event from every read and appends a tombstone after it; a second
/// deletion, or one of another tenant's event, finds nothing.
pub async fn feed_deletion_leaves_a_tombstone<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let other = fresh_tenant();
    let keep = event(&tenant, "a", at(0));
    let mut gone = event(&tenant, "b", at(1));
    gone.idempotency_key = Some(IdempotencyKey::parse("key-1").unwrap());
    let foreign = event(&other, "a", at(2));
    for e in [&keep, &gone, &foreign] {
        store.put_if_absent(e).await.unwrap();
    }
    let (before, checkpoint) = drain(store.as_ref(), &tenant, 0, 100).await;
    assert_eq!(before.len(), 2);
    assert!(
        store.delete(&tenant, &foreign.id, deletion()).await.unwrap().is_none(),
        "another tenant's event"
    );
    assert!(
        store.get(&other, &foreign.id).await.unwrap().is_some(),
        "and it is untouched"
    );
    let deleted = store.delete(&tenant, &gone.id, deletion()).await.unwrap().unwrap();
    assert_eq!(deleted.id, gone.id);
    assert_eq!(
        deleted.idempotency_key, gone.idempotency_key,
        "the key to forget comes back"
    );
    assert!(
        deleted.tombstone_seq > checkpoint,
        "the tombstone comes after everything read"
    );
    assert!(
        store.delete(&tenant, &gone.id, deletion()).await.unwrap().is_none(),
        "deleted once"
    );
    assert_eq!(store.get(&tenant, &gone.id).await.unwrap(), None);
    // A late redelivery of the deleted event does not bring it back.
    assert_eq!(store.put_if_absent(&gone).await.unwrap(), PutOutcome::AlreadyExists);
    assert_eq!(store.get(&tenant, &gone.id).await.unwrap(), None);
    let listed = store
        .list(
            &tenant,
            &sluice_core::ports::ListQuery {
                event_type: None,
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.events.iter().map(|e| e.id).collect::<Vec<_>>(), vec![keep.id]);
    // A consumer at the checkpoint sees only the tombstone.
    let (after, _) = drain(store.as_ref(), &tenant, checkpoint, 100).await;
    assert_eq!(after.len(), 1, "{after:?}");
    let FeedEntry::Tombstone(t) = &after[0] else {
        panic!("a tombstone: {after:?}")
    };
    assert_eq!((t.deleted, t.seq), (gone.id, deleted.tombstone_seq));
    let json = serde_json::to_value(&after[0]).unwrap();
    assert_eq!(json["deleted"], gone.id.to_string());
    assert!(json.get("deleted_at").is_some() && json.get("seq").is_some());
    // A new consumer sees the kept event and the tombstone, never the deleted event.
    let (fresh, _) = drain(store.as_ref(), &tenant, 0, 100).await;
    assert_eq!(ids(&fresh), vec![keep.id]);
    assert_eq!(fresh.len(), 2);
    // The other tenant's feed has neither the tombstone nor the tenant's events.
    let (theirs, _) = drain(store.as_ref(), &other, 0, 100).await;
    assert_eq!(ids(&theirs), vec![foreign.id]);
    assert_eq!(theirs.len(), 1);
}

/// A type filter returns only that type's events and tombstones, and `next_after` still moves
/// past the others.
pub async fn feed_filters_by_type<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let events: Vec<StoredEvent> = (0..6)
        .map(|i| event(&tenant, if i % 2 == 0 { "even" } else { "odd" }, at(i)))
        .collect();
    for r in store.put_batch_if_absent(&events).await {
        r.unwrap();
    }
    store.delete(&tenant, &events[1].id, deletion()).await.unwrap().unwrap();
    let q = FeedQuery {
        after: 0,
        limit: 100,
        event_type: Some(EventType::parse("odd").unwrap()),
    };
    let page = store.feed(&tenant, &q, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(ids(&page.entries), vec![events[3].id, events[5].id]);
    assert!(
        page.entries
            .iter()
            .any(|e| matches!(e, FeedEntry::Tombstone(t) if t.deleted == events[1].id)),
        "the odd event's tombstone: {:?}",
        page.entries
    );
    let (all, end) = drain(store.as_ref(), &tenant, 0, 100).await;
    assert_eq!(page.next_after, end, "a filtered read covers the same seqs");
    assert_eq!(all.len(), 6, "five events and a tombstone");
}

/// The guarantee: writers storing one tenant's events concurrently (batches and singles, with
/// redeliveries) and a reader that checkpoints as it goes. The reader never gets an entry at or
/// below its checkpoint, and ends with every stored event exactly once.
pub async fn feed_keeps_the_checkpoint_guarantee_under_concurrent_writers<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let writers = 4;
    let per_writer = 24;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        let tenant = tenant.clone();
        let done = Arc::clone(&done);
        handles.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            let events: Vec<StoredEvent> = (0..per_writer)
                .map(|i| event(&tenant, "c", at(i64::from(w) * 1000 + i64::from(i))))
                .collect();
            for chunk in events.chunks(if w % 2 == 0 { 6 } else { 1 }) {
                for r in store.put_batch_if_absent(chunk).await {
                    assert!(r.unwrap() != PutOutcome::AlreadyExists || w > 99);
                }
                // A redelivery of the chunk, as SQS may do.
                for r in store.put_batch_if_absent(chunk).await {
                    assert_eq!(r.unwrap(), PutOutcome::AlreadyExists);
                }
                stored.extend(chunk.iter().map(|e| e.id));
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            stored
        }));
    }
    let reader = {
        let store = Arc::clone(&store);
        let tenant = tenant.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut checkpoint = 0u64;
            let mut seen: Vec<EventId> = Vec::new();
            let mut quiet_after_done = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while std::time::Instant::now() < deadline {
                let page = store
                    .feed(&tenant, &query(checkpoint, 7), OffsetDateTime::now_utc())
                    .await
                    .unwrap();
                for e in &page.entries {
                    assert!(
                        e.seq() > checkpoint,
                        "entry {} at or below checkpoint {checkpoint}",
                        e.seq()
                    );
                    checkpoint = e.seq();
                    if let FeedEntry::Event(ev) = e {
                        seen.push(ev.id);
                    }
                }
                assert!(page.next_after >= checkpoint);
                checkpoint = page.next_after;
                let all_done = done.load(std::sync::atomic::Ordering::SeqCst) == writers as usize;
                if page.entries.is_empty() {
                    if all_done {
                        quiet_after_done += 1;
                        if quiet_after_done > 3 {
                            return seen;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            panic!("the reader did not catch up: {} seen", seen.len());
        })
    };
    let mut expected = BTreeSet::new();
    for h in handles {
        expected.extend(h.await.unwrap());
    }
    let seen = reader.await.unwrap();
    let unique: BTreeSet<EventId> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no event read twice");
    assert_eq!(unique, expected, "every stored event read");
}

/// Entries past their `expires_at` leave the feed, gets and lists at once; an `after` below an
/// expired entry is refused with the earliest valid `after`, never skipped silently; `after = 0`
/// starts at the oldest entry kept.
pub async fn feed_refuses_an_after_older_than_retention<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let e0 = event(&tenant, "a", at(0));
    let mut e1 = event(&tenant, "b", at(1));
    let e2 = event(&tenant, "a", at(2));
    e1.expires_at = Some(OffsetDateTime::now_utc() + time::Duration::seconds(2));
    for e in [&e0, &e1, &e2] {
        store.put_if_absent(e).await.unwrap();
    }
    let (live, _) = drain(store.as_ref(), &tenant, 0, 100).await;
    assert_eq!(ids(&live), vec![e0.id, e1.id, e2.id]);
    let seq = |id: EventId| {
        live.iter()
            .find(|e| matches!(e, FeedEntry::Event(ev) if ev.id == id))
            .map(FeedEntry::seq)
            .unwrap()
    };
    let (s0, s1) = (seq(e0.id), seq(e1.id));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        store.get(&tenant, &e1.id).await.unwrap(),
        None,
        "expired: gone from get"
    );
    let now = OffsetDateTime::now_utc();
    match store.feed(&tenant, &query(s0, 100), now).await {
        Err(FeedError::Expired { earliest_after }) => assert_eq!(earliest_after, s1),
        other => panic!("an after below an expired entry is refused: {other:?}"),
    }
    let (rest, _) = drain(store.as_ref(), &tenant, s1, 100).await;
    assert_eq!(ids(&rest), vec![e2.id]);
    let (from_start, _) = drain(store.as_ref(), &tenant, 0, 100).await;
    assert_eq!(ids(&from_start), vec![e0.id, e2.id], "after=0: the oldest kept first");
}

/// Deleting by subject takes that subject's events received before the instant, and no others.
pub async fn feed_delete_subject_takes_only_that_subjects_earlier_events<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let other = fresh_tenant();
    let mut a = event(&tenant, "a", at(0));
    a.subject = Some("user/1".into());
    let mut b = event(&tenant, "a", at(1));
    b.subject = Some("user/2".into());
    let mut c = event(&tenant, "a", at(2));
    c.subject = Some("user/1".into());
    let mut d = event(&other, "a", at(3));
    d.subject = Some("user/1".into());
    let mut later = event(&tenant, "a", OffsetDateTime::now_utc() + time::Duration::minutes(5));
    later.subject = Some("user/1".into());
    for e in [&a, &b, &c, &d, &later] {
        store.put_if_absent(e).await.unwrap();
    }
    let before = OffsetDateTime::now_utc();
    let first = store
        .delete_subject(&tenant, "user/1", before, deletion(), 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "at most max per call");
    let rest = store
        .delete_subject(&tenant, "user/1", before, deletion(), 10)
        .await
        .unwrap();
    let gone: BTreeSet<EventId> = first.iter().chain(&rest).map(|d| d.id).collect();
    assert_eq!(gone, BTreeSet::from([a.id, c.id]));
    assert!(
        store.get(&tenant, &b.id).await.unwrap().is_some(),
        "another subject stays"
    );
    assert!(
        store.get(&tenant, &later.id).await.unwrap().is_some(),
        "a later event stays"
    );
    assert!(
        store.get(&other, &d.id).await.unwrap().is_some(),
        "another tenant's stays"
    );
}

/// An erasure record round-trips; its subject's marker only moves forward.
pub async fn feed_erasure_records_and_markers<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let t0 = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let mut r = ErasureRecord {
        id: "era_01J0000000000000000000000A".into(),
        tenant: tenant.clone(),
        subject_sha256: "ab".repeat(32),
        requested_by: "key_1".into(),
        requested_at: t0,
        status: ErasureStatus::Running,
        events_deleted: 0,
        idempotency_records: 0,
        queued_dropped: 0,
        dead_lettered_dropped: 0,
        completed_at: None,
    };
    assert_eq!(store.erased_until(&tenant, &r.subject_sha256).await.unwrap(), None);
    store.put_erasure(&r).await.unwrap();
    assert_eq!(store.get_erasure(&tenant, &r.id).await.unwrap(), Some(r.clone()));
    assert_eq!(store.erased_until(&tenant, &r.subject_sha256).await.unwrap(), Some(t0));
    r.status = ErasureStatus::Completed;
    r.events_deleted = 3;
    r.completed_at = Some(t0 + time::Duration::seconds(1));
    store.put_erasure(&r).await.unwrap();
    assert_eq!(store.get_erasure(&tenant, &r.id).await.unwrap(), Some(r.clone()));
    let mut older = r.clone();
    older.id = "era_01J0000000000000000000000B".into();
    older.requested_at = t0 - time::Duration::days(1);
    store.put_erasure(&older).await.unwrap();
    assert_eq!(
        store.erased_until(&tenant, &r.subject_sha256).await.unwrap(),
        Some(t0),
        "never back"
    );
    assert_eq!(
        store.get_erasure(&fresh_tenant(), &r.id).await.unwrap(),
        None,
        "tenant-scoped"
    );
    assert_eq!(
        store.erased_until(&fresh_tenant(), &r.subject_sha256).await.unwrap(),
        None
    );
}
