//! A scripted webhook receiver on loopback: answers from a script (status, headers, body, or no answer at all),
//! can enforce a minimum gap between accepted requests like a rate-limited service (429 with Retry-After), and
//! records every request with the time on the clock it was given.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald::clock::Clock;
use tokio::sync::watch;

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
    min_gap: Option<Duration>,
    last_accepted: Option<DateTime<Utc>>,
    violations: usize,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    count: Arc<watch::Sender<usize>>,
    clock: Arc<dyn Clock>,
}

pub struct ScriptedReceiver {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

async fn handle(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let at = shared.clock.now();
    let raw = body;
    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
    let reply = {
        let mut inner = shared.inner.lock().unwrap();
        let mut reply = inner
            .script
            .pop_front()
            .unwrap_or_else(|| inner.otherwise.clone());
        if let (
            Some(gap),
            Reply::Status {
                code: 200..=299, ..
            },
        ) = (inner.min_gap, &reply)
        {
            let too_soon = inner
                .last_accepted
                .is_some_and(|last| at - last < chrono::Duration::from_std(gap).unwrap());
            if too_soon {
                inner.violations += 1;
                reply = Reply::retry_after(429, gap.as_secs().max(1));
            } else {
                inner.last_accepted = Some(at);
            }
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
    };
    shared.count.send_modify(|count| *count += 1);
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, clock)
    }

    /// Starts on `addr` (a port reserved earlier).
    pub async fn start_on(addr: SocketAddr, clock: Arc<dyn Clock>) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener, clock)
    }

    fn serve(listener: tokio::net::TcpListener, clock: Arc<dyn Clock>) -> Self {
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                script: VecDeque::new(),
                otherwise: Reply::ok(),
                requests: Vec::new(),
                min_gap: None,
                last_accepted: None,
                violations: 0,
            })),
            count: Arc::new(watch::channel(0).0),
            clock,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptedReceiver { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.inner.lock().unwrap().script.extend(replies);
    }

    /// How to answer once the script is used up.
    pub fn otherwise(&self, reply: Reply) {
        self.shared.inner.lock().unwrap().otherwise = reply;
    }

    /// Behaves like a service limited to one request per `gap`: a success closer than that to the previous one is
    /// answered 429 instead, and counted as a violation.
    pub fn enforce_min_gap(&self, gap: Duration) {
        self.shared.inner.lock().unwrap().min_gap = Some(gap);
    }

    pub fn violations(&self) -> usize {
        self.shared.inner.lock().unwrap().violations
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// Waits (up to a generous bound) until at least `count` requests arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Recorded> {
        let mut seen = self.shared.count.subscribe();
        let waited =
            tokio::time::timeout(Duration::from_secs(60), seen.wait_for(|n| *n >= count)).await;
        assert!(
            waited.is_ok(),
            "the receiver got {} requests, not {count}",
            self.requests().len()
        );
        self.requests()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
