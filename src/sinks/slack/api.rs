//! Slack's answers: the Web API (`chat.postMessage`, `chat.update` with a bot token), whose errors come as HTTP 200
//! `{"ok":false,"error":CODE}`, and incoming webhooks, which answer `ok` or a plain-text error. Each answer becomes
//! a result or a `SinkError` with a readable reason and the answer kept with secrets redacted.
//!
//! Error codes: `ratelimited`/`rate_limited` are rate limits (Retry-After, else 30 s); codes that say the request,
//! the token or the channel is wrong are permanent; `internal_error`, `service_unavailable`, `fatal_error`,
//! `request_timeout` are retryable, and so is any code not listed: Slack adds codes over time, retries are bounded
//! by the retry policy, and a delivery that runs out of them is dead-lettered with the code in its reason, to be
//! replayed once fixed, where a wrong guess of "permanent" would drop a notification at the first transient error.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use crate::clock::Clock;
use crate::config::Secret;
use crate::sinks::http::{self, Answer};
use crate::sinks::httpclient::HttpClient;
use crate::sinks::{Receipt, Response, SinkError};

/// The wait after a Web API rate limit that named none (Slack's usual `Retry-After` for chat methods).
pub const API_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The wait after an incoming webhook's 429 that named none (about one message per second per webhook).
pub const WEBHOOK_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How many characters of an error code a reason quotes.
const CODE_CHARS: usize = 100;

/// Codes that mean trying again cannot help.
const PERMANENT: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
    "not_allowed_token_type",
    "no_permission",
    "access_denied",
    "restricted_action",
    "ekm_access_denied",
    "team_access_not_granted",
    "two_factor_setup_required",
    "org_login_required",
    "enterprise_is_restricted",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_attachments",
    "too_many_attachments",
    "no_text",
    "invalid_arguments",
    "invalid_arg_name",
    "invalid_array_arg",
    "invalid_charset",
    "invalid_form_data",
    "invalid_post_type",
    "invalid_json",
    "json_not_object",
    "unknown_method",
    "method_deprecated",
    "deprecated_endpoint",
    "thread_not_found",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];

/// Codes of a passing trouble at Slack.
const RETRYABLE: &[&str] = &[
    "internal_error",
    "service_unavailable",
    "fatal_error",
    "request_timeout",
];

/// What a code means for an operator, when the code alone may not say.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_auth" | "not_authed" => "the token is not valid",
        "token_revoked" | "token_expired" => "the token was revoked or has expired",
        "account_inactive" => "the bot's account is deactivated",
        "missing_scope" => "the token lacks the chat:write scope",
        "channel_not_found" => "no such channel, or the bot cannot see it",
        "not_in_channel" => "invite the bot to the channel",
        "is_archived" => "the channel is archived",
        "cant_update_message" => "the message was posted by another bot or token",
        "edit_window_closed" => "the message is too old to edit",
        "message_not_found" => "the message was deleted",
        _ => return None,
    })
}

/// How a Web API call or webhook post failed: the `SinkError`, and Slack's error code when it gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: Option<String>,
    pub error: SinkError,
}

impl From<SinkError> for Failure {
    fn from(error: SinkError) -> Self {
        Failure { code: None, error }
    }
}

impl From<Failure> for SinkError {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

impl Failure {
    /// Whether the message to update can no longer be edited (deleted, another bot's, too old).
    pub fn message_gone(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("message_not_found" | "cant_update_message" | "edit_window_closed")
        )
    }
}

/// Classifies a Web API error code answered by `method`.
pub fn classify_code(
    method: &str,
    code: &str,
    retry_after: Option<Duration>,
    response: Option<Response>,
) -> SinkError {
    let short: String = code.chars().take(CODE_CHARS).collect();
    let reason = match hint(code) {
        Some(hint) => format!("Slack {method}: {short} ({hint})"),
        None => format!("Slack {method}: {short}"),
    };
    if matches!(code, "ratelimited" | "rate_limited") {
        return SinkError::RateLimited {
            retry_after: Some(retry_after.unwrap_or(API_RETRY_AFTER)),
            response,
        };
    }
    if PERMANENT.contains(&code) {
        return SinkError::Permanent { reason, response };
    }
    let reason = if RETRYABLE.contains(&code) {
        reason
    } else {
        format!("{reason} (unknown error code; retrying)")
    };
    SinkError::Retryable { reason, response }
}

