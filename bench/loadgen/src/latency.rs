//! Open-loop latency: single-alert posts sent on a fixed timetable (`rate` per second), each in its own task so a
//! slow answer never delays the next send. Latency is measured from the *scheduled* send time, so time the server
//! makes new requests wait (or the generator falls behind) is counted instead of hidden (no coordinated omission).
//!
//! The timetable is kept by a pacing thread that sleeps with the OS timer (far finer than the async runtime's
//! millisecond wheel, without spinning) and hands each due request to the runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};

use crate::alerts::Population;
use crate::client::{Client, Outcome};
use crate::report::{ResultLine, per_sec};
use crate::stats::{Recorder, micros, ms, new_histogram};

/// Delay before the first scheduled send, so the timetable does not start in the past.
const START_DELAY: Duration = Duration::from_millis(20);

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
    outcome: Outcome,
}

/// What the pacing thread saw.
struct Pacing {
    /// Measured sends that were skipped because `max_in_flight` requests were outstanding.
    skipped: u64,
    /// How late the pacing thread sent measured requests compared with the timetable.
    lag: Histogram<u64>,
    /// Actual time of the last send.
    last_send: Option<Instant>,
}

pub(crate) async fn run(client: Client, population: Population, params: Params) -> Result<()> {
    ensure!(
        params.rate.is_finite() && params.rate > 0.0,
        "--rate must be a positive number"
    );
    ensure!(
        params.duration > Duration::ZERO,
        "--duration must be positive"
    );
    ensure!(params.max_in_flight > 0, "--max-in-flight must be positive");
    let timetable = Timetable {
        start: Instant::now() + START_DELAY,
        rate: params.rate,
        warmup_sends: (params.rate * params.warmup.as_secs_f64()).round() as u64,
        measured_sends: (params.rate * params.duration.as_secs_f64()).round() as u64,
    };
    ensure!(
        timetable.measured_sends > 0,
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

    let (samples_tx, samples_rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(samples_rx, timetable));
    let sender = Sender {
        handle: Handle::current(),
        client,
        population,
        in_flight: Arc::new(Semaphore::new(params.max_in_flight)),
        samples: samples_tx,
        rng: fastrand::Rng::with_seed(params.seed),
    };
    let pacing = tokio::task::spawn_blocking(move || pace(timetable, sender))
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

/// The fixed timetable: send `i` is due at `start + i / rate`; the first `warmup_sends` are not measured.
#[derive(Clone, Copy)]
struct Timetable {
    start: Instant,
    rate: f64,
    warmup_sends: u64,
    measured_sends: u64,
}

impl Timetable {
    fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }

    fn is_measured(&self, index: u64) -> bool {
        index >= self.warmup_sends
    }
}

/// What a send needs: the runtime to spawn on, the client, the alerts, the in-flight limit and where results go.
struct Sender {
    handle: Handle,
    client: Client,
    population: Population,
    in_flight: Arc<Semaphore>,
    samples: mpsc::UnboundedSender<Sample>,
    rng: fastrand::Rng,
}

/// Runs on a blocking thread: sends each request of the timetable when it is due, in its own task, skipping a send
/// when the in-flight limit is reached. Bounded by the timetable's length.
fn pace(timetable: Timetable, mut sender: Sender) -> Result<Pacing> {
    let mut pacing = Pacing {
        skipped: 0,
        lag: new_histogram()?,
        last_send: None,
    };
    for index in 0..timetable.warmup_sends + timetable.measured_sends {
        let scheduled = timetable.due(index);
        let now = Instant::now();
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        let measured = timetable.is_measured(index);
        let Ok(permit) = Arc::clone(&sender.in_flight).try_acquire_owned() else {
            pacing.skipped += u64::from(measured);
            continue;
        };
        let body = sender
            .population
            .batch(sender.rng.u64(0..sender.population.distinct()), 1)?;
        let (client, samples) = (sender.client.clone(), sender.samples.clone());
        let sent = Instant::now();
        sender.handle.spawn(async move {
            let outcome = client.post_alerts(body).await;
            let done = Instant::now();
            drop(permit);
            // The collector outlives every sender; a closed channel only means the run is being torn down.
            let _ = samples.send(Sample {
                index,
                scheduled,
                sent,
                done,
                outcome,
            });
        });
        if measured {
            pacing
                .lag
                .saturating_record(micros(sent.saturating_duration_since(scheduled)));
            pacing.last_send = Some(sent);
        }
    }
    Ok(pacing)
}

/// Prints the human-readable lines and the `RESULT` line.
fn report(
    params: &Params,
    timetable: &Timetable,
    pacing: &Pacing,
    from_schedule: &Recorder,
    from_send: &Recorder,
) {
    let sent = timetable.measured_sends - pacing.skipped;
    // Sends happened from the first measured due time to the last actual send, plus one interval.
    let send_secs = pacing.last_send.map_or(0.0, |last| {
        (last - timetable.due(timetable.warmup_sends)).as_secs_f64() + 1.0 / timetable.rate
    });
    let secs = params.duration.as_secs_f64();
    let lag_max = Duration::from_micros(pacing.lag.max());
    let q = |p| ms(from_schedule.quantile(p));

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
        ms(from_schedule.max())
    );
    println!(
        "  service time ms       p50 {}  p99 {}  (from actual send)",
        ms(from_send.quantile(0.5)),
        ms(from_send.quantile(0.99))
    );
    println!(
        "  send lag ms           p99 {}  max {}",
        ms(Some(Duration::from_micros(
            pacing.lag.value_at_quantile(0.99)
        ))),
        ms(Some(lag_max))
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
        .field("max_ms", ms(from_schedule.max()))
        .field("service_p50_ms", ms(from_send.quantile(0.5)))
        .field("service_p99_ms", ms(from_send.quantile(0.99)))
        .field("send_lag_max_ms", ms(Some(lag_max)));
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
        from_schedule.record(&sample.outcome, sample.done - sample.scheduled, 1);
        from_send.record(&sample.outcome, sample.done - sample.sent, 1);
    }
    Ok((from_schedule, from_send))
}
