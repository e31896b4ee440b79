//! Open-loop latency: single-alert posts sent on a fixed timetable (`rate` per second) kept by the shared pacer
//! (`herald_bench_common::pacing`), each in its own task so a slow answer never delays the next send. Latency is
//! measured from the *scheduled* send time, so time the server makes new requests wait (or the generator falls
//! behind) is counted instead of hidden (no coordinated omission).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use herald_bench_common::client::{Answer, Client};
use herald_bench_common::latency::fmt_ms;
use herald_bench_common::pacing::{Pacer, Pacing, Timetable, check_open_loop};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::alerts::Population;
use crate::report::{ResultLine, per_sec};
use crate::stats::Recorder;

pub(crate) struct Params {
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) seed: u64,
}

/// One answered (or failed) request.
struct Sample {
    /// Position in the timetable.
    index: u64,
    scheduled: Instant,
    sent: Instant,
    done: Instant,
    answer: Answer,
}

pub(crate) async fn run(client: Client, population: Population, params: Params) -> Result<()> {
    check_open_loop(params.rate, params.duration, params.max_in_flight)?;
    let timetable = Timetable::new(params.rate, params.duration, params.warmup);
    ensure!(
        timetable.measured > 0,
        "--rate x --duration must be at least one request"
    );
    println!(
        "latency: {} single-alert requests/s from {} distinct, {} measured after {} warm-up, at most {} in flight",
        params.rate,
        population.distinct(),
        humantime::format_duration(params.duration),
        humantime::format_duration(params.warmup),
        params.max_in_flight,
    );

    let pacer = Pacer::new(timetable, params.max_in_flight)?;
    let timetable = pacer.timetable();
    let (samples_tx, samples_rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(samples_rx, timetable));
    let sender = Sender {
        handle: Handle::current(),
        client,
        population,
        samples: samples_tx,
        rng: fastrand::Rng::with_seed(params.seed),
    };
    let pacing = tokio::task::spawn_blocking(move || pace(pacer, sender))
        .await
        .context("pacing thread failed")??;
    let (mut from_schedule, from_send) = collector.await.context("collector task failed")??;
    for _ in 0..pacing.skipped {
        from_schedule.record_skipped();
    }
    report(&params, &timetable, &pacing, &from_schedule, &from_send);
    ensure!(
        from_schedule.ok > 0,
        "no request was accepted in the measured window"
    );
    Ok(())
}

/// What a send needs: the runtime to spawn on, the client, the alerts and where results go.
struct Sender {
    handle: Handle,
    client: Client,
    population: Population,
    samples: mpsc::UnboundedSender<Sample>,
    rng: fastrand::Rng,
}

/// Runs on a blocking thread: sends each request of the timetable when it is due, in its own task, unless the
/// in-flight limit is reached. Bounded by the timetable's length.
fn pace(mut pacer: Pacer, mut sender: Sender) -> Result<Pacing> {
    while let Some(slot) = pacer.next_due() {
        let body = sender
            .population
            .batch(sender.rng.u64(0..sender.population.distinct()), 1)?;
        let (client, samples) = (sender.client.clone(), sender.samples.clone());
        let sent = pacer.send(&slot);
        sender.handle.spawn(async move {
            let answer = client.post_alerts(body).await;
            let done = Instant::now();
            let (index, scheduled) = (slot.index, slot.due);
            drop(slot);
            // The collector outlives every sender; a closed channel only means the run is being torn down.
            let _ = samples.send(Sample {
                index,
                scheduled,
                sent,
                done,
                answer,
            });
        });
    }
    Ok(pacer.finish())
}

/// Prints the human-readable lines and the `RESULT` line.
fn report(
    params: &Params,
    timetable: &Timetable,
    pacing: &Pacing,
    from_schedule: &Recorder,
    from_send: &Recorder,
) {
    let sent = timetable.measured - pacing.skipped;
    // Measured sends happened from the first measured due time to the last actual send (the last send of all when
    // any measured one went out), plus one interval.
    let last_send = pacing.last_send.filter(|_| sent > 0);
    let send_secs = last_send.map_or(0.0, |last| {
        (last - timetable.due(timetable.warmup)).as_secs_f64() + 1.0 / timetable.rate
    });
    let secs = params.duration.as_secs_f64();
    let lag_max = fmt_ms(Some(pacing.lag.max_ms().unwrap_or(0.0)));
    let q = |p| from_schedule.quantile(p);

    println!(
        "  achieved send rate    {}/s ({sent} sent, {} skipped)",
        per_sec(sent, send_secs),
        pacing.skipped
    );
    println!(
        "  answered 2xx rate     {}/s",
        per_sec(from_schedule.ok, secs)
    );
    println!(
        "  requests              {} ok, {} non-2xx, {} errors",
        from_schedule.ok,
        from_schedule.non_2xx(),
        from_schedule.failed()
    );
    println!(
        "  latency ms            p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (from scheduled send)",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        from_schedule.max()
    );
    println!(
        "  service time ms       p50 {}  p99 {}  (from actual send)",
        from_send.quantile(0.5),
        from_send.quantile(0.99)
    );
    println!(
        "  send lag ms           p99 {}  max {lag_max}",
        fmt_ms(Some(pacing.lag.quantile_ms(0.99).unwrap_or(0.0))),
    );
    print!("{}", from_schedule.problems());
    let line = ResultLine::new("latency")
        .field("rate", params.rate)
        .field("duration_s", format!("{secs:.3}"))
        .field("achieved_rate", per_sec(sent, send_secs))
        .field("ok", from_schedule.ok)
        .field("non_2xx", from_schedule.non_2xx())
        .field("errors", from_schedule.failed())
        .field("p50_ms", q(0.5))
        .field("p90_ms", q(0.9))
        .field("p99_ms", q(0.99))
        .field("p999_ms", q(0.999))
        .field("max_ms", from_schedule.max())
        .field("service_p50_ms", from_send.quantile(0.5))
        .field("service_p99_ms", from_send.quantile(0.99))
        .field("send_lag_max_ms", lag_max);
    println!("{line}");
}

/// Receives samples until every request has finished; returns latency from the scheduled time and from the actual
/// send, for measured requests only.
async fn collect(
    mut samples: mpsc::UnboundedReceiver<Sample>,
    timetable: Timetable,
) -> Result<(Recorder, Recorder)> {
    let mut from_schedule = Recorder::new()?;
    let mut from_send = Recorder::new()?;
    while let Some(sample) = samples.recv().await {
        if !timetable.is_measured(sample.index) {
            continue;
        }
        from_schedule.record(&sample.answer, sample.done - sample.scheduled, 1);
        from_send.record(&sample.answer, sample.done - sample.sent, 1);
    }
    Ok((from_schedule, from_send))
}
