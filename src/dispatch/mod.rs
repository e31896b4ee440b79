//! The dispatcher: alerts join the aggregation groups of the routes they match, groups flush on their timers (read
//! on the injected clock) from the alerts they hold in memory, and what the notification log says is news to each
//! integration of the receiver is queued in the outbox, one delivery per integration, together with the
//! integrations' log entries. The store is written only when something durable changes: a group created or first
//! flushed, a notification queued with its log entries. Deliveries that die or are replayed change the log in the
//! store, which tells the dispatcher so its copy stays in step.

mod fingerprints;
pub mod group;
pub mod groups;
pub mod held;
pub mod sweeper;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Utc};

use crate::alert::{Alert, Fingerprint, Labels, Status};
use crate::clock::Clock;
use crate::deliver::{self, DeliveryHandle};
use crate::inhibit::Inhibitor;
use crate::notification::{Notification, NotifiedAlert};
use crate::reload::Applied;
use crate::route::silence::SilenceBook;
use crate::route::tree::RouteNode;
use crate::sinks::integrations::{Integration, Integrations};
use crate::store::delivery::{Logged as LogRecord, NewDelivery, Queued};
use crate::store::{AlertQuery, Dispatched, LogChange, SentRecord, StateChange, Store, Told};
use crate::timeinterval::TimeInterval;

use self::group::{Held, Reason};
use self::groups::GroupSet;
use self::held::HeldAlert;

/// Changes of alerts (stored, not yet taken in by the dispatcher) that may wait for it at once; ingest waits for
/// room, then answers 503 (see `DispatchHandle::reserve`). Bounds the memory the hand-over takes.
pub const BACKLOG_ALERTS: usize = 20_000;

/// Most changes the dispatcher takes in before it flushes what is due: everything handed over (the backlog is bounded
/// anyway), so while a round waits for its commit the changes of a busy ingest pile up in the backlog only until the
/// next round, however long the store takes.
const TAKE_BATCH: usize = BACKLOG_ALERTS;

/// Most groups flushed in one round (and so stored in one transaction): a burst of due groups goes out in a series
/// of moderate commits, which the store interleaves with claims and ingest, rather than one that holds them up.
const FLUSH_BATCH: usize = 1_000;

/// Changes handed to the dispatcher, with the room they take in its backlog.
struct Handed {
    changes: Vec<StateChange>,
    _room: Option<OwnedSemaphorePermit>,
}

/// Where ingest and the sweeper hand changes of stored alerts to the dispatcher. The hand-over is bounded: ingest
/// reserves room before it stores, so what it acknowledges always reaches the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatchHandle {
    sender: mpsc::UnboundedSender<Handed>,
    room: Arc<Semaphore>,
}

impl std::fmt::Debug for Handed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handed({})", self.changes.len())
    }
}

/// Room reserved in the dispatcher's backlog for the changes of one write.
#[derive(Debug)]
pub struct Reservation {
    sender: mpsc::UnboundedSender<Handed>,
    room: OwnedSemaphorePermit,
}

/// The dispatcher's backlog stayed full for as long as a sender may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the dispatcher is behind: its backlog of {BACKLOG_ALERTS} alert changes is full")]
pub struct Busy;

impl Reservation {
    /// Hands the changes over (the reserved room is released when the dispatcher has taken them in).
    pub fn submit(self, changes: Vec<StateChange>) {
        if changes.is_empty() {
            return;
        }
        let handed = Handed {
            changes,
            _room: Some(self.room),
        };
        if self.sender.send(handed).is_err() {
            tracing::warn!("dispatcher has stopped; changes not notified");
        }
    }
}

