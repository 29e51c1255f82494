//! Event store cases: DynamoDB semantics (conditional put, tenant-scoped get, newest-first pages
//! with a `LastEvaluatedKey`-style cursor).

use crate::{Factory, event, fresh_tenant, unseq};
use sluice_core::ports::{ListQuery, PutOutcome};
use sluice_core::{EventId, EventType, StoredEvent};
use std::collections::BTreeSet;
use time::OffsetDateTime;

fn all(limit: usize) -> ListQuery {
    ListQuery {
        event_type: None,
        limit,
        after: None,
    }
}

/// Events received one millisecond apart, so their ids (and list order) follow creation order.
fn timeline(n: usize) -> Vec<OffsetDateTime> {
    let start = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    (0..n).map(|i| start + time::Duration::milliseconds(i as i64)).collect()
}

/// The first put of an id creates the event; later puts of the same id change nothing.
pub async fn store_put_if_absent_is_conditional<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let e = event(&tenant, "order.created", OffsetDateTime::now_utc());
    assert_eq!(store.put_if_absent(&e).await.unwrap(), PutOutcome::Created);
    assert_eq!(store.put_if_absent(&e).await.unwrap(), PutOutcome::AlreadyExists);
    let mut other = e.clone();
    other.data = serde_json::json!({ "overwritten": true }).into();
    assert_eq!(store.put_if_absent(&other).await.unwrap(), PutOutcome::AlreadyExists);
    assert_eq!(store.get(&tenant, &e.id).await.unwrap().map(unseq), Some(e));
}

/// An event's optional subject, webhook origin and extension attributes are kept as given (an
/// extension's string, boolean or integer type included), and an event without them reads back
/// without them, by a single put, a batch put, a get and a list.
pub async fn store_round_trips_the_optional_subject_webhook_and_extensions<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let times = timeline(3);
    let mut with = event(&tenant, "order.created", times[0]);
    with.subject = Some("customer/é-42".into());
    with.webhook = Some(sluice_core::event::WebhookOrigin {
        source_id: sluice_core::SourceId::generate(),
        delivery_id: "evt_1NG8Du2eZvKYlo2CUI79vXWy".into(),
    });
    with.extensions = sluice_core::event::Extensions::from([
        (
            "traceparent".to_owned(),
            serde_json::json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ),
        ("sampled".to_owned(), serde_json::json!(true)),
        ("seq".to_owned(), serde_json::json!(-7)),
        ("numeric".to_owned(), serde_json::json!("7")),
    ]);
    let without = event(&tenant, "order.created", times[1]);
    for e in [&with, &without] {
        assert_eq!(store.put_if_absent(e).await.unwrap(), PutOutcome::Created);
        assert_eq!(store.get(&tenant, &e.id).await.unwrap().map(unseq).as_ref(), Some(e));
    }
    let mut batched = with.clone();
    batched.id = EventId::new_at(times[2]);
    for outcome in store.put_batch_if_absent(std::slice::from_ref(&batched)).await {
        assert_eq!(outcome.unwrap(), PutOutcome::Created);
    }
    let page = store.list(&tenant, &all(10)).await.unwrap();
    assert_eq!(
        page.events.into_iter().map(unseq).collect::<Vec<_>>(),
        vec![batched, without, with],
        "newest first"
    );
}

/// A batch put answers per event with the single put's meaning: an existing id is left alone, the
/// new ones are stored.
pub async fn store_put_batch_if_absent_answers_per_event<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let times = timeline(3);
    let existing = event(&tenant, "order.created", times[0]);
    store.put_if_absent(&existing).await.unwrap();
    let mut rewritten = existing.clone();
    rewritten.data = serde_json::json!({ "overwritten": true }).into();
    let fresh: Vec<StoredEvent> = times[1..].iter().map(|t| event(&tenant, "order.paid", *t)).collect();
    let batch = [vec![rewritten], fresh.clone()].concat();
    let outcomes: Vec<PutOutcome> = store
        .put_batch_if_absent(&batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        outcomes,
        [PutOutcome::AlreadyExists, PutOutcome::Created, PutOutcome::Created]
    );
    assert_eq!(
        store.get(&tenant, &existing.id).await.unwrap().map(unseq),
        Some(existing)
    );
    for e in fresh {
        assert_eq!(store.get(&tenant, &e.id).await.unwrap().map(unseq), Some(e));
    }
    assert!(store.put_batch_if_absent(&[]).await.is_empty());
}

/// Every field, including nested JSON, non-ASCII text and sub-second times, survives a round trip.
pub async fn store_round_trips_every_field<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let received = OffsetDateTime::now_utc().replace_nanosecond(123_456_789).unwrap();
    let mut e = event(&tenant, "payment.settled-v2", received);
    e.occurred_at = received - time::Duration::days(3);
    e.data = serde_json::json!({
        "amount": 12.5, "small": 0.1, "big": 9_007_199_254_740_991_i64, "neg": -3,
        "text": "ünïcode 🚀 \"quoted\" \n newline", "none": null, "flag": false,
        "nested": { "list": [1, "two", { "three": [] }], "empty": {} }
    })
    .into();
    e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    store.put_if_absent(&e).await.unwrap();
    assert_eq!(store.get(&tenant, &e.id).await.unwrap().map(unseq), Some(e));
}

