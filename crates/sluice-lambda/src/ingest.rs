//! The ingest function: `POST /v1/events` under `lambda_http`, sending sealed envelopes to SQS.
//!
//! The router is `sluice_http::ingest_router` with [`Auth::Upstream`] (the authorizer already
//! ran), behind [`crate::context`]. Each accepted event becomes one SQS message whose attributes
//! carry the request id, the acceptance time, the source IP, the tenant, the event id, a SHA-256 of
//! the body and its HMAC signature (R-2, T-2). `Idempotency-Key` claims live in the idempotency
//! table (see the crate docs).
//!
//! No queue-depth backpressure here: reading the depth would cost an SQS call per request (or a
//! poller per instance); on AWS, API Gateway throttling and reserved concurrency bound the load,
//! and SQS itself has no practical depth limit.

use crate::setup;
use crate::{Clients, InitError};
use axum::Router;
use sluice_aws::secrets::SecretParameters;
use sluice_aws::{DynamoIdempotency, SqsQueue};
use sluice_core::clock::SystemClock;
use sluice_core::ingest::IngestService;
use sluice_core::ports::{IdempotencyStore, Queue};
use sluice_host::env::{self, Lookup, SchemaSource, vars};
use sluice_host::telemetry::LogSettings;
use sluice_http::{Auth, HttpConfig};
use std::sync::Arc;

/// What the ingest function reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    queue_url: String,
    idempotency_table: String,
    signing_key_param: String,
    schemas: SchemaSource,
    /// How the function logs.
    pub log: LogSettings,
}

impl IngestConfig {
    /// Reads `SLUICE_QUEUE_URL`, `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_SIGNING_KEY_PARAM`,
    /// `SLUICE_SCHEMA_DIR`, `SLUICE_REQUIRE_SCHEMA` and the log settings.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, InitError> {
        Ok(Self {
            queue_url: env::required(env, vars::QUEUE_URL)?,
            idempotency_table: env::required(env, vars::IDEMPOTENCY_TABLE)?,
            signing_key_param: env::required(env, vars::SIGNING_KEY_PARAM)?,
            schemas: SchemaSource::from_lookup(env)?,
            log: LogSettings::from_lambda_env(env),
        })
    }
}

/// Builds the SQS, DynamoDB and SSM clients, loads the signing keys and returns the service.
pub async fn init(config: &IngestConfig, clients: &Clients) -> Result<Arc<IngestService>, InitError> {
    let secrets = SecretParameters::new(clients.ssm());
    let sealer = setup::sealer(&secrets, &config.signing_key_param).await?;
    let validator = setup::validator(&config.schemas)?;
    let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(clients.sqs(), &config.queue_url));
    let idempotency: Arc<dyn IdempotencyStore> =
        Arc::new(DynamoIdempotency::new(clients.dynamodb(), &config.idempotency_table));
    Ok(Arc::new(IngestService::new(
        validator,
        queue,
        idempotency,
        sealer,
        Arc::new(SystemClock),
    )))
}

/// The function's router: the ingest routes behind the API Gateway context layer.
pub fn router(service: Arc<IngestService>) -> Router {
    crate::context::wrap(sluice_http::ingest_router(
        service,
        Auth::Upstream,
        &HttpConfig::default(),
    ))
}
