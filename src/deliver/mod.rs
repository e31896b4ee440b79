//! The delivery engine: takes queued deliveries from the outbox, sends each through its integration when it is due
//! and its destination's rate limit allows, keeps every group and integration in order, bounds sends in flight per
//! receiver, and settles each attempt in the store. Its memory is a cache of the store, rebuilt at start.

mod attempt;
mod limiter;
pub mod policy;
mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::attempt::{Completion, Done, Job};
use self::limiter::Destinations;
use self::queue::Queue;
use crate::clock::Clock;
use crate::config::DeliverySettings;
use crate::reload::Applied;
use crate::sinks::integrations::Integrations;
use crate::store::Store;
use crate::store::delivery::{AttemptInput, DeliveryRecord, Settle};

/// How long past its timeout an in-flight delivery stays leased: a later start takes it back after that.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long the engine waits before trying again when the store could not claim deliveries.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

enum Command {
    /// Newly queued or replayed deliveries.
    Queued(Vec<DeliveryRecord>),
    /// A discarded delivery.
    Forget(i64),
}

/// Where the dispatcher and the operator API tell the engine about deliveries they changed in the store.
#[derive(Debug, Clone)]
pub struct DeliveryHandle {
    sender: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Queued(records) => write!(f, "Queued({})", records.len()),
            Command::Forget(id) => write!(f, "Forget({id})"),
        }
    }
}

impl DeliveryHandle {
    /// Deliveries stored as pending (new or replayed).
    pub fn queued(&self, records: Vec<DeliveryRecord>) {
        if records.is_empty() {
            return;
        }
        if self.sender.send(Command::Queued(records)).is_err() {
            tracing::warn!(
                "delivery engine has stopped; queued deliveries go out at the next start"
            );
        }
    }

    /// A delivery deleted from the store.
    pub fn forget(&self, id: i64) {
        let _ = self.sender.send(Command::Forget(id));
    }
}

struct Engine {
    queue: Queue,
    destinations: Destinations,
    integrations: Arc<Integrations>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
    /// Sends in flight per receiver.
    in_flight: HashMap<String, usize>,
    running: JoinSet<Completion>,
    running_ids: HashSet<i64>,
    /// Earliest time to try claiming again after the store failed.
    claim_blocked_until: Option<DateTime<Utc>>,
}

