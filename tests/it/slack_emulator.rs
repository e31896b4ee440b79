//! A Slack emulator on loopback for the `slack_configs` sink: incoming webhooks (`POST /services/T…/B…/<secret>`) and
//! the Web API methods `chat.postMessage` and `chat.update` with bot tokens, channels, threads and edits. It answers
//! with the status codes, bodies and rate limits that PEER-APIS.md records for Slack, takes its time (recorded times,
//! message `ts`, rate-limit windows) from the clock it is given, can be scripted to fail the next requests, and
//! records every request with what it answered.
//!
//! Emulator choices where PEER-APIS.md is silent (kept strict, so a sink that gets them wrong is caught):
//! - a webhook body with `"text":""` and nothing else is 400 `no_text`; with no `text` at all it is 400
//!   `missing_text_or_fallback_or_attachments`; malformed `blocks` are 400 `invalid_blocks`;
//! - the Web API only speaks JSON: another content type is `invalid_post_type`, a body that is not a JSON object is
//!   `invalid_json`; a content type without `charset` is served but warned about (`missing_charset`), as Slack does;
//! - `thread_ts` naming no message of the channel is `thread_not_found` unless `accept_unknown_thread_ts(true)`,
//!   which posts such a message at top level instead; a `thread_ts` naming a reply joins that reply's thread;
//! - `chat.update` wants the channel id (a name is `channel_not_found`); fields left out keep their old value, an
//!   empty `blocks`/`attachments` array removes them;
//! - rate limits are GCRA on the injected clock; only admitted requests use up the budget, and each 429 the limiter
//!   (not a script) answers counts as a violation.

use std::collections::{HashMap, VecDeque};
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

/// The longest `text` the Web API takes, in characters.
const MAX_TEXT_CHARS: usize = 40_000;
/// The most blocks one message may have.
const MAX_BLOCKS: usize = 50;
/// The bot identity messages posted through the Web API carry.
const BOT_ID: &str = "B0HERALDBOT";

// ---------------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------------

/// Which Slack surface a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /services/T…/B…/<secret>`.
    Webhook,
    /// `POST /api/chat.postMessage`.
    PostMessage,
    /// `POST /api/chat.update`.
    Update,
    /// Any other path: 404 outside `/api/`, `unknown_method` inside it.
    Other,
}

impl Endpoint {
    fn of(path: &str) -> Self {
        match path {
            "/api/chat.postMessage" => Endpoint::PostMessage,
            "/api/chat.update" => Endpoint::Update,
            path if path.starts_with("/services/") => Endpoint::Webhook,
            _ => Endpoint::Other,
        }
    }
}

/// Which requests a scripted failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Any,
    Only(Endpoint),
}

impl Scope {
    fn matches(self, endpoint: Endpoint) -> bool {
        match self {
            Scope::Any => true,
            Scope::Only(only) => only == endpoint,
        }
    }
}

impl From<Endpoint> for Scope {
    fn from(endpoint: Endpoint) -> Self {
        Scope::Only(endpoint)
    }
}

/// A scripted answer that replaces the normal handling of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429 with `Retry-After`; the body is the endpoint's: `{"retry_after":N,"ok":false,"error":"rate_limited"}` for
    /// webhooks, `{"ok":false,"error":"ratelimited"}` for the Web API.
    RateLimited { retry_after: u64 },
    /// 500 with the plain-text body `rollup_error`.
    RollupError,
    /// 503 with the plain-text body `service_unavailable`.
    Unavailable,
    /// HTTP 200 `{"ok":false,"error":<code>}`, the Web API's way of failing (`internal_error`, `ratelimited`, …).
    ApiError(String),
    /// Any status with a plain-text body (e.g. 400 `invalid_token` for a revoked webhook).
    Status { code: u16, body: String },
    /// Never answers: the request stays in flight until the sender gives up.
    Hang,
}

impl Failure {
    pub fn api_error(code: &str) -> Self {
        Failure::ApiError(code.to_owned())
    }

    fn reply(&self, endpoint: Endpoint) -> Reply {
        let answer = match self {
            Failure::RateLimited { retry_after } => rate_limited(endpoint, *retry_after),
            Failure::RollupError => Answer::text(500, "rollup_error"),
            Failure::Unavailable => Answer::text(503, "service_unavailable"),
            Failure::ApiError(code) => Answer::json(200, json!({"ok": false, "error": code})),
            Failure::Status { code, body } => Answer::text(*code, body),
            Failure::Hang => return Reply::Hang,
        };
        Reply::Answer(answer)
    }
}

/// One rate limit: one request per `every`, with bursts of up to `burst` back to back; over it, 429 with
/// `Retry-After: retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub every: Duration,
    pub burst: u32,
    pub retry_after: u64,
}

impl RateLimit {
    /// About 1 message per second per webhook; `retry-after: 1`.
    pub const WEBHOOK: RateLimit = RateLimit {
        every: Duration::from_secs(1),
        burst: 1,
        retry_after: 1,
    };
    /// `chat.postMessage`: about 1 message per second per channel; `Retry-After: 30`.
    pub const POST_MESSAGE: RateLimit = RateLimit {
        every: Duration::from_secs(1),
        burst: 1,
        retry_after: 30,
    };
    /// `chat.update`: tier 3, about 50 per minute (per token); `Retry-After: 30`.
    pub const UPDATE: RateLimit = RateLimit {
        every: Duration::from_millis(1200),
        burst: 50,
        retry_after: 30,
    };
}

/// 429s the rate limiter answered (scripted 429s are not counted), per endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Violations {
    pub webhook: usize,
    pub post_message: usize,
    pub update: usize,
}

impl Violations {
    pub fn total(&self) -> usize {
        self.webhook + self.post_message + self.update
    }

    fn count(&mut self, endpoint: Endpoint) {
        match endpoint {
            Endpoint::Webhook => self.webhook += 1,
            Endpoint::PostMessage => self.post_message += 1,
            Endpoint::Update => self.update += 1,
            Endpoint::Other => {}
        }
    }
}

/// What the emulator answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    /// The `Retry-After` header, in seconds, when there was one.
    pub retry_after: Option<u64>,
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: &str) -> Self {
        Answer {
            status,
            content_type: "text/html",
            retry_after: None,
            body: body.to_owned(),
        }
    }

    fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            content_type: "application/json; charset=utf-8",
            retry_after: None,
            body: body.to_string(),
        }
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Slack's error code in this answer: `error` of a JSON body with `"ok":false`, or a plain-text error body.
    pub fn error(&self) -> Option<String> {
        if let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&self.body)
            && body.get("ok") == Some(&Value::Bool(false))
        {
            return body.get("error").and_then(Value::as_str).map(str::to_owned);
        }
        (self.status >= 400).then(|| self.body.clone())
    }
}

