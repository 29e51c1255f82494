//! The query function: `GET /v1/events/{id}`, `GET /v1/events`, the feed (`GET /v1/feed`, a
//! long-poll: Lambda behind API Gateway cannot stream a response), `DELETE /v1/events/{id}` and
//! the erasures, under `lambda_http`, over the events table (strongly consistent reads) and the
//! idempotency table (a deletion forgets the deleted event's record). List cursors are signed
//! with the key in SSM parameter `SLUICE_CURSOR_KEY_PARAM`, so a client cannot forge or
//! cross-tenant one.

use crate::{Clients, InitError};
use axum::Router;
use sluice_aws::secrets::SecretParameters;
use sluice_aws::{DynamoEvents, DynamoIdempotency};
use sluice_core::clock::SystemClock;
use sluice_core::cursor::CursorCodec;
use sluice_core::feed::FeedService;
use sluice_core::ports::{EventStore, IdempotencyStore};
use sluice_core::query::QueryService;
use sluice_host::env::{self, Lookup, vars};
use sluice_host::telemetry::LogSettings;
use sluice_http::{Auth, FeedSettings, FeedState, HttpConfig};
use std::sync::Arc;

/// What the query function reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    table: String,
    idempotency_table: String,
    cursor_key_param: String,
    shards: u32,
    retention: sluice_core::feed::Retention,
    /// The JWT claim naming the tenant, behind HTTP API's JWT authorizer.
    pub tenant_claim: String,
    /// The CloudWatch namespace of its metrics (`SLUICE_METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// How the function logs.
    pub log: LogSettings,
}

impl QueryConfig {
    /// Reads `SLUICE_TABLE`, `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_CURSOR_KEY_PARAM`,
    /// `SLUICE_EVENT_SHARDS`, the retention (`SLUICE_RETENTION_DAYS`, `SLUICE_RETENTION_BY_TYPE`),
    /// `SLUICE_OIDC_TENANT_CLAIM` (HTTP API JWT authorizer) and the log settings.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, InitError> {
        Ok(Self {
            table: env::required(env, vars::TABLE)?,
            idempotency_table: env::required(env, vars::IDEMPOTENCY_TABLE)?,
            cursor_key_param: env::required(env, vars::CURSOR_KEY_PARAM)?,
            shards: env::event_shards(env)?,
            retention: env::retention(env)?,
            tenant_claim: env::tenant_claim(env),
            metrics_namespace: crate::metrics::namespace(env),
            log: LogSettings::from_lambda_env(env),
        })
    }
}

/// The function's use cases: queries and the feed's.
#[derive(Debug, Clone)]
pub struct QueryServices {
    /// Reads by id and by page.
    pub query: Arc<QueryService>,
    /// The feed, deletions and erasures.
    pub feed: Arc<FeedState>,
}

/// Builds the DynamoDB and SSM clients, loads the cursor key and returns the services.
pub async fn init(config: &QueryConfig, clients: &Clients) -> Result<QueryServices, InitError> {
    let key = SecretParameters::new(clients.ssm())
        .cursor_key(&config.cursor_key_param)
        .await?;
    let store: Arc<dyn EventStore> = Arc::new(
        DynamoEvents::new(clients.dynamodb(), &config.table)
            .with_shards(config.shards)
            .with_slot_retention(env::longest_retention(&config.retention)),
    );
    let idempotency: Arc<dyn IdempotencyStore> =
        Arc::new(DynamoIdempotency::new(clients.dynamodb(), &config.idempotency_table));
    // No queue to sweep: SQS cannot remove chosen messages, so the process function drops an
    // erased subject's queued and redriven events when they arrive.
    let feed =
        FeedService::new(store.clone(), config.retention.clone(), Arc::new(SystemClock)).with_idempotency(idempotency);
    Ok(QueryServices {
        query: Arc::new(QueryService::new(store, CursorCodec::new(key))),
        feed: FeedState::new(Arc::new(feed), None, FeedSettings::default()),
    })
}

/// The function's router: the query and feed routes behind the API Gateway context layer,
/// which reads a JWT authorizer's tenant from `tenant_claim`.
pub fn router(services: QueryServices, tenant_claim: &str) -> Router {
    crate::context::wrap(
        sluice_http::query_router(services.query, services.feed, Auth::Upstream, &HttpConfig::default()),
        tenant_claim,
    )
}
