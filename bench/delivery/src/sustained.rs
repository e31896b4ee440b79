//! Sustained traffic shaped like Prometheus's: a population of firing alerts re-sent over and over, with some churn,
//! so that "deliveries keep pace with ingest" can be measured.
//!
//! 1. Preload: `--population` distinct firing alerts (numbered `0..population`, `endsAt` an hour ahead) are posted
//!    in batches of `--batch` by `--posters` concurrent posters, and the run waits until every first notification
//!    arrived (at most `--preload-deadline`, or `--idle` without an arrival). Only how long that took is reported.
//! 2. Load: for `--duration`, `--rate` alerts/s in batches of `--batch` on an open-loop timetable (each batch sent
//!    when due, in its own task, refused ones posted again within the retry bounds; at most `--max-in-flight`
//!    outstanding, a batch due beyond that is not sent and counted). What each batch carries is decided when it
//!    goes out ([`Planner`]): the alerts that join the population with it (`--churn` a second: new label sets, so
//!    new groups, each owing a first notification), then a walk of a cursor over the population, in order and
//!    round and round, re-sending each alert it meets with a fresh `endsAt` (`--ends-in` ahead, the same
//!    `startsAt`) unless an alert is owed to leave (`--churn` a second too): then the alert met is sent once with
//!    `endsAt` now instead, so it resolves (a resolved notification at its group's next `group_interval` tick),
//!    and is never sent again. An alert leaves when the cursor meets it, a whole cycle after its last re-send, and
//!    only once the server answered the batch of that re-send (else it is re-sent and another one leaves): a
//!    re-send still in flight, or waiting for a retry, could be taken after the resolve and fire the alert again,
//!    which a sender posting in order, as Prometheus does, never causes. The preloaded alerts leave first (once they
//!    all left, alerts that joined two cycles ago or more), so while the cursor walks over the alerts that joined,
//!    the leaves owed wait for it to come round. The rate covers all three kinds: per second `churn` new, `churn`
//!    resolved, the rest re-sends.
//! 3. Then it waits until every expected delivery arrived (and no batch is outstanding), at most `--wait` after
//!    the load, or until nothing arrived for `--idle` once every resolved notification expected was due.
//!
//! Expected deliveries: the first (firing) notification of every new alert that was in an accepted batch (its
//! latency runs from the scheduled send of the batch that first carried it, accepted or not, to its first arrival),
//! and the resolved notification of every leaving alert whose resolve was accepted and whose firing notification
//! had arrived before the resolve was sent (from the resolve's scheduled send to the resolved arrival; with
//! `--group-interval` 5m that is mostly the wait for the group's tick, so the time past that tick is reported too:
//! the ticks counted from when the alert was first accepted, about when its group was made and flushed first with
//! `group_wait` 0s, so a little late). Alerts not delivered by the stop are counted, and in the latency
//! percentiles with the time until the stop (a lower bound). Also: accepted alerts/s, non-2xx answers and retries,
//! duplicates, the server's CPU during the load, its RSS and `VmHWM`, and the maximum of `--gauge` sampled during
//! the load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, ensure};
use herald_bench_common::client::Failure;
use herald_bench_common::latency::Latency;
use herald_bench_common::pacing::{Pacer, Pacing, Timetable, check_open_loop};
use herald_bench_common::retry::{Attempts, RetryPolicy};
use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::alerts::{AlertFactory, Joins, Mixed};
use crate::memory::fmt_mib;
use crate::paced::GaugeSampler;
use crate::probe::{between, round3};
use crate::receiver::{Arrivals, MAX_SEQ};
use crate::stats::{Problems, line, summary};
use crate::throughput::post_all;
use crate::{Context, Outcome};

/// How often the waiting loops look at the receiver.
const POLL: Duration = Duration::from_millis(50);

/// In [`Planner::last_batch`]: no batch of the load carried the alert yet.
const NO_BATCH: u32 = u32::MAX;

/// By batch index: whether its last answer came (set by the batch tasks, read by the planner).
type Answered = Arc<Vec<AtomicBool>>;

/// The scenario's command-line options.
#[derive(clap::Args)]
pub(crate) struct Params {
    /// Distinct firing alerts posted first (the population); each first notification is awaited before the load.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) population: u64,
    /// Alerts per request, preload and load.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: u64,
    /// Concurrent posters of the preload.
    #[arg(long, default_value_t = 4)]
    pub(crate) posters: usize,
    /// Longest time the preload may take until every first notification arrived; the load starts then anyway.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "600s")]
    pub(crate) preload_deadline: Duration,
    /// Alerts per second during the load (re-sends, new alerts and resolves together), in batches of `--batch`.
    #[arg(long, default_value_t = 30_000.0)]
    pub(crate) rate: f64,
    /// Alerts per second that join the population (new groups), and as many that leave it (resolved).
    #[arg(long, default_value_t = 500.0)]
    pub(crate) churn: f64,
    /// How long the load lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub(crate) duration: Duration,
    /// `endsAt` of a firing alert this far after its post (longer than the run, so nothing expires meanwhile).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub(crate) ends_in: Duration,
    /// The server's group_interval: a resolved notification is due at the group's next tick.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub(crate) group_interval: Duration,
    /// Longest wait for the deliveries after the load; retries of refused batches stop then too.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "360s")]
    pub(crate) wait: Duration,
    /// Stop waiting when nothing arrived for this long (in the preload; after the load, once every resolved
    /// notification expected was due).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub(crate) idle: Duration,
    /// Batches outstanding at most (awaiting an answer or a retry); a batch due beyond that is skipped and counted.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_in_flight: usize,
    /// A gauge of the server's /metrics to sample during the load, e.g. herald_delivery_oldest_open_seconds; its
    /// maximum is reported.
    #[arg(long)]
    pub(crate) gauge: Option<String>,
    /// How often to sample it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
    pub(crate) gauge_every: Duration,
}

