//! A stateful Jira emulator on loopback that behaves like the real service as PEER-APIS.md describes, for herald's
//! Jira sink tests. It owns:
//! - the two flavours: Jira Cloud (REST v3 with Atlassian Document Format bodies, and v2 with wiki-markup strings;
//!   Basic auth with email:api_token) and Jira Data Center (REST v2 only; Bearer personal access token);
//! - issues (create, read, edit), comments, and a small workflow (To Do -> In Progress -> Done, Reopen) driven by
//!   transitions, with resolutions;
//! - search: Cloud's enhanced `/search/jql` (page tokens, no `total`; the removed `/search` answers 410), Data
//!   Center's `/search` (`startAt`, `total`), a small JQL parser, and optional eventual consistency (`search_lag`);
//! - faults scripted per request pattern (429/503 with Retry-After and X-RateLimit-Reset, 500, a hang, quota
//!   headers), an optional enforced minimum gap between requests, and a record of every request with the time on
//!   the injected clock;
//! - the hand of a human: creating, transitioning and deleting issues outside the API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use herald::clock::Clock;
use serde_json::{Map, Value, json};

use crate::emulator::{self, MinGap, Server};

/// The email of the default Cloud credentials.
pub const CLOUD_EMAIL: &str = "herald@example.com";
/// The API token of the default Cloud credentials.
pub const CLOUD_API_TOKEN: &str = "cloud-api-token";
/// The personal access token of the default Data Center credentials.
pub const DC_PAT: &str = "dc-personal-access-token";

const NOT_ADF: &str =
    "Operation value must be an Atlassian Document (see the Atlassian Document Format)";
const NOT_A_STRING: &str = "Operation value must be a string";
const NO_SUMMARY: &str = "You must specify a summary of the issue.";
const EMPTY_COMMENT: &str = "Comment body can not be empty!";
const NO_ISSUE: &str = "Issue does not exist or you do not have permission to see it.";
const UNAUTHENTICATED: &str = "Client must be authenticated to access this resource.";
const SEARCH_REMOVED: &str = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. \
     A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046";
const UNBOUNDED: &str =
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.";

// ---------------------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------------------

/// Which product the emulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JiraMode {
    /// Jira Cloud: `/rest/api/3` (ADF) and `/rest/api/2` (strings), enhanced `/search/jql`, old `/search` is 410.
    Cloud,
    /// Jira Data Center: `/rest/api/2` only (`/rest/api/3` is 404), `/search` with `startAt` and `total`.
    DataCenter,
}

/// The one set of credentials the emulator accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic base64(email:api_token)` (Cloud).
    Basic { email: String, api_token: String },
    /// `Authorization: Bearer <token>` (Data Center personal access token).
    Bearer { token: String },
}

impl Credentials {
    /// The `Authorization` header value a correct client sends.
    pub fn header_value(&self) -> String {
        match self {
            Credentials::Basic { email, api_token } => {
                format!("Basic {}", STANDARD.encode(format!("{email}:{api_token}")))
            }
            Credentials::Bearer { token } => format!("Bearer {token}"),
        }
    }

    fn accepts(&self, authorization: &str) -> bool {
        let (scheme, rest) = authorization.split_once(' ').unwrap_or((authorization, ""));
        match self {
            Credentials::Basic { email, api_token } => {
                scheme.eq_ignore_ascii_case("basic")
                    && STANDARD
                        .decode(rest.trim())
                        .ok()
                        .and_then(|pair| String::from_utf8(pair).ok())
                        .is_some_and(|pair| pair == format!("{email}:{api_token}"))
            }
            Credentials::Bearer { token } => {
                scheme.eq_ignore_ascii_case("bearer") && rest.trim() == token
            }
        }
    }
}

/// What the emulated site holds and accepts.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    pub mode: JiraMode,
    pub credentials: Credentials,
    /// Project keys that exist (default `["OPS"]`).
    pub projects: Vec<String>,
    /// Issue type names that exist (default Bug, Task, Incident).
    pub issue_types: Vec<String>,
    /// Priority names, highest first (default Highest, High, Medium, Low, Lowest); new issues default to Medium.
    pub priorities: Vec<String>,
    /// Resolution names a transition to Done may set (default Done, Won't Do, Duplicate, Cannot Reproduce).
    pub resolutions: Vec<String>,
    /// A new issue is missed by this many searches before search sees it (eventual consistency; default 0).
    pub search_lag: usize,
}

impl JiraConfig {
    /// Defaults for `mode`: project OPS; Cloud accepts Basic `CLOUD_EMAIL:CLOUD_API_TOKEN`, Data Center Bearer
    /// `DC_PAT`.
    pub fn new(mode: JiraMode) -> Self {
        let credentials = match mode {
            JiraMode::Cloud => Credentials::Basic {
                email: CLOUD_EMAIL.to_owned(),
                api_token: CLOUD_API_TOKEN.to_owned(),
            },
            JiraMode::DataCenter => Credentials::Bearer {
                token: DC_PAT.to_owned(),
            },
        };
        JiraConfig {
            mode,
            credentials,
            projects: strings(&["OPS"]),
            issue_types: strings(&["Bug", "Task", "Incident"]),
            priorities: strings(&["Highest", "High", "Medium", "Low", "Lowest"]),
            resolutions: strings(&["Done", "Won't Do", "Duplicate", "Cannot Reproduce"]),
            search_lag: 0,
        }
    }

    pub fn with_projects(mut self, projects: &[&str]) -> Self {
        self.projects = strings(projects);
        self
    }

    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    pub fn with_search_lag(mut self, searches: usize) -> Self {
        self.search_lag = searches;
        self
    }

    fn default_priority(&self) -> String {
        let medium = self.priorities.iter().find(|p| p.as_str() == "Medium");
        medium
            .or(self.priorities.first())
            .cloned()
            .unwrap_or_default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// What tests inspect
// ---------------------------------------------------------------------------------------------------------------

/// The workflow's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    ToDo,
    InProgress,
    Done,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::ToDo, Status::InProgress, Status::Done];

    pub fn name(self) -> &'static str {
        match self {
            Status::ToDo => "To Do",
            Status::InProgress => "In Progress",
            Status::Done => "Done",
        }
    }

    /// The status category key: `new`, `indeterminate` or `done`.
    pub fn category_key(self) -> &'static str {
        match self {
            Status::ToDo => "new",
            Status::InProgress => "indeterminate",
            Status::Done => "done",
        }
    }

    fn category_name(self) -> &'static str {
        self.name()
    }

    fn category_id(self) -> u32 {
        match self {
            Status::ToDo => 2,
            Status::InProgress => 4,
            Status::Done => 3,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Status::ToDo => "10000",
            Status::InProgress => "3",
            Status::Done => "10001",
        }
    }

    fn from_name(name: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.name().eq_ignore_ascii_case(name))
    }

    /// Whether `value` names this status's category by key, name or id (case-insensitive), as JQL allows.
    fn in_category(self, value: &str) -> bool {
        self.category_key().eq_ignore_ascii_case(value)
            || self.category_name().eq_ignore_ascii_case(value)
            || self.category_id().to_string() == value
    }

    fn json(self, base: &str) -> Value {
        let color = match self {
            Status::ToDo => "blue-gray",
            Status::InProgress => "yellow",
            Status::Done => "green",
        };
        json!({
            "self": format!("{base}/rest/api/2/status/{}", self.id()),
            "name": self.name(),
            "id": self.id(),
            "statusCategory": {
                "self": format!("{base}/rest/api/2/statuscategory/{}", self.category_id()),
                "id": self.category_id(),
                "key": self.category_key(),
                "colorName": color,
                "name": self.category_name(),
            },
        })
    }
}

/// An issue as the emulator holds it.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    /// As last sent: an ADF document (v3), a wiki-markup string (v2), or null.
    pub description: Value,
    pub priority: String,
    pub labels: Vec<String>,
    pub components: Vec<String>,
    /// `customfield_NNNNN` values as sent.
    pub custom_fields: BTreeMap<String, Value>,
    pub status: Status,
    pub resolution: Option<String>,
    /// When the issue last reached Done (Jira's `resolutiondate`); cleared on reopen.
    pub resolved: Option<DateTime<Utc>>,
    pub comments: Vec<Comment>,
    /// Every status change, by API transition or by hand.
    pub history: Vec<StatusChange>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl Issue {
    pub fn status_name(&self) -> &'static str {
        self.status.name()
    }

    /// `new`, `indeterminate` or `done`.
    pub fn status_category(&self) -> &'static str {
        self.status.category_key()
    }

    /// The description as plain text, whether sent as ADF or as a string.
    pub fn description_text(&self) -> String {
        plain_text(&self.description)
    }

    pub fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
}

/// A comment on an issue.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: String,
    /// As sent: ADF (v3) or a string (v2).
    pub body: Value,
    pub created: DateTime<Utc>,
}

impl Comment {
    pub fn text(&self) -> String {
        plain_text(&self.body)
    }
}

/// One status change of an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub at: DateTime<Utc>,
    pub from: Status,
    pub to: Status,
    /// The transition's name, or `"by hand"`.
    pub via: String,
    pub resolution: Option<String>,
}

/// Text of a description or comment body: a string as is, an ADF document's text nodes with blocks on their own
/// lines, null as empty.
pub fn plain_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        document => {
            let mut out = String::new();
            collect_text(document, &mut out);
            out.trim_end().to_owned()
        }
    }
}

fn collect_text(node: &Value, out: &mut String) {
    match node.get("type").and_then(Value::as_str) {
        Some("text") => out.push_str(node["text"].as_str().unwrap_or_default()),
        Some("hardBreak") => out.push('\n'),
        kind => {
            for child in node["content"].as_array().into_iter().flatten() {
                collect_text(child, out);
            }
            let block = matches!(
                kind,
                Some(
                    "paragraph"
                        | "heading"
                        | "codeBlock"
                        | "blockquote"
                        | "listItem"
                        | "panel"
                        | "rule"
                        | "tableCell"
                        | "tableHeader"
                )
            );
            if block && !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
}

/// A one-paragraph ADF document, as Cloud shows a v2 string through v3.
fn adf_from_text(text: &str) -> Value {
    let content = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "paragraph", "content": [{"type": "text", "text": text}]}])
    };
    json!({"type": "doc", "version": 1, "content": content})
}

fn is_adf_document(value: &Value) -> bool {
    value["type"] == "doc"
        && value["version"] == 1
        && value["content"]
            .as_array()
            .is_some_and(|content| content.iter().all(is_adf_node))
}

fn is_adf_node(node: &Value) -> bool {
    match node.get("type").and_then(Value::as_str) {
        None | Some("doc") => false,
        Some("text") => node["text"].as_str().is_some_and(|text| !text.is_empty()),
        Some(_) => node.get("content").is_none_or(|content| {
            content
                .as_array()
                .is_some_and(|children| children.iter().all(is_adf_node))
        }),
    }
}

/// A fault the emulator answers with instead of (or on top of) the normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: <retry_after>` and `X-RateLimit-Reset: <now + reset_after>` (ISO-8601), each only
    /// when given, plus `X-RateLimit-Limit` and `X-RateLimit-Remaining: 0`.
    RateLimited {
        retry_after: Option<u64>,
        reset_after: Option<u64>,
    },
    /// 503, with `Retry-After` when given.
    Unavailable { retry_after: Option<u64> },
    /// A plain 500.
    ServerError,
    /// Never answers: the request stays in flight until the client gives up.
    Hang,
    /// Answers normally, adding `X-RateLimit-Limit`, `X-RateLimit-Remaining` and, under 20% left,
    /// `X-RateLimit-NearLimit: true`.
    Quota { limit: u32, remaining: u32 },
}

impl Fault {
    /// 429 with both `Retry-After: seconds` and `X-RateLimit-Reset` at now + seconds.
    pub fn rate_limited(seconds: u64) -> Self {
        Fault::RateLimited {
            retry_after: Some(seconds),
            reset_after: Some(seconds),
        }
    }

    /// A success with `X-RateLimit-NearLimit: true` and `X-RateLimit-Remaining: remaining` (of 100).
    pub fn near_limit(remaining: u32) -> Self {
        Fault::Quota {
            limit: 100,
            remaining,
        }
    }
}

/// Which requests a fault applies to: a method (or any) and a path glob where `*` matches within one segment,
/// e.g. `RequestPattern::new("POST", "/rest/api/*/issue/*/transitions")`. The query string is not matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPattern {
    method: Option<Method>,
    path: Option<String>,
}

impl RequestPattern {
    pub fn any() -> Self {
        RequestPattern {
            method: None,
            path: None,
        }
    }

    /// `method` may be `"*"` for any method.
    pub fn new(method: &str, path: &str) -> Self {
        let method = (method != "*").then(|| Method::from_bytes(method.as_bytes()).unwrap());
        RequestPattern {
            method,
            path: Some(path.to_owned()),
        }
    }

    /// Any method on paths matching `path`.
    pub fn path(path: &str) -> Self {
        RequestPattern::new("*", path)
    }

    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path
                .as_ref()
                .is_none_or(|pattern| glob(pattern.as_bytes(), path.as_bytes()))
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len())
            .take_while(|&skip| skip == 0 || text[skip - 1] != b'/')
            .any(|skip| glob(rest, &text[skip..])),
        Some((first, rest)) => text.first() == Some(first) && glob(rest, &text[1..]),
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct JiraRequest {
    /// On the injected clock.
    pub at: DateTime<Utc>,
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The body as JSON; null when empty or not JSON.
    pub body: Value,
    pub raw: Bytes,
    /// The status answered; `None` when left hanging.
    pub status: Option<u16>,
}

impl JiraRequest {
    pub fn is(&self, method: &str, path_glob: &str) -> bool {
        RequestPattern::new(method, path_glob).matches(&self.method, &self.path)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The emulator
// ---------------------------------------------------------------------------------------------------------------

pub struct JiraEmulator {
    config: JiraConfig,
    shared: Shared,
    server: Server,
}

type Shared = emulator::Shared<Inner>;

struct ScriptedFault {
    pattern: RequestPattern,
    left: usize,
    fault: Fault,
}

struct Inner {
    config: JiraConfig,
    base: String,
    issues: Vec<Issue>,
    /// Issue key -> how many more searches miss it.
    hidden_from_search: HashMap<String, usize>,
    next_issue_id: u64,
    next_number: HashMap<String, u64>,
    next_comment_id: u64,
    faults: Vec<ScriptedFault>,
    min_gap: MinGap,
    requests: Vec<JiraRequest>,
}

#[allow(
    dead_code,
    reason = "each test module uses a different part of the emulator"
)]
impl JiraEmulator {
    /// Starts on a free loopback port with `JiraConfig::new(mode)`.
    pub async fn start(mode: JiraMode, clock: Arc<dyn Clock>) -> Self {
        Self::start_with(JiraConfig::new(mode), clock).await
    }

