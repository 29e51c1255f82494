//! Provider-signed webhook sources against the real server: `sluice sources` creates, lists,
//! rotates and deletes them, and `POST /v1/sources/{id}` stores a verified delivery once and
//! refuses every forgery with the same 401 (S-1, S-5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BIN, TestApp};
use serde_json::Value;
use sluice_testkit::webhooks;
use std::process::Command;
use std::time::Duration;
use time::OffsetDateTime;

/// Runs `sluice sources …` on the app's data directory, the secret on standard input.
fn sources(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("sources").args(args).arg("--data-dir").arg(&app.data_dir);
    common::output_with_stdin(cmd, stdin)
}

/// A new source's id.
fn create(app: &TestApp, tenant: &str, kind: &str, secret: &str) -> String {
    common::created_source_id(&sources(
        app,
        &["create", "--tenant", tenant, "--kind", kind, "--secret", "-"],
        secret,
    ))
}

async fn deliver(app: &TestApp, id: &str, headers: &[(&str, String)], body: &str) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/v1/sources/{id}")))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap()
}

fn github(secret: &str, delivery: &str, body: &str) -> Vec<(&'static str, String)> {
    webhooks::github(secret, "issues", delivery, body)
}

async fn refused(r: reqwest::Response) {
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "unauthorized");
    assert_eq!(
        p["detail"], "missing or invalid credentials",
        "one answer for every failure"
    );
}

