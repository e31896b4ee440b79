//! Serving HTTP/1.1 on herald's listener, plain or over TLS: the accept loop, the limit on open connections (with a
//! reserve that keeps health checks answered), each connection's header-read and idle timeouts, and the graceful
//! drain on shutdown.

mod activity;
mod connection;
mod registry;

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use activity::Closed;
use activity::Timeouts;
use registry::{Admission, Registry};

/// Connections accepted past `server.max_connections` when none is idle to make room: each answers one request
/// (health, readiness and metrics as usual, anything else 503) and is closed.
pub const RESERVE_CONNECTIONS: usize = 32;
/// File descriptors kept for what is not an incoming connection (the store, logs, outgoing connections) when
/// `server.max_connections` is derived from the open-file limit.
const DESCRIPTOR_HEADROOM: u64 = 256;
/// The most connections a derived `server.max_connections` allows.
const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// The fewest.
const MIN_MAX_CONNECTIONS: usize = 16;

/// Gives the TLS server configuration in force.
pub type TlsSource = Box<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// The connection settings in force, read as each connection is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Gives the connection settings in force.
pub type LimitsSource = Box<dyn Fn() -> Limits + Send + Sync>;

/// Raises the soft limit on open files to the hard one (as Go programs do at start); returns the limit in force,
/// or `None` when it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// `server.max_connections` when unset: what the open-file limit `nofile` leaves once the store, outgoing
/// connections and the reserve have theirs, at most 8192.
pub fn default_max_connections(nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return DEFAULT_MAX_CONNECTIONS;
    };
    let room = nofile.saturating_sub(DESCRIPTOR_HEADROOM + RESERVE_CONNECTIONS as u64);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(MIN_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS)
}

/// Whether `max_connections` (and the reserve) leave the headroom within the open-file limit `nofile`.
pub fn fits_open_file_limit(max_connections: usize, nofile: Option<u64>) -> bool {
    nofile.is_none_or(|nofile| {
        max_connections as u64 + RESERVE_CONNECTIONS as u64 + DESCRIPTOR_HEADROOM <= nofile
    })
}

/// What every connection's task shares.
pub(crate) struct Shared {
    app: Router,
    tls: Option<TlsSource>,
    /// Cancelled when herald shuts down: connections finish the request they serve, then close.
    shutdown: CancellationToken,
    /// Cancelled when the drain ran out of time: connections close at once.
    force: CancellationToken,
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` is cancelled; then stops accepting and lets
/// the requests being served finish, for at most `drain_limit`, before it closes what is left.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsSource>,
    limits: LimitsSource,
    shutdown: CancellationToken,
    drain_limit: Duration,
) {
    let registry = Arc::new(Registry::new());
    let connections = TaskTracker::new();
    let shared = Arc::new(Shared {
        app,
        tls,
        shutdown: shutdown.clone(),
        force: CancellationToken::new(),
    });
    let warnings = Throttle::default();
    let mut limit_in_force = Some(limits().max_connections);
    metrics::gauge!("herald_http_connections_limit").set(limits().max_connections as f64);
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(&error, &registry, &warnings, &shutdown).await;
                continue;
            }
        };
        let limits = limits();
        if limit_in_force != Some(limits.max_connections) {
            limit_in_force = Some(limits.max_connections);
            metrics::gauge!("herald_http_connections_limit").set(limits.max_connections as f64);
        }
        let (admission, registered) = registry.admit(limits.max_connections);
        if admission != Admission::Serve && warnings.due() {
            tracing::warn!(
                max_connections = limits.max_connections,
                open = registry.len(),
                "herald serves as many connections as server.max_connections allows, none idle: new ones are \
                 answered once (health, readiness and metrics; 503 otherwise) or refused"
            );
        }
        let Some(registered) = registered else {
            registry::refused();
            drop(stream);
            continue;
        };
        let timeouts = Timeouts {
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
        };
        connections.spawn(connection::serve(
            stream,
            peer,
            registered,
            admission,
            timeouts,
            Arc::clone(&shared),
        ));
    }
    // Stop accepting: new connections are refused from here on.
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain_limit, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?drain_limit, open = registry.len(), "in-flight requests did not finish in time; stopping anyway");
        shared.force.cancel();
        connections.wait().await;
    }
}

/// An accept that failed: a connection reset before it was accepted is nothing; anything else (most often no file
/// descriptor left) is logged, an idle connection is closed to free one, and accepting resumes shortly.
async fn accept_failed(
    error: &io::Error,
    registry: &Registry,
    warnings: &Throttle,
    shutdown: &CancellationToken,
) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    let evicted = registry.evict_one();
    if warnings.due() {
        tracing::warn!(%error, open = registry.len(), closing_an_idle_one = evicted, "cannot accept connections");
    }
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(50)) => {}
        () = shutdown.cancelled() => {}
    }
}

/// Lets a warning through at most once a minute.
#[derive(Debug, Default)]
struct Throttle(Mutex<Option<Instant>>);

impl Throttle {
    fn due(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(60)) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limit_leaves_room_for_the_store_and_outgoing_connections() {
        assert_eq!(default_max_connections(Some(65_536)), 8192);
        assert_eq!(default_max_connections(Some(1024)), 1024 - 256 - 32);
        assert_eq!(default_max_connections(Some(100)), 16);
        assert_eq!(default_max_connections(None), 8192);
        assert!(fits_open_file_limit(8192, Some(65_536)));
        assert!(fits_open_file_limit(736, Some(1024)));
        assert!(!fits_open_file_limit(737, Some(1024)));
        assert!(fits_open_file_limit(100_000, None));
    }
}
