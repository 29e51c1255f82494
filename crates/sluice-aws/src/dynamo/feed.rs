//! The feed on DynamoDB: per-tenant sequence numbers handed out a block at a time, events
//! stored in feed slots spread over shards, and the rule that keeps the checkpoint guarantee
//! with any number of process function invocations writing one tenant at once. No
//! transactions: every step is one conditional single-item write.
//!
//! # Items (all in the events table)
//! - **Counter** `pk = <tenant>#n`, `sk = n`: `next` (the last seq handed out) and `at` (epoch
//!   ms of the latest hand-out). A batch takes a block with one `UpdateItem ADD next :n`.
//! - **Slot** `pk = <tenant>#f<seq mod shards>`, `sk = seq` (20 digits): what seq `n` is.
//!   `kind` is `event` (with the whole event, see `events.rs`), `tombstone` (with `id`, `type`,
//!   `deleted_at` and `exp`) or `void` (nothing: a seq whose writer gave up or was too slow, or a
//!   deleted event's old place). `at` is when it was written; `ttl` is the longest retention
//!   after that, so slots outlive every type's retention and an expired event reads as expired
//!   (its `exp` has passed), not as a gap.
//! - **Pointer** `pk = <tenant>#e<hash(id) mod shards>`, `sk = id`: the id's `seq` (which slot
//!   holds it), `type`, `subject`, `exp`, and `deleted` once deleted (kept, so a redelivery of
//!   a deleted event does not store it again). It makes the id unique and serves reads by id.
//! - **Erasure** `pk = <tenant>#x`: `sk = job#<id>` (the record) and `sk = sub#<sha256>`
//!   (`until`, nanoseconds: events about the subject received before it are not stored).
//!
//! # Writing one event
//! 1. Claim the id: put the pointer with the block's seq, unless one exists. If one exists, its
//!    slot tells why: it holds this event (a redelivery: done, and the new seq is voided), or
//!    it was voided (the first writer was too slow or crashed: take the pointer over with the
//!    new seq, conditionally on the old one), or it is still empty and young (another delivery
//!    is writing it: retry later).
//! 2. Put the slot, unless it exists. If a reader voided it meanwhile, take a new seq, move the
//!    pointer to it (conditionally) and put that slot.
//!
//! # The guarantee
//! A slot is decided by its first successful conditional put: the writer's, or a reader's
//! `void`. Once decided it never changes, except that a deletion turns an event slot into a
//! void after appending the tombstone. A reader walks seqs upwards from `after` and returns
//! entries only over a run of decided slots: at the first undecided one it stops (its writer is
//! still at work), unless the slot has been handed out for longer than the grace period (a
//! later slot was written, or the counter's latest hand-out was made, more than the grace ago),
//! in which case it writes the void itself, and the slow writer takes a new seq. So every entry
//! at or below a returned `next_after` was decided before the read returned, and no entry can
//! appear there afterwards, whatever the concurrency, redeliveries or crashes.
//!
//! # Cost and ceiling
//! Writing one event of up to 1 KB takes 2 write units (pointer and slot), plus the counter's
//! 1 unit shared by the batch: **3 WCU at 1 event per batch, 2.1 at 10**. A feed page costs one
//! strongly consistent read of the counter and one query per shard. DynamoDB gives each
//! partition key at most 1,000 write units per second. Per tenant, pointers and slots each
//! take 1 unit per event (per KB for slots) on `shards` partitions: **1,000 × shards events/s**;
//! the counter takes one update per batch: **1,000 × batch size events/s** (10,000 with batches
//! of 10). The lower of the two is the ceiling: 10,000 events/s at 16 shards and batches of 10.

use super::events::{DynamoEvents, EXP, ID, TTL, decode, encode, expired, past, unavailable};
use super::{Item, PK, SK, number_attr, query_all, string_attr};
use crate::error::Failure;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use sluice_core::event::{EventType, StoredEvent};
use sluice_core::ids::EventId;
use sluice_core::ports::{
    Deleted, Deletion, ErasureRecord, FeedEntry, FeedError, FeedPage, FeedQuery, ListQuery, Page, PutOutcome,
    StoreError, Tombstone,
    store::{decode_erasure, encode_erasure},
};
use sluice_core::tenant::Tenant;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const KIND: &str = "kind";
const TYPE: &str = "type";
const SUBJECT: &str = "subject";
const AT: &str = "at";
const NEXT: &str = "next";
/// On the counter: when the tenant's first seq was handed out (epoch ms).
const SINCE: &str = "since";
const SEQ: &str = "seq";
const DELETED: &str = "deleted";
const TOMB: &str = "tomb";
const DELETED_AT: &str = "deleted_at";
const UNTIL: &str = "until";
const RECORD: &str = "record";
/// How many times a writer starts over (a new seq after its slot was voided, a pointer taken
/// over meanwhile) before it gives up; the record is then retried by the queue.
const MAX_ATTEMPTS: usize = 8;

