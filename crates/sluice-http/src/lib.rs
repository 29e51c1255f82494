//! Sluice's HTTP surface: one axum [`Router`] per Lambda function ([`ingest_router`], which also
//! serves the webhook deliveries, and [`query_router`]) and the whole API for `sluice serve`
//! ([`app`]). The same routers run under
//! `lambda_http::run(router)` on AWS and under a local hyper server.
//!
//! # Layout
//! - [`problem`]: RFC 9457 problem+json errors and their stable codes.
//! - [`request_id`]: `x-request-id` in and out, and the outermost step that renders every error.
//! - [`auth`]: API keys, OIDC JWTs or a trusted upstream principal (S-1), failed attempts limited per
//!   client address, then throttling.
//! - `throttle`: governor token buckets, per key and global (D-1).
//! - `admission`: the byte budget, the body bytes the ingest route works on at once (D-2).
//! - `body`: media type check and body reading under a byte limit (T-1), with a bounded
//!   lingering read after an early 413 so clients that send before they read still see it.
//! - `framing`: `Transfer-Encoding` and `Host` as RFC 9112 allows them, on `sluice serve` (T-1).
//! - `ingest`, `query`, `sources`: the route handlers, thin adapters over `sluice_core`'s use
//!   cases (`sources`: provider-signed webhook deliveries, authenticated by their signature).
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
pub mod feed;
mod framing;
mod ingest;
pub mod openapi;
pub mod problem;
mod query;
pub mod request_id;
mod sources;
mod throttle;

pub use auth::Auth;
pub use client_ip::ClientIp;
pub use feed::{FeedSettings, FeedState};
pub use openapi::{OPENAPI_JSON, ROUTES, Route};
pub use problem::{Code, Problem};
pub use throttle::{PlanBook, TenantPlan};

use access_log::AccessLogLayer;
use admission::ByteBudget;
use auth::{Guard, GuardLayer, X_API_KEY};
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use framing::FramingLayer;
use request_id::FinalizeLayer;
use serde::Deserialize;
use sluice_core::deliveries::DeliveryService;
use sluice_core::ingest::IngestService;
use sluice_core::query::QueryService;
use std::sync::Arc;
use std::time::Duration;
use throttle::Throttle;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

/// The HTTP settings: `[throttle]` of `sluice serve`'s configuration, deserialised straight into
/// this one struct so a setting is added in one place; the Lambda functions run on its defaults
/// (API Gateway's throttles come first there). The request body limit is the validator's
/// (`[limits] max_body_bytes`), not a setting of its own. Every `0` means "no limit".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Sustained requests per second per API key (0: no per-key limit).
    pub rate_per_sec: u32,
    /// Bucket size per API key (0: equal to the rate).
    pub burst: u32,
    /// Sustained requests per second over all keys (0: no global limit).
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
    /// 1 KiB a request; 0: no limit). Parsing and sealing take many times the body (a 100-event
    /// batch about 25 times), so this bounds most of a request's memory (D-2); each send waits
    /// for its group commit, so many single events share one fsync while a few large batches
    /// fill the budget. See `admission`.
    pub max_in_flight_bytes: usize,
    /// How long a request body may take to arrive before a 408 and the connection closed
    /// (`body_timeout_secs`; zero: no limit). A client trickling its body holds one of the
    /// `max_in_flight` slots meanwhile (D-2).
    #[serde(rename = "body_timeout_secs", with = "secs")]
    pub body_timeout: Duration,
    /// How long a client has to send a request's whole header block, on a new connection and
    /// between requests on a kept-alive one (`header_timeout_secs`; zero: no limit); past it the
    /// connection is closed, so clients trickling headers (slowloris) cannot pile up connections
    /// and header buffers (D-2). Enforced by the listener of `sluice serve`.
    #[serde(rename = "header_timeout_secs", with = "secs")]
    pub header_timeout: Duration,
    /// Connections open at once; at the limit new ones wait in the kernel's listen backlog until
    /// one closes, so idle connections cannot pile up tasks, descriptors and buffers (D-2).
    /// 0: no limit. Enforced by the listener of `sluice serve`.
    pub max_connections: usize,
    /// Connections open at once from one client address (the socket's peer); beyond it a new
    /// one is closed as soon as it is accepted. Behind a reverse proxy every connection comes
    /// from the proxy: raise it to `max_connections` or set 0 there. 0: no limit.
    pub max_connections_per_address: usize,
    /// Requests per UTC day per tenant without a plan, as a usage plan's daily quota (0: none).
    /// Over it: 429 with `Retry-After` until midnight UTC. Counted in memory.
    pub quota_per_day: u64,
    /// Per-tenant plans, `[throttle.tenants.<tenant>]`: a rate shared by the tenant's keys (in
    /// place of the per-key one) and a daily quota (in place of `quota_per_day`), as one API
    /// Gateway usage plan per tenant does.
    pub tenants: std::collections::BTreeMap<String, TenantPlan>,
    /// Plans the host keeps current from its store (`sluice tenants limits set`), over
    /// `tenants`. Not a setting: empty unless the host fills it.
    #[serde(skip)]
    pub plan_book: PlanBook,
}

