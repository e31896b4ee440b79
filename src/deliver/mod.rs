//! The delivery engine: takes queued deliveries from the outbox, sends each through its integration when it is due
//! and its destination's rate limit allows, keeps every group and integration in order, bounds sends in flight per
//! receiver, and settles each attempt in the store. Store work is batched and never waited on inline: one claim (of
//! every delivery that may start, with their payloads) and one settling (of every attempt that ended) are in
//! flight at a time, and what comes meanwhile joins the next, so a delivery costs a small share of a commit. Its
//! memory is a bounded cache of the store: at most `MAX_TRACKED` open deliveries, the rest read back in id order.

mod attempt;
mod breaker;
#[cfg(test)]
mod catchup_tests;
mod limiter;
pub mod policy;
mod queue;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::attempt::{Completion, Job, Payload};
use self::breaker::Breakers;
use self::limiter::Destinations;
use self::queue::Queue;
use crate::clock::Clock;
use crate::config::DeliverySettings;
use crate::notification::Notification;
use crate::reload::Applied;
use crate::sinks::integrations::Integrations;
use crate::store::delivery::{
    AttemptInput, Claimed, DeliveryRecord, DeliveryState, Finished, PayloadRead, Settle,
};
use crate::store::{Store, StoreError};

/// How long past its timeout an in-flight delivery stays leased: a later start takes it back after that.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long the engine waits before trying again when the store could not claim deliveries.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// Deliveries claimed ahead per receiver, as a multiple of `delivery.concurrency`: the next sends are ready when
/// slots free up, while the next claim is being committed.
const CLAIM_AHEAD: usize = 32;

/// Open deliveries the engine keeps in memory. Beyond this, they wait in the store and are read back in id order
/// as the engine works through the ones it holds, so a backlog costs disk, not memory.
pub const MAX_TRACKED: usize = 100_000;

/// Notifications the engine keeps with the deliveries it tracks, as the dispatcher made them, so they are sent
/// without being read back; beyond this many, claims read them from the store. A notification held costs a few
/// KiB (its alerts and its payload), so this bounds them to tens of MiB however large a backlog grows.
const MAX_HELD: usize = 10_000;

/// A delivery handed to the engine as it was queued.
#[derive(Debug)]
pub struct Handed {
    pub record: DeliveryRecord,
    /// Its notification, when the sender has it.
    pub notification: Option<Arc<Notification>>,
    /// `Some` when it was claimed as it was queued (it took a free send slot, see `DeliveryHandle::take_slot`):
    /// its integration's state for its group.
    pub claimed: Option<Option<String>>,
    /// Whether the transaction that queues it has committed. One handed before (claimed, for an integration that
    /// keeps no state) may be sent at once, but nothing about it is asked of the store, nor its outcome stored,
    /// until `DeliveryHandle::stored` says its transaction committed.
    pub stored: bool,
}

enum Command {
    /// Newly queued or replayed deliveries.
    Queued(Vec<Handed>),
    /// Deliveries handed before their transaction committed, now stored.
    Stored(Vec<i64>),
    /// A discarded delivery.
    Forget(i64),
}

/// Free send slots per receiver, as the engine last saw them: a delivery queued while its receiver has one is
/// claimed as it is stored, and sent without a claim of its own.
type Slots = Arc<Mutex<HashMap<String, usize>>>;

/// Where the dispatcher and the operator API tell the engine about deliveries they changed in the store.
#[derive(Debug, Clone)]
pub struct DeliveryHandle {
    sender: mpsc::UnboundedSender<Command>,
    slots: Slots,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Queued(records) => write!(f, "Queued({})", records.len()),
            Command::Stored(ids) => write!(f, "Stored({})", ids.len()),
            Command::Forget(id) => write!(f, "Forget({id})"),
        }
    }
}

impl DeliveryHandle {
    /// Deliveries stored as pending (new or replayed); their notifications are read when they are claimed.
    pub fn queued(&self, records: Vec<DeliveryRecord>) {
        self.handed(
            records
                .into_iter()
                .map(|record| Handed {
                    record,
                    notification: None,
                    claimed: None,
                    stored: true,
                })
                .collect(),
        );
    }

