//! The HTTP contract, end to end: the real binary, a real socket, real SQLite files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::{TestApp, sluice};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/problem+json"), "content-type {ct}");
    let rid = r
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("x-request-id");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["request_id"], rid.as_str(), "{body}");
    body
}

#[tokio::test]
async fn healthz_answers_without_credentials() {
    let app = TestApp::spawn();
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/v1/events"].is_object());
}

#[tokio::test]
async fn an_accepted_event_is_stored_once_with_its_request_id() {
    let app = TestApp::spawn();
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("x-request-id", "trace-abc-123")
        .body(r#"{"type":"order.created","data":{"amount":42},"occurred_at":"2026-11-24T10:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("evt_"));
    let event = app.wait_for_event(&app.key, &id, WAIT).await;
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["type"], "order.created");
    assert_eq!(event["data"], json!({"amount": 42}));
    assert_eq!(event["occurred_at"], "2026-11-24T10:00:00Z");
    assert!(event["received_at"].is_string());
    assert_eq!(event["request_id"], "trace-abc-123");
    // The worker logged the record with the same request id (R-1).
    app.wait_for_log(
        |l| l.contains("record processed") && l.contains("trace-abc-123") && l.contains(&id),
        WAIT,
    )
    .await;
}

#[tokio::test]
async fn a_batch_gets_ids_in_request_order_and_all_are_stored() {
    let app = TestApp::spawn();
    let body: Vec<Value> = (0..100).map(|i| json!({"type":"tick","data":{"i":i}})).collect();
    let r = app.post(&app.key, &serde_json::to_string(&body).unwrap()).await;
    assert_eq!(r.status(), 202);
    let ids: Vec<String> = r.json::<Value>().await.unwrap()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 100);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids are time-ordered in request order");
    let stored = app.wait_for_count(&app.key, 100, WAIT).await;
    assert_eq!(stored.len(), 100);
    // Newest first.
    assert_eq!(stored[0]["id"], ids[99].as_str());
    assert_eq!(stored[0]["data"]["i"], 99);
}

