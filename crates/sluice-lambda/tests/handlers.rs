//! Handler tests: real API Gateway (REST and HTTP API) and SQS event JSON through each function's
//! handler, including malformed events and a batch where some records fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use common::*;
use serde_json::{Value, json};
use sluice_aws::testing::CallRecorder;
use sluice_core::clock::SystemClock;
use sluice_core::envelope::{Envelope, Sealer, SigningKey, VERSION, attr};
use sluice_core::event::{EventType, StoredEvent};
use sluice_core::ids::{EventId, RequestId};
use sluice_core::ports::{
    EventStore, ListQuery, OutgoingMessage, Page, PutOutcome, Queue, QueueDepth, QueueError, ReceiptHandle,
    ReceivedMessage, StoreError,
};
use sluice_core::process::Processor;
use sluice_core::tenant::Tenant;
use sluice_core::validate::{Limits, Schemas, Validator};
use sluice_lambda::ingest::{self, IngestConfig};
use sluice_lambda::process::{ProcessFunction, received_message};
use sluice_testkit::memory::{MemoryEvents, MemoryQueue};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The shared in-memory event store, unavailable for tenant `flaky`.
#[derive(Default)]
struct MemStore(MemoryEvents);

#[async_trait]
impl EventStore for MemStore {
    async fn put_if_absent(&self, e: &StoredEvent) -> Result<PutOutcome, StoreError> {
        if e.tenant.as_str() == "flaky" {
            return Err(StoreError::Unavailable("throttled".into()));
        }
        self.0.put_if_absent(e).await
    }
    async fn get(&self, t: &Tenant, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.0.get(t, id).await
    }
    async fn list(&self, t: &Tenant, q: &ListQuery) -> Result<Page, StoreError> {
        self.0.list(t, q).await
    }
    async fn feed(
        &self,
        t: &Tenant,
        q: &sluice_core::ports::FeedQuery,
        now: OffsetDateTime,
    ) -> Result<sluice_core::ports::FeedPage, sluice_core::ports::FeedError> {
        self.0.feed(t, q, now).await
    }
    async fn delete(
        &self,
        t: &Tenant,
        id: &EventId,
        how: sluice_core::ports::Deletion,
    ) -> Result<Option<sluice_core::ports::Deleted>, StoreError> {
        self.0.delete(t, id, how).await
    }
    async fn delete_subject(
        &self,
        t: &Tenant,
        subject: &str,
        before: OffsetDateTime,
        how: sluice_core::ports::Deletion,
        max: usize,
    ) -> Result<Vec<sluice_core::ports::Deleted>, StoreError> {
        self.0.delete_subject(t, subject, before, how, max).await
    }
    async fn put_erasure(&self, r: &sluice_core::ports::ErasureRecord) -> Result<(), StoreError> {
        self.0.put_erasure(r).await
    }
    async fn get_erasure(&self, t: &Tenant, id: &str) -> Result<Option<sluice_core::ports::ErasureRecord>, StoreError> {
        self.0.get_erasure(t, id).await
    }
    async fn erased_until(&self, t: &Tenant, h: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.0.erased_until(t, h).await
    }
}

/// The shared in-memory queue as the dead-letter queue, which can be made to fail.
#[derive(Default)]
struct MemDlq {
    queue: MemoryQueue,
    fail: bool,
}

#[async_trait]
impl Queue for MemDlq {
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        if self.fail {
            return Err(QueueError::Unavailable("DLQ down".into()));
        }
        self.queue.send_batch(messages).await
    }
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.queue.receive(max, wait, visibility).await
    }
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), QueueError> {
        self.queue.delete(receipt).await
    }
    async fn change_visibility(&self, receipt: &ReceiptHandle, visibility: Duration) -> Result<(), QueueError> {
        self.queue.change_visibility(receipt, visibility).await
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.queue.depth().await
    }
}

fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::new(vec![SigningKey::new("k1", vec![1; 32]).unwrap()], 32).unwrap())
}

fn sealed(tenant: &str, amount: i64) -> OutgoingMessage {
    let now = OffsetDateTime::now_utc();
    sealer()
        .seal(&Envelope {
            traceparent: None,
            idempotency_key: None,
            v: VERSION,
            id: EventId::new_at(now),
            tenant: Tenant::parse(tenant).unwrap(),
            event_type: EventType::parse("order.created").unwrap(),
            data: json!({"amount": amount}).into(),
            occurred_at: now,
            received_at: now,
            request_id: RequestId::parse("r-1").unwrap(),
            source_ip: Some("203.0.113.7".into()),
            subject: None,
            webhook: None,
            extensions: Default::default(),
        })
        .unwrap()
}

