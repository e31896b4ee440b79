//! The Jira REST client the sink uses: Cloud's v3 or Data Center's v2 paths, the `Authorization` header (Basic
//! email:token or Bearer PAT), the calls herald makes (search, read, create, edit and transition, each with an
//! optional comment), and the reading of Jira's answers into what herald needs or into a `SinkError` that quotes
//! Jira's error body.
//!
//! Secrets (the token, the encoded credentials, the header value) never reach a reason, a log line or a kept body:
//! every kept answer goes through `http::redact`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::config::{JiraApi, JiraAuth, Secret};
use crate::sinks::http::{self, Answer, RateLimitHints};
use crate::sinks::httpclient::HttpClient;
use crate::sinks::{Response, SinkError};

/// The fields herald reads of an issue.
const ISSUE_FIELDS: [&str; 4] = ["status", "resolution", "resolutiondate", "updated"];

/// How many characters of Jira's error text a reason quotes.
const DETAIL_CHARS: usize = 300;

/// An issue as herald needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub key: String,
    pub id: Option<String>,
    /// The status's name, for messages.
    pub status: Option<String>,
    /// Its status is in the `done` category.
    pub done: bool,
    /// The resolution's name, when resolved.
    pub resolution: Option<String>,
    /// `resolutiondate`: when it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// `updated`: when it last changed.
    pub updated: Option<DateTime<Utc>>,
}

/// A transition offered for an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: String,
    pub name: String,
    /// The status it leads to.
    pub to_status: Option<String>,
    /// That status's category key: `new`, `indeterminate` or `done`.
    pub to_category: Option<String>,
}

/// A call that failed: the issue is gone (404), or anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The issue with this key answered 404: deleted, moved, or no longer visible.
    Vanished(String),
    Failed(SinkError),
}

impl From<SinkError> for CallError {
    fn from(error: SinkError) -> Self {
        CallError::Failed(error)
    }
}

/// What one send did, for the delivery's audit trail: the last status Jira answered, the longest slow-down any
/// answer asked for, and each step taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trail {
    status: Option<u16>,
    slow_down: Option<Duration>,
    steps: Vec<String>,
}

impl Trail {
    fn note(&mut self, answer: &Answer) {
        self.status = Some(answer.status.as_u16());
        let wait = RateLimitHints::from_headers(&answer.headers, answer.now).slow_down();
        self.slow_down = self.slow_down.max(wait);
    }

    /// Records a step (`created OPS-3`).
    pub fn step(&mut self, text: impl Into<String>) {
        self.steps.push(text.into());
    }

    /// The kept response of a successful send: the last status, the steps, and the slow-down.
    pub fn response(&self) -> Response {
        Response {
            status: self.status,
            body: http::redact(&self.steps.join("; "), &[]),
            slow_down: self.slow_down,
        }
    }
}

/// A Jira site's REST API.
#[derive(Debug, Clone)]
pub struct Client {
    http: HttpClient,
    base: String,
    api: JiraApi,
    authorization: Secret,
    /// Redacted from everything kept: the token, the encoded credentials and the header value.
    secrets: Vec<Secret>,
    clock: Arc<dyn Clock>,
}

/// The `Authorization` header value and the secrets it holds.
fn authorization(auth: &JiraAuth) -> (Secret, Vec<Secret>) {
    match auth {
        JiraAuth::Basic { user, token } => {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", token.expose()));
            let value = format!("Basic {encoded}");
            let secrets = vec![token.clone(), Secret::new(encoded), Secret::new(&value)];
            (Secret::new(value), secrets)
        }
        JiraAuth::Bearer { token } => {
            let value = format!("Bearer {}", token.expose());
            let secrets = vec![token.clone(), Secret::new(&value)];
            (Secret::new(value), secrets)
        }
    }
}

