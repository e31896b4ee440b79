//! Deliveries/s with no rate limit: post `alerts` distinct alerts in batches as fast as the server takes them (a
//! batch refused with 429 or 5xx is posted again after its `Retry-After`, within the retry bounds), then wait until
//! every accepted alert has arrived at the receiver (or the run's deadline, or no arrival for `idle`). With every
//! alert in its own group, each is one notification and one webhook request. Also the burst's time from the first
//! post until every alert was delivered, and the server's memory (sampled peak and `VmHWM`).
//!
//! The rate is counted over arrivals: from the first to the last, and over the middle 80% (10th to 90th percentile
//! arrival) as the steady state that leaves out the start-up and the tail.
//!
//! With `--cpu-window`, the run goes on once everything arrived: it lets the server settle for `--cpu-settle`, then
//! measures the CPU it uses over the window while nothing changes (its groups only tick their timers), and counts
//! any delivery that still arrives.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::json;
use tokio::task::JoinSet;

use crate::alerts::AlertFactory;
use crate::memory::fmt_mib;
use crate::probe::{Outbox, between, round3};
use crate::stats::Problems;
use crate::{Context, Outcome};

/// How often the waiting loop looks at the receiver's count (arrival times are taken by the receiver itself).
const POLL: Duration = Duration::from_millis(10);

/// The scenario's command-line options.
#[derive(clap::Args)]
pub(crate) struct Params {
    /// Distinct alerts to post; each is one delivery.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) alerts: u64,
    /// Alerts per request.
    #[arg(long, default_value_t = 500)]
    pub(crate) batch: u64,
    /// Requests outstanding at once while posting.
    #[arg(long, default_value_t = 2)]
    pub(crate) concurrency: usize,
    /// Longest time the whole run may take, posting included; alerts not delivered by then count as missing.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
    pub(crate) deadline: Duration,
    /// Stop waiting when no delivery arrived for this long (after the first one).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub(crate) idle: Duration,
    /// How often to read herald's outbox (`herald_deliveries` in /metrics) while waiting; 0s: never.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub(crate) outbox_every: Duration,
    /// After every alert arrived, measure the server's CPU over this long with nothing changing; 0s: don't.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub(crate) cpu_window: Duration,
    /// How long to let the server settle before that window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub(crate) cpu_settle: Duration,
}

/// One reading of herald's outbox while deliveries arrive.
struct OutboxSample {
    at: Instant,
    outbox: Outbox,
    /// Alerts the receiver had seen by then.
    arrived: u64,
}

/// What the posting workers got done.
#[derive(Default)]
pub(crate) struct Posted {
    pub(crate) accepted: u64,
    /// Posts of a batch after its first.
    pub(crate) retries: u64,
    /// Batches finally not accepted.
    pub(crate) rejected_batches: u64,
    pub(crate) problems: Problems,
    /// The accepted batches, by index, with when their accepting answer came.
    pub(crate) accepted_at: Vec<(u64, Instant)>,
}

