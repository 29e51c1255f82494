//! Configuration: defaults, then a TOML file, then `SLUICE_*` environment variables, then flags.
//!
//! Everything is parsed into typed values once at start-up; nothing later can fail on a bad
//! setting. Nested keys map to environment variables with a double underscore:
//! `[queue] max_receive_count` is `SLUICE_QUEUE__MAX_RECEIVE_COUNT`. The sections other crates
//! own are their own types, embedded here: `[throttle]` is `sluice_http::HttpConfig`, `[log]` is
//! `sluice_host::telemetry::LogSettings`, `[limits]` is `sluice_core::validate::Limits`. With the
//! AWS backend, the deployment's resource names are the Lambda functions' own flat variables
//! (`SLUICE_QUEUE_URL`, …), read here through `sluice_host::env`, once.

use anyhow::{Context, bail};
use serde::Deserialize;
use sluice_aws::AwsResources;
use sluice_core::oidc::{self, OidcConfig};
use sluice_core::ports::{ENVELOPE_HEADROOM, MAX_MESSAGE_BYTES};
use sluice_core::validate::Limits;
use sluice_host::env::{self, vars};
use sluice_host::telemetry::{LogFormat, LogSettings};
use sluice_http::HttpConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration of `sluice serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the queue and the stores live: SQLite files, or SQS and DynamoDB.
    pub backend: Backend,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the queue, the store and the secrets live.
    pub data_dir: PathBuf,
    /// Request limits (T-1).
    pub limits: Limits,
    /// JSON Schema files, one `<event type>.json` each.
    pub schema_dir: Option<PathBuf>,
    /// Refuse event types that have no schema.
    pub require_schema: bool,
    /// Throttling and connection limits (D-1, D-2).
    pub throttle: HttpConfig,
    /// Queue behaviour (D-2, D-3).
    pub queue: QueueSettings,
    /// The process step's worker pool.
    pub worker: WorkerSettings,
    /// Authentication (S-1).
    pub auth: AuthSettings,
    /// Logging (R-1, I-1).
    pub log: LogSettings,
    /// `[admin]`: the admin listener (metrics, console).
    pub admin: AdminSettings,
    /// `[retention]`: how long events are kept (I-3).
    pub retention: RetentionSettings,
    /// `[feed]`: the feed's streams (D-2).
    pub feed: FeedConfig,
    /// The AWS backend's resources, from the environment; `None` on the embedded backend.
    #[serde(skip)]
    pub aws: Option<AwsSettings>,
}

/// What `--backend aws` reads from the environment, as the Lambda functions do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The queues and tables (`SLUICE_QUEUE_URL`, `SLUICE_DLQ_URL`, `SLUICE_TABLE`,
    /// `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_KEYS_TABLE`, `SLUICE_SOURCES_TABLE`).
    pub resources: AwsResources,
    /// `SLUICE_SIGNING_KEY_PARAM`: the SSM parameter of the envelope signing key ring, or local keys.
    pub signing_key_param: Option<String>,
    /// `SLUICE_CURSOR_KEY_PARAM`: the SSM parameter of the cursor key, or a local key.
    pub cursor_key_param: Option<String>,
    /// The REST API's usage plans, when `SLUICE_REST_API_ID` is set.
    pub gateway: Option<GatewaySettings>,
    /// `SLUICE_EVENT_SHARDS`: partitions per tenant in the events table (default 1).
    pub event_shards: u32,
}

/// Where tenants' usage plans live on AWS (the REST variant's outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// `SLUICE_REST_API_ID`.
    pub rest_api_id: String,
    /// `SLUICE_API_STAGE`.
    pub stage: String,
    /// `SLUICE_DEFAULT_USAGE_PLAN_ID`.
    pub default_usage_plan_id: String,
}

/// Command-line flags: the last layer, over every other.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--backend`.
    pub backend: Option<Backend>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `serve --listen`.
    pub listen: Option<SocketAddr>,
    /// `serve --log-format`.
    pub log_format: Option<LogFormat>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".sluice"),
            limits: Limits::default(),
            schema_dir: None,
            require_schema: false,
            throttle: HttpConfig::default(),
            queue: QueueSettings::default(),
            worker: WorkerSettings::default(),
            auth: AuthSettings::default(),
            log: LogSettings::default(),
            admin: AdminSettings::default(),
            retention: RetentionSettings::default(),
            feed: FeedConfig::default(),
            aws: None,
        }
    }
}