impl Client {
    pub fn new(
        http: impl Into<HttpClient>,
        base: &str,
        api: JiraApi,
        auth: &JiraAuth,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let http = http.into();
        let (authorization, mut secrets) = authorization(auth);
        secrets.extend(http.secrets().into_iter().map(Secret::new));
        Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api,
            authorization,
            secrets,
            clock,
        }
    }

    pub fn api(&self) -> JiraApi {
        self.api
    }

    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(Secret::expose).collect()
    }

    /// `{base}/rest/api/{3|2}/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, SinkError> {
        let invalid = || SinkError::permanent("api_url is not a valid base URL");
        let mut url = reqwest::Url::parse(&self.base).map_err(|_| invalid())?;
        let version = match self.api {
            JiraApi::Cloud => "3",
            JiraApi::DataCenter => "2",
        };
        url.path_segments_mut()
            .map_err(|()| invalid())?
            .pop_if_empty()
            .extend(["rest", "api", version])
            .extend(segments);
        Ok(url)
    }

    /// Sends one request and reads the answer, whatever its status. `Err` means no answer arrived (refused,
    /// reset, timed out): the request may or may not have been carried out.
    pub async fn send(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<&Value>,
    ) -> Result<Answer, SinkError> {
        let secrets = self.secrets();
        let mut authorization =
            HeaderValue::from_str(self.authorization.expose()).map_err(|_| {
                SinkError::permanent("the Jira credentials are not a valid HTTP header value")
            })?;
        authorization.set_sensitive(true);
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|error| {
                SinkError::permanent(format!("cannot encode the request: {error}"))
            })?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let response = self.http.send(request, &secrets).await?;
        Ok(Answer::read(response, self.clock.now()).await)
    }

    /// Checks an answer: a success is kept in the trail and returned; a 404 on `issue` is `Vanished`; anything
    /// else is a `SinkError` naming `action`.
    fn expect_success(
        &self,
        answer: Answer,
        action: &str,
        issue: Option<&str>,
        trail: &mut Trail,
    ) -> Result<Answer, CallError> {
        trail.note(&answer);
        if answer.status.is_success() {
            return Ok(answer);
        }
        if let Some(key) = issue
            && answer.status == StatusCode::NOT_FOUND
        {
            return Err(CallError::Vanished(key.to_owned()));
        }
        Err(CallError::Failed(failure(&answer, &self.secrets(), action)))
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        action: &str,
        issue: Option<&str>,
        trail: &mut Trail,
    ) -> Result<Answer, CallError> {
        let url = self.url(segments)?;
        let answer = self.send(method, url, body).await?;
        self.expect_success(answer, action, issue, trail)
    }

    /// The newest issue `jql` finds: Cloud's `POST /rest/api/3/search/jql`, Data Center's `POST /rest/api/2/search`.
    pub async fn search(&self, jql: &str, trail: &mut Trail) -> Result<Option<Issue>, SinkError> {
        let (segments, body): (&[&str], Value) = match self.api {
            JiraApi::Cloud => (
                &["search", "jql"],
                json!({"jql": jql, "fields": ISSUE_FIELDS, "maxResults": 1}),
            ),
            JiraApi::DataCenter => (
                &["search"],
                json!({"jql": jql, "fields": ISSUE_FIELDS, "maxResults": 1, "startAt": 0}),
            ),
        };
        let answer = self
            .call(
                Method::POST,
                segments,
                Some(&body),
                "search for the group's issue",
                None,
                trail,
            )
            .await
            .map_err(into_sink_error)?;
        let value = parse_json(&answer, "search")?;
        match value["issues"].as_array() {
            Some(issues) => Ok(issues.first().and_then(parse_issue)),
            None => Err(unexpected("search", "no issues list")),
        }
    }

    /// Reads issue `key`'s status and resolution.
    pub async fn issue(&self, key: &str, trail: &mut Trail) -> Result<Issue, CallError> {
        let mut url = self.url(&["issue", key])?;
        url.query_pairs_mut()
            .append_pair("fields", &ISSUE_FIELDS.join(","));
        let answer = self.send(Method::GET, url, None).await?;
        let answer = self.expect_success(answer, &format!("read {key}"), Some(key), trail)?;
        let value = parse_json(&answer, "issue")?;
        parse_issue(&value).ok_or_else(|| unexpected("issue", "no key").into())
    }

    /// The URL issues are created at.
    pub fn create_url(&self) -> Result<reqwest::Url, SinkError> {
        self.url(&["issue"])
    }

    /// Reads the answer to a create: the new issue's key and id.
    pub fn created(&self, answer: Answer, trail: &mut Trail) -> Result<Issue, SinkError> {
        let answer = self
            .expect_success(answer, "create the issue", None, trail)
            .map_err(into_sink_error)?;
        let value = parse_json(&answer, "create")?;
        let key = value["key"]
            .as_str()
            .filter(|key| !key.is_empty())
            .ok_or_else(|| unexpected("create", "no key"))?;
        Ok(Issue {
            key: key.to_owned(),
            id: value["id"].as_str().map(str::to_owned),
            status: None,
            done: false,
            resolution: None,
            resolved_at: None,
            updated: None,
        })
    }

    /// Edits issue `key`'s fields and adds `comment` (ADF or wiki markup) in the same request, so a retry never
    /// finds one done without the other.
    pub async fn edit(
        &self,
        key: &str,
        fields: Map<String, Value>,
        comment: Option<Value>,
        trail: &mut Trail,
    ) -> Result<(), CallError> {
        let mut body = json!({"fields": fields});
        add_comment(&mut body, comment);
        let action = format!("edit {key}");
        self.call(
            Method::PUT,
            &["issue", key],
            Some(&body),
            &action,
            Some(key),
            trail,
        )
        .await
        .map(drop)
    }

    /// The transitions issue `key` offers now.
    pub async fn transitions(
        &self,
        key: &str,
        trail: &mut Trail,
    ) -> Result<Vec<Transition>, CallError> {
        let action = format!("list {key}'s transitions");
        let answer = self
            .call(
                Method::GET,
                &["issue", key, "transitions"],
                None,
                &action,
                Some(key),
                trail,
            )
            .await?;
        let value = parse_json(&answer, "transitions")?;
        let list = value["transitions"]
            .as_array()
            .ok_or_else(|| unexpected("transitions", "no transitions list"))?;
        Ok(list.iter().filter_map(parse_transition).collect())
    }

    /// Runs `transition` on issue `key`, adding `comment` in the same request.
    pub async fn transition(
        &self,
        key: &str,
        transition: &Transition,
        comment: Option<Value>,
        trail: &mut Trail,
    ) -> Result<(), CallError> {
        let mut body = json!({"transition": {"id": transition.id}});
        add_comment(&mut body, comment);
        let action = format!("transition {key} with {:?}", transition.name);
        self.call(
            Method::POST,
            &["issue", key, "transitions"],
            Some(&body),
            &action,
            Some(key),
            trail,
        )
        .await
        .map(drop)
    }
}

