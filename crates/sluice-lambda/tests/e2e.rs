//! End to end on moto: authorizer → ingest → SQS → process → DynamoDB → query, each function
//! initialised from its environment with its own SDK clients, each client recording the AWS
//! operations it makes; the records must equal `functions.toml`. And a poison message that ends
//! in the DLQ with its attributes and the reason (T-2, R-2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_aws::testing::CallRecorder;
use sluice_core::envelope::attr;
use sluice_lambda::authorizer::{Authorizer, AuthorizerConfig};
use sluice_lambda::ingest::{self, IngestConfig};
use sluice_lambda::process::{ProcessConfig, ProcessFunction};
use sluice_lambda::query::{self, QueryConfig};

#[tokio::test]
async fn e2e_post_process_and_read_back_through_the_handlers_with_exactly_the_manifest_permissions() {
    let d = Deployment::new().await;
    let (key, record) = d.key("acme", None).await;

    // Authorizer: the REST event as API Gateway sends it.
    let (auth_env, auth_calls) = (d.env(), CallRecorder::new());
    let config = AuthorizerConfig::from_lookup(&|k| auth_env.get(k)).unwrap();
    let authorizer = Authorizer::init(&config, &d.clients(&auth_calls)).await.unwrap();
    let bearer = format!("Bearer {}", key.expose());
    let allow = authorizer
        .handle(fixture_json(
            "authorizer-rest-request.json",
            &[("__AUTHORIZATION__", &bearer)],
        ))
        .await
        .unwrap();
    let tenant = allow["context"]["tenant"].as_str().unwrap().to_owned();
    let key_id = allow["context"]["key_id"].as_str().unwrap().to_owned();
    assert_eq!((tenant.as_str(), key_id.as_str()), ("acme", record.id.as_str()));
    let ctx = [("__TENANT__", tenant.as_str()), ("__KEY_ID__", key_id.as_str())];

    // Ingest: one event over a REST API, a batch over an HTTP API with an Idempotency-Key, twice.
    let (ingest_env, ingest_calls) = (d.env(), CallRecorder::new());
    let config = IngestConfig::from_lookup(&|k| ingest_env.get(k)).unwrap();
    let router = ingest::router(ingest::init(&config, &d.clients(&ingest_calls)).await.unwrap());
    let one = r#"{"type":"order.created","data":{"amount":42}}"#;
    let res = call_http(
        router.clone(),
        &fixture("ingest-rest-post.json", &[ctx[0], ctx[1], ("__BODY__", one)]),
    )
    .await;
    assert_eq!(res["statusCode"], 202, "{res}");
    let first_id = body_json(&res)["id"].as_str().unwrap().to_owned();

    let batch = r#"[{"type":"order.paid","data":{"n":1}},{"type":"order.paid","data":{"n":2}}]"#;
    let mut event = fixture_json("ingest-http-v2-post.json", &[ctx[0], ctx[1], ("__BODY__", batch)]);
    event["headers"]["idempotency-key"] = json!("checkout-7");
    let first = call_http(router.clone(), &event.to_string()).await;
    let retry = call_http(router.clone(), &event.to_string()).await;
    assert_eq!(first["statusCode"], 202, "{first}");
    assert_eq!(retry["statusCode"], 202, "{retry}");
    assert_eq!(
        body_json(&first),
        body_json(&retry),
        "an idempotent retry gets the same ids"
    );
    let batch_ids: Vec<String> = body_json(&first)["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();

    // The queue holds three messages (the retry sent nothing), with their source attributes.
    let received = d.receive(&d.resources.queue_url, 3).await;
    assert_eq!(received.len(), 3, "{received:?}");
    let rest_msg = received
        .iter()
        .find(|m| attributes(m)[attr::EVENT_ID] == first_id)
        .unwrap();
    let a = attributes(rest_msg);
    assert_eq!(a[attr::TENANT], "acme");
    assert_eq!(
        a[attr::SOURCE_IP],
        "203.0.113.7",
        "from requestContext.identity.sourceIp"
    );
    assert_eq!(a[attr::REQUEST_ID], "77375676-xmpl-4b79-853a-f982474efe18");
    assert!(a[attr::SIGNATURE].starts_with("k2:"), "the first key of the ring signs");
    for name in [attr::RECEIVED_AT, attr::SIGNATURE] {
        assert!(!a[name].is_empty(), "{name}");
    }
    let v2_msg = received
        .iter()
        .find(|m| attributes(m)[attr::EVENT_ID] == batch_ids[0])
        .unwrap();
    assert_eq!(
        attributes(v2_msg)[attr::SOURCE_IP],
        "203.0.113.9",
        "from requestContext.http.sourceIp"
    );

    // Someone with queue access injects a tampered copy (T-2).
    let sqs = d.moto.sqs();
    let mut tampered = sqs
        .send_message()
        .queue_url(&d.resources.queue_url)
        .message_body(rest_msg.body().unwrap().replace("42", "4200"));
    for (k, v) in rest_msg.message_attributes().into_iter().flatten() {
        tampered = tampered.message_attributes(k, v.clone());
    }
    let tampered_id = tampered.send().await.unwrap().message_id().unwrap().to_owned();
    let mut batch_msgs = received.clone();
    batch_msgs.extend(d.receive(&d.resources.queue_url, 1).await);
    assert_eq!(batch_msgs.len(), 4);

    // Process: the SQS event Lambda would deliver. Everything succeeds or is dead-lettered.
    let (process_env, process_calls) = (d.env(), CallRecorder::new());
    let config = ProcessConfig::from_lookup(&|k| process_env.get(k)).unwrap();
    let process = ProcessFunction::init(&config, &d.clients(&process_calls))
        .await
        .unwrap();
    let arn = queue_arn(&d, &d.resources.queue_url).await;
    let event = sqs_event(&arn, &batch_msgs);
    let response = process.handle(event.clone()).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    // A redelivery of the valid records (a Lambda timeout after the writes) stores nothing twice:
    // the conditional put reports duplicates, which count as success.
    let again = process.handle(sqs_event(&arn, &batch_msgs[..3])).await.unwrap();
    assert!(again.batch_item_failures.is_empty(), "{again:?}");

    let dead = d.receive(&d.resources.dlq_url, 1).await;
    assert_eq!(dead.len(), 1, "only the tampered message is dead-lettered");
    let da = attributes(&dead[0]);
    assert_eq!(
        da[attr::DLQ_REASON],
        "envelope rejected: the signature does not match the body"
    );
    assert_eq!(da[attr::TENANT], "acme");
    assert_eq!(da[attr::EVENT_ID], first_id);
    assert_eq!(da[attr::REQUEST_ID], "77375676-xmpl-4b79-853a-f982474efe18");
    assert!(!da[attr::DLQ_AT].is_empty());
    assert!(dead[0].body().unwrap().contains("4200"), "the body is kept as received");
    assert_ne!(
        dead[0].message_id(),
        Some(tampered_id.as_str()),
        "a new DLQ message, not a redrive"
    );

    // Query: one event over REST, a page over the HTTP API, then its cursor.
    let (query_env, query_calls) = (d.env(), CallRecorder::new());
    let config = QueryConfig::from_lookup(&|k| query_env.get(k)).unwrap();
    let router = query::router(
        query::init(&config, &d.clients(&query_calls)).await.unwrap(),
        &config.tenant_claim,
    );
    let got = call_http(
        router.clone(),
        &fixture("query-rest-get.json", &[ctx[0], ctx[1], ("__EVENT_ID__", &first_id)]),
    )
    .await;
    assert_eq!(got["statusCode"], 200, "{got}");
    let event = body_json(&got);
    assert_eq!(
        event["data"],
        json!({"amount": 42}),
        "the stored data is the original, not the tampered copy"
    );
    assert_eq!(event["type"], "order.created");

    let page = call_http(
        router.clone(),
        &fixture("query-http-v2-list.json", &[ctx[0], ctx[1], ("__QUERY__", "limit=2")]),
    )
    .await;
    assert_eq!(page["statusCode"], 200, "{page}");
    let page = body_json(&page);
    let ids = |p: &Value| -> Vec<String> {
        p["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&page),
        vec![batch_ids[1].clone(), batch_ids[0].clone()],
        "newest first"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = call_http(
        router.clone(),
        &fixture(
            "query-http-v2-list.json",
            &[ctx[0], ctx[1], ("__QUERY__", &format!("limit=2&cursor={cursor}"))],
        ),
    )
    .await;
    assert_eq!(
        ids(&body_json(&next)),
        vec![first_id.clone()],
        "exactly three events, each once"
    );

    // The feed, a deletion (forgetting its idempotency record), an erasure: the query
    // function's writes, over the HTTP API.
    let request = |method: &str, route: &str, path: &str, query: &str, body: &str| {
        fixture(
            "query-http-v2-request.json",
            &[
                ctx[0],
                ctx[1],
                ("__METHOD__", method),
                ("__ROUTE__", route),
                ("__PATH__", path),
                ("__QUERY__", query),
                ("__BODY__", body),
            ],
        )
    };
    let feed = call_http(router.clone(), &request("GET", "/v1/feed", "/v1/feed", "after=0", "")).await;
    assert_eq!(feed["statusCode"], 200, "{feed}");
    let feed = body_json(&feed);
    let seqs: Vec<u64> = feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 3, "{feed}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let checkpoint = feed["next_after"].as_u64().unwrap();
    let path = format!("/v1/events/{}", batch_ids[0]);
    let deleted = call_http(router.clone(), &request("DELETE", "/v1/events/{id}", &path, "", "")).await;
    assert_eq!(deleted["statusCode"], 204, "{deleted}");
    let after = call_http(
        router.clone(),
        &request("GET", "/v1/feed", "/v1/feed", &format!("after={checkpoint}&wait=1"), ""),
    )
    .await;
    let after = body_json(&after);
    assert_eq!(after["entries"][0]["deleted"], batch_ids[0].as_str(), "{after}");
    let erased = call_http(
        router.clone(),
        &request(
            "POST",
            "/v1/erasures",
            "/v1/erasures",
            "",
            r#"{"subject":"user/nobody"}"#,
        ),
    )
    .await;
    assert_eq!(erased["statusCode"], 202, "{erased}");
    assert_eq!(body_json(&erased)["status"], "completed");
    let stream = call_http(
        router.clone(),
        &request("GET", "/v1/feed/stream", "/v1/feed/stream", "", ""),
    )
    .await;
    assert_eq!(
        stream["statusCode"], 404,
        "Lambda serves the long-poll, not a stream: {stream}"
    );

    // S-1, HTTP API with its native JWT authorizer: the tenant is the verified claim named by
    // SLUICE_OIDC_TENANT_CLAIM (custom:tenant by default), so a token of another tenant sees
    // none of these events, and a token without the claim gets a 401.
    let jwt = |tenant: &str| {
        fixture(
            "query-http-v2-jwt-list.json",
            &[("__TENANT__", tenant), ("__QUERY__", "limit=10")],
        )
    };
    let page = call_http(router.clone(), &jwt(ctx[0].1)).await;
    assert_eq!(page["statusCode"], 200, "{page}");
    assert_eq!(
        ids(&body_json(&page)).len(),
        2,
        "the token's tenant's events, the deleted one gone"
    );
    let other = call_http(router.clone(), &jwt("globex")).await;
    assert_eq!(
        ids(&body_json(&other)),
        Vec::<String>::new(),
        "another tenant's token sees nothing"
    );
    let no_tenant = call_http(router.clone(), &jwt("Not A Tenant")).await;
    assert_eq!(no_tenant["statusCode"], 401, "{no_tenant}");

    // Exactly the manifest: every variable read and every AWS operation called, per function.
    for (function, env, calls) in [
        ("authorizer", &auth_env, &auth_calls),
        ("ingest", &ingest_env, &ingest_calls),
        ("process", &process_env, &process_calls),
        ("query", &query_env, &query_calls),
    ] {
        // The standard AWS_* variables the Lambda service sets are not the manifest's to list.
        let read: std::collections::BTreeSet<String> =
            env.read().into_iter().filter(|v| !v.starts_with("AWS_")).collect();
        assert_eq!(read, manifest_list(function, "env"), "{function}: env");
        assert_eq!(
            calls.iam_actions(),
            manifest_list(function, "actions"),
            "{function}: actions"
        );
    }
}

#[tokio::test]
async fn t2_a_poison_record_whose_dead_lettering_fails_is_reported_for_retry_not_lost() {
    let d = Deployment::new().await;
    let env = d.env();
    let recorder = CallRecorder::new();
    let mut config_env: Vec<(String, String)> = ["SLUICE_TABLE", "SLUICE_SIGNING_KEY_PARAM"]
        .iter()
        .map(|k| (k.to_string(), env.get(k).unwrap()))
        .collect();
    // A DLQ that does not exist: the send fails.
    config_env.push((
        "SLUICE_DLQ_URL".into(),
        format!("{}/123456789012/no-such-dlq", d.moto.endpoint()),
    ));
    let env = sluice_lambda::RecordingEnv::new(config_env);
    let config = ProcessConfig::from_lookup(&|k| env.get(k)).unwrap();
    let process = ProcessFunction::init(&config, &d.clients(&recorder)).await.unwrap();
    let event: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_str(&fixture("sqs-event.json", &[("__BODY__", r#"{"v":1,"forged":true}"#)])).unwrap();
    let response = process.handle(event).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["059f36b4-87a3-44ab-83d2-661975830a7d"]);
    assert!(
        recorder
            .calls()
            .iter()
            .any(|(s, o)| s == "SQS" && o == "SendMessageBatch"),
        "the DLQ send was attempted"
    );
}