/// Decides what each batch of the load carries (see the module's doc). Alerts `0..population` are the preload;
/// those that join are numbered on from `population`. The population stays contiguous in numbers except for the
/// alerts that left (`gone`), which the cursor skips.
struct Planner {
    population: u64,
    batch: u64,
    /// Batches per second.
    batch_rate: f64,
    churn: f64,
    /// Seconds an alert that joined must have been in the population before it may leave.
    min_age: f64,
    /// The next alert to join.
    next: u64,
    /// By number: left the population.
    gone: Vec<bool>,
    /// By number: the last batch that carried it ([`NO_BATCH`]: none yet).
    last_batch: Vec<u32>,
    answered: Answered,
    left: u64,
    /// Leaves put off because the alert's last batch had no answer yet.
    held: u64,
    cursor: u64,
}

impl Planner {
    /// A planner for `batches` batches of `batch` alerts at `rate` alerts/s, `churn` of them joining and as many
    /// leaving a second; `answered` tells which batches were answered.
    fn new(
        population: u64,
        batch: u64,
        rate: f64,
        churn: f64,
        batches: u64,
        answered: Answered,
    ) -> Self {
        let batch_rate = rate / batch as f64;
        let resends = rate - 2.0 * churn;
        let cycle = if resends > 0.0 {
            population as f64 / resends
        } else {
            f64::INFINITY
        };
        let mut planner = Self {
            population,
            batch,
            batch_rate,
            churn,
            min_age: 2.0 * cycle,
            next: population,
            gone: Vec::new(),
            last_batch: Vec::new(),
            answered,
            left: 0,
            held: 0,
            cursor: 0,
        };
        let capacity = usize::try_from(population + planner.owed(batches) + 1).unwrap_or(0);
        planner.gone = vec![false; capacity];
        planner.last_batch = vec![NO_BATCH; capacity];
        planner
    }

    /// Alerts that have joined (and that have left) by the time batch `index` is due.
    fn owed(&self, index: u64) -> u64 {
        (self.churn * index as f64 / self.batch_rate).floor() as u64
    }

    fn joined(&self) -> u64 {
        self.next - self.population
    }

    /// Whether alert `seq` may leave with batch `index`: the preloaded alerts leave first; once they all left,
    /// alerts that joined two cycles ago or more.
    fn may_leave(&self, seq: u64, index: u64) -> bool {
        match seq.checked_sub(self.population) {
            None => true,
            Some(k) => {
                self.left >= self.population
                    && k as f64 / self.churn + self.min_age <= index as f64 / self.batch_rate
            }
        }
    }

    /// Whether the server answered the last batch that carried alert `seq` (true when none did).
    fn last_answered(&self, seq: u64) -> bool {
        let last = usize::try_from(seq)
            .ok()
            .and_then(|i| self.last_batch.get(i).copied())
            .unwrap_or(NO_BATCH);
        last == NO_BATCH
            || usize::try_from(last)
                .ok()
                .and_then(|i| self.answered.get(i))
                .is_some_and(|answered| answered.load(Ordering::Acquire))
    }

    fn is_gone(&self, seq: u64) -> bool {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.gone.get(i).copied())
            .unwrap_or(true)
    }

    /// What batch `index` carries. Called in order of index, for the batches sent only (a skipped batch's joins
    /// and leaves go with the next one).
    fn plan(&mut self, index: u64) -> Mixed {
        let owed = self.owed(index);
        let end = self.next;
        let room_for_new = (self.gone.len() as u64).saturating_sub(end);
        let joining = owed
            .saturating_sub(self.joined())
            .min(self.batch)
            .min(room_for_new);
        let new = end..end + joining;
        let mut leaving = owed.saturating_sub(self.left);
        let room = (self.batch - joining) as usize;
        let mut resend = Vec::with_capacity(room);
        let mut resolve = Vec::new();
        // One pass over the population at most: every alert once per batch at most.
        let mut steps = 0;
        while resend.len() + resolve.len() < room && steps < end {
            steps += 1;
            let seq = self.cursor;
            self.cursor = if seq + 1 >= end { 0 } else { seq + 1 };
            if self.is_gone(seq) {
                continue;
            }
            if leaving > 0 && self.may_leave(seq, index) {
                if self.last_answered(seq) {
                    if let Some(slot) = usize::try_from(seq).ok().and_then(|i| self.gone.get_mut(i))
                    {
                        *slot = true;
                    }
                    self.left += 1;
                    leaving -= 1;
                    resolve.push(seq);
                    continue;
                }
                self.held += 1;
            }
            resend.push(seq);
        }
        self.next = new.end;
        let batch = Mixed {
            new,
            resend,
            resolve,
        };
        let carried = u32::try_from(index).unwrap_or(NO_BATCH);
        for seq in batch.seqs() {
            if let Some(slot) = usize::try_from(seq)
                .ok()
                .and_then(|i| self.last_batch.get_mut(i))
            {
                *slot = carried;
            }
        }
        batch
    }
}

/// A leaving alert's resolve, once its batch settled.
#[derive(Clone, Copy, Debug)]
struct Resolve {
    seq: u64,
    /// Its batch's scheduled send.
    due: Instant,
    accepted: bool,
}

/// What the pacing thread and the batch tasks report, shared with the waiting loop.
struct Ledger {
    /// The first alert that joined during the load; the new alerts below are indexed from it.
    first_new: u64,
    /// By new alert: the scheduled send of the batch that first carried it.
    new_due: Vec<Option<Instant>>,
    /// By new alert: when the first accepted batch carrying it was answered.
    new_accepted: Vec<Option<Instant>>,
    resolves: Vec<Resolve>,
    /// Batches sent whose last answer has not come yet.
    outstanding: u64,
    /// Batches settled so far.
    settled: u64,
    accepted_alerts: u64,
    rejected_alerts: u64,
    resent: u64,
    retries: u64,
    batches_retried: u64,
    problems: Problems,
    /// From each batch's scheduled send to its last answer.
    answered: Latency,
}

