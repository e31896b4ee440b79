//! Whether the server's memory follows its active set: waves of distinct alerts, each alert its own group, that
//! fire, resolve and are forgotten, with the server's resident set sampled throughout.
//!
//! Each wave has `--alerts` alerts of its own (wave `w` is numbered `w * alerts ..`, so no label set comes back):
//!
//! 1. firing: the alerts are posted firing (`endsAt` an hour ahead) in batches of `--batch` by `--concurrency`
//!    posters (a refused batch posted again within the retry bounds), then the run waits until every alert's
//!    firing notification arrived (at most `--deadline` for posting and waiting, or `--idle` without an arrival);
//! 2. resolving: the same alerts are posted again with `endsAt` now, and the run waits for every resolved
//!    notification (the same bounds);
//! 3. retention: the run reads the server's `/metrics` every `--metrics-every` until its store is empty (herald's
//!    `herald_alerts`, `herald_deliveries` and `herald_aggregation_groups` all 0: the resolved alerts and the
//!    finished deliveries deleted past their retention, the groups dropped), at most `--retention-wait`;
//! 4. settle: `--settle` with nothing happening.
//!
//! `VmRSS` of the server (`--pid`, required) is read every `--sample-every` on a thread of its own throughout; each
//! phase reports its peak and the value at its end, each wave the value before it and `VmHWM` after it (printed as a
//! JSON line `{"wave_result": ...}` when the wave ends, so a run stopped later still has them). The result also
//! holds, for every second of the run, the peak RSS and the notifications that arrived (timelines), and the
//! failures: alerts whose firing or resolved notification did not arrive, notifications that arrived twice, a store
//! that did not empty, a server that went away (the run stops at once then). The server must be herald started
//! fresh (the store gauges are read as absolute counts), with `group_by: [alertname, instance]` (or `['...']`),
//! `group_wait: 0s`, `send_resolved` and short retentions; the resolved notifications come at each group's next
//! `group_interval` tick. `bench/memory.py` starts it so.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use crate::alerts::AlertFactory;
use crate::memory::{fmt_mib, read};
use crate::probe::{parse_gauge, parse_outbox, round3};
use crate::receiver::MAX_SEQ;
use crate::throughput::{MakeBody, per_second, post_range};
use crate::{Context, Outcome};

/// How often the waiting loops look at the receiver's counts.
const POLL: Duration = Duration::from_millis(50);

/// The scenario's command-line options.
#[derive(clap::Args)]
pub(crate) struct Params {
    /// Waves, one after the other.
    #[arg(long, default_value_t = 2)]
    pub(crate) waves: u64,
    /// Distinct alerts in each wave (each its own group: one firing and one resolved notification).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) alerts: u64,
    /// Alerts per request.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: u64,
    /// Requests outstanding at once while posting.
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Longest time for posting a wave firing (or resolved) and waiting for its notifications.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1800s")]
    pub(crate) deadline: Duration,
    /// Stop waiting for notifications when none arrived for this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub(crate) idle: Duration,
    /// Longest wait, once every resolved notification arrived, for the server's store to be empty.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
    pub(crate) retention_wait: Duration,
    /// How often /metrics is read while waiting for the store to be empty.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub(crate) metrics_every: Duration,
    /// Time with nothing happening once the store is empty, before the wave's RSS after is read.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub(crate) settle: Duration,
    /// How often the server's VmRSS is read.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
    pub(crate) sample_every: Duration,
}

