//! End-to-end latency at a fixed rate: single-alert posts on an open-loop timetable (`rate` per second) kept by the
//! shared pacer (`herald_bench_common::pacing`), each in its own task so a slow answer never delays the next send.
//! Alert `i` is due at `start + i / rate`; its latency is its first arrival at the receiver minus that scheduled
//! time, so time the server makes alerts wait, at ingest or on the way out, is counted rather than hidden (no
//! coordinated omission). Alerts that do not arrive within `settle` after the last scheduled send are counted as
//! missing.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use herald_bench_common::client::{Answer, Client, Failure, accepted};
use herald_bench_common::latency::Latency;
use herald_bench_common::pacing::{Pacer, Pacing, Timetable, check_open_loop};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::alerts::AlertFactory;
use crate::probe::{between, round3};
use crate::stats::{Problems, line, summary};
use crate::{Context, Outcome};

/// How often the waiting loop looks at the receiver's count.
const POLL: Duration = Duration::from_millis(10);

/// The scenario's command-line options.
#[derive(clap::Args)]
pub(crate) struct Params {
    /// Alerts (requests) per second.
    #[arg(long, default_value_t = 500.0)]
    pub(crate) rate: f64,
    /// Measured time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub(crate) duration: Duration,
    /// Unmeasured time before it (its alerts are delivered too, but not counted).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub(crate) warmup: Duration,
    /// How long after the last scheduled send alerts may still arrive; later ones count as missing.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub(crate) settle: Duration,
    /// Outstanding requests at most; a send due beyond that is skipped and counted.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_in_flight: usize,
}

/// One answered (or failed) post.
struct Ack {
    index: u64,
    done: Instant,
    answer: Answer,
}

/// What a send needs.
struct Sender {
    handle: Handle,
    client: Client,
    alerts: AlertFactory,
    acks: mpsc::UnboundedSender<Ack>,
}

pub(crate) async fn run(context: &Context, params: Params) -> Result<Outcome> {
    check_open_loop(params.rate, params.duration, params.max_in_flight)?;
    let timetable = Timetable::new(params.rate, params.duration, params.warmup);
    ensure!(
        timetable.measured > 0,
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
    let pacer = Pacer::new(timetable, params.max_in_flight)?;
    let timetable = pacer.timetable();
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<Ack>();
    let total = timetable.total();
    let collector = tokio::spawn(async move {
        let mut answers: Vec<Option<(Instant, bool)>> = vec![None; total as usize];
        let mut problems = Problems::default();
        while let Some(ack) = acks_rx.recv().await {
            if timetable.is_measured(ack.index) {
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
        acks: acks_tx,
    };
    let pacing = tokio::task::spawn_blocking(move || pace(pacer, sender))
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
        line(&end_to_end)
    );
    println!("  post answered ms      {}", line(&ingest));
    println!("  answer to delivery ms {}", line(&after_ack));
    println!(
        "  server CPU            {} cores busy; bench CPU {}; others {}; server {}",
        probe["server"]["cores"],
        probe["bench"]["cores"],
        probe["others"]["cores"],
        context.memory.line()
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
        "end_to_end": summary(&end_to_end),
        "post_answered": summary(&ingest),
        "answer_to_delivery": summary(&after_ack),
        "delivered_before_answer": before_ack,
        "probe": probe,
        "memory": context.memory.json(),
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
fn pace(mut pacer: Pacer, sender: Sender) -> Pacing {
    while let Some(slot) = pacer.next_due() {
        pacer.send(&slot);
        let client = sender.client.clone();
        let alerts = sender.alerts.clone();
        let acks = sender.acks.clone();
        sender.handle.spawn(async move {
            let index = slot.index;
            let answer = match alerts.batch(index, 1) {
                Ok(body) => client.post_alerts(body).await,
                Err(error) => Err(Failure {
                    kind: "body",
                    detail: format!("{error:#}"),
                }),
            };
            let done = Instant::now();
            drop(slot);
            let _ = acks.send(Ack {
                index,
                done,
                answer,
            });
        });
    }
    pacer.finish()
}