/// How a table's tenants are laid out: the shard count and the feed's timing.
#[derive(Debug, Clone)]
pub(crate) struct FeedLayout {
    /// Partitions per tenant for pointers and for slots.
    pub(crate) shards: u32,
    /// How long a handed-out slot may stay unwritten before a reader voids it.
    pub(crate) grace: Duration,
    /// How long items are kept: the longest retention of any event type.
    pub(crate) slot_retention: Duration,
}

impl Default for FeedLayout {
    fn default() -> Self {
        Self {
            shards: 1,
            grace: Duration::from_secs(5),
            slot_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// FNV-1a: a stable hash of the id, the same in every process and release.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl FeedLayout {
    fn pointer_pk(&self, tenant: &Tenant, id: &EventId) -> String {
        let shard = fnv1a(&id.to_string()) % u64::from(self.shards);
        format!("{tenant}#e{shard}")
    }

    fn pointer_pks(&self, tenant: &Tenant) -> impl Iterator<Item = String> + '_ {
        let t = tenant.as_str().to_owned();
        (0..self.shards).map(move |s| format!("{t}#e{s}"))
    }

    fn slot_pk(&self, tenant: &Tenant, seq: u64) -> String {
        format!("{tenant}#f{}", seq % u64::from(self.shards))
    }

    fn keep(&self) -> time::Duration {
        time::Duration::try_from(self.slot_retention).unwrap_or(time::Duration::days(30))
    }
}

fn slot_sk(seq: u64) -> String {
    format!("{seq:020}")
}

fn counter_pk(tenant: &Tenant) -> String {
    format!("{tenant}#n")
}

fn erasure_pk(tenant: &Tenant) -> String {
    format!("{tenant}#x")
}

fn now_ms(now: OffsetDateTime) -> i64 {
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("events item: {what}"))
}

fn num(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn seq_of(item: &Item) -> Result<u64, StoreError> {
    num(item, SEQ)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| corrupt("a pointer without a seq"))
}

fn key(pk: String, sk: String) -> Item {
    Item::from([(PK.to_owned(), string_attr(pk)), (SK.to_owned(), string_attr(sk))])
}

/// The base of a slot item: key, kind, when written and its `ttl`.
fn slot_item(s: &DynamoEvents, tenant: &Tenant, seq: u64, kind: &str, now: OffsetDateTime) -> Item {
    let mut item = key(s.layout.slot_pk(tenant, seq), slot_sk(seq));
    item.insert(KIND.to_owned(), string_attr(kind));
    item.insert(AT.to_owned(), number_attr(now_ms(now)));
    item.insert(TTL.to_owned(), number_attr((now + s.layout.keep()).unix_timestamp()));
    item
}

async fn get_item(s: &DynamoEvents, key: Item) -> Result<Option<Item>, StoreError> {
    let out = s
        .client
        .get_item()
        .table_name(&s.table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| unavailable(Failure::classify("DynamoDB", "GetItem", &e)))?;
    Ok(out.item().cloned())
}

/// A conditional put: whether it was made.
async fn put_if(s: &DynamoEvents, item: Item, condition: &str) -> Result<bool, StoreError> {
    let result = s
        .client
        .put_item()
        .table_name(&s.table)
        .set_item(Some(item))
        .condition_expression(condition)
        .send()
        .await;
    super::condition_held(result, "PutItem").map_err(unavailable)
}

/// Takes `n` consecutive seqs for `tenant`; the first of them.
async fn allocate(s: &DynamoEvents, tenant: &Tenant, n: u64) -> Result<u64, StoreError> {
    let out = s
        .client
        .update_item()
        .table_name(&s.table)
        .set_key(Some(key(counter_pk(tenant), "n".into())))
        .update_expression("ADD #next :n SET #at = :at, #since = if_not_exists(#since, :at)")
        .expression_attribute_names("#next", NEXT)
        .expression_attribute_names("#at", AT)
        .expression_attribute_names("#since", SINCE)
        .expression_attribute_values(":n", number_attr(n))
        .expression_attribute_values(":at", number_attr(now_ms(OffsetDateTime::now_utc())))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(|e| unavailable(Failure::classify("DynamoDB", "UpdateItem", &e)))?;
    let hi = out
        .attributes()
        .and_then(|a| num(a, NEXT))
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| corrupt("the feed counter has no next"))?;
    Ok(hi + 1 - n)
}

/// A tenant's counter.
struct Counter {
    /// The last seq handed out (0: none yet).
    hi: u64,
    /// When it was handed out (epoch ms).
    at: i64,
    /// When the first was (epoch ms).
    since: i64,
}

async fn counter(s: &DynamoEvents, tenant: &Tenant) -> Result<Counter, StoreError> {
    Ok(match get_item(s, key(counter_pk(tenant), "n".into())).await? {
        None => Counter { hi: 0, at: 0, since: 0 },
        Some(item) => Counter {
            hi: num(&item, NEXT).and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
            at: num(&item, AT).unwrap_or(0),
            since: num(&item, SINCE).unwrap_or(0),
        },
    })
}