impl DispatchHandle {
    /// Reserves room for the changes of up to `alerts` alerts, waiting at most `wait` for the dispatcher to make
    /// some. Call before storing, so nothing stored is ever refused.
    pub async fn reserve(&self, alerts: usize, wait: Duration) -> Result<Reservation, Busy> {
        let wanted = u32::try_from(alerts.clamp(1, BACKLOG_ALERTS)).unwrap_or(u32::MAX);
        let room = Arc::clone(&self.room);
        let room = match room.clone().try_acquire_many_owned(wanted) {
            Ok(room) => room,
            Err(_) => tokio::time::timeout(wait, room.acquire_many_owned(wanted))
                .await
                .map_err(|_| Busy)?
                .map_err(|_| Busy)?,
        };
        Ok(Reservation {
            sender: self.sender.clone(),
            room,
        })
    }

    /// Hands over changes that are already stored (the sweeper's resolves), waiting for room as long as it takes.
    pub async fn submit_stored(&self, changes: Vec<StateChange>) {
        if changes.is_empty() {
            return;
        }
        let wanted = u32::try_from(changes.len().clamp(1, BACKLOG_ALERTS)).unwrap_or(u32::MAX);
        let room = Arc::clone(&self.room).acquire_many_owned(wanted).await.ok();
        if self
            .sender
            .send(Handed {
                changes,
                _room: room,
            })
            .is_err()
        {
            tracing::warn!("dispatcher has stopped; changes not notified");
        }
    }

    /// Alert changes handed over and not yet taken in.
    pub fn backlog(&self) -> usize {
        BACKLOG_ALERTS.saturating_sub(self.room.available_permits())
    }
}

/// How long notifications that could not be stored wait before they are stored again.
const RETRY_STORE: Duration = Duration::from_secs(1);

/// What one integration is sent at a flush.
enum Sending {
    /// A delivery, with the notification it sends.
    Delivery(Box<NewDelivery>, Arc<Notification>),
    /// Nothing, but it counts as told: an integration without `send_resolved` gets no resolve (its log still stops
    /// listing the alerts as firing).
    Nothing,
    /// Nothing, and it does not count as told (the notification could not be encoded).
    Failed,
}

/// A notification made at a flush, with its JSON.
#[derive(Clone)]
struct Payload {
    notification: Arc<Notification>,
    json: Arc<str>,
}

impl Payload {
    fn new(notification: Notification) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_string(&notification)?.into();
        Ok(Payload {
            notification: Arc::new(notification),
            json,
        })
    }
}

/// The notifications of one flush, shared by the integrations in the same state: one per reason, and a copy with
/// the firing alerts only for integrations without `send_resolved` (none when nothing fires); each encoded once, when
/// an integration is first sent it.
#[derive(Default)]
struct Payloads {
    /// Per reason, the notification with every alert, and its JSON once encoded.
    full: Vec<(Reason, Arc<Notification>, Option<Arc<str>>)>,
    firing: Vec<(Reason, Option<Payload>)>,
}

impl Payloads {
    /// The notification for `reason` (its firing alerts only when `firing_only`), made with `make` the first time.
    fn get(
        &mut self,
        reason: Reason,
        firing_only: bool,
        make: impl FnOnce() -> Notification,
    ) -> Result<Option<Payload>, serde_json::Error> {
        if firing_only
            && let Some((_, firing)) = self.firing.iter().find(|(made, _)| *made == reason)
        {
            return Ok(firing.clone());
        }
        let index = match self.full.iter().position(|(made, ..)| *made == reason) {
            Some(index) => index,
            None => {
                self.full.push((reason, Arc::new(make()), None));
                self.full.len() - 1
            }
        };
        let Some((_, full, json)) = self.full.get_mut(index) else {
            return Ok(None);
        };
        if !firing_only {
            let json = match json {
                Some(json) => Arc::clone(json),
                None => Arc::clone(json.insert(serde_json::to_string(&**full)?.into())),
            };
            return Ok(Some(Payload {
                notification: Arc::clone(full),
                json,
            }));
        }
        let mut firing = Notification::clone(full);
        firing.alerts.retain(|alert| alert.status == Status::Firing);
        firing.status = Status::Firing;
        let firing = if firing.alerts.is_empty() {
            None
        } else {
            Some(Payload::new(firing)?)
        };
        self.firing.push((reason, firing.clone()));
        Ok(firing)
    }
}

