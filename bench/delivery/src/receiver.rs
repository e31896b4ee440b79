//! The webhook receiver herald delivers to: `POST /hook` takes Alertmanager's webhook payload (version 4), notes
//! when each of this run's alerts (by its `seq` label) first arrived firing and first arrived resolved, and answers
//! `200 ok` at once. Arrival times come from the same monotonic clock the generator schedules sends on. Memory is
//! bounded: one slot per `seq` up to the highest seen, and `seq` at most [`MAX_SEQ`].

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long stopping waits for open connections before it closes them.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Highest `seq` tracked; alerts numbered above it are counted as foreign (keeps memory bounded).
pub(crate) const MAX_SEQ: u64 = 10_000_000;

/// What arrived so far.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    /// `bench_run` label of the alerts that count.
    run: String,
    /// First arrival of each `seq` as firing.
    first: Vec<Option<Instant>>,
    /// First arrival of each `seq` as resolved.
    first_resolved: Vec<Option<Instant>>,
    /// Distinct alerts of this run that arrived.
    pub(crate) delivered: u64,
    /// When each webhook request carrying alerts of this run arrived.
    pub(crate) requests: Vec<Instant>,
    /// Alerts of this run that arrived again (herald delivers at least once).
    pub(crate) duplicates: u64,
    /// Alerts of this run that arrived as resolved (every arrival).
    pub(crate) resolved: u64,
    /// Distinct alerts of this run that arrived as resolved.
    pub(crate) resolved_distinct: u64,
    /// Resolved arrivals of an alert after its first.
    pub(crate) resolved_duplicates: u64,
    /// Requests with more than one alert (none expected with `group_by: ['...']`).
    pub(crate) multi: u64,
    /// Alerts that are not this run's (no `seq`, another `bench_run`, or out of range).
    pub(crate) foreign: u64,
    /// Bodies that are not a webhook payload.
    pub(crate) invalid: u64,
}

impl Arrivals {
    /// First arrival of alert `seq`, if it arrived.
    pub(crate) fn arrival(&self, seq: u64) -> Option<Instant> {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.first.get(i).copied().flatten())
    }

    /// First arrival of alert `seq` as resolved, if it arrived so.
    pub(crate) fn resolved_arrival(&self, seq: u64) -> Option<Instant> {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.first_resolved.get(i).copied().flatten())
    }

    /// Of the alerts numbered `seqs`, how many arrived firing and how many arrived resolved (each counted once).
    pub(crate) fn arrived_in(&self, seqs: Range<u64>) -> (u64, u64) {
        let count = |slots: &[Option<Instant>]| {
            let start = usize::try_from(seqs.start).unwrap_or(usize::MAX);
            let end = usize::try_from(seqs.end).unwrap_or(usize::MAX);
            slots
                .get(start.min(slots.len())..end.min(slots.len()))
                .map_or(0, |range| {
                    range.iter().filter(|slot| slot.is_some()).count()
                }) as u64
        };
        (count(&self.first), count(&self.first_resolved))
    }

    fn record(&mut self, at: Instant, payload: &Payload) {
        if payload.alerts.len() > 1 {
            self.multi += 1;
        }
        let mut ours = false;
        for alert in &payload.alerts {
            let seq = match (&alert.labels.bench_run, &alert.labels.seq) {
                (Some(run), Some(seq)) if *run == self.run => seq.parse::<u64>().ok(),
                _ => None,
            };
            let Some(seq) = seq.filter(|seq| *seq <= MAX_SEQ) else {
                self.foreign += 1;
                continue;
            };
            let Ok(index) = usize::try_from(seq) else {
                self.foreign += 1;
                continue;
            };
            ours = true;
            let resolved = alert.status == "resolved";
            let slots = if resolved {
                self.resolved += 1;
                &mut self.first_resolved
            } else {
                &mut self.first
            };
            if index >= slots.len() {
                slots.resize(index + 1, None);
            }
            let first = match &mut slots[index] {
                Some(_) => false,
                slot @ None => {
                    *slot = Some(at);
                    true
                }
            };
            match (resolved, first) {
                (false, true) => self.delivered += 1,
                (false, false) => self.duplicates += 1,
                (true, true) => self.resolved_distinct += 1,
                (true, false) => self.resolved_duplicates += 1,
            }
        }
        if ours {
            self.requests.push(at);
        }
    }
}

