//! The admin listener of `sluice serve` (`[admin] listen`, loopback by default): Prometheus
//! metrics at `/metrics` and, for operators, the console. It is a listener of its own so that
//! nothing on it ever answers on the public listener, and the public listener's behaviour and
//! speed do not change (E-1, S-1 for operators).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sluice_host::metrics::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the exporter's histograms are drained (its upkeep).
const UPKEEP: Duration = Duration::from_secs(5);

/// What the admin routes share.
pub struct AdminState {
    /// Renders the Prometheus text.
    pub prometheus: PrometheusHandle,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
}

/// `GET /metrics`: the Prometheus text format (version 0.0.4).
async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let mut res = state.prometheus.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// Runs the exporter's upkeep until `stop`.
pub async fn upkeep(handle: PrometheusHandle, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(UPKEEP) => handle.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}
