//! The access log (R-1, I-1): one `tracing` event per request, target `sluice::access`, emitted
//! when the response is ready.
//!
//! Level: `INFO` for a request answered below 400, `WARN` for a refusal or failure, so a host that
//! has another access log in front (API Gateway's, on Lambda) can keep only the failures, whose
//! lines carry what the gateway's do not (the route, the latency, the bytes read).
//!
//! Fields: `request_id`, `trace_id` (W3C, R-1), `method`, `route` (the matched route template, e.g. `/v1/events/{id}`),
//! `path` (the raw path, truncated; never the query string, which may hold a cursor), `status`,
//! `latency_ms`, `tenant` and `key_id` (the public half of the key, when authenticated),
//! `source_ip` and `bytes_in` (body bytes actually read). Never the body and never a credential.

use crate::client_ip::source_ip;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use futures::StreamExt as _;
use pin_project_lite::pin_project;
use sluice_core::RequestId;
use sluice_core::keys::Principal;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower::{Layer, Service};

/// The log target of the access log.
pub const ACCESS_TARGET: &str = "sluice::access";

/// Longest path logged.
const MAX_PATH: usize = 256;

/// Logs every request once its response is ready; a tower layer, so a request pays no boxing for
/// it (and nothing at all while the access log is filtered out).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// The service [`AccessLogLayer`] wraps around the routes.
#[derive(Debug, Clone)]
pub(crate) struct AccessLog<S> {
    inner: S,
}

impl<S, B> Service<Request> for AccessLog<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // With the access log filtered out (say `log.level = error`), skip gathering its fields and
        // wrapping the body in a byte counter: that costs an allocation or five on every request.
        // The metrics are still counted: they do not depend on the log level.
        if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::WARN) {
            let record = Record::metrics_only(&req);
            return AccessLogFuture {
                inner: self.inner.call(req),
                record: Some(record),
            };
        }
        let (req, record) = Record::start(req);
        AccessLogFuture {
            inner: self.inner.call(req),
            record: Some(record),
        }
    }
}

pin_project! {
    /// The response of [`AccessLog`], logged once the inner service answers.
    pub(crate) struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        record: Option<Record>,
    }
}

impl<F, B> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = ready!(this.inner.poll(cx));
        if let Some(record) = this.record.take() {
            record.emit(&res);
        }
        Poll::Ready(Ok(res))
    }
}

/// What the access log knows about a request before its response.
struct Record {
    start: Instant,
    method: Method,
    route: Option<String>,
    path: String,
    request_id: Option<RequestId>,
    trace_id: Option<String>,
    ip: Option<String>,
    bytes_in: Arc<AtomicU64>,
    /// Whether to write the log line (else only the metrics).
    log: bool,
}

/// Ingest routes, whose refusals count as rejected events.
fn is_ingest(method: &Method, route: &str) -> bool {
    *method == Method::POST && (route == crate::openapi::EVENTS || route == crate::openapi::SOURCE)
}

/// A status code as a label value: the codes Sluice answers, and `other`.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        408 => "408",
        409 => "409",
        410 => "410",
        411 => "411",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        431 => "431",
        500 => "500",
        501 => "501",
        503 => "503",
        504 => "504",
        _ => "other",
    }
}

impl Record {
    /// What the metrics need: the start, the method and the route.
    fn metrics_only(req: &Request) -> Self {
        Self {
            start: Instant::now(),
            method: req.method().clone(),
            route: req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()),
            path: String::new(),
            request_id: None,
            trace_id: None,
            ip: None,
            bytes_in: Arc::default(),
            log: false,
        }
    }

    /// Gathers the request's fields and counts its body bytes as the handler reads them.
    fn start(req: Request) -> (Request, Self) {
        let start = Instant::now();
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
        let mut path = req.uri().path().to_owned();
        sluice_core::text::truncate_at_char_boundary(&mut path, MAX_PATH);
        let request_id = req.extensions().get::<RequestId>().cloned();
        let trace_id = req
            .extensions()
            .get::<sluice_core::trace::TraceContext>()
            .map(|t| t.trace_id().to_owned());
        let ip = source_ip(req.extensions());
        let bytes_in = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&bytes_in);
        let (parts, body) = req.into_parts();
        let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
            if let Ok(bytes) = &chunk {
                counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            chunk
        }));
        let record = Self {
            start,
            method,
            route,
            path,
            request_id,
            trace_id,
            ip,
            bytes_in,
            log: true,
        };
        (Request::from_parts(parts, body), record)
    }

    fn emit<B>(self, res: &Response<B>) {
        let status = res.status().as_u16();
        let elapsed = self.start.elapsed();
        if self.log {
            self.log_line(res, status);
        }
        let route = self.route.unwrap_or_else(|| "<unmatched>".to_owned());
        if status >= 400
            && is_ingest(&self.method, &route)
            && let Some(problem) = res.extensions().get::<crate::problem::Problem>()
        {
            sluice_core::metrics::rejected(problem.code().as_str());
        }
        metrics::histogram!(sluice_core::metrics::REQUEST_DURATION, "route" => route.clone())
            .record(elapsed.as_secs_f64());
        metrics::counter!(sluice_core::metrics::HTTP_REQUESTS, "route" => route, "status" => status_label(status))
            .increment(1);
    }

    fn log_line<B>(&self, res: &Response<B>, status: u16) {
        let principal = res.extensions().get::<Principal>();
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    target: ACCESS_TARGET,
                    $level,
                    request_id = self.request_id.as_ref().map(RequestId::as_str),
                    trace_id = self.trace_id.as_deref(),
                    method = %self.method,
                    route = self.route.as_deref().unwrap_or("<unmatched>"),
                    path = %self.path,
                    status,
                    latency_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX),
                    tenant = principal.map(|p| p.tenant.as_str()),
                    key_id = principal.map(|p| p.key_id.as_str()),
                    source_ip = self.ip.as_deref(),
                    bytes_in = self.bytes_in.load(Ordering::Relaxed),
                    "request"
                )
            };
        }
        if status >= 400 {
            line!(tracing::Level::WARN);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}
