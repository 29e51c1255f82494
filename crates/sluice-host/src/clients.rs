//! AWS SDK clients, built once per process, at Lambda init or at `sluice serve --backend aws`
//! start (never per invocation: a client holds the connection pool, the credential cache and the
//! retry token bucket that make later calls cheap).
//!
//! Each host builds only the clients it uses, from one shared [`aws_config::SdkConfig`]
//! (`AWS_REGION`, credentials and `AWS_ENDPOINT_URL` come from the standard sources, see
//! [`sluice_aws::sdk_config`]). Tests attach an interceptor here to record every AWS call a
//! function makes.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::SharedInterceptor;

/// The SDK configuration and the interceptors every client gets.
#[derive(Debug, Clone)]
pub struct Clients {
    sdk: SdkConfig,
    interceptors: Vec<SharedInterceptor>,
}

impl Clients {
    /// Clients over `sdk`.
    pub fn new(sdk: SdkConfig) -> Self {
        Self {
            sdk,
            interceptors: Vec::new(),
        }
    }

    /// Clients over the standard AWS configuration sources with Sluice's retry and timeout policy.
    pub async fn from_env() -> Self {
        Self::new(sluice_aws::sdk_config().await)
    }

    /// Clients inside a Lambda function: the runtime's variables only
    /// ([`sluice_aws::lambda_sdk_config`]), with the same retry and timeout policy.
    pub fn from_lambda_env() -> Self {
        Self::new(sluice_aws::lambda_sdk_config())
    }

    /// The shared SDK configuration (region, credentials, endpoint).
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    /// Adds an interceptor to every client built from now on.
    pub fn with_interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// A DynamoDB client.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let mut b = aws_sdk_dynamodb::config::Builder::from(&self.sdk);
        for i in &self.interceptors {
            b.push_interceptor(i.clone());
        }
        aws_sdk_dynamodb::Client::from_conf(b.build())
    }

    /// An SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let mut b = aws_sdk_sqs::config::Builder::from(&self.sdk);
        for i in &self.interceptors {
            b.push_interceptor(i.clone());
        }
        aws_sdk_sqs::Client::from_conf(b.build())
    }

    /// An SSM client.
    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        let mut b = aws_sdk_ssm::config::Builder::from(&self.sdk);
        for i in &self.interceptors {
            b.push_interceptor(i.clone());
        }
        aws_sdk_ssm::Client::from_conf(b.build())
    }
}