/// One request as received, with what was answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it arrived, on the emulator's clock.
    pub at: DateTime<Utc>,
    pub endpoint: Endpoint,
    pub method: Method,
    pub path: String,
    /// The name of the webhook the path belongs to, if it names one.
    pub webhook: Option<String>,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The body as received.
    pub raw: Bytes,
    /// `None` for a request left hanging.
    pub answer: Option<Answer>,
    /// Answered 429 by the rate limiter (a violation).
    pub rate_limited: bool,
    /// Answered from the failure script.
    pub scripted: bool,
}

impl Recorded {
    /// The bearer token of the `Authorization` header.
    pub fn token(&self) -> Option<&str> {
        bearer(&self.headers)
    }

    /// Slack's error code in the answer, if it was an error.
    pub fn error(&self) -> Option<String> {
        self.answer.as_ref().and_then(Answer::error)
    }

    /// The status answered; `None` for a request left hanging.
    pub fn status(&self) -> Option<u16> {
        self.answer.as_ref().map(|answer| answer.status)
    }
}

/// A message accepted by an incoming webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookPost {
    pub at: DateTime<Utc>,
    /// Empty when the body had no `text`.
    pub text: String,
    pub blocks: Vec<Value>,
    pub attachments: Vec<Value>,
    /// The `channel`, `username` and `icon_emoji` overrides, as sent (Slack apps' webhooks ignore them).
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    /// The whole body.
    pub body: Value,
}

/// A message posted with `chat.postMessage`, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The channel id.
    pub channel: String,
    pub ts: String,
    /// The parent's `ts` for a reply in a thread.
    pub thread_ts: Option<String>,
    /// Empty when the message has no `text`.
    pub text: String,
    pub blocks: Vec<Value>,
    pub attachments: Vec<Value>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub reply_broadcast: bool,
    /// The token that posted it.
    pub token: String,
    pub posted_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The contents it had before each `chat.update`, oldest first.
    pub history: Vec<Revision>,
}

impl Message {
    /// How many times `chat.update` changed it.
    pub fn updates(&self) -> usize {
        self.history.len()
    }

    fn to_json(&self) -> Value {
        let mut message = Map::new();
        message.insert("type".into(), json!("message"));
        message.insert("subtype".into(), json!("bot_message"));
        message.insert("bot_id".into(), json!(BOT_ID));
        message.insert("text".into(), json!(self.text));
        message.insert("ts".into(), json!(self.ts));
        if let Some(thread_ts) = &self.thread_ts {
            message.insert("thread_ts".into(), json!(thread_ts));
        }
        if !self.blocks.is_empty() {
            message.insert("blocks".into(), json!(self.blocks));
        }
        if !self.attachments.is_empty() {
            message.insert("attachments".into(), json!(self.attachments));
        }
        if let Some(username) = &self.username {
            message.insert("username".into(), json!(username));
        }
        if let Some(icon_emoji) = &self.icon_emoji {
            message.insert("icon_emoji".into(), json!(icon_emoji));
        }
        if let Some(updated_at) = self.updated_at {
            message.insert(
                "edited".into(),
                json!({"user": BOT_ID, "ts": format_ts(updated_at.timestamp_micros())}),
            );
        }
        Value::Object(message)
    }
}

/// A message's content before one update.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub text: String,
    pub blocks: Vec<Value>,
    pub attachments: Vec<Value>,
    /// When this content was replaced.
    pub replaced_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------------------------
// The emulator
// ---------------------------------------------------------------------------------------------------------------

struct Channel {
    name: String,
    id: String,
    member: bool,
    archived: bool,
}

struct Webhook {
    name: String,
    path: String,
    revoked: bool,
    archived: bool,
    posts: Vec<WebhookPost>,
}

struct Inner {
    channels: Vec<Channel>,
    /// Token -> revoked.
    tokens: HashMap<String, bool>,
    webhooks: Vec<Webhook>,
    /// By channel id, in the order posted (replies included).
    messages: HashMap<String, Vec<Message>>,
    script: VecDeque<(Scope, Failure)>,
    limits_on: bool,
    limits: HashMap<Endpoint, RateLimit>,
    /// Theoretical arrival time per (endpoint, key) for the GCRA limiter.
    tat: HashMap<(Endpoint, String), DateTime<Utc>>,
    violations: Violations,
    accept_unknown_thread_ts: bool,
    edit_window: Option<Duration>,
    /// The last `ts` handed out, in microseconds since the epoch.
    last_ts: i64,
    requests: Vec<Recorded>,
}

type Shared = emulator::Shared<Inner>;

/// A Slack (webhooks + Web API) on a free loopback port. Setup methods take `&self` and return `&Self` to chain.
pub struct SlackEmulator {
    pub addr: SocketAddr,
    shared: Shared,
    _server: Server,
}

