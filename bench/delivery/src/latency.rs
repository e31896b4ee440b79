//! End-to-end latency at a fixed rate: single-alert posts on an open-loop timetable (`rate` per second), each in its
//! own task so a slow answer never delays the next send. Alert `i` is due at `start + i / rate`; its latency is its
//! first arrival at the receiver minus that scheduled time, so time herald makes alerts wait, at ingest or on the
//! way out, is counted rather than hidden (no coordinated omission). Alerts that do not arrive within `settle`
//! after the last scheduled send are counted as missing.
//!
//! The timetable is kept by a pacing thread that sleeps with the OS timer (finer than the runtime's millisecond
//! timer wheel, without spinning) and hands each due post to the runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use hyper::Uri;
use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};

use crate::alerts::AlertFactory;
use crate::client::{Answer, Client, Problems, accepted};
use crate::probe::{between, round3};
use crate::stats::Latency;
use crate::target::Target;
use crate::{Context, Outcome};

/// Delay before the first scheduled send, so the timetable does not start in the past.
const START_DELAY: Duration = Duration::from_millis(20);

/// How often the waiting loop looks at the receiver's count.
const POLL: Duration = Duration::from_millis(10);

pub(crate) struct Params {
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) settle: Duration,
    pub(crate) max_in_flight: usize,
}

/// Send `i` is due at `start + i / rate`; the first `warmup` sends are not measured.
#[derive(Clone, Copy)]
struct Timetable {
    start: Instant,
    rate: f64,
    warmup: u64,
    total: u64,
}

impl Timetable {
    fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }
}

/// One answered (or failed) post.
struct Ack {
    index: u64,
    done: Instant,
    answer: Answer,
}

/// What the pacing thread saw.
struct Pacing {
    /// Measured sends skipped because `max_in_flight` posts were outstanding.
    skipped: u64,
    /// Sends made.
    sent: u64,
    /// Latest a send went out compared with its due time.
    lag_max: Duration,
    last_send: Option<Instant>,
}

/// What a send needs.
struct Sender {
    handle: Handle,
    client: Client,
    alerts: AlertFactory,
    uri: Uri,
    in_flight: Arc<Semaphore>,
    acks: mpsc::UnboundedSender<Ack>,
}

