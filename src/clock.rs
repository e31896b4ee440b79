//! The injected clock: every "now" in herald comes from here, and so does every wait for a moment in time, so tests
//! set time instead of sleeping.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A future that completes at a moment of the clock's time.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Completes once `now()` has reached `deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been adjusted while sleeping.
            loop {
                let left = deadline.signed_duration_since(Utc::now());
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that only moves when told to; for tests. Sleepers wake when it is moved past their deadline, and tests
/// can wait until some task sleeps until a given moment (it has done everything due before).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    moved: watch::Sender<DateTime<Utc>>,
    /// Deadlines being slept until, and how many sleepers each has.
    sleepers: Arc<watch::Sender<BTreeMap<DateTime<Utc>, usize>>>,
}

/// A sleeper's place in `ManualClock::sleepers`, given up when its sleep ends or is dropped.
struct Sleeper {
    sleepers: Arc<watch::Sender<BTreeMap<DateTime<Utc>, usize>>>,
    deadline: DateTime<Utc>,
}

impl Sleeper {
    fn new(
        sleepers: &Arc<watch::Sender<BTreeMap<DateTime<Utc>, usize>>>,
        deadline: DateTime<Utc>,
    ) -> Self {
        sleepers.send_modify(|sleepers| *sleepers.entry(deadline).or_default() += 1);
        Sleeper {
            sleepers: Arc::clone(sleepers),
            deadline,
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.sleepers.send_modify(|sleepers| {
            if let Some(count) = sleepers.get_mut(&self.deadline) {
                *count -= 1;
                if *count == 0 {
                    sleepers.remove(&self.deadline);
                }
            }
        });
    }
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            moved: watch::Sender::new(start),
            sleepers: Arc::new(watch::Sender::new(BTreeMap::new())),
        }
    }

    /// Waits until some task sleeps until exactly `deadline`.
    pub async fn sleeping_until(&self, deadline: DateTime<Utc>) {
        let mut sleepers = self.sleepers.subscribe();
        let _ = sleepers
            .wait_for(|sleepers| sleepers.contains_key(&deadline))
            .await;
    }

    pub fn set(&self, now: DateTime<Utc>) {
        if let Ok(mut guard) = self.now.lock() {
            *guard = now;
        }
        self.moved.send_replace(now);
    }

    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        self.set(self.now() + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        match self.now.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        let mut moved = self.moved.subscribe();
        let sleeper = Sleeper::new(&self.sleepers, deadline);
        Box::pin(async move {
            let _sleeper = sleeper;
            while self.now() < deadline {
                if moved.changed().await.is_err() {
                    // The clock is gone; it will never reach the deadline.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn manual_sleepers_wake_when_time_is_moved_past_them() {
        let start: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock
                    .sleep_until(start + chrono::Duration::seconds(30))
                    .await
            })
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            clock.sleeping_until(start + chrono::Duration::seconds(30)),
        )
        .await
        .unwrap();
        clock.advance(Duration::from_secs(29));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(30), sleeper)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn system_sleep_until_a_past_deadline_returns_at_once() {
        SystemClock
            .sleep_until(Utc::now() - chrono::Duration::seconds(1))
            .await;
    }
}
