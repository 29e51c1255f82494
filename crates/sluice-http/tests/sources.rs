//! The webhook delivery route `POST /v1/sources/{source_id}` on the whole app (S-6, S-7, T-1,
//! D-1): every refusal a documented problem (400, 401, 413, 415, 422, 429) that queues nothing;
//! oversized and non-JSON deliveries refused before the source is read; deliveries throttled per
//! source; failed signatures limited per source and per address before any secret is read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::json;
use sluice_core::SourceId;
use sluice_core::ports::{SourceRecord, SourceSecret, SourceStore};
use sluice_core::validate::Limits;
use sluice_core::webhook::SourceKind;
use sluice_http::{ClientIp, HttpConfig};
use sluice_testkit::webhooks;
use time::OffsetDateTime;

const SECRET: &str = "route-test-secret";

async fn source(h: &Harness, tenant_name: &str, kind: SourceKind) -> SourceId {
    let record = SourceRecord {
        id: SourceId::generate(),
        tenant: tenant(tenant_name),
        kind,
        secrets: vec![SourceSecret {
            secret: SECRET.into(),
            expires_at: None,
        }],
        created_at: OffsetDateTime::now_utc(),
        deleted_at: None,
    };
    h.sources.insert(&record).await.unwrap();
    record.id
}

fn delivery(id: &str, headers: &[(&str, String)], content_type: &str, body: impl Into<Body>) -> Request<Body> {
    delivery_from("192.0.2.10", id, headers, content_type, body)
}

fn delivery_from(
    address: &str,
    id: &str,
    headers: &[(&str, String)],
    content_type: &str,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = req("POST", &format!("/v1/sources/{id}"))
        .header("content-type", content_type)
        .extension(ClientIp(address.to_owned()));
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body.into()).unwrap()
}

fn github(delivery_id: &str, body: &str) -> Vec<(&'static str, String)> {
    webhooks::github(SECRET, "issues", delivery_id, body)
}

#[tokio::test]
async fn t1_verified_deliveries_that_are_not_json_or_break_the_type_rule_get_400_and_422() {
    let h = Harness::new();
    let app = h.app();
    let gh = source(&h, "acme", SourceKind::GitHub).await;
    let stripe = source(&h, "acme", SourceKind::Stripe).await;
    let not_json = r#"{"action":"#;
    let r = send(
        &app,
        delivery(gh.as_str(), &github("d-1", not_json), "application/json", not_json),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    let dup = r#"{"action":"opened","action":"closed"}"#;
    let r = send(
        &app,
        delivery(gh.as_str(), &github("d-2", dup), "application/json", dup),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    // Stripe's body must name its event: JSON without `type` is not a Stripe delivery.
    let typeless = r#"{"id":"evt_1"}"#;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let r = send(
        &app,
        delivery(
            stripe.as_str(),
            &webhooks::stripe(SECRET, now, typeless),
            "application/json",
            typeless,
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    // The derived type `github.Pull Request.opened` breaks the type rule: 422.
    let body = r#"{"action":"opened"}"#;
    let mut headers = github("d-3", body);
    headers[1].1 = "Pull Request".into();
    let r = send(&app, delivery(gh.as_str(), &headers, "application/json", body)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert!(r.text().contains("not a valid event type"), "{}", r.text());
    assert!(h.queue.sent().is_empty(), "nothing was queued");
    // A well-formed delivery then goes through.
    let r = send(
        &app,
        delivery(gh.as_str(), &github("d-4", body), "application/json", body),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let sent = h.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attributes["webhook"], format!("{gh} d-4"));
}

#[tokio::test]
async fn t1_oversized_and_non_json_deliveries_are_refused_before_the_source_is_read() {
    let h = Harness::with_limits(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    });
    let app = h.app();
    let gh = source(&h, "acme", SourceKind::GitHub).await;
    let big = json!({"action": "opened", "pad": "x".repeat(2000)}).to_string();
    let r = send(
        &app,
        delivery(gh.as_str(), &github("d-1", &big), "application/json", big.clone()),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let body = "payload=%7B%7D";
        let r = send(&app, delivery(gh.as_str(), &github("d-2", body), content_type, body)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{content_type}"
        );
    }
    assert_eq!(h.sources.reads(), 0, "refused on their framing alone");
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn d1_deliveries_are_throttled_per_source() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        rate_per_sec: 1,
        burst: 2,
        ..HttpConfig::default()
    });
    let busy = source(&h, "acme", SourceKind::GitHub).await;
    let quiet = source(&h, "acme", SourceKind::GitHub).await;
    let body = r#"{"action":"opened"}"#;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let d = format!("d-{i}");
        statuses.push(
            send(
                &app,
                delivery(busy.as_str(), &github(&d, body), "application/json", body),
            )
            .await,
        );
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes, [202, 202, 429], "the third spends an empty bucket");
    assert_eq!(statuses[2].code(), "throttled");
    assert!(statuses[2].header("retry-after").is_some());
    let r = send(
        &app,
        delivery(quiet.as_str(), &github("q-1", body), "application/json", body),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "another source has its own bucket");
    assert_eq!(h.queue.sent().len(), 3);
}

