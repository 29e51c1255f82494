//! Metrics on `sluice serve` (issue 17): the admin listener's `/metrics`, scraped and read with a
//! Prometheus text-format parser, moves with accepted, rejected, stored and dead-lettered events;
//! and it never answers on the public listener.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::TestApp;
use serde_json::Value;
use sluice_core::ports::{OutgoingMessage, Queue as _};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// One scrape, parsed.
async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let r = app.client.get(app.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
        .sum()
}

/// The count of observations of histogram `name` with `labels`.
fn histogram_count(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            _ => 0.0,
        })
        .sum()
}

async fn until(app: &TestApp, what: &str, ok: impl Fn(&prometheus_parse::Scrape) -> bool) -> prometheus_parse::Scrape {
    let start = Instant::now();
    loop {
        let s = scrape(app).await;
        if ok(&s) {
            return s;
        }
        assert!(start.elapsed() < WAIT, "{what} never showed in the metrics");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_admin_listener_counts_accepted_rejected_stored_and_dead_lettered_events() {
    let app = TestApp::spawn();
    let before = scrape(&app).await;
    assert_eq!(value(&before, "sluice_events_accepted_total", &[]), 0.0);

    // Accepted: one single event and a batch of three.
    let r = app.post(&app.key, r#"{"type":"order.created","data":{"n":1}}"#).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let batch = r#"[{"type":"a","data":1},{"type":"a","data":2},{"type":"a","data":3}]"#;
    assert_eq!(app.post(&app.key, batch).await.status(), 202);
    // Rejected: a body that is not JSON, and a bad key.
    assert_eq!(app.post(&app.key, "{not json").await.status(), 400);
    assert_eq!(app.post("key_01jabcdefghjkmnpqrstvwxyz0.x", batch).await.status(), 401);
    app.wait_for_event(&app.key, &id, WAIT).await;
    // Dead-lettered: a message in the queue whose signature does not verify.
    let qdb = sluice_embedded::QueueDb::open(&app.data_dir.join("queue.db")).unwrap();
    qdb.queue("events", sluice_embedded::QueueConfig::default())
        .send(OutgoingMessage {
            body: r#"{"v":1,"forged":true}"#.into(),
            attributes: [("signature".to_owned(), "AAAA".to_owned())].into(),
            group: None,
        })
        .await
        .unwrap();

    let s = until(&app, "four stored events and a dead letter", |s| {
        value(s, "sluice_events_stored_total", &[("outcome", "stored")]) >= 4.0
            && value(s, "sluice_events_stored_total", &[("outcome", "dead_lettered")]) >= 1.0
    })
    .await;
    assert_eq!(value(&s, "sluice_events_accepted_total", &[]), 4.0);
    assert_eq!(
        value(&s, "sluice_events_rejected_total", &[("code", "malformed_json")]),
        1.0
    );
    assert_eq!(
        value(&s, "sluice_events_rejected_total", &[("code", "unauthorized")]),
        1.0
    );
    assert_eq!(value(&s, "sluice_auth_failures_total", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "sluice_http_requests_total",
            &[("route", "/v1/events"), ("status", "202")]
        ),
        2.0
    );
    assert!(histogram_count(&s, "sluice_request_duration_seconds", &[("route", "/v1/events")]) >= 4.0);
    assert_eq!(histogram_count(&s, "sluice_stored_latency_seconds", &[]), 4.0);
    assert!(histogram_count(&s, "sluice_group_commit_size", &[("db", "queue")]) >= 1.0);
    // The gauges: the queue drained, the dead letter waiting in the DLQ.
    let s = until(&app, "the DLQ gauge", |s| {
        value(s, "sluice_queue_depth", &[("queue", "dlq")]) >= 1.0
    })
    .await;
    assert_eq!(value(&s, "sluice_queue_depth", &[("queue", "main")]), 0.0);
    assert!(value(&s, "sluice_queue_oldest_age_seconds", &[("queue", "dlq")]) > 0.0);
    // Every series is described (HELP and TYPE lines come with the family).
    for name in [
        "sluice_events_accepted_total",
        "sluice_stored_latency_seconds",
        "sluice_queue_depth",
    ] {
        assert!(s.docs.contains_key(name), "no HELP for {name}");
    }

    // Never on the public listener.
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
