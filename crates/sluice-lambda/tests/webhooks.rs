//! Provider-signed webhooks through the Lambda functions on moto (S-6, S-7, R-2): API Gateway's
//! proxy event for `POST /v1/sources/{source_id}`, with no authorizer context (the route has none),
//! into the ingest function, which reads the source from the sources table and verifies the
//! provider's signature; then the queue message, the process function and the stored event.
//! Stripe over a REST API, GitHub over an HTTP API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_aws::testing::CallRecorder;
use sluice_aws::{DynamoEvents, DynamoSources};
use sluice_core::envelope::attr;
use sluice_core::event::WebhookOrigin;
use sluice_core::ports::{EventStore, SourceRecord, SourceSecret, SourceStore};
use sluice_core::webhook::SourceKind;
use sluice_core::{EventId, SourceId, Tenant};
use sluice_lambda::ingest::{self, IngestConfig};
use sluice_lambda::process::{ProcessConfig, ProcessFunction};
use sluice_testkit::webhooks;
use std::collections::BTreeMap;
use time::OffsetDateTime;

async fn source(d: &Deployment, tenant: &str, kind: SourceKind, secret: &str) -> SourceId {
    let record = SourceRecord {
        id: SourceId::generate(),
        tenant: Tenant::parse(tenant).unwrap(),
        kind,
        secrets: vec![SourceSecret {
            secret: secret.to_owned(),
            expires_at: None,
        }],
        created_at: OffsetDateTime::now_utc(),
        deleted_at: None,
    };
    DynamoSources::new(d.moto.dynamodb(), &d.resources.sources_table)
        .insert(&record)
        .await
        .unwrap();
    record.id
}

/// The proxy event of `fixture` for source `id`, carrying `headers` (both header maps, as API
/// Gateway fills them) and `body`.
fn delivery(fixture_name: &str, id: &str, headers: &[(&str, String)], body: &str) -> String {
    let mut event = fixture_json(fixture_name, &[("__SOURCE_ID__", id), ("__BODY__", body)]);
    for (k, v) in headers {
        event["headers"][*k] = json!(v);
        if event.get("multiValueHeaders").is_some() {
            event["multiValueHeaders"][*k] = json!([v]);
        }
    }
    event.to_string()
}

fn refused(res: &Value) {
    assert_eq!(res["statusCode"], 401, "{res}");
    let p = body_json(res);
    assert_eq!(p["code"], "unauthorized");
    assert_eq!(
        p["detail"], "missing or invalid credentials",
        "one answer for every failure"
    );
}

