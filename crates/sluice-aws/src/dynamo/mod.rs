//! The event store, idempotency store, key store and source store ports on Amazon DynamoDB: one adapter type
//! per port, each in its own file and each holding only a shared
//! [`Client`](aws_sdk_dynamodb::Client) and its one table name.
//!
//! - [`DynamoEvents`] ([`EventStore`](sluice_core::ports::EventStore)) in `events.rs`;
//! - [`DynamoIdempotency`] ([`IdempotencyStore`](sluice_core::ports::IdempotencyStore)) in
//!   `idempotency.rs`;
//! - [`DynamoKeys`] ([`KeyStore`](sluice_core::ports::KeyStore)) in `keys.rs`.
//! - [`DynamoSources`] ([`SourceStore`](sluice_core::ports::SourceStore)) in `sources.rs`.
//!
//! A process builds only the adapters it uses: a table it never touches needs no name. The item
//! helpers shared by them (typed attribute reads, attribute constructors, `Corrupt`) live
//! here.
//!
//! Four tables, each with a string partition key `pk`:
//! - events: `pk` = `<tenant>#e<shard>`, sort key `sk` = event id (`evt_<ULID>`, so the sort
//!   order is time order); attributes `type`, `data` (the payload as a JSON string, so it
//!   round-trips exactly), `occurred_at`, `received_at` (RFC 3339), `request_id`, `seq`, `ttl`.
//!   The same table holds each tenant's feed: its counter, slots and erasure records, under
//!   other `pk` prefixes (see `feed.rs`).
//! - idempotency: `pk` = `tenant#key` (a tenant name cannot contain `#`, so this is unambiguous),
//!   with a `ttl` number attribute for DynamoDB TTL.
//! - keys: `pk` = key id.
//! - sources: `pk` = source id (see `sources.rs`).
//!
//! Every read is strongly consistent: the ports promise read-your-writes (the embedded adapter has
//! it, and the idempotency protocol depends on it), and the items read are small.

mod events;
mod feed;
mod idempotency;
mod keys;
mod sources;

pub use events::DynamoEvents;
pub use idempotency::DynamoIdempotency;
pub use keys::DynamoKeys;
pub use sources::DynamoSources;

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The partition key attribute of every table.
pub(crate) const PK: &str = "pk";
/// The sort key attribute of the events table.
pub(crate) const SK: &str = "sk";

/// A conditional `PutItem` that never overwrites: `Ok(false)` when an item with this `pk` exists.
pub(crate) async fn put_new(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
) -> Result<bool, crate::error::Failure> {
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    condition_held(result, "PutItem")
}

/// Runs `update` on the existing item `pk` of `table`: `Ok(false)` when there is none.
pub(crate) async fn update_existing(
    update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    table: &str,
    pk: &str,
) -> Result<bool, crate::error::Failure> {
    let result = update
        .table_name(table)
        .key(PK, string_attr(pk))
        .condition_expression("attribute_exists(pk)")
        .send()
        .await;
    condition_held(result, "UpdateItem")
}

/// A conditional write's result: `Ok(true)` when it was made, `Ok(false)` when its condition
/// failed, the classified failure otherwise.
fn condition_held<O, E>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    operation: &'static str,
) -> Result<bool, crate::error::Failure>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(crate::error::Failure::classify("DynamoDB", operation, &e)),
    }
}

/// The item `pk` of a hash-key-only table, read consistently.
pub(crate) async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Result<Option<Item>, crate::error::Failure> {
    let out = client
        .get_item()
        .table_name(table)
        .key(PK, string_attr(pk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| crate::error::Failure::classify("DynamoDB", "GetItem", &e))?;
    Ok(out.item().cloned())
}

/// Every item of `table`, page after page (the SDK's paginator follows `LastEvaluatedKey`): for
/// the small tables only operators list (keys, sources), never on a request path.
pub(crate) async fn scan_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<Item>, crate::error::Failure> {
    client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| crate::error::Failure::classify("DynamoDB", "Scan", &e))
}

/// Every item a query returns, page after page (the SDK's paginator follows `LastEvaluatedKey`).
pub(crate) async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<Item>, crate::error::Failure> {
    query
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| crate::error::Failure::classify("DynamoDB", "Query", &e))
}

