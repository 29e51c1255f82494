//! The shared port conformance suite, run against the AWS adapters on moto.
//!
//! Every test gets fresh, uniquely named queues and tables on one moto server per test process
//! (`SLUICE_MOTO_URL` points all processes at one server instead).
//!
//! # moto versus AWS
//! - Every suite case runs here; none is skipped. SQS standard queues (and moto, which remembers
//!   every receipt handle a message ever had) accept `DeleteMessage` and `ChangeMessageVisibility`
//!   with a superseded receipt handle, so the `Queue` port promises nothing about such handles and
//!   the suite does not test them. The embedded queue's stricter rule (a superseded receipt is
//!   refused) is tested in `sluice-embedded`'s own tests. Harmless for Sluice: deletes follow
//!   successful processing, and the conditional put makes a redelivered record a no-op.
//! - moto moves a message to the dead-letter queue synchronously, on the receive after the one
//!   that reached `maxReceiveCount`; AWS does it asynchronously, on a later receive. The suite's
//!   redrive case holds on both because it checks the DLQ after a further receive.
//! - Visibility and long polls are whole seconds on both (the adapter rounds durations up).

// The factory is test setup outside any #[test] fn: a panic there fails the test, nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use sluice_aws::provision::{self, QueueSettings};
use sluice_aws::testing::{Moto, unique_name};
use sluice_aws::{DynamoEvents, DynamoIdempotency, DynamoKeys, DynamoSources, SqsQueue};
use sluice_core::ports::{EventStore, IdempotencyStore, KeyStore, Queue, SourceStore};
use std::sync::Arc;

/// Fresh tables per test; queues created on demand.
struct AwsFactory {
    sqs: aws_sdk_sqs::Client,
    events: Arc<DynamoEvents>,
    idempotency: Arc<DynamoIdempotency>,
    keys: Arc<DynamoKeys>,
    ddb: aws_sdk_dynamodb::Client,
    prefix: String,
}

#[async_trait]
impl sluice_testkit::Factory for AwsFactory {
    async fn create() -> Self {
        let moto = Moto::shared()
            .await
            .unwrap_or_else(|e| panic!("moto is required for the AWS conformance suite: {e}"));
        let ddb = moto.dynamodb();
        let prefix = unique_name("c");
        let (events, idempotency, keys) = (
            format!("{prefix}-events"),
            format!("{prefix}-idempotency"),
            format!("{prefix}-keys"),
        );
        provision::create_events_table(&ddb, &events).await.unwrap();
        provision::create_idempotency_table(&ddb, &idempotency).await.unwrap();
        provision::create_keys_table(&ddb, &keys).await.unwrap();
        Self {
            sqs: moto.sqs(),
            // Several shards and a short grace, so moto proves the sharded layout and the
            // reader's voiding of slots left unwritten.
            events: Arc::new(
                DynamoEvents::new(ddb.clone(), events)
                    .with_shards(3)
                    .with_hole_grace(std::time::Duration::from_millis(500)),
            ),
            idempotency: Arc::new(DynamoIdempotency::new(ddb.clone(), idempotency)),
            keys: Arc::new(DynamoKeys::new(ddb.clone(), keys)),
            ddb,
            prefix,
        }
    }

    async fn queue(&self) -> Arc<dyn Queue> {
        let url = self
            .sqs
            .create_queue()
            .queue_name(unique_name("q"))
            .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned();
        Arc::new(SqsQueue::new(self.sqs.clone(), url))
    }

    async fn queue_with_dlq(&self, max_receive_count: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
        let name = unique_name("q");
        let settings = QueueSettings {
            max_receive_count,
            ..QueueSettings::default()
        };
        let (url, dlq_url) = provision::create_queues(&self.sqs, &name, &format!("{name}-dlq"), settings)
            .await
            .unwrap();
        (
            Arc::new(SqsQueue::new(self.sqs.clone(), url)),
            Arc::new(SqsQueue::new(self.sqs.clone(), dlq_url)),
        )
    }

    async fn event_store(&self) -> Arc<dyn EventStore> {
        self.events.clone()
    }

    async fn idempotency_store(&self) -> Arc<dyn IdempotencyStore> {
        self.idempotency.clone()
    }

    async fn key_store(&self) -> Arc<dyn KeyStore> {
        self.keys.clone()
    }
}

/// The sources table is made only for the source cases: the other cases need no fourth table.
#[async_trait]
impl sluice_testkit::SourceFactory for AwsFactory {
    async fn source_store(&self) -> Arc<dyn SourceStore> {
        let table = format!("{}-sources", self.prefix);
        provision::create_sources_table(&self.ddb, &table).await.unwrap();
        Arc::new(DynamoSources::new(self.ddb.clone(), table))
    }
}

sluice_testkit::conformance_tests!(aws, AwsFactory);
sluice_testkit::source_conformance_tests!(aws_sources, AwsFactory);

/// Usage plans on a fresh REST API with its default plan, as the template deploys them.
#[async_trait]
impl sluice_testkit::PlansFactory for AwsFactory {
    async fn plans(&self) -> Arc<dyn sluice_core::ports::TenantPlans> {
        let moto = Moto::shared().await.unwrap();
        let (api_id, default_plan) = moto.rest_api_with_default_plan("v1").await.unwrap();
        Arc::new(sluice_aws::plans::ApiGatewayPlans::new(
            moto.apigateway(),
            &api_id,
            "v1",
            &default_plan,
        ))
    }
}

sluice_testkit::plan_conformance_tests!(aws_plans, AwsFactory);
