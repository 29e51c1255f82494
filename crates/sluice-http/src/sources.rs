//! `POST /v1/sources/{source_id}`: provider-signed webhook deliveries (S-1, S-5), a thin adapter
//! over [`DeliveryService`].
//!
//! No bearer credential: the provider signs the raw body with the source's secret, and the
//! signature is the authentication. Before any secret is read, failed deliveries are limited per
//! source id and per client address (a flood of forged signatures costs a 429, not a store read
//! and an HMAC each); every delivery then spends from its source's token bucket (429 per
//! source), the same buckets as API keys'. Every authentication failure is the one 401 an API
//! key's failure gets.

use crate::auth::{FailureLimit, unauthorized, whole_secs};
use crate::body::{read_limited, require_json};
use crate::client_ip::source_ip;
use crate::ingest::{ingest_problem, request_id};
use crate::problem::{Code, Problem};
use crate::throttle::Throttle;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_core::SourceId;
use sluice_core::deliveries::{Delivered, DeliveryContext, DeliveryError, DeliveryService};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What the delivery route needs.
pub(crate) struct DeliveryState {
    pub(crate) service: Arc<DeliveryService>,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) throttle: Throttle,
    pub(crate) failures_by_source: Option<FailureLimit>,
    pub(crate) failures_by_address: Option<FailureLimit>,
}

/// Headers as the verifier reads them: lower-case names, and a header sent twice dropped, so an
/// ambiguous signature never verifies.
fn single_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .keys()
        .filter(|name| headers.get_all(*name).iter().count() == 1)
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

fn blocked(limit: &Option<FailureLimit>, key: &str) -> Option<Duration> {
    limit
        .as_ref()
        .filter(|l| l.any_blocked())
        .and_then(|l| l.blocked_for(key))
}

/// `POST /v1/sources/{source_id}`: a signed delivery in, `202 {"id"}` out (Slack's
/// `url_verification`: `200 {"challenge"}`).
pub(crate) async fn post_delivery(
    State(state): State<Arc<DeliveryState>>,
    Path(source_id): Path<String>,
    req: Request,
) -> Result<Response, Problem> {
    let (mut parts, body) = req.into_parts();
    let request_id = request_id(&mut parts.extensions);
    if SourceId::parse(&source_id).is_err() {
        // Not even shaped like a source id: refused as an unknown source is, unread.
        return Err(unauthorized());
    }
    let address = source_ip(&parts.extensions).unwrap_or_else(|| "unknown".to_owned());
    if let Some(wait) =
        blocked(&state.failures_by_source, &source_id).or_else(|| blocked(&state.failures_by_address, &address))
    {
        sluice_core::metrics::throttled("address");
        return Err(Problem::new(Code::Throttled)
            .detail("too many failed deliveries; retry after the indicated number of seconds")
            .retry_after(whole_secs(wait)));
    }
    state.throttle.check(&format!("source:{source_id}"), "source")?;
    require_json(&parts.headers)?;
    let bytes = read_limited(&parts.headers, body, state.max_body_bytes, state.body_timeout).await?;
    let ctx = DeliveryContext {
        source_id: source_id.clone(),
        request_id: request_id.clone(),
        source_ip: source_ip(&parts.extensions),
        trace: parts.extensions.get::<sluice_core::trace::TraceContext>().cloned(),
    };
    match state
        .service
        .deliver(ctx, &single_headers(&parts.headers), &bytes)
        .await
    {
        Ok(Delivered::Accepted(accepted)) => {
            metrics::counter!(sluice_core::metrics::ACCEPTED).increment(1);
            Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
        }
        Ok(Delivered::Challenge(challenge)) => {
            Ok((StatusCode::OK, Json(serde_json::json!({ "challenge": challenge }))).into_response())
        }
        Err(DeliveryError::Unauthenticated(why)) => {
            // The reason stays in the log; the caller gets what every failure gets.
            tracing::info!(target: "sluice::http", request_id = %request_id, %source_id, reason = why, "delivery refused");
            metrics::counter!(sluice_core::metrics::AUTH_FAILURES).increment(1);
            for (limit, key) in [
                (&state.failures_by_source, &source_id),
                (&state.failures_by_address, &address),
            ] {
                if let Some(limit) = limit {
                    limit.record(key);
                }
            }
            Err(unauthorized())
        }
        Err(DeliveryError::Malformed(detail)) => Err(Problem::new(Code::MalformedJson).detail(detail)),
        Err(DeliveryError::Invalid(detail)) => Err(Problem::new(Code::ValidationFailed).detail(detail)),
        Err(DeliveryError::Ingest(e)) => Err(ingest_problem(e, &request_id)),
        Err(DeliveryError::Unavailable(reason)) => {
            tracing::error!(target: "sluice::http", request_id = %request_id, %reason, "source store unavailable");
            Err(Problem::new(Code::AuthUnavailable)
                .detail("the delivery cannot be verified right now; retry later")
                .retry_after(5))
        }
    }
}