fn add(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl Engine {
    /// Takes a configuration's integrations, delivery settings and rate limits (at start and on reload).
    fn configure(&mut self, applied: &Applied) {
        self.integrations = Arc::clone(&applied.integrations);
        self.settings = applied.settings.delivery.clone();
        let mut limits = HashMap::new();
        for integration in self.integrations.all() {
            limits
                .entry(integration.sink.destination())
                .or_insert(integration.options.rate_limit);
        }
        self.destinations.apply_limits(&limits);
    }

    fn track(&mut self, record: &DeliveryRecord, now: DateTime<Utc>) {
        self.queue.insert(record, now);
    }

    /// Loads open deliveries and destination pauses from the store.
    async fn restore(&mut self) {
        let now = self.clock.now();
        match self.store.pauses(now).await {
            Ok(pauses) => {
                for (destination, until) in pauses {
                    self.destinations.pause(&destination, until);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read destination pauses"),
        }
        match self.store.open_deliveries().await {
            Ok(records) => {
                let count = records.len();
                for record in &records {
                    self.track(record, now);
                }
                if count > 0 {
                    tracing::info!(count, "resuming open deliveries");
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot read open deliveries; they go out at the next start")
            }
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Queued(records) => {
                for record in &records {
                    self.track(record, now);
                }
            }
            Command::Forget(id) => {
                if !self.running_ids.contains(&id) {
                    self.queue.remove(id);
                }
            }
        }
    }

    fn completed(&mut self, completion: Completion) {
        let id = completion.id;
        self.running_ids.remove(&id);
        if let Some(entry) = self.queue.get(id)
            && let Some(count) = self.in_flight.get_mut(&entry.receiver)
        {
            *count = count.saturating_sub(1);
        }
        if let Some((destination, until)) = &completion.pause {
            self.destinations.pause(destination, *until);
        }
        match completion.done {
            Done::Settled(Settle::Retry {
                next_attempt_at, ..
            }) => {
                self.queue.reschedule(id, next_attempt_at, true);
            }
            Done::Settled(Settle::Delivered | Settle::Dead { .. }) => {
                self.queue.remove(id);
            }
            Done::Unrecorded => {
                let lease = self.lease(id);
                self.queue
                    .reschedule(id, add(self.clock.now(), lease), false);
            }
        }
    }

    fn lease(&self, id: i64) -> Duration {
        let timeout = self
            .queue
            .get(id)
            .and_then(|entry| {
                self.integrations
                    .find(&entry.receiver, &entry.integration_key)
            })
            .map_or(self.settings.timeout, |integration| {
                integration.options.timeout
            });
        timeout + LEASE_MARGIN
    }

    /// Starts every delivery that may go now; returns when something next may. Looks, per receiver with free
    /// send slots, at no more due deliveries per destination than it has slots; a destination that must wait is
    /// passed over whole.
    async fn launch(&mut self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        if let Some(until) = self.claim_blocked_until {
            if until > now {
                return Some(until);
            }
            self.claim_blocked_until = None;
        }
        let mut wake = self.queue.next_due_after(now);
        let concurrency = self.settings.concurrency;
        let in_flight = &self.in_flight;
        let free = |receiver: &str| {
            concurrency.saturating_sub(in_flight.get(receiver).copied().unwrap_or(0))
        };
        let mut picked = Vec::new();
        let mut waiting: HashSet<&str> = HashSet::new();
        for (receiver, destinations) in self.queue.due_by_receiver(now, free) {
            let slots = free(receiver);
            let mut candidates: Vec<(DateTime<Utc>, i64, &str)> = destinations
                .into_iter()
                .flat_map(|(destination, heads)| {
                    heads
                        .into_iter()
                        .map(move |(due, id)| (due, id, destination))
                })
                .collect();
            candidates.sort_unstable();
            let mut taken = 0;
            for (_, id, destination) in candidates {
                if taken == slots {
                    break;
                }
                if waiting.contains(destination) {
                    continue;
                }
                match self.destinations.acquire(destination, now) {
                    Ok(()) => {
                        taken += 1;
                        picked.push(id);
                    }
                    Err(at) => {
                        waiting.insert(destination);
                        wake = Some(wake.map_or(at, |t| t.min(at)));
                    }
                }
            }
        }
        // Due deliveries not picked wait for a send slot (a completion wakes the engine) or for `wake`.
        if picked.is_empty() {
            return wake;
        }
        let lease = picked
            .iter()
            .map(|id| self.lease(*id))
            .max()
            .unwrap_or(self.settings.timeout + LEASE_MARGIN);
        let mut claimed: HashMap<i64, AttemptInput> =
            match self.store.claim(picked.clone(), now, add(now, lease)).await {
                Ok(claimed) => claimed
                    .into_iter()
                    .map(|claimed| (claimed.id, claimed.input))
                    .collect(),
                Err(error) => {
                    tracing::warn!(%error, "cannot claim deliveries; trying again shortly");
                    let until = add(now, CLAIM_RETRY);
                    self.claim_blocked_until = Some(until);
                    return Some(until);
                }
            };
        for id in picked {
            let Some(input) = claimed.remove(&id) else {
                // Settled or discarded meanwhile.
                self.queue.remove(id);
                continue;
            };
            let Some(entry) = self.queue.get(id).cloned() else {
                continue;
            };
            self.queue.start(id);
            *self.in_flight.entry(entry.receiver.clone()).or_default() += 1;
            self.running_ids.insert(id);
            let job = Job {
                id,
                integration: self
                    .integrations
                    .find(&entry.receiver, &entry.integration_key)
                    .cloned(),
                receiver: entry.receiver,
                integration_key: entry.integration_key,
                destination: entry.destination,
                attempts: entry.attempts,
                queued_at: entry.queued_at,
                input,
                store: Arc::clone(&self.store),
                clock: Arc::clone(&self.clock),
                jitter: rand::random::<f64>(),
            };
            self.running.spawn(attempt::run(job));
        }
        wake
    }

    /// On shutdown: lets sends in flight finish within the drain time, then returns the rest to pending.
    async fn drain(&mut self) {
        let drain = self.settings.drain_timeout;
        let deadline = tokio::time::Instant::now() + drain;
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, self.running.join_next()).await {
                Ok(Some(Ok(completion))) => self.completed(completion),
                Ok(Some(Err(error))) => tracing::error!(%error, "delivery task failed"),
                Ok(None) | Err(_) => break,
            }
        }
        self.running.abort_all();
        let abandoned: Vec<i64> = self.running_ids.drain().collect();
        if abandoned.is_empty() {
            return;
        }
        let count = abandoned.len();
        match self.store.release(abandoned, self.clock.now()).await {
            Ok(_) => tracing::warn!(
                count,
                "sends still in flight after the drain time were abandoned; they go again at the next start"
            ),
            Err(error) => tracing::error!(%error, count,
                "cannot return abandoned sends to pending; they go again when their lease ends"),
        }
    }
}

/// Starts the delivery engine. It resumes the store's open deliveries, then runs until `shutdown` is cancelled
/// and its sends in flight have drained.
pub fn start(
    mut applied: watch::Receiver<Arc<Applied>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> (DeliveryHandle, tokio::task::JoinHandle<()>) {
    let (sender, mut commands) = mpsc::unbounded_channel();
    let current = Arc::clone(&applied.borrow_and_update());
    let mut engine = Engine {
        queue: Queue::default(),
        destinations: Destinations::new(Arc::clone(&clock)),
        integrations: Arc::clone(&current.integrations),
        store,
        clock,
        settings: current.settings.delivery.clone(),
        in_flight: HashMap::new(),
        running: JoinSet::new(),
        running_ids: HashSet::new(),
        claim_blocked_until: None,
    };
    engine.configure(&current);
    let task = tokio::spawn(async move {
        engine.restore().await;
        loop {
            let wake = engine.launch().await;
            let clock = Arc::clone(&engine.clock);
            let timer = async {
                match wake {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                Ok(()) = applied.changed() => {
                    let current = Arc::clone(&applied.borrow_and_update());
                    engine.configure(&current);
                    tracing::info!("delivery engine took the reloaded configuration");
                }
                command = commands.recv() => match command {
                    Some(command) => engine.command(command),
                    None => break,
                },
                Some(joined) = engine.running.join_next(), if !engine.running.is_empty() => match joined {
                    Ok(completion) => engine.completed(completion),
                    Err(error) => tracing::error!(%error, "delivery task failed"),
                },
                () = timer => {}
            }
        }
        engine.drain().await;
    });
    (DeliveryHandle { sender }, task)
}
