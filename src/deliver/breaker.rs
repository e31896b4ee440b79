//! Per-destination circuit breaker: which destinations are down after consecutive failed sends, when the one
//! delivery that probes a down destination may go, and the transitions (logged once each, and exported as the
//! `herald_destination_down` gauge).
//!
//! While a destination is down, the deliveries waiting for it are not retried on their own timers: one of them at
//! a time probes it, at the backoff pace (without jitter: there is one request to pace, nothing to spread), and
//! when a probe (or any send) gets an answer, the destination is up and everything waiting for it may go at once,
//! within its rate limit and its receiver's concurrency.
//!
//! The state is memory only. A restart probes again: deliveries read back from the store that wait for a retry
//! mark their destination as suspect (down, probe due at once), so the first of them to go is the probe, and its
//! success releases the others instead of leaving each to its stored retry time.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::RetryPolicy;

/// Consecutive failed sends (timeouts, connection errors, 408 and 5xx) after which a destination is down.
pub(crate) const DOWN_AFTER_FAILURES: u32 = 3;

/// The longest wait between two probes of a down destination, whatever its backoff has grown to: a destination
/// that comes back is found within this, and one request per this interval is all a down destination gets.
pub(crate) const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// The wait after the `probes`-th failure of a down destination (the one that marked it down counts as the first):
/// the retry policy's backoff ceiling, capped at [`MAX_PROBE_INTERVAL`].
pub(crate) fn probe_wait(policy: &RetryPolicy, probes: u32) -> Duration {
    let doublings = probes.saturating_sub(1).min(31);
    policy
        .initial_backoff
        .saturating_mul(1u32 << doublings)
        .min(policy.max_backoff)
        .min(MAX_PROBE_INTERVAL)
}

/// A destination that came back up: how long it was down, and how many probes failed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub down_for: Duration,
    pub probes: u32,
}

/// How a send to a destination ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The destination answered (delivered, rate limited, or refused the request for good): it is up.
    Answered,
    /// No usable answer: timeout, connection error, 408 or 5xx.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Down {
    since: DateTime<Utc>,
    /// When the next probe may go.
    next_probe: DateTime<Utc>,
    /// The delivery probing now.
    probing: Option<i64>,
    /// Failed probes, counting the failure that marked it down.
    probes: u32,
}

#[derive(Debug, Default)]
struct Breaker {
    /// Consecutive failures while up.
    failures: u32,
    down: Option<Down>,
    /// Got an answer since the start: deliveries read back waiting for a retry may go at once.
    answered: bool,
    /// When it last came back up.
    released_at: Option<DateTime<Utc>>,
}

/// What a destination allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Up: every due delivery may go.
    Open,
    /// Down, and a probe may go now.
    Probe,
    /// Down: nothing goes before this (`None`: a probe is in flight).
    Closed(Option<DateTime<Utc>>),
}

/// Every destination's breaker.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    map: HashMap<String, Breaker>,
}

fn set_gauge(destination: &str, down: bool) {
    metrics::gauge!("herald_destination_down", "destination" => destination.to_owned())
        .set(if down { 1.0 } else { 0.0 });
}

