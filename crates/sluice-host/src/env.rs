//! The environment: every `SLUICE_*` variable either host reads, named once in [`vars`], and one
//! way to read them, through a [`Lookup`] so tests can feed a map and record exactly which
//! variables a function reads (the Lambda manifest's `env` lists are checked against that record).
//!
//! `sluice serve` reads its nested settings (`SLUICE_QUEUE__MAX_RECEIVE_COUNT`, …) through its
//! layered configuration; the flat names here are the ones the Lambda functions read and that
//! `sluice serve --backend aws` shares with them, so one deployment's variables drive both.

use crate::files::{self, FileError};
use sluice_aws::AwsResources;
use sluice_core::oidc::{self, OidcConfig};
use sluice_core::validate::Schemas;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

/// Every variable name Sluice reads, once.
pub mod vars {
    /// The prefix of every Sluice variable; `sluice serve` maps `SLUICE_A__B` to `[a] b`.
    pub const PREFIX: &str = "SLUICE_";
    /// The main queue's URL.
    pub const QUEUE_URL: &str = "SLUICE_QUEUE_URL";
    /// The dead-letter queue's URL.
    pub const DLQ_URL: &str = "SLUICE_DLQ_URL";
    /// The events table.
    pub const TABLE: &str = "SLUICE_TABLE";
    /// The idempotency table (TTL on `ttl`).
    pub const IDEMPOTENCY_TABLE: &str = "SLUICE_IDEMPOTENCY_TABLE";
    /// The API keys table.
    pub const KEYS_TABLE: &str = "SLUICE_KEYS_TABLE";
    /// The webhook sources table.
    pub const SOURCES_TABLE: &str = "SLUICE_SOURCES_TABLE";
    /// The REST API whose usage plans hold tenants' limits (the template's `RestApiId` output).
    pub const REST_API_ID: &str = "SLUICE_REST_API_ID";
    /// Its stage (`ApiStageName`).
    pub const API_STAGE: &str = "SLUICE_API_STAGE";
    /// The usage plan of tenants without their own (`DefaultUsagePlanId`).
    pub const DEFAULT_USAGE_PLAN_ID: &str = "SLUICE_DEFAULT_USAGE_PLAN_ID";
    /// The CloudWatch namespace of the Lambda functions' metrics (EMF).
    pub const METRICS_NAMESPACE: &str = "SLUICE_METRICS_NAMESPACE";
    /// The SSM parameter holding the envelope signing key ring.
    pub const SIGNING_KEY_PARAM: &str = "SLUICE_SIGNING_KEY_PARAM";
    /// The SSM parameter holding the cursor key.
    pub const CURSOR_KEY_PARAM: &str = "SLUICE_CURSOR_KEY_PARAM";
    /// A directory of `<event type>.json` JSON Schemas.
    pub const SCHEMA_DIR: &str = "SLUICE_SCHEMA_DIR";
    /// `true` to refuse event types without a schema.
    pub const REQUIRE_SCHEMA: &str = "SLUICE_REQUIRE_SCHEMA";
    /// The OIDC issuer whose JWTs are accepted.
    pub const OIDC_ISSUER: &str = "SLUICE_OIDC_ISSUER";
    /// Accepted audiences (app client ids), comma-separated.
    pub const OIDC_AUDIENCE: &str = "SLUICE_OIDC_AUDIENCE";
    /// The claim naming the tenant.
    pub const OIDC_TENANT_CLAIM: &str = "SLUICE_OIDC_TENANT_CLAIM";
    /// Allowed JWT algorithms, comma-separated.
    pub const OIDC_ALGORITHMS: &str = "SLUICE_OIDC_ALGORITHMS";
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub const OIDC_LEEWAY_SECS: &str = "SLUICE_OIDC_LEEWAY_SECS";
    /// The issuer's JWKS itself (JSON).
    pub const OIDC_JWKS: &str = "SLUICE_OIDC_JWKS";
    /// A file holding the issuer's JWKS.
    pub const OIDC_JWKS_FILE: &str = "SLUICE_OIDC_JWKS_FILE";
    /// Field names masked in log lines, comma-separated (Lambda; `[log] redact` locally).
    pub const LOG_REDACT: &str = "SLUICE_LOG_REDACT";
    /// Partitions per tenant in the events table (the template's `EventShards`).
    pub const EVENT_SHARDS: &str = "SLUICE_EVENT_SHARDS";
    /// Days events are kept by default (the template's `RetentionDays`).
    pub const RETENTION_DAYS: &str = "SLUICE_RETENTION_DAYS";
    /// Per-type retention in days: `type=days,type=days` (the template's `RetentionByType`).
    pub const RETENTION_BY_TYPE: &str = "SLUICE_RETENTION_BY_TYPE";
    /// The configuration file of `sluice serve`.
    pub const CONFIG: &str = "SLUICE_CONFIG";
    /// Lambda's log level (set by the Lambda service from the function's `LoggingConfig`).
    pub const LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
    /// Lambda's log format, `JSON` or `Text` (set by the Lambda service).
    pub const LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
}

