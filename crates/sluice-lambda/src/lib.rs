//! Sluice on AWS Lambda: four functions, each a thin binary over a module of this library so its
//! handler can be tested without the Lambda runtime.
//!
//! ```text
//! client ─▶ API Gateway ─▶ authorizer (key or JWT → tenant, cached by API Gateway)
//!                │
//!                ├─ POST /v1/events ─▶ ingest ─▶ SQS ──(event source mapping)──▶ process ─▶ DynamoDB
//!                │                                 └─ redrive ─▶ DLQ ◀─ permanent failures ─┘
//!                └─ GET /v1/events… ─▶ query ─▶ DynamoDB
//! ```
//!
//! # Layout
//! - [`authorizer`]: the API Gateway Lambda REQUEST authorizer (REST and HTTP API payloads).
//! - [`ingest`], [`query`]: `sluice_http`'s routers under `lambda_http`, behind [`context`], which
//!   turns the API Gateway request context into the principal and the client address.
//! - [`process`]: the SQS consumer with partial batch responses.
//! - `setup`: the init steps ingest and process share (the envelope sealer, the validator).
//! - [`metrics`]: CloudWatch EMF, the metric names `sluice serve` exports, flushed per invocation.
//!
//! What the functions share with `sluice serve` lives in `sluice-host`: the settle policy of the
//! process step, the environment (every `SLUICE_*` name, one lookup), the schema and JWKS file
//! reads, the SDK clients, and the redacting log subscriber every `main` installs first.
//! - `src/bin/*.rs`: one `main` per function: read the environment, build the clients, init, run.
//!
//! Each function is a cargo feature (all on by default) and its binary `required-features` it, so
//! e.g. the authorizer compiles without `lambda_http`, axum or the routers; the linker drops what a
//! binary never references (the SQS SDK from the authorizer, for one).
//!
//! # Configuration
//! From the environment, read once at init through `sluice_host::env`; the exact variables and IAM actions of each function
//! are in `functions.toml` beside this crate's manifest (a test proves both lists exact). Secrets
//! (the envelope signing key ring, the cursor key) are `SecureString` parameters in SSM Parameter
//! Store named by `SLUICE_SIGNING_KEY_PARAM` and `SLUICE_CURSOR_KEY_PARAM`; see
//! [`sluice_aws::secrets`] for their format and rotation. The SDK reads the variables the Lambda
//! runtime sets (region, the execution role's credentials) and `AWS_ENDPOINT_URL`, and nothing else
//! ([`sluice_aws::lambda_sdk_config`]: no profile, SSO or metadata lookups to link or to run).
//!
//! # Idempotency on AWS
//! Two kinds of retry reach Sluice, and neither stores an event twice:
//! - **A client retry with `Idempotency-Key`** (ingest): the first request claims
//!   `tenant#key` in the idempotency table with a conditional `PutItem` (absent or expired) that
//!   records the body's fingerprint, the assigned ids and the sealed envelopes. A retry loses the
//!   claim, reads the record (`GetItem`) and answers with the same ids; if the first attempt died
//!   before it finished sending, the retry sends *exactly those envelopes* again (same event ids),
//!   then marks the record complete (`UpdateItem`). A different body under the same key is a 422.
//!   The record lives 24 hours (DynamoDB TTL on `ttl`, and the claim condition checks expiry
//!   itself because TTL deletion is lazy).
//! - **An SQS redelivery** (process: at-least-once delivery, a Lambda timeout, a partial batch
//!   retry, a duplicate send from an ingest retry): the store write is a `PutItem` with
//!   `ConditionExpression: attribute_not_exists(pk)` on the event's `(tenant, event id)` key. A
//!   second delivery fails the condition, which the store reports as "already exists" and the
//!   process step counts as success, so the record is deleted and nothing is written twice.
//!
//! # Trust
//! The ingest and query functions trust the principal in the request context: only API Gateway,
//! after the authorizer allowed the request, can put it there. Their resource policies must allow
//! invocation by that API only (the SAM template's job).

#[cfg(feature = "authorizer")]
pub mod authorizer;
#[cfg(feature = "http")]
pub mod context;
#[cfg(feature = "ingest")]
pub mod ingest;
pub mod metrics;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "query")]
pub mod query;

#[cfg(any(feature = "ingest", feature = "process"))]
mod setup;

pub use sluice_host::{Clients, Lookup, RecordingEnv, process_env};

/// How long a credential's record (an API key's, a webhook source's) is cached inside one
/// function instance: a revocation, rotation or deletion takes effect within it.
pub const RECORD_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a function could not start. Its `Display` never includes a secret.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A variable is unset, unusable, or names a file that is.
    #[error(transparent)]
    Env(#[from] sluice_host::EnvError),
    /// A secret could not be loaded from SSM, or is unusable.
    #[error(transparent)]
    Secret(#[from] sluice_aws::secrets::SecretError),
    /// The envelope signing key ring is unusable.
    #[error("the envelope signing keys: {0}")]
    SigningKeys(String),
    /// The OIDC issuer's JWKS is unusable.
    #[error("OIDC: {0}")]
    Oidc(String),
    /// The metrics collector could not be installed.
    #[error("metrics: {0}")]
    Metrics(String),
}
