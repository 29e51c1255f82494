//! Threat tests of the routers in process (docs/threats.toml), complementing `security.rs`: the
//! per-function (Lambda) routers keep tenants apart too, wrong keys fail alike whatever they share
//! with the real one, and no request field can split or forge an access-log record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use sluice_http::HttpConfig;
use std::time::{Duration, Instant};

#[tokio::test]
async fn i4_the_query_function_router_is_tenant_scoped_on_every_route() {
    let h = Harness::new();
    let query = sluice_http::query_router(h.query.clone(), h.feed.clone(), h.auth(), &HttpConfig::default());
    let theirs = h.seed("evil", "secret.thing", json!({"card": "4111"}));
    h.seed("evil", "secret.thing", json!({"card": "5500"}));
    let mine = h.seed("acme", "mine", json!(1));
    let absent = send_partial(&query, get_as(&h.acme, "/v1/events/evt_01J00000000000000000000000")).await;
    for uri in [
        format!("/v1/events/{theirs}"),
        format!("/v1/events/{}", theirs.to_string().to_lowercase()),
        format!("/v1/events/{theirs}/"),
        format!("/v1/events/{theirs}%00"),
    ] {
        let r = send_partial(&query, get_as(&h.acme, &uri)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            r.problem_without_request_id()["title"],
            absent.problem_without_request_id()["title"]
        );
        assert!(!r.text().contains("4111"), "{uri}");
    }
    for uri in [
        "/v1/events",
        "/v1/events?type=secret.thing",
        "/v1/events?limit=1000",
        "/v1/events?type=secret.thing&limit=1",
    ] {
        let page = send_partial(&query, get_as(&h.acme, uri)).await.json();
        let ids: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert!(ids.iter().all(|id| *id == mine.to_string()), "{uri}: {page}");
        assert!(!page.to_string().contains("4111") && !page.to_string().contains("5500"));
    }
    // The owner reads them through the same router.
    let own = send_partial(&query, get_as(&h.evil, &format!("/v1/events/{theirs}"))).await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn i4_the_ingest_function_router_files_events_under_the_callers_tenant_only() {
    let h = Harness::new();
    let ingest = sluice_http::ingest_router(h.ingest.clone(), h.deliveries.clone(), h.auth(), &HttpConfig::default());
    let r = send_partial(
        &ingest,
        post_events(&h.acme, r#"{"type":"a","data":{"tenant":"evil"}}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = send_partial(
        &ingest,
        post_events(&h.acme, r#"{"type":"a","data":1,"tenant":"evil"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let sent = h.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attributes["tenant"], "acme");
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(body["tenant"], "acme", "a tenant named in the data is only data");
}

/// Every wrong key sharing 0..n characters with the real secret, plus unknown and expired ids.
fn near_misses(good: &str) -> Vec<String> {
    let (id, secret) = good.split_once('.').unwrap();
    let mut out = Vec::new();
    for shared in [0, 1, secret.len() / 2, secret.len() - 1] {
        let mut s: String = secret[..shared].to_owned();
        while s.len() < secret.len() {
            let next = secret.as_bytes()[s.len()];
            s.push(if next == b'A' { 'B' } else { 'A' });
        }
        out.push(format!("{id}.{s}"));
    }
    out.push(format!("{id}.{secret}x"));
    out.push(format!("{id}.{}", &secret[..secret.len() - 1]));
    out.push(format!("key_00000000000000000000000000.{secret}"));
    out
}

#[tokio::test]
async fn s1_wrong_keys_fail_alike_whatever_they_share_with_the_real_one() {
    let h = Harness::new();
    let app = h.app();
    let good = h.acme.expose().to_owned();
    let mut bodies = Vec::new();
    for wrong in near_misses(&good) {
        let r = send(
            &app,
            req("GET", "/v1/events")
                .header("authorization", format!("Bearer {wrong}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{wrong}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        bodies.push(r.problem_without_request_id());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn s1_key_checks_take_as_long_for_a_near_miss_as_for_a_far_miss() {
    // The secret is compared by SHA-256 digest with `subtle`'s constant-time equality, and an
    // unknown id is compared against a dummy digest: how much of the secret a guess shares must
    // not show in the time a rejection takes. Interleaved medians over many runs, with a generous
    // bound, keep this meaningful on a busy machine without making it flaky.
    let h = Harness::new();
    let good = h.acme.expose().to_owned();
    let misses = near_misses(&good);
    let (far, near, unknown) = (&misses[0], &misses[3], &misses[6]);
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..50 {
        let _ = h.authenticator.authenticate(far).await; // warm up
    }
    for _ in 0..1500 {
        for (i, key) in [far, near, unknown].into_iter().enumerate() {
            let started = Instant::now();
            let r = h.authenticator.authenticate(key).await;
            times[i].push(started.elapsed());
            assert!(r.is_err());
        }
    }
    let [far, near, unknown] = times.map(median);
    for (name, t) in [("near miss", near), ("unknown id", unknown)] {
        let ratio = t.as_secs_f64() / far.as_secs_f64();
        assert!(
            (0.33..3.0).contains(&ratio),
            "{name}: median {t:?} against {far:?} for a far miss"
        );
    }
}

#[tokio::test]
async fn r3_no_request_field_splits_or_forges_an_access_log_record() {
    let h = Harness::new();
    let app = h.app();
    let (logs, _guard) = capture_logs();
    let forged = "\n{\"target\":\"sluice::access\",\"status\":200,\"tenant\":\"evil\"}\r\n";
    let mut requests = vec![
        get_as(&h.acme, "/v1/events/evt_%0A%7B%22forged%22%3Atrue%7D"),
        get_as(&h.acme, "/v1/%0D%0A%1B%5B31m%E2%80%A8"),
        get_as(&h.acme, "/v1/events?type=%0Aforged&cursor=%0A"),
        post_events(
            &h.acme,
            serde_json::to_string(&json!({"type": "a", "data": forged})).unwrap(),
        ),
        post_events(
            &h.acme,
            serde_json::to_string(&json!({"type": forged, "data": 1})).unwrap(),
        ),
    ];
    let mut with_headers = get_as(&h.acme, "/v1/events");
    for (name, value) in [
        ("x-request-id", b"id\twith\ttabs\xff".as_slice()),
        ("user-agent", b"ua\t\x80\xff".as_slice()),
        ("idempotency-key", b"k\tey".as_slice()),
        ("x-forwarded-for", b"1.2.3.4\t, evil".as_slice()),
    ] {
        with_headers
            .headers_mut()
            .insert(name, axum::http::HeaderValue::from_bytes(value).unwrap());
    }
    requests.push(with_headers);
    let mut bad_key = req("GET", "/v1/events").body(Body::empty()).unwrap();
    bad_key.headers_mut().insert(
        "x-api-key",
        axum::http::HeaderValue::from_bytes(b"key_\t\x80.x").unwrap(),
    );
    requests.push(bad_key);
    let n = requests.len();
    for r in requests {
        send(&app, r).await;
    }
    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not one record ({e}): {line:?}"));
        assert!(v.is_object());
        assert!(!line.bytes().any(|b| b < 0x20), "raw control character: {line:?}");
        assert_ne!(v["tenant"], "evil", "{line}");
    }
    let access: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["target"] == "sluice::access")
        .collect();
    assert_eq!(access.len(), n, "one access record per request: {text}");
    for a in &access {
        let rid = a["request_id"].as_str().unwrap();
        assert!(
            rid.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)),
            "{rid:?}"
        );
    }
}