#[tokio::test]
async fn s6_failed_signatures_are_limited_per_source_and_per_address_before_any_secret_is_read() {
    let h = Harness::new();
    let app = h.app_with(&HttpConfig {
        auth_failures_per_minute: 1,
        auth_failure_burst: 2,
        ..HttpConfig::default()
    });
    let target = source(&h, "acme", SourceKind::GitHub).await;
    let body = r#"{"action":"opened"}"#;
    let forged = webhooks::github("not the secret", "issues", "f", body);
    // Forgeries for one source from ever new addresses: the source's own limit applies.
    let mut codes = Vec::new();
    for i in 0..5 {
        let addr = format!("198.51.100.{i}");
        codes.push(
            send(
                &app,
                delivery_from(&addr, target.as_str(), &forged, "application/json", body),
            )
            .await
            .status
            .as_u16(),
        );
    }
    assert_eq!(codes, [401, 401, 401, 429, 429], "blocked once its bucket is empty");
    let reads = h.sources.reads();
    assert_eq!(reads, 3, "a blocked source is not read");
    let r = send(
        &app,
        delivery_from("198.51.100.99", target.as_str(), &forged, "application/json", body),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "throttled")
    );
    assert_eq!(h.sources.reads(), reads);

    // One address forging for ever new sources: the address's own limit applies.
    let mut codes = Vec::new();
    for _ in 0..5 {
        let other = source(&h, "acme", SourceKind::GitHub).await;
        codes.push(
            send(
                &app,
                delivery_from("203.0.113.66", other.as_str(), &forged, "application/json", body),
            )
            .await
            .status
            .as_u16(),
        );
    }
    assert_eq!(codes, [401, 401, 401, 429, 429]);
    // Another address and source are unaffected.
    let fresh = source(&h, "acme", SourceKind::GitHub).await;
    let r = send(
        &app,
        delivery_from(
            "203.0.113.67",
            fresh.as_str(),
            &github("ok", body),
            "application/json",
            body,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn s6_unknown_deleted_foreign_and_forged_deliveries_get_one_identical_401() {
    let h = Harness::new();
    let app = h.app();
    let mine = source(&h, "acme", SourceKind::GitHub).await;
    let deleted = source(&h, "acme", SourceKind::GitHub).await;
    h.sources.delete(&deleted, OffsetDateTime::now_utc()).await.unwrap();
    let body = r#"{"action":"opened"}"#;
    let cases = [
        delivery(
            mine.as_str(),
            &webhooks::github("wrong", "issues", "a", body),
            "application/json",
            body,
        ),
        delivery(
            mine.as_str(),
            &github("b", body),
            "application/json",
            r#"{"action":"opened "}"#,
        ),
        delivery(mine.as_str(), &[], "application/json", body),
        delivery(deleted.as_str(), &github("c", body), "application/json", body),
        delivery(
            SourceId::generate().as_str(),
            &github("d", body),
            "application/json",
            body,
        ),
        delivery("not-a-source-id", &github("e", body), "application/json", body),
    ];
    let mut problems = Vec::new();
    for request in cases {
        let r = send(&app, request).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
        assert!(r.header("www-authenticate").is_some());
        assert!(!r.text().contains(SECRET));
        problems.push(r.problem_without_request_id());
    }
    assert!(problems.windows(2).all(|w| w[0] == w[1]), "{problems:#?}");
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn s7_sources_are_cached_but_a_new_secret_verifies_at_once_and_a_deletion_counts_within_the_ttl() {
    use sluice_core::clock::SystemClock;
    use sluice_core::deliveries::DeliveryService;
    use std::sync::Arc;
    use std::time::Duration;

    let h = Harness::new();
    let ttl = Duration::from_secs(1);
    let deliveries =
        Arc::new(DeliveryService::new(h.sources.clone(), h.ingest.clone(), Arc::new(SystemClock)).with_cache_ttl(ttl));
    let app = sluice_http::app(
        h.ingest.clone(),
        h.query.clone(),
        h.feed.clone(),
        deliveries,
        h.auth(),
        &HttpConfig::default(),
    );
    let id = source(&h, "acme", SourceKind::GitHub).await;
    let body = r#"{"action":"opened"}"#;
    let post = |secret: &str, delivery_id: &str| {
        delivery(
            id.as_str(),
            &webhooks::github(secret, "issues", delivery_id, body),
            "application/json",
            body,
        )
    };
    for d in ["d-1", "d-2", "d-3"] {
        assert_eq!(send(&app, post(SECRET, d)).await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(h.sources.reads(), 1, "one read for three deliveries");

    // Rotated: the provider signs with the new secret at once. The cached record does not know
    // it, so the failure reads the source again, once, and the delivery passes.
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    h.sources
        .set_secrets(
            &id,
            &[
                SourceSecret {
                    secret: "rotated-secret".into(),
                    expires_at: None,
                },
                SourceSecret {
                    secret: SECRET.into(),
                    expires_at: Some(past),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        send(&app, post("rotated-secret", "d-4")).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(h.sources.reads(), 2);
    // The old secret is refused: its failure re-reads the source, which no longer verifies it.
    assert_eq!(send(&app, post(SECRET, "d-5")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.sources.reads(), 3);
    assert_eq!(
        send(&app, post("rotated-secret", "d-6")).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(h.sources.reads(), 3, "served from the refreshed entry");

    // Deleted: refused once the cached record expires.
    h.sources.delete(&id, OffsetDateTime::now_utc()).await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(
        send(&app, post("rotated-secret", "d-7")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.queue.sent().len(), 5);
}