/// Where configuration comes from: a variable name in, its value (if set) out.
pub type Lookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// The process environment as a [`Lookup`] (`std::env::var`, unset or non-UTF-8 = `None`).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why a variable could not be used. Its `Display` never includes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A required variable is unset or blank.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// A variable has an unusable value.
    #[error("environment variable {var}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file a variable names could not be used.
    #[error("environment variable {var}: {source}")]
    File {
        /// The variable.
        var: &'static str,
        /// What went wrong with the file.
        source: FileError,
    },
}

/// A required variable: set and not blank.
pub fn required(env: Lookup<'_>, name: &'static str) -> Result<String, EnvError> {
    optional(env, name).ok_or(EnvError::Missing(name))
}

/// An optional variable; blank counts as unset.
pub fn optional(env: Lookup<'_>, name: &'static str) -> Option<String> {
    env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// An optional comma-separated list; blank items are dropped, and a list of none is unset.
pub fn list(env: Lookup<'_>, name: &'static str) -> Option<Vec<String>> {
    let items = split_list(&optional(env, name)?);
    (!items.is_empty()).then_some(items)
}

/// An optional boolean: `true`/`1`/`yes` or `false`/`0`/`no` (any case); unset is `default`.
pub fn flag(env: Lookup<'_>, name: &'static str, default: bool) -> Result<bool, EnvError> {
    match optional(env, name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(_) => Err(EnvError::Invalid {
            var: name,
            reason: "expected true or false".into(),
        }),
    }
}

/// An optional path.
pub fn path(env: Lookup<'_>, name: &'static str) -> Option<PathBuf> {
    optional(env, name).map(PathBuf::from)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The queues and tables of one deployment: `SLUICE_QUEUE_URL`, `SLUICE_DLQ_URL`, `SLUICE_TABLE`,
/// `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_KEYS_TABLE` and `SLUICE_SOURCES_TABLE`; the error names the
/// first one missing.
pub fn aws_resources(env: Lookup<'_>) -> Result<AwsResources, EnvError> {
    Ok(AwsResources {
        queue_url: required(env, vars::QUEUE_URL)?,
        dlq_url: required(env, vars::DLQ_URL)?,
        table: required(env, vars::TABLE)?,
        idempotency_table: required(env, vars::IDEMPOTENCY_TABLE)?,
        keys_table: required(env, vars::KEYS_TABLE)?,
        sources_table: required(env, vars::SOURCES_TABLE)?,
    })
}

/// `SLUICE_EVENT_SHARDS`: partitions per tenant in the events table, 1 to 256 (default 1).
pub fn event_shards(env: Lookup<'_>) -> Result<u32, EnvError> {
    match optional(env, vars::EVENT_SHARDS) {
        None => Ok(1),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .ok_or(EnvError::Invalid {
                var: vars::EVENT_SHARDS,
                reason: "a whole number from 1 to 256".into(),
            }),
    }
}

/// Retention: `SLUICE_RETENTION_DAYS` (default 30) and `SLUICE_RETENTION_BY_TYPE`
/// (`type=days,...`), each from 1 to 3650 days.
pub fn retention(env: Lookup<'_>) -> Result<sluice_core::feed::Retention, EnvError> {
    let days = |var: &'static str, v: &str| {
        v.trim()
            .parse::<u64>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .map(|d| std::time::Duration::from_secs(d * 86_400))
            .ok_or(EnvError::Invalid {
                var,
                reason: "days from 1 to 3650".into(),
            })
    };
    let mut r = sluice_core::feed::Retention::default();
    if let Some(v) = optional(env, vars::RETENTION_DAYS) {
        r.default = days(vars::RETENTION_DAYS, &v)?;
    }
    for item in list(env, vars::RETENTION_BY_TYPE).unwrap_or_default() {
        let invalid = || EnvError::Invalid {
            var: vars::RETENTION_BY_TYPE,
            reason: "type=days pairs, comma-separated".into(),
        };
        let (ty, d) = item.split_once('=').ok_or_else(invalid)?;
        let ty = sluice_core::EventType::parse(ty.trim()).map_err(|_| invalid())?;
        r.by_type.insert(ty, days(vars::RETENTION_BY_TYPE, d)?);
    }
    Ok(r)
}

/// The longest retention of any type: how long feed slots are kept.
pub fn longest_retention(r: &sluice_core::feed::Retention) -> std::time::Duration {
    r.by_type.values().copied().fold(r.default, std::cmp::max)
}

/// The JWT claim naming the tenant: `SLUICE_OIDC_TENANT_CLAIM`, default `custom:tenant`.
pub fn tenant_claim(env: Lookup<'_>) -> String {
    optional(env, vars::OIDC_TENANT_CLAIM).unwrap_or_else(|| oidc::DEFAULT_TENANT_CLAIM.to_owned())
}

/// The OIDC issuer to accept JWTs from, with its JWKS (JSON), or `None` when
/// `SLUICE_OIDC_ISSUER` is unset (JWT authentication off).
///
/// Reads `SLUICE_OIDC_ISSUER`, `SLUICE_OIDC_AUDIENCE` (comma-separated), `SLUICE_OIDC_TENANT_CLAIM`
/// (default `custom:tenant`), `SLUICE_OIDC_ALGORITHMS` (comma-separated, default `RS256`),
/// `SLUICE_OIDC_LEEWAY_SECS` (default 30), and the JWKS from `SLUICE_OIDC_JWKS` (the JSON
/// itself) or else `SLUICE_OIDC_JWKS_FILE` (a path). Unsafe settings (no audience, `HS256`,
/// `none`, a leeway over 300 s) and a missing JWKS are errors.
pub fn oidc(env: Lookup<'_>) -> Result<Option<(OidcConfig, String)>, EnvError> {
    let Some(issuer) = optional(env, vars::OIDC_ISSUER) else {
        return Ok(None);
    };
    let invalid = |var: &'static str| {
        move |e: oidc::OidcError| EnvError::Invalid {
            var,
            reason: e.to_string(),
        }
    };
    let algorithms = match list(env, vars::OIDC_ALGORITHMS) {
        Some(names) => oidc::parse_algorithms(names).map_err(invalid(vars::OIDC_ALGORITHMS))?,
        None => vec![oidc::JwtAlgorithm::RS256],
    };
    let leeway_secs = match optional(env, vars::OIDC_LEEWAY_SECS) {
        Some(v) => v.parse().map_err(|_| EnvError::Invalid {
            var: vars::OIDC_LEEWAY_SECS,
            reason: "expected a whole number of seconds".into(),
        })?,
        None => oidc::DEFAULT_LEEWAY_SECS,
    };
    let config = OidcConfig {
        issuer,
        audiences: list(env, vars::OIDC_AUDIENCE).unwrap_or_default(),
        tenant_claim: tenant_claim(env),
        algorithms,
        leeway_secs,
    };
    config.validate().map_err(|e| {
        let var = match e {
            oidc::OidcError::MissingAudience => vars::OIDC_AUDIENCE,
            oidc::OidcError::InvalidLeeway => vars::OIDC_LEEWAY_SECS,
            oidc::OidcError::MissingTenantClaim => vars::OIDC_TENANT_CLAIM,
            _ => vars::OIDC_ISSUER,
        };
        invalid(var)(e)
    })?;
    let jwks = match (optional(env, vars::OIDC_JWKS), path(env, vars::OIDC_JWKS_FILE)) {
        (Some(json), _) => json,
        (None, Some(file)) => files::read_jwks_file(&file).map_err(|source| EnvError::File {
            var: vars::OIDC_JWKS_FILE,
            source,
        })?,
        (None, None) => {
            return Err(EnvError::Invalid {
                var: vars::OIDC_ISSUER,
                reason: format!("is set but neither {} nor {} is", vars::OIDC_JWKS, vars::OIDC_JWKS_FILE),
            });
        }
    };
    Ok(Some((config, jwks)))
}

