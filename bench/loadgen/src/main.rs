//! `herald-loadgen`: drives herald's Alertmanager-compatible `POST /api/v2/alerts` on a loopback address and prints
//! throughput or latency figures, ending with one `RESULT key=value ...` line for scripts.

mod alerts;
mod latency;
mod load;
mod report;
mod stats;
mod throughput;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use herald_bench_common::client::Client;
use herald_bench_common::target::Target;

use crate::alerts::Population;

/// `endsAt` of alerts re-sent during throughput and latency runs, like Prometheus's few evaluation intervals.
const RESEND_ENDS_IN: Duration = Duration::from_secs(5 * 60);
/// `endsAt` of alerts posted by `load`, far enough ahead that they stay active during the measurement.
const LOAD_ENDS_IN: Duration = Duration::from_secs(60 * 60);

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for herald's alert ingest (loopback targets only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed loop: workers post batches back to back; reports accepted alerts/s and batch latency.
    Throughput {
        #[command(flatten)]
        common: Common,
        /// Alerts per request.
        #[arg(long, default_value_t = 100)]
        batch: u64,
        /// Workers, each with one request outstanding.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Size of the alert population batches are drawn from (re-sent alerts are upserts).
        #[arg(long, default_value_t = 100_000)]
        distinct: u64,
        /// Measured time.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
        duration: Duration,
        /// Unmeasured time before it.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        warmup: Duration,
    },
    /// Open loop: single-alert posts at a fixed rate; reports latency from the scheduled send time.
    Latency {
        #[command(flatten)]
        common: Common,
        /// Requests per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Size of the alert population alerts are drawn from.
        #[arg(long, default_value_t = 100_000)]
        distinct: u64,
        /// Measured time.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
        duration: Duration,
        /// Unmeasured time before it.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        warmup: Duration,
        /// Outstanding requests at most; a send due beyond that is skipped and counted as an error.
        #[arg(long, default_value_t = 1000)]
        max_in_flight: usize,
    },
    /// One-shot fill: posts exactly `--alerts` distinct firing alerts (ending in 1 hour) once.
    Load {
        #[command(flatten)]
        common: Common,
        /// Distinct alerts to post.
        #[arg(long, default_value_t = 100_000)]
        alerts: u64,
        /// Alerts per request.
        #[arg(long, default_value_t = 500)]
        batch: u64,
        /// Requests outstanding at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

/// Options every mode takes.
#[derive(Args)]
struct Common {
    /// Base URL of the server, e.g. http://127.0.0.1:9095 (loopback only); /api/v2/alerts is appended.
    #[arg(long)]
    url: String,
    /// Time limit for one request, connection included.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Runtime worker threads; 1 leaves the other cores to the server under test.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed for the choice of alerts, for repeatable runs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Command {
    fn common(&self) -> &Common {
        match self {
            Self::Throughput { common, .. }
            | Self::Latency { common, .. }
            | Self::Load { common, .. } => common,
        }
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let threads = command.common().threads;
    herald_bench_common::run("herald-loadgen", threads, run(command))
}

async fn run(command: Command) -> Result<()> {
    let common = command.common();
    let target = Target::parse(&common.url).await?;
    let client = Client::new(&target, common.timeout);
    println!("target: POST {}", target.alerts);
    let seed = common.seed;
    match command {
        Command::Throughput {
            batch,
            concurrency,
            distinct,
            duration,
            warmup,
            ..
        } => {
            let population = Population::new(distinct, RESEND_ENDS_IN)?;
            let params = throughput::Params {
                batch,
                concurrency,
                duration,
                warmup,
                seed,
            };
            throughput::run(client, population, params).await
        }
        Command::Latency {
            rate,
            distinct,
            duration,
            warmup,
            max_in_flight,
            ..
        } => {
            let population = Population::new(distinct, RESEND_ENDS_IN)?;
            let params = latency::Params {
                rate,
                duration,
                warmup,
                max_in_flight,
                seed,
            };
            latency::run(client, population, params).await
        }
        Command::Load {
            alerts,
            batch,
            concurrency,
            ..
        } => {
            let population = Population::new(alerts, LOAD_ENDS_IN)?;
            load::run(client, population, load::Params { batch, concurrency }).await
        }
    }
}
