//! Closed-loop throughput: `concurrency` workers each post a batch, wait for the answer and post the next, for a
//! warm-up and then the measured window. Requests are counted by when they complete: those finishing inside the
//! window count, those finishing during warm-up or after it are ignored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use herald_bench_common::client::Client;
use tokio::task::JoinSet;

use crate::alerts::Population;
use crate::report::{ResultLine, per_sec};
use crate::stats::Recorder;

/// Pause after a request that got no answer, so a server that is down is not hammered in a hot loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(50);

pub(crate) struct Params {
    pub(crate) batch: u64,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) seed: u64,
}

/// The measured window, shared by all workers.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    fn contains(self, t: Instant) -> bool {
        t >= self.from && t < self.until
    }
}

pub(crate) async fn run(client: Client, population: Population, params: Params) -> Result<()> {
    ensure!(
        params.batch > 0 && params.concurrency > 0,
        "--batch and --concurrency must be positive"
    );
    ensure!(
        params.duration > Duration::ZERO,
        "--duration must be positive"
    );
    ensure!(
        params.batch <= population.distinct(),
        "--batch {} exceeds --distinct {}: a batch would repeat alerts",
        params.batch,
        population.distinct()
    );
    println!(
        "throughput: {} workers x batches of {} alerts from {} distinct, {} measured after {} warm-up",
        params.concurrency,
        params.batch,
        population.distinct(),
        humantime::format_duration(params.duration),
        humantime::format_duration(params.warmup),
    );

    let start = Instant::now();
    let window = Window {
        from: start + params.warmup,
        until: start + params.warmup + params.duration,
    };
    let population = Arc::new(population);
    let mut workers = JoinSet::new();
    for id in 0..params.concurrency {
        let seed = params.seed.wrapping_add(id as u64);
        workers.spawn(worker(
            client.clone(),
            Arc::clone(&population),
            params.batch,
            window,
            seed,
        ));
    }
    let mut total = Recorder::new()?;
    while let Some(joined) = workers.join_next().await {
        total.merge(&joined.context("worker task failed")??)?;
    }

    let secs = params.duration.as_secs_f64();
    println!("  accepted alerts/s     {}", per_sec(total.alerts_ok, secs));
    println!("  requests/s            {}", per_sec(total.ok, secs));
    println!(
        "  requests              {} ok, {} non-2xx, {} transport errors",
        total.ok,
        total.non_2xx(),
        total.failed()
    );
    println!(
        "  batch latency ms      p50 {}  p99 {}  max {}",
        total.quantile(0.5),
        total.quantile(0.99),
        total.max()
    );
    print!("{}", total.problems());
    let line = ResultLine::new("throughput")
        .field("batch", params.batch)
        .field("concurrency", params.concurrency)
        .field("distinct", population.distinct())
        .field("duration_s", format!("{secs:.3}"))
        .field("alerts_per_s", per_sec(total.alerts_ok, secs))
        .field("requests_per_s", per_sec(total.ok, secs))
        .field("ok", total.ok)
        .field("non_2xx", total.non_2xx())
        .field("errors", total.failed())
        .field("p50_ms", total.quantile(0.5))
        .field("p99_ms", total.quantile(0.99))
        .field("max_ms", total.max());
    println!("{line}");
    ensure!(
        total.ok > 0,
        "no request was accepted in the measured window"
    );
    Ok(())
}

/// Posts batches back to back until the window closes; each request is bounded by the client's timeout.
async fn worker(
    client: Client,
    population: Arc<Population>,
    batch: u64,
    window: Window,
    seed: u64,
) -> Result<Recorder> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut recorder = Recorder::new()?;
    while Instant::now() < window.until {
        let body = population.batch(rng.u64(0..population.distinct()), batch)?;
        let sent = Instant::now();
        let answer = client.post_alerts(body).await;
        let done = Instant::now();
        if window.contains(done) {
            recorder.record(&answer, done - sent, batch);
        }
        if answer.is_err() {
            tokio::time::sleep(FAILURE_PAUSE).await;
        }
    }
    Ok(recorder)
}
