//! Sluice's HTTP surface: one axum [`Router`] per Lambda function ([`ingest_router`],
//! [`query_router`]) and the whole API for `sluice serve` ([`app`]). The same routers run under
//! `lambda_http::run(router)` on AWS and under a local hyper server.
//!
//! # Layout
//! - [`problem`]: RFC 9457 problem+json errors and their stable codes.
//! - [`request_id`]: `x-request-id` in and out, and the outermost step that renders every error.
//! - [`auth`]: API keys, OIDC JWTs or a trusted upstream principal (S-1), failed attempts limited per
//!   client address, then throttling.
//! - `throttle`: governor token buckets, per key and global (D-1).
//! - `admission`: the byte budget, the body bytes the ingest route works on at once (D-2).
//! - `body`: media type check and body reading under a byte limit (T-1).
//! - `ingest`, `query`: the route handlers, thin adapters over `sluice_core`'s use cases.
//! - [`access_log`]: one structured event per request, never a body or credential (R-1, I-1).
//! - [`client_ip`]: the caller's address.
//! - [`openapi`]: the OpenAPI document and the list of routes it covers.
//!
//! # Layers, outermost first
//! sensitive headers → request id and problem rendering → access log → panic catcher →
//! routes (the `/v1` handlers behind the auth and throttling guard) → 404 fallback.

pub mod access_log;
mod admission;
pub mod auth;
mod body;
pub mod client_ip;
mod ingest;
pub mod openapi;
pub mod problem;
mod query;
pub mod request_id;
mod throttle;

pub use auth::Auth;
pub use client_ip::ClientIp;
pub use openapi::{OPENAPI_JSON, ROUTES, Route};
pub use problem::{Code, Problem};

use access_log::AccessLogLayer;
use admission::ByteBudget;
use auth::{Guard, GuardLayer, X_API_KEY};
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use request_id::FinalizeLayer;
use sluice_core::ingest::IngestService;
use sluice_core::query::QueryService;
use std::sync::Arc;
use throttle::Throttle;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

/// Transport limits of a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest request body in bytes, enforced while reading (the validator's own limit applies
    /// too; the smaller wins).
    pub max_body_bytes: usize,
    /// Requests per second per API key (0: no per-key limit).
    pub rate_per_sec: u32,
    /// Bucket size per API key (0: equal to the rate).
    pub burst: u32,
    /// Requests per second over all keys (0: no global limit).
    pub global_rate_per_sec: u32,
    /// Bucket size over all keys (0: equal to the rate).
    pub global_burst: u32,
    /// Failed authentication attempts per minute per client address. The failure that finds the
    /// bucket empty blocks the address: its requests get 429 before their credentials are checked
    /// until a token is back (0: no limit). Only with [`Auth::Local`].
    pub auth_failures_per_minute: u32,
    /// Bucket size of failed attempts per client address (0: equal to the rate).
    pub auth_failure_burst: u32,
    /// Requests handled at once (0: no limit). Beyond it a request waits, unread, for a free
    /// slot: memory stays bounded by this many bodies however many connections are open (D-2).
    pub max_in_flight: usize,
    /// Body bytes the ingest route works on at once, counted once a body is read (at least
    /// 1 KiB a request; 0: no limit). Parsing and sealing take many times the body, so this
    /// bounds most of a request's memory (D-2); see `admission`.
    pub max_in_flight_bytes: usize,
    /// How long a request body may take to arrive before a 408 (zero: no limit). A client
    /// trickling its body holds one of the `max_in_flight` slots meanwhile (D-2).
    pub body_timeout: std::time::Duration,
}

impl Default for HttpConfig {
    /// 256 KiB bodies; per key 1000/s with a burst of 2000; globally 10000/s with a burst of 5000
    /// (API Gateway's defaults); 600 failed authentications per minute per address, burst 50;
    /// 256 requests and 256 KiB of body in work at once; 30 s for a body to arrive.
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            rate_per_sec: 1000,
            burst: 2000,
            global_rate_per_sec: 10_000,
            global_burst: 5000,
            auth_failures_per_minute: 600,
            auth_failure_burst: 50,
            max_in_flight: 256,
            max_in_flight_bytes: 256 * 1024,
            body_timeout: std::time::Duration::from_secs(30),
        }
    }
}

