//! The HTTP ceiling: `POST /v1/events` reads the body and answers 202 with a fixed id, doing
//! nothing else. Driven by the same load generator, connections and bodies as `sluice serve`, it
//! bounds what any handler could reach on this machine; Sluice's rate is reported as a fraction
//! of it.

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};

/// Serves the ceiling handler until the process is stopped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = Router::new()
        .route("/v1/events", post(accept))
        .route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app).await
}

async fn accept(body: Bytes) -> (StatusCode, [(header::HeaderName, &'static str); 1], &'static str) {
    // Reading the whole body is the least any real handler does.
    std::hint::black_box(body.len());
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV"}"#,
    )
}