    /// Deliveries as they were queued, with their notifications.
    pub fn handed(&self, handed: Vec<Handed>) {
        if handed.is_empty() {
            return;
        }
        if self.sender.send(Command::Queued(handed)).is_err() {
            tracing::warn!(
                "delivery engine has stopped; queued deliveries go out at the next start"
            );
        }
    }

    /// Deliveries handed before their transaction committed (`Handed::stored` false) are now stored.
    pub fn stored(&self, ids: Vec<i64>) {
        if !ids.is_empty() && self.sender.send(Command::Stored(ids)).is_err() {
            tracing::warn!(
                "delivery engine has stopped; outcomes of sends it made may not be stored"
            );
        }
    }

    /// A delivery deleted from the store.
    pub fn forget(&self, id: i64) {
        let _ = self.sender.send(Command::Forget(id));
    }

    /// Takes a free send slot of `receiver`, when it has one: a delivery for it may then be claimed as it is queued.
    pub fn take_slot(&self, receiver: &str) -> bool {
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        match slots.get_mut(receiver) {
            Some(free) if *free > 0 => {
                *free -= 1;
                true
            }
            _ => false,
        }
    }
}

/// A claimed delivery waiting for a send slot.
struct Ready {
    id: i64,
    payload: Payload,
    state: Option<String>,
}

/// Store work the engine started and did not wait for.
enum StoreDone {
    Claimed {
        picked: Vec<i64>,
        result: Result<Vec<Claimed>, StoreError>,
    },
    Settled {
        completions: Vec<Completion>,
        result: Result<(), StoreError>,
    },
    Read {
        from: i64,
        limit: usize,
        result: Result<Vec<DeliveryRecord>, StoreError>,
    },
    Released {
        ids: Vec<i64>,
        result: Result<u64, StoreError>,
    },
}

/// Deliveries of one receiver the engine works on.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    /// Being sent.
    sending: usize,
    /// Picked or claimed, not yet being sent.
    reserved: usize,
}

struct Engine {
    queue: Queue,
    destinations: Destinations,
    /// Which destinations are down, and their probes.
    breakers: Breakers,
    /// Probes picked ahead of their delivery's own retry time, with that time.
    early: HashMap<i64, DateTime<Utc>>,
    integrations: Arc<Integrations>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
    load: HashMap<String, Load>,
    /// Claimed deliveries waiting for a send slot, per receiver, oldest claim first.
    ready: HashMap<String, VecDeque<Ready>>,
    sends: JoinSet<Completion>,
    /// Deliveries picked, claimed, being sent or being settled: the store's answer about them is awaited.
    busy: HashSet<i64>,
    store_work: JoinSet<StoreDone>,
    claiming: bool,
    settling: bool,
    reading: bool,
    /// Sends that ended, waiting for the next settling.
    ended: Vec<Completion>,
    /// Earliest time to try claiming again after the store failed.
    claim_blocked_until: Option<DateTime<Utc>>,
    /// After a failed settling, when the kept outcomes are stored again.
    settle_blocked_until: Option<DateTime<Utc>>,
    /// Earliest time to try reading back again after the store failed.
    read_blocked_until: Option<DateTime<Utc>>,
    /// The smallest id of an open delivery that may be only in the store (memory was full); `None` when memory
    /// holds every open delivery.
    unread_from: Option<i64>,
    /// Records queued while a read back was in flight, with ids it may not have seen.
    queued_while_reading: Vec<DeliveryRecord>,
    /// Notifications of tracked deliveries, as the dispatcher made them (up to `MAX_HELD`).
    held: HashMap<i64, Arc<Notification>>,
    /// Deliveries claimed as they were queued: until when, and their integration's state.
    preclaimed: HashMap<i64, (DateTime<Utc>, Option<String>)>,
    /// Deliveries handed before their transaction committed: they may be sent, but the store is not asked about
    /// them (nor their outcome stored) until it has.
    unstored: HashSet<i64>,
    /// Deliveries of `unstored` to return to pending once they are stored.
    release_when_stored: Vec<i64>,
    slots: Slots,
    /// Open deliveries held in memory at most (`MAX_TRACKED`).
    max_tracked: usize,
}

