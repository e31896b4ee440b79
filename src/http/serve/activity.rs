//! What one connection is doing (waiting for a request's head, serving a request, idle between requests), when it
//! started doing it, and so when it is due to be closed; the reads and requests that move it along.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A connection's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepted, nothing received yet.
    Fresh = 0,
    /// Receiving a request's head (or the TLS handshake): bytes arrived, no complete request yet.
    Head = 1,
    /// A request is being served (until its answer's body was sent).
    Busy = 2,
    /// Answered, waiting for the next request (keep-alive).
    Idle = 3,
}

impl Phase {
    fn from_bits(bits: u64) -> Phase {
        match bits & 0b11 {
            0 => Phase::Fresh,
            1 => Phase::Head,
            2 => Phase::Busy,
            _ => Phase::Idle,
        }
    }
}

/// Why herald closed a connection; the `reason` of `herald_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// No complete request head (TLS handshake included) within `server.header_read_timeout`.
    HeaderTimeout,
    /// Idle between requests for `server.idle_timeout`.
    IdleTimeout,
    /// Idle, and closed to make room for a new connection at `server.max_connections`.
    Evicted,
    /// Accepted over `server.max_connections` with none idle: answered once and closed.
    OverLimit,
    /// Accepted over `server.max_connections` and its reserve: closed unanswered.
    Refused,
}

impl Closed {
    pub(crate) const ALL: [Closed; 5] = [
        Closed::HeaderTimeout,
        Closed::IdleTimeout,
        Closed::Evicted,
        Closed::OverLimit,
        Closed::Refused,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
            Closed::OverLimit => "over_limit",
            Closed::Refused => "refused",
        }
    }

    pub(crate) fn count(self) {
        metrics::counter!("herald_http_connections_closed_total", "reason" => self.as_str())
            .increment(1);
    }
}

/// The timeouts a connection was accepted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

/// One connection's phase and since when, shared by its reads, its requests, its watch and the registry (which
/// picks connections to evict). Only the connection's own task changes the phase; the registry only reads it and
/// asks for an eviction.
#[derive(Debug)]
pub(crate) struct Activity {
    /// What the registry's times count from.
    epoch: Instant,
    /// The phase in the low two bits, above them since when (microseconds from `epoch`).
    state: AtomicU64,
    /// Requests whose answer is not sent yet (one at a time in HTTP/1.1, counted to be safe).
    in_flight: AtomicU32,
    /// Set by the registry to have this connection closed if it is still idle.
    evict: AtomicBool,
    /// Bytes were written since the last completed flush: an answer may still be on its way out.
    unflushed: AtomicBool,
    /// Wakes the connection's watch: it went idle, a request started arriving, or it is to be evicted.
    wake: Notify,
}

impl Activity {
    pub(crate) fn new(epoch: Instant, now: Instant) -> Activity {
        let activity = Activity {
            epoch,
            state: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            evict: AtomicBool::new(false),
            unflushed: AtomicBool::new(false),
            wake: Notify::new(),
        };
        activity.set(Phase::Fresh, now);
        activity
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX >> 2)
    }

    fn set(&self, phase: Phase, at: Instant) {
        self.state
            .store((self.micros(at) << 2) | phase as u64, Ordering::Release);
    }

    /// The phase and since when.
    pub(crate) fn phase(&self) -> (Phase, Instant) {
        let bits = self.state.load(Ordering::Acquire);
        (
            Phase::from_bits(bits),
            self.epoch + Duration::from_micros(bits >> 2),
        )
    }

    /// Bytes arrived: a fresh or idle connection is now receiving a request. A fresh one keeps the time it was
    /// accepted, so its handshake and first head share one `header_read_timeout`.
    pub(crate) fn on_read(&self) {
        match self.phase() {
            (Phase::Fresh, since) => self.set(Phase::Head, since),
            (Phase::Idle, _) => {
                self.set(Phase::Head, Instant::now());
                self.wake.notify_one();
            }
            _ => {}
        }
    }

    /// A request's head arrived; the returned guard ends it when dropped (with its answer's body).
    pub(crate) fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set(Phase::Busy, Instant::now());
        RequestGuard(Arc::clone(self))
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.set(Phase::Idle, Instant::now());
            self.wake.notify_one();
        }
    }

    /// When this connection is due to be closed and why, in its phase: none while a request is served.
    pub(crate) fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, Closed)> {
        match self.phase() {
            (Phase::Fresh | Phase::Head, since) => {
                Some((since + timeouts.header_read, Closed::HeaderTimeout))
            }
            (Phase::Idle, since) => Some((since + timeouts.idle, Closed::IdleTimeout)),
            (Phase::Busy, _) => None,
        }
    }

    /// Whether this connection may be closed to make room, and its rank among those that may (lower goes first):
    /// one that sent nothing since it opened before one idle between requests, the one waiting longest first.
    pub(crate) fn eviction_rank(&self) -> Option<(u8, Instant)> {
        if self.evict.load(Ordering::Acquire) {
            return None;
        }
        match self.phase() {
            (Phase::Fresh, since) => Some((0, since)),
            (Phase::Idle, since) => Some((1, since)),
            _ => None,
        }
    }

    /// Asks this connection to close if it is still idle when its task sees the request.
    pub(crate) fn request_eviction(&self) {
        self.evict.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits until this connection must be closed: its deadline passed, or it was evicted while idle.
    pub(crate) async fn closing(&self, timeouts: Timeouts) -> Closed {
        loop {
            if let Due::Close(reason) = self.due(timeouts, None).await {
                return reason;
            }
        }
    }

    /// Waits until this connection must be closed, or (with `park_after`) until it has been idle that long with
    /// its last answer sent, so its HTTP buffers can be let go until the client sends again.
    pub(crate) async fn due(&self, timeouts: Timeouts, park_after: Option<Duration>) -> Due {
        let mut not_before = Instant::now();
        loop {
            let close = self.deadline(timeouts).map(|(at, _)| at);
            let park = match (park_after, self.phase()) {
                (Some(after), (Phase::Idle, since)) => Some((since + after).max(not_before)),
                _ => None,
            };
            let next = match (close, park) {
                (Some(close), Some(park)) => Some(close.min(park)),
                (close, park) => close.or(park),
            };
            tokio::select! {
                () = sleep_until(next) => {
                    let now = Instant::now();
                    if let Some((at, reason)) = self.deadline(timeouts)
                        && at <= now
                    {
                        return Due::Close(reason);
                    }
                    if let (Some(after), (Phase::Idle, since)) = (park_after, self.phase())
                        && since + after <= now
                    {
                        if !self.unflushed.load(Ordering::Acquire) {
                            return Due::Park;
                        }
                        not_before = now + after;
                    }
                }
                () = self.wake.notified() => {
                    if self.evict.swap(false, Ordering::AcqRel)
                        && matches!(self.phase().0, Phase::Fresh | Phase::Idle)
                    {
                        return Due::Close(Closed::Evicted);
                    }
                }
            }
        }
    }
}

