//! AWS adapters for Sluice's ports, one type per port: [`SqsQueue`] (the
//! [`Queue`](sluice_core::ports::Queue)), and on DynamoDB [`DynamoEvents`]
//! ([`EventStore`](sluice_core::ports::EventStore)), [`DynamoIdempotency`]
//! ([`IdempotencyStore`](sluice_core::ports::IdempotencyStore)) and [`DynamoKeys`]
//! ([`KeyStore`](sluice_core::ports::KeyStore)), each over its own table. Every adapter holds a
//! cheaply cloned SDK client and the one queue URL or table name it needs, so a process (a Lambda
//! function) builds only the adapters it uses.
//!
//! The adapters are thin on purpose: the ports already carry SQS and DynamoDB semantics, so each
//! method is one (or a bounded loop of) SDK call(s). What this crate adds is the mapping of SDK
//! failures onto the ports' errors (throttling and outages become `Unavailable`, D-4), with
//! messages that name the operation and the AWS error code but never echo SDK error text or
//! credentials (I-1, I-2).
//!
//! # Building clients
//! Build one [`aws_config::SdkConfig`] with [`sdk_config`] and one client per service *once*, at
//! process (or Lambda init) start, and share them: SDK clients hold connection pools, credential
//! caches and retry token buckets that are only useful if reused. Building them per invocation
//! costs a TLS handshake and a credential resolution per request. Both of Sluice's hosts build
//! theirs through `sluice_host::Clients`, the one place that does.
//!
//! # Resources
//! Queue URLs and table names ([`AwsResources`]) come from the environment, read by `sluice-host`.
//! [`provision`] creates them (with SSE, a redrive policy and on-demand tables) for local and test
//! setups; production infrastructure is expected to be declared elsewhere.
//!
//! # Testing
//! With the `testing` feature, [`testing::Moto`] runs a moto server for integration tests and
//! [`testing::CallRecorder`] records the AWS operations a client makes (to check IAM policies).
//!
//! # Tenant plans
//! With the `plans` feature, [`plans::ApiGatewayPlans`] keeps tenants' limits as API Gateway
//! usage plans (the operator's CLI; the functions never link it).
//!
//! # Secrets
//! With the `ssm` feature, [`secrets::SecretParameters`] reads key rings from SSM Parameter Store.

mod config;
pub mod dynamo;
mod error;
#[cfg(feature = "plans")]
pub mod plans;
pub mod provision;
#[cfg(feature = "ssm")]
pub mod secrets;
pub mod sqs;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{AwsResources, build_sdk_config, lambda_sdk_config, retry_config, sdk_config, timeout_config};
pub use dynamo::{DynamoEvents, DynamoIdempotency, DynamoKeys, DynamoSources};
pub use sqs::SqsQueue;
