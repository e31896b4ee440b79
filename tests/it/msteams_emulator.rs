//! A Microsoft Teams emulator on loopback for the `msteamsv2_configs` sink: Workflows webhooks (`POST
//! /workflows/<id>/triggers/manual/paths/invoke?…&sig=<signature>`, 202 with an empty body on success) and legacy
//! Office 365 connectors (`POST /webhookb2/<id>/IncomingWebhook/<id>/<id>`, 200 with the body `1` on success, and
//! HTTP 200 with an error text on failure), as PEER-APIS.md records them. It takes its time from the clock it is
//! given, can be scripted to answer the next requests with any status and body (with `Retry-After`), a connector's
//! failure text, or nothing, and records every request and every card a channel received.
//!
//! Protocol errors (what a correct sender never does) are recorded: an unknown webhook or a wrong signature, a body
//! that is not a message with an Adaptive Card (version 1.2 or later, a non-empty `body` of typed elements, text
//! blocks with text), a message over 28 KB, or a request that comes before a `Retry-After` it was given has passed.
//!
//! Emulator choices where PEER-APIS.md is silent: the 28 KB limit and its answers (Workflows 413
//! `RequestEntityTooLarge`; connectors the failure text naming HTTP error 413); invalid cards are answered 400
//! `InvalidRequestContent` (Workflows) or a failure text naming HTTP error 400 (connectors); a wrong signature is
//! 401 and an unknown connector 404.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald::clock::Clock;
use serde_json::{Value, json};

use crate::emulator::{self, Server};

/// The largest message Teams takes, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 28 * 1024;
const CARD_TYPE: &str = "application/vnd.microsoft.card.adaptive";
const CONNECTOR_FAILURE: &str =
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error";

/// Which kind of webhook a URL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Workflow,
    Connector,
}

/// A scripted answer that replaces the normal handling of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(dead_code, reason = "each test uses a different part of the emulator")]
pub enum Failure {
    /// Any status and body, with `Retry-After` when given (the emulator then checks it is honoured).
    Status {
        code: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// A connector's way to fail: HTTP 200 with `Webhook message delivery failed … HTTP error <status> …`.
    ConnectorError(u16),
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
    fn new(status: u16, body: impl Into<String>) -> Self {
        Answer {
            status,
            retry_after: None,
            body: body.into(),
        }
    }

    fn connector_error(status: u16) -> Self {
        Answer::new(
            200,
            format!(
                "{CONNECTOR_FAILURE} {status} with ContextId tId=4b2c1d3e-0429-4f00-9a1b-000000000429,oId=8c1f,uId=42."
            ),
        )
    }
}

/// One request as received, with what was answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    /// The webhook it went to, by name, when the URL names one.
    pub webhook: Option<String>,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
    /// `None` for a request left hanging.
    pub answer: Option<Answer>,
    pub scripted: bool,
}

/// A card a channel received.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub at: DateTime<Utc>,
    pub webhook: String,
    /// The Adaptive Card (the attachment's `content`).
    pub card: Value,
}

#[allow(dead_code, reason = "each test uses a different part of the emulator")]
impl Card {
    /// The text of the card's `n`th body element.
    pub fn text(&self, n: usize) -> &str {
        self.card["body"][n]["text"].as_str().unwrap_or_default()
    }
}

struct Webhook {
    name: String,
    kind: Kind,
    path: String,
    /// The `sig` query parameter a Workflows URL carries.
    signature: Option<String>,
}

struct Inner {
    webhooks: Vec<Webhook>,
    /// Failures to answer with, each for any webhook (`None`) or the one named.
    script: VecDeque<(Option<String>, Failure)>,
    /// Per webhook, until when a Retry-After asked it to wait.
    wait_until: HashMap<String, DateTime<Utc>>,
    cards: Vec<Card>,
    protocol_errors: Vec<String>,
    requests: Vec<Recorded>,
}

type Shared = emulator::Shared<Inner>;

/// Teams' webhooks on a free loopback port.
pub struct TeamsEmulator {
    pub addr: SocketAddr,
    shared: Shared,
    _server: Server,
}

#[allow(dead_code, reason = "each test uses a different part of the emulator")]
impl TeamsEmulator {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let inner = Inner {
            webhooks: Vec::new(),
            script: VecDeque::new(),
            wait_until: HashMap::new(),
            cards: Vec::new(),
            protocol_errors: Vec::new(),
            requests: Vec::new(),
        };
        let shared = Shared::new(inner, clock);
        let server = Server::start(emulator::loopback().await, handle, shared.clone());
        TeamsEmulator {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    /// A new webhook `name` of `kind`: its URL.
    pub fn webhook(&self, name: &str, kind: Kind) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (path, signature, query) = match kind {
            Kind::Workflow => {
                let signature = uuid::Uuid::new_v4().simple().to_string();
                let query = format!(
                    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={signature}"
                );
                (
                    format!("/workflows/{id}/triggers/manual/paths/invoke"),
                    Some(signature),
                    query,
                )
            }
            Kind::Connector => (
                format!("/webhookb2/{id}@tenant/IncomingWebhook/{}/owner", &id[..16]),
                None,
                String::new(),
            ),
        };
        self.shared.lock().webhooks.push(Webhook {
            name: name.to_owned(),
            kind,
            path: path.clone(),
            signature,
        });
        format!("http://{}{path}{query}", self.addr)
    }

