//! The engine's in-memory view of open deliveries (a cache of the store): lanes that keep each group and
//! integration in order, and the lane heads ready to go, by due time.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::store::delivery::{DeliveryRecord, DeliveryState};

/// Deliveries of one receiver, integration config and group go out one at a time, oldest first.
type LaneKey = (Arc<str>, Arc<str>, Arc<str>);

/// An open delivery as the engine keeps it. Its names are shared: receivers, integrations and destinations with
/// every delivery of theirs (`Queue::names`), the group key with its lane.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub receiver: Arc<str>,
    pub integration_key: Arc<str>,
    pub destination: Arc<str>,
    pub group_key: Arc<str>,
    pub due: DateTime<Utc>,
    pub running: bool,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was queued (or replayed): `max_age` counts from here.
    pub queued_at: DateTime<Utc>,
}

impl Entry {
    fn lane(&self) -> LaneKey {
        (
            Arc::clone(&self.receiver),
            Arc::clone(&self.integration_key),
            Arc::clone(&self.group_key),
        )
    }
}

/// A destination and its lane heads that are due, oldest first.
pub(crate) type DueHeads<'a> = (&'a str, Vec<(DateTime<Utc>, i64)>);

/// Ready lane heads of one receiver, by destination, by due time.
type ReadyByDestination = HashMap<Arc<str>, BTreeSet<(DateTime<Utc>, i64)>>;

#[derive(Debug, Default)]
pub(crate) struct Queue {
    entries: HashMap<i64, Entry>,
    lanes: HashMap<LaneKey, VecDeque<i64>>,
    /// Heads of lanes that are not running, by when they are due.
    ready: BTreeSet<(DateTime<Utc>, i64)>,
    /// The same heads by receiver and destination, so a launch looks only at what it can start.
    ready_by_receiver: HashMap<Arc<str>, ReadyByDestination>,
    /// Receiver, integration and destination names, one copy each for all their deliveries.
    names: HashSet<Arc<str>>,
}

/// The shared copy of `name` in `names`.
fn intern(names: &mut HashSet<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(name) = names.get(name) {
        return Arc::clone(name);
    }
    let name: Arc<str> = Arc::from(name);
    names.insert(Arc::clone(&name));
    name
}

