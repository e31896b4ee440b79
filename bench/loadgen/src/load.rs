//! One-shot fill: posts alerts `0..alerts` of the population exactly once, in batches, as firing alerts that end an
//! hour from now, so the server holds that many active alerts (for a memory measurement). A batch that is refused or
//! gets no answer is retried a few times (`herald_bench_common::retry`); the run fails if any batch is finally not
//! accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use herald_bench_common::client::Client;
use herald_bench_common::retry::RetryPolicy;
use tokio::task::JoinSet;

use crate::alerts::Population;
use crate::report::{ResultLine, per_sec};
use crate::stats::Recorder;

/// Attempts per batch, and the waits between them (`Retry-After` when the server gives one).
const RETRY: RetryPolicy = RetryPolicy {
    attempts: 4,
    initial_wait: Duration::from_millis(250),
    max_wait: Duration::from_secs(5),
};

pub(crate) struct Params {
    pub(crate) batch: u64,
    pub(crate) concurrency: usize,
}

pub(crate) async fn run(client: Client, population: Population, params: Params) -> Result<()> {
    ensure!(
        params.batch > 0 && params.concurrency > 0,
        "--batch and --concurrency must be positive"
    );
    let alerts = population.distinct();
    let batches = alerts.div_ceil(params.batch);
    println!(
        "load: {alerts} distinct firing alerts in {batches} batches of up to {}",
        params.batch
    );

    let start = Instant::now();
    let population = Arc::new(population);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..params.concurrency {
        workers.spawn(worker(
            client.clone(),
            Arc::clone(&population),
            Arc::clone(&next),
            params.batch,
            batches,
        ));
    }
    let mut total = Recorder::new()?;
    let mut retries = 0;
    while let Some(joined) = workers.join_next().await {
        let (recorder, worker_retries) = joined.context("worker task failed")??;
        total.merge(&recorder)?;
        retries += worker_retries;
    }
    let secs = start.elapsed().as_secs_f64();
    let missing = alerts - total.alerts_ok;

    println!(
        "  stored alerts         {} of {alerts} in {secs:.1}s ({}/s)",
        total.alerts_ok,
        per_sec(total.alerts_ok, secs)
    );
    println!(
        "  batch latency ms      p50 {}  p99 {}",
        total.quantile(0.5),
        total.quantile(0.99)
    );
    println!("  retries               {retries}");
    print!("{}", total.problems());
    let line = ResultLine::new("load")
        .field("alerts", alerts)
        .field("batch", params.batch)
        .field("accepted", total.alerts_ok)
        .field("missing", missing)
        .field("retries", retries)
        .field("seconds", format!("{secs:.3}"))
        .field("alerts_per_s", per_sec(total.alerts_ok, secs));
    println!("{line}");
    ensure!(missing == 0, "{missing} alerts were not accepted");
    Ok(())
}

/// Takes batch numbers from `next` until all `batches` are taken. Only the final attempt of each batch is recorded.
async fn worker(
    client: Client,
    population: Arc<Population>,
    next: Arc<AtomicU64>,
    batch: u64,
    batches: u64,
) -> Result<(Recorder, u64)> {
    let mut recorder = Recorder::new()?;
    let mut retries = 0;
    loop {
        let number = next.fetch_add(1, Ordering::Relaxed);
        if number >= batches {
            return Ok((recorder, retries));
        }
        let first = number * batch;
        let len = batch.min(population.distinct() - first);
        let body = population.batch(first, len)?;
        let attempts = RETRY.post(&client, body, None).await;
        let elapsed = attempts.last_sent.elapsed();
        retries += attempts.retries();
        if let Some(answer) = attempts.last() {
            recorder.record(answer, elapsed, len);
        }
    }
}
