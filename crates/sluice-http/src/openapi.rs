//! The OpenAPI 3.0.3 document of the HTTP contract, hand-written in `openapi.json` beside this
//! file and served at `GET /openapi.json`, and the list of routes it must cover.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The OpenAPI 3.0.3 document served at `GET /openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// One route the routers serve: method (lower case, as OpenAPI spells it) and path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// `get`, `post`, ...
    pub method: &'static str,
    /// The path template, e.g. `/v1/events/{id}`.
    pub path: &'static str,
}

/// `/v1/events`.
pub const EVENTS: &str = "/v1/events";
/// `/v1/events/{id}`.
pub const EVENT: &str = "/v1/events/{id}";
/// `/healthz`.
pub const HEALTHZ: &str = "/healthz";
/// `/openapi.json`.
pub const OPENAPI: &str = "/openapi.json";
/// `/v1/feed`.
pub const FEED: &str = "/v1/feed";
/// `/v1/feed/stream`.
pub const FEED_STREAM: &str = "/v1/feed/stream";
/// `/v1/erasures`.
pub const ERASURES: &str = "/v1/erasures";
/// `/v1/erasures/{id}`.
pub const ERASURE: &str = "/v1/erasures/{id}";
/// A webhook source's delivery URL.
pub const SOURCE: &str = "/v1/sources/{source_id}";

/// Every route [`crate::app`] serves; the document describes exactly these.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: EVENTS,
    },
    Route {
        method: "get",
        path: EVENTS,
    },
    Route {
        method: "get",
        path: EVENT,
    },
    Route {
        method: "delete",
        path: EVENT,
    },
    Route {
        method: "get",
        path: FEED,
    },
    Route {
        method: "get",
        path: FEED_STREAM,
    },
    Route {
        method: "post",
        path: ERASURES,
    },
    Route {
        method: "get",
        path: ERASURE,
    },
    Route {
        method: "post",
        path: SOURCE,
    },
    Route {
        method: "get",
        path: HEALTHZ,
    },
    Route {
        method: "get",
        path: OPENAPI,
    },
];

/// `GET /openapi.json`.
pub(crate) async fn serve_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        OPENAPI_JSON,
    )
        .into_response()
}

/// `GET /healthz`: liveness only; it touches no dependency, so it cannot be used to load them.
pub(crate) async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}
