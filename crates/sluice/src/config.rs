//! Configuration: defaults, then a TOML file, then `SLUICE_*` environment variables, then flags.
//!
//! Everything is parsed into typed values once at start-up; nothing later can fail on a bad
//! setting. Nested keys map to environment variables with a double underscore:
//! `[queue] max_receive_count` is `SLUICE_QUEUE__MAX_RECEIVE_COUNT`.

use anyhow::{Context, bail};
use serde::Deserialize;
use sluice_core::oidc::{self, OidcConfig};
use sluice_core::validate::Limits;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Throttling (D-1).
    pub throttle: Throttle,
    /// Queue behaviour (D-2, D-3).
    pub queue: QueueSettings,
    /// The process step's worker pool.
    pub worker: WorkerSettings,
    /// Authentication (S-1).
    pub auth: AuthSettings,
    /// Logging (R-1, I-1).
    pub log: LogSettings,
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
            throttle: Throttle::default(),
            queue: QueueSettings::default(),
            worker: WorkerSettings::default(),
            auth: AuthSettings::default(),
            log: LogSettings::default(),
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
    /// `SLUICE_IDEMPOTENCY_TABLE` and `SLUICE_KEYS_TABLE`, reached through the standard AWS
    /// configuration (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for an emulator).
    Aws,
}

/// Token buckets, per API key and global (API Gateway's defaults are 10 000 rps, burst 5 000).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Throttle {
    /// Sustained requests per second per key.
    pub rate_per_sec: u32,
    /// Burst per key.
    pub burst: u32,
    /// Sustained requests per second in all.
    pub global_rate_per_sec: u32,
    /// Global burst.
    pub global_burst: u32,
    /// Failed authentications per minute per client address before it gets 429 unread (0: off).
    pub auth_failures_per_minute: u32,
    /// Burst of failed authentications per client address.
    pub auth_failure_burst: u32,
    /// Requests handled at once; more wait unread for a slot, so memory stays bounded however
    /// many connections are open (D-2): at most this many bodies of `limits.max_body_bytes` being
    /// read. 0: no limit.
    pub max_in_flight: usize,
    /// Body bytes the ingest route works on at once, counted once a body is read (at least 1 KiB
    /// a request); more wait, holding only their body. 0: no limit. This is where memory goes: a
    /// 100-event batch takes about 25 times its body while it is parsed, sealed and sent. Each
    /// send waits for its group commit, so many single events at once share one fsync while a
    /// few large batches fill the budget.
    pub max_in_flight_bytes: usize,
    /// Seconds a request body may take to arrive before the request is refused with 408 and
    /// its connection closed, so slow clients cannot hold the `max_in_flight` slots (D-2).
    /// 0: no limit.
    pub body_timeout_secs: u64,
    /// Seconds a client has to send a request's whole header block, on a new connection and
    /// between requests on a kept-alive one; past it the connection is closed, so clients
    /// trickling headers (slowloris) cannot pile up connections and header buffers (D-2).
    /// 0: no limit.
    pub header_timeout_secs: u64,
    /// Connections open at once; at the limit new ones wait in the kernel's listen backlog until
    /// one closes, so idle connections cannot pile up tasks, descriptors and buffers (D-2).
    /// 0: no limit.
    pub max_connections: usize,
    /// Connections open at once from one client address (the socket's peer); beyond it a new
    /// one is closed as soon as it is accepted. Behind a reverse proxy every connection comes
    /// from the proxy: raise it to `max_connections` or set 0 there. 0: no limit.
    pub max_connections_per_address: usize,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            rate_per_sec: 1000,
            burst: 2000,
            global_rate_per_sec: 10_000,
            global_burst: 5000,
            auth_failures_per_minute: 600,
            auth_failure_burst: 50,
            max_in_flight: 256,
            max_in_flight_bytes: 256 * 1024,
            body_timeout_secs: 30,
            header_timeout_secs: 60,
            max_connections: 1024,
            max_connections_per_address: 256,
        }
    }
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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default: machines read logs).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `sluice=debug,info`.
    pub level: String,
    /// Field names whose values are masked wherever they appear (case-insensitive substring).
    pub redact: Vec<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
            redact: ["password", "secret", "token", "authorization", "api_key", "ssn", "card"]
                .into_iter()
                .map(String::from)
                .collect(),
        }
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
];

impl Config {
    /// Loads defaults, then `file` if given, then `SLUICE_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("SLUICE_") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if !path.first().is_some_and(|p| TOP_LEVEL.contains(&p.as_str())) {
                continue;
            }
            set_path(&mut table, &path, env_value(&value)).with_context(|| format!("applying {name}"))?;
        }
        let config: Config = toml::Value::Table(table).try_into().context("invalid configuration")?;
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
        if self.throttle.rate_per_sec == 0
            || self.throttle.burst == 0
            || self.throttle.global_rate_per_sec == 0
            || self.throttle.global_burst == 0
        {
            bail!("throttle rates and bursts must be positive");
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
        let c = Config::load(Some(&f), []).unwrap();
        assert_eq!(c.backend, Backend::Aws);
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
    fn typos_and_bad_values_fail_at_start_up() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(Config::load(None, env("SLUICE_QUEUE__MAX_RECIEVE_COUNT", "3")).is_err());
        assert!(Config::load(None, env("SLUICE_WORKER__BATCH_SIZE", "11")).is_err());
        assert!(Config::load(None, env("SLUICE_LISTEN", "not an address")).is_err());
    }
}