impl Ledger {
    fn new(first_new: u64, capacity: usize) -> Result<Self> {
        Ok(Self {
            first_new,
            new_due: vec![None; capacity],
            new_accepted: vec![None; capacity],
            resolves: Vec::new(),
            outstanding: 0,
            settled: 0,
            accepted_alerts: 0,
            rejected_alerts: 0,
            resent: 0,
            retries: 0,
            batches_retried: 0,
            problems: Problems::default(),
            answered: Latency::new()?,
        })
    }

    /// Notes that `batch`, due at `due`, goes out.
    fn send(&mut self, batch: &Mixed, due: Instant) {
        self.outstanding += 1;
        for seq in batch.new.clone() {
            if let Some(slot) = self.new_slot(seq).and_then(|i| self.new_due.get_mut(i)) {
                slot.get_or_insert(due);
            }
        }
    }

    fn new_slot(&self, seq: u64) -> Option<usize> {
        seq.checked_sub(self.first_new)
            .and_then(|k| usize::try_from(k).ok())
    }

    fn settle(&mut self, batch: &Mixed, due: Instant, attempts: &Attempts, answered: Instant) {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.settled += 1;
        let accepted = attempts.accepted();
        if accepted {
            self.accepted_alerts += batch.len();
            for seq in batch.seqs() {
                if let Some(slot) = self
                    .new_slot(seq)
                    .and_then(|i| self.new_accepted.get_mut(i))
                {
                    slot.get_or_insert(answered);
                }
            }
        } else {
            self.rejected_alerts += batch.len();
        }
        self.resent += batch.resend.len() as u64;
        self.retries += attempts.retries();
        self.batches_retried += u64::from(attempts.retries() > 0);
        for answer in &attempts.answers {
            self.problems.record(answer);
        }
        self.answered
            .record(answered.saturating_duration_since(due));
        self.resolves.extend(
            batch
                .resolve
                .iter()
                .map(|&seq| Resolve { seq, due, accepted }),
        );
    }