/// What a successful Web API call answered: the channel id and message `ts`, and the answer kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    pub response: Response,
}

/// Reads a Web API answer to `method`.
pub fn web_api_answer(method: &str, answer: &Answer, secrets: &[&str]) -> Result<Posted, Failure> {
    if !answer.status.is_success() {
        let code = error_code(&answer.body).map(|code| http::redact(&code, secrets));
        let error = with_default_wait(answer.classify(secrets), API_RETRY_AFTER);
        let error = name_method(method, error.err().unwrap_or_else(|| unexpected(method)));
        return Err(Failure { code, error });
    }
    let response = answer.response(secrets);
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&answer.body) else {
        return Err(SinkError::Retryable {
            reason: format!("Slack {method}: the answer is not a JSON object"),
            response: Some(response),
        }
        .into());
    };
    if body.get("ok") != Some(&Value::Bool(true)) {
        let code = body.get("error").and_then(Value::as_str).map_or_else(
            || "unknown_error".to_owned(),
            |code| http::redact(code, secrets),
        );
        let error = classify_code(method, &code, answer.retry_after(), Some(response));
        return Err(Failure {
            code: Some(code),
            error,
        });
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    match (text("channel"), text("ts")) {
        (Some(channel), Some(ts)) if !channel.is_empty() && !ts.is_empty() => Ok(Posted {
            channel,
            ts,
            response,
        }),
        _ => Err(SinkError::Retryable {
            reason: format!("Slack {method}: the answer has no channel and ts"),
            response: Some(response),
        }
        .into()),
    }
}

/// Reads an incoming webhook's answer: 2xx delivered; 429 rate limited (Retry-After, else 1 s); 5xx retryable;
/// other 4xx permanent, naming Slack's plain-text error.
pub fn webhook_answer(answer: &Answer, secrets: &[&str]) -> Result<Receipt, SinkError> {
    match with_default_wait(answer.classify(secrets), WEBHOOK_RETRY_AFTER) {
        Ok(receipt) => Ok(receipt),
        Err(error) => Err(prefix("Slack webhook", error)),
    }
}

/// A rate limit that named no wait gets `wait`.
fn with_default_wait(
    result: Result<Receipt, SinkError>,
    wait: Duration,
) -> Result<Receipt, SinkError> {
    match result {
        Err(SinkError::RateLimited {
            retry_after: None,
            response,
        }) => Err(SinkError::RateLimited {
            retry_after: Some(wait),
            response,
        }),
        other => other,
    }
}

fn name_method(method: &str, error: SinkError) -> SinkError {
    prefix(&format!("Slack {method}"), error)
}

/// `what: reason` for reasons; rate limits keep their own text.
pub fn prefix(what: &str, error: SinkError) -> SinkError {
    match error {
        SinkError::Retryable { reason, response } => SinkError::Retryable {
            reason: format!("{what}: {reason}"),
            response,
        },
        SinkError::Permanent { reason, response } => SinkError::Permanent {
            reason: format!("{what}: {reason}"),
            response,
        },
        limited @ SinkError::RateLimited { .. } => limited,
    }
}

fn unexpected(method: &str) -> SinkError {
    SinkError::retryable(format!("Slack {method}: unexpected answer"))
}

/// `error` of a JSON body, when there is one.
fn error_code(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value.get("error")?.as_str().map(str::to_owned)
}

/// A Web API client for one bot token.
#[derive(Debug, Clone)]
pub struct WebApi {
    /// The base, without a trailing slash (`https://slack.com/api`).
    base: String,
    token: Secret,
    client: HttpClient,
    clock: Arc<dyn Clock>,
}

impl WebApi {
    pub fn new(
        base: &str,
        token: Secret,
        client: impl Into<HttpClient>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        WebApi {
            base: base.trim().trim_end_matches('/').to_owned(),
            token,
            client: client.into(),
            clock,
        }
    }

