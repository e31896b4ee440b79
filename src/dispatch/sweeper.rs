//! The sweeper: resolves alerts whose `endsAt` passed without a re-send, and deletes resolved alerts and delivered and
//! dead deliveries past their retention (the dispatcher forgets the notification log of groups that are gone).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::DispatchHandle;
use crate::clock::Clock;
use crate::store::Store;

/// How often expiry is checked; an alert resolves at most this long after its `endsAt`.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Retention is enforced every this many sweeps.
const PURGE_EVERY: u32 = 60;

/// How long what the sweeper deletes is kept, as configured now (it follows reloads).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `storage.resolved_retention`: resolved alerts.
    pub resolved: Duration,
    /// `delivery.retention`: delivered and dead deliveries and integration state.
    pub deliveries: Duration,
}

pub fn start(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    dispatch: DispatchHandle,
    retention: impl Fn() -> Retention + Send + 'static,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sweeps: u32 = 0;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let now = clock.now();
            match store.resolve_expired(now).await {
                Ok(changes) => dispatch.submit_stored(changes).await,
                Err(error) => tracing::warn!(%error, "resolving expired alerts failed"),
            }
            sweeps = sweeps.wrapping_add(1);
            if sweeps % PURGE_EVERY == 1 {
                let Retention {
                    resolved: resolved_retention,
                    deliveries: delivery_retention,
                } = retention();
                let cutoff = |retention: Duration| {
                    let retention =
                        chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
                    now.checked_sub_signed(retention)
                        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
                };
                match store.purge_deliveries(cutoff(delivery_retention)).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::debug!(deleted, "deleted deliveries past retention"),
                    Err(error) => tracing::warn!(%error, "deleting old deliveries failed"),
                }
                match store.purge_resolved(cutoff(resolved_retention)).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::debug!(deleted, "deleted resolved alerts past retention")
                    }
                    Err(error) => tracing::warn!(%error, "deleting resolved alerts failed"),
                }
            }
        }
    })
}
