//! The access log (R-1, I-1): one `tracing` event per request, target `sluice::access`, emitted
//! when the response is ready.
//!
//! Fields: `request_id`, `method`, `route` (the matched route template, e.g. `/v1/events/{id}`),
//! `path` (the raw path, truncated; never the query string, which may hold a cursor), `status`,
//! `latency_ms`, `tenant` and `key_id` (the public half of the key, when authenticated),
//! `source_ip` and `bytes_in` (body bytes actually read). Never the body and never a credential.

use crate::client_ip::source_ip;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt as _;
use sluice_core::RequestId;
use sluice_core::keys::Principal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The log target of the access log.
pub const ACCESS_TARGET: &str = "sluice::access";

/// Longest path logged.
const MAX_PATH: usize = 256;

/// Middleware: logs the request once its response is ready.
pub(crate) async fn access_log(req: Request, next: Next) -> Response {
    // With the access log filtered out (say `log.level = warn`), skip gathering its fields and
    // wrapping the body in a byte counter: that costs an allocation or five on every request.
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        return next.run(req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let mut path = req.uri().path().to_owned();
    if path.len() > MAX_PATH {
        let mut cut = MAX_PATH;
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        path.truncate(cut);
    }
    let request_id = req.extensions().get::<RequestId>().cloned();
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
    let res = next.run(Request::from_parts(parts, body)).await;
    let principal = res.extensions().get::<Principal>();
    tracing::info!(
        target: ACCESS_TARGET,
        request_id = request_id.as_ref().map(RequestId::as_str),
        method = %method,
        route = route.as_deref().unwrap_or("<unmatched>"),
        path = %path,
        status = res.status().as_u16(),
        latency_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        tenant = principal.map(|p| p.tenant.as_str()),
        key_id = principal.map(|p| p.key_id.as_str()),
        source_ip = ip.as_deref(),
        bytes_in = bytes_in.load(Ordering::Relaxed),
        "request"
    );
    res
}
