//! The command line: `serve`, `keys`, `dlq`, `sources`, `tenants`, `status`, `aws`, `cost` and
//! `completions`.
//!
//! Every listing prints through [`crate::output`] (`--output table|json`), and every failure is
//! a [`CliError`] whose kind is the exit status ([`crate::exit`]).

use crate::config::{Backend, Config, Overrides};
use crate::exit::{Classify, CliError, EXIT_STATUS_HELP};
use crate::output::{Format, Listing};
use crate::serve;
use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use serde_json::{Value, json};
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
#[command(name = "sluice", version, about, after_help = EXIT_STATUS_HELP)]
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
    /// `SLUICE_DLQ_URL`, `SLUICE_TABLE`, `SLUICE_IDEMPOTENCY_TABLE`, `SLUICE_KEYS_TABLE`,
    /// `SLUICE_SOURCES_TABLE`.
    #[arg(long, global = true, value_enum)]
    backend: Option<Backend>,
    /// How listings print (`keys list`, `dlq list`, `status`): an aligned table, or JSON for
    /// scripts (one object per line; one document for `status`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
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
    /// Manage webhook sources: the URLs providers post signed deliveries to.
    #[command(subcommand)]
    Sources(crate::sources::SourcesCommand),
    /// Operators' credentials for the console on the admin listener.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Per-tenant plans: rate, burst and daily quota (usage plans on AWS).
    #[command(subcommand)]
    Tenants(crate::tenants::TenantsCommand),
    /// Erase one subject's events: stored, queued and dead-lettered (data protection law).
    Erase(crate::erase::Args),
    /// Print the queue and dead-letter queue depths.
    Status,
    /// The AWS data path without SAM: `sluice aws provision` creates its queues and tables.
    #[command(subcommand)]
    Aws(crate::aws::AwsCommand),
    /// Monthly AWS cost per million events of the deployed shape, and the worst case an attacker
    /// can force per hour under the throttles and reserved concurrency (D-2).
    Cost(crate::cost::Args),
    /// Print a shell completion script, e.g. `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
    /// List keys (never their secrets or hashes).
    List,
    /// Revoke a key: it is refused at once by a new server, and by running ones within
    /// `auth.cache_secs` (5 s by default); on AWS within the authorizer's cache TTL
    /// (`AuthorizerCacheTtl`, 60 s by default) plus 5 s.
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
enum AdminCommand {
    /// Admin tokens: the console's credential (tenant API keys never are).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an admin token and print it once; only its hash is kept (in the data directory).
    Create {
        /// What it is for, to recognise it by.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List admin tokens (never their secrets or hashes).
    List,
    /// Revoke an admin token: its console sessions end at once.
    Revoke {
        /// The token id (`adm_...`).
        id: String,
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

/// Runs the command and turns errors into an exit status ([`crate::exit`]), never a panic.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(e.status())
        }
    }
}

fn load_config(global: &Global, flags: Overrides) -> Result<Config, CliError> {
    let flags = Overrides {
        backend: global.backend,
        data_dir: global.data_dir.clone(),
        ..flags
    };
    Config::load_with(global.config.as_deref(), std::env::vars(), flags).refused()
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .failed()
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    // Neither reads the configuration: a half-set AWS environment must not stop them.
    let command = match cli.command {
        Command::Completions { shell } => return completions(shell),
        Command::Cost(args) => return crate::cost::run(args).refused(),
        // It creates what the AWS backend's configuration names, so it cannot need it.
        Command::Aws(cmd) => return runtime()?.block_on(crate::aws::run(cmd)),
        other => other,
    };
    let cli = Cli { command, ..cli };
    let flags = match &cli.command {
        Command::Serve { listen, log_format } => Overrides {
            listen: *listen,
            log_format: *log_format,
            ..Overrides::default()
        },
        _ => Overrides::default(),
    };
    let config = load_config(&cli.global, flags)?;
    let output = cli.global.output;
    match cli.command {
        Command::Serve { .. } => {
            let _guard = sluice_host::telemetry::init(&config.log).failed()?;
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("binding {}", config.listen))
                    .unavailable()?;
                serve::run(listener, config, serve::shutdown_signal())
                    .await
                    .map_err(start_up_error)
            })
        }
        Command::Keys(cmd) => runtime()?.block_on(keys_command(&config, cmd, output)),
        Command::Dlq(cmd) => runtime()?.block_on(dlq_command(&config, cmd, output)),
        Command::Sources(cmd) => runtime()?.block_on(crate::sources::run(&config, cmd, output)),
        Command::Tenants(cmd) => runtime()?.block_on(crate::tenants::run(&config, cmd, output)),
        Command::Admin(AdminCommand::Token(cmd)) => token_command(&config, cmd, output),
        Command::Status => runtime()?.block_on(status_command(&config, output)),
        Command::Erase(args) => runtime()?.block_on(crate::erase::run(&config, args, output)),
        Command::Cost(_) | Command::Aws(_) | Command::Completions { .. } => Ok(()),
    }
}