/// Fills slot `seq` with a void if nothing has been written there: whether this put decided it.
async fn void(s: &DynamoEvents, tenant: &Tenant, seq: u64) -> Result<bool, StoreError> {
    put_if(
        s,
        slot_item(s, tenant, seq, "void", OffsetDateTime::now_utc()),
        "attribute_not_exists(pk)",
    )
    .await
}

/// One slot, read consistently (`None` when absent or past its `ttl`).
async fn slot(s: &DynamoEvents, tenant: &Tenant, seq: u64, now: OffsetDateTime) -> Result<Option<Item>, StoreError> {
    Ok(get_item(s, key(s.layout.slot_pk(tenant, seq), slot_sk(seq)))
        .await?
        .filter(|i| !expired(i, now)))
}

/// The id's pointer, read consistently.
async fn pointer(s: &DynamoEvents, tenant: &Tenant, id: &EventId) -> Result<Option<Item>, StoreError> {
    get_item(s, key(s.layout.pointer_pk(tenant, id), id.to_string())).await
}

/// An update of the id's pointer item, its condition and expressions left to the caller.
fn pointer_update(
    s: &DynamoEvents,
    tenant: &Tenant,
    id: &EventId,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    s.client
        .update_item()
        .table_name(&s.table)
        .set_key(Some(key(s.layout.pointer_pk(tenant, id), id.to_string())))
}

/// Moves the id's pointer from seq `from` to seq `to`; whether it still pointed at `from`.
async fn move_pointer(s: &DynamoEvents, tenant: &Tenant, id: &EventId, from: u64, to: u64) -> Result<bool, StoreError> {
    let result = pointer_update(s, tenant, id)
        .update_expression("SET #seq = :to, #at = :at")
        .condition_expression("#seq = :from AND attribute_not_exists(#deleted)")
        .expression_attribute_names("#seq", SEQ)
        .expression_attribute_names("#at", AT)
        .expression_attribute_names("#deleted", DELETED)
        .expression_attribute_values(":to", number_attr(to))
        .expression_attribute_values(":from", number_attr(from))
        .expression_attribute_values(":at", number_attr(now_ms(OffsetDateTime::now_utc())))
        .send()
        .await;
    super::condition_held(result, "UpdateItem").map_err(unavailable)
}

/// Stores a batch: one block of seqs per tenant, then each event.
pub(crate) async fn put_batch(s: &DynamoEvents, events: &[StoredEvent]) -> Vec<Result<PutOutcome, StoreError>> {
    let mut results: Vec<Option<Result<PutOutcome, StoreError>>> = (0..events.len()).map(|_| None).collect();
    let mut by_tenant: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        by_tenant.entry(e.tenant.as_str()).or_default().push(i);
    }
    for (_, idxs) in by_tenant {
        let Some(&first_idx) = idxs.first() else { continue };
        let tenant = &events[first_idx].tenant;
        match allocate(s, tenant, idxs.len() as u64).await {
            Err(e) => {
                let reason = e.to_string();
                for i in idxs {
                    results[i] = Some(Err(StoreError::Unavailable(reason.clone())));
                }
            }
            Ok(first) => {
                let outs = futures::future::join_all(
                    idxs.iter()
                        .enumerate()
                        .map(|(k, &i)| put_one(s, &events[i], first + k as u64)),
                )
                .await;
                for (&i, out) in idxs.iter().zip(outs) {
                    results[i] = Some(out);
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Unavailable("the store skipped an event".into()))))
        .collect()
}

/// Stores one event with `seq`, or finds it stored (see the module). Whatever happens, every
/// seq it took ends decided: written, or voided here.
async fn put_one(s: &DynamoEvents, event: &StoredEvent, seq: u64) -> Result<PutOutcome, StoreError> {
    let mut taken = vec![seq];
    let out = put_one_inner(s, event, &mut taken).await;
    let kept = match &out {
        Ok((PutOutcome::Created, kept)) => Some(*kept),
        _ => None,
    };
    // A seq this writer took and did not fill must not hold readers back.
    for n in taken.into_iter().filter(|n| Some(*n) != kept) {
        let _ = void(s, &event.tenant, n).await;
    }
    out.map(|(o, _)| o)
}

