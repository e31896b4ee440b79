//! The engine's in-memory view of open deliveries (a cache of the store): lanes that keep each group and
//! integration in order, and the lane heads ready to go, by due time.

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::store::delivery::{DeliveryRecord, DeliveryState};

/// Deliveries of one receiver, integration config and group go out one at a time, oldest first.
type LaneKey = (String, String, String);

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: i64,
    pub receiver: String,
    pub integration_key: String,
    pub destination: String,
    pub group_key: String,
    pub due: DateTime<Utc>,
    pub running: bool,
}

impl Entry {
    fn lane(&self) -> LaneKey {
        (
            self.receiver.clone(),
            self.integration_key.clone(),
            self.group_key.clone(),
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    entries: HashMap<i64, Entry>,
    lanes: HashMap<LaneKey, VecDeque<i64>>,
    /// Heads of lanes that are not running, by when they are due.
    ready: BTreeSet<(DateTime<Utc>, i64)>,
}

impl Queue {
    pub(crate) fn get(&self, id: i64) -> Option<&Entry> {
        self.entries.get(&id)
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
            }
            self.ready_if_head(id);
            return;
        }
        let entry = Entry {
            id: record.id,
            receiver: record.receiver.clone(),
            integration_key: record.integration_key.clone(),
            destination: record.destination.clone(),
            group_key: record.group_key.clone(),
            due,
            running: false,
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
        if let Some(entry) = self.entries.get(&id) {
            self.ready.remove(&(entry.due, id));
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
        }
    }

    /// Ready lane heads due by `now`, oldest due first.
    pub(crate) fn due(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Entry> {
        self.ready
            .iter()
            .take_while(move |(due, _)| *due <= now)
            .filter_map(|(_, id)| self.entries.get(id))
    }

    /// When the next ready lane head is due.
    pub(crate) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.ready.first().map(|(due, _)| *due)
    }

    /// Marks a delivery as being sent.
    pub(crate) fn start(&mut self, id: i64) {
        self.unready(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.running = true;
        }
    }

    /// A delivery that is open again (to retry at `due`).
    pub(crate) fn reschedule(&mut self, id: i64, due: DateTime<Utc>) {
        self.unready(id);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.running = false;
            entry.due = due;
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
        queue.due(now).map(|entry| entry.id).collect()
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
        queue.reschedule(1, later);
        assert_eq!(
            due_ids(&queue, now),
            [3],
            "2 waits behind its retrying head"
        );
        assert_eq!(queue.next_due(), Some(now));
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
        assert_eq!(due_ids(&queue, lease), [1]);
    }
}
