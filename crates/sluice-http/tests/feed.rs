//! The feed routes on the shared router: `feed_expired` (410) with `earliest_after`, the
//! stream's bound on a slow consumer (D-2), and no stream where the host cannot stream.

mod common;

use axum::Router;
use axum::body::Body;
use common::{Harness, bearer, req, send};
use http_body_util::BodyExt;
use serde_json::json;
use sluice_core::feed::{FeedService, Retention};
use sluice_http::{FeedSettings, FeedState, HttpConfig};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tower::ServiceExt;

/// The harness's router with a feed that can stream: `notify` as `sluice serve` has it.
fn streaming_app(h: &Harness, settings: FeedSettings) -> Router {
    let service = FeedService::new(
        h.store.clone(),
        Retention::default(),
        Arc::new(sluice_core::clock::SystemClock),
    );
    let feed = FeedState::new(Arc::new(service), Some(Arc::new(tokio::sync::Notify::new())), settings);
    sluice_http::app(
        h.ingest.clone(),
        h.query.clone(),
        feed,
        h.deliveries.clone(),
        h.auth(),
        &HttpConfig::default(),
    )
}

fn seed_events(h: &Harness, n: usize) {
    for i in 0..n {
        h.seed("acme", "a", json!({ "i": i }));
    }
}

fn ids_in(sse: &str) -> Vec<u64> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn i3_an_after_below_expired_entries_is_410_with_the_earliest_valid_after() {
    let h = Harness::new();
    let t = common::tenant("acme");
    let now = OffsetDateTime::now_utc();
    for (ms, expires_at) in [(0, None), (1, Some(now - time::Duration::seconds(1))), (2, None)] {
        let mut e = sluice_testkit::event(
            &t,
            "a",
            now - time::Duration::minutes(1) + time::Duration::milliseconds(ms),
        );
        e.expires_at = expires_at;
        h.store.inner.seed(e);
    }
    let app = h.app();
    let r = send(
        &app,
        req("GET", "/v1/feed?after=1")
            .header("authorization", bearer(&h.acme))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.code(), "feed_expired");
    assert_eq!(r.json()["earliest_after"], 2, "{}", r.text());
    let ok = send(
        &app,
        req("GET", "/v1/feed?after=2")
            .header("authorization", bearer(&h.acme))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200);
    let from_start = send(
        &app,
        req("GET", "/v1/feed?after=0")
            .header("authorization", bearer(&h.acme))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(from_start.status, 200, "after=0 starts at the oldest kept entry");
    let seqs: Vec<u64> = from_start.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 3]);
}

#[tokio::test]
async fn d2_a_stream_whose_client_takes_nothing_is_closed_and_resumes_by_id() {
    let h = Harness::new();
    seed_events(&h, 10);
    let app = streaming_app(
        &h,
        FeedSettings {
            slow_consumer: Duration::from_millis(300),
            stream_buffer: 2,
            ..FeedSettings::default()
        },
    );
    let stream = || {
        req("GET", "/v1/feed/stream?after=0")
            .header("authorization", bearer(&h.acme))
            .body(Body::empty())
            .unwrap()
    };
    let res = app.clone().oneshot(stream()).await.unwrap();
    assert_eq!(res.status(), 200);
    // The client reads nothing for a while: the server gives up on it instead of buffering.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let body = tokio::time::timeout(Duration::from_secs(5), res.into_body().collect())
        .await
        .expect("a slow stream is closed, not held open")
        .unwrap()
        .to_bytes();
    let first = ids_in(&String::from_utf8_lossy(&body));
    assert!(!first.is_empty() && first.len() < 10, "{first:?}");
    assert_eq!(first, (1..=first.len() as u64).collect::<Vec<_>>());
    // Resuming with Last-Event-ID gives the rest, each once.
    let resumed = req("GET", "/v1/feed/stream")
        .header("authorization", bearer(&h.acme))
        .header("last-event-id", first.last().unwrap().to_string())
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(resumed).await.unwrap();
    let mut body = res.into_body();
    let mut text = String::new();
    while ids_in(&text).len() < 10 - first.len() {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the rest arrives")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let rest = ids_in(&text);
    assert_eq!(rest, ((first.len() as u64 + 1)..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_host_that_cannot_stream_answers_404_and_points_at_the_long_poll() {
    let h = Harness::new();
    let r = send(
        &h.app(),
        req("GET", "/v1/feed/stream")
            .header("authorization", bearer(&h.acme))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("wait="), "{}", r.text());
}

#[tokio::test]
async fn i3_erasure_requests_are_checked_before_anything_changes() {
    let h = Harness::new();
    let app = h.app();
    for (ct, body, status) in [
        ("text/plain", r#"{"subject":"u"}"#, 415),
        ("application/json", "{", 400),
        ("application/json", r#"{"subject":""}"#, 400),
        ("application/json", r#"{"subject":"u","extra":1}"#, 400),
        ("application/json", r#"{"subject":"a\u0000b"}"#, 400),
    ] {
        let r = send(
            &app,
            req("POST", "/v1/erasures")
                .header("authorization", bearer(&h.acme))
                .header("content-type", ct)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text());
    }
    // The media-type rule is the ingest route's (`body::require_json`): no Content-Type, a
    // compressed body or two Content-Type headers are refused as there.
    let body = r#"{"subject":"u"}"#;
    let without_type = req("POST", "/v1/erasures").header("authorization", bearer(&h.acme));
    let gzipped = req("POST", "/v1/erasures")
        .header("authorization", bearer(&h.acme))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip");
    let two_types = req("POST", "/v1/erasures")
        .header("authorization", bearer(&h.acme))
        .header("content-type", "application/json")
        .header("content-type", "text/plain");
    for (what, builder, status) in [
        ("no type", without_type, 415),
        ("gzip", gzipped, 415),
        ("two types", two_types, 400),
    ] {
        let r = send(&app, builder.body(Body::from(body)).unwrap()).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text());
    }
    let big = format!(r#"{{"subject":"{}"}}"#, "x".repeat(5000));
    let r = send(
        &app,
        req("POST", "/v1/erasures")
            .header("authorization", bearer(&h.acme))
            .header("content-type", "application/json")
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 413);
    for id in ["era_nope", "x", "era_01J0000000000000000000000A"] {
        let r = send(
            &app,
            req("GET", &format!("/v1/erasures/{id}"))
                .header("authorization", bearer(&h.acme))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 404, "{id}");
    }
}

#[tokio::test]
async fn i3_a_stream_asked_to_start_below_expired_entries_is_410_not_an_empty_stream() {
    let h = Harness::new();
    let t = common::tenant("acme");
    let now = OffsetDateTime::now_utc();
    for (ms, expires_at) in [(0, None), (1, Some(now - time::Duration::seconds(1))), (2, None)] {
        let mut e = sluice_testkit::event(
            &t,
            "a",
            now - time::Duration::minutes(1) + time::Duration::milliseconds(ms),
        );
        e.expires_at = expires_at;
        h.store.inner.seed(e);
    }
    let app = streaming_app(&h, FeedSettings::default());
    let r = send(
        &app,
        req("GET", "/v1/feed/stream")
            .header("authorization", bearer(&h.acme))
            .header("last-event-id", "1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.code(), "feed_expired");
    assert_eq!(r.json()["earliest_after"], 2);
}
