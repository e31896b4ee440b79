//! Batches on a fixed open-loop timetable: `rate` alerts per second in batches of `batch` for `duration`, each batch
//! sent when due (kept by the shared pacer, `herald_bench_common::pacing`) whatever the earlier ones are doing, and
//! posted again after the server's `Retry-After` when it answers 429 or 5xx (within the retry bounds). Every alert is
//! distinct and its own group, so each is one delivery.
//!
//! Two uses: overload (more than the server can deliver: how many alerts arrived when the load ended and at the
//! `--checkpoints` after it, the delivery rate in between, and the server's memory then) and a flood (a high rate of
//! distinct alerts, each a new group: ingest-to-delivery latency of the alerts, and the maximum of a gauge such as
//! herald's `herald_delivery_oldest_open_seconds`, sampled while it runs). Traffic shaped like Prometheus's, a
//! population of alerts re-sent with some churn, is the `sustained` mode's (`crate::sustained`).
//!
//! An alert's latency runs from its batch's *scheduled* send time to its first arrival (no coordinated omission).
//! Accepted alerts that had not arrived when the run stopped are counted at that moment (a lower bound), so the
//! percentiles cover every accepted alert; the delivered ones alone are reported too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use herald_bench_common::client::{Client, Failure};
use herald_bench_common::latency::Latency;
use herald_bench_common::pacing::{Pacer, Pacing, Timetable, check_open_loop};
use herald_bench_common::retry::{Attempts, RetryPolicy};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::alerts::AlertFactory;
use crate::memory::fmt_mib;
use crate::probe::{between, round3};
use crate::stats::{Problems, line, summary};
use crate::throughput::per_second;
use crate::{Context, Outcome};

/// How often the waiting loop looks at the receiver's count.
const POLL: Duration = Duration::from_millis(10);

/// The scenario's command-line options.
#[derive(clap::Args)]
pub(crate) struct Params {
    /// Alerts per second, posted in batches of `--batch`.
    #[arg(long, default_value_t = 6_700.0)]
    pub(crate) rate: f64,
    /// Alerts per request.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: u64,
    /// How long the load lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub(crate) duration: Duration,
    /// Times after the load ended at which to note the deliveries so far and the server's memory (comma-separated,
    /// e.g. 20s,60s).
    #[arg(long, value_delimiter = ',', value_parser = humantime::parse_duration)]
    pub(crate) checkpoints: Vec<Duration>,
    /// Keep watching at least this long after the load ended, even when everything arrived.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub(crate) hold: Duration,
    /// Longest wait for deliveries after the load ended; retries of refused batches stop then too.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "180s")]
    pub(crate) wait: Duration,
    /// Stop waiting when nothing arrived (and no batch was accepted) for this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub(crate) idle: Duration,
    /// Batches outstanding at most (awaiting an answer or a retry); a batch due beyond that is skipped and counted.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_in_flight: usize,
    /// A gauge of the server's /metrics to sample while running, e.g. herald_delivery_oldest_open_seconds; its
    /// maximum is reported.
    #[arg(long)]
    pub(crate) gauge: Option<String>,
    /// How often to sample it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
    pub(crate) gauge_every: Duration,
}

/// How one batch ended.
#[derive(Clone, Copy)]
struct Settled {
    accepted: bool,
    /// When its last answer came.
    answered: Instant,
}

/// What the batch tasks report, shared with the waiting loop.
#[derive(Default)]
struct Ledger {
    batches: Vec<Option<Settled>>,
    /// Batches sent whose last answer has not come yet.
    outstanding: u64,
    accepted_alerts: u64,
    rejected_alerts: u64,
    retries: u64,
    batches_retried: u64,
    problems: Problems,
}

