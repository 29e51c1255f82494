//! The shared port conformance suite, run against the AWS adapters on moto.
//!
//! Every test gets fresh, uniquely named queues and tables on one moto server per test process
//! (`SLUICE_MOTO_URL` points all processes at one server instead).
//!
//! # moto versus AWS
//! - `queue_stale_receipt_is_rejected` is marked unsupported: SQS standard queues (and moto,
//!   which remembers every receipt handle a message ever had) accept `DeleteMessage` and
//!   `ChangeMessageVisibility` with a superseded receipt handle; only unknown or malformed
//!   handles are refused. The SQS adapter cannot detect staleness without state of its own, so
//!   the port's promise is weaker on AWS. Harmless for Sluice: deletes follow successful
//!   processing, and the conditional put makes a redelivered record a no-op.
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
use sluice_aws::{DynamoStore, DynamoTables, SqsQueue};
use sluice_core::ports::{EventStore, IdempotencyStore, KeyStore, Queue};
use std::sync::Arc;

/// Fresh tables per test; queues created on demand.
struct AwsFactory {
    sqs: aws_sdk_sqs::Client,
    store: Arc<DynamoStore>,
}

#[async_trait]
impl sluice_testkit::Factory for AwsFactory {
    async fn create() -> Self {
        let moto = Moto::shared()
            .await
            .unwrap_or_else(|e| panic!("moto is required for the AWS conformance suite: {e}"));
        let ddb = moto.dynamodb();
        let prefix = unique_name("c");
        let tables = DynamoTables {
            events: format!("{prefix}-events"),
            idempotency: format!("{prefix}-idempotency"),
            keys: format!("{prefix}-keys"),
        };
        provision::create_events_table(&ddb, &tables.events).await.unwrap();
        provision::create_idempotency_table(&ddb, &tables.idempotency)
            .await
            .unwrap();
        provision::create_keys_table(&ddb, &tables.keys).await.unwrap();
        Self {
            sqs: moto.sqs(),
            store: Arc::new(DynamoStore::new(ddb, tables)),
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
        self.store.clone()
    }

    async fn idempotency_store(&self) -> Arc<dyn IdempotencyStore> {
        self.store.clone()
    }

    async fn key_store(&self) -> Arc<dyn KeyStore> {
        self.store.clone()
    }

    fn unsupported() -> &'static [&'static str] {
        // SQS accepts superseded receipt handles; see the module documentation.
        &["queue_stale_receipt_is_rejected"]
    }
}

sluice_testkit::conformance_tests!(aws, AwsFactory);