fn add(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl Engine {
    /// Takes a configuration's integrations, delivery settings and rate limits (at start and on reload).
    fn configure(&mut self, applied: &Applied) {
        self.integrations = Arc::clone(&applied.integrations);
        attempt::start_counters(&self.integrations);
        self.settings = applied.settings.delivery.clone();
        let mut limits = HashMap::new();
        for integration in self.integrations.all() {
            limits
                .entry(integration.sink.destination())
                .or_insert(integration.options.rate_limit);
        }
        self.breakers.configured(limits.keys());
        self.destinations.apply_limits(&limits);
    }

    /// Loads destination pauses; open deliveries are read back in pages as for a backlog.
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
        self.unread_from = Some(i64::MIN);
    }

    /// Keeps a tracked delivery's notification, within the budget (always for one not stored yet, which cannot be
    /// read back; they are as many as the free send slots).
    fn hold(&mut self, id: i64, notification: Option<Arc<Notification>>) {
        if let Some(notification) = notification
            && (self.held.len() < MAX_HELD || self.unstored.contains(&id))
        {
            self.held.insert(id, notification);
        }
    }

    /// Forgets a delivery that is settled for good (or deleted).
    fn forget(&mut self, id: i64) {
        self.queue.remove(id);
        self.held.remove(&id);
        self.preclaimed.remove(&id);
    }

    /// Tracks a delivery: one claimed as it was queued is due at once, and goes without a claim when picked.
    fn insert(&mut self, handed: Handed, now: DateTime<Utc>) {
        let Handed {
            mut record,
            notification,
            claimed,
            stored,
        } = handed;
        if let (Some(state), Some(until)) = (claimed, record.lease_until) {
            self.preclaimed.insert(record.id, (until, state));
            record.state = crate::store::delivery::DeliveryState::Pending;
            record.lease_until = None;
            if !stored && notification.is_some() {
                self.unstored.insert(record.id);
            }
        }
        self.queue.insert(&record, now);
        self.hold(record.id, notification);
    }

    /// Tracks queued deliveries, as far as memory allows; the others stay in the store until read back.
    fn track(&mut self, handed: Vec<Handed>) {
        let now = self.clock.now();
        for handed in handed {
            match self.unread_from {
                Some(from) if handed.record.id >= from => {
                    if self.reading {
                        self.queued_while_reading.push(handed.record);
                    }
                }
                Some(_) => self.insert(handed, now),
                None if self.queue.len() < self.max_tracked => self.insert(handed, now),
                None => {
                    tracing::warn!(
                        tracked = self.max_tracked,
                        "delivery backlog exceeds what is kept in memory; the rest waits in the store"
                    );
                    self.unread_from = Some(handed.record.id);
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Queued(records) => self.track(records),
            Command::Stored(ids) => {
                for id in ids {
                    self.unstored.remove(&id);
                }
                let (stored, waiting): (Vec<i64>, Vec<i64>) =
                    std::mem::take(&mut self.release_when_stored)
                        .into_iter()
                        .partition(|id| !self.unstored.contains(id));
                self.release_when_stored = waiting;
                self.release(stored);
            }
            Command::Forget(id) => {
                if !self.busy.contains(&id) {
                    self.forget(id);
                }
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

    fn load(&mut self, receiver: &str) -> &mut Load {
        self.load.entry(receiver.to_owned()).or_default()
    }

    /// Picks every due delivery that may be claimed now (per receiver, up to `CLAIM_AHEAD` times its concurrency
    /// less what it already works on; per destination, what its rate limit allows) and claims them in one store
    /// transaction, without waiting for it. Returns when something next may be picked.
    fn claim(&mut self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        if let Some(until) = self.claim_blocked_until {
            if until > now {
                return Some(until);
            }
            self.claim_blocked_until = None;
        }
        let mut wake = self.queue.next_due_after(now);
        if self.claiming {
            return wake;
        }
        let window = self.settings.concurrency.saturating_mul(CLAIM_AHEAD);
        let load = &self.load;
        let room = |receiver: &str| {
            let load = load.get(receiver).copied().unwrap_or_default();
            window.saturating_sub(load.sending + load.reserved)
        };
        let mut picked = Vec::new();
        let mut waiting: HashSet<&str> = HashSet::new();
        for (receiver, destinations) in self.queue.due_by_receiver(now, room) {
            let slots = room(receiver);
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
                // A down destination takes only its probe (below), not each delivery on its own timer.
                if self.breakers.is_down(destination) {
                    waiting.insert(destination);
                    continue;
                }
                match self.destinations.acquire(destination, now) {
                    Ok(()) => {
                        taken += 1;
                        picked.push((id, receiver.to_owned()));
                    }
                    Err(at) => {
                        waiting.insert(destination);
                        wake = Some(wake.map_or(at, |t| t.min(at)));
                    }
                }
            }
        }
        self.pick_probes(now, &mut picked, &mut wake);
        // Due deliveries not picked wait for room (an ended send wakes the engine) or for `wake`.
        if picked.is_empty() {
            return wake;
        }
        let lease = picked
            .iter()
            .map(|(id, _)| self.lease(*id))
            .max()
            .unwrap_or(self.settings.timeout + LEASE_MARGIN);
        let mut ids = Vec::with_capacity(picked.len());
        for (id, receiver) in picked {
            self.queue.start(id);
            self.busy.insert(id);
            self.load(&receiver).reserved += 1;
            // Claimed as it was queued, and still leased (or not stored yet): ready without a claim.
            if let Some((until, state)) = self.preclaimed.remove(&id)
                && (until > now || self.unstored.contains(&id))
                && let Some(notification) = self.held.get(&id)
            {
                self.ready.entry(receiver).or_default().push_back(Ready {
                    id,
                    payload: Payload::Held(Arc::clone(notification)),
                    state,
                });
                continue;
            }
            ids.push(id);
        }
        if ids.is_empty() {
            return wake;
        }
        self.claiming = true;
        // Only the notifications not held in memory are read.
        let missing: HashSet<i64> = ids
            .iter()
            .copied()
            .filter(|id| !self.held.contains_key(id))
            .collect();
        let read = if missing.is_empty() {
            PayloadRead::None
        } else if missing.len() == ids.len() {
            PayloadRead::All
        } else {
            PayloadRead::Only(missing)
        };
        let store = Arc::clone(&self.store);
        self.store_work.spawn(async move {
            let result = store.claim(ids.clone(), now, add(now, lease), read).await;
            StoreDone::Claimed {
                picked: ids,
                result,
            }
        });
        wake
    }

    /// Picks the probe of every down destination whose probe may go: the delivery waiting for it with the earliest
    /// retry time, due or not (one not due yet goes as an early probe: see `Job::early`).
    fn pick_probes(
        &mut self,
        now: DateTime<Utc>,
        picked: &mut Vec<(i64, String)>,
        wake: &mut Option<DateTime<Utc>>,
    ) {
        let busy = &self.busy;
        self.breakers.forget_lost_probes(|id| busy.contains(&id));
        if let Some(at) = self.breakers.next_probe_after(now) {
            *wake = Some(wake.map_or(at, |t| t.min(at)));
        }
        let window = self.settings.concurrency.saturating_mul(CLAIM_AHEAD);
        for destination in self.breakers.probes_due(now) {
            let Some((due, id, receiver)) = self.queue.earliest_head(&destination) else {
                continue;
            };
            let load = self.load.get(receiver).copied().unwrap_or_default();
            let taken = picked.iter().filter(|(_, r)| r == receiver).count();
            if load.sending + load.reserved + taken >= window {
                continue;
            }
            match self.destinations.acquire(&destination, now) {
                Ok(()) => {
                    let receiver = receiver.to_owned();
                    if due > now {
                        self.early.insert(id, due);
                    }
                    self.breakers.probe_started(&destination, id);
                    picked.push((id, receiver));
                }
                Err(at) => *wake = Some(wake.map_or(at, |t| t.min(at))),
            }
        }
    }

    /// Takes a claim's answer: claimed deliveries wait for a send slot; those the store no longer had open are
    /// forgotten; after a failure they are due again shortly.
    fn claimed(&mut self, picked: Vec<i64>, result: Result<Vec<Claimed>, StoreError>) {
        self.claiming = false;
        let now = self.clock.now();
        let mut claimed: HashMap<i64, AttemptInput> = match result {
            Ok(claimed) => claimed
                .into_iter()
                .map(|claimed| (claimed.id, claimed.input))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot claim deliveries; trying again shortly");
                self.claim_blocked_until = Some(add(now, CLAIM_RETRY));
                HashMap::new()
            }
        };
        let failed = self.claim_blocked_until.is_some();
        for id in picked {
            let Some(receiver) = self.queue.get(id).map(|entry| entry.receiver.clone()) else {
                self.busy.remove(&id);
                continue;
            };
            // Claimed: the notification as read, or as queued.
            let ready = match claimed.remove(&id) {
                Some(input) => match input.payload {
                    Some(json) => Ok(Some((Payload::Stored(json), input.state))),
                    None => self
                        .held
                        .get(&id)
                        .map(|held| Some((Payload::Held(Arc::clone(held)), input.state)))
                        .ok_or(()),
                },
                None => Ok(None),
            };
            match ready {
                Ok(Some((payload, state))) => {
                    self.ready
                        .entry(receiver.to_string())
                        .or_default()
                        .push_back(Ready { id, payload, state });
                    continue;
                }
                Ok(None) if !failed => {
                    // Settled or discarded meanwhile.
                    self.busy.remove(&id);
                    self.forget(id);
                }
                Ok(None) => {
                    self.busy.remove(&id);
                    self.queue.reschedule(id, add(now, CLAIM_RETRY), false);
                }
                Err(()) => {
                    // Claimed without its notification (which is never dropped while claimed): it goes again when
                    // its lease ends, and that claim reads it.
                    tracing::error!(delivery = id, "claimed a delivery without its notification");
                    self.busy.remove(&id);
                    let lease = self.lease(id);
                    self.queue.reschedule(id, add(now, lease), false);
                }
            }
            let load = self.load(&receiver);
            load.reserved = load.reserved.saturating_sub(1);
        }
    }

    /// Starts sending claimed deliveries while their receivers have free send slots. Those claimed for a
    /// destination that went down meanwhile (other than its probe) go back to pending, to wait for it.
    fn send(&mut self) {
        let concurrency = self.settings.concurrency;
        let mut jobs = Vec::new();
        let mut held_back = Vec::new();
        // Looking through what is ready only matters while a destination is down.
        let any_down = self.breakers.any_down();
        for (receiver, ready) in &mut self.ready {
            let load = self.load.entry(receiver.clone()).or_default();
            ready.retain(|ready| {
                if !any_down {
                    return true;
                }
                let held = self.queue.get(ready.id).is_some_and(|entry| {
                    self.breakers.is_down(&entry.destination)
                        && self.breakers.probe_of(&entry.destination) != Some(ready.id)
                });
                if held {
                    load.reserved = load.reserved.saturating_sub(1);
                    held_back.push(ready.id);
                }
                !held
            });
            while load.sending < concurrency {
                let Some(ready) = ready.pop_front() else {
                    break;
                };
                load.reserved = load.reserved.saturating_sub(1);
                load.sending += 1;
                jobs.push(ready);
            }
        }
        self.ready.retain(|_, ready| !ready.is_empty());
        self.release(held_back);
        for Ready { id, payload, state } in jobs {
            let Some(entry) = self.queue.get(id).cloned() else {
                continue;
            };
            // Early only as the probe of a destination still down.
            let early = self
                .early
                .remove(&id)
                .filter(|_| self.breakers.probe_of(&entry.destination) == Some(id));
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
                payload,
                state,
                clock: Arc::clone(&self.clock),
                jitter: rand::random::<f64>(),
                early,
            };
            self.sends.spawn(attempt::run(job));
        }
    }

    /// A send ended: its slot is free at once; its outcome waits for the next settling.
    fn ended(&mut self, joined: Result<Completion, tokio::task::JoinError>) {
        let completion = match joined {
            Ok(completion) => completion,
            Err(error) => {
                tracing::error!(%error, "delivery task failed");
                return;
            }
        };
        let load = self.load(&completion.receiver);
        load.sending = load.sending.saturating_sub(1);
        if let Some((destination, until)) = &completion.pause {
            self.destinations.pause(destination, *until);
        }
        self.early.remove(&completion.id);
        match completion.reach {
            Some(reach) => {
                let retry = completion.retry.unwrap_or(self.settings.retry);
                let error = completion.finished.attempt.error.as_deref().unwrap_or("");
                let now = self.clock.now();
                if let Some(recovered) = self.breakers.ended(
                    &completion.destination,
                    completion.id,
                    reach,
                    error,
                    &retry,
                    now,
                ) {
                    let released = self.queue.release_destination(&completion.destination, now);
                    tracing::info!(
                        destination = %completion.destination,
                        down_for = %crate::config::format_duration(Duration::from_secs(recovered.down_for.as_secs())),
                        failed_probes = recovered.probes,
                        released,
                        "destination is back up; what waits for it goes now"
                    );
                }
            }
            None => {
                let busy = &self.busy;
                self.breakers
                    .forget_lost_probes(|id| id != completion.id && busy.contains(&id));
            }
        }
        self.ended.push(completion);
    }

    /// Stores every ended attempt in one transaction, without waiting for it.
    fn settle(&mut self) {
        if self.settling || self.ended.is_empty() {
            return;
        }
        if let Some(until) = self.settle_blocked_until {
            if until > self.clock.now() {
                return;
            }
            self.settle_blocked_until = None;
        }
        // Outcomes of deliveries not stored yet wait for their transaction.
        let (completions, waiting): (Vec<Completion>, Vec<Completion>) =
            std::mem::take(&mut self.ended)
                .into_iter()
                .partition(|completion| !self.unstored.contains(&completion.id));
        self.ended = waiting;
        if completions.is_empty() {
            return;
        }
        let finished: Vec<Finished> = completions
            .iter()
            .map(|completion| completion.finished.clone())
            .collect();
        self.settling = true;
        let store = Arc::clone(&self.store);
        self.store_work.spawn(async move {
            let result = store.finish(finished).await;
            StoreDone::Settled {
                completions,
                result,
            }
        });
    }

    /// Takes a settling's answer: each lane moves on (or its delivery waits for its retry). When the store failed
    /// (a full disk), the outcomes are kept and stored again shortly, their deliveries held meanwhile: a send that
    /// happened is recorded late rather than made again.
    fn settled(&mut self, completions: Vec<Completion>, result: Result<(), StoreError>) {
        self.settling = false;
        let now = self.clock.now();
        if let Err(error) = &result {
            tracing::error!(%error, count = completions.len(),
                "cannot store the outcome of delivery attempts; keeping them to store again shortly");
            self.ended.extend(completions);
            self.settle_blocked_until = Some(add(now, CLAIM_RETRY));
            return;
        }
        for completion in completions {
            let id = completion.id;
            self.busy.remove(&id);
            match completion.finished.settle {
                Settle::Retry {
                    next_attempt_at, ..
                } => {
                    // A destination that came back up since this attempt failed takes it at once.
                    let due = self.breakers.retry_at(
                        &completion.destination,
                        completion.finished.now,
                        next_attempt_at,
                        now,
                    );
                    self.queue.reschedule(id, due, completion.finished.spent);
                }
                Settle::Delivered | Settle::Dead { .. } => self.forget(id),
            }
        }
    }

    /// Reads back open deliveries left in the store when memory has room for them, without waiting.
    fn read_back(&mut self) {
        let Some(from) = self.unread_from else {
            return;
        };
        // Read back when it holds fewer than half of what it may.
        if self.reading || self.queue.len() >= self.max_tracked / 2 {
            return;
        }
        if let Some(until) = self.read_blocked_until {
            if until > self.clock.now() {
                return;
            }
            self.read_blocked_until = None;
        }
        let limit = self.max_tracked.saturating_sub(self.queue.len()).max(1);
        self.reading = true;
        let store = Arc::clone(&self.store);
        self.store_work.spawn(async move {
            let result = store.open_deliveries(from, limit).await;
            StoreDone::Read {
                from,
                limit,
                result,
            }
        });
    }

    fn read(&mut self, from: i64, limit: usize, result: Result<Vec<DeliveryRecord>, StoreError>) {
        self.reading = false;
        let records = match result {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "cannot read open deliveries; trying again shortly");
                self.read_blocked_until = Some(add(self.clock.now(), CLAIM_RETRY));
                self.queued_while_reading.clear();
                return;
            }
        };
        let now = self.clock.now();
        if from == i64::MIN && !records.is_empty() {
            tracing::info!(count = records.len(), "resuming open deliveries");
        }
        // All open deliveries from `from` on were read, or those up to the last one read.
        let next = (records.len() >= limit)
            .then(|| records.last().map(|record| record.id.saturating_add(1)))
            .flatten();
        for record in &records {
            if self.busy.contains(&record.id) {
                continue;
            }
            // Waiting for a retry after a failure in an earlier run: its destination's breaker says when it goes.
            if record.state == DeliveryState::Pending
                && record.attempts > 0
                && record.next_attempt_at > now
            {
                let mut record = record.clone();
                record.next_attempt_at = self.breakers.read_back_waiting(
                    &record.destination,
                    record.next_attempt_at,
                    now,
                );
                self.queue.insert(&record, now);
            } else {
                self.queue.insert(record, now);
            }
        }
        self.unread_from = next;
        for record in std::mem::take(&mut self.queued_while_reading) {
            if next.is_none_or(|next| record.id < next) && !self.busy.contains(&record.id) {
                self.queue.insert(&record, now);
            }
        }
    }

    fn store_done(&mut self, done: Result<StoreDone, tokio::task::JoinError>) {
        match done {
            Ok(StoreDone::Claimed { picked, result }) => self.claimed(picked, result),
            Ok(StoreDone::Settled {
                completions,
                result,
            }) => self.settled(completions, result),
            Ok(StoreDone::Read {
                from,
                limit,
                result,
            }) => self.read(from, limit, result),
            Ok(StoreDone::Released { ids, result }) => self.released(ids, result),
            Err(error) => tracing::error!(%error, "delivery store task failed"),
        }
    }

    /// Returns to pending the deliveries claimed as they were queued that could not start at once (behind their
    /// lane's head, or held by a rate limit): in flight is only what is being sent or about to be.
    fn release_unstarted(&mut self) {
        let unstarted: Vec<i64> = self
            .preclaimed
            .keys()
            .filter(|id| !self.busy.contains(id) && !self.unstored.contains(id))
            .copied()
            .collect();
        if unstarted.is_empty() {
            return;
        }
        for id in &unstarted {
            self.preclaimed.remove(id);
            // Not picked until the store has it pending again (a claim before that would find it leased).
            self.queue.start(*id);
            self.busy.insert(*id);
        }
        self.release(unstarted);
    }

    /// Returns claimed deliveries that will not be sent now (started and busy) to pending, without waiting.
    fn release(&mut self, ids: Vec<i64>) {
        let (ids, unstored): (Vec<i64>, Vec<i64>) =
            ids.into_iter().partition(|id| !self.unstored.contains(id));
        self.release_when_stored.extend(unstored);
        if ids.is_empty() {
            return;
        }
        let now = self.clock.now();
        let store = Arc::clone(&self.store);
        self.store_work.spawn(async move {
            let result = store.release(ids.clone(), now).await;
            StoreDone::Released { ids, result }
        });
    }

    fn released(&mut self, ids: Vec<i64>, result: Result<u64, StoreError>) {
        let now = self.clock.now();
        let due = match result {
            Ok(_) => now,
            Err(error) => {
                // Still leased in the store: a claim succeeds once the lease ends.
                tracing::warn!(%error, "cannot return deliveries to pending; they wait for their lease");
                ids.iter()
                    .filter_map(|id| self.queue.get(*id).map(|_| self.lease(*id)))
                    .max()
                    .map_or(now, |lease| add(now, lease))
            }
        };
        for id in ids {
            self.busy.remove(&id);
            self.queue.reschedule(id, due, false);
        }
    }

    /// Tells the dispatcher which receivers have free send slots and nothing due waiting for them. None while open
    /// deliveries wait in the store to be read back (at start, or past `max_tracked`): a delivery queued then is left
    /// to the read back, which knows nothing of a claim made as it was queued, so it must not be claimed.
    fn publish_slots(&self) {
        let now = self.clock.now();
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        slots.clear();
        if self.unread_from.is_some() {
            return;
        }
        for receiver in self.integrations.receiver_names() {
            if self.queue.has_due(receiver, now) {
                continue;
            }
            let load = self.load.get(receiver).copied().unwrap_or_default();
            let free = self
                .settings
                .concurrency
                .saturating_sub(load.sending + load.reserved);
            if free > 0 {
                slots.insert(receiver.to_owned(), free);
            }
        }
    }

    /// Starts what can start now; returns when something next may.
    fn step(&mut self) -> Option<DateTime<Utc>> {
        self.read_back();
        self.send();
        self.settle();
        let wake = self.claim();
        self.send();
        self.release_unstarted();
        self.publish_slots();
        [wake, self.read_blocked_until, self.settle_blocked_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// On shutdown: lets sends in flight finish within the drain time and stores their outcomes; returns the rest
    /// (claimed, or still being sent) to pending.
    async fn drain(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) {
        let drain = self.settings.drain_timeout;
        let deadline = tokio::time::Instant::now() + drain;
        while !self.sends.is_empty() {
            match tokio::time::timeout_at(deadline, self.sends.join_next()).await {
                Ok(Some(joined)) => self.ended(joined),
                Ok(None) | Err(_) => break,
            }
        }
        self.sends.abort_all();
        // Sends made before their delivery was stored whose transaction committed meanwhile: their outcomes are
        // stored below (one whose transaction never committed is sent again at the next start).
        while let Ok(command) = commands.try_recv() {
            self.command(command);
        }
        while let Some(done) = self.store_work.join_next().await {
            self.store_done(done);
        }
        // One last try for outcomes kept from a failed settling too.
        self.settle_blocked_until = None;
        self.settle();
        while let Some(done) = self.store_work.join_next().await {
            self.store_done(done);
        }
        let abandoned: Vec<i64> = self.busy.drain().collect();
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
    applied: watch::Receiver<Arc<Applied>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> (DeliveryHandle, tokio::task::JoinHandle<()>) {
    start_bounded(applied, store, clock, shutdown, MAX_TRACKED)
}

/// `start`, holding at most `max_tracked` open deliveries in memory.
fn start_bounded(
    mut applied: watch::Receiver<Arc<Applied>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    max_tracked: usize,
) -> (DeliveryHandle, tokio::task::JoinHandle<()>) {
    let (sender, mut commands) = mpsc::unbounded_channel();
    let slots = Slots::default();
    let current = Arc::clone(&applied.borrow_and_update());
    let mut engine = Engine {
        queue: Queue::default(),
        destinations: Destinations::new(Arc::clone(&clock)),
        breakers: Breakers::default(),
        early: HashMap::new(),
        integrations: Arc::clone(&current.integrations),
        store,
        clock,
        settings: current.settings.delivery.clone(),
        load: HashMap::new(),
        ready: HashMap::new(),
        sends: JoinSet::new(),
        busy: HashSet::new(),
        store_work: JoinSet::new(),
        claiming: false,
        settling: false,
        reading: false,
        ended: Vec::new(),
        claim_blocked_until: None,
        settle_blocked_until: None,
        read_blocked_until: None,
        unread_from: None,
        queued_while_reading: Vec::new(),
        held: HashMap::new(),
        preclaimed: HashMap::new(),
        unstored: HashSet::new(),
        release_when_stored: Vec::new(),
        slots: Arc::clone(&slots),
        max_tracked,
    };
    engine.configure(&current);
    let task = tokio::spawn(async move {
        engine.restore().await;
        loop {
            let wake = engine.step();
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
                Some(joined) = engine.sends.join_next(), if !engine.sends.is_empty() => engine.ended(joined),
                Some(done) = engine.store_work.join_next(), if !engine.store_work.is_empty() => {
                    engine.store_done(done);
                }
                () = timer => {}
            }
            // Everything else that is ready too, so the next claim and settling take all of it.
            while let Some(joined) = engine.sends.try_join_next() {
                engine.ended(joined);
            }
            while let Some(done) = engine.store_work.try_join_next() {
                engine.store_done(done);
            }
            while let Ok(command) = commands.try_recv() {
                engine.command(command);
            }
        }
        engine.drain(&mut commands).await;
    });
    (DeliveryHandle { sender, slots }, task)
}
