//! Creates the queues and tables Sluice needs: for tests against moto and for
//! `sluice serve --backend aws` against a local emulator or a sandbox account.
//!
//! Production infrastructure belongs in infrastructure-as-code with least-privilege roles (E-1);
//! these functions encode the same settings so local setups match it:
//! - the queue has a `RedrivePolicy` to its dead-letter queue (`maxReceiveCount`, D-2) and both
//!   queues use SQS-managed server-side encryption (`SqsManagedSseEnabled`, T-2);
//! - the tables are on-demand (`PAY_PER_REQUEST`, D-4), encrypted at rest (DynamoDB's default,
//!   I-3) and stream their old and new images (the template's audit trail of every change, T-3);
//!   the events and idempotency tables have TTL on `ttl`.
//!
//! Every function is idempotent: existing resources with the same settings are left as they are.

use crate::config::AwsResources;
use crate::error::Failure;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::time::Duration;

/// How long to wait for a new table to become `ACTIVE`.
const TABLE_WAIT: Duration = Duration::from_secs(120);
/// Dead letters are kept for SQS's maximum, 14 days, so there is time to inspect them.
const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// Why provisioning failed. Messages name the operation and AWS error code only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProvisionError {
    /// An SQS call failed.
    #[error("{0}")]
    Sqs(String),
    /// A DynamoDB call failed.
    #[error("{0}")]
    DynamoDb(String),
    /// A request could not be built.
    #[error("invalid provisioning request: {0}")]
    Invalid(String),
}

/// The names of the resources to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    /// The main queue.
    pub queue: String,
    /// The dead-letter queue.
    pub dlq: String,
    /// The events table.
    pub table: String,
    /// The idempotency table.
    pub idempotency_table: String,
    /// The keys table.
    pub keys_table: String,
    /// The webhook sources table.
    pub sources_table: String,
}

impl ResourceNames {
    /// `{prefix}-events`, `{prefix}-events-dlq`, `{prefix}-events` table, `{prefix}-idempotency`,
    /// `{prefix}-keys`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            queue: format!("{prefix}-events"),
            dlq: format!("{prefix}-events-dlq"),
            table: format!("{prefix}-events"),
            idempotency_table: format!("{prefix}-idempotency"),
            keys_table: format!("{prefix}-keys"),
            sources_table: format!("{prefix}-sources"),
        }
    }
}

/// Queue settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Receives after which a message moves to the dead-letter queue (1 to 1000).
    pub max_receive_count: u32,
    /// The queue's default visibility timeout.
    pub visibility_timeout: Duration,
    /// How long the main queue keeps a message (SQS `MessageRetentionPeriod`, 60 s to 14 days).
    pub retention: Duration,
}

impl Default for QueueSettings {
    /// 5 receives, 30 s visibility, 4 days of retention (the template's and SQS's default).
    fn default() -> Self {
        Self {
            max_receive_count: 5,
            visibility_timeout: Duration::from_secs(30),
            retention: Duration::from_secs(4 * 24 * 3600),
        }
    }
}

type SdkError<E> = aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>;

fn sqs_err<E>(op: &'static str) -> impl Fn(SdkError<E>) -> ProvisionError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| ProvisionError::Sqs(Failure::classify("SQS", op, &e).to_string())
}

fn ddb_err<E>(op: &'static str) -> impl Fn(SdkError<E>) -> ProvisionError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| ProvisionError::DynamoDb(Failure::classify("DynamoDB", op, &e).to_string())
}

/// Creates the dead-letter queue and the main queue redriving to it; returns `(queue_url, dlq_url)`.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    settings: QueueSettings,
) -> Result<(String, String), ProvisionError> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(dlq)
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
        .attributes(
            QueueAttributeName::MaximumMessageSize,
            sluice_core::ports::MAX_MESSAGE_BYTES.to_string(),
        )
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )
        .send()
        .await
        .map_err(sqs_err("CreateQueue"))?
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| ProvisionError::Sqs("SQS CreateQueue: no queue URL in the response".into()))?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sqs_err("GetQueueAttributes"))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| ProvisionError::Sqs("SQS GetQueueAttributes: no QueueArn in the response".into()))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": settings.max_receive_count.clamp(1, 1000),
    })
    .to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(queue)
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
        .attributes(
            QueueAttributeName::MaximumMessageSize,
            sluice_core::ports::MAX_MESSAGE_BYTES.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            settings.visibility_timeout.as_secs().min(43_200).to_string(),
        )
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            settings.retention.as_secs().clamp(60, 1_209_600).to_string(),
        )
        .send()
        .await
        .map_err(sqs_err("CreateQueue"))?
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| ProvisionError::Sqs("SQS CreateQueue: no queue URL in the response".into()))?;
    Ok((queue_url, dlq_url))
}