/// What `Activity::due` found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Close(Closed),
    /// Idle long enough, its answer sent: the connection can be parked.
    Park,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Ends its request when dropped.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// An answer's body that ends its request once sent (hyper drops it then), or dropped unsent.
pub(crate) struct Guarded {
    inner: Body,
    _request: RequestGuard,
}

impl Guarded {
    pub(crate) fn body(inner: Body, request: RequestGuard) -> Body {
        Body::new(Guarded {
            inner,
            _request: request,
        })
    }
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's byte stream (under TLS, if any) that tells its activity when bytes arrive.
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Ordering::Release);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Ordering::Release);
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            this.activity.unflushed.store(false, Ordering::Release);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(360),
    };

    #[tokio::test(start_paused = true)]
    async fn phases_follow_reads_and_requests_and_set_the_deadline() {
        let epoch = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let accepted = Instant::now();
        let activity = Arc::new(Activity::new(epoch, accepted));
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((accepted + TIMEOUTS.header_read, Closed::HeaderTimeout))
        );
        assert_eq!(
            activity.eviction_rank(),
            Some((0, accepted)),
            "silent since it opened"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        activity.on_read();
        // The first head is timed from the accept, not from its first byte.
        assert_eq!(activity.phase(), (Phase::Head, accepted));
        assert_eq!(activity.eviction_rank(), None);
        let request = activity.request_started();
        assert_eq!(activity.deadline(TIMEOUTS), None);
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(request);
        let answered = Instant::now();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((answered + TIMEOUTS.idle, Closed::IdleTimeout))
        );
        assert_eq!(activity.eviction_rank(), Some((1, answered)));
        tokio::time::advance(Duration::from_secs(60)).await;
        activity.on_read();
        // The next head is timed from its first byte.
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((Instant::now() + TIMEOUTS.header_read, Closed::HeaderTimeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn closing_waits_for_the_deadline_of_the_phase_in_force() {
        let activity = Arc::new(Activity::new(Instant::now(), Instant::now()));
        activity.on_read();
        let request = activity.request_started();
        let started = Instant::now();
        let closing = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { (activity.closing(TIMEOUTS).await, Instant::now()) }
        });
        // Busy for longer than both timeouts: nothing closes it.
        tokio::time::advance(Duration::from_secs(1000)).await;
        assert!(!closing.is_finished());
        drop(request);
        let (reason, at) = closing.await.unwrap();
        assert_eq!(reason, Closed::IdleTimeout);
        assert_eq!(
            at,
            started + Duration::from_secs(1000) + TIMEOUTS.idle,
            "idle from the answer on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_due_to_park_once_its_answer_is_flushed() {
        let activity = Arc::new(Activity::new(Instant::now(), Instant::now()));
        activity.on_read();
        drop(activity.request_started());
        let idle = Instant::now();
        activity.unflushed.store(true, Ordering::Release);
        let due = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move {
                let due = activity.due(TIMEOUTS, Some(Duration::from_secs(1))).await;
                (due, Instant::now())
            }
        });
        tokio::time::advance(Duration::from_millis(2500)).await;
        assert!(!due.is_finished(), "its answer is not out yet");
        activity.unflushed.store(false, Ordering::Release);
        let (due, at) = due.await.unwrap();
        assert_eq!(due, Due::Park);
        assert!(
            at >= idle + Duration::from_millis(2500),
            "not before it was flushed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_closes_an_idle_connection_but_not_one_receiving_a_request() {
        let activity = Arc::new(Activity::new(Instant::now(), Instant::now()));
        activity.on_read();
        activity.request_eviction();
        assert_eq!(activity.eviction_rank(), None);
        let closing = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.closing(TIMEOUTS).await }
        });
        tokio::task::yield_now().await;
        assert!(!closing.is_finished(), "receiving a head: not evicted");
        drop(activity.request_started());
        activity.request_eviction();
        assert_eq!(closing.await.unwrap(), Closed::Evicted);
    }
}