/// `VmRSS` of the server, read on a thread of its own (so a busy runtime does not delay it) until stopped or until
/// the process is gone.
struct Sampler {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    gone: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32, every: Duration) -> Result<Self> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let gone = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, gone, stop) =
                (Arc::clone(&samples), Arc::clone(&gone), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("rss-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match read(pid, "VmRSS:") {
                            Some(rss) => lock(&samples).push((Instant::now(), rss)),
                            None => {
                                gone.store(true, Ordering::Relaxed);
                                return;
                            }
                        }
                        std::thread::sleep(every);
                    }
                })
                .context("cannot start the sampling thread")?
        };
        Ok(Self {
            samples,
            gone,
            stop,
            thread: Some(thread),
        })
    }

    fn gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// The largest sample taken in `window` (its end included), and the last one.
    fn window(&self, window: &Range<Instant>) -> (Option<u64>, Option<u64>) {
        let samples = lock(&self.samples);
        // Samples are taken in time order by one thread.
        let from = samples.partition_point(|(at, _)| *at < window.start);
        let to = samples
            .partition_point(|(at, _)| *at <= window.end)
            .max(from);
        let inside = &samples[from..to];
        let peak = inside.iter().map(|(_, rss)| *rss).max();
        let last = inside.last().map(|(_, rss)| *rss);
        (peak, last)
    }

    /// The peak of every whole second since `start`, in KiB (0 for a second without a sample).
    fn timeline(&self, start: Instant) -> Vec<u64> {
        let samples = lock(&self.samples);
        let mut seconds: Vec<u64> = Vec::new();
        for (at, rss) in samples.iter() {
            let second =
                usize::try_from(at.saturating_duration_since(start).as_secs()).unwrap_or(0);
            if seconds.len() <= second {
                seconds.resize(second + 1, 0);
            }
            seconds[second] = seconds[second].max(*rss);
        }
        seconds
    }

    fn count(&self) -> usize {
        lock(&self.samples).len()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The server's store as its gauges tell: alerts, deliveries and aggregation groups.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stored {
    firing: f64,
    resolved: f64,
    deliveries: f64,
    groups: f64,
}

impl Stored {
    /// From herald's `/metrics` text; `None` when a gauge is missing.
    fn parse(text: &str) -> Option<Self> {
        Some(Self {
            firing: parse_gauge(text, "herald_alerts{state=\"firing\"}")?,
            resolved: parse_gauge(text, "herald_alerts{state=\"resolved\"}")?,
            deliveries: text
                .contains("herald_deliveries{")
                .then(|| parse_outbox(text).queued())?,
            groups: parse_gauge(text, "herald_aggregation_groups")?,
        })
    }

    fn is_empty(&self) -> bool {
        self.firing == 0.0 && self.resolved == 0.0 && self.deliveries == 0.0 && self.groups == 0.0
    }

    fn json(&self) -> Value {
        json!({
            "firing": self.firing,
            "resolved": self.resolved,
            "deliveries": self.deliveries,
            "groups": self.groups,
        })
    }
}

/// Which notification a phase waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Firing,
    Resolved,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolving",
        }
    }

    /// The notification the phase waits for.
    fn notification(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }

    fn body(self) -> MakeBody {
        match self {
            Self::Firing => AlertFactory::batch,
            Self::Resolved => AlertFactory::resolved,
        }
    }
}

/// Everything the scenario shares while it runs.
struct Run<'a> {
    context: &'a Context,
    params: &'a Params,
    sampler: Sampler,
    pid: u32,
    start: Instant,
}