/// `[admin]`: the operators' listener, apart from the public one: Prometheus metrics at
/// `/metrics` and the console at `/console`. Never on the public listener (E-1, S-1).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Where it listens; loopback by default, so only this machine reaches it.
    pub listen: SocketAddr,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[retention]`: events expire this long after they were received and leave every read at
/// once; a sweeper removes them from the file. Tombstones are kept for `default_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// For types without their own (default 30 days).
    pub default_secs: u64,
    /// `[retention.types]`: `"<event type>" = <seconds>`.
    pub types: std::collections::BTreeMap<String, u64>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            default_secs: 30 * 86_400,
            types: std::collections::BTreeMap::new(),
        }
    }
}

impl RetentionSettings {
    /// The core's rule; an unknown type name or a zero is an error.
    pub fn rule(&self) -> anyhow::Result<sluice_core::feed::Retention> {
        if self.default_secs == 0 {
            anyhow::bail!("retention.default_secs must be at least 1");
        }
        let mut by_type = std::collections::BTreeMap::new();
        for (ty, secs) in &self.types {
            let t = sluice_core::EventType::parse(ty)
                .map_err(|e| anyhow::anyhow!("retention.types: {ty:?} is not an event type ({e})"))?;
            if *secs == 0 {
                anyhow::bail!("retention.types.{ty} must be at least 1");
            }
            by_type.insert(t, Duration::from_secs(*secs));
        }
        Ok(sluice_core::feed::Retention {
            default: Duration::from_secs(self.default_secs),
            by_type,
        })
    }
}

/// `[feed]`: bounds on `GET /v1/feed/stream` (D-2).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Streams open at once per tenant; one more gets 429 (default 8).
    pub max_streams_per_tenant: usize,
    /// Seconds a stream's client may leave an entry untaken before the stream is closed
    /// (default 10); it resumes with `Last-Event-ID`.
    pub slow_consumer_secs: u64,
    /// Seconds between heartbeat comments on an idle stream (default 15).
    pub heartbeat_secs: u64,
    /// The longest a `GET /v1/feed?wait=` long-poll waits, whatever it asks (default and at
    /// most 20).
    pub max_wait_secs: u64,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            max_streams_per_tenant: 8,
            slow_consumer_secs: 10,
            heartbeat_secs: 15,
            max_wait_secs: sluice_core::feed::MAX_WAIT_SECS,
        }
    }
}

impl FeedConfig {
    /// The HTTP layer's settings.
    pub fn settings(&self) -> sluice_http::FeedSettings {
        sluice_http::FeedSettings {
            poll: Duration::from_millis(250),
            max_streams_per_tenant: self.max_streams_per_tenant.max(1),
            slow_consumer: Duration::from_secs(self.slow_consumer_secs.max(1)),
            stream_buffer: 256,
            heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
            max_wait: Duration::from_secs(self.max_wait_secs.min(sluice_core::feed::MAX_WAIT_SECS)),
        }
    }
}

/// The adapters behind the ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// SQLite files under `data_dir` (one machine, no cloud).
    #[default]
    Embedded,
    /// SQS and DynamoDB, named by `SLUICE_QUEUE_URL`, `SLUICE_DLQ_URL`, `SLUICE_TABLE`,
    /// `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_KEYS_TABLE` and `SLUICE_SOURCES_TABLE`, reached through the standard AWS
    /// configuration (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for an emulator).
    Aws,
}

/// Queue settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Receives before a message moves to the DLQ (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
    /// How long an unprocessed message is kept, in seconds.
    pub retention_secs: u64,
    /// How long the DLQ keeps a message, in seconds.
    pub dlq_retention_secs: u64,
    /// Visibility timeout of a received batch, in seconds.
    pub visibility_timeout_secs: u64,
    /// Refuse new events (503) once the queue holds this many (D-3).
    pub max_depth: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_receive_count: 5,
            retention_secs: 4 * 24 * 3600,
            dlq_retention_secs: 14 * 24 * 3600,
            visibility_timeout_secs: 30,
            max_depth: 1_000_000,
        }
    }
}