    pub async fn start_with(config: JiraConfig, clock: Arc<dyn Clock>) -> Self {
        let listener = emulator::loopback().await;
        let inner = Inner {
            config: config.clone(),
            base: format!("http://{}", listener.local_addr().unwrap()),
            issues: Vec::new(),
            hidden_from_search: HashMap::new(),
            next_issue_id: 10000,
            next_number: HashMap::new(),
            next_comment_id: 10100,
            faults: Vec::new(),
            min_gap: MinGap::default(),
            requests: Vec::new(),
        };
        let shared = Shared::new(inner, clock);
        let server = Server::start(listener, handle, shared.clone());
        JiraEmulator {
            config,
            shared,
            server,
        }
    }

    /// The site's base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn mode(&self) -> JiraMode {
        self.config.mode
    }

    pub fn credentials(&self) -> &Credentials {
        &self.config.credentials
    }

    /// The `Authorization` header value the emulator accepts.
    pub fn auth_header(&self) -> String {
        self.config.credentials.header_value()
    }

    /// From now on, a new issue is missed by this many searches.
    pub fn set_search_lag(&self, searches: usize) {
        self.inner().config.search_lag = searches;
    }

    /// Answers the next `times` requests matching `pattern` with `fault`. Scripts are kept in order; a request
    /// takes from the first script that matches it.
    pub fn fail_next(&self, pattern: RequestPattern, times: usize, fault: Fault) {
        if times > 0 {
            self.inner().faults.push(ScriptedFault {
                pattern,
                left: times,
                fault,
            });
        }
    }

    /// Behaves like a service limited to one request per `gap` (on the injected clock): a request closer than that
    /// to the previous accepted one is answered 429 with Retry-After (and X-RateLimit-Reset) and counted as a
    /// violation.
    pub fn enforce_min_gap(&self, gap: Duration) {
        self.inner().min_gap.enforce(gap);
    }

    pub fn violations(&self) -> usize {
        self.inner().min_gap.violations()
    }

    pub fn requests(&self) -> Vec<JiraRequest> {
        self.inner().requests.clone()
    }

    pub fn requests_matching(&self, pattern: &RequestPattern) -> Vec<JiraRequest> {
        let inner = self.inner();
        let matching = inner
            .requests
            .iter()
            .filter(|r| pattern.matches(&r.method, &r.path));
        matching.cloned().collect()
    }

    /// Waits (up to a generous bound) until at least `count` requests arrived; returns them all.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<JiraRequest> {
        self.shared.wait_for_count(count, "the Jira emulator").await;
        self.requests()
    }

    /// Waits (up to a generous bound) until `done` holds, re-checking after every request.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&JiraEmulator) -> bool) {
        let requests = || format!("requests: {:?}", self.request_lines());
        self.shared.wait_until(what, || done(self), requests).await;
    }

    /// All issues, oldest first.
    pub fn issues(&self) -> Vec<Issue> {
        self.inner().issues.clone()
    }

    /// An issue by key or id.
    pub fn issue(&self, key: &str) -> Option<Issue> {
        self.inner().find(key).cloned()
    }

    pub fn issues_with_label(&self, label: &str) -> Vec<Issue> {
        let inner = self.inner();
        let labelled = inner.issues.iter().filter(|issue| issue.has_label(label));
        labelled.cloned().collect()
    }

    /// Creates an issue as a person would in the UI (type Task, visible to search at once); returns its key.
    pub fn create_issue_by_hand(&self, project: &str, summary: &str, labels: &[&str]) -> String {
        let at = self.shared.now();
        let mut inner = self.inner();
        assert!(
            inner.config.projects.iter().any(|p| p == project),
            "no project {project}"
        );
        let changes = FieldChanges {
            project: Some(project.to_owned()),
            issue_type: Some("Task".to_owned()),
            summary: Some(summary.to_owned()),
            labels: Some(strings(labels)),
            ..FieldChanges::default()
        };
        inner.insert_issue(at, changes, false).1
    }

    /// Moves an issue to `to` as a person would, outside the workflow. Reaching Done sets `resolution` (default
    /// "Done"); any other status clears it.
    pub fn transition_by_hand(&self, key: &str, to: Status, resolution: Option<&str>) {
        let at = self.shared.now();
        let mut inner = self.inner();
        let issue = inner
            .find_mut(key)
            .unwrap_or_else(|| panic!("no issue {key}"));
        set_status(issue, to, resolution.map(str::to_owned), "by hand", at);
    }

    /// Deletes an issue as a person would: the API answers 404 for it from now on.
    pub fn delete_issue(&self, key: &str) {
        let mut inner = self.inner();
        let before = inner.issues.len();
        inner.issues.retain(|issue| issue.key != key);
        assert!(inner.issues.len() < before, "no issue {key} to delete");
        inner.hidden_from_search.remove(key);
    }

    /// Stops accepting connections (requests in flight, e.g. hanging ones, are not answered).
    pub fn stop(self) {}

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    fn request_lines(&self) -> Vec<String> {
        let inner = self.inner();
        let lines = inner.requests.iter().map(|r| {
            let status = r.status.map_or("hang".to_owned(), |s| s.to_string());
            format!("{} {} -> {status}", r.method, r.path)
        });
        lines.collect()
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = shared.now();
    let answer = shared.record(|inner| {
        let answer = inner.answer(at, &method, &uri, &headers, &body);
        inner.requests.push(JiraRequest {
            at,
            method,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw: body,
            status: answer.status(),
        });
        answer
    });
    answer.into_response().await
}

// ---------------------------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------------------------

enum Body {
    Empty,
    Json(Value),
    Text(String),
}

enum Answer {
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Body,
    },
    Hang,
}

impl Answer {
    fn new(status: u16, body: Body) -> Self {
        Answer::Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    fn json(status: u16, value: Value) -> Self {
        Answer::new(status, Body::Json(value))
    }

    fn text(status: u16, text: &str) -> Self {
        Answer::new(status, Body::Text(text.to_owned()))
    }

    fn no_content() -> Self {
        Answer::new(204, Body::Empty)
    }

    /// Jira's error shape: `{"errorMessages":[…],"errors":{field:msg}}`.
    fn errors(status: u16, messages: &[&str], errors: &BTreeMap<String, String>) -> Self {
        Answer::json(status, json!({"errorMessages": messages, "errors": errors}))
    }

    fn messages(status: u16, messages: &[&str]) -> Self {
        Answer::errors(status, messages, &BTreeMap::new())
    }

    fn field_errors(errors: &BTreeMap<String, String>) -> Self {
        Answer::errors(400, &[], errors)
    }

    fn issue_not_found() -> Self {
        Answer::messages(404, &[NO_ISSUE])
    }

    fn path_not_found() -> Self {
        Answer::text(404, "Not Found")
    }

    fn with_header(mut self, name: &'static str, value: String) -> Self {
        if let Answer::Reply { headers, .. } = &mut self {
            headers.push((name, value));
        }
        self
    }

    fn status(&self) -> Option<u16> {
        match self {
            Answer::Reply { status, .. } => Some(*status),
            Answer::Hang => None,
        }
    }

    async fn into_response(self) -> Response {
        let Answer::Reply {
            status,
            headers,
            body,
        } = self
        else {
            return std::future::pending().await;
        };
        let status = StatusCode::from_u16(status).unwrap();
        let mut response = match body {
            Body::Empty => status.into_response(),
            Body::Json(value) => (status, axum::Json(value)).into_response(),
            Body::Text(text) => (status, text).into_response(),
        };
        for (name, value) in headers {
            let value = HeaderValue::from_str(&value).unwrap();
            response.headers_mut().insert(name, value);
        }
        response
    }
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Jira's timestamp format, e.g. `2026-11-21T12:00:00.000+0000`.
fn jira_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

fn rate_limited(at: DateTime<Utc>, retry_after: Option<u64>, reset_after: Option<u64>) -> Answer {
    let mut answer = Answer::messages(429, &["Rate limit exceeded."])
        .with_header("x-ratelimit-limit", "100".to_owned())
        .with_header("x-ratelimit-remaining", "0".to_owned());
    if let Some(seconds) = retry_after {
        answer = answer.with_header("retry-after", seconds.to_string());
    }
    if let Some(seconds) = reset_after {
        let reset = at + chrono::Duration::seconds(i64::try_from(seconds).unwrap());
        answer = answer.with_header("x-ratelimit-reset", iso(reset));
    }
    answer
}

fn fault_answer(fault: Fault, at: DateTime<Utc>) -> Answer {
    match fault {
        Fault::RateLimited {
            retry_after,
            reset_after,
        } => rate_limited(at, retry_after, reset_after),
        Fault::Unavailable { retry_after } => {
            let answer = Answer::text(503, "Service Unavailable");
            match retry_after {
                Some(seconds) => answer.with_header("retry-after", seconds.to_string()),
                None => answer,
            }
        }
        Fault::ServerError => Answer::messages(500, &["Internal server error"]),
        Fault::Hang => Answer::Hang,
        Fault::Quota { .. } => unreachable!("quota headers decorate a normal answer"),
    }
}

fn with_quota(answer: Answer, limit: u32, remaining: u32) -> Answer {
    let answer = answer
        .with_header("x-ratelimit-limit", limit.to_string())
        .with_header("x-ratelimit-remaining", remaining.to_string());
    if u64::from(remaining) * 5 < u64::from(limit) {
        answer.with_header("x-ratelimit-nearlimit", "true".to_owned())
    } else {
        answer
    }
}

/// A POST/PUT body: must be declared JSON (else 415) and be a JSON object (else 400).
fn json_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Answer> {
    let declared_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with("application/json"));
    if !declared_json {
        return Err(Answer::text(415, "Unsupported Media Type"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Answer::messages(
            400,
            &["The request body must be a JSON object."],
        )),
        Err(error) => Err(Answer::messages(
            400,
            &[&format!(
                "Unexpected character in the request body: {error}"
            )],
        )),
    }
}

fn query_params(uri: &Uri) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(params)| params)
        .unwrap_or_default()
}

/// The API flavour of a request: v3 speaks Atlassian Document Format, v2 strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V2,
    V3,
}

impl Api {
    fn version(self) -> &'static str {
        match self {
            Api::V2 => "2",
            Api::V3 => "3",
        }
    }
}

