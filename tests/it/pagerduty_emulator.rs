//! A PagerDuty Events API v2 emulator on loopback for the `pagerduty_configs` sink: `POST /v2/enqueue` with the
//! answers, limits and alert semantics PEER-APIS.md records for PagerDuty. It keeps PagerDuty alerts by `dedup_key`
//! (a trigger with an open key appends to that alert; a resolve closes it; a trigger after the resolve opens a new
//! one), takes its time from the clock it is given, can be scripted to answer the next requests with a 429, a 5xx,
//! a 400 or nothing, and records every request with what it answered.
//!
//! Protocol errors (what a correct sender never does) are recorded and answered as PagerDuty would: a wrong or
//! unknown routing key, a missing required field, a summary over 1,024 characters, an event over 512 KB, a request
//! that overruns the limit of 120 events a minute per routing key (answered 429), or one that comes before the wait
//! a scripted `Retry-After` asked for.
//!
//! Emulator choices where PEER-APIS.md is silent: the limit is a sliding window of 60 s counting every request that
//! reached validation; 429s carry no `Retry-After` unless scripted with one; the error texts follow PagerDuty's
//! style (`'payload.summary' is missing or blank`).

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
use serde_json::{Map, Value, json};

use crate::emulator::{self, Server};

/// The enqueue endpoint's path.
pub const ENQUEUE: &str = "/v2/enqueue";
/// How long routing keys are.
const KEY_CHARS: usize = 32;
/// The longest summary, in characters.
const MAX_SUMMARY_CHARS: usize = 1024;
/// The longest dedup_key, in characters.
const MAX_DEDUP_KEY_CHARS: usize = 255;
/// The largest event, in bytes.
const MAX_EVENT_BYTES: usize = 512 * 1024;
/// Events a routing key may send per window.
const LIMIT: usize = 120;
/// The rate limit's window.
const WINDOW: Duration = Duration::from_secs(60);
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];
const ACTIONS: [&str; 3] = ["trigger", "acknowledge", "resolve"];

/// A scripted answer that replaces the normal handling of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(dead_code, reason = "each test uses a different part of the emulator")]
pub enum Failure {
    /// 429 `{"status":"throttle event",…}`, with `Retry-After` when given.
    RateLimited { retry_after: Option<u64> },
    /// A 5xx with a plain-text body.
    ServerError(u16),
    /// 400 `{"status":"invalid event","message":"Event object is invalid","errors":[…]}`.
    Invalid(Vec<String>),
    /// Never answers.
    Hang,
}

/// What the emulator answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: String,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            retry_after: None,
            body: body.to_string(),
        }
    }

    fn invalid(errors: Vec<String>) -> Self {
        Answer::json(
            400,
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
        )
    }

    fn throttled(retry_after: Option<u64>) -> Self {
        let mut answer = Answer::json(
            429,
            json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."}),
        );
        answer.retry_after = retry_after;
        answer
    }
}

/// One request as received, with what was answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    pub raw: Bytes,
    /// `None` for a request left hanging.
    pub answer: Option<Answer>,
    pub scripted: bool,
}

#[allow(dead_code, reason = "each test uses a different part of the emulator")]
impl Recorded {
    pub fn status(&self) -> Option<u16> {
        self.answer.as_ref().map(|answer| answer.status)
    }

    pub fn action(&self) -> &str {
        self.body["event_action"].as_str().unwrap_or_default()
    }

    pub fn dedup_key(&self) -> &str {
        self.body["dedup_key"].as_str().unwrap_or_default()
    }
}

/// A PagerDuty alert: the events it took, and whether it is still open.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub routing_key: String,
    pub dedup_key: String,
    pub open: bool,
    /// The trigger events appended to it, oldest first.
    pub triggers: Vec<Value>,
    pub resolved_at: Option<DateTime<Utc>>,
}

struct Inner {
    keys: HashSet<String>,
    script: VecDeque<Failure>,
    /// Per routing key, when its requests in the current window came.
    window: HashMap<String, VecDeque<DateTime<Utc>>>,
    /// Per routing key, until when a scripted Retry-After asked it to wait.
    wait_until: HashMap<String, DateTime<Utc>>,
    alerts: Vec<Alert>,
    protocol_errors: Vec<String>,
    requests: Vec<Recorded>,
}