    /// `{base}/{method}`.
    pub fn url(&self, method: &str) -> String {
        format!("{}/{method}", self.base)
    }

    /// POSTs `body` as JSON to `method` with the bot token; the message's channel and `ts` on success.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Posted, Failure> {
        let secrets = [self.token.expose()];
        let bytes = serde_json::to_vec(body).map_err(|error| {
            SinkError::permanent(format!("cannot encode the Slack message: {error}"))
        })?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
            .map_err(|_| {
            SinkError::permanent("the Slack token is not a valid HTTP header value")
        })?;
        authorization.set_sensitive(true);
        let request = self
            .client
            .post(self.url(method))
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(bytes);
        let response = self
            .client
            .send(request, &secrets)
            .await
            .map_err(|error| name_method(method, error))?;
        let answer = Answer::read(response, self.clock.now()).await;
        let own = self.client.secrets();
        let secrets: Vec<&str> = secrets
            .into_iter()
            .chain(own.iter().map(String::as_str))
            .collect();
        web_api_answer(method, &answer, &secrets)
    }
}

#[cfg(test)]
mod tests {
    use axum::http;
    use chrono::{DateTime, Utc};

    use super::*;

    const TOKEN: &str = "xoxb-s3cr3t";

    fn now() -> DateTime<Utc> {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    async fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        Answer::read(
            reqwest::Response::from(builder.body(body.to_owned()).unwrap()),
            now(),
        )
        .await
    }