/// The outcome and the seq the event was written at; every seq taken is pushed to `taken`.
async fn put_one_inner(
    s: &DynamoEvents,
    event: &StoredEvent,
    taken: &mut Vec<u64>,
) -> Result<(PutOutcome, u64), StoreError> {
    let tenant = &event.tenant;
    let id = &event.id;
    let mut seq = taken.first().copied().ok_or_else(|| corrupt("no seq to store at"))?;
    let mut claimed = false;
    let mut attempts = 0;
    // Waiting on another delivery of the same event is bounded by the grace period: past it,
    // that delivery's slot is voided and this one takes over.
    let patience =
        OffsetDateTime::now_utc() + time::Duration::try_from(s.layout.grace * 2).unwrap_or(time::Duration::SECOND);
    while attempts < MAX_ATTEMPTS {
        attempts += 1;
        let now = OffsetDateTime::now_utc();
        if !claimed {
            let mut ptr = key(s.layout.pointer_pk(tenant, id), id.to_string());
            ptr.insert(SEQ.to_owned(), number_attr(seq));
            ptr.insert(AT.to_owned(), number_attr(now_ms(now)));
            ptr.insert(TYPE.to_owned(), string_attr(event.event_type.as_str()));
            ptr.insert(TTL.to_owned(), number_attr((now + s.layout.keep()).unix_timestamp()));
            if let Some(subject) = &event.subject {
                ptr.insert(SUBJECT.to_owned(), string_attr(subject.as_str()));
            }
            if let Some(exp) = event.expires_at {
                ptr.insert(EXP.to_owned(), number_attr(exp.unix_timestamp()));
            }
            if put_if(s, ptr, "attribute_not_exists(pk)").await? {
                claimed = true;
            } else {
                let Some(existing) = pointer(s, tenant, id).await? else {
                    continue;
                };
                if existing.contains_key(DELETED) {
                    // Stored once and deleted since: a redelivery must not bring it back.
                    return Ok((PutOutcome::AlreadyExists, 0));
                }
                let old = seq_of(&existing)?;
                match slot(s, tenant, old, now).await? {
                    Some(item) if text(&item, KIND) == Some("event") && text(&item, ID) == Some(&id.to_string()) => {
                        return Ok((PutOutcome::AlreadyExists, 0));
                    }
                    Some(_) => {}
                    None => {
                        // Still empty: another delivery (SQS may hand out the same message twice
                        // at once) may be writing it right now. Wait for it, a little at a time.
                        let age = now_ms(now) - num(&existing, AT).unwrap_or(0);
                        if age < i64::try_from(s.layout.grace.as_millis()).unwrap_or(i64::MAX) {
                            if now > patience {
                                return Err(StoreError::Unavailable("another delivery is storing this event".into()));
                            }
                            attempts -= 1;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            continue;
                        }
                        if !void(s, tenant, old).await? {
                            continue;
                        }
                    }
                }
                // The first writer's slot is void: take the pointer over.
                if !move_pointer(s, tenant, id, old, seq).await? {
                    continue;
                }
                claimed = true;
            }
        }
        let mut item = encode(&StoredEvent { seq, ..event.clone() })?;
        item.extend(slot_item(s, tenant, seq, "event", now));
        if put_if(s, item, "attribute_not_exists(pk)").await? {
            return Ok((PutOutcome::Created, seq));
        }
        // A reader voided the slot while this writer was slow: move to a new one. If another
        // delivery took the pointer over meanwhile, start again from the pointer: it tells
        // whether that delivery stored the event.
        let next = allocate(s, tenant, 1).await?;
        taken.push(next);
        if !move_pointer(s, tenant, id, seq, next).await? {
            claimed = false;
        }
        seq = next;
    }
    Err(StoreError::Unavailable(
        "the event's feed slots kept being voided".into(),
    ))
}

/// The event in slot `seq` if it holds `id` and has not expired at `now`.
fn event_in(item: &Item, id: &EventId, now: OffsetDateTime) -> Result<Option<StoredEvent>, StoreError> {
    if text(item, KIND) != Some("event") || text(item, ID) != Some(&id.to_string()) || past(item, EXP, now) {
        return Ok(None);
    }
    Ok(Some(decode(item)?))
}

/// The event with this id: its pointer, then its slot.
pub(crate) async fn get(
    s: &DynamoEvents,
    tenant: &Tenant,
    id: &EventId,
    now: OffsetDateTime,
) -> Result<Option<StoredEvent>, StoreError> {
    let Some(ptr) = pointer(s, tenant, id).await? else {
        return Ok(None);
    };
    if ptr.contains_key(DELETED) {
        return Ok(None);
    }
    let Some(item) = slot(s, tenant, seq_of(&ptr)?, now).await? else {
        return Ok(None);
    };
    let event = event_in(&item, id, now)?;
    if event.as_ref().is_some_and(|e| &e.tenant != tenant) {
        return Err(corrupt("the item's key does not match its attributes"));
    }
    Ok(event)
}

