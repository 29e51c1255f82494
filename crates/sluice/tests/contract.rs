//! The HTTP contract at its edges, against the real listening server: bodies at and past the
//! limits, numbers that would change, message framing (Transfer-Encoding, Host, Content-Type),
//! and the 413 a client that writes before it reads must still see. Raw TCP where a well-behaved
//! client library would not send the request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestApp;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The documented body limit (`limits.max_body_bytes`).
const LIMIT: usize = 256 * 1024;

/// One event whose body is exactly `len` bytes.
fn event_of(len: usize) -> String {
    let (head, tail) = (r#"{"type":"big","data":""#, r#""}"#);
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

/// Sends `head` (the request line and headers, CRLF-separated, without the blank line) and
/// `body` in full on a fresh connection, then reads the whole answer. `None` if the client's own
/// write failed (a reset: what clients see as a broken pipe).
fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    // Connection: close, so the answer ends where the connection does.
    s.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // A reset after the whole answer arrived still leaves the answer in `out`.
        Err(_) if !out.is_empty() => {}
        Err(_) => return None,
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The status code of a raw answer.
fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

/// The problem+json body of a raw answer.
fn problem_of(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    // Chunked answers carry a size line first.
    let json = body.find('{').map(|i| &body[i..]).unwrap_or_default();
    let json = json.rfind('}').map(|i| &json[..=i]).unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

fn post_head(app: &TestApp, extra: &str) -> String {
    format!(
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{extra}",
        app.addr, app.key
    )
}

#[tokio::test]
async fn t1_a_body_exactly_at_the_limit_is_stored_and_one_byte_more_gets_413() {
    let app = TestApp::spawn();
    // The longest request id the server accepts makes the queue message as large as it gets.
    let request_id = "r".repeat(128);
    let at_limit = event_of(LIMIT);
    assert_eq!(at_limit.len(), LIMIT);
    let r = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("x-request-id", &request_id)
        .body(at_limit)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-request-id"], request_id.as_str());
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let event = app.wait_for_event(&app.key, &id, Duration::from_secs(20)).await;
    assert_eq!(
        event["data"].as_str().unwrap().len(),
        LIMIT - r#"{"type":"big","data":""}"#.len()
    );

    let r = app.post(&app.key, &event_of(LIMIT + 1)).await;
    assert_eq!(r.status(), 413);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "payload_too_large");
    assert!(
        !app.logs().iter().any(|l| l.contains("\"ERROR\"")),
        "no request at or past the limit writes an ERROR line"
    );
}

#[tokio::test]
async fn t1_an_event_that_does_not_fit_a_queue_message_once_sealed_gets_413_and_nothing_is_queued() {
    // The largest body limit the server starts with, and a structured CloudEvent whose numbers
    // grow when sealed: its `data` is read as a value among the context attributes and printed
    // again, so `1E15` (4 bytes) is written back as `1000000000000000.0` (18).
    let app = TestApp::spawn_with(&[
        ("SLUICE_LIMITS__MAX_BODY_BYTES", "983040"),
        ("SLUICE_WORKER__WORKERS", "0"),
    ]);
    let cloudevent = |n: usize| {
        format!(
            r#"{{"specversion":"1.0","id":"big-{n}","source":"/tests","type":"grows","data":[{}]}}"#,
            vec!["1E15"; n].join(",")
        )
    };
    let post = |body: String| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&app.key)
            .header("content-type", "application/cloudevents+json")
            .body(body)
            .send()
    };
    let body = cloudevent(190_000);
    assert!(body.len() < 983_040);
    let r = post(body).await.unwrap();
    assert_eq!(r.status(), 413);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "payload_too_large");
    assert!(p["detail"].as_str().unwrap().contains("once sealed"), "{p}");
    let status = common::sluice(&app.data_dir, &["status", "--output", "json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["queue"]["visible"], 0, "nothing was queued");
    // The same numbers in a CloudEvent that fits once sealed are accepted, and a native event's
    // `data` is sealed as sent, so there the same 190,000 numbers fit as they are.
    assert_eq!(post(cloudevent(1000)).await.unwrap().status(), 202);
    let native = format!(r#"{{"type":"grows","data":[{}]}}"#, vec!["1E15"; 190_000].join(","));
    assert_eq!(app.post(&app.key, &native).await.status(), 202);
}

#[tokio::test]
async fn t1_an_idempotent_request_of_any_accepted_size_is_kept_and_its_retry_answered_alike() {
    let app = TestApp::spawn();
    // Quotes and backslashes grow once sealed; the idempotency record keeps ids, not envelopes,
    // so a body the limit accepts is as idempotent as a small one.
    let strings = vec![r#""\\""#; 50_000].join(",");
    let body = format!(r#"{{"type":"quotes","data":[{strings}]}}"#);
    assert!(body.len() < LIMIT);
    let post = || {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .header("idempotency-key", "large-and-kept")
            .body(body.clone())
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status(), 202);
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let retry = post().await.unwrap();
    assert_eq!(retry.status(), 202);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], id.as_str());
    let event = app.wait_for_event(&app.key, &id, Duration::from_secs(20)).await;
    assert_eq!(event["data"].as_array().unwrap().len(), 50_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.list_all(&app.key).await.len(), 1, "stored once");
}

#[tokio::test]
async fn t1_numbers_that_would_come_back_changed_are_refused_and_exact_ones_round_trip() {
    let app = TestApp::spawn();
    for inexact in [
        r#"{"type":"n","data":{"n":123456789012345678901234567890}}"#,
        r#"{"type":"n","data":{"n":0.30000000000000000001}}"#,
    ] {
        let r = app.post(&app.key, inexact).await;
        assert_eq!(r.status(), 400, "{inexact}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "malformed_json");
        assert!(
            p["detail"].as_str().unwrap().contains("cannot be stored exactly"),
            "{p}"
        );
    }
    let exact = r#"{"type":"n","data":{"big":18446744073709551615,"neg":-9223372036854775808,"d":0.1,"e":1.5e300,"s":"123456789012345678901234567890"}}"#;
    let r = app.post(&app.key, exact).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let event = app.wait_for_event(&app.key, &id, Duration::from_secs(20)).await;
    let sent: Value = serde_json::from_str(exact).unwrap();
    assert_eq!(event["data"], sent["data"]);
    assert_eq!(event["data"]["big"].to_string(), "18446744073709551615");
}

#[tokio::test]
async fn t1_transfer_codings_other_than_a_single_chunked_are_refused_unread() {
    let app = TestApp::spawn();
    let chunked_body = |json: &str| format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len());
    let event = r#"{"type":"te","data":1}"#;
    for (coding, want, code) in [
        ("gzip, chunked", 501, "unsupported_transfer_coding"),
        ("deflate, chunked", 501, "unsupported_transfer_coding"),
        ("bogus, chunked", 501, "unsupported_transfer_coding"),
        ("chunked, chunked", 400, "invalid_header"),
    ] {
        let head = post_head(
            &app,
            &format!("Content-Type: application/json\r\nTransfer-Encoding: {coding}"),
        );
        let answer = raw(app.addr, &head, chunked_body(event).as_bytes()).unwrap();
        assert_eq!(status(&answer), want, "{coding}: {answer}");
        let p = problem_of(&answer);
        assert_eq!(p["code"], code, "{coding}");
        assert!(
            p["request_id"].is_string(),
            "{coding}: the problem carries the request id"
        );
    }
    // A single chunked coding is the one accepted.
    let head = post_head(&app, "Content-Type: application/json\r\nTransfer-Encoding: chunked");
    let answer = raw(app.addr, &head, chunked_body(event).as_bytes()).unwrap();
    assert_eq!(status(&answer), 202, "{answer}");
    let stored = app.wait_for_count(&app.key, 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "only the plain chunked request was stored");
    assert_eq!(stored[0]["type"], "te");
}

#[tokio::test]
async fn t1_a_request_with_no_host_or_two_hosts_or_two_content_types_gets_400() {
    let app = TestApp::spawn();
    let event = r#"{"type":"h","data":1}"#;
    let cl = format!("Content-Length: {}", event.len());
    let requests = [
        format!(
            "POST /v1/events HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n{cl}",
            app.key
        ),
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n{cl}",
            app.key
        ),
        post_head(
            &app,
            &format!("Content-Type: application/json\r\nContent-Type: text/plain\r\n{cl}"),
        ),
        post_head(
            &app,
            &format!("Content-Type: text/plain\r\nContent-Type: application/json\r\n{cl}"),
        ),
    ];
    for head in requests {
        let answer = raw(app.addr, &head, event.as_bytes()).unwrap();
        assert_eq!(status(&answer), 400, "{head}\n{answer}");
        assert_eq!(problem_of(&answer)["code"], "invalid_header", "{head}");
    }
    assert!(app.list_all(&app.key).await.is_empty());
}

#[tokio::test]
async fn d2_a_client_that_writes_its_whole_oversized_body_before_reading_sees_the_413() {
    let app = TestApp::spawn();
    for (size, tries) in [(1 << 20, 5), (2 << 20, 5), (8 << 20, 3)] {
        let body = vec![b'x'; size];
        for _ in 0..tries {
            let head = post_head(
                &app,
                &format!("Content-Type: application/json\r\nContent-Length: {size}"),
            );
            let answer = raw(app.addr, &head, &body).unwrap_or_else(|| panic!("{size} bytes: broken pipe"));
            assert_eq!(status(&answer), 413, "{size} bytes");
            assert_eq!(problem_of(&answer)["code"], "payload_too_large");
        }
    }
    // A client that waits for 100-continue has sent nothing: it gets its 413 at once, unread.
    let head = post_head(
        &app,
        "Content-Type: application/json\r\nContent-Length: 104857600\r\nExpect: 100-continue",
    );
    let started = std::time::Instant::now();
    let answer = raw(app.addr, &head, b"").unwrap();
    assert_eq!(status(&answer), 413);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered without waiting for a body"
    );
}

#[tokio::test]
async fn an_events_data_comes_back_byte_for_byte_as_it_was_sent() {
    // Member order, spacing and number spelling as the client wrote them: the payload is sealed,
    // stored and returned as the slice of the body it was, never re-printed.
    let app = TestApp::spawn();
    let data = r#"{ "zeta": 1E15, "alpha": [0.10, -0, "é\u00e9"],"nested" : {"b":true, "a":null} }"#;
    let r = app
        .post(&app.key, &format!(r#"{{"type":"order.created","data":{data}}}"#))
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_event(&app.key, &id, Duration::from_secs(10)).await;
    let text = app
        .get(&app.key, &format!("/v1/events/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(&format!(r#""data":{data}"#)), "{text}");
    let listed = app.get(&app.key, "/v1/feed?after=0").await.text().await.unwrap();
    assert!(listed.contains(data), "{listed}");
}
