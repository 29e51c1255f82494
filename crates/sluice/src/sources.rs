//! `sluice sources`: webhook sources, the URLs providers post signed deliveries to (S-1, S-5).
//!
//! A source's secret is what the provider shows (Stripe's `whsec_…`, a GitHub webhook secret,
//! a Standard Webhooks `whsec_<base64>`…). It is given once, on the command line or, with
//! `--secret -`, on standard input so it stays out of shell history, and it is never printed
//! again: `list` shows ids, tenants, kinds and how many secrets are live, never one.

use crate::cli::{emit, time_value};
use crate::config::Config;
use crate::exit::{Classify, CliError};
use crate::output::{Format, Listing};
use crate::serve;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sluice_core::ports::{SourceRecord, SourceSecret, SourceStoreError};
use sluice_core::webhook::{HmacScheme, SignatureEncoding, SourceKind};
use sluice_core::{EventType, SourceId, Tenant};
use std::io::Read;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The longest secret accepted.
const MAX_SECRET_LEN: usize = 1024;

/// `sluice sources …`.
#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Create a source for a tenant; prints its id as the last word of the last line.
    Create {
        /// The tenant its deliveries are stored for.
        #[arg(long)]
        tenant: String,
        /// The provider's signing scheme.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The signing secret the provider shows, or `-` to read it from standard input.
        #[arg(long)]
        secret: String,
        /// For `hmac-sha256`: the scheme's settings.
        #[command(flatten)]
        hmac: HmacArgs,
    },
    /// List sources (never their secrets).
    List,
    /// Add a new secret; the old ones keep verifying for the overlap, then stop.
    Rotate {
        /// The source id (`src_...`).
        id: String,
        /// The new secret, or `-` to read it from standard input.
        #[arg(long)]
        secret: String,
        /// How long the old secrets keep verifying.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        overlap: Duration,
    },
    /// Delete a source: its deliveries are refused from now on like an unknown source's.
    Delete {
        /// The source id (`src_...`).
        id: String,
    },
}

/// The signing schemes, by the name the CLI takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Stripe (`Stripe-Signature`).
    Stripe,
    /// GitHub (`X-Hub-Signature-256`).
    Github,
    /// Standard Webhooks (`webhook-signature`).
    StandardWebhooks,
    /// Shopify (`X-Shopify-Hmac-Sha256`).
    Shopify,
    /// Slack (`X-Slack-Signature`).
    Slack,
    /// Any other sender signing the body with HMAC-SHA256.
    HmacSha256,
}

/// The generic scheme's settings (`--kind hmac-sha256` only).
#[derive(Debug, Args)]
pub struct HmacArgs {
    /// The header carrying the signature.
    #[arg(long)]
    header: Option<String>,
    /// How the signature is written: hex or base64.
    #[arg(long, default_value = "hex")]
    encoding: String,
    /// A prefix before the signature, such as `sha256=`.
    #[arg(long, default_value = "")]
    prefix: String,
    /// A header carrying the Unix time the sender signed at (then `<time>.<body>` is signed).
    #[arg(long)]
    timestamp_header: Option<String>,
    /// How far that time may be from now, in seconds.
    #[arg(long, default_value_t = 300)]
    tolerance_secs: i64,
    /// A header naming the delivery (else the body's SHA-256 does).
    #[arg(long)]
    delivery_id_header: Option<String>,
    /// The event type every delivery is stored as.
    #[arg(long)]
    event_type: Option<String>,
}

fn kind(k: Kind, hmac: HmacArgs) -> Result<SourceKind, CliError> {
    let generic_only = hmac.header.is_some() || hmac.event_type.is_some() || hmac.timestamp_header.is_some();
    Ok(match k {
        Kind::HmacSha256 => {
            let header = hmac.header.context("--kind hmac-sha256 needs --header").refused()?;
            let event_type = hmac
                .event_type
                .context("--kind hmac-sha256 needs --event-type")
                .refused()?;
            let encoding = match hmac.encoding.as_str() {
                "hex" => SignatureEncoding::Hex,
                "base64" => SignatureEncoding::Base64,
                other => {
                    return Err(CliError::Refused(anyhow::anyhow!(
                        "--encoding {other:?}: hex or base64"
                    )));
                }
            };
            SourceKind::Hmac(HmacScheme {
                header: header.to_ascii_lowercase(),
                encoding,
                prefix: hmac.prefix,
                timestamp_header: hmac.timestamp_header.map(|h| h.to_ascii_lowercase()),
                tolerance_secs: hmac.tolerance_secs.max(0),
                delivery_id_header: hmac.delivery_id_header.map(|h| h.to_ascii_lowercase()),
                event_type: EventType::parse(&event_type).context("--event-type").refused()?,
            })
        }
        _ if generic_only => {
            return Err(CliError::Refused(anyhow::anyhow!(
                "--header, --event-type and --timestamp-header are for --kind hmac-sha256"
            )));
        }
        Kind::Stripe => SourceKind::Stripe,
        Kind::Github => SourceKind::GitHub,
        Kind::StandardWebhooks => SourceKind::StandardWebhooks,
        Kind::Shopify => SourceKind::Shopify,
        Kind::Slack => SourceKind::Slack,
    })
}

