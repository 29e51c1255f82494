//! The metrics exporters, one per host, over the names in [`sluice_core::metrics`]: Prometheus
//! text for `sluice serve` (rendered on its admin listener), CloudWatch Embedded Metric Format for
//! the Lambda functions (one document per label set, written to standard output, which Lambda
//! sends to the function's log group, once per invocation).

pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use sluice_core::metrics::{self as names, Kind};
use std::io::Write;

/// Why an exporter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A global recorder was already installed.
    #[error("a metrics recorder is already installed")]
    AlreadyInstalled,
    /// The exporter refused its settings.
    #[error("metrics exporter: {0}")]
    Exporter(String),
}

/// Histogram buckets for durations, seconds: 0.5 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Histogram buckets for group-commit sizes (jobs per transaction).
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Installs the Prometheus recorder as the global one and returns the handle that renders the
/// text format. Histograms get buckets (not summaries), so they aggregate across scrapes; call
/// [`PrometheusHandle::run_upkeep`] every few seconds (`sluice serve` does).
pub fn install_prometheus() -> Result<PrometheusHandle, MetricsError> {
    let mut builder = PrometheusBuilder::new();
    for &(name, kind, unit, _) in names::ALL {
        if kind == Kind::Histogram {
            let buckets = if unit == "seconds" {
                SECONDS_BUCKETS
            } else {
                SIZE_BUCKETS
            };
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        }
    }
    let handle = builder.install_recorder().map_err(|e| match e {
        metrics_exporter_prometheus::BuildError::FailedToSetGlobalRecorder(_) => MetricsError::AlreadyInstalled,
        other => MetricsError::Exporter(other.to_string()),
    })?;
    names::describe();
    Ok(handle)
}

/// The EMF collector of one Lambda function: installed as the global recorder, flushed by
/// [`Emf::flush`] after each invocation.
#[derive(Clone, Copy)]
pub struct Emf(&'static metrics_cloudwatch_embedded::Collector);

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf").finish_non_exhaustive()
    }
}

impl Emf {
    /// Installs the collector: metrics go to CloudWatch namespace `namespace`, each with the
    /// dimension `function` = `function` (`authorizer`, `ingest`, `process`, `query`) besides its
    /// own labels.
    pub fn install(namespace: &str, function: &'static str) -> Result<Self, MetricsError> {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace.to_owned())
            .with_dimension("function", function)
            .init()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        names::describe();
        Ok(Self(collector))
    }

    /// Writes what was recorded since the last flush (one EMF document per label set) to
    /// `out`, and starts counting again. A write failure is logged, never fatal: metrics must
    /// not fail an invocation.
    pub fn flush_to(&self, out: impl Write) {
        if let Err(e) = self.0.flush(out) {
            tracing::warn!(error = %e, "metrics could not be written");
        }
    }

    /// [`Emf::flush_to`] standard output, where Lambda reads EMF documents from.
    pub fn flush(&self) {
        self.flush_to(std::io::stdout().lock());
    }
}