    /// The new alerts that joined, with their first scheduled send and when they were first accepted.
    fn joined(&self) -> impl Iterator<Item = (u64, Instant, Option<Instant>)> + '_ {
        self.new_due
            .iter()
            .zip(&self.new_accepted)
            .enumerate()
            .filter_map(|(k, (due, accepted))| {
                due.map(|due| (self.first_new + k as u64, due, *accepted))
            })
    }

    /// When alert `seq` was first accepted: from the preload's batches (`preloaded`, by batch of `batch`), or as a
    /// new alert.
    fn accepted_at(&self, seq: u64, preloaded: &[Option<Instant>], batch: u64) -> Option<Instant> {
        if seq < self.first_new {
            let index = usize::try_from(seq / batch.max(1)).ok()?;
            return preloaded.get(index).copied().flatten();
        }
        self.new_slot(seq)
            .and_then(|i| self.new_accepted.get(i).copied().flatten())
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The first tick of a group at or after `at`, its ticks being `group_interval` apart from `first` on.
fn tick_after(first: Instant, at: Instant, group_interval: Duration) -> Instant {
    let interval = group_interval.as_secs_f64().max(1e-3);
    let ticks = (at.saturating_duration_since(first).as_secs_f64() / interval)
        .ceil()
        .max(1.0);
    first + Duration::from_secs_f64(ticks * interval)
}

/// Whether a resolve was expected to be notified: accepted, and the alert's firing notification arrived before it
/// was sent. Gives that arrival.
fn expected(resolve: &Resolve, arrivals: &Arrivals) -> Option<Instant> {
    if !resolve.accepted {
        return None;
    }
    arrivals
        .arrival(resolve.seq)
        .filter(|fired| *fired <= resolve.due)
}

/// What is still owed after the load.
struct Owed {
    new: u64,
    resolves: u64,
    /// The latest group tick at which an owed resolved notification is due.
    last_tick: Option<Instant>,
}

/// Where the ticks of alert `seq`'s group are counted from: when it was first accepted, else its first
/// notification's arrival.
fn anchor(seq: u64, fired: Instant, ledger: &Ledger, preloaded: &Preloaded) -> Instant {
    ledger
        .accepted_at(seq, &preloaded.accepted_at, preloaded.batch)
        .unwrap_or(fired)
}

/// When the preload's batches were accepted.
struct Preloaded {
    /// By batch index.
    accepted_at: Vec<Option<Instant>>,
    batch: u64,
}

fn owed(
    ledger: &Ledger,
    arrivals: &Arrivals,
    preloaded: &Preloaded,
    group_interval: Duration,
) -> Owed {
    let new = ledger
        .joined()
        .filter(|(seq, _, accepted)| accepted.is_some() && arrivals.arrival(*seq).is_none())
        .count() as u64;
    let mut resolves = 0;
    let mut last_tick: Option<Instant> = None;
    for resolve in &ledger.resolves {
        let Some(fired) = expected(resolve, arrivals) else {
            continue;
        };
        if arrivals.resolved_arrival(resolve.seq).is_none() {
            resolves += 1;
            let anchor = anchor(resolve.seq, fired, ledger, preloaded);
            let tick = tick_after(anchor, resolve.due, group_interval);
            last_tick = Some(last_tick.map_or(tick, |t| t.max(tick)));
        }
    }
    Owed {
        new,
        resolves,
        last_tick,
    }
}

/// What a batch send needs.
struct Sender {
    handle: Handle,
    client: herald_bench_common::client::Client,
    alerts: AlertFactory,
    joins: Joins,
    ends_in: Duration,
    retry: RetryPolicy,
    /// Retries of refused batches stop here.
    retry_deadline: Instant,
    ledger: Shared,
    answered: Answered,
}

pub(crate) async fn run(context: &Context, params: Params) -> Result<Outcome> {
    ensure!(params.population > 0, "--population must be positive");
    ensure!(params.batch > 0, "--batch must be positive");
    ensure!(params.posters > 0, "--posters must be positive");
    ensure!(
        params.churn.is_finite() && params.churn > 0.0,
        "--churn must be a positive number"
    );
    ensure!(
        2.0 * params.churn <= params.rate,
        "--churn must be at most half of --rate (the rate carries the new alerts and the resolves)"
    );
    let batch_rate = params.rate / params.batch as f64;
    check_open_loop(batch_rate, params.duration, params.max_in_flight)?;
    let timetable = Timetable::new(batch_rate, params.duration, Duration::ZERO);
    ensure!(
        timetable.measured > 0,
        "--rate x --duration must be at least one batch"
    );
    let total = timetable.total();
    ensure!(
        total < u64::from(NO_BATCH),
        "--rate x --duration / --batch must be under {NO_BATCH} batches"
    );
    let answered: Answered = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let planner = Planner::new(
        params.population,
        params.batch,
        params.rate,
        params.churn,
        total,
        Arc::clone(&answered),
    );
    let capacity = planner.gone.len() as u64;
    ensure!(
        capacity > params.population && capacity <= MAX_SEQ,
        "--population plus the alerts joining ({capacity}) must be at most {MAX_SEQ}"
    );
    context.receiver.expect_run(context.alerts.run_id());
    println!(
        "sustained: preloading {} firing alerts ({} per request, {} posters) and waiting for their notifications; \
         then {} alerts/s in batches of {} for {} (open loop), {} a second joining the population and as many \
         leaving it; then waiting up to {} for the deliveries (group_interval {})",
        params.population,
        params.batch,
        params.posters,
        params.rate,
        params.batch,
        humantime::format_duration(params.duration),
        params.churn,
        humantime::format_duration(params.wait),
        humantime::format_duration(params.group_interval),
    );

    let (preload, preloaded) = preload(context, &params).await?;

    let ledger: Shared = Arc::new(Mutex::new(Ledger::new(
        params.population,
        usize::try_from(capacity - params.population).unwrap_or(0),
    )?));
    let before = context.probe.sample(&context.client).await;
    let pacer = Pacer::new(timetable, params.max_in_flight)?;
    let timetable = pacer.timetable();
    let start = timetable.start;
    let joins = Joins {
        first: params.population,
        at: SystemTime::now() + start.saturating_duration_since(Instant::now()),
        per_second: params.churn,
    };
    let gauge = params
        .gauge
        .clone()
        .map(|name| GaugeSampler::start(context, name, params.gauge_every, start));
    let sender = Sender {
        handle: Handle::current(),
        client: context.client.clone(),
        alerts: context.alerts.clone(),
        joins,
        ends_in: params.ends_in,
        retry: context.retry,
        retry_deadline: timetable.due(total) + params.wait,
        ledger: Arc::clone(&ledger),
        answered,
    };
    let (pacing, planner) = tokio::task::spawn_blocking(move || pace(pacer, planner, sender))
        .await
        .context("pacing thread failed")?;

    let load_end = Instant::now();
    let during = context.probe.sample(&context.client).await;
    let rss_at_end = context.memory.rss_kib();
    let gauge = match gauge {
        Some(sampler) => Some(sampler.stop().await),
        None => None,
    };
    println!(
        "  load ended            after {:.3} s: {} batches sent ({} skipped at the in-flight limit), {} alerts \
         accepted so far; {} joined, {} left ({} leaves put off: last re-send not answered yet); server RSS {}",
        (load_end - start).as_secs_f64(),
        pacing.sent,
        pacing.skipped,
        lock(&ledger).accepted_alerts,
        planner.joined(),
        planner.left,
        planner.held,
        fmt_mib(rss_at_end)
    );

    let (stopped, stopped_at) = wait(context, &ledger, &preloaded, load_end, &params).await;
    let after = context.probe.sample(&context.client).await;
    let load_probe = between(&before, &during);
    let whole_probe = between(&before, &after);

    let ledger = lock(&ledger);
    let arrivals = context.receiver.lock();
    let report = Report::of(
        &ledger,
        &arrivals,
        &preloaded,
        stopped_at,
        params.group_interval,
    )?;
    let unsettled_alerts = ledger.outstanding * params.batch;
    let duration_s = params.duration.as_secs_f64();
    let accepted_per_s = ledger.accepted_alerts as f64 / duration_s;

    println!(
        "  posted                {} alerts accepted ({:.1}/s of load), {} finally refused, {} without a final \
         answer; {} non-2xx answers, {} errors, {} retries ({} batches retried); {} re-sends",
        ledger.accepted_alerts,
        accepted_per_s,
        ledger.rejected_alerts,
        unsettled_alerts,
        ledger.problems.non_2xx,
        ledger.problems.errors,
        ledger.retries,
        ledger.batches_retried,
        ledger.resent
    );
    if let Some(first) = &ledger.problems.first {
        println!("  first problem         {first}");
    }
    println!(
        "  new alerts            {} joined, {} accepted, {} never accepted; {} delivered, {} not (stopped: \
         {stopped} {:.1} s after the load)",
        report.joined,
        report.new_accepted,
        report.joined - report.new_accepted,
        report.new_delivered,
        report.new_missing,
        stopped_at.saturating_duration_since(load_end).as_secs_f64()
    );
    println!(
        "  new, to first notif ms {}  (from the first scheduled send; not delivered counted at the stop)",
        line(&report.new_latency)
    );
    println!(
        "  resolves              {} sent, {} accepted, {} expected (firing notified before), {} delivered, {} not",
        ledger.resolves.len(),
        report.resolves_accepted,
        report.resolves_expected,
        report.resolves_delivered,
        report.resolves_missing
    );
    println!(
        "  resolve, to notif ms  {}  (from the scheduled send; not delivered counted at the stop)",
        line(&report.resolve_latency)
    );
    println!(
        "  resolved past tick    {}  (arrival after the group's tick, counted from the alert's first acceptance)",
        spread_line(&report.past_tick)
    );
    println!(
        "  duplicates            {} firing, {} resolved; {} resolved arrivals of alerts never resolved",
        arrivals.duplicates, arrivals.resolved_duplicates, report.unexpected_resolved
    );
    println!("  post answered ms      {}", line(&ledger.answered));
    if let Some(gauge) = &gauge {
        println!(
            "  {:<21} max {} over {} samples during the load",
            gauge.name,
            gauge
                .max
                .map_or_else(|| "n/a".to_owned(), |m| m.to_string()),
            gauge.samples
        );
    }
    println!(
        "  server CPU            {} cores busy during the load, {} over the load and wait; bench CPU {}; others {}; \
         server {}",
        load_probe["server"]["cores"],
        whole_probe["server"]["cores"],
        load_probe["bench"]["cores"],
        load_probe["others"]["cores"],
        context.memory.line()
    );

    let json = json!({
        "bench": "delivery",
        "scenario": "sustained",
        "population": params.population,
        "batch": params.batch,
        "rate": params.rate,
        "churn": params.churn,
        "duration_s": duration_s,
        "group_interval_s": params.group_interval.as_secs_f64(),
        "preload": preload,
        "planned_alerts": total * params.batch,
        "sent_batches": pacing.sent,
        "skipped_batches": pacing.skipped,
        "send_lag_max_ms": round3(pacing.lag_max.as_secs_f64() * 1000.0),
        "load_s": round3((load_end - start).as_secs_f64()),
        "accepted": ledger.accepted_alerts,
        "accepted_per_s": round3(accepted_per_s),
        "rejected": ledger.rejected_alerts,
        "unsettled": unsettled_alerts,
        "non_2xx": ledger.problems.non_2xx,
        "errors": ledger.problems.errors,
        "retries": ledger.retries,
        "batches_retried": ledger.batches_retried,
        "first_problem": ledger.problems.first,
        "resent": ledger.resent,
        "joined": planner.joined(),
        "left": planner.left,
        "leaves_held": planner.held,
        "new": {
            "joined": report.joined,
            "accepted": report.new_accepted,
            "never_accepted": report.joined - report.new_accepted,
            "delivered": report.new_delivered,
            "not_delivered": report.new_missing,
            "latency": summary(&report.new_latency),
            "delivered_latency": summary(&report.new_delivered_latency),
        },
        "resolves": {
            "sent": ledger.resolves.len(),
            "accepted": report.resolves_accepted,
            "expected": report.resolves_expected,
            "delivered": report.resolves_delivered,
            "not_delivered": report.resolves_missing,
            "latency": summary(&report.resolve_latency),
            "delivered_latency": summary(&report.resolve_delivered_latency),
            "past_tick": spread(&report.past_tick),
        },
        "not_delivered": report.new_missing + report.resolves_missing,
        "duplicates": arrivals.duplicates,
        "resolved_duplicates": arrivals.resolved_duplicates,
        "unexpected_resolved": report.unexpected_resolved,
        "delivered": arrivals.delivered,
        "resolved": arrivals.resolved,
        "multi_alert_deliveries": arrivals.multi,
        "foreign": arrivals.foreign,
        "invalid": arrivals.invalid,
        "stopped": stopped,
        "waited_s": round3(stopped_at.saturating_duration_since(load_end).as_secs_f64()),
        "post_answered": summary(&ledger.answered),
        "gauge": gauge.as_ref().map(|g| json!({
            "name": g.name,
            "max": g.max,
            "samples": g.samples,
        })),
        "rss_at_load_end_kib": rss_at_end,
        "memory": context.memory.json(),
        "probe": load_probe,
        "probe_with_wait": whole_probe,
    });
    let ok = preload
        .get("delivered")
        .and_then(Value::as_u64)
        .is_some_and(|delivered| delivered > 0)
        && ledger.accepted_alerts > 0;
    Ok(Outcome {
        json,
        ok,
        failure: format!(
            "nothing was delivered in the preload, or nothing accepted in the load (first problem: {})",
            ledger.problems.first.as_deref().unwrap_or("none")
        ),
    })
}

/// Posts the population and waits for every first notification; says how long that took, and when each batch
/// was accepted.
async fn preload(context: &Context, params: &Params) -> Result<(Value, Preloaded)> {
    let start = Instant::now();
    let deadline = start + params.preload_deadline;
    let posted = post_all(
        context,
        params.population,
        params.batch,
        params.posters,
        deadline,
    )
    .await?;
    let posted_at = Instant::now();
    let mut seen = 0;
    let mut progress_at = posted_at;
    let stopped = loop {
        let delivered = context.receiver.lock().delivered;
        let now = Instant::now();
        if delivered >= posted.accepted {
            break "all";
        }
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
        tokio::time::sleep(POLL).await;
    };
    let done = Instant::now();
    let delivered = context.receiver.lock().delivered;
    let rss = context.memory.rss_kib();
    println!(
        "  preload               {} of {} alerts accepted in {:.3} s ({} non-2xx, {} retries); {delivered} \
         notified after {:.3} s (stopped: {stopped}); server RSS {}",
        posted.accepted,
        params.population,
        (posted_at - start).as_secs_f64(),
        posted.problems.non_2xx,
        posted.retries,
        (done - start).as_secs_f64(),
        fmt_mib(rss)
    );
    if stopped != "all" {
        println!(
            "  preload incomplete    {} first notifications missing; the load starts anyway",
            posted.accepted.saturating_sub(delivered)
        );
    }
    let mut accepted_at = vec![None; usize::try_from(params.population.div_ceil(params.batch))?];
    for (index, at) in &posted.accepted_at {
        if let Some(slot) = usize::try_from(*index)
            .ok()
            .and_then(|i| accepted_at.get_mut(i))
        {
            *slot = Some(*at);
        }
    }
    let preloaded = Preloaded {
        accepted_at,
        batch: params.batch,
    };
    let json = json!({
        "alerts": params.population,
        "accepted": posted.accepted,
        "non_2xx": posted.problems.non_2xx,
        "retries": posted.retries,
        "post_s": round3((posted_at - start).as_secs_f64()),
        "delivered": delivered,
        "stopped": stopped,
        "s": round3((done - start).as_secs_f64()),
        "all_delivered_s": (stopped == "all").then(|| round3((done - start).as_secs_f64())),
        "rss_kib": rss,
    });
    Ok((json, preloaded))
}

/// Keeps the timetable: sleeps until each batch is due, plans it and starts it in its own task, unless
/// `max_in_flight` batches are outstanding. Gives the pacing and the planner (what joined and left).
fn pace(mut pacer: Pacer, mut planner: Planner, sender: Sender) -> (Pacing, Planner) {
    while let Some(slot) = pacer.next_due() {
        let batch = planner.plan(slot.index);
        if batch.len() == 0 {
            continue;
        }
        pacer.send(&slot);
        lock(&sender.ledger).send(&batch, slot.due);
        let client = sender.client.clone();
        let alerts = sender.alerts.clone();
        let ledger = Arc::clone(&sender.ledger);
        let answered = Arc::clone(&sender.answered);
        let (retry, deadline, joins, ends_in) = (
            sender.retry,
            sender.retry_deadline,
            sender.joins,
            sender.ends_in,
        );
        sender.handle.spawn(async move {
            let due = slot.due;
            let attempts = match alerts.mixed(&batch, &joins, ends_in) {
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
            let index = slot.index;
            let at = Instant::now();
            drop(slot);
            lock(&ledger).settle(&batch, due, &attempts, at);
            if let Some(flag) = usize::try_from(index).ok().and_then(|i| answered.get(i)) {
                flag.store(true, Ordering::Release);
            }
        });
    }
    (pacer.finish(), planner)
}

/// Waits after the load until nothing is owed (and no batch is outstanding), or `wait` passed, or nothing happened
/// for `idle` once every owed resolved notification was due. Says why it stopped and when.
async fn wait(
    context: &Context,
    ledger: &Shared,
    preloaded: &Preloaded,
    load_end: Instant,
    params: &Params,
) -> (&'static str, Instant) {
    let mut seen = (0, 0, 0);
    let mut progress_at = load_end;
    loop {
        let (owed, outstanding) = {
            let ledger = lock(ledger);
            let arrivals = context.receiver.lock();
            let owed = owed(&ledger, &arrivals, preloaded, params.group_interval);
            let progress = (arrivals.delivered, arrivals.resolved, ledger.settled);
            let now = Instant::now();
            if progress != seen {
                seen = progress;
                progress_at = now;
            }
            (owed, ledger.outstanding)
        };
        let now = Instant::now();
        if outstanding == 0 && owed.new == 0 && owed.resolves == 0 {
            return ("all", now);
        }
        if now >= load_end + params.wait {
            return ("wait", now);
        }
        let all_due = owed.last_tick.is_none_or(|tick| now >= tick);
        if all_due && now - progress_at >= params.idle {
            return ("idle", now);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The deliveries measured against what was expected.
struct Report {
    joined: u64,
    new_accepted: u64,
    new_delivered: u64,
    new_missing: u64,
    /// Every accepted new alert: to its first arrival, or to the stop.
    new_latency: Latency,
    new_delivered_latency: Latency,
    resolves_accepted: u64,
    resolves_expected: u64,
    resolves_delivered: u64,
    resolves_missing: u64,
    resolve_latency: Latency,
    resolve_delivered_latency: Latency,
    /// Seconds from each delivered resolve's group tick (counted from the alert's first acceptance) to its
    /// resolved arrival; negative when it came before.
    past_tick: Vec<f64>,
    /// Alerts that arrived resolved though never sent resolved.
    unexpected_resolved: u64,
}

impl Report {
    fn of(
        ledger: &Ledger,
        arrivals: &Arrivals,
        preloaded: &Preloaded,
        stopped_at: Instant,
        group_interval: Duration,
    ) -> Result<Self> {
        let mut report = Self {
            joined: 0,
            new_accepted: 0,
            new_delivered: 0,
            new_missing: 0,
            new_latency: Latency::new()?,
            new_delivered_latency: Latency::new()?,
            resolves_accepted: 0,
            resolves_expected: 0,
            resolves_delivered: 0,
            resolves_missing: 0,
            resolve_latency: Latency::new()?,
            resolve_delivered_latency: Latency::new()?,
            past_tick: Vec::new(),
            unexpected_resolved: 0,
        };
        for (seq, due, accepted) in ledger.joined() {
            report.joined += 1;
            if accepted.is_none() {
                continue;
            }
            report.new_accepted += 1;
            match arrivals.arrival(seq) {
                Some(at) => {
                    let latency = at.saturating_duration_since(due);
                    report.new_latency.record(latency);
                    report.new_delivered_latency.record(latency);
                    report.new_delivered += 1;
                }
                None => {
                    report
                        .new_latency
                        .record(stopped_at.saturating_duration_since(due));
                    report.new_missing += 1;
                }
            }
        }
        let mut ours = 0;
        for resolve in &ledger.resolves {
            let arrived = arrivals.resolved_arrival(resolve.seq);
            ours += u64::from(arrived.is_some());
            report.resolves_accepted += u64::from(resolve.accepted);
            let Some(fired) = expected(resolve, arrivals) else {
                continue;
            };
            report.resolves_expected += 1;
            match arrived {
                Some(at) => {
                    let latency = at.saturating_duration_since(resolve.due);
                    report.resolve_latency.record(latency);
                    report.resolve_delivered_latency.record(latency);
                    report.resolves_delivered += 1;
                    let anchor = anchor(resolve.seq, fired, ledger, preloaded);
                    let tick = tick_after(anchor, resolve.due, group_interval);
                    let past = if at >= tick {
                        (at - tick).as_secs_f64()
                    } else {
                        -(tick - at).as_secs_f64()
                    };
                    report.past_tick.push(past);
                }
                None => {
                    report
                        .resolve_latency
                        .record(stopped_at.saturating_duration_since(resolve.due));
                    report.resolves_missing += 1;
                }
            }
        }
        report.unexpected_resolved = arrivals.resolved_distinct.saturating_sub(ours);
        Ok(report)
    }
}

/// Min, p50, p99 and max of signed seconds, in milliseconds (null when empty).
fn spread(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| -> Option<f64> {
        let last = sorted.len().checked_sub(1)?;
        let index = ((q * last as f64).round() as usize).min(last);
        sorted.get(index).map(|s| round3(s * 1000.0))
    };
    json!({
        "count": sorted.len(),
        "min_ms": at(0.0),
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": at(1.0),
    })
}

fn spread_line(values: &[f64]) -> String {
    let spread = spread(values);
    let ms = |key: &str| {
        spread[key]
            .as_f64()
            .map_or_else(|| "nan".to_owned(), |v| format!("{v:.3}"))
    };
    format!(
        "min {}  p50 {}  p99 {}  max {} ms  ({} samples)",
        ms("min_ms"),
        ms("p50_ms"),
        ms("p99_ms"),
        ms("max_ms"),
        values.len()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use bytes::Bytes;

    use super::*;

    /// Batch answers for `batches` batches, all `answered` or none.
    fn answers(batches: u64, answered: bool) -> Answered {
        Arc::new((0..batches).map(|_| AtomicBool::new(answered)).collect())
    }

    /// Plans `batches` batches in order.
    fn plan_all(planner: &mut Planner, batches: u64) -> Vec<Mixed> {
        (0..batches).map(|index| planner.plan(index)).collect()
    }

    #[test]
    fn batches_carry_the_rate_with_churn() {
        // 1,000 alerts, 10,000 alerts/s in batches of 100 (100 batches/s), 200 joining and 200 leaving a second,
        // for 3 s.
        let mut planner = Planner::new(1000, 100, 10_000.0, 200.0, 300, answers(400, true));
        let batches = plan_all(&mut planner, 300);
        assert!(batches.iter().all(|b| b.len() == 100), "every batch full");
        let new: u64 = batches.iter().map(|b| b.new.end - b.new.start).sum();
        let resolved: usize = batches.iter().map(|b| b.resolve.len()).sum();
        // Owed by the last batch: floor(200 x 299 / 100). The leaves owed while the cursor walks over the alerts
        // that joined wait for it to come round to the preloaded ones.
        assert_eq!(new, 598);
        assert!((578..=598).contains(&resolved), "{resolved}");
        assert_eq!(planner.joined(), 598);
        assert_eq!(planner.left, resolved as u64);
        let caught_up: usize = (300..320)
            .map(|index| planner.plan(index).resolve.len())
            .sum();
        assert!(caught_up >= 598 - resolved, "the owed leaves go out later");
        let first_second: u64 = batches[..100].iter().map(|b| b.new.end - b.new.start).sum();
        assert!((198..=200).contains(&first_second), "{first_second}");
        let mut joined = 1000;
        for batch in &batches {
            assert_eq!(batch.new.start, joined, "new alerts numbered on");
            joined = batch.new.end;
            let seqs: Vec<u64> = batch.seqs().collect();
            let distinct: HashSet<u64> = seqs.iter().copied().collect();
            assert_eq!(distinct.len(), seqs.len(), "no alert twice in a batch");
        }
    }

    #[test]
    fn leaving_alerts_are_old_and_never_sent_again() {
        let mut planner = Planner::new(1000, 100, 10_000.0, 200.0, 300, answers(400, true));
        let batches = plan_all(&mut planner, 300);
        let mut gone = HashSet::new();
        let mut last_sent = std::collections::HashMap::new();
        for (index, batch) in batches.iter().enumerate() {
            for seq in batch.new.clone().chain(batch.resend.iter().copied()) {
                assert!(!gone.contains(&seq), "alert {seq} sent after it left");
                last_sent.insert(seq, index);
            }
            for &seq in &batch.resolve {
                assert!(seq < 1000, "only preloaded alerts leave in 3 s");
                assert!(gone.insert(seq), "alert {seq} left twice");
                // The cycle is about 1,000 / 9,600 s, about 10 batches: its last re-send was a while ago.
                if let Some(last) = last_sent.get(&seq) {
                    assert!(
                        index - last >= 5,
                        "alert {seq} re-sent in {last}, resolved in {index}"
                    );
                }
            }
        }
        // Every alert still in the population is re-sent within a cycle or two.
        let alive: HashSet<u64> = (0..planner.next).filter(|s| !gone.contains(s)).collect();
        let recent: HashSet<u64> = batches[batches.len() - 25..]
            .iter()
            .flat_map(|b| b.new.clone().chain(b.resend.iter().copied()))
            .collect();
        assert!(
            (1000..=1020).contains(&alive.len()),
            "the population keeps its size, but for leaves owed: {}",
            alive.len()
        );
        assert!(alive.is_subset(&recent), "every live alert re-sent lately");
    }

    #[test]
    fn new_alerts_leave_only_when_old() {
        // A small population with a high churn: new alerts leave too, but only two cycles after they joined.
        let mut planner = Planner::new(100, 10, 1_000.0, 100.0, 1000, answers(1000, true));
        let cycle = 100.0 / 800.0;
        let batches = plan_all(&mut planner, 1000);
        let mut resolved_new = 0;
        for (index, batch) in batches.iter().enumerate() {
            for &seq in &batch.resolve {
                if let Some(k) = seq.checked_sub(100) {
                    resolved_new += 1;
                    let age = index as f64 / 100.0 - k as f64 / 100.0;
                    assert!(
                        age >= 2.0 * cycle,
                        "alert {seq} left {age} s after it joined"
                    );
                }
            }
        }
        assert!(resolved_new > 0);
    }

    #[test]
    fn a_skipped_batch_hands_its_churn_on() {
        let mut planner = Planner::new(1000, 100, 10_000.0, 200.0, 300, answers(400, true));
        let first = planner.plan(0);
        assert_eq!(first.len(), 100);
        assert_eq!(first.new, 1000..1000);
        // Batches 1 to 49 skipped: what they owed goes with batch 50.
        let late = planner.plan(50);
        assert_eq!(late.new, 1000..1100);
        assert_eq!(late.resolve.len(), 0, "no room left for resolves");
        let next = planner.plan(51);
        assert_eq!(next.new, 1100..1102);
        assert_eq!(next.resolve.len(), 98, "the owed resolves go next");
    }

    #[test]
    fn an_alert_leaves_only_once_its_last_batch_was_answered() {
        let answered = answers(300, false);
        let mut planner = Planner::new(1000, 100, 10_000.0, 200.0, 300, Arc::clone(&answered));
        let first_cycle = plan_all(&mut planner, 20);
        let left: usize = first_cycle.iter().map(|b| b.resolve.len()).sum();
        // The cursor meets the preloaded alerts for the first time: nothing in flight yet.
        assert!(left > 0);
        let held_before = planner.held;
        let next: Vec<Mixed> = (20..40).map(|index| planner.plan(index)).collect();
        assert!(
            next.iter().all(|b| b.resolve.is_empty()),
            "no answer came: every alert met is still in flight"
        );
        assert!(planner.held > held_before);
        for flag in answered.iter() {
            flag.store(true, Ordering::Release);
        }
        let caught_up: usize = (40..60)
            .map(|index| planner.plan(index).resolve.len())
            .sum();
        assert!(caught_up > 0, "answered: the owed leaves go");
    }

    #[test]
    fn a_tiny_population_is_sent_once_a_batch() {
        let mut planner = Planner::new(3, 100, 1_000.0, 1.0, 10, answers(10, true));
        let batch = planner.plan(0);
        assert_eq!(batch.resend, vec![0, 1, 2]);
        assert_eq!(batch.len(), 3);
    }

    #[test]
    fn ticks_follow_the_first_notification() {
        let first = Instant::now();
        let interval = Duration::from_secs(300);
        let s = Duration::from_secs;
        assert_eq!(tick_after(first, first + s(10), interval), first + s(300));
        assert_eq!(tick_after(first, first, interval), first + s(300));
        assert_eq!(tick_after(first, first + s(301), interval), first + s(600));
    }

    #[test]
    fn the_ledger_tracks_new_alerts_and_resolves() {
        let mut ledger = Ledger::new(1000, 10).unwrap();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        let a = Mixed {
            new: 1000..1002,
            resend: vec![5],
            resolve: vec![7],
        };
        let b = Mixed {
            new: 1002..1003,
            resend: vec![1001, 1000],
            resolve: vec![8],
        };
        ledger.send(&a, t0);
        ledger.send(&b, t1);
        assert_eq!(ledger.outstanding, 2);
        let refused = Attempts {
            answers: vec![Ok((503, Bytes::new())), Ok((503, Bytes::new()))],
            last_sent: t1,
            waited: Duration::from_secs(1),
        };
        let taken = Attempts {
            answers: vec![Ok((200, Bytes::new()))],
            last_sent: t1,
            waited: Duration::ZERO,
        };
        ledger.settle(&a, t0, &refused, t1);
        ledger.settle(&b, t1, &taken, t1);
        assert_eq!(ledger.outstanding, 0);
        assert_eq!((ledger.accepted_alerts, ledger.rejected_alerts), (4, 4));
        assert_eq!((ledger.retries, ledger.batches_retried), (1, 1));
        assert_eq!(ledger.problems.non_2xx, 2);
        let joined: Vec<(u64, Instant, Option<Instant>)> = ledger.joined().collect();
        assert_eq!(
            joined,
            vec![
                (1000, t0, Some(t1)),
                (1001, t0, Some(t1)),
                (1002, t1, Some(t1))
            ],
            "first carried by the refused batch, accepted with a later one"
        );
        let preloaded = [Some(t0), None];
        assert_eq!(ledger.accepted_at(3, &preloaded, 5), Some(t0));
        assert_eq!(ledger.accepted_at(7, &preloaded, 5), None);
        assert_eq!(ledger.accepted_at(1001, &preloaded, 5), Some(t1));
        assert_eq!(ledger.resolves.len(), 2);
        assert!(!ledger.resolves[0].accepted && ledger.resolves[1].accepted);
    }

    #[test]
    fn spreads_signed_seconds() {
        let values = [0.5, -0.25, 2.0];
        let spread = spread(&values);
        assert_eq!(spread["min_ms"], -250.0);
        assert_eq!(spread["p50_ms"], 500.0);
        assert_eq!(spread["max_ms"], 2000.0);
        assert!(super::spread(&[])["p50_ms"].is_null());
        assert!(spread_line(&values).ends_with("(3 samples)"));
    }
}