impl SlackEmulator {
    /// Starts on a free loopback port with no channels, tokens or webhooks, and the documented rate limits on.
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let inner = Inner {
            channels: Vec::new(),
            tokens: HashMap::new(),
            webhooks: Vec::new(),
            messages: HashMap::new(),
            script: VecDeque::new(),
            limits_on: true,
            limits: HashMap::from([
                (Endpoint::Webhook, RateLimit::WEBHOOK),
                (Endpoint::PostMessage, RateLimit::POST_MESSAGE),
                (Endpoint::Update, RateLimit::UPDATE),
            ]),
            tat: HashMap::new(),
            violations: Violations::default(),
            accept_unknown_thread_ts: false,
            edit_window: None,
            last_ts: 0,
            requests: Vec::new(),
        };
        let shared = Shared::new(inner, clock);
        let server = Server::start(emulator::loopback().await, handle, shared.clone());
        SlackEmulator {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    // --- setup -------------------------------------------------------------------------------------------------

    /// Adds a channel (or redefines the one with this id): `name` without `#`, `id` like `C0ALERTS`, and whether the
    /// bot is a member.
    pub fn channel(&self, name: &str, id: &str, member: bool) -> &Self {
        let mut inner = self.inner();
        inner.channels.retain(|channel| channel.id != id);
        inner.channels.push(Channel {
            name: name.trim_start_matches('#').to_owned(),
            id: id.to_owned(),
            member,
            archived: false,
        });
        inner.messages.entry(id.to_owned()).or_default();
        self
    }

    /// Archives a channel (by name, `#name` or id): posting answers `is_archived`.
    pub fn archive_channel(&self, channel: &str) -> &Self {
        let mut inner = self.inner();
        let index = inner.channel_index(channel).unwrap();
        inner.channels[index].archived = true;
        self
    }

    /// Accepts this bot token (`xoxb-…`) in `Authorization: Bearer`.
    pub fn token(&self, token: &str) -> &Self {
        self.inner().tokens.insert(token.to_owned(), false);
        self
    }

    /// Revokes a token: requests with it answer `token_revoked`.
    pub fn revoke_token(&self, token: &str) -> &Self {
        self.inner().tokens.insert(token.to_owned(), true);
        self
    }

    /// The URL of the incoming webhook `name`, created on first use (same URL on later calls).
    pub fn webhook_url(&self, name: &str) -> String {
        let mut inner = self.inner();
        let path = match inner.webhooks.iter().find(|hook| hook.name == name) {
            Some(hook) => hook.path.clone(),
            None => {
                let secret = uuid::Uuid::new_v4().simple().to_string();
                let path = format!("/services/T000/B000/{}", &secret[..24]);
                inner.webhooks.push(Webhook {
                    name: name.to_owned(),
                    path: path.clone(),
                    revoked: false,
                    archived: false,
                    posts: Vec::new(),
                });
                path
            }
        };
        format!("http://{}{path}", self.addr)
    }

    /// Revokes webhook `name`: posts answer 403 `invalid_token` (script `Failure::Status` for the 400 variant).
    pub fn revoke_webhook(&self, name: &str) -> &Self {
        self.inner().webhook_mut(name).revoked = true;
        self
    }

    /// Archives the channel webhook `name` posts to: posts answer 410 `channel_is_archived`.
    pub fn archive_webhook_channel(&self, name: &str) -> &Self {
        self.inner().webhook_mut(name).archived = true;
        self
    }

    /// The Web API base, ending in `/api/`: `format!("{}chat.postMessage", api_url())`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// Turns all rate limits on (the default) or off.
    pub fn set_rate_limits(&self, on: bool) -> &Self {
        self.inner().limits_on = on;
        self
    }

    /// Replaces one endpoint's rate limit (and forgets the budget used so far on it).
    pub fn set_rate_limit(&self, endpoint: Endpoint, limit: RateLimit) -> &Self {
        let mut inner = self.inner();
        inner.limits.insert(endpoint, limit);
        inner.tat.retain(|(on, _), _| *on != endpoint);
        self
    }

    /// Whether a `thread_ts` naming no message is posted at top level (`true`) or answered `thread_not_found`
    /// (`false`, the default).
    pub fn accept_unknown_thread_ts(&self, accept: bool) -> &Self {
        self.inner().accept_unknown_thread_ts = accept;
        self
    }

    /// Messages older than `window` answer `edit_window_closed` to `chat.update`; `None` (the default) for no limit.
    pub fn set_edit_window(&self, window: Option<Duration>) -> &Self {
        self.inner().edit_window = window;
        self
    }

    /// Answers the next `count` requests that `scope` matches with `failure` instead of handling them. Queued
    /// failures are used in order; each request takes the first queued failure that matches it.
    pub fn fail_next(&self, scope: impl Into<Scope>, count: usize, failure: Failure) -> &Self {
        let scope = scope.into();
        self.inner()
            .script
            .extend(std::iter::repeat_n((scope, failure), count));
        self
    }

    // --- state -------------------------------------------------------------------------------------------------

    /// The top-level messages of a channel (name, `#name` or id), oldest first; replies are in `thread`.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        self.channel_messages(channel)
            .into_iter()
            .filter(|message| message.thread_ts.is_none())
            .collect()
    }

    /// The replies in the thread under `ts`, oldest first (the parent itself is not included).
    pub fn thread(&self, channel: &str, ts: &str) -> Vec<Message> {
        self.channel_messages(channel)
            .into_iter()
            .filter(|message| message.thread_ts.as_deref() == Some(ts))
            .collect()
    }

    /// One message (top-level or reply) by its `ts`.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Message> {
        self.channel_messages(channel)
            .into_iter()
            .find(|message| message.ts == ts)
    }

    /// Every message of a channel, replies included, in the order posted.
    pub fn channel_messages(&self, channel: &str) -> Vec<Message> {
        let inner = self.inner();
        let index = inner
            .channel_index(channel)
            .unwrap_or_else(|| panic!("the emulator has no channel {channel:?}"));
        inner.messages[&inner.channels[index].id].clone()
    }

    /// What webhook `name` accepted, oldest first.
    pub fn webhook_posts(&self, name: &str) -> Vec<WebhookPost> {
        self.inner().webhook_mut(name).posts.clone()
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner().requests.clone()
    }

    /// The requests to one endpoint.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<Recorded> {
        self.inner()
            .requests
            .iter()
            .filter(|request| request.endpoint == endpoint)
            .cloned()
            .collect()
    }

    /// Waits (up to a generous bound) until at least `count` requests arrived; returns them all.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<Recorded> {
        self.shared
            .wait_for_count(count, "the Slack emulator")
            .await;
        self.requests()
    }

    /// 429s the rate limiter answered so far.
    pub fn violations(&self) -> Violations {
        self.inner().violations
    }

    /// Stops accepting connections (requests in flight, e.g. hanging ones, are not answered).
    pub fn stop(self) {}
}

impl Inner {
    fn channel_index(&self, key: &str) -> Option<usize> {
        self.channels
            .iter()
            .position(|channel| channel.id == key)
            .or_else(|| {
                let name = key.strip_prefix('#').unwrap_or(key);
                self.channels
                    .iter()
                    .position(|channel| channel.name == name)
            })
    }

    fn webhook_mut(&mut self, name: &str) -> &mut Webhook {
        self.webhooks
            .iter_mut()
            .find(|hook| hook.name == name)
            .unwrap_or_else(|| panic!("the emulator has no webhook {name:?}"))
    }

    /// A `ts` from the clock, later than every one handed out before.
    fn next_ts(&mut self, at: DateTime<Utc>) -> String {
        self.last_ts = at.timestamp_micros().max(self.last_ts + 1);
        format_ts(self.last_ts)
    }

    /// GCRA: admits a request at `at` unless it comes earlier than the limit allows for `key`.
    fn admit(&mut self, endpoint: Endpoint, key: &str, at: DateTime<Utc>) -> bool {
        if !self.limits_on {
            return true;
        }
        let limit = self.limits[&endpoint];
        let every = chrono::Duration::from_std(limit.every).unwrap();
        let tolerance = every * i32::try_from(limit.burst.max(1) - 1).unwrap();
        let key = (endpoint, key.to_owned());
        let tat = self.tat.get(&key).copied().unwrap_or(at);
        if at < tat - tolerance {
            self.violations.count(endpoint);
            return false;
        }
        self.tat.insert(key, tat.max(at) + every);
        true
    }

    fn retry_after(&self, endpoint: Endpoint) -> u64 {
        self.limits[&endpoint].retry_after
    }