/// What `integration` is sent for `reason`: a delivery of the notification (its firing alerts only, without
/// `send_resolved`; nothing when none fires). `claim` says until when a delivery is claimed as it is queued (its
/// receiver has a free send slot), if it is.
fn sending(
    integration: &Integration,
    reason: Reason,
    payloads: &mut Payloads,
    make: impl FnOnce() -> Notification,
    claim: &mut dyn FnMut(&Integration) -> Option<DateTime<Utc>>,
    id: &dyn Fn() -> i64,
) -> Sending {
    let made = match payloads.get(reason, !integration.sink.send_resolved(), make) {
        Ok(made) => made,
        Err(error) => {
            tracing::error!(%error, integration = %integration.key, "cannot encode a notification");
            return Sending::Failed;
        }
    };
    let Some(Payload {
        notification,
        json: payload,
    }) = made
    else {
        return Sending::Nothing;
    };
    let delivery = NewDelivery {
        id: id(),
        receiver: notification.receiver.clone(),
        integration: integration.sink.integration().to_owned(),
        integration_key: integration.key.clone(),
        destination: integration.destination.clone(),
        group_key: notification.group_key.clone(),
        status: notification.status.as_str().to_owned(),
        alert_count: notification.alerts.len(),
        payload,
        claim_until: claim(integration),
    };
    Sending::Delivery(Box::new(delivery), notification)
}

/// Notifications decided but not stored (storing them failed): stored again, with what comes next, until it works.
/// Their log entries are in memory already, so they are not decided again; their deliveries go to the engine once
/// stored.
#[derive(Default)]
struct Unwritten {
    queued: Vec<Arc<Queued>>,
    /// Each delivery's notification, in the order of `queued`'s deliveries.
    notifications: Vec<Arc<Notification>>,
    /// Deliveries handed to the engine before they were stored (see `deliver::Handed::stored`).
    early: Vec<i64>,
    /// When to try again.
    retry_at: Option<DateTime<Utc>>,
}

/// A notification of a flush: its log entries, recorded in memory once its deliveries have ids.
struct Logged {
    receiver: Arc<str>,
    group_key: Arc<str>,
    entry: Arc<group::SentEntry>,
    /// The integrations the entry is recorded for, each with the index of its delivery among the round's.
    integrations: Vec<(String, Option<usize>)>,
}

/// The dispatcher's state and what it needs to act.
struct Dispatcher {
    routes: Arc<RouteNode>,
    /// Route id -> (mute_time_intervals, active_time_intervals).
    route_intervals: HashMap<String, (Vec<String>, Vec<String>)>,
    intervals: HashMap<String, TimeInterval>,
    inhibitor: Inhibitor,
    silences: Arc<SilenceBook>,
    /// Firing alerts that match the source side of an inhibit rule.
    sources: HashMap<Fingerprint, Labels>,
    integrations: Arc<Integrations>,
    deliveries: DeliveryHandle,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    external_url: Option<String>,
    groups: GroupSet,
    /// How long the log of a group that is gone is kept (`storage.resolved_retention`).
    log_retention: chrono::Duration,
    /// When the in-memory log was last pruned.
    pruned_at: DateTime<Utc>,
    /// Log entries forgotten in memory, to delete from the store with the next commit.
    forgotten: Vec<(String, String)>,
    /// Receivers' log entries copied to their integrations, to store with the next commit.
    adopted: Vec<SentRecord>,
    /// Notifications whose transaction failed, stored again before anything newer.
    unwritten: Unwritten,
}

fn collect_intervals(route: &RouteNode, into: &mut HashMap<String, (Vec<String>, Vec<String>)>) {
    into.insert(
        route.id.clone(),
        (
            route.mute_time_intervals.clone(),
            route.active_time_intervals.clone(),
        ),
    );
    for child in &route.routes {
        collect_intervals(child, into);
    }
}

