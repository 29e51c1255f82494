//! Authentication (S-1) and throttling (D-1) in front of every `/v1` handler.
//!
//! With [`Auth::ApiKeys`] the key comes from `Authorization: Bearer <key>` or, failing that,
//! `x-api-key: <key>`. With [`Auth::Upstream`] the host (API Gateway's authorizer, via the Lambda
//! adapter) has already authenticated and inserted a [`Principal`]. Every kind of failure gets the
//! same 401 body, so a client cannot tell a wrong key from an expired one. The authenticated
//! [`Principal`] goes into the request's extensions for the handler and into the response's for
//! the access log.

use crate::problem::{Code, Problem};
use crate::throttle::Throttle;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_core::keys::{AuthError, Authenticator, Principal};
use std::sync::Arc;

/// The API key header.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Longest credential we bother to check; anything longer is refused unread.
const MAX_KEY_LEN: usize = 512;

/// How callers are authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Verify API keys here (sluice serve): `Authorization: Bearer <key>` or `x-api-key: <key>`.
    ApiKeys(Arc<Authenticator>),
    /// An upstream authorizer (API Gateway on AWS) already authenticated: trust a
    /// [`Principal`] request extension that the host inserted; none present = 401.
    Upstream,
}

/// Authentication plus throttling: one per router instance, shared by its routes.
#[derive(Debug)]
pub(crate) struct Guard {
    auth: Auth,
    throttle: Throttle,
}

fn unauthorized() -> Problem {
    Problem::new(Code::Unauthorized).detail("missing or invalid credentials")
}

/// The one credential a request presents, if it presents exactly one usable one.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let name = if headers.contains_key(header::AUTHORIZATION) {
        header::AUTHORIZATION
    } else {
        X_API_KEY
    };
    let mut values = headers.get_all(&name).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let key = if name == header::AUTHORIZATION {
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        token.trim()
    } else {
        value.trim()
    };
    (!key.is_empty() && key.len() <= MAX_KEY_LEN).then_some(key)
}

impl Guard {
    /// A guard with fresh buckets.
    pub(crate) fn new(auth: Auth, throttle: Throttle) -> Self {
        Self { auth, throttle }
    }

    async fn authenticate(&self, headers: &HeaderMap, extensions: &Extensions) -> Result<Principal, Problem> {
        match &self.auth {
            Auth::Upstream => extensions.get::<Principal>().cloned().ok_or_else(unauthorized),
            Auth::ApiKeys(authenticator) => {
                let key = presented_key(headers).ok_or_else(unauthorized)?;
                authenticator.authenticate(key).await.map_err(|e| match e {
                    AuthError::Invalid => unauthorized(),
                    AuthError::Unavailable(reason) => {
                        tracing::warn!(target: "sluice::http", %reason, "key store unavailable");
                        Problem::new(Code::AuthUnavailable)
                            .detail("credentials cannot be checked right now; retry later")
                            .retry_after(5)
                    }
                })
            }
        }
    }
}

/// Middleware: authenticate, throttle, then run the handler with the [`Principal`].
pub(crate) async fn guard(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let principal = match guard.authenticate(req.headers(), req.extensions()).await {
        Ok(p) => p,
        Err(problem) => return problem.into_response(),
    };
    let mut res = match guard.throttle.check(&principal.key_id) {
        Ok(()) => {
            req.extensions_mut().insert(principal.clone());
            next.run(req).await
        }
        Err(problem) => problem.into_response(),
    };
    res.extensions_mut().insert(principal);
    res
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
    fn s1_reads_bearer_then_api_key_and_refuses_ambiguity() {
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer k.s")])), Some("k.s"));
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  k.s ")])),
            Some("k.s")
        );
        assert_eq!(presented_key(&headers(&[("x-api-key", "k.s")])), Some("k.s"));
        assert_eq!(presented_key(&headers(&[("authorization", "Basic k.s")])), None);
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer")])), None);
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "a.b"), ("x-api-key", "c.d")])),
            None
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }
}