/// An SQS event (from the fixture's record shape) holding these messages as records `m0`, `m1`, …
fn sqs_event_of(messages: &[OutgoingMessage], receive_count: u32) -> SqsEvent {
    let template: Value = fixture_json("sqs-event.json", &[("__BODY__", "")])["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut r = template.clone();
            r["messageId"] = json!(format!("m{i}"));
            r["body"] = json!(m.body);
            r["attributes"]["ApproximateReceiveCount"] = json!(receive_count.to_string());
            r["messageAttributes"] = m
                .attributes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"stringValue": v, "stringListValues": [], "binaryListValues": [], "dataType": "String"}),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into();
            r
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn function(store: Arc<MemStore>, dlq: Arc<MemDlq>) -> ProcessFunction {
    let validator = Arc::new(Validator::new(Limits::default(), Schemas::none()));
    ProcessFunction::new(Processor::new(store, sealer(), validator), dlq, Arc::new(SystemClock))
}

fn failures(r: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<&str> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn a_batch_reports_exactly_the_records_to_retry() {
    let store = Arc::new(MemStore::default());
    let dlq = Arc::new(MemDlq::default());
    let f = function(store.clone(), dlq.clone());
    let good = sealed("acme", 1);
    let mut tampered = sealed("acme", 2);
    tampered.body = tampered.body.replace("\"amount\":2", "\"amount\":2000");
    let flaky = sealed("flaky", 3);
    let mut unsigned = sealed("acme", 4);
    unsigned.attributes.remove(attr::SIGNATURE);
    let batch = [good.clone(), tampered, flaky, unsigned, good];
    let response = f.handle(sqs_event_of(&batch, 1)).await.unwrap();
    // m0 stored, m1 and m3 dead-lettered (permanent), m2 retried (store unavailable), m4 a
    // duplicate of m0 (already stored: success).
    assert_eq!(failures(&response), vec!["m2"]);
    assert_eq!(store.0.len(), 1);
    let dead = dlq.queue.messages();
    let reasons: Vec<&str> = dead.iter().map(|m| m.attributes[attr::DLQ_REASON].as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "envelope rejected: the signature does not match the body",
            "envelope rejected: the message carries no signature"
        ]
    );
    assert!(dead.iter().all(|m| m.attributes[attr::SOURCE_IP] == "203.0.113.7"));
    // The response has Lambda's shape.
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
    );
}

#[tokio::test]
async fn t2_a_poison_record_is_retried_when_the_dlq_is_down_never_dropped() {
    let dlq = Arc::new(MemDlq {
        fail: true,
        ..MemDlq::default()
    });
    let f = function(Arc::new(MemStore::default()), dlq);
    let mut tampered = sealed("acme", 2);
    tampered.body = tampered.body.replace("acme", "evil");
    let response = f.handle(sqs_event_of(&[sealed("acme", 1), tampered], 2)).await.unwrap();
    assert_eq!(failures(&response), vec!["m1"]);
}