fn guard(auth: Auth, config: &HttpConfig) -> Arc<Guard> {
    Arc::new(Guard::new(
        auth,
        Throttle::new(
            config.rate_per_sec,
            config.burst,
            config.global_rate_per_sec,
            config.global_burst,
        ),
        config.auth_failures_per_minute,
        config.auth_failure_burst,
    ))
}

fn ingest_routes(service: Arc<IngestService>, guard: &Arc<Guard>, config: &HttpConfig) -> Router {
    let max_body_bytes = config.max_body_bytes.min(service.validator().limits().max_body_bytes);
    let state = Arc::new(ingest::IngestState {
        service,
        max_body_bytes,
        body_timeout: config.body_timeout,
        budget: ByteBudget::new(config.max_in_flight_bytes),
    });
    Router::new()
        .route(
            openapi::EVENTS,
            post(ingest::post_events).route_layer(GuardLayer::new(Arc::clone(guard))),
        )
        .with_state(state)
}

fn query_routes(service: Arc<QueryService>, guard: &Arc<Guard>) -> Router {
    let guarded = || GuardLayer::new(Arc::clone(guard));
    Router::new()
        .route(openapi::EVENTS, get(query::list_events).route_layer(guarded()))
        .route(openapi::EVENT, get(query::get_event).route_layer(guarded()))
        .with_state(service)
}

async fn not_found() -> Problem {
    Problem::new(Code::NotFound).detail("no route matches this path")
}

fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The payload may quote request data: it stays out of the response and the log (I-1, I-2).
    tracing::error!(target: "sluice::http", "a request handler panicked");
    Problem::new(Code::Internal).into_response()
}

/// The layers every router gets, with the 404 fallback.
fn finish(router: Router, config: &HttpConfig) -> Router {
    // One `layer` call with the whole stack: each `Router::layer` boxes every route once more,
    // and a request then clones each box on its way in (an allocation per layer per request).
    let shared = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, X_API_KEY]))
        .layer(FinalizeLayer)
        .layer(AccessLogLayer)
        .layer(CatchPanicLayer::custom(panic_response))
        // Innermost, so a waiting request holds no body, parsed value or envelope; one semaphore
        // for every route (GlobalConcurrencyLimitLayer shares it across clones).
        .option_layer((config.max_in_flight > 0).then(|| GlobalConcurrencyLimitLayer::new(config.max_in_flight)));
    router.fallback(not_found).layer(shared)
}

/// The ingest function's router: `POST /v1/events`.
pub fn ingest_router(ingest: Arc<IngestService>, auth: Auth, config: &HttpConfig) -> Router {
    let guard = guard(auth, config);
    finish(ingest_routes(ingest, &guard, config), config)
}

/// The query function's router: `GET /v1/events/{id}` and `GET /v1/events`.
pub fn query_router(query: Arc<QueryService>, auth: Auth, config: &HttpConfig) -> Router {
    let guard = guard(auth, config);
    finish(query_routes(query, &guard), config)
}

/// The whole API as `sluice serve` mounts it: ingest and query routes sharing one authenticator
/// and one set of buckets, plus `GET /healthz` and `GET /openapi.json` (no auth).
pub fn app(ingest: Arc<IngestService>, query: Arc<QueryService>, auth: Auth, config: &HttpConfig) -> Router {
    let guard = guard(auth, config);
    let routes = ingest_routes(ingest, &guard, config)
        .merge(query_routes(query, &guard))
        .route(openapi::HEALTHZ, get(openapi::healthz))
        .route(openapi::OPENAPI, get(openapi::serve_openapi));
    finish(routes, config)
}
