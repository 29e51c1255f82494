//! CloudEvents 1.0 over `POST /v1/events` (structured, batch and binary mode) and
//! `GET /v1/events/{id}` with `Accept: application/cloudevents+json`, driven through the routers
//! with in-memory ports. Every reply is checked against the OpenAPI document by `send`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use sluice_core::ids::{EventId, RequestId};
use sluice_core::{EventType, StoredEvent};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

fn cloudevent(id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "https://shop.example/orders",
        "type": "com.example.order.created",
        "time": now_rfc3339(),
        "subject": "order/42",
        "datacontenttype": "application/json",
        "data": {"amount": 42}
    })
}

fn post_as(h: &Harness, content_type: &str, body: impl Into<Body>) -> axum::http::Request<Body> {
    req("POST", "/v1/events")
        .header("authorization", bearer(&h.acme))
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

fn binary(h: &Harness, headers: &[(&str, &str)], body: &str) -> axum::http::Request<Body> {
    let mut b = req("POST", "/v1/events")
        .header("authorization", bearer(&h.acme))
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

const BINARY: &[(&str, &str)] = &[
    ("ce-specversion", "1.0"),
    ("ce-id", "b-1"),
    ("ce-source", "/orders"),
    ("ce-type", "order.created"),
];

/// The envelopes queued so far, as JSON.
fn queued(h: &Harness) -> Vec<Value> {
    h.queue
        .sent()
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

fn pointers(r: &Reply) -> Vec<String> {
    r.json()["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["pointer"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn t1_a_structured_cloudevent_is_accepted_and_mapped() {
    let h = Harness::new();
    let r = send(
        &h.app(),
        post_as(&h, "application/cloudevents+json", cloudevent("a-1").to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let env = &queued(&h)[0];
    assert_eq!(env["id"], id);
    assert_eq!(env["type"], "com.example.order.created");
    assert_eq!(env["subject"], "order/42");
    assert_eq!(env["data"], json!({"amount": 42}));
}

#[tokio::test]
async fn t1_a_cloudevents_batch_is_accepted_all_or_nothing() {
    let h = Harness::new();
    let app = h.app();
    let batch = json!([cloudevent("a-1"), cloudevent("a-2")]).to_string();
    let r = send(&app, post_as(&h, "application/cloudevents-batch+json", batch)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["ids"].as_array().unwrap().len(), 2);
    let mut bad = cloudevent("a-4");
    bad["type"] = json!("Not.A.Type");
    let r = send(
        &app,
        post_as(
            &h,
            "application/cloudevents-batch+json",
            json!([cloudevent("a-3"), bad]).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&r), vec!["/1/type"]);
    assert_eq!(queued(&h).len(), 2, "nothing of the refused batch is queued");
}

#[tokio::test]
async fn t1_a_binary_mode_cloudevent_is_accepted_and_mapped() {
    let h = Harness::new();
    let time = now_rfc3339();
    let mut headers = BINARY.to_vec();
    headers.push(("ce-subject", "caf%C3%A9/1"));
    headers.push(("ce-time", &time));
    let r = send(&h.app(), binary(&h, &headers, r#"{"amount":7}"#)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let env = &queued(&h)[0];
    assert_eq!(env["type"], "order.created");
    assert_eq!(env["subject"], "café/1");
    assert_eq!(env["data"], json!({"amount": 7}));
}

#[tokio::test]
async fn s5_a_retried_source_and_id_is_queued_once_with_the_same_id() {
    let h = Harness::new();
    let app = h.app();
    let event = cloudevent("retry-1");
    let first = send(&app, post_as(&h, "application/cloudevents+json", event.to_string())).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    // The same event laid out differently is the same delivery.
    let pretty = serde_json::to_string_pretty(&event).unwrap();
    let again = send(&app, post_as(&h, "application/cloudevents+json", pretty)).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json(), first.json());
    assert_eq!(queued(&h).len(), 1);
    // The same pair with other content is refused, as an Idempotency-Key reused would be.
    let mut changed = event.clone();
    changed["data"] = json!({"amount": 1});
    let r = send(&app, post_as(&h, "application/cloudevents+json", changed.to_string())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "idempotency_key_mismatch");
    // The same id from another source is another event.
    let mut other = event.clone();
    other["source"] = json!("/elsewhere");
    let r = send(&app, post_as(&h, "application/cloudevents+json", other.to_string())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_ne!(r.json(), first.json());
    // Binary mode retries likewise, and a batch is one idempotent unit.
    let b1 = send(&app, binary(&h, BINARY, "1")).await;
    let b2 = send(&app, binary(&h, BINARY, "1")).await;
    assert_eq!(b1.json(), b2.json());
    let batch = json!([cloudevent("r-1"), cloudevent("r-2")]).to_string();
    let c1 = send(&app, post_as(&h, "application/cloudevents-batch+json", batch.clone())).await;
    let c2 = send(&app, post_as(&h, "application/cloudevents-batch+json", batch)).await;
    assert_eq!(c1.status, StatusCode::ACCEPTED);
    assert_eq!(c1.json(), c2.json());
    assert_eq!(queued(&h).len(), 1 + 1 + 1 + 2);
}

#[tokio::test]
async fn s5_another_tenants_same_source_and_id_is_its_own_event() {
    let h = Harness::new();
    let app = h.app();
    let event = cloudevent("shared-1").to_string();
    let a = send(&app, post_as(&h, "application/cloudevents+json", event.clone())).await;
    let r = req("POST", "/v1/events")
        .header("authorization", bearer(&h.evil))
        .header("content-type", "application/cloudevents+json")
        .body(Body::from(event))
        .unwrap();
    let b = send(&app, r).await;
    assert_eq!((a.status, b.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_ne!(a.json(), b.json(), "keys are per tenant: no answer crosses tenants");
    assert_eq!(queued(&h).len(), 2);
}

#[tokio::test]
async fn t1_every_cloudevents_refusal_is_a_problem_with_a_stable_code() {
    let h = Harness::new();
    let app = h.app();
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v = cloudevent("x-1");
        f(v.as_object_mut().unwrap());
        v.to_string()
    };
    let structured: Vec<(String, &str)> = vec![
        (
            with(&|o| drop(o.insert("specversion".into(), json!("0.3")))),
            "/specversion",
        ),
        (with(&|o| drop(o.remove("id"))), "/id"),
        (with(&|o| drop(o.insert("source".into(), json!("")))), "/source"),
        (with(&|o| drop(o.insert("type".into(), json!("Com.Example")))), "/type"),
        (
            with(&|o| drop(o.insert("time".into(), json!("2001-01-01T00:00:00Z")))),
            "/time",
        ),
        (
            with(&|o| drop(o.insert("subject".into(), json!("s".repeat(257))))),
            "/subject",
        ),
        (
            with(&|o| drop(o.insert("datacontenttype".into(), json!("text/xml")))),
            "/datacontenttype",
        ),
        (
            with(&|o| {
                o.remove("data");
                o.insert("data_base64".into(), json!("AAEC"));
            }),
            "/data_base64",
        ),
        (
            with(&|o| drop(o.insert("dataschema".into(), json!("https://x/s")))),
            "/dataschema",
        ),
        (
            with(&|o| drop(o.insert("traceparent".into(), json!({"v": "00-1"})))),
            "/traceparent",
        ),
    ];
    for (body, pointer) in structured {
        let r = send(&app, post_as(&h, "application/cloudevents+json", body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{pointer}");
        assert_eq!(r.code(), "validation_failed");
        assert!(pointers(&r).contains(&pointer.to_owned()), "{pointer}: {}", r.text());
    }
    for (ct, body) in [
        (
            "application/cloudevents+json",
            r#"{"specversion":"1.0","specversion":"1.0"}"#.to_owned(),
        ),
        ("application/cloudevents+json", "{".to_owned()),
        ("application/cloudevents-batch+json", "[{}".to_owned()),
    ] {
        let r = send(&app, post_as(&h, ct, body)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
    }
    for body in ["[]".to_owned(), cloudevent("x").to_string()] {
        let r = send(&app, post_as(&h, "application/cloudevents-batch+json", body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(pointers(&r), vec![""]);
    }
    // Binary mode.
    let mut ext = BINARY.to_vec();
    ext.push(("ce-my_ext", "1"));
    let r = send(&app, binary(&h, &ext, "1")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&r), vec!["/my_ext"]);
    let r = send(&app, binary(&h, &BINARY[..3], "1")).await;
    assert_eq!(pointers(&r), vec!["/type"]);
    let r = send(&app, binary(&h, BINARY, "")).await;
    assert_eq!(pointers(&r), vec!["/data"]);
    let r = send(&app, binary(&h, BINARY, r#"{"a":1,"a":2}"#)).await;
    assert_eq!(r.code(), "malformed_json");
    let mut bad_escape = BINARY.to_vec();
    bad_escape.push(("ce-subject", "%FF"));
    let r = send(&app, binary(&h, &bad_escape, "1")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_header")
    );
    let mut twice = BINARY.to_vec();
    twice.push(("ce-id", "b-2"));
    let r = send(&app, binary(&h, &twice, "1")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_header")
    );
    let mut b = req("POST", "/v1/events")
        .header("authorization", bearer(&h.acme))
        .header("content-type", "application/octet-stream");
    for (k, v) in BINARY {
        b = b.header(*k, *v);
    }
    let r = send(&app, b.body(Body::from("AAEC")).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(queued(&h).is_empty());
}

#[tokio::test]
async fn a_stored_event_reads_back_as_a_cloudevent_when_asked() {
    let h = Harness::new();
    let now = OffsetDateTime::now_utc();
    let id = EventId::new_at(now);
    h.store.inner.seed(StoredEvent {
        trace_id: None,
        seq: 0,
        expires_at: None,
        idempotency_key: None,
        id,
        tenant: tenant("acme"),
        event_type: EventType::parse("order.created").unwrap(),
        data: json!({"amount": 3}).into(),
        occurred_at: now,
        received_at: now,
        request_id: RequestId::generate(),
        subject: Some("order/3".into()),
        webhook: None,
        extensions: Default::default(),
    });
    let app = h.app();
    let uri = format!("/v1/events/{id}");
    let ce_req = |accept: &str| {
        req("GET", &uri)
            .header("authorization", bearer(&h.acme))
            .header("accept", accept)
            .body(Body::empty())
            .unwrap()
    };
    let r = send(&app, ce_req("application/cloudevents+json")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/cloudevents+json"));
    let ce = r.json();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], id.to_string());
    assert_eq!(ce["source"], "/sluice/tenants/acme");
    assert_eq!(ce["type"], "order.created");
    assert_eq!(ce["subject"], "order/3");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["data"], json!({"amount": 3}));
    // Any other Accept (or a refused CloudEvent) gets Sluice's own shape, subject included.
    for accept in ["application/json", "*/*", "application/cloudevents+json;q=0"] {
        let r = send(&app, ce_req(accept)).await;
        assert_eq!(r.header("content-type"), Some("application/json"), "{accept}");
        assert_eq!(r.json()["subject"], "order/3");
    }
    let list = send(&app, get_as(&h.acme, "/v1/events")).await;
    assert_eq!(list.json()["events"][0]["subject"], "order/3");
    // Another tenant still gets 404.
    let r = send(
        &app,
        req("GET", &uri)
            .header("authorization", bearer(&h.evil))
            .header("accept", "application/cloudevents+json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn t1_the_native_shape_takes_a_bounded_subject() {
    let h = Harness::new();
    let app = h.app();
    let r = send(
        &app,
        post_events(&h.acme, r#"{"type":"a","data":1,"subject":"user/1"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(queued(&h)[0]["subject"], "user/1");
    let long = json!({"type":"a","data":1,"subject":"x".repeat(257)}).to_string();
    let r = send(&app, post_events(&h.acme, long)).await;
    assert_eq!(pointers(&r), vec!["/subject"]);
    // Without a subject the envelope is exactly what it was before subjects existed.
    let r = send(&app, post_events(&h.acme, r#"{"type":"a","data":1}"#)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(queued(&h)[1].get("subject").is_none());
}