/// The secret given, or read from standard input for `-`; never echoed.
fn secret(given: String, kind: &SourceKind) -> Result<String, CliError> {
    let secret = if given == "-" {
        let mut s = String::new();
        std::io::stdin()
            .take(MAX_SECRET_LEN as u64 + 2)
            .read_to_string(&mut s)
            .context("reading the secret from standard input")
            .refused()?;
        s.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        given
    };
    check_secret(&secret, kind).map_err(|why| CliError::Refused(anyhow::anyhow!("{why}")))?;
    Ok(secret)
}

/// Checks a source secret as given: 1 to [`MAX_SECRET_LEN`] characters without control
/// characters, and for Standard Webhooks `whsec_` and base64. The CLI and the console share it.
pub(crate) fn check_secret(secret: &str, kind: &SourceKind) -> Result<(), String> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN || secret.chars().any(char::is_control) {
        return Err(format!(
            "the secret is 1 to {MAX_SECRET_LEN} characters without control characters"
        ));
    }
    if *kind == SourceKind::StandardWebhooks {
        use base64::Engine as _;
        let key = secret.strip_prefix("whsec_").unwrap_or(secret);
        if base64::engine::general_purpose::STANDARD.decode(key).is_err() {
            return Err("a Standard Webhooks secret is whsec_ followed by base64".into());
        }
    }
    Ok(())
}

fn store_error(e: SourceStoreError, id: &SourceId) -> CliError {
    match e {
        SourceStoreError::NotFound => CliError::NotFound(format!("no such source: {id}")),
        SourceStoreError::Unavailable(_) => CliError::Unavailable(e.into()),
    }
}

/// A kind's name as stored and shown (`stripe`, `hmac-sha256`, …).
pub(crate) fn kind_name(kind: &SourceKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Runs one `sluice sources` command against the configured backend's source store.
pub async fn run(config: &Config, cmd: SourcesCommand, output: Format) -> Result<(), CliError> {
    // On the AWS backend this is the deployment's sources table (`SLUICE_SOURCES_TABLE`).
    let store = serve::open_ports(config).await.unavailable()?.sources;
    let now = OffsetDateTime::now_utc();
    match cmd {
        SourcesCommand::Create {
            tenant,
            kind: k,
            secret: given,
            hmac,
        } => {
            let tenant = Tenant::parse(&tenant).context("--tenant").refused()?;
            let kind = kind(k, hmac)?;
            let secret = secret(given, &kind)?;
            let record = SourceRecord {
                id: SourceId::generate(),
                tenant,
                kind,
                secrets: vec![SourceSecret {
                    secret,
                    expires_at: None,
                }],
                created_at: now,
                deleted_at: None,
            };
            store.insert(&record).await.unavailable()?;
            eprintln!(
                "created a {} source for tenant {}; providers post to /v1/sources/{}",
                kind_name(&record.kind),
                record.tenant,
                record.id
            );
            println!("{}", record.id);
        }
        SourcesCommand::List => {
            let mut listing = Listing::new(["id", "tenant", "kind", "created", "deleted", "live_secrets"]);
            for r in store.list().await.unavailable()? {
                listing.push([
                    json!(r.id.to_string()),
                    json!(r.tenant.to_string()),
                    json!(kind_name(&r.kind)),
                    time_value(Some(r.created_at)),
                    time_value(r.deleted_at),
                    json!(r.live_secrets(now).len()),
                ]);
            }
            emit(&listing.render(output))?;
        }
        SourcesCommand::Rotate {
            id,
            secret: given,
            overlap,
        } => {
            let id = SourceId::parse(&id).context("the source id").refused()?;
            let Some(source) = store.get(&id).await.map_err(|e| store_error(e, &id))? else {
                return Err(CliError::NotFound(format!("no such source: {id}")));
            };
            if source.deleted_at.is_some() {
                return Err(CliError::Refused(anyhow::anyhow!(
                    "{id} is deleted; create a new source instead"
                )));
            }
            let secret = secret(given, &source.kind)?;
            let until = now + overlap;
            let mut secrets = vec![SourceSecret {
                secret,
                expires_at: None,
            }];
            // The old secrets that still verify keep doing so until the overlap ends.
            secrets.extend(
                source
                    .secrets
                    .into_iter()
                    .filter(|s| s.expires_at.is_none_or(|e| now < e))
                    .map(|s| SourceSecret {
                        expires_at: Some(s.expires_at.map_or(until, |e| e.min(until))),
                        ..s
                    }),
            );
            store
                .set_secrets(&id, &secrets)
                .await
                .map_err(|e| store_error(e, &id))?;
            eprintln!(
                "rotated {id}; the previous secrets stop verifying at {}",
                until.format(&Rfc3339).unwrap_or_default()
            );
        }
        SourcesCommand::Delete { id } => {
            let id = SourceId::parse(&id).context("the source id").refused()?;
            store.delete(&id, now).await.map_err(|e| store_error(e, &id))?;
            eprintln!("deleted {id}");
        }
    }
    Ok(())
}
