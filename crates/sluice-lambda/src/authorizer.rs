//! The API Gateway Lambda authorizer (S-1): a presented credential in, the tenant out.
//!
//! # Events
//! - REST API (v1) `REQUEST` authorizer (and `TOKEN`, whose `authorizationToken` is read as an
//!   `Authorization` header): allowed requests get an IAM policy allowing `execute-api:Invoke` on
//!   `arn:…:{api}/{stage}/*`, every method and route of the stage, so that API Gateway's cached
//!   result (keyed by the identity sources) serves every route; the context carries `tenant` and
//!   `key_id`, which the ingest and query functions read as the principal; `usageIdentifierKey`
//!   is the tenant's usage-plan key ([`usage_key`]), so API Gateway (key source `AUTHORIZER`)
//!   applies the tenant's usage plan, its rate, burst and daily quota (D-1). Refused requests fail
//!   with the error message `Unauthorized`, which API Gateway turns into a 401.
//! - HTTP API (v2) `REQUEST` authorizer with simple responses (`version` `2.0`):
//!   `{"isAuthorized": true, "context": {tenant, key_id}}`, or `false` (API Gateway answers 403;
//!   it answers 401 itself when the identity source header is missing).
//!
//! Anything else (an event of neither shape, a method ARN that is not an `execute-api` ARN) is an
//! error that API Gateway answers with a 500 and never caches. So is a key store outage: a
//! credential that cannot be checked is never allowed, and never cached as refused either.
//!
//! # Credentials
//! `Authorization: Bearer <credential>`, exactly one value: the one contract, as on `sluice serve`
//! (`x-api-key` is API Gateway's own header and is never read).
//! An API key (`key_<id>.<secret>`) is hashed and checked against the keys table through
//! [`Authenticator`]; a JWT (three base64url segments) is verified against the configured OIDC
//! issuer when one is configured. Every refusal looks the same to the caller.
//!
//! # JWT (OIDC users, e.g. a Cognito user pool)
//! Set `SLUICE_OIDC_ISSUER`, `SLUICE_OIDC_AUDIENCE` (the app client ids) and optionally
//! `SLUICE_OIDC_TENANT_CLAIM` (default `custom:tenant`), `SLUICE_OIDC_ALGORITHMS` (default
//! `RS256`) and `SLUICE_OIDC_LEEWAY_SECS`; see [`sluice_core::oidc`]. The issuer's JWKS is read at
//! init from `SLUICE_OIDC_JWKS` (the JSON itself, a Cognito pool's is about 1 KB) or else
//! `SLUICE_OIDC_JWKS_FILE` (a file bundled in the deployment package): no network call at init or
//! per request, and it works offline in tests. When the issuer rotates its keys, update the value
//! and redeploy (Cognito keeps old keys published for a while). Without `SLUICE_OIDC_ISSUER`, JWTs
//! are refused like any unknown credential.
//!
//! API Gateway caches a result per identity source value for the authorizer's TTL: a revoked key
//! keeps working until its cached result expires (plus this function's own 5 s record cache), so
//! keep that TTL short (60 s or less).

use crate::Clients;
use crate::InitError;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use aws_lambda_events::http::{HeaderMap, HeaderName, header};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use sluice_aws::DynamoKeys;
use sluice_core::clock::{Clock, SystemClock};
use sluice_core::keys::{AuthError, Authenticator, Principal, presented_credential};
use sluice_core::oidc::{self, JwtVerifier, OidcConfig};
use sluice_core::ports::{KeyStore, usage_key};
use sluice_host::env::{self, Lookup, vars};
use sluice_host::telemetry::LogSettings;
use std::sync::Arc;

/// The longest credential read; a JWT with a few claims is well under this.
const MAX_CREDENTIAL_LEN: usize = 8192;

/// What the authorizer reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// The keys table.
    pub keys_table: String,
    /// The OIDC issuer to accept JWTs from, with its JWKS (JSON).
    pub oidc: Option<(OidcConfig, String)>,
    /// The CloudWatch namespace of its metrics (`SLUICE_METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// How the function logs.
    pub log: LogSettings,
}

impl AuthorizerConfig {
    /// Reads `SLUICE_KEYS_TABLE`, the `SLUICE_OIDC_*` variables (see the module docs) and the
    /// log settings.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, InitError> {
        Ok(Self {
            keys_table: env::required(env, vars::KEYS_TABLE)?,
            oidc: env::oidc(env)?,
            metrics_namespace: crate::metrics::namespace(env),
            log: LogSettings::from_lambda_env(env),
        })
    }
}