fn fmt_time(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| "-".into())
}

/// Prints the completion script of `shell`. Generated into memory first: clap_complete panics
/// when its writer fails (a closed pipe), and a failed write here is an error instead.
fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
        .context("writing the completion script")
        .failed()
}

/// A failure of `sluice serve`: a file the configuration names that is missing or unusable (the
/// schema directory, the JWKS file) is refused configuration; anything else is a failure.
fn start_up_error(e: anyhow::Error) -> CliError {
    if e.chain().any(|cause| cause.is::<sluice_host::files::FileError>()) {
        CliError::Refused(e)
    } else {
        CliError::Failed(e)
    }
}

/// Prints a rendered listing.
pub(crate) fn emit(text: &str) -> Result<(), CliError> {
    crate::output::emit(text).context("writing to standard output").failed()
}

/// A time as a listing value: RFC 3339, or `null` (`-` in a table).
pub(crate) fn time_value(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn expiry(now: OffsetDateTime, d: Option<Duration>) -> Option<OffsetDateTime> {
    d.map(|d| now + d)
}

async fn keys_command(config: &Config, cmd: KeysCommand, output: Format) -> Result<(), CliError> {
    // On the AWS backend this is the deployment's keys table (`SLUICE_KEYS_TABLE`), which the
    // Lambda authorizer reads too.
    let ports = serve::open_ports(config).await.unavailable()?;
    let (store, plans) = (ports.keys, ports.plans);
    // On AWS a tenant's requests need its usage-plan key (D-1): enrolled before its first key works.
    let enroll = async |tenant: &Tenant| -> Result<(), CliError> {
        match &plans {
            Some(plans) => plans.enroll(tenant).await.map_err(|e| CliError::Unavailable(e.into())),
            None => {
                eprintln!(
                    "note: SLUICE_REST_API_ID is not set, so tenant {tenant} was not enrolled in a usage plan; \
                     behind the REST API its requests get 401 until it is (run this again with it set)"
                );
                Ok(())
            }
        }
    };
    let now = OffsetDateTime::now_utc();
    match cmd {
        KeysCommand::Create {
            tenant,
            label,
            expires_in,
        } => {
            let tenant = Tenant::parse(&tenant).context("--tenant").refused()?;
            enroll(&tenant).await?;
            let (key, record) = keys::generate(tenant, &label, now, expiry(now, expires_in));
            store.insert(&record).await.unavailable()?;
            eprintln!(
                "created {} for tenant {}; the key is shown once:",
                record.id, record.tenant
            );
            println!("{}", key.expose());
        }
        KeysCommand::List => {
            // Never the secret (it is not stored) nor its hash.
            let mut listing = Listing::new(["id", "tenant", "created", "expires", "revoked", "label"]);
            for r in store.list().await.unavailable()? {
                listing.push([
                    json!(r.id.to_string()),
                    json!(r.tenant.to_string()),
                    time_value(Some(r.created_at)),
                    time_value(r.expires_at),
                    time_value(r.revoked_at),
                    json!(r.label),
                ]);
            }
            emit(&listing.render(output))?;
        }
        KeysCommand::Revoke { id } => {
            let id = KeyId::parse(&id).context("the key id").refused()?;
            store.revoke(&id, now).await.map_err(|e| CliError::key_store(e, &id))?;
            eprintln!("revoked {id}");
        }
        KeysCommand::Rotate {
            id,
            overlap,
            expires_in,
        } => {
            let id = KeyId::parse(&id).context("the key id").refused()?;
            let Some(old) = store.get(&id).await.map_err(|e| CliError::key_store(e, &id))? else {
                return Err(CliError::NotFound(format!("no such key: {id}")));
            };
            if old.revoked_at.is_some() {
                return Err(CliError::Refused(anyhow::anyhow!(
                    "{id} is revoked; create a new key instead"
                )));
            }
            let (key, record) = keys::generate(old.tenant.clone(), &old.label, now, expiry(now, expires_in));
            store.insert(&record).await.unavailable()?;
            let old_expiry = now + overlap;
            let keep = old.expires_at.map_or(old_expiry, |e| e.min(old_expiry));
            store
                .set_expiry(&id, Some(keep))
                .await
                .map_err(|e| CliError::key_store(e, &id))?;
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

fn token_command(config: &Config, cmd: TokenCommand, output: Format) -> Result<(), CliError> {
    use crate::admin::tokens::{TokenError, TokenFile};
    let file = TokenFile::new(&config.data_dir);
    let failed = |e: TokenError| match e {
        TokenError::NotFound(_) => CliError::NotFound(e.to_string()),
        TokenError::File { .. } => CliError::Unavailable(e.into()),
    };
    let now = OffsetDateTime::now_utc();
    match cmd {
        TokenCommand::Create { label } => {
            if label.len() > 200 || label.chars().any(char::is_control) {
                return Err(CliError::Refused(anyhow::anyhow!(
                    "--label: at most 200 characters, no control characters"
                )));
            }
            let (token, record) = file.create(&label, now).map_err(failed)?;
            eprintln!("created admin token {}; it is shown once:", record.id);
            println!("{token}");
        }
        TokenCommand::List => {
            let mut listing = Listing::new(["id", "label", "created", "revoked"]);
            for t in file.list().map_err(failed)? {
                listing.push([
                    json!(t.id),
                    json!(t.label),
                    time_value(Some(t.created_at)),
                    time_value(t.revoked_at),
                ]);
            }
            emit(&listing.render(output))?;
        }
        TokenCommand::Revoke { id } => {
            file.revoke(&id, now).map_err(failed)?;
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

async fn dlq_command(config: &Config, cmd: DlqCommand, output: Format) -> Result<(), CliError> {
    if config.backend == Backend::Aws {
        return Err(CliError::Refused(anyhow::anyhow!(
            "`sluice dlq` reads the embedded dead-letter queue; on AWS inspect SLUICE_DLQ_URL with \
             `aws sqs receive-message` and redrive with `aws sqs start-message-move-task`"
        )));
    }
    let embedded = serve::open_embedded(config).unavailable()?;
    match cmd {
        DlqCommand::List { limit } => {
            let mut listing = Listing::new(["message_id", "sent_at", "receive_count", "attributes"]);
            for m in embedded.dlq.peek(limit).await.unavailable()? {
                listing.push([
                    json!(m.message_id),
                    time_value(Some(m.sent_at)),
                    json!(m.receive_count),
                    json!(m.attributes),
                ]);
            }
            emit(&listing.render(output))?;
        }
        DlqCommand::Redrive => {
            let n = embedded.dlq.move_all_to(serve::QUEUE).await.unavailable()?;
            eprintln!("moved {n} message(s) back to {}", serve::QUEUE);
        }
    }
    Ok(())
}

async fn status_command(config: &Config, output: Format) -> Result<(), CliError> {
    let ports = serve::open_ports(config).await.unavailable()?;
    let q = ports.queue.depth().await.unavailable()?;
    let d = ports.dlq.depth().await.unavailable()?;
    let status = json!({
        "queue": {"visible": q.visible, "in_flight": q.in_flight},
        "dlq": {"visible": d.visible, "in_flight": d.in_flight},
    });
    let mut listing = Listing::new(["queue", "visible", "in_flight"]);
    listing.push([json!("queue"), json!(q.visible), json!(q.in_flight)]);
    listing.push([json!("dlq"), json!(d.visible), json!(d.in_flight)]);
    emit(&listing.render_document(output, &status))?;
    Ok(())
}
