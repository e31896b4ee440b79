//! One connection's life: its TLS handshake if herald serves HTTPS, then HTTP/1.1 with keep-alive, closed when
//! its timeouts or the limit say so, or gracefully when herald shuts down.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::Shared;
use super::activity::{Activity, Closed, Due, Guarded, Timeouts, Tracked};
use super::registry::{Admission, Registered};

/// What a connection served from the reserve answers as usual; anything else is answered 503.
const RESERVE_PATHS: [&str; 3] = ["/-/healthy", "/-/ready", "/metrics"];

/// Serves one accepted connection until it ends; it stays counted open until then.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    registered: Registered,
    admission: Admission,
    timeouts: Timeouts,
    shared: Arc<Shared>,
) {
    let activity = Arc::clone(&registered.activity);
    let stream = Tracked::new(stream, Arc::clone(&activity));
    let reserve = admission == Admission::Reserve;
    let closed = match shared.tls.as_ref() {
        None => http(stream, reserve, &activity, timeouts, &shared).await,
        Some(tls) => {
            let acceptor = TlsAcceptor::from(tls());
            tokio::select! {
                biased;
                handshake = acceptor.accept(stream) => match handshake {
                    Ok(tls) => http(tls, reserve, &activity, timeouts, &shared).await,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        None
                    }
                },
                reason = activity.closing(timeouts) => Some(reason),
                () = shared.shutdown.cancelled() => None,
            }
        }
    };
    if reserve {
        Closed::OverLimit.count();
    } else if let Some(reason) = closed {
        tracing::debug!(%peer, reason = reason.as_str(), "connection closed");
        reason.count();
    }
    drop(registered);
}

/// How long a keep-alive connection idles, its answer sent, before its HTTP buffers (16 KiB) are let go: it waits
/// for the client's next bytes with none, and gets new buffers when they come.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// Serves HTTP/1.1 on `io` until the client closes it (`None`) or herald does (`Some(why)`).
async fn http<I>(
    io: I,
    reserve: bool,
    activity: &Arc<Activity>,
    timeouts: Timeouts,
    shared: &Shared,
) -> Option<Closed>
where
    I: Parkable,
{
    let service = Tracking {
        app: shared.app.clone(),
        activity: Arc::clone(activity),
        reserve,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Timeouts are kept by `Activity`: hyper's header read timeout would also bound a keep-alive connection's
    // wait for its next request.
    builder.header_read_timeout(None).keep_alive(!reserve);
    let park_after = (!reserve).then_some(PARK_AFTER);
    let mut io = Rewind::new(io);
    let mut draining = shared.shutdown.is_cancelled();
    loop {
        let mut connection = builder.serve_connection(TokioIo::new(io), service.clone());
        let mut parking = false;
        if draining {
            Pin::new(&mut connection).graceful_shutdown();
        }
        let served = loop {
            tokio::select! {
                // The connection first: a request that arrived as a timeout fell due is served.
                biased;
                served = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => break served,
                due = activity.due(timeouts, park_after.filter(|_| !draining && !parking)) => match due {
                    Due::Close(reason) => return Some(reason),
                    Due::Park => {
                        // Idle: hyper ends the connection at once, keeping the socket open.
                        parking = true;
                        Pin::new(&mut connection).graceful_shutdown();
                    }
                },
                () = shared.shutdown.cancelled(), if !draining => {
                    // Idle: closed now; serving: closed once the answer is sent.
                    draining = true;
                    Pin::new(&mut connection).graceful_shutdown();
                }
                () = shared.force.cancelled() => return None,
            }
        };
        if let Err(error) = served {
            tracing::debug!(%error, "connection ended with an error");
            return None;
        }
        let parts = connection.into_parts();
        io = parts.io.into_inner();
        if !parking || draining {
            tokio::select! {
                _ = io.shutdown() => {}
                reason = activity.closing(timeouts) => return Some(reason),
                () = shared.force.cancelled() => {}
            }
            return None;
        }
        io.rewind(parts.read_buf);
        // Parked: no HTTP buffers until the client sends again (or closes, which hyper then reads).
        if !io.has_buffered() {
            tokio::select! {
                readable = io.inner.readable() => {
                    if readable.is_err() {
                        return None;
                    }
                }
                reason = activity.closing(timeouts) => return Some(reason),
                () = shared.shutdown.cancelled() => return None,
                () = shared.force.cancelled() => return None,
            }
        }
    }
}

/// A connection's stream (plain or TLS) that can wait for the client's next bytes without a buffer.
pub(crate) trait Parkable: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether bytes already received wait to be read (TLS decrypts ahead).
    fn has_buffered(&mut self) -> bool;
    /// Waits until the socket has bytes (or the client closed it).
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl Parkable for Tracked<TcpStream> {
    fn has_buffered(&mut self) -> bool {
        false
    }

    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        self.get_ref().readable()
    }
}

impl Parkable for tokio_rustls::server::TlsStream<Tracked<TcpStream>> {
    fn has_buffered(&mut self) -> bool {
        let (_, tls) = self.get_mut();
        tls.process_new_packets()
            .map_or(true, |state| state.plaintext_bytes_to_read() > 0)
    }

    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        self.get_ref().0.get_ref().readable()
    }
}

/// A stream with bytes read from it (by a previous HTTP connection) and not yet used, given back first.
struct Rewind<I> {
    buffered: Bytes,
    inner: I,
}

impl<I: Parkable> Rewind<I> {
    fn new(inner: I) -> Self {
        Rewind {
            buffered: Bytes::new(),
            inner,
        }
    }

    fn rewind(&mut self, bytes: Bytes) {
        self.buffered = bytes;
    }

    fn has_buffered(&mut self) -> bool {
        !self.buffered.is_empty() || self.inner.has_buffered()
    }
}

impl<I: Parkable> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.buffered.is_empty() {
            let n = this.buffered.len().min(buf.remaining());
            buf.put_slice(&this.buffered.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: Parkable> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The app, with each request marking its connection busy until its answer is sent; from the reserve, only
/// `RESERVE_PATHS` reach it.
#[derive(Clone)]
struct Tracking {
    app: Router,
    activity: Arc<Activity>,
    reserve: bool,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Tracking {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Answer {
        let guard = self.activity.request_started();
        if self.reserve && !RESERVE_PATHS.contains(&request.uri().path()) {
            let answer = at_limit().map(|body| Guarded::body(body, guard));
            return Box::pin(std::future::ready(Ok(answer)));
        }
        let app = self.app.clone();
        Box::pin(async move {
            let answer = match app.oneshot(request).await {
                Ok(answer) => answer,
                Err(never) => match never {},
            };
            Ok(answer.map(|body| Guarded::body(body, guard)))
        })
    }
}

/// What a connection served from the reserve answers but for health, readiness and metrics.
fn at_limit() -> Response<Body> {
    let mut answer = Response::new(Body::from(
        "herald serves as many connections as it may (server.max_connections); try again\n",
    ));
    *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = answer.headers_mut();
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer
}