/// Slot items by seq, read consistently, 100 per `BatchGetItem`.
async fn slots_by_seq(s: &DynamoEvents, tenant: &Tenant, seqs: &[u64]) -> Result<HashMap<u64, Item>, StoreError> {
    let mut found = HashMap::new();
    for chunk in seqs.chunks(100) {
        let keys: Vec<Item> = chunk
            .iter()
            .map(|n| key(s.layout.slot_pk(tenant, *n), slot_sk(*n)))
            .collect();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|_| StoreError::Unavailable("a batch read cannot be built".into()))?,
        );
        while let Some(request) = pending.take() {
            let out = s
                .client
                .batch_get_item()
                .request_items(&s.table, request)
                .send()
                .await
                .map_err(|e| unavailable(Failure::classify("DynamoDB", "BatchGetItem", &e)))?;
            for item in out.responses().and_then(|r| r.get(&s.table)).into_iter().flatten() {
                if let Some(n) = text(item, SK).and_then(|v| v.parse::<u64>().ok()) {
                    found.insert(n, item.clone());
                }
            }
            // Throttled keys come back unprocessed: ask again.
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(&s.table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
        }
    }
    Ok(found)
}

/// Reads one pointer partition newest first: up to `limit + 1` live pointers, or fewer when the
/// partition ends or the read budget is spent (then also the id where DynamoDB stopped).
async fn list_shard(
    s: &DynamoEvents,
    pk: String,
    query: &ListQuery,
    limit: usize,
    now: OffsetDateTime,
) -> Result<(Vec<(EventId, u64)>, Option<EventId>), StoreError> {
    let mut found = Vec::new();
    let mut start: Option<Item> = None;
    for _ in 0..s.max_query_pages {
        let want = limit + 1 - found.len();
        let mut q = s
            .client
            .query()
            .table_name(&s.table)
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(
                i32::try_from(want.saturating_mul(2))
                    .unwrap_or(i32::MAX)
                    .min(s.query_page_size),
            )
            .expression_attribute_values(":pk", string_attr(pk.as_str()))
            .expression_attribute_names("#deleted", DELETED)
            .set_exclusive_start_key(start.take());
        // A key condition rather than an `ExclusiveStartKey` for `after`: it needs no item
        // with that id to exist (moto, unlike DynamoDB, ignores a start key it cannot find).
        q = match &query.after {
            Some(after) => q
                .key_condition_expression("pk = :pk AND sk < :after")
                .expression_attribute_values(":after", string_attr(after.to_string())),
            None => q.key_condition_expression("pk = :pk"),
        };
        q = match &query.event_type {
            Some(ty) => q
                .filter_expression("attribute_not_exists(#deleted) AND #type = :type")
                .expression_attribute_names("#type", TYPE)
                .expression_attribute_values(":type", string_attr(ty.as_str())),
            None => q.filter_expression("attribute_not_exists(#deleted)"),
        };
        let out = q
            .send()
            .await
            .map_err(|e| unavailable(Failure::classify("DynamoDB", "Query", &e)))?;
        for item in out.items() {
            if expired(item, now) || past(item, EXP, now) {
                continue;
            }
            let id = text(item, SK)
                .and_then(|v| EventId::parse(v).ok())
                .ok_or_else(|| corrupt("a pointer whose key is not an event id"))?;
            found.push((id, seq_of(item)?));
        }
        if found.len() > limit {
            return Ok((found, None));
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok((found, None)),
        }
    }
    // The read budget is spent (D-4): the caller stops the page where DynamoDB stopped.
    let stopped = match start.as_ref().and_then(|k| k.get(SK)) {
        Some(AttributeValue::S(sk)) => Some(EventId::parse(sk).map_err(|_| corrupt("LastEvaluatedKey is not an id"))?),
        _ => found.last().map(|(id, _)| *id),
    };
    Ok((found, stopped))
}

/// Lists newest first: every pointer shard in parallel, merged by id, then the page's slots in
/// one batch read. An event whose slot is not written yet (or was deleted meanwhile) is left
/// out. A shard that spent its read budget caps the page where it stopped, so the next page
/// resumes there and nothing is skipped.
pub(crate) async fn list(
    s: &DynamoEvents,
    tenant: &Tenant,
    query: &ListQuery,
    now: OffsetDateTime,
) -> Result<Page, StoreError> {
    let limit = query.limit.max(1);
    let shards = futures::future::try_join_all(
        s.layout
            .pointer_pks(tenant)
            .map(|pk| list_shard(s, pk, query, limit, now)),
    )
    .await?;
    let cut = shards.iter().filter_map(|(_, stopped)| *stopped).max();
    let mut merged: BTreeMap<EventId, u64> = BTreeMap::new();
    for (found, _) in shards {
        for (id, seq) in found {
            if cut.is_none_or(|c| id > c) {
                merged.insert(id, seq);
            }
        }
    }
    let mut page: Vec<(EventId, u64)> = merged.into_iter().rev().collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let last = if more { page.last().map(|(id, _)| *id) } else { cut };
    let seqs: Vec<u64> = page.iter().map(|(_, n)| *n).collect();
    let slots = slots_by_seq(s, tenant, &seqs).await?;
    let mut events = Vec::with_capacity(page.len());
    for (id, n) in &page {
        if let Some(e) = slots.get(n).map(|item| event_in(item, id, now)).transpose()?.flatten() {
            events.push(e);
        }
    }
    Ok(Page { events, last })
}

