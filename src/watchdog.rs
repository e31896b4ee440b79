//! The systemd watchdog: when the service manager asks for keep-alives (`WatchdogSec=` sets `WATCHDOG_USEC`, and
//! `WATCHDOG_PID` names this process), a task sends `WATCHDOG=1` at half that period for as long as the runtime
//! runs it; a herald whose runtime stops scheduling tasks is restarted by systemd.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The shortest period between keep-alives, however short the watchdog timeout.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// How often to send `WATCHDOG=1` for a watchdog `timeout`: half of it, as sd_watchdog_enabled(3) advises, so one
/// late tick does not miss it; `None` for a zero timeout (no watchdog).
pub(crate) fn interval(timeout: Duration) -> Option<Duration> {
    if timeout.is_zero() {
        return None;
    }
    Some((timeout / 2).max(MIN_INTERVAL))
}

/// Starts the keep-alive task when the service manager enabled the watchdog for this process; it stops when
/// `shutdown` is cancelled.
pub(crate) fn spawn(shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let timeout = sd_notify::watchdog_enabled()?;
    let period = interval(timeout)?;
    tracing::info!(?timeout, ?period, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                        tracing::warn!(%error, "cannot notify the systemd watchdog");
                    }
                }
                () = shutdown.cancelled() => break,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alives_go_at_half_the_timeout() {
        assert_eq!(
            interval(Duration::from_secs(30)),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            interval(Duration::from_micros(3_000_000)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            interval(Duration::from_micros(1)),
            Some(MIN_INTERVAL),
            "never a zero period"
        );
        assert_eq!(interval(Duration::ZERO), None);
    }
}
