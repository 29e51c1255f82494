//! The in-flight limits (D-2): requests beyond `max_in_flight`, or beyond `max_in_flight_bytes`
//! of declared body, wait unread for room.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
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

/// One valid event whose body is exactly `len` bytes long.
fn event_of(len: usize) -> String {
    let head = r#"{"type":"a","data":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

/// The response of a spawned request, which must come within 5 s.
async fn finished(task: tokio::task::JoinHandle<Result<Response, Infallible>>) -> Response {
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the request did not finish within 5 s")
        .unwrap()
        .unwrap()
}

/// How many sends have begun (they wait at the queue's gate while the test holds it).
fn entered(h: &Harness) -> usize {
    h.queue.entered.load(std::sync::atomic::Ordering::SeqCst)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn d2_bodies_beyond_the_byte_budget_wait_while_small_ones_fit_beside() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 0,
        max_in_flight_bytes: 4096,
        ..HttpConfig::default()
    });
    let gate = h.queue.gate.write().await;
    let big = tokio::spawn(app.clone().oneshot(post_events(&h.acme, event_of(3000))));
    settle().await;
    assert_eq!(entered(&h), 1, "the first body did not reach the queue");
    // 3000 of 4096 bytes are in work: a small event (1 KiB at least) still fits beside it...
    let small = tokio::spawn(app.clone().oneshot(post_events(&h.acme, event_of(100))));
    settle().await;
    assert_eq!(entered(&h), 2, "a small body waited although it fits the budget");
    // ...but 2000 more bytes do not: that request waits before parsing, sealing or sending.
    let waiting = tokio::spawn(app.clone().oneshot(post_events(&h.acme, event_of(2000))));
    settle().await;
    assert_eq!(entered(&h), 2, "a body went to work beyond the byte budget");
    assert!(!waiting.is_finished());

    drop(gate);
    for r in [big, small, waiting] {
        assert_eq!(finished(r).await.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(h.queue.sent().len(), 3);
}

#[tokio::test]
async fn d2_a_body_still_arriving_holds_no_share_of_the_byte_budget() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 0,
        max_in_flight_bytes: 4096,
        ..HttpConfig::default()
    });
    // Slow clients declaring the largest body, or none (chunked): while their bytes trickle in
    // they take no share, so they cannot starve everyone else.
    let (declared, declared_body) = held_post_declaring(&h, Some(256 * 1024));
    let (chunked, chunked_body) = held_post_declaring(&h, None);
    let slow = [
        tokio::spawn(app.clone().oneshot(declared)),
        tokio::spawn(app.clone().oneshot(chunked)),
    ];
    settle().await;
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        app.clone().oneshot(post_events(&h.acme, event_of(3000))),
    )
    .await
    .expect("a request waited on bodies that had not arrived")
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    drop((declared_body, chunked_body));
    for r in slow {
        // Their senders went away mid-body: refused, never accepted.
        assert_ne!(r.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
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
    assert_eq!(finished(first).await.status(), StatusCode::ACCEPTED);
    assert_eq!(finished(second).await.status(), StatusCode::OK);
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

#[tokio::test]
async fn d2_a_body_that_does_not_arrive_in_time_gets_408_and_frees_its_slot() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 1,
        body_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    });
    // A client that sends its head and then nothing, holding the only slot.
    let (slow, _never) = held_post(&h);
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), send(&app, slow))
        .await
        .expect("the slow body was waited on for ever");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(r.code(), "request_timeout");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(h.queue.sent().is_empty(), "nothing of it was queued");
    // The slot is free again.
    let next = tokio::time::timeout(Duration::from_secs(5), send(&app, post_events(&h.acme, event_of(100))))
        .await
        .expect("the slot stayed taken");
    assert_eq!(next.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn d2_a_body_arriving_in_time_is_not_cut_short() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        body_timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    });
    let (slowish, body) = held_post(&h);
    let reply = tokio::spawn(async move { send(&app, slowish).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    body.send(Bytes::from(event_of(100))).unwrap();
    assert_eq!(reply.await.unwrap().status, StatusCode::ACCEPTED);
}