/// An item that is not what Sluice writes (T-3).
#[derive(Debug, thiserror::Error)]
#[error("{table} item: {what}")]
pub(crate) struct Corrupt {
    table: &'static str,
    what: String,
}

impl Corrupt {
    pub(crate) fn new(table: &'static str, what: impl Into<String>) -> Self {
        Self {
            table,
            what: what.into(),
        }
    }
}

/// A string attribute.
pub(crate) fn string_attr(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn number_attr(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An RFC 3339 string attribute (nanosecond precision, offset kept).
pub(crate) fn time_attr(table: &'static str, t: OffsetDateTime) -> Result<AttributeValue, Corrupt> {
    t.format(&Rfc3339)
        .map(string_attr)
        .map_err(|_| Corrupt::new(table, "a time outside RFC 3339's range"))
}

/// Typed access to an item's attributes, naming the table in errors.
pub(crate) struct Reader<'a> {
    pub(crate) table: &'static str,
    pub(crate) item: &'a Item,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(table: &'static str, item: &'a Item) -> Self {
        Self { table, item }
    }

    fn missing(&self, name: &str, ty: &str) -> Corrupt {
        Corrupt::new(self.table, format!("attribute {name} is missing or not of type {ty}"))
    }

    pub(crate) fn str(&self, name: &str) -> Result<&'a str, Corrupt> {
        match self.item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v),
            _ => Err(self.missing(name, "S")),
        }
    }

    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Corrupt> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v)),
            _ => Err(self.missing(name, "S")),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool, Corrupt> {
        match self.item.get(name) {
            Some(AttributeValue::Bool(v)) => Ok(*v),
            _ => Err(self.missing(name, "BOOL")),
        }
    }

    pub(crate) fn i128(&self, name: &str) -> Result<i128, Corrupt> {
        match self.item.get(name) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| self.missing(name, "N (integer)")),
            _ => Err(self.missing(name, "N")),
        }
    }

    pub(crate) fn str_list(&self, name: &str) -> Result<Vec<&'a str>, Corrupt> {
        match self.item.get(name) {
            Some(AttributeValue::L(items)) => items
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Ok(s.as_str()),
                    _ => Err(self.missing(name, "L of S")),
                })
                .collect(),
            _ => Err(self.missing(name, "L")),
        }
    }

    pub(crate) fn time(&self, name: &str) -> Result<OffsetDateTime, Corrupt> {
        let v = self.str(name)?;
        OffsetDateTime::parse(v, &Rfc3339).map_err(|_| self.missing(name, "S (RFC 3339)"))
    }

    pub(crate) fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>, Corrupt> {
        self.opt_str(name)?
            .map(|v| OffsetDateTime::parse(v, &Rfc3339).map_err(|_| self.missing(name, "S (RFC 3339)")))
            .transpose()
    }

    /// Parses a string attribute with `parse`, naming the attribute when it fails.
    pub(crate) fn parsed<T, E>(&self, name: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, Corrupt> {
        parse(self.str(name)?).map_err(|_| Corrupt::new(self.table, format!("attribute {name} is not valid")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_names_the_table_and_attribute_on_bad_items() {
        let item = Item::from([
            ("a".to_owned(), string_attr("x")),
            ("n".to_owned(), number_attr(5)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![string_attr("p"), string_attr("q")]),
            ),
        ]);
        let r = Reader::new("events", &item);
        assert_eq!(r.str("a").unwrap(), "x");
        assert_eq!(r.i128("n").unwrap(), 5);
        assert_eq!(r.str_list("l").unwrap(), vec!["p", "q"]);
        assert_eq!(r.opt_str("missing").unwrap(), None);
        let e = r.str("n").unwrap_err().to_string();
        assert_eq!(e, "events item: attribute n is missing or not of type S");
    }

    #[test]
    fn times_round_trip_exactly() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789).unwrap();
        let item = Item::from([("t".to_owned(), time_attr("events", t).unwrap())]);
        assert_eq!(Reader::new("events", &item).time("t").unwrap(), t);
    }
}
