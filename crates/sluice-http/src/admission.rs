//! Admission (D-2): how many requests are handled at once, bounded by count and by the body
//! bytes they declare, so memory stays bounded however many connections are open.
//!
//! A request beyond either bound waits, unread, for room: while it waits it holds only its head.
//! Weighing by bytes lets many small requests share the budget (each send waits for its group
//! commit, so more of them in flight means more sends per fsync) while a few large batches fill
//! it, as Kafka's `queued.max.request.bytes` does. Both semaphores are fair, so a large request
//! is not starved by a stream of small ones.

use crate::problem::{Code, Problem};
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The least a request weighs, in bytes: its head, its parsed envelope and its response cost
/// memory however small its body is.
pub(crate) const MIN_WEIGHT: u32 = 1024;

/// The bounds of one router, shared by all its routes.
#[derive(Debug)]
pub(crate) struct Admission {
    requests: Option<Arc<Semaphore>>,
    bytes: Option<Arc<Semaphore>>,
    /// The byte budget (a request heavier than the whole budget takes all of it).
    budget: u32,
    /// What a request without a usable `Content-Length` may still send.
    max_body: u32,
}

impl Admission {
    /// At most `requests` requests (0: no count bound) declaring at most `bytes` body bytes
    /// (0: no byte bound); `max_body` is the largest body the routes read.
    pub(crate) fn new(requests: usize, bytes: usize, max_body: usize) -> Option<Self> {
        if requests == 0 && bytes == 0 {
            return None;
        }
        let budget = u32::try_from(bytes).unwrap_or(u32::MAX).max(MIN_WEIGHT);
        Some(Self {
            requests: (requests > 0).then(|| Arc::new(Semaphore::new(requests.min(Semaphore::MAX_PERMITS)))),
            bytes: (bytes > 0).then(|| Arc::new(Semaphore::new(budget as usize))),
            budget,
            max_body: u32::try_from(max_body).unwrap_or(u32::MAX),
        })
    }

    /// What a request weighs, between [`MIN_WEIGHT`] and the whole budget: the most its body can
    /// hold. That is the body's own upper bound where its framing gives one (hyper ends a body at
    /// its `Content-Length`, and a request with neither length nor chunking has none), else the
    /// declared `Content-Length`, else the largest body the routes read (chunked).
    pub(crate) fn weight(&self, body_upper_bound: Option<u64>, headers: &HeaderMap) -> u32 {
        let declared = body_upper_bound
            .or_else(|| {
                headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<u64>().ok())
            })
            .map_or(self.max_body, |n| u32::try_from(n).unwrap_or(u32::MAX));
        declared.min(self.max_body).clamp(MIN_WEIGHT, self.budget)
    }
}

/// Middleware: waits for room under both bounds, then runs the request holding it.
pub(crate) async fn admit(State(admission): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    let weight = admission.weight(req.body().size_hint().upper(), req.headers());
    // Count first: a request waiting for bytes then holds one slot, not a share of the budget.
    let slot = match &admission.requests {
        Some(s) => match Arc::clone(s).acquire_owned().await {
            Ok(p) => Some(p),
            Err(_) => return closed(),
        },
        None => None,
    };
    let share = match &admission.bytes {
        Some(s) => match Arc::clone(s).acquire_many_owned(weight).await {
            Ok(p) => Some(p),
            Err(_) => return closed(),
        },
        None => None,
    };
    let res = next.run(req).await;
    drop((share, slot));
    res
}

/// The semaphores are never closed; should that change, refuse rather than run unbounded.
fn closed() -> Response {
    Problem::new(Code::Internal).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_length(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn d2_a_request_weighs_its_declared_length_within_floor_and_budget() {
        let a = Admission::new(0, 64 * 1024, 256 * 1024).unwrap();
        let none = HeaderMap::new();
        assert_eq!(a.weight(None, &with_length("10")), MIN_WEIGHT);
        assert_eq!(a.weight(None, &with_length("5000")), 5000);
        // The body's own bound wins over the header (hyper derived it from the framing).
        assert_eq!(a.weight(Some(6000), &with_length("10")), 6000);
        assert_eq!(a.weight(Some(0), &none), MIN_WEIGHT);
        // Heavier than the budget: it takes the whole budget, and still runs (alone).
        assert_eq!(a.weight(None, &with_length("100000")), 64 * 1024);
        // No bound at all (chunked, or a length hyper would refuse anyway): the most it may send.
        assert_eq!(a.weight(None, &none), 64 * 1024);
        assert_eq!(a.weight(None, &with_length("lots")), 64 * 1024);
        let roomy = Admission::new(0, 1 << 20, 8 * 1024).unwrap();
        assert_eq!(roomy.weight(None, &none), 8 * 1024);
        assert_eq!(roomy.weight(None, &with_length("999999")), 8 * 1024);
    }

    #[test]
    fn d2_no_bounds_means_no_admission_step() {
        assert!(Admission::new(0, 0, 1024).is_none());
        let count_only = Admission::new(4, 0, 1024).unwrap();
        assert!(count_only.bytes.is_none());
        assert_eq!(count_only.requests.as_ref().unwrap().available_permits(), 4);
    }
}
