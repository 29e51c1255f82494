//! Shared test helpers: AWS event fixtures, a fresh deployment on moto (queues, tables, SSM
//! parameters, an API key) and calls through the functions' handlers as the Lambda runtime makes them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::config::SharedInterceptor;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_ssm::types::ParameterType;
use base64::Engine as _;
use lambda_runtime::tower::ServiceExt as _;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use sluice_aws::testing::{CallRecorder, Moto, unique_name};
use sluice_aws::{AwsResources, DynamoKeys};
use sluice_core::keys::{ApiKey, generate};
use sluice_core::ports::{KeyRecord, KeyStore};
use sluice_core::tenant::Tenant;
use sluice_lambda::{Clients, RecordingEnv};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// A fixture from `tests/fixtures/`, with `__NAME__` placeholders replaced. A `"__BODY__"`
/// placeholder (quotes included) becomes the JSON string of the value given for `__BODY__`.
pub fn fixture(name: &str, replacements: &[(&str, &str)]) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in replacements {
        if *k == "__BODY__" {
            text = text.replace("\"__BODY__\"", &serde_json::to_string(v).unwrap());
        } else {
            text = text.replace(k, v);
        }
    }
    assert!(!text.contains("\"__BODY__\""), "{name}: body placeholder left");
    text
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str, replacements: &[(&str, &str)]) -> Value {
    serde_json::from_str(&fixture(name, replacements)).unwrap()
}

/// A key ring value for SSM: one entry `kid:base64(secret)`.
pub fn ring_entry(kid: &str, byte: u8) -> String {
    format!("{kid}:{}", base64::engine::general_purpose::STANDARD.encode([byte; 32]))
}

/// The issuer the test JWKS (`tests/fixtures/oidc/jwks.json`, kid `test-key-1` = `rsa1.pem`) stands for.
pub const OIDC_ISSUER: &str = "https://issuer.test/pool";

/// A file of `tests/fixtures/oidc/`.
pub fn oidc_file(name: &str) -> String {
    format!("{}/tests/fixtures/oidc/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A JWT signed with `alg` by the PEM key `pem` (a file of `tests/fixtures/oidc/`) under `kid`.
pub fn jwt(alg: jsonwebtoken::Algorithm, kid: &str, pem: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    let key = std::fs::read(oidc_file(pem)).unwrap();
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap()).unwrap()
}

/// Claims of a valid ID token for tenant `tenant`, expiring in 10 minutes.
pub fn claims(tenant: &str) -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": OIDC_ISSUER, "aud": "client-a", "sub": "0f5e2c9a-user", "exp": now + 600, "iat": now - 10,
        "custom:tenant": tenant, "token_use": "id",
    })
}

/// One deployment's resources on moto and the environment of each function.
pub struct Deployment {
    pub moto: &'static Moto,
    pub resources: AwsResources,
    pub signing_param: String,
    pub cursor_param: String,
}

impl Deployment {
    /// Fresh queues, tables and SSM parameters (signing key ring `k2` then `k1`, cursor key).
    pub async fn new() -> Self {
        let moto = Moto::shared()
            .await
            .expect("moto must be installed: pip install 'moto[server]'");
        let resources = moto
            .provision_fresh(sluice_aws::provision::QueueSettings {
                max_receive_count: 3,
                visibility_timeout: Duration::from_secs(30),
                ..sluice_aws::provision::QueueSettings::default()
            })
            .await
            .unwrap();
        let prefix = format!("/{}", unique_name("sluice"));
        let signing_param = format!("{prefix}/signing-keys");
        let cursor_param = format!("{prefix}/cursor-key");
        let ssm = moto.ssm();
        for (name, value) in [
            (
                &signing_param,
                format!("{},{}", ring_entry("k2", 2), ring_entry("k1", 1)),
            ),
            (&cursor_param, ring_entry("c1", 3)),
        ] {
            ssm.put_parameter()
                .name(name)
                .r#type(ParameterType::SecureString)
                .value(value)
                .send()
                .await
                .unwrap();
        }
        Self {
            moto,
            resources,
            signing_param,
            cursor_param,
        }
    }

