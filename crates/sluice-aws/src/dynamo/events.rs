//! The [`EventStore`] port on the events table: how an event is encoded into its feed slot
//! item, and the port's methods, which `feed.rs` implements (the items, the counter and the
//! guarantee are described there).
//!
//! An event's attributes in its slot: `id`, `type`, `data` (the payload serialised as a JSON
//! string: a DynamoDB map would lose the difference between integers and floats and the order of
//! keys), `occurred_at` and `received_at` (RFC 3339 strings), `request_id`, `seq`, `exp` (when
//! retention removes it, epoch seconds), and, only when the event has them: `idem` (the
//! request's idempotency key), `subject`, `webhook_source` and `webhook_delivery` (the source and
//! provider delivery it came through), `extensions` (its CloudEvents extension attributes as a
//! JSON object string, for the same reason as `data`), `trace_id`.

use super::feed::{self, FeedLayout};
use super::{Corrupt, Item, PK, Reader, number_attr, string_attr, time_attr};
use crate::error::Failure;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use sluice_core::event::{EventType, Extensions, StoredEvent, WebhookOrigin};
use sluice_core::ids::{EventId, RequestId, SourceId};
use sluice_core::ports::{
    Deleted, Deletion, ErasureRecord, EventStore, FeedError, FeedPage, FeedQuery, ListQuery, Page, PutOutcome,
    StoreError,
};
use sluice_core::tenant::Tenant;
use time::OffsetDateTime;

pub(crate) const TABLE: &str = "events";
const TYPE: &str = "type";
const DATA: &str = "data";
const OCCURRED_AT: &str = "occurred_at";
const RECEIVED_AT: &str = "received_at";
const REQUEST_ID: &str = "request_id";
/// Optional: items written before subjects existed have none.
const SUBJECT: &str = "subject";
/// Optional, with [`WEBHOOK_DELIVERY`]: on events that came through a webhook source.
const WEBHOOK_SOURCE: &str = "webhook_source";
const WEBHOOK_DELIVERY: &str = "webhook_delivery";
/// Optional: only on events with extension attributes.
const EXTENSIONS: &str = "extensions";
/// Optional: the trace id of the request that carried the event.
const TRACE_ID: &str = "trace_id";
/// The event's feed position.
const SEQ: &str = "seq";
/// The event id.
pub(crate) const ID: &str = "id";
/// When retention removes the event from reads (epoch seconds).
pub(crate) const EXP: &str = "exp";
/// DynamoDB TTL: epoch seconds after which DynamoDB deletes the item (within days); reads hide
/// it at once.
pub(crate) const TTL: &str = "ttl";
/// Optional: the idempotency key of the request that carried it.
const IDEM: &str = "idem";

impl From<Corrupt> for StoreError {
    fn from(c: Corrupt) -> Self {
        StoreError::Corrupt(c.to_string())
    }
}

pub(crate) fn unavailable(f: Failure) -> StoreError {
    StoreError::Unavailable(f.to_string())
}

/// The event's attributes, keys not included (the caller adds its slot's).
pub(crate) fn encode(e: &StoredEvent) -> Result<Item, Corrupt> {
    let mut item = Item::from([
        (SEQ.to_owned(), number_attr(e.seq)),
        (ID.to_owned(), string_attr(e.id.to_string())),
        (TYPE.to_owned(), string_attr(e.event_type.as_str())),
        (DATA.to_owned(), string_attr(e.data.get())),
        (OCCURRED_AT.to_owned(), time_attr(TABLE, e.occurred_at)?),
        (RECEIVED_AT.to_owned(), time_attr(TABLE, e.received_at)?),
        (REQUEST_ID.to_owned(), string_attr(e.request_id.as_str())),
    ]);
    if let Some(subject) = &e.subject {
        item.insert(SUBJECT.to_owned(), string_attr(subject.as_str()));
    }
    if let Some(w) = &e.webhook {
        item.insert(WEBHOOK_SOURCE.to_owned(), string_attr(w.source_id.as_str()));
        item.insert(WEBHOOK_DELIVERY.to_owned(), string_attr(w.delivery_id.as_str()));
    }
    if !e.extensions.is_empty() {
        let ext = serde_json::to_string(&e.extensions)
            .map_err(|_| Corrupt::new(TABLE, "the extension attributes cannot be serialised"))?;
        item.insert(EXTENSIONS.to_owned(), string_attr(ext));
    }
    if let Some(t) = &e.trace_id {
        item.insert(TRACE_ID.to_owned(), string_attr(t.as_str()));
    }
    if let Some(t) = e.expires_at {
        item.insert(EXP.to_owned(), number_attr(t.unix_timestamp()));
    }
    if let Some(k) = &e.idempotency_key {
        item.insert(IDEM.to_owned(), string_attr(k.as_str()));
    }
    Ok(item)
}

