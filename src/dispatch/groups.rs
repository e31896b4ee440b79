//! Every aggregation group of the route tree, their flush times in order, the alerts they hold and the notification
//! log (per integration of each receiver): which groups an alert joins, which are due, and what a due group sends to
//! which integration. Pure state in memory, so a flush that sends nothing costs no I/O; the dispatcher task stores
//! what changes durably.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::group::{Entry, Flush, Group, Held, Recipient, SentEntry, Timers, next_tick};
use super::held::HeldAlert;
use crate::alert::{Alert, Fingerprint, PackedLabels, label_set};
use crate::route::tree::RouteNode;
use crate::store::delivery::RECEIVER_ENTRY;
use crate::store::{GroupRecord, LogChange, LogChangeKind, SentRecord, Told};

/// Shrinks a table that holds under a quarter of its room (after a burst of groups or alerts that are gone) to
/// twice what it holds, giving the rest back.
pub fn shrink<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// A group's identity in the set: its route's id and its labels (route keys alone are not unique among siblings).
/// Shared by the set's indexes.
pub type GroupId = Arc<str>;

/// An alert some group holds, and how many groups hold it.
#[derive(Debug)]
struct Member {
    alert: HeldAlert,
    groups: u32,
}

/// One integration's entry in a group's notification log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Its key in its receiver (`webhook/0`).
    pub integration: Arc<str>,
    /// The delivery carrying its last notification, if one does.
    pub delivery: Option<i64>,
    pub entry: Entry,
}

/// A group's notification log: an entry per integration of its receiver that was told something (most receivers
/// have one).
type GroupLog = Vec<Logged>;

fn find<'a>(log: Option<&'a GroupLog>, integration: &str) -> Option<&'a Logged> {
    log?.iter()
        .find(|logged| &*logged.integration == integration)
}

/// When the latest notification of a group's log was made, among those that told something firing.
fn last_firing(log: &GroupLog) -> Option<DateTime<Utc>> {
    log.iter()
        .filter(|logged| logged.entry.entries().any(|entry| !entry.firing.is_empty()))
        .map(|logged| logged.entry.at())
        .max()
}

fn entry_of(told: Told) -> SentEntry {
    SentEntry {
        firing: told.firing.into_iter().collect(),
        resolved: told.resolved.into_iter().collect(),
        at: told.at,
    }
}

/// `entry`, shared with an equal one of `log` when there is one.
fn shared(log: &GroupLog, entry: SentEntry) -> Arc<SentEntry> {
    log.iter()
        .flat_map(|logged| match &logged.entry {
            Entry::Sent(told) | Entry::Dead { parked: told, .. } => Some(told),
        })
        .find(|told| ***told == entry)
        .map_or_else(|| Arc::new(entry), Arc::clone)
}

#[derive(Debug, Default)]
pub struct GroupSet {
    /// Boxed: the table has room for twice as many groups as it holds, and an empty slot then costs 24 bytes.
    groups: HashMap<GroupId, Box<Group>>,
    /// (next flush, group) for every group.
    timers: BTreeSet<(DateTime<Utc>, GroupId)>,
    /// receiver -> group key -> what each integration was last told. A live group shares its key.
    log: HashMap<Arc<str>, HashMap<Arc<str>, GroupLog>>,
    /// The current version of every alert a group holds.
    /// Boxed, like `groups`.
    alerts: HashMap<Fingerprint, Box<Member>>,
    /// Groups whose record may have to be written or deleted (created, first flushed, first flush moved) since the
    /// last `take_dirty`.
    dirty: BTreeSet<GroupId>,
    /// Groups with a stored record dropped since the last `take_dirty`.
    dropped: BTreeSet<GroupId>,
    /// Route ids and receiver names, held once for all the groups that name them.
    names: HashSet<Arc<str>>,
}

fn timers_of(route: &RouteNode) -> Timers {
    Timers {
        group_wait: route.group_wait,
        group_interval: route.group_interval,
        repeat_interval: route.repeat_interval,
    }
}