    /// Answers the next `count` requests with `failure` instead of handling them.
    pub fn fail_next(&self, count: usize, failure: Failure) -> &Self {
        self.shared
            .lock()
            .script
            .extend(std::iter::repeat_n((None, failure), count));
        self
    }

    /// Answers the next `count` requests to webhook `name` with `failure` instead of handling them.
    pub fn fail_next_on(&self, name: &str, count: usize, failure: Failure) -> &Self {
        self.shared
            .lock()
            .script
            .extend(std::iter::repeat_n((Some(name.to_owned()), failure), count));
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The cards webhook `name` accepted, oldest first.
    pub fn cards(&self, name: &str) -> Vec<Card> {
        self.shared
            .lock()
            .cards
            .iter()
            .filter(|card| card.webhook == name)
            .cloned()
            .collect()
    }

    pub fn protocol_errors(&self) -> Vec<String> {
        self.shared.lock().protocol_errors.clone()
    }

    /// Waits (up to a generous bound) until at least `count` requests arrived; returns them all.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<Recorded> {
        self.shared
            .wait_for_count(count, "the Teams emulator")
            .await;
        self.requests()
    }
}

impl Inner {
    fn protocol_error(&mut self, at: DateTime<Utc>, what: String) {
        self.protocol_errors.push(format!("{at}: {what}"));
    }

    fn answer(&mut self, request: &mut Recorded, method: &Method, query: &str) -> Option<Answer> {
        let at = request.at;
        let found = self
            .webhooks
            .iter()
            .position(|webhook| webhook.path == request.path);
        let name = found.map(|index| self.webhooks[index].name.clone());
        request.webhook = name.clone();
        if let Some(name) = &name
            && let Some(until) = self.wait_until.get(name).copied()
            && at < until
        {
            self.protocol_error(
                at,
                format!("a message came before the Retry-After that ends at {until}"),
            );
        }
        let scripted = self
            .script
            .iter()
            .position(|(scope, _)| scope.is_none() || *scope == name);
        if let Some((_, failure)) = scripted.and_then(|index| self.script.remove(index)) {
            request.scripted = true;
            return match failure {
                Failure::Status {
                    code,
                    body,
                    retry_after,
                } => {
                    if let (Some(name), Some(seconds)) = (&name, retry_after) {
                        self.wait_until
                            .insert(name.clone(), at + chrono::Duration::seconds(seconds as i64));
                    }
                    Some(Answer {
                        status: code,
                        retry_after,
                        body,
                    })
                }
                Failure::ConnectorError(status) => Some(Answer::connector_error(status)),
                Failure::Hang => None,
            };
        }
        let Some(index) = found else {
            self.protocol_error(at, format!("{method} to an unknown webhook"));
            return Some(Answer::new(404, "Not Found"));
        };
        let (kind, signature) = {
            let webhook = &self.webhooks[index];
            (webhook.kind, webhook.signature.clone())
        };
        if let Some(signature) = signature {
            let sent = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("sig="))
                .unwrap_or_default();
            if sent != signature {
                self.protocol_error(at, "a Workflows request without its signature".to_owned());
                return Some(Answer::new(
                    401,
                    json!({"error": {"code": "DirectApiInvalidAuthorizationSignature", "message": "The provided authorization signature is not valid."}}).to_string(),
                ));
            }
        }
        let fail = |status: u16, message: &str| {
            match kind {
            Kind::Workflow => Answer::new(
                status,
                json!({"error": {"code": if status == 413 { "RequestEntityTooLarge" } else { "InvalidRequestContent" }, "message": message}}).to_string(),
            ),
            Kind::Connector => Answer::connector_error(status),
        }
        };
        if *method != Method::POST {
            self.protocol_error(at, format!("{method} instead of POST"));
            return Some(fail(405, "only POST"));
        }
        if request.raw.len() > MAX_MESSAGE_BYTES {
            self.protocol_error(at, format!("a message of {} bytes", request.raw.len()));
            return Some(fail(413, "the message is larger than 28 KB"));
        }
        let problems = validate(request);
        if !problems.is_empty() {
            for problem in &problems {
                self.protocol_error(at, problem.clone());
            }
            return Some(fail(400, &problems.join("; ")));
        }
        self.cards.push(Card {
            at,
            webhook: name.unwrap_or_default(),
            card: request.body["attachments"][0]["content"].clone(),
        });
        Some(match kind {
            Kind::Workflow => Answer::new(202, ""),
            Kind::Connector => Answer::new(200, "1"),
        })
    }
}

