//! Aggregation groups and the notification log's decision, as pure state: when a group flushes, what it sends to
//! each integration of its receiver and why (Alertmanager's `aggrGroup` and `DedupStage`, per integration). Time is
//! always passed in; nothing here does I/O.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fingerprints::{Fingerprints, Members};
use super::held::HeldAlert;

use crate::alert::{Alert, Fingerprint, PackedLabels, Status};
pub use crate::notification::Reason;

/// What a notification told: the alerts it listed as firing and as resolved, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentEntry {
    pub firing: Fingerprints,
    pub resolved: Fingerprints,
    pub at: DateTime<Utc>,
}

/// The notification log's entry for one integration of a receiver and one group. Integrations told the same share
/// one `SentEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Its last notification is queued or delivered.
    Sent(Arc<SentEntry>),
    /// Its last notification (`parked`) died: it has what it was told before (`had`; `None`: nothing). The dead
    /// letter still carries `parked`, and a replay delivers it.
    Dead {
        parked: Arc<SentEntry>,
        had: Option<Arc<SentEntry>>,
    },
}

impl Entry {
    /// The entries it holds: its last notification, and, when that died, what it had before.
    pub fn entries(&self) -> impl Iterator<Item = &SentEntry> {
        let (last, had) = match self {
            Entry::Sent(entry) => (entry, None),
            Entry::Dead { parked, had } => (parked, had.as_deref()),
        };
        std::iter::once(&**last).chain(had)
    }

    /// When its last notification was made.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Entry::Sent(entry) | Entry::Dead { parked: entry, .. } => entry.at,
        }
    }
}

/// An integration of the group's receiver, as a flush sees it.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    /// Its log entry for the group (`None`: never told).
    pub last: Option<&'a Entry>,
    pub send_resolved: bool,
}

/// The timers of the route a group belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

/// Whether a notification is due and why (Alertmanager's `needsUpdate`).
pub fn needs_update(
    last: Option<&SentEntry>,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    send_resolved: bool,
    repeat_interval: Duration,
    now: DateTime<Utc>,
) -> Option<Reason> {
    let Some(last) = last else {
        // Never told: only when something fires (alerts that fired and resolved unseen are nobody's news).
        return (!firing.is_empty()).then_some(Reason::First);
    };
    if !last.firing.contains_all(firing) {
        return Some(if last.firing.is_empty() {
            Reason::First
        } else {
            Reason::NewAlerts
        });
    }
    if firing.is_empty() {
        // Sent even without send_resolved, so the log stops listing them as firing; the sink decides what to show.
        return (!last.firing.is_empty()).then_some(Reason::AllResolved);
    }
    if send_resolved && !last.resolved.contains_all(resolved) {
        return Some(Reason::SomeResolved);
    }
    let repeat = chrono::Duration::from_std(repeat_interval).unwrap_or(chrono::Duration::MAX);
    (last
        .at
        .checked_add_signed(repeat)
        .is_some_and(|due| due <= now))
    .then_some(Reason::Repeat)
}

/// Whether an integration with the log entry `last` is due a notification, and why: `needs_update` against what it
/// was told. When its last notification died, against what it had before, and only when the group says something
/// its dead letter does not (a replay delivers that).
pub fn decide(
    last: Option<&Entry>,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    send_resolved: bool,
    repeat_interval: Duration,
    now: DateTime<Utc>,
) -> Option<Reason> {
    let needs = |entry: Option<&SentEntry>| {
        needs_update(entry, firing, resolved, send_resolved, repeat_interval, now)
    };
    match last {
        None => needs(None),
        Some(Entry::Sent(entry)) => needs(Some(entry)),
        Some(Entry::Dead { parked, had }) => {
            needs(Some(parked))?;
            needs(had.as_deref())
        }
    }
}

/// One alert of a group as seen at a flush.
#[derive(Debug, Clone, PartialEq)]
pub struct FlushedAlert {
    pub fingerprint: Fingerprint,
    pub status: Status,
    pub alert: Alert,
}

