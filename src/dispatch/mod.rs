//! The dispatcher: alerts join the aggregation groups of the routes they match, groups flush on their timers (read
//! on the injected clock), and what the notification log says is news is queued in the outbox, one delivery per
//! integration, together with the log entry.

pub mod group;
pub mod groups;
pub mod sweeper;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Utc};

use crate::alert::{Alert, Fingerprint, Labels, Status};
use crate::clock::Clock;
use crate::deliver::DeliveryHandle;
use crate::inhibit::Inhibitor;
use crate::notification::{Notification, NotifiedAlert};
use crate::reload::Applied;
use crate::route::silence::SilenceBook;
use crate::route::tree::RouteNode;
use crate::sinks::integrations::{Integration, Integrations};
use crate::store::delivery::{NewDelivery, Queued};
use crate::store::{AlertQuery, SentRecord, StateChange, Store};
use crate::timeinterval::TimeInterval;

use self::group::Held;
use self::groups::GroupSet;

/// Where ingest and the sweeper hand status changes to the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatchHandle {
    sender: mpsc::UnboundedSender<Vec<StateChange>>,
}

impl DispatchHandle {
    pub fn submit(&self, changes: Vec<StateChange>) {
        if changes.is_empty() {
            return;
        }
        if self.sender.send(changes).is_err() {
            tracing::warn!("dispatcher has stopped; status changes not notified");
        }
    }
}

/// How long a group whose alerts could not be read waits before it tries again.
const RETRY_READ: std::time::Duration = std::time::Duration::from_secs(1);

