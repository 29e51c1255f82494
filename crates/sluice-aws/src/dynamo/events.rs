//! The [`EventStore`] port on the events table.
//!
//! Item layout: `pk` (tenant), `sk` (event id), `type`, `data` (the payload serialised as a JSON
//! string: a DynamoDB map would lose the difference between integers and floats and the order of
//! keys), `occurred_at` and `received_at` (RFC 3339 strings), `request_id`, and, only when the
//! event has them: `subject`, `webhook_source` and `webhook_delivery` (the source and provider
//! delivery it came through), `extensions` (its CloudEvents extension attributes as a JSON
//! object string, for the same reason as `data`). Items written before these existed read as
//! having none.

use super::{Corrupt, Item, PK, Reader, SK, string_attr, time_attr};
use crate::error::Failure;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use sluice_core::event::{EventType, Extensions, StoredEvent, WebhookOrigin};
use sluice_core::ids::{EventId, RequestId, SourceId};
use sluice_core::ports::{EventStore, ListQuery, Page, PutOutcome, StoreError};
use sluice_core::tenant::Tenant;

const TABLE: &str = "events";
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

impl From<Corrupt> for StoreError {
    fn from(c: Corrupt) -> Self {
        StoreError::Corrupt(c.to_string())
    }
}

fn unavailable(f: Failure) -> StoreError {
    StoreError::Unavailable(f.to_string())
}

fn encode(e: &StoredEvent) -> Result<Item, Corrupt> {
    let data = serde_json::to_string(&e.data).map_err(|_| Corrupt::new(TABLE, "the payload cannot be serialised"))?;
    let mut item = Item::from([
        (PK.to_owned(), string_attr(e.tenant.as_str())),
        (SK.to_owned(), string_attr(e.id.to_string())),
        (TYPE.to_owned(), string_attr(e.event_type.as_str())),
        (DATA.to_owned(), string_attr(data)),
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
    Ok(item)
}

fn decode(item: &Item) -> Result<StoredEvent, Corrupt> {
    let r = Reader::new(TABLE, item);
    Ok(StoredEvent {
        trace_id: r.opt_str(TRACE_ID)?.map(str::to_owned),
        id: r.parsed(SK, EventId::parse)?,
        tenant: r.parsed(PK, Tenant::parse)?,
        event_type: r.parsed(TYPE, EventType::parse)?,
        data: r.parsed(DATA, |v| serde_json::from_str::<serde_json::Value>(v))?,
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
    client: Client,
    table: String,
    query_page_size: i32,
    max_query_pages: usize,
}

impl DynamoEvents {
    /// The events in `table`, reached through `client` (build the client once and share it).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            query_page_size: 1000,
            max_query_pages: 64,
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
}

#[async_trait]
impl EventStore for DynamoEvents {
    async fn put_if_absent(&self, event: &StoredEvent) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(event)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(unavailable(Failure::classify("DynamoDB", "PutItem", &e))),
        }
    }

    async fn get(&self, tenant: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, string_attr(tenant.as_str()))
            .key(SK, string_attr(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(Failure::classify("DynamoDB", "GetItem", &e)))?;
        match out.item() {
            None => Ok(None),
            Some(item) => {
                let event = decode(item)?;
                if &event.tenant != tenant || &event.id != id {
                    return Err(Corrupt::new(TABLE, "the item's key does not match its attributes").into());
                }
                Ok(Some(event))
            }
        }
    }

    /// Queries newest first, one page of up to the configured page size at a time, until
    /// `limit + 1` matching events are found or the partition ends. DynamoDB applies `Limit`
    /// *before* the type filter, so a filtered page can come back short (even empty) with more
    /// to read; looping hides that. Reading one extra event makes `last` exact: it is set only
    /// when another event really follows. After `max_query_pages` queries the page is returned
    /// short with `last` set to DynamoDB's `LastEvaluatedKey`, which bounds the work one call
    /// does on a partition where the filter rarely matches (D-4).
    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.limit.max(1);
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut start: Option<Item> = None;
        for _ in 0..self.max_query_pages {
            let want = limit + 1 - events.len();
            // With a filter most evaluated items may be dropped: read ahead to save round trips.
            let page = if query.event_type.is_some() {
                want.saturating_mul(4)
            } else {
                want
            };
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(i32::try_from(page).unwrap_or(i32::MAX).min(self.query_page_size))
                .expression_attribute_values(":pk", string_attr(tenant.as_str()))
                .set_exclusive_start_key(start.take());
            // A key condition rather than an `ExclusiveStartKey` for `after`: it needs no item
            // with that id to exist (moto, unlike DynamoDB, ignores a start key it cannot find).
            q = match &query.after {
                Some(after) => q
                    .key_condition_expression("pk = :pk AND sk < :after")
                    .expression_attribute_values(":after", string_attr(after.to_string())),
                None => q.key_condition_expression("pk = :pk"),
            };
            if let Some(ty) = &query.event_type {
                q = q
                    .filter_expression("#type = :type")
                    .expression_attribute_names("#type", TYPE)
                    .expression_attribute_values(":type", string_attr(ty.as_str()));
            }
            let out = q
                .send()
                .await
                .map_err(|e| unavailable(Failure::classify("DynamoDB", "Query", &e)))?;
            for item in out.items() {
                events.push(decode(item)?);
            }
            if events.len() > limit {
                events.truncate(limit);
                let last = events.last().map(|e| e.id);
                return Ok(Page { events, last });
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(Page { events, last: None }),
            }
        }
        // The read budget is spent: continue after the last item DynamoDB evaluated.
        let last = match start.as_ref().and_then(|k| k.get(SK)) {
            Some(AttributeValue::S(sk)) => {
                Some(EventId::parse(sk).map_err(|_| Corrupt::new(TABLE, "LastEvaluatedKey is not an event id"))?)
            }
            _ => events.last().map(|e| e.id),
        };
        Ok(Page { events, last })
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
            id: EventId::new_at(now),
            tenant: Tenant::parse("acme").unwrap(),
            event_type: EventType::parse("order.created").unwrap(),
            data: json!({"z": 1, "a": [1.5, -0.0, 1e300, "é\u{0}"], "n": null, "big": 18446744073709551615u64}),
            occurred_at: now,
            received_at: now,
            request_id: RequestId::parse("r-1").unwrap(),
            subject: None,
            webhook: None,
            extensions: Default::default(),
        };
        assert_eq!(decode(&encode(&e).unwrap()).unwrap(), e);
        let mut bad = encode(&e).unwrap();
        bad.insert(DATA.to_owned(), string_attr("{"));
        assert!(decode(&bad).is_err());
    }
}