pub(crate) async fn run(context: &Context, target: &Target, params: Params) -> Result<Outcome> {
    ensure!(
        params.rate.is_finite() && params.rate > 0.0,
        "--rate must be a positive number"
    );
    ensure!(
        params.duration > Duration::ZERO,
        "--duration must be positive"
    );
    ensure!(params.max_in_flight > 0, "--max-in-flight must be positive");
    let warmup = (params.rate * params.warmup.as_secs_f64()).round() as u64;
    let measured = (params.rate * params.duration.as_secs_f64()).round() as u64;
    ensure!(
        measured > 0,
        "--rate x --duration must be at least one alert"
    );
    context.receiver.expect_run(context.alerts.run_id());
    println!(
        "latency: {} single-alert posts/s, {} measured after {} warm-up; each alert its own group; \
         alerts may arrive until {} after the last send",
        params.rate,
        humantime::format_duration(params.duration),
        humantime::format_duration(params.warmup),
        humantime::format_duration(params.settle),
    );

    let before = context.probe.sample(&context.client).await;
    let timetable = Timetable {
        start: Instant::now() + START_DELAY,
        rate: params.rate,
        warmup,
        total: warmup + measured,
    };
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<Ack>();
    let total = timetable.total;
    let collector = tokio::spawn(async move {
        let mut answers: Vec<Option<(Instant, bool)>> = vec![None; total as usize];
        let mut problems = Problems::default();
        while let Some(ack) = acks_rx.recv().await {
            if ack.index >= timetable.warmup {
                problems.record(&ack.answer);
            }
            if let Some(slot) = answers.get_mut(ack.index as usize) {
                *slot = Some((ack.done, accepted(&ack.answer)));
            }
        }
        (answers, problems)
    });
    let sender = Sender {
        handle: Handle::current(),
        client: context.client.clone(),
        alerts: context.alerts.clone(),
        uri: target.alerts.clone(),
        in_flight: Arc::new(Semaphore::new(params.max_in_flight)),
        acks: acks_tx,
    };
    let pacing = tokio::task::spawn_blocking(move || pace(timetable, sender))
        .await
        .context("pacing thread failed")?;
    let (answers, problems) = collector.await.context("collector task failed")?;

    let expected = answers
        .iter()
        .filter(|answer| matches!(answer, Some((_, true))))
        .count() as u64;
    let deadline = timetable.due(total.saturating_sub(1)) + params.settle;
    let stopped = loop {
        if context.receiver.lock().delivered >= expected {
            break "all";
        }
        if Instant::now() >= deadline {
            break "settle";
        }
        tokio::time::sleep(POLL).await;
    };
    let after = context.probe.sample(&context.client).await;
    let probe = between(&before, &after);

    let arrivals = context.receiver.lock();
    let mut end_to_end = Latency::new()?;
    let mut ingest = Latency::new()?;
    let mut after_ack = Latency::new()?;
    let (mut accepted_measured, mut missing, mut before_ack) = (0u64, 0u64, 0u64);
    for index in timetable.warmup..total {
        let Some(Some((done, true))) = answers.get(index as usize).copied() else {
            continue;
        };
        accepted_measured += 1;
        let due = timetable.due(index);
        ingest.record(done.saturating_duration_since(due));
        match arrivals.arrival(index) {
            Some(arrived) => {
                end_to_end.record(arrived.saturating_duration_since(due));
                after_ack.record(arrived.saturating_duration_since(done));
                if arrived < done {
                    before_ack += 1;
                }
            }
            None => missing += 1,
        }
    }
    let send_secs = pacing
        .last_send
        .map_or(0.0, |last| (last - timetable.start).as_secs_f64());
    let achieved = if send_secs > 0.0 {
        pacing.sent.saturating_sub(1) as f64 / send_secs
    } else {
        f64::NAN
    };

    println!(
        "  sent                  {} posts at {achieved:.1}/s; {} measured accepted, {} non-2xx, {} errors, {} skipped",
        pacing.sent, accepted_measured, problems.non_2xx, problems.errors, pacing.skipped
    );
    if let Some(first) = &problems.first {
        println!("  first problem         {first}");
    }
    println!(
        "  delivered             {} measured alerts; {missing} missing after {} (stopped: {stopped}); {} duplicates, {} multi-alert",
        end_to_end.count(),
        humantime::format_duration(params.settle),
        arrivals.duplicates,
        arrivals.multi
    );
    println!(
        "  ingest to delivery ms {}  (from scheduled send)",
        end_to_end.line()
    );
    println!("  post answered ms      {}", ingest.line());
    println!("  answer to delivery ms {}", after_ack.line());
    println!(
        "  herald CPU            {} cores busy; bench CPU {}",
        probe["herald"]["cores"], probe["bench"]["cores"]
    );

    let json = json!({
        "bench": "delivery",
        "scenario": "latency",
        "rate": params.rate,
        "duration_s": params.duration.as_secs_f64(),
        "warmup_s": params.warmup.as_secs_f64(),
        "settle_s": params.settle.as_secs_f64(),
        "sent": pacing.sent,
        "achieved_rate": if achieved.is_finite() { json!(round3(achieved)) } else { json!(null) },
        "send_lag_max_ms": round3(pacing.lag_max.as_secs_f64() * 1000.0),
        "accepted": accepted_measured,
        "non_2xx": problems.non_2xx,
        "errors": problems.errors,
        "skipped": pacing.skipped,
        "delivered": end_to_end.count(),
        "missing": missing,
        "duplicates": arrivals.duplicates,
        "multi_alert_deliveries": arrivals.multi,
        "resolved": arrivals.resolved,
        "foreign": arrivals.foreign,
        "invalid": arrivals.invalid,
        "stopped": stopped,
        "end_to_end": end_to_end.summary(),
        "post_answered": ingest.summary(),
        "answer_to_delivery": after_ack.summary(),
        "delivered_before_answer": before_ack,
        "probe": probe,
    });
    let ok = end_to_end.count() > 0;
    Ok(Outcome {
        json,
        ok,
        failure: format!(
            "no measured alert was delivered ({accepted_measured} accepted; first problem: {})",
            problems.first.as_deref().unwrap_or("none")
        ),
    })
}

/// Keeps the timetable: sleeps until each send is due and starts it, unless `max_in_flight` are outstanding.
fn pace(timetable: Timetable, sender: Sender) -> Pacing {
    let mut pacing = Pacing {
        skipped: 0,
        sent: 0,
        lag_max: Duration::ZERO,
        last_send: None,
    };
    for index in 0..timetable.total {
        let due = timetable.due(index);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let Ok(permit) = Arc::clone(&sender.in_flight).try_acquire_owned() else {
            if index >= timetable.warmup {
                pacing.skipped += 1;
            }
            continue;
        };
        let sent = Instant::now();
        pacing.sent += 1;
        pacing.last_send = Some(sent);
        pacing.lag_max = pacing.lag_max.max(sent.saturating_duration_since(due));
        let client = sender.client.clone();
        let alerts = sender.alerts.clone();
        let uri = sender.uri.clone();
        let acks = sender.acks.clone();
        sender.handle.spawn(async move {
            let answer = match alerts.batch(index, 1) {
                Ok(body) => client.post_json(&uri, body).await,
                Err(error) => Err(format!("body: {error:#}")),
            };
            let done = Instant::now();
            drop(permit);
            let _ = acks.send(Ack {
                index,
                done,
                answer,
            });
        });
    }
    pacing
}
