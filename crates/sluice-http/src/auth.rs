//! Authentication (S-1) and throttling (D-1) in front of every `/v1` handler.
//!
//! With [`Auth::Local`] the credential comes from `Authorization: Bearer <credential>`, the one
//! contract Sluice has on every host (`x-api-key` is not read: on AWS it is API Gateway's own
//! header, and the authorizer's cache is keyed by `Authorization`). A bearer token shaped like a JWT goes to the OIDC [`JwtVerifier`] when
//! one is configured; anything else is an API key. With [`Auth::Upstream`] the host (API Gateway's
//! authorizer, via the Lambda adapter) has already authenticated and inserted a [`Principal`].
//! Every kind of failure gets the same 401 body, so a client cannot tell a wrong key from an expired
//! one, or a bad JWT from a bad key. The authenticated [`Principal`] goes into the request's
//! extensions for the handler and into the response's for the access log.
//!
//! Failed attempts are limited per client address *before* the credential is checked (D-1): once an
//! address has spent its bucket of failures, its requests get a 429 without reaching the key store, so
//! a flood of random keys cannot turn into a flood of key store reads. Only failures spend the bucket,
//! so a busy, well-behaved client is never slowed by it.

use crate::client_ip;
use crate::problem::{Code, Problem};
use crate::throttle::Throttle;
use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sluice_core::keys::{AuthError, Authenticator, Principal, presented_credential};
use sluice_core::oidc::{self, JwtVerifier};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};

/// API Gateway's API key header: not a credential Sluice reads, but a client that sends its key
/// there must never see it logged, so it is marked sensitive like `Authorization` (I-1).
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Longest API key we bother to check; anything longer is refused unread.
const MAX_KEY_LEN: usize = 512;

/// Above this many blocked addresses, the expired entries are dropped (and all of them if none has).
const MAX_BLOCKED: usize = 10_000;

/// How callers are authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Verify credentials here (`sluice serve`): API keys against the key store and, when `jwt` is
    /// set, JWTs from the configured OIDC issuer.
    Local {
        /// API keys.
        keys: Arc<Authenticator>,
        /// JWTs, when an OIDC issuer is configured.
        jwt: Option<Arc<JwtVerifier>>,
    },
    /// An upstream authorizer (API Gateway on AWS) already authenticated: trust a
    /// [`Principal`] request extension that the host inserted; none present = 401.
    Upstream,
}

impl Auth {
    /// API keys only.
    pub fn api_keys(keys: Arc<Authenticator>) -> Self {
        Self::Local { keys, jwt: None }
    }
}

/// Failed authentication attempts per client address (D-1): a governor bucket per address, and the
/// addresses that emptied theirs, with the time their next attempt may come.
pub(crate) struct FailureLimit {
    buckets: DefaultKeyedRateLimiter<String>,
    blocked: Mutex<HashMap<String, Instant>>,
}

impl FailureLimit {
    /// `per_minute` failures per key with a bucket of `burst`; `None` (no limit) when it is 0.
    pub(crate) fn new(per_minute: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_minute)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Self {
            buckets: RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)),
            blocked: Mutex::new(HashMap::new()),
        })
    }

    /// How long `addr` must still wait, if it is blocked.
    /// Whether any address may still be blocked (expired blocks leave as they are looked up).
    pub(crate) fn any_blocked(&self) -> bool {
        self.blocked.lock().is_ok_and(|blocked| !blocked.is_empty())
    }

    pub(crate) fn blocked_for(&self, addr: &str) -> Option<Duration> {
        let mut blocked = self.blocked.lock().ok()?;
        let until = *blocked.get(addr)?;
        let wait = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
        if wait.is_none() {
            blocked.remove(addr);
        }
        wait
    }

    /// Spends one failure from `addr`'s bucket; an empty bucket blocks it until a token is back.
    pub(crate) fn record(&self, addr: &str) {
        if self.buckets.len() > MAX_BLOCKED {
            self.buckets.retain_recent();
        }
        let Err(not_until) = self.buckets.check_key(&addr.to_owned()) else {
            return;
        };
        let wait = not_until.wait_time_from(self.buckets.clock().now());
        if let Ok(mut blocked) = self.blocked.lock() {
            if blocked.len() >= MAX_BLOCKED {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
                if blocked.len() >= MAX_BLOCKED {
                    blocked.clear();
                }
            }
            blocked.insert(addr.to_owned(), Instant::now() + wait);
        }
        tracing::warn!(target: "sluice::http", source_ip = %addr, "too many failed authentication attempts");
    }
}

/// Authentication plus throttling: one per router instance, shared by its routes.
pub(crate) struct Guard {
    auth: Auth,
    throttle: Throttle,
    failures: Option<FailureLimit>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("auth", &self.auth)
            .field("throttle", &self.throttle)
            .field("failure_limit", &self.failures.is_some())
            .finish()
    }
}

/// The one 401 every kind of authentication failure gets.
pub(crate) fn unauthorized() -> Problem {
    Problem::new(Code::Unauthorized).detail("missing or invalid credentials")
}

/// Whole seconds to wait, rounded up, at least 1.
pub(crate) fn whole_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Why a request was not authenticated.
enum Denied {
    /// The caller's fault: 401, and a failure spent from its address's bucket.
    Invalid,
    /// Ours: the key store could not be read.
    Unavailable(Problem),
}

/// Every value of a header, as text where it is text.
fn header_values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Vec<Option<&'a str>> {
    headers.get_all(name).iter().map(|v| v.to_str().ok()).collect()
}

/// The one credential a request presents, if it presents exactly one usable one.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    // JWTs are longer than API keys; each path applies its own, smaller limit after this one.
    presented_credential(&header_values(headers, &header::AUTHORIZATION), oidc::MAX_TOKEN_LEN)
}

