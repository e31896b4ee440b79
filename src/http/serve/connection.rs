//! One connection's life: its TLS handshake if herald serves HTTPS, then HTTP/1.1 with keep-alive, closed when
//! its timeouts or the limit say so, or gracefully when herald shuts down.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::Shared;
use super::activity::{Activity, Closed, Guarded, Timeouts, Tracked};
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

/// Serves HTTP/1.1 on `io` until the client closes it (`None`) or herald does (`Some(why)`).
async fn http<I>(
    io: I,
    reserve: bool,
    activity: &Arc<Activity>,
    timeouts: Timeouts,
    shared: &Shared,
) -> Option<Closed>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
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
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let closing = activity.closing(timeouts);
    tokio::pin!(closing);
    let mut draining = false;
    loop {
        tokio::select! {
            // The connection first: a request that arrived as a timeout fell due is served.
            biased;
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return None;
            }
            reason = &mut closing => return Some(reason),
            () = shared.shutdown.cancelled(), if !draining => {
                // Idle: closed now; serving: closed once the answer is sent.
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            () = shared.force.cancelled() => return None,
        }
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
