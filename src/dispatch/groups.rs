//! Every aggregation group of the route tree, their flush times in order, and the notification log: which groups an
//! alert joins, which are due, and what a due group sends. Pure state; the dispatcher task does the I/O.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::group::{Flush, Group, Held, SentEntry, Timers};
use crate::alert::label_set;
use crate::alert::{Alert, Fingerprint};
use crate::route::tree::RouteNode;
use crate::store::{GroupRecord, SentRecord};

/// A group's identity in the set: its route's id and its labels (route keys alone are not unique among siblings).
pub type GroupId = String;

#[derive(Debug, Default)]
pub struct GroupSet {
    groups: HashMap<GroupId, Group>,
    /// (next flush, group) for every group.
    timers: BTreeSet<(DateTime<Utc>, GroupId)>,
    /// (receiver, group key) -> what was last sent.
    log: HashMap<(String, String), SentEntry>,
    /// Groups created or rescheduled since the last `take_dirty`.
    dirty: BTreeSet<GroupId>,
    /// Groups dropped since the last `take_dirty`.
    dropped: BTreeSet<GroupId>,
}

fn timers_of(route: &RouteNode) -> Timers {
    Timers {
        group_wait: route.group_wait,
        group_interval: route.group_interval,
        repeat_interval: route.repeat_interval,
    }
}

impl GroupSet {
    /// Puts back a stored group. Returns false (and forgets it) when its route no longer exists or no longer gives
    /// the same key, as after a configuration change.
    pub fn restore(&mut self, routes: &RouteNode, record: GroupRecord) -> bool {
        let Some(route) = routes.find(&record.route_id) else {
            self.dropped.insert(record.id);
            return false;
        };
        if route.group_key(&record.labels) != record.key || route.receiver != record.receiver {
            self.dropped.insert(record.id);
            return false;
        }
        let mut group = Group::new(
            record.key,
            record.route_id,
            record.receiver,
            record.labels,
            timers_of(route),
            record.next_flush,
        );
        group.next_flush = record.next_flush;
        group.flushed = record.flushed;
        self.timers.insert((group.next_flush, record.id.clone()));
        self.groups.insert(record.id, group);
        true
    }

    /// Puts back a notification log entry.
    pub fn restore_sent(&mut self, record: SentRecord) {
        let entry = SentEntry {
            firing: record.firing.into_iter().collect(),
            resolved: record.resolved.into_iter().collect(),
            at: record.at,
        };
        self.log.insert((record.receiver, record.group_key), entry);
    }

    /// Log entries' firing alerts, by the group they were sent for: after a restart, those that resolved meanwhile
    /// rejoin their group so their resolve is still sent.
    pub fn announced_firing(&self) -> Vec<(GroupId, Fingerprint)> {
        let mut found = Vec::new();
        for (id, group) in &self.groups {
            if let Some(entry) = self.log.get(&(group.receiver.clone(), group.key.clone())) {
                found.extend(
                    entry
                        .firing
                        .iter()
                        .map(|fingerprint| (id.clone(), *fingerprint)),
                );
            }
        }
        found
    }

    /// Adds a member to an existing group.
    pub fn add_member(&mut self, id: &str, fingerprint: Fingerprint) {
        if let Some(group) = self.groups.get_mut(id) {
            group.members.insert(fingerprint);
        }
    }

