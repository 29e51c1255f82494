//! Adapter-specific tests against moto (and a fake endpoint for failures): what the shared
//! conformance suite cannot see, such as DynamoDB's filter-then-limit paging, idempotency expiry,
//! SDK error mapping and message attributes on a redriven message.

// Helpers outside `#[test]` functions fail the test by panicking too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_aws::provision::QueueSettings;
use sluice_aws::testing::Moto;
use sluice_aws::{AwsResources, DynamoEvents, DynamoIdempotency, DynamoKeys, SqsQueue, build_sdk_config};
use sluice_core::ids::{EventId, IdempotencyKey, KeyId, RequestId};
use sluice_core::ports::{
    Claim, EventStore, IdempotencyError, IdempotencyRecord, IdempotencyStore, KeyStore, KeyStoreError, ListQuery,
    MessageAttributes, OutgoingMessage, PutOutcome, Queue, QueueError, ReceiptHandle, StoreError,
};
use sluice_core::{EventType, StoredEvent, Tenant};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LONG: Duration = Duration::from_secs(30);

async fn moto() -> &'static Moto {
    Moto::shared()
        .await
        .unwrap_or_else(|e| panic!("moto is required for these tests and could not be started: {e}"))
}

async fn fresh(settings: QueueSettings) -> (&'static Moto, AwsResources) {
    let m = moto().await;
    let r = m.provision_fresh(settings).await.expect("provisioning on moto");
    (m, r)
}

fn tenant() -> Tenant {
    Tenant::parse(&sluice_aws::testing::unique_name("t")).unwrap()
}

fn event(tenant: &Tenant, ty: &str, at: OffsetDateTime) -> StoredEvent {
    StoredEvent {
        trace_id: None,
        seq: 0,
        expires_at: None,
        idempotency_key: None,
        id: EventId::new_at(at),
        tenant: tenant.clone(),
        event_type: EventType::parse(ty).unwrap(),
        data: serde_json::json!({"ty": ty, "f": 0.1, "i": -7, "nested": {"b": [true, null]}}).into(),
        occurred_at: at,
        received_at: at,
        request_id: RequestId::generate(),
        subject: None,
        webhook: None,
        extensions: Default::default(),
    }
}

