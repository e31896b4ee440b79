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
mod latency;
mod probe;
mod receiver;
mod stats;
mod throughput;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use herald_bench_common::client::Client;
use herald_bench_common::target::{Target, loopback_listen};

use crate::alerts::AlertFactory;
use crate::probe::Probe;
use crate::receiver::Receiver;

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
        #[command(flatten)]
        params: throughput::Params,
    },
    /// Single-alert posts at a fixed rate (open loop); latency from the scheduled send to arrival at the receiver.
    Latency {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        params: latency::Params,
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
    let command = Cli::parse().command;
    let threads = command.common().threads;
    herald_bench_common::run("herald-bench-delivery", threads, run(command))
}

async fn run(command: Command) -> Result<()> {
    let common = command.common();
    let target = Target::parse(&common.url).await?;
    let listen = loopback_listen(&common.listen)?;
    let client = Client::new(&target, common.timeout);
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
        probe: Probe::new(common.herald_pid),
    };
    let tags = common.tags.clone();
    let result = match command {
        Command::Throughput { params, .. } => throughput::run(&context, params).await,
        Command::Latency { params, .. } => latency::run(&context, params).await,
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
