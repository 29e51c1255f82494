//! The functions' metrics: the names `sluice serve` exports as Prometheus text, here as
//! CloudWatch Embedded Metric Format documents on standard output (Lambda sends them to the
//! function's log group, where CloudWatch extracts the metrics), flushed once per invocation,
//! in the namespace `SLUICE_METRICS_NAMESPACE` (default `Sluice`) with the dimension
//! `function` besides each metric's own labels.

use crate::InitError;
use sluice_host::env::{self, Lookup, vars};
pub use sluice_host::metrics::Emf;

/// The CloudWatch namespace when `SLUICE_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "Sluice";

/// `SLUICE_METRICS_NAMESPACE`, or [`DEFAULT_NAMESPACE`].
pub fn namespace(env: Lookup<'_>) -> String {
    env::optional(env, vars::METRICS_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Installs the EMF collector for `function` (`authorizer`, `ingest`, `process`, `query`).
pub fn install(namespace: &str, function: &'static str) -> Result<Emf, InitError> {
    Emf::install(namespace, function).map_err(|e| InitError::Metrics(e.to_string()))
}

/// `router` with the metrics flushed after each response, that is once per invocation.
#[cfg(feature = "http")]
pub fn flushing(router: axum::Router, emf: Emf) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            let res = next.run(req).await;
            emf.flush();
            res
        },
    ))
}
