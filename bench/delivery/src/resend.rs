//! Re-sends: `connections` workers in a closed loop, each posting one alert, waiting for the answer and posting the
//! next, drawn at random from `distinct` recurring alerts, so after the first few seconds nearly every post repeats
//! an alert already firing (as Prometheus re-sends its firing alerts). Measures accepted posts/s over `duration`
//! after a warm-up, and the post latency. Each recurring alert is notified once (its first post), so the receiver
//! also sees up to `distinct` deliveries, which are awaited for at most `settle` at the end.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use herald_bench_common::client::accepted;
use herald_bench_common::latency::Latency;
use serde_json::json;
use tokio::task::JoinSet;

use crate::probe::{between, round3};
use crate::stats::{Problems, line, summary};
use crate::{Context, Outcome};

/// Pause after a post that got no answer, so a server that is down is not hammered in a hot loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(50);
/// How often the settling loop looks at the receiver's count.
const POLL: Duration = Duration::from_millis(10);

/// The scenario's command-line options.
#[derive(clap::Args)]
pub(crate) struct Params {
    /// Workers (connections), each with one post outstanding.
    #[arg(long, default_value_t = 16)]
    pub(crate) connections: usize,
    /// Recurring alerts the posts are drawn from.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) distinct: u64,
    /// Measured time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub(crate) duration: Duration,
    /// Unmeasured time before it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub(crate) warmup: Duration,
    /// How long to wait after the last post for the notifications of the alerts posted.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub(crate) settle: Duration,
    /// Seed of the random draw.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// What one worker got done.
struct Worker {
    /// Posts answered 2xx that ended in the measured window, and their latency.
    ok: u64,
    latency: Latency,
    problems: Problems,
    /// Posts in all (warm-up included).
    posts: u64,
    /// Which alerts were accepted at least once.
    posted: Vec<bool>,
}

pub(crate) async fn run(context: &Context, params: Params) -> Result<Outcome> {
    ensure!(params.connections > 0, "--connections must be positive");
    ensure!(params.distinct > 0, "--distinct must be positive");
    ensure!(
        params.duration > Duration::ZERO,
        "--duration must be positive"
    );
    context.receiver.expect_run(context.alerts.run_id());
    println!(
        "resend: {} connections in a closed loop, single-alert posts drawn from {} recurring alerts, {} measured \
         after {} warm-up",
        params.connections,
        params.distinct,
        humantime::format_duration(params.duration),
        humantime::format_duration(params.warmup),
    );

    let start = Instant::now();
    let from = start + params.warmup;
    let until = from + params.duration;
    let mut workers = JoinSet::new();
    for id in 0..params.connections {
        let client = context.client.clone();
        let alerts = context.alerts.clone();
        let distinct = params.distinct;
        let seed = params.seed.wrapping_add(id as u64);
        workers.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut worker = Worker {
                ok: 0,
                latency: Latency::new()?,
                problems: Problems::default(),
                posts: 0,
                posted: vec![false; distinct as usize],
            };
            while Instant::now() < until {
                let seq = rng.u64(0..distinct);
                let body = alerts.batch(seq, 1)?;
                let sent = Instant::now();
                let answer = client.post_alerts(body).await;
                let done = Instant::now();
                worker.posts += 1;
                if accepted(&answer)
                    && let Some(slot) = worker.posted.get_mut(seq as usize)
                {
                    *slot = true;
                }
                if done >= from && done < until {
                    if accepted(&answer) {
                        worker.ok += 1;
                        worker.latency.record(done - sent);
                    }
                    worker.problems.record(&answer);
                }
                if answer.is_err() {
                    tokio::time::sleep(FAILURE_PAUSE).await;
                }
            }
            Ok::<_, anyhow::Error>(worker)
        });
    }
    // The CPU probe covers the measured window only.
    tokio::time::sleep_until(from.into()).await;
    let before = context.probe.sample(&context.client).await;
    tokio::time::sleep_until(until.into()).await;
    let after = context.probe.sample(&context.client).await;

    let mut ok = 0;
    let mut posts = 0;
    let mut latency = Latency::new()?;
    let mut problems = Problems::default();
    let mut posted = vec![false; params.distinct as usize];
    while let Some(joined) = workers.join_next().await {
        let worker = joined.context("posting worker failed")??;
        ok += worker.ok;
        posts += worker.posts;
        latency.merge(&worker.latency)?;
        problems.non_2xx += worker.problems.non_2xx;
        problems.errors += worker.problems.errors;
        if problems.first.is_none() {
            problems.first = worker.problems.first;
        }
        for (all, one) in posted.iter_mut().zip(worker.posted) {
            *all |= one;
        }
    }
    let probe = between(&before, &after);
    let distinct_posted = posted.iter().filter(|p| **p).count() as u64;

    let settle_until = Instant::now() + params.settle;
    let stopped = loop {
        if context.receiver.lock().delivered >= distinct_posted {
            break "all";
        }
        if Instant::now() >= settle_until {
            break "settle";
        }
        tokio::time::sleep(POLL).await;
    };
    let arrivals = context.receiver.lock();
    let secs = params.duration.as_secs_f64();
    let per_s = ok as f64 / secs;

    println!(
        "  accepted posts/s      {per_s:.1} ({ok} in the window; {posts} posts in all; {} non-2xx, {} errors)",
        problems.non_2xx, problems.errors
    );
    if let Some(first) = &problems.first {
        println!("  first problem         {first}");
    }
    println!("  post latency ms       {}", line(&latency));
    println!(
        "  delivered             {} of {distinct_posted} alerts posted ({} duplicates, stopped: {stopped})",
        arrivals.delivered, arrivals.duplicates
    );
    println!(
        "  server CPU            {} cores busy in the window; bench CPU {}; others {}; server {}",
        probe["server"]["cores"],
        probe["bench"]["cores"],
        probe["others"]["cores"],
        context.memory.line()
    );

    let json = json!({
        "bench": "delivery",
        "scenario": "resend",
        "connections": params.connections,
        "distinct": params.distinct,
        "duration_s": secs,
        "warmup_s": params.warmup.as_secs_f64(),
        "posts_per_s": round3(per_s),
        "accepted": ok,
        "posts": posts,
        "non_2xx": problems.non_2xx,
        "errors": problems.errors,
        "first_problem": problems.first,
        "post_latency": summary(&latency),
        "distinct_posted": distinct_posted,
        "delivered": arrivals.delivered,
        "missing": distinct_posted.saturating_sub(arrivals.delivered),
        "duplicates": arrivals.duplicates,
        "stopped": stopped,
        "memory": context.memory.json(),
        "probe": probe,
    });
    Ok(Outcome {
        json,
        ok: ok > 0,
        failure: format!(
            "no post was accepted in the measured window (first problem: {})",
            problems.first.as_deref().unwrap_or("none")
        ),
    })
}