/// A tenant never reads another tenant's event, and unknown ids are simply absent.
pub async fn store_get_is_scoped_to_tenant<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let (a, b) = (fresh_tenant(), fresh_tenant());
    let e = event(&a, "t", OffsetDateTime::now_utc());
    store.put_if_absent(&e).await.unwrap();
    assert_eq!(store.get(&b, &e.id).await.unwrap(), None);
    let unknown = EventId::new_at(OffsetDateTime::now_utc());
    assert_eq!(store.get(&a, &unknown).await.unwrap(), None);
}

/// The key is (tenant, id): the same id under two tenants is two independent events.
pub async fn store_same_id_in_two_tenants_is_two_events<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let (a, b) = (fresh_tenant(), fresh_tenant());
    let ea = event(&a, "t", OffsetDateTime::now_utc());
    let mut eb = ea.clone();
    eb.tenant = b.clone();
    eb.data = serde_json::json!("b's").into();
    assert_eq!(store.put_if_absent(&ea).await.unwrap(), PutOutcome::Created);
    assert_eq!(store.put_if_absent(&eb).await.unwrap(), PutOutcome::Created);
    assert_eq!(store.get(&a, &ea.id).await.unwrap().map(unseq), Some(ea));
    assert_eq!(store.get(&b, &eb.id).await.unwrap().map(unseq), Some(eb));
}

/// Lists come newest first in pages; `last` is set while more may follow and is the cursor for
/// the next page; the final, short page has none.
pub async fn store_lists_newest_first_in_pages<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let events: Vec<StoredEvent> = timeline(5).into_iter().map(|t| event(&tenant, "t", t)).collect();
    for e in &events {
        store.put_if_absent(e).await.unwrap();
    }
    let newest_first: Vec<EventId> = events.iter().rev().map(|e| e.id).collect();

    let p1 = store.list(&tenant, &all(2)).await.unwrap();
    assert_eq!(p1.events.iter().map(|e| e.id).collect::<Vec<_>>(), newest_first[..2]);
    assert_eq!(p1.last, Some(newest_first[1]));
    assert_eq!(unseq(p1.events[0].clone()), events[4], "listed events are complete");

    let p2 = store
        .list(
            &tenant,
            &ListQuery {
                after: p1.last,
                ..all(2)
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.events.iter().map(|e| e.id).collect::<Vec<_>>(), newest_first[2..4]);
    assert_eq!(p2.last, Some(newest_first[3]));

    let p3 = store
        .list(
            &tenant,
            &ListQuery {
                after: p2.last,
                ..all(2)
            },
        )
        .await
        .unwrap();
    assert_eq!(p3.events.iter().map(|e| e.id).collect::<Vec<_>>(), newest_first[4..]);
    assert_eq!(p3.last, None);

    let whole = store.list(&tenant, &all(10)).await.unwrap();
    assert_eq!(whole.events.len(), 5);
    assert_eq!(whole.last, None);
}

/// A type filter returns only that type, newest first, across pages.
pub async fn store_list_filters_by_type<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let mut wanted = Vec::new();
    for (i, t) in timeline(7).into_iter().enumerate() {
        let ty = if i % 3 == 0 { "order.created" } else { "order.updated" };
        let e = event(&tenant, ty, t);
        store.put_if_absent(&e).await.unwrap();
        if ty == "order.created" {
            wanted.push(e.id);
        }
    }
    wanted.reverse();
    let event_type = Some(EventType::parse("order.created").unwrap());
    let mut got = Vec::new();
    let mut after = None;
    // Walk pages of one: some backends (DynamoDB filters after the limit) may return short or
    // empty pages with a cursor, so only the concatenation is compared.
    for _ in 0..20 {
        let page = store
            .list(
                &tenant,
                &ListQuery {
                    event_type: event_type.clone(),
                    limit: 1,
                    after,
                },
            )
            .await
            .unwrap();
        assert!(page.events.iter().all(|e| e.event_type.as_str() == "order.created"));
        got.extend(page.events.iter().map(|e| e.id));
        after = page.last;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(got, wanted);
}

/// Listing shows only the asking tenant's events; an unknown tenant has none.
pub async fn store_list_is_scoped_to_tenant<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let (a, b) = (fresh_tenant(), fresh_tenant());
    for t in timeline(3) {
        store.put_if_absent(&event(&a, "t", t)).await.unwrap();
    }
    let eb = event(&b, "t", OffsetDateTime::now_utc());
    store.put_if_absent(&eb).await.unwrap();
    let pa = store.list(&a, &all(10)).await.unwrap();
    assert_eq!(pa.events.len(), 3);
    assert!(pa.events.iter().all(|e| e.tenant == a));
    let pb = store.list(&b, &all(10)).await.unwrap();
    assert_eq!(pb.events.into_iter().map(unseq).collect::<Vec<_>>(), vec![eb]);
    let empty = store.list(&fresh_tenant(), &all(10)).await.unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(empty.last, None);
}

/// Concurrent puts, each event twice, store each event exactly once.
pub async fn store_concurrent_puts_store_each_event_once<F: Factory>(f: &F) {
    let store = f.event_store().await;
    let tenant = fresh_tenant();
    let events: Vec<StoredEvent> = timeline(40).into_iter().map(|t| event(&tenant, "t", t)).collect();
    let tasks: Vec<_> = events
        .iter()
        .chain(events.iter())
        .cloned()
        .map(|e| {
            let store = store.clone();
            tokio::spawn(async move { store.put_if_absent(&e).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == PutOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 40);
    let page = store.list(&tenant, &all(100)).await.unwrap();
    let ids: BTreeSet<EventId> = page.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, events.iter().map(|e| e.id).collect());
}