/// Adds `comment` to an edit or transition body as an `update.comment` operation.
fn add_comment(body: &mut Value, comment: Option<Value>) {
    if let Some(comment) = comment {
        body["update"] = json!({"comment": [{"add": {"body": comment}}]});
    }
}

/// A 404 where no issue was named is a plain failure.
fn into_sink_error(error: CallError) -> SinkError {
    match error {
        CallError::Failed(error) => error,
        CallError::Vanished(key) => SinkError::retryable(format!("{key} was not found")),
    }
}

/// A 2xx answer herald cannot read: retried, since a create may have gone through (the retry searches first).
fn unexpected(what: &str, problem: &str) -> SinkError {
    SinkError::retryable(format!(
        "unexpected answer from Jira to the {what}: {problem}"
    ))
}

fn parse_json(answer: &Answer, what: &str) -> Result<Value, SinkError> {
    serde_json::from_str(&answer.body)
        .map_err(|error| unexpected(what, &format!("not JSON ({error})")))
}

/// Jira's timestamps: `2026-11-21T12:00:00.000+0000`, or RFC 3339.
pub fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    let text = value.as_str()?;
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|time| time.to_utc())
}

/// An issue from a search result or a read.
pub fn parse_issue(value: &Value) -> Option<Issue> {
    let key = value["key"].as_str().filter(|key| !key.is_empty())?;
    let fields = &value["fields"];
    let status = &fields["status"];
    Some(Issue {
        key: key.to_owned(),
        id: value["id"].as_str().map(str::to_owned),
        status: status["name"].as_str().map(str::to_owned),
        done: status["statusCategory"]["key"]
            .as_str()
            .is_some_and(|category| category.eq_ignore_ascii_case("done")),
        resolution: fields["resolution"]["name"].as_str().map(str::to_owned),
        resolved_at: parse_time(&fields["resolutiondate"]),
        updated: parse_time(&fields["updated"]),
    })
}

