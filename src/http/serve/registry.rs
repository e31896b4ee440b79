//! The open connections: how many there are against `server.max_connections`, whether a new one is served, served
//! after closing an idle one, answered once from the reserve, or refused; and the connection gauge.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use super::RESERVE_CONNECTIONS;
use super::activity::{Activity, Closed};

/// How a new connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Like any other.
    Serve,
    /// From the reserve: one request, and only the health, readiness and metrics endpoints answered as usual.
    Reserve,
    /// Closed unanswered.
    Refuse,
}

#[derive(Debug)]
pub(crate) struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.open().len()
    }

    /// Decides how a connection accepted now is served with `max` connections allowed, closing the connection idle
    /// the longest to make room when there are `max` already; registers it unless it is refused.
    pub(crate) fn admit(self: &Arc<Self>, max: usize) -> (Admission, Option<Registered>) {
        let mut open = self.open();
        let admission = if open.len() < max {
            Admission::Serve
        } else if open.len() >= max.saturating_add(RESERVE_CONNECTIONS) {
            // Even the reserve is in use: closing an idle one would still leave no room for this one.
            Admission::Refuse
        } else if let Some(idlest) = idlest(&open) {
            // Counted open until its task closes it, which it does as soon as it sees the request.
            idlest.request_eviction();
            Admission::Serve
        } else {
            Admission::Reserve
        };
        if admission == Admission::Refuse {
            return (admission, None);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch, Instant::now()));
        open.insert(id, Arc::clone(&activity));
        metrics::gauge!("herald_http_connections").increment(1.0);
        (
            admission,
            Some(Registered {
                id,
                activity,
                registry: Arc::clone(self),
            }),
        )
    }

    /// Closes the connection idle the longest, if any (when the process is out of file descriptors).
    pub(crate) fn evict_one(&self) -> bool {
        match idlest(&self.open()) {
            Some(activity) => {
                activity.request_eviction();
                true
            }
            None => false,
        }
    }
}

/// The connection to close first to make room (see `Activity::eviction_rank`; of two alike, the older).
fn idlest(open: &HashMap<u64, Arc<Activity>>) -> Option<&Arc<Activity>> {
    open.iter()
        .filter_map(|(id, activity)| activity.eviction_rank().map(|rank| ((rank, *id), activity)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, activity)| activity)
}

/// A connection counted open until this is dropped.
#[derive(Debug)]
pub(crate) struct Registered {
    id: u64,
    pub(crate) activity: Arc<Activity>,
    registry: Arc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.registry.open().remove(&self.id).is_some() {
            metrics::gauge!("herald_http_connections").decrement(1.0);
        }
    }
}

/// Counts a connection closed unanswered at the limit.
pub(crate) fn refused() {
    Closed::Refused.count();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::serve::activity::Phase;

    fn idle(registered: &Registered) {
        registered.activity.on_read();
        drop(registered.activity.request_started());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_idlest_makes_room_then_the_reserve_then_refusal() {
        let registry = Arc::new(Registry::new());
        let mut held = Vec::new();
        for _ in 0..3 {
            let (admission, registered) = registry.admit(3);
            assert_eq!(admission, Admission::Serve);
            held.push(registered.unwrap());
            tokio::time::advance(std::time::Duration::from_secs(1)).await;
        }
        // The second went idle before the first: it goes first.
        idle(&held[1]);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        idle(&held[0]);
        // The third is receiving a request: never evicted.
        held[2].activity.on_read();
        let (admission, fourth) = registry.admit(3);
        assert_eq!(admission, Admission::Serve);
        assert_eq!(held[1].activity.eviction_rank(), None, "asked to close");
        assert!(held[0].activity.eviction_rank().is_some());
        // A silent one goes before idle ones.
        let fourth = fourth.unwrap();
        assert_eq!(fourth.activity.phase().0, Phase::Fresh);
        let (admission, fifth) = registry.admit(3);
        assert_eq!(admission, Admission::Serve);
        assert_eq!(fourth.activity.eviction_rank(), None, "asked to close");
        assert!(held[0].activity.eviction_rank().is_some());
        // Nothing left to evict but the first; then only the reserve.
        held[0].activity.on_read();
        let fifth = fifth.unwrap();
        fifth.activity.on_read();
        let mut reserve = Vec::new();
        while registry.len() < 3 + RESERVE_CONNECTIONS {
            let (admission, registered) = registry.admit(3);
            assert_eq!(admission, Admission::Reserve);
            let registered = registered.unwrap();
            registered.activity.on_read();
            reserve.push(registered);
        }
        let (admission, refused) = registry.admit(3);
        assert_eq!(admission, Admission::Refuse);
        assert!(refused.is_none());
        drop(reserve);
        drop(held);
        drop(fifth);
        assert_eq!(registry.len(), 1, "the fourth");
        drop(fourth);
        assert_eq!(registry.len(), 0);
    }
}