impl Ledger {
    fn settle(&mut self, index: u64, len: u64, attempts: &Attempts, answered: Instant) {
        self.outstanding = self.outstanding.saturating_sub(1);
        let accepted = attempts.accepted();
        if accepted {
            self.accepted_alerts += len;
        } else {
            self.rejected_alerts += len;
        }
        self.retries += attempts.retries();
        self.batches_retried += u64::from(attempts.retries() > 0);
        for answer in &attempts.answers {
            self.problems.record(answer);
        }
        if let Some(slot) = self.batches.get_mut(index as usize) {
            *slot = Some(Settled { accepted, answered });
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a batch send needs.
struct Sender {
    handle: Handle,
    client: Client,
    alerts: AlertFactory,
    retry: RetryPolicy,
    batch: u64,
    /// Retries of refused batches stop here.
    retry_deadline: Instant,
    ledger: Shared,
}

/// Deliveries and memory at one checkpoint after the load.
struct Checkpoint {
    after: Duration,
    reached: bool,
    delivered: u64,
    rss_kib: Option<u64>,
}

pub(crate) async fn run(context: &Context, params: Params) -> Result<Outcome> {
    ensure!(params.batch > 0, "--batch must be positive");
    let batch_rate = params.rate / params.batch as f64;
    check_open_loop(batch_rate, params.duration, params.max_in_flight)?;
    let timetable = Timetable::new(batch_rate, params.duration, Duration::ZERO);
    ensure!(
        timetable.measured > 0,
        "--rate x --duration must be at least one batch"
    );
    let mut checkpoints = params.checkpoints.clone();
    checkpoints.sort_unstable();
    context.receiver.expect_run(context.alerts.run_id());
    println!(
        "paced: {} alerts/s in batches of {} ({batch_rate:.2} requests/s, open loop) for {} ({} alerts); then \
         waiting up to {} for their deliveries, noting them at {}",
        params.rate,
        params.batch,
        humantime::format_duration(params.duration),
        timetable.total() * params.batch,
        humantime::format_duration(params.wait),
        if checkpoints.is_empty() {
            "the end".to_owned()
        } else {
            checkpoints
                .iter()
                .map(|c| format!("+{}", humantime::format_duration(*c)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );

    let before = context.probe.sample(&context.client).await;
    let start = Instant::now();
    let pacer = Pacer::new(timetable, params.max_in_flight)?;
    let timetable = pacer.timetable();
    let total = timetable.total();
    let ledger: Shared = Arc::new(Mutex::new(Ledger {
        batches: vec![None; total as usize],
        ..Ledger::default()
    }));
    let gauge = params
        .gauge
        .clone()
        .map(|name| GaugeSampler::start(context, name, params.gauge_every, start));
    let sender = Sender {
        handle: Handle::current(),
        client: context.client.clone(),
        alerts: context.alerts.clone(),
        retry: context.retry,
        batch: params.batch,
        retry_deadline: timetable.due(total) + params.wait,
        ledger: Arc::clone(&ledger),
    };
    let pacing = tokio::task::spawn_blocking(move || pace(pacer, sender))
        .await
        .context("pacing thread failed")?;

    let load_end = Instant::now();
    let delivered_at_end = context.receiver.lock().delivered;
    let rss_at_end = context.memory.rss_kib();
    let gauge_at_end = gauge.as_ref().and_then(GaugeSampler::last);
    println!(
        "  load ended            after {:.3} s: {} batches sent ({} skipped at the in-flight limit), {} alerts \
         accepted so far; {delivered_at_end} delivered; server RSS {}",
        (load_end - start).as_secs_f64(),
        pacing.sent,
        pacing.skipped,
        lock(&ledger).accepted_alerts,
        fmt_mib(rss_at_end)
    );

    let (stopped, stopped_at, mut marks) =
        wait(context, &ledger, load_end, &checkpoints, &params).await;
    let after = context.probe.sample(&context.client).await;
    let probe = between(&before, &after);
    let gauge = match gauge {
        Some(sampler) => Some(sampler.stop().await),
        None => None,
    };

    let ledger = lock(&ledger);
    let arrivals = context.receiver.lock();
    if stopped == "all" {
        for mark in marks.iter_mut().filter(|m| !m.reached) {
            mark.delivered = arrivals.delivered;
        }
    }
    let mut end_to_end = Latency::new()?;
    let mut delivered_only = Latency::new()?;
    let mut answered = Latency::new()?;
    let mut undelivered = 0u64;
    for (index, settled) in ledger.batches.iter().enumerate() {
        let Some(settled) = settled else { continue };
        let due = timetable.due(index as u64);
        answered.record(settled.answered.saturating_duration_since(due));
        if !settled.accepted {
            continue;
        }
        let first = index as u64 * params.batch;
        for seq in first..first + params.batch {
            match arrivals.arrival(seq) {
                Some(at) => {
                    let latency = at.saturating_duration_since(due);
                    end_to_end.record(latency);
                    delivered_only.record(latency);
                }
                None => {
                    end_to_end.record(stopped_at.saturating_duration_since(due));
                    undelivered += 1;
                }
            }
        }
    }
    let mut times: Vec<Instant> = arrivals.requests.clone();
    times.sort_unstable();
    let timeline = per_second(&times, start);
    let last_after_load = times
        .last()
        .map(|t| round3(t.saturating_duration_since(load_end).as_secs_f64()));
    let unsettled_alerts = ledger.outstanding * params.batch;

    println!(
        "  posted                {} alerts accepted, {} finally refused, {} without a final answer; {} non-2xx \
         answers, {} errors, {} retries ({} batches retried)",
        ledger.accepted_alerts,
        ledger.rejected_alerts,
        unsettled_alerts,
        ledger.problems.non_2xx,
        ledger.problems.errors,
        ledger.retries,
        ledger.batches_retried
    );
    if let Some(first) = &ledger.problems.first {
        println!("  first problem         {first}");
    }
    let mut previous = (Duration::ZERO, delivered_at_end);
    for mark in &marks {
        let rate = (mark.reached || stopped == "all")
            .then(|| {
                (mark.delivered.saturating_sub(previous.1)) as f64
                    / (mark.after - previous.0).as_secs_f64().max(1e-9)
            })
            .map(round3);
        println!(
            "  +{:<20} {} delivered ({}/s since the last mark){}; RSS {}",
            humantime::format_duration(mark.after).to_string(),
            mark.delivered,
            rate.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.1}")),
            if mark.reached {
                ""
            } else {
                " (not watched: stopped before)"
            },
            fmt_mib(mark.rss_kib)
        );
        previous = (mark.after, mark.delivered);
    }
    println!(
        "  delivered             {} of {} accepted alerts ({} duplicates, {} multi-alert; stopped: {stopped} {:.1} s \
         after the load; last arrival {} s after it)",
        arrivals.delivered,
        ledger.accepted_alerts,
        arrivals.duplicates,
        arrivals.multi,
        stopped_at.saturating_duration_since(load_end).as_secs_f64(),
        last_after_load.map_or_else(|| "n/a".to_owned(), |s| s.to_string())
    );
    println!(
        "  ingest to delivery ms {}  (from scheduled send; {undelivered} not delivered counted at the stop)",
        line(&end_to_end)
    );
    println!("  delivered only ms     {}", line(&delivered_only));
    println!("  post answered ms      {}", line(&answered));
    if let Some(gauge) = &gauge {
        println!(
            "  {:<21} max {} over {} samples; {} at the end of the load",
            gauge.name,
            gauge
                .max
                .map_or_else(|| "n/a".to_owned(), |m| m.to_string()),
            gauge.samples,
            gauge_at_end.map_or_else(|| "n/a".to_owned(), |v| v.to_string())
        );
    }
    println!(
        "  server CPU            {} cores busy; bench CPU {}; others {}; server {}",
        probe["server"]["cores"],
        probe["bench"]["cores"],
        probe["others"]["cores"],
        context.memory.line()
    );

    let all_after_load = (stopped == "all").then_some(last_after_load).flatten();
    let json = json!({
        "bench": "delivery",
        "scenario": "paced",
        "rate": params.rate,
        "batch": params.batch,
        "duration_s": params.duration.as_secs_f64(),
        "planned_alerts": total * params.batch,
        "sent_batches": pacing.sent,
        "skipped_batches": pacing.skipped,
        "send_lag_max_ms": round3(pacing.lag_max.as_secs_f64() * 1000.0),
        "load_s": round3((load_end - start).as_secs_f64()),
        "accepted": ledger.accepted_alerts,
        "rejected": ledger.rejected_alerts,
        "unsettled": unsettled_alerts,
        "non_2xx": ledger.problems.non_2xx,
        "errors": ledger.problems.errors,
        "retries": ledger.retries,
        "batches_retried": ledger.batches_retried,
        "first_problem": ledger.problems.first,
        "delivered_at_load_end": delivered_at_end,
        "rss_at_load_end_kib": rss_at_end,
        "checkpoints": marks.iter().map(|m| json!({
            "after_s": m.after.as_secs_f64(),
            "reached": m.reached,
            "delivered": m.delivered,
            "rss_kib": m.rss_kib,
        })).collect::<Vec<_>>(),
        "delivered": arrivals.delivered,
        "missing": ledger.accepted_alerts.saturating_sub(arrivals.delivered),
        "duplicates": arrivals.duplicates,
        "multi_alert_deliveries": arrivals.multi,
        "resolved": arrivals.resolved,
        "foreign": arrivals.foreign,
        "invalid": arrivals.invalid,
        "stopped": stopped,
        "waited_s": round3(stopped_at.saturating_duration_since(load_end).as_secs_f64()),
        "last_delivery_after_load_s": last_after_load,
        "all_delivered_after_load_s": all_after_load,
        "end_to_end": summary(&end_to_end),
        "undelivered_counted": undelivered,
        "delivered_end_to_end": summary(&delivered_only),
        "post_answered": summary(&answered),
        "gauge": gauge.as_ref().map(|g| json!({
            "name": g.name,
            "max": g.max,
            "samples": g.samples,
            "at_load_end": gauge_at_end,
        })),
        "timeline_per_s": timeline,
        "memory": context.memory.json(),
        "probe": probe,
    });
    let ok = arrivals.delivered > 0;
    Ok(Outcome {
        json,
        ok,
        failure: format!(
            "no delivery arrived ({} alerts accepted; first problem: {})",
            ledger.accepted_alerts,
            ledger.problems.first.as_deref().unwrap_or("none")
        ),
    })
}

/// Keeps the timetable: sleeps until each batch is due and starts it in its own task, unless `max_in_flight`
/// batches are outstanding.
fn pace(mut pacer: Pacer, sender: Sender) -> Pacing {
    while let Some(slot) = pacer.next_due() {
        pacer.send(&slot);
        lock(&sender.ledger).outstanding += 1;
        let client = sender.client.clone();
        let alerts = sender.alerts.clone();
        let ledger = Arc::clone(&sender.ledger);
        let (retry, batch, deadline) = (sender.retry, sender.batch, sender.retry_deadline);
        sender.handle.spawn(async move {
            let index = slot.index;
            let attempts = match alerts.batch(index * batch, batch) {
                Ok(body) => retry.post(&client, body, Some(deadline)).await,
                Err(error) => Attempts {
                    answers: vec![Err(Failure {
                        kind: "body",
                        detail: format!("{error:#}"),
                    })],
                    last_sent: Instant::now(),
                    waited: Duration::ZERO,
                },
            };
            let answered = Instant::now();
            drop(slot);
            lock(&ledger).settle(index, batch, &attempts, answered);
        });
    }
    pacer.finish()
}

/// Waits after the load until every accepted alert arrived (and no batch is outstanding) and `hold` passed, or
/// `wait` passed, or nothing happened for `idle`, noting the deliveries and memory at each checkpoint. Says why it
/// stopped and when.
async fn wait(
    context: &Context,
    ledger: &Shared,
    load_end: Instant,
    checkpoints: &[Duration],
    params: &Params,
) -> (&'static str, Instant, Vec<Checkpoint>) {
    let mut marks: Vec<Checkpoint> = checkpoints
        .iter()
        .map(|after| Checkpoint {
            after: *after,
            reached: false,
            delivered: 0,
            rss_kib: None,
        })
        .collect();
    let mut seen = (0, 0);
    let mut progress_at = load_end;
    loop {
        let delivered = context.receiver.lock().delivered;
        let (accepted, outstanding) = {
            let ledger = lock(ledger);
            (ledger.accepted_alerts, ledger.outstanding)
        };
        let now = Instant::now();
        for mark in marks
            .iter_mut()
            .filter(|m| !m.reached && now >= load_end + m.after)
        {
            mark.reached = true;
            mark.delivered = delivered;
            mark.rss_kib = context.memory.rss_kib();
        }
        if (delivered, accepted) != seen {
            seen = (delivered, accepted);
            progress_at = now;
        }
        if outstanding == 0 && delivered >= accepted && now >= load_end + params.hold {
            return ("all", now, marks);
        }
        if now >= load_end + params.wait {
            return ("wait", now, marks);
        }
        if now - progress_at >= params.idle {
            return ("idle", now, marks);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Samples one gauge of the server's `/metrics` on a timer, in its own task.
pub(crate) struct GaugeSampler {
    name: String,
    stop: Arc<AtomicBool>,
    values: Arc<Mutex<Vec<(f64, f64)>>>,
    task: JoinHandle<()>,
}

/// What the sampler saw.
pub(crate) struct GaugeSeen {
    pub(crate) name: String,
    pub(crate) max: Option<f64>,
    pub(crate) samples: usize,
}

impl GaugeSampler {
    pub(crate) fn start(context: &Context, name: String, every: Duration, start: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let values = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (stop, values) = (Arc::clone(&stop), Arc::clone(&values));
            let (client, probe, name) = (context.client.clone(), context.probe, name.clone());
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !stop.load(Ordering::Relaxed) {
                    ticks.tick().await;
                    if let Some(value) = probe.gauge(&client, &name).await {
                        let at = start.elapsed().as_secs_f64();
                        lock_values(&values).push((at, value));
                    }
                }
            })
        };
        Self {
            name,
            stop,
            values,
            task,
        }
    }

    /// The latest value sampled.
    pub(crate) fn last(&self) -> Option<f64> {
        lock_values(&self.values).last().map(|(_, value)| *value)
    }

    pub(crate) async fn stop(self) -> GaugeSeen {
        self.stop.store(true, Ordering::Relaxed);
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            eprintln!("gauge sampler did not stop within 5 s");
        }
        let values = lock_values(&self.values);
        GaugeSeen {
            name: self.name,
            max: values.iter().map(|(_, v)| *v).reduce(f64::max),
            samples: values.len(),
        }
    }
}

fn lock_values(values: &Mutex<Vec<(f64, f64)>>) -> MutexGuard<'_, Vec<(f64, f64)>> {
    values
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn the_ledger_settles_batches() {
        let mut ledger = Ledger {
            batches: vec![None; 3],
            outstanding: 3,
            ..Ledger::default()
        };
        let now = Instant::now();
        let taken = Attempts {
            answers: vec![Ok((503, Bytes::new())), Ok((200, Bytes::new()))],
            last_sent: now,
            waited: Duration::from_secs(1),
        };
        let refused = Attempts {
            answers: vec![Ok((400, Bytes::from_static(b"bad")))],
            last_sent: now,
            waited: Duration::ZERO,
        };
        ledger.settle(0, 100, &taken, now);
        ledger.settle(2, 100, &refused, now);
        assert_eq!(ledger.outstanding, 1);
        assert_eq!((ledger.accepted_alerts, ledger.rejected_alerts), (100, 100));
        assert_eq!((ledger.retries, ledger.batches_retried), (1, 1));
        assert_eq!(ledger.problems.non_2xx, 2);
        assert!(ledger.batches[0].is_some_and(|s| s.accepted));
        assert!(ledger.batches[1].is_none());
        assert!(ledger.batches[2].is_some_and(|s| !s.accepted));
    }
}