/// Whether the item's `attr` (epoch seconds) is at or before `now`.
pub(crate) fn past(item: &Item, attr: &str, now: OffsetDateTime) -> bool {
    matches!(item.get(attr), Some(AttributeValue::N(v)) if v.parse::<i64>().is_ok_and(|t| t <= now.unix_timestamp()))
}

/// Whether an item's `ttl` has passed: DynamoDB deletes expired items within days, reads hide
/// them at once.
pub(crate) fn expired(item: &Item, now: OffsetDateTime) -> bool {
    past(item, TTL, now)
}

pub(crate) fn decode(item: &Item) -> Result<StoredEvent, Corrupt> {
    let r = Reader::new(TABLE, item);
    let tenant_of_pk = |pk: &str| Tenant::parse(pk.split_once('#').map_or(pk, |(t, _)| t));
    Ok(StoredEvent {
        seq: u64::try_from(r.i128(SEQ)?).map_err(|_| Corrupt::new(TABLE, "a negative seq"))?,
        expires_at: match item.get(EXP) {
            None => None,
            Some(_) => Some(
                OffsetDateTime::from_unix_timestamp(
                    i64::try_from(r.i128(EXP)?).map_err(|_| Corrupt::new(TABLE, "a bad exp"))?,
                )
                .map_err(|_| Corrupt::new(TABLE, "a bad exp"))?,
            ),
        },
        idempotency_key: r
            .opt_str(IDEM)?
            .map(sluice_core::IdempotencyKey::parse)
            .transpose()
            .map_err(|_| Corrupt::new(TABLE, "a bad idem"))?,
        trace_id: r.opt_str(TRACE_ID)?.map(str::to_owned),
        id: r.parsed(ID, EventId::parse)?,
        tenant: r.parsed(PK, tenant_of_pk)?,
        event_type: r.parsed(TYPE, EventType::parse)?,
        data: r.parsed(DATA, |v| sluice_core::payload::Payload::from_json(v.to_owned()))?,
        occurred_at: r.time(OCCURRED_AT)?,
        received_at: r.time(RECEIVED_AT)?,
        request_id: r.parsed(REQUEST_ID, RequestId::parse)?,
        subject: r.opt_str(SUBJECT)?.map(str::to_owned),
        webhook: match (r.opt_str(WEBHOOK_SOURCE)?, r.opt_str(WEBHOOK_DELIVERY)?) {
            (None, None) => None,
            (Some(source), Some(delivery)) => Some(WebhookOrigin {
                source_id: SourceId::parse(source).map_err(|_| Corrupt::new(TABLE, "a bad webhook_source"))?,
                delivery_id: delivery.to_owned(),
            }),
            _ => return Err(Corrupt::new(TABLE, "webhook_source without webhook_delivery or back")),
        },
        extensions: match r.opt_str(EXTENSIONS)? {
            None => Extensions::new(),
            Some(s) => serde_json::from_str(s).map_err(|_| Corrupt::new(TABLE, "bad extensions"))?,
        },
    })
}

/// The [`EventStore`] port on one DynamoDB events table. Cheap to clone: the client is shared.
#[derive(Debug, Clone)]
pub struct DynamoEvents {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) query_page_size: i32,
    pub(crate) max_query_pages: usize,
    pub(crate) layout: FeedLayout,
}