    /// How to answer one request; notes on `request` what it found out (webhook name, rate limited, scripted).
    fn answer(&mut self, request: &mut Recorded) -> Reply {
        if let Some(index) = self
            .script
            .iter()
            .position(|(scope, _)| scope.matches(request.endpoint))
        {
            let (_, failure) = self.script.remove(index).unwrap();
            request.scripted = true;
            return failure.reply(request.endpoint);
        }
        if request.method != Method::POST && request.endpoint != Endpoint::Other {
            return Reply::Answer(Answer::text(405, "method_not_allowed"));
        }
        Reply::Answer(match request.endpoint {
            Endpoint::Webhook => self.webhook(request),
            Endpoint::PostMessage | Endpoint::Update => self.web_api(request),
            Endpoint::Other if request.path.starts_with("/api/") => {
                Answer::json(200, json!({"ok": false, "error": "unknown_method"}))
            }
            Endpoint::Other => Answer::text(404, "Not Found"),
        })
    }

    // --- incoming webhooks -------------------------------------------------------------------------------------

    fn webhook(&mut self, request: &mut Recorded) -> Answer {
        let Some(index) = self
            .webhooks
            .iter()
            .position(|hook| hook.path == request.path)
        else {
            return Answer::text(404, "no_service");
        };
        let name = self.webhooks[index].name.clone();
        request.webhook = Some(name.clone());
        if self.webhooks[index].revoked {
            return Answer::text(403, "invalid_token");
        }
        if !self.admit(Endpoint::Webhook, &name, request.at) {
            request.rate_limited = true;
            return rate_limited(Endpoint::Webhook, self.retry_after(Endpoint::Webhook));
        }
        let Value::Object(body) = &request.body else {
            return Answer::text(400, "invalid_payload");
        };
        let Ok(blocks) = optional(body, "blocks", valid_blocks) else {
            return Answer::text(400, "invalid_blocks");
        };
        let Ok(attachments) = optional(body, "attachments", valid_attachments) else {
            return Answer::text(400, "invalid_payload");
        };
        let text = match body.get("text") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return Answer::text(400, "invalid_payload"),
        };
        let (blocks, attachments) = (blocks.unwrap_or_default(), attachments.unwrap_or_default());
        if text.as_deref().unwrap_or_default().is_empty()
            && blocks.is_empty()
            && attachments.is_empty()
        {
            let error = if text.is_some() {
                "no_text"
            } else {
                "missing_text_or_fallback_or_attachments"
            };
            return Answer::text(400, error);
        }
        if self.webhooks[index].archived {
            return Answer::text(410, "channel_is_archived");
        }
        let string = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        let post = WebhookPost {
            at: request.at,
            text: text.unwrap_or_default(),
            blocks,
            attachments,
            channel: string("channel"),
            username: string("username"),
            icon_emoji: string("icon_emoji"),
            body: request.body.clone(),
        };
        self.webhooks[index].posts.push(post);
        Answer::text(200, "ok")
    }

    // --- Web API -----------------------------------------------------------------------------------------------

    fn web_api(&mut self, request: &mut Recorded) -> Answer {
        let outcome = match request.endpoint {
            Endpoint::PostMessage => self.post_message(request),
            _ => self.update(request),
        };
        let mut answer = match outcome {
            Ok(Value::Object(fields)) => {
                let mut body = Map::from_iter([("ok".to_owned(), Value::Bool(true))]);
                body.extend(fields);
                Value::Object(body)
            }
            Ok(other) => unreachable!("Web API methods answer objects, not {other}"),
            Err(ApiError::Error(code)) => json!({"ok": false, "error": code}),
            Err(ApiError::RateLimited) => {
                request.rate_limited = true;
                return rate_limited(request.endpoint, self.retry_after(request.endpoint));
            }
        };
        let charset = content_type(&request.headers).is_some_and(|ct| ct.contains("charset"));
        if !charset && let Value::Object(body) = &mut answer {
            body.insert("warning".into(), json!("missing_charset"));
            body.insert(
                "response_metadata".into(),
                json!({"warnings": ["missing_charset"]}),
            );
        }
        Answer::json(200, answer)
    }

    /// The token of a request, if it is one of ours and not revoked.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let token = bearer(headers)
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Error("not_authed"))?;
        match self.tokens.get(token) {
            None => Err(ApiError::Error("invalid_auth")),
            Some(true) => Err(ApiError::Error("token_revoked")),
            Some(false) => Ok(token.to_owned()),
        }
    }

    fn post_message(&mut self, request: &Recorded) -> Result<Value, ApiError> {
        let token = self.authenticate(&request.headers)?;
        let body = json_body(request)?;
        let index = body
            .get("channel")
            .and_then(Value::as_str)
            .and_then(|key| self.channel_index(key))
            .ok_or(ApiError::Error("channel_not_found"))?;
        let channel = &self.channels[index];
        if channel.archived {
            return Err(ApiError::Error("is_archived"));
        }
        if !channel.member {
            return Err(ApiError::Error("not_in_channel"));
        }
        let id = channel.id.clone();
        if !self.admit(Endpoint::PostMessage, &id, request.at) {
            return Err(ApiError::RateLimited);
        }
        let content = Content::parse(body)?;
        let text = content.text.unwrap_or_default();
        let (blocks, attachments) = (
            content.blocks.unwrap_or_default(),
            content.attachments.unwrap_or_default(),
        );
        if text.is_empty() && blocks.is_empty() && attachments.is_empty() {
            return Err(ApiError::Error("no_text"));
        }
        let thread_ts = match body.get("thread_ts") {
            None | Some(Value::Null) => None,
            Some(Value::String(ts)) if ts.is_empty() => None,
            Some(Value::String(ts)) => {
                match self.messages[&id].iter().find(|message| &message.ts == ts) {
                    Some(parent) => Some(parent.thread_ts.clone().unwrap_or(parent.ts.clone())),
                    None if self.accept_unknown_thread_ts => None,
                    None => return Err(ApiError::Error("thread_not_found")),
                }
            }
            Some(_) => return Err(ApiError::Error("invalid_arguments")),
        };
        let string = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        let message = Message {
            channel: id.clone(),
            ts: self.next_ts(request.at),
            reply_broadcast: thread_ts.is_some()
                && body.get("reply_broadcast") == Some(&Value::Bool(true)),
            thread_ts,
            text,
            blocks,
            attachments,
            username: string("username"),
            icon_emoji: string("icon_emoji"),
            token,
            posted_at: request.at,
            updated_at: None,
            history: Vec::new(),
        };
        let answer = json!({"channel": id, "ts": message.ts, "message": message.to_json()});
        self.messages.get_mut(&id).unwrap().push(message);
        Ok(answer)
    }

    fn update(&mut self, request: &Recorded) -> Result<Value, ApiError> {
        let token = self.authenticate(&request.headers)?;
        if !self.admit(Endpoint::Update, &token, request.at) {
            return Err(ApiError::RateLimited);
        }
        let body = json_body(request)?;
        let channel = body
            .get("channel")
            .and_then(Value::as_str)
            .and_then(|id| self.channels.iter().find(|channel| channel.id == id))
            .ok_or(ApiError::Error("channel_not_found"))?;
        if channel.archived {
            return Err(ApiError::Error("is_archived"));
        }
        let id = channel.id.clone();
        let edit_window = self.edit_window;
        let ts = body.get("ts").and_then(Value::as_str);
        let message = self
            .messages
            .get_mut(&id)
            .unwrap()
            .iter_mut()
            .find(|message| Some(message.ts.as_str()) == ts)
            .ok_or(ApiError::Error("message_not_found"))?;
        if message.token != token {
            return Err(ApiError::Error("cant_update_message"));
        }
        if let Some(window) = edit_window
            && request.at - message.posted_at > chrono::Duration::from_std(window).unwrap()
        {
            return Err(ApiError::Error("edit_window_closed"));
        }
        let content = Content::parse(body)?;
        if content.text.is_none() && content.blocks.is_none() && content.attachments.is_none() {
            return Err(ApiError::Error("no_text"));
        }
        message.history.push(Revision {
            text: message.text.clone(),
            blocks: message.blocks.clone(),
            attachments: message.attachments.clone(),
            replaced_at: request.at,
        });
        if let Some(text) = content.text {
            message.text = text;
        }
        if let Some(blocks) = content.blocks {
            message.blocks = blocks;
        }
        if let Some(attachments) = content.attachments {
            message.attachments = attachments;
        }
        message.updated_at = Some(request.at);
        Ok(json!({
            "channel": id,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_json(),
        }))
    }
}