/// Every live slot of `tenant` with a seq in `from..=to`, by seq.
async fn slots_in(
    s: &DynamoEvents,
    tenant: &Tenant,
    from: u64,
    to: u64,
    now: OffsetDateTime,
) -> Result<BTreeMap<u64, Item>, StoreError> {
    let shards = u64::from(s.layout.shards).min(to.saturating_sub(from) + 1);
    let queries = (0..shards).map(|k| {
        let pk = s.layout.slot_pk(tenant, from + k);
        let query = s
            .client
            .query()
            .table_name(&s.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", string_attr(pk.as_str()))
            .expression_attribute_values(":from", string_attr(slot_sk(from)))
            .expression_attribute_values(":to", string_attr(slot_sk(to)));
        async move { query_all(query).await.map_err(unavailable) }
    });
    let mut out = BTreeMap::new();
    for items in futures::future::try_join_all(queries).await? {
        for item in items {
            if expired(&item, now) {
                continue;
            }
            let seq = text(&item, SK)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| corrupt("a slot's sort key is not a seq"))?;
            out.insert(seq, item);
        }
    }
    Ok(out)
}

/// The lowest seq in `1..=hi` whose slot is still kept (slots leave in seq order, as their
/// `ttl` passes): a binary search, one read per step; `hi + 1` when none is. Only for tenants
/// older than the longest retention; a slot still unwritten at a probe (a writer at work, or a
/// crashed one's that no reader has voided yet) can make it start later than the first kept
/// entry, which is why a consumer should keep a checkpoint rather than start from 0 again.
async fn first_retained(s: &DynamoEvents, tenant: &Tenant, hi: u64, now: OffsetDateTime) -> Result<u64, StoreError> {
    let (mut lo, mut top) = (1u64, hi + 1);
    while lo < top {
        let mid = lo + (top - lo) / 2;
        if slot(s, tenant, mid, now).await?.is_some() {
            top = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// What a decided slot contributes to a read.
enum Walked {
    Entry(FeedEntry),
    /// An entry retention removed (its `exp` has passed).
    Expired(u64),
    Nothing,
}

fn walk_slot(seq: u64, item: &Item, q: &FeedQuery, now: OffsetDateTime) -> Result<Walked, StoreError> {
    let ty = text(item, TYPE).unwrap_or_default();
    let wanted = q.event_type.as_ref().is_none_or(|t| t.as_str() == ty);
    match text(item, KIND) {
        Some("void") => Ok(Walked::Nothing),
        Some("event" | "tombstone") if past(item, EXP, now) => Ok(Walked::Expired(seq)),
        Some(_) if !wanted => Ok(Walked::Nothing),
        Some("event") => Ok(Walked::Entry(FeedEntry::Event(Box::new(decode(item)?)))),
        Some("tombstone") => Ok(Walked::Entry(FeedEntry::Tombstone(Tombstone {
            seq,
            deleted: text(item, ID)
                .and_then(|v| EventId::parse(v).ok())
                .ok_or_else(|| corrupt("a tombstone without an id"))?,
            deleted_at: text(item, DELETED_AT)
                .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok())
                .ok_or_else(|| corrupt("a tombstone without deleted_at"))?,
            event_type: EventType::parse(ty).map_err(|_| corrupt("a tombstone with a bad type"))?,
            expires_at: num(item, EXP).and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok()),
        }))),
        _ => Err(corrupt("a slot of unknown kind")),
    }
}

/// Reads the feed: walks decided slots upwards from `after` (see the module).
pub(crate) async fn read(
    s: &DynamoEvents,
    tenant: &Tenant,
    q: &FeedQuery,
    now: OffsetDateTime,
) -> Result<FeedPage, FeedError> {
    let Counter {
        hi,
        at: handed_out_at,
        since,
    } = counter(s, tenant).await?;
    if q.after >= hi {
        return Ok(FeedPage {
            entries: Vec::new(),
            next_after: q.after,
        });
    }
    // Slots leave only once the longest retention has passed since they were written: a tenant
    // younger than that still has every slot, and a gap is a slot being written, never an
    // expired one.
    let keep_ms = i64::try_from(s.layout.slot_retention.as_millis()).unwrap_or(i64::MAX);
    let all_kept = now_ms(now).saturating_sub(since) < keep_ms;
    let start = if q.after == 0 && !all_kept {
        first_retained(s, tenant, hi, now).await?.saturating_sub(1)
    } else {
        q.after
    };
    // With a type filter most slots may be skipped: look further ahead per read.
    let span = if q.event_type.is_some() { q.limit * 4 } else { q.limit } as u64;
    let end = hi.min(start + span);
    let mut slots = slots_in(s, tenant, start, end, now).await?;
    if q.after > 0 && !all_kept && !slots.contains_key(&q.after) {
        // The checkpoint's own slot is gone: it is older than the longest retention, unless
        // the slot was never decided (an `after` no read returned).
        let earliest = first_retained(s, tenant, hi, now).await?.saturating_sub(1);
        if earliest > q.after {
            return Err(FeedError::Expired {
                earliest_after: earliest,
            });
        }
    }
    let grace_ms = i64::try_from(s.layout.grace.as_millis()).unwrap_or(i64::MAX);
    let mut entries = Vec::new();
    let mut expired_max = 0u64;
    let mut next_after = start;
    let mut n = start + 1;
    while n <= end && entries.len() < q.limit {
        let Some(item) = slots.get(&n).cloned() else {
            // Undecided: wait for its writer, unless it has had the grace period.
            let evidence = slots
                .range(n + 1..)
                .find_map(|(_, i)| num(i, AT))
                .unwrap_or(handed_out_at);
            if now_ms(now) - evidence < grace_ms {
                break;
            }
            if !void(s, tenant, n).await? {
                // The writer won the race: read what it wrote.
                match slot(s, tenant, n, now).await? {
                    Some(item) => {
                        slots.insert(n, item);
                        continue;
                    }
                    None => break,
                }
            }
            next_after = n;
            n += 1;
            continue;
        };
        match walk_slot(n, &item, q, now)? {
            Walked::Entry(e) => entries.push(e),
            Walked::Expired(seq) => expired_max = expired_max.max(seq),
            Walked::Nothing => {}
        }
        next_after = n;
        n += 1;
    }
    if q.after > 0 && expired_max > q.after {
        return Err(FeedError::Expired {
            earliest_after: expired_max,
        });
    }
    Ok(FeedPage { entries, next_after })
}

/// Deletes an event: marks its pointer deleted, appends the tombstone, then voids the event's
/// slot. Each step is repeatable, so a deletion cut short is finished by repeating it.
pub(crate) async fn delete(
    s: &DynamoEvents,
    tenant: &Tenant,
    id: &EventId,
    how: Deletion,
) -> Result<Option<Deleted>, StoreError> {
    let now = OffsetDateTime::now_utc();
    let Some(ptr) = pointer(s, tenant, id).await? else {
        return Ok(None);
    };
    let seq = seq_of(&ptr)?;
    let Some(item) = slot(s, tenant, seq, now).await? else {
        return Ok(None);
    };
    let Some(event) = event_in(&item, id, now)? else {
        return Ok(None);
    };
    let already = ptr.contains_key(DELETED);
    if !already {
        let marked = pointer_update(s, tenant, id)
            // The subject goes with the event: an erasure must not leave it behind.
            .update_expression("SET #deleted = :t REMOVE #subject")
            .condition_expression("#seq = :seq AND attribute_not_exists(#deleted)")
            .expression_attribute_names("#deleted", DELETED)
            .expression_attribute_names("#seq", SEQ)
            .expression_attribute_names("#subject", SUBJECT)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":seq", number_attr(seq))
            .send()
            .await;
        if !super::condition_held(marked, "UpdateItem").map_err(unavailable)? {
            return Ok(None);
        }
    }
    // The tombstone, once: a repeated deletion finds its seq on the pointer.
    let tombstone_seq = match num(&ptr, TOMB).and_then(|v| u64::try_from(v).ok()) {
        Some(t) => t,
        None => {
            let mut t = allocate(s, tenant, 1).await?;
            let mut written = false;
            for _ in 0..MAX_ATTEMPTS {
                let mut tomb = slot_item(s, tenant, t, "tombstone", how.at);
                tomb.insert(ID.to_owned(), string_attr(id.to_string()));
                tomb.insert(TYPE.to_owned(), string_attr(event.event_type.as_str()));
                tomb.insert(
                    DELETED_AT.to_owned(),
                    string_attr(how.at.format(&Rfc3339).map_err(|_| corrupt("a deletion time"))?),
                );
                if let Some(exp) = how.tombstone_expires_at {
                    tomb.insert(EXP.to_owned(), number_attr(exp.unix_timestamp()));
                }
                if put_if(s, tomb, "attribute_not_exists(pk)").await? {
                    written = true;
                    break;
                }
                t = allocate(s, tenant, 1).await?;
            }
            if !written {
                return Err(StoreError::Unavailable(
                    "the tombstone's feed slots kept being voided".into(),
                ));
            }
            pointer_update(s, tenant, id)
                .update_expression("SET #tomb = :t")
                .expression_attribute_names("#tomb", TOMB)
                .expression_attribute_values(":t", number_attr(t))
                .send()
                .await
                .map_err(|e| unavailable(Failure::classify("DynamoDB", "UpdateItem", &e)))?;
            t
        }
    };
    // The event's own place becomes a void: the one change a decided slot may see.
    let mut gone = slot_item(s, tenant, seq, "void", now);
    if let Some(ttl) = item.get(TTL) {
        gone.insert(TTL.to_owned(), ttl.clone());
    }
    s.client
        .put_item()
        .table_name(&s.table)
        .set_item(Some(gone))
        .send()
        .await
        .map_err(|e| unavailable(Failure::classify("DynamoDB", "PutItem", &e)))?;
    Ok(Some(Deleted {
        id: *id,
        tombstone_seq,
        idempotency_key: event.idempotency_key,
    }))
}

