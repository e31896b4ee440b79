//! Per-destination rate limits: a GCRA limiter (governor) on the injected clock for each destination that has a
//! `rate_limit`, and pauses a destination asked for (429 with Retry-After, or a nearly spent budget).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::config::RateLimit;

/// herald's clock as governor's: time since the Unix epoch.
#[derive(Debug, Clone)]
struct GovernorClock(Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0
            .now()
            .signed_duration_since(DateTime::UNIX_EPOCH)
            .to_std()
            .unwrap_or_default()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, GovernorClock, NoOpMiddleware<Duration>>;

/// The quota for `limit` sends per `period` with bursts of `burst`.
fn quota(rate: &RateLimit) -> Option<Quota> {
    let interval = rate.period / rate.limit.max(1);
    let burst = NonZeroU32::new(rate.burst.max(1))?;
    Quota::with_period(interval.max(Duration::from_nanos(1))).map(|quota| quota.allow_burst(burst))
}

#[derive(Default)]
struct Destination {
    /// The rate limit `limiter` enforces.
    rate: Option<RateLimit>,
    limiter: Option<Limiter>,
    paused_until: Option<DateTime<Utc>>,
}

/// Every destination's limiter and pause.
pub(crate) struct Destinations {
    clock: Arc<dyn Clock>,
    map: HashMap<String, Destination>,
}

impl Destinations {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Destinations {
            clock,
            map: HashMap::new(),
        }
    }

    fn limiter(&self, rate: Option<&RateLimit>) -> Option<Limiter> {
        let clock = GovernorClock(Arc::clone(&self.clock));
        rate.and_then(quota)
            .map(|quota| RateLimiter::direct_with_clock(quota, clock))
    }

    /// Sets the rate limit of every configured destination (`limits`: destination -> its first integration's
    /// limit). A destination whose limit is unchanged keeps its state; pauses are kept.
    pub(crate) fn apply_limits(&mut self, limits: &HashMap<String, Option<RateLimit>>) {
        for (destination, rate) in limits {
            let current = self.map.get(destination).map(|entry| entry.rate);
            if current == Some(*rate) {
                continue;
            }
            let limiter = self.limiter(rate.as_ref());
            let entry = self.map.entry(destination.clone()).or_default();
            entry.rate = *rate;
            entry.limiter = limiter;
        }
        self.map.retain(|destination, entry| {
            limits.contains_key(destination) || entry.paused_until.is_some()
        });
    }

    /// Takes a send slot of `destination` at `now`, or says when to ask again.
    pub(crate) fn acquire(
        &mut self,
        destination: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DateTime<Utc>> {
        let Some(entry) = self.map.get_mut(destination) else {
            return Ok(());
        };
        if let Some(until) = entry.paused_until {
            if until > now {
                return Err(until);
            }
            entry.paused_until = None;
        }
        let Some(limiter) = &entry.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(GovernorClock(Arc::clone(&self.clock)).now());
            now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
        })
    }

    /// Keeps `destination` from sending before `until` (later pauses win).
    pub(crate) fn pause(&mut self, destination: &str, until: DateTime<Utc>) {
        let entry = self.map.entry(destination.to_owned()).or_default();
        if entry.paused_until.is_none_or(|current| current < until) {
            entry.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn one_per_second_without_burst() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let mut destinations = Destinations::new(clock.clone());
        let rate = RateLimit {
            limit: 1,
            period: Duration::from_secs(1),
            burst: 1,
        };
        destinations.apply_limits(&HashMap::from([("d".to_string(), Some(rate))]));
        let start = clock.now();
        assert_eq!(destinations.acquire("d", start), Ok(()));
        let next = destinations.acquire("d", start).unwrap_err();
        assert_eq!(next, start + chrono::Duration::seconds(1));
        clock.advance(Duration::from_millis(999));
        assert!(destinations.acquire("d", clock.now()).is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(destinations.acquire("d", clock.now()), Ok(()));
    }

    #[test]
    fn bursts_then_paces() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let mut destinations = Destinations::new(clock.clone());
        let rate = RateLimit {
            limit: 20,
            period: Duration::from_secs(60),
            burst: 3,
        };
        destinations.apply_limits(&HashMap::from([("d".to_string(), Some(rate))]));
        let now = clock.now();
        for _ in 0..3 {
            assert_eq!(destinations.acquire("d", now), Ok(()));
        }
        assert_eq!(
            destinations.acquire("d", now),
            Err(now + chrono::Duration::seconds(3))
        );
    }

    #[test]
    fn pauses_hold_even_unlimited_destinations_and_the_later_wins() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let mut destinations = Destinations::new(clock.clone());
        destinations.apply_limits(&HashMap::from([("d".to_string(), None)]));
        let now = clock.now();
        let later = now + chrono::Duration::seconds(30);
        destinations.pause("d", later);
        destinations.pause("d", now + chrono::Duration::seconds(2));
        assert_eq!(destinations.acquire("d", now), Err(later));
        assert_eq!(destinations.acquire("d", later), Ok(()));
        assert_eq!(destinations.acquire("d", later), Ok(()));
    }
}
