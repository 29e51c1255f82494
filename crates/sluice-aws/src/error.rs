//! Classifies SDK failures for the ports: is this worth retrying later (throttling, outage,
//! timeout) or a request the service will never accept?
//!
//! The message built here is what ends up inside a port error. It names the service, the
//! operation, the kind of failure, the AWS error code and the HTTP status, and nothing else: SDK
//! error text can quote request parameters, ARNs and account ids, so it is logged at `debug`
//! level only and never reaches a port error or, through it, a client (I-1, I-2).

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::fmt;

/// Error codes that mean "slow down", across SQS, DynamoDB and the shared AWS vocabulary.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "LimitExceededException",
    "SlowDown",
    "KmsThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
];

/// Error codes that mean the service itself failed.
const SERVER_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "AWS.SimpleQueueService.ServiceUnavailable",
];

/// What kind of failure an SDK error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The service asked us to slow down (D-4).
    Throttled,
    /// No answer in time.
    Timeout,
    /// The request never reached the service (DNS, connect, TLS, I/O).
    Unreachable,
    /// The service answered with a server-side failure (5xx).
    Server,
    /// The service refused the request itself (4xx other than throttling).
    Refused,
    /// The SDK could not build the request, or could not read the response.
    Client,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Throttled => "throttled",
            Kind::Timeout => "timed out",
            Kind::Unreachable => "unreachable",
            Kind::Server => "service error",
            Kind::Refused => "request refused",
            Kind::Client => "client error",
        }
    }
}

/// A classified SDK failure: safe to put into a port error.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// `"SQS"` or `"DynamoDB"`.
    pub service: &'static str,
    /// The API operation, e.g. `"PutItem"`.
    pub operation: &'static str,
    /// What went wrong.
    pub kind: Kind,
    /// The AWS error code, if the service answered with one.
    pub code: Option<String>,
    /// The HTTP status, if there was a response.
    pub status: Option<u16>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.service, self.operation, self.kind.label())?;
        match (&self.code, self.status) {
            (Some(code), Some(status)) => write!(f, " ({code}, HTTP {status})"),
            (Some(code), None) => write!(f, " ({code})"),
            (None, Some(status)) => write!(f, " (HTTP {status})"),
            (None, None) => Ok(()),
        }
    }
}

impl Failure {
    /// Classifies `err` and logs it: the classification at `warn`, the SDK's own text at `debug`.
    pub(crate) fn classify<E>(service: &'static str, operation: &'static str, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = err.code().map(str::to_owned);
        let (kind, status) = match err {
            SdkError::TimeoutError(_) => (Kind::Timeout, None),
            SdkError::DispatchFailure(d) if d.is_timeout() => (Kind::Timeout, None),
            SdkError::DispatchFailure(_) => (Kind::Unreachable, None),
            SdkError::ConstructionFailure(_) => (Kind::Client, None),
            SdkError::ResponseError(r) => {
                let status = r.raw().status().as_u16();
                let kind = if status >= 500 { Kind::Server } else { Kind::Client };
                (kind, Some(status))
            }
            SdkError::ServiceError(s) => {
                let status = s.raw().status().as_u16();
                (kind_of(code.as_deref(), status), Some(status))
            }
            // `SdkError` is non-exhaustive; anything new is treated as transient.
            _ => (Kind::Server, None),
        };
        let failure = Failure {
            service,
            operation,
            kind,
            code,
            status,
        };
        tracing::warn!(
            aws.service = service,
            aws.operation = operation,
            aws.error_kind = kind.label(),
            aws.error_code = failure.code.as_deref().unwrap_or(""),
            aws.status = status.unwrap_or(0),
            "AWS call failed"
        );
        tracing::debug!(aws.service = service, aws.operation = operation, error = %DisplayErrorContext(err), "AWS error detail");
        failure
    }
}

/// The kind of a service error from its code, falling back on the HTTP status.
fn kind_of(code: Option<&str>, status: u16) -> Kind {
    match code {
        Some(c) if THROTTLING_CODES.contains(&c) => Kind::Throttled,
        Some(c) if SERVER_CODES.contains(&c) => Kind::Server,
        _ if status == 429 => Kind::Throttled,
        _ if status >= 500 => Kind::Server,
        _ => Kind::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_outages_are_transient_refusals_are_not() {
        assert_eq!(
            kind_of(Some("ProvisionedThroughputExceededException"), 400),
            Kind::Throttled
        );
        assert_eq!(kind_of(Some("ThrottlingException"), 400), Kind::Throttled);
        assert_eq!(kind_of(Some("RequestLimitExceeded"), 400), Kind::Throttled);
        assert_eq!(kind_of(None, 429), Kind::Throttled);
        assert_eq!(kind_of(Some("ServiceUnavailable"), 503), Kind::Server);
        assert_eq!(kind_of(None, 500), Kind::Server);
        assert_eq!(kind_of(Some("ValidationException"), 400), Kind::Refused);
    }

    #[test]
    fn the_message_carries_code_and_status_only() {
        let f = Failure {
            service: "DynamoDB",
            operation: "PutItem",
            kind: Kind::Throttled,
            code: Some("ProvisionedThroughputExceededException".into()),
            status: Some(400),
        };
        assert_eq!(
            f.to_string(),
            "DynamoDB PutItem: throttled (ProvisionedThroughputExceededException, HTTP 400)"
        );
    }
}