/// What is wrong with a message: not JSON, not a `message`, no Adaptive Card 1.2+, a card without a typed body, a
/// text block without text.
fn validate(request: &Recorded) -> Vec<String> {
    let mut problems = Vec::new();
    let json_type = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !json_type {
        problems.push("Content-Type must be application/json".to_owned());
    }
    let body = &request.body;
    if body["type"] != "message" {
        problems.push("'type' must be \"message\"".to_owned());
    }
    let Some(attachments) = body["attachments"].as_array().filter(|a| !a.is_empty()) else {
        problems.push("'attachments' must be a non-empty list".to_owned());
        return problems;
    };
    for (i, attachment) in attachments.iter().enumerate() {
        if attachment["contentType"] != CARD_TYPE {
            problems.push(format!("attachments[{i}].contentType must be {CARD_TYPE}"));
        }
        let card = &attachment["content"];
        if card["type"] != "AdaptiveCard" {
            problems.push(format!(
                "attachments[{i}].content.type must be AdaptiveCard"
            ));
        }
        let version = card["version"]
            .as_str()
            .and_then(|version| version.split_once('.'))
            .and_then(|(major, minor)| {
                Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
            });
        if version.is_none_or(|version| version < (1, 2)) {
            problems.push(format!(
                "attachments[{i}].content.version must be 1.2 or later"
            ));
        }
        let Some(elements) = card["body"].as_array().filter(|b| !b.is_empty()) else {
            problems.push(format!(
                "attachments[{i}].content.body must be a non-empty list"
            ));
            continue;
        };
        for (j, element) in elements.iter().enumerate() {
            match element["type"].as_str() {
                Some("TextBlock") if element["text"].as_str().is_none_or(str::is_empty) => {
                    problems.push(format!("body[{j}]: a TextBlock needs text"));
                }
                Some("FactSet") if !element["facts"].is_array() => {
                    problems.push(format!("body[{j}]: a FactSet needs facts"));
                }
                Some(_) => {}
                None => problems.push(format!("body[{j}] has no type")),
            }
        }
        for (j, action) in card["actions"].as_array().into_iter().flatten().enumerate() {
            if action["type"] == "Action.OpenUrl"
                && action["url"].as_str().is_none_or(str::is_empty)
            {
                problems.push(format!("actions[{j}]: Action.OpenUrl needs a url"));
            }
        }
    }
    problems
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
        webhook: None,
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        answer: None,
        scripted: false,
    };
    let query = uri.query().unwrap_or_default().to_owned();
    let answer = shared.record(|inner| {
        let answer = inner.answer(&mut request, &method, &query);
        request.answer = answer.clone();
        inner.requests.push(request);
        answer
    });
    let Some(answer) = answer else {
        return std::future::pending().await;
    };
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
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

    fn message(text: &str) -> Value {
        json!({"type": "message", "attachments": [{"contentType": CARD_TYPE, "content": {
            "type": "AdaptiveCard", "version": "1.2", "body": [{"type": "TextBlock", "text": text}],
        }}]})
    }

    async fn post(url: &str, body: &Value) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn workflows_answer_202_and_connectors_1() {
        let clock = Arc::new(ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap()));
        let teams = TeamsEmulator::start(clock).await;
        let workflow = teams.webhook("ops", Kind::Workflow);
        let connector = teams.webhook("legacy", Kind::Connector);
        assert_eq!(post(&workflow, &message("hi")).await, (202, String::new()));
        assert_eq!(
            post(&connector, &message("hi")).await,
            (200, "1".to_owned())
        );
        assert_eq!(teams.cards("ops")[0].text(0), "hi");
        assert_eq!(teams.cards("legacy").len(), 1);
        assert!(teams.protocol_errors().is_empty());
    }

    #[tokio::test]
    async fn bad_messages_signatures_and_sizes_are_protocol_errors() {
        let clock = Arc::new(ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap()));
        let teams = TeamsEmulator::start(clock).await;
        let workflow = teams.webhook("ops", Kind::Workflow);
        let connector = teams.webhook("legacy", Kind::Connector);
        let unsigned = workflow.split("&sig=").next().unwrap();
        assert_eq!(post(unsigned, &message("x")).await.0, 401);
        let mut old = message("x");
        old["attachments"][0]["content"]["version"] = json!("1.0");
        assert_eq!(post(&workflow, &old).await.0, 400);
        let (status, text) = post(&connector, &message("")).await;
        assert_eq!(status, 200);
        assert!(
            text.starts_with(CONNECTOR_FAILURE) && text.contains("HTTP error 400"),
            "{text}"
        );
        let big = message(&"x".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(post(&workflow, &big).await.0, 413);
        assert_eq!(teams.protocol_errors().len(), 4);
        assert!(teams.cards("ops").is_empty());
    }

    #[tokio::test]
    async fn a_request_before_retry_after_is_caught() {
        let clock = Arc::new(ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap()));
        let teams = TeamsEmulator::start(clock.clone()).await;
        let workflow = teams.webhook("ops", Kind::Workflow);
        teams.fail_next(
            1,
            Failure::Status {
                code: 429,
                body: String::new(),
                retry_after: Some(10),
            },
        );
        assert_eq!(post(&workflow, &message("x")).await.0, 429);
        clock.advance(std::time::Duration::from_secs(9));
        assert_eq!(post(&workflow, &message("x")).await.0, 202);
        assert_eq!(teams.protocol_errors().len(), 1);
    }
}
