//! The pipeline's metrics: one set of names, recorded once through the `metrics` facade, exported
//! by each host its own way (Prometheus text on `sluice serve`'s admin listener, CloudWatch
//! Embedded Metric Format from the Lambda functions). `docs/metrics.md` documents each.
//!
//! Label values are bounded: problem codes, outcomes, route templates (never a raw path), status
//! codes, throttle scopes, queue names. No tenant label: per-tenant usage is what the usage plans
//! (AWS) and the access log count.

/// Events accepted with 202 (each event of a batch counts).
pub const ACCEPTED: &str = "sluice_events_accepted_total";
/// Requests to an ingest route refused, by `code` (the problem code).
pub const REJECTED: &str = "sluice_events_rejected_total";
/// Records the process step finished, by `outcome`: `stored`, `duplicate`, `retried`,
/// `dead_lettered`.
pub const STORED: &str = "sluice_events_stored_total";
/// HTTP requests, by `route` (the route template) and `status`.
pub const HTTP_REQUESTS: &str = "sluice_http_requests_total";
/// Seconds from a request's arrival to its response, by `route`.
pub const REQUEST_DURATION: &str = "sluice_request_duration_seconds";
/// Seconds from an event's 202 to its being readable.
pub const STORED_LATENCY: &str = "sluice_stored_latency_seconds";
/// Messages waiting in a queue, by `queue` (`main`, `dlq`).
pub const QUEUE_DEPTH: &str = "sluice_queue_depth";
/// Messages received and not yet deleted, by `queue`.
pub const QUEUE_IN_FLIGHT: &str = "sluice_queue_in_flight";
/// Age of the oldest message in a queue, seconds, by `queue` (0 when empty).
pub const QUEUE_OLDEST_AGE: &str = "sluice_queue_oldest_age_seconds";
/// Requests refused by a throttle, by `scope`: `key`, `tenant`, `global`, `quota`, `address`,
/// `source`.
pub const THROTTLED: &str = "sluice_throttled_total";
/// Requests whose credentials were missing or wrong.
pub const AUTH_FAILURES: &str = "sluice_auth_failures_total";
/// Jobs committed together by an embedded database's writer, by `db` (`queue`, `store`).
pub const GROUP_COMMIT_SIZE: &str = "sluice_group_commit_size";

/// Every metric: name, kind, unit and help text, for the exporters' descriptions and the docs.
pub const ALL: &[(&str, Kind, &str, &str)] = &[
    (
        ACCEPTED,
        Kind::Counter,
        "",
        "Events accepted with 202 (each event of a batch counts).",
    ),
    (
        REJECTED,
        Kind::Counter,
        "",
        "Requests to an ingest route refused, by problem code.",
    ),
    (
        STORED,
        Kind::Counter,
        "",
        "Records the process step finished, by outcome.",
    ),
    (
        HTTP_REQUESTS,
        Kind::Counter,
        "",
        "HTTP requests, by route template and status.",
    ),
    (
        REQUEST_DURATION,
        Kind::Histogram,
        "seconds",
        "Time from a request's arrival to its response, by route.",
    ),
    (
        STORED_LATENCY,
        Kind::Histogram,
        "seconds",
        "Time from an event's 202 to its being readable.",
    ),
    (QUEUE_DEPTH, Kind::Gauge, "", "Messages waiting in a queue, by queue."),
    (
        QUEUE_IN_FLIGHT,
        Kind::Gauge,
        "",
        "Messages received and not yet deleted, by queue.",
    ),
    (
        QUEUE_OLDEST_AGE,
        Kind::Gauge,
        "seconds",
        "Age of the oldest message in a queue, by queue.",
    ),
    (
        THROTTLED,
        Kind::Counter,
        "",
        "Requests refused by a throttle, by scope.",
    ),
    (
        AUTH_FAILURES,
        Kind::Counter,
        "",
        "Requests whose credentials were missing or wrong.",
    ),
    (
        GROUP_COMMIT_SIZE,
        Kind::Histogram,
        "",
        "Jobs committed together by an embedded database's writer, by db.",
    ),
];

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

/// Describes every metric to the installed recorder (help text and units).
pub fn describe() {
    for &(name, kind, unit, help) in ALL {
        let unit = (unit == "seconds").then_some(metrics::Unit::Seconds);
        match (kind, unit) {
            (Kind::Counter, _) => metrics::describe_counter!(name, metrics::Unit::Count, help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, metrics::Unit::Count, help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(name, u, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, metrics::Unit::Count, help),
        }
    }
}

/// Counts one refused request of an ingest route.
pub fn rejected(code: &'static str) {
    metrics::counter!(REJECTED, "code" => code).increment(1);
}

/// Counts one throttled request.
pub fn throttled(scope: &'static str) {
    metrics::counter!(THROTTLED, "scope" => scope).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_documented_once_in_docs_metrics_md() {
        let doc = include_str!("../../../docs/metrics.md");
        for &(name, ..) in ALL {
            let row = format!("| `{name}` |");
            assert_eq!(doc.matches(&row).count(), 1, "{name} needs one row in docs/metrics.md");
        }
        let rows = doc.lines().filter(|l| l.starts_with("| `sluice_")).count();
        assert_eq!(
            rows,
            ALL.len(),
            "docs/metrics.md lists a metric the code does not record"
        );
    }
}
