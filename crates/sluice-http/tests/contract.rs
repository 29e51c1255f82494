//! The HTTP contract (v1), driven through the routers with in-memory ports.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use sluice_core::keys::Principal;
use sluice_http::{Auth, ClientIp, HttpConfig, ROUTES};
use std::net::SocketAddr;

#[tokio::test]
async fn healthz_answers_ok_without_auth() {
    let h = Harness::new();
    let r = send(&h.app(), req("GET", "/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn openapi_json_is_served_without_auth() {
    let h = Harness::new();
    let r = send(&h.app(), req("GET", "/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), openapi());
}

#[tokio::test]
async fn openapi_documents_every_route_and_nothing_else() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut routes: Vec<(String, String)> = ROUTES.iter().map(|r| (r.method.into(), r.path.into())).collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes);

    // Every listed route is really served: an unauthenticated call reaches the route (401 or 200),
    // never the 404 fallback or a 405.
    let h = Harness::new();
    let app = h.app();
    for r in ROUTES {
        let uri = r.path.replace("{id}", "evt_01J00000000000000000000000");
        let res = send(
            &app,
            req(&r.method.to_ascii_uppercase(), &uri).body(Body::empty()).unwrap(),
        )
        .await;
        assert!(
            matches!(res.status, StatusCode::OK | StatusCode::UNAUTHORIZED),
            "{} {}: {}",
            r.method,
            r.path,
            res.status
        );
    }
    // Every $ref resolves and every operation declares the internal error.
    let _ = to_json_schema(&doc, &doc["paths"]);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(!op["responses"]["500"].is_null(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn ingest_single_event_gets_202_with_an_id() {
    let h = Harness::new();
    let r = send(
        &h.app(),
        post_events(&h.acme, r#"{"type":"order.created","data":{"n":1}}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("evt_"));
    let sent = h.queue.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body.contains(&id));
    assert!(sent[0].body.contains("\"acme\""));
}

#[tokio::test]
async fn ingest_batch_gets_202_with_ids_in_request_order() {
    let h = Harness::new();
    let batch: Vec<Value> = (0..25).map(|i| json!({"type":"t","data":i})).collect();
    let r = send(&h.app(), post_events(&h.acme, Value::from(batch).to_string())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let ids: Vec<String> = serde_json::from_value(r.json()["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 25);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(h.queue.sent().len(), 25);
}

#[tokio::test]
async fn r2_request_id_and_source_ip_travel_with_the_event() {
    let h = Harness::new();
    let app = h.app();
    let mut r = post_events(&h.acme, r#"{"type":"a","data":1}"#);
    r.headers_mut().insert("x-request-id", "trace-123".parse().unwrap());
    r.extensions_mut()
        .insert(ConnectInfo("192.0.2.7:5555".parse::<SocketAddr>().unwrap()));
    let res = send(&app, r).await;
    assert_eq!(res.header("x-request-id"), Some("trace-123"));
    let mut r = post_events(&h.acme, r#"{"type":"a","data":2}"#);
    r.extensions_mut().insert(ClientIp("198.51.100.9".into()));
    r.extensions_mut()
        .insert(ConnectInfo("192.0.2.7:5555".parse::<SocketAddr>().unwrap()));
    send(&app, r).await;
    let sent = h.queue.sent();
    assert!(sent[0].body.contains("trace-123"), "{}", sent[0].body);
    assert!(sent[0].body.contains("192.0.2.7") && !sent[0].body.contains("5555"));
    assert!(sent[1].body.contains("198.51.100.9"), "the host's ClientIp wins");
}

#[tokio::test]
async fn request_id_is_echoed_when_valid_and_replaced_when_not() {
    let h = Harness::new();
    let app = h.app();
    for (given, kept) in [
        ("abc-1.2:3_z", true),
        ("has space", false),
        ("x\"y", false),
        ("", false),
    ] {
        let r = send(
            &app,
            req("GET", "/healthz")
                .header("x-request-id", given)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let got = r.header("x-request-id").unwrap();
        assert_eq!(got == given, kept, "{given:?} -> {got:?}");
    }
    let long = "a".repeat(200);
    let r = send(
        &app,
        req("GET", "/nope")
            .header("x-request-id", &long)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ne!(r.header("x-request-id"), Some(long.as_str()));
    assert_eq!(r.json()["request_id"], r.header("x-request-id").unwrap());
}

#[tokio::test]
async fn every_response_carries_a_request_id_including_fallbacks() {
    let h = Harness::new();
    let app = h.app();
    let big = vec![b' '; 300 * 1024];
    let cases = [
        req("GET", "/nope").body(Body::empty()).unwrap(),
        req("DELETE", "/v1/events").body(Body::empty()).unwrap(),
        req("GET", "/v1/events").body(Body::empty()).unwrap(),
        post_events(&h.acme, big),
        req("PUT", "/healthz").body(Body::empty()).unwrap(),
        get_as(&h.acme, "/v1/events"),
    ];
    for c in cases {
        let r = send(&app, c).await; // `send` asserts the header and the problem shape
        assert!(r.header("x-request-id").is_some());
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn unknown_path_gets_404_problem() {
    let h = Harness::new();
    let r = send(&h.app(), req("GET", "/v2/events").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

#[tokio::test]
async fn wrong_method_gets_405_with_allow() {
    let h = Harness::new();
    let app = h.app();
    let r = send(&app, req("DELETE", "/v1/events").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    let allow = r.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let r = send(&app, req("POST", "/v1/events/evt_x").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.header("allow").unwrap().contains("GET"));
}

#[tokio::test]
async fn lambda_routers_serve_only_their_own_routes() {
    let h = Harness::new();
    let ingest = sluice_http::ingest_router(h.ingest.clone(), h.deliveries.clone(), h.auth(), &HttpConfig::default());
    let query = sluice_http::query_router(h.query.clone(), h.feed.clone(), h.auth(), &HttpConfig::default());
    let r = send_partial(&ingest, post_events(&h.acme, r#"{"type":"a","data":1}"#)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = send_partial(&ingest, get_as(&h.acme, "/v1/events")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = send_partial(&ingest, req("GET", "/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let id = h.seed("acme", "a", json!(1));
    let r = send_partial(&query, get_as(&h.acme, &format!("/v1/events/{id}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send_partial(&query, post_events(&h.acme, r#"{"type":"a","data":1}"#)).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn upstream_principal_is_trusted_and_its_absence_is_401() {
    let h = Harness::new();
    let app = sluice_http::app(
        h.ingest.clone(),
        h.query.clone(),
        h.feed.clone(),
        h.deliveries.clone(),
        Auth::Upstream,
        &HttpConfig::default(),
    );
    let id = h.seed("acme", "a", json!(1));
    let mut r = req("GET", &format!("/v1/events/{id}")).body(Body::empty()).unwrap();
    r.extensions_mut().insert(Principal {
        tenant: tenant("acme"),
        key_id: "sub-1".into(),
    });
    assert_eq!(send(&app, r).await.status, StatusCode::OK);
    // A bearer key means nothing in upstream mode: only the host's principal counts.
    let r = send(&app, get_as(&h.acme, &format!("/v1/events/{id}"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn media_types_of_the_json_family_are_accepted() {
    let h = Harness::new();
    let app = h.app();
    for ct in [
        "application/json; charset=utf-8",
        "application/vnd.sluice+json",
        "APPLICATION/JSON",
    ] {
        let r = req("POST", "/v1/events")
            .header("authorization", bearer(&h.acme))
            .header("content-type", ct)
            .body(Body::from(r#"{"type":"a","data":1}"#))
            .unwrap();
        assert_eq!(send(&app, r).await.status, StatusCode::ACCEPTED, "{ct}");
    }
}

#[tokio::test]
async fn t1_non_json_content_type_gets_415() {
    let h = Harness::new();
    let app = h.app();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut b = req("POST", "/v1/events").header("authorization", bearer(&h.acme));
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let r = send(&app, b.body(Body::from(r#"{"type":"a","data":1}"#)).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(r.code(), "unsupported_media_type");
    }
    let mut r = post_events(&h.acme, r#"{"type":"a","data":1}"#);
    r.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
    assert_eq!(send(&app, r).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn t1_malformed_json_gets_400() {
    let h = Harness::new();
    let app = h.app();
    let deep = format!("{{\"type\":\"a\",\"data\":{}{}}}", "[".repeat(40), "]".repeat(40));
    for (body, hint) in [
        ("{\"type\":", "not valid JSON"),
        ("{\"type\":\"a\",\"type\":\"b\",\"data\":1}", "duplicate key"),
        (deep.as_str(), "deeper"),
        ("\u{feff}{}", "not valid JSON"),
    ] {
        let r = send(&app, post_events(&h.acme, body.to_owned())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.code(), "malformed_json");
        assert!(r.json()["detail"].as_str().unwrap().contains(hint), "{}", r.text());
    }
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn t1_invalid_event_gets_422_with_violations() {
    let h = Harness::new();
    let r = send(
        &h.app(),
        post_events(
            &h.acme,
            r#"[{"type":"ok","data":1},{"type":"Bad","data":1,"x":0},{"data":1}]"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "validation_failed");
    let body = r.json();
    let pointers: Vec<&str> = body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/1/x", "/1/type", "/2/type"]);
    assert!(h.queue.sent().is_empty(), "a batch is all or nothing");
}

#[tokio::test]
async fn t1_batch_over_100_gets_422() {
    let h = Harness::new();
    let batch: Vec<Value> = (0..101).map(|i| json!({"type":"t","data":i})).collect();
    let r = send(&h.app(), post_events(&h.acme, Value::from(batch).to_string())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = send(&h.app(), post_events(&h.acme, "[]")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn idempotency_key_replays_the_same_ids_and_a_different_body_gets_422() {
    let h = Harness::new();
    let app = h.app();
    let with_key = |body: &'static str| {
        let mut r = post_events(&h.acme, body);
        r.headers_mut().insert("idempotency-key", "order-42".parse().unwrap());
        r
    };
    let first = send(&app, with_key(r#"{"type":"a","data":1}"#)).await;
    let again = send(&app, with_key(r#"{"type":"a","data":1}"#)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(first.json(), again.json());
    assert_eq!(h.queue.sent().len(), 1);
    let other = send(&app, with_key(r#"{"type":"a","data":2}"#)).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.code(), "idempotency_key_mismatch");
}

#[tokio::test]
async fn an_unfinished_idempotent_request_is_sent_again_under_its_first_ids() {
    let h = Harness::new();
    let app = h.app();
    let with_key = || {
        let mut r = post_events(&h.acme, r#"[{"type":"a","data":1},{"type":"b","data":2}]"#);
        r.headers_mut().insert("idempotency-key", "batch-7".parse().unwrap());
        r
    };
    // The first attempt claims the key, then its send fails: the claim stays unfinished.
    h.queue.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = send(&app, with_key()).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.queue.sent().is_empty());
    h.queue.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    // The retry sends its own events under the ids the claim holds, and is answered with them.
    let retry = send(&app, with_key()).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    let ids: Vec<String> = retry.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let sent = h.queue.sent();
    assert_eq!(sent.len(), 2);
    for (m, id) in sent.iter().zip(&ids) {
        assert_eq!(&m.attributes["event_id"], id);
        let env: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(&env["id"], id, "sealed under the claimed id");
    }
    // Now finished: a further retry sends nothing.
    let again = send(&app, with_key()).await;
    assert_eq!(again.json(), retry.json());
    assert_eq!(h.queue.sent().len(), 2);
}

#[tokio::test]
async fn invalid_idempotency_key_header_gets_400() {
    let h = Harness::new();
    let app = h.app();
    let long = "k".repeat(256);
    for bad in ["has space", long.as_str()] {
        let mut r = post_events(&h.acme, r#"{"type":"a","data":1}"#);
        r.headers_mut().insert("idempotency-key", bad.parse().unwrap());
        let res = send(&app, r).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(res.code(), "invalid_header");
    }
    let mut r = post_events(&h.acme, r#"{"type":"a","data":1}"#);
    r.headers_mut().append("idempotency-key", "a".parse().unwrap());
    r.headers_mut().append("idempotency-key", "b".parse().unwrap());
    assert_eq!(send(&app, r).await.code(), "invalid_header");
}

#[tokio::test]
async fn d3_full_or_failing_queue_gets_503_with_retry_after() {
    let h = Harness::new();
    let app = h.app();
    h.backpressure.observe(2_000_000);
    let r = send(&app, post_events(&h.acme, r#"{"type":"a","data":1}"#)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "queue_unavailable");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    h.backpressure.observe(0);
    h.queue.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = send(&app, post_events(&h.acme, r#"{"type":"a","data":1}"#)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "queue_unavailable");
}

#[tokio::test]
async fn get_event_returns_the_stored_event() {
    let h = Harness::new();
    let id = h.seed("acme", "order.created", json!({"n": 7}));
    let r = send(&h.app(), get_as(&h.acme, &format!("/v1/events/{id}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let e = r.json();
    assert_eq!(e["id"], id.to_string());
    assert_eq!(e["type"], "order.created");
    assert_eq!(e["data"], json!({"n": 7}));
    assert!(e.get("tenant").is_none());
}

#[tokio::test]
async fn unknown_or_malformed_event_ids_get_404() {
    let h = Harness::new();
    let app = h.app();
    for id in ["evt_01J00000000000000000000000", "nope", "%FF%FE", "evt_%00"] {
        let r = send(&app, get_as(&h.acme, &format!("/v1/events/{id}"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(r.code(), "not_found");
    }
}

#[tokio::test]
async fn list_events_pages_newest_first_with_a_cursor() {
    let h = Harness::new();
    let app = h.app();
    for i in 0..5 {
        h.seed("acme", if i % 2 == 0 { "even" } else { "odd" }, json!(i));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    h.seed("evil", "even", json!("theirs"));
    let r = send(&app, get_as(&h.acme, "/v1/events?limit=2")).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.json();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0]["data"], 4);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let mut seen = 2;
    let mut next = Some(cursor);
    while let Some(c) = next {
        let r = send(&app, get_as(&h.acme, &format!("/v1/events?limit=2&cursor={c}"))).await;
        assert_eq!(r.status, StatusCode::OK);
        let p = r.json();
        seen += p["events"].as_array().unwrap().len();
        next = p["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 5);
    let r = send(&app, get_as(&h.acme, "/v1/events?type=even")).await;
    let p = r.json();
    assert_eq!(p["events"].as_array().unwrap().len(), 3);
    assert_eq!(p["next_cursor"], Value::Null);
}

#[tokio::test]
async fn list_rejects_bad_parameters_with_400() {
    let h = Harness::new();
    let app = h.app();
    for q in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=",
        "type=Bad",
        "type=",
        "foo=1",
        "limit=1&limit=2",
        "type=%FF",
    ] {
        let r = send(&app, get_as(&h.acme, &format!("/v1/events?{q}"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.code(), "invalid_parameter", "{q}");
    }
    for c in ["x", "", "a.b", &"z".repeat(1025)] {
        let r = send(&app, get_as(&h.acme, &format!("/v1/events?cursor={c}"))).await;
        assert_eq!(r.code(), "invalid_cursor", "{c}");
    }
}

#[tokio::test]
async fn store_outage_gets_503_store_unavailable() {
    let h = Harness::new();
    let app = h.app();
    h.store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    for uri in ["/v1/events", "/v1/events/evt_01J00000000000000000000000"] {
        let r = send(&app, get_as(&h.acme, uri)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.code(), "store_unavailable");
        assert!(r.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn head_requests_get_headers_without_a_body() {
    let h = Harness::new();
    let r = send(&h.app(), req("HEAD", "/v1/events").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.is_empty());
}
