//! The plumbing the loopback emulators share (the scripted webhook receiver, the Slack and the Jira emulators):
//! serving an axum app on a loopback port in a task that ends when the emulator is stopped or dropped, the state a
//! request handler shares with the test behind a mutex, a count of requests with a bounded wait for it, the time
//! on the injected clock, and the "one request per gap" limit some emulators can enforce.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::clock::Clock;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long the `wait_*` helpers wait before failing the test.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Binds a free loopback port.
pub async fn loopback() -> TcpListener {
    bind("127.0.0.1:0".parse().unwrap()).await
}

/// Binds `addr` (e.g. a port reserved earlier).
pub async fn bind(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr).await.unwrap()
}

/// An axum app served in a task; stops serving when dropped (requests in flight are not answered).
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves every request on `listener` (plain TCP, or TLS) with `handler`, given `state`.
    pub fn start<L, H, T, S>(listener: L, handler: H, state: S) -> Self
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
        H: axum::handler::Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let app = axum::Router::new().fallback(handler).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What an emulator's handle and its request handler share: its state, a count of the requests recorded, and the
/// clock requests are timed on.
pub struct Shared<I> {
    inner: Arc<Mutex<I>>,
    count: Arc<watch::Sender<usize>>,
    clock: Arc<dyn Clock>,
}

impl<I> Clone for Shared<I> {
    fn clone(&self) -> Self {
        Shared {
            inner: self.inner.clone(),
            count: self.count.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<I> Shared<I> {
    pub fn new(inner: I, clock: Arc<dyn Clock>) -> Self {
        Shared {
            inner: Arc::new(Mutex::new(inner)),
            count: Arc::new(watch::channel(0).0),
            clock,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, I> {
        self.inner.lock().unwrap()
    }

    /// The time on the injected clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Handles and records one request under the lock with `record`, then counts it (waking the waiters).
    pub fn record<R>(&self, record: impl FnOnce(&mut I) -> R) -> R {
        let result = record(&mut self.lock());
        self.count.send_modify(|count| *count += 1);
        result
    }

    /// Waits (up to [`WAIT_LIMIT`]) until at least `count` requests were recorded; `who` names the emulator in the
    /// failure.
    pub async fn wait_for_count(&self, count: usize, who: &str) {
        let mut seen = self.count.subscribe();
        let waited = tokio::time::timeout(WAIT_LIMIT, seen.wait_for(|n| *n >= count)).await;
        assert!(
            waited.is_ok(),
            "{who} got {} requests, not {count}",
            *self.count.borrow()
        );
    }

    /// Waits (up to [`WAIT_LIMIT`]) until `done` holds, re-checking after every request; fails with `what` and
    /// `describe()`.
    pub async fn wait_until(
        &self,
        what: &str,
        done: impl Fn() -> bool,
        describe: impl Fn() -> String,
    ) {
        let mut seen = self.count.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            seen.mark_unchanged();
            if done() {
                return;
            }
            let changed = tokio::time::timeout_at(deadline, seen.changed()).await;
            assert!(
                changed.is_ok(),
                "timed out waiting until {what}; {}",
                describe()
            );
        }
    }
}

/// A service limited to one request per gap: a request closer than that to the previous accepted one is refused
/// and counted as a violation.
#[derive(Debug, Default)]
pub struct MinGap {
    gap: Option<Duration>,
    last_accepted: Option<DateTime<Utc>>,
    violations: usize,
}

impl MinGap {
    pub fn enforce(&mut self, gap: Duration) {
        self.gap = Some(gap);
    }

    /// The gap enforced, if any.
    pub fn gap(&self) -> Option<Duration> {
        self.gap
    }

    pub fn violations(&self) -> usize {
        self.violations
    }

    /// Accepts a request at `at` (it becomes the last accepted one) unless a gap is enforced and `at` is closer than
    /// that to the last accepted request: then counts a violation and returns how long is left until the gap ends.
    pub fn admit(&mut self, at: DateTime<Utc>) -> Result<(), chrono::Duration> {
        let Some(gap) = self.gap else {
            return Ok(());
        };
        let gap = chrono::Duration::from_std(gap).unwrap();
        if let Some(last) = self.last_accepted
            && at - last < gap
        {
            self.violations += 1;
            return Err(last + gap - at);
        }
        self.last_accepted = Some(at);
        Ok(())
    }
}