impl Breakers {
    /// Starts the gauge of every configured destination at 0 (those known keep their state).
    pub(crate) fn configured<'a>(&mut self, destinations: impl Iterator<Item = &'a String>) {
        for destination in destinations {
            if !self.map.contains_key(destination) {
                self.map.insert(destination.clone(), Breaker::default());
                set_gauge(destination, false);
            }
        }
    }

    pub(crate) fn gate(&self, destination: &str, now: DateTime<Utc>) -> Gate {
        match self.map.get(destination).and_then(|breaker| breaker.down) {
            None => Gate::Open,
            Some(Down {
                probing: Some(_), ..
            }) => Gate::Closed(None),
            Some(Down { next_probe, .. }) if next_probe <= now => Gate::Probe,
            Some(Down { next_probe, .. }) => Gate::Closed(Some(next_probe)),
        }
    }

    /// Whether any destination is down.
    pub(crate) fn any_down(&self) -> bool {
        self.map.values().any(|breaker| breaker.down.is_some())
    }

    pub(crate) fn is_down(&self, destination: &str) -> bool {
        self.map
            .get(destination)
            .is_some_and(|breaker| breaker.down.is_some())
    }

    /// Down destinations whose probe may go at `now`.
    pub(crate) fn probes_due(&self, now: DateTime<Utc>) -> Vec<String> {
        self.map
            .iter()
            .filter(|(destination, _)| self.gate(destination, now) == Gate::Probe)
            .map(|(destination, _)| destination.clone())
            .collect()
    }

    /// When the next probe of a down destination may go, after `now`.
    pub(crate) fn next_probe_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.map
            .values()
            .filter_map(|breaker| breaker.down)
            .filter(|down| down.probing.is_none() && down.next_probe > now)
            .map(|down| down.next_probe)
            .min()
    }

    /// Delivery `id` probes `destination`.
    pub(crate) fn probe_started(&mut self, destination: &str, id: i64) {
        if let Some(down) = self
            .map
            .get_mut(destination)
            .and_then(|breaker| breaker.down.as_mut())
        {
            down.probing = Some(id);
        }
    }

    /// The delivery probing `destination`, if any.
    pub(crate) fn probe_of(&self, destination: &str) -> Option<i64> {
        self.map
            .get(destination)
            .and_then(|breaker| breaker.down)
            .and_then(|down| down.probing)
    }

    /// Forgets probes whose delivery is no longer being worked on (`busy` says which are) without their send having
    /// ended (its claim failed, or it was settled or discarded meanwhile): the next probe may go at once.
    pub(crate) fn forget_lost_probes(&mut self, busy: impl Fn(i64) -> bool) {
        for down in self
            .map
            .values_mut()
            .filter_map(|breaker| breaker.down.as_mut())
        {
            if down.probing.is_some_and(|id| !busy(id)) {
                down.probing = None;
            }
        }
    }

    /// A send of delivery `id` to `destination` ended at `now`. Returns `Some` when the destination came back up:
    /// what waits for it may go (the caller releases it and says so). `policy` paces the probes.
    pub(crate) fn ended(
        &mut self,
        destination: &str,
        id: i64,
        reach: Reach,
        error: &str,
        policy: &RetryPolicy,
        now: DateTime<Utc>,
    ) -> Option<Recovered> {
        let breaker = self.map.entry(destination.to_owned()).or_default();
        match (reach, breaker.down) {
            (Reach::Answered, None) => {
                breaker.failures = 0;
                breaker.answered = true;
                None
            }
            (Reach::Answered, Some(down)) => {
                breaker.failures = 0;
                breaker.answered = true;
                breaker.down = None;
                breaker.released_at = Some(now);
                set_gauge(destination, false);
                Some(Recovered {
                    down_for: (now - down.since).to_std().unwrap_or_default(),
                    probes: down.probes,
                })
            }
            (Reach::Failed, None) => {
                breaker.failures += 1;
                if breaker.failures >= DOWN_AFTER_FAILURES {
                    let wait = probe_wait(policy, 1);
                    breaker.down = Some(Down {
                        since: now,
                        next_probe: add(now, wait),
                        probing: None,
                        probes: 1,
                    });
                    tracing::warn!(
                        destination,
                        %error,
                        failures = breaker.failures,
                        "destination is down; one delivery at a time probes it until it answers"
                    );
                    set_gauge(destination, true);
                }
                None
            }
            (Reach::Failed, Some(mut down)) => {
                // Only the probe's failure paces the next probe; sends that were in flight when it went down
                // change nothing.
                if down.probing == Some(id) {
                    down.probing = None;
                    down.probes = down.probes.saturating_add(1);
                    down.next_probe = add(now, probe_wait(policy, down.probes));
                    tracing::debug!(destination, %error, next_probe = %down.next_probe, "probe failed");
                    breaker.down = Some(down);
                }
                None
            }
        }
    }

    /// A delivery read back from the store waits for a retry after a failure in an earlier run. Returns when it
    /// may go: at once if the destination answered in this run, as it was if the destination is down (its probe
    /// or release decides), and the destination becomes suspect (down, probe due at once) if nothing is known of it.
    pub(crate) fn read_back_waiting(
        &mut self,
        destination: &str,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let breaker = self.map.entry(destination.to_owned()).or_default();
        if breaker.down.is_some() {
            return due;
        }
        if breaker.answered {
            return now.min(due);
        }
        breaker.down = Some(Down {
            since: now,
            next_probe: now,
            probing: None,
            probes: 0,
        });
        tracing::info!(
            destination,
            "deliveries wait for a retry from before the start; probing their destination"
        );
        set_gauge(destination, true);
        due
    }

    /// When an attempt that ended at `ended` and is to go again at `due` may go: a destination that came back up
    /// after the attempt ended takes it at once.
    pub(crate) fn retry_at(
        &self,
        destination: &str,
        ended: DateTime<Utc>,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        match self.map.get(destination) {
            Some(breaker) if breaker.down.is_none() => match breaker.released_at {
                Some(released) if released >= ended => due.min(now),
                _ => due,
            },
            _ => due,
        }
    }
}