impl DynamoEvents {
    /// The events in `table`, reached through `client` (build the client once and share it),
    /// with one shard (see [`DynamoEvents::with_shards`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            query_page_size: 1000,
            max_query_pages: 64,
            layout: FeedLayout::default(),
        }
    }

    /// Caps the `Limit` of each `Query` call a list makes (default 1000, at least 1).
    ///
    /// DynamoDB applies `Limit` before the type filter, so a filtered list may take several
    /// queries; a small cap makes that visible in tests and bounds the read capacity one call
    /// consumes.
    pub fn with_query_page_size(mut self, n: usize) -> Self {
        self.query_page_size = i32::try_from(n.clamp(1, 1000)).unwrap_or(1000);
        self
    }

    /// Spreads each tenant's items over `n` partitions (1 to 256; every writer and reader of a
    /// table must use the same count). See `feed.rs` for the arithmetic.
    pub fn with_shards(mut self, n: u32) -> Self {
        self.layout.shards = n.clamp(1, 256);
        self
    }

    /// How long a feed slot may stay unwritten after it was handed out before a reader fills
    /// it with a void (default 5 s): see `feed.rs`.
    pub fn with_hole_grace(mut self, grace: std::time::Duration) -> Self {
        self.layout.grace = grace;
        self
    }

    /// The longest retention of any event type: how long items are kept (default 30 days).
    pub fn with_slot_retention(mut self, keep: std::time::Duration) -> Self {
        self.layout.slot_retention = keep;
        self
    }
}

#[async_trait]
impl EventStore for DynamoEvents {
    async fn put_if_absent(&self, event: &StoredEvent) -> Result<PutOutcome, StoreError> {
        self.put_batch_if_absent(std::slice::from_ref(event))
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Unavailable("the store gave no answer".into())))
    }

    /// One block of seqs per tenant in the batch (one counter update), then each event
    /// concurrently. See `feed.rs`.
    async fn put_batch_if_absent(&self, events: &[StoredEvent]) -> Vec<Result<PutOutcome, StoreError>> {
        feed::put_batch(self, events).await
    }

    async fn get(&self, tenant: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        feed::get(self, tenant, id, OffsetDateTime::now_utc()).await
    }

    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<Page, StoreError> {
        feed::list(self, tenant, query, OffsetDateTime::now_utc()).await
    }

    async fn feed(&self, tenant: &Tenant, query: &FeedQuery, now: OffsetDateTime) -> Result<FeedPage, FeedError> {
        feed::read(self, tenant, query, now).await
    }

    async fn delete(&self, tenant: &Tenant, id: &EventId, how: Deletion) -> Result<Option<Deleted>, StoreError> {
        feed::delete(self, tenant, id, how).await
    }

    async fn delete_subject(
        &self,
        tenant: &Tenant,
        subject: &str,
        before: OffsetDateTime,
        how: Deletion,
        max: usize,
    ) -> Result<Vec<Deleted>, StoreError> {
        feed::delete_subject(self, tenant, subject, before, how, max).await
    }

    async fn put_erasure(&self, record: &ErasureRecord) -> Result<(), StoreError> {
        feed::put_erasure(self, record).await
    }

    async fn get_erasure(&self, tenant: &Tenant, id: &str) -> Result<Option<ErasureRecord>, StoreError> {
        feed::get_erasure(self, tenant, id).await
    }

    async fn erased_until(&self, tenant: &Tenant, subject_sha256: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        feed::erased_until(self, tenant, subject_sha256).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::OffsetDateTime;

    #[test]
    fn events_round_trip_through_items() {
        let now = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_000_000_001).unwrap();
        let e = StoredEvent {
            trace_id: None,
            seq: 0,
            expires_at: None,
            idempotency_key: None,
            id: EventId::new_at(now),
            tenant: Tenant::parse("acme").unwrap(),
            event_type: EventType::parse("order.created").unwrap(),
            data: json!({"z": 1, "a": [1.5, -0.0, 1e300, "é\u{0}"], "n": null, "big": 18446744073709551615u64}).into(),
            occurred_at: now,
            received_at: now,
            request_id: RequestId::parse("r-1").unwrap(),
            subject: None,
            webhook: None,
            extensions: Default::default(),
        };
        let with_key = |mut item: Item| {
            item.insert(PK.to_owned(), string_attr("acme#f0"));
            item
        };
        assert_eq!(decode(&with_key(encode(&e).unwrap())).unwrap(), e);
        let mut bad = with_key(encode(&e).unwrap());
        bad.insert(DATA.to_owned(), string_attr("{"));
        assert!(decode(&bad).is_err());
    }
}
