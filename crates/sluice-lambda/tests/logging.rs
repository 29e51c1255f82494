//! I-1 on AWS: the Lambda functions log through `sluice_host::telemetry`'s redacting subscriber,
//! configured as the Lambda service configures them (`AWS_LAMBDA_LOG_FORMAT`) plus
//! `SLUICE_LOG_REDACT`, and their lines mask configured fields and never carry a key or a body.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;
use sluice_aws::testing::CallRecorder;
use sluice_host::telemetry::MemorySink;
use sluice_lambda::authorizer::{Authorizer, AuthorizerConfig};
use sluice_lambda::ingest::{self, IngestConfig};
use sluice_lambda::process::{ProcessConfig, ProcessFunction};

const IBAN: &str = "DE89370400440532013000";

// One thread, so the subscriber set for this test sees every line the handlers write.
#[tokio::test(flavor = "current_thread")]
async fn i1_lambda_log_lines_mask_configured_fields_and_never_carry_a_key_or_a_body() {
    let d = Deployment::new().await;
    let (key, _) = d.key("acme", None).await;
    let base = d.env();
    let env = move |k: &str| match k {
        "AWS_LAMBDA_LOG_FORMAT" => Some("JSON".to_owned()),
        "AWS_LAMBDA_LOG_LEVEL" => Some("DEBUG".to_owned()),
        "SLUICE_LOG_REDACT" => Some("password, customer_iban".to_owned()),
        other => base.get(other),
    };
    let ingest_config = IngestConfig::from_lookup(&env).unwrap();
    // What CloudWatch would receive.
    let capture = MemorySink::default();
    let _logging = tracing::subscriber::set_default(
        sluice_host::telemetry::subscriber(&ingest_config.log, capture.clone()).unwrap(),
    );

    // The authorizer allows the key; a wrong secret for the same key id is refused.
    let authorizer = Authorizer::init(
        &AuthorizerConfig::from_lookup(&env).unwrap(),
        &d.clients(&CallRecorder::new()),
    )
    .await
    .unwrap();
    let bearer = format!("Bearer {}", key.expose());
    let allow = authorizer
        .handle(fixture_json(
            "authorizer-rest-request.json",
            &[("__AUTHORIZATION__", &bearer)],
        ))
        .await
        .unwrap();
    let (tenant, key_id) = (
        allow["context"]["tenant"].as_str().unwrap().to_owned(),
        allow["context"]["key_id"].as_str().unwrap().to_owned(),
    );
    let forged = format!("Bearer {key_id}.not-the-secret-{IBAN}");
    assert!(
        authorizer
            .handle(fixture_json(
                "authorizer-rest-request.json",
                &[("__AUTHORIZATION__", &forged)]
            ))
            .await
            .is_err()
    );

    // Ingest: an event whose data holds secrets, and a request whose path carries one.
    let router = ingest::router(
        ingest::init(&ingest_config, &d.clients(&CallRecorder::new()))
            .await
            .unwrap(),
    );
    let body = format!(r#"{{"type":"user.signed_up","data":{{"password":"hunter2","customer_iban":"{IBAN}"}}}}"#);
    let ctx = [("__TENANT__", tenant.as_str()), ("__KEY_ID__", key_id.as_str())];
    let res = call_http(
        router.clone(),
        &fixture("ingest-rest-post.json", &[ctx[0], ctx[1], ("__BODY__", &body)]),
    )
    .await;
    assert_eq!(res["statusCode"], 202, "{res}");
    let mut stray = fixture_json("ingest-rest-post.json", &[ctx[0], ctx[1], ("__BODY__", "{}")]);
    stray["path"] = Value::String(format!("/v1/events;customer_iban={IBAN}"));
    let res = call_http(router, &stray.to_string()).await;
    assert_eq!(res["statusCode"], 404, "{res}");

    // Process: the record is stored and logged.
    let process = ProcessFunction::init(
        &ProcessConfig::from_lookup(&env).unwrap(),
        &d.clients(&CallRecorder::new()),
    )
    .await
    .unwrap();
    let messages = d.receive(&d.resources.queue_url, 1).await;
    assert_eq!(messages.len(), 1);
    let arn = format!("arn:aws:sqs:{}:123456789012:events", sluice_aws::testing::REGION);
    let response = process.handle(sqs_event(&arn, &messages)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    let out = capture.text();
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let message = |m: &str| lines.iter().any(|l| l["message"] == m);
    assert!(message("request") && message("record processed"), "{out}");
    let stray_line = lines
        .iter()
        .find(|l| l["status"] == 404)
        .unwrap_or_else(|| panic!("no access line for the 404: {out}"));
    assert_eq!(
        stray_line["path"], "/v1/events;customer_iban=[REDACTED]",
        "the configured field is masked"
    );
    for secret in [key.expose(), "hunter2", IBAN, "not-the-secret"] {
        assert!(!out.contains(secret), "{secret} leaked into {out}");
    }
    for body_fragment in [r#"signed_up","data"#, r#"signed_up\",\"data"#] {
        assert!(!out.contains(body_fragment), "no body in the log: {out}");
    }
}
