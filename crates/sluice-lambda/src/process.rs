//! The process function: an SQS event in, events in DynamoDB, an `SQSBatchResponse` out.
//!
//! The event source mapping must enable `ReportBatchItemFailures`. Every record of the batch is
//! processed by the core's [`Processor`] (a panic in one is contained and becomes that record's
//! retryable failure), then settled by `sluice_host::settle` under the
//! [`SettlePolicy::BatchItemFailures`] policy, the same function `sluice serve` settles with:
//! - stored, or already stored by an earlier delivery: success, Lambda deletes the record;
//! - retryable (the table throttled or unavailable): listed in `batchItemFailures`, so SQS makes it
//!   visible again after the queue's visibility timeout, and moves it to the DLQ after
//!   `maxReceiveCount` receives (redrive policy, D-2);
//! - permanent (bad signature, unknown key, invalid envelope, no longer valid): sent to the DLQ at
//!   once with `dlq_reason` and `dlq_at` added to its attributes, then reported as success
//!   so SQS deletes it; if that send fails, it is listed in `batchItemFailures` instead, so the
//!   record is never lost (it comes back and is dead-lettered on a later attempt, or by the
//!   redrive policy).
//!
//! A record without a `messageId` cannot be reported on its own, so such an event fails as a whole
//! (the invocation errors and every record comes back): an SQS event never has one, but nothing
//! is dropped if it does.

use crate::setup;
use crate::{Clients, InitError};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::Diagnostic;
use sluice_aws::secrets::SecretParameters;
use sluice_aws::{DynamoEvents, SqsQueue};
use sluice_core::clock::{Clock, SystemClock};
use sluice_core::ports::{EventStore, MessageAttributes, Queue, ReceiptHandle, ReceivedMessage};
use sluice_core::process::Processor;
use sluice_host::env::{self, Lookup, SchemaSource, vars};
use sluice_host::settle::{SettlePolicy, process_batch};
use sluice_host::telemetry::LogSettings;
use std::sync::Arc;
use time::OffsetDateTime;

/// What the process function reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    table: String,
    dlq_url: String,
    signing_key_param: String,
    schemas: SchemaSource,
    shards: u32,
    retention: sluice_core::feed::Retention,
    /// The CloudWatch namespace of its metrics (`SLUICE_METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// How the function logs.
    pub log: LogSettings,
}

impl ProcessConfig {
    /// Reads `SLUICE_TABLE`, `SLUICE_DLQ_URL`, `SLUICE_SIGNING_KEY_PARAM`, `SLUICE_SCHEMA_DIR`,
    /// `SLUICE_REQUIRE_SCHEMA`, `SLUICE_EVENT_SHARDS`, the retention (`SLUICE_RETENTION_DAYS`,
    /// `SLUICE_RETENTION_BY_TYPE`) and the log settings.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, InitError> {
        Ok(Self {
            table: env::required(env, vars::TABLE)?,
            dlq_url: env::required(env, vars::DLQ_URL)?,
            signing_key_param: env::required(env, vars::SIGNING_KEY_PARAM)?,
            schemas: SchemaSource::from_lookup(env)?,
            shards: env::event_shards(env)?,
            retention: env::retention(env)?,
            metrics_namespace: crate::metrics::namespace(env),
            log: LogSettings::from_lambda_env(env),
        })
    }
}

/// Why an invocation failed as a whole (every record of the batch comes back).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The event holds a record that cannot be reported on its own.
    #[error("invalid SQS event: {0}")]
    Malformed(String),
}

impl From<ProcessError> for Diagnostic {
    fn from(e: ProcessError) -> Self {
        tracing::error!(error = %e, "the whole batch failed");
        Diagnostic {
            error_type: "ProcessError".into(),
            error_message: e.to_string(),
        }
    }
}

/// The process function.
pub struct ProcessFunction {
    processor: Processor,
    dlq: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ProcessFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessFunction").finish_non_exhaustive()
    }
}

impl ProcessFunction {
    /// Builds the DynamoDB, SQS and SSM clients, loads the signing keys (to verify envelopes) and
    /// the schemas (to re-check events).
    pub async fn init(config: &ProcessConfig, clients: &Clients) -> Result<Self, InitError> {
        let secrets = SecretParameters::new(clients.ssm());
        let sealer = setup::sealer(&secrets, &config.signing_key_param).await?;
        let validator = setup::validator(&config.schemas)?;
        let store: Arc<dyn EventStore> = Arc::new(
            DynamoEvents::new(clients.dynamodb(), &config.table)
                .with_shards(config.shards)
                .with_slot_retention(env::longest_retention(&config.retention)),
        );
        let dlq: Arc<dyn Queue> = Arc::new(SqsQueue::new(clients.sqs(), &config.dlq_url));
        Ok(Self::new(
            Processor::new(store, sealer, validator).with_retention(config.retention.clone()),
            dlq,
            Arc::new(SystemClock),
        ))
    }

    /// A function over any processor, dead-letter queue and clock.
    pub fn new(processor: Processor, dlq: Arc<dyn Queue>, clock: Arc<dyn Clock>) -> Self {
        Self { processor, dlq, clock }
    }

    /// Processes one SQS event; the response lists the records to retry.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, ProcessError> {
        let batch = event
            .records
            .iter()
            .enumerate()
            .map(|(i, m)| {
                received_message(m).ok_or_else(|| ProcessError::Malformed(format!("record {i} has no messageId")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let failed = process_batch(
            &self.processor,
            self.dlq.as_ref(),
            SettlePolicy::BatchItemFailures,
            &batch,
            self.clock.as_ref(),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        Ok(response)
    }
}

/// The core's view of one SQS record: body, String message attributes, and the system attributes
/// `ApproximateReceiveCount` and `SentTimestamp`. `None` without a `messageId`.
pub fn received_message(m: &SqsMessage) -> Option<ReceivedMessage> {
    let message_id = m.message_id.clone().filter(|id| !id.is_empty())?;
    let mut attributes = MessageAttributes::new();
    for (k, v) in &m.message_attributes {
        // Sluice sends String attributes only; others were not written by Sluice and are dropped
        // rather than guessed at (the signature covers the body only).
        if let Some(s) = &v.string_value {
            attributes.insert(k.clone(), s.clone());
        }
    }
    let receive_count = m
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    let sent_at = m
        .attributes
        .get("SentTimestamp")
        .and_then(|v| v.parse::<i128>().ok())
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Some(ReceivedMessage {
        message_id,
        receipt: ReceiptHandle(m.receipt_handle.clone().unwrap_or_default()),
        body: m.body.clone().unwrap_or_default(),
        attributes,
        receive_count,
        sent_at,
        group: m.attributes.get("MessageGroupId").cloned(),
    })
}