/// A description or comment body as the flavour shows it: v3 shows strings as ADF, v2 shows ADF as text.
fn render_text(value: &Value, api: Api) -> Value {
    match (api, value) {
        (_, Value::Null) => Value::Null,
        (Api::V3, Value::String(text)) => adf_from_text(text),
        (Api::V2, Value::Object(_)) => Value::String(plain_text(value)),
        (_, other) => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------------------------

impl Inner {
    fn answer(
        &mut self,
        at: DateTime<Utc>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Answer {
        let quota = match self.take_fault(method, uri.path()) {
            Some(Fault::Quota { limit, remaining }) => Some((limit, remaining)),
            Some(fault) => return fault_answer(fault, at),
            None => None,
        };
        if let Some(answer) = self.check_gap(at) {
            return answer;
        }
        let answer = self.route(at, method, uri, headers, body);
        match quota {
            Some((limit, remaining)) => with_quota(answer, limit, remaining),
            None => answer,
        }
    }

    fn take_fault(&mut self, method: &Method, path: &str) -> Option<Fault> {
        let index = self
            .faults
            .iter()
            .position(|script| script.pattern.matches(method, path))?;
        let script = &mut self.faults[index];
        script.left -= 1;
        let fault = script.fault.clone();
        if script.left == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }

    fn check_gap(&mut self, at: DateTime<Utc>) -> Option<Answer> {
        if let Err(wait) = self.min_gap.admit(at) {
            let seconds = u64::try_from((wait.num_milliseconds() + 999) / 1000)
                .unwrap()
                .max(1);
            return Some(rate_limited(at, Some(seconds), Some(seconds)));
        }
        None
    }

    fn route(
        &mut self,
        at: DateTime<Utc>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Answer {
        let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        let cloud = self.config.mode == JiraMode::Cloud;
        let (api, rest) = match segments.as_slice() {
            ["rest", "api", "3", rest @ ..] if cloud => (Api::V3, rest),
            ["rest", "api", "2", rest @ ..] => (Api::V2, rest),
            _ => return Answer::path_not_found(),
        };
        if !self.authorized(headers) {
            return self.unauthorized();
        }
        let query = query_params(uri);
        match (method.as_str(), rest) {
            ("POST", ["issue"]) => self.with_json(headers, body, |jira, body| {
                jira.create_issue(at, api, &body)
            }),
            ("GET", ["issue", key]) => self.get_issue(api, key, &query),
            ("PUT", ["issue", key]) => self.with_json(headers, body, |jira, body| {
                jira.update_issue(at, api, key, &body)
            }),
            ("GET", ["issue", key, "comment"]) => self.list_comments(api, key),
            ("POST", ["issue", key, "comment"]) => self.with_json(headers, body, |jira, body| {
                jira.add_comment(at, api, key, &body)
            }),
            ("GET", ["issue", key, "transitions"]) => self.list_transitions(key),
            ("POST", ["issue", key, "transitions"]) => {
                self.with_json(headers, body, |jira, body| {
                    jira.transition(at, api, key, &body)
                })
            }
            ("GET" | "POST", ["search"]) if cloud => Answer::messages(410, &[SEARCH_REMOVED]),
            ("GET", ["search"]) => match SearchParams::from_query(&query) {
                Ok(params) => self.search_startat(api, params),
                Err(answer) => answer,
            },
            ("POST", ["search"]) => self.with_json(headers, body, |jira, body| {
                match SearchParams::from_body(&body) {
                    Ok(params) => jira.search_startat(api, params),
                    Err(answer) => answer,
                }
            }),
            ("GET", ["search", "jql"]) if cloud => match SearchParams::from_query(&query) {
                Ok(params) => self.search_tokens(api, params),
                Err(answer) => answer,
            },
            ("POST", ["search", "jql"]) if cloud => self.with_json(headers, body, |jira, body| {
                match SearchParams::from_body(&body) {
                    Ok(params) => jira.search_tokens(api, params),
                    Err(answer) => answer,
                }
            }),
            _ => Answer::path_not_found(),
        }
    }

    fn with_json(
        &mut self,
        headers: &HeaderMap,
        body: &Bytes,
        then: impl FnOnce(&mut Self, Map<String, Value>) -> Answer,
    ) -> Answer {
        match json_object(headers, body) {
            Ok(object) => then(self, object),
            Err(answer) => answer,
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| self.config.credentials.accepts(value))
    }

    /// Cloud answers JSON, Data Center plain text (PEER-APIS: either shape may come).
    fn unauthorized(&self) -> Answer {
        match self.config.mode {
            JiraMode::Cloud => {
                Answer::json(401, json!({"message": UNAUTHENTICATED, "status-code": 401}))
            }
            JiraMode::DataCenter => Answer::text(401, UNAUTHENTICATED),
        }
    }

    fn find(&self, key_or_id: &str) -> Option<&Issue> {
        self.issues
            .iter()
            .find(|issue| issue.key == key_or_id || issue.id == key_or_id)
    }

    fn find_mut(&mut self, key_or_id: &str) -> Option<&mut Issue> {
        self.issues
            .iter_mut()
            .find(|issue| issue.key == key_or_id || issue.id == key_or_id)
    }

    fn issue_url(&self, api: Api, id: &str) -> String {
        format!("{}/rest/api/{}/issue/{id}", self.base, api.version())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Fields: validation and rendering
// ---------------------------------------------------------------------------------------------------------------

/// Validated field values from a create or edit.
#[derive(Default)]
struct FieldChanges {
    project: Option<String>,
    issue_type: Option<String>,
    summary: Option<String>,
    description: Option<Value>,
    priority: Option<String>,
    labels: Option<Vec<String>>,
    components: Option<Vec<String>>,
    custom: BTreeMap<String, Value>,
}

impl FieldChanges {
    fn apply(self, issue: &mut Issue) {
        if let Some(issue_type) = self.issue_type {
            issue.issue_type = issue_type;
        }
        if let Some(summary) = self.summary {
            issue.summary = summary;
        }
        if let Some(description) = self.description {
            issue.description = description;
        }
        if let Some(priority) = self.priority {
            issue.priority = priority;
        }
        if let Some(labels) = self.labels {
            issue.labels = labels;
        }
        if let Some(components) = self.components {
            issue.components = components;
        }
        issue.custom_fields.extend(self.custom);
    }
}

/// `update` operations of an edit or transition.
#[derive(Default)]
struct UpdateOps {
    labels: Vec<LabelOp>,
    comments: Vec<Value>,
}

enum LabelOp {
    Add(String),
    Remove(String),
    Set(Vec<String>),
}

impl UpdateOps {
    fn apply_labels(&self, issue: &mut Issue) {
        for op in &self.labels {
            match op {
                LabelOp::Add(label) if !issue.has_label(label) => issue.labels.push(label.clone()),
                LabelOp::Add(_) => {}
                LabelOp::Remove(label) => issue.labels.retain(|l| l != label),
                LabelOp::Set(labels) => issue.labels.clone_from(labels),
            }
        }
    }
}

fn cannot_set(field: &str) -> String {
    format!("Field '{field}' cannot be set. It is not on the appropriate screen, or unknown.")
}

fn is_custom_field(name: &str) -> bool {
    name.strip_prefix("customfield_")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// The `name` of `{"name": …}`.
/// The entry of `names` that `value` names (by its `name`, ignoring case).
fn known<'a>(names: &'a [String], value: &Value) -> Option<&'a String> {
    let name = name_of(value)?;
    names.iter().find(|known| known.eq_ignore_ascii_case(name))
}

fn name_of(value: &Value) -> Option<&str> {
    value.get("name").and_then(Value::as_str)
}

fn parse_summary(value: &Value) -> Result<String, String> {
    let text = match value {
        Value::Null => "",
        Value::String(text) => text.as_str(),
        _ => return Err(NOT_A_STRING.to_owned()),
    };
    if text.trim().is_empty() {
        Err(NO_SUMMARY.to_owned())
    } else if text.contains(['\n', '\r']) {
        Err("The summary is invalid because it contains newline characters.".to_owned())
    } else if text.chars().count() > 255 {
        Err("Summary must be less than 255 characters.".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

fn parse_label(value: &Value) -> Result<String, String> {
    let Some(label) = value.as_str() else {
        return Err("Labels must be strings.".to_owned());
    };
    if label.is_empty() {
        Err("A label cannot be empty.".to_owned())
    } else if label.chars().any(char::is_whitespace) {
        Err(format!(
            "The label '{label}' contains spaces which is invalid."
        ))
    } else if label.chars().count() > 255 {
        Err(format!(
            "The label '{label}' exceeds the maximum length for a single label of 255 characters."
        ))
    } else {
        Ok(label.to_owned())
    }
}

fn parse_labels(value: &Value) -> Result<Vec<String>, String> {
    let Some(items) = value.as_array() else {
        return Err("data was not an array".to_owned());
    };
    let mut labels: Vec<String> = Vec::new();
    for item in items {
        let label = parse_label(item)?;
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    Ok(labels)
}

fn parse_components(value: &Value) -> Result<Vec<String>, String> {
    let Some(items) = value.as_array() else {
        return Err("data was not an array".to_owned());
    };
    items
        .iter()
        .map(|item| {
            name_of(item)
                .map(str::to_owned)
                .ok_or_else(|| "Components must be given by name.".to_owned())
        })
        .collect()
}

/// A description: v3 takes an ADF document, v2 a string; null clears it.
fn parse_rich_text(value: &Value, api: Api) -> Result<Value, String> {
    match (api, value) {
        (_, Value::Null) => Ok(Value::Null),
        (Api::V3, document) if is_adf_document(document) => Ok(document.clone()),
        (Api::V3, _) => Err(NOT_ADF.to_owned()),
        (Api::V2, Value::String(text)) => Ok(Value::String(text.clone())),
        (Api::V2, _) => Err(NOT_A_STRING.to_owned()),
    }
}

fn parse_comment_body(body: Option<&Value>, api: Api) -> Result<Value, String> {
    let body = body.unwrap_or(&Value::Null);
    if body.is_null() {
        return Err(EMPTY_COMMENT.to_owned());
    }
    let body = parse_rich_text(body, api)?;
    if plain_text(&body).trim().is_empty() {
        return Err(EMPTY_COMMENT.to_owned());
    }
    Ok(body)
}

fn parse_label_op(op: &Value) -> Result<LabelOp, String> {
    let Some((verb, argument)) = op
        .as_object()
        .filter(|op| op.len() == 1)
        .and_then(|op| op.iter().next())
    else {
        return Err("Each label operation must be one of add, remove or set.".to_owned());
    };
    match verb.as_str() {
        "add" => parse_label(argument).map(LabelOp::Add),
        "remove" => parse_label(argument).map(LabelOp::Remove),
        "set" => parse_labels(argument).map(LabelOp::Set),
        other => Err(format!("Operation '{other}' is not supported for labels.")),
    }
}

fn parse_update(
    update: &Map<String, Value>,
    api: Api,
    errors: &mut BTreeMap<String, String>,
) -> UpdateOps {
    let mut ops = UpdateOps::default();
    for (field, list) in update {
        let Some(list) = list.as_array() else {
            errors.insert(field.clone(), "data was not an array".to_owned());
            continue;
        };
        for op in list {
            let parsed = match field.as_str() {
                "labels" => parse_label_op(op).map(|op| ops.labels.push(op)),
                "comment" => match op.get("add") {
                    Some(add) => {
                        parse_comment_body(add.get("body"), api).map(|body| ops.comments.push(body))
                    }
                    None => Err("Only 'add' is supported for comments.".to_owned()),
                },
                other => Err(cannot_set(other)),
            };
            if let Err(message) = parsed {
                errors.insert(field.clone(), message);
            }
        }
    }
    ops
}

/// `fields` of a body: an object, or absent (empty).
/// The operations of a body's `update` (none when it has none); errors in them go into `errors`.
fn update_of(
    body: &Map<String, Value>,
    api: Api,
    errors: &mut BTreeMap<String, String>,
) -> Result<UpdateOps, Answer> {
    match body.get("update") {
        None | Some(Value::Null) => Ok(UpdateOps::default()),
        Some(Value::Object(update)) => Ok(parse_update(update, api, errors)),
        Some(_) => Err(Answer::messages(400, &["'update' must be an object."])),
    }
}

fn fields_of(body: &Map<String, Value>) -> Result<Map<String, Value>, Answer> {
    match body.get("fields") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(fields)) => Ok(fields.clone()),
        Some(_) => Err(Answer::messages(400, &["'fields' must be an object."])),
    }
}

/// Which fields a read shows.
enum FieldSet {
    /// Only the issue id (Cloud's enhanced search when no fields are asked for).
    IdOnly,
    All,
    Only(Vec<String>),
}

impl FieldSet {
    fn requested(requested: Option<Vec<String>>, default: FieldSet) -> FieldSet {
        let Some(names) = requested else {
            return default;
        };
        if names.iter().any(|n| n == "*all" || n == "*navigable") {
            return FieldSet::All;
        }
        let names = names
            .into_iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty() && !n.starts_with('-'));
        FieldSet::Only(names.collect())
    }
}

const STANDARD_FIELDS: [&str; 13] = [
    "summary",
    "description",
    "priority",
    "labels",
    "components",
    "issuetype",
    "project",
    "status",
    "resolution",
    "resolutiondate",
    "created",
    "updated",
    "comment",
];

fn split_names(list: &str) -> Vec<String> {
    list.split(',').map(|name| name.trim().to_owned()).collect()
}

impl Inner {
    fn parse_fields(
        &self,
        fields: &Map<String, Value>,
        api: Api,
        creating: bool,
    ) -> Result<FieldChanges, BTreeMap<String, String>> {
        let mut changes = FieldChanges::default();
        let mut errors = BTreeMap::new();
        for (name, value) in fields {
            let parsed = match name.as_str() {
                "project" if creating => {
                    let key = value.get("key").and_then(Value::as_str);
                    match key.filter(|key| self.config.projects.iter().any(|p| p == key)) {
                        Some(key) => {
                            changes.project = Some(key.to_owned());
                            Ok(())
                        }
                        None => Err("valid project is required".to_owned()),
                    }
                }
                "issuetype" => known(&self.config.issue_types, value)
                    .map(|issue_type| changes.issue_type = Some(issue_type.clone()))
                    .ok_or_else(|| "valid issue type is required".to_owned()),
                "summary" => parse_summary(value).map(|s| changes.summary = Some(s)),
                "description" => parse_rich_text(value, api).map(|d| changes.description = Some(d)),
                "priority" => known(&self.config.priorities, value)
                    .map(|priority| changes.priority = Some(priority.clone()))
                    .ok_or_else(|| "The priority selected is invalid.".to_owned()),
                "labels" => parse_labels(value).map(|l| changes.labels = Some(l)),
                "components" => parse_components(value).map(|c| changes.components = Some(c)),
                custom if is_custom_field(custom) => {
                    changes.custom.insert(custom.to_owned(), value.clone());
                    Ok(())
                }
                other => Err(cannot_set(other)),
            };
            if let Err(message) = parsed {
                errors.insert(name.clone(), message);
            }
        }
        if creating {
            let required = [
                ("project", "project is required"),
                ("issuetype", "issue type is required"),
                ("summary", NO_SUMMARY),
            ];
            for (field, message) in required {
                if !fields.contains_key(field) {
                    errors.insert(field.to_owned(), message.to_owned());
                }
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }

    fn issue_json(&self, issue: &Issue, api: Api, fields: &FieldSet) -> Value {
        let names: Vec<&str> = match fields {
            FieldSet::IdOnly => return json!({"id": issue.id}),
            FieldSet::All => {
                let custom = issue.custom_fields.keys().map(String::as_str);
                STANDARD_FIELDS.into_iter().chain(custom).collect()
            }
            FieldSet::Only(names) => names.iter().map(String::as_str).collect(),
        };
        let mut shown = Map::new();
        for name in names {
            if let Some(value) = self.field_value(issue, api, name) {
                shown.insert(name.to_owned(), value);
            }
        }
        json!({
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id,
            "self": self.issue_url(api, &issue.id),
            "key": issue.key,
            "fields": shown,
        })
    }

    fn field_value(&self, issue: &Issue, api: Api, name: &str) -> Option<Value> {
        let base = &self.base;
        let value = match name {
            "summary" => json!(issue.summary),
            "description" => render_text(&issue.description, api),
            "priority" => {
                let position = self
                    .config
                    .priorities
                    .iter()
                    .position(|p| *p == issue.priority);
                let id = position.map_or(0, |index| index + 1).to_string();
                json!({"self": format!("{base}/rest/api/2/priority/{id}"), "name": issue.priority, "id": id})
            }
            "labels" => json!(issue.labels),
            "components" => json!(
                issue
                    .components
                    .iter()
                    .map(|name| json!({"name": name}))
                    .collect::<Vec<_>>()
            ),
            "issuetype" => json!({"name": issue.issue_type, "subtask": false}),
            "project" => json!({"key": issue.project, "name": issue.project}),
            "status" => issue.status.json(base),
            "resolution" => match &issue.resolution {
                Some(name) => json!({"name": name}),
                None => Value::Null,
            },
            "resolutiondate" => json!(issue.resolved.map(jira_time)),
            "created" => json!(jira_time(issue.created)),
            "updated" => json!(jira_time(issue.updated)),
            "comment" => {
                let comments: Vec<Value> = issue
                    .comments
                    .iter()
                    .map(|comment| self.comment_json(issue, comment, api))
                    .collect();
                json!({"comments": comments, "maxResults": comments.len(), "total": comments.len(), "startAt": 0})
            }
            custom if is_custom_field(custom) => issue
                .custom_fields
                .get(custom)
                .cloned()
                .unwrap_or(Value::Null),
            _ => return None,
        };
        Some(value)
    }

    fn comment_json(&self, issue: &Issue, comment: &Comment, api: Api) -> Value {
        json!({
            "self": format!("{}/comment/{}", self.issue_url(api, &issue.id), comment.id),
            "id": comment.id,
            "author": {"displayName": "herald"},
            "body": render_text(&comment.body, api),
            "created": jira_time(comment.created),
            "updated": jira_time(comment.created),
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Issues, comments and transitions
// ---------------------------------------------------------------------------------------------------------------

/// A workflow transition.
struct Transition {
    id: &'static str,
    name: &'static str,
    to: Status,
}

const TRANSITIONS: [Transition; 4] = [
    Transition {
        id: "11",
        name: "To Do",
        to: Status::ToDo,
    },
    Transition {
        id: "21",
        name: "In Progress",
        to: Status::InProgress,
    },
    Transition {
        id: "31",
        name: "Done",
        to: Status::Done,
    },
    Transition {
        id: "41",
        name: "Reopen",
        to: Status::ToDo,
    },
];

/// Transitions offered from a status: To Do and In Progress move between each other and to Done; Done only
/// reopens.
fn offered(from: Status) -> impl Iterator<Item = &'static Transition> {
    let ids: &[&str] = match from {
        Status::ToDo => &["21", "31"],
        Status::InProgress => &["11", "31"],
        Status::Done => &["41"],
    };
    TRANSITIONS.iter().filter(move |t| ids.contains(&t.id))
}

fn set_status(
    issue: &mut Issue,
    to: Status,
    resolution: Option<String>,
    via: &str,
    at: DateTime<Utc>,
) {
    let from = issue.status;
    issue.status = to;
    if to == Status::Done {
        issue.resolution = Some(resolution.unwrap_or_else(|| "Done".to_owned()));
        issue.resolved = Some(at);
    } else {
        issue.resolution = None;
        issue.resolved = None;
    }
    issue.history.push(StatusChange {
        at,
        from,
        to,
        via: via.to_owned(),
        resolution: issue.resolution.clone(),
    });
    issue.updated = at;
}

impl Inner {
    /// Adds an issue; returns (id, key).
    fn insert_issue(
        &mut self,
        at: DateTime<Utc>,
        changes: FieldChanges,
        lagging: bool,
    ) -> (String, String) {
        let project = changes.project.clone().unwrap_or_default();
        let number = self.next_number.entry(project.clone()).or_insert(0);
        *number += 1;
        let key = format!("{project}-{number}");
        let id = self.next_issue_id.to_string();
        self.next_issue_id += 1;
        let mut issue = Issue {
            id: id.clone(),
            key: key.clone(),
            project,
            issue_type: String::new(),
            summary: String::new(),
            description: Value::Null,
            priority: self.config.default_priority(),
            labels: Vec::new(),
            components: Vec::new(),
            custom_fields: BTreeMap::new(),
            status: Status::ToDo,
            resolution: None,
            resolved: None,
            comments: Vec::new(),
            history: Vec::new(),
            created: at,
            updated: at,
        };
        changes.apply(&mut issue);
        if lagging && self.config.search_lag > 0 {
            self.hidden_from_search
                .insert(key.clone(), self.config.search_lag);
        }
        self.issues.push(issue);
        (id, key)
    }

    fn new_comments(&mut self, bodies: Vec<Value>, at: DateTime<Utc>) -> Vec<Comment> {
        let comments = bodies.into_iter().map(|body| {
            let id = self.next_comment_id.to_string();
            self.next_comment_id += 1;
            Comment {
                id,
                body,
                created: at,
            }
        });
        comments.collect()
    }

    fn create_issue(&mut self, at: DateTime<Utc>, api: Api, body: &Map<String, Value>) -> Answer {
        let fields = match fields_of(body) {
            Ok(fields) => fields,
            Err(answer) => return answer,
        };
        let changes = match self.parse_fields(&fields, api, true) {
            Ok(changes) => changes,
            Err(errors) => return Answer::field_errors(&errors),
        };
        let (id, key) = self.insert_issue(at, changes, true);
        Answer::json(
            201,
            json!({"id": id, "key": key, "self": self.issue_url(api, &id)}),
        )
    }

    fn get_issue(&self, api: Api, key: &str, query: &HashMap<String, String>) -> Answer {
        let Some(issue) = self.find(key) else {
            return Answer::issue_not_found();
        };
        let requested = query.get("fields").map(|list| split_names(list));
        let fields = FieldSet::requested(requested, FieldSet::All);
        Answer::json(200, self.issue_json(issue, api, &fields))
    }

    fn update_issue(
        &mut self,
        at: DateTime<Utc>,
        api: Api,
        key: &str,
        body: &Map<String, Value>,
    ) -> Answer {
        if self.find(key).is_none() {
            return Answer::issue_not_found();
        }
        let fields = match fields_of(body) {
            Ok(fields) => fields,
            Err(answer) => return answer,
        };
        let mut errors = BTreeMap::new();
        let changes = self
            .parse_fields(&fields, api, false)
            .unwrap_or_else(|field_errors| {
                errors.extend(field_errors);
                FieldChanges::default()
            });
        let ops = match update_of(body, api, &mut errors) {
            Ok(ops) => ops,
            Err(answer) => return answer,
        };
        if !errors.is_empty() {
            return Answer::field_errors(&errors);
        }
        let comments = self.new_comments(ops.comments.clone(), at);
        let Some(issue) = self.find_mut(key) else {
            return Answer::issue_not_found();
        };
        changes.apply(issue);
        ops.apply_labels(issue);
        issue.comments.extend(comments);
        issue.updated = at;
        Answer::no_content()
    }

    fn list_comments(&self, api: Api, key: &str) -> Answer {
        let Some(issue) = self.find(key) else {
            return Answer::issue_not_found();
        };
        let comments: Vec<Value> = issue
            .comments
            .iter()
            .map(|comment| self.comment_json(issue, comment, api))
            .collect();
        Answer::json(
            200,
            json!({"startAt": 0, "maxResults": comments.len(), "total": comments.len(), "comments": comments}),
        )
    }

    fn add_comment(
        &mut self,
        at: DateTime<Utc>,
        api: Api,
        key: &str,
        body: &Map<String, Value>,
    ) -> Answer {
        if self.find(key).is_none() {
            return Answer::issue_not_found();
        }
        let body = match parse_comment_body(body.get("body"), api) {
            Ok(body) => body,
            Err(message) => {
                return Answer::field_errors(&BTreeMap::from([("comment".to_owned(), message)]));
            }
        };
        let comment = self.new_comments(vec![body], at).remove(0);
        let Some(issue) = self.find_mut(key) else {
            return Answer::issue_not_found();
        };
        issue.comments.push(comment.clone());
        issue.updated = at;
        let Some(issue) = self.find(key) else {
            return Answer::issue_not_found();
        };
        Answer::json(201, self.comment_json(issue, &comment, api))
    }

    fn list_transitions(&self, key: &str) -> Answer {
        let Some(issue) = self.find(key) else {
            return Answer::issue_not_found();
        };
        let transitions: Vec<Value> = offered(issue.status)
            .map(|t| {
                json!({
                    "id": t.id,
                    "name": t.name,
                    "hasScreen": false,
                    "isGlobal": false,
                    "isInitial": false,
                    "isAvailable": true,
                    "isConditional": false,
                    "to": t.to.json(&self.base),
                })
            })
            .collect();
        Answer::json(
            200,
            json!({"expand": "transitions", "transitions": transitions}),
        )
    }

    fn transition(
        &mut self,
        at: DateTime<Utc>,
        api: Api,
        key: &str,
        body: &Map<String, Value>,
    ) -> Answer {
        let Some(from) = self.find(key).map(|issue| issue.status) else {
            return Answer::issue_not_found();
        };
        let id = match body.get("transition").and_then(|t| t.get("id")) {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => return Answer::messages(400, &["Missing 'transition' identifier"]),
        };
        let Some(transition) = offered(from).find(|t| t.id == id) else {
            return Answer::messages(
                400,
                &[&format!(
                    "Transition id '{id}' is not valid for this issue."
                )],
            );
        };
        let fields = match fields_of(body) {
            Ok(fields) => fields,
            Err(answer) => return answer,
        };
        let mut errors = BTreeMap::new();
        let mut resolution = None;
        for (name, value) in &fields {
            if name == "resolution" && transition.to == Status::Done {
                match known(&self.config.resolutions, value) {
                    Some(known) => resolution = Some(known.clone()),
                    None => {
                        let given = name_of(value).unwrap_or_default();
                        errors.insert(name.clone(), format!("Resolution '{given}' is not valid."));
                    }
                }
            } else {
                errors.insert(name.clone(), cannot_set(name));
            }
        }
        let ops = match update_of(body, api, &mut errors) {
            Ok(ops) => ops,
            Err(answer) => return answer,
        };
        if !errors.is_empty() {
            return Answer::field_errors(&errors);
        }
        let comments = self.new_comments(ops.comments.clone(), at);
        let Some(issue) = self.find_mut(key) else {
            return Answer::issue_not_found();
        };
        set_status(issue, transition.to, resolution, transition.name, at);
        ops.apply_labels(issue);
        issue.comments.extend(comments);
        Answer::no_content()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------------------------

/// A search request, from a POST body or GET query parameters.
struct SearchParams {
    jql: String,
    fields: Option<Vec<String>>,
    max_results: Option<u64>,
    start_at: u64,
    next_page_token: Option<String>,
}

fn bad_search(message: &str) -> Answer {
    Answer::messages(400, &[message])
}

impl SearchParams {
    fn from_body(body: &Map<String, Value>) -> Result<Self, Answer> {
        let text = |name: &str| match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(bad_search(&format!("'{name}' must be a string."))),
        };
        let number = |name: &str| match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad_search(&format!("'{name}' must be a non-negative integer."))),
        };
        let fields = match body.get("fields") {
            None | Some(Value::Null) => None,
            Some(Value::String(list)) => Some(split_names(list)),
            Some(Value::Array(items)) => {
                let names = items.iter().map(|item| item.as_str().map(str::to_owned));
                let names: Option<Vec<String>> = names.collect();
                Some(names.ok_or_else(|| bad_search("'fields' must be a list of strings."))?)
            }
            Some(_) => return Err(bad_search("'fields' must be a list of strings.")),
        };
        Ok(SearchParams {
            jql: text("jql")?.unwrap_or_default(),
            fields,
            max_results: number("maxResults")?,
            start_at: number("startAt")?.unwrap_or(0),
            next_page_token: text("nextPageToken")?,
        })
    }

    fn from_query(query: &HashMap<String, String>) -> Result<Self, Answer> {
        let number = |name: &str| match query.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .map(Some)
                .map_err(|_| bad_search(&format!("'{name}' must be a non-negative integer."))),
        };
        Ok(SearchParams {
            jql: query.get("jql").cloned().unwrap_or_default(),
            fields: query.get("fields").map(|list| split_names(list)),
            max_results: number("maxResults")?,
            start_at: number("startAt")?.unwrap_or(0),
            next_page_token: query.get("nextPageToken").cloned(),
        })
    }
}

fn page_token(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset={offset}"))
}

fn page_offset(token: &str) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    text.strip_prefix("offset=")?.parse().ok()
}

impl Inner {
    /// Runs a JQL query over what search can see, then lets lagging issues come one search closer to visible.
    fn search(&mut self, text: &str, bounded_only: bool) -> Result<Vec<Issue>, Answer> {
        let query = jql::parse(text).map_err(|message| bad_search(&message))?;
        query
            .validate(&self.config)
            .map_err(|message| bad_search(&message))?;
        if bounded_only && !query.is_bounded() {
            return Err(bad_search(UNBOUNDED));
        }
        let visible = self.issues.iter().filter(|issue| {
            !self.hidden_from_search.contains_key(&issue.key) && query.matches(issue)
        });
        let mut found: Vec<Issue> = visible.cloned().collect();
        query.sort(&mut found);
        self.hidden_from_search.retain(|_, left| {
            *left -= 1;
            *left > 0
        });
        Ok(found)
    }

    /// Cloud's enhanced search: pages by `nextPageToken`, says `isLast`, never `total`; ids only unless fields are
    /// asked for; 1–100 results per page (default 50).
    fn search_tokens(&mut self, api: Api, params: SearchParams) -> Answer {
        let offset = match params.next_page_token.as_deref().map(page_offset) {
            None => 0,
            Some(Some(offset)) => offset,
            Some(None) => return bad_search("The provided next page token is invalid or expired."),
        };
        let page_size = usize::try_from(params.max_results.unwrap_or(50).clamp(1, 100)).unwrap();
        let found = match self.search(&params.jql, true) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let fields = FieldSet::requested(params.fields, FieldSet::IdOnly);
        let page: Vec<Value> = found
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|issue| self.issue_json(issue, api, &fields))
            .collect();
        let is_last = offset + page.len() >= found.len();
        let mut out = json!({"issues": page, "isLast": is_last});
        if !is_last {
            out["nextPageToken"] = json!(page_token(offset + page_size));
        }
        Answer::json(200, out)
    }

    /// Data Center's search: `startAt`, `maxResults` (default 50, at most 1000), `total`; all fields by default.
    fn search_startat(&mut self, api: Api, params: SearchParams) -> Answer {
        let page_size = usize::try_from(params.max_results.unwrap_or(50).min(1000)).unwrap();
        let start = usize::try_from(params.start_at).unwrap();
        let found = match self.search(&params.jql, false) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let fields = FieldSet::requested(params.fields, FieldSet::All);
        let page: Vec<Value> = found
            .iter()
            .skip(start)
            .take(page_size)
            .map(|issue| self.issue_json(issue, api, &fields))
            .collect();
        Answer::json(
            200,
            json!({
                "expand": "schema,names",
                "startAt": start,
                "maxResults": page_size,
                "total": found.len(),
                "issues": page,
            }),
        )
    }
}

/// The JQL herald sends, and a little more: clauses on project, labels, status, statusCategory, resolution and
/// key with `=`, `!=`, `in`, `not in`, `is [not] empty`; AND, OR, NOT and parentheses; `ORDER BY created|updated|
/// key [ASC|DESC]`. Unquoted reserved characters (such as `{`) and anything else are errors, as in Jira.
mod jql {
    use std::cmp::Ordering;

    use super::{Issue, JiraConfig, Status};

    const PREFIX: &str = "Error in the JQL Query: ";

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Token {
        /// An unquoted word (field name, keyword or value).
        Word(String),
        /// A quoted string.
        Text(String),
        Open,
        Close,
        Comma,
        Operator(&'static str),
    }

    impl Token {
        fn show(&self) -> &str {
            match self {
                Token::Word(text) | Token::Text(text) => text,
                Token::Open => "(",
                Token::Close => ")",
                Token::Comma => ",",
                Token::Operator(op) => op,
            }
        }

        fn is_keyword(&self, keyword: &str) -> bool {
            matches!(self, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
        }
    }

    fn is_word_char(c: char) -> bool {
        c.is_alphanumeric() || matches!(c, '_' | '.' | '-')
    }

    /// Tokens with their 1-based character positions.
    fn lex(text: &str) -> Result<Vec<(Token, usize)>, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let at = i + 1;
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let (token, width) = match c {
                c if c.is_whitespace() => {
                    i += 1;
                    continue;
                }
                '(' => (Token::Open, 1),
                ')' => (Token::Close, 1),
                ',' => (Token::Comma, 1),
                '=' => (Token::Operator("="), 1),
                '~' => (Token::Operator("~"), 1),
                '!' if next == Some('=') => (Token::Operator("!="), 2),
                '!' if next == Some('~') => (Token::Operator("!~"), 2),
                '<' if next == Some('=') => (Token::Operator("<="), 2),
                '>' if next == Some('=') => (Token::Operator(">="), 2),
                '<' => (Token::Operator("<"), 1),
                '>' => (Token::Operator(">"), 1),
                '"' | '\'' => {
                    let (text, width) = quoted(&chars[i..], at)?;
                    (Token::Text(text), width)
                }
                c if is_word_char(c) => {
                    let width = chars[i..].iter().take_while(|&&c| is_word_char(c)).count();
                    (Token::Word(chars[i..i + width].iter().collect()), width)
                }
                reserved => {
                    return Err(format!(
                        "{PREFIX}The character '{reserved}' is a reserved JQL character. You must enclose it in a \
                         string or use the escape '\\u{:04x}' instead. (line 1, character {at})",
                        u32::from(reserved)
                    ));
                }
            };
            tokens.push((token, at));
            i += width;
        }
        Ok(tokens)
    }

    /// A quoted string starting at `chars[0]`; returns its text and width including the quotes.
    fn quoted(chars: &[char], at: usize) -> Result<(String, usize), String> {
        let quote = chars[0];
        let mut text = String::new();
        let mut i = 1;
        while let Some(&c) = chars.get(i) {
            match c {
                c if c == quote => return Ok((text, i + 1)),
                '\\' => {
                    let escaped = chars.get(i + 1).copied();
                    match escaped {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some('u') => {
                            let hex: String = chars.iter().skip(i + 2).take(4).collect();
                            let decoded =
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                            let Some(decoded) = decoded.filter(|_| hex.len() == 4) else {
                                return Err(format!(
                                    "{PREFIX}Illegal unicode escape '\\u{hex}'. (line 1, character {})",
                                    at + i
                                ));
                            };
                            text.push(decoded);
                            i += 4;
                        }
                        Some(other) => text.push(other),
                        None => break,
                    }
                    i += 2;
                }
                c => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        Err(format!(
            "{PREFIX}Missing closing quote {quote} for the string starting at character {at}. (line 1, \
             character {at})"
        ))
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Field {
        Project,
        Labels,
        Status,
        StatusCategory,
        Resolution,
        Key,
    }

    impl Field {
        fn named(name: &str) -> Option<Field> {
            let field = match name.to_ascii_lowercase().as_str() {
                "project" => Field::Project,
                "labels" => Field::Labels,
                "status" => Field::Status,
                "statuscategory" => Field::StatusCategory,
                "resolution" => Field::Resolution,
                "key" | "issuekey" | "issue" => Field::Key,
                _ => return None,
            };
            Some(field)
        }

        fn name(self) -> &'static str {
            match self {
                Field::Project => "project",
                Field::Labels => "labels",
                Field::Status => "status",
                Field::StatusCategory => "statusCategory",
                Field::Resolution => "resolution",
                Field::Key => "key",
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Condition {
        /// `=` or `in`.
        AnyOf(Vec<String>),
        /// `!=` or `not in`: like Jira, never matches an issue whose field is empty.
        NoneOf(Vec<String>),
        Empty,
        NotEmpty,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Expr {
        All(Vec<Expr>),
        Any(Vec<Expr>),
        Not(Box<Expr>),
        Clause(Field, Condition),
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum SortKey {
        Created,
        Updated,
        Key,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Query {
        pub(super) filter: Option<Expr>,
        /// Sort keys, each with `true` for descending.
        pub(super) order: Vec<(SortKey, bool)>,
    }

    pub(super) fn parse(text: &str) -> Result<Query, String> {
        let mut parser = Parser {
            tokens: lex(text)?,
            position: 0,
        };
        parser.query()
    }

    /// A value in a clause: text, or the EMPTY/NULL keyword.
    enum Operand {
        Text(String),
        Empty,
    }

    struct Parser {
        tokens: Vec<(Token, usize)>,
        position: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<&Token> {
            self.tokens.get(self.position).map(|(token, _)| token)
        }

        fn next(&mut self, expecting: &str) -> Result<(Token, usize), String> {
            let Some(next) = self.tokens.get(self.position).cloned() else {
                return Err(format!(
                    "{PREFIX}Expecting {expecting} but reached the end of the query."
                ));
            };
            self.position += 1;
            Ok(next)
        }

        fn eat_keyword(&mut self, keyword: &str) -> bool {
            let found = self.peek().is_some_and(|token| token.is_keyword(keyword));
            if found {
                self.position += 1;
            }
            found
        }

        fn expect_keyword(&mut self, keyword: &str) -> Result<(), String> {
            let (token, at) = self.next(&format!("'{keyword}'"))?;
            if token.is_keyword(keyword) {
                Ok(())
            } else {
                Err(unexpected(&token, at, &format!("'{keyword}'")))
            }
        }

        fn query(&mut self) -> Result<Query, String> {
            let filter = match self.peek() {
                None => None,
                Some(token) if token.is_keyword("order") => None,
                Some(_) => Some(self.any()?),
            };
            let order = if self.peek().is_some_and(|token| token.is_keyword("order")) {
                self.order_by()?
            } else {
                Vec::new()
            };
            if let Some((token, at)) = self.tokens.get(self.position) {
                let expecting = if order.is_empty() {
                    "either 'OR' or 'AND'"
                } else {
                    "',' or the end of the query"
                };
                return Err(unexpected(token, *at, expecting));
            }
            Ok(Query { filter, order })
        }

        fn any(&mut self) -> Result<Expr, String> {
            self.joined("or", Self::all, Expr::Any)
        }

        fn all(&mut self) -> Result<Expr, String> {
            self.joined("and", Self::unary, Expr::All)
        }

        /// One or more `part`s separated by `keyword`: the single part itself, or `join` of them all.
        fn joined(
            &mut self,
            keyword: &str,
            part: fn(&mut Self) -> Result<Expr, String>,
            join: fn(Vec<Expr>) -> Expr,
        ) -> Result<Expr, String> {
            let mut parts = vec![part(self)?];
            while self.eat_keyword(keyword) {
                parts.push(part(self)?);
            }
            Ok(if parts.len() == 1 {
                parts.remove(0)
            } else {
                join(parts)
            })
        }

        fn unary(&mut self) -> Result<Expr, String> {
            if self.eat_keyword("not") {
                return Ok(Expr::Not(Box::new(self.unary()?)));
            }
            if self.peek() == Some(&Token::Open) {
                self.position += 1;
                let inner = self.any()?;
                let (token, at) = self.next("')'")?;
                if token != Token::Close {
                    return Err(unexpected(&token, at, "')'"));
                }
                return Ok(inner);
            }
            self.clause()
        }

        fn clause(&mut self) -> Result<Expr, String> {
            let (token, at) = self.next("a field name")?;
            let name = match token {
                Token::Word(name) | Token::Text(name) => name,
                other => return Err(unexpected(&other, at, "a field name")),
            };
            let field = Field::named(&name).ok_or_else(|| {
                format!("Field '{name}' does not exist or you do not have permission to view it.")
            })?;
            let (token, at) = self.next("an operator")?;
            let condition = match token {
                Token::Operator("=") => match self.operand()? {
                    Operand::Text(value) => Condition::AnyOf(vec![value]),
                    Operand::Empty => Condition::Empty,
                },
                Token::Operator("!=") => match self.operand()? {
                    Operand::Text(value) => Condition::NoneOf(vec![value]),
                    Operand::Empty => Condition::NotEmpty,
                },
                Token::Operator(operator) => {
                    return Err(format!(
                        "{PREFIX}The operator '{operator}' is not supported by the '{}' field.",
                        field.name()
                    ));
                }
                word if word.is_keyword("in") => Condition::AnyOf(self.list()?),
                word if word.is_keyword("not") => {
                    self.expect_keyword("in")?;
                    Condition::NoneOf(self.list()?)
                }
                word if word.is_keyword("is") => {
                    let negated = self.eat_keyword("not");
                    let (token, at) = self.next("EMPTY")?;
                    if !(token.is_keyword("empty") || token.is_keyword("null")) {
                        return Err(unexpected(&token, at, "EMPTY"));
                    }
                    if negated {
                        Condition::NotEmpty
                    } else {
                        Condition::Empty
                    }
                }
                other => return Err(unexpected(&other, at, "an operator")),
            };
            check_values(field, &condition)?;
            Ok(Expr::Clause(field, condition))
        }

        fn operand(&mut self) -> Result<Operand, String> {
            match self.next("a value")? {
                (Token::Text(text), _) => Ok(Operand::Text(text)),
                (word, _) if word.is_keyword("empty") || word.is_keyword("null") => {
                    Ok(Operand::Empty)
                }
                (Token::Word(word), _) => Ok(Operand::Text(word)),
                (other, at) => Err(unexpected(&other, at, "a value")),
            }
        }

        fn list(&mut self) -> Result<Vec<String>, String> {
            let (token, at) = self.next("'('")?;
            if token != Token::Open {
                return Err(unexpected(&token, at, "'('"));
            }
            let mut values = Vec::new();
            loop {
                match self.next("a value")? {
                    (Token::Text(text) | Token::Word(text), _) => values.push(text),
                    (other, at) => return Err(unexpected(&other, at, "a value")),
                }
                match self.next("',' or ')'")? {
                    (Token::Comma, _) => {}
                    (Token::Close, _) => return Ok(values),
                    (other, at) => return Err(unexpected(&other, at, "',' or ')'")),
                }
            }
        }

        fn order_by(&mut self) -> Result<Vec<(SortKey, bool)>, String> {
            self.expect_keyword("order")?;
            self.expect_keyword("by")?;
            let mut order = Vec::new();
            loop {
                let (token, at) = self.next("a field to order by")?;
                let name = match token {
                    Token::Word(name) | Token::Text(name) => name,
                    other => return Err(unexpected(&other, at, "a field to order by")),
                };
                let key = match name.to_ascii_lowercase().as_str() {
                    "created" => SortKey::Created,
                    "updated" => SortKey::Updated,
                    "key" | "issuekey" => SortKey::Key,
                    _ => return Err(format!("{PREFIX}Not able to sort using field '{name}'.")),
                };
                let descending = if self.eat_keyword("desc") {
                    true
                } else {
                    self.eat_keyword("asc");
                    false
                };
                order.push((key, descending));
                if self.peek() != Some(&Token::Comma) {
                    return Ok(order);
                }
                self.position += 1;
            }
        }
    }

    fn unexpected(token: &Token, at: usize, expecting: &str) -> String {
        format!(
            "{PREFIX}Expecting {expecting} but got '{}'. (line 1, character {at})",
            token.show()
        )
    }

    fn value_error(value: &str, field: Field) -> String {
        format!(
            "The value '{value}' does not exist for the field '{}'.",
            field.name()
        )
    }

    /// Values that cannot exist whatever the site holds.
    fn check_values(field: Field, condition: &Condition) -> Result<(), String> {
        let (Condition::AnyOf(values) | Condition::NoneOf(values)) = condition else {
            return Ok(());
        };
        let known = |value: &str| match field {
            Field::Status => Status::from_name(value).is_some(),
            Field::StatusCategory => Status::ALL.iter().any(|status| status.in_category(value)),
            _ => true,
        };
        match values.iter().find(|value| !known(value)) {
            Some(value) => Err(value_error(value, field)),
            None => Ok(()),
        }
    }

    fn has(issue: &Issue, field: Field, value: &str) -> bool {
        match field {
            Field::Project => issue.project.eq_ignore_ascii_case(value),
            Field::Labels => issue.has_label(value),
            Field::Status => issue.status.name().eq_ignore_ascii_case(value),
            Field::StatusCategory => issue.status.in_category(value),
            Field::Resolution if value.eq_ignore_ascii_case("unresolved") => {
                issue.resolution.is_none()
            }
            Field::Resolution => issue
                .resolution
                .as_deref()
                .is_some_and(|resolution| resolution.eq_ignore_ascii_case(value)),
            Field::Key => issue.key.eq_ignore_ascii_case(value) || issue.id == value,
        }
    }

    fn is_empty(issue: &Issue, field: Field) -> bool {
        match field {
            Field::Labels => issue.labels.is_empty(),
            Field::Resolution => issue.resolution.is_none(),
            _ => false,
        }
    }

    impl Expr {
        fn matches(&self, issue: &Issue) -> bool {
            match self {
                Expr::All(parts) => parts.iter().all(|part| part.matches(issue)),
                Expr::Any(parts) => parts.iter().any(|part| part.matches(issue)),
                Expr::Not(inner) => !inner.matches(issue),
                Expr::Clause(field, condition) => {
                    let field = *field;
                    match condition {
                        Condition::AnyOf(values) => values.iter().any(|v| has(issue, field, v)),
                        Condition::NoneOf(values) => {
                            !is_empty(issue, field) && !values.iter().any(|v| has(issue, field, v))
                        }
                        Condition::Empty => is_empty(issue, field),
                        Condition::NotEmpty => !is_empty(issue, field),
                    }
                }
            }
        }

        fn visit<'a>(&'a self, each: &mut impl FnMut(Field, &'a Condition)) {
            match self {
                Expr::All(parts) | Expr::Any(parts) => {
                    parts.iter().for_each(|part| part.visit(each));
                }
                Expr::Not(inner) => inner.visit(each),
                Expr::Clause(field, condition) => each(*field, condition),
            }
        }
    }

    fn compare(a: &Issue, b: &Issue, key: SortKey) -> Ordering {
        let number = |issue: &Issue| issue.id.parse::<u64>().unwrap_or_default();
        match key {
            SortKey::Created => a.created.cmp(&b.created),
            SortKey::Updated => a.updated.cmp(&b.updated),
            SortKey::Key => (&a.project, number(a)).cmp(&(&b.project, number(b))),
        }
    }

    impl Query {
        pub(super) fn is_bounded(&self) -> bool {
            self.filter.is_some()
        }

        pub(super) fn matches(&self, issue: &Issue) -> bool {
            self.filter
                .as_ref()
                .is_none_or(|filter| filter.matches(issue))
        }

        /// Values that do not exist on this site: unknown projects and resolutions.
        pub(super) fn validate(&self, config: &JiraConfig) -> Result<(), String> {
            let mut error = None;
            if let Some(filter) = &self.filter {
                filter.visit(&mut |field, condition| {
                    let (Condition::AnyOf(values) | Condition::NoneOf(values)) = condition else {
                        return;
                    };
                    let known = |value: &String| match field {
                        Field::Project => config
                            .projects
                            .iter()
                            .any(|p| p.eq_ignore_ascii_case(value)),
                        Field::Resolution => {
                            value.eq_ignore_ascii_case("unresolved")
                                || config
                                    .resolutions
                                    .iter()
                                    .any(|r| r.eq_ignore_ascii_case(value))
                        }
                        _ => true,
                    };
                    if let Some(value) = values.iter().find(|value| !known(value)) {
                        error.get_or_insert_with(|| value_error(value, field));
                    }
                });
            }
            error.map_or(Ok(()), Err)
        }

        /// Orders as asked; without ORDER BY, newest first. Ties go by issue id in the first key's direction.
        pub(super) fn sort(&self, issues: &mut [Issue]) {
            let newest_first = [(SortKey::Created, true)];
            let order = if self.order.is_empty() {
                &newest_first[..]
            } else {
                &self.order[..]
            };
            issues.sort_by(|a, b| {
                let by_keys = order.iter().map(|&(key, descending)| {
                    let ordering = compare(a, b, key);
                    if descending {
                        ordering.reverse()
                    } else {
                        ordering
                    }
                });
                let tie = compare(a, b, SortKey::Key);
                let tie = if order[0].1 { tie.reverse() } else { tie };
                by_keys.fold(Ordering::Equal, Ordering::then).then(tie)
            });
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn accepts_the_jql_herald_sends() {
            let accepted = [
                r#"project = OPS AND labels = "ALERT{0123abcd}" AND statusCategory != Done"#,
                r#"project = "OPS" AND labels = "ALERT{x}" AND statusCategory != "done" ORDER BY created DESC"#,
                r#"labels in ("A", "B") AND resolution = Unresolved ORDER BY updated DESC"#,
                "labels = plain AND resolution is EMPTY",
                "resolution is not empty order by key asc, created desc",
                "statusCategory = \"To Do\" OR (status = Done AND NOT labels = x)",
                "key in (OPS-1, OPS-2) and status not in (Done)",
                "ORDER BY created DESC",
                "",
            ];
            for text in accepted {
                assert!(parse(text).is_ok(), "{text}: {:?}", parse(text));
            }
        }

        #[test]
        fn parses_into_the_expected_shape() {
            let query =
                parse(r#"project = OPS AND labels in ("a", b) AND statusCategory != Done ORDER BY updated DESC"#)
                    .unwrap();
            assert_eq!(
                query,
                Query {
                    filter: Some(Expr::All(vec![
                        Expr::Clause(Field::Project, Condition::AnyOf(vec!["OPS".into()])),
                        Expr::Clause(
                            Field::Labels,
                            Condition::AnyOf(vec!["a".into(), "b".into()])
                        ),
                        Expr::Clause(
                            Field::StatusCategory,
                            Condition::NoneOf(vec!["Done".into()])
                        ),
                    ])),
                    order: vec![(SortKey::Updated, true)],
                }
            );
            let escaped = parse(r#"labels = "say \"hi\"\u0021""#).unwrap();
            assert_eq!(
                escaped.filter,
                Some(Expr::Clause(
                    Field::Labels,
                    Condition::AnyOf(vec!["say \"hi\"!".into()])
                ))
            );
        }

        #[test]
        fn rejects_what_jira_rejects() {
            let rejected = [
                (
                    "labels = ALERT{abc}",
                    "Error in the JQL Query: The character '{' is a reserved JQL character",
                ),
                ("summary ~ disk", "Field 'summary' does not exist"),
                (
                    "labels ~ x",
                    "Error in the JQL Query: The operator '~' is not supported",
                ),
                (
                    "status = Closed",
                    "The value 'Closed' does not exist for the field 'status'.",
                ),
                (
                    "statusCategory != Finished",
                    "The value 'Finished' does not exist",
                ),
                (
                    "project = OPS AND",
                    "Error in the JQL Query: Expecting a field name but reached the end",
                ),
                (
                    "project = OPS labels = x",
                    "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'labels'",
                ),
                (
                    r#"labels = "open"#,
                    "Error in the JQL Query: Missing closing quote",
                ),
                (
                    "labels in (a, b",
                    "Error in the JQL Query: Expecting ',' or ')'",
                ),
                (
                    "project = OPS ORDER BY priority",
                    "Error in the JQL Query: Not able to sort using field 'priority'.",
                ),
                (
                    "resolution is Done",
                    "Error in the JQL Query: Expecting EMPTY but got 'Done'",
                ),
            ];
            for (text, message) in rejected {
                let error = parse(text).unwrap_err();
                assert!(error.starts_with(message), "{text}: {error}");
            }
        }

        #[test]
        fn checks_projects_and_resolutions_against_the_site() {
            let config = JiraConfig::new(super::super::JiraMode::Cloud);
            assert!(
                parse("project = ops AND resolution = \"won't do\"")
                    .unwrap()
                    .validate(&config)
                    .is_ok()
            );
            assert_eq!(
                parse("project = NOPE").unwrap().validate(&config),
                Err("The value 'NOPE' does not exist for the field 'project'.".to_owned())
            );
            assert_eq!(
                parse("resolution in (Done, Fixed)")
                    .unwrap()
                    .validate(&config),
                Err("The value 'Fixed' does not exist for the field 'resolution'.".to_owned())
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Self-tests: the emulator against a real HTTP client
// ---------------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod self_tests {
    use super::*;
    use herald::clock::ManualClock;

    const T0: &str = "2026-11-21T12:00:00Z";

    fn clock() -> ManualClock {
        ManualClock::new(T0.parse().unwrap())
    }

    fn adf(text: &str) -> Value {
        adf_from_text(text)
    }

    /// A client speaking to the emulator with its credentials.
    struct Client {
        http: reqwest::Client,
        base: String,
        auth: Option<String>,
    }

    struct Reply {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: Value,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(|v| v.to_str().unwrap())
        }
    }

    impl Client {
        fn new(jira: &JiraEmulator) -> Self {
            Client {
                http: reqwest::Client::new(),
                base: jira.url(),
                auth: Some(jira.auth_header()),
            }
        }

        fn with_auth(jira: &JiraEmulator, auth: Option<&str>) -> Self {
            Client {
                auth: auth.map(str::to_owned),
                ..Client::new(jira)
            }
        }

        async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self.http.request(method, format!("{}{path}", self.base));
            if let Some(auth) = &self.auth {
                request = request.header(reqwest::header::AUTHORIZATION, auth);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            let body = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            Reply {
                status,
                headers,
                body,
            }
        }

        async fn get(&self, path: &str) -> Reply {
            self.send("GET", path, None).await
        }

        async fn post(&self, path: &str, body: Value) -> Reply {
            self.send("POST", path, Some(body)).await
        }

        async fn put(&self, path: &str, body: Value) -> Reply {
            self.send("PUT", path, Some(body)).await
        }

        /// Creates an issue through v3 (Cloud) or v2 (Data Center); returns its key.
        async fn create(&self, api: &str, summary: &str, labels: &[&str]) -> String {
            let description = if api == "3" {
                adf("details")
            } else {
                json!("details")
            };
            let fields = json!({
                "project": {"key": "OPS"},
                "issuetype": {"name": "Incident"},
                "summary": summary,
                "description": description,
                "labels": labels,
            });
            let reply = self
                .post(&format!("/rest/api/{api}/issue"), json!({"fields": fields}))
                .await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.body["key"].as_str().unwrap().to_owned()
        }

        async fn search_jql(&self, jql: &str, fields: &[&str]) -> Reply {
            self.post(
                "/rest/api/3/search/jql",
                json!({"jql": jql, "fields": fields, "maxResults": 50}),
            )
            .await
        }
    }

    fn keys(issues: &Value) -> Vec<&str> {
        let issues = issues.as_array().unwrap().iter();
        issues.map(|issue| issue["key"].as_str().unwrap()).collect()
    }

    fn transition_names(reply: &Reply) -> Vec<&str> {
        let transitions = reply.body["transitions"].as_array().unwrap().iter();
        transitions.map(|t| t["name"].as_str().unwrap()).collect()
    }

    async fn cloud(clock: &ManualClock) -> (JiraEmulator, Client) {
        let jira = JiraEmulator::start(JiraMode::Cloud, Arc::new(clock.clone())).await;
        let client = Client::new(&jira);
        (jira, client)
    }

    #[tokio::test]
    async fn cloud_creates_an_issue_reads_it_back_and_finds_it_by_label() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        let fields = json!({
            "project": {"key": "OPS"},
            "issuetype": {"name": "Incident"},
            "summary": "[FIRING:1] DiskFull",
            "description": adf("Disk is full on db-1"),
            "priority": {"name": "High"},
            "labels": ["ALERT{0123abcd}", "herald"],
            "components": [{"name": "storage"}],
            "customfield_10010": {"value": "prod"},
        });
        let created = client
            .post("/rest/api/3/issue", json!({"fields": fields}))
            .await;
        assert_eq!(created.status, 201);
        assert_eq!(
            created.body,
            json!({"id": "10000", "key": "OPS-1", "self": format!("{}/rest/api/3/issue/10000", jira.url())})
        );

        let read = client.get("/rest/api/3/issue/OPS-1").await;
        assert_eq!(read.status, 200);
        let fields = &read.body["fields"];
        assert_eq!(fields["summary"], "[FIRING:1] DiskFull");
        assert_eq!(fields["description"], adf("Disk is full on db-1"));
        assert_eq!(fields["priority"]["name"], "High");
        assert_eq!(fields["labels"], json!(["ALERT{0123abcd}", "herald"]));
        assert_eq!(fields["components"][0]["name"], "storage");
        assert_eq!(fields["customfield_10010"], json!({"value": "prod"}));
        assert_eq!(fields["status"]["name"], "To Do");
        assert_eq!(fields["status"]["statusCategory"]["key"], "new");
        assert_eq!(fields["resolution"], Value::Null);
        assert_eq!(fields["comment"]["total"], 0);
        assert_eq!(fields["created"], "2026-11-21T12:00:00.000+0000");
        assert_eq!(
            client.get("/rest/api/3/issue/10000").await.body["key"],
            "OPS-1"
        );

        let found = client
            .search_jql(
                r#"project = OPS AND labels = "ALERT{0123abcd}" AND statusCategory != Done ORDER BY created DESC"#,
                &["status"],
            )
            .await;
        assert_eq!(found.status, 200);
        assert_eq!(keys(&found.body["issues"]), ["OPS-1"]);
        assert_eq!(found.body["isLast"], true);
        assert!(found.body.get("total").is_none(), "Cloud never says total");
        assert!(found.body.get("nextPageToken").is_none());
        let shown = found.body["issues"][0]["fields"].as_object().unwrap();
        assert_eq!(shown.keys().collect::<Vec<_>>(), ["status"]);
        assert_eq!(shown["status"]["statusCategory"]["key"], "new");

        let issue = jira.issue("OPS-1").unwrap();
        assert_eq!(issue.description_text(), "Disk is full on db-1");
        assert_eq!(issue.issue_type, "Incident");
        assert_eq!(issue.status, Status::ToDo);
        assert_eq!(issue.created, clock.now());
        assert_eq!(jira.issues_with_label("herald").len(), 1);
        let recorded = jira.requests();
        assert_eq!(recorded.len(), 4);
        assert!(recorded[0].is("POST", "/rest/api/3/issue"));
        assert_eq!(recorded[0].body["fields"]["summary"], "[FIRING:1] DiskFull");
        assert_eq!(recorded[0].status, Some(201));
        assert_eq!(
            recorded[0].headers["authorization"],
            jira.auth_header().as_str()
        );
        assert!(recorded[0].raw.starts_with(b"{"));
        assert_eq!(issue.status_name(), "To Do");
        assert_eq!(recorded[0].at, clock.now());
    }

    #[tokio::test]
    async fn v3_wants_atlassian_documents_and_v2_takes_strings() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        let plain = json!({"fields": {
            "project": {"key": "OPS"}, "issuetype": {"name": "Bug"}, "summary": "s", "description": "plain text",
        }});
        let rejected = client.post("/rest/api/3/issue", plain.clone()).await;
        assert_eq!(rejected.status, 400);
        assert_eq!(
            rejected.body,
            json!({"errorMessages": [], "errors": {"description": NOT_ADF}})
        );
        let not_a_doc = json!({"fields": {
            "project": {"key": "OPS"}, "issuetype": {"name": "Bug"}, "summary": "s",
            "description": {"type": "paragraph", "content": []},
        }});
        assert_eq!(
            client.post("/rest/api/3/issue", not_a_doc).await.status,
            400
        );
        assert!(jira.issues().is_empty());

        let created = client.post("/rest/api/2/issue", plain).await;
        assert_eq!(created.status, 201, "Cloud's v2 takes wiki markup");
        assert!(
            created.body["self"]
                .as_str()
                .unwrap()
                .ends_with("/rest/api/2/issue/10000")
        );
        let v3 = client.get("/rest/api/3/issue/OPS-1").await;
        assert_eq!(v3.body["fields"]["description"], adf("plain text"));
        let v2 = client.get("/rest/api/2/issue/OPS-1").await;
        assert_eq!(v2.body["fields"]["description"], "plain text");

        let comment = client
            .post(
                "/rest/api/3/issue/OPS-1/comment",
                json!({"body": "still firing"}),
            )
            .await;
        assert_eq!(comment.status, 400);
        assert_eq!(comment.body["errors"]["comment"], NOT_ADF);
        let comment = client
            .post("/rest/api/2/issue/OPS-1/comment", json!({"body": adf("x")}))
            .await;
        assert_eq!(comment.body["errors"]["comment"], NOT_A_STRING);
        let empty = client
            .post("/rest/api/3/issue/OPS-1/comment", json!({"body": adf("")}))
            .await;
        assert_eq!(empty.body["errors"]["comment"], EMPTY_COMMENT);
        assert!(jira.issue("OPS-1").unwrap().comments.is_empty());

        let dc = JiraEmulator::start(JiraMode::DataCenter, Arc::new(clock.clone())).await;
        let dc_client = Client::new(&dc);
        let rejected = dc_client
            .post(
                "/rest/api/2/issue",
                json!({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Bug"}, "summary": "s",
                       "description": adf("x")}}),
            )
            .await;
        assert_eq!(rejected.body["errors"]["description"], NOT_A_STRING);
        dc_client.create("2", "wiki", &[]).await;
        assert_eq!(dc.issue("OPS-1").unwrap().description, json!("details"));
    }

    #[tokio::test]
    async fn create_validates_fields_like_jira() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        let valid = json!({
            "project": {"key": "OPS"}, "issuetype": {"name": "Incident"}, "summary": "ok", "labels": ["a"],
        });
        let long = "x".repeat(256);
        let cases: [(&str, Value, &str, &str); 9] = [
            (
                "project",
                json!({"key": "NOPE"}),
                "project",
                "valid project is required",
            ),
            (
                "issuetype",
                json!({"name": "Epic"}),
                "issuetype",
                "valid issue type is required",
            ),
            (
                "summary",
                json!(long),
                "summary",
                "Summary must be less than 255 characters.",
            ),
            (
                "summary",
                json!("two\nlines"),
                "summary",
                "The summary is invalid because it contains newline characters.",
            ),
            ("summary", json!("  "), "summary", NO_SUMMARY),
            (
                "labels",
                json!(["has space"]),
                "labels",
                "The label 'has space' contains spaces which is invalid.",
            ),
            (
                "labels",
                json!([long]),
                "labels",
                "exceeds the maximum length for a single label of 255 characters",
            ),
            (
                "priority",
                json!({"name": "Urgent"}),
                "priority",
                "The priority selected is invalid.",
            ),
            (
                "assignee",
                json!({"name": "bob"}),
                "assignee",
                "Field 'assignee' cannot be set.",
            ),
        ];
        for (field, value, error_field, message) in cases {
            let mut fields = valid.clone();
            fields[field] = value;
            let reply = client
                .post("/rest/api/3/issue", json!({"fields": fields}))
                .await;
            assert_eq!(reply.status, 400, "{field}");
            assert_eq!(reply.body["errorMessages"], json!([]));
            let error = reply.body["errors"][error_field].as_str().unwrap();
            assert!(error.contains(message), "{field}: {error}");
        }
        let mut missing = valid.clone();
        missing.as_object_mut().unwrap().remove("summary");
        let reply = client
            .post("/rest/api/3/issue", json!({"fields": missing}))
            .await;
        assert_eq!(reply.body["errors"]["summary"], NO_SUMMARY);

        let text = client
            .http
            .post(format!("{}/rest/api/3/issue", jira.url()))
            .header("authorization", jira.auth_header())
            .body(json!({"fields": valid}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(text.status(), 415, "a body not declared JSON is refused");
        assert!(jira.issues().is_empty());
        assert_eq!(
            client
                .post("/rest/api/3/issue", json!({"fields": valid}))
                .await
                .status,
            201
        );
        assert_eq!(jira.issue("OPS-1").unwrap().priority, "Medium");
    }

    #[tokio::test]
    async fn transitions_follow_the_workflow_and_keep_the_resolution() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        let key = client.create("3", "DiskFull", &["ALERT{1}"]).await;
        let path = format!("/rest/api/3/issue/{key}/transitions");

        let offered = client.get(&path).await;
        assert_eq!(transition_names(&offered), ["In Progress", "Done"]);
        let done = &offered.body["transitions"][1];
        assert_eq!(done["id"], "31");
        assert_eq!(done["to"]["statusCategory"]["key"], "done");

        let invalid = client
            .post(&path, json!({"transition": {"id": "99"}}))
            .await;
        assert_eq!(invalid.status, 400);
        assert_eq!(
            invalid.body,
            json!({"errorMessages": ["Transition id '99' is not valid for this issue."], "errors": {}})
        );
        let not_offered = client
            .post(&path, json!({"transition": {"id": "41"}}))
            .await;
        assert_eq!(not_offered.status, 400, "Reopen is only offered from Done");
        let screen = client
            .post(
                &path,
                json!({"transition": {"id": "21"}, "fields": {"resolution": {"name": "Done"}}}),
            )
            .await;
        assert_eq!(screen.status, 400, "resolution only goes with Done");

        clock.advance(Duration::from_secs(60));
        let resolved = client
            .post(
                &path,
                json!({"transition": {"id": "31"}, "fields": {"resolution": {"name": "Won't Do"}}}),
            )
            .await;
        assert_eq!(resolved.status, 204);
        let issue = jira.issue(&key).unwrap();
        assert_eq!(
            (issue.status, issue.status_category()),
            (Status::Done, "done")
        );
        assert_eq!(issue.resolution.as_deref(), Some("Won't Do"));
        assert_eq!(issue.updated, clock.now());
        let read = client.get(&format!("/rest/api/3/issue/{key}")).await;
        assert_eq!(read.body["fields"]["resolution"]["name"], "Won't Do");
        assert_eq!(transition_names(&client.get(&path).await), ["Reopen"]);
        let done = client
            .search_jql(
                "labels = \"ALERT{1}\" AND statusCategory = Done AND resolution is not EMPTY",
                &["status"],
            )
            .await;
        assert_eq!(keys(&done.body["issues"]), [key.as_str()]);

        let reopened = client
            .post(&path, json!({"transition": {"id": 41}, "update": {"comment": [{"add": {"body": adf("again")}}]}}))
            .await;
        assert_eq!(reopened.status, 204);
        let issue = jira.issue(&key).unwrap();
        assert_eq!(issue.status, Status::ToDo);
        assert_eq!(issue.resolution, None);
        assert_eq!(issue.comments[0].text(), "again");
        let vias: Vec<&str> = issue.history.iter().map(|c| c.via.as_str()).collect();
        assert_eq!(vias, ["Done", "Reopen"]);

        client
            .post(&path, json!({"transition": {"id": "31"}}))
            .await;
        assert_eq!(
            jira.issue(&key).unwrap().resolution.as_deref(),
            Some("Done"),
            "Done without a resolution field resolves as Done"
        );
    }

    #[tokio::test]
    async fn comments_and_edits_are_kept() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        let key = client.create("3", "DiskFull", &["ALERT{1}"]).await;
        clock.advance(Duration::from_secs(300));

        let comment = client
            .post(
                &format!("/rest/api/3/issue/{key}/comment"),
                json!({"body": adf("still firing")}),
            )
            .await;
        assert_eq!(comment.status, 201);
        assert_eq!(comment.body["id"], "10100");
        assert_eq!(comment.body["body"], adf("still firing"));

        let edit = json!({
            "fields": {"summary": "[FIRING:2] DiskFull", "description": adf("two disks"), "priority": {"name": "Highest"}},
            "update": {"labels": [{"add": "escalated"}, {"remove": "ALERT{1}"}]},
        });
        assert_eq!(
            client
                .put(&format!("/rest/api/3/issue/{key}"), edit)
                .await
                .status,
            204
        );
        let bad = json!({"fields": {"labels": ["a b"], "summary": "changed"}});
        let refused = client.put(&format!("/rest/api/3/issue/{key}"), bad).await;
        assert_eq!(refused.status, 400);
        assert!(refused.body["errors"]["labels"].is_string());

        let issue = jira.issue(&key).unwrap();
        assert_eq!(
            issue.summary, "[FIRING:2] DiskFull",
            "a refused edit changes nothing"
        );
        assert_eq!(issue.description_text(), "two disks");
        assert_eq!(issue.priority, "Highest");
        assert_eq!(issue.labels, ["escalated"]);
        assert_eq!(issue.comments.len(), 1);
        assert_eq!(issue.comments[0].text(), "still firing");
        assert_eq!(issue.comments[0].created, clock.now());
        assert_eq!(issue.updated, clock.now());
        assert!(issue.created < issue.updated);
        let read = client.get(&format!("/rest/api/3/issue/{key}")).await;
        assert_eq!(read.body["fields"]["comment"]["total"], 1);
        let listed = client
            .get(&format!("/rest/api/2/issue/{key}/comment"))
            .await;
        assert_eq!(listed.body["comments"][0]["body"], "still firing");
    }

    #[tokio::test]
    async fn unknown_and_deleted_issues_answer_404() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        let not_found = json!({"errorMessages": [NO_ISSUE], "errors": {}});
        let replies = [
            client.get("/rest/api/3/issue/OPS-99").await,
            client
                .put(
                    "/rest/api/3/issue/OPS-99",
                    json!({"fields": {"summary": "x"}}),
                )
                .await,
            client
                .post(
                    "/rest/api/3/issue/OPS-99/comment",
                    json!({"body": adf("x")}),
                )
                .await,
            client.get("/rest/api/3/issue/OPS-99/transitions").await,
            client
                .post(
                    "/rest/api/3/issue/OPS-99/transitions",
                    json!({"transition": {"id": "31"}}),
                )
                .await,
        ];
        for reply in replies {
            assert_eq!((reply.status, &reply.body), (404, &not_found));
        }

        let key = client.create("3", "DiskFull", &["ALERT{1}"]).await;
        jira.delete_issue(&key);
        assert_eq!(
            client.get(&format!("/rest/api/3/issue/{key}")).await.status,
            404
        );
        let found = client
            .search_jql("labels = \"ALERT{1}\"", &["status"])
            .await;
        assert_eq!(found.body["issues"], json!([]));
        assert!(jira.issue(&key).is_none());
        assert_eq!(
            client.create("3", "again", &[]).await,
            "OPS-2",
            "keys are not reused"
        );
    }

    #[tokio::test]
    async fn cloud_has_removed_the_old_search_and_data_center_never_had_the_new_one() {
        let clock = clock();
        let (_jira, client) = cloud(&clock).await;
        let old = [
            client
                .post("/rest/api/3/search", json!({"jql": "project = OPS"}))
                .await,
            client
                .get("/rest/api/2/search?jql=project%20%3D%20OPS")
                .await,
        ];
        for reply in old {
            assert_eq!(reply.status, 410);
            let message = reply.body["errorMessages"][0].as_str().unwrap();
            assert!(message.starts_with(
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."
            ));
            assert_eq!(reply.body["errors"], json!({}));
        }

        let dc = JiraEmulator::start(JiraMode::DataCenter, Arc::new(clock.clone())).await;
        let dc_client = Client::new(&dc);
        let jql = dc_client
            .post("/rest/api/2/search/jql", json!({"jql": "project = OPS"}))
            .await;
        assert_eq!(jql.status, 404);
        assert_eq!(dc_client.get("/rest/api/3/issue/OPS-1").await.status, 404);
        assert_eq!(dc.mode(), JiraMode::DataCenter);
    }

    #[tokio::test]
    async fn credentials_are_checked_per_flavour() {
        let clock = clock();
        let (jira, _client) = cloud(&clock).await;
        let wrong_token = Credentials::Basic {
            email: CLOUD_EMAIL.to_owned(),
            api_token: "wrong".to_owned(),
        };
        for auth in [
            None,
            Some(wrong_token.header_value()),
            Some(format!("Bearer {DC_PAT}")),
        ] {
            let reply = Client::with_auth(&jira, auth.as_deref())
                .get("/rest/api/3/issue/OPS-1")
                .await;
            assert_eq!(reply.status, 401, "{auth:?}");
            assert_eq!(
                reply.body,
                json!({"message": UNAUTHENTICATED, "status-code": 401})
            );
        }
        let good = Client::new(&jira).get("/rest/api/3/issue/OPS-1").await;
        assert_eq!(
            good.status, 404,
            "authenticated; the issue just does not exist"
        );
        assert_eq!(
            jira.credentials(),
            &Credentials::Basic {
                email: CLOUD_EMAIL.into(),
                api_token: CLOUD_API_TOKEN.into()
            }
        );

        let dc = JiraEmulator::start(JiraMode::DataCenter, Arc::new(clock.clone())).await;
        let basic = Client::with_auth(&dc, Some(&jira.auth_header()))
            .post("/rest/api/2/search", json!({"jql": ""}))
            .await;
        assert_eq!(basic.status, 401);
        assert_eq!(
            basic.body,
            json!(UNAUTHENTICATED),
            "Data Center answers plain text"
        );
        let bearer = Client::new(&dc)
            .post("/rest/api/2/search", json!({"jql": ""}))
            .await;
        assert_eq!(bearer.status, 200);
        assert_eq!(dc.auth_header(), format!("Bearer {DC_PAT}"));

        let custom = JiraConfig::new(JiraMode::Cloud).with_credentials(Credentials::Basic {
            email: "ops@corp.example".into(),
            api_token: "t0k3n".into(),
        });
        let custom = JiraEmulator::start_with(custom, Arc::new(clock.clone())).await;
        let header = format!("Basic {}", STANDARD.encode("ops@corp.example:t0k3n"));
        let reply = Client::with_auth(&custom, Some(&header))
            .get("/rest/api/3/issue/OPS-1")
            .await;
        assert_eq!(reply.status, 404);
    }

    #[tokio::test]
    async fn jql_selects_by_project_label_category_and_resolution() {
        let clock = clock();
        let config = JiraConfig::new(JiraMode::Cloud).with_projects(&["OPS", "SEC"]);
        let jira = JiraEmulator::start_with(config, Arc::new(clock.clone())).await;
        let client = Client::new(&jira);
        let open = client.create("3", "open", &["ALERT{a}"]).await;
        clock.advance(Duration::from_secs(1));
        let resolved = client.create("3", "resolved", &["ALERT{a}", "other"]).await;
        clock.advance(Duration::from_secs(1));
        let unlabelled = client.create("3", "unlabelled", &[]).await;
        let other_project = jira.create_issue_by_hand("SEC", "elsewhere", &["ALERT{a}"]);
        jira.transition_by_hand(&resolved, Status::Done, Some("Duplicate"));
        jira.transition_by_hand(&unlabelled, Status::InProgress, None);

        let (open, resolved) = (open.as_str(), resolved.as_str());
        let (unlabelled, other_project) = (unlabelled.as_str(), other_project.as_str());
        let cases: [(&str, Vec<&str>); 11] = [
            (
                r#"project = OPS AND labels = "ALERT{a}" AND statusCategory != Done"#,
                vec![open],
            ),
            (
                r#"project = "OPS" AND labels = "ALERT{a}""#,
                vec![resolved, open],
            ),
            (
                r#"labels = "ALERT{a}" AND statusCategory != "done""#,
                vec![other_project, open],
            ),
            (
                r#"labels in ("ALERT{a}", "nothing") AND resolution = Unresolved ORDER BY created ASC"#,
                vec![open, other_project],
            ),
            (
                "project = OPS AND resolution is EMPTY ORDER BY created DESC",
                vec![unlabelled, open],
            ),
            ("project = OPS AND resolution = Duplicate", vec![resolved]),
            ("project = OPS AND labels is EMPTY", vec![unlabelled]),
            ("project = OPS AND labels != other", vec![open]),
            (
                r#"statusCategory = "In Progress" OR status = Done"#,
                vec![unlabelled, resolved],
            ),
            (
                "project = OPS AND NOT statusCategory in (new, indeterminate)",
                vec![resolved],
            ),
            ("key = OPS-1 ORDER BY key", vec![open]),
        ];
        for (jql, expected) in cases {
            let reply = client.search_jql(jql, &["status"]).await;
            assert_eq!(reply.status, 200, "{jql}: {}", reply.body);
            assert_eq!(keys(&reply.body["issues"]), expected, "{jql}");
        }

        let errors = [
            (
                "labels = ALERT{a}",
                "Error in the JQL Query: The character '{' is a reserved JQL character",
            ),
            (
                "project = NOPE",
                "The value 'NOPE' does not exist for the field 'project'.",
            ),
            (
                "summary ~ disk",
                "Field 'summary' does not exist or you do not have permission to view it.",
            ),
            ("ORDER BY created DESC", UNBOUNDED),
        ];
        for (jql, message) in errors {
            let reply = client.search_jql(jql, &["status"]).await;
            assert_eq!(reply.status, 400, "{jql}");
            assert!(
                reply.body["errorMessages"][0]
                    .as_str()
                    .unwrap()
                    .starts_with(message),
                "{jql}: {}",
                reply.body
            );
            assert_eq!(reply.body["errors"], json!({}));
        }
    }

    #[tokio::test]
    async fn cloud_search_pages_with_tokens_and_shows_ids_unless_asked() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        for summary in ["a", "b", "c"] {
            client.create("3", summary, &["ALERT{p}"]).await;
            clock.advance(Duration::from_secs(1));
        }
        let jql = r#"labels = "ALERT{p}" ORDER BY created ASC"#;
        let first = client
            .post(
                "/rest/api/3/search/jql",
                json!({"jql": jql, "maxResults": 2, "fields": ["summary"]}),
            )
            .await;
        assert_eq!(keys(&first.body["issues"]), ["OPS-1", "OPS-2"]);
        assert_eq!(first.body["isLast"], false);
        let token = first.body["nextPageToken"].as_str().unwrap();
        let second = client
            .post(
                "/rest/api/3/search/jql",
                json!({"jql": jql, "maxResults": 2, "fields": ["summary"], "nextPageToken": token}),
            )
            .await;
        assert_eq!(keys(&second.body["issues"]), ["OPS-3"]);
        assert_eq!(second.body["issues"][0]["fields"]["summary"], "c");
        assert_eq!(second.body["isLast"], true);

        let ids_only = client
            .post("/rest/api/3/search/jql", json!({"jql": jql}))
            .await;
        assert_eq!(ids_only.body["issues"][0], json!({"id": "10000"}));
        let by_get = client
            .get("/rest/api/3/search/jql?jql=labels%20%3D%20%22ALERT%7Bp%7D%22&fields=status,labels&maxResults=1")
            .await;
        assert_eq!(by_get.status, 200);
        assert_eq!(
            keys(&by_get.body["issues"]),
            ["OPS-3"],
            "newest first without ORDER BY"
        );
        let recorded = jira.requests().pop().unwrap();
        assert!(recorded.is("GET", "/rest/api/3/search/jql"));
        assert!(recorded.query.unwrap().contains("maxResults=1"));
        assert_eq!(
            by_get.body["issues"][0]["fields"]["labels"],
            json!(["ALERT{p}"])
        );
        let bad_token = client
            .post(
                "/rest/api/3/search/jql",
                json!({"jql": jql, "nextPageToken": "???"}),
            )
            .await;
        assert_eq!(bad_token.status, 400);
    }

    #[tokio::test]
    async fn data_center_search_reports_total_and_pages_with_start_at() {
        let clock = clock();
        let dc = JiraEmulator::start(JiraMode::DataCenter, Arc::new(clock.clone())).await;
        let client = Client::new(&dc);
        for summary in ["a", "b", "c"] {
            client.create("2", summary, &["ALERT{dc}"]).await;
            clock.advance(Duration::from_secs(1));
        }
        let jql = r#"project = OPS AND labels = "ALERT{dc}" AND resolution = Unresolved ORDER BY created ASC"#;
        let first = client
            .post(
                "/rest/api/2/search",
                json!({"jql": jql, "maxResults": 2, "startAt": 0}),
            )
            .await;
        assert_eq!(first.status, 200);
        assert_eq!(
            (
                first.body["startAt"].as_u64(),
                first.body["maxResults"].as_u64()
            ),
            (Some(0), Some(2))
        );
        assert_eq!(first.body["total"], 3);
        assert_eq!(keys(&first.body["issues"]), ["OPS-1", "OPS-2"]);
        let fields = &first.body["issues"][0]["fields"];
        assert_eq!(fields["summary"], "a", "all fields by default");
        assert_eq!(fields["description"], "details");
        assert_eq!(fields["status"]["statusCategory"]["key"], "new");

        let second = client
            .post(
                "/rest/api/2/search",
                json!({"jql": jql, "maxResults": 2, "startAt": 2, "fields": ["status"]}),
            )
            .await;
        assert_eq!(second.body["total"], 3);
        assert_eq!(keys(&second.body["issues"]), ["OPS-3"]);
        assert_eq!(
            second.body["issues"][0]["fields"]
                .as_object()
                .unwrap()
                .len(),
            1
        );
        let by_get = client
            .get("/rest/api/2/search?jql=project%3DOPS&startAt=1&maxResults=1&fields=summary")
            .await;
        assert_eq!(
            (by_get.body["total"].as_u64(), keys(&by_get.body["issues"])),
            (Some(3), vec!["OPS-2"])
        );
        let unbounded = client.post("/rest/api/2/search", json!({"jql": ""})).await;
        assert_eq!(
            unbounded.body["total"], 3,
            "Data Center allows unbounded JQL"
        );

        let key = "OPS-1";
        let path = format!("/rest/api/2/issue/{key}/transitions");
        assert_eq!(
            client
                .post(&path, json!({"transition": {"id": "31"}}))
                .await
                .status,
            204
        );
        let comment = client
            .post(
                &format!("/rest/api/2/issue/{key}/comment"),
                json!({"body": "h3. Resolved"}),
            )
            .await;
        assert_eq!(comment.status, 201);
        let open = client.post("/rest/api/2/search", json!({"jql": jql})).await;
        assert_eq!(open.body["total"], 2);
    }

    #[tokio::test]
    async fn search_lag_hides_new_issues_for_a_few_searches() {
        let clock = clock();
        let config = JiraConfig::new(JiraMode::Cloud).with_search_lag(2);
        let jira = JiraEmulator::start_with(config, Arc::new(clock.clone())).await;
        let client = Client::new(&jira);
        let key = client.create("3", "new", &["ALERT{lag}"]).await;
        let jql = r#"labels = "ALERT{lag}""#;
        let counts = [
            client.search_jql(jql, &["status"]).await,
            client.search_jql(jql, &["status"]).await,
            client.search_jql(jql, &["status"]).await,
        ]
        .map(|reply| reply.body["issues"].as_array().unwrap().len());
        assert_eq!(counts, [0, 0, 1]);
        assert_eq!(
            client.get(&format!("/rest/api/3/issue/{key}")).await.status,
            200,
            "reads see it at once"
        );

        jira.set_search_lag(0);
        client.create("3", "newer", &["ALERT{lag}"]).await;
        let reply = client.search_jql(jql, &["status"]).await;
        assert_eq!(reply.body["issues"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn scripted_faults_hit_matching_requests_only() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        jira.fail_next(
            RequestPattern::new("POST", "/rest/api/3/issue"),
            1,
            Fault::rate_limited(7),
        );
        jira.fail_next(
            RequestPattern::path("/rest/api/*/issue/*/transitions"),
            1,
            Fault::ServerError,
        );

        let limited = client
            .post("/rest/api/3/issue", json!({"fields": {"summary": "x"}}))
            .await;
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("retry-after"), Some("7"));
        assert_eq!(
            limited.header("x-ratelimit-reset"),
            Some("2026-11-21T12:00:07Z")
        );
        assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
        assert!(jira.issues().is_empty());

        let key = client.create("3", "DiskFull", &[]).await;
        let failed = client
            .get(&format!("/rest/api/3/issue/{key}/transitions"))
            .await;
        assert_eq!(failed.status, 500);
        assert_eq!(
            client
                .get(&format!("/rest/api/3/issue/{key}/transitions"))
                .await
                .status,
            200
        );

        jira.fail_next(
            RequestPattern::any(),
            1,
            Fault::Unavailable {
                retry_after: Some(3),
            },
        );
        jira.fail_next(
            RequestPattern::any(),
            1,
            Fault::RateLimited {
                retry_after: None,
                reset_after: Some(30),
            },
        );
        jira.fail_next(
            RequestPattern::new("GET", "/rest/api/3/issue/*"),
            2,
            Fault::near_limit(5),
        );
        let unavailable = client.get(&format!("/rest/api/3/issue/{key}")).await;
        assert_eq!(
            (unavailable.status, unavailable.header("retry-after")),
            (503, Some("3"))
        );
        let reset_only = client.get(&format!("/rest/api/3/issue/{key}")).await;
        assert_eq!(reset_only.status, 429);
        assert_eq!(reset_only.header("retry-after"), None);
        assert_eq!(
            reset_only.header("x-ratelimit-reset"),
            Some("2026-11-21T12:00:30Z")
        );
        for _ in 0..2 {
            let near = client.get(&format!("/rest/api/3/issue/{key}")).await;
            assert_eq!(near.status, 200);
            assert_eq!(near.header("x-ratelimit-nearlimit"), Some("true"));
            assert_eq!(near.header("x-ratelimit-remaining"), Some("5"));
        }
        jira.fail_next(
            RequestPattern::any(),
            1,
            Fault::Quota {
                limit: 100,
                remaining: 50,
            },
        );
        let plenty = client.get(&format!("/rest/api/3/issue/{key}")).await;
        assert_eq!(plenty.header("x-ratelimit-remaining"), Some("50"));
        assert_eq!(plenty.header("x-ratelimit-nearlimit"), None);

        let statuses: Vec<Option<u16>> = jira.requests().iter().map(|r| r.status).collect();
        let expected = [429, 201, 500, 200, 503, 429, 200, 200, 200].map(Some);
        assert_eq!(statuses, expected);
        let creates = jira.requests_matching(&RequestPattern::new("POST", "/rest/api/3/issue"));
        assert_eq!(creates.len(), 2);
    }

    #[tokio::test]
    async fn a_hanging_request_is_recorded_without_an_answer() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        jira.fail_next(RequestPattern::any(), 1, Fault::Hang);
        let in_flight = tokio::spawn(async move { client.get("/rest/api/3/issue/OPS-1").await });
        let requests = jira.wait_for_requests(1).await;
        assert_eq!(requests[0].status, None);
        assert!(!in_flight.is_finished());
        in_flight.abort();

        let reply = Client::new(&jira).get("/rest/api/3/issue/OPS-1").await;
        assert_eq!(reply.status, 404, "only the scripted request hangs");
        jira.stop();
    }

    #[tokio::test]
    async fn an_enforced_gap_answers_429_and_counts_violations() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        jira.enforce_min_gap(Duration::from_secs(2));
        assert_eq!(client.create("3", "first", &[]).await, "OPS-1");
        let too_soon = client.get("/rest/api/3/issue/OPS-1").await;
        assert_eq!(too_soon.status, 429);
        assert_eq!(too_soon.header("retry-after"), Some("2"));
        assert_eq!(jira.violations(), 1);

        clock.advance(Duration::from_millis(1500));
        let still_soon = client.get("/rest/api/3/issue/OPS-1").await;
        assert_eq!(
            (still_soon.status, still_soon.header("retry-after")),
            (429, Some("1"))
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(client.get("/rest/api/3/issue/OPS-1").await.status, 200);
        assert_eq!(jira.violations(), 2);
    }

    #[tokio::test]
    async fn by_hand_changes_show_through_the_api_and_wait_until_sees_requests() {
        let clock = clock();
        let (jira, client) = cloud(&clock).await;
        let key = jira.create_issue_by_hand("OPS", "made by a person", &["ALERT{h}"]);
        jira.transition_by_hand(&key, Status::Done, Some("Won't Do"));
        let read = client.get(&format!("/rest/api/3/issue/{key}")).await;
        assert_eq!(
            read.body["fields"]["status"]["statusCategory"]["key"],
            "done"
        );
        assert_eq!(read.body["fields"]["resolution"]["name"], "Won't Do");
        let open = client
            .search_jql(
                r#"labels = "ALERT{h}" AND statusCategory != Done"#,
                &["status"],
            )
            .await;
        assert_eq!(open.body["issues"], json!([]));
        let change = &jira.issue(&key).unwrap().history[0];
        assert_eq!(
            (change.from, change.to, change.via.as_str()),
            (Status::ToDo, Status::Done, "by hand")
        );

        let creator = Client::new(&jira);
        let task =
            tokio::spawn(async move { creator.create("3", "from a task", &["ALERT{t}"]).await });
        jira.wait_until("the issue exists", |jira| {
            !jira.issues_with_label("ALERT{t}").is_empty()
        })
        .await;
        assert_eq!(task.await.unwrap(), "OPS-2");
    }

    #[test]
    fn request_patterns_glob_within_segments() {
        let pattern = RequestPattern::new("POST", "/rest/api/*/issue/*/comment");
        assert!(pattern.matches(&Method::POST, "/rest/api/3/issue/OPS-1/comment"));
        assert!(!pattern.matches(&Method::GET, "/rest/api/3/issue/OPS-1/comment"));
        assert!(!pattern.matches(&Method::POST, "/rest/api/3/issue/OPS/1/comment"));
        assert!(RequestPattern::path("/rest/api/3/*").matches(&Method::PUT, "/rest/api/3/issue"));
        assert!(
            !RequestPattern::path("/rest/api/3/*").matches(&Method::PUT, "/rest/api/3/issue/OPS-1")
        );
        assert!(RequestPattern::any().matches(&Method::DELETE, "/anything"));
    }

    #[test]
    fn plain_text_flattens_documents() {
        let document = json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "DiskFull"}]},
            {"type": "paragraph", "content": [
                {"type": "text", "text": "db-1"}, {"type": "hardBreak"}, {"type": "text", "text": "db-2"}]},
        ]});
        assert!(is_adf_document(&document));
        assert_eq!(plain_text(&document), "DiskFull\ndb-1\ndb-2");
        assert_eq!(plain_text(&json!("wiki *markup*")), "wiki *markup*");
        assert!(!is_adf_document(
            &json!({"type": "doc", "version": 1, "content": [{"type": "text", "text": ""}]})
        ));
    }
}