#[tokio::test]
async fn malformed_sqs_events_fail_the_whole_batch_rather_than_lose_a_record() {
    let f = function(Arc::new(MemStore::default()), Arc::new(MemDlq::default()));
    let mut event = sqs_event_of(&[sealed("acme", 1), sealed("acme", 2)], 1);
    event.records[1].message_id = None;
    assert!(
        f.handle(event).await.is_err(),
        "a record without messageId cannot be reported alone"
    );
    // JSON that is not an SQS event never reaches the handler: the runtime's deserialization
    // fails the invocation, and every record comes back.
    assert!(serde_json::from_str::<SqsEvent>(r#"{"Records": "nope"}"#).is_err());
    assert!(serde_json::from_str::<SqsEvent>(r#"{"Records": [{"messageId": 7}]}"#).is_err());
    // An empty batch is fine.
    let empty: SqsEvent = serde_json::from_str(r#"{"Records": []}"#).unwrap();
    assert!(f.handle(empty).await.unwrap().batch_item_failures.is_empty());
}

#[test]
fn sqs_records_become_the_cores_received_messages() {
    let event: SqsEvent = serde_json::from_str(&fixture("sqs-event.json", &[("__BODY__", "hello")])).unwrap();
    let mut record = event.records[0].clone();
    record.attributes.insert("ApproximateReceiveCount".into(), "4".into());
    let m = received_message(&record).unwrap();
    assert_eq!(m.message_id, "059f36b4-87a3-44ab-83d2-661975830a7d");
    assert_eq!(m.body, "hello");
    assert_eq!(m.receive_count, 4);
    assert_eq!(m.sent_at.unix_timestamp(), 1_545_082_649);
    assert!(m.attributes.is_empty());
}

async fn ingest_router(d: &Deployment) -> axum::Router {
    let env = d.env();
    let config = IngestConfig::from_lookup(&|k| env.get(k)).unwrap();
    ingest::router(ingest::init(&config, &d.clients(&CallRecorder::new())).await.unwrap())
}

#[tokio::test]
async fn s1_ingest_refuses_requests_without_a_valid_authorizer_context() {
    let d = Deployment::new().await;
    let router = ingest_router(&d).await;
    let body = r#"{"type":"order.created","data":{}}"#;
    // No authorizer context at all (the function invoked around API Gateway's authorizer).
    let mut event = fixture_json(
        "ingest-rest-post.json",
        &[("__TENANT__", "acme"), ("__KEY_ID__", "k"), ("__BODY__", body)],
    );
    event["requestContext"].as_object_mut().unwrap().remove("authorizer");
    let res = call_http(router.clone(), &event.to_string()).await;
    assert_eq!(res["statusCode"], 401, "{res}");
    assert_eq!(body_json(&res)["code"], "unauthorized");
    // A tenant that is not a valid tenant name.
    for (tenant, key_id) in [("acme#evil", "k"), ("acme", "")] {
        let event = fixture(
            "ingest-http-v2-post.json",
            &[("__TENANT__", tenant), ("__KEY_ID__", key_id), ("__BODY__", body)],
        );
        let res = call_http(router.clone(), &event).await;
        assert_eq!(res["statusCode"], 401, "{tenant:?} {key_id:?}: {res}");
    }
    assert!(
        d.receive(&d.resources.queue_url, 1).await.is_empty(),
        "nothing was queued"
    );
}

#[tokio::test]
async fn ingest_answers_bad_bodies_with_problem_json_over_both_apis() {
    let d = Deployment::new().await;
    let router = ingest_router(&d).await;
    for fixture_name in ["ingest-rest-post.json", "ingest-http-v2-post.json"] {
        for (body, status, code) in [
            ("{not json", 400, "malformed_json"),
            (r#"{"type":"order.created"}"#, 422, "validation_failed"),
        ] {
            let event = fixture(
                fixture_name,
                &[("__TENANT__", "acme"), ("__KEY_ID__", "k"), ("__BODY__", body)],
            );
            let res = call_http(router.clone(), &event).await;
            assert_eq!(res["statusCode"], status, "{fixture_name} {body}: {res}");
            assert_eq!(body_json(&res)["code"], code);
        }
    }
    // A body API Gateway delivered base64-encoded (binary media types) is decoded first.
    let mut event = fixture_json(
        "ingest-rest-post.json",
        &[("__TENANT__", "acme"), ("__KEY_ID__", "k"), ("__BODY__", "")],
    );
    use base64::Engine as _;
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(r#"{"type":"a.b","data":{"x":1}}"#));
    event["isBase64Encoded"] = json!(true);
    let res = call_http(router.clone(), &event.to_string()).await;
    assert_eq!(res["statusCode"], 202, "{res}");
    // An event API Gateway would never send is refused by lambda_http before any handler.
    assert!(serde_json::from_str::<lambda_http::request::LambdaRequest>(r#"{"hello": "world"}"#).is_err());
}

/// The EMF documents one flush writes, parsed, each checked against the Embedded Metric Format
/// specification: an `_aws` object with an integer millisecond `Timestamp` and one
/// `CloudWatchMetrics` directive naming the namespace, dimension sets (arrays of at most 30
/// names, each a top-level string member) and metric definitions (a `Name`, an optional `Unit`
/// from CloudWatch's list) whose values are top-level numbers or arrays of at most 100 numbers.
fn emf_documents(emf: &sluice_lambda::metrics::Emf, namespace: &str) -> Vec<Value> {
    let mut out = Vec::new();
    emf.flush_to(&mut out);
    let text = String::from_utf8(out).unwrap();
    let docs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    for doc in &docs {
        let aws = &doc["_aws"];
        assert!(
            aws["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000),
            "{doc}"
        );
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "{doc}");
        let d = &directives[0];
        assert_eq!(d["Namespace"], namespace);
        for set in d["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30, "{doc}");
            for name in set {
                assert!(
                    doc[name.as_str().unwrap()].is_string(),
                    "dimension {name} has no string value: {doc}"
                );
            }
        }
        let metrics = d["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{doc}");
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            if let Some(unit) = m.get("Unit") {
                assert!(UNITS.contains(&unit.as_str().unwrap()), "{unit}");
            }
            match &doc[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(
                        !values.is_empty() && values.len() <= 100 && values.iter().all(Value::is_number),
                        "{doc}"
                    )
                }
                other => panic!("metric {name} has value {other}: {doc}"),
            }
        }
    }
    docs
}

/// The value of metric `name` in the document whose dimensions are exactly `dims`.
fn emf_value(docs: &[Value], name: &str, dims: &[(&str, &str)]) -> Option<Value> {
    docs.iter()
        .find(|doc| {
            let set: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            set.len() == dims.len()
                && dims.iter().all(|(k, v)| set.contains(k) && doc[*k] == *v)
                && doc.get(name).is_some()
        })
        .map(|doc| doc[name].clone())
}

/// Issue 17: an accepted and a rejected request through the ingest function write EMF documents
/// that follow the specification, with the metric names `sluice serve` exports, the `function`
/// dimension and the problem code; a second flush writes only what happened since.
#[tokio::test]
async fn ingest_emits_emf_for_an_accepted_and_a_rejected_event() {
    let emf = sluice_lambda::metrics::install("Sluice/Test", "ingest").unwrap();
    let d = Deployment::new().await;
    let router = ingest_router(&d).await;
    let ctx = [("__TENANT__", "acme"), ("__KEY_ID__", "k")];
    let ok = fixture(
        "ingest-rest-post.json",
        &[ctx[0], ctx[1], ("__BODY__", r#"{"type":"order.created","data":{}}"#)],
    );
    assert_eq!(call_http(router.clone(), &ok).await["statusCode"], 202);
    let bad = fixture(
        "ingest-rest-post.json",
        &[ctx[0], ctx[1], ("__BODY__", r#"{"type":"order.created"}"#)],
    );
    let res = call_http(router.clone(), &bad).await;
    let code = body_json(&res)["code"].as_str().unwrap().to_owned();
    let docs = emf_documents(&emf, "Sluice/Test");
    assert_eq!(
        emf_value(&docs, "sluice_events_accepted_total", &[("function", "ingest")]),
        Some(json!(1))
    );
    assert_eq!(
        emf_value(
            &docs,
            "sluice_events_rejected_total",
            &[("function", "ingest"), ("code", &code)]
        ),
        Some(json!(1))
    );
    let durations = emf_value(
        &docs,
        "sluice_request_duration_seconds",
        &[("function", "ingest"), ("route", "/v1/events")],
    );
    assert!(
        durations
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|v| v.len() == 2),
        "{durations:?}"
    );
    // Counters are deltas per flush: nothing happened since.
    let again = emf_documents(&emf, "Sluice/Test");
    assert_eq!(
        emf_value(&again, "sluice_events_accepted_total", &[("function", "ingest")]),
        None
    );
}

/// Issue 17: a stored and a dead-lettered record through the process function, in EMF.
#[tokio::test]
async fn process_emits_emf_for_a_stored_and_a_dead_lettered_record() {
    let emf = sluice_lambda::metrics::install("Sluice", "process").unwrap();
    let store = Arc::new(MemStore::default());
    let f = function(store, Arc::new(MemDlq::default()));
    let mut tampered = sealed("acme", 2);
    tampered.body = tampered.body.replace("\"amount\":2", "\"amount\":2000");
    let response = f.handle(sqs_event_of(&[sealed("acme", 1), tampered], 1)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let docs = emf_documents(&emf, "Sluice");
    for outcome in ["stored", "dead_lettered"] {
        assert_eq!(
            emf_value(
                &docs,
                "sluice_events_stored_total",
                &[("function", "process"), ("outcome", outcome)]
            ),
            Some(json!(1)),
            "{outcome}: {docs:?}"
        );
    }
    let latency = emf_value(&docs, "sluice_stored_latency_seconds", &[("function", "process")]);
    assert!(
        latency.as_ref().and_then(Value::as_array).is_some_and(|v| v.len() == 1),
        "{latency:?}"
    );
}