pub(crate) async fn run(context: &Context, params: Params) -> Result<Outcome> {
    ensure!(params.waves > 0, "--waves must be positive");
    ensure!(params.alerts > 0, "--alerts must be positive");
    ensure!(params.batch > 0, "--batch must be positive");
    ensure!(params.concurrency > 0, "--concurrency must be positive");
    ensure!(
        params.waves.saturating_mul(params.alerts) <= MAX_SEQ,
        "at most {MAX_SEQ} alerts in all waves together"
    );
    ensure!(
        !params.sample_every.is_zero(),
        "--sample-every must be positive"
    );
    ensure!(
        !params.metrics_every.is_zero(),
        "--metrics-every must be positive"
    );
    let pid = context
        .probe
        .pid()
        .context("waves needs the server's --pid to read its memory")?;
    context.receiver.expect_run(context.alerts.run_id());
    println!(
        "waves: {} waves of {} distinct alerts ({} per request, {} requests at once): each posted firing, then \
         resolved, then left to the server's retention; VmRSS every {}",
        params.waves,
        params.alerts,
        params.batch,
        params.concurrency,
        humantime::format_duration(params.sample_every)
    );
    let run = Run {
        context,
        params: &params,
        sampler: Sampler::start(pid, params.sample_every)?,
        pid,
        start: Instant::now(),
    };
    let mut waves = Vec::new();
    let mut failures = Vec::new();
    for wave in 0..params.waves {
        let result = run.wave(wave, &mut failures).await;
        // Each wave's figures as soon as it ends, so a run stopped later still has them.
        println!("{}", json!({ "wave_result": &result }));
        waves.push(result);
        if run.sampler.gone() {
            break;
        }
    }
    let gone = run.sampler.gone();
    if gone {
        failures.push("the server exited during the run".to_owned());
    }
    let arrivals = context.receiver.lock();
    if arrivals.duplicates > 0 || arrivals.resolved_duplicates > 0 {
        failures.push(format!(
            "notifications arrived twice: {} firing, {} resolved",
            arrivals.duplicates, arrivals.resolved_duplicates
        ));
    }
    let json = json!({
        "bench": "delivery",
        "scenario": "waves",
        "waves_planned": params.waves,
        "alerts_per_wave": params.alerts,
        "batch": params.batch,
        "post_concurrency": params.concurrency,
        "sample_every_s": params.sample_every.as_secs_f64(),
        "settle_s": params.settle.as_secs_f64(),
        "waves": waves,
        "duplicates_firing": arrivals.duplicates,
        "duplicates_resolved": arrivals.resolved_duplicates,
        "multi_alert_deliveries": arrivals.multi,
        "foreign": arrivals.foreign,
        "invalid": arrivals.invalid,
        "server_gone": gone,
        "hwm_kib": read(pid, "VmHWM:"),
        "rss_samples": run.sampler.count(),
        "timeline_peak_kib_per_s": run.sampler.timeline(run.start),
        "timeline_notifications_per_s": per_second(&arrivals.requests, run.start),
        "run_s": round3(run.start.elapsed().as_secs_f64()),
        "failures": failures,
    });
    drop(arrivals);
    println!(
        "  run                   {} s; server VmHWM {}",
        json["run_s"],
        fmt_mib(json["hwm_kib"].as_u64())
    );
    for failure in &failures {
        println!("  FAILED                {failure}");
    }
    Ok(Outcome {
        json,
        ok: failures.is_empty(),
        failure: failures.join("; "),
    })
}