/// Worker pool settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Concurrent pollers. 0 pauses the process step (like disabling the SQS event source
    /// mapping on AWS): ingest keeps accepting and the queue keeps every event, bounded by
    /// `queue.max_depth`, until a restart with workers drains it.
    pub workers: usize,
    /// Records per receive, 1 to 10.
    pub batch_size: usize,
    /// Longest retry backoff, in seconds.
    pub max_backoff_secs: u64,
    /// How much lower than the gateway's the process step's threads run, as a `nice` increment
    /// (0 to 19; 0: the same priority). On AWS the ingest and process functions never compete
    /// for a CPU; on one machine this keeps it so under load: accepting events comes first and
    /// the process step drains the queue with the CPU left over, at full speed when ingest is
    /// quiet. The backlog stays bounded by `queue.max_depth`.
    pub nice: u8,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            batch_size: 10,
            max_backoff_secs: 60,
            nice: 10,
        }
    }
}

/// Authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// How long a key lookup is cached; a revocation takes effect within this many seconds.
    pub cache_secs: u64,
    /// JWTs from an OIDC issuer, for user-facing clients (S-1); off when absent.
    pub oidc: Option<OidcSettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            cache_secs: 5,
            oidc: None,
        }
    }
}

/// `[auth.oidc]`: accept bearer JWTs signed by a key of `jwks_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The exact `iss` claim, e.g. a Cognito user pool's URL.
    pub issuer: String,
    /// Accepted `aud` values (app client ids): a list, or one comma-separated string.
    #[serde(deserialize_with = "string_or_list")]
    pub audiences: Vec<String>,
    /// The claim that names the tenant.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Allowed algorithms, asymmetric only: a list, or one comma-separated string.
    #[serde(default = "default_algorithms", deserialize_with = "string_or_list")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The issuer's JWKS (`{"keys": [...]}`), read at start-up.
    pub jwks_file: PathBuf,
}

fn default_tenant_claim() -> String {
    oidc::DEFAULT_TENANT_CLAIM.to_owned()
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".to_owned()]
}

fn default_leeway() -> u64 {
    oidc::DEFAULT_LEEWAY_SECS
}

/// Environment variables carry lists as one string; files may use either form.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

impl OidcSettings {
    /// The verifier's configuration; unsafe settings (no audience, `HS256`, `none`) are errors.
    pub fn oidc_config(&self) -> anyhow::Result<OidcConfig> {
        let config = OidcConfig {
            issuer: self.issuer.trim().to_owned(),
            audiences: self.audiences.clone(),
            tenant_claim: self.tenant_claim.clone(),
            algorithms: oidc::parse_algorithms(&self.algorithms).context("auth.oidc.algorithms")?,
            leeway_secs: self.leeway_secs,
        };
        config.validate().context("auth.oidc")?;
        Ok(config)
    }
}

const TOP_LEVEL: &[&str] = &[
    "backend",
    "listen",
    "data_dir",
    "limits",
    "schema_dir",
    "require_schema",
    "throttle",
    "queue",
    "worker",
    "auth",
    "log",
    "admin",
    "retention",
    "feed",
];