impl Default for HttpConfig {
    /// Per key 1000/s with a burst of 2000; globally 10000/s with a burst of 5000 (API Gateway's
    /// defaults); 600 failed authentications per minute per address, burst 50; 256 requests and
    /// 256 KiB of body in work at once; 30 s for a body and 60 s for a header block to arrive;
    /// 1024 connections, 256 from one address; no daily quota and no tenant plans.
    fn default() -> Self {
        Self {
            rate_per_sec: 1000,
            burst: 2000,
            global_rate_per_sec: 10_000,
            global_burst: 5000,
            auth_failures_per_minute: 600,
            auth_failure_burst: 50,
            max_in_flight: 256,
            max_in_flight_bytes: 256 * 1024,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_address: 256,
            quota_per_day: 0,
            tenants: std::collections::BTreeMap::new(),
            plan_book: PlanBook::default(),
        }
    }
}

/// Durations written as whole seconds.
mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
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
        )
        .with_tenants(&config.tenants, config.quota_per_day)
        .with_book(config.plan_book.clone()),
        config.auth_failures_per_minute,
        config.auth_failure_burst,
    ))
}

fn ingest_routes(service: Arc<IngestService>, guard: &Arc<Guard>, config: &HttpConfig) -> Router {
    let max_body_bytes = service.validator().limits().max_body_bytes;
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

/// The read side's state: the query use case and the feed routes'.
#[derive(Clone)]
struct ReadState {
    query: Arc<QueryService>,
    feed: Arc<FeedState>,
}

impl axum::extract::FromRef<ReadState> for Arc<QueryService> {
    fn from_ref(s: &ReadState) -> Self {
        Arc::clone(&s.query)
    }
}

impl axum::extract::FromRef<ReadState> for Arc<FeedState> {
    fn from_ref(s: &ReadState) -> Self {
        Arc::clone(&s.feed)
    }
}

fn query_routes(service: Arc<QueryService>, feed_state: Arc<FeedState>, guard: &Arc<Guard>) -> Router {
    let guarded = || GuardLayer::new(Arc::clone(guard));
    Router::new()
        .route(openapi::EVENTS, get(query::list_events).route_layer(guarded()))
        .route(
            openapi::EVENT,
            get(query::get_event).delete(feed::delete_event).route_layer(guarded()),
        )
        .route(openapi::FEED, get(feed::get_feed).route_layer(guarded()))
        .route(openapi::FEED_STREAM, get(feed::stream_feed).route_layer(guarded()))
        .route(openapi::ERASURES, post(feed::post_erasure).route_layer(guarded()))
        .route(openapi::ERASURE, get(feed::get_erasure).route_layer(guarded()))
        .with_state(ReadState {
            query: service,
            feed: feed_state,
        })
}

async fn not_found() -> Problem {
    Problem::new(Code::NotFound).detail("no route matches this path")
}

fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The payload may quote request data: it stays out of the response and the log (I-1, I-2).
    tracing::error!(target: "sluice::http", "a request handler panicked");
    Problem::new(Code::Internal).into_response()
}