impl Guard {
    /// A guard with fresh buckets; `failures_per_minute`/`failure_burst` bound failed attempts per
    /// address (rate 0: no limit).
    pub(crate) fn new(auth: Auth, throttle: Throttle, failures_per_minute: u32, failure_burst: u32) -> Self {
        let failures = match auth {
            Auth::Local { .. } => FailureLimit::new(failures_per_minute, failure_burst),
            // Upstream, the authorizer runs before us and API Gateway throttles it.
            Auth::Upstream => None,
        };
        Self {
            auth,
            throttle,
            failures,
        }
    }

    async fn authenticate(&self, headers: &HeaderMap, extensions: &Extensions) -> Result<Principal, Denied> {
        match &self.auth {
            Auth::Upstream => extensions.get::<Principal>().cloned().ok_or(Denied::Invalid),
            Auth::Local { keys, jwt } => {
                let credential = presented_key(headers).ok_or(Denied::Invalid)?;
                let outcome = match jwt {
                    Some(verifier) if oidc::looks_like_jwt(credential) => verifier.verify(credential),
                    _ if credential.len() > MAX_KEY_LEN => Err(AuthError::Invalid),
                    _ => keys.authenticate(credential).await,
                };
                outcome.map_err(|e| match e {
                    AuthError::Invalid => Denied::Invalid,
                    AuthError::Unavailable(reason) => {
                        tracing::warn!(target: "sluice::http", %reason, "key store unavailable");
                        Denied::Unavailable(
                            Problem::new(Code::AuthUnavailable)
                                .detail("credentials cannot be checked right now; retry later")
                                .retry_after(5),
                        )
                    }
                })
            }
        }
    }
}

/// Puts the [`Guard`] in front of a route: refuse addresses with too many failures,
/// authenticate, throttle, then run the handler with the [`Principal`].
///
/// A tower layer rather than `from_fn_with_state`, which boxes a clone of the inner service on
/// top of the future for every request.
#[derive(Debug, Clone)]
pub(crate) struct GuardLayer {
    guard: Arc<Guard>,
}

impl GuardLayer {
    /// A layer sharing `guard` (and so its buckets) with every other route it is put on.
    pub(crate) fn new(guard: Arc<Guard>) -> Self {
        Self { guard }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            guard: Arc::clone(&self.guard),
            inner,
        }
    }
}

/// A route behind the [`Guard`].
#[derive(Debug, Clone)]
pub(crate) struct Guarded<S> {
    guard: Arc<Guard>,
    inner: S,
}

impl<S> Service<Request> for Guarded<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service driven to readiness goes with this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let guard = Arc::clone(&self.guard);
        Box::pin(async move { Ok(guard.admit(req, inner).await) })
    }
}

impl Guard {
    async fn admit<S>(&self, mut req: Request, mut inner: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let addr = |req: &Request| client_ip::source_ip(req.extensions()).unwrap_or_else(|| "unknown".to_owned());
        // The address is spelled out only when some address is blocked: a string per request
        // otherwise, for nothing.
        if let Some(failures) = &self.failures
            && failures.any_blocked()
            && let Some(wait) = failures.blocked_for(&addr(&req))
        {
            sluice_core::metrics::throttled("address");
            return Problem::new(Code::Throttled)
                .detail("too many failed authentication attempts; retry after the indicated number of seconds")
                .retry_after(whole_secs(wait))
                .into_response();
        }
        let principal = match self.authenticate(req.headers(), req.extensions()).await {
            Ok(p) => p,
            Err(Denied::Invalid) => {
                metrics::counter!(sluice_core::metrics::AUTH_FAILURES).increment(1);
                if let Some(failures) = &self.failures {
                    failures.record(&addr(&req));
                }
                return unauthorized().into_response();
            }
            Err(Denied::Unavailable(problem)) => return problem.into_response(),
        };
        let mut res = match self
            .throttle
            .check_principal(principal.tenant.as_str(), &principal.key_id)
        {
            Ok(()) => {
                req.extensions_mut().insert(principal.clone());
                let Ok(res) = inner.call(req).await;
                res
            }
            Err(problem) => problem.into_response(),
        };
        res.extensions_mut().insert(principal);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn d1_failures_block_an_address_until_its_bucket_refills() {
        let limit = FailureLimit::new(60, 2).unwrap();
        assert!(!limit.any_blocked());
        assert_eq!(limit.blocked_for("a"), None);
        limit.record("a");
        limit.record("a");
        assert_eq!(limit.blocked_for("a"), None, "the burst is spent, not exceeded");
        // The next failure finds the bucket empty: from then on the address waits.
        limit.record("a");
        assert!(limit.any_blocked());
        let wait = limit.blocked_for("a").unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(whole_secs(wait), 1);
        assert_eq!(limit.blocked_for("b"), None, "addresses have their own buckets");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(limit.blocked_for("a"), None, "a token is back");
        assert!(!limit.any_blocked(), "an expired block leaves once looked up");
        assert!(FailureLimit::new(0, 5).is_none());
    }

    #[test]
    fn s1_reads_one_bearer_credential_and_refuses_ambiguity() {
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer k.s")])), Some("k.s"));
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  k.s ")])),
            Some("k.s")
        );
        assert_eq!(presented_key(&headers(&[("x-api-key", "k.s")])), None, "one contract");
        assert_eq!(presented_key(&headers(&[("authorization", "Basic k.s")])), None);
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer")])), None);
        assert_eq!(
            presented_key(&headers(&[
                ("authorization", "Bearer a.b"),
                ("authorization", "Bearer c.d")
            ])),
            None
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }
}