fn parse_transition(value: &Value) -> Option<Transition> {
    let id = match &value["id"] {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    Some(Transition {
        id,
        name: value["name"].as_str().unwrap_or_default().to_owned(),
        to_status: value["to"]["name"].as_str().map(str::to_owned),
        to_category: value["to"]["statusCategory"]["key"]
            .as_str()
            .map(str::to_owned),
    })
}

/// Jira's error text from a body: `errorMessages` and `errors` (`field: message`), or `message`; else the body's
/// start on one line.
pub fn error_detail(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().map(|value| {
        let mut parts: Vec<String> = value["errorMessages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        if let Some(errors) = value["errors"].as_object() {
            parts.extend(errors.iter().map(|(field, message)| {
                let message = message
                    .as_str()
                    .map_or_else(|| message.to_string(), str::to_owned);
                format!("{field}: {message}")
            }));
        }
        if let Some(message) = value["message"].as_str() {
            parts.push(message.to_owned());
        }
        parts.join("; ")
    });
    let detail = from_json
        .filter(|detail| !detail.is_empty())
        .unwrap_or_else(|| body.split_whitespace().collect::<Vec<_>>().join(" "));
    detail.chars().take(DETAIL_CHARS).collect()
}

/// A failed answer as a `SinkError` naming `action`, with the redacted answer kept for the audit trail:
/// 429, and 503 with `Retry-After` or `X-RateLimit-Reset`, are rate limits; 400 (Jira's `errorMessages` and
/// `errors`), 401, 403, 404 and 410 are permanent; 5xx retryable; anything else as `Answer::classify` says.
pub fn failure(answer: &Answer, secrets: &[&str], action: &str) -> SinkError {
    let response = answer.response(secrets);
    let detail = http::redact(&error_detail(&answer.body), secrets);
    let status = answer.status;
    let with_detail = |text: String| {
        if detail.is_empty() {
            text
        } else {
            format!("{text}: {detail}")
        }
    };
    let permanent = |reason: String| SinkError::Permanent {
        reason,
        response: Some(response.clone()),
    };
    match status.as_u16() {
        429 => SinkError::RateLimited {
            retry_after: answer.retry_after(),
            response: Some(response),
        },
        503 if answer.retry_after().is_some() => SinkError::RateLimited {
            retry_after: answer.retry_after(),
            response: Some(response),
        },
        400 => permanent(with_detail(format!(
            "Jira rejected the request to {action} (HTTP {status})"
        ))),
        401 | 403 => permanent(format!(
            "{}; check the credentials (user and api_token, or personal_access_token) and the account's \
             permissions on the project",
            with_detail(format!("Jira refused to {action} (HTTP {status})"))
        )),
        404 => permanent(format!(
            "{}; check api_url and api_type (Data Center has no REST v3)",
            with_detail(format!(
                "Jira has no such resource to {action} (HTTP {status})"
            ))
        )),
        410 => permanent(with_detail(format!(
            "Jira removed the API herald used to {action} (HTTP {status})"
        ))),
        _ => match answer.classify(secrets) {
            Err(error) => error,
            Ok(_) => SinkError::Retryable {
                reason: with_detail(format!("unexpected answer to {action} (HTTP {status})")),
                response: Some(response),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let headers: HeaderMap = headers
            .iter()
            .map(|(name, value)| {
                (
                    reqwest::header::HeaderName::from_static(name),
                    value.parse().unwrap(),
                )
            })
            .collect();
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.to_owned(),
            now: now(),
        }
    }

    const SECRET: &str = "s3cr3t-token";

    fn classify(status: u16, headers: &[(&'static str, &str)], body: &str) -> SinkError {
        failure(
            &answer(status, headers, body),
            &[SECRET],
            "create the issue",
        )
    }

    #[test]
    fn bad_requests_are_permanent_and_keep_jira_s_body_verbatim() {
        let body = r#"{"errorMessages":[],"errors":{"issuetype":"valid issue type is required","customfield_1":"bad"}}"#;
        let error = classify(400, &[], body);
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
        assert_eq!(error.response().unwrap().body, body);
        assert_eq!(error.response().unwrap().status, Some(400));
        assert_eq!(
            error.to_string(),
            "Jira rejected the request to create the issue (HTTP 400 Bad Request): \
             customfield_1: bad; issuetype: valid issue type is required"
        );
        let messages = classify(
            400,
            &[],
            r#"{"errorMessages":["The value 'NOPE' does not exist for the field 'project'."],"errors":{}}"#,
        );
        assert!(
            messages
                .to_string()
                .ends_with(": The value 'NOPE' does not exist for the field 'project'."),
            "{messages}"
        );
    }

    #[test]
    fn credentials_and_missing_resources_are_permanent_with_hints() {
        let json = classify(
            401,
            &[],
            r#"{"message":"Client must be authenticated","status-code":401}"#,
        );
        assert!(matches!(json, SinkError::Permanent { .. }));
        assert!(
            json.to_string()
                .starts_with("Jira refused to create the issue (HTTP 401 Unauthorized): Client must be authenticated; check the credentials"),
            "{json}"
        );
        let text = classify(403, &[], &format!("Forbidden for token {SECRET}"));
        assert!(matches!(text, SinkError::Permanent { .. }));
        assert!(!format!("{text:?}").contains(SECRET), "{text:?}");
        assert!(text.to_string().contains("Forbidden for token <redacted>"));
        let missing = classify(404, &[], "Not Found");
        assert!(
            missing.to_string().contains("check api_url and api_type"),
            "{missing}"
        );
        let gone = classify(
            410,
            &[],
            r#"{"errorMessages":["The requested API has been removed."],"errors":{}}"#,
        );
        assert!(matches!(gone, SinkError::Permanent { .. }));
        assert_eq!(
            gone.to_string(),
            "Jira removed the API herald used to create the issue (HTTP 410 Gone): The requested API has been removed."
        );
    }

    #[test]
    fn rate_limits_and_unavailability() {
        let limited = classify(429, &[("retry-after", "7")], "{}");
        assert_eq!(
            limited,
            SinkError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
                response: Some(answer(429, &[], "{}").response(&[])),
            }
        );
        let reset_only = classify(429, &[("x-ratelimit-reset", "2026-11-21T12:00:30Z")], "");
        assert!(
            matches!(reset_only, SinkError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(30))
        );
        let unavailable = classify(503, &[("x-ratelimit-reset", "2026-11-21T12:01Z")], "");
        assert!(
            matches!(unavailable, SinkError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(60)),
            "{unavailable:?}"
        );
        let plain = classify(503, &[], "Service Unavailable");
        assert!(matches!(plain, SinkError::Retryable { .. }), "{plain:?}");
        let server = classify(500, &[], r#"{"errorMessages":["Internal server error"]}"#);
        assert!(matches!(server, SinkError::Retryable { .. }));
    }

    #[test]
    fn the_trail_keeps_the_longest_slow_down() {
        let mut trail = Trail::default();
        trail.note(&answer(
            200,
            &[
                ("x-ratelimit-nearlimit", "true"),
                ("x-ratelimit-remaining", "2"),
                ("x-ratelimit-reset", "2026-11-21T12:00:10Z"),
            ],
            "",
        ));
        trail.note(&answer(204, &[], ""));
        trail.step("updated OPS-1");
        trail.step("commented");
        let response = trail.response();
        assert_eq!(response.status, Some(204));
        assert_eq!(response.body, "updated OPS-1; commented");
        assert_eq!(response.slow_down, Some(Duration::from_secs(5)));
    }

    #[test]
    fn issues_and_transitions_parse() {
        let issue = parse_issue(&json!({"id": "10001", "key": "OPS-2", "fields": {
            "status": {"name": "Done", "statusCategory": {"key": "done"}},
            "resolution": {"name": "Won't Do"},
            "resolutiondate": "2026-11-21T12:00:00.000+0000",
            "updated": "2026-11-21T13:00:00.000+0100"}}))
        .unwrap();
        assert_eq!(issue.key, "OPS-2");
        assert!(issue.done);
        assert_eq!(issue.resolution.as_deref(), Some("Won't Do"));
        assert_eq!(issue.resolved_at, Some(now()));
        assert_eq!(issue.updated, Some(now()));
        let open = parse_issue(&json!({"key": "OPS-3", "fields": {
            "status": {"name": "To Do", "statusCategory": {"key": "new"}}, "resolution": null,
            "resolutiondate": null}}))
        .unwrap();
        assert!(!open.done);
        assert_eq!((open.resolution, open.resolved_at), (None, None));
        assert_eq!(parse_issue(&json!({"id": "1"})), None);

        let transition = parse_transition(&json!({"id": 41, "name": "Reopen",
            "to": {"name": "To Do", "statusCategory": {"key": "new"}}}))
        .unwrap();
        assert_eq!(
            transition,
            Transition {
                id: "41".into(),
                name: "Reopen".into(),
                to_status: Some("To Do".into()),
                to_category: Some("new".into()),
            }
        );
    }

    #[test]
    fn authorization_headers_and_their_secrets() {
        let basic = JiraAuth::Basic {
            user: "a@example.com".into(),
            token: Secret::new("tok"),
        };
        let (value, secrets) = authorization(&basic);
        let encoded = base64::engine::general_purpose::STANDARD.encode("a@example.com:tok");
        assert_eq!(value.expose(), format!("Basic {encoded}"));
        let exposed: Vec<&str> = secrets.iter().map(Secret::expose).collect();
        assert!(exposed.contains(&"tok") && exposed.contains(&encoded.as_str()));
        let (value, _) = authorization(&JiraAuth::Bearer {
            token: Secret::new("pat"),
        });
        assert_eq!(value.expose(), "Bearer pat");
    }

    #[test]
    fn urls_use_the_api_version_and_encode_segments() {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let auth = JiraAuth::Bearer {
            token: Secret::new("pat"),
        };
        let cloud = Client::new(
            reqwest::Client::new(),
            "https://x.atlassian.net/",
            JiraApi::Cloud,
            &auth,
            Arc::clone(&clock),
        );
        assert_eq!(
            cloud.url(&["search", "jql"]).unwrap().as_str(),
            "https://x.atlassian.net/rest/api/3/search/jql"
        );
        let dc = Client::new(
            reqwest::Client::new(),
            "https://jira.example/ctx",
            JiraApi::DataCenter,
            &auth,
            clock,
        );
        assert_eq!(
            dc.url(&["issue", "OPS 1/x"]).unwrap().as_str(),
            "https://jira.example/ctx/rest/api/2/issue/OPS%201%2Fx"
        );
    }
}
