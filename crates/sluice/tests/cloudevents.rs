//! CloudEvents 1.0 against the real `sluice serve`: structured, batch and binary mode through to
//! the store, a retried `source` + `id` stored once, and an event read back as a CloudEvent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestApp;
use serde_json::{Value, json};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const STORED_WITHIN: Duration = Duration::from_secs(20);

fn cloudevent(id: &str, time: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "https://shop.example/orders",
        "type": "com.example.order.created",
        "time": time,
        "subject": "order/42",
        "datacontenttype": "application/json",
        "data": {"amount": 42}
    })
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

async fn post_as(app: &TestApp, content_type: &str, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn t1_a_structured_cloudevent_is_stored_and_reads_back_as_one() {
    let app = TestApp::spawn();
    // An hour ago: a client's own time, inside the accepted window.
    let time = (OffsetDateTime::now_utc() - Duration::from_secs(3600))
        .format(&Rfc3339)
        .unwrap();
    let mut event = cloudevent("s-1", &time);
    // Extension attributes of each kind Sluice keeps: a string, a boolean, an integer.
    event["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    event["sampled"] = json!(true);
    event["sequence"] = json!(42);
    let r = post_as(&app, "application/cloudevents+json", event.to_string()).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let stored = app.wait_for_event(&app.key, &id, STORED_WITHIN).await;
    assert_eq!(stored["type"], "com.example.order.created");
    assert_eq!(stored["subject"], "order/42");
    let extensions = json!({
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "sampled": true,
        "sequence": 42
    });
    assert_eq!(stored["extensions"], extensions, "kept as sent, types included");
    assert_eq!(stored["data"], json!({"amount": 42}));
    assert_eq!(
        OffsetDateTime::parse(stored["occurred_at"].as_str().unwrap(), &Rfc3339).ok(),
        OffsetDateTime::parse(&time, &Rfc3339).ok()
    );
    let r = app
        .client
        .get(app.url(&format!("/v1/events/{id}")))
        .bearer_auth(&app.key)
        .header("accept", "application/cloudevents+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/cloudevents+json")
    );
    let ce: Value = r.json().await.unwrap();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], id);
    assert_eq!(ce["source"], "/sluice/tenants/acme");
    assert_eq!(ce["type"], "com.example.order.created");
    assert_eq!(ce["subject"], "order/42");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["data"], json!({"amount": 42}));
    assert_eq!(ce["time"], stored["occurred_at"]);
    for (name, value) in extensions.as_object().unwrap() {
        assert_eq!(&ce[name], value, "{name} is an attribute again");
    }
}

#[tokio::test]
async fn t1_a_cloudevents_batch_is_stored_whole() {
    let app = TestApp::spawn();
    let t = now();
    let batch = json!([cloudevent("b-1", &t), cloudevent("b-2", &t), cloudevent("b-3", &t)]);
    let r = post_as(&app, "application/cloudevents-batch+json", batch.to_string()).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["ids"].as_array().unwrap().len(), 3);
    let all = app.wait_for_count(&app.key, 3, STORED_WITHIN).await;
    assert!(all.iter().all(|e| e["subject"] == "order/42"));
    // One bad event refuses the whole batch.
    let mut bad = cloudevent("b-5", &t);
    bad["data_base64"] = json!("AAEC");
    let r = post_as(
        &app,
        "application/cloudevents-batch+json",
        json!([cloudevent("b-4", &t), bad]).to_string(),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "validation_failed");
    assert_eq!(p["violations"][0]["pointer"], "/1/data_base64");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.list_all(&app.key).await.len(), 3);
}

#[tokio::test]
async fn t1_a_binary_mode_cloudevent_is_stored() {
    let app = TestApp::spawn();
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", "bin-1")
        .header("ce-source", "/orders")
        .header("ce-type", "order.created")
        .header("ce-time", now())
        .header("ce-subject", "caf%C3%A9/7")
        .header("ce-partitionkey", "shop%2F7")
        .body(r#"{"amount":7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let stored = app.wait_for_event(&app.key, &id, STORED_WITHIN).await;
    assert_eq!(stored["type"], "order.created");
    assert_eq!(stored["subject"], "café/7");
    assert_eq!(stored["data"], json!({"amount": 7}));
    assert_eq!(
        stored["extensions"],
        json!({"partitionkey": "shop/7"}),
        "any other ce-* header is an extension, percent-decoded"
    );
}

#[tokio::test]
async fn s5_a_retried_cloudevent_is_stored_once_with_the_same_id() {
    let app = TestApp::spawn();
    let event = cloudevent("retry-1", &now()).to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = post_as(&app, "application/cloudevents+json", event.clone()).await;
        assert_eq!(r.status(), 202);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    app.wait_for_event(&app.key, &ids[0], STORED_WITHIN).await;
    // The same pair from another tenant is that tenant's own event.
    let other = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.other_key)
        .header("content-type", "application/cloudevents+json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 202);
    let other_id = other.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_ne!(other_id, ids[0]);
    app.wait_for_event(&app.other_key, &other_id, STORED_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.list_all(&app.key).await.len(), 1);
    assert_eq!(app.list_all(&app.other_key).await.len(), 1);
}