fn add(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 200,
            max_age: Duration::from_secs(86_400),
        }
    }

    fn t(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap_or_default()
    }

    #[test]
    fn probes_double_up_to_the_cap() {
        let waits: Vec<u64> = (1..=6)
            .map(|probes| probe_wait(&policy(), probes).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 5, 5, 5]);
    }

    #[test]
    fn down_after_consecutive_failures_one_probe_at_a_time_up_on_an_answer() {
        let mut breakers = Breakers::default();
        let p = policy();
        assert!(
            breakers
                .ended("d", 1, Reach::Failed, "HTTP 500", &p, t(0))
                .is_none()
        );
        assert!(
            breakers
                .ended("d", 2, Reach::Answered, "", &p, t(0))
                .is_none()
        );
        for id in 3..=5 {
            breakers.ended("d", id, Reach::Failed, "HTTP 500", &p, t(0));
        }
        assert_eq!(breakers.gate("d", t(0)), Gate::Closed(Some(t(1))));
        assert_eq!(breakers.gate("d", t(1)), Gate::Probe);
        assert_eq!(breakers.probes_due(t(1)), ["d"]);
        breakers.probe_started("d", 9);
        assert_eq!(breakers.gate("d", t(1)), Gate::Closed(None));
        // A straggler's failure does not pace the probes.
        breakers.ended("d", 4, Reach::Failed, "refused", &p, t(1));
        assert_eq!(breakers.gate("d", t(1)), Gate::Closed(None));
        breakers.ended("d", 9, Reach::Failed, "refused", &p, t(1));
        assert_eq!(breakers.gate("d", t(2)), Gate::Closed(Some(t(3))));
        assert_eq!(breakers.next_probe_after(t(2)), Some(t(3)));
        breakers.probe_started("d", 7);
        assert_eq!(
            breakers.ended("d", 7, Reach::Answered, "", &p, t(3)),
            Some(Recovered {
                down_for: Duration::from_secs(3),
                probes: 2
            })
        );
        assert_eq!(breakers.gate("d", t(3)), Gate::Open);
        assert_eq!(breakers.retry_at("d", t(2), t(60), t(3)), t(3));
        assert_eq!(breakers.retry_at("d", t(4), t(60), t(4)), t(60));
    }

    #[test]
    fn deliveries_waiting_from_before_a_start_make_their_destination_suspect() {
        let mut breakers = Breakers::default();
        assert_eq!(breakers.read_back_waiting("d", t(60), t(0)), t(60));
        assert_eq!(breakers.gate("d", t(0)), Gate::Probe);
        breakers.probe_started("d", 1);
        assert!(
            breakers
                .ended("d", 1, Reach::Answered, "", &policy(), t(0))
                .is_some()
        );
        assert_eq!(breakers.read_back_waiting("d", t(60), t(1)), t(1));
    }
}
