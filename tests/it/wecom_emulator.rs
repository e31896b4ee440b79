//! A WeCom (企业微信) group robot emulator on loopback for the `wecom_configs` sink: `POST
//! /cgi-bin/webhook/send?key=<key>` with the answers PEER-APIS.md records for WeCom (always HTTP 200, `errcode` 0 on
//! success, 45009 over the limit of 20 messages a minute per robot, 93000 for an unknown key). It takes its time from
//! the clock it is given, can be scripted to answer the next requests with any `errcode`, an HTTP error or nothing,
//! and records every request and every message a robot accepted.
//!
//! Protocol errors (what a correct sender never does) are recorded: a missing or unknown key, a body that is not a
//! message (bad JSON, unknown `msgtype`, empty content), content over 4,096 bytes (markdown) or 2,048 (text), a
//! message over the rate limit, or one that comes within a minute of a 45009 answer to the same robot.
//!
//! Emulator choices where PEER-APIS.md is silent: the limit is a sliding window of 60 s counting every message a
//! robot accepted; after a 45009 a sender must wait the whole window (60 s) before that robot's next message; the
//! codes for malformed messages are 40008 (bad `msgtype`), 44004 (empty content), 40058 (content too long) and
//! 40035 (bad parameter), each with a short `errmsg`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald::clock::Clock;
use serde_json::{Value, json};

use crate::emulator::{self, Server};

/// The robot endpoint's path.
pub const SEND: &str = "/cgi-bin/webhook/send";
/// The longest markdown content, in bytes.
pub const MAX_MARKDOWN_BYTES: usize = 4096;
/// The longest text content, in bytes.
pub const MAX_TEXT_BYTES: usize = 2048;
/// Messages a robot takes per window.
pub const LIMIT: usize = 20;
/// The rate limit's window, and the wait after a 45009.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A scripted answer that replaces the normal handling of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(dead_code, reason = "each test uses a different part of the emulator")]
pub enum Failure {
    /// HTTP 200 with this `errcode` and `errmsg` (45009 also starts the back-off the emulator checks).
    ErrCode(i64, String),
    /// Any HTTP status with a plain-text body (a proxy in the way).
    Http(u16, String),
    /// Never answers.
    Hang,
}

impl Failure {
    pub fn rate_limited() -> Self {
        Failure::ErrCode(45009, "api freq out of limit".to_owned())
    }

    pub fn invalid_url() -> Self {
        Failure::ErrCode(
            93000,
            "invalid webhook url, hint: [1733200000_17_ab12], from ip: 127.0.0.1, more info at \
             https://open.work.weixin.qq.com/devtool/query?e=93000"
                .to_owned(),
        )
    }
}

/// What the emulator answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    fn code(errcode: i64, errmsg: &str) -> Self {
        Answer {
            status: 200,
            body: json!({"errcode": errcode, "errmsg": errmsg}).to_string(),
        }
    }

    /// The `errcode` answered, when the answer was WeCom's.
    pub fn errcode(&self) -> Option<i64> {
        serde_json::from_str::<Value>(&self.body).ok()?["errcode"].as_i64()
    }
}

/// One request as received, with what was answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    pub path: String,
    /// The robot key of the query, as sent.
    pub key: Option<String>,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// `None` for a request left hanging.
    pub answer: Option<Answer>,
    pub scripted: bool,
}

#[allow(dead_code, reason = "each test uses a different part of the emulator")]
impl Recorded {
    pub fn errcode(&self) -> Option<i64> {
        self.answer.as_ref().and_then(Answer::errcode)
    }
}

/// A message a robot accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub at: DateTime<Utc>,
    pub key: String,
    pub msgtype: String,
    pub content: String,
    pub mentioned_list: Vec<String>,
    pub mentioned_mobile_list: Vec<String>,
}

struct Inner {
    keys: HashSet<String>,
    script: VecDeque<Failure>,
    /// Per key, when its accepted messages in the current window came.
    window: HashMap<String, VecDeque<DateTime<Utc>>>,
    /// Per key, until when a 45009 asked it to wait.
    backoff_until: HashMap<String, DateTime<Utc>>,
    messages: Vec<Message>,
    protocol_errors: Vec<String>,
    requests: Vec<Recorded>,
}

type Shared = emulator::Shared<Inner>;

/// WeCom's group robots on a free loopback port.
pub struct WeComEmulator {
    pub addr: SocketAddr,
    shared: Shared,
    _server: Server,
}