impl Dispatcher {
    /// Takes the route tree, receivers, inhibit rules and time intervals of a configuration.
    fn configure(&mut self, applied: &Applied) {
        let settings = &applied.settings;
        self.routes = Arc::clone(&applied.routes);
        self.route_intervals.clear();
        collect_intervals(&self.routes, &mut self.route_intervals);
        self.intervals = settings
            .time_intervals
            .iter()
            .map(|interval| (interval.name().to_string(), interval.clone()))
            .collect();
        self.inhibitor = Inhibitor::new(settings.inhibit_rules.clone());
        self.integrations = Arc::clone(&applied.integrations);
        self.external_url = settings.server.external_url.clone();
        self.log_retention = chrono::Duration::from_std(settings.storage.resolved_retention)
            .unwrap_or(chrono::Duration::MAX);
    }

    /// Puts a reloaded configuration in force: the groups are rebuilt from the store under the new route tree, as
    /// at a start (groups that still exist keep their timers; the notification log keeps what was already sent).
    async fn reconfigure(&mut self, applied: &Applied) {
        self.persist().await;
        self.configure(applied);
        self.groups = GroupSet::default();
        self.sources.clear();
        self.restore().await;
        tracing::info!(
            groups = self.groups.len(),
            "dispatcher took the reloaded configuration"
        );
    }

    /// Keeps the inhibit-source index in step with an alert's status.
    fn track_source(&mut self, fingerprint: Fingerprint, labels: &Labels, firing: bool) {
        let source = firing
            && self
                .inhibitor
                .rules()
                .iter()
                .any(|rule| rule.source.matches(labels));
        if source {
            self.sources.insert(fingerprint, labels.clone());
        } else {
            self.sources.remove(&fingerprint);
        }
    }

    /// Whether the route `route_id` is muted at `now` by its mute or active time intervals.
    fn muted(&self, route_id: &str, now: DateTime<Utc>) -> bool {
        let Some((mute, active)) = self.route_intervals.get(route_id) else {
            return false;
        };
        let contains = |name: &String| {
            self.intervals
                .get(name)
                .is_some_and(|interval| interval.contains(now))
        };
        mute.iter().any(contains) || (!active.is_empty() && !active.iter().any(contains))
    }

