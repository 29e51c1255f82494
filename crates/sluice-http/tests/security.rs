//! Security properties of the HTTP surface, named after the threat they cover.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use serde_json::json;
use sluice_core::validate::Limits;
use sluice_http::HttpConfig;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn s1_missing_key_gets_401_with_www_authenticate() {
    let h = Harness::new();
    let app = h.app();
    for (method, uri) in [
        ("POST", "/v1/events"),
        ("GET", "/v1/events"),
        ("GET", "/v1/events/evt_x"),
    ] {
        let r = send(&app, req(method, uri).body(Body::from("{}")).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(r.code(), "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
}

#[tokio::test]
async fn s1_wrong_key_gets_401() {
    let h = Harness::new();
    let app = h.app();
    let good = h.acme.expose().to_owned();
    let mut wrong_secret = good.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == 'A' { 'B' } else { 'A' });
    let (id, _) = good.split_once('.').unwrap();
    let presented = [
        ("authorization", format!("Bearer {wrong_secret}")),
        ("authorization", format!("Bearer {id}")),
        ("authorization", "Bearer key_00000000000000000000000000.abc".to_owned()),
        ("authorization", format!("Basic {good}")),
        ("authorization", good.clone()),
        ("authorization", "Bearer ".to_owned()),
        ("authorization", format!("Bearer {}", h.expired.expose())),
        ("x-api-key", wrong_secret.clone()),
        ("x-api-key", "x".repeat(600)),
    ];
    let mut bodies = Vec::new();
    for (name, value) in presented {
        let r = send(
            &app,
            req("GET", "/v1/events")
                .header(name, &value)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {value}");
        bodies.push(r.problem_without_request_id());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every failure looks the same: {bodies:?}"
    );
}

#[tokio::test]
async fn s1_a_key_counts_only_as_a_bearer_token() {
    let h = Harness::new();
    let app = h.app();
    // One contract on every host: API Gateway's x-api-key header is not a Sluice credential.
    let r = send(
        &app,
        req("GET", "/v1/events")
            .header("x-api-key", h.acme.expose())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&app, get_as(&h.acme, "/v1/events")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn s1_key_store_outage_gets_503_auth_unavailable() {
    let h = Harness::new();
    h.keys.fail.store(true, Ordering::SeqCst);
    let r = send(&h.app(), get_as(&h.acme, "/v1/events")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "auth_unavailable");
    assert!(r.header("retry-after").is_some());
    assert!(!r.text().contains("SELECT"));
}

#[tokio::test]
async fn i3_other_tenants_event_is_404() {
    let h = Harness::new();
    let app = h.app();
    let theirs = h.seed("evil", "secret", json!({"card": "4111"}));
    let foreign = send(&app, get_as(&h.acme, &format!("/v1/events/{theirs}"))).await;
    let absent = send(&app, get_as(&h.acme, "/v1/events/evt_01J00000000000000000000000")).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(
        foreign.problem_without_request_id(),
        absent.problem_without_request_id()
    );
    assert!(!foreign.text().contains("4111"));
    let own = send(&app, get_as(&h.evil, &format!("/v1/events/{theirs}"))).await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn i3_listing_never_shows_another_tenants_events_or_accepts_their_cursor() {
    let h = Harness::new();
    let app = h.app();
    for i in 0..3 {
        h.seed("evil", "a", json!(i));
    }
    h.seed("acme", "a", json!("mine"));
    let r = send(&app, get_as(&h.acme, "/v1/events")).await;
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 1);
    let evil_page = send(&app, get_as(&h.evil, "/v1/events?limit=1")).await.json();
    let cursor = evil_page["next_cursor"].as_str().unwrap();
    let r = send(&app, get_as(&h.acme, &format!("/v1/events?limit=1&cursor={cursor}"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_cursor");
}

#[tokio::test]
async fn t1_oversized_body_gets_413_while_streaming() {
    let h = Harness::with_limits(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    });
    let app = h.app();
    let big = format!("{{\"type\":\"a\",\"data\":\"{}\"}}", "x".repeat(4096));
    // Honest Content-Length: refused before reading.
    let r = send(&app, post_events(&h.acme, big.clone())).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    // Chunked, no Content-Length: refused once the limit is passed; the rest is never kept, and
    // read (so a client that writes before it reads sees the 413) only up to the linger bound
    // of 16 MiB, not the 50 MiB this client would send.
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = pulled.clone();
    let chunks = futures::stream::iter((0..100_000).map(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 512]))
    }));
    let r = send(&app, post_events(&h.acme, Body::from_stream(chunks))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        (3..=(16 * 1024 * 1024 + 1024) / 512 + 2).contains(&pulled),
        "lingered, within the bound: {pulled} chunks"
    );
    // A Content-Length that lies low: the limit still holds.
    let mut lying = post_events(&h.acme, big);
    lying.headers_mut().insert("content-length", "10".parse().unwrap());
    let r = send(&app, lying).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.queue.sent().is_empty());
    // Just under the limit is fine.
    let ok = format!("{{\"type\":\"a\",\"data\":\"{}\"}}", "x".repeat(900));
    assert_eq!(send(&app, post_events(&h.acme, ok)).await.status, StatusCode::ACCEPTED);
}

/// Sends requests built by `make(i)` until one is throttled and returns how many passed before it
/// and that reply. The buckets refill in real time (governor's clock, not tokio's), so on a slow,
/// loaded machine a token may come back during the run: the bound on successes allows exactly the
/// refills that the elapsed time explains and no more, so a bucket that never empties still fails.
async fn until_throttled(
    app: &axum::Router,
    rate_per_sec: u32,
    burst: u32,
    mut make: impl FnMut(usize) -> axum::http::Request<Body>,
) -> (usize, Reply) {
    let started = std::time::Instant::now();
    for i in 0..1000 {
        let r = send(app, make(i)).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let refills = (started.elapsed().as_secs_f64() * f64::from(rate_per_sec)).ceil() as usize;
            assert!(
                i >= burst as usize,
                "throttled after {i} requests, before the burst of {burst} was spent"
            );
            assert!(
                i <= burst as usize + refills,
                "{i} requests passed; the burst {burst} plus {refills} refills allow fewer"
            );
            return (i, r);
        }
        assert!(r.status.is_success(), "request {i}: {}", r.status);
    }
    panic!("never throttled");
}

#[tokio::test]
async fn d1_burst_beyond_bucket_gets_429() {
    let h = Harness::new();
    let config = HttpConfig {
        rate_per_sec: 1,
        burst: 3,
        ..HttpConfig::default()
    };
    let app = h.app_with(&config);
    let (_, r) = until_throttled(&app, 1, 3, |_| get_as(&h.acme, "/v1/events")).await;
    assert_eq!(r.code(), "throttled");
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
    // Another key has its own bucket.
    assert_eq!(send(&app, get_as(&h.evil, "/v1/events")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn d1_ingest_and_query_share_one_bucket_in_the_app() {
    let h = Harness::new();
    let config = HttpConfig {
        rate_per_sec: 1,
        burst: 2,
        ..HttpConfig::default()
    };
    let app = h.app_with(&config);
    // Alternating POST and GET drains one bucket: separate buckets would allow twice the burst.
    let (_, r) = until_throttled(&app, 1, 2, |i| {
        if i % 2 == 0 {
            post_events(&h.acme, r#"{"type":"a","data":1}"#)
        } else {
            get_as(&h.acme, "/v1/events")
        }
    })
    .await;
    assert_eq!(r.code(), "throttled");
    // Clones of the router (one per connection) share the state too: the clone finds the bucket
    // empty (only refills may pass), where a fresh bucket would pass its whole burst.
    let clone = app.clone();
    until_throttled(&clone, 1, 0, |_| get_as(&h.acme, "/v1/events")).await;
}

#[tokio::test]
async fn d1_global_bucket_throttles_across_keys() {
    let h = Harness::new();
    let config = HttpConfig {
        global_rate_per_sec: 1,
        global_burst: 2,
        ..HttpConfig::default()
    };
    let app = h.app_with(&config);
    // Two keys, each far below its own limit, share the global bucket.
    let (_, r) = until_throttled(&app, 1, 2, |i| {
        get_as(if i % 2 == 0 { &h.acme } else { &h.evil }, "/v1/events")
    })
    .await;
    assert!(r.header("retry-after").is_some());
    // Health checks are not throttled.
    let r = send(&app, req("GET", "/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn i2_errors_never_leak_internals() {
    let h = Harness::new();
    let app = h.app();
    h.queue.fail.store(true, Ordering::SeqCst);
    h.store.fail.store(true, Ordering::SeqCst);
    let replies = vec![
        send(&app, post_events(&h.acme, r#"{"type":"a","data":1}"#)).await,
        send(&app, get_as(&h.acme, "/v1/events")).await,
        send(&app, get_as(&h.acme, "/v1/events/evt_01J00000000000000000000000")).await,
        send(&app, post_events(&h.acme, "{\"a\":tru}")).await,
        send(&app, post_events(&h.acme, "[1,")).await,
        send(&app, get_as(&h.acme, "/v1/events?limit=%FF%FE")).await,
        send(&app, get_as(&h.acme, "/v1/events?cursor=eyJ0IjoiZXZpbCJ9.AAAA")).await,
        send(&app, req("PATCH", "/v1/events").body(Body::empty()).unwrap()).await,
    ];
    for r in replies {
        assert!(r.status.as_u16() >= 400);
        let text = r.text().to_lowercase();
        for leak in [
            "select",
            "secret.db",
            "/var/",
            "serde",
            "axum",
            "rejection",
            "panicked",
            ".rs",
            "sqlite",
            "expected",
            "deserialize",
            "failed to",
        ] {
            assert!(!text.contains(leak), "{leak:?} leaked in {text}");
        }
    }
}

#[tokio::test]
async fn i2_panics_become_a_bare_500() {
    let h = Harness::new();
    let app = h.app();
    let r = send(&app, get_as(&h.acme, &format!("/v1/events/{PANIC_ID}"))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "internal");
    assert!(!r.text().contains("exploded") && !r.text().contains("SELECT"));
    // The server keeps serving.
    assert_eq!(send(&app, get_as(&h.acme, "/v1/events")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn r1_access_log_has_one_event_per_request_with_its_fields() {
    let h = Harness::new();
    let app = h.app();
    let (logs, _guard) = capture_logs();
    let id = h.seed("acme", "a", json!(1));
    let mut r = get_as(&h.acme, &format!("/v1/events/{id}?cursor=SECRETCURSOR"));
    r.headers_mut().insert("x-request-id", "trace-77".parse().unwrap());
    r.extensions_mut().insert(sluice_http::ClientIp("203.0.113.5".into()));
    send(&app, r).await;
    send(&app, post_events(&h.acme, r#"{"type":"a","data":1}"#)).await;
    send(&app, req("GET", "/nope").body(Body::empty()).unwrap()).await;
    let access: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l["target"] == "sluice::access")
        .collect();
    assert_eq!(access.len(), 3, "{access:?}");
    let first = &access[0];
    assert_eq!(first["request_id"], "trace-77");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["route"], "/v1/events/{id}");
    assert_eq!(first["status"], 200);
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["source_ip"], "203.0.113.5");
    assert!(first["latency_ms"].is_u64());
    assert!(
        !logs.text().contains("SECRETCURSOR"),
        "the query string is never logged"
    );
    let second = &access[1];
    assert_eq!(second["status"], 202);
    assert_eq!(second["bytes_in"], r#"{"type":"a","data":1}"#.len());
    assert_eq!(access[2]["status"], 404);
    assert!(access[2].get("tenant").is_none());
}

#[tokio::test]
async fn i1_logs_never_contain_the_body_or_the_key() {
    let h = Harness::new();
    let app = h.app();
    let (logs, _guard) = capture_logs();
    let secret_body = r#"{"type":"a","data":{"ssn":"078-05-1120"}}"#;
    send(&app, post_events(&h.acme, secret_body)).await;
    send(
        &app,
        post_events(&h.acme, r#"{"type":"a","data":{"ssn":"078-05-1120"},"x":1}"#),
    )
    .await;
    send(
        &app,
        req("GET", "/v1/events")
            .header("x-api-key", h.evil.expose())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    h.queue.fail.store(true, Ordering::SeqCst);
    send(&app, post_events(&h.acme, secret_body)).await;
    let text = logs.text();
    assert!(!text.is_empty());
    for secret in [
        h.acme.expose(),
        h.evil.expose(),
        h.acme.expose().split_once('.').unwrap().1,
        "078-05-1120",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the logs");
    }
}
