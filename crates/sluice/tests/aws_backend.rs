//! `sluice serve --backend aws` end to end: the real binary, its gateway and worker pool over SQS
//! and DynamoDB served by moto on loopback; keys created with `sluice keys create --backend aws`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is a failed assertion

mod common;

use common::BIN;
use serde_json::{Value, json};
use sluice_aws::provision::QueueSettings;
use sluice_aws::testing::{Moto, REGION};
use sluice_aws::{AwsResources, DynamoEvents, DynamoKeys, SqsQueue};
use sluice_core::ports::{EventStore, KeyStore, ListQuery, OutgoingMessage, Queue};
use sluice_core::tenant::Tenant;
use sluice_host::env::vars;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// The environment that points the binary at moto and at this test's resources, and at nothing
/// else: no profile, no shared config files, no instance metadata.
fn aws_env(cmd: &mut Command, moto: &Moto, r: &AwsResources) {
    for k in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent/sluice-test/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/sluice-test/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(vars::QUEUE_URL, &r.queue_url)
        .env(vars::DLQ_URL, &r.dlq_url)
        .env(vars::TABLE, &r.table)
        .env(vars::IDEMPOTENCY_TABLE, &r.idempotency_table)
        .env(vars::KEYS_TABLE, &r.keys_table)
        .env(vars::SOURCES_TABLE, &r.sources_table);
}

fn sluice(moto: &Moto, r: &AwsResources, data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data-dir").arg(data_dir);
    aws_env(&mut cmd, moto, r);
    cmd.output().expect("run sluice")
}

