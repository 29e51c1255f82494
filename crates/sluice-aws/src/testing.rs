//! A moto server for integration tests (feature `testing`), so the AWS adapters are proven
//! against SQS and DynamoDB behaviour without an AWS account.
//!
//! [`Moto::shared`] starts one server per test process on a free loopback port and reuses it;
//! tests isolate themselves by creating uniquely named queues and tables ([`unique_name`],
//! [`Moto::provision_fresh`]). Set `SLUICE_MOTO_URL` to use an already running server instead
//! (useful under `cargo nextest`, which runs every test in its own process).
//!
//! The server is a child `python3` process (override with `SLUICE_MOTO_PYTHON`) that exits when
//! its standard input closes. The test process holds the write end of that pipe, so the server
//! goes away with the test process however it ends (even the shared instance in a static, which
//! is never dropped, and even on a panic or kill). It needs `pip install 'moto[server]'`.
//!
//! The SDK configuration built here reads nothing from the environment: a fixed region
//! (`us-east-1`) and dummy static credentials, so a developer's real AWS settings can never leak
//! into, or be used by, a test.

use crate::config::{AwsResources, build_sdk_config};
use crate::provision::{self, ProvisionError, QueueSettings, ResourceNames};
use aws_config::SdkConfig;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The variable naming an already running moto server to use instead of starting one.
pub const MOTO_URL_VAR: &str = "SLUICE_MOTO_URL";
/// The variable naming the Python interpreter to run moto with (default `python3`).
pub const MOTO_PYTHON_VAR: &str = "SLUICE_MOTO_PYTHON";
/// The region every test client uses.
pub const REGION: &str = "us-east-1";

/// How long moto may take to answer after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Spawn attempts: a port picked as free can be taken before moto binds it.
const SPAWN_ATTEMPTS: usize = 3;

/// Runs moto's server: quiet request logging, exit when stdin closes.
const SCRIPT: &str = r#"
import logging, os, sys, threading
def _watch():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
logging.getLogger("werkzeug").setLevel(logging.ERROR)
import moto.server
# moto serves each request on its own thread, and its DynamoDB conditional writes check and
# then write without a lock, so two racing `attribute_not_exists` puts can both succeed, which
# DynamoDB never allows. One lock around DynamoDB requests makes each atomic, as on AWS (SQS
# long polls stay concurrent).
_dynamodb = threading.Lock()
_run_simple = moto.server.run_simple
def _atomic_dynamodb(app):
    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                return list(app(environ, start_response))
        return app(environ, start_response)
    return wrapped
moto.server.run_simple = lambda host, port, app, *a, **kw: _run_simple(host, port, _atomic_dynamodb(app), *a, **kw)
moto.server.main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

/// Why moto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// The interpreter could not be spawned.
    #[error("could not run {python} to start moto ({source}); install it with: pip install 'moto[server]'")]
    Spawn {
        /// The interpreter tried.
        python: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// moto exited or never answered.
    #[error("moto did not start: {0}; is it installed? pip install 'moto[server]'")]
    NotReady(String),
}

/// A running moto server. Dropping it stops the server it started.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    child: Mutex<Option<(Child, ChildStdin)>>,
}

static SHARED: tokio::sync::OnceCell<Moto> = tokio::sync::OnceCell::const_new();