/// Why an invocation did not produce an allow.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// The credential is missing, malformed, unknown, wrong, expired or revoked.
    #[error("Unauthorized")]
    Unauthorized,
    /// The event is not an API Gateway authorizer event this function understands.
    #[error("invalid authorizer event: {0}")]
    Malformed(String),
    /// The key store could not be read.
    #[error("credentials cannot be checked: {0}")]
    Unavailable(String),
}

impl From<AuthorizerError> for Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        match e {
            // API Gateway maps exactly this message to a 401 (REST APIs).
            AuthorizerError::Unauthorized => Diagnostic {
                error_type: "Unauthorized".into(),
                error_message: "Unauthorized".into(),
            },
            other => {
                tracing::error!(error = %other, "authorizer failed");
                Diagnostic {
                    error_type: "AuthorizerError".into(),
                    error_message: "the authorizer failed".into(),
                }
            }
        }
    }
}

/// The authorizer: verifies credentials, answers in the event's own format.
pub struct Authorizer {
    keys: Authenticator,
    jwt: Option<JwtVerifier>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Builds the authorizer: a DynamoDB client and the key store over the keys table.
    pub async fn init(config: &AuthorizerConfig, clients: &Clients) -> Result<Self, InitError> {
        let store = DynamoKeys::new(clients.dynamodb(), &config.keys_table);
        let authorizer = Self::new(Arc::new(store), Arc::new(SystemClock));
        Ok(match &config.oidc {
            Some((oidc, jwks)) => {
                authorizer.with_jwt(JwtVerifier::new(oidc.clone(), jwks).map_err(|e| InitError::Oidc(e.to_string()))?)
            }
            None => authorizer,
        })
    }

    /// Also accepts JWTs that `verifier` accepts.
    pub fn with_jwt(mut self, verifier: JwtVerifier) -> Self {
        self.jwt = Some(verifier);
        self
    }

    /// An authorizer over any key store and clock.
    pub fn new(keys: Arc<dyn KeyStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: Authenticator::new(keys, clock, crate::RECORD_CACHE),
            jwt: None,
        }
    }

    /// Answers one authorizer event (REST v1 `REQUEST`/`TOKEN`, or HTTP API v2).
    pub async fn handle(&self, event: Value) -> Result<Value, AuthorizerError> {
        if event.get("version").and_then(Value::as_str) == Some("2.0") {
            let req: ApiGatewayV2CustomAuthorizerV2Request =
                serde_json::from_value(event).map_err(|e| AuthorizerError::Malformed(e.to_string()))?;
            let principal = match presented(&req.headers) {
                Some(credential) => match self.verify(credential).await {
                    Ok(p) => Some(p),
                    Err(AuthorizerError::Unauthorized) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            return Ok(match principal {
                Some(p) => json!({"isAuthorized": true, "context": context(&p)}),
                None => json!({"isAuthorized": false, "context": {}}),
            });
        }
        let (method_arn, credential) = match event.get("type").and_then(Value::as_str) {
            Some("TOKEN") => {
                let req: ApiGatewayCustomAuthorizerRequest =
                    serde_json::from_value(event).map_err(|e| AuthorizerError::Malformed(e.to_string()))?;
                let mut headers = HeaderMap::new();
                if let Some(v) = req.authorization_token.as_deref().and_then(|t| t.parse().ok()) {
                    headers.insert(header::AUTHORIZATION, v);
                }
                (req.method_arn, presented(&headers).map(str::to_owned))
            }
            Some("REQUEST") => {
                let req: ApiGatewayCustomAuthorizerRequestTypeRequest =
                    serde_json::from_value(event).map_err(|e| AuthorizerError::Malformed(e.to_string()))?;
                let credential = if ambiguous(&req.multi_value_headers) {
                    None
                } else {
                    presented(&req.headers).map(str::to_owned)
                };
                (req.method_arn, credential)
            }
            _ => {
                return Err(AuthorizerError::Malformed(
                    "neither a REST (type TOKEN or REQUEST) nor an HTTP API (version 2.0) authorizer event".into(),
                ));
            }
        };
        let (resource, api_id) = method_arn_parts(method_arn.as_deref().unwrap_or_default())?;
        let principal = self.verify(&credential.ok_or(AuthorizerError::Unauthorized)?).await?;
        Ok(json!({
            "principalId": principal.key_id,
            // The tenant's usage-plan key (D-1): API Gateway applies the tenant's plan to the
            // request; derived from the API and the tenant, nothing of the credential.
            "usageIdentifierKey": usage_key(api_id, &principal.tenant),
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": resource,
                }],
            },
            "context": context(&principal),
        }))
    }

    /// Checks one credential.
    async fn verify(&self, credential: &str) -> Result<Principal, AuthorizerError> {
        let result = match &self.jwt {
            Some(jwt) if oidc::looks_like_jwt(credential) => jwt.verify(credential),
            _ => self.keys.authenticate(credential).await,
        };
        result.map_err(|e| match e {
            AuthError::Invalid => {
                metrics::counter!(sluice_core::metrics::AUTH_FAILURES).increment(1);
                AuthorizerError::Unauthorized
            }
            AuthError::Unavailable(m) => AuthorizerError::Unavailable(m),
        })
    }
}