#[allow(dead_code, reason = "each test uses a different part of the emulator")]
impl WeComEmulator {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let inner = Inner {
            keys: HashSet::new(),
            script: VecDeque::new(),
            window: HashMap::new(),
            backoff_until: HashMap::new(),
            messages: Vec::new(),
            protocol_errors: Vec::new(),
            requests: Vec::new(),
        };
        let shared = Shared::new(inner, clock);
        let server = Server::start(emulator::loopback().await, handle, shared.clone());
        WeComEmulator {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    /// A new robot: its webhook URL (with a fresh key).
    pub fn robot(&self) -> String {
        let key = uuid::Uuid::new_v4().to_string();
        self.shared.lock().keys.insert(key.clone());
        format!("http://{}{SEND}?key={key}", self.addr)
    }

    /// Answers the next `count` requests with `failure` instead of handling them.
    pub fn fail_next(&self, count: usize, failure: Failure) -> &Self {
        self.shared
            .lock()
            .script
            .extend(std::iter::repeat_n(failure, count));
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Every message the robots accepted, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().messages.clone()
    }

    pub fn protocol_errors(&self) -> Vec<String> {
        self.shared.lock().protocol_errors.clone()
    }

    /// Waits (up to a generous bound) until at least `count` requests arrived; returns them all.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<Recorded> {
        self.shared
            .wait_for_count(count, "the WeCom emulator")
            .await;
        self.requests()
    }
}

impl Inner {
    fn protocol_error(&mut self, at: DateTime<Utc>, what: String) {
        self.protocol_errors.push(format!("{at}: {what}"));
    }

    fn start_backoff(&mut self, key: &str, at: DateTime<Utc>) {
        self.backoff_until.insert(
            key.to_owned(),
            at + chrono::Duration::from_std(WINDOW).unwrap(),
        );
    }

    /// A malformed request: recorded as a protocol error and answered with `errcode`.
    fn reject(&mut self, at: DateTime<Utc>, errcode: i64, errmsg: &str) -> Answer {
        self.protocol_error(at, format!("errcode {errcode}: {errmsg}"));
        Answer::code(errcode, errmsg)
    }

    fn answer(&mut self, request: &mut Recorded, method: &Method) -> Option<Answer> {
        let at = request.at;
        let key = request.key.clone().unwrap_or_default();
        if let Some(until) = self.backoff_until.get(&key).copied()
            && at < until
        {
            self.protocol_error(
                at,
                format!("a message came before the 45009 back-off that ends at {until}"),
            );
        }
        if let Some(failure) = self.script.pop_front() {
            request.scripted = true;
            return match failure {
                Failure::ErrCode(code, message) => {
                    if code == 45009 {
                        self.start_backoff(&key, at);
                    }
                    Some(Answer::code(code, &message))
                }
                Failure::Http(status, body) => Some(Answer { status, body }),
                Failure::Hang => None,
            };
        }
        if *method != Method::POST || request.path != SEND || !self.keys.contains(&key) {
            let sent = format!("{method} {} with an unknown or missing key", request.path);
            self.protocol_error(at, sent);
            return Some(Failure::invalid_url().answer());
        }
        let Value::Object(body) = &request.body else {
            return Some(self.reject(at, 40035, "invalid parameter: the body is not JSON"));
        };
        let msgtype = body
            .get("msgtype")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let max = match msgtype.as_str() {
            "markdown" => MAX_MARKDOWN_BYTES,
            "text" => MAX_TEXT_BYTES,
            _ => return Some(self.reject(at, 40008, "invalid message type")),
        };
        let message = &body.get(&msgtype).cloned().unwrap_or(Value::Null);
        let content = message
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if content.trim().is_empty() {
            return Some(self.reject(at, 44004, "empty content"));
        }
        if content.len() > max {
            let errmsg = format!("{msgtype}.content exceed max length {max}");
            return Some(self.reject(at, 40058, &errmsg));
        }
        let list = |name: &str| -> Result<Vec<String>, ()> {
            match message.get(name) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned).ok_or(()))
                    .collect(),
                Some(_) => Err(()),
            }
        };
        let (Ok(mentioned_list), Ok(mentioned_mobile_list)) =
            (list("mentioned_list"), list("mentioned_mobile_list"))
        else {
            return Some(self.reject(at, 40035, "invalid parameter: mentions"));
        };
        if !self.admit(&key, at) {
            self.protocol_error(
                at,
                format!(
                    "more than {LIMIT} messages in {}s to one robot",
                    WINDOW.as_secs()
                ),
            );
            self.start_backoff(&key, at);
            return Some(Failure::rate_limited().answer());
        }
        self.messages.push(Message {
            at,
            key,
            msgtype,
            content,
            mentioned_list,
            mentioned_mobile_list,
        });
        Some(Answer::code(0, "ok"))
    }

    /// Counts a message in its robot's window unless the window is full.
    fn admit(&mut self, key: &str, at: DateTime<Utc>) -> bool {
        let window = self.window.entry(key.to_owned()).or_default();
        let start = at - chrono::Duration::from_std(WINDOW).unwrap();
        while window.front().is_some_and(|seen| *seen <= start) {
            window.pop_front();
        }
        if window.len() >= LIMIT {
            return false;
        }
        window.push_back(at);
        true
    }
}

