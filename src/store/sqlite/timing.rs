//! The writer's timing cache: for every stored alert its start, end and announced status, plus firing alerts ordered
//! by end. Rebuilt from the table at open; changed only after a commit succeeds, so it never runs ahead of the disk.

use std::collections::{BTreeSet, HashMap};

use rusqlite::Connection;

use super::rows::{from_micros, state_from_code};
use crate::alert::Status;
use crate::store::Existing;

#[derive(Debug, Default)]
pub(super) struct TimingIndex {
    known: HashMap<i64, Existing>,
    /// How many of `known` are announced firing.
    firing: u64,
    /// (end in microseconds, key) of firing alerts that have an end.
    expiries: BTreeSet<(i64, i64)>,
}

fn expiry(key: i64, existing: &Existing) -> Option<(i64, i64)> {
    match (existing.state, existing.ends_at) {
        (Status::Firing, Some(end)) => Some((end.timestamp_micros(), key)),
        _ => None,
    }
}

/// Changes made by uncommitted work: key -> new timing, or `None` when deleted.
pub(super) type Pending = HashMap<i64, Option<Existing>>;

impl TimingIndex {
    pub(super) fn load(connection: &Connection) -> rusqlite::Result<Self> {
        let mut index = TimingIndex::default();
        let mut statement = connection.prepare(
            "SELECT fingerprint, starts_at, ends_at, ends_at_defaulted, state FROM alerts",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                Existing {
                    starts_at: from_micros(row.get(1)?)?,
                    ends_at: row.get::<_, Option<i64>>(2)?.map(from_micros).transpose()?,
                    ends_at_defaulted: row.get(3)?,
                    state: state_from_code(row.get(4)?),
                },
            ))
        })?;
        for row in rows {
            let (key, existing) = row?;
            index.set(key, Some(existing));
        }
        Ok(index)
    }

    fn set(&mut self, key: i64, timing: Option<Existing>) {
        if let Some(old) = self.known.remove(&key) {
            if old.state == Status::Firing {
                self.firing -= 1;
            }
            if let Some(entry) = expiry(key, &old) {
                self.expiries.remove(&entry);
            }
        }
        if let Some(timing) = timing {
            if timing.state == Status::Firing {
                self.firing += 1;
            }
            if let Some(entry) = expiry(key, &timing) {
                self.expiries.insert(entry);
            }
            self.known.insert(key, timing);
        }
    }

    /// Applies committed changes. Once most of the alerts it had room for are gone (resolved and past retention),
    /// the table gives the room back.
    pub(super) fn apply(&mut self, pending: Pending) {
        for (key, timing) in pending {
            self.set(key, timing);
        }
        if self.known.capacity() > 1024 && self.known.len() < self.known.capacity() / 4 {
            self.known.shrink_to(self.known.len() * 2);
        }
    }

    /// Stored alerts by announced status: (firing, resolved).
    pub(super) fn counts(&self) -> (u64, u64) {
        let total = self.known.len() as u64;
        (self.firing, total - self.firing)
    }

    /// The earliest end (microseconds) of a firing alert, if any has one.
    pub(super) fn earliest_expiry(&self) -> Option<i64> {
        self.expiries.first().map(|(end, _)| *end)
    }

    /// Keys of firing alerts whose end is at or before `now` (microseconds).
    pub(super) fn expired(&self, now: i64) -> impl Iterator<Item = i64> + '_ {
        self.expiries.range(..=(now, i64::MAX)).map(|(_, key)| *key)
    }

    /// Keys of resolved alerts that ended before `cutoff` (microseconds).
    pub(super) fn resolved_before(&self, cutoff: i64) -> impl Iterator<Item = i64> + '_ {
        self.known.iter().filter_map(move |(key, timing)| {
            let ended = timing
                .ends_at
                .is_some_and(|end| end.timestamp_micros() < cutoff);
            (timing.state == Status::Resolved && ended).then_some(*key)
        })
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.known.len()
    }
}

/// The cache as seen by work in progress: its own pending changes first, then the committed ones.
pub(super) struct View<'a> {
    pub(super) base: &'a TimingIndex,
    pub(super) pending: &'a Pending,
    pub(super) local: Pending,
}

impl View<'_> {
    pub(super) fn get(&self, key: i64) -> Option<Existing> {
        match self.local.get(&key).or_else(|| self.pending.get(&key)) {
            Some(timing) => *timing,
            None => self.base.known.get(&key).copied(),
        }
    }

    pub(super) fn set(&mut self, key: i64, timing: Option<Existing>) {
        self.local.insert(key, timing);
    }

    /// Keys that may have expired by `now`: committed expiries plus pending firing alerts with an end.
    pub(super) fn expiry_candidates(&self, now: i64) -> Vec<i64> {
        let mut keys: Vec<i64> = self.base.expired(now).collect();
        for (key, timing) in self.pending.iter().chain(&self.local) {
            if let Some(timing) = timing
                && expiry(*key, timing).is_some_and(|(end, _)| end <= now)
            {
                keys.push(*key);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn t(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    fn timing(end: Option<i64>, state: Status) -> Existing {
        Existing {
            starts_at: t(0),
            ends_at: end.map(t),
            ends_at_defaulted: false,
            state,
        }
    }

    #[test]
    fn expiries_follow_state_and_end() {
        let mut index = TimingIndex::default();
        index.apply(Pending::from([
            (1, Some(timing(Some(10), Status::Firing))),
            (2, Some(timing(None, Status::Firing))),
            (3, Some(timing(Some(5), Status::Resolved))),
        ]));
        assert_eq!(index.expired(t(9).timestamp_micros()).count(), 0);
        assert_eq!(
            index.expired(t(10).timestamp_micros()).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(
            index
                .resolved_before(t(6).timestamp_micros())
                .collect::<Vec<_>>(),
            vec![3]
        );

        index.apply(Pending::from([
            (1, Some(timing(Some(20), Status::Firing))),
            (3, None),
        ]));
        assert_eq!(
            index.expired(t(10).timestamp_micros()).count(),
            0,
            "old end forgotten"
        );
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn view_sees_pending_before_committed() {
        let mut index = TimingIndex::default();
        index.apply(Pending::from([(
            1,
            Some(timing(Some(100), Status::Firing)),
        )]));
        let pending = Pending::from([(2, Some(timing(Some(5), Status::Firing)))]);
        let mut view = View {
            base: &index,
            pending: &pending,
            local: Pending::new(),
        };
        view.set(1, Some(timing(Some(4), Status::Firing)));
        assert_eq!(view.get(1).unwrap().ends_at, Some(t(4)));
        assert_eq!(view.expiry_candidates(t(6).timestamp_micros()), vec![1, 2]);
        view.set(2, None);
        assert_eq!(view.get(2), None);
    }
}