fn key(name: &str, key_type: KeyType) -> Result<(AttributeDefinition, KeySchemaElement), ProvisionError> {
    let def = AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| ProvisionError::Invalid(e.to_string()))?;
    let schema = KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| ProvisionError::Invalid(e.to_string()))?;
    Ok((def, schema))
}

/// Creates an on-demand table with string key `pk` (and sort key `sk` when `with_sort_key`), unless
/// it exists, and waits until it is active.
async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, with_sort_key: bool) -> Result<(), ProvisionError> {
    let mut keys = vec![key(crate::dynamo::PK, KeyType::Hash)?];
    if with_sort_key {
        keys.push(key(crate::dynamo::SK, KeyType::Range)?);
    }
    let (defs, schema): (Vec<_>, Vec<_>) = keys.into_iter().unzip();
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .map_err(|e| ProvisionError::Invalid(e.to_string()))?;
    let created = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(defs))
        .set_key_schema(Some(schema))
        .stream_specification(stream)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {
            tracing::debug!(table = name, "table exists");
        }
        Err(e) => return Err(ddb_err("CreateTable")(e)),
    }
    ddb.wait_until_table_exists()
        .table_name(name)
        .wait(TABLE_WAIT)
        .await
        .map_err(|_| ProvisionError::DynamoDb(format!("DynamoDB table {name} did not become active")))?;
    Ok(())
}

/// Creates the events table: `pk` hash key, `sk` range key (see `dynamo/feed.rs` for what
/// they hold), TTL on `ttl` (retention).
pub async fn create_events_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    create_table(ddb, name, true).await?;
    enable_ttl(ddb, name).await
}

/// Creates the idempotency table: `pk` hash key, TTL on `ttl`.
pub async fn create_idempotency_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    create_table(ddb, name, false).await?;
    enable_ttl(ddb, name).await
}

/// Turns on TTL on the `ttl` attribute unless it is on.
async fn enable_ttl(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    let ttl = ddb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(ddb_err("DescribeTimeToLive"))?;
    let status = ttl.time_to_live_description().and_then(|d| d.time_to_live_status());
    if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name("ttl")
        .enabled(true)
        .build()
        .map_err(|e| ProvisionError::Invalid(e.to_string()))?;
    ddb.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(ddb_err("UpdateTimeToLive"))?;
    Ok(())
}

/// Creates the keys table: `pk` (key id) hash key.
pub async fn create_keys_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    create_table(ddb, name, false).await
}

/// Creates the webhook sources table: `pk` (source id) hash key.
pub async fn create_sources_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), ProvisionError> {
    create_table(ddb, name, false).await
}

/// Creates everything and returns the resources to hand to the adapters.
pub async fn provision(
    sqs: &aws_sdk_sqs::Client,
    ddb: &aws_sdk_dynamodb::Client,
    names: &ResourceNames,
    settings: QueueSettings,
) -> Result<AwsResources, ProvisionError> {
    let (queue_url, dlq_url) = create_queues(sqs, &names.queue, &names.dlq, settings).await?;
    create_events_table(ddb, &names.table).await?;
    create_idempotency_table(ddb, &names.idempotency_table).await?;
    create_keys_table(ddb, &names.keys_table).await?;
    create_sources_table(ddb, &names.sources_table).await?;
    Ok(AwsResources {
        queue_url,
        dlq_url,
        table: names.table.clone(),
        idempotency_table: names.idempotency_table.clone(),
        keys_table: names.keys_table.clone(),
        sources_table: names.sources_table.clone(),
    })
}