/// What a flush decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    /// For each integration (in the order given), why it is sent a notification, if it is.
    pub reasons: Vec<Option<Reason>>,
    /// The alerts the notifications carry (empty when none is sent).
    pub alerts: Vec<FlushedAlert>,
    /// The log entry to record for the integrations sent to, once the notifications are safely handed on.
    pub entry: Option<Arc<SentEntry>>,
    /// Resolved members the group is done with.
    pub done: Vec<Fingerprint>,
}

impl Flush {
    fn nothing(integrations: usize, done: Vec<Fingerprint>) -> Self {
        Flush {
            reasons: vec![None; integrations],
            alerts: Vec::new(),
            entry: None,
            done,
        }
    }
}

/// An aggregation group: the alerts of one route with the same group labels, and its timer.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Alertmanager's group key (`<route key>:<group labels>`), shared with the group's notification log.
    pub key: Arc<str>,
    /// Its route's id and receiver, shared by every group of the route.
    pub route_id: Arc<str>,
    pub receiver: Arc<str>,
    /// Its group labels, packed (many groups are held at once).
    pub labels: PackedLabels,
    pub timers: Timers,
    pub members: Members,
    /// When the group flushes next.
    pub next_flush: DateTime<Utc>,
    /// When it first flushed, once it has: later flushes tick every `group_interval` from here (new alerts wait
    /// for the next tick), so the schedule can be derived again after a restart.
    pub anchor: Option<DateTime<Utc>>,
    /// Whether a notification was queued for it (or, after a restart, the log says one was): its schedule then
    /// derives from the log's last send, and it needs no stored record.
    pub announced: bool,
    /// Whether the store holds a record of it.
    pub stored: bool,
}

fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The first tick `anchor + k * interval` (k >= 1) that is after `now` (or at `now`, when `inclusive`).
pub fn next_tick(
    anchor: DateTime<Utc>,
    interval: Duration,
    now: DateTime<Utc>,
    inclusive: bool,
) -> DateTime<Utc> {
    let step = chrono::Duration::from_std(interval.max(Duration::from_millis(1)))
        .unwrap_or(chrono::Duration::MAX);
    let first = anchor
        .checked_add_signed(step)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if first > now || (inclusive && first == now) {
        return first;
    }
    let (Some(elapsed), Some(step_micros)) = (
        (now - anchor).num_microseconds(),
        step.num_microseconds().filter(|micros| *micros > 0),
    ) else {
        return after(now, interval);
    };
    let mut ticks = elapsed / step_micros;
    if !(inclusive && elapsed % step_micros == 0) {
        ticks += 1;
    }
    ticks
        .checked_mul(step_micros)
        .and_then(|micros| anchor.checked_add_signed(chrono::Duration::microseconds(micros)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Group {
    /// A new group; its first flush is `group_wait` from now.
    pub fn new(
        key: Arc<str>,
        route_id: Arc<str>,
        receiver: Arc<str>,
        labels: PackedLabels,
        timers: Timers,
        now: DateTime<Utc>,
    ) -> Self {
        Group {
            key,
            route_id,
            receiver,
            labels,
            timers,
            members: Members::default(),
            next_flush: after(now, timers.group_wait),
            anchor: None,
            announced: false,
            stored: false,
        }
    }

    /// Whether it flushed at least once.
    pub fn flushed(&self) -> bool {
        self.anchor.is_some()
    }

    /// Adds (or refreshes) a member. An alert that started longer than `group_wait` ago flushes a group that has not
    /// flushed yet at once, as Alertmanager does (after a restart, say). Returns whether the first flush moved.
    pub fn add(
        &mut self,
        fingerprint: Fingerprint,
        starts_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        self.members.insert(fingerprint);
        if !self.flushed()
            && after(starts_at, self.timers.group_wait) <= now
            && self.next_flush > now
        {
            self.next_flush = now;
            return true;
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Flushes at `now` with the members' current alerts, found with `alert` (members it does not find are treated
    /// as gone): schedules the next tick and decides, for each integration of `recipients`, what to send against its
    /// own log entry. `held.suppressed` alerts (inhibited, silenced) stay members but are neither sent nor counted as
    /// sent; `held.muted` (a time interval) sends nothing at all. Resolved members are done either way. Alerts are
    /// copied only when a notification is due.
    pub fn flush<'a>(
        &mut self,
        alert: impl Fn(&Fingerprint) -> Option<&'a HeldAlert>,
        held: &Held,
        recipients: &[Recipient<'_>],
        now: DateTime<Utc>,
    ) -> Flush {
        let anchor = *self.anchor.get_or_insert(self.next_flush.min(now));
        self.next_flush = next_tick(anchor, self.timers.group_interval, now, false);
        let mut done = Vec::new();
        let mut firing = BTreeSet::new();
        let mut resolved = BTreeSet::new();
        for fingerprint in &self.members {
            let Some(current) = alert(fingerprint) else {
                done.push(*fingerprint);
                continue;
            };
            let status = current.status_at(now);
            if status == Status::Resolved {
                done.push(*fingerprint);
            }
            if held.muted || held.suppressed.contains(fingerprint) {
                continue;
            }
            match status {
                Status::Firing => firing.insert(*fingerprint),
                Status::Resolved => resolved.insert(*fingerprint),
            };
        }
        for fingerprint in &done {
            self.members.remove(fingerprint);
        }
        if held.muted || (firing.is_empty() && resolved.is_empty()) {
            return Flush::nothing(recipients.len(), done);
        }
        let reasons: Vec<Option<Reason>> = recipients
            .iter()
            .map(|recipient| {
                decide(
                    recipient.last,
                    &firing,
                    &resolved,
                    recipient.send_resolved,
                    self.timers.repeat_interval,
                    now,
                )
            })
            .collect();
        if reasons.iter().all(Option::is_none) {
            return Flush::nothing(recipients.len(), done);
        }
        self.announced = true;
        let mut flushed: Vec<FlushedAlert> = firing
            .iter()
            .map(|fingerprint| (fingerprint, Status::Firing))
            .chain(
                resolved
                    .iter()
                    .map(|fingerprint| (fingerprint, Status::Resolved)),
            )
            .filter_map(|(fingerprint, status)| {
                Some(FlushedAlert {
                    fingerprint: *fingerprint,
                    status,
                    alert: alert(fingerprint)?.to_alert(),
                })
            })
            .collect();
        flushed.sort_by(|a, b| a.alert.labels.cmp(&b.alert.labels));
        Flush {
            reasons,
            alerts: flushed,
            entry: Some(Arc::new(SentEntry {
                firing: firing.into_iter().collect(),
                resolved: resolved.into_iter().collect(),
                at: now,
            })),
            done,
        }
    }
}

/// What is held back at a flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Members left out of this flush: inhibited or silenced.
    pub suppressed: BTreeSet<Fingerprint>,
    /// The route is muted now by a time interval: nothing is sent.
    pub muted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;

    const WAIT: Duration = Duration::from_secs(30);
    const INTERVAL: Duration = Duration::from_secs(300);
    const REPEAT: Duration = Duration::from_secs(4 * 3600);

    fn t(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    /// An alert named `name`, started at 0, ending at `end` (None: open).
    fn alert(name: &str, end: Option<i64>) -> (Fingerprint, Alert) {
        let mut alert = test_alert(name, &[]);
        alert.starts_at = t(0);
        alert.ends_at = end.map(t);
        (alert.fingerprint(), alert)
    }

    fn lookup(
        alerts: &[(Fingerprint, Alert)],
    ) -> std::collections::HashMap<Fingerprint, HeldAlert> {
        alerts
            .iter()
            .map(|(fingerprint, alert)| (*fingerprint, HeldAlert::new(alert)))
            .collect()
    }

    fn group(now: i64) -> Group {
        let timers = Timers {
            group_wait: WAIT,
            group_interval: INTERVAL,
            repeat_interval: REPEAT,
        };
        Group::new(
            "{}:{}".into(),
            "{}".into(),
            "r".into(),
            PackedLabels::new(&Default::default()),
            timers,
            t(now),
        )
    }

    /// One integration with the log entry `last`.
    fn one(last: Option<&Entry>, send_resolved: bool) -> [Recipient<'_>; 1] {
        [Recipient {
            last,
            send_resolved,
        }]
    }

    /// Flushes `group` at `now` with `alerts` for one integration, records the entry in `log` when it was sent one,
    /// and returns the reason and the names sent.
    fn flush(
        group: &mut Group,
        log: &mut Option<Entry>,
        alerts: &[(Fingerprint, Alert)],
        send_resolved: bool,
        now: i64,
    ) -> Option<(Reason, Vec<String>)> {
        let alerts = lookup(alerts);
        let flush = group.flush(
            |fingerprint| alerts.get(fingerprint),
            &Held::default(),
            &one(log.as_ref(), send_resolved),
            t(now),
        );
        let reason = flush.reasons[0]?;
        *log = flush.entry.map(Entry::Sent);
        Some((reason, names(&flush.alerts)))
    }

    fn names(alerts: &[FlushedAlert]) -> Vec<String> {
        alerts
            .iter()
            .map(|a| format!("{}:{}", a.alert.name(), a.status))
            .collect()
    }

    /// What `log` says was last sent.
    fn last(log: &Option<Entry>) -> &SentEntry {
        log.as_ref().unwrap().entries().next().unwrap()
    }

    #[test]
    fn group_wait_then_group_interval_then_repeat_interval() {
        let (mut g, mut log) = (group(0), None);
        let a = alert("A", None);
        g.add(a.0, a.1.starts_at, t(0));
        assert_eq!(g.next_flush, t(30), "first flush after group_wait");
        assert_eq!(
            flush(&mut g, &mut log, std::slice::from_ref(&a), true, 30),
            Some((Reason::First, vec!["A:firing".into()]))
        );
        assert_eq!(g.next_flush, t(330), "then every group_interval");

        let b = alert("B", None);
        g.add(b.0, t(60), t(60));
        assert_eq!(g.next_flush, t(330), "a new alert waits for the next tick");
        let both = [a.clone(), b.clone()];
        assert_eq!(
            flush(&mut g, &mut log, &both, true, 330),
            Some((
                Reason::NewAlerts,
                vec!["A:firing".into(), "B:firing".into()]
            ))
        );
        assert_eq!(
            flush(&mut g, &mut log, &both, true, 630),
            None,
            "nothing new, repeat not due"
        );
        assert_eq!(
            flush(&mut g, &mut log, &both, true, 330 + 4 * 3600 - 1),
            None
        );
        assert_eq!(
            flush(&mut g, &mut log, &both, true, 330 + 4 * 3600).map(|s| s.0),
            Some(Reason::Repeat)
        );
    }

    #[test]
    fn resolved_inside_group_wait_is_never_sent() {
        let (mut g, mut log) = (group(0), None);
        let a = alert("A", Some(10));
        g.add(a.0, a.1.starts_at, t(0));
        assert_eq!(flush(&mut g, &mut log, &[a], true, 30), None);
        assert!(g.is_empty(), "the resolved alert left the group");
        assert_eq!(log, None);
    }

    #[test]
    fn resolves_with_and_without_send_resolved() {
        for send_resolved in [true, false] {
            let (mut g, mut log) = (group(0), None);
            let (a, b) = (alert("A", None), alert("B", None));
            g.add(a.0, t(0), t(0));
            g.add(b.0, t(0), t(0));
            assert!(flush(&mut g, &mut log, &[a.clone(), b.clone()], send_resolved, 30).is_some());

            let b_resolved = alert("B", Some(100));
            let sent = flush(
                &mut g,
                &mut log,
                &[a.clone(), b_resolved],
                send_resolved,
                330,
            );
            if send_resolved {
                assert_eq!(
                    sent,
                    Some((
                        Reason::SomeResolved,
                        vec!["A:firing".into(), "B:resolved".into()]
                    ))
                );
            } else {
                assert_eq!(
                    sent, None,
                    "without send_resolved a partial resolve is not news"
                );
            }
            assert_eq!(g.members.len(), 1, "B is done either way");

            let a_resolved = alert("A", Some(400));
            let sent = flush(&mut g, &mut log, &[a_resolved], send_resolved, 630);
            assert_eq!(
                sent,
                Some((Reason::AllResolved, vec!["A:resolved".into()])),
                "send_resolved {send_resolved}"
            );
            assert!(g.is_empty());
            assert!(
                last(&log).firing.is_empty(),
                "the log no longer lists anything as firing"
            );
        }
    }

    #[test]
    fn flapping_between_flushes_sends_nothing_new() {
        let (mut g, mut log) = (group(0), None);
        let a = alert("A", None);
        g.add(a.0, t(0), t(0));
        assert!(flush(&mut g, &mut log, std::slice::from_ref(&a), true, 30).is_some());
        // A resolved at 100 and fired again at 200 (a new incident with the same labels): firing at the flush.
        let mut again = alert("A", None);
        again.1.starts_at = t(200);
        g.add(again.0, t(200), t(200));
        assert_eq!(flush(&mut g, &mut log, &[again], true, 330), None);
    }

    #[test]
    fn refiring_after_all_resolved_is_a_first_notification_again() {
        let (mut g, mut log) = (group(0), None);
        let a = alert("A", None);
        g.add(a.0, t(0), t(0));
        flush(&mut g, &mut log, std::slice::from_ref(&a), true, 30);
        flush(&mut g, &mut log, &[alert("A", Some(100))], true, 330);
        let mut g = group(1000);
        g.add(a.0, t(1000), t(1000));
        assert_eq!(
            flush(&mut g, &mut log, &[a], true, 1030).map(|s| s.0),
            Some(Reason::First)
        );
    }

    #[test]
    fn an_old_alert_flushes_a_new_group_at_once() {
        let mut g = group(5000);
        let a = alert("A", None);
        g.add(a.0, t(0), t(5000));
        assert_eq!(g.next_flush, t(5000));
        let mut fresh = group(5000);
        fresh.add(a.0, t(4990), t(5000));
        assert_eq!(
            fresh.next_flush,
            t(5030),
            "started within group_wait: wait as usual"
        );
    }

    #[test]
    fn suppressed_alerts_are_held_back_and_muted_groups_send_nothing() {
        let (mut g, mut log): (Group, Option<Entry>) = (group(0), None);
        let (a, b) = (alert("A", None), alert("B", None));
        g.add(a.0, t(0), t(0));
        g.add(b.0, t(0), t(0));
        let inhibited = Held {
            suppressed: [b.0].into(),
            muted: false,
        };
        let both = lookup(&[a.clone(), b.clone()]);
        let flush = g.flush(
            |fingerprint| both.get(fingerprint),
            &inhibited,
            &one(log.as_ref(), true),
            t(30),
        );
        assert_eq!(
            (flush.reasons[0], flush.alerts.len()),
            (Some(Reason::First), 1),
            "only A is sent"
        );
        log = flush.entry.map(Entry::Sent);
        assert_eq!(g.members.len(), 2, "B stays in the group");

        // The inhibition ends: B is news at the next flush.
        let flush = g.flush(
            |fingerprint| both.get(fingerprint),
            &Held::default(),
            &one(log.as_ref(), true),
            t(330),
        );
        assert_eq!(flush.reasons, [Some(Reason::NewAlerts)]);

        let muted = Held {
            suppressed: Default::default(),
            muted: true,
        };
        let flush = g.flush(
            |fingerprint| both.get(fingerprint),
            &muted,
            &one(None, true),
            t(630),
        );
        assert_eq!(
            (flush.reasons, flush.entry),
            (vec![None], None),
            "muted: nothing sent, nothing logged"
        );
    }

    #[test]
    fn members_gone_from_the_store_leave_the_group() {
        let mut g = group(0);
        let (a, b) = (alert("A", None), alert("B", None));
        g.add(a.0, t(0), t(0));
        g.add(b.0, t(0), t(0));
        let only_a = lookup(&[a]);
        let flush = g.flush(
            |fingerprint| only_a.get(fingerprint),
            &Held::default(),
            &one(None, true),
            t(30),
        );
        assert_eq!(flush.done, vec![b.0]);
        assert_eq!(g.members.len(), 1);
    }

    /// Flushes `group` at `now` with `alerts` for integrations with these log entries and `send_resolved`; records
    /// the entry of each one sent to, and returns the reasons.
    fn flush_each(
        group: &mut Group,
        logs: &mut [(Option<Entry>, bool)],
        alerts: &[(Fingerprint, Alert)],
        now: i64,
    ) -> Vec<Option<Reason>> {
        let alerts = lookup(alerts);
        let recipients: Vec<Recipient<'_>> = logs
            .iter()
            .map(|(last, send_resolved)| Recipient {
                last: last.as_ref(),
                send_resolved: *send_resolved,
            })
            .collect();
        let flush = group.flush(
            |fingerprint| alerts.get(fingerprint),
            &Held::default(),
            &recipients,
            t(now),
        );
        for ((last, _), reason) in logs.iter_mut().zip(&flush.reasons) {
            if reason.is_some() {
                *last = flush.entry.clone().map(Entry::Sent);
            }
        }
        flush.reasons
    }

    #[test]
    fn an_integration_the_receiver_gained_is_told_what_fires_and_the_others_nothing() {
        let (mut g, a) = (group(0), alert("A", None));
        g.add(a.0, t(0), t(0));
        let mut logs = [(None, true)];
        flush_each(&mut g, &mut logs, std::slice::from_ref(&a), 30);
        let told = logs[0].0.clone();
        let mut logs = [(told, true), (None, true)];
        assert_eq!(
            flush_each(&mut g, &mut logs, std::slice::from_ref(&a), 330),
            [None, Some(Reason::First)]
        );
        assert_eq!(
            last(&logs[0].0).firing,
            last(&logs[1].0).firing,
            "both told the same alerts now (each repeats on its own schedule)"
        );
        assert_eq!(
            flush_each(&mut g, &mut logs, std::slice::from_ref(&a), 630),
            [None, None]
        );
        // A gained integration is not told of alerts that resolved before it came.
        let (mut g, b) = (group(0), alert("B", None));
        g.add(b.0, t(0), t(0));
        let mut logs = [(None, true)];
        flush_each(&mut g, &mut logs, std::slice::from_ref(&b), 30);
        let mut logs = [(logs[0].0.clone(), true), (None, true)];
        assert_eq!(
            flush_each(&mut g, &mut logs, &[alert("B", Some(100))], 330),
            [Some(Reason::AllResolved), None]
        );
    }

    #[test]
    fn an_integration_whose_notification_died_waits_for_its_replay_unless_the_group_says_more() {
        let (mut g, a, b) = (group(0), alert("A", None), alert("B", None));
        g.add(a.0, t(0), t(0));
        let mut logs = [(None, true), (None, true)];
        assert_eq!(
            flush_each(&mut g, &mut logs, std::slice::from_ref(&a), 30),
            [Some(Reason::First); 2]
        );
        // The first integration's delivery died; the second one's was delivered.
        let Some(Entry::Sent(parked)) = logs[0].0.clone() else {
            panic!("sent");
        };
        logs[0].0 = Some(Entry::Dead { parked, had: None });
        assert_eq!(
            flush_each(&mut g, &mut logs, std::slice::from_ref(&a), 330),
            [None, None],
            "nothing its dead letter does not say: a replay delivers that"
        );
        g.add(b.0, t(400), t(400));
        let both = [a.clone(), b.clone()];
        assert_eq!(
            flush_each(&mut g, &mut logs, &both, 630),
            [Some(Reason::First), Some(Reason::NewAlerts)],
            "the group changed: each is told the current state, against what it has"
        );
        assert_eq!(logs[0].0, logs[1].0, "then both were told the same");

        // A dead first notification of alerts that resolved since: nothing to take back.
        let mut g = group(0);
        g.add(a.0, t(0), t(0));
        let mut logs = [(None, true), (None, true)];
        flush_each(&mut g, &mut logs, std::slice::from_ref(&a), 30);
        let Some(Entry::Sent(parked)) = logs[0].0.clone() else {
            panic!("sent");
        };
        logs[0].0 = Some(Entry::Dead { parked, had: None });
        assert_eq!(
            flush_each(&mut g, &mut logs, &[alert("A", Some(100))], 330),
            [None, Some(Reason::AllResolved)]
        );

        // A dead resolve of alerts it had: it is told when the group says more, and at the repeat.
        let mut g = group(0);
        g.add(a.0, t(0), t(0));
        g.add(b.0, t(0), t(0));
        let mut logs = [(None, true)];
        flush_each(&mut g, &mut logs, &both, 30);
        let had = match logs[0].0.clone() {
            Some(Entry::Sent(had)) => had,
            _ => panic!("sent"),
        };
        let b_resolved = [a.clone(), alert("B", Some(100))];
        assert_eq!(
            flush_each(&mut g, &mut logs, &b_resolved, 330),
            [Some(Reason::SomeResolved)]
        );
        let Some(Entry::Sent(parked)) = logs[0].0.clone() else {
            panic!("sent");
        };
        logs[0].0 = Some(Entry::Dead {
            parked,
            had: Some(had),
        });
        let only_a = std::slice::from_ref(&a);
        assert_eq!(flush_each(&mut g, &mut logs, only_a, 630), [None]);
        assert_eq!(
            flush_each(&mut g, &mut logs, only_a, 330 + 4 * 3600),
            [Some(Reason::Repeat)],
            "repeat_interval after the dead one"
        );
    }

    #[test]
    fn each_integration_decides_with_its_own_send_resolved() {
        let (mut g, a, b) = (group(0), alert("A", None), alert("B", None));
        g.add(a.0, t(0), t(0));
        g.add(b.0, t(0), t(0));
        let mut logs = [(None, true), (None, false)];
        assert_eq!(
            flush_each(&mut g, &mut logs, &[a.clone(), b.clone()], 30),
            [Some(Reason::First); 2]
        );
        assert_eq!(
            flush_each(&mut g, &mut logs, &[a.clone(), alert("B", Some(100))], 330),
            [Some(Reason::SomeResolved), None],
            "a partial resolve is news only with send_resolved"
        );
        assert_ne!(logs[0].0, logs[1].0);
        assert_eq!(
            flush_each(&mut g, &mut logs, &[alert("A", Some(400))], 630),
            [Some(Reason::AllResolved); 2],
            "all resolved: both logs stop listing them as firing"
        );
        assert_eq!(logs[0].0, logs[1].0);
    }

    #[test]
    fn ticks_keep_the_phase_of_the_first_flush() {
        let interval = Duration::from_secs(300);
        assert_eq!(next_tick(t(30), interval, t(30), false), t(330));
        assert_eq!(next_tick(t(30), interval, t(329), false), t(330));
        assert_eq!(next_tick(t(30), interval, t(330), false), t(630));
        assert_eq!(next_tick(t(30), interval, t(330), true), t(330));
        assert_eq!(next_tick(t(30), interval, t(10_000), false), t(10_230));

        // A flush that runs late (a busy dispatcher, a clock that jumped) does not shift later ticks.
        let (mut g, mut log) = (group(0), None);
        let a = alert("A", None);
        g.add(a.0, t(0), t(0));
        assert!(flush(&mut g, &mut log, std::slice::from_ref(&a), true, 45).is_some());
        assert_eq!(
            g.anchor,
            Some(t(30)),
            "anchored where the first flush was due"
        );
        assert_eq!(g.next_flush, t(330));
        assert_eq!(
            flush(&mut g, &mut log, std::slice::from_ref(&a), true, 1000),
            None
        );
        assert_eq!(g.next_flush, t(1230));
    }
}
