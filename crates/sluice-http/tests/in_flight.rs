//! The in-flight limits (D-2): requests beyond `max_in_flight`, or beyond `max_in_flight_bytes`
//! of declared body, wait unread for room.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use common::*;
use sluice_http::HttpConfig;
use std::convert::Infallible;
use std::time::Duration;
use tower::ServiceExt;

/// A POST whose body arrives only when the returned sender sends it.
fn held_post(h: &Harness) -> (axum::http::Request<Body>, tokio::sync::oneshot::Sender<Bytes>) {
    held_post_declaring(h, None)
}

/// A held POST that declares `length` body bytes (none: chunked).
fn held_post_declaring(
    h: &Harness,
    length: Option<usize>,
) -> (axum::http::Request<Body>, tokio::sync::oneshot::Sender<Bytes>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<Bytes>();
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(rx.await.unwrap_or_default()) });
    let mut req = req("POST", "/v1/events")
        .header("authorization", bearer(&h.acme))
        .header("content-type", "application/json");
    if let Some(n) = length {
        req = req.header("content-length", n);
    }
    (req.body(Body::from_stream(stream)).unwrap(), tx)
}

const EVENT: &[u8] = br#"{"type":"a","data":1}"#;

#[tokio::test]
async fn d2_requests_beyond_the_byte_budget_wait_while_small_ones_fit_beside() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 0,
        max_in_flight_bytes: 4096,
        ..HttpConfig::default()
    });
    let (big, big_body) = held_post_declaring(&h, Some(3000));
    let first = tokio::spawn(app.clone().oneshot(big));
    tokio::time::sleep(Duration::from_millis(50)).await;

    // 3000 of 4096 bytes are taken: a bodiless GET (1 KiB) still fits beside it...
    let get = tokio::time::timeout(
        Duration::from_secs(5),
        app.clone().oneshot(get_as(&h.acme, "/v1/events")),
    )
    .await
    .expect("a small request waited although it fits the budget")
    .unwrap();
    assert_eq!(get.status(), StatusCode::OK);

    // ...but another 2000 declared bytes do not: that request waits, unread.
    let (second, second_body) = held_post_declaring(&h, Some(2000));
    let second = tokio::spawn(app.clone().oneshot(second));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "a request ran beyond the byte budget");

    second_body.send(Bytes::from_static(EVENT)).unwrap();
    big_body.send(Bytes::from_static(EVENT)).unwrap();
    for r in [first, second] {
        let r = tokio::time::timeout(Duration::from_secs(5), r)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
}

#[tokio::test]
async fn d2_a_chunked_body_weighs_the_largest_body_it_may_send() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 0,
        max_in_flight_bytes: 1 << 20,
        max_body_bytes: 8 * 1024,
        ..HttpConfig::default()
    });
    // Without a Content-Length a request may send up to 8 KiB, so it weighs 8 KiB: 128 of them
    // fill the 1 MiB budget, and even a 1 KiB request waits for one to finish.
    let mut held = Vec::new();
    for _ in 0..128 {
        let (r, body) = held_post_declaring(&h, None);
        held.push((tokio::spawn(app.clone().oneshot(r)), body));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (extra, extra_body) = held_post_declaring(&h, Some(EVENT.len()));
    let extra = tokio::spawn(app.clone().oneshot(extra));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!extra.is_finished(), "the budget was not full of chunked requests");
    extra_body.send(Bytes::from_static(EVENT)).unwrap();
    let (first, first_body) = held.remove(0);
    first_body.send(Bytes::from_static(EVENT)).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
    let extra = tokio::time::timeout(Duration::from_secs(5), extra)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(extra.status(), StatusCode::ACCEPTED);
    for (r, body) in held {
        body.send(Bytes::from_static(EVENT)).unwrap();
        assert_eq!(r.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
    }
}

#[tokio::test]
async fn d2_requests_beyond_the_in_flight_limit_wait_for_a_slot() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 1,
        max_in_flight_bytes: 0,
        ..HttpConfig::default()
    });
    let (slow, body) = held_post(&h);
    let first = tokio::spawn(app.clone().oneshot(slow));
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The one slot is taken by a request still reading its body: the next one waits.
    let second = tokio::spawn(app.clone().oneshot(get_as(&h.acme, "/v1/events")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "a second request ran beside the first");

    body.send(Bytes::from_static(br#"{"type":"a","data":1}"#)).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.status(), StatusCode::OK);
}

#[tokio::test]
async fn d2_without_a_limit_requests_run_side_by_side() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 0,
        max_in_flight_bytes: 0,
        ..HttpConfig::default()
    });
    let (slow, body) = held_post(&h);
    let first = tokio::spawn(app.clone().oneshot(slow));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        app.clone().oneshot(get_as(&h.acme, "/v1/events")),
    )
    .await
    .expect("a request waited although there is no limit")
    .unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    body.send(Bytes::from_static(br#"{"type":"a","data":1}"#)).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
}