impl Config {
    /// Loads defaults, then `file` if given, then `SLUICE_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        Self::load_with(file, env, Overrides::default())
    }

    /// Loads defaults, then `file` if given, then `SLUICE_*` variables from `env`, then `flags`;
    /// with the AWS backend, also the resource names from `env`. Every setting is checked here.
    pub fn load_with(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Overrides,
    ) -> anyhow::Result<Self> {
        let environment: BTreeMap<String, String> = env.into_iter().collect();
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in &environment {
            let Some(rest) = name.strip_prefix(vars::PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if !path.first().is_some_and(|p| TOP_LEVEL.contains(&p.as_str())) {
                continue;
            }
            set_path(&mut table, &path, env_value(value)).with_context(|| format!("applying {name}"))?;
        }
        let mut config: Config = toml::Value::Table(table).try_into().context("invalid configuration")?;
        config.backend = flags.backend.unwrap_or(config.backend);
        config.data_dir = flags.data_dir.unwrap_or(config.data_dir);
        config.listen = flags.listen.unwrap_or(config.listen);
        config.log.format = flags.log_format.unwrap_or(config.log.format);
        if config.backend == Backend::Aws {
            let lookup = |k: &str| environment.get(k).cloned();
            config.aws = Some(AwsSettings {
                resources: env::aws_resources(&lookup).context("the aws backend needs its resource names")?,
                signing_key_param: env::optional(&lookup, vars::SIGNING_KEY_PARAM),
                cursor_key_param: env::optional(&lookup, vars::CURSOR_KEY_PARAM),
                event_shards: env::event_shards(&lookup)?,
                gateway: match env::optional(&lookup, vars::REST_API_ID) {
                    Some(rest_api_id) => Some(GatewaySettings {
                        rest_api_id,
                        stage: env::required(&lookup, vars::API_STAGE)
                            .context("SLUICE_REST_API_ID is set: the stage is needed too")?,
                        default_usage_plan_id: env::required(&lookup, vars::DEFAULT_USAGE_PLAN_ID)
                            .context("SLUICE_REST_API_ID is set: the default usage plan is needed too")?,
                    }),
                    None => None,
                },
            });
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if !(1..=10).contains(&self.worker.batch_size) {
            bail!("worker.batch_size must be 1 to 10");
        }
        if self.worker.nice > 19 {
            bail!("worker.nice must be 0 to 19");
        }
        if self.queue.max_receive_count == 0 {
            bail!("queue.max_receive_count must be at least 1");
        }
        if self.limits.max_batch == 0 || self.limits.max_depth < 2 || self.limits.max_body_bytes == 0 {
            bail!("limits must allow at least one event");
        }
        let most = MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM;
        if self.limits.max_body_bytes > most {
            bail!(
                "limits.max_body_bytes must be at most {most}: a single event and its envelope must fit in one queue message ({MAX_MESSAGE_BYTES} bytes, SQS's limit)"
            );
        }
        if let Some(o) = &self.auth.oidc {
            o.oidc_config()?;
        }
        Ok(())
    }
}

/// Environment values are TOML literals when they parse as one (numbers, booleans, arrays), else strings.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    match path {
        [] => bail!("empty key"),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => bail!("{first} is not a table"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let c = Config::load(None, []).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.limits.max_body_bytes, 256 * 1024);
        assert_eq!(c.queue.max_receive_count, 5);
        assert!(c.log.redact.iter().any(|r| r == "password"));
        assert_eq!(c.worker.nice, 10);
    }

    #[test]
    fn worker_nice_is_a_nice_increment() {
        let env = |v: &str| [("SLUICE_WORKER__NICE".to_string(), v.to_string())];
        assert_eq!(Config::load(None, env("0")).unwrap().worker.nice, 0);
        assert_eq!(Config::load(None, env("19")).unwrap().worker.nice, 19);
        assert!(Config::load(None, env("20")).is_err());
        assert!(Config::load(None, env("-1")).is_err());
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sluice.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9000\"\n[queue]\nmax_receive_count = 3\n[limits]\nmax_depth = 8\n",
        )
        .unwrap();
        let env = [
            ("SLUICE_QUEUE__MAX_RECEIVE_COUNT".to_string(), "7".to_string()),
            ("SLUICE_DATA_DIR".to_string(), "/tmp/x".to_string()),
            (
                "SLUICE_QUEUE_URL".to_string(),
                "ignored: belongs to the AWS backend".to_string(),
            ),
            ("OTHER".to_string(), "1".to_string()),
        ];
        let c = Config::load(Some(&f), env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.queue.max_receive_count, 7);
        assert_eq!(c.limits.max_depth, 8);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn oidc_section_from_file_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sluice.toml");
        std::fs::write(
            &f,
            "backend = \"aws\"\n[auth.oidc]\nissuer = \"https://idp.test\"\naudiences = [\"app\"]\njwks_file = \"/j.json\"\n",
        )
        .unwrap();
        let resources = [
            (vars::QUEUE_URL, "http://q"),
            (vars::DLQ_URL, "http://d"),
            (vars::TABLE, "events"),
            (vars::IDEMPOTENCY_TABLE, "idem"),
            (vars::KEYS_TABLE, "keys"),
            (vars::SOURCES_TABLE, "sources"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = Config::load(Some(&f), resources.clone()).unwrap();
        assert_eq!(c.backend, Backend::Aws);
        let aws = c.aws.as_ref().unwrap();
        assert_eq!(
            (aws.resources.table.as_str(), aws.signing_key_param.as_deref()),
            ("events", None)
        );
        let o = c.auth.oidc.unwrap().oidc_config().unwrap();
        assert_eq!(o.audiences, ["app"]);
        assert_eq!(o.tenant_claim, "custom:tenant");
        assert_eq!(o.algorithms, [sluice_core::oidc::JwtAlgorithm::RS256]);
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let base = [
            ("SLUICE_AUTH__OIDC__ISSUER", "https://idp.test"),
            ("SLUICE_AUTH__OIDC__AUDIENCES", "a, b"),
            ("SLUICE_AUTH__OIDC__JWKS_FILE", "/j.json"),
            ("SLUICE_AUTH__OIDC__TENANT_CLAIM", "org"),
        ];
        let c = Config::load(None, env(&base)).unwrap();
        let o = c.auth.oidc.unwrap();
        assert_eq!(o.audiences, ["a", "b"]);
        assert_eq!(o.tenant_claim, "org");
        assert_eq!(c.backend, Backend::Embedded);
        // Unsafe or incomplete settings stop the start.
        for (k, v) in [
            ("SLUICE_AUTH__OIDC__ALGORITHMS", "HS256"),
            ("SLUICE_AUTH__OIDC__ALGORITHMS", "none"),
            ("SLUICE_AUTH__OIDC__AUDIENCES", ""),
            ("SLUICE_AUTH__OIDC__LEEWAY_SECS", "86400"),
        ] {
            let mut e = env(&base);
            e.push((k.to_string(), v.to_string()));
            assert!(Config::load(None, e).is_err(), "{k}={v}");
        }
        assert!(Config::load(None, env(&base[..2])).is_err(), "jwks_file is required");
        assert!(Config::load(None, env(&[("SLUICE_BACKEND", "s3")])).is_err());
    }

    #[test]
    fn the_aws_backend_needs_its_resource_names_at_start_up_whichever_layer_picks_it() {
        let err = Config::load(None, [("SLUICE_BACKEND".to_owned(), "aws".to_owned())]).unwrap_err();
        assert!(format!("{err:#}").contains(vars::QUEUE_URL), "{err:#}");
        let flags = Overrides {
            backend: Some(Backend::Aws),
            ..Overrides::default()
        };
        assert!(
            Config::load_with(None, [], flags).is_err(),
            "the --backend flag counts too"
        );
        let embedded = Config::load(None, []).unwrap();
        assert_eq!(embedded.aws, None, "the embedded backend reads no AWS names");
    }

    #[test]
    fn typos_and_bad_values_fail_at_start_up() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(Config::load(None, env("SLUICE_QUEUE__MAX_RECIEVE_COUNT", "3")).is_err());
        assert!(Config::load(None, env("SLUICE_WORKER__BATCH_SIZE", "11")).is_err());
        assert!(Config::load(None, env("SLUICE_LISTEN", "not an address")).is_err());
        let most = (MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM).to_string();
        assert!(Config::load(None, env("SLUICE_LIMITS__MAX_BODY_BYTES", &most)).is_ok());
        let over = (MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM + 1).to_string();
        let err = Config::load(None, env("SLUICE_LIMITS__MAX_BODY_BYTES", &over)).unwrap_err();
        assert!(err.to_string().contains("limits.max_body_bytes"), "{err}");
    }
}
