//! The admin listener's console API on the real binary (issue 17; threats S-8, T-6, I-7): admin
//! tokens only, a session cookie that scripts cannot read and other sites cannot send, CSRF
//! refused, strict security headers, nothing of it on the public listener, and every action
//! logged with who did it. The browser tests (`tests/browser/`) drive the pages themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::{TestApp, sluice};
use serde_json::{Value, json};
use sluice_core::envelope::{Envelope, attr};
use sluice_core::ports::Queue as _;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A client that keeps no cookies: each test passes its cookie by hand.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn admin_origin(app: &TestApp) -> String {
    app.admin_url("").trim_end_matches('/').to_owned()
}

/// Logs in with `token`: the status and the session cookie (`name=value`).
async fn login(app: &TestApp, token: &str) -> (u16, Option<String>, Option<String>) {
    let r = client()
        .post(app.admin_url("/admin/api/session"))
        .header("origin", admin_origin(app))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    let set_cookie = r.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    let cookie = set_cookie
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    (r.status().as_u16(), cookie, set_cookie)
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    client()
        .get(app.admin_url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn post(app: &TestApp, cookie: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(app.admin_url(path))
        .header("cookie", cookie)
        .header("origin", admin_origin(app))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn s8_only_an_admin_token_opens_the_console_and_a_revoked_one_closes_it() {
    let app = TestApp::spawn();
    // No session: every API route is a 401.
    for path in [
        "/admin/api/session",
        "/admin/api/overview",
        "/admin/api/keys",
        "/admin/api/dead-letters",
    ] {
        let r = client().get(app.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // A tenant API key, a made-up token: refused alike.
    for token in [app.key.as_str(), "adm_01jabcdefghjkmnpqrstvwxyz0.nope", ""] {
        let (status, cookie, _) = login(&app, token).await;
        assert_eq!((status, cookie), (401, None), "{token}");
    }
    let token = sluice(&app.data_dir, &["admin", "token", "create", "--label", "ops"])
        .trim()
        .to_owned();
    let listed = sluice(&app.data_dir, &["admin", "token", "list", "--output", "json"]);
    assert!(
        listed.contains("ops") && !listed.contains(token.split_once('.').unwrap().1),
        "{listed}"
    );
    let (status, cookie, set_cookie) = login(&app, &token).await;
    assert_eq!(status, 204);
    let set_cookie = set_cookie.unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    let cookie = cookie.unwrap();
    let me: Value = get(&app, &cookie, "/admin/api/session").await.json().await.unwrap();
    assert_eq!(me["label"], "ops");
    assert!(me["token_id"].as_str().unwrap().starts_with("adm_"));
    let overview = get(&app, &cookie, "/admin/api/overview").await;
    assert_eq!(overview.status(), 200);
    let overview: Value = overview.json().await.unwrap();
    assert!(overview["queue"]["visible"].is_u64(), "{overview}");
    // Revoking the token ends its session at once.
    sluice(
        &app.data_dir,
        &["admin", "token", "revoke", me["token_id"].as_str().unwrap()],
    );
    assert_eq!(get(&app, &cookie, "/admin/api/overview").await.status(), 401);
}

#[tokio::test]
async fn t6_state_changes_need_the_listeners_own_origin_and_json_and_are_logged_with_who() {
    let app = TestApp::spawn();
    let token = sluice(&app.data_dir, &["admin", "token", "create", "--label", "ops"])
        .trim()
        .to_owned();
    let (_, cookie, _) = login(&app, &token).await;
    let cookie = cookie.unwrap();
    let url = app.admin_url("/admin/api/keys");
    let body = r#"{"tenant":"mallory","label":"x"}"#;
    // What a cross-site page can send: a form post (no JSON), a foreign Origin, no Origin.
    let attempts = [
        client()
            .post(&url)
            .header("cookie", &cookie)
            .header("origin", admin_origin(&app))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("tenant=mallory&label=x"),
        client()
            .post(&url)
            .header("cookie", &cookie)
            .header("origin", "http://evil.example")
            .header("content-type", "application/json")
            .body(body),
        client()
            .post(&url)
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(body),
        client()
            .post(&url)
            .header("cookie", &cookie)
            .header("origin", admin_origin(&app))
            .header("content-type", "text/plain")
            .body(body),
    ];
    for a in attempts {
        let r = a.send().await.unwrap();
        assert_eq!(r.status(), 403);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "csrf_refused");
    }
    assert!(
        !sluice(&app.data_dir, &["keys", "list"]).contains("mallory"),
        "nothing changed"
    );
    // The console's own request creates the key, shown once, and it works on the public API.
    let r = post(
        &app,
        &cookie,
        "/admin/api/keys",
        json!({"tenant": "globex", "label": "from the console"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    assert_eq!(app.post(key, r#"{"type":"a","data":1}"#).await.status(), 202);
    let listed: Value = get(&app, &cookie, "/admin/api/keys").await.json().await.unwrap();
    assert!(
        !listed.to_string().contains(key.split_once('.').unwrap().1),
        "never the secret again"
    );
    // Logged with who did it.
    let me: Value = get(&app, &cookie, "/admin/api/session").await.json().await.unwrap();
    let admin = me["token_id"].as_str().unwrap().to_owned();
    app.wait_for_log(|l| l.contains("key created") && l.contains(&admin), WAIT)
        .await;
    // Revoke it from the console: the public API refuses it.
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        post(&app, &cookie, &format!("/admin/api/keys/{id}/revoke"), json!({}))
            .await
            .status(),
        204
    );
    let start = Instant::now();
    while app.post(key, r#"{"type":"a","data":2}"#).await.status() != 401 {
        assert!(start.elapsed() < WAIT, "the revoked key kept working");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn i7_console_responses_carry_a_strict_policy_and_nothing_of_it_is_on_the_public_listener() {
    let app = TestApp::spawn();
    for path in ["/console", "/console/assets/app.js", "/admin/api/session", "/nope"] {
        let r = client().get(app.admin_url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
    let page = client()
        .get(app.admin_url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/console/assets/app.js"),
        "the page loads its script from the listener"
    );
    assert!(
        !page.contains("<script>") && !page.contains(" onclick="),
        "no inline script in the page"
    );
    // Not on the public listener.
    for path in ["/console", "/admin/api/session", "/metrics"] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
}

/// A validly sealed event, dead-lettered with a reason, as the process step leaves one.
async fn dead_letter(app: &TestApp) -> String {
    let env = Envelope {
        source_ip: Some("203.0.113.9".into()),
        ..common::envelope("acme", "order.paid", "req-poison", json!({"amount": 7}))
    };
    let id = env.id;
    let mut m = common::local_sealer(&app.data_dir).seal(&env).unwrap();
    m.attributes
        .insert(attr::DLQ_REASON.into(), "store unavailable: disk full".into());
    let qdb = sluice_embedded::QueueDb::open(&app.data_dir.join("queue.db")).unwrap();
    qdb.queue("events-dlq", sluice_embedded::QueueConfig::default())
        .send(m)
        .await
        .unwrap();
    id.to_string()
}

#[tokio::test]
async fn dead_letters_show_their_reason_and_a_redriven_one_is_stored() {
    let app = TestApp::spawn();
    let token = sluice(&app.data_dir, &["admin", "token", "create"]).trim().to_owned();
    let (_, cookie, _) = login(&app, &token).await;
    let cookie = cookie.unwrap();
    let event_id = dead_letter(&app).await;
    let listed: Value = get(&app, &cookie, "/admin/api/dead-letters")
        .await
        .json()
        .await
        .unwrap();
    let m = &listed["messages"][0];
    assert_eq!(m["reason"], "store unavailable: disk full");
    assert_eq!(m["attributes"]["request_id"], "req-poison");
    assert_eq!(m["attributes"]["source_ip"], "203.0.113.9");
    let r = post(
        &app,
        &cookie,
        "/admin/api/dead-letters/redrive",
        json!({"message_ids": [m["message_id"]]}),
    )
    .await;
    let moved: Value = r.json().await.unwrap();
    assert_eq!(moved["moved"], 1);
    let stored = app.wait_for_event(&app.key, &event_id, WAIT).await;
    assert_eq!(stored["data"], json!({"amount": 7}));
    let found: Value = get(&app, &cookie, &format!("/admin/api/events?tenant=acme&id={event_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["events"][0]["id"], event_id.as_str());
    let empty: Value = get(&app, &cookie, "/admin/api/dead-letters")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["messages"], json!([]));
}

/// Every refusal of the admin API is a problem+json with its code and changes nothing: bad
/// bodies and parameters, unknown keys and sources, an unknown route.
#[tokio::test]
async fn admin_api_refusals_are_problems_and_change_nothing() {
    let app = TestApp::spawn();
    let token = sluice(&app.data_dir, &["admin", "token", "create"]).trim().to_owned();
    let (_, cookie, _) = login(&app, &token).await;
    let cookie = cookie.unwrap();
    let keys_before = sluice(&app.data_dir, &["keys", "list", "--output", "json"]);
    async fn refused(r: reqwest::Response, status: u16, code: &str, what: &str) {
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json"),
            "{what}"
        );
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], code, "{what}: {p}");
        assert!(p["request_id"].is_string(), "{what}");
    }
    // Log in: not the login body.
    let r = client()
        .post(app.admin_url("/admin/api/session"))
        .header("origin", admin_origin(&app))
        .json(&json!({"tok": 1}))
        .send()
        .await
        .unwrap();
    refused(r, 422, "validation_failed", "login without a token").await;
    // Events: the tenant is required and checked; limit and cursor are checked.
    for (query, code) in [
        ("", "invalid_parameter"),
        ("?tenant=Not%20A%20Tenant", "invalid_parameter"),
        ("?tenant=acme&limit=0", "invalid_parameter"),
        ("?tenant=acme&cursor=forged", "invalid_cursor"),
    ] {
        refused(
            get(&app, &cookie, &format!("/admin/api/events{query}")).await,
            400,
            code,
            query,
        )
        .await;
    }
    // Dead letters: a selection is needed, dropping all is not offered, ids are checked.
    for (path, body) in [
        ("/admin/api/dead-letters/redrive", json!({})),
        ("/admin/api/dead-letters/drop", json!({"all": true})),
        ("/admin/api/dead-letters/redrive", json!({"message_ids": [""]})),
        ("/admin/api/dead-letters/drop", json!({"message_ids": "m1"})),
    ] {
        refused(
            post(&app, &cookie, path, body.clone()).await,
            422,
            "validation_failed",
            &format!("{path} {body}"),
        )
        .await;
    }
    // Keys: a bad tenant or label; an unknown or malformed id.
    for body in [
        json!({"tenant": "Bad Tenant"}),
        json!({"tenant": "acme", "label": "a\u{7}b"}),
        json!({"label": "no tenant"}),
    ] {
        refused(
            post(&app, &cookie, "/admin/api/keys", body.clone()).await,
            422,
            "validation_failed",
            &body.to_string(),
        )
        .await;
    }
    for id in ["key_01jabcdefghjkmnpqrstvwxyz0", "nope"] {
        let path = format!("/admin/api/keys/{id}/revoke");
        refused(post(&app, &cookie, &path, json!({})).await, 404, "not_found", &path).await;
    }
    // Sources: a bad kind (the generic scheme is the CLI's), a bad secret; an unknown source.
    for body in [
        json!({"tenant": "acme", "kind": "carrier-pigeon", "secret": "s"}),
        json!({"tenant": "acme", "kind": "hmac-sha256", "secret": "s"}),
        json!({"tenant": "acme", "kind": "standard-webhooks", "secret": "whsec_!!not base64!!"}),
        json!({"tenant": "acme", "kind": "github", "secret": ""}),
    ] {
        refused(
            post(&app, &cookie, "/admin/api/sources", body.clone()).await,
            422,
            "validation_failed",
            &body.to_string(),
        )
        .await;
    }
    for id in ["src_01jabcdefghjkmnpqrstvwxyz0", "nope"] {
        let path = format!("/admin/api/sources/{id}/delete");
        refused(post(&app, &cookie, &path, json!({})).await, 404, "not_found", &path).await;
    }
    refused(
        get(&app, &cookie, "/admin/api/nope").await,
        404,
        "not_found",
        "unknown route",
    )
    .await;
    // Nothing changed.
    assert_eq!(
        sluice(&app.data_dir, &["keys", "list", "--output", "json"]),
        keys_before
    );
    let sources: Value = get(&app, &cookie, "/admin/api/sources").await.json().await.unwrap();
    assert_eq!(sources["sources"], json!([]));
}