#[tokio::test]
async fn s6_stripe_and_github_deliveries_reach_the_store_once_through_the_functions() {
    let d = Deployment::new().await;
    let stripe_secret = "whsec_lambda_test_secret";
    let github_secret = "gh-lambda-secret";
    let stripe = source(&d, "acme", SourceKind::Stripe, stripe_secret).await;
    let github = source(&d, "acme", SourceKind::GitHub, github_secret).await;
    let other_tenants = source(&d, "other", SourceKind::GitHub, "the other tenant's secret").await;

    let env = d.env();
    let config = IngestConfig::from_lookup(&|k| env.get(k)).unwrap();
    let router = ingest::router(ingest::init(&config, &d.clients(&CallRecorder::new())).await.unwrap());
    let now = OffsetDateTime::now_utc().unix_timestamp();

    // Stripe over a REST API: stored, and its retry answered with the same id.
    let created = now - 60;
    let stripe_body = json!({
        "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "type": "invoice.paid",
        "created": created, "data": {"object": {"id": "in_1", "amount_paid": 2000}}
    })
    .to_string();
    let signed = webhooks::stripe(stripe_secret, now, &stripe_body);
    let first = call_http(
        router.clone(),
        &delivery("source-rest-post.json", stripe.as_str(), &signed, &stripe_body),
    )
    .await;
    assert_eq!(first["statusCode"], 202, "{first}");
    let stripe_event = body_json(&first)["id"].as_str().unwrap().to_owned();
    let retry = call_http(
        router.clone(),
        &delivery("source-rest-post.json", stripe.as_str(), &signed, &stripe_body),
    )
    .await;
    assert_eq!(retry["statusCode"], 202, "{retry}");
    assert_eq!(
        body_json(&retry)["id"],
        stripe_event.as_str(),
        "a retried delivery is the same event"
    );

    // Forgeries, each the same 401: a wrong secret, a body changed by one byte, a stale
    // timestamp, a missing signature, another tenant's source, an unknown source.
    let rest = |id: &str, headers: &[(&str, String)], body: &str| delivery("source-rest-post.json", id, headers, body);
    refused(
        &call_http(
            router.clone(),
            &rest(
                stripe.as_str(),
                &webhooks::stripe("whsec_wrong", now, &stripe_body),
                &stripe_body,
            ),
        )
        .await,
    );
    let changed = stripe_body.replacen("2000", "2001", 1);
    refused(&call_http(router.clone(), &rest(stripe.as_str(), &signed, &changed)).await);
    refused(
        &call_http(
            router.clone(),
            &rest(
                stripe.as_str(),
                &webhooks::stripe(stripe_secret, now - 301, &stripe_body),
                &stripe_body,
            ),
        )
        .await,
    );
    refused(&call_http(router.clone(), &rest(stripe.as_str(), &[], &stripe_body)).await);
    let gh_body = json!({"action": "opened", "issue": {"number": 7}}).to_string();
    let gh_signed = webhooks::github(
        github_secret,
        "issues",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        &gh_body,
    );
    refused(
        &call_http(
            router.clone(),
            &delivery("source-http-v2-post.json", other_tenants.as_str(), &gh_signed, &gh_body),
        )
        .await,
    );
    refused(
        &call_http(
            router.clone(),
            &delivery(
                "source-http-v2-post.json",
                SourceId::generate().as_str(),
                &gh_signed,
                &gh_body,
            ),
        )
        .await,
    );

    // GitHub over an HTTP API.
    let res = call_http(
        router.clone(),
        &delivery("source-http-v2-post.json", github.as_str(), &gh_signed, &gh_body),
    )
    .await;
    assert_eq!(res["statusCode"], 202, "{res}");
    let github_event = body_json(&res)["id"].as_str().unwrap().to_owned();

    // Two messages, each naming its source and delivery.
    let received = d.receive(&d.resources.queue_url, 2).await;
    assert_eq!(
        received.len(),
        2,
        "the retry and the forgeries sent nothing: {received:?}"
    );
    let by_event: BTreeMap<String, BTreeMap<String, String>> = received
        .iter()
        .map(|m| {
            let a = attributes(m);
            (a[attr::EVENT_ID].clone(), a)
        })
        .collect();
    let a = &by_event[&stripe_event];
    assert_eq!(a[attr::WEBHOOK], format!("{stripe} evt_1NG8Du2eZvKYlo2CUI79vXWy"));
    assert_eq!(a[attr::TENANT], "acme");
    assert_eq!(a[attr::SOURCE_IP], "198.51.100.20");
    assert_eq!(a[attr::REQUEST_ID], "5b7c9e1a-xmpl-4f2e-9d61-0c1e2f3a4b5c");
    assert_eq!(
        by_event[&github_event][attr::WEBHOOK],
        format!("{github} 72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert!(a.len() <= 8, "room for the two DLQ attributes under SQS's 10: {a:?}");

    // The process function stores them.
    let env = d.env();
    let config = ProcessConfig::from_lookup(&|k| env.get(k)).unwrap();
    let process = ProcessFunction::init(&config, &d.clients(&CallRecorder::new()))
        .await
        .unwrap();
    let arn = queue_arn(&d, &d.resources.queue_url).await;
    let response = process.handle(sqs_event(&arn, &received)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let events = DynamoEvents::new(d.moto.dynamodb(), &d.resources.table);
    let acme = Tenant::parse("acme").unwrap();
    let stored = events
        .get(&acme, &EventId::parse(&stripe_event).unwrap())
        .await
        .unwrap()
        .expect("the Stripe event is stored");
    assert_eq!(stored.event_type.as_str(), "stripe.invoice.paid");
    assert_eq!(stored.data.to_value().unwrap()["data"]["object"]["amount_paid"], 2000);
    assert_eq!(stored.occurred_at.unix_timestamp(), created, "Stripe's `created`");
    assert_eq!(
        stored.webhook,
        Some(WebhookOrigin {
            source_id: stripe.clone(),
            delivery_id: "evt_1NG8Du2eZvKYlo2CUI79vXWy".into()
        })
    );
    let stored = events
        .get(&acme, &EventId::parse(&github_event).unwrap())
        .await
        .unwrap()
        .expect("the GitHub event is stored");
    assert_eq!(stored.event_type.as_str(), "github.issues.opened");
    assert_eq!(stored.data.to_value().unwrap()["issue"]["number"], 7);
    assert_eq!(
        stored.webhook.unwrap().delivery_id,
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    let other = events
        .list(
            &Tenant::parse("other").unwrap(),
            &sluice_core::ports::ListQuery {
                event_type: None,
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(other.events.is_empty(), "nothing was stored for the other tenant");
}

#[tokio::test]
async fn s7_a_deleted_source_and_a_rotated_away_secret_are_refused_on_lambda() {
    let d = Deployment::new().await;
    let secret = "gh-rotating-secret";
    let id = source(&d, "acme", SourceKind::GitHub, secret).await;
    let store = DynamoSources::new(d.moto.dynamodb(), &d.resources.sources_table);
    let env = d.env();
    let config = IngestConfig::from_lookup(&|k| env.get(k)).unwrap();
    let router = ingest::router(ingest::init(&config, &d.clients(&CallRecorder::new())).await.unwrap());
    let body = json!({"zen": "Design for failure.", "hook_id": 1}).to_string();
    let post = |secret: &str, delivery_id: &str| {
        delivery(
            "source-http-v2-post.json",
            id.as_str(),
            &webhooks::github(secret, "ping", delivery_id, &body),
            &body,
        )
    };
    let res = call_http(router.clone(), &post(secret, "d-1")).await;
    assert_eq!(res["statusCode"], 202, "a ping is accepted: {res}");

    // Rotated: the new secret verifies at once (its first failure against the cached record
    // reads the source again), and the old one only until its expiry, already past here.
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    store
        .set_secrets(
            &id,
            &[
                SourceSecret {
                    secret: "gh-new-secret".into(),
                    expires_at: None,
                },
                SourceSecret {
                    secret: secret.into(),
                    expires_at: Some(past),
                },
            ],
        )
        .await
        .unwrap();
    let res = call_http(router.clone(), &post("gh-new-secret", "d-3")).await;
    assert_eq!(res["statusCode"], 202, "{res}");
    refused(&call_http(router.clone(), &post(secret, "d-2")).await);

    // Deleted: refused once the instance's cached record expires (sluice_lambda::RECORD_CACHE,
    // as a revoked key's). Meanwhile the delivery below is a replay of d-3, stored once.
    store.delete(&id, OffsetDateTime::now_utc()).await.unwrap();
    let deleted_at = std::time::Instant::now();
    loop {
        let res = call_http(router.clone(), &post("gh-new-secret", "d-3")).await;
        if res["statusCode"] == 401 {
            refused(&res);
            break;
        }
        assert_eq!(res["statusCode"], 202, "{res}");
        assert!(
            deleted_at.elapsed() < sluice_lambda::RECORD_CACHE + std::time::Duration::from_secs(1),
            "still accepted after the cache TTL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(
        d.receive(&d.resources.queue_url, 3).await.len(),
        2,
        "two deliveries queued"
    );
}
