//! The API Gateway request context as request extensions for `sluice_http`'s routers.
//!
//! `lambda_http` puts the event's request context into each request's extensions; this layer
//! reads from it:
//! - the [`Principal`], from the authorizer context (REST: `requestContext.authorizer.tenant` and
//!   `key_id`; HTTP API: `requestContext.authorizer.lambda.*`; HTTP API with the native JWT
//!   authorizer: the verified claims, `requestContext.authorizer.jwt.claims`, whose tenant claim
//!   is `SLUICE_OIDC_TENANT_CLAIM` and whose `sub` becomes `jwt:<sub>` as on `sluice serve`,
//!   [`sluice_core::oidc::subject_key_id`]). The routers run with
//!   [`sluice_http::Auth::Upstream`], so a request without one gets a 401;
//! - the [`ClientIp`], from `requestContext.identity.sourceIp` (REST) or
//!   `requestContext.http.sourceIp` (HTTP API): API Gateway's view of the peer, not a header the
//!   client could set;
//! - API Gateway's `requestContext.requestId` as `x-request-id` when the client sent none, so the
//!   function's logs and API Gateway's access logs share one id;
//! - the invocation's X-Ray trace as the request's trace context, which `sluice_http` continues
//!   (R-1);
//! - the REST stage: `lambda_http` prefixes a REST API request's path with `/{stage}` (unless
//!   `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set), which the routes do not expect. The prefix is
//!   removed only when what follows is an API path (`/v1/…`), so a stage that is itself named `v1`
//!   (whose paths `lambda_http` leaves alone) still works.
//!
//! A principal is trusted because only API Gateway, after the authorizer allowed the request, can
//! invoke the function with this context (see the crate docs).

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use serde_json::Value;
use sluice_core::keys::Principal;
use sluice_core::tenant::Tenant;
use sluice_core::{RequestId, ids};
use sluice_http::ClientIp;
use sluice_http::request_id::X_REQUEST_ID;
use std::collections::HashMap;
use std::sync::Arc;

