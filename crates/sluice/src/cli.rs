//! The command line: `serve`, `keys` and `dlq`.

use crate::config::{Backend, Config, Overrides};
use crate::serve;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sluice_core::ids::KeyId;
use sluice_core::keys;
use sluice_core::tenant::Tenant;
use sluice_host::telemetry::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Sluice: a secure-by-default event ingestion pipeline.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand shares.
#[derive(Debug, Args)]
struct Global {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Where the queue, the store and local secrets live.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// The adapters: embedded SQLite files, or SQS and DynamoDB named by `SLUICE_QUEUE_URL`,
    /// `SLUICE_DLQ_URL`, `SLUICE_TABLE`, `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_KEYS_TABLE`.
    #[arg(long, global = true, value_enum)]
    backend: Option<Backend>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline: HTTP gateway, queue, worker pool and store.
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Log format: json or pretty.
        #[arg(long)]
        log_format: Option<LogFormat>,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect and redrive the dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Print the queue and dead-letter queue depths as JSON.
    Status,
    /// Monthly AWS cost per million events of the deployed shape, and the worst case an attacker
    /// can force per hour under the throttles and reserved concurrency (D-2).
    Cost(crate::cost::Args),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant and print it once; only its hash is stored.
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        label: String,
        /// Expire the key after this long (e.g. `90d`, `12h`).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key id (`key_...`).
        id: String,
    },
    /// Replace a key: print a new one for the same tenant and expire the old one after an overlap.
    Rotate {
        /// The key id to replace.
        id: String,
        /// How long the old key keeps working.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        overlap: Duration,
        /// Expire the new key after this long.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Print dead-lettered messages with their attributes and reason.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Move every dead-lettered message back to the main queue.
    Redrive,
}

/// Runs the command and turns errors into an exit code, never a panic.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(global: &Global, flags: Overrides) -> anyhow::Result<Config> {
    let flags = Overrides {
        backend: global.backend,
        data_dir: global.data_dir.clone(),
        ..flags
    };
    Config::load_with(global.config.as_deref(), std::env::vars(), flags)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let flags = match &cli.command {
        Command::Serve { listen, log_format } => Overrides {
            listen: *listen,
            log_format: *log_format,
            ..Overrides::default()
        },
        _ => Overrides::default(),
    };
    let config = load_config(&cli.global, flags)?;
    match cli.command {
        Command::Serve { .. } => {
            let _guard = sluice_host::telemetry::init(&config.log)?;
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("binding {}", config.listen))?;
                serve::run(listener, config, serve::shutdown_signal()).await
            })
        }
        Command::Keys(cmd) => runtime()?.block_on(keys_command(&config, cmd)),
        Command::Dlq(cmd) => runtime()?.block_on(dlq_command(&config, cmd)),
        Command::Status => runtime()?.block_on(status_command(&config)),
        Command::Cost(args) => crate::cost::run(args),
    }
}

fn fmt_time(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| "-".into())
}

fn expiry(now: OffsetDateTime, d: Option<Duration>) -> Option<OffsetDateTime> {
    d.map(|d| now + d)
}

async fn keys_command(config: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    // On the AWS backend this is the deployment's keys table (`SLUICE_KEYS_TABLE`), which the
    // Lambda authorizer reads too.
    let store = serve::open_ports(config).await?.keys;
    let now = OffsetDateTime::now_utc();
    match cmd {
        KeysCommand::Create {
            tenant,
            label,
            expires_in,
        } => {
            let tenant = Tenant::parse(&tenant)?;
            let (key, record) = keys::generate(tenant, &label, now, expiry(now, expires_in));
            store.insert(&record).await?;
            eprintln!(
                "created {} for tenant {}; the key is shown once:",
                record.id, record.tenant
            );
            println!("{}", key.expose());
        }
        KeysCommand::List => {
            println!(
                "{:<30} {:<20} {:<25} {:<25} {:<25} label",
                "id", "tenant", "created", "expires", "revoked"
            );
            for r in store.list().await? {
                println!(
                    "{:<30} {:<20} {:<25} {:<25} {:<25} {}",
                    r.id,
                    r.tenant,
                    fmt_time(Some(r.created_at)),
                    fmt_time(r.expires_at),
                    fmt_time(r.revoked_at),
                    r.label
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id = KeyId::parse(&id)?;
            store.revoke(&id, now).await?;
            eprintln!("revoked {id}");
        }
        KeysCommand::Rotate {
            id,
            overlap,
            expires_in,
        } => {
            let id = KeyId::parse(&id)?;
            let Some(old) = store.get(&id).await? else {
                bail!("no such key")
            };
            if old.revoked_at.is_some() {
                bail!("{id} is revoked; create a new key instead");
            }
            let (key, record) = keys::generate(old.tenant.clone(), &old.label, now, expiry(now, expires_in));
            store.insert(&record).await?;
            let old_expiry = now + overlap;
            let keep = old.expires_at.map_or(old_expiry, |e| e.min(old_expiry));
            store.set_expiry(&id, Some(keep)).await?;
            eprintln!(
                "created {} for tenant {}; {id} stops working at {}; the new key is shown once:",
                record.id,
                record.tenant,
                fmt_time(Some(keep))
            );
            println!("{}", key.expose());
        }
    }
    Ok(())
}

async fn dlq_command(config: &Config, cmd: DlqCommand) -> anyhow::Result<()> {
    if config.backend == Backend::Aws {
        bail!(
            "`sluice dlq` reads the embedded dead-letter queue; on AWS inspect SLUICE_DLQ_URL with \
             `aws sqs receive-message` and redrive with `aws sqs start-message-move-task`"
        );
    }
    let embedded = serve::open_embedded(config)?;
    match cmd {
        DlqCommand::List { limit } => {
            for m in embedded.dlq.peek(limit).await? {
                let line = serde_json::json!({
                    "message_id": m.message_id,
                    "sent_at": fmt_time(Some(m.sent_at)),
                    "attributes": m.attributes,
                });
                println!("{line}");
            }
        }
        DlqCommand::Redrive => {
            let n = embedded.dlq.move_all_to(serve::QUEUE).await?;
            eprintln!("moved {n} message(s) back to {}", serve::QUEUE);
        }
    }
    Ok(())
}

async fn status_command(config: &Config) -> anyhow::Result<()> {
    let ports = serve::open_ports(config).await?;
    let q = ports.queue.depth().await?;
    let d = ports.dlq.depth().await?;
    let status = serde_json::json!({
        "queue": {"visible": q.visible, "in_flight": q.in_flight},
        "dlq": {"visible": d.visible, "in_flight": d.in_flight},
    });
    println!("{status}");
    Ok(())
}