/// The layers every router gets, with the 404 fallback; `framing` adds the HTTP/1.1 framing
/// checks a server that owns its connections needs (see `framing`).
fn finish(router: Router, config: &HttpConfig, framing: bool) -> Router {
    // One `layer` call with the whole stack: each `Router::layer` boxes every route once more,
    // and a request then clones each box on its way in (an allocation per layer per request).
    let shared = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, X_API_KEY]))
        .layer(FinalizeLayer)
        .layer(AccessLogLayer)
        .layer(CatchPanicLayer::custom(panic_response))
        .option_layer(framing.then_some(FramingLayer))
        // Innermost, so a waiting request holds no body, parsed value or envelope; one semaphore
        // for every route (GlobalConcurrencyLimitLayer shares it across clones).
        .option_layer((config.max_in_flight > 0).then(|| GlobalConcurrencyLimitLayer::new(config.max_in_flight)));
    router.fallback(not_found).layer(shared)
}

/// The ingest function's router: `POST /v1/events` behind `auth`, and the webhook delivery route
/// `POST /v1/sources/{source_id}`, which API Gateway forwards without its authorizer (the
/// signature over the body authenticates, and only this function can check it).
pub fn ingest_router(
    ingest: Arc<IngestService>,
    deliveries: Arc<DeliveryService>,
    auth: Auth,
    config: &HttpConfig,
) -> Router {
    let guard = guard(auth, config);
    let routes = ingest_routes(ingest, &guard, config).merge(source_routes(deliveries, config));
    finish(routes, config, false)
}

/// The query function's router: `GET /v1/events/{id}`, `GET /v1/events`, and the feed,
/// deletion and erasure routes.
pub fn query_router(query: Arc<QueryService>, feed: Arc<FeedState>, auth: Auth, config: &HttpConfig) -> Router {
    let guard = guard(auth, config);
    finish(query_routes(query, feed, &guard), config, false)
}

/// The webhook delivery route: no bearer guard (the signature authenticates), its own failure
/// limits per source and per address, and per-source buckets of the same size as an API key's.
fn source_routes(deliveries: Arc<DeliveryService>, config: &HttpConfig) -> Router {
    let max_body_bytes = deliveries.ingest().validator().limits().max_body_bytes;
    let failures = || auth::FailureLimit::new(config.auth_failures_per_minute, config.auth_failure_burst);
    let state = Arc::new(sources::DeliveryState {
        service: deliveries,
        max_body_bytes,
        body_timeout: config.body_timeout,
        throttle: Throttle::new(
            config.rate_per_sec,
            config.burst,
            config.global_rate_per_sec,
            config.global_burst,
        ),
        failures_by_source: failures(),
        failures_by_address: failures(),
    });
    Router::new()
        .route(openapi::SOURCE, post(sources::post_delivery))
        .with_state(state)
}

/// The whole API as `sluice serve` mounts it: ingest and query routes sharing one authenticator
/// and one set of buckets, the webhook delivery route, plus `GET /healthz` and `GET /openapi.json`
/// (no auth).
pub fn app(
    ingest: Arc<IngestService>,
    query: Arc<QueryService>,
    feed: Arc<FeedState>,
    deliveries: Arc<DeliveryService>,
    auth: Auth,
    config: &HttpConfig,
) -> Router {
    let guard = guard(auth, config);
    let routes = ingest_routes(ingest, &guard, config)
        .merge(query_routes(query, feed, &guard))
        .merge(source_routes(deliveries, config))
        .route(openapi::HEALTHZ, get(openapi::healthz))
        .route(openapi::OPENAPI, get(openapi::serve_openapi));
    finish(routes, config, true)
}