    /// Rebuilds the groups after a start: stored groups with their timers, the notification log, every stored
    /// firing alert, and the announced alerts that resolved meanwhile (so their resolve is still sent).
    async fn restore(&mut self) {
        let now = self.clock.now();
        match self.store.groups().await {
            Ok(groups) => {
                for record in groups {
                    self.groups.restore(&self.routes, record, now);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read stored groups"),
        }
        match self.store.sent().await {
            Ok(log) => {
                let integrations = Arc::clone(&self.integrations);
                self.adopted = self.groups.restore_log(log, |receiver| {
                    integrations
                        .receiver(receiver)
                        .map(|receiver| {
                            receiver
                                .integrations
                                .iter()
                                .map(|integration| integration.key.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                });
                if !self.adopted.is_empty() {
                    tracing::info!(
                        entries = self.adopted.len(),
                        "notification log entries of whole receivers copied to each of their integrations"
                    );
                }
            }
            Err(error) => tracing::error!(%error, "cannot read the notification log"),
        }
        match self
            .store
            .alerts(AlertQuery {
                now,
                include_resolved: false,
            })
            .await
        {
            Ok(alerts) => {
                for stored in alerts {
                    self.track_source(stored.fingerprint, &stored.alert.labels, true);
                    self.groups
                        .add(&self.routes, stored.fingerprint, &stored.alert, now);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read stored alerts to rebuild groups"),
        }
        self.groups.adopt_log_schedules(now);
        let missing = self.groups.announced_missing();
        if !missing.is_empty() {
            let fingerprints: Vec<Fingerprint> = missing
                .iter()
                .map(|(_, fingerprint)| *fingerprint)
                .collect();
            match self.store.alerts_by_fingerprint(fingerprints).await {
                Ok(stored) => {
                    let stored: HashMap<Fingerprint, Alert> = stored
                        .into_iter()
                        .map(|stored| (stored.fingerprint, stored.alert))
                        .collect();
                    for (id, fingerprint) in missing {
                        if let Some(alert) = stored.get(&fingerprint) {
                            self.groups.rejoin(&id, fingerprint, alert);
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read announced alerts; their resolve may not be sent")
                }
            }
        }
        self.persist().await;
    }

    /// Forgets, about once a minute, log entries of groups that are gone and older than the retention (the
    /// sweeper deletes the same from the store).
    fn prune_log(&mut self) {
        let now = self.clock.now();
        if now - self.pruned_at < chrono::Duration::minutes(1) {
            return;
        }
        self.pruned_at = now;
        let before = now
            .checked_sub_signed(self.log_retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let forgotten = self.groups.forget_sent(before);
        self.groups.compact();
        groups::shrink(&mut self.sources);
        if !forgotten.is_empty() {
            tracing::debug!(
                forgotten = forgotten.len(),
                "forgetting notification log entries of groups gone past retention"
            );
            self.forgotten.extend(forgotten);
        }
    }

    /// Stores the groups created, first flushed or dropped since the last call (nothing when none was).
    async fn persist(&mut self) {
        self.commit(Vec::new(), Vec::new(), Vec::new(), self.clock.now())
            .await;
    }

    /// Takes in changes of stored alerts: alerts that start firing join their groups; new versions of alerts the
    /// groups hold replace the old ones (resolves included: a group sees its members' status when it flushes).
    /// Timers count from when a change was stored, however late it is seen here.
    fn take(&mut self, changes: Vec<StateChange>) {
        for change in changes {
            let firing = change.status == Status::Firing;
            let known = self.groups.holds(&change.fingerprint);
            if change.previous != Some(change.status) || !known {
                self.track_source(change.fingerprint, &change.alert.labels, firing);
            }
            if firing && (change.previous != Some(Status::Firing) || !known) {
                self.groups
                    .add(&self.routes, change.fingerprint, &change.alert, change.at);
            } else {
                self.groups.update(change.fingerprint, &change.alert);
            }
        }
    }

    /// What to hold back of a group's alerts, in Alertmanager's order: everything when the route is muted by a time
    /// interval; otherwise alerts inhibited by a firing source alert, then alerts an active silence matches.
    fn held<'a>(
        &self,
        alerts: impl Iterator<Item = (Fingerprint, &'a HeldAlert)>,
        muted: bool,
        now: DateTime<Utc>,
    ) -> Held {
        let mut held = Held {
            muted,
            ..Held::default()
        };
        if muted {
            metrics::counter!("herald_notifications_suppressed_total", "reason" => "muted")
                .increment(1);
            return held;
        }
        let inhibiting = !self.inhibitor.is_empty() && !self.sources.is_empty();
        let silencing = !self.silences.is_empty();
        if !inhibiting && !silencing {
            return held;
        }
        for (fingerprint, alert) in alerts {
            let sources = self
                .sources
                .iter()
                .map(|(fingerprint, labels)| (*fingerprint, labels));
            let reason = if inhibiting && self.inhibitor.is_inhibited(alert.labels(), sources) {
                "inhibited"
            } else if silencing && !self.silences.muted_by(alert.labels(), now).is_empty() {
                "silenced"
            } else {
                continue;
            };
            held.suppressed.insert(fingerprint);
            metrics::counter!("herald_notifications_suppressed_total", "reason" => reason)
                .increment(1);
        }
        held
    }

    /// Flushes every group whose timer is due, from the alerts held in memory, and stores in one transaction every
    /// notification due with its integrations' log entries and the group records that changed. A flush that sends
    /// nothing and changes no record touches no store.
    async fn flush_due(&mut self) {
        let now = self.clock.now();
        let due = self.groups.due(now, FLUSH_BATCH);
        let mut batch = Vec::new();
        let mut logged = Vec::new();
        let mut notifications = Vec::new();
        let mut queued_deliveries = 0;
        let integrations = Arc::clone(&self.integrations);
        for id in due {
            let Some(group) = self.groups.get(&id) else {
                continue;
            };
            let muted = self.muted(&group.route_id, now);
            let receiver_integrations = integrations.receiver(&group.receiver);
            let configured: &[Integration] =
                receiver_integrations.map_or(&[], |receiver| &receiver.integrations);
            let recipients: Vec<(&str, bool)> = configured
                .iter()
                .map(|integration| (integration.key.as_str(), integration.sink.send_resolved()))
                .collect();
            let held = self.held(self.groups.members(&id), muted, now);
            let Some((flush, dropped)) = self.groups.flush(&id, &held, &recipients, now) else {
                continue;
            };
            let Some(entry) = flush.entry else {
                if !muted {
                    metrics::counter!("herald_notifications_suppressed_total", "reason" => "deduped")
                        .increment(1);
                }
                continue;
            };
            let Some(group) = dropped.as_ref().or_else(|| self.groups.get(&id)) else {
                continue;
            };
            let (receiver, key, labels) = (
                Arc::clone(&group.receiver),
                group.key.clone(),
                group.labels.to_labels(),
            );
            let mut notified = Some(
                flush
                    .alerts
                    .into_iter()
                    .map(|alert| NotifiedAlert {
                        fingerprint: alert.fingerprint,
                        status: alert.status,
                        alert: alert.alert,
                    })
                    .collect::<Vec<_>>(),
            );
            // One notification per reason (nearly always one): the last one made takes the alerts.
            let mut reasons: Vec<Reason> = Vec::new();
            for reason in flush.reasons.iter().flatten() {
                if !reasons.contains(reason) {
                    reasons.push(*reason);
                }
            }
            let max_alerts = receiver_integrations.and_then(|receiver| receiver.max_alerts);
            let external_url = &self.external_url;
            let mut made = 0;
            let mut make = |reason| {
                made += 1;
                let alerts = if made >= reasons.len() {
                    notified.take()
                } else {
                    notified.clone()
                };
                Notification::new(
                    receiver.to_string(),
                    reason,
                    key.to_string(),
                    labels.clone(),
                    alerts.unwrap_or_default(),
                    max_alerts,
                    external_url.clone(),
                )
            };
            let handing = &self.deliveries;
            let store = &self.store;
            let id = || store.delivery_ids(1);
            let mut claim = |integration: &Integration| {
                handing.take_slot(&receiver).then(|| {
                    let lease = integration.options.timeout + crate::deliver::LEASE_MARGIN;
                    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
                })
            };
            let mut payloads = Payloads::default();
            let mut deliveries = Vec::new();
            let mut told = Vec::new();
            for (integration, reason) in configured.iter().zip(&flush.reasons) {
                let Some(reason) = *reason else {
                    continue;
                };
                match sending(
                    integration,
                    reason,
                    &mut payloads,
                    || make(reason),
                    &mut claim,
                    &id,
                ) {
                    Sending::Delivery(delivery, notification) => {
                        told.push((integration.key.clone(), Some(deliveries.len())));
                        deliveries.push(*delivery);
                        notifications.push(notification);
                    }
                    Sending::Nothing => told.push((integration.key.clone(), None)),
                    Sending::Failed => {}
                }
            }
            let record = LogRecord {
                receiver: receiver.to_string(),
                group_key: key.to_string(),
                told: Told {
                    firing: entry.firing.iter().copied().collect(),
                    resolved: entry.resolved.iter().copied().collect(),
                    at: entry.at,
                },
                integrations: told.clone(),
            };
            let offset = queued_deliveries;
            queued_deliveries += deliveries.len();
            batch.push(Arc::new(Queued {
                deliveries,
                sent: Some(record),
            }));
            logged.push(Logged {
                receiver,
                group_key: key,
                entry,
                integrations: told
                    .into_iter()
                    .map(|(integration, index)| (integration, index.map(|index| offset + index)))
                    .collect(),
            });
        }
        self.commit(batch, logged, notifications, now).await;
    }

    /// Stores the notifications of a flush with their log entries, and the group records that changed, in one
    /// transaction (with the notifications an earlier one failed to store, first); then hands the deliveries to the
    /// engine. Deliveries claimed as they are queued, for integrations that keep no state, are handed before: they
    /// are sent while the transaction commits. The log entries are recorded in memory at once: when the store fails,
    /// the same notifications are stored again shortly, rather than decided again (which would send again what may
    /// have gone already).
    async fn commit(
        &mut self,
        queued: Vec<Arc<Queued>>,
        logged: Vec<Logged>,
        notifications: Vec<Arc<Notification>>,
        now: DateTime<Utc>,
    ) {
        metrics::gauge!("herald_aggregation_groups").set(self.groups.len() as f64);
        if queued.is_empty()
            && self.unwritten.queued.is_empty()
            && !self.groups.has_dirty()
            && self.forgotten.is_empty()
            && self.adopted.is_empty()
        {
            return;
        }
        let deliveries = || queued.iter().flat_map(|queued| queued.deliveries.iter());
        let ids: Vec<i64> = deliveries().map(|delivery| delivery.id).collect();
        let early: Vec<deliver::Handed> = deliveries()
            .zip(&notifications)
            .filter(|(delivery, _)| {
                delivery.claim_until.is_some()
                    && self
                        .integrations
                        .find(&delivery.receiver, &delivery.integration_key)
                        .is_some_and(|integration| !integration.sink.uses_state())
            })
            .map(|(delivery, notification)| deliver::Handed {
                record: delivery.record(now),
                notification: Some(Arc::clone(notification)),
                claimed: Some(None),
                stored: false,
            })
            .collect();
        let mut unwritten = std::mem::take(&mut self.unwritten);
        unwritten
            .early
            .extend(early.iter().map(|handed| handed.record.id));
        self.deliveries.handed(early);
        for logged in logged {
            for (integration, index) in &logged.integrations {
                self.groups.record(
                    &logged.receiver,
                    &logged.group_key,
                    integration,
                    index.and_then(|index| ids.get(index).copied()),
                    Arc::clone(&logged.entry),
                );
            }
        }
        unwritten.queued.extend(queued);
        unwritten.notifications.extend(notifications);
        let forgotten = std::mem::take(&mut self.forgotten);
        let adopted = std::mem::take(&mut self.adopted);
        let (groups, dropped) = self.groups.take_dirty();
        let changed: Vec<String> = groups.iter().map(|group| group.id.clone()).collect();
        let dispatched = Dispatched {
            groups,
            dropped: dropped.clone(),
            queued: unwritten.queued.clone(),
            forgotten: forgotten.clone(),
            adopted: adopted.clone(),
        };
        match self.store.dispatch(dispatched, now).await {
            Ok(records) => {
                let early: HashSet<i64> = unwritten.early.iter().copied().collect();
                // The engine gets each notification with its delivery, so it sends without reading it back.
                let handed = records
                    .into_iter()
                    .zip(unwritten.notifications)
                    .filter(|(enqueued, _)| !early.contains(&enqueued.record.id))
                    .map(|(enqueued, notification)| deliver::Handed {
                        record: enqueued.record,
                        notification: Some(notification),
                        claimed: enqueued.claimed,
                        stored: true,
                    })
                    .collect();
                self.deliveries.stored(unwritten.early);
                self.deliveries.handed(handed);
            }
            Err(error) => {
                tracing::warn!(%error, notifications = unwritten.queued.len(),
                    "cannot store notifications and group timers; trying again shortly");
                self.groups.mark_dirty(changed, dropped);
                self.forgotten.extend(forgotten);
                self.adopted.extend(adopted);
                unwritten.retry_at =
                    Some(now + chrono::Duration::from_std(RETRY_STORE).unwrap_or_default());
                self.unwritten = unwritten;
            }
        }
    }

    /// Takes in what the store changed in the notification log as deliveries died or were replayed.
    fn log_changed(&mut self, change: LogChange) {
        tracing::debug!(receiver = %change.receiver, integration = %change.integration_key,
            delivery = change.delivery, kind = ?change.kind, "notification log changed by a delivery");
        self.groups.apply(change);
    }
}

/// Starts the dispatcher task: firing alerts join the aggregation groups of the routes they match; each group
/// flushes after `group_wait`, then every `group_interval`, and sends what the notification log says is news. It
/// runs until `shutdown` is cancelled, taking in what was already submitted before it stops.
pub fn start(
    mut applied: watch::Receiver<Arc<Applied>>,
    deliveries: DeliveryHandle,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    silences: Arc<SilenceBook>,
    shutdown: CancellationToken,
) -> (DispatchHandle, tokio::task::JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Handed>();
    let current = Arc::clone(&applied.borrow_and_update());
    let mut dispatcher = Dispatcher {
        routes: Arc::clone(&current.routes),
        route_intervals: HashMap::new(),
        intervals: HashMap::new(),
        inhibitor: Inhibitor::new(Vec::new()),
        silences,
        sources: HashMap::new(),
        integrations: Arc::clone(&current.integrations),
        deliveries,
        store,
        clock,
        external_url: None,
        groups: GroupSet::default(),
        log_retention: chrono::Duration::zero(),
        pruned_at: DateTime::<Utc>::MIN_UTC,
        forgotten: Vec::new(),
        adopted: Vec::new(),
        unwritten: Unwritten::default(),
    };
    dispatcher.configure(&current);
    // Taken before the log is read, so no change committed after that read is missed (one committed before it is
    // applied again, which changes nothing).
    let mut log_changes = dispatcher.store.log_changes();
    let task = tokio::spawn(async move {
        dispatcher.restore().await;
        loop {
            let clock = Arc::clone(&dispatcher.clock);
            let deadline = [
                dispatcher.groups.next_deadline(),
                dispatcher.unwritten.retry_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let due = async {
                match deadline {
                    Some(deadline) => clock.sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let logged = async {
                match log_changes.as_mut() {
                    Some(changes) => changes.recv().await,
                    None => std::future::pending().await,
                }
            };
            // Changes first: a flush sees everything handed over before it (flushes run after every round anyway).
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    receiver.close();
                    while let Some(handed) = receiver.recv().await {
                        dispatcher.take(handed.changes);
                    }
                    break;
                }
                Some(change) = logged => dispatcher.log_changed(change),
                handed = receiver.recv() => match handed {
                    Some(handed) => {
                        // Everything already handed over is taken in at once (up to a bound), so its groups
                        // flush and are stored together.
                        let mut taken = handed.changes.len();
                        dispatcher.take(handed.changes);
                        while taken < TAKE_BATCH {
                            let Ok(handed) = receiver.try_recv() else {
                                break;
                            };
                            taken += handed.changes.len();
                            dispatcher.take(handed.changes);
                        }
                    }
                    None => break,
                },
                Ok(()) = applied.changed() => {
                    let current = Arc::clone(&applied.borrow_and_update());
                    dispatcher.reconfigure(&current).await;
                }
                () = due => {}
            }
            // A flush decides on the log as the store has it: deaths and replays committed so far count.
            while let Some(Ok(change)) = log_changes.as_mut().map(|changes| changes.try_recv()) {
                dispatcher.log_changed(change);
            }
            dispatcher.flush_due().await;
            dispatcher.prune_log();
        }
        dispatcher.persist().await;
    });
    let room = Arc::new(Semaphore::new(BACKLOG_ALERTS));
    (DispatchHandle { sender, room }, task)
}