    async fn api(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Result<Posted, Failure> {
        web_api_answer(
            "chat.postMessage",
            &answer(status, headers, body).await,
            &[TOKEN],
        )
    }

    #[test]
    fn error_codes_are_classified() {
        for code in [
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "account_inactive",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
            "invalid_blocks",
            "no_text",
            "cant_update_message",
            "edit_window_closed",
        ] {
            let error = classify_code("chat.update", code, None, None);
            assert!(
                matches!(error, SinkError::Permanent { .. }),
                "{code}: {error:?}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("Slack chat.update: {code}"))
            );
        }
        for code in [
            "internal_error",
            "service_unavailable",
            "fatal_error",
            "request_timeout",
        ] {
            let error = classify_code("chat.update", code, None, None);
            assert!(
                matches!(error, SinkError::Retryable { .. }),
                "{code}: {error:?}"
            );
            assert_eq!(error.to_string(), format!("Slack chat.update: {code}"));
        }
        let unknown = classify_code("chat.update", "brand_new_error", None, None);
        assert!(matches!(unknown, SinkError::Retryable { .. }));
        assert!(
            unknown.to_string().contains("unknown error code"),
            "{unknown}"
        );
        for code in ["ratelimited", "rate_limited"] {
            assert_eq!(
                classify_code("chat.update", code, None, None),
                SinkError::RateLimited {
                    retry_after: Some(API_RETRY_AFTER),
                    response: None
                }
            );
        }
        let told = classify_code("x", "ratelimited", Some(Duration::from_secs(7)), None);
        assert!(
            matches!(told, SinkError::RateLimited { retry_after: Some(w), .. } if w == Duration::from_secs(7))
        );
        let hinted = classify_code("chat.postMessage", "not_in_channel", None, None);
        assert_eq!(
            hinted.to_string(),
            "Slack chat.postMessage: not_in_channel (invite the bot to the channel)"
        );
    }

    #[tokio::test]
    async fn success_keeps_the_channel_id_and_ts() {
        let posted = api(
            200,
            &[],
            r#"{"ok":true,"channel":"C123ABC456","ts":"1503435956.000247","message":{"text":"x"}}"#,
        )
        .await
        .unwrap();
        assert_eq!(
            (posted.channel.as_str(), posted.ts.as_str()),
            ("C123ABC456", "1503435956.000247")
        );
        assert_eq!(posted.response.status, Some(200));
        let missing = api(200, &[], r#"{"ok":true}"#).await.unwrap_err();
        assert!(matches!(missing.error, SinkError::Retryable { .. }));
    }

    #[tokio::test]
    async fn in_body_errors_keep_their_code_and_the_redacted_answer() {
        let failure = api(
            200,
            &[],
            &format!(r#"{{"ok":false,"error":"channel_not_found","token":"{TOKEN}"}}"#),
        )
        .await
        .unwrap_err();
        assert_eq!(failure.code.as_deref(), Some("channel_not_found"));
        assert!(matches!(failure.error, SinkError::Permanent { .. }));
        let kept = failure.error.response().unwrap();
        assert!(!kept.body.contains(TOKEN), "{}", kept.body);
        assert!(kept.body.contains("<redacted>"));

        let limited = api(
            200,
            &[("retry-after", "12")],
            r#"{"ok":false,"error":"ratelimited"}"#,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(limited.error, SinkError::RateLimited { retry_after: Some(w), .. } if w == Duration::from_secs(12))
        );

        let gone = web_api_answer(
            "chat.update",
            &answer(200, &[], r#"{"ok":false,"error":"message_not_found"}"#).await,
            &[],
        )
        .unwrap_err();
        assert!(gone.message_gone());
        let not_json = api(200, &[], "<html>oops</html>").await.unwrap_err();
        assert!(matches!(not_json.error, SinkError::Retryable { .. }));
    }

    #[tokio::test]
    async fn http_errors_are_classified_by_status() {
        let limited = api(
            429,
            &[("retry-after", "30")],
            r#"{"ok":false,"error":"ratelimited"}"#,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(limited.error, SinkError::RateLimited { retry_after: Some(w), .. } if w == Duration::from_secs(30))
        );
        assert_eq!(limited.code.as_deref(), Some("ratelimited"));
        let no_wait = api(429, &[], "").await.unwrap_err();
        assert!(
            matches!(no_wait.error, SinkError::RateLimited { retry_after: Some(w), .. } if w == API_RETRY_AFTER)
        );
        let unavailable = api(503, &[], "service_unavailable").await.unwrap_err();
        assert!(matches!(unavailable.error, SinkError::Retryable { .. }));
        assert_eq!(
            unavailable.error.to_string(),
            "Slack chat.postMessage: HTTP 503 Service Unavailable: service_unavailable"
        );
        let missing = api(404, &[], "Not Found").await.unwrap_err();
        assert!(matches!(missing.error, SinkError::Permanent { .. }));
    }

    #[tokio::test]
    async fn webhook_answers() {
        let ok = webhook_answer(&answer(200, &[], "ok").await, &[]).unwrap();
        assert_eq!(ok.response.unwrap().body, "ok");
        let limited = webhook_answer(
            &answer(
                429,
                &[("retry-after", "1")],
                r#"{"retry_after":1,"ok":false,"error":"rate_limited"}"#,
            )
            .await,
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(limited, SinkError::RateLimited { retry_after: Some(w), .. } if w == Duration::from_secs(1))
        );
        let no_wait = webhook_answer(&answer(429, &[], "").await, &[]).unwrap_err();
        assert!(
            matches!(no_wait, SinkError::RateLimited { retry_after: Some(w), .. } if w == WEBHOOK_RETRY_AFTER)
        );
        for (status, body) in [
            (400, "invalid_payload"),
            (403, "invalid_token"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ] {
            let error = webhook_answer(&answer(status, &[], body).await, &[]).unwrap_err();
            assert!(matches!(error, SinkError::Permanent { .. }), "{status}");
            assert!(
                error.to_string().starts_with("Slack webhook: HTTP "),
                "{error}"
            );
            assert!(error.to_string().ends_with(body), "{error}");
        }
        let rollup = webhook_answer(&answer(500, &[], "rollup_error").await, &[]).unwrap_err();
        assert!(matches!(rollup, SinkError::Retryable { .. }));
    }

    #[test]
    fn urls_join_bases_with_or_without_a_trailing_slash() {
        let client = reqwest::Client::new();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        for base in [
            "https://slack.com/api",
            "https://slack.com/api/",
            " http://127.0.0.1:9/api// ",
        ] {
            let api = WebApi::new(base, Secret::new(TOKEN), client.clone(), Arc::clone(&clock));
            assert!(
                api.url("chat.update").ends_with("/api/chat.update"),
                "{}",
                api.url("chat.update")
            );
            assert!(!api.url("chat.update").contains("//chat"));
        }
    }
}