/// How a Web API method failed.
enum ApiError {
    /// HTTP 200 `{"ok":false,"error":…}`.
    Error(&'static str),
    /// Over the rate limit: 429.
    RateLimited,
}

/// The content fields of a `chat.postMessage` or `chat.update` body; `None` where the field is absent.
struct Content {
    text: Option<String>,
    blocks: Option<Vec<Value>>,
    attachments: Option<Vec<Value>>,
}

impl Content {
    fn parse(body: &Map<String, Value>) -> Result<Self, ApiError> {
        let text = match body.get("text") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.chars().count() > MAX_TEXT_CHARS => {
                return Err(ApiError::Error("msg_too_long"));
            }
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return Err(ApiError::Error("invalid_arguments")),
        };
        let blocks = optional(body, "blocks", valid_blocks)
            .map_err(|()| ApiError::Error("invalid_blocks"))?;
        let attachments = optional(body, "attachments", valid_attachments)
            .map_err(|()| ApiError::Error("invalid_attachments"))?;
        Ok(Content {
            text,
            blocks,
            attachments,
        })
    }
}

/// The Web API body as a JSON object.
fn json_body(request: &Recorded) -> Result<&Map<String, Value>, ApiError> {
    let json = content_type(&request.headers)
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return Err(ApiError::Error("invalid_post_type"));
    }
    request
        .body
        .as_object()
        .ok_or(ApiError::Error("invalid_json"))
}

/// A field checked by `valid`: `Ok(None)` when absent or null, `Err(())` when present but invalid.
fn optional(
    body: &Map<String, Value>,
    key: &str,
    valid: fn(&Value) -> Option<Vec<Value>>,
) -> Result<Option<Vec<Value>>, ()> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => valid(value).map(Some).ok_or(()),
    }
}

/// Blocks: an array (or a string holding one) of at most 50 objects, each with a string `type`.
fn valid_blocks(value: &Value) -> Option<Vec<Value>> {
    let blocks = array_or_encoded(value)?;
    let valid = blocks.len() <= MAX_BLOCKS
        && blocks.iter().all(|block| {
            block
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| !kind.is_empty())
        });
    valid.then_some(blocks)
}

/// Attachments: an array (or a string holding one) of objects.
fn valid_attachments(value: &Value) -> Option<Vec<Value>> {
    let attachments = array_or_encoded(value)?;
    attachments
        .iter()
        .all(Value::is_object)
        .then_some(attachments)
}

/// A JSON array, or a string with a JSON array in it (Slack takes both).
fn array_or_encoded(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items.clone()),
        Value::String(encoded) => match serde_json::from_str(encoded) {
            Ok(Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => None,
    }
}

fn rate_limited(endpoint: Endpoint, retry_after: u64) -> Answer {
    let body = if endpoint == Endpoint::Webhook {
        json!({"retry_after": retry_after, "ok": false, "error": "rate_limited"})
    } else {
        json!({"ok": false, "error": "ratelimited"})
    };
    Answer::json(429, body).retry_after(retry_after)
}

