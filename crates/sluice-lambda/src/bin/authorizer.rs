//! The `authorizer` function: API Gateway Lambda authorizer (see `sluice_lambda::authorizer`).

use lambda_runtime::{LambdaEvent, service_fn};
use sluice_lambda::authorizer::{Authorizer, AuthorizerConfig};
use sluice_lambda::{Clients, process_env};

// One thread: a Lambda instance handles one invocation at a time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = AuthorizerConfig::from_lookup(&process_env)?;
    // First, so nothing is ever logged unredacted (I-1).
    sluice_host::telemetry::init_lambda(&config.log)?;
    let emf = sluice_lambda::metrics::install(&config.metrics_namespace, "authorizer")?;
    let authorizer = std::sync::Arc::new(Authorizer::init(&config, &Clients::from_lambda_env()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let authorizer = authorizer.clone();
        async move {
            let response = authorizer.handle(event.payload).await;
            emf.flush();
            response
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