pub(crate) async fn run(context: &Context, params: Params) -> Result<Outcome> {
    ensure!(params.alerts > 0, "--alerts must be positive");
    ensure!(params.batch > 0, "--batch must be positive");
    ensure!(params.concurrency > 0, "--concurrency must be positive");
    context.receiver.expect_run(context.alerts.run_id());
    println!(
        "throughput: posting {} distinct alerts ({} per request, {} requests at once), then waiting for their deliveries \
         (at most {} in all; stop after {} without one)",
        params.alerts,
        params.batch,
        params.concurrency,
        humantime::format_duration(params.deadline),
        humantime::format_duration(params.idle),
    );

    let before = context.probe.sample(&context.client).await;
    let start = Instant::now();
    let deadline = start + params.deadline;
    let posted = post_all(
        context,
        params.alerts,
        params.batch,
        params.concurrency,
        deadline,
    )
    .await?;
    let posted_at = Instant::now();
    println!(
        "  posted                {} accepted in {:.3} s ({} non-2xx answers, {} errors, {} retries, {} batches \
         finally refused)",
        posted.accepted,
        (posted_at - start).as_secs_f64(),
        posted.problems.non_2xx,
        posted.problems.errors,
        posted.retries,
        posted.rejected_batches
    );
    if let Some(first) = &posted.problems.first {
        println!("  first problem         {first}");
    }

    let (stopped, outbox) = wait(context, posted.accepted, posted_at, deadline, &params).await;
    let waited_at = Instant::now();
    let after = context.probe.sample(&context.client).await;
    let probe = between(&before, &after);
    let memory = context.memory.json();
    let idle = if params.cpu_window.is_zero() {
        serde_json::Value::Null
    } else {
        idle_cpu(context, &params).await
    };

    let arrivals = context.receiver.lock();
    let mut times: Vec<Instant> = arrivals
        .requests
        .iter()
        .copied()
        .filter(|t| *t <= waited_at)
        .collect();
    times.sort_unstable();
    let rates = Rates::of(&times, start);
    let timeline = per_second(&times, start);
    let missing = posted.accepted.saturating_sub(arrivals.delivered);
    let before_posted = times.iter().filter(|t| **t <= posted_at).count();

    println!(
        "  delivered             {} of {} alerts in {} requests ({} missing, {} duplicates, {} multi-alert, stopped: {stopped})",
        arrivals.delivered,
        posted.accepted,
        times.len(),
        missing,
        arrivals.duplicates,
        arrivals.multi
    );
    println!(
        "  deliveries/s          {} first to last arrival; {} steady (10th-90th percentile arrival); {} from the first post",
        fmt_rate(rates.window),
        fmt_rate(rates.steady),
        fmt_rate(rates.overall)
    );
    println!(
        "  first arrival         {} ms after the first post; last {} s; {before_posted} arrived before posting ended",
        fmt_opt(rates.first_ms),
        fmt_opt(rates.last_s)
    );
    println!(
        "  per second            {}",
        timeline
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if !outbox.is_empty() {
        let line = outbox
            .iter()
            .map(|s| {
                format!(
                    "{:.1}s:{}/{}/{}",
                    s.at.duration_since(start).as_secs_f64(),
                    s.outbox.queued(),
                    s.outbox.pending,
                    s.arrived
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        println!("  outbox (t:queued/pending/arrived) {line}");
    }
    let max_pending = outbox.iter().map(|s| s.outbox.pending).fold(0.0, f64::max);
    println!(
        "  server CPU            {} (cores busy, whole run); bench CPU {}; others {}",
        probe["server"]["cores"], probe["bench"]["cores"], probe["others"]["cores"]
    );
    println!(
        "  server memory         {} (at the end of the wait), {} sampled peak, {} VmHWM",
        fmt_mib(memory["rss_kib"].as_u64()),
        fmt_mib(memory["peak_rss_kib"].as_u64()),
        fmt_mib(memory["hwm_kib"].as_u64()),
    );
    let all_delivered_s = (stopped == "all").then_some(rates.last_s).flatten();
    println!(
        "  all delivered         {} s after the first post",
        fmt_opt(all_delivered_s)
    );
    if !idle.is_null() {
        println!(
            "  idle CPU              {} % of one core over {} s; {} deliveries while settling, {} in the window; \
             RSS {}; others {} cores",
            fmt_opt(idle["core_percent"].as_f64()),
            idle["window_s"],
            idle["deliveries_settling"],
            idle["deliveries_in_window"],
            fmt_mib(idle["rss_kib"].as_u64()),
            idle["probe"]["others"]["cores"]
        );
    }

    let post_s = (posted_at - start).as_secs_f64();
    let json = json!({
        "bench": "delivery",
        "scenario": "throughput",
        "alerts": params.alerts,
        "batch": params.batch,
        "post_concurrency": params.concurrency,
        "accepted": posted.accepted,
        "non_2xx": posted.problems.non_2xx,
        "errors": posted.problems.errors,
        "retries": posted.retries,
        "rejected_batches": posted.rejected_batches,
        "post_s": round3(post_s),
        "ingest_alerts_per_s": round1(posted.accepted as f64 / post_s.max(1e-9)),
        "delivered": arrivals.delivered,
        "missing": missing,
        "duplicates": arrivals.duplicates,
        "deliveries": times.len(),
        "multi_alert_deliveries": arrivals.multi,
        "resolved": arrivals.resolved,
        "foreign": arrivals.foreign,
        "invalid": arrivals.invalid,
        "stopped": stopped,
        "deliveries_per_s": rates.window.map(round1),
        "steady_deliveries_per_s": rates.steady.map(round1),
        "overall_deliveries_per_s": rates.overall.map(round1),
        "first_delivery_ms": rates.first_ms,
        "last_delivery_s": rates.last_s,
        "all_delivered_s": all_delivered_s,
        "delivered_before_posting_ended": before_posted,
        "timeline_per_s": timeline,
        "outbox_max_pending": max_pending,
        "outbox": outbox.iter().map(|s| json!({
            "t_s": round3(s.at.duration_since(start).as_secs_f64()),
            "queued": s.outbox.queued(),
            "pending": s.outbox.pending,
            "in_flight": s.outbox.in_flight,
            "delivered": s.outbox.delivered,
            "arrived": s.arrived,
        })).collect::<Vec<_>>(),
        "probe": probe,
        "memory": memory,
        "idle": idle,
    });
    let ok = arrivals.delivered > 0;
    Ok(Outcome {
        json,
        ok,
        failure: format!(
            "no delivery arrived ({} alerts accepted; first problem: {})",
            posted.accepted,
            posted.problems.first.as_deref().unwrap_or("none")
        ),
    })
}

/// Posts alerts `0..total` (distinct, `endsAt` an hour ahead) in batches of `batch` with `concurrency` workers,
/// retrying refused batches, until `deadline`; returns what was accepted.
pub(crate) async fn post_all(
    context: &Context,
    total: u64,
    batch: u64,
    concurrency: usize,
    deadline: Instant,
) -> Result<Posted> {
    post_range(
        context,
        0..total,
        AlertFactory::batch,
        batch,
        concurrency,
        deadline,
    )
    .await
}

/// The body of the alerts `first .. first + len` (firing: [`AlertFactory::batch`], or [`AlertFactory::resolved`]).
pub(crate) type MakeBody = fn(&AlertFactory, u64, u64) -> Result<bytes::Bytes>;

/// Posts alerts `seqs` in batches of `batch` (bodies made by `make`) with `concurrency` workers, retrying refused
/// batches, until `deadline`; returns what was accepted (batch indexes count from the start of `seqs`).
pub(crate) async fn post_range(
    context: &Context,
    seqs: Range<u64>,
    make: MakeBody,
    batch: u64,
    concurrency: usize,
    deadline: Instant,
) -> Result<Posted> {
    let start = seqs.start;
    let total = seqs.end.saturating_sub(seqs.start);
    let batches = total.div_ceil(batch);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let client = context.client.clone();
        let alerts = context.alerts.clone();
        let retry = context.retry;
        workers.spawn(async move {
            let mut posted = Posted::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= batches || Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(posted);
                }
                let offset = index * batch;
                let len = batch.min(total - offset);
                let attempts = retry
                    .post(&client, make(&alerts, start + offset, len)?, Some(deadline))
                    .await;
                if attempts.accepted() {
                    posted.accepted += len;
                    posted.accepted_at.push((index, Instant::now()));
                } else {
                    posted.rejected_batches += 1;
                }
                posted.retries += attempts.retries();
                for answer in &attempts.answers {
                    posted.problems.record(answer);
                }
            }
        });
    }
    let mut all = Posted::default();
    while let Some(joined) = workers.join_next().await {
        let posted = joined.context("posting worker failed")??;
        all.accepted += posted.accepted;
        all.retries += posted.retries;
        all.rejected_batches += posted.rejected_batches;
        all.problems.non_2xx += posted.problems.non_2xx;
        all.problems.errors += posted.problems.errors;
        if all.problems.first.is_none() {
            all.problems.first = posted.problems.first;
        }
        all.accepted_at.extend(posted.accepted_at);
    }
    Ok(all)
}

/// Waits until `expected` alerts arrived, the deadline passed, or nothing arrived for `idle`; says which, with
/// the readings of herald's outbox taken meanwhile.
async fn wait(
    context: &Context,
    expected: u64,
    posted_at: Instant,
    deadline: Instant,
    params: &Params,
) -> (&'static str, Vec<OutboxSample>) {
    let mut seen = 0;
    let mut progress_at = posted_at;
    let mut samples = Vec::new();
    let mut next_sample = posted_at;
    let stopped = loop {
        let delivered = context.receiver.lock().delivered;
        if delivered >= expected {
            break "all";
        }
        let now = Instant::now();
        if delivered > seen {
            seen = delivered;
            progress_at = now;
        }
        if now >= deadline {
            break "deadline";
        }
        if now - progress_at >= params.idle {
            break "idle";
        }
        if !params.outbox_every.is_zero() && now >= next_sample {
            next_sample = now + params.outbox_every;
            if let Some(outbox) = context.probe.outbox(&context.client).await {
                samples.push(OutboxSample {
                    at: Instant::now(),
                    outbox,
                    arrived: context.receiver.lock().delivered,
                });
            }
        }
        tokio::time::sleep(POLL).await;
    };
    (stopped, samples)
}

/// Once everything arrived: waits `cpu_settle`, then measures the server's CPU over `cpu_window` (as % of one core)
/// and counts the deliveries that still arrive meanwhile.
async fn idle_cpu(context: &Context, params: &Params) -> serde_json::Value {
    println!(
        "  idle                  settling for {}, then measuring CPU for {}",
        humantime::format_duration(params.cpu_settle),
        humantime::format_duration(params.cpu_window)
    );
    let arrived = || {
        let arrivals = context.receiver.lock();
        arrivals.delivered + arrivals.duplicates + arrivals.resolved
    };
    let at_end = arrived();
    tokio::time::sleep(params.cpu_settle).await;
    let from = arrived();
    let before = context.probe.sample(&context.client).await;
    tokio::time::sleep(params.cpu_window).await;
    let after = context.probe.sample(&context.client).await;
    let during = arrived().saturating_sub(from);
    let probe = between(&before, &after);
    let percent = probe["server"]["cores"]
        .as_f64()
        .map(|cores| round3(cores * 100.0));
    let rss = context.memory.rss_kib();
    json!({
        "settle_s": params.cpu_settle.as_secs_f64(),
        "window_s": probe["wall_s"],
        "cpu_s": probe["server"]["cpu_s"],
        "core_percent": percent,
        "deliveries_settling": from.saturating_sub(at_end),
        "deliveries_in_window": during,
        "rss_kib": rss,
        "probe": probe,
    })
}

/// Delivery rates from sorted arrival times.
struct Rates {
    /// (n - 1) / (last - first).
    window: Option<f64>,
    /// Arrivals between the 10th and 90th percentile over the time between them.
    steady: Option<f64>,
    /// n / (last - start).
    overall: Option<f64>,
    first_ms: Option<f64>,
    last_s: Option<f64>,
}

impl Rates {
    fn of(times: &[Instant], start: Instant) -> Self {
        let n = times.len();
        let (Some(first), Some(last)) = (times.first(), times.last()) else {
            return Self {
                window: None,
                steady: None,
                overall: None,
                first_ms: None,
                last_s: None,
            };
        };
        let rate = |count: usize, from: Instant, to: Instant| {
            let secs = to.duration_since(from).as_secs_f64();
            (secs > 0.0).then(|| count as f64 / secs)
        };
        let (lo, hi) = (n / 10, n * 9 / 10);
        let steady = if n >= 10 && hi > lo {
            rate(hi - lo, times[lo], times[hi])
        } else {
            None
        };
        Self {
            window: rate(n - 1, *first, *last),
            steady,
            overall: rate(n, start, *last),
            first_ms: Some(round3(first.duration_since(start).as_secs_f64() * 1000.0)),
            last_s: Some(round3(last.duration_since(start).as_secs_f64())),
        }
    }
}

/// Arrivals in each whole second since `start`.
pub(crate) fn per_second(times: &[Instant], start: Instant) -> Vec<u64> {
    let mut buckets = Vec::new();
    for time in times {
        let second = time.duration_since(start).as_secs() as usize;
        if buckets.len() <= second {
            buckets.resize(second + 1, 0);
        }
        buckets[second] += 1;
    }
    buckets
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn fmt_rate(rate: Option<f64>) -> String {
    rate.map_or_else(|| "nan".to_owned(), |r| format!("{r:.1}"))
}

fn fmt_opt(value: Option<f64>) -> String {
    value.map_or_else(|| "nan".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_arrival_times() {
        let start = Instant::now();
        let times: Vec<Instant> = (0..101)
            .map(|i| start + Duration::from_millis(1000 + 10 * i))
            .collect();
        let rates = Rates::of(&times, start);
        let window = rates.window.unwrap();
        assert!((99.0..=101.0).contains(&window), "window {window}");
        let steady = rates.steady.unwrap();
        assert!((99.0..=101.0).contains(&steady), "steady {steady}");
        let overall = rates.overall.unwrap();
        assert!((50.0..=51.0).contains(&overall), "overall {overall}");
        assert_eq!(per_second(&times, start), vec![0, 100, 1]);
        assert!(Rates::of(&[], start).window.is_none());
    }
}
