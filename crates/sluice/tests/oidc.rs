//! OIDC JWTs for user-facing clients (S-1), end to end: the real binary with `[auth.oidc]` set
//! through the environment, a JWKS file, and tokens signed in the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::{BIN, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const ISSUER: &str = "https://idp.test/pool-1";
const AUDIENCE: &str = "sluice-web";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sluice-core/testdata/oidc")
        .join(name)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(tenant: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-of-{tenant}"),
        "iat": now(), "exp": now() + 600, "custom:tenant": tenant, "token_use": "id",
    })
}

fn sign_with(pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixture(pem)).unwrap()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn sign(claims: &Value) -> String {
    sign_with("rsa1.pem", "test-key-1", claims)
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn spawn() -> TestApp {
    let jwks = fixture("jwks.json");
    TestApp::spawn_with(&[
        ("SLUICE_AUTH__OIDC__ISSUER", ISSUER),
        ("SLUICE_AUTH__OIDC__AUDIENCES", AUDIENCE),
        ("SLUICE_AUTH__OIDC__JWKS_FILE", jwks.to_str().unwrap()),
    ])
}

async fn problem_401(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 401);
    let mut body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    body.as_object_mut().unwrap().remove("request_id");
    body
}

#[tokio::test]
async fn s1_jwt_from_the_configured_issuer_ingests_and_reads_its_own_tenant() {
    let app = spawn();
    let acme_jwt = sign(&claims("acme"));
    let r = app
        .post(&acme_jwt, r#"{"type":"order.created","data":{"by":"jwt"}}"#)
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let event = app.wait_for_event(&acme_jwt, &id, WAIT).await;
    assert_eq!(event["data"], json!({"by": "jwt"}));
    // The JWT's tenant is the API key's tenant: same data, both ways.
    assert_eq!(app.get(&app.key, &format!("/v1/events/{id}")).await.status(), 200);
    let listed = app.list_all(&acme_jwt).await;
    assert_eq!(listed.len(), 1);
    // Another tenant, by JWT or by key, sees nothing of it.
    let other_jwt = sign(&claims("other"));
    assert_eq!(app.get(&other_jwt, &format!("/v1/events/{id}")).await.status(), 404);
    assert_eq!(app.get(&app.other_key, &format!("/v1/events/{id}")).await.status(), 404);
    assert!(app.list_all(&other_jwt).await.is_empty());
    // API keys keep working next to JWTs.
    assert_eq!(app.post(&app.key, r#"{"type":"a","data":1}"#).await.status(), 202);
    // The token never reaches the log; the subject does, as the principal.
    let logs = app.logs().join("\n");
    assert!(!logs.contains(&acme_jwt), "token logged");
    assert!(!logs.contains(acme_jwt.rsplit('.').next().unwrap()), "signature logged");
    assert!(logs.contains("jwt:user-of-acme"), "principal not in the access log");
}

#[tokio::test]
async fn s1_expired_wrong_audience_or_foreign_jwts_get_the_same_401() {
    let app = spawn();
    let body = r#"{"type":"a","data":1}"#;
    let reference = problem_401(app.post("key_01jabcdefghjkmnpqrstvwxyz0.x", body).await).await;
    let bad = [
        ("expired", sign(&with(claims("acme"), "exp", json!(now() - 3600)))),
        (
            "wrong audience",
            sign(&with(claims("acme"), "aud", json!("someone-else"))),
        ),
        (
            "wrong issuer",
            sign(&with(claims("acme"), "iss", json!("https://evil.test"))),
        ),
        ("not yet valid", sign(&with(claims("acme"), "nbf", json!(now() + 3600)))),
        ("no tenant", sign(&with(claims("acme"), "custom:tenant", json!(null)))),
        ("unknown key", sign_with("rsa2.pem", "test-key-2", &claims("acme"))),
        ("forged kid", sign_with("rsa2.pem", "test-key-1", &claims("acme"))),
    ];
    for (what, token) in &bad {
        assert_eq!(problem_401(app.post(token, body).await).await, reference, "{what}");
        assert_eq!(app.get(token, "/v1/events").await.status(), 401, "{what}");
    }
    // Nothing was accepted.
    assert!(app.list_all(&app.key).await.is_empty());
}

#[tokio::test]
async fn s1_serve_refuses_to_start_with_unsafe_oidc_settings() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = fixture("jwks.json");
    let cases: [(&str, &str, &str); 3] = [
        ("SLUICE_AUTH__OIDC__ALGORITHMS", "HS256", "HS256"),
        ("SLUICE_AUTH__OIDC__AUDIENCES", "", "audience"),
        ("SLUICE_AUTH__OIDC__JWKS_FILE", "/nonexistent/jwks.json", "JWKS"),
    ];
    for (k, v, expected) in cases {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("SLUICE_AUTH__OIDC__ISSUER", ISSUER)
            .env("SLUICE_AUTH__OIDC__AUDIENCES", AUDIENCE)
            .env("SLUICE_AUTH__OIDC__JWKS_FILE", &jwks)
            .env(k, v)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("sluice serve started with {k}={v}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "{k}={v}");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains(expected), "{k}={v}: {err}");
    }
}