/// Slack's `ts`: seconds, a dot, six digits of microseconds.
fn format_ts(micros: i64) -> String {
    format!(
        "{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------------------

enum Reply {
    Answer(Answer),
    Hang,
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
        endpoint: Endpoint::of(uri.path()),
        method,
        path: uri.path().to_owned(),
        webhook: None,
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        answer: None,
        rate_limited: false,
        scripted: false,
    };
    let reply = shared.record(|inner| {
        let reply = inner.answer(&mut request);
        if let Reply::Answer(answer) = &reply {
            request.answer = Some(answer.clone());
        }
        inner.requests.push(request);
        reply
    });
    match reply {
        Reply::Answer(answer) => {
            let mut response = (
                StatusCode::from_u16(answer.status).unwrap(),
                [(header::CONTENT_TYPE, answer.content_type)],
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
        Reply::Hang => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Self-tests
// ---------------------------------------------------------------------------------------------------------------

mod self_tests {
    use super::*;
    use herald::clock::ManualClock;

    const TOKEN: &str = "xoxb-111-222-herald";
    const OTHER_TOKEN: &str = "xoxb-333-444-other";

    fn start_time() -> DateTime<Utc> {
        "2026-11-21T12:00:00.000247Z".parse().unwrap()
    }

    /// An emulator on a manual clock with `#alerts` (member), `#quiet` (not a member), `#old` (archived) and two
    /// tokens.
    async fn slack() -> (SlackEmulator, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(start_time()));
        let slack = SlackEmulator::start(clock.clone()).await;
        slack
            .channel("alerts", "C0ALERTS", true)
            .channel("ops", "C0OPS", true)
            .channel("quiet", "C0QUIET", false)
            .channel("old", "C0OLD", true)
            .archive_channel("#old")
            .token(TOKEN)
            .token(OTHER_TOKEN);
        (slack, clock)
    }

    struct Got {
        status: u16,
        headers: reqwest::header::HeaderMap,
        text: String,
    }

    impl Got {
        fn json(&self) -> Value {
            serde_json::from_str(&self.text).unwrap()
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(|value| value.to_str().unwrap())
        }

        fn error(&self) -> String {
            self.json()["error"].as_str().unwrap().to_owned()
        }
    }

    async fn got(response: reqwest::Response) -> Got {
        Got {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn hook(url: &str, body: &str) -> Got {
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        got(response).await
    }

    async fn api(slack: &SlackEmulator, token: Option<&str>, method: &str, body: Value) -> Got {
        let mut request = reqwest::Client::new()
            .post(format!("{}{method}", slack.api_url()))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        got(request.send().await.unwrap()).await
    }

    async fn post(slack: &SlackEmulator, body: Value) -> Got {
        api(slack, Some(TOKEN), "chat.postMessage", body).await
    }

    async fn update(slack: &SlackEmulator, token: &str, body: Value) -> Got {
        api(slack, Some(token), "chat.update", body).await
    }

    #[tokio::test]
    async fn a_webhook_post_is_answered_ok_in_text_html_and_recorded() {
        let (slack, _clock) = slack().await;
        let url = slack.webhook_url("team");
        assert_eq!(url, slack.webhook_url("team"));
        assert!(url.contains("/services/T000/B000/"));

        let body = json!({
            "text": "Disk full",
            "channel": "#elsewhere",
            "username": "herald",
            "icon_emoji": ":rotating_light:",
            "attachments": [{"color": "#ff0000", "title": "Disk", "title_link": "http://x", "fallback": "Disk",
                "fields": [{"title": "host", "value": "db1", "short": true}]}],
        });
        let answer = hook(&url, &body.to_string()).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("text/html"));
        assert_eq!(answer.text, "ok");

        let posts = slack.webhook_posts("team");
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].text, "Disk full");
        assert_eq!(posts[0].at, start_time());
        assert_eq!(posts[0].attachments[0]["color"], "#ff0000");
        assert_eq!(posts[0].channel.as_deref(), Some("#elsewhere"));
        assert_eq!(posts[0].username.as_deref(), Some("herald"));
        assert_eq!(posts[0].icon_emoji.as_deref(), Some(":rotating_light:"));
        let requests = slack.wait_for_requests(1).await;
        assert_eq!(requests[0].endpoint, Endpoint::Webhook);
        assert_eq!(requests[0].webhook.as_deref(), Some("team"));
        assert_eq!(requests[0].body, body);
        assert_eq!(requests[0].raw, body.to_string());
        assert_eq!(requests[0].status(), Some(200));
        assert_eq!(requests[0].error(), None);
    }

    #[tokio::test]
    async fn webhook_errors_are_plain_text_with_the_documented_statuses() {
        let (slack, clock) = slack().await;
        slack.set_rate_limits(false);
        let url = slack.webhook_url("team");
        let unknown = format!("http://{}/services/T000/B000/nosuchsecret", slack.addr);
        let cases = [
            (unknown.as_str(), r#"{"text":"x"}"#, 404, "no_service"),
            (&url, "{not json", 400, "invalid_payload"),
            (&url, "[1,2]", 400, "invalid_payload"),
            (
                &url,
                r#"{"username":"herald"}"#,
                400,
                "missing_text_or_fallback_or_attachments",
            ),
            (&url, r#"{"text":""}"#, 400, "no_text"),
            (
                &url,
                r#"{"blocks":[{"text":"no type"}]}"#,
                400,
                "invalid_blocks",
            ),
        ];
        for (url, body, status, error) in cases {
            let answer = hook(url, body).await;
            assert_eq!(
                (answer.status, answer.text.as_str()),
                (status, error),
                "{body}"
            );
        }
        // Blocks or attachments alone stand in for the text.
        let blocks = r#"{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*x*"}}]}"#;
        assert_eq!(hook(&url, blocks).await.status, 200);
        assert_eq!(
            hook(&url, r#"{"attachments":[{"fallback":"x"}]}"#)
                .await
                .status,
            200
        );
        assert_eq!(slack.webhook_posts("team").len(), 2);

        slack.webhook_url("archived");
        slack.archive_webhook_channel("archived");
        let answer = hook(&slack.webhook_url("archived"), r#"{"text":"x"}"#).await;
        assert_eq!(
            (answer.status, answer.text.as_str()),
            (410, "channel_is_archived")
        );

        slack.revoke_webhook("team");
        clock.advance(Duration::from_secs(5));
        let answer = hook(&url, r#"{"text":"x"}"#).await;
        assert_eq!(
            (answer.status, answer.text.as_str()),
            (403, "invalid_token")
        );
        assert_eq!(slack.webhook_posts("team").len(), 2);
        assert_eq!(
            slack.requests().last().unwrap().error().as_deref(),
            Some("invalid_token")
        );
    }

    #[tokio::test]
    async fn post_message_answers_the_channel_id_and_increasing_slack_timestamps() {
        let (slack, _clock) = slack().await;
        slack.set_rate_limits(false);
        let first = post(&slack, json!({"channel": "#alerts", "text": "one"})).await;
        assert_eq!(first.status, 200);
        assert_eq!(
            first.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let first = first.json();
        assert_eq!(first["ok"], true);
        assert_eq!(first["channel"], "C0ALERTS");
        let now = start_time();
        let expected = format!("{}.{:06}", now.timestamp(), now.timestamp_subsec_micros());
        assert_eq!(first["ts"], expected.as_str());
        assert_eq!(first["message"]["text"], "one");
        assert_eq!(first["message"]["ts"], first["ts"]);
        assert!(first.get("warning").is_none());

        // The same clock reading still gives a later, distinct ts; names with or without `#` and ids all work.
        let second = post(&slack, json!({"channel": "alerts", "text": "two"}))
            .await
            .json();
        let third = post(&slack, json!({"channel": "C0ALERTS", "text": "three"}))
            .await
            .json();
        let ts = |answer: &Value| answer["ts"].as_str().unwrap().parse::<f64>().unwrap();
        assert!(ts(&first) < ts(&second) && ts(&second) < ts(&third));
        let (secs, micros) = third["ts"].as_str().unwrap().split_once('.').unwrap();
        assert_eq!((secs.len(), micros.len()), (10, 6));

        let messages = slack.messages("#alerts");
        let texts: Vec<_> = messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(messages[0].token, TOKEN);
        assert_eq!(messages[0].channel, "C0ALERTS");
    }

    #[tokio::test]
    async fn replies_go_into_the_parents_thread_and_updates_keep_a_history() {
        let (slack, clock) = slack().await;
        slack.set_rate_limits(false);
        let parent = post(
            &slack,
            json!({"channel": "alerts", "text": "firing",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*firing*"}}],
            "attachments": [{"color": "danger", "title": "Disk"}]}),
        )
        .await
        .json();
        let parent_ts = parent["ts"].as_str().unwrap().to_owned();
        let reply = post(
            &slack,
            json!({"channel": "C0ALERTS", "text": "still firing", "thread_ts": parent_ts}),
        )
        .await
        .json();
        assert_eq!(reply["ok"], true);
        assert_eq!(reply["message"]["thread_ts"], parent_ts.as_str());
        // A reply to the reply lands in the same thread.
        let reply_ts = reply["ts"].as_str().unwrap();
        let nested = post(
            &slack,
            json!({"channel": "alerts", "text": "again", "thread_ts": reply_ts}),
        )
        .await
        .json();
        assert_eq!(nested["message"]["thread_ts"], parent_ts.as_str());

        let unknown = post(
            &slack,
            json!({"channel": "alerts", "text": "x", "thread_ts": "1.000001"}),
        )
        .await;
        assert_eq!(
            (unknown.status, unknown.error()),
            (200, "thread_not_found".to_owned())
        );
        slack.accept_unknown_thread_ts(true);
        let accepted = post(
            &slack,
            json!({"channel": "alerts", "text": "x", "thread_ts": "1.000001"}),
        )
        .await;
        assert!(accepted.json()["message"].get("thread_ts").is_none());

        let tops: Vec<_> = slack
            .messages("alerts")
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(tops, ["firing", "x"]);
        let thread: Vec<_> = slack
            .thread("alerts", &parent_ts)
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(thread, ["still firing", "again"]);

        clock.advance(Duration::from_secs(60));
        let updated = update(
            &slack,
            TOKEN,
            json!({"channel": "C0ALERTS", "ts": parent_ts, "text": "resolved",
            "attachments": [{"color": "good", "title": "Disk"}]}),
        )
        .await
        .json();
        assert_eq!(updated["ok"], true);
        assert_eq!(updated["channel"], "C0ALERTS");
        assert_eq!(updated["ts"], parent_ts.as_str());
        assert_eq!(updated["text"], "resolved");
        let message = slack.message("alerts", &parent_ts).unwrap();
        assert_eq!(message.text, "resolved");
        assert_eq!(message.attachments[0]["color"], "good");
        assert_eq!(message.blocks.len(), 1, "blocks left out are kept");
        assert_eq!(message.updates(), 1);
        assert_eq!(message.history[0].text, "firing");
        assert_eq!(message.history[0].attachments[0]["color"], "danger");
        assert_eq!(message.updated_at, Some(clock.now()));

        let cases = [
            (
                TOKEN,
                json!({"channel": "C0ALERTS", "ts": "1.000002", "text": "x"}),
                "message_not_found",
            ),
            (
                TOKEN,
                json!({"channel": "alerts", "ts": parent_ts, "text": "x"}),
                "channel_not_found",
            ),
            (
                OTHER_TOKEN,
                json!({"channel": "C0ALERTS", "ts": parent_ts, "text": "x"}),
                "cant_update_message",
            ),
            (
                TOKEN,
                json!({"channel": "C0ALERTS", "ts": parent_ts}),
                "no_text",
            ),
        ];
        for (token, body, error) in cases {
            let answer = update(&slack, token, body.clone()).await;
            assert_eq!(
                (answer.status, answer.error()),
                (200, error.to_owned()),
                "{body}"
            );
        }
        slack.set_edit_window(Some(Duration::from_secs(30)));
        let late = update(
            &slack,
            TOKEN,
            json!({"channel": "C0ALERTS", "ts": parent_ts, "text": "x"}),
        )
        .await;
        assert_eq!(late.error(), "edit_window_closed");
        assert_eq!(slack.message("C0ALERTS", &parent_ts).unwrap().updates(), 1);
    }

    #[tokio::test]
    async fn missing_unknown_and_revoked_tokens_are_refused_with_http_200() {
        let (slack, _clock) = slack().await;
        let body = json!({"channel": "alerts", "text": "x"});
        let missing = api(&slack, None, "chat.postMessage", body.clone()).await;
        assert_eq!(
            (missing.status, missing.error()),
            (200, "not_authed".to_owned())
        );
        let wrong = api(&slack, Some("xoxb-wrong"), "chat.postMessage", body.clone()).await;
        assert_eq!(wrong.error(), "invalid_auth");
        slack.revoke_token(OTHER_TOKEN);
        let revoked = api(&slack, Some(OTHER_TOKEN), "chat.update", body.clone()).await;
        assert_eq!(revoked.error(), "token_revoked");
        assert!(slack.messages("alerts").is_empty());
        let requests = slack.requests();
        assert_eq!(requests[1].token(), Some("xoxb-wrong"));
        assert_eq!(requests[2].endpoint, Endpoint::Update);
        let unknown_method = api(&slack, Some(TOKEN), "chat.postEphemeral", body).await;
        assert_eq!(unknown_method.error(), "unknown_method");
    }

    #[tokio::test]
    async fn channel_and_content_errors_use_slacks_codes() {
        let (slack, _clock) = slack().await;
        slack.set_rate_limits(false);
        let block = json!({"type": "section", "text": {"type": "mrkdwn", "text": "x"}});
        let cases = [
            (
                json!({"channel": "#nowhere", "text": "x"}),
                "channel_not_found",
            ),
            (json!({"text": "x"}), "channel_not_found"),
            (json!({"channel": "quiet", "text": "x"}), "not_in_channel"),
            (json!({"channel": "C0OLD", "text": "x"}), "is_archived"),
            (
                json!({"channel": "alerts", "text": "x".repeat(40_001)}),
                "msg_too_long",
            ),
            (
                json!({"channel": "alerts", "blocks": {"type": "section"}}),
                "invalid_blocks",
            ),
            (
                json!({"channel": "alerts", "blocks": [{"text": "no type"}]}),
                "invalid_blocks",
            ),
            (
                json!({"channel": "alerts", "blocks": vec![block.clone(); 51]}),
                "invalid_blocks",
            ),
            (
                json!({"channel": "alerts", "attachments": ["x"]}),
                "invalid_attachments",
            ),
            (json!({"channel": "alerts"}), "no_text"),
            (json!({"channel": "alerts", "text": ""}), "no_text"),
        ];
        for (body, error) in cases {
            let answer = post(&slack, body.clone()).await;
            assert_eq!(
                (answer.status, answer.error()),
                (200, error.to_owned()),
                "{body}"
            );
        }
        let longest = post(
            &slack,
            json!({"channel": "alerts", "text": "é".repeat(40_000)}),
        )
        .await;
        assert_eq!(longest.json()["ok"], true);
        let encoded = post(
            &slack,
            json!({"channel": "alerts", "blocks": json!([block]).to_string()}),
        )
        .await;
        assert_eq!(encoded.json()["ok"], true);
        assert_eq!(slack.messages("alerts").len(), 2);

        // The Web API wants JSON, and says so when the charset is missing.
        let form = reqwest::Client::new()
            .post(format!("{}chat.postMessage", slack.api_url()))
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("channel=alerts&text=x")
            .send()
            .await
            .unwrap();
        assert_eq!(got(form).await.error(), "invalid_post_type");
        let no_charset = reqwest::Client::new()
            .post(format!("{}chat.postMessage", slack.api_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"channel": "alerts", "text": "x"}))
            .send()
            .await
            .unwrap();
        let no_charset = got(no_charset).await.json();
        assert_eq!(no_charset["ok"], true);
        assert_eq!(no_charset["warning"], "missing_charset");
    }

    #[tokio::test]
    async fn going_over_the_rate_limits_is_answered_429_with_retry_after_and_counted() {
        let (slack, clock) = slack().await;
        let url = slack.webhook_url("team");
        assert_eq!(hook(&url, r#"{"text":"1"}"#).await.status, 200);
        let over = hook(&url, r#"{"text":"2"}"#).await;
        assert_eq!(over.status, 429);
        assert_eq!(over.header("retry-after"), Some("1"));
        assert_eq!(
            over.json(),
            json!({"retry_after": 1, "ok": false, "error": "rate_limited"})
        );
        // Another webhook has its own budget.
        assert_eq!(
            hook(&slack.webhook_url("other"), r#"{"text":"x"}"#)
                .await
                .status,
            200
        );

        // postMessage: per channel.
        assert_eq!(
            post(&slack, json!({"channel": "alerts", "text": "1"}))
                .await
                .json()["ok"],
            true
        );
        let over = post(&slack, json!({"channel": "C0ALERTS", "text": "2"})).await;
        assert_eq!(over.status, 429);
        assert_eq!(over.header("retry-after"), Some("30"));
        assert_eq!(over.error(), "ratelimited");
        assert_eq!(
            post(&slack, json!({"channel": "ops", "text": "1"}))
                .await
                .json()["ok"],
            true
        );
        assert_eq!(slack.messages("alerts").len(), 1);

        clock.advance(Duration::from_secs(1));
        assert_eq!(hook(&url, r#"{"text":"3"}"#).await.status, 200);
        assert_eq!(
            post(&slack, json!({"channel": "alerts", "text": "3"}))
                .await
                .json()["ok"],
            true
        );

        // chat.update: bursts of 50, then one per 1.2 s.
        let ts = slack.messages("alerts")[0].ts.clone();
        let edit = json!({"channel": "C0ALERTS", "ts": ts, "text": "edited"});
        for _ in 0..50 {
            assert_eq!(update(&slack, TOKEN, edit.clone()).await.json()["ok"], true);
        }
        let over = update(&slack, TOKEN, edit.clone()).await;
        assert_eq!((over.status, over.header("retry-after")), (429, Some("30")));
        clock.advance(Duration::from_millis(1200));
        assert_eq!(update(&slack, TOKEN, edit.clone()).await.json()["ok"], true);

        assert_eq!(
            slack.violations(),
            Violations {
                webhook: 1,
                post_message: 1,
                update: 1
            }
        );
        assert_eq!(slack.violations().total(), 3);
        assert_eq!(
            slack.requests().iter().filter(|r| r.rate_limited).count(),
            3
        );

        // Configurable, and off altogether.
        slack.set_rate_limit(
            Endpoint::PostMessage,
            RateLimit {
                retry_after: 7,
                ..RateLimit::POST_MESSAGE
            },
        );
        post(&slack, json!({"channel": "ops", "text": "a"})).await;
        let over = post(&slack, json!({"channel": "ops", "text": "b"})).await;
        assert_eq!(over.header("retry-after"), Some("7"));
        slack.set_rate_limits(false);
        for n in 0..5 {
            assert_eq!(
                hook(&url, &json!({"text": n.to_string()}).to_string())
                    .await
                    .status,
                200
            );
        }
        assert_eq!(slack.violations().total(), 4);
    }

    #[tokio::test]
    async fn scripted_failures_answer_the_next_requests_then_normal_service_resumes() {
        let (slack, _clock) = slack().await;
        slack.set_rate_limits(false);
        let url = slack.webhook_url("team");
        slack
            .fail_next(
                Endpoint::PostMessage,
                2,
                Failure::api_error("internal_error"),
            )
            .fail_next(
                Endpoint::Webhook,
                1,
                Failure::RateLimited { retry_after: 9 },
            )
            .fail_next(Scope::Any, 1, Failure::RollupError)
            .fail_next(Scope::Any, 1, Failure::Unavailable)
            .fail_next(Endpoint::Update, 1, Failure::api_error("ratelimited"))
            .fail_next(
                Endpoint::Webhook,
                1,
                Failure::Status {
                    code: 400,
                    body: "invalid_token".into(),
                },
            );
        let body = json!({"channel": "alerts", "text": "x"});
        for _ in 0..2 {
            let answer = post(&slack, body.clone()).await;
            assert_eq!(
                (answer.status, answer.error()),
                (200, "internal_error".to_owned())
            );
        }
        let limited = hook(&url, r#"{"text":"x"}"#).await;
        assert_eq!(
            (limited.status, limited.header("retry-after")),
            (429, Some("9"))
        );
        assert_eq!(limited.json()["error"], "rate_limited");
        let rollup = post(&slack, body.clone()).await;
        assert_eq!((rollup.status, rollup.text.as_str()), (500, "rollup_error"));
        assert_eq!(hook(&url, r#"{"text":"x"}"#).await.status, 503);
        let in_body = update(
            &slack,
            TOKEN,
            json!({"channel": "C0ALERTS", "ts": "1.0", "text": "x"}),
        )
        .await;
        assert_eq!(
            (in_body.status, in_body.error()),
            (200, "ratelimited".to_owned())
        );
        let revoked = hook(&url, r#"{"text":"x"}"#).await;
        assert_eq!(
            (revoked.status, revoked.text.as_str()),
            (400, "invalid_token")
        );

        assert_eq!(post(&slack, body).await.json()["ok"], true);
        assert_eq!(hook(&url, r#"{"text":"x"}"#).await.text, "ok");
        let requests = slack.requests();
        assert_eq!(requests.iter().filter(|r| r.scripted).count(), 7);
        assert_eq!(slack.violations().total(), 0);
        assert_eq!(slack.requests_to(Endpoint::PostMessage).len(), 4);
    }

    #[tokio::test]
    async fn a_hanging_request_is_recorded_unanswered_and_times_the_sender_out() {
        let (slack, _clock) = slack().await;
        slack.fail_next(Scope::Any, 1, Failure::Hang);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let sent = client
            .post(format!("{}chat.postMessage", slack.api_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"channel": "alerts", "text": "x"}))
            .send()
            .await;
        assert!(sent.unwrap_err().is_timeout());
        let requests = slack.wait_for_requests(1).await;
        assert_eq!(requests[0].answer, None);
        assert!(requests[0].scripted);
        assert!(slack.messages("alerts").is_empty());
        // The next request is served normally.
        assert_eq!(
            post(&slack, json!({"channel": "alerts", "text": "x"}))
                .await
                .json()["ok"],
            true
        );
        slack.stop();
    }
}