#[tokio::test]
async fn s1_a_github_delivery_is_stored_once_and_every_forgery_gets_the_same_401() {
    let app = TestApp::spawn();
    let secret = "gh-webhook-secret";
    let id = create(&app, "acme", "github", secret);
    let other = create(&app, "other", "github", "the other tenant's secret");
    let body = r#"{"action":"opened","issue":{"number":7}}"#;

    let first = deliver(&app, &id, &github(secret, "d-1", body), body).await;
    assert_eq!(first.status(), 202);
    let event_id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    // The provider's retry: same delivery id, same body, a new request.
    let retry = deliver(&app, &id, &github(secret, "d-1", body), body).await;
    assert_eq!(retry.status(), 202);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], event_id.as_str());
    let event = app.wait_for_event(&app.key, &event_id, Duration::from_secs(20)).await;
    assert_eq!(event["type"], "github.issues.opened");
    assert_eq!(event["data"]["issue"]["number"], 7);

    let mut wrong = github("not the secret", "d-2", body);
    refused(deliver(&app, &id, &wrong, body).await).await;
    let changed = body.replace('7', "8");
    refused(deliver(&app, &id, &github(secret, "d-3", body), &changed).await).await;
    wrong.remove(0);
    refused(deliver(&app, &id, &wrong, body).await).await;
    // Another tenant's source, signed with this source's secret; unknown and malformed ids.
    refused(deliver(&app, &other, &github(secret, "d-4", body), body).await).await;
    refused(
        deliver(
            &app,
            "src_01jaaaaaaaaaaaaaaaaaaaaaaa",
            &github(secret, "d-5", body),
            body,
        )
        .await,
    )
    .await;
    refused(deliver(&app, "not-a-source", &github(secret, "d-6", body), body).await).await;

    // Deleted: refused like an unknown source once the server's cached record expires (within
    // auth.cache_secs, 5 s by default, as a revoked key).
    let out = sources(&app, &["delete", &id], "");
    assert!(out.status.success());
    let deleted_at = std::time::Instant::now();
    loop {
        // The first delivery again: while still accepted it is a replay, stored once.
        let r = deliver(&app, &id, &github(secret, "d-1", body), body).await;
        if r.status() == 401 {
            refused(r).await;
            break;
        }
        assert_eq!(r.status(), 202, "accepted or refused, nothing else");
        assert!(
            deleted_at.elapsed() < Duration::from_secs(6),
            "still accepted after the cache TTL"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let stored = app.wait_for_count(&app.key, 1, Duration::from_secs(5)).await;
    assert_eq!(stored.len(), 1, "one delivery, stored once: {stored:?}");
    let logs = app.logs().join("\n");
    assert!(!logs.contains(secret), "the secret never reaches a log line");
}

#[tokio::test]
async fn s5_stale_and_future_timestamps_are_refused_and_rotation_overlaps_then_ends() {
    let app = TestApp::spawn();
    let old = "whsec_test_old";
    let id = create(&app, "acme", "stripe", old);
    let body = r#"{"id":"evt_stripe_1","type":"invoice.paid","created":1700000000}"#;
    let stripe = |secret: &str, t: i64| webhooks::stripe(secret, t, body);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    refused(deliver(&app, &id, &stripe(old, now - 301), body).await).await;
    assert_eq!(deliver(&app, &id, &stripe(old, now), body).await.status(), 202);

    // Rotation: both secrets verify during the overlap...
    let new = "whsec_test_new";
    let out = sources(&app, &["rotate", &id, "--secret", "-", "--overlap", "2s"], new);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(deliver(&app, &id, &stripe(old, now), body).await.status(), 202);
    assert_eq!(deliver(&app, &id, &stripe(new, now), body).await.status(), 202);
    // ...and the old one stops after it.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    refused(deliver(&app, &id, &stripe(old, now), body).await).await;
    assert_eq!(deliver(&app, &id, &stripe(new, now), body).await.status(), 202);

    // Standard Webhooks checks the future as well as the past.
    let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sw = create(&app, "acme", "standard-webhooks", key);
    let body = r#"{"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{}}"#;
    let signed = |t: i64| webhooks::standard_webhooks(key, "msg_1", t, body);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    refused(deliver(&app, &sw, &signed(now + 301), body).await).await;
    refused(deliver(&app, &sw, &signed(now - 301), body).await).await;
    assert_eq!(deliver(&app, &sw, &signed(now), body).await.status(), 202);
}

#[tokio::test]
async fn s1_slack_gets_its_challenge_and_forged_deliveries_are_limited_per_address() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_THROTTLE__AUTH_FAILURE_BURST", "3"),
        ("SLUICE_THROTTLE__AUTH_FAILURES_PER_MINUTE", "1"),
    ]);
    let secret = "slack-signing-secret";
    let id = create(&app, "acme", "slack", secret);
    let body = r#"{"type":"url_verification","challenge":"3eZbrw1aB"}"#;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let t = now.to_string();
    let r = deliver(&app, &id, &webhooks::slack(secret, now, body), body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["challenge"], "3eZbrw1aB");
    assert!(app.list_all(&app.key).await.is_empty(), "a challenge stores nothing");

    let forged = [
        ("x-slack-signature", "v0=00".to_owned()),
        ("x-slack-request-timestamp", t),
    ];
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(deliver(&app, &id, &forged, body).await.status().as_u16());
    }
    // Three failures spend the bucket; the one that finds it empty blocks the address (as a
    // failed API key does), and from then on forgeries get 429 before any secret is read.
    assert_eq!(&statuses[..4], &[401, 401, 401, 401], "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn s1_sources_list_never_shows_a_secret_and_bad_input_is_refused() {
    let app = TestApp::spawn();
    let secret = "shhh-do-not-print";
    let id = create(&app, "acme", "shopify", secret);
    for format in ["table", "json"] {
        let out = sources(&app, &["list", "--output", format], "");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&id) && text.contains("shopify"), "{text}");
        assert!(!text.contains(secret), "{text}");
    }
    let refuses = |args: &[&str], stdin: &str| {
        let out = sources(&app, args, stdin);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    };
    refuses(
        &[
            "create",
            "--tenant",
            "Not A Tenant",
            "--kind",
            "github",
            "--secret",
            "-",
        ],
        secret,
    );
    refuses(&["create", "--tenant", "acme", "--kind", "github", "--secret", "-"], "");
    refuses(
        &[
            "create",
            "--tenant",
            "acme",
            "--kind",
            "standard-webhooks",
            "--secret",
            "-",
        ],
        "whsec_!!!",
    );
    refuses(
        &["create", "--tenant", "acme", "--kind", "hmac-sha256", "--secret", "-"],
        secret,
    );
    let out = sources(
        &app,
        &["rotate", "src_01jaaaaaaaaaaaaaaaaaaaaaaa", "--secret", "-"],
        "x",
    );
    assert_eq!(out.status.code(), Some(3), "an unknown source is not found");
}
