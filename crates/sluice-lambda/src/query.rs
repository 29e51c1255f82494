//! The query function: `GET /v1/events/{id}` and `GET /v1/events` under `lambda_http`, reading
//! the events table (`GetItem`, `Query`; strongly consistent). List cursors are signed with the
//! key in SSM parameter `SLUICE_CURSOR_KEY_PARAM`, so a client cannot forge or cross-tenant one.

use crate::{Clients, InitError};
use axum::Router;
use sluice_aws::DynamoEvents;
use sluice_aws::secrets::SecretParameters;
use sluice_core::cursor::CursorCodec;
use sluice_core::ports::EventStore;
use sluice_core::query::QueryService;
use sluice_host::env::{self, Lookup, vars};
use sluice_host::telemetry::LogSettings;
use sluice_http::{Auth, HttpConfig};
use std::sync::Arc;

/// What the query function reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    table: String,
    cursor_key_param: String,
    /// The JWT claim naming the tenant, behind HTTP API's JWT authorizer.
    pub tenant_claim: String,
    /// The CloudWatch namespace of its metrics (`SLUICE_METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// How the function logs.
    pub log: LogSettings,
}

impl QueryConfig {
    /// Reads `SLUICE_TABLE`, `SLUICE_CURSOR_KEY_PARAM`, `SLUICE_OIDC_TENANT_CLAIM` (HTTP API JWT
    /// authorizer) and the log settings.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, InitError> {
        Ok(Self {
            table: env::required(env, vars::TABLE)?,
            cursor_key_param: env::required(env, vars::CURSOR_KEY_PARAM)?,
            tenant_claim: env::tenant_claim(env),
            metrics_namespace: crate::metrics::namespace(env),
            log: LogSettings::from_lambda_env(env),
        })
    }
}

/// Builds the DynamoDB and SSM clients, loads the cursor key and returns the service.
pub async fn init(config: &QueryConfig, clients: &Clients) -> Result<Arc<QueryService>, InitError> {
    let key = SecretParameters::new(clients.ssm())
        .cursor_key(&config.cursor_key_param)
        .await?;
    let store: Arc<dyn EventStore> = Arc::new(DynamoEvents::new(clients.dynamodb(), &config.table));
    Ok(Arc::new(QueryService::new(store, CursorCodec::new(key))))
}

/// The function's router: the query routes behind the API Gateway context layer, which reads
/// a JWT authorizer's tenant from `tenant_claim`.
pub fn router(service: Arc<QueryService>, tenant_claim: &str) -> Router {
    crate::context::wrap(
        sluice_http::query_router(service, Auth::Upstream, &HttpConfig::default()),
        tenant_claim,
    )
}