#[derive(Deserialize)]
struct Payload {
    alerts: Vec<PayloadAlert>,
}

#[derive(Deserialize)]
struct PayloadAlert {
    status: String,
    labels: SeqLabels,
}

#[derive(Deserialize)]
struct SeqLabels {
    seq: Option<String>,
    bench_run: Option<String>,
}

type Shared = Arc<Mutex<Arrivals>>;

/// The running receiver.
pub(crate) struct Receiver {
    address: SocketAddr,
    arrivals: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds `listen` and serves until `stop`.
    pub(crate) async fn start(listen: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener
            .local_addr()
            .context("cannot read the receiver's address")?;
        let arrivals: Shared = Arc::default();
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&arrivals));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                eprintln!("receiver stopped: {error}");
            }
        });
        Ok(Self {
            address,
            arrivals,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Counts only alerts whose `bench_run` label is `run`.
    pub(crate) fn expect_run(&self, run: &str) {
        run.clone_into(&mut self.lock().run);
    }

    /// The arrivals so far (hold the guard briefly: the receiver waits on it).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Arrivals> {
        lock(&self.arrivals)
    }

    /// Stops serving: graceful for a second (herald keeps idle connections open), then aborted.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lock(arrivals: &Shared) -> MutexGuard<'_, Arrivals> {
    arrivals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn hook(State(arrivals): State<Shared>, body: Bytes) -> &'static str {
    let at = Instant::now();
    match serde_json::from_slice::<Payload>(&body) {
        Ok(payload) => lock(&arrivals).record(at, &payload),
        Err(_) => lock(&arrivals).invalid += 1,
    }
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(run: &str, seqs: &[u64], status: &str) -> Payload {
        let alerts: Vec<serde_json::Value> = seqs
            .iter()
            .map(|seq| serde_json::json!({"status": status, "labels": {"seq": seq.to_string(), "bench_run": run, "alertname": "X"}}))
            .collect();
        serde_json::from_value(
            serde_json::json!({"version": "4", "status": status, "alerts": alerts}),
        )
        .unwrap()
    }

    #[test]
    fn counts_first_arrivals_of_this_run_only() {
        let mut arrivals = Arrivals {
            run: "r1".into(),
            ..Arrivals::default()
        };
        let t0 = Instant::now();
        arrivals.record(t0, &payload("r1", &[3], "firing"));
        arrivals.record(Instant::now(), &payload("r1", &[3, 4], "firing"));
        arrivals.record(Instant::now(), &payload("r0", &[5], "firing"));
        let t1 = Instant::now();
        arrivals.record(t1, &payload("r1", &[6], "resolved"));
        arrivals.record(Instant::now(), &payload("r1", &[6, 3], "resolved"));
        arrivals.record(Instant::now(), &payload("r1", &[MAX_SEQ + 1], "resolved"));
        assert_eq!(arrivals.delivered, 2);
        assert_eq!(arrivals.duplicates, 1);
        assert_eq!(arrivals.multi, 2);
        assert_eq!(arrivals.foreign, 2);
        assert_eq!(arrivals.resolved, 3);
        assert_eq!(arrivals.resolved_distinct, 2);
        assert_eq!(arrivals.resolved_duplicates, 1);
        assert_eq!(arrivals.requests.len(), 4);
        assert_eq!(arrivals.arrival(3), Some(t0));
        assert_eq!(arrivals.arrival(5), None);
        assert_eq!(
            arrivals.arrival(6),
            None,
            "a resolved arrival is not a firing one"
        );
        assert_eq!(arrivals.resolved_arrival(6), Some(t1));
        assert!(arrivals.resolved_arrival(3).is_some());
        assert_eq!(arrivals.resolved_arrival(4), None);
        assert_eq!(arrivals.arrived_in(0..7), (2, 2));
        assert_eq!(arrivals.arrived_in(4..5), (1, 0));
        assert_eq!(arrivals.arrived_in(6..MAX_SEQ * 2), (0, 1));
    }
}