#[tokio::test]
async fn list_loops_across_filter_pages_and_sets_last_exactly() {
    let (m, r) = fresh(QueueSettings::default()).await;
    // Two items per Query: a filtered page is mostly empty, so the adapter must keep querying.
    let store = DynamoEvents::new(m.dynamodb(), &r.table).with_query_page_size(2);
    let t = tenant();
    let t0 = OffsetDateTime::now_utc();
    let mut rare = Vec::new();
    for i in 0..20 {
        let ty = if i % 5 == 0 { "rare.one" } else { "common.one" };
        let e = event(&t, ty, t0 + time::Duration::milliseconds(i));
        assert_eq!(store.put_if_absent(&e).await.unwrap(), PutOutcome::Created);
        if ty == "rare.one" {
            rare.push(e);
        }
    }
    rare.reverse();
    let q = |after| ListQuery {
        event_type: Some(EventType::parse("rare.one").unwrap()),
        limit: 3,
        after,
    };
    let first = EventStore::list(&store, &t, &q(None)).await.unwrap();
    assert_eq!(
        first.events.into_iter().map(sluice_testkit::unseq).collect::<Vec<_>>(),
        rare[..3].to_vec()
    );
    assert_eq!(first.last, Some(rare[2].id));
    let second = EventStore::list(&store, &t, &q(first.last)).await.unwrap();
    assert_eq!(
        second.events.into_iter().map(sluice_testkit::unseq).collect::<Vec<_>>(),
        rare[3..].to_vec()
    );
    assert_eq!(second.last, None, "nothing follows the last rare event");

    // Unfiltered: exactly `limit` left means no `last`.
    let all = EventStore::list(
        &store,
        &t,
        &ListQuery {
            event_type: None,
            limit: 20,
            after: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(all.events.len(), 20);
    assert_eq!(all.last, None);
    let some = EventStore::list(
        &store,
        &t,
        &ListQuery {
            event_type: None,
            limit: 19,
            after: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(some.last, some.events.last().map(|e| e.id));
}

#[tokio::test]
async fn events_round_trip_payloads_exactly_and_duplicates_are_detected() {
    let (m, r) = fresh(QueueSettings::default()).await;
    let store = DynamoEvents::new(m.dynamodb(), &r.table);
    let t = tenant();
    let mut e = event(&t, "order.created", OffsetDateTime::now_utc());
    e.data = serde_json::json!({"z": 1, "a": [1.5, 1e300, -0.0, "é\u{1}\"\\"], "big": 18446744073709551615u64, "": {}})
        .into();
    assert_eq!(store.put_if_absent(&e).await.unwrap(), PutOutcome::Created);
    let mut changed = e.clone();
    changed.data = serde_json::json!("other").into();
    assert_eq!(store.put_if_absent(&changed).await.unwrap(), PutOutcome::AlreadyExists);
    assert_eq!(
        EventStore::get(&store, &t, &e.id)
            .await
            .unwrap()
            .map(sluice_testkit::unseq),
        Some(e.clone())
    );
    assert_eq!(EventStore::get(&store, &tenant(), &e.id).await.unwrap(), None);
}

fn record(tenant: &Tenant, key: &str, fingerprint: &str, expires_at: OffsetDateTime) -> IdempotencyRecord {
    IdempotencyRecord {
        tenant: tenant.clone(),
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: fingerprint.into(),
        ids: vec![EventId::new_at(expires_at)],
        single: true,
        completed: false,
        expires_at,
    }
}

#[tokio::test]
async fn idempotency_claims_expire_and_complete() {
    let (m, r) = fresh(QueueSettings::default()).await;
    let store = DynamoIdempotency::new(m.dynamodb(), &r.idempotency_table);
    let t = tenant();
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_900_000_000_123_456_789).unwrap();
    let first = record(&t, "key#1", "f1", now + time::Duration::hours(1));
    assert_eq!(store.claim(&first, now).await.unwrap(), Claim::Claimed);
    let second = record(&t, "key#1", "f2", now + time::Duration::hours(1));
    assert_eq!(store.claim(&second, now).await.unwrap(), Claim::Existing(first.clone()));
    store.complete(&t, &first.key).await.unwrap();
    let Claim::Existing(done) = store.claim(&second, now).await.unwrap() else {
        panic!("expected the completed record");
    };
    assert!(done.completed);
    // At the expiry instant the record is dead and a new claim replaces it.
    let later = first.expires_at;
    let third = record(&t, "key#1", "f3", later + time::Duration::hours(1));
    assert_eq!(store.claim(&third, later).await.unwrap(), Claim::Claimed);
    assert_eq!(
        store.claim(&first, later).await.unwrap(),
        Claim::Existing(third.clone())
    );
    // Completing a record that does not exist (TTL removed it) is not an error.
    store
        .complete(&t, &IdempotencyKey::parse("never-claimed").unwrap())
        .await
        .unwrap();
    let fresh_claim = record(&t, "never-claimed", "f", later + time::Duration::hours(1));
    assert_eq!(store.claim(&fresh_claim, later).await.unwrap(), Claim::Claimed);
}

#[tokio::test]
async fn keys_missing_ids_are_not_found() {
    let (m, r) = fresh(QueueSettings::default()).await;
    let store = DynamoKeys::new(m.dynamodb(), &r.keys_table);
    let id = KeyId::generate();
    assert!(matches!(
        store.revoke(&id, OffsetDateTime::now_utc()).await,
        Err(KeyStoreError::NotFound)
    ));
    assert!(matches!(
        store.set_expiry(&id, None).await,
        Err(KeyStoreError::NotFound)
    ));
    assert_eq!(KeyStore::get(&store, &id).await.unwrap(), None);
    assert!(
        KeyStore::list(&store).await.unwrap().is_empty(),
        "revoke must not create a stub item"
    );
}

fn attrs(pairs: &[(&str, &str)]) -> MessageAttributes {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn message_attributes_survive_redrive_to_the_dlq() {
    let (m, r) = fresh(QueueSettings {
        max_receive_count: 1,
        visibility_timeout: Duration::from_secs(30),
        ..QueueSettings::default()
    })
    .await;
    let q = SqsQueue::new(m.sqs(), &r.queue_url);
    let dlq = SqsQueue::new(m.sqs(), &r.dlq_url);
    let sent = OutgoingMessage {
        group: None,
        body: "poison".into(),
        attributes: attrs(&[("request_id", "r-1"), ("tenant", "acme"), ("source_ip", "127.0.0.1")]),
    };
    q.send(sent.clone()).await.unwrap();
    let got = q.receive(10, Duration::from_secs(1), Duration::ZERO).await.unwrap();
    assert_eq!(got.len(), 1);
    // moto moves the message on the receive after maxReceiveCount (AWS moves it asynchronously).
    assert!(q.receive(10, Duration::from_secs(1), LONG).await.unwrap().is_empty());
    let dead = dlq.receive(10, Duration::from_secs(2), LONG).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, sent.body);
    assert_eq!(dead[0].attributes, sent.attributes);
    assert_eq!(dead[0].message_id, got[0].message_id);
}

#[tokio::test]
async fn large_batches_are_split_and_every_message_arrives() {
    let (m, r) = fresh(QueueSettings::default()).await;
    let q = SqsQueue::new(m.sqs(), &r.queue_url);
    let batch: Vec<_> = (0..4)
        .map(|i| OutgoingMessage {
            group: None,
            body: format!("{i}{}", "x".repeat(100 * 1024)),
            attributes: attrs(&[("i", &i.to_string())]),
        })
        .collect();
    let ids = q.send_batch(batch).await.unwrap();
    assert_eq!(ids.len(), 4);
    assert_eq!(q.depth().await.unwrap().visible, 4);
}

#[tokio::test]
async fn unknown_receipts_are_invalid() {
    let (m, r) = fresh(QueueSettings::default()).await;
    let q = SqsQueue::new(m.sqs(), &r.queue_url);
    let bogus = ReceiptHandle("not-a-receipt".into());
    assert!(matches!(q.delete(&bogus).await, Err(QueueError::InvalidReceipt)));
    assert!(matches!(
        q.change_visibility(&bogus, Duration::ZERO).await,
        Err(QueueError::InvalidReceipt)
    ));
}

/// A server that answers every request with `status` and `body`, like a throttled or failing
/// AWS endpoint.
async fn fake_endpoint(status: u16, headers: &'static str, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head and the announced body, then answer and close.
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let reply = format!(
                    "HTTP/1.1 {status} X\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn d4_throttling_maps_to_unavailable_without_leaking_detail() {
    let endpoint = fake_endpoint(
        400,
        "content-type: application/x-amz-json-1.0\r\nx-amzn-requestid: r\r\n",
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"SECRET-DETAIL arn:aws:dynamodb:us-east-1:123456789012:table/x"}"#,
    )
    .await;
    let config = build_sdk_config(&endpoint, "us-east-1", "AKIDEXAMPLE", "SECRETKEYEXAMPLE");
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let events = DynamoEvents::new(ddb.clone(), "events");
    let idempotency = DynamoIdempotency::new(ddb.clone(), "idem");
    let keys = DynamoKeys::new(ddb, "keys");
    let t = tenant();
    let err = events
        .put_if_absent(&event(&t, "a", OffsetDateTime::now_utc()))
        .await
        .unwrap_err();
    let StoreError::Unavailable(msg) = err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(
        msg.contains("throttled") && msg.contains("ProvisionedThroughputExceededException"),
        "{msg}"
    );
    for secret in ["SECRET-DETAIL", "123456789012", "AKIDEXAMPLE", "SECRETKEYEXAMPLE"] {
        assert!(!msg.contains(secret), "{msg}");
    }
    let err = idempotency
        .claim(
            &record(&t, "k", "f", OffsetDateTime::now_utc()),
            OffsetDateTime::now_utc(),
        )
        .await;
    assert!(matches!(err, Err(IdempotencyError::Unavailable(_))), "{err:?}");
    assert!(matches!(
        KeyStore::list(&keys).await,
        Err(KeyStoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn d4_outages_and_unreachable_endpoints_map_to_unavailable() {
    let endpoint = fake_endpoint(503, "", "").await;
    let config = build_sdk_config(&endpoint, "us-east-1", "a", "b");
    let q = SqsQueue::new(aws_sdk_sqs::Client::new(&config), format!("{endpoint}/123456789012/q"));
    let err = q
        .send(OutgoingMessage {
            group: None,
            body: "b".into(),
            attributes: MessageAttributes::new(),
        })
        .await;
    assert!(matches!(err, Err(QueueError::Unavailable(_))), "{err:?}");
    assert!(matches!(q.depth().await, Err(QueueError::Unavailable(_))));

    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = build_sdk_config(&format!("http://127.0.0.1:{closed}"), "us-east-1", "a", "b");
    let store = DynamoEvents::new(aws_sdk_dynamodb::Client::new(&config), "events");
    let err = EventStore::get(&store, &tenant(), &EventId::new_at(OffsetDateTime::now_utc())).await;
    assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
}

/// `sdk_config()` must pick the endpoint up from `AWS_ENDPOINT_URL` (as `aws-config` does). The
/// environment is process-global, so the check runs in a child process of this test binary.
#[tokio::test]
async fn sdk_config_honours_aws_endpoint_url() {
    const CHILD: &str = "SLUICE_AWS_ENDPOINT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let config = sluice_aws::sdk_config().await;
        let expected = std::env::var("AWS_ENDPOINT_URL").unwrap();
        assert_eq!(config.endpoint_url(), Some(expected.as_str()));
        // And it works end to end: moto answers through it.
        let sqs = aws_sdk_sqs::Client::new(&config);
        sqs.list_queues().send().await.unwrap();
        return;
    }
    let m = moto().await;
    let mut child = child_test("sdk_config_honours_aws_endpoint_url", CHILD, m);
    child
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    let status = child.status().unwrap();
    assert!(status.success(), "the child check failed: {status}");
}

/// The environment is process-global, so a check of what reads it runs `test` again in a child
/// process of this test binary, marked by `child`, with moto's endpoint and test credentials set.
fn child_test(test: &str, child: &str, m: &Moto) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture"])
        .env(child, "1")
        .env("AWS_ENDPOINT_URL", m.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env(sluice_aws::testing::MOTO_URL_VAR, m.endpoint());
    cmd
}

/// `lambda_sdk_config()` reads what the Lambda runtime sets (region, the role's credentials with
/// a session token) and `AWS_ENDPOINT_URL`, and works end to end against moto. The profile and
/// config file named are ones that do not exist: nothing may need them.
#[tokio::test]
async fn lambda_sdk_config_reads_the_lambda_runtimes_variables() {
    const CHILD: &str = "SLUICE_AWS_LAMBDA_CONFIG_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let config = sluice_aws::lambda_sdk_config();
        let expected = std::env::var("AWS_ENDPOINT_URL").unwrap();
        assert_eq!(config.endpoint_url(), Some(expected.as_str()));
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert!(config.retry_config().is_some_and(|r| r.max_attempts() == 5));
        let sqs = aws_sdk_sqs::Client::new(&config);
        sqs.create_queue().queue_name("lambda-config").send().await.unwrap();
        let urls = sqs.list_queues().send().await.unwrap();
        assert!(
            urls.queue_urls().iter().any(|u| u.contains("lambda-config")),
            "{urls:?}"
        );
        return;
    }
    let m = moto().await;
    let mut child = child_test("lambda_sdk_config_reads_the_lambda_runtimes_variables", CHILD, m);
    child
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_SESSION_TOKEN", "testing")
        .env("AWS_PROFILE", "no-such-profile")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env_remove("AWS_MAX_ATTEMPTS");
    let status = child.status().unwrap();
    assert!(status.success(), "the child check failed: {status}");
}

#[tokio::test]
async fn moto_start_failures_are_errors_that_say_what_to_install() {
    let err = Moto::start_with("/nonexistent/python3").await.unwrap_err();
    assert!(err.to_string().contains("pip install 'moto[server]'"), "{err}");
    // An interpreter that exits at once (as python without moto would) is reported, not awaited.
    let err = Moto::start_with("false").await.unwrap_err();
    assert!(err.to_string().contains("moto did not start"), "{err}");
}

#[tokio::test]
async fn a_started_moto_stops_when_dropped() {
    let m = Moto::start().await.unwrap();
    let port: u16 = m.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    drop(m);
    let refused = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
    assert!(refused, "the server still answers after drop");
}