/// Where the validator's schemas come from: `SLUICE_SCHEMA_DIR` and `SLUICE_REQUIRE_SCHEMA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSource {
    dir: Option<PathBuf>,
    require: bool,
}

impl SchemaSource {
    /// Reads `SLUICE_SCHEMA_DIR` and `SLUICE_REQUIRE_SCHEMA`.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, EnvError> {
        Ok(Self {
            dir: path(env, vars::SCHEMA_DIR),
            require: flag(env, vars::REQUIRE_SCHEMA, false)?,
        })
    }

    /// Reads and compiles the schemas.
    pub fn load(&self) -> Result<Schemas, EnvError> {
        files::schemas(self.dir.as_deref(), self.require).map_err(|source| EnvError::File {
            var: vars::SCHEMA_DIR,
            source,
        })
    }
}

/// A fixed set of variables that remembers every name looked up in it (for tests and for the
/// manifest check: a function must read exactly the variables its manifest entry lists).
#[derive(Debug, Default)]
pub struct RecordingEnv {
    vars: BTreeMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl RecordingEnv {
    /// An environment holding `vars`.
    pub fn new<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            read: Mutex::default(),
        }
    }

    /// Looks `name` up and records that it was read.
    pub fn get(&self, name: &str) -> Option<String> {
        match self.read.lock() {
            Ok(mut r) => r.insert(name.to_owned()),
            Err(p) => p.into_inner().insert(name.to_owned()),
        };
        self.vars.get(name).cloned()
    }

    /// Every name looked up so far, set or not.
    pub fn read(&self) -> BTreeSet<String> {
        match self.read.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync + use<> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    const ISS: &str = "https://idp.test";

    #[test]
    fn aws_resources_name_the_first_missing_variable() {
        let full = [
            (vars::QUEUE_URL, "http://q"),
            (vars::DLQ_URL, "http://d"),
            (vars::TABLE, "events"),
            (vars::IDEMPOTENCY_TABLE, "idem"),
            (vars::KEYS_TABLE, "keys"),
            (vars::SOURCES_TABLE, "sources"),
        ];
        let r = aws_resources(&lookup(&full)).unwrap();
        assert_eq!(r.idempotency_table, "idem");
        let mut blank = full;
        blank[3].1 = " ";
        assert_eq!(
            aws_resources(&lookup(&blank)),
            Err(EnvError::Missing(vars::IDEMPOTENCY_TABLE))
        );
        let err = aws_resources(&lookup(&full[2..])).unwrap_err();
        assert_eq!(err.to_string(), "environment variable SLUICE_QUEUE_URL is not set");
    }

    #[test]
    fn oidc_is_off_without_an_issuer_and_checked_with_one() {
        assert_eq!(oidc(&lookup(&[(vars::OIDC_ISSUER, " ")])).unwrap(), None);
        let (config, jwks) = oidc(&lookup(&[
            (vars::OIDC_ISSUER, ISS),
            (vars::OIDC_AUDIENCE, "a, b,,"),
            (vars::OIDC_ALGORITHMS, "RS256,ES256"),
            (vars::OIDC_LEEWAY_SECS, "5"),
            (vars::OIDC_JWKS, "{\"keys\":[]}"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.audiences, ["a", "b"]);
        assert_eq!(config.leeway_secs, 5);
        assert_eq!(config.tenant_claim, oidc::DEFAULT_TENANT_CLAIM);
        assert_eq!(jwks, "{\"keys\":[]}");
        let err = |pairs: &[(&str, &str)]| oidc(&lookup(pairs)).unwrap_err();
        let jwks = (vars::OIDC_JWKS, "{\"keys\":[]}");
        assert!(matches!(
            err(&[(vars::OIDC_ISSUER, ISS), jwks]),
            EnvError::Invalid {
                var: vars::OIDC_AUDIENCE,
                ..
            }
        ));
        for algs in ["HS256", "none", "RS256,HS384", "rs256"] {
            assert!(matches!(
                err(&[
                    (vars::OIDC_ISSUER, ISS),
                    (vars::OIDC_AUDIENCE, "a"),
                    (vars::OIDC_ALGORITHMS, algs),
                    jwks
                ]),
                EnvError::Invalid {
                    var: vars::OIDC_ALGORITHMS,
                    ..
                }
            ));
        }
        let too_lax = [
            (vars::OIDC_ISSUER, ISS),
            (vars::OIDC_AUDIENCE, "a"),
            (vars::OIDC_LEEWAY_SECS, "3600"),
            jwks,
        ];
        assert!(matches!(
            err(&too_lax),
            EnvError::Invalid {
                var: vars::OIDC_LEEWAY_SECS,
                ..
            }
        ));
        let no_jwks = err(&[(vars::OIDC_ISSUER, ISS), (vars::OIDC_AUDIENCE, "a")]);
        assert!(no_jwks.to_string().contains(vars::OIDC_JWKS_FILE), "{no_jwks}");
        let missing_file = err(&[
            (vars::OIDC_ISSUER, ISS),
            (vars::OIDC_AUDIENCE, "a"),
            (vars::OIDC_JWKS_FILE, "/nonexistent/jwks.json"),
        ]);
        assert!(matches!(
            missing_file,
            EnvError::File {
                var: vars::OIDC_JWKS_FILE,
                ..
            }
        ));
    }

    #[test]
    fn flags_and_lists_read_loosely_but_refuse_nonsense() {
        let env = lookup(&[("A", " Yes "), ("B", "0"), ("C", "maybe"), ("L", " x, ,y ")]);
        assert_eq!(flag(&env, "A", false), Ok(true));
        assert_eq!(flag(&env, "B", true), Ok(false));
        assert_eq!(flag(&env, "UNSET", true), Ok(true));
        assert!(flag(&env, "C", false).is_err());
        assert_eq!(list(&env, "L"), Some(vec!["x".to_owned(), "y".to_owned()]));
    }

    #[test]
    fn a_recording_env_remembers_unset_names_too() {
        let env = RecordingEnv::new([("A", "1")]);
        assert_eq!(env.get("A").as_deref(), Some("1"));
        assert_eq!(env.get("B"), None);
        assert_eq!(env.read(), ["A".to_owned(), "B".to_owned()].into_iter().collect());
    }
}
