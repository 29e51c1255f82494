//! Request ids and the outermost response step.
//!
//! The `finalize` middleware accepts the caller's `x-request-id` when [`RequestId::parse`] does (a short token
//! that is safe to echo and log), otherwise generates one, and puts it into the request's
//! extensions for handlers and logs. On the way out it sets `x-request-id` on every response and
//! renders every error as problem+json carrying that id, whatever produced it (a handler, axum's
//! 405, a panic).

use crate::problem::{Code, Problem, Rendered};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use sluice_core::RequestId;
use tracing::Instrument as _;

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

/// Middleware: assigns the request id, then finishes the response (see the module docs).
pub(crate) async fn finalize(mut req: Request, next: Next) -> Response {
    let id = request_id_from(req.headers());
    let head = req.method() == Method::HEAD;
    req.extensions_mut().insert(id.clone());
    // Every event logged while handling the request (core's included) carries its id.
    let span = tracing::info_span!("request", request_id = %id);
    let res = next.run(req).instrument(span).await;
    finish(res, &id, head)
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
