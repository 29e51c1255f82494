//! The ports: narrow traits that adapters (embedded SQLite, AWS) implement.
//!
//! Each trait mirrors the semantics of the AWS service it stands for, including its weaknesses
//! (at-least-once delivery, no cross-service transactions), so code written against the embedded
//! adapters behaves the same on AWS. One conformance suite (in `sluice-testkit`) runs against every
//! adapter.

pub mod idempotency;
pub mod keys;
pub mod plans;
pub mod queue;
pub mod sources;
pub mod store;

pub use idempotency::{Claim, ClaimingQueue, IdempotencyError, IdempotencyRecord, IdempotencyStore};
pub use keys::{KeyRecord, KeyStore, KeyStoreError};
pub use plans::{PlanError, TenantLimits, TenantPlans, check_limits, usage_key};
pub use queue::{
    ENVELOPE_HEADROOM, MAX_ATTRIBUTES, MAX_BATCH, MAX_GROUP_LEN, MAX_MESSAGE_BYTES, MAX_VISIBILITY, MAX_WAIT,
    MessageAttributes, OutgoingMessage, Queue, QueueDepth, QueueError, QueueSweep, ReceiptHandle, ReceivedMessage,
    check_group, check_receive, check_send_batch, check_visibility, message_size, valid_group,
};
pub use sources::{SourceRecord, SourceSecret, SourceStore, SourceStoreError};
pub use store::{
    Deleted, Deletion, ErasureRecord, ErasureStatus, EventStore, FeedEntry, FeedError, FeedPage, FeedQuery, ListQuery,
    Page, PutOutcome, StoreError, Tombstone,
};