impl Moto {
    /// The process-wide server: `SLUICE_MOTO_URL` if set, otherwise one started on first use.
    pub async fn shared() -> Result<&'static Moto, MotoError> {
        SHARED
            .get_or_try_init(|| async {
                match std::env::var(MOTO_URL_VAR) {
                    Ok(url) if !url.trim().is_empty() => Ok(Moto::external(url.trim())),
                    _ => Moto::start().await,
                }
            })
            .await
    }

    /// A handle on a server someone else runs; dropping it stops nothing.
    pub fn external(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            child: Mutex::new(None),
        }
    }

    /// Starts a new server on a free loopback port with `SLUICE_MOTO_PYTHON` (default `python3`)
    /// and waits until it answers.
    pub async fn start() -> Result<Self, MotoError> {
        let python = std::env::var(MOTO_PYTHON_VAR).unwrap_or_else(|_| "python3".into());
        Self::start_with(&python).await
    }

    /// Like [`Moto::start`] with an explicit Python interpreter.
    pub async fn start_with(python: &str) -> Result<Self, MotoError> {
        let mut last = None;
        for _ in 0..SPAWN_ATTEMPTS {
            match Self::try_start(python).await {
                Ok(m) => return Ok(m),
                Err(e @ MotoError::Spawn { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| MotoError::NotReady("no attempt was made".into())))
    }

    async fn try_start(python: &str) -> Result<Self, MotoError> {
        let port = free_port().map_err(|e| MotoError::NotReady(format!("no free port: {e}")))?;
        let log = std::env::temp_dir().join(format!("sluice-moto-{}-{port}.log", std::process::id()));
        let stderr = std::fs::File::create(&log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let mut child = Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| MotoError::Spawn {
                python: python.to_owned(),
                source,
            })?;
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            return Err(MotoError::NotReady("no stdin pipe to the server".into()));
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Self {
            endpoint,
            child: Mutex::new(Some((child, stdin))),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = moto.exited() {
                return Err(MotoError::NotReady(format!(
                    "it exited with {status}: {}",
                    log_tail(&log)
                )));
            }
            if answers(port).await {
                return Ok(moto);
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(MotoError::NotReady(format!(
                    "no answer on port {port} within {READY_TIMEOUT:?}: {}",
                    log_tail(&log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status, if the server it started has exited.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut guard = self.child.lock().ok()?;
        let (child, _) = guard.as_mut()?;
        child.try_wait().ok().flatten()
    }

    /// The server's base URL, e.g. `http://127.0.0.1:5123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration for this server that ignores the environment.
    pub fn sdk_config(&self) -> SdkConfig {
        build_sdk_config(&self.endpoint, REGION, "testing", "testing")
    }

    /// A fresh SQS client. Build one per test: clients keep pooled connections on the runtime
    /// that opened them, and every `#[tokio::test]` has its own runtime.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config())
    }

    /// A fresh DynamoDB client (see [`Moto::sqs`] on sharing).
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config())
    }

    /// Creates a uniquely named queue, dead-letter queue and the three tables.
    pub async fn provision_fresh(&self, settings: QueueSettings) -> Result<AwsResources, ProvisionError> {
        let names = ResourceNames::with_prefix(&unique_name("sluice"));
        provision::provision(&self.sqs(), &self.dynamodb(), &names, settings).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let taken = match self.child.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A name no other test, in this process or another, uses: `{prefix}-{pid}-{nanos}-{n}` (within
/// SQS's 80 and DynamoDB's 255 character limits for any short prefix).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Whether an HTTP server answers on the port.
async fn answers(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// The end of the server's log, for error messages.
fn log_tail(path: &PathBuf) -> String {
    let mut text = String::new();
    if std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return format!("(no log at {})", path.display());
    }
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("log {}: {}", path.display(), tail.join(" | "))
}

/// Records the AWS operations made through every client it is attached to, so a test can prove
/// that a function's IAM policy lists exactly the actions its code calls (E-1, least privilege).
///
/// Attach it to a client's config (`aws_sdk_sqs::config::Builder::from(&sdk).interceptor(rec)`);
/// clones share one record. Every call is recorded once, before it is serialized, whether it
/// then succeeds or fails (a call refused for lack of permission is still a call the code makes).
#[derive(Debug, Clone, Default)]
pub struct CallRecorder {
    calls: std::sync::Arc<Mutex<Vec<(String, String)>>>,
}

impl CallRecorder {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far as `(service, operation)`, in order, e.g. `("SQS", "SendMessageBatch")`.
    pub fn calls(&self) -> Vec<(String, String)> {
        match self.calls.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The distinct IAM actions the calls so far need (see [`iam_action`]).
    pub fn iam_actions(&self) -> std::collections::BTreeSet<String> {
        self.calls().iter().map(|(s, o)| iam_action(s, o)).collect()
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        match self.calls.lock() {
            Ok(mut c) => c.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "SluiceCallRecorder"
    }

    // Not `read_before_execution`: a client's interceptors run that hook before the operation's
    // configuration (and its `Metadata`) is in the bag. This hook also runs once per call, not per
    // retry attempt.
    fn read_before_serialization(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let Some(meta) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() else {
            return Err("an SDK operation without Metadata in its config bag".into());
        };
        let entry = (meta.service().to_owned(), meta.name().to_owned());
        match self.calls.lock() {
            Ok(mut c) => c.push(entry),
            Err(poisoned) => poisoned.into_inner().push(entry),
        }
        Ok(())
    }
}

/// The IAM action that authorizes an SDK operation: the service prefix in lower case and the
/// operation, except SQS's batch operations, which IAM authorizes with their single-message
/// action (`SendMessageBatch` needs `sqs:SendMessage`). (The DynamoDB feed makes no
/// transactions: each write is one conditional item operation, authorized as itself.)
pub fn iam_action(service: &str, operation: &str) -> String {
    let prefix = service.to_ascii_lowercase();
    let action = match (prefix.as_str(), operation) {
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        _ => operation,
    };
    format!("{prefix}:{action}")
}

#[cfg(feature = "ssm")]
impl Moto {
    /// A fresh SSM client (see [`Moto::sqs`] on sharing).
    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config())
    }
}

#[cfg(feature = "plans")]
impl Moto {
    /// A fresh API Gateway client (see [`Moto::sqs`] on sharing).
    pub fn apigateway(&self) -> aws_sdk_apigateway::Client {
        aws_sdk_apigateway::Client::new(&self.sdk_config())
    }

    /// What the template deploys for tenant plans, on moto: a REST API with a deployed stage
    /// `stage` and a default usage plan on it (rate 10, burst 20, 20,000 requests a day, the
    /// template's defaults). Returns the API id and the default plan's id, or what moto refused.
    pub async fn rest_api_with_default_plan(&self, stage: &str) -> Result<(String, String), String> {
        use aws_sdk_apigateway::types::{ApiStage, QuotaPeriodType, QuotaSettings, ThrottleSettings};
        let gw = self.apigateway();
        let api = gw
            .create_rest_api()
            .name(unique_name("api"))
            .send()
            .await
            .map_err(|e| format!("moto CreateRestApi: {e:?}"))?;
        let api_id = api.id().unwrap_or_default().to_owned();
        let root = gw
            .get_resources()
            .rest_api_id(&api_id)
            .send()
            .await
            .map_err(|e| format!("moto GetResources: {e:?}"))?;
        let root_id = root.items().first().and_then(|r| r.id()).unwrap_or_default().to_owned();
        gw.put_method()
            .rest_api_id(&api_id)
            .resource_id(&root_id)
            .http_method("GET")
            .authorization_type("NONE")
            .api_key_required(true)
            .send()
            .await
            .map_err(|e| format!("moto PutMethod: {e:?}"))?;
        gw.put_integration()
            .rest_api_id(&api_id)
            .resource_id(&root_id)
            .http_method("GET")
            .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
            .send()
            .await
            .map_err(|e| format!("moto PutIntegration: {e:?}"))?;
        gw.create_deployment()
            .rest_api_id(&api_id)
            .stage_name(stage)
            .send()
            .await
            .map_err(|e| format!("moto CreateDeployment: {e:?}"))?;
        let plan = gw
            .create_usage_plan()
            .name(unique_name("default-plan"))
            .api_stages(ApiStage::builder().api_id(&api_id).stage(stage).build())
            .throttle(ThrottleSettings::builder().rate_limit(10.0).burst_limit(20).build())
            .quota(
                QuotaSettings::builder()
                    .limit(20_000)
                    .period(QuotaPeriodType::Day)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| format!("moto CreateUsagePlan: {e:?}"))?;
        Ok((api_id, plan.id().unwrap_or_default().to_owned()))
    }
}