impl GroupSet {
    /// The one shared copy of `name`.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&shared));
        shared
    }

    /// Puts back a stored group, its next flush derived from the stored times: a group that has not flushed keeps
    /// its first flush (at once when it passed meanwhile); one that has flushed ticks on from its first flush.
    /// Returns false (and forgets it) when its route no longer exists or no longer gives the same key, as after a
    /// configuration change.
    pub fn restore(&mut self, routes: &RouteNode, record: GroupRecord, now: DateTime<Utc>) -> bool {
        let id: GroupId = Arc::from(record.id.as_str());
        let Some(route) = routes.find(&record.route_id) else {
            self.dropped.insert(id);
            return false;
        };
        if route.group_key(&record.labels) != record.key || route.receiver != record.receiver {
            self.dropped.insert(id);
            return false;
        }
        let timers = timers_of(route);
        let (route_id, receiver) = (self.intern(&record.route_id), self.intern(&record.receiver));
        let key = self.shared_key(&record.receiver, &record.key);
        let mut group = Group::new(
            key,
            route_id,
            receiver,
            PackedLabels::new(&record.labels),
            timers,
            now,
        );
        if record.flushed {
            group.anchor = Some(record.first_flush);
            group.next_flush = next_tick(record.first_flush, timers.group_interval, now, true);
        } else {
            group.next_flush = record.first_flush;
        }
        group.stored = true;
        self.timers.insert((group.next_flush, Arc::clone(&id)));
        self.groups.insert(id, Box::new(group));
        true
    }

    /// Puts back the notification log. An entry of a whole receiver (written when the log was kept per receiver)
    /// becomes the entry of each integration `integrations` lists for the receiver that has none; those copies are
    /// returned, to be stored in its place. It is kept too, under its own key, so that it is forgotten with its
    /// group when no integration took it.
    pub fn restore_log(
        &mut self,
        records: Vec<SentRecord>,
        integrations: impl Fn(&str) -> Vec<String>,
    ) -> Vec<SentRecord> {
        let (receivers, records): (Vec<SentRecord>, Vec<SentRecord>) = records
            .into_iter()
            .partition(|record| record.integration_key == RECEIVER_ENTRY);
        for record in records {
            self.restore_sent(record);
        }
        let mut adopted = Vec::new();
        for record in receivers {
            for integration in integrations(&record.receiver) {
                let logged = self
                    .log
                    .get(record.receiver.as_str())
                    .and_then(|log| log.get(record.group_key.as_str()));
                if find(logged, &integration).is_some() {
                    continue;
                }
                let copy = SentRecord {
                    integration_key: integration,
                    ..record.clone()
                };
                self.restore_sent(copy.clone());
                adopted.push(copy);
            }
            self.restore_sent(record);
        }
        adopted
    }

    /// Puts back one integration's notification log entry.
    fn restore_sent(&mut self, record: SentRecord) {
        let receiver = self.intern(&record.receiver);
        let integration = self.intern(&record.integration_key);
        let log = self
            .log
            .entry(receiver)
            .or_default()
            .entry(Arc::from(record.group_key))
            .or_insert_with(|| Vec::with_capacity(1));
        let told = shared(log, entry_of(record.told));
        let entry = if record.dead {
            Entry::Dead {
                parked: told,
                had: record.had.map(|had| shared(log, entry_of(had))),
            }
        } else {
            Entry::Sent(told)
        };
        log.retain(|logged| logged.integration != integration);
        log.push(Logged {
            integration,
            delivery: record.delivery,
            entry,
        });
    }

    /// `key` as the log of `receiver` holds it, when it has an entry for it; else a new copy.
    fn shared_key(&self, receiver: &str, key: &str) -> Arc<str> {
        self.log
            .get(receiver)
            .and_then(|log| log.get_key_value(key))
            .map_or_else(|| Arc::from(key), |(shared, _)| Arc::clone(shared))
    }

    /// The group log of `receiver` and group `key`.
    fn group_log(&self, receiver: &str, key: &str) -> Option<&GroupLog> {
        self.log.get(receiver)?.get(key)
    }

    /// What `integration` of `receiver` was last told about the group with `key`.
    pub fn last_sent(&self, receiver: &str, integration: &str, key: &str) -> Option<&Logged> {
        find(self.group_log(receiver, key), integration)
    }

    /// After a restart, groups without a stored record whose log still lists firing alerts had announced them
    /// before: they tick on from the log's last send (every send happens on a tick of the group's schedule), not
    /// from a new group_wait.
    pub fn adopt_log_schedules(&mut self, now: DateTime<Utc>) {
        let mut moved = Vec::new();
        for (id, group) in &mut self.groups {
            if group.stored || group.flushed() {
                continue;
            }
            let Some(at) = self
                .log
                .get(&group.receiver)
                .and_then(|log| log.get(&group.key))
                .and_then(last_firing)
            else {
                continue;
            };
            moved.push((group.next_flush, id.clone()));
            group.anchor = Some(at);
            group.announced = true;
            group.next_flush = next_tick(at, group.timers.group_interval, now, true);
            self.timers.insert((group.next_flush, id.clone()));
        }
        for (at, id) in moved {
            if self
                .groups
                .get(&id)
                .is_some_and(|group| group.next_flush != at)
            {
                self.timers.remove(&(at, id));
            }
        }
    }

    /// Log entries' firing alerts that no group holds now, by the group they were sent for: after a restart, those
    /// that resolved meanwhile rejoin their group (`rejoin`) so their resolve is still sent.
    pub fn announced_missing(&self) -> Vec<(GroupId, Fingerprint)> {
        let mut found = Vec::new();
        for (id, group) in &self.groups {
            let Some(log) = self.group_log(&group.receiver, &group.key) else {
                continue;
            };
            let missing: BTreeSet<Fingerprint> = log
                .iter()
                .flat_map(|logged| logged.entry.entries())
                .flat_map(|entry| entry.firing.iter())
                .filter(|fingerprint| !group.members.contains(fingerprint))
                .copied()
                .collect();
            found.extend(
                missing
                    .into_iter()
                    .map(|fingerprint| (id.clone(), fingerprint)),
            );
        }
        found
    }

    fn hold(&mut self, fingerprint: Fingerprint, alert: &Alert) {
        self.alerts
            .entry(fingerprint)
            .and_modify(|member| member.groups += 1)
            .or_insert_with(|| {
                Box::new(Member {
                    alert: HeldAlert::new(alert),
                    groups: 1,
                })
            });
    }

    fn release(&mut self, fingerprint: &Fingerprint) {
        if let Some(member) = self.alerts.get_mut(fingerprint) {
            member.groups = member.groups.saturating_sub(1);
            if member.groups == 0 {
                self.alerts.remove(fingerprint);
            }
        }
    }

    /// Puts an alert back into an existing group (see `announced_missing`).
    pub fn rejoin(&mut self, id: &str, fingerprint: Fingerprint, alert: &Alert) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        if group.members.insert(fingerprint) {
            self.hold(fingerprint, alert);
        }
    }

    /// Whether some group holds the alert.
    pub fn holds(&self, fingerprint: &Fingerprint) -> bool {
        self.alerts.contains_key(fingerprint)
    }

    /// Takes a new version of an alert some group holds (a re-send: new annotations, a later end); returns false when
    /// no group holds it.
    pub fn update(&mut self, fingerprint: Fingerprint, alert: &Alert) -> bool {
        match self.alerts.get_mut(&fingerprint) {
            Some(member) => {
                member.alert = HeldAlert::new(alert);
                true
            }
            None => false,
        }
    }

    /// The group records to write and to delete since the last call. Only groups that have not announced anything
    /// are stored (their timer must survive a restart); a group that has is derived from the log, and its record is
    /// deleted.
    pub fn take_dirty(&mut self) -> (Vec<GroupRecord>, Vec<String>) {
        let mut changed = Vec::new();
        let mut deleted: Vec<String> = std::mem::take(&mut self.dropped)
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        for id in std::mem::take(&mut self.dirty) {
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            if group.announced {
                if group.stored {
                    group.stored = false;
                    deleted.push(id.to_string());
                }
                continue;
            }
            group.stored = true;
            changed.push(GroupRecord {
                key: group.key.to_string(),
                route_id: group.route_id.to_string(),
                receiver: group.receiver.to_string(),
                labels: group.labels.to_labels(),
                first_flush: group.anchor.unwrap_or(group.next_flush),
                flushed: group.flushed(),
                id: id.to_string(),
            });
        }
        (changed, deleted)
    }

    /// Whether a group record changed or was dropped since the last `take_dirty`.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty() || !self.dropped.is_empty()
    }

    /// Puts a firing alert into the group of every route it matches, creating groups as needed, and keeps its
    /// current version.
    pub fn add(
        &mut self,
        routes: &RouteNode,
        fingerprint: Fingerprint,
        alert: &Alert,
        now: DateTime<Utc>,
    ) {
        for route in routes.matching(&alert.labels) {
            let labels = route.group_labels(&alert.labels);
            let set = label_set(&labels);
            let id: GroupId = Arc::from(format!("{}:{set}", route.id));
            if !self.groups.contains_key(&id) {
                let key = self.shared_key(&route.receiver, &format!("{}:{set}", route.key));
                let group = Group::new(
                    key,
                    self.intern(&route.id),
                    self.intern(&route.receiver),
                    PackedLabels::new(&labels),
                    timers_of(route),
                    now,
                );
                self.dirty.insert(Arc::clone(&id));
                self.timers.insert((group.next_flush, Arc::clone(&id)));
                self.groups.insert(Arc::clone(&id), Box::new(group));
            }
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            let before = group.next_flush;
            let joined = !group.members.contains(&fingerprint);
            if group.add(fingerprint, alert.starts_at, now) {
                self.timers.remove(&(before, Arc::clone(&id)));
                self.timers.insert((group.next_flush, Arc::clone(&id)));
                self.dirty.insert(id);
            }
            if joined {
                self.hold(fingerprint, alert);
            } else if let Some(member) = self.alerts.get_mut(&fingerprint) {
                member.alert = HeldAlert::new(alert);
            }
        }
    }

    /// When the earliest group is due.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Up to `limit` groups due at `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Vec<GroupId> {
        self.timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, id)| Arc::clone(id))
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<&Group> {
        self.groups.get(id).map(|group| &**group)
    }

    /// The alerts a group holds, with their current versions.
    pub fn members(&self, id: &str) -> impl Iterator<Item = (Fingerprint, &HeldAlert)> {
        self.groups
            .get(id)
            .into_iter()
            .flat_map(|group| group.members.iter())
            .filter_map(|fingerprint| {
                self.alerts
                    .get(fingerprint)
                    .map(|member| (*fingerprint, &member.alert))
            })
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Alerts the groups hold.
    pub fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    /// Flushes a group with its members' current alerts, deciding for each of `integrations` (key, `send_resolved`)
    /// against its own log entry. The group is rescheduled, or dropped once empty (and then returned with the
    /// decision); the decision's log entry is recorded with `record` once the notifications have been handed on.
    pub fn flush(
        &mut self,
        id: &GroupId,
        held: &Held,
        integrations: &[(&str, bool)],
        now: DateTime<Utc>,
    ) -> Option<(Flush, Option<Group>)> {
        let group = self.groups.get_mut(id)?;
        self.timers.remove(&(group.next_flush, Arc::clone(id)));
        let (first, announced) = (!group.flushed(), group.announced);
        let log = self
            .log
            .get(&group.receiver)
            .and_then(|log| log.get(&group.key));
        let recipients: Vec<Recipient<'_>> = integrations
            .iter()
            .map(|(key, send_resolved)| Recipient {
                last: find(log, key).map(|logged| &logged.entry),
                send_resolved: *send_resolved,
            })
            .collect();
        let alerts = &self.alerts;
        let flush = group.flush(
            |fingerprint| alerts.get(fingerprint).map(|member| &member.alert),
            held,
            &recipients,
            now,
        );
        let mut dropped = None;
        if group.is_empty() {
            if group.stored {
                self.dropped.insert(Arc::clone(id));
            }
            dropped = self.groups.remove(id).map(|group| *group);
            self.dirty.remove(id);
        } else {
            self.timers.insert((group.next_flush, Arc::clone(id)));
            // A record to write (its first flush) or to delete (the first announcement of a stored group).
            if first || (group.stored && group.announced && !announced) {
                self.dirty.insert(Arc::clone(id));
            }
        }
        for fingerprint in &flush.done {
            self.release(fingerprint);
        }
        Some((flush, dropped))
    }

    /// Marks group records to be written or deleted again (their last store failed): the store is as it was.
    pub fn mark_dirty(&mut self, changed: Vec<String>, deleted: Vec<String>) {
        for id in changed {
            let key = self
                .groups
                .get_key_value(id.as_str())
                .map(|(key, _)| Arc::clone(key));
            if let Some(id) = key {
                if let Some(group) = self.groups.get_mut(&id) {
                    group.stored = false;
                }
                self.dirty.insert(id);
            }
        }
        for id in deleted {
            let key = self
                .groups
                .get_key_value(id.as_str())
                .map(|(key, _)| Arc::clone(key));
            match key {
                Some(id) => {
                    if let Some(group) = self.groups.get_mut(&id) {
                        group.stored = true;
                    }
                    self.dirty.insert(id);
                }
                None => {
                    self.dropped.insert(Arc::from(id));
                }
            }
        }
    }

    /// Records what `integration` of `receiver` was sent for the group with `key`, and the delivery carrying it.
    pub fn record(
        &mut self,
        receiver: &str,
        key: &Arc<str>,
        integration: &str,
        delivery: Option<i64>,
        entry: Arc<SentEntry>,
    ) {
        let receiver = self.intern(receiver);
        let integration = self.intern(integration);
        let log = self
            .log
            .entry(receiver)
            .or_default()
            .entry(Arc::clone(key))
            .or_insert_with(|| Vec::with_capacity(1));
        let logged = Logged {
            integration,
            delivery,
            entry: Entry::Sent(entry),
        };
        match log
            .iter_mut()
            .find(|old| old.integration == logged.integration)
        {
            Some(old) => *old = logged,
            None => log.push(logged),
        }
    }

    /// Takes in a change the store made to the log as a delivery died or was replayed, if the integration's entry
    /// is still the one that delivery carries (a later notification replaces it).
    pub fn apply(&mut self, change: LogChange) {
        let Some(logged) = self
            .log
            .get_mut(change.receiver.as_str())
            .and_then(|log| log.get_mut(change.group_key.as_str()))
            .and_then(|log| {
                log.iter_mut().find(|logged| {
                    *logged.integration == *change.integration_key
                        && logged.delivery == Some(change.delivery)
                })
            })
        else {
            return;
        };
        logged.entry = match (&logged.entry, change.kind) {
            (Entry::Sent(parked), LogChangeKind::Dead { had }) => Entry::Dead {
                parked: Arc::clone(parked),
                had: had.map(|had| Arc::new(entry_of(had))),
            },
            (Entry::Dead { parked, .. }, LogChangeKind::Replayed) => {
                Entry::Sent(Arc::clone(parked))
            }
            (entry, _) => entry.clone(),
        };
    }

    /// Gives back the room of tables that emptied.
    pub fn compact(&mut self) {
        shrink(&mut self.groups);
        shrink(&mut self.alerts);
        for entries in self.log.values_mut() {
            shrink(entries);
        }
        shrink(&mut self.log);
    }

    /// Forgets log entries written before `before` whose group no longer exists; returns them as (receiver, group
    /// key), to be deleted from the store too.
    pub fn forget_sent(&mut self, before: DateTime<Utc>) -> Vec<(String, String)> {
        let live: HashSet<(&str, &str)> = self
            .groups
            .values()
            .map(|group| (&*group.receiver, &*group.key))
            .collect();
        let mut forgotten = Vec::new();
        for (receiver, entries) in &self.log {
            forgotten.extend(
                entries
                    .iter()
                    .filter(|(key, log)| {
                        log.iter().all(|logged| logged.entry.at() < before)
                            && !live.contains(&(&**receiver, &**key))
                    })
                    .map(|(key, _)| (receiver.to_string(), key.to_string())),
            );
        }
        for (receiver, key) in &forgotten {
            if let Some(entries) = self.log.get_mut(receiver.as_str()) {
                entries.remove(key.as_str());
            }
        }
        self.log.retain(|_, entries| !entries.is_empty());
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;
    use crate::dispatch::group::Reason;

    fn t(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    fn routes() -> RouteNode {
        let yaml = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - receiver: pager
      matchers: ['severity="page"']
      group_wait: 0s
      continue: true
receivers: [{name: default}, {name: pager}]
"#;
        RouteNode::build(
            &crate::config::load_str(yaml, "t.yaml")
                .unwrap()
                .settings
                .route,
        )
        .unwrap()
    }

    const HOOK: &str = "webhook/0";

    /// A log entry of `integration` for `group`, told `firing` at `at`.
    fn record(
        group: &Group,
        integration: &str,
        firing: Vec<Fingerprint>,
        at: DateTime<Utc>,
    ) -> SentRecord {
        SentRecord {
            receiver: group.receiver.to_string(),
            integration_key: integration.into(),
            group_key: group.key.to_string(),
            told: Told {
                firing,
                resolved: vec![],
                at,
            },
            delivery: None,
            dead: false,
            had: None,
        }
    }

    fn alert(name: &str, severity: &str) -> (Fingerprint, Alert) {
        let mut alert = test_alert(name, &[("severity", severity), ("instance", name)]);
        alert.starts_at = t(0);
        (alert.fingerprint(), alert)
    }

    #[test]
    fn alerts_join_one_group_per_route_and_group_labels() {
        let routes = routes();
        let mut set = GroupSet::default();
        let (a, b, c) = (
            alert("Down", "page"),
            alert("Down", "warn"),
            alert("Slow", "warn"),
        );
        for (fingerprint, alert) in [&a, &b, &c] {
            set.add(&routes, *fingerprint, alert, t(0));
        }
        // Down/page goes to pager only: `continue` moves on to siblings, and the root takes an alert only when no
        // child matched.
        assert_eq!(set.len(), 3, "pager:Down, default:Down, default:Slow");
        assert_eq!(
            set.next_deadline(),
            Some(t(0)),
            "pager flushes at once (group_wait 0s)"
        );
        let due = set.due(t(0), usize::MAX);
        assert_eq!(due.len(), 1);
        assert_eq!(&*set.get(&due[0]).unwrap().receiver, "pager");
        assert_eq!(set.due(t(10), usize::MAX).len(), 3);
        let pager = set.get(&due[0]).unwrap();
        assert_eq!(&*pager.key, r#"{}/{severity="page"}:{alertname="Down"}"#);
    }

    #[test]
    fn log_entries_of_live_groups_are_kept_and_old_ones_of_gone_groups_forgotten() {
        let routes = routes();
        let mut set = GroupSet::default();
        let (fp, down) = alert("Down", "warn");
        set.add(&routes, fp, &down, t(0));
        let id = set.due(t(10), usize::MAX).remove(0);
        let group = set.get(&id).unwrap().clone();
        let entry = |at| {
            Arc::new(SentEntry {
                firing: [fp].into(),
                resolved: Default::default(),
                at,
            })
        };
        set.record(&group.receiver, &group.key, HOOK, Some(1), entry(t(10)));
        set.record(
            "default",
            &Arc::from("{}:{alertname=\"Gone\"}"),
            HOOK,
            Some(2),
            entry(t(10)),
        );
        // Gone too, but one of its integrations was told recently.
        set.record(
            "default",
            &Arc::from("{}:{alertname=\"Mixed\"}"),
            HOOK,
            None,
            entry(t(10)),
        );
        set.record(
            "default",
            &Arc::from("{}:{alertname=\"Mixed\"}"),
            "log/0",
            None,
            entry(t(100)),
        );
        set.record(
            "default",
            &Arc::from("{}:{alertname=\"Recent\"}"),
            HOOK,
            None,
            entry(t(100)),
        );
        assert_eq!(
            set.forget_sent(t(50)),
            vec![("default".to_string(), "{}:{alertname=\"Gone\"}".to_string())],
            "only the old entry of a group that is gone"
        );
        assert!(set.last_sent(&group.receiver, HOOK, &group.key).is_some());
        for kept in ["Recent", "Mixed"] {
            let key = format!("{{}}:{{alertname=\"{kept}\"}}");
            assert!(set.last_sent("default", HOOK, &key).is_some(), "{kept}");
        }
    }

    #[test]
    fn deliveries_that_die_or_are_replayed_change_the_entry_they_carry_and_no_later_one() {
        let routes = routes();
        let mut set = GroupSet::default();
        let (fp, down) = alert("Down", "warn");
        set.add(&routes, fp, &down, t(0));
        let id = set.due(t(10), usize::MAX).remove(0);
        let integrations = [(HOOK, true), ("log/0", true)];
        let (flush, _) = set
            .flush(&id, &Held::default(), &integrations, t(10))
            .unwrap();
        assert_eq!(flush.reasons, [Some(Reason::First); 2]);
        let group = set.get(&id).unwrap().clone();
        let entry = flush.entry.unwrap();
        set.record(
            &group.receiver,
            &group.key,
            HOOK,
            Some(1),
            Arc::clone(&entry),
        );
        set.record(
            &group.receiver,
            &group.key,
            "log/0",
            Some(2),
            Arc::clone(&entry),
        );
        let change = |delivery, kind| LogChange {
            receiver: group.receiver.to_string(),
            integration_key: HOOK.into(),
            group_key: group.key.to_string(),
            delivery,
            kind,
        };
        set.apply(change(7, LogChangeKind::Dead { had: None }));
        assert!(
            matches!(
                set.last_sent(&group.receiver, HOOK, &group.key)
                    .unwrap()
                    .entry,
                Entry::Sent(_)
            ),
            "another delivery's death changes nothing"
        );
        set.apply(change(1, LogChangeKind::Dead { had: None }));
        assert_eq!(
            set.last_sent(&group.receiver, HOOK, &group.key)
                .unwrap()
                .entry,
            Entry::Dead {
                parked: Arc::clone(&entry),
                had: None
            }
        );
        let (held, _) = set
            .flush(&id, &Held::default(), &integrations, t(310))
            .unwrap();
        assert_eq!(held.reasons, [None, None], "its dead letter holds it");
        set.apply(change(1, LogChangeKind::Replayed));
        assert_eq!(
            set.last_sent(&group.receiver, HOOK, &group.key)
                .unwrap()
                .entry,
            Entry::Sent(entry)
        );
    }

    #[test]
    fn an_entry_of_a_whole_receiver_becomes_that_of_each_integration_without_one() {
        let routes = routes();
        let mut set = GroupSet::default();
        let (fp, down) = alert("Down", "warn");
        set.add(&routes, fp, &down, t(0));
        let id = set.due(t(10), usize::MAX).remove(0);
        let group = set.get(&id).unwrap().clone();
        let mut own = record(&group, "log/0", vec![], t(5));
        own.dead = true;
        let adopted = set.restore_log(
            vec![record(&group, RECEIVER_ENTRY, vec![fp], t(5)), own],
            |receiver| {
                assert_eq!(receiver, &*group.receiver);
                vec![HOOK.into(), "slack/0".into(), "log/0".into()]
            },
        );
        let copied: Vec<&str> = adopted
            .iter()
            .map(|record| record.integration_key.as_str())
            .collect();
        assert_eq!(copied, [HOOK, "slack/0"], "log/0 has its own");
        let told = |integration| match &set
            .last_sent(&group.receiver, integration, &group.key)
            .unwrap()
            .entry
        {
            Entry::Sent(told) => Arc::clone(told),
            Entry::Dead { .. } => panic!("sent"),
        };
        assert!(
            Arc::ptr_eq(&told(HOOK), &told("slack/0")),
            "integrations told the same share it"
        );
        assert!(
            Arc::ptr_eq(&told(HOOK), &told(RECEIVER_ENTRY)),
            "kept until forgotten with its group"
        );
        let integrations = [(HOOK, true), ("slack/0", true), ("log/0", true)];
        let (flush, _) = set
            .flush(&id, &Held::default(), &integrations, t(10))
            .unwrap();
        assert_eq!(
            flush.reasons,
            [None, None, Some(Reason::First)],
            "an upgrade notifies nothing again"
        );
    }

    #[test]
    fn flushed_groups_are_rescheduled_or_dropped_and_the_log_is_consulted() {
        let routes = routes();
        let mut set = GroupSet::default();
        let (fp, down) = alert("Down", "warn");
        set.add(&routes, fp, &down, t(0));
        let id = set.due(t(10), usize::MAX).remove(0);
        let (flush, _) = set
            .flush(&id, &Held::default(), &[(HOOK, true)], t(10))
            .unwrap();
        assert_eq!(flush.reasons, [Some(Reason::First)]);
        let group = set.get(&id).unwrap().clone();
        set.record(
            &group.receiver,
            &group.key,
            HOOK,
            Some(1),
            flush.entry.unwrap(),
        );
        assert_eq!(set.next_deadline(), Some(t(310)));

        let (again, _) = set
            .flush(&id, &Held::default(), &[(HOOK, true)], t(310))
            .unwrap();
        assert_eq!(
            (again.reasons, again.entry),
            (vec![None], None),
            "deduplicated by the log"
        );

        let mut resolved = down.clone();
        resolved.ends_at = Some(t(400));
        assert!(set.update(fp, &resolved));
        let (last, dropped) = set
            .flush(&id, &Held::default(), &[(HOOK, true)], t(610))
            .unwrap();
        assert_eq!(last.reasons, [Some(Reason::AllResolved)]);
        assert_eq!(dropped.map(|group| group.key), Some(group.key.clone()));
        assert!(
            set.is_empty(),
            "the group is dropped once its last alert is done"
        );
        assert_eq!(set.next_deadline(), None);
        assert_eq!(set.alert_count(), 0, "no group holds the alert any more");
        let (changed, deleted) = set.take_dirty();
        assert!(
            changed.is_empty() && deleted.is_empty(),
            "never stored: it announced at its first flush"
        );
    }

    #[test]
    fn only_groups_that_announced_nothing_are_stored_and_the_rest_derive_from_the_log() {
        let routes = routes();
        let (fp, down) = alert("Down", "warn");
        let mut set = GroupSet::default();
        set.add(&routes, fp, &down, t(0));
        let (created, _) = set.take_dirty();
        assert_eq!(
            created[0].first_flush,
            t(10),
            "stored at creation: group_wait ahead"
        );
        let id = set.due(t(10), usize::MAX).remove(0);

        // Its first flush is silenced: nothing announced, so its record keeps when it first flushed.
        let silenced = Held {
            suppressed: [fp].into(),
            muted: false,
        };
        set.flush(&id, &silenced, &[(HOOK, true)], t(10)).unwrap();
        let (flushed, _) = set.take_dirty();
        assert_eq!((flushed[0].first_flush, flushed[0].flushed), (t(10), true));
        let (flush, _) = set
            .flush(&id, &Held::default(), &[(HOOK, true)], t(310))
            .unwrap();
        assert!(flush.entry.is_some());
        let (changed, deleted) = set.take_dirty();
        assert!(changed.is_empty());
        assert_eq!(deleted, vec![id.to_string()], "announced: its record goes");

        let mut restored = GroupSet::default();
        assert!(restored.restore(&routes, flushed[0].clone(), t(400)));
        assert_eq!(
            restored.next_deadline(),
            Some(t(610)),
            "the tick after 400 on the schedule from 10"
        );
        let mut waiting = GroupSet::default();
        assert!(waiting.restore(&routes, created[0].clone(), t(5)));
        assert_eq!(waiting.next_deadline(), Some(t(10)), "group_wait goes on");
        let mut late = GroupSet::default();
        assert!(late.restore(&routes, created[0].clone(), t(60)));
        assert_eq!(
            late.next_deadline(),
            Some(t(10)),
            "a first flush missed while stopped is due at once"
        );

        // Without a record, a group whose log lists firing alerts ticks on from the log's last send.
        let mut derived = GroupSet::default();
        let group = set.get(&id).unwrap().clone();
        derived.restore_sent(record(&group, HOOK, vec![fp], t(310)));
        derived.add(&routes, fp, &down, t(1000));
        derived.adopt_log_schedules(t(1000));
        assert_eq!(derived.next_deadline(), Some(t(1210)));
        assert_eq!(derived.due(t(1209), usize::MAX), Vec::<GroupId>::new());
        assert!(derived.take_dirty().0.is_empty(), "announced: no record");
    }
}
