//! `herald-bench-delivery`: measures the delivery path of herald, or of Alertmanager (which takes the same alert
//! posts and sends the same webhook payload), end to end. It runs a webhook receiver on a loopback port (answering
//! `200 ok` at once and recording when each alert arrives), posts alerts to the running server whose config sends
//! every notification to that receiver, and prints human-readable lines and one last JSON line.
//!
//! - `throughput`: posts `--alerts` distinct alerts in batches as fast as the server takes them, then counts
//!   deliveries as they arrive: deliveries/s with no rate limit, the time until the last arrived, the server's
//!   memory; optionally then its CPU while nothing changes (`--cpu-window`).
//! - `latency`: single-alert posts on a fixed open-loop timetable; the latency of each alert runs from its
//!   scheduled send time to its arrival at the receiver (same process, same monotonic clock).
//! - `paced`: batches on a fixed open-loop timetable (overload, or a flood of new alerts): deliveries when the load
//!   ended and at checkpoints after it, memory then, ingest-to-delivery latency, a gauge of the server sampled
//!   meanwhile.
//! - `resend`: single-alert posts in a closed loop drawn from a small set of recurring alerts: accepted posts/s.
//! - `sustained`: traffic shaped like Prometheus's: a preloaded population of firing alerts re-sent on an open-loop
//!   timetable while some join (new groups) and some leave (resolved); ingest-to-delivery latency of the new
//!   alerts' first notifications and of the resolved notifications, what was not delivered, memory, CPU.
//! - `waves`: waves of distinct alerts posted firing, then resolved, then left to the server's retention, with the
//!   server's resident set sampled throughout: whether its memory follows the active set (`bench/memory.py`).
//!
//! The server must put every alert in its own group (`group_by: ['...']`, or `[alertname, instance]`, which tells
//! these alerts apart too) with `group_wait: 0s`, so each alert is one notification and one delivery.
//! `bench/delivery.sh` and `bench/vs-alertmanager.sh` write such configs and start the server.

// The JSON results are large `serde_json::json!` literals.
#![recursion_limit = "256"]

mod alerts;
mod latency;
mod memory;
mod paced;
mod probe;
mod receiver;
mod resend;
mod stats;
mod sustained;
mod throughput;
mod waves;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use herald_bench_common::client::Client;
use herald_bench_common::retry::RetryPolicy;
use herald_bench_common::target::{Target, loopback_listen};

use crate::alerts::AlertFactory;
use crate::memory::Memory;
use crate::probe::Probe;
use crate::receiver::Receiver;

#[derive(Parser)]
#[command(
    version,
    about = "Delivery benchmark of herald (or Alertmanager): deliveries/s, ingest-to-delivery latency, overload, \
             re-sends (loopback only)"
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
    /// Batches at a fixed alert rate (open loop, refused batches retried); deliveries during and after the load.
    Paced {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        params: paced::Params,
    },
    /// Single-alert posts in a closed loop from a set of recurring alerts; accepted posts/s.
    Resend {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        params: resend::Params,
    },
    /// A preloaded population of firing alerts re-sent at a fixed rate (open loop) with churn: new alerts joining,
    /// old ones resolving; latency of their notifications.
    Sustained {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        params: sustained::Params,
    },
    /// Waves of distinct alerts, each posted firing, then resolved, then left to the server's retention, with the
    /// server's VmRSS sampled throughout (needs --pid).
    Waves {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        params: waves::Params,
    },
}

/// Options every scenario takes.
#[derive(Args)]
struct Common {
    /// Base URL of the server, e.g. http://127.0.0.1:9095 (loopback only); /api/v2/alerts is appended.
    #[arg(long)]
    url: String,
    /// Loopback address the webhook receiver listens on (the server's config must send to http://ADDRESS/hook).
    #[arg(long)]
    listen: String,
    /// The server's process id, to report the CPU time and memory it used (from /proc).
    #[arg(long, alias = "herald-pid")]
    pid: Option<u32>,
    /// Time limit for one request to the server, connection included.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Posts of a refused batch at most (429, 5xx or no answer; the first included) in `throughput`, `paced` and
    /// `sustained`.
    #[arg(long, default_value_t = 10)]
    retry_attempts: u32,
    /// Longest wait before such a retry, whatever the server's Retry-After asks.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    retry_max_wait: Duration,
    /// Runtime worker threads of this process (generator and receiver); 1 leaves the other core to the server.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Extra KEY=VALUE pairs copied into the JSON result (e.g. the config the run used).
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
}

impl Command {
    fn common(&self) -> &Common {
        match self {
            Self::Throughput { common, .. }
            | Self::Latency { common, .. }
            | Self::Paced { common, .. }
            | Self::Resend { common, .. }
            | Self::Sustained { common, .. }
            | Self::Waves { common, .. } => common,
        }
    }
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// What a scenario needs: the client to the server, the receiver, the alerts, the probes and the retry policy.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) receiver: Receiver,
    pub(crate) alerts: AlertFactory,
    pub(crate) probe: Probe,
    /// The server's memory, sampled from the start of the run.
    pub(crate) memory: Memory,
    pub(crate) retry: RetryPolicy,
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
        "server: POST {}; receiver: http://{}/hook",
        target.alerts,
        receiver.address()
    );
    let mut context = Context {
        client,
        receiver,
        alerts: AlertFactory::new(),
        probe: Probe::new(common.pid),
        memory: Memory::start(common.pid),
        retry: RetryPolicy {
            attempts: common.retry_attempts.max(1),
            max_wait: common.retry_max_wait,
            ..RetryPolicy::default()
        },
    };
    let tags = common.tags.clone();
    let result = match command {
        Command::Throughput { params, .. } => throughput::run(&context, params).await,
        Command::Latency { params, .. } => latency::run(&context, params).await,
        Command::Paced { params, .. } => paced::run(&context, params).await,
        Command::Resend { params, .. } => resend::run(&context, params).await,
        Command::Sustained { params, .. } => sustained::run(&context, params).await,
        Command::Waves { params, .. } => waves::run(&context, params).await,
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