/// The authorizer context the ingest and query functions read (see [`crate::context`]).
fn context(p: &Principal) -> Value {
    json!({"tenant": p.tenant.as_str(), "key_id": p.key_id})
}

/// Whether a credential header was sent more than once (REST events list every value in
/// `multiValueHeaders`; `headers` keeps only the last).
fn ambiguous(multi: &HeaderMap) -> bool {
    multi.get_all(header::AUTHORIZATION).iter().count() > 1
}

/// The one credential presented (see [`presented_credential`]).
fn presented(headers: &HeaderMap) -> Option<&str> {
    let values =
        |name: &HeaderName| -> Vec<Option<&str>> { headers.get_all(name).iter().map(|v| v.to_str().ok()).collect() };
    presented_credential(&values(&header::AUTHORIZATION), MAX_CREDENTIAL_LEN)
}

/// `arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/*` from a method ARN
/// `…:{api}/{stage}/{method}/{path}`.
pub fn stage_wildcard(method_arn: &str) -> Result<String, AuthorizerError> {
    method_arn_parts(method_arn).map(|(wildcard, _)| wildcard)
}

/// The stage wildcard ([`stage_wildcard`]) and the REST API id of a method ARN, checked once.
fn method_arn_parts(method_arn: &str) -> Result<(String, &str), AuthorizerError> {
    let bad = || AuthorizerError::Malformed("methodArn is not an execute-api method ARN".into());
    let parts: Vec<&str> = method_arn.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return Err(bad());
    };
    if arn != "arn" || service != "execute-api" || partition.is_empty() || region.is_empty() || account.is_empty() {
        return Err(bad());
    }
    let mut segments = resource.splitn(3, '/');
    let (Some(api), Some(stage)) = (segments.next(), segments.next()) else {
        return Err(bad());
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$')
    };
    if !plain(api) || !plain(stage) {
        return Err(bad());
    }
    Ok((
        format!("arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/*"),
        api,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::HeaderValue;

    #[test]
    fn the_policy_covers_every_route_of_the_stage_only() {
        assert_eq!(
            stage_wildcard("arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/v1/events").unwrap(),
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*"
        );
        assert_eq!(
            stage_wildcard("arn:aws-cn:execute-api:cn-north-1:1:a/$default/GET/").unwrap(),
            "arn:aws-cn:execute-api:cn-north-1:1:a/$default/*"
        );
        for bad in [
            "",
            "arn:aws:lambda:eu-west-1:1:function:x",
            "arn:aws:execute-api:eu-west-1:1:abc123",
            "arn:aws:execute-api:eu-west-1:1:abc*/prod/GET/x",
            "arn:aws:execute-api::1:a/prod/GET/",
        ] {
            assert!(stage_wildcard(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn s1_reads_one_bearer_credential() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert_eq!(presented(&h(&[("authorization", "Bearer a.b")])), Some("a.b"));
        assert_eq!(presented(&h(&[("x-api-key", " a.b ")])), None, "one contract");
        assert_eq!(
            presented(&h(&[("authorization", "Basic a.b"), ("x-api-key", "a.b")])),
            None
        );
        assert_eq!(
            presented(&h(&[("authorization", "Bearer a"), ("authorization", "Bearer b")])),
            None
        );
        assert_eq!(presented(&h(&[])), None);
        assert!(ambiguous(&h(&[
            ("authorization", "Bearer a"),
            ("authorization", "Bearer b")
        ])));
    }
}
