//! `sluice-bench`: the references and measurement tools `bench/run.sh` drives. Each subcommand
//! prints one JSON object on stdout.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_bench::{bare, coldstart, disk, e2e, feed, intake, openloop, process};
use std::path::PathBuf;
use std::time::Duration;

/// The same allocator as the `sluice` binary, so the ceilings run on the server's own runtime.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "sluice-bench", about = "Sluice benchmark references and measurements")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The HTTP ceiling: answer every `POST /v1/events` with 202 and do nothing else.
    BareHttp {
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:18081")]
        listen: std::net::SocketAddr,
    },
    /// The disk ceiling: batched durable SQLite inserts with the queue's group commit.
    Disk {
        /// Directory for the scratch database.
        #[arg(long)]
        dir: PathBuf,
        /// Concurrent producers (like HTTP connections).
        #[arg(long, default_value_t = 64)]
        conns: usize,
        /// Rows per commit wait (events per request).
        #[arg(long, default_value_t = 1)]
        per_request: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// The process step alone over a pre-filled queue.
    Process {
        /// `embedded` or `moto`.
        #[arg(long, default_value = "embedded")]
        backend: String,
        /// Directory for the embedded files.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Records to process.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Pollers (as `[worker] workers`).
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Records per receive.
        #[arg(long, default_value_t = 10)]
        batch_size: usize,
    },
    /// End to end against a running `sluice serve`: rate to the store, 202-to-readable latency.
    E2e {
        /// Base URL of the server.
        #[arg(long)]
        url: String,
        /// API key (tenant `--tenant`).
        #[arg(long, env = "SLUICE_KEY")]
        key: String,
        /// Tenant of the key.
        #[arg(long, default_value = "bench")]
        tenant: String,
        /// The server's store.db.
        #[arg(long)]
        store: PathBuf,
        /// Connections.
        #[arg(long, default_value_t = 16)]
        conns: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Total requests per second (open loop); omit for closed loop.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// 202 to visible on an open `GET /v1/feed/stream`, posting single events open-loop.
    FeedSse {
        /// Base URL of the server.
        #[arg(long)]
        url: String,
        /// API key.
        #[arg(long, env = "SLUICE_KEY")]
        key: String,
        /// Total requests per second.
        #[arg(long)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Connections.
        #[arg(long, default_value_t = 32)]
        conns: usize,
    },
    /// One consumer paging `GET /v1/feed?limit=1000` through `--events` stored events.
    FeedRead {
        /// Base URL of the server.
        #[arg(long)]
        url: String,
        /// API key.
        #[arg(long, env = "SLUICE_KEY")]
        key: String,
        /// Events to fill the feed with (in batches of 100).
        #[arg(long, default_value_t = 50_000)]
        events: usize,
        /// Passes over them.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// 1 KiB events as fast as answers come, with an API key (`--key`) or as signed Standard
    /// Webhooks deliveries (`--source` and `--secret`).
    Intake {
        /// Base URL of the server.
        #[arg(long)]
        url: String,
        /// API key: bearer-key ingest.
        #[arg(long, conflicts_with_all = ["source", "secret"], required_unless_present = "source")]
        key: Option<String>,
        /// A `standard-webhooks` source id: signed-webhook intake.
        #[arg(long, requires = "secret")]
        source: Option<String>,
        /// The source's `whsec_` secret.
        #[arg(long, env = "SLUICE_BENCH_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Connections.
        #[arg(long, default_value_t = 64)]
        conns: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// Request latency at a fixed offered rate, open loop: single events on a fixed schedule, each
    /// latency from the request's intended send time (free of coordinated omission).
    Openloop {
        /// Base URL of the server.
        #[arg(long)]
        url: String,
        /// API key.
        #[arg(long, env = "SLUICE_KEY")]
        key: String,
        /// Offered load: total requests per second.
        #[arg(long)]
        rate: f64,
        /// Seconds of schedule.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Connections.
        #[arg(long, default_value_t = 64)]
        conns: usize,
    },
    /// Cold start of a Lambda function under the local Runtime API emulator.
    ColdStart {
        /// Label.
        #[arg(long)]
        name: String,
        /// Event JSON file.
        #[arg(long)]
        event: PathBuf,
        /// Working directory of the function.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// `KEY=VALUE` environment for the function (repeatable).
        #[arg(long = "env", value_parser = parse_kv)]
        env: Vec<(String, String)>,
        /// Fresh processes to time.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Validation and envelope sealing of one event, looped (run under callgrind).
    Cpu {
        /// Event size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Iterations.
        #[arg(long, default_value_t = 1000)]
        iterations: u64,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s}"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = match cli.command {
        Cmd::BareHttp { listen } => {
            return rt.block_on(async {
                let l = tokio::net::TcpListener::bind(listen).await?;
                eprintln!("bare-http listening on {}", l.local_addr()?);
                Ok(bare::serve(l).await?)
            });
        }
        Cmd::Disk {
            dir,
            conns,
            per_request,
            secs,
        } => disk::run(&dir, conns, per_request, Duration::from_secs_f64(secs))?,
        Cmd::Process {
            backend,
            dir,
            events,
            workers,
            batch_size,
        } => rt.block_on(async {
            match backend.as_str() {
                "embedded" => {
                    let dir = dir.context("--dir is required for the embedded backend")?;
                    process::embedded(&dir, events, workers, batch_size).await
                }
                "moto" => process::moto(events, workers, batch_size).await,
                other => anyhow::bail!("unknown backend {other}"),
            }
        })?,
        Cmd::E2e {
            url,
            key,
            tenant,
            store,
            conns,
            secs,
            rate,
        } => rt.block_on(e2e::run(e2e::Params {
            url,
            key,
            tenant,
            store,
            conns,
            duration: Duration::from_secs_f64(secs),
            rate,
            settle: Duration::from_secs(30),
        }))?,
        Cmd::FeedSse {
            url,
            key,
            rate,
            secs,
            conns,
        } => rt.block_on(feed::sse_latency(&url, &key, rate, secs, conns))?,
        Cmd::FeedRead { url, key, events, runs } => rt.block_on(feed::read_rate(&url, &key, events, runs))?,
        Cmd::Intake {
            url,
            key,
            source,
            secret,
            conns,
            secs,
        } => {
            let mode = match (key, source, secret) {
                (Some(key), _, _) => intake::Mode::Bearer { key },
                (None, Some(source), Some(secret)) => intake::Mode::Webhook { source, secret },
                _ => anyhow::bail!("give --key, or --source with --secret"),
            };
            rt.block_on(intake::run(intake::Params {
                url,
                mode,
                conns,
                duration: Duration::from_secs_f64(secs),
            }))?
        }
        Cmd::Openloop {
            url,
            key,
            rate,
            secs,
            conns,
        } => rt.block_on(openloop::run(openloop::Params {
            url,
            key,
            rate,
            duration: Duration::try_from_secs_f64(secs).context("--secs must be a positive number of seconds")?,
            conns,
        }))?,
        Cmd::ColdStart {
            name,
            event,
            cwd,
            env,
            runs,
            command,
        } => {
            let (program, args) = command.split_first().context("no command")?;
            rt.block_on(coldstart::run(coldstart::Params {
                name,
                program: PathBuf::from(program),
                args: args.to_vec(),
                cwd,
                event: std::fs::read_to_string(&event).with_context(|| format!("reading {}", event.display()))?,
                env,
                runs,
                timeout: Duration::from_secs(20),
            }))?
        }
        Cmd::Cpu { size, iterations } => sluice_cpu::run(size, iterations)?,
    };
    println!("{report}");
    Ok(())
}