/// One delivery per integration of the receiver that takes this notification: integrations without
/// `send_resolved` get only its firing alerts, and nothing when none fires.
fn deliveries(integrations: &[Integration], notification: &Notification) -> Vec<NewDelivery> {
    let mut deliveries = Vec::with_capacity(integrations.len());
    for integration in integrations {
        let firing_only;
        let notification = if integration.sink.send_resolved() {
            notification
        } else {
            let mut firing = notification.clone();
            firing.alerts.retain(|alert| alert.status == Status::Firing);
            if firing.alerts.is_empty() {
                continue;
            }
            firing.status = Status::Firing;
            firing_only = firing;
            &firing_only
        };
        let payload = match serde_json::to_string(notification) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, receiver = %notification.receiver, "cannot encode a notification");
                continue;
            }
        };
        deliveries.push(NewDelivery {
            receiver: notification.receiver.clone(),
            integration: integration.sink.integration().to_owned(),
            integration_key: integration.key.clone(),
            destination: integration.sink.destination(),
            group_key: notification.group_key.clone(),
            status: notification.status.as_str().to_owned(),
            alert_count: notification.alerts.len(),
            payload,
        });
    }
    deliveries
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
                    self.groups.restore(&self.routes, record);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read stored groups"),
        }
        match self.store.sent().await {
            Ok(log) => log
                .into_iter()
                .for_each(|record| self.groups.restore_sent(record)),
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
                    self.groups
                        .add(&self.routes, stored.fingerprint, &stored.alert, now);
                    self.track_source(stored.fingerprint, &stored.alert.labels, true);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read stored alerts to rebuild groups"),
        }
        for (id, fingerprint) in self.groups.announced_firing() {
            self.groups.add_member(&id, fingerprint);
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
        if forgotten > 0 {
            tracing::debug!(
                forgotten,
                "forgot notification log entries of groups gone past retention"
            );
        }
    }

    /// Stores the groups changed since the last call.
    async fn persist(&mut self) {
        metrics::gauge!("herald_aggregation_groups").set(self.groups.len() as f64);
        let (changed, dropped) = self.groups.take_dirty();
        if changed.is_empty() && dropped.is_empty() {
            return;
        }
        if let Err(error) = self.store.save_groups(changed, dropped).await {
            tracing::warn!(%error, "cannot store aggregation groups; their timers restart if herald does");
        }
    }

    fn take(&mut self, changes: Vec<StateChange>) {
        for change in changes {
            let firing = change.status == Status::Firing;
            self.track_source(change.fingerprint, &change.alert.labels, firing);
            // Resolves need nothing more: a group sees its members' status when it flushes. Timers count from
            // when the change was stored, however late it is seen here.
            if firing && change.previous != Some(Status::Firing) {
                self.groups
                    .add(&self.routes, change.fingerprint, &change.alert, change.at);
            }
        }
    }

    /// What to hold back of a group's alerts, in Alertmanager's order: everything when the route is muted by a time
    /// interval; otherwise alerts inhibited by a firing source alert, then alerts an active silence matches.
    fn held(&self, alerts: &[(Fingerprint, Alert)], muted: bool, now: DateTime<Utc>) -> Held {
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
        for (fingerprint, alert) in alerts {
            let sources = self
                .sources
                .iter()
                .map(|(fingerprint, labels)| (*fingerprint, labels));
            let reason = if inhibiting && self.inhibitor.is_inhibited(&alert.labels, sources) {
                "inhibited"
            } else if !self.silences.muted_by(&alert.labels, now).is_empty() {
                "silenced"
            } else {
                continue;
            };
            held.suppressed.insert(*fingerprint);
            metrics::counter!("herald_notifications_suppressed_total", "reason" => reason)
                .increment(1);
        }
        held
    }

    /// Flushes every group whose timer is due: one read for all their alerts, and one transaction that queues
    /// every notification with its log entry.
    async fn flush_due(&mut self) {
        let now = self.clock.now();
        let due = self.groups.due(now);
        if due.is_empty() {
            return;
        }
        let retry_at = now + chrono::Duration::from_std(RETRY_READ).unwrap_or_default();
        let members: BTreeSet<Fingerprint> = due
            .iter()
            .filter_map(|id| self.groups.get(id))
            .flat_map(|group| group.members.iter().copied())
            .collect();
        let stored: HashMap<Fingerprint, Alert> = match self
            .store
            .alerts_by_fingerprint(members.into_iter().collect())
            .await
        {
            Ok(stored) => stored
                .into_iter()
                .map(|stored| (stored.fingerprint, stored.alert))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, groups = due.len(), "cannot read the due groups' alerts; trying again shortly");
                for id in &due {
                    self.groups.postpone(id, retry_at);
                }
                return;
            }
        };
        let mut batch = Vec::new();
        let mut logged = Vec::new();
        for id in due {
            let Some(group) = self.groups.get(&id) else {
                continue;
            };
            let (receiver, key, labels) = (
                group.receiver.clone(),
                group.key.clone(),
                group.labels.clone(),
            );
            let muted = self.muted(&group.route_id, now);
            let alerts: Vec<(Fingerprint, Alert)> = group
                .members
                .iter()
                .filter_map(|fingerprint| {
                    stored
                        .get(fingerprint)
                        .map(|alert| (*fingerprint, alert.clone()))
                })
                .collect();
            let integrations = self.integrations.receiver(&receiver);
            let send_resolved = integrations.is_some_and(|receiver| {
                receiver
                    .integrations
                    .iter()
                    .any(|integration| integration.sink.send_resolved())
            });
            let held = self.held(&alerts, muted, now);
            let Some(flush) = self.groups.flush(&id, alerts, &held, send_resolved, now) else {
                continue;
            };
            let Some((reason, alerts)) = flush.send else {
                metrics::counter!("herald_notifications_suppressed_total", "reason" => "deduped")
                    .increment(1);
                continue;
            };
            let notified = alerts
                .into_iter()
                .map(|alert| NotifiedAlert {
                    fingerprint: alert.fingerprint,
                    status: alert.status,
                    alert: alert.alert,
                })
                .collect();
            let max_alerts = integrations.and_then(|receiver| receiver.max_alerts);
            let notification = Notification::new(
                receiver.clone(),
                reason,
                key.clone(),
                labels,
                notified,
                max_alerts,
                self.external_url.clone(),
            );
            let deliveries = integrations.map_or_else(Vec::new, |receiver| {
                deliveries(&receiver.integrations, &notification)
            });
            let sent = flush.entry.as_ref().map(|entry| SentRecord {
                receiver: receiver.clone(),
                group_key: key.clone(),
                firing: entry.firing.iter().copied().collect(),
                resolved: entry.resolved.iter().copied().collect(),
                at: entry.at,
            });
            batch.push(Queued { deliveries, sent });
            logged.push((id, receiver, key, flush.entry));
        }
        if batch.is_empty() {
            return;
        }
        // The deliveries and the log entries are stored together: a notification is queued and logged, or neither
        // (and its group flushes again shortly).
        match self.store.enqueue(batch, now).await {
            Ok(queued) => {
                self.deliveries.queued(queued);
                for (_, receiver, key, entry) in logged {
                    if let Some(entry) = entry {
                        self.groups.record(&receiver, &key, entry);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, groups = logged.len(), "cannot queue notifications; trying again shortly");
                for (id, ..) in logged {
                    self.groups.postpone(&id, retry_at);
                }
            }
        }
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
    let (sender, mut receiver) = mpsc::unbounded_channel::<Vec<StateChange>>();
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
    };
    dispatcher.configure(&current);
    let task = tokio::spawn(async move {
        dispatcher.restore().await;
        loop {
            let clock = Arc::clone(&dispatcher.clock);
            let deadline = dispatcher.groups.next_deadline();
            let due = async {
                match deadline {
                    Some(deadline) => clock.sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changes = receiver.recv() => match changes {
                    Some(changes) => dispatcher.take(changes),
                    None => break,
                },
                Ok(()) = applied.changed() => {
                    let current = Arc::clone(&applied.borrow_and_update());
                    dispatcher.reconfigure(&current).await;
                }
                () = due => {
                    dispatcher.flush_due().await;
                    dispatcher.prune_log();
                }
                () = shutdown.cancelled() => {
                    receiver.close();
                    while let Some(changes) = receiver.recv().await {
                        dispatcher.take(changes);
                    }
                    break;
                }
            }
            dispatcher.persist().await;
        }
        dispatcher.persist().await;
    });
    (DispatchHandle { sender }, task)
}
