//! The ingest function: `POST /v1/events` and the webhook deliveries `POST /v1/sources/{id}`
//! under `lambda_http`, sending sealed envelopes to SQS.
//!
//! The router is `sluice_http::ingest_router` with [`Auth::Upstream`] (the authorizer already
//! ran for `/v1/events`), behind [`crate::context`]. API Gateway forwards a webhook delivery
//! without its authorizer: the function reads the source from the sources table and verifies
//! the provider's signature over the raw body itself (S-6, S-7); its failure limits per source and
//! per address live in the instance, behind the route's own API Gateway throttling. Each
//! accepted event becomes one SQS message whose attributes carry the request id, the acceptance
//! time, the source IP, the tenant, the event id, the webhook delivery when there is one, and the
//! HMAC signature (R-2, T-2). `Idempotency-Key` claims and webhook delivery ids live in the
//! idempotency table (see the crate docs).
//!
//! No queue-depth backpressure here: reading the depth would cost an SQS call per request (or a
//! poller per instance); on AWS, API Gateway throttling and reserved concurrency bound the load,
//! and SQS itself has no practical depth limit.

use crate::setup;
use crate::{Clients, InitError};
use axum::Router;
use sluice_aws::secrets::SecretParameters;
use sluice_aws::{DynamoIdempotency, DynamoSources, SqsQueue};
use sluice_core::clock::{Clock, SystemClock};
use sluice_core::deliveries::DeliveryService;
use sluice_core::ingest::IngestService;
use sluice_core::ports::{IdempotencyStore, Queue, SourceStore};
use sluice_host::env::{self, Lookup, SchemaSource, vars};
use sluice_host::telemetry::LogSettings;
use sluice_http::{Auth, HttpConfig};
use std::sync::Arc;

/// What the ingest function reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    queue_url: String,
    idempotency_table: String,
    sources_table: String,
    signing_key_param: String,
    schemas: SchemaSource,
    tenant_claim: String,
    /// The CloudWatch namespace of its metrics (`SLUICE_METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// How the function logs.
    pub log: LogSettings,
}

impl IngestConfig {
    /// Reads `SLUICE_QUEUE_URL`, `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_SOURCES_TABLE`,
    /// `SLUICE_SIGNING_KEY_PARAM`, `SLUICE_SCHEMA_DIR`, `SLUICE_REQUIRE_SCHEMA`,
    /// `SLUICE_OIDC_TENANT_CLAIM` (HTTP API JWT authorizer) and the log settings.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, InitError> {
        Ok(Self {
            queue_url: env::required(env, vars::QUEUE_URL)?,
            idempotency_table: env::required(env, vars::IDEMPOTENCY_TABLE)?,
            sources_table: env::required(env, vars::SOURCES_TABLE)?,
            signing_key_param: env::required(env, vars::SIGNING_KEY_PARAM)?,
            schemas: SchemaSource::from_lookup(env)?,
            tenant_claim: env::tenant_claim(env),
            metrics_namespace: crate::metrics::namespace(env),
            log: LogSettings::from_lambda_env(env),
        })
    }
}

/// What the function serves: the ingest use case and the webhook deliveries over it.
#[derive(Debug, Clone)]
pub struct IngestServices {
    /// `POST /v1/events`.
    pub ingest: Arc<IngestService>,
    /// `POST /v1/sources/{source_id}`.
    pub deliveries: Arc<DeliveryService>,
    /// The JWT claim naming the tenant, behind HTTP API's JWT authorizer.
    pub tenant_claim: String,
}

/// Builds the SQS, DynamoDB and SSM clients' adapters, loads the signing keys and returns the
/// services. Source records are cached for [`crate::RECORD_CACHE`], so a busy source costs one
/// GetItem per instance per that long, not one per delivery.
pub async fn init(config: &IngestConfig, clients: &Clients) -> Result<IngestServices, InitError> {
    let secrets = SecretParameters::new(clients.ssm());
    let sealer = setup::sealer(&secrets, &config.signing_key_param).await?;
    let validator = setup::validator(&config.schemas)?;
    let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(clients.sqs(), &config.queue_url));
    let idempotency: Arc<dyn IdempotencyStore> =
        Arc::new(DynamoIdempotency::new(clients.dynamodb(), &config.idempotency_table));
    let sources: Arc<dyn SourceStore> = Arc::new(DynamoSources::new(clients.dynamodb(), &config.sources_table));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ingest = Arc::new(IngestService::new(
        validator,
        queue,
        idempotency,
        sealer,
        Arc::clone(&clock),
    ));
    let deliveries =
        Arc::new(DeliveryService::new(sources, Arc::clone(&ingest), clock).with_cache_ttl(crate::RECORD_CACHE));
    Ok(IngestServices {
        ingest,
        deliveries,
        tenant_claim: config.tenant_claim.clone(),
    })
}

/// The function's router: the ingest and delivery routes behind the API Gateway context layer.
pub fn router(services: IngestServices) -> Router {
    crate::context::wrap(
        sluice_http::ingest_router(
            services.ingest,
            services.deliveries,
            Auth::Upstream,
            &HttpConfig::default(),
        ),
        &services.tenant_claim,
    )
}