type Shared = emulator::Shared<Inner>;

/// PagerDuty's Events API on a free loopback port.
pub struct PagerDutyEmulator {
    pub addr: SocketAddr,
    shared: Shared,
    _server: Server,
}

#[allow(dead_code, reason = "each test uses a different part of the emulator")]
impl PagerDutyEmulator {
    /// Starts with no routing keys.
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let inner = Inner {
            keys: HashSet::new(),
            script: VecDeque::new(),
            window: HashMap::new(),
            wait_until: HashMap::new(),
            alerts: Vec::new(),
            protocol_errors: Vec::new(),
            requests: Vec::new(),
        };
        let shared = Shared::new(inner, clock);
        let server = Server::start(emulator::loopback().await, handle, shared.clone());
        PagerDutyEmulator {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    /// Accepts events with this integration key (32 characters).
    pub fn routing_key(&self, key: &str) -> &Self {
        assert_eq!(key.len(), KEY_CHARS, "PagerDuty keys are 32 characters");
        self.shared.lock().keys.insert(key.to_owned());
        self
    }

    /// The enqueue URL.
    pub fn url(&self) -> String {
        format!("http://{}{ENQUEUE}", self.addr)
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

    /// The alerts, in the order they were opened.
    pub fn alerts(&self) -> Vec<Alert> {
        self.shared.lock().alerts.clone()
    }

    /// Everything a correct sender would not have done, in order.
    pub fn protocol_errors(&self) -> Vec<String> {
        self.shared.lock().protocol_errors.clone()
    }

    /// Waits (up to a generous bound) until at least `count` requests arrived; returns them all.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<Recorded> {
        self.shared
            .wait_for_count(count, "the PagerDuty emulator")
            .await;
        self.requests()
    }
}

impl Inner {
    fn protocol_error(&mut self, at: DateTime<Utc>, what: String) {
        self.protocol_errors.push(format!("{at}: {what}"));
    }

