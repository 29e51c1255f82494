//! The [`IdempotencyStore`] port on the idempotency table.
//!
//! Item layout: `pk` = `tenant#key`, `tenant`, `key`, `fingerprint`, `ids` (a list of strings,
//! in request order), `single`, `completed`, `expires_at` (Unix nanoseconds, so the record
//! round-trips exactly and the claim condition compares numbers) and `ttl` (Unix seconds, rounded
//! up: DynamoDB TTL deletes the item some time after it expires, which is why expiry is also
//! enforced by the condition rather than left to TTL).
//!
//! The item holds ids, not envelopes, so it stays small whatever the request (a 100-event batch's
//! ids are about 3 KB: well inside one item, a few write units). Items written by earlier releases
//! also carry a `payload` attribute, which is ignored.

use super::{Corrupt, Item, PK, Reader, number_attr, string_attr};
use crate::error::Failure;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use sluice_core::ids::{EventId, IdempotencyKey};
use sluice_core::ports::{Claim, IdempotencyError, IdempotencyRecord, IdempotencyStore};
use sluice_core::tenant::Tenant;
use time::OffsetDateTime;

const TABLE: &str = "idempotency";
/// How many times a claim is retried when the record it lost to vanishes before it can be read
/// (it expired and was replaced or deleted in between).
const CLAIM_ATTEMPTS: usize = 3;

impl From<Corrupt> for IdempotencyError {
    fn from(c: Corrupt) -> Self {
        IdempotencyError::Unavailable(c.to_string())
    }
}

fn unavailable(f: Failure) -> IdempotencyError {
    IdempotencyError::Unavailable(f.to_string())
}

/// The partition key: a tenant name never contains `#`, so the first `#` splits it.
fn pk(tenant: &Tenant, key: &IdempotencyKey) -> String {
    format!("{}#{}", tenant.as_str(), key.as_str())
}

fn nanos(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos()
}

fn encode(r: &IdempotencyRecord) -> Item {
    let ttl_secs = r.expires_at.unix_timestamp() + i64::from(r.expires_at.nanosecond() > 0);
    Item::from([
        (PK.to_owned(), string_attr(pk(&r.tenant, &r.key))),
        ("tenant".to_owned(), string_attr(r.tenant.as_str())),
        ("key".to_owned(), string_attr(r.key.as_str())),
        ("fingerprint".to_owned(), string_attr(&r.fingerprint)),
        (
            "ids".to_owned(),
            AttributeValue::L(r.ids.iter().map(|id| string_attr(id.to_string())).collect()),
        ),
        ("single".to_owned(), AttributeValue::Bool(r.single)),
        ("completed".to_owned(), AttributeValue::Bool(r.completed)),
        ("expires_at".to_owned(), number_attr(nanos(r.expires_at))),
        ("ttl".to_owned(), number_attr(ttl_secs)),
    ])
}

fn decode(item: &Item) -> Result<IdempotencyRecord, Corrupt> {
    let r = Reader::new(TABLE, item);
    let ids = r
        .str_list("ids")?
        .into_iter()
        .map(|id| EventId::parse(id).map_err(|_| Corrupt::new(TABLE, "attribute ids holds a non event id")))
        .collect::<Result<Vec<_>, _>>()?;
    let expires_at = OffsetDateTime::from_unix_timestamp_nanos(r.i128("expires_at")?)
        .map_err(|_| Corrupt::new(TABLE, "attribute expires_at is out of range"))?;
    Ok(IdempotencyRecord {
        tenant: r.parsed("tenant", Tenant::parse)?,
        key: r.parsed("key", IdempotencyKey::parse)?,
        fingerprint: r.str("fingerprint")?.to_owned(),
        ids,
        single: r.bool("single")?,
        completed: r.bool("completed")?,
        expires_at,
    })
}

/// The [`IdempotencyStore`] port on one DynamoDB idempotency table. Cheap to clone: the client
/// is shared.
#[derive(Debug, Clone)]
pub struct DynamoIdempotency {
    client: Client,
    table: String,
}

impl DynamoIdempotency {
    /// The idempotency records in `table` (TTL on `ttl`), reached through `client` (build the
    /// client once and share it).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotency {
    async fn claim(&self, record: &IdempotencyRecord, now: OffsetDateTime) -> Result<Claim, IdempotencyError> {
        let item = encode(record);
        for _ in 0..CLAIM_ATTEMPTS {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                .expression_attribute_values(":now", number_attr(nanos(now)))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(Claim::Claimed),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(unavailable(Failure::classify("DynamoDB", "PutItem", &e))),
            }
            // A live record exists: read it back, consistently, so the caller sees what won.
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(PK, string_attr(pk(&record.tenant, &record.key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| unavailable(Failure::classify("DynamoDB", "GetItem", &e)))?;
            if let Some(item) = out.item() {
                let existing = decode(item)?;
                if existing.tenant != record.tenant || existing.key != record.key {
                    return Err(Corrupt::new(TABLE, "the item's key does not match its attributes").into());
                }
                if existing.expires_at > now {
                    return Ok(Claim::Existing(existing));
                }
            }
            // It expired or vanished between the put and the read: claim again.
        }
        Err(IdempotencyError::Unavailable(
            "DynamoDB idempotency claim kept racing with other writers".into(),
        ))
    }

    async fn complete(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<(), IdempotencyError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, string_attr(pk(tenant, key)))
            .update_expression("SET completed = :t")
            // Without the condition a missing record would be recreated as a stub with no fields.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                // TTL already removed it: nothing is left to complete, and a retry would claim anew.
                tracing::debug!(tenant = %tenant, "idempotency record gone before completion");
                Ok(())
            }
            Err(e) => Err(unavailable(Failure::classify("DynamoDB", "UpdateItem", &e))),
        }
    }

    async fn forget(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<bool, IdempotencyError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, string_attr(pk(tenant, key)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable(Failure::classify("DynamoDB", "DeleteItem", &e)))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_ttl_rounds_up() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_000_000_001).unwrap();
        let r = IdempotencyRecord {
            tenant: Tenant::parse("acme").unwrap(),
            key: IdempotencyKey::parse("k#1").unwrap(),
            fingerprint: "ab".into(),
            ids: vec![EventId::new_at(at), EventId::new_at(at)],
            single: false,
            completed: false,
            expires_at: at,
        };
        let item = encode(&r);
        assert_eq!(item.get("ttl"), Some(&number_attr(1_800_000_001)));
        assert_eq!(item.get(PK), Some(&string_attr("acme#k#1")));
        assert_eq!(decode(&item).unwrap(), r);
    }
}