impl Failure {
    fn answer(&self) -> Answer {
        match self {
            Failure::ErrCode(code, message) => Answer::code(*code, message),
            Failure::Http(status, body) => Answer {
                status: *status,
                body: body.clone(),
            },
            Failure::Hang => Answer::code(-1, "system busy"),
        }
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let key = uri.query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .map(str::to_owned)
    });
    let mut request = Recorded {
        at: shared.now(),
        path: uri.path().to_owned(),
        key,
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        answer: None,
        scripted: false,
    };
    let answer = shared.record(|inner| {
        let answer = inner.answer(&mut request, &method);
        request.answer = answer.clone();
        inner.requests.push(request);
        answer
    });
    let Some(answer) = answer else {
        return std::future::pending().await;
    };
    let content_type = if answer.status == 200 {
        "application/json; charset=UTF-8"
    } else {
        "text/plain"
    };
    (
        StatusCode::from_u16(answer.status).unwrap(),
        [(header::CONTENT_TYPE, content_type)],
        answer.body,
    )
        .into_response()
}

mod self_tests {
    use herald::clock::ManualClock;

    use super::*;

    async fn emulator() -> (WeComEmulator, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap()));
        (WeComEmulator::start(clock.clone()).await, clock)
    }

    async fn send(url: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "WeCom answers 200 to everything");
        response.json().await.unwrap()
    }

    fn markdown(content: &str) -> Value {
        json!({"msgtype": "markdown", "markdown": {"content": content}})
    }

    #[tokio::test]
    async fn messages_are_accepted_with_errcode_0() {
        let (wecom, _clock) = emulator().await;
        let robot = wecom.robot();
        assert_eq!(
            send(&robot, markdown("**告警**")).await,
            json!({"errcode": 0, "errmsg": "ok"})
        );
        let text = json!({"msgtype": "text", "text": {"content": "x", "mentioned_list": ["@all"]}});
        assert_eq!(send(&robot, text).await["errcode"], 0);
        let messages = wecom.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].content, "**告警**");
        assert_eq!(messages[1].mentioned_list, ["@all"]);
        assert!(wecom.protocol_errors().is_empty());
    }

    #[tokio::test]
    async fn bad_keys_and_bad_messages_are_protocol_errors() {
        let (wecom, _clock) = emulator().await;
        let robot = wecom.robot();
        let wrong = format!("http://{}{SEND}?key=not-a-robot", wecom.addr);
        assert_eq!(send(&wrong, markdown("x")).await["errcode"], 93000);
        assert_eq!(
            send(&robot, json!({"msgtype": "news"})).await["errcode"],
            40008
        );
        assert_eq!(send(&robot, markdown(" ")).await["errcode"], 44004);
        let long = "告".repeat(1366);
        assert_eq!(long.len(), 4098);
        assert_eq!(send(&robot, markdown(&long)).await["errcode"], 40058);
        let text = json!({"msgtype": "text", "text": {"content": "x".repeat(2049)}});
        assert_eq!(send(&robot, text).await["errcode"], 40058);
        assert_eq!(wecom.protocol_errors().len(), 5);
        assert!(wecom.messages().is_empty());
    }

    #[tokio::test]
    async fn the_21st_message_in_a_minute_is_45009_and_an_early_retry_is_caught() {
        let (wecom, clock) = emulator().await;
        let robot = wecom.robot();
        for _ in 0..LIMIT {
            assert_eq!(send(&robot, markdown("x")).await["errcode"], 0);
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(send(&robot, markdown("x")).await["errcode"], 45009);
        assert_eq!(wecom.protocol_errors().len(), 1);
        clock.advance(Duration::from_secs(59));
        assert_eq!(send(&robot, markdown("x")).await["errcode"], 0);
        assert_eq!(wecom.protocol_errors().len(), 2, "one second early");

        wecom.fail_next(1, Failure::rate_limited());
        clock.advance(Duration::from_secs(60));
        assert_eq!(send(&robot, markdown("x")).await["errcode"], 45009);
        clock.advance(Duration::from_secs(60));
        assert_eq!(send(&robot, markdown("x")).await["errcode"], 0);
        assert_eq!(wecom.protocol_errors().len(), 2, "waited the minute");
    }
}
