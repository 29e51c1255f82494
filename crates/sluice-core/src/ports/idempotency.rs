//! The idempotency port: remembers which event ids an `Idempotency-Key` produced, per tenant.
//!
//! The protocol is claim, send, complete. A retry that finds a completed record gets the same ids
//! back and nothing is sent. A retry that finds a pending record (the first attempt crashed or is
//! still running) sends its own events again under the record's ids: the fingerprint proves they
//! are the same events, and the store's conditional put on the event id keeps each once, so no
//! accepted event is ever lost to a half-finished first attempt. The record holds ids, not the
//! envelopes: it stays a few hundred bytes whatever the request's size (one DynamoDB write unit,
//! a small row in SQLite).

use crate::ids::{EventId, IdempotencyKey};
use crate::ports::{OutgoingMessage, QueueError};
use crate::tenant::Tenant;
use async_trait::async_trait;
use time::OffsetDateTime;

/// What the first request with a key produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The owner; keys of different tenants never collide.
    pub tenant: Tenant,
    /// The client's key.
    pub key: IdempotencyKey,
    /// What the request means (SHA-256 of its body, hex, or of its events for CloudEvents): the
    /// same key with another meaning is refused.
    pub fingerprint: String,
    /// The ids assigned, in request order.
    pub ids: Vec<EventId>,
    /// Whether the response was a single `{"id"}` rather than `{"ids"}`.
    pub single: bool,
    /// Whether the events were durably enqueued.
    pub completed: bool,
    /// After this instant the record is ignored and may be replaced.
    pub expires_at: OffsetDateTime,
}

/// The result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No live record existed; this one is now stored.
    Claimed,
    /// A live record already exists.
    Existing(IdempotencyRecord),
}

/// Why an idempotency operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The backing store is unavailable.
    #[error("idempotency store unavailable: {0}")]
    Unavailable(String),
}

/// Durable idempotency records with conditional create.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Stores `record` unless a record for its tenant and key exists that has not expired at `now`.
    async fn claim(&self, record: &IdempotencyRecord, now: OffsetDateTime) -> Result<Claim, IdempotencyError>;

    /// Marks the record for `(tenant, key)` completed. It may return before the mark is durable:
    /// a lost mark costs only a resend of the same events under the same ids by a later retry,
    /// which the store keeps once. A claim made after it returns must see it.
    async fn complete(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<(), IdempotencyError>;

    /// Removes the record for `(tenant, key)`, so a retry no longer answers with the ids of
    /// events since deleted; whether there was one.
    async fn forget(&self, tenant: &Tenant, key: &IdempotencyKey) -> Result<bool, IdempotencyError>;
}

/// A queue that keeps idempotency claims beside its messages, so a claim and its send are one
/// durable step: one commit where claim-then-send takes two in a row, which is most of what an
/// idempotent request costs over a plain one. The embedded backend is one (its claims live in
/// the queue's database); on AWS the claim is a DynamoDB write and the send an SQS call, and the
/// ingest path claims, then sends.
#[async_trait]
pub trait ClaimingQueue: Send + Sync + 'static {
    /// Claims `record` as [`IdempotencyStore::claim`] does and, only when it is claimed, sends
    /// `messages` as [`crate::ports::Queue::send_batch`] does (any number, each checked as a
    /// send checks it), with the record marked completed, all in one durable step: either both
    /// are kept or neither. A live record is returned as [`Claim::Existing`] and nothing is sent.
    /// The records are the ones the backend's [`IdempotencyStore`] claims and completes.
    async fn claim_and_send(
        &self,
        record: &IdempotencyRecord,
        now: OffsetDateTime,
        messages: &[OutgoingMessage],
    ) -> Result<Claim, QueueError>;
}