/// Deletes the subject's events received before `before`: its pointers found by a filtered
/// query of every pointer shard (an erasure is rare; its cost is one read of the tenant's
/// pointers), at most `max` per call.
pub(crate) async fn delete_subject(
    s: &DynamoEvents,
    tenant: &Tenant,
    subject: &str,
    before: OffsetDateTime,
    how: Deletion,
    max: usize,
) -> Result<Vec<Deleted>, StoreError> {
    let mut ids = Vec::new();
    for pk in s.layout.pointer_pks(tenant) {
        let query = s
            .client
            .query()
            .table_name(&s.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .filter_expression("#s = :s AND attribute_not_exists(#deleted)")
            .expression_attribute_names("#s", SUBJECT)
            .expression_attribute_names("#deleted", DELETED)
            .expression_attribute_values(":pk", string_attr(pk.as_str()))
            .expression_attribute_values(":s", string_attr(subject));
        for item in query_all(query).await.map_err(unavailable)? {
            if let Some(id) = text(&item, SK).and_then(|v| EventId::parse(v).ok()) {
                ids.push(id);
            }
        }
    }
    ids.sort();
    let now = OffsetDateTime::now_utc();
    let mut deleted = Vec::new();
    for id in ids {
        if deleted.len() >= max {
            break;
        }
        let Some(event) = get(s, tenant, &id, now).await? else {
            continue;
        };
        if event.received_at >= before {
            continue;
        }
        if let Some(d) = delete(s, tenant, &id, how).await? {
            deleted.push(d);
        }
    }
    Ok(deleted)
}

/// Writes the erasure record, then moves its subject's marker forward (never back).
pub(crate) async fn put_erasure(s: &DynamoEvents, r: &ErasureRecord) -> Result<(), StoreError> {
    s.client
        .put_item()
        .table_name(&s.table)
        .item(PK, string_attr(erasure_pk(&r.tenant)))
        .item(SK, string_attr(format!("job#{}", r.id)))
        .item(RECORD, string_attr(encode_erasure(r)?))
        .send()
        .await
        .map_err(|e| unavailable(Failure::classify("DynamoDB", "PutItem", &e)))?;
    let until = r.requested_at.unix_timestamp_nanos();
    let result = s
        .client
        .update_item()
        .table_name(&s.table)
        .key(PK, string_attr(erasure_pk(&r.tenant)))
        .key(SK, string_attr(format!("sub#{}", r.subject_sha256)))
        .update_expression("SET #until = :until")
        .condition_expression("attribute_not_exists(#until) OR #until < :until")
        .expression_attribute_names("#until", UNTIL)
        .expression_attribute_values(":until", number_attr(until))
        .send()
        .await;
    // A later erasure of the same subject already moved it further: nothing to do.
    super::condition_held(result, "UpdateItem").map_err(unavailable)?;
    Ok(())
}

/// An erasure record.
pub(crate) async fn get_erasure(
    s: &DynamoEvents,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<ErasureRecord>, StoreError> {
    get_item(s, key(erasure_pk(tenant), format!("job#{id}")))
        .await?
        .map(|item| {
            text(&item, RECORD)
                .ok_or_else(|| corrupt("an erasure without its record"))
                .and_then(decode_erasure)
        })
        .transpose()
}

/// How far a subject has been erased.
pub(crate) async fn erased_until(
    s: &DynamoEvents,
    tenant: &Tenant,
    subject_sha256: &str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(get_item(s, key(erasure_pk(tenant), format!("sub#{subject_sha256}")))
        .await?
        .and_then(|i| match i.get(UNTIL) {
            Some(AttributeValue::N(v)) => v.parse::<i128>().ok(),
            _ => None,
        })
        .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_by_id_and_by_seq() {
        let layout = FeedLayout {
            shards: 4,
            ..FeedLayout::default()
        };
        let t = Tenant::parse("acme").unwrap();
        let pks: std::collections::HashSet<String> = (0..64)
            .map(|i| {
                layout.pointer_pk(
                    &t,
                    &EventId::new_at(OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(i)),
                )
            })
            .collect();
        assert!(pks.len() > 1 && pks.iter().all(|p| p.starts_with("acme#e")), "{pks:?}");
        assert_eq!(layout.slot_pk(&t, 5), "acme#f1");
        assert_eq!(slot_sk(42), "00000000000000000042");
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