impl Run<'_> {
    /// One wave: firing, resolving, retention, settle. Returns its figures; adds what did not hold to `failures`.
    async fn wave(&self, wave: u64, failures: &mut Vec<String>) -> Value {
        let number = wave + 1;
        let seqs = wave * self.params.alerts..(wave + 1) * self.params.alerts;
        let begun = Instant::now();
        let rss_before = read(self.pid, "VmRSS:");
        println!(
            "wave {number}: alerts {}..{}; RSS before {}",
            seqs.start,
            seqs.end,
            fmt_mib(rss_before)
        );
        let mut json = json!({
            "wave": number,
            "first_seq": seqs.start,
            "alerts": self.params.alerts,
            "t_start_s": round3(begun.duration_since(self.start).as_secs_f64()),
            "rss_before_kib": rss_before,
        });
        for kind in [Kind::Firing, Kind::Resolved] {
            let phase = self.phase(kind, seqs.clone()).await;
            let missing = phase["missing"].as_u64().unwrap_or(0);
            if missing > 0 {
                failures.push(format!(
                    "wave {number}: {missing} of {} alerts without a {} notification",
                    self.params.alerts,
                    kind.notification()
                ));
            }
            json[kind.name()] = phase;
            if self.sampler.gone() {
                return json;
            }
        }
        let retention = self.retention().await;
        if retention["stopped"] != "empty" {
            failures.push(format!(
                "wave {number}: the store was not empty {} s after the resolved notifications ({}): {}",
                retention["s"], retention["stopped"], retention["store"]
            ));
        }
        json["retention"] = retention;
        if self.sampler.gone() {
            return json;
        }
        let settle_from = Instant::now();
        tokio::time::sleep(self.params.settle).await;
        let settled = Instant::now();
        let rss_after = read(self.pid, "VmRSS:");
        let (peak, _) = self.sampler.window(&(settle_from..settled));
        let hwm = read(self.pid, "VmHWM:");
        println!(
            "  settled               {} s: RSS {}, peak while settling {}; VmHWM {}",
            round3(self.params.settle.as_secs_f64()),
            fmt_mib(rss_after),
            fmt_mib(peak),
            fmt_mib(hwm)
        );
        json["settle"] = json!({
            "s": round3(settled.duration_since(settle_from).as_secs_f64()),
            "peak_rss_kib": peak,
        });
        json["rss_after_kib"] = json!(rss_after);
        json["hwm_kib"] = json!(hwm);
        let (peak, _) = self.sampler.window(&(begun..settled));
        json["peak_rss_kib"] = json!(peak);
        json["s"] = json!(round3(settled.duration_since(begun).as_secs_f64()));
        json
    }

    /// Posts the wave's alerts (firing or resolved) and waits for their notifications.
    async fn phase(&self, kind: Kind, seqs: Range<u64>) -> Value {
        let context = self.context;
        let from = Instant::now();
        let deadline = from + self.params.deadline;
        let counts = |arrivals: &crate::receiver::Arrivals| match kind {
            Kind::Firing => (arrivals.delivered, arrivals.duplicates),
            Kind::Resolved => (arrivals.resolved_distinct, arrivals.resolved_duplicates),
        };
        let (arrived_before, duplicates_before) = counts(&context.receiver.lock());
        let posted = post_range(
            context,
            seqs.clone(),
            kind.body(),
            self.params.batch,
            self.params.concurrency,
            deadline,
        )
        .await;
        let posted_at = Instant::now();
        let (posted, post_error) = match posted {
            Ok(posted) => (Some(posted), None),
            Err(error) => (None, Some(format!("{error:#}"))),
        };
        let accepted = posted.as_ref().map_or(0, |posted| posted.accepted);
        let mut progress = (arrived_before, posted_at);
        let stopped = loop {
            let (arrived, _) = counts(&context.receiver.lock());
            let now = Instant::now();
            if arrived.saturating_sub(arrived_before) >= accepted {
                break "all";
            }
            if self.sampler.gone() {
                break "server gone";
            }
            if arrived > progress.0 {
                progress = (arrived, now);
            }
            if now >= deadline {
                break "deadline";
            }
            if now.duration_since(progress.1) >= self.params.idle {
                break "idle";
            }
            tokio::time::sleep(POLL).await;
        };
        let ended = Instant::now();
        let (in_range, duplicates) = {
            let arrivals = context.receiver.lock();
            let (firing, resolved) = arrivals.arrived_in(seqs.clone());
            let in_range = match kind {
                Kind::Firing => firing,
                Kind::Resolved => resolved,
            };
            (
                in_range,
                counts(&arrivals).1.saturating_sub(duplicates_before),
            )
        };
        let alerts = seqs.end - seqs.start;
        let missing = alerts.saturating_sub(in_range);
        let (peak, rss_end) = self.sampler.window(&(from..ended));
        let store = self.stored().await;
        let problems = posted.as_ref().map(|posted| &posted.problems);
        println!(
            "  {:<21} {accepted} accepted in {:.1} s ({} retries, {} non-2xx, {} errors, {} batches refused); {} of \
             {alerts} notified in {:.1} s ({missing} missing, {duplicates} twice, stopped: {stopped}); RSS peak {}, at \
             the end {}",
            kind.name(),
            posted_at.duration_since(from).as_secs_f64(),
            posted.as_ref().map_or(0, |posted| posted.retries),
            problems.map_or(0, |problems| problems.non_2xx),
            problems.map_or(0, |problems| problems.errors),
            posted.as_ref().map_or(0, |posted| posted.rejected_batches),
            in_range,
            ended.duration_since(from).as_secs_f64(),
            fmt_mib(peak),
            fmt_mib(rss_end),
        );
        if let Some(first) = problems.and_then(|problems| problems.first.as_deref()) {
            println!("  {:<21} first problem: {first}", "");
        }
        if let Some(error) = &post_error {
            println!("  {:<21} posting failed: {error}", "");
        }
        json!({
            "accepted": accepted,
            "retries": posted.as_ref().map(|posted| posted.retries),
            "non_2xx": problems.map(|problems| problems.non_2xx),
            "errors": problems.map(|problems| problems.errors),
            "rejected_batches": posted.as_ref().map(|posted| posted.rejected_batches),
            "first_problem": problems.and_then(|problems| problems.first.clone()),
            "post_error": post_error,
            "post_s": round3(posted_at.duration_since(from).as_secs_f64()),
            "s": round3(ended.duration_since(from).as_secs_f64()),
            "notified": in_range,
            "missing": missing,
            "duplicates": duplicates,
            "stopped": stopped,
            "peak_rss_kib": peak,
            "rss_end_kib": rss_end,
            "store_at_end": store.map(|store| store.json()),
        })
    }

    /// Waits until the server's store is empty (at most `--retention-wait`).
    async fn retention(&self) -> Value {
        let from = Instant::now();
        let deadline = from + self.params.retention_wait;
        let mut reads = 0u64;
        let mut last = None;
        let stopped = loop {
            if self.sampler.gone() {
                break "server gone";
            }
            let stored = self.stored().await;
            reads += 1;
            if stored.is_some() {
                last = stored;
            }
            if stored.is_some_and(|stored| stored.is_empty()) {
                break "empty";
            }
            let now = Instant::now();
            if now >= deadline {
                break "deadline";
            }
            tokio::time::sleep(self.params.metrics_every.min(deadline - now)).await;
        };
        let ended = Instant::now();
        let (peak, rss_end) = self.sampler.window(&(from..ended));
        println!(
            "  retention             store {} after {:.1} s ({reads} reads of /metrics); RSS peak {}, at the end {}",
            if stopped == "empty" { "empty" } else { stopped },
            ended.duration_since(from).as_secs_f64(),
            fmt_mib(peak),
            fmt_mib(rss_end),
        );
        json!({
            "stopped": stopped,
            "s": round3(ended.duration_since(from).as_secs_f64()),
            "metrics_reads": reads,
            "store": last.map(|stored| stored.json()),
            "peak_rss_kib": peak,
            "rss_end_kib": rss_end,
        })
    }

    async fn stored(&self) -> Option<Stored> {
        let text = self.context.probe.metrics(&self.context.client).await?;
        Stored::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_store_gauges() {
        let text = "# HELP herald_alerts Stored alerts by state.\n# TYPE herald_alerts gauge\n\
                    herald_alerts{state=\"firing\"} 3\nherald_alerts{state=\"resolved\"} 0\n\
                    herald_deliveries{state=\"pending\"} 1\nherald_deliveries{state=\"in_flight\"} 0\n\
                    herald_deliveries{state=\"delivered\"} 4\nherald_deliveries{state=\"dead\"} 0\n\
                    herald_aggregation_groups 2\n";
        let stored = Stored::parse(text).unwrap();
        assert_eq!(
            stored,
            Stored {
                firing: 3.0,
                resolved: 0.0,
                deliveries: 5.0,
                groups: 2.0
            }
        );
        assert!(!stored.is_empty());
        let empty = text
            .replace("} 3\n", "} 0\n")
            .replace("} 1\n", "} 0\n")
            .replace("} 4\n", "} 0\n")
            .replace("groups 2", "groups 0");
        assert!(Stored::parse(&empty).unwrap().is_empty());
        assert_eq!(Stored::parse("herald_aggregation_groups 0\n"), None);
    }

    #[test]
    fn samples_this_process_by_window_and_second() {
        let sampler = Sampler::start(std::process::id(), Duration::from_millis(5)).unwrap();
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(60));
        let (peak, last) = sampler.window(&(start..Instant::now()));
        assert!(peak.is_some_and(|peak| peak > 0));
        assert!(last.is_some_and(|last| last <= peak.unwrap_or(0)));
        assert!(sampler.timeline(start).first().is_some_and(|rss| *rss > 0));
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(sampler.window(&(later..later)), (None, None));
        assert!(!sampler.gone());
    }
}
