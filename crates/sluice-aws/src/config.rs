//! SDK configuration and resource names: how the adapters find AWS (endpoint, region,
//! credentials, retry policy) and which queues and tables they use.
//!
//! Everything comes from the standard AWS sources (environment, shared config files, container
//! and instance metadata) through `aws-config`, so the same binary runs on Lambda, on a laptop
//! against moto (`AWS_ENDPOINT_URL`) and in CI without code changes.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Attempts per SDK call, the first included, unless `AWS_MAX_ATTEMPTS` says otherwise.
const MAX_ATTEMPTS: u32 = 5;

/// The retry policy the adapters want: standard mode (exponential backoff with full jitter and a
/// client-side retry token bucket) with 5 attempts, starting at 100 ms and capped at 5 s.
///
/// Throttling (`ProvisionedThroughputExceeded`, `ThrottlingException`, `RequestLimitExceeded`),
/// 5xx responses, timeouts and connection failures are retried by the SDK; only when the budget
/// is spent does an adapter report `Unavailable` (D-4). The cap keeps a throttled ingest request
/// well inside API Gateway's 29 s limit.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(5))
}

/// Timeouts: a short connect timeout so an unreachable endpoint fails fast, and a per-attempt
/// timeout above SQS's 20 s long poll so a receive is never cut short.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(3100))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build()
}

/// Loads the SDK configuration from the standard AWS sources and applies Sluice's retry and
/// timeout policy.
///
/// Honoured: `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
/// `AWS_SESSION_TOKEN`, `AWS_PROFILE` and the shared config files, web identity and container
/// credentials, `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_SQS` /
/// `AWS_ENDPOINT_URL_DYNAMODB` (resolved by `aws-config` itself), and `AWS_MAX_ATTEMPTS` /
/// `AWS_RETRY_MODE`, which win over [`retry_config`] when set.
///
/// Call it once per process (on Lambda: during init, outside the handler) and build each client
/// once from the result.
pub async fn sdk_config() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config());
    let env_sets_retry = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if !env_sets_retry {
        loader = loader.retry_config(retry_config());
    }
    loader.load().await
}

/// The SDK configuration inside a Lambda function, read from the variables the Lambda runtime
/// sets: `AWS_REGION` and the execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`; `AWS_ENDPOINT_URL` as well, for emulators. With Sluice's retry and timeout
/// policy.
///
/// Why not [`sdk_config`]: its provider chain (profiles, SSO, web identity through STS, container
/// and instance metadata) can find nothing on Lambda that the environment does not hold, and
/// linking it costs each function about a megabyte of its 10 MiB budget (issue 18).
pub fn lambda_sdk_config() -> SdkConfig {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(credentials))
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        builder = builder.region(aws_config::Region::new(region));
    }
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
}

/// An SDK configuration that reads nothing from the environment: a fixed endpoint, region and
/// static credentials. For emulators (moto, LocalStack) and tests, where global state must not
/// leak in.
pub fn build_sdk_config(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> SdkConfig {
    let credentials = aws_sdk_sqs::config::Credentials::new(access_key, secret_key, None, None, "sluice-static");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(credentials))
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .build()
}

/// The queues and tables one deployment uses (read from the environment by `sluice-host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    /// The main queue's URL.
    pub queue_url: String,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
    /// The events table.
    pub table: String,
    /// The idempotency table (TTL on `ttl`).
    pub idempotency_table: String,
    /// The API keys table.
    pub keys_table: String,
    /// The webhook sources table.
    pub sources_table: String,
}