    /// Every variable any function reads, as a deployment would set them.
    pub fn env(&self) -> RecordingEnv {
        let r = &self.resources;
        let jwks = oidc_file("jwks.json");
        RecordingEnv::new([
            ("SLUICE_QUEUE_URL", r.queue_url.as_str()),
            ("SLUICE_DLQ_URL", r.dlq_url.as_str()),
            ("SLUICE_TABLE", r.table.as_str()),
            ("SLUICE_IDEMPOTENCY_TABLE", r.idempotency_table.as_str()),
            ("SLUICE_KEYS_TABLE", r.keys_table.as_str()),
            ("SLUICE_SOURCES_TABLE", r.sources_table.as_str()),
            ("SLUICE_SIGNING_KEY_PARAM", self.signing_param.as_str()),
            ("SLUICE_CURSOR_KEY_PARAM", self.cursor_param.as_str()),
            ("SLUICE_OIDC_ISSUER", OIDC_ISSUER),
            ("SLUICE_OIDC_AUDIENCE", "client-a, client-b"),
            ("SLUICE_OIDC_JWKS_FILE", jwks.as_str()),
        ])
    }

    /// Clients on moto recording every call into `recorder`.
    pub fn clients(&self, recorder: &CallRecorder) -> Clients {
        Clients::new(self.moto.sdk_config()).with_interceptor(SharedInterceptor::new(recorder.clone()))
    }

    /// The key store over the keys table (for seeding keys and reading back).
    pub fn store(&self) -> DynamoKeys {
        DynamoKeys::new(self.moto.dynamodb(), &self.resources.keys_table)
    }

    /// Creates an API key for `tenant`.
    pub async fn key(&self, tenant: &str, expires_at: Option<OffsetDateTime>) -> (ApiKey, KeyRecord) {
        let (key, record) = generate(
            Tenant::parse(tenant).unwrap(),
            "test",
            OffsetDateTime::now_utc(),
            expires_at,
        );
        self.store().insert(&record).await.unwrap();
        (key, record)
    }

    /// Receives everything the queue at `url` holds now (up to `max`), as SQS hands it to Lambda.
    pub async fn receive(&self, url: &str, max: usize) -> Vec<aws_sdk_sqs::types::Message> {
        let sqs = self.moto.sqs();
        let mut out = Vec::new();
        for _ in 0..5 {
            let got = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            out.extend(got.messages().iter().cloned());
            if out.len() >= max {
                break;
            }
        }
        out
    }
}

/// The SQS event Lambda's event source mapping would deliver for `messages`.
pub fn sqs_event(queue_arn: &str, messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: BTreeMap<String, String> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            let message_attributes: BTreeMap<String, Value> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({
                            "stringValue": v.string_value(),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": v.data_type(),
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// Calls an HTTP function's router with an API Gateway event, as `lambda_http::run` does, and
/// returns the API Gateway response as JSON.
pub async fn call_http(router: axum::Router, event: &str) -> Value {
    let request: lambda_http::request::LambdaRequest = serde_json::from_str(event).unwrap();
    let adapter = lambda_http::Adapter::from(router);
    let response = adapter
        .oneshot(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

/// The JSON body of an API Gateway response.
pub fn body_json(response: &Value) -> Value {
    let body = response["body"].as_str().unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"))
}

/// The functions' manifest.
pub fn manifest() -> toml::Table {
    let path = format!("{}/functions.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

/// One list of a function's manifest entry, as a sorted set.
pub fn manifest_list(function: &str, key: &str) -> std::collections::BTreeSet<String> {
    manifest()["functions"][function][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// A received message's string attributes.
pub fn attributes(m: &aws_sdk_sqs::types::Message) -> BTreeMap<String, String> {
    m.message_attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_owned()))
        .collect()
}

/// The ARN of the queue at `url`, as an SQS event names its source.
pub async fn queue_arn(d: &Deployment, url: &str) -> String {
    d.moto
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone()
}