    /// The groups changed and dropped since the last call, to be stored.
    pub fn take_dirty(&mut self) -> (Vec<GroupRecord>, Vec<GroupId>) {
        let changed = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| {
                let group = self.groups.get(&id)?;
                Some(GroupRecord {
                    id,
                    key: group.key.clone(),
                    route_id: group.route_id.clone(),
                    receiver: group.receiver.clone(),
                    labels: group.labels.clone(),
                    next_flush: group.next_flush,
                    flushed: group.flushed,
                })
            })
            .collect();
        (
            changed,
            std::mem::take(&mut self.dropped).into_iter().collect(),
        )
    }

    /// Puts a firing alert into the group of every route it matches, creating groups as needed.
    pub fn add(
        &mut self,
        routes: &RouteNode,
        fingerprint: Fingerprint,
        alert: &Alert,
        now: DateTime<Utc>,
    ) {
        for route in routes.matching(&alert.labels) {
            let labels = route.group_labels(&alert.labels);
            let id = format!("{}:{}", route.id, label_set(&labels));
            let group = self.groups.entry(id.clone()).or_insert_with(|| {
                let timers = timers_of(route);
                self.dirty.insert(id.clone());
                let group = Group::new(
                    route.group_key(&labels),
                    route.id.clone(),
                    route.receiver.clone(),
                    labels,
                    timers,
                    now,
                );
                self.timers.insert((group.next_flush, id.clone()));
                group
            });
            let before = group.next_flush;
            group.add(fingerprint, alert.starts_at, now);
            if group.next_flush != before {
                self.timers.remove(&(before, id.clone()));
                self.timers.insert((group.next_flush, id.clone()));
                self.dirty.insert(id);
            }
        }
    }

    /// When the earliest group is due.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Groups due at `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<GroupId> {
        self.timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Flushes a group with its members' current alerts. The group is rescheduled (or dropped once empty); the
    /// returned decision's log entry is recorded with `record` once the notification has been handed on.
    pub fn flush(
        &mut self,
        id: &str,
        alerts: Vec<(Fingerprint, Alert)>,
        held: &Held,
        send_resolved: bool,
        now: DateTime<Utc>,
    ) -> Option<Flush> {
        let group = self.groups.get_mut(id)?;
        self.timers.remove(&(group.next_flush, id.to_string()));
        let last = self.log.get(&(group.receiver.clone(), group.key.clone()));
        let flush = group.flush(alerts, held, last, send_resolved, now);
        if group.is_empty() {
            self.groups.remove(id);
            self.dirty.remove(id);
            self.dropped.insert(id.to_string());
        } else {
            self.timers.insert((group.next_flush, id.to_string()));
            self.dirty.insert(id.to_string());
        }
        Some(flush)
    }

    /// Moves a group's next flush to `at` (after a flush that could not read its alerts).
    pub fn postpone(&mut self, id: &str, at: DateTime<Utc>) {
        if let Some(group) = self.groups.get_mut(id) {
            self.timers.remove(&(group.next_flush, id.to_string()));
            group.next_flush = at;
            self.timers.insert((at, id.to_string()));
            self.dirty.insert(id.to_string());
        }
    }

    /// Records what was sent to `receiver` for the group with `key`.
    pub fn record(&mut self, receiver: &str, key: &str, entry: SentEntry) {
        self.log
            .insert((receiver.to_string(), key.to_string()), entry);
    }

    /// Forgets log entries written before `before` whose group no longer exists; returns how many.
    pub fn forget_sent(&mut self, before: DateTime<Utc>) -> usize {
        let live: std::collections::HashSet<(&str, &str)> = self
            .groups
            .values()
            .map(|group| (group.receiver.as_str(), group.key.as_str()))
            .collect();
        let stale: Vec<(String, String)> = self
            .log
            .iter()
            .filter(|((receiver, key), entry)| {
                entry.at < before && !live.contains(&(receiver.as_str(), key.as_str()))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            self.log.remove(id);
        }
        stale.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;

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
        let due = set.due(t(0));
        assert_eq!(due.len(), 1);
        assert_eq!(set.get(&due[0]).unwrap().receiver, "pager");
        assert_eq!(set.due(t(10)).len(), 3);
        let pager = set.get(&due[0]).unwrap();
        assert_eq!(pager.key, r#"{}/{severity="page"}:{alertname="Down"}"#);
    }

    #[test]
    fn log_entries_of_live_groups_are_kept_and_old_ones_of_gone_groups_forgotten() {
        let routes = routes();
        let mut set = GroupSet::default();
        let (fp, down) = alert("Down", "warn");
        set.add(&routes, fp, &down, t(0));
        let id = set.due(t(10)).remove(0);
        let group = set.get(&id).unwrap().clone();
        let entry = |at| SentEntry {
            firing: [fp].into(),
            resolved: Default::default(),
            at,
        };
        set.record(&group.receiver, &group.key, entry(t(10)));
        set.record("default", "{}:{alertname=\"Gone\"}", entry(t(10)));
        set.record("default", "{}:{alertname=\"Recent\"}", entry(t(100)));
        assert_eq!(
            set.forget_sent(t(50)),
            1,
            "only the old entry of a group that is gone"
        );
        assert!(
            set.log
                .contains_key(&(group.receiver.clone(), group.key.clone()))
        );
        assert!(set.log.contains_key(&(
            "default".to_string(),
            "{}:{alertname=\"Recent\"}".to_string()
        )));
    }

    #[test]
    fn flushed_groups_are_rescheduled_or_dropped_and_the_log_is_consulted() {
        let routes = routes();
        let mut set = GroupSet::default();
        let (fp, down) = alert("Down", "warn");
        set.add(&routes, fp, &down, t(0));
        let id = set.due(t(10)).remove(0);
        let flush = set
            .flush(&id, vec![(fp, down.clone())], &Held::default(), true, t(10))
            .unwrap();
        assert!(flush.send.is_some());
        let group = set.get(&id).unwrap().clone();
        set.record(&group.receiver, &group.key, flush.entry.unwrap());
        assert_eq!(set.next_deadline(), Some(t(310)));

        let again = set
            .flush(
                &id,
                vec![(fp, down.clone())],
                &Held::default(),
                true,
                t(310),
            )
            .unwrap();
        assert!(again.send.is_none(), "deduplicated by the log");

        let mut resolved = down.clone();
        resolved.ends_at = Some(t(400));
        let last = set
            .flush(&id, vec![(fp, resolved)], &Held::default(), true, t(610))
            .unwrap();
        assert!(last.send.is_some());
        assert!(
            set.is_empty(),
            "the group is dropped once its last alert is done"
        );
        assert_eq!(set.next_deadline(), None);
    }
}