fn create_key(moto: &Moto, r: &AwsResources, data_dir: &Path, tenant: &str) -> String {
    let out = sluice(
        moto,
        r,
        data_dir,
        &["keys", "create", "--backend", "aws", "--tenant", tenant],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Server {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn spawn(moto: &Moto, r: &AwsResources, data_dir: &Path) -> Self {
        Self::spawn_with(moto, r, data_dir, &[])
    }

    fn spawn_with(moto: &Moto, r: &AwsResources, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--backend", "aws", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("SLUICE_LOG__LEVEL", "info")
            .env("SLUICE_WORKER__WORKERS", "2");
        aws_env(&mut cmd, moto, r);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, addr, logs) = common::spawn_serve(cmd);
        let listening = logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("sluice listening"))
            .cloned();
        let listening: Value = serde_json::from_str(&listening.unwrap()).unwrap();
        assert_eq!(listening["backend"], "aws");
        Self {
            child,
            base: format!("http://{addr}"),
            logs,
            client: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
        }
    }

    async fn post(&self, key: &str, body: &str, idempotency_key: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        req.send().await.unwrap()
    }

    async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    async fn wait_for_event(&self, key: &str, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let r = self.get(key, &format!("/v1/events/{id}")).await;
            if r.status() == 200 {
                return r.json().await.unwrap();
            }
            assert!(
                start.elapsed() < WAIT,
                "event {id} not stored: {:#?}",
                self.logs.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn fresh() -> (&'static Moto, AwsResources, tempfile::TempDir) {
    let moto = Moto::shared()
        .await
        .expect("moto must run for this test: pip install 'moto[server]'");
    let settings = QueueSettings {
        max_receive_count: 3,
        visibility_timeout: Duration::from_secs(30),
        ..QueueSettings::default()
    };
    let r = moto.provision_fresh(settings).await.unwrap();
    (moto, r, tempfile::tempdir().unwrap())
}

#[tokio::test]
async fn aws_backend_ingests_processes_and_reads_back_through_sqs_and_dynamodb() {
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let acme = create_key(moto, &r, &data_dir, "acme");
    let other = create_key(moto, &r, &data_dir, "other");
    // The keys live in the deployment's DynamoDB keys table, hashed, where the authorizer reads them.
    let keys = DynamoKeys::new(moto.dynamodb(), &r.keys_table);
    let records = KeyStore::list(&keys).await.unwrap();
    assert_eq!(records.len(), 2);
    let (acme_id, acme_secret) = acme.split_once('.').unwrap();
    let acme_record = records.iter().find(|k| k.id.as_str() == acme_id).unwrap();
    assert_eq!(acme_record.tenant.as_str(), "acme");
    assert!(!acme_record.secret_hash.contains(acme_secret));

    let app = Server::spawn(moto, &r, &data_dir);
    let one = app
        .post(&acme, r#"{"type":"order.created","data":{"amount":42}}"#, None)
        .await;
    assert_eq!(one.status(), 202);
    let id = one.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let batch: Vec<Value> = (0..5).map(|i| json!({"type": "tick", "data": {"i": i}})).collect();
    let many = app.post(&acme, &serde_json::to_string(&batch).unwrap(), None).await;
    assert_eq!(many.status(), 202);
    let ids: Vec<String> = many.json::<Value>().await.unwrap()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();

    let event = app.wait_for_event(&acme, &id).await;
    assert_eq!(event["data"], json!({"amount": 42}));
    for i in &ids {
        app.wait_for_event(&acme, i).await;
    }
    let page: Value = app.get(&acme, "/v1/events?limit=100").await.json().await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 6);
    let typed: Value = app.get(&acme, "/v1/events?type=tick").await.json().await.unwrap();
    assert_eq!(typed["events"].as_array().unwrap().len(), 5);
    // Stored in DynamoDB, under the tenant's partition, and nowhere for the other tenant.
    let tenant = Tenant::parse("acme").unwrap();
    let store = DynamoEvents::new(moto.dynamodb(), &r.table);
    let stored = EventStore::list(
        &store,
        &tenant,
        &ListQuery {
            event_type: None,
            limit: 100,
            after: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(stored.events.len(), 6);
    assert_eq!(app.get(&other, &format!("/v1/events/{id}")).await.status(), 404);
    let theirs: Value = app.get(&other, "/v1/events").await.json().await.unwrap();
    assert!(theirs["events"].as_array().unwrap().is_empty());

    // An Idempotency-Key retry (DynamoDB idempotency table) returns the same ids, stores nothing twice.
    let body = r#"{"type":"pay","data":{"n":1}}"#;
    let first: Value = app.post(&acme, body, Some("pay-1")).await.json().await.unwrap();
    let again = app.post(&acme, body, Some("pay-1")).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    app.wait_for_event(&acme, first["id"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paid: Value = app.get(&acme, "/v1/events?type=pay").await.json().await.unwrap();
    assert_eq!(paid["events"].as_array().unwrap().len(), 1);

    // Wrong credentials: the same 401 as on the embedded backend.
    let r401 = app.post("key_01jabcdefghjkmnpqrstvwxyz0.x", body, None).await;
    assert_eq!(r401.status(), 401);

    // `sluice status --backend aws` reads the SQS depths; `sluice dlq` says where to look instead.
    let status = sluice(moto, &r, &data_dir, &["status", "--backend", "aws", "--output", "json"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["queue"]["visible"].is_u64(), "{status}");
    let dlq = sluice(moto, &r, &data_dir, &["dlq", "list", "--backend", "aws"]);
    assert!(!dlq.status.success());
    assert!(String::from_utf8_lossy(&dlq.stderr).contains("start-message-move-task"));
}

#[tokio::test]
async fn t2_tampered_message_on_the_aws_queue_goes_to_the_dlq_with_its_reason() {
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let acme = create_key(moto, &r, &data_dir, "acme");
    let app = Server::spawn(moto, &r, &data_dir);
    // Someone with queue access writes a message that claims to be an acme event but is not
    // sealed with the gateway's key.
    let queue = SqsQueue::new(moto.sqs(), &r.queue_url);
    let forged = json!({"v": 1, "tenant": "acme", "type": "order.created", "data": {"amount": 1_000_000}});
    queue
        .send_batch(vec![OutgoingMessage {
            group: None,
            body: forged.to_string(),
            attributes: [
                ("signature".to_owned(), "AAAA".to_owned()),
                ("signature_kid".to_owned(), "local-1".to_owned()),
                ("request_id".to_owned(), "forged-request".to_owned()),
            ]
            .into(),
        }])
        .await
        .unwrap();
    // A real event goes through next to it.
    let ok = app.post(&acme, r#"{"type":"a","data":1}"#, None).await;
    let id = ok.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_event(&acme, &id).await;

    let dlq = SqsQueue::new(moto.sqs(), &r.dlq_url);
    let forged_body = forged.to_string();
    let start = Instant::now();
    let dead = loop {
        let got = dlq
            .receive(10, Duration::from_secs(1), Duration::from_secs(30))
            .await
            .unwrap();
        if let Some(m) = got.into_iter().find(|m| m.body == forged_body) {
            break m;
        }
        assert!(
            start.elapsed() < WAIT,
            "no dead letter: {:#?}",
            app.logs.lock().unwrap()
        );
    };
    let reason = dead.attributes.get("dlq_reason").expect("a reason");
    assert!(!reason.is_empty());
    assert_eq!(
        dead.attributes.get("request_id").map(String::as_str),
        Some("forged-request")
    );
    // And it was never stored.
    let page: Value = app.get(&acme, "/v1/events").await.json().await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    // The worker deletes the original just after its dead-letter copy is sent.
    let start = Instant::now();
    while queue.depth().await.unwrap().total() != 0 {
        assert!(start.elapsed() < WAIT, "the original stayed in the queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn aws_backend_reads_the_lambda_functions_keys_from_ssm() {
    use base64::Engine as _;
    use sluice_core::RequestId;
    use sluice_core::envelope::{Sealer, SigningKey};

    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let acme = create_key(moto, &r, &data_dir, "acme");
    let secret: [u8; 32] = rand::random();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let signing_param = sluice_aws::testing::unique_name("/sluice/signing");
    let cursor_param = sluice_aws::testing::unique_name("/sluice/cursor");
    let ssm = moto.ssm();
    for (name, value) in [
        (&signing_param, format!("k9:{}", b64(&secret))),
        (&cursor_param, format!("c1:{}", b64(&rand::random::<[u8; 32]>()))),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let app = Server::spawn_with(
        moto,
        &r,
        &data_dir,
        &[
            ("SLUICE_SIGNING_KEY_PARAM", signing_param.as_str()),
            ("SLUICE_CURSOR_KEY_PARAM", cursor_param.as_str()),
        ],
    );
    // A message sealed with the SSM key, as the ingest function would, is processed by the local worker.
    let sealer = Sealer::new(vec![SigningKey::new("k9", secret.to_vec()).unwrap()], 32).unwrap();
    let envelope = common::envelope(
        "acme",
        "from.lambda",
        RequestId::generate().as_str(),
        json!({"sealed_by": "ingest function"}),
    );
    let queue = SqsQueue::new(moto.sqs(), &r.queue_url);
    queue.send(sealer.seal(&envelope).unwrap()).await.unwrap();
    let stored = app.wait_for_event(&acme, &envelope.id.to_string()).await;
    assert_eq!(stored["data"]["sealed_by"], "ingest function");
    // And the gateway seals with it too: what it posts is stored, and nothing is dead-lettered.
    let posted = app.post(&acme, r#"{"type":"a","data":1}"#, None).await;
    let id = posted.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    app.wait_for_event(&acme, &id).await;
    let dlq = SqsQueue::new(moto.sqs(), &r.dlq_url);
    assert_eq!(dlq.depth().await.unwrap().total(), 0);
    // No local key files were needed.
    assert!(!data_dir.join("secrets/signing.key").exists());
}

#[tokio::test]
async fn d3_aws_backend_refuses_new_events_while_sqs_holds_max_depth() {
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let acme = create_key(moto, &r, &data_dir, "acme");
    // A backlog the server's workers cannot drain: three messages held in flight by someone else.
    let queue = SqsQueue::new(moto.sqs(), &r.queue_url);
    let backlog = (0..3)
        .map(|i| OutgoingMessage {
            group: None,
            body: format!("backlog {i}"),
            attributes: Default::default(),
        })
        .collect();
    queue.send_batch(backlog).await.unwrap();
    let mut held = Vec::new();
    while held.len() < 3 {
        held.extend(
            queue
                .receive(10, Duration::from_secs(1), Duration::from_secs(300))
                .await
                .unwrap(),
        );
    }
    assert_eq!(queue.depth().await.unwrap().in_flight, 3);
    let app = Server::spawn_with(moto, &r, &data_dir, &[("SLUICE_QUEUE__MAX_DEPTH", "2")]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refused = app.post(&acme, r#"{"type":"a","data":1}"#, None).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let p: Value = refused.json().await.unwrap();
    assert_eq!(p["code"], "queue_unavailable");
    // Once the backlog is gone, the next depth poll (every 5 s on SQS) lets events in again.
    for m in &held {
        queue.delete(&m.receipt).await.unwrap();
    }
    let start = Instant::now();
    loop {
        let r = app.post(&acme, r#"{"type":"a","data":2}"#, None).await;
        if r.status() == 202 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still refused after the backlog cleared"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn t1_on_aws_a_body_exactly_at_the_limit_is_queued_stored_and_read_back_and_one_byte_more_gets_413() {
    const LIMIT: usize = 256 * 1024;
    let event_of = |len: usize| {
        let (head, tail) = (r#"{"type":"big","data":""#, r#""}"#);
        format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
    };
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let key = create_key(moto, &r, &data_dir, "acme");
    let app = Server::spawn(moto, &r, &data_dir);
    // The longest request id makes the SQS message as large as one gets.
    let request_id = "r".repeat(128);
    let res = app
        .client
        .post(format!("{}/v1/events", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("x-request-id", &request_id)
        .body(event_of(LIMIT))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let event = app.wait_for_event(&key, &id).await;
    assert_eq!(event["request_id"], request_id.as_str());
    assert_eq!(
        event["data"].as_str().unwrap().len(),
        LIMIT - r#"{"type":"big","data":""}"#.len()
    );
    let over = app.post(&key, &event_of(LIMIT + 1), None).await;
    assert_eq!(over.status(), 413);
    assert_eq!(over.json::<Value>().await.unwrap()["code"], "payload_too_large");
    assert!(
        !app.logs.lock().unwrap().iter().any(|l| l.contains("\"ERROR\"")),
        "no request at or past the limit writes an ERROR line"
    );
}

/// `sluice sources …` with the secret on standard input, against the AWS backend.
fn sources_cli(moto: &Moto, r: &AwsResources, data_dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("sources")
        .args(args)
        .args(["--backend", "aws", "--data-dir"])
        .arg(data_dir);
    aws_env(&mut cmd, moto, r);
    common::output_with_stdin(cmd, stdin)
}

#[tokio::test]
async fn s6_sources_are_managed_and_verified_on_the_aws_backend() {
    use sluice_core::ports::SourceStore as _;
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let acme = create_key(moto, &r, &data_dir, "acme");
    let secret = "shpss_aws_backend_secret";
    let out = sources_cli(
        moto,
        &r,
        &data_dir,
        &["create", "--tenant", "acme", "--kind", "shopify", "--secret", "-"],
        secret,
    );
    let id = common::created_source_id(&out);
    // In the deployment's sources table, where the ingest function reads it.
    let table = sluice_aws::DynamoSources::new(moto.dynamodb(), &r.sources_table);
    let stored = table
        .get(&sluice_core::SourceId::parse(&id).unwrap())
        .await
        .unwrap()
        .expect("the source is in the sources table");
    assert_eq!(stored.tenant.as_str(), "acme");
    for format in ["table", "json"] {
        let out = sources_cli(moto, &r, &data_dir, &["list", "--output", format], "");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&id) && text.contains("shopify"), "{text}");
        assert!(!text.contains(secret), "a listing never shows a secret: {text}");
    }

    let app = Server::spawn(moto, &r, &data_dir);
    let body = r#"{"id":820982911946154508,"email":"jon@example.com","total_price":"10.00"}"#;
    let deliver = |secret: &str, webhook_id: &str| {
        let mut req = app
            .client
            .post(format!("{}/v1/sources/{id}", app.base))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in sluice_testkit::webhooks::shopify(secret, "orders/create", webhook_id, body) {
            req = req.header(k, v);
        }
        req.send()
    };
    let r1 = deliver(secret, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043").await.unwrap();
    assert_eq!(r1.status(), 202);
    let event_id = r1.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let event = app.wait_for_event(&acme, &event_id).await;
    assert_eq!(event["type"], "shopify.orders.create");
    assert_eq!(event["webhook"]["source_id"], id.as_str());
    assert_eq!(event["webhook"]["delivery_id"], "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    assert_eq!(deliver("not-the-secret", "x-1").await.unwrap().status(), 401);

    // Rotated with no overlap: the new secret verifies at once.
    let out = sources_cli(
        moto,
        &r,
        &data_dir,
        &["rotate", &id, "--secret", "-", "--overlap", "0s"],
        "shpss_new",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(deliver("shpss_new", "x-2").await.unwrap().status(), 202);
    let out = sources_cli(moto, &r, &data_dir, &["delete", &id], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deleted = table
        .get(&sluice_core::SourceId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        deleted.deleted_at.is_some(),
        "kept, marked deleted: the stream is the audit trail"
    );
    let logs = app.logs.lock().unwrap().join("\n");
    assert!(
        !logs.contains(secret) && !logs.contains("shpss_new"),
        "no secret in a log line"
    );
}

/// D-1 per tenant on AWS: `sluice keys create --backend aws` enrolls the tenant (an API Gateway
/// API key whose value is the authorizer's usageIdentifierKey, derived from the API and the
/// tenant, never from the Sluice key's secret, on the default usage plan), and `sluice tenants
/// limits set` moves it to a plan of its own with the given throttle and daily quota; `clear`
/// moves it back. Checked in moto's API Gateway itself.
#[tokio::test]
async fn d1_keys_create_enrolls_the_tenant_and_tenants_limits_set_gives_it_its_own_usage_plan() {
    let (moto, r, dir) = fresh().await;
    let (api_id, default_plan) = moto.rest_api_with_default_plan("v1").await.unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--data-dir").arg(dir.path());
        aws_env(&mut cmd, moto, &r);
        cmd.env(vars::REST_API_ID, &api_id)
            .env(vars::API_STAGE, "v1")
            .env(vars::DEFAULT_USAGE_PLAN_ID, &default_plan);
        cmd.output().expect("run sluice")
    };
    let tenant = sluice_testkit::fresh_tenant();
    let out = run(&["keys", "create", "--backend", "aws", "--tenant", tenant.as_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let gw = moto.apigateway();
    let name = format!("sluice-{api_id}-tenant-{tenant}");
    let keys = gw
        .get_api_keys()
        .name_query(&name)
        .include_values(true)
        .send()
        .await
        .unwrap();
    let key = keys
        .items()
        .iter()
        .find(|k| k.name() == Some(name.as_str()))
        .expect("the tenant's API key");
    let value = key.value().unwrap();
    assert_eq!(value, sluice_core::ports::usage_key(&api_id, &tenant));
    assert!(
        !value.contains(&secret) && !secret.contains(value),
        "nothing of the secret"
    );
    let key_id = key.id().unwrap().to_owned();
    let plan_names = |plans: &[aws_sdk_apigateway::types::UsagePlan]| -> Vec<String> {
        plans.iter().map(|p| p.id().unwrap().to_owned()).collect()
    };
    let in_plans = gw.get_usage_plans().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        plan_names(in_plans.items()),
        [default_plan.as_str()],
        "on the default plan"
    );
    // A second key for the tenant changes nothing.
    assert!(
        run(&["keys", "create", "--backend", "aws", "--tenant", tenant.as_str()])
            .status
            .success()
    );
    let in_plans = gw.get_usage_plans().key_id(&key_id).send().await.unwrap();
    assert_eq!(plan_names(in_plans.items()), [default_plan.as_str()]);

    let out = run(&[
        "tenants",
        "limits",
        "set",
        "--backend",
        "aws",
        "--tenant",
        tenant.as_str(),
        "--rate",
        "5",
        "--burst",
        "10",
        "--quota-per-day",
        "5000",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let in_plans = gw.get_usage_plans().key_id(&key_id).send().await.unwrap();
    let [own] = in_plans.items() else {
        panic!("exactly one plan: {:?}", in_plans.items());
    };
    assert_eq!(own.name(), Some(name.as_str()));
    assert_ne!(own.id(), Some(default_plan.as_str()));
    let throttle = own.throttle().unwrap();
    assert_eq!((throttle.rate_limit(), throttle.burst_limit()), (5.0, 10));
    let quota = own.quota().unwrap();
    assert_eq!(
        (quota.limit(), quota.period()),
        (5000, Some(&aws_sdk_apigateway::types::QuotaPeriodType::Day))
    );
    let stage = &own.api_stages()[0];
    assert_eq!((stage.api_id(), stage.stage()), (Some(api_id.as_str()), Some("v1")));
    let shown = run(&[
        "tenants",
        "limits",
        "show",
        "--backend",
        "aws",
        "--tenant",
        tenant.as_str(),
        "--output",
        "json",
    ]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["plan"], "own");
    assert_eq!(
        (shown["rate_per_sec"].as_u64(), shown["quota_per_day"].as_u64()),
        (Some(5), Some(5000))
    );

    assert!(
        run(&[
            "tenants",
            "limits",
            "clear",
            "--backend",
            "aws",
            "--tenant",
            tenant.as_str()
        ])
        .status
        .success()
    );
    let in_plans = gw.get_usage_plans().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        plan_names(in_plans.items()),
        [default_plan.as_str()],
        "back on the default plan"
    );

    // Without the REST API named, plans on AWS are refused, saying what to set.
    let out = sluice(moto, &r, dir.path(), &["tenants", "limits", "list", "--backend", "aws"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLUICE_REST_API_ID"));
}

/// R-1 on the AWS data path (moto): a request's trace id reaches SQS (the `traceparent`
/// attribute; the adapter also sends it as AWSTraceHeader, checked in `sluice-aws`), the process
/// step's log line and the item in DynamoDB.
#[tokio::test]
async fn r1_a_requests_trace_id_reaches_sqs_the_process_log_and_dynamodb() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let key = create_key(moto, &r, &data_dir, "acme");
    let app = Server::spawn(moto, &r, &data_dir);
    let res = app
        .client
        .post(format!("{}/v1/events", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE}-b7ad6b7169203331-01"))
        .body(r#"{"type":"order.created","data":{"amount":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let event = app.wait_for_event(&key, &id).await;
    assert_eq!(event["trace_id"], TRACE);
    // The event lives in its feed slot: one shard, so `acme#f0`, sorted by its seq.
    let seq = event["seq"].as_u64().unwrap();
    let item = moto
        .dynamodb()
        .get_item()
        .table_name(&r.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("acme#f0".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("{seq:020}")))
        .send()
        .await
        .unwrap();
    assert_eq!(item.item().unwrap()["trace_id"].as_s().unwrap(), TRACE);
    common::wait_for_line(
        &app.logs,
        |l| l.contains("record processed") && l.contains(TRACE) && l.contains(&id),
        WAIT,
    )
    .await;
}

/// The console's dead letters with `--backend aws` (moto): SQS has no peek, so the admin API
/// lists by receiving without hiding, and redrives and drops by receiving, acting on the chosen
/// messages and releasing the rest; a redriven event is stored in DynamoDB, a dropped one is gone.
#[tokio::test]
async fn the_consoles_dead_letters_work_over_sqs() {
    use sluice_core::envelope::attr;
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let key = create_key(moto, &r, &data_dir, "acme");
    let app = Server::spawn(moto, &r, &data_dir);
    let out = sluice(moto, &r, &data_dir, &["admin", "token", "create"]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let admin = app
        .logs
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("admin listening"))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["addr"].as_str().map(|a| format!("http://{a}")))
        .unwrap();
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let login = client
        .post(format!("{admin}/admin/api/session"))
        .header("origin", &admin)
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 204);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // Two dead letters, validly sealed with the server's key, as the process step leaves them.
    let sealer = common::local_sealer(&data_dir);
    let dlq = SqsQueue::new(moto.sqs(), &r.dlq_url);
    let mut ids = Vec::new();
    for n in [1, 2] {
        let env = common::envelope("acme", "order.paid", &format!("req-dead-{n}"), json!({"n": n}));
        let id = env.id;
        let mut m = sealer.seal(&env).unwrap();
        m.attributes
            .insert(attr::DLQ_REASON.into(), format!("store unavailable {n}"));
        dlq.send(m).await.unwrap();
        ids.push(id.to_string());
    }
    let get = |path: &str| client.get(format!("{admin}{path}")).header("cookie", &cookie).send();
    let listed: Value = get("/admin/api/dead-letters").await.unwrap().json().await.unwrap();
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{listed}");
    let by_request = |req: &str| {
        messages.iter().find(|m| m["attributes"]["request_id"] == req).unwrap()["message_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(messages.iter().any(|m| m["reason"] == "store unavailable 1"));
    let post = |path: &str, body: Value| {
        client
            .post(format!("{admin}{path}"))
            .header("cookie", &cookie)
            .header("origin", &admin)
            .json(&body)
            .send()
    };
    let moved: Value = post(
        "/admin/api/dead-letters/redrive",
        json!({"message_ids": [by_request("req-dead-1")]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(moved["moved"], 1);
    let dropped: Value = post(
        "/admin/api/dead-letters/drop",
        json!({"message_ids": [by_request("req-dead-2")]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(dropped["dropped"], 1);
    let stored = app.wait_for_event(&key, &ids[0]).await;
    assert_eq!(stored["data"], json!({"n": 1}));
    let start = Instant::now();
    loop {
        let left: Value = get("/admin/api/dead-letters").await.unwrap().json().await.unwrap();
        if left["messages"] == json!([]) {
            break;
        }
        assert!(start.elapsed() < WAIT, "the DLQ still holds {left}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let missing = app.get(&key, &format!("/v1/events/{}", ids[1])).await;
    assert_eq!(missing.status(), 404, "the dropped event was never stored");
}

/// Every entry of the key's feed after `after` on the AWS backend, following `next_after`.
async fn drain_feed(app: &Server, key: &str) -> Vec<Value> {
    let (mut out, mut after) = (Vec::new(), 0u64);
    loop {
        let r = app.get(key, &format!("/v1/feed?after={after}&limit=1000")).await;
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        let entries = page["entries"].as_array().unwrap().clone();
        let next = page["next_after"].as_u64().unwrap();
        if entries.is_empty() && next == after {
            return out;
        }
        out.extend(entries);
        after = next;
    }
}

/// Moves the message of event `id` from one SQS queue to another, as SQS's dead-lettering (or a
/// redrive's message move task) does: the same body and attributes.
async fn move_message(from: &SqsQueue, to: &SqsQueue, id: &str) {
    let start = Instant::now();
    loop {
        let got = from
            .receive(10, Duration::from_secs(1), Duration::from_secs(30))
            .await
            .unwrap();
        let mut moved = false;
        for m in got {
            if m.attributes.get("event_id").map(String::as_str) == Some(id) {
                to.send_batch(vec![OutgoingMessage {
                    group: m.group.clone(),
                    body: m.body.clone(),
                    attributes: m.attributes.clone(),
                }])
                .await
                .unwrap();
                from.delete(&m.receipt).await.unwrap();
                moved = true;
            } else {
                from.change_visibility(&m.receipt, Duration::ZERO).await.unwrap();
            }
        }
        if moved {
            return;
        }
        assert!(start.elapsed() < WAIT, "event {id} never came out of its queue");
    }
}

/// The feed on the AWS backend: a long poll answers as soon as an entry is stored; a tenant never
/// sees another's entries or tombstones; an erasure deletes the subject's stored events, and its
/// events still queued or dead-lettered when it ran are never stored, even after a redrive
/// (SQS cannot be swept: the process step drops them by the tenant's erasure marker), while an
/// event accepted after it is kept.
#[tokio::test]
async fn i3_feed_long_polls_isolates_tenants_and_erasure_reaches_queued_and_dead_lettered_events_on_aws() {
    let (moto, r, dir) = fresh().await;
    let data_dir = dir.path().join("data");
    let acme = create_key(moto, &r, &data_dir, "acme");
    let other = create_key(moto, &r, &data_dir, "other");
    let app = Server::spawn(moto, &r, &data_dir);

    let poll = {
        let client = app.client.clone();
        let url = format!("{}/v1/feed?after=0&wait=20", app.base);
        let key = acme.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let page: Value = client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (start.elapsed(), page)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let post = |key: String, subject: &'static str, n: u32| {
        let app = &app;
        async move {
            let body = json!({"type": "user.seen", "subject": subject, "data": {"n": n}}).to_string();
            let r = app.post(&key, &body, None).await;
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    };
    let stored = post(acme.clone(), "user-1", 1).await;
    let (took, page) = poll.await.unwrap();
    assert!(took < Duration::from_secs(15), "the long poll waited {took:?}");
    assert_eq!(page["entries"][0]["id"], stored.as_str(), "{page}");
    let kept = post(acme.clone(), "user-2", 2).await;
    let theirs = post(other.clone(), "user-1", 3).await;
    for (k, id) in [(&acme, &kept), (&other, &theirs)] {
        app.wait_for_event(k, id).await;
    }
    drop(app);
    // moto finishes the killed server's pending long polls (1 s) and would hand them what is
    // sent meanwhile: let them end first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The process step paused: one event stays queued, one is dead-lettered as SQS would.
    let paused = Server::spawn_with(moto, &r, &data_dir, &[("SLUICE_WORKER__WORKERS", "0")]);
    let post = |key: String, n: u32| {
        let app = &paused;
        async move {
            let body = json!({"type": "user.seen", "subject": "user-1", "data": {"n": n}}).to_string();
            let r = app.post(&key, &body, None).await;
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    };
    let queued = post(acme.clone(), 4).await;
    let dead = post(acme.clone(), 5).await;
    let (main, dlq) = (
        SqsQueue::new(moto.sqs(), &r.queue_url),
        SqsQueue::new(moto.sqs(), &r.dlq_url),
    );
    move_message(&main, &dlq, &dead).await;
    let receipt: Value = paused
        .client
        .post(format!("{}/v1/erasures", paused.base))
        .bearer_auth(&acme)
        .header("content-type", "application/json")
        .body(json!({"subject": "user-1"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["status"], "completed", "{receipt}");
    assert_eq!(receipt["events_deleted"], 1, "{receipt}");
    // The redrive: the dead letter goes back to the main queue. And one accepted after the erasure.
    move_message(&dlq, &main, &dead).await;
    let after = post(acme.clone(), 6).await;
    drop(paused);

    let app = Server::spawn(moto, &r, &data_dir);
    app.wait_for_event(&acme, &after).await;
    // Both erased records (the queued one and the redriven one) are dropped, not stored.
    let start = Instant::now();
    while app
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"outcome\":\"erased\""))
        .count()
        < 2
    {
        assert!(start.elapsed() < WAIT, "{:#?}", app.logs.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in [&stored, &queued, &dead] {
        assert_eq!(app.get(&acme, &format!("/v1/events/{id}")).await.status(), 404, "{id}");
    }
    assert_eq!(app.get(&other, &format!("/v1/events/{theirs}")).await.status(), 200);
    let entries = drain_feed(&app, &acme).await;
    let tombstones: Vec<&Value> = entries.iter().filter(|e| e.get("deleted").is_some()).collect();
    assert_eq!(tombstones.len(), 1, "{entries:#?}");
    assert_eq!(tombstones[0]["deleted"], stored.as_str());
    let ids: Vec<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, vec![kept.as_str(), after.as_str()], "in seq order");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // The other tenant's feed: its own event, none of acme's entries or tombstones.
    let mine = drain_feed(&app, &other).await;
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["id"], theirs.as_str());
}
