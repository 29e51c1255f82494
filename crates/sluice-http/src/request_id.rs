//! Request ids and the outermost response step.
//!
//! The [`FinalizeLayer`] accepts the caller's `x-request-id` when [`RequestId::parse`] does (a short token
//! that is safe to echo and log), otherwise generates one, and puts it into the request's
//! extensions for handlers and logs. On the way out it sets `x-request-id` on every response and
//! renders every error as problem+json carrying that id, whatever produced it (a handler, axum's
//! 405, a panic).

use crate::problem::{Code, Problem, Rendered};
use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use sluice_core::RequestId;
use sluice_core::trace::TraceContext;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

/// The request id header, in and out.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's request id if acceptable, else a fresh one.
pub fn request_id_from(headers: &HeaderMap) -> RequestId {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| RequestId::parse(s).ok())
        .unwrap_or_else(RequestId::generate)
}

/// The W3C trace header, in.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A child of the caller's `traceparent` if it is a valid one, else a new trace.
pub fn trace_from(headers: &HeaderMap) -> TraceContext {
    let mut values = headers.get_all(&TRACEPARENT).iter();
    match (values.next(), values.next()) {
        // Exactly one valid header (the specification: several are invalid).
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(TraceContext::parse_traceparent)
            .map_or_else(TraceContext::generate, |t| t.child()),
        _ => TraceContext::generate(),
    }
}

/// The outermost layer: assigns the request id, then finishes the response (see the module docs).
///
/// A tower layer rather than `axum::middleware::from_fn`: `from_fn` boxes a clone of the inner
/// service and the whole future chain on every request, and the hot ingest path paid for that once
/// per layer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FinalizeLayer;

impl<S> Layer<S> for FinalizeLayer {
    type Service = Finalize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Finalize { inner }
    }
}

/// The service [`FinalizeLayer`] wraps around the routes.
#[derive(Debug, Clone)]
pub(crate) struct Finalize<S> {
    inner: S,
}

impl<S, B> Service<Request> for Finalize<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FinalizeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = request_id_from(req.headers());
        let head = req.method() == Method::HEAD;
        req.extensions_mut().insert(id.clone());
        // The trace: one a host put there (Lambda, from X-Ray), the caller's `traceparent`, or
        // a new one; this hop becomes its own span of it.
        let trace = match req.extensions().get::<TraceContext>() {
            Some(t) => t.child(),
            None => trace_from(req.headers()),
        };
        req.extensions_mut().insert(trace.clone());
        // Every event logged while handling the request (core's included) carries its id.
        let span = tracing::info_span!("request", request_id = %id, trace_id = %trace.trace_id());
        FinalizeFuture {
            inner: self.inner.call(req).instrument(span),
            id: Some(id),
            head,
        }
    }
}

pin_project! {
    /// The response of [`Finalize`], finished once the inner service answers.
    pub(crate) struct FinalizeFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        id: Option<RequestId>,
        head: bool,
    }
}

impl<F, B> Future for FinalizeFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = ready!(this.inner.poll(cx));
        // Polled again after `Ready` only by a broken executor; a fresh id still beats a panic.
        let id = this.id.take().unwrap_or_else(RequestId::generate);
        Poll::Ready(Ok(finish(res.map(Body::new), &id, *this.head)))
    }
}

fn finish(res: Response, id: &RequestId, head: bool) -> Response {
    let (mut parts, body) = res.into_parts();
    let problem = match parts.extensions.remove::<Problem>() {
        Some(p) => Some(p),
        None if parts.status.as_u16() >= 400 && parts.extensions.get::<Rendered>().is_none() => {
            Some(Problem::new(Code::for_status(parts.status)))
        }
        None => None,
    };
    let mut body = body;
    if let Some(p) = problem {
        let (rendered, rendered_body) = p.render(id.as_str()).into_parts();
        parts.status = rendered.status;
        parts.headers.remove(header::CONTENT_LENGTH);
        for (name, value) in &rendered.headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        parts.extensions.insert(Rendered);
        body = rendered_body;
    }
    if head {
        body = Body::empty();
    }
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        parts.headers.insert(X_REQUEST_ID, v);
    }
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    parts
        .headers
        .insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Response::from_parts(parts, body)
}
