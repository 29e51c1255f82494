//! The `ingest` function: `POST /v1/events` and webhook deliveries under `lambda_http` (see
//! `sluice_lambda::ingest`).

use sluice_lambda::ingest::{self, IngestConfig};
use sluice_lambda::{Clients, process_env};

// One thread: a Lambda instance handles one invocation at a time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = IngestConfig::from_lookup(&process_env)?;
    // First, so nothing is ever logged unredacted (I-1).
    sluice_host::telemetry::init_lambda(&config.log)?;
    let emf = sluice_lambda::metrics::install(&config.metrics_namespace, "ingest")?;
    let services = ingest::init(&config, &Clients::from_lambda_env()).await?;
    lambda_http::run(sluice_lambda::metrics::flushing(ingest::router(services), emf))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
