//! The `query` function: `GET /v1/events…` under `lambda_http` (see `sluice_lambda::query`).

use sluice_lambda::query::{self, QueryConfig};
use sluice_lambda::{Clients, process_env};

// One thread: a Lambda instance handles one invocation at a time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = QueryConfig::from_lookup(&process_env)?;
    // First, so nothing is ever logged unredacted (I-1).
    sluice_host::telemetry::init_lambda(&config.log)?;
    let emf = sluice_lambda::metrics::install(&config.metrics_namespace, "query")?;
    let service = query::init(&config, &Clients::from_lambda_env()).await?;
    lambda_http::run(sluice_lambda::metrics::flushing(
        query::router(service, &config.tenant_claim),
        emf,
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