impl Queue {
    pub(crate) fn get(&self, id: i64) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Open deliveries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an open delivery (or updates one already known). An in-flight one from an earlier run is due when its
    /// lease ends.
    pub(crate) fn insert(&mut self, record: &DeliveryRecord, now: DateTime<Utc>) {
        let due = match record.state {
            DeliveryState::InFlight => record
                .lease_until
                .unwrap_or(now)
                .max(record.next_attempt_at),
            _ => record.next_attempt_at,
        };
        if let Some(entry) = self.entries.get(&record.id) {
            if entry.running {
                return;
            }
            let id = record.id;
            self.unready(id);
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.due = due;
                entry.attempts = record.attempts;
                entry.queued_at = record.queued_at;
            }
            self.ready_if_head(id);
            return;
        }
        // The group key is shared with the lane when it has one already.
        let receiver = intern(&mut self.names, &record.receiver);
        let integration_key = intern(&mut self.names, &record.integration_key);
        let lane = (
            Arc::clone(&receiver),
            Arc::clone(&integration_key),
            Arc::from(record.group_key.as_str()),
        );
        let group_key = match self.lanes.get_key_value(&lane) {
            Some(((_, _, group_key), _)) => Arc::clone(group_key),
            None => lane.2,
        };
        let entry = Entry {
            group_key,
            receiver,
            integration_key,
            destination: intern(&mut self.names, &record.destination),
            due,
            running: false,
            attempts: record.attempts,
            queued_at: record.queued_at,
        };
        let lane = self.lanes.entry(entry.lane()).or_default();
        // Keep id order, but never put anything before a head that is running.
        let floor = usize::from(
            lane.front()
                .and_then(|head| self.entries.get(head))
                .is_some_and(|head| head.running),
        );
        let at = lane
            .iter()
            .skip(floor)
            .position(|other| *other > record.id)
            .map_or(lane.len(), |position| position + floor);
        let old_head = lane.front().copied();
        lane.insert(at, record.id);
        let new_head = lane.front().copied();
        self.entries.insert(record.id, entry);
        if old_head != new_head
            && let Some(old) = old_head
        {
            self.unready(old);
        }
        self.ready_if_head(record.id);
    }

    fn unready(&mut self, id: i64) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let key = (entry.due, id);
        if !self.ready.remove(&key) {
            return;
        }
        if let Some(destinations) = self.ready_by_receiver.get_mut(&*entry.receiver) {
            if let Some(set) = destinations.get_mut(&*entry.destination) {
                set.remove(&key);
                if set.is_empty() {
                    destinations.remove(&*entry.destination);
                }
            }
            if destinations.is_empty() {
                self.ready_by_receiver.remove(&*entry.receiver);
            }
        }
    }

    fn ready_if_head(&mut self, id: i64) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        if entry.running {
            return;
        }
        let head = self
            .lanes
            .get(&entry.lane())
            .and_then(|lane| lane.front().copied());
        if head == Some(id) {
            self.ready.insert((entry.due, id));
            self.ready_by_receiver
                .entry(Arc::clone(&entry.receiver))
                .or_default()
                .entry(Arc::clone(&entry.destination))
                .or_default()
                .insert((entry.due, id));
        }
    }

    /// For each receiver with ready lane heads: its destinations, each with up to `per_destination` heads due by
    /// `now`, oldest first.
    pub(crate) fn due_by_receiver(
        &self,
        now: DateTime<Utc>,
        per_destination: impl Fn(&str) -> usize,
    ) -> Vec<(&str, Vec<DueHeads<'_>>)> {
        self.ready_by_receiver
            .iter()
            .filter_map(|(receiver, destinations)| {
                let limit = per_destination(receiver);
                if limit == 0 {
                    return None;
                }
                let due: Vec<_> = destinations
                    .iter()
                    .map(|(destination, set)| {
                        let heads = set
                            .iter()
                            .take_while(|(due, _)| *due <= now)
                            .take(limit)
                            .copied()
                            .collect::<Vec<_>>();
                        (&**destination, heads)
                    })
                    .filter(|(_, heads)| !heads.is_empty())
                    .collect();
                (!due.is_empty()).then_some((&**receiver, due))
            })
            .collect()
    }

    /// The lane head waiting for `destination` with the earliest due time, due or not, and its receiver: the one
    /// that probes the destination while it is down.
    pub(crate) fn earliest_head(&self, destination: &str) -> Option<(DateTime<Utc>, i64, &str)> {
        self.ready_by_receiver
            .iter()
            .filter_map(|(receiver, destinations)| {
                let (due, id) = destinations.get(destination)?.first()?;
                Some((*due, *id, &**receiver))
            })
            .min()
    }

    /// Makes every delivery waiting for `destination` due by `now` (it came back up); returns how many wait for it.
    pub(crate) fn release_destination(&mut self, destination: &str, now: DateTime<Utc>) -> usize {
        let waiting: Vec<(i64, bool)> = self
            .entries
            .iter()
            .filter(|(_, entry)| &*entry.destination == destination && !entry.running)
            .map(|(id, entry)| (*id, entry.due > now))
            .collect();
        for (id, _) in waiting.iter().filter(|(_, later)| *later) {
            self.unready(*id);
            if let Some(entry) = self.entries.get_mut(id) {
                entry.due = now;
            }
            self.ready_if_head(*id);
        }
        waiting.len()
    }

    /// Whether `receiver` has a lane head due by `now` that is not being sent.
    pub(crate) fn has_due(&self, receiver: &str, now: DateTime<Utc>) -> bool {
        self.ready_by_receiver
            .get(receiver)
            .is_some_and(|destinations| {
                destinations
                    .values()
                    .any(|heads| heads.first().is_some_and(|(due, _)| *due <= now))
            })
    }

    /// When the next ready lane head that is not yet due becomes due.
    pub(crate) fn next_due_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.ready
            .range((Bound::Excluded((now, i64::MAX)), Bound::Unbounded))
            .next()
            .map(|(due, _)| *due)
    }

    /// Marks a delivery as being sent.
    pub(crate) fn start(&mut self, id: i64) {
        self.unready(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.running = true;
        }
    }

    /// A delivery that is open again, to go at `due`; `attempted` when an attempt was made and stored.
    pub(crate) fn reschedule(&mut self, id: i64, due: DateTime<Utc>, attempted: bool) {
        self.unready(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.running = false;
            entry.due = due;
            entry.attempts += u32::from(attempted);
        }
        self.ready_if_head(id);
    }

    /// Forgets a delivery (delivered, dead or discarded); the next of its lane becomes ready.
    pub(crate) fn remove(&mut self, id: i64) {
        self.unready(id);
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        let key = entry.lane();
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        lane.retain(|other| *other != id);
        match lane.front().copied() {
            Some(head) => self.ready_if_head(head),
            None => {
                self.lanes.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, group: &str, due: DateTime<Utc>) -> DeliveryRecord {
        DeliveryRecord {
            id,
            receiver: "r".into(),
            integration: "webhook".into(),
            integration_key: "webhook/0".into(),
            destination: "d".into(),
            group_key: group.into(),
            status: "firing".into(),
            alert_count: 1,
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: due,
            queued_at: due,
            next_attempt_at: due,
            lease_until: None,
            updated_at: due,
            last_error: None,
        }
    }

    fn due_ids(queue: &Queue, now: DateTime<Utc>) -> Vec<i64> {
        let mut ids: Vec<i64> = queue
            .due_by_receiver(now, |_| usize::MAX)
            .into_iter()
            .flat_map(|(_, destinations)| destinations)
            .flat_map(|(_, heads)| heads)
            .map(|(_, id)| id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_lane_goes_out_in_order_and_lanes_in_parallel() {
        let now = Utc::now();
        let mut queue = Queue::default();
        queue.insert(&record(1, "a", now), now);
        queue.insert(&record(2, "a", now), now);
        queue.insert(&record(3, "b", now), now);
        assert_eq!(due_ids(&queue, now), [1, 3]);
        queue.start(1);
        assert_eq!(due_ids(&queue, now), [3]);
        let later = now + chrono::Duration::seconds(5);
        queue.reschedule(1, later, true);
        assert_eq!(
            due_ids(&queue, now),
            [3],
            "2 waits behind its retrying head"
        );
        assert_eq!(queue.next_due_after(now), Some(later));
        queue.start(1);
        queue.remove(1);
        assert_eq!(due_ids(&queue, now), [2, 3]);
    }

    #[test]
    fn a_replayed_older_delivery_goes_first_but_not_before_a_running_head() {
        let now = Utc::now();
        let mut queue = Queue::default();
        queue.insert(&record(5, "a", now), now);
        queue.insert(&record(3, "a", now), now);
        assert_eq!(due_ids(&queue, now), [3]);
        queue.start(3);
        queue.insert(&record(1, "a", now), now);
        queue.remove(3);
        assert_eq!(due_ids(&queue, now), [1]);
    }

    #[test]
    fn stale_in_flight_deliveries_wait_for_their_lease() {
        let now = Utc::now();
        let lease = now + chrono::Duration::seconds(7);
        let mut queue = Queue::default();
        let mut stale = record(1, "a", now);
        stale.state = DeliveryState::InFlight;
        stale.lease_until = Some(lease);
        queue.insert(&stale, now);
        assert!(due_ids(&queue, now).is_empty());
        assert_eq!(queue.next_due_after(now), Some(lease));
        assert_eq!(queue.next_due_after(lease), None);
        assert_eq!(due_ids(&queue, lease), [1]);
    }
}
