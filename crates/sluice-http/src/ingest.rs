//! `POST /v1/events`: the ingest route, a thin adapter over [`IngestService`].

use crate::admission::ByteBudget;
use crate::body::{read_limited, require_json};
use crate::client_ip::source_ip;
use crate::problem::{Code, Problem};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_core::RequestId;
use sluice_core::ids::IdempotencyKey;
use sluice_core::ingest::{IngestContext, IngestError, IngestService};
use sluice_core::keys::Principal;
use sluice_core::validate::ValidationError;
use std::sync::Arc;

/// The idempotency header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Seconds a client should wait after a 503 from the queue.
const QUEUE_RETRY_AFTER: u64 = 5;

/// What the ingest route needs.
pub(crate) struct IngestState {
    pub(crate) service: Arc<IngestService>,
    pub(crate) max_body_bytes: usize,
    /// How long a body may take to arrive (zero: no limit).
    pub(crate) body_timeout: std::time::Duration,
    /// Body bytes in work at once (D-2), if bounded.
    pub(crate) budget: Option<ByteBudget>,
}

/// The authenticated principal, put there by the guard. Taken, not cloned: nothing reads it from
/// the request after the handler.
pub(crate) fn principal(extensions: &mut Extensions) -> Result<Principal, Problem> {
    extensions.remove::<Principal>().ok_or_else(crate::auth::unauthorized)
}

/// The request id, put there by the outermost layer (which keeps its own copy for the response).
pub(crate) fn request_id(extensions: &mut Extensions) -> RequestId {
    extensions.remove::<RequestId>().unwrap_or_else(RequestId::generate)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Problem> {
    let invalid = || {
        Problem::new(Code::InvalidHeader)
            .detail("Idempotency-Key must be one value of 1 to 255 visible ASCII characters")
    };
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let s = value.to_str().map_err(|_| invalid())?;
    IdempotencyKey::parse(s).map(Some).map_err(|_| invalid())
}

pub(crate) fn ingest_problem(e: IngestError, request_id: &RequestId) -> Problem {
    match e {
        IngestError::Invalid(ValidationError::Json(json)) => Problem::new(Code::MalformedJson).detail(json.to_string()),
        IngestError::Invalid(ValidationError::Invalid(violations)) => Problem::new(Code::ValidationFailed)
            .detail("the request body breaks the event contract; see violations")
            .violations(violations),
        IngestError::IdempotencyMismatch => Problem::new(Code::IdempotencyKeyMismatch)
            .detail("this Idempotency-Key was already used with a different request body"),
        IngestError::TooLarge { what, limit } => Problem::new(Code::PayloadTooLarge).detail(format!(
            "{what} is larger than {limit} bytes once sealed; send less at once"
        )),
        IngestError::Overloaded => {
            tracing::warn!(target: "sluice::http", request_id = %request_id, "queue over its depth bound");
            Problem::new(Code::QueueUnavailable)
                .detail("the pipeline is busy; retry later")
                .retry_after(QUEUE_RETRY_AFTER)
        }
        IngestError::Unavailable(reason) => {
            tracing::error!(target: "sluice::http", request_id = %request_id, %reason, "ingest failed");
            Problem::new(Code::QueueUnavailable)
                .detail("the events could not be queued; retry later")
                .retry_after(QUEUE_RETRY_AFTER)
        }
    }
}

/// `POST /v1/events`: one event or a batch in, `202 {"id"}` or `{"ids"}` out.
pub(crate) async fn post_events(State(state): State<Arc<IngestState>>, req: Request) -> Result<Response, Problem> {
    let (mut parts, body) = req.into_parts();
    let principal = principal(&mut parts.extensions)?;
    let request_id = request_id(&mut parts.extensions);
    require_json(&parts.headers)?;
    let idempotency_key = idempotency_key(&parts.headers)?;
    let bytes = read_limited(&parts.headers, body, state.max_body_bytes, state.body_timeout).await?;
    // Held until the answer is ready: parsing, sealing and the send are where the memory goes.
    let _share = match &state.budget {
        Some(budget) => Some(budget.hold(bytes.len()).await?),
        None => None,
    };
    let ctx = IngestContext {
        tenant: principal.tenant,
        request_id,
        source_ip: source_ip(&parts.extensions),
        idempotency_key,
    };
    match state.service.ingest(&ctx, &bytes).await {
        Ok(accepted) => Ok((StatusCode::ACCEPTED, Json(accepted)).into_response()),
        Err(e) => Err(ingest_problem(e, &ctx.request_id)),
    }
}
