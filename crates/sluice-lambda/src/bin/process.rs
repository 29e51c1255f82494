//! The `process` function: SQS consumer with partial batch responses (see `sluice_lambda::process`).

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use sluice_lambda::process::{ProcessConfig, ProcessFunction};
use sluice_lambda::{Clients, process_env};

// One thread: a Lambda instance handles one invocation at a time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = ProcessConfig::from_lookup(&process_env)?;
    // First, so nothing is ever logged unredacted (I-1).
    sluice_host::telemetry::init_lambda(&config.log)?;
    let emf = sluice_lambda::metrics::install(&config.metrics_namespace, "process")?;
    let function = std::sync::Arc::new(ProcessFunction::init(&config, &Clients::from_lambda_env()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let function = function.clone();
        async move {
            let response = function.handle(event.payload).await;
            emf.flush();
            response
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
