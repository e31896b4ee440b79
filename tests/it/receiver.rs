//! A scripted webhook receiver on loopback: answers from a script (status, headers, body, or no answer at all),
//! can enforce a minimum gap between accepted requests like a rate-limited service (429 with Retry-After), and
//! records every request with the time on the clock it was given.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald::clock::Clock;

use crate::emulator::{self, MinGap, Server};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "each test binary module uses a different part of the emulator"
)]
pub enum Reply {
    Status {
        code: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Never answers (the request stays in flight until the sender gives up or dies).
    Hang,
}

impl Reply {
    pub fn ok() -> Self {
        Reply::status(200, "ok")
    }

    pub fn status(code: u16, body: &str) -> Self {
        Reply::Status {
            code,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn retry_after(code: u16, seconds: u64) -> Self {
        Reply::Status {
            code,
            headers: vec![("retry-after", seconds.to_string())],
            body: r#"{"ok":false,"error":"rate_limited"}"#.to_owned(),
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    pub body: serde_json::Value,
    /// The body as received.
    pub raw: Bytes,
    pub headers: HeaderMap,
    /// The status answered; `None` for requests left hanging.
    pub answered: Option<u16>,
}

impl Recorded {
    pub fn group_key(&self) -> String {
        self.body["groupKey"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

struct Inner {
    script: VecDeque<Reply>,
    otherwise: Reply,
    requests: Vec<Recorded>,
    min_gap: MinGap,
}

type Shared = emulator::Shared<Inner>;

pub struct ScriptedReceiver {
    pub addr: SocketAddr,
    scheme: &'static str,
    shared: Shared,
    _server: Server,
}

async fn handle(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let at = shared.now();
    let raw = body;
    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
    let reply = shared.record(|inner| {
        let mut reply = inner
            .script
            .pop_front()
            .unwrap_or_else(|| inner.otherwise.clone());
        if let (
            Some(gap),
            Reply::Status {
                code: 200..=299, ..
            },
        ) = (inner.min_gap.gap(), &reply)
            && inner.min_gap.admit(at).is_err()
        {
            reply = Reply::retry_after(429, gap.as_secs().max(1));
        }
        let answered = match &reply {
            Reply::Status { code, .. } => Some(*code),
            Reply::Hang => None,
        };
        inner.requests.push(Recorded {
            at,
            body,
            raw,
            headers,
            answered,
        });
        reply
    });
    match reply {
        Reply::Status {
            code,
            headers,
            body,
        } => {
            let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::Hang => std::future::pending().await,
    }
}

impl ScriptedReceiver {
    /// Starts on a free loopback port; answers 200 `ok` unless scripted otherwise.
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        Self::serve(emulator::loopback().await, clock)
    }

    /// Starts on `addr` (a port reserved earlier).
    pub async fn start_on(addr: SocketAddr, clock: Arc<dyn Clock>) -> Self {
        Self::serve(emulator::bind(addr).await, clock)
    }

    fn serve(listener: tokio::net::TcpListener, clock: Arc<dyn Clock>) -> Self {
        Self::serve_on(listener, "http", clock)
    }

    /// Serves on `listener` (plain TCP, or TLS: then `scheme` is `https`).
    #[allow(
        dead_code,
        reason = "the e2e binary shares this file and serves plain HTTP only"
    )]
    pub fn serve_on<L>(listener: L, scheme: &'static str, clock: Arc<dyn Clock>) -> Self
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let inner = Inner {
            script: VecDeque::new(),
            otherwise: Reply::ok(),
            requests: Vec::new(),
            min_gap: MinGap::default(),
        };
        let shared = Shared::new(inner, clock);
        let server = Server::start(listener, handle, shared.clone());
        ScriptedReceiver {
            addr: server.addr,
            scheme,
            shared,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("{}://{}/hook", self.scheme, self.addr)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().script.extend(replies);
    }

    /// How to answer once the script is used up.
    pub fn otherwise(&self, reply: Reply) {
        self.shared.lock().otherwise = reply;
    }

    /// Behaves like a service limited to one request per `gap`: a success closer than that to the previous one is
    /// answered 429 instead, and counted as a violation.
    pub fn enforce_min_gap(&self, gap: Duration) {
        self.shared.lock().min_gap.enforce(gap);
    }

    pub fn violations(&self) -> usize {
        self.shared.lock().min_gap.violations()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Waits (up to a generous bound) until at least `count` requests arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Recorded> {
        self.shared.wait_for_count(count, "the receiver").await;
        self.requests()
    }

    /// Waits (up to a generous bound) until at least `count` requests were answered 2xx.
    pub async fn wait_until_delivered(&self, count: usize) {
        let shared = self.shared.clone();
        self.shared
            .wait_until(
                &format!("{count} requests were answered 2xx"),
                || {
                    shared
                        .lock()
                        .requests
                        .iter()
                        .filter(|r| matches!(r.answered, Some(200..=299)))
                        .count()
                        >= count
                },
                || format!("{:?}", shared.lock().requests.len()),
            )
            .await;
    }

    /// Stops accepting connections (requests in flight, e.g. hanging ones, are not answered).
    pub fn stop(self) {}
}