    fn answer(&mut self, request: &mut Recorded) -> Option<Answer> {
        let at = request.at;
        let key = request.body["routing_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(until) = self.wait_until.get(&key).copied()
            && at < until
        {
            self.protocol_error(
                at,
                format!("an event came before the Retry-After that ends at {until}"),
            );
        }
        if let Some(failure) = self.script.pop_front() {
            request.scripted = true;
            return match failure {
                Failure::RateLimited { retry_after } => {
                    if let Some(seconds) = retry_after {
                        self.wait_until
                            .insert(key, at + chrono::Duration::seconds(seconds as i64));
                    }
                    Some(Answer::throttled(retry_after))
                }
                Failure::ServerError(status) => Some(Answer {
                    status,
                    retry_after: None,
                    body: "upstream error".to_owned(),
                }),
                Failure::Invalid(errors) => Some(Answer::invalid(errors)),
                Failure::Hang => None,
            };
        }
        if request.method != Method::POST || request.path != ENQUEUE {
            self.protocol_error(at, format!("{} {}", request.method, request.path));
            return Some(Answer::json(404, json!({"status": "not found"})));
        }
        if !self.admit(&key, at) {
            self.protocol_error(
                at,
                format!(
                    "more than {LIMIT} events in {}s for one routing key",
                    WINDOW.as_secs()
                ),
            );
            return Some(Answer::throttled(None));
        }
        let errors = self.validate(request);
        if !errors.is_empty() {
            for error in &errors {
                self.protocol_error(at, error.clone());
            }
            return Some(Answer::invalid(errors));
        }
        let dedup_key = self.apply(&request.body, &key, at);
        Some(Answer::json(
            202,
            json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
        ))
    }

    /// Counts the request in its key's window unless the window is full.
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

    fn validate(&self, request: &Recorded) -> Vec<String> {
        let mut errors = Vec::new();
        let json_type = request
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if !json_type {
            errors.push("Content-Type must be application/json".to_owned());
        }
        if request.raw.len() > MAX_EVENT_BYTES {
            errors.push(format!(
                "Event size {} exceeds the {MAX_EVENT_BYTES} byte limit",
                request.raw.len()
            ));
        }
        let Value::Object(event) = &request.body else {
            errors.push("Event is not a JSON object".to_owned());
            return errors;
        };
        let text = |map: &Map<String, Value>, key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        match text(event, "routing_key") {
            None => errors.push("'routing_key' is missing or blank".to_owned()),
            Some(key) if key.chars().count() != KEY_CHARS => errors
                .push("Length of 'routing_key' is incorrect (should be 32 characters)".to_owned()),
            Some(key) if !self.keys.contains(&key) => errors.push("Invalid routing key".to_owned()),
            Some(_) => {}
        }
        let action = text(event, "event_action").unwrap_or_default();
        if !ACTIONS.contains(&action.as_str()) {
            errors.push(format!(
                "'event_action' is invalid (must be one of {ACTIONS:?})"
            ));
        }
        let dedup_key = text(event, "dedup_key");
        if dedup_key
            .as_ref()
            .is_some_and(|key| key.chars().count() > MAX_DEDUP_KEY_CHARS)
        {
            errors.push("'dedup_key' is too long (at most 255 characters)".to_owned());
        }
        if action != "trigger" {
            if !action.is_empty() && dedup_key.is_none() {
                errors.push(format!("'dedup_key' is required for {action} events"));
            }
            return errors;
        }
        let Some(Value::Object(payload)) = event.get("payload") else {
            errors.push("'payload' is missing or not an object".to_owned());
            return errors;
        };
        match text(payload, "summary") {
            None => errors.push("'payload.summary' is missing or blank".to_owned()),
            Some(_) => {
                let chars = payload["summary"].as_str().unwrap().chars().count();
                if chars > MAX_SUMMARY_CHARS {
                    errors.push(format!(
                        "'payload.summary' is too long ({chars} characters, at most {MAX_SUMMARY_CHARS})"
                    ));
                }
            }
        }
        if text(payload, "source").is_none() {
            errors.push("'payload.source' is missing or blank".to_owned());
        }
        let severity = text(payload, "severity").unwrap_or_default();
        if !SEVERITIES.contains(&severity.as_str()) {
            errors.push(format!(
                "'payload.severity' is invalid (must be one of {SEVERITIES:?})"
            ));
        }
        if let Some(timestamp) = payload.get("timestamp")
            && timestamp
                .as_str()
                .is_none_or(|value| DateTime::parse_from_rfc3339(value).is_err())
        {
            errors.push("'payload.timestamp' is not an ISO 8601 time".to_owned());
        }
        if payload
            .get("custom_details")
            .is_some_and(|details| !details.is_object() && !details.is_string())
        {
            errors.push("'payload.custom_details' must be an object".to_owned());
        }
        for (list, required) in [("links", "href"), ("images", "src")] {
            let Some(items) = event.get(list) else {
                continue;
            };
            let valid = items.as_array().is_some_and(|items| {
                items.iter().all(|item| {
                    item.get(required)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                })
            });
            if !valid {
                errors.push(format!(
                    "'{list}' must be a list of objects with '{required}'"
                ));
            }
        }
        errors
    }

    /// Applies a valid event; returns its dedup_key.
    fn apply(&mut self, event: &Value, key: &str, at: DateTime<Utc>) -> String {
        let dedup_key = event["dedup_key"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let open = self
            .alerts
            .iter_mut()
            .find(|alert| alert.open && alert.routing_key == key && alert.dedup_key == dedup_key);
        match (event["event_action"].as_str(), open) {
            (Some("trigger"), Some(alert)) => alert.triggers.push(event.clone()),
            (Some("trigger"), None) => self.alerts.push(Alert {
                routing_key: key.to_owned(),
                dedup_key: dedup_key.clone(),
                open: true,
                triggers: vec![event.clone()],
                resolved_at: None,
            }),
            (Some("resolve"), Some(alert)) => {
                alert.open = false;
                alert.resolved_at = Some(at);
            }
            _ => {}
        }
        dedup_key
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let mut request = Recorded {
        at: shared.now(),
        method,
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        answer: None,
        scripted: false,
    };
    let answer = shared.record(|inner| {
        let answer = inner.answer(&mut request);
        request.answer = answer.clone();
        inner.requests.push(request);
        answer
    });
    let Some(answer) = answer else {
        return std::future::pending().await;
    };
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    if let Some(seconds) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

mod self_tests {
    use herald::clock::ManualClock;

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    async fn emulator() -> (PagerDutyEmulator, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap()));
        let pagerduty = PagerDutyEmulator::start(clock.clone()).await;
        pagerduty.routing_key(KEY);
        (pagerduty, clock)
    }

    async fn send(pagerduty: &PagerDutyEmulator, event: Value) -> (u16, Option<String>, Value) {
        let response = reqwest::Client::new()
            .post(pagerduty.url())
            .header("content-type", "application/json")
            .body(event.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        (status, retry_after, response.json().await.unwrap())
    }

    fn trigger(dedup_key: &str, summary: &str) -> Value {
        json!({
            "routing_key": KEY, "event_action": "trigger", "dedup_key": dedup_key,
            "payload": {"summary": summary, "source": "db-1", "severity": "critical"},
        })
    }

    #[tokio::test]
    async fn triggers_append_to_the_open_alert_and_a_resolve_closes_it() {
        let (pagerduty, _clock) = emulator().await;
        let (status, _, body) = send(&pagerduty, trigger("g1", "disk full")).await;
        assert_eq!(status, 202);
        assert_eq!(
            body,
            json!({"status": "success", "message": "Event processed", "dedup_key": "g1"})
        );
        send(&pagerduty, trigger("g1", "still full")).await;
        let (status, _, _) = send(
            &pagerduty,
            json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "g1"}),
        )
        .await;
        assert_eq!(status, 202);
        send(&pagerduty, trigger("g1", "full again")).await;
        let alerts = pagerduty.alerts();
        assert_eq!(alerts.len(), 2);
        assert_eq!((alerts[0].triggers.len(), alerts[0].open), (2, false));
        assert!(alerts[1].open);
        assert!(pagerduty.protocol_errors().is_empty());
    }

    #[tokio::test]
    async fn invalid_events_are_400s_and_protocol_errors() {
        let (pagerduty, _clock) = emulator().await;
        let mut wrong_key = trigger("g", "x");
        wrong_key["routing_key"] = json!("ffffffffffffffffffffffffffffffff");
        let (status, _, body) = send(&pagerduty, wrong_key).await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"], json!(["Invalid routing key"]));
        let (status, _, body) = send(
            &pagerduty,
            json!({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "x".repeat(1025), "severity": "bad"}}),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["status"], "invalid event");
        assert_eq!(body["errors"].as_array().unwrap().len(), 3, "{body}");
        let (status, _, _) = send(
            &pagerduty,
            json!({"routing_key": KEY, "event_action": "resolve"}),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(pagerduty.protocol_errors().len(), 5);
        assert!(pagerduty.alerts().is_empty());
    }

    #[tokio::test]
    async fn the_121st_event_in_a_minute_is_throttled_and_an_early_retry_is_caught() {
        let (pagerduty, clock) = emulator().await;
        for i in 0..LIMIT {
            let (status, _, _) = send(&pagerduty, trigger(&format!("g{i}"), "x")).await;
            assert_eq!(status, 202);
            clock.advance(Duration::from_millis(250));
        }
        let (status, retry_after, _) = send(&pagerduty, trigger("over", "x")).await;
        assert_eq!((status, retry_after), (429, None));
        assert_eq!(pagerduty.protocol_errors().len(), 1);
        clock.advance(Duration::from_secs(31));
        let (status, _, _) = send(&pagerduty, trigger("later", "x")).await;
        assert_eq!(status, 202, "the window moved on");

        pagerduty.fail_next(
            1,
            Failure::RateLimited {
                retry_after: Some(20),
            },
        );
        let (status, retry_after, _) = send(&pagerduty, trigger("a", "x")).await;
        assert_eq!((status, retry_after.as_deref()), (429, Some("20")));
        clock.advance(Duration::from_secs(19));
        send(&pagerduty, trigger("a", "x")).await;
        assert_eq!(pagerduty.protocol_errors().len(), 2, "one second early");
    }
}
