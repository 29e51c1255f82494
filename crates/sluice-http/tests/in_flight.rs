//! The in-flight limit (D-2): requests beyond `max_in_flight` wait, unread, for a free slot.

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
    let (tx, rx) = tokio::sync::oneshot::channel::<Bytes>();
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(rx.await.unwrap_or_default()) });
    let req = req("POST", "/v1/events")
        .header("authorization", bearer(&h.acme))
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    (req, tx)
}

#[tokio::test]
async fn d2_requests_beyond_the_in_flight_limit_wait_for_a_slot() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        max_in_flight: 1,
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
