//! Sluice's core: the domain of an event ingestion pipeline and the ports its adapters implement.
//!
//! # Layout
//! - [`tenant`], [`ids`], [`event`]: parsed domain types (a value of these types is valid by construction).
//! - [`json`]: a strict JSON reader (nesting depth limit, duplicate keys rejected) for untrusted bytes.
//! - [`validate`]: turns untrusted request bytes into [`event::NewEvent`]s, with JSON Pointer violations.
//! - [`cloudevents`]: CloudEvents 1.0 (structured, batch and binary mode) mapped onto the same events.
//! - [`envelope`]: what travels through the queue, signed at ingest and verified by the process step.
//! - [`cursor`]: opaque, signed list cursors bound to one tenant.
//! - [`keys`]: API keys: generation, hashing, constant-time verification.
//! - [`metrics`]: the metric names both hosts export (Prometheus, CloudWatch EMF).
//! - [`payload`]: an event's `data` as the JSON text it was accepted as, sealed and stored without re-printing.
//! - [`oidc`]: JWT bearer tokens from an OIDC issuer (Cognito, or a JWKS file), for user-facing clients.
//! - [`ports`]: the narrow traits adapters implement: queue (SQS semantics), event store (DynamoDB
//!   semantics), idempotency store and key store.
//! - [`feed`]: events out: the ordered feed, retention, deletion and erasure by subject.
//! - [`ingest`], [`query`]: the use cases behind the HTTP routes, free of any HTTP type.
//! - [`deliveries`]: the webhook intake use case: a provider's signed delivery to one event, once.
//! - [`process`]: the process step's rules (Lambda partial-batch semantics): verify, re-check,
//!   store once, what each outcome means, the dead-letter copy and the retry backoff.
//! - [`clock`]: injectable time, so tests control expiry windows.
//! - [`text`]: cutting text at a character boundary, hex of a digest.
//! - [`trace`]: W3C trace context (and its X-Ray form), carried with events from request to store.
//! - [`webhook`]: provider-signed webhook deliveries (Stripe, GitHub, Standard Webhooks, Shopify,
//!   Slack, generic HMAC) verified over the raw body and read for type, delivery id and time.
//!
//! This crate has no HTTP, SQLite or AWS dependency and does no I/O (no files, no environment, no
//! tokio): the hosts read what they need and hand it in parsed, so the same rules run in
//! `sluice serve` and on Lambda. `tests/purity.rs` fails if that comes back.

pub mod cache;
pub mod clock;
pub mod cloudevents;
pub mod cursor;
pub mod deliveries;
pub mod envelope;
pub mod event;
pub mod feed;
pub mod ids;
pub mod ingest;
pub mod json;
pub mod keys;
pub mod metrics;
pub mod oidc;
pub mod payload;
pub mod ports;
pub mod process;
pub mod query;
pub mod tenant;
pub mod text;
pub mod trace;
pub mod validate;
pub mod webhook;

pub use clock::{Clock, SystemClock};
pub use event::{EventType, NewEvent, StoredEvent};
pub use ids::{EventId, IdempotencyKey, KeyId, RequestId, SourceId};
pub use tenant::Tenant;
