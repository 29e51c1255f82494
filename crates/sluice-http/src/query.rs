//! `GET /v1/events/{id}` and `GET /v1/events`: the query routes, thin adapters over
//! [`QueryService`]. Another tenant's event is a 404 indistinguishable from an absent one (I-3).

use crate::ingest::{CLOUDEVENTS_JSON, principal, request_id};
use crate::problem::{Code, Problem};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sluice_core::RequestId;
use sluice_core::ports::StoreError;
use sluice_core::query::{QueryError, QueryService};
use std::sync::Arc;

/// Seconds a client should wait after a 503 from the store.
const STORE_RETRY_AFTER: u64 = 5;

/// The 404 of an event that is absent or another tenant's: the same answer either way (I-3).
pub(crate) fn not_found() -> Problem {
    Problem::new(Code::NotFound).detail("no event with this id")
}

fn query_problem(e: QueryError, request_id: &RequestId) -> Problem {
    match e {
        QueryError::NotFound => not_found(),
        QueryError::InvalidParameter { name, message } => {
            Problem::new(Code::InvalidParameter).detail(format!("{name}: {message}"))
        }
        QueryError::Cursor(e) => Problem::new(Code::InvalidCursor).detail(e.to_string()),
        QueryError::Store(StoreError::Unavailable(reason)) => {
            tracing::error!(target: "sluice::http", request_id = %request_id, %reason, "event store unavailable");
            Problem::new(Code::StoreUnavailable)
                .detail("events cannot be read right now; retry later")
                .retry_after(STORE_RETRY_AFTER)
        }
        QueryError::Store(StoreError::Corrupt(reason)) => {
            tracing::error!(target: "sluice::http", request_id = %request_id, %reason, "corrupt item in the event store");
            Problem::new(Code::Internal)
        }
    }
}

/// `GET /v1/events/{id}`.
pub(crate) async fn get_event(
    State(service): State<Arc<QueryService>>,
    id: Result<Path<String>, PathRejection>,
    mut req: Request,
) -> Result<Response, Problem> {
    let principal = principal(req.extensions_mut())?;
    let request_id = request_id(req.extensions_mut());
    let Ok(Path(id)) = id else {
        return Err(not_found());
    };
    let as_cloudevent = wants_cloudevent(req.headers());
    match service.get(&principal.tenant, &id).await {
        Ok(event) if as_cloudevent => Ok((
            [(header::CONTENT_TYPE, HeaderValue::from_static(CLOUDEVENTS_JSON))],
            Json(sluice_core::cloudevents::to_structured(&event)),
        )
            .into_response()),
        Ok(event) => Ok(Json(event).into_response()),
        Err(e) => Err(query_problem(e, &request_id)),
    }
}

/// Whether `Accept` asks for `application/cloudevents+json` (with a non-zero quality); any other
/// `Accept` gets the event in Sluice's own JSON shape, as before.
fn wants_cloudevent(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            essence.eq_ignore_ascii_case(CLOUDEVENTS_JSON) && !refused
        })
}

/// `GET /v1/events?type=&limit=&cursor=`.
pub(crate) async fn list_events(
    State(service): State<Arc<QueryService>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    mut req: Request,
) -> Result<Response, Problem> {
    let principal = principal(req.extensions_mut())?;
    let request_id = request_id(req.extensions_mut());
    let p = crate::feed::params(query, &["type", "limit", "cursor"])?;
    match service
        .list(
            &principal.tenant,
            p.get("type").map(String::as_str),
            p.get("limit").map(String::as_str),
            p.get("cursor").map(String::as_str),
        )
        .await
    {
        Ok(page) => Ok(Json(page).into_response()),
        Err(e) => Err(query_problem(e, &request_id)),
    }
}