#[tokio::test]
async fn s1_missing_malformed_or_wrong_keys_get_the_same_401() {
    let app = TestApp::spawn();
    let body = r#"{"type":"a","data":1}"#;
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    let first = problem(r, 401, "unauthorized").await;
    let mut wrong = app.key.clone();
    wrong.replace_range(wrong.len() - 4.., "AAAA");
    for key in [wrong.as_str(), "nonsense", "key_01jabcdefghjkmnpqrstvwxyz0.x"] {
        let p = problem(app.post(key, body).await, 401, "unauthorized").await;
        assert_eq!(p["title"], first["title"]);
        assert_eq!(p["detail"], first["detail"]);
    }
    // One contract, as behind API Gateway: a valid key in x-api-key is not a credential.
    let r = app
        .client
        .post(app.url("/v1/events"))
        .header("x-api-key", &app.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let p = problem(r, 401, "unauthorized").await;
    assert_eq!(p["detail"], first["detail"]);
}

#[tokio::test]
async fn s1_a_revoked_key_stops_working() {
    let app = TestApp::spawn_with(&[("SLUICE_AUTH__CACHE_SECS", "0")]);
    assert_eq!(app.post(&app.key, r#"{"type":"a","data":1}"#).await.status(), 202);
    let id = app.key.split('.').next().unwrap().to_owned();
    sluice(&app.data_dir, &["keys", "revoke", &id]);
    problem(
        app.post(&app.key, r#"{"type":"a","data":1}"#).await,
        401,
        "unauthorized",
    )
    .await;
    let listed = sluice(&app.data_dir, &["keys", "list"]);
    assert!(listed.contains(&id));
    assert!(
        !listed.contains(app.key.split('.').nth(1).unwrap()),
        "keys list must never print a secret"
    );
}

#[tokio::test]
async fn t1_malformed_json_duplicate_keys_and_deep_nesting_get_400() {
    let app = TestApp::spawn();
    let deep = format!("{{\"type\":\"a\",\"data\":{}1{}}}", "[".repeat(40), "]".repeat(40));
    for body in [
        "{",
        "{\"type\":\"a\",\"data\":1,\"type\":\"b\"}",
        deep.as_str(),
        "\u{0}",
    ] {
        problem(app.post(&app.key, body).await, 400, "malformed_json").await;
    }
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(vec![b'"', 0xff, 0xfe, b'"'])
        .send()
        .await
        .unwrap();
    problem(r, 400, "malformed_json").await;
}

#[tokio::test]
async fn t1_contract_violations_get_422_with_json_pointers_and_nothing_is_stored() {
    let app = TestApp::spawn();
    let body =
        r#"[{"type":"ok","data":1},{"type":"Bad Type","data":1},{"type":"x","occurred_at":"nope","data":1,"extra":1}]"#;
    let p = problem(app.post(&app.key, body).await, 422, "validation_failed").await;
    let pointers: Vec<&str> = p["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    for expected in ["/1/type", "/2/occurred_at", "/2/extra"] {
        assert!(pointers.contains(&expected), "{pointers:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.list_all(&app.key).await.is_empty(),
        "all or nothing: the valid event must not be stored"
    );
}

#[tokio::test]
async fn t1_a_body_over_the_limit_gets_413() {
    let app = TestApp::spawn_with(&[("SLUICE_LIMITS__MAX_BODY_BYTES", "1024")]);
    let big = format!(r#"{{"type":"a","data":"{}"}}"#, "x".repeat(2000));
    problem(app.post(&app.key, &big).await, 413, "payload_too_large").await;
    let fits = format!(r#"{{"type":"a","data":"{}"}}"#, "x".repeat(900));
    assert_eq!(app.post(&app.key, &fits).await.status(), 202);
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_415() {
    let app = TestApp::spawn();
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "text/plain")
        .body(r#"{"type":"a","data":1}"#)
        .send()
        .await
        .unwrap();
    problem(r, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn unknown_routes_get_404_and_wrong_methods_get_405() {
    let app = TestApp::spawn();
    problem(app.get(&app.key, "/v2/nothing").await, 404, "not_found").await;
    let r = app
        .client
        .delete(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    problem(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn i3_another_tenants_event_is_indistinguishable_from_a_missing_one() {
    let app = TestApp::spawn();
    let r = app.post(&app.key, r#"{"type":"secret.thing","data":{"v":1}}"#).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_event(&app.key, &id, WAIT).await;
    let foreign = problem(
        app.get(&app.other_key, &format!("/v1/events/{id}")).await,
        404,
        "not_found",
    )
    .await;
    let missing_id = "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let missing = problem(
        app.get(&app.other_key, &format!("/v1/events/{missing_id}")).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(foreign["title"], missing["title"]);
    assert_eq!(foreign["detail"], missing["detail"]);
    assert!(app.list_all(&app.other_key).await.is_empty());
    assert_eq!(app.list_all(&app.key).await.len(), 1);
}

#[tokio::test]
async fn listing_pages_newest_first_with_a_type_filter_and_a_cursor_bound_to_the_tenant() {
    let app = TestApp::spawn();
    for i in 0..5 {
        let ty = if i % 2 == 0 { "even" } else { "odd" };
        assert_eq!(
            app.post(&app.key, &json!({"type": ty, "data": {"i": i}}).to_string())
                .await
                .status(),
            202
        );
    }
    app.wait_for_count(&app.key, 5, WAIT).await;
    let page: Value = app
        .get(&app.key, "/v1/events?type=even&limit=2")
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![4, 2]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page2: Value = app
        .get(&app.key, &format!("/v1/events?type=even&limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    let got2: Vec<i64> = page2["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(got2, vec![0]);
    assert!(page2["next_cursor"].is_null());
    // The cursor cannot be replayed by another tenant, nor altered.
    problem(
        app.get(&app.other_key, &format!("/v1/events?type=even&limit=2&cursor={cursor}"))
            .await,
        400,
        "invalid_cursor",
    )
    .await;
    let mut forged = cursor.clone();
    forged.insert(3, 'A');
    problem(
        app.get(&app.key, &format!("/v1/events?type=even&limit=2&cursor={forged}"))
            .await,
        400,
        "invalid_cursor",
    )
    .await;
    problem(app.get(&app.key, "/v1/events?limit=0").await, 400, "invalid_parameter").await;
    problem(
        app.get(&app.key, "/v1/events?limit=1001").await,
        400,
        "invalid_parameter",
    )
    .await;
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_same_ids_and_stores_nothing_twice() {
    let app = TestApp::spawn();
    let body = r#"[{"type":"pay","data":{"n":1}},{"type":"pay","data":{"n":2}}]"#;
    let send = |b: &'static str, key: &'static str| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(b)
            .send()
    };
    let first: Value = send(body, "order-77").await.unwrap().json().await.unwrap();
    let again = send(body, "order-77").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    problem(
        send(r#"{"type":"pay","data":{"n":3}}"#, "order-77").await.unwrap(),
        422,
        "idempotency_key_mismatch",
    )
    .await;
    // The same key from another tenant is another key.
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.other_key)
        .header("content-type", "application/json")
        .header("idempotency-key", "order-77")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_ne!(r.json::<Value>().await.unwrap(), first);
    app.wait_for_count(&app.key, 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.list_all(&app.key).await.len(), 2);
}

#[tokio::test]
async fn d1_a_burst_beyond_the_bucket_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(&[("SLUICE_THROTTLE__RATE_PER_SEC", "1"), ("SLUICE_THROTTLE__BURST", "3")]);
    let mut statuses = Vec::new();
    let mut throttled = None;
    for _ in 0..6 {
        let r = app.post(&app.key, r#"{"type":"a","data":1}"#).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 && throttled.is_none() {
            throttled = Some(r);
        }
    }
    assert_eq!(&statuses[..3], &[202, 202, 202], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let r = throttled.unwrap();
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    problem(r, 429, "throttled").await;
    // Another key has its own bucket.
    assert_eq!(app.post(&app.other_key, r#"{"type":"a","data":1}"#).await.status(), 202);
}

#[tokio::test]
async fn d3_a_full_queue_answers_503_instead_of_growing() {
    let app = TestApp::spawn_with(&[("SLUICE_QUEUE__MAX_DEPTH", "2")]);
    assert_eq!(
        app.post(&app.key, r#"[{"type":"a","data":1},{"type":"a","data":2}]"#)
            .await
            .status(),
        202
    );
    let r = app
        .post(
            &app.key,
            r#"[{"type":"a","data":1},{"type":"a","data":2},{"type":"a","data":3}]"#,
        )
        .await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 503, "queue_unavailable").await;
}

#[tokio::test]
async fn t2_a_tampered_message_goes_to_the_dlq_with_its_attributes_and_reason() {
    let app = TestApp::spawn();
    // An attacker with queue access writes a message the ingest step never signed.
    let qdb = sluice_embedded::QueueDb::open(&app.data_dir.join("queue.db")).unwrap();
    let q = qdb.queue("events", sluice_embedded::QueueConfig::default());
    let mut attributes = sluice_core::ports::MessageAttributes::new();
    attributes.insert("request_id".into(), "req-forged-1".into());
    attributes.insert("source_ip".into(), "203.0.113.9".into());
    attributes.insert("signature".into(), "00".repeat(32));
    attributes.insert("signature_kid".into(), "local-1".into());
    let body = json!({"v":1,"id":"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV","tenant":"acme","type":"a","data":1,
        "occurred_at":"2026-01-01T00:00:00Z","received_at":"2026-01-01T00:00:00Z","request_id":"req-forged-1","source_ip":null});
    use sluice_core::ports::Queue as _;
    q.send(sluice_core::ports::OutgoingMessage {
        group: None,
        body: body.to_string(),
        attributes,
    })
    .await
    .unwrap();
    let start = std::time::Instant::now();
    let line = loop {
        let out = sluice(&app.data_dir, &["dlq", "list", "--output", "json"]);
        if let Some(l) = out.lines().find(|l| l.contains("req-forged-1")) {
            break l.to_owned();
        }
        assert!(start.elapsed() < WAIT, "the tampered message never reached the DLQ");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["attributes"]["source_ip"], "203.0.113.9");
    assert!(
        v["attributes"]["dlq_reason"].as_str().unwrap().contains("signature"),
        "{v}"
    );
    assert!(v["attributes"]["dlq_at"].is_string());
    assert!(
        app.list_all(&app.key).await.is_empty(),
        "a forged event must never be stored"
    );
}

#[tokio::test]
async fn i1_logs_carry_request_ids_but_never_keys_bodies_or_secret_fields() {
    let app = TestApp::spawn();
    let r = app
        .post(
            &app.key,
            r#"{"type":"user.signup","data":{"password":"hunter2-very-secret","email":"a@b.c"}}"#,
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_event(&app.key, &id, WAIT).await;
    app.post("key_01jabcdefghjkmnpqrstvwxyz0.guessed-secret", "{}").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = app.logs().join("\n");
    let secret = app.key.split('.').nth(1).unwrap();
    for leak in [secret, "hunter2-very-secret", "a@b.c", "guessed-secret"] {
        assert!(!logs.contains(leak), "{leak} leaked into the logs:\n{logs}");
    }
    for line in app.logs() {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
    }
    assert!(logs.contains(&id), "the worker logs the event id");
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly_and_data_survives_a_restart() {
    let mut app = TestApp::spawn();
    let r = app.post(&app.key, r#"{"type":"a","data":"kept"}"#).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_event(&app.key, &id, WAIT).await;
    assert!(app.terminate().success());
    app.restart();
    let e = app.wait_for_event(&app.key, &id, WAIT).await;
    assert_eq!(e["data"], "kept");
}

#[tokio::test]
async fn d2_headers_trickled_past_the_time_limit_close_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&[("SLUICE_THROTTLE__HEADER_TIMEOUT_SECS", "1")]);
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let started = std::time::Instant::now();
    conn.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // The server closes by itself: reading to the end cannot hang.
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest))
        .await
        .expect("the server kept waiting for the headers");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&rest).contains(" 202 "), "{rest:?}");
    // The server is still serving everyone else.
    assert_eq!(app.post(&app.key, r#"{"type":"t.x","data":{}}"#).await.status(), 202);
}
#[tokio::test]
async fn d2_connections_from_one_address_beyond_its_share_are_closed_unanswered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&[("SLUICE_THROTTLE__MAX_CONNECTIONS_PER_ADDRESS", "2")]);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    // Give the server time to take both before the third knocks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
        app.key
    );
    let _ = over.write_all(head.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut reply))
        .await
        .expect("the connection over the limit was left open");
    assert!(reply.is_empty(), "{}", String::from_utf8_lossy(&reply));
    drop(held);
    // The places come back with the connections, once the server has seen them close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ok = app.post(&app.key, r#"{"type":"t.x","data":{}}"#).await;
    assert_eq!(ok.status(), 202);
}

#[tokio::test]
async fn d2_a_body_trickled_past_the_time_limit_gets_408_and_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&[("SLUICE_THROTTLE__BODY_TIMEOUT_SECS", "1")]);
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\":",
        app.key
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    // The server answers and closes by itself: reading to the end cannot hang.
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut reply))
        .await
        .expect("the server kept waiting for the body")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"code\":\"request_timeout\""), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("connection: close"), "{reply}");
}

#[tokio::test]
async fn d1_a_tenants_daily_quota_is_its_own_and_a_plan_overrides_the_default() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_THROTTLE__QUOTA_PER_DAY", "3"),
        ("SLUICE_THROTTLE__TENANTS__ACME__QUOTA_PER_DAY", "2"),
    ]);
    // acme's plan allows 2 requests a day, reads included (as a usage plan counts them).
    assert_eq!(app.post(&app.key, r#"{"type":"a","data":1}"#).await.status(), 202);
    let read = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let over = app.post(&app.key, r#"{"type":"a","data":2}"#).await;
    assert_eq!(over.status(), 429);
    let retry: u64 = over.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    let p: Value = over.json().await.unwrap();
    assert_eq!(p["code"], "throttled");
    assert!(p["detail"].as_str().unwrap().contains("per day"), "{p}");
    // The other tenant has the default quota, 3 a day, untouched by acme's.
    let statuses: Vec<u16> = futures_statuses(&app, &app.other_key, 4).await;
    assert_eq!(statuses, [202, 202, 202, 429]);
}

/// `n` posts, one after another, as `key`: their statuses.
async fn futures_statuses(app: &TestApp, key: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            app.post(key, &format!(r#"{{"type":"a","data":{i}}}"#))
                .await
                .status()
                .as_u16(),
        );
    }
    out
}

/// D-3 per tenant, on `sluice serve`: while one tenant has a backlog of 100,000 events waiting
/// for the process step, another tenant's single event is stored in about the time one event
/// takes, not after the backlog. The queue hands out each tenant's messages in turn (a fair
/// queue, as SQS's `MessageGroupId` on a standard queue); one worker taking one record at a time
/// keeps the backlog from draining while the test watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d3_one_tenants_backlog_does_not_delay_another_tenants_event() {
    const BACKLOG: usize = 100_000;
    let app = TestApp::spawn_with(&[
        ("SLUICE_WORKER__WORKERS", "1"),
        ("SLUICE_WORKER__BATCH_SIZE", "1"),
        ("SLUICE_THROTTLE__RATE_PER_SEC", "0"),
        ("SLUICE_THROTTLE__GLOBAL_RATE_PER_SEC", "0"),
    ]);
    let batch: String = {
        let one = r#"{"type":"bulk.load","data":{"n":1}}"#;
        format!("[{}]", vec![one; 100].join(","))
    };
    let started = std::time::Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..4 {
        let (client, url, key, batch, next) = (
            app.client.clone(),
            app.url("/v1/events"),
            app.key.clone(),
            batch.clone(),
            next.clone(),
        );
        posts.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < BACKLOG / 100 {
                let r = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(batch.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        });
    }
    while let Some(done) = posts.join_next().await {
        done.unwrap();
    }
    let queued_in = started.elapsed();

    let sent = std::time::Instant::now();
    let r = app.post(&app.other_key, r#"{"type":"small.tenant","data":1}"#).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_event(&app.other_key, &id, WAIT).await;
    let small_stored_in = sent.elapsed();

    use sluice_core::ports::Queue as _;
    let db = sluice_embedded::QueueDb::open(&app.data_dir.join("queue.db")).unwrap();
    let waiting = db
        .queue("events", sluice_embedded::QueueConfig::default())
        .depth()
        .await
        .unwrap()
        .total();
    eprintln!(
        "backlog of {BACKLOG} queued in {queued_in:?}; the other tenant's event stored {small_stored_in:?} \
         after its 202, with {waiting} of the backlog still queued"
    );
    assert!(
        waiting > BACKLOG as u64 / 2,
        "most of the backlog must still be waiting when the other tenant's event is stored: {waiting}"
    );
}

/// D-1 per tenant, set while the server runs: `sluice tenants limits set` stores a plan that a
/// running `sluice serve` applies within `auth.cache_secs`; the tenant is held to its quota and
/// the other tenant is unaffected; `clear` returns it to the default, and limits that do not
/// bound are refused.
#[tokio::test]
async fn d1_tenants_limits_set_applies_to_a_running_server_and_spares_other_tenants() {
    let app = TestApp::spawn_with(&[("SLUICE_AUTH__CACHE_SECS", "1")]);
    let set = [
        "tenants",
        "limits",
        "set",
        "--tenant",
        "acme",
        "--rate",
        "100",
        "--burst",
        "100",
        "--quota-per-day",
        "2",
    ];
    sluice(&app.data_dir, &set);
    let shown: Value = serde_json::from_str(&sluice(
        &app.data_dir,
        &["tenants", "limits", "show", "--tenant", "acme", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(shown["plan"], "own");
    assert_eq!(shown["quota_per_day"], 2);
    let listed = sluice(&app.data_dir, &["tenants", "limits", "list"]);
    assert!(listed.contains("acme") && !listed.contains("other"), "{listed}");
    // The server reads plans every second: wait until acme's quota bites.
    let start = std::time::Instant::now();
    loop {
        let s = app.post(&app.key, r#"{"type":"a","data":1}"#).await.status().as_u16();
        if s == 429 {
            break;
        }
        assert_eq!(s, 202);
        assert!(start.elapsed() < Duration::from_secs(10), "the plan never applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let statuses = futures_statuses(&app, &app.other_key, 5).await;
    assert_eq!(statuses, [202; 5], "the other tenant has no quota");
    sluice(&app.data_dir, &["tenants", "limits", "clear", "--tenant", "acme"]);
    let shown: Value = serde_json::from_str(&sluice(
        &app.data_dir,
        &["tenants", "limits", "show", "--tenant", "acme", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(shown["plan"], "default");
    let start = std::time::Instant::now();
    while app.post(&app.key, r#"{"type":"a","data":1}"#).await.status() != 202 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the cleared plan kept applying"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bad = std::process::Command::new(common::BIN)
        .args([
            "tenants",
            "limits",
            "set",
            "--tenant",
            "acme",
            "--rate",
            "0",
            "--burst",
            "1",
            "--quota-per-day",
            "1",
        ])
        .arg("--data-dir")
        .arg(&app.data_dir)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(4), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// R-1, traces: the trace id of a request's `traceparent` is in its access log line, in the
/// queue message (the `traceparent` attribute, a child span of the caller's), in the process
/// step's log line and on the stored event; a request without one gets a trace of its own.
#[tokio::test]
async fn r1_a_requests_trace_id_reaches_the_access_log_the_queue_the_process_log_and_the_stored_event() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    // The process step paused first, to read the message in the queue.
    let mut app = TestApp::spawn_with(&[("SLUICE_WORKER__WORKERS", "0")]);
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .body(r#"{"type":"order.created","data":{"amount":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_log(|l| l.contains("\"message\":\"request\"") && l.contains(TRACE), WAIT)
        .await;
    let queued = sluice(&app.data_dir, &["status", "--output", "json"]);
    assert!(queued.contains("\"visible\":1"), "{queued}");
    {
        use sluice_core::ports::Queue as _;
        let qdb = sluice_embedded::QueueDb::open(&app.data_dir.join("queue.db")).unwrap();
        let q = qdb.queue("events", sluice_embedded::QueueConfig::default());
        let m = q.receive(1, Duration::ZERO, Duration::ZERO).await.unwrap();
        let tp = &m[0].attributes["traceparent"];
        assert!(tp.starts_with(&format!("00-{TRACE}-")), "{tp}");
        assert!(
            !tp.contains("00f067aa0ba902b7"),
            "the ingest hop is a span of its own: {tp}"
        );
    }
    app.restart_with(&[("SLUICE_WORKER__WORKERS", "1")]);
    let event = app.wait_for_event(&app.key, &id, WAIT).await;
    assert_eq!(event["trace_id"], TRACE);
    app.wait_for_log(
        |l| l.contains("record processed") && l.contains(TRACE) && l.contains(&id),
        WAIT,
    )
    .await;
    // Without a traceparent (or with a malformed one), a trace of its own, stored the same way.
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("traceparent", "00-not-a-trace-01")
        .body(r#"{"type":"order.created","data":{"amount":2}}"#)
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let event = app.wait_for_event(&app.key, &id, WAIT).await;
    let own = event["trace_id"].as_str().unwrap();
    assert!(own.len() == 32 && own != TRACE, "{own}");
}
