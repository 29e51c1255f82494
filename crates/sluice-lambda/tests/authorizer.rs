//! The authorizer on moto's DynamoDB, fed API Gateway's REST (`REQUEST`, `TOKEN`) and HTTP API
//! (v2) authorizer events (S-1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_lambda_events::apigw::{ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerSimpleResponse};
use common::*;
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use sluice_aws::testing::CallRecorder;
use sluice_core::ports::KeyStore;
use sluice_lambda::RecordingEnv;
use sluice_lambda::authorizer::{Authorizer, AuthorizerConfig, AuthorizerError};
use time::OffsetDateTime;

async fn authorizer(d: &Deployment) -> Authorizer {
    let env = d.env();
    let config = AuthorizerConfig::from_lookup(&|k| env.get(k)).unwrap();
    Authorizer::init(&config, &d.clients(&CallRecorder::new()))
        .await
        .unwrap()
}

fn rest(authorization: &str) -> Value {
    fixture_json("authorizer-rest-request.json", &[("__AUTHORIZATION__", authorization)])
}

fn v2(authorization: &str) -> Value {
    fixture_json(
        "authorizer-http-v2-request.json",
        &[("__AUTHORIZATION__", authorization)],
    )
}

fn assert_unauthorized(r: Result<Value, AuthorizerError>) {
    match r {
        Err(e @ AuthorizerError::Unauthorized) => {
            let d = Diagnostic::from(e);
            assert_eq!(
                d.error_message, "Unauthorized",
                "API Gateway's 401 needs exactly this message"
            );
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn s1_a_valid_key_gets_a_stage_wide_allow_policy_with_the_tenant_in_the_context() {
    let d = Deployment::new().await;
    let (key, record) = d.key("acme", None).await;
    let auth = authorizer(&d).await;
    let out = auth.handle(rest(&format!("Bearer {}", key.expose()))).await.unwrap();
    // The response has API Gateway's shape.
    let typed: ApiGatewayCustomAuthorizerResponse = serde_json::from_value(out.clone()).unwrap();
    assert_eq!(typed.principal_id.as_deref(), Some(record.id.as_str()));
    assert_eq!(
        out["policyDocument"],
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": "arn:aws:execute-api:eu-west-1:123456789012:s4x3opwd6i/prod/*",
            }],
        })
    );
    assert_eq!(out["context"], json!({"tenant": "acme", "key_id": record.id.as_str()}));
    // D-1: the tenant's usage-plan key, so API Gateway applies the tenant's plan; derived from the
    // API (of the method ARN) and the tenant, nothing of the credential.
    let acme = sluice_core::Tenant::parse("acme").unwrap();
    assert_eq!(
        out["usageIdentifierKey"],
        sluice_core::ports::usage_key("s4x3opwd6i", &acme)
    );
    assert!(!out.to_string().contains(key.expose()), "the key is never echoed");

    // x-api-key is not read (one contract: Authorization: Bearer); the TOKEN authorizer type is.
    let mut event = rest("");
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove("Authorization");
    headers.insert("X-Api-Key".into(), json!(key.expose()));
    event["multiValueHeaders"]
        .as_object_mut()
        .unwrap()
        .remove("Authorization");
    assert_unauthorized(auth.handle(event).await);
    let token = fixture_json(
        "authorizer-rest-token.json",
        &[("__AUTHORIZATION__", &format!("Bearer {}", key.expose()))],
    );
    let out = auth.handle(token).await.unwrap();
    assert_eq!(
        out["policyDocument"]["Statement"][0]["Resource"],
        "arn:aws:execute-api:eu-west-1:123456789012:s4x3opwd6i/prod/*"
    );
}

#[tokio::test]
async fn s1_http_api_gets_a_simple_response() {
    let d = Deployment::new().await;
    let (key, record) = d.key("globex", None).await;
    let auth = authorizer(&d).await;
    let out = auth.handle(v2(&format!("Bearer {}", key.expose()))).await.unwrap();
    let typed: ApiGatewayV2CustomAuthorizerSimpleResponse = serde_json::from_value(out.clone()).unwrap();
    assert!(typed.is_authorized);
    assert_eq!(
        out["context"],
        json!({"tenant": "globex", "key_id": record.id.as_str()})
    );
    let refused = auth
        .handle(v2("Bearer key_01J00000000000000000000000.nope"))
        .await
        .unwrap();
    assert_eq!(refused, json!({"isAuthorized": false, "context": {}}));
}

#[tokio::test]
async fn s1_wrong_unknown_revoked_expired_missing_and_ambiguous_credentials_are_unauthorized() {
    let d = Deployment::new().await;
    let (key, _) = d.key("acme", None).await;
    let (revoked, revoked_record) = d.key("acme", None).await;
    d.store()
        .revoke(&revoked_record.id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let (expired, _) = d
        .key("acme", Some(OffsetDateTime::now_utc() - time::Duration::seconds(1)))
        .await;
    let auth = authorizer(&d).await;

    let mut wrong = key.expose().to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    for credential in [
        format!("Bearer {wrong}"),
        "Bearer key_01J00000000000000000000000.unknown".to_owned(),
        format!("Bearer {}", revoked.expose()),
        format!("Bearer {}", expired.expose()),
        format!("Basic {}", key.expose()),
        "Bearer ".to_owned(),
        String::new(),
    ] {
        assert_unauthorized(auth.handle(rest(&credential)).await);
        let v2_out = auth.handle(v2(&credential)).await.unwrap();
        assert_eq!(v2_out["isAuthorized"], false, "{credential:?}");
    }
    // Two Authorization values: refused even though one is valid.
    let mut event = rest(&format!("Bearer {}", key.expose()));
    event["multiValueHeaders"]["Authorization"] =
        json!([format!("Bearer {}", key.expose()), format!("Bearer {wrong}")]);
    assert_unauthorized(auth.handle(event).await);
}

#[tokio::test]
async fn s1_malformed_events_and_an_unreadable_key_store_are_errors_never_an_allow() {
    let d = Deployment::new().await;
    let (key, _) = d.key("acme", None).await;
    let auth = authorizer(&d).await;
    for event in [
        json!({}),
        json!("not an event"),
        json!({"type": "REQUEST", "methodArn": "arn:aws:lambda:eu-west-1:1:function:x", "requestContext": {}}),
        json!({"type": "REQUEST", "requestContext": 7}),
    ] {
        let r = auth.handle(event.clone()).await;
        assert!(matches!(r, Err(AuthorizerError::Malformed(_))), "{event}: {r:?}");
    }
    let mut bad_arn = rest(&format!("Bearer {}", key.expose()));
    bad_arn["methodArn"] = json!("arn:aws:execute-api:eu-west-1:123456789012:*");
    assert!(matches!(auth.handle(bad_arn).await, Err(AuthorizerError::Malformed(_))));

    // A keys table that does not exist: the key cannot be checked, so no allow and no cached deny.
    let env = RecordingEnv::new([("SLUICE_KEYS_TABLE", "no-such-table")]);
    let config = AuthorizerConfig::from_lookup(&|k| env.get(k)).unwrap();
    let broken = Authorizer::init(&config, &d.clients(&CallRecorder::new()))
        .await
        .unwrap();
    let r = broken.handle(rest(&format!("Bearer {}", key.expose()))).await;
    let Err(e @ AuthorizerError::Unavailable(_)) = r else {
        panic!("expected Unavailable, got {r:?}");
    };
    let diag = Diagnostic::from(e);
    assert_ne!(diag.error_message, "Unauthorized");
    assert!(
        !diag.error_message.contains("no-such-table"),
        "no internals in the error"
    );
}

#[tokio::test]
async fn s1_the_authorizer_needs_its_keys_table() {
    let env = RecordingEnv::new::<&str, &str>([]);
    let e = AuthorizerConfig::from_lookup(&|k| env.get(k)).unwrap_err();
    assert_eq!(e.to_string(), "environment variable SLUICE_KEYS_TABLE is not set");
}

fn bearer_jwt(claims: &Value) -> String {
    format!(
        "Bearer {}",
        jwt(jsonwebtoken::Algorithm::RS256, "test-key-1", "rsa1.pem", claims)
    )
}

#[tokio::test]
async fn s1_a_valid_jwt_from_the_configured_issuer_is_allowed_with_its_tenant_claim() {
    let d = Deployment::new().await;
    let auth = authorizer(&d).await;
    let out = auth.handle(rest(&bearer_jwt(&claims("initech")))).await.unwrap();
    assert_eq!(out["context"]["tenant"], "initech");
    let key_id = out["context"]["key_id"].as_str().unwrap();
    assert!(key_id.starts_with("jwt:"), "{key_id}");
    let v2_out = auth.handle(v2(&bearer_jwt(&claims("initech")))).await.unwrap();
    assert_eq!(v2_out["isAuthorized"], true);
    assert_eq!(v2_out["context"]["tenant"], "initech");
}

#[tokio::test]
async fn s1_expired_foreign_wrongly_signed_or_tenantless_jwts_are_unauthorized() {
    let d = Deployment::new().await;
    let auth = authorizer(&d).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let with = |k: &str, v: Value| {
        let mut c = claims("initech");
        c[k] = v;
        c
    };
    let mut no_tenant = claims("initech");
    no_tenant.as_object_mut().unwrap().remove("custom:tenant");
    let refused = [
        ("expired", bearer_jwt(&with("exp", json!(now - 3600)))),
        ("wrong audience", bearer_jwt(&with("aud", json!("client-z")))),
        (
            "wrong issuer",
            bearer_jwt(&with("iss", json!("https://evil.test/pool"))),
        ),
        ("no tenant claim", bearer_jwt(&no_tenant)),
        ("invalid tenant", bearer_jwt(&with("custom:tenant", json!("a#b")))),
        (
            "wrong key",
            format!(
                "Bearer {}",
                jwt(
                    jsonwebtoken::Algorithm::RS256,
                    "test-key-1",
                    "rsa2.pem",
                    &claims("initech")
                )
            ),
        ),
        (
            "algorithm not allowed",
            format!(
                "Bearer {}",
                jwt(
                    jsonwebtoken::Algorithm::RS384,
                    "test-key-1",
                    "rsa1.pem",
                    &claims("initech")
                )
            ),
        ),
        ("alg none", {
            use base64::Engine as _;
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "Bearer {}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": "test-key-1"})),
                b64(&claims("initech"))
            )
        }),
    ];
    for (what, credential) in refused {
        let r = auth.handle(rest(&credential)).await;
        assert!(matches!(r, Err(AuthorizerError::Unauthorized)), "{what}: {r:?}");
        assert_eq!(
            auth.handle(v2(&credential)).await.unwrap()["isAuthorized"],
            false,
            "{what}"
        );
    }
}

#[tokio::test]
async fn s1_without_an_oidc_issuer_jwts_are_unauthorized_and_a_half_configured_issuer_fails_init() {
    let d = Deployment::new().await;
    let env = RecordingEnv::new([("SLUICE_KEYS_TABLE", d.resources.keys_table.as_str())]);
    let config = AuthorizerConfig::from_lookup(&|k| env.get(k)).unwrap();
    assert!(config.oidc.is_none());
    let auth = Authorizer::init(&config, &d.clients(&CallRecorder::new()))
        .await
        .unwrap();
    assert_unauthorized(auth.handle(rest(&bearer_jwt(&claims("initech")))).await);

    let env = RecordingEnv::new([
        ("SLUICE_KEYS_TABLE", "keys"),
        ("SLUICE_OIDC_ISSUER", OIDC_ISSUER),
        ("SLUICE_OIDC_AUDIENCE", "client-a"),
    ]);
    let e = AuthorizerConfig::from_lookup(&|k| env.get(k)).unwrap_err();
    assert!(e.to_string().contains("SLUICE_OIDC_JWKS"), "{e}");
    let env = RecordingEnv::new([("SLUICE_KEYS_TABLE", "keys"), ("SLUICE_OIDC_ISSUER", OIDC_ISSUER)]);
    assert!(
        AuthorizerConfig::from_lookup(&|k| env.get(k)).is_err(),
        "an issuer without an audience"
    );
}