/// The authorizer context fields of a request context.
fn authorizer_fields(ctx: &RequestContext) -> Option<&HashMap<String, Value>> {
    match ctx {
        RequestContext::ApiGatewayV1(c) => Some(&c.authorizer.fields),
        RequestContext::ApiGatewayV2(c) => c.authorizer.as_ref().map(|a| &a.fields),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The principal the authorizer put into the context, if it is a valid one: a Lambda
/// authorizer's `tenant` and `key_id`, or else (HTTP API's JWT authorizer) the claim
/// `tenant_claim` and the subject of the claims API Gateway verified.
pub fn principal(ctx: &RequestContext, tenant_claim: &str) -> Option<Principal> {
    if let Some(fields) = authorizer_fields(ctx).filter(|f| !f.is_empty()) {
        let tenant = Tenant::parse(fields.get("tenant")?.as_str()?).ok()?;
        let key_id = fields.get("key_id")?.as_str()?;
        return (!key_id.is_empty()).then(|| Principal {
            tenant,
            key_id: key_id.to_owned(),
        });
    }
    let RequestContext::ApiGatewayV2(c) = ctx else {
        return None;
    };
    let claims = &c.authorizer.as_ref()?.jwt.as_ref()?.claims;
    let tenant = Tenant::parse(claims.get(tenant_claim)?).ok()?;
    let sub = claims.get("sub").filter(|s| !s.is_empty())?;
    Some(Principal {
        tenant,
        key_id: sluice_core::oidc::subject_key_id(sub),
    })
}

/// The caller's address as API Gateway saw it.
pub fn source_ip(ctx: &RequestContext) -> Option<String> {
    match ctx {
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.clone(),
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// API Gateway's id for the request.
fn gateway_request_id(ctx: &RequestContext) -> Option<&str> {
    match ctx {
        RequestContext::ApiGatewayV1(c) => c.request_id.as_deref(),
        RequestContext::ApiGatewayV2(c) => c.request_id.as_deref(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// `router` behind the API Gateway context step, which runs before routing (it may rewrite the
/// path); `tenant_claim` names the JWT claim holding the tenant (HTTP API JWT authorizer).
pub fn wrap(router: Router, tenant_claim: &str) -> Router {
    let claim: Arc<str> = Arc::from(tenant_claim);
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let claim = claim.clone();
            async move { api_gateway_context(req, next, &claim).await }
        }))
}

/// The request's URI without the REST stage prefix `lambda_http` added, if it did.
fn without_stage(uri: &Uri, ctx: &RequestContext) -> Option<Uri> {
    let RequestContext::ApiGatewayV1(c) = ctx else {
        return None;
    };
    let stage = c.stage.as_deref().filter(|s| !s.is_empty() && *s != "$default")?;
    let rest = uri.path().strip_prefix('/')?.strip_prefix(stage)?;
    if !(rest.starts_with("/v1/") || rest == "/v1") {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// Middleware: the request context into extensions (see the module docs).
pub async fn api_gateway_context(mut req: Request, next: Next, tenant_claim: &str) -> Response {
    if let Some(ctx) = req.extensions().get::<RequestContext>().cloned() {
        if let Some(uri) = without_stage(req.uri(), &ctx) {
            *req.uri_mut() = uri;
        }
        if let Some(p) = principal(&ctx, tenant_claim) {
            req.extensions_mut().insert(p);
        }
        if let Some(ip) = source_ip(&ctx) {
            req.extensions_mut().insert(ClientIp(ip));
        }
        // The invocation's X-Ray trace (active tracing): the events continue it, and the SQS
        // adapter hands it on as AWSTraceHeader, so X-Ray links ingest and process (R-1).
        if let Some(trace) = req
            .extensions()
            .get::<lambda_http::Context>()
            .and_then(|c| c.xray_trace_id.as_deref())
            .and_then(sluice_core::trace::TraceContext::from_xray_header)
        {
            req.extensions_mut().insert(trace);
        }
        let has_valid_id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| RequestId::parse(s).is_ok());
        if !has_valid_id
            && let Some(id) = gateway_request_id(&ctx).filter(|s| ids::RequestId::parse(s).is_ok())
            && let Ok(v) = HeaderValue::from_str(id)
        {
            req.headers_mut().insert(X_REQUEST_ID, v);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2(authorizer: Value) -> RequestContext {
        let ctx = json!({
            "accountId": "123456789012", "apiId": "abc", "requestId": "r", "routeKey": "GET /v1/events",
            "stage": "$default", "time": "", "timeEpoch": 0, "domainName": "d", "domainPrefix": "d",
            "http": {"method": "GET", "path": "/v1/events", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "authorizer": authorizer,
        });
        RequestContext::ApiGatewayV2(serde_json::from_value(ctx).unwrap())
    }

    #[test]
    fn s1_an_http_api_jwt_authorizers_claims_name_the_tenant_and_nothing_else_does() {
        let claims = |c: Value| v2(json!({"jwt": {"claims": c, "scopes": null}}));
        let p = principal(&claims(json!({"sub": "0f5e2c9a-user", "org": "acme"})), "org").unwrap();
        assert_eq!((p.tenant.as_str(), p.key_id.as_str()), ("acme", "jwt:0f5e2c9a-user"));
        // Only the configured claim names the tenant; a malformed tenant or no subject is none.
        assert!(principal(&claims(json!({"sub": "u", "tenant": "acme"})), "org").is_none());
        assert!(principal(&claims(json!({"sub": "u", "org": "Not A Tenant"})), "org").is_none());
        assert!(principal(&claims(json!({"org": "acme"})), "org").is_none());
        // A Lambda authorizer's context wins and is read as before.
        let lambda = v2(json!({"lambda": {"tenant": "globex", "key_id": "key_1"}}));
        assert_eq!(principal(&lambda, "org").unwrap().tenant.as_str(), "globex");
        assert!(principal(&v2(json!({"lambda": {"tenant": "globex"}})), "org").is_none());
    }
}
