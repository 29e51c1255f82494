//! `POST /v1/events`: the ingest route, a thin adapter over [`IngestService`].

use crate::admission::ByteBudget;
use crate::body::{read_limited, require_json};
use crate::client_ip::source_ip;
use crate::problem::{Code, Problem};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sluice_core::RequestId;
use sluice_core::ids::IdempotencyKey;
use sluice_core::ingest::{Format, IngestContext, IngestError, IngestService};
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
        IngestError::IdempotencyMismatch => Problem::new(Code::IdempotencyKeyMismatch).detail(
            "this Idempotency-Key (or CloudEvents source and id) was already used with a different request body",
        ),
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

/// The structured-mode media type of one CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// The structured-mode media type of a CloudEvents batch.
pub const CLOUDEVENTS_BATCH_JSON: &str = "application/cloudevents-batch+json";
/// The binary-mode header whose presence makes a request a CloudEvent in binary mode.
const CE_SPECVERSION: &str = "ce-specversion";

/// How the body is laid out, from `Content-Type` (already checked to be JSON) and the `ce-*`
/// headers: structured CloudEvents by media type, binary mode when `ce-specversion` is present,
/// else Sluice's own shape.
fn format(headers: &HeaderMap) -> Result<Format, Problem> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if essence == CLOUDEVENTS_JSON {
        return Ok(Format::CloudEvent);
    }
    if essence == CLOUDEVENTS_BATCH_JSON {
        return Ok(Format::CloudEventBatch);
    }
    if !headers.contains_key(CE_SPECVERSION) {
        return Ok(Format::Native);
    }
    let invalid = |detail: String| Problem::new(Code::InvalidHeader).detail(detail);
    let mut attributes: Vec<(String, String)> = Vec::new();
    for name in headers.keys() {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let mut values = headers.get_all(name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(invalid(format!("send the {name} header once")));
        };
        let value = value
            .to_str()
            .ok()
            .and_then(percent_decode)
            .ok_or_else(|| invalid(format!("{name} is not percent-encoded UTF-8")))?;
        attributes.push((attribute.to_owned(), value));
    }
    Ok(Format::CloudEventBinary(attributes))
}

/// Decodes a binary-mode header value: `%XX` escapes of UTF-8 bytes (CloudEvents HTTP binding
/// §3.1.3.2); `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `POST /v1/events`: one event or a batch in, `202 {"id"}` or `{"ids"}` out.
pub(crate) async fn post_events(State(state): State<Arc<IngestState>>, req: Request) -> Result<Response, Problem> {
    let (mut parts, body) = req.into_parts();
    let principal = principal(&mut parts.extensions)?;
    let request_id = request_id(&mut parts.extensions);
    require_json(&parts.headers)?;
    let format = format(&parts.headers)?;
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
        trace: parts.extensions.get::<sluice_core::trace::TraceContext>().cloned(),
    };
    match state.service.ingest_as(&ctx, &format, &bytes).await {
        Ok(accepted) => {
            let n = match &accepted {
                sluice_core::ingest::Accepted::One { .. } => 1,
                sluice_core::ingest::Accepted::Many { ids } => ids.len() as u64,
            };
            metrics::counter!(sluice_core::metrics::ACCEPTED).increment(n);
            Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
        }
        Err(e) => Err(ingest_problem(e, &ctx.request_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t1_binary_mode_header_values_are_percent_decoded_strictly() {
        assert_eq!(percent_decode("a%20b%C3%A9").as_deref(), Some("a bé"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%2", "%zz", "%C3", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
