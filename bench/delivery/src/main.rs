//! `herald-bench-delivery`: measures herald's delivery path end to end. It runs a webhook receiver on a loopback
//! port (answering `200 ok` at once and recording when each alert arrives), posts alerts to a running herald whose
//! config sends every notification to that receiver, and prints human-readable lines and one last JSON line.
//!
//! - `throughput`: posts `--alerts` distinct alerts in batches as fast as herald takes them, then counts
//!   deliveries as they arrive: deliveries/s with no rate limit.
//! - `latency`: single-alert posts on a fixed open-loop timetable; the latency of each alert runs from its
//!   scheduled send time to its arrival at the receiver (same process, same monotonic clock).
//!
//! herald must group every alert on its own (`group_by: ['...']`) with `group_wait: 0s`, so each alert is one
//! notification and one delivery. `bench/delivery.sh` writes such a config and starts herald.

mod alerts;
mod client;
mod latency;
mod probe;
mod receiver;
mod stats;
mod target;
mod throughput;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

use crate::alerts::AlertFactory;
use crate::client::Client;
use crate::probe::Probe;
use crate::receiver::Receiver;
use crate::target::{Target, loopback_listen};

#[derive(Parser)]
#[command(
    version,
    about = "Delivery benchmark of herald: deliveries/s and ingest-to-delivery latency (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Posts `--alerts` distinct alerts at once, then measures the rate at which their deliveries arrive.
    Throughput {
        #[command(flatten)]
        common: Common,
        /// Distinct alerts to post; each is one delivery.
        #[arg(long, default_value_t = 20_000)]
        alerts: u64,
        /// Alerts per request.
        #[arg(long, default_value_t = 500)]
        batch: u64,
        /// Requests outstanding at once while posting.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Longest time the whole run may take, posting included; alerts not delivered by then count as missing.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
        deadline: Duration,
        /// Stop waiting when no delivery arrived for this long (after the first one).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        idle: Duration,
        /// How often to read herald's outbox (`herald_deliveries` in /metrics) while waiting; 0s: never.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        outbox_every: Duration,
    },
    /// Single-alert posts at a fixed rate (open loop); latency from the scheduled send to arrival at the receiver.
    Latency {
        #[command(flatten)]
        common: Common,
        /// Alerts (requests) per second.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Measured time.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
        duration: Duration,
        /// Unmeasured time before it (its alerts are delivered too, but not counted).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        warmup: Duration,
        /// How long after the last scheduled send alerts may still arrive; later ones count as missing.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        settle: Duration,
        /// Outstanding requests at most; a send due beyond that is skipped and counted.
        #[arg(long, default_value_t = 1000)]
        max_in_flight: usize,
    },
}

/// Options both scenarios take.
#[derive(Args)]
struct Common {
    /// Base URL of herald, e.g. http://127.0.0.1:9095 (loopback only); /api/v2/alerts is appended.
    #[arg(long)]
    url: String,
    /// Loopback address the webhook receiver listens on (herald's config must send to http://ADDRESS/hook).
    #[arg(long)]
    listen: String,
    /// herald's process id, to report the CPU time it used during the measurement (from /proc).
    #[arg(long)]
    herald_pid: Option<u32>,
    /// Time limit for one request to herald, connection included.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Runtime worker threads of this process (generator and receiver); 1 leaves the other core to herald.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Extra KEY=VALUE pairs copied into the JSON result (e.g. the herald config the run used).
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
}

impl Command {
    fn common(&self) -> &Common {
        match self {
            Self::Throughput { common, .. } | Self::Latency { common, .. } => common,
        }
    }
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// What a scenario needs: the client to herald, the receiver, the alerts and the probes.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) receiver: Receiver,
    pub(crate) alerts: AlertFactory,
    pub(crate) probe: Probe,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match start(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald-bench-delivery: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(command: Command) -> Result<()> {
    let threads = command.common().threads;
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(run(command))
}

async fn run(command: Command) -> Result<()> {
    let common = command.common();
    let target = Target::parse(&common.url).await?;
    let listen = loopback_listen(&common.listen)?;
    let client = Client::new(common.timeout);
    let receiver = Receiver::start(listen).await?;
    println!(
        "herald: POST {}; receiver: http://{}/hook",
        target.alerts,
        receiver.address()
    );
    let mut context = Context {
        client,
        receiver,
        alerts: AlertFactory::new(),
        probe: Probe::new(common.herald_pid, target.metrics.clone()),
    };
    let tags = common.tags.clone();
    let result = match command {
        Command::Throughput {
            alerts,
            batch,
            concurrency,
            deadline,
            idle,
            outbox_every,
            ..
        } => {
            let params = throughput::Params {
                alerts,
                batch,
                concurrency,
                deadline,
                idle,
                outbox_every,
            };
            throughput::run(&context, &target, params).await
        }
        Command::Latency {
            rate,
            duration,
            warmup,
            settle,
            max_in_flight,
            ..
        } => {
            let params = latency::Params {
                rate,
                duration,
                warmup,
                settle,
                max_in_flight,
            };
            latency::run(&context, &target, params).await
        }
    };
    context.receiver.stop().await;
    let mut result = result?;
    if let Some(object) = result.json.as_object_mut() {
        for (key, value) in tags {
            object.insert(key, serde_json::Value::String(value));
        }
    }
    println!("{}", result.json);
    anyhow::ensure!(result.ok, "{}", result.failure);
    Ok(())
}

/// What a scenario ends with: the JSON result, and whether it measured anything.
pub(crate) struct Outcome {
    pub(crate) json: serde_json::Value,
    pub(crate) ok: bool,
    /// Why not, when `ok` is false.
    pub(crate) failure: String,
}
