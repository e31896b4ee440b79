//! HTTP plumbing every HTTP sink shares: the client, the reading of a destination's answer (redacted body,
//! `Retry-After`, `X-RateLimit-*` hints) and its classification, with transport errors, into `Receipt` or
//! `SinkError`.
//!
//! Redirects: 307 and 308 are followed (they keep the method and body; see `httpclient::redirect_policy`), unless
//! an integration's `follow_redirects` is false. 301, 302 and 303 never are: they would turn a POST into a GET and
//! lose the payload. A 3xx that is not followed fails permanently, naming the status; the fix is to configure the
//! final URL.

use std::error::Error as _;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use sha2::Digest as _;

use super::{RESPONSE_KEEP, Receipt, Response, SinkError};

/// The `User-Agent` of every request herald sends.
pub const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// How long establishing a connection may take; the whole attempt is bounded by the delivery engine's timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What replaces a secret in anything kept or logged.
pub const REDACTED: &str = "<redacted>";

/// How much of a body is read; the rest is not needed to classify an answer and is dropped unread.
const BODY_LIMIT: usize = 64 * 1024;

/// How many characters of the body a failure's reason quotes.
const REASON_BODY_CHARS: usize = 200;

/// `X-RateLimit-Reset` values above this are Unix times; smaller ones are seconds from now.
const EPOCH_THRESHOLD: f64 = 1e9;

/// The HTTP client sinks without their own TLS, proxy or redirect settings share (one connection pool): rustls,
/// herald's user agent, a connect timeout, no overall timeout (the delivery engine times each attempt), and only
/// 307 and 308 redirects followed.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(super::httpclient::redirect_policy(true))
        .build()
}

/// Replaces every occurrence of each non-empty secret with `<redacted>` (longest first, so a URL is redacted whole
/// before a token inside it), then keeps at most `RESPONSE_KEEP` bytes, cut on a character boundary.
pub fn redact(body: &str, secrets: &[&str]) -> String {
    let mut text = replace_secrets(body, secrets);
    truncate(&mut text, RESPONSE_KEEP);
    text
}

fn replace_secrets(text: &str, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|secret| !secret.is_empty())
        .collect();
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    let mut text = text.to_owned();
    for secret in secrets {
        if text.contains(secret) {
            text = text.replace(secret, REDACTED);
        }
    }
    text
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// `Retry-After` as a wait from `now`: delay seconds (integer or decimal) or an HTTP date (a past date is zero).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    seconds(value).or_else(|| http_date(value).map(|at| until(at, now)))
}

/// A non-negative, finite number of seconds.
fn seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

fn http_date(value: &str) -> Option<DateTime<Utc>> {
    httpdate::parse_http_date(value).ok().map(DateTime::from)
}

/// The time from `now` to `at`; zero when `at` has passed.
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// `X-RateLimit-Reset` as a wait from `now`. Accepts an ISO-8601 time (RFC 3339, or Jira's `yyyy-MM-ddTHH:mmZ`),
/// an HTTP date, Unix epoch seconds (above 10^9) or seconds from now. A time in the past is zero.
pub fn reset_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(number) = value.parse::<f64>() {
        if !number.is_finite() || number < 0.0 {
            return None;
        }
        if number > EPOCH_THRESHOLD {
            let at = DateTime::from_timestamp_millis((number * 1000.0) as i64)?;
            return Some(until(at, now));
        }
        return seconds(value);
    }
    iso_time(value)
        .or_else(|| http_date(value))
        .map(|at| until(at, now))
}

/// RFC 3339, or the same without seconds and with `Z` or a numeric offset (`2026-11-21T09:30Z`, as Jira sends).
fn iso_time(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Some(time.to_utc());
    }
    if let Some(naive) = value.strip_suffix(['Z', 'z']) {
        for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(time) = NaiveDateTime::parse_from_str(naive, format) {
                return Some(time.and_utc());
            }
        }
        return None;
    }
    ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]
        .iter()
        .find_map(|format| DateTime::parse_from_str(value, format).ok())
        .map(|time| time.to_utc())
}

/// What a destination said about its rate-limit budget (`X-RateLimit-*` headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHints {
    /// `X-RateLimit-Limit`: requests allowed per window.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`: requests left in this window.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`, as the wait until the window resets.
    pub reset_after: Option<Duration>,
    /// `X-RateLimit-NearLimit: true` (Jira, under 20% left).
    pub near_limit: bool,
}

impl RateLimitHints {
    pub fn from_headers(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        };
        let number = |name: &str| text(name).and_then(|value| value.parse::<u64>().ok());
        RateLimitHints {
            limit: number("x-ratelimit-limit"),
            remaining: number("x-ratelimit-remaining"),
            reset_after: text("x-ratelimit-reset").and_then(|value| reset_after(value, now)),
            near_limit: text("x-ratelimit-nearlimit")
                .is_some_and(|value| value.eq_ignore_ascii_case("true")),
        }
    }

    /// How long to wait before the destination's next send: the time until the reset when the budget is spent (1s
    /// when no reset is known); the time until the reset spread over what is left when the budget is nearly spent
    /// (`near_limit`, or under 20% of the limit left); otherwise, or when nothing is known about the reset, none.
    pub fn slow_down(&self) -> Option<Duration> {
        let wait = if self.remaining == Some(0) {
            Some(self.reset_after.unwrap_or(Duration::from_secs(1)))
        } else if self.is_near_limit() {
            let left = self.remaining.unwrap_or(1).max(1);
            let left = u32::try_from(left).unwrap_or(u32::MAX);
            self.reset_after.map(|reset| reset / left)
        } else {
            None
        };
        wait.filter(|wait| !wait.is_zero())
    }

    fn is_near_limit(&self) -> bool {
        let under_a_fifth = match (self.remaining, self.limit) {
            (Some(remaining), Some(limit)) => limit > 0 && remaining.saturating_mul(5) < limit,
            _ => false,
        };
        self.near_limit || under_a_fifth
    }
}

/// A destination's answer, read: status, headers and the start of the body (up to 64 KiB, unredacted, for sinks
/// that parse it, like Slack's Web API). Keep only `response()` in anything stored or logged.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    /// When it was read: the moment `Retry-After` and `X-RateLimit-Reset` are measured from.
    pub now: DateTime<Utc>,
}

impl Answer {
    /// Reads the answer's body (at most 64 KiB; an error mid-body keeps what arrived, invalid UTF-8 is replaced).
    pub async fn read(mut response: reqwest::Response, now: DateTime<Utc>) -> Self {
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut bytes = Vec::new();
        while bytes.len() < BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        bytes.truncate(BODY_LIMIT);
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            now,
        }
    }

    /// What is kept of the answer: status, the redacted start of the body, and any request to slow down.
    pub fn response(&self, secrets: &[&str]) -> Response {
        Response {
            status: Some(self.status.as_u16()),
            body: redact(&self.body, secrets),
            slow_down: RateLimitHints::from_headers(&self.headers, self.now).slow_down(),
        }
    }

    /// The wait a 429 or 503 asked for: `Retry-After`, else `X-RateLimit-Reset`.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers, self.now)
            .or_else(|| RateLimitHints::from_headers(&self.headers, self.now).reset_after)
    }

    /// Classifies the answer by its status alone: 2xx delivered; 429, and 503 with `Retry-After`, rate limited;
    /// 408, 425 and other 5xx retryable; 3xx (a redirect that was not followed) and other 4xx permanent.
    pub fn classify(&self, secrets: &[&str]) -> Result<Receipt, SinkError> {
        let response = self.response(secrets);
        let status = self.status;
        if status.is_success() {
            return Ok(Receipt {
                response: Some(response),
                state: None,
            });
        }
        let asked_to_wait = retry_after(&self.headers, self.now);
        match status.as_u16() {
            429 => Err(SinkError::RateLimited {
                retry_after: self.retry_after(),
                response: Some(response),
            }),
            503 if asked_to_wait.is_some() => Err(SinkError::RateLimited {
                retry_after: asked_to_wait,
                response: Some(response),
            }),
            408 | 425 | 500..=599 => Err(SinkError::Retryable {
                reason: describe(status, &response.body),
                response: Some(response),
            }),
            300..=399 => Err(SinkError::Permanent {
                reason: format!(
                    "{}: redirects are not followed (only 307 and 308 are, with follow_redirects); configure the \
                     final URL",
                    describe(status, "")
                ),
                response: Some(response),
            }),
            _ => Err(SinkError::Permanent {
                reason: describe(status, &response.body),
                response: Some(response),
            }),
        }
    }
}

/// `HTTP 400 Bad Request: <the start of the body on one line>`.
fn describe(status: StatusCode, body: &str) -> String {
    let mut reason = format!("HTTP {status}");
    let short: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(REASON_BODY_CHARS)
        .collect();
    if !short.is_empty() {
        reason.push_str(": ");
        reason.push_str(&short);
    }
    reason
}

/// Reads a destination's answer and classifies it by status (see `Answer::classify`); `secrets` are redacted from
/// the kept body and the reason.
pub async fn classify(
    response: reqwest::Response,
    secrets: &[&str],
    now: DateTime<Utc>,
) -> Result<Receipt, SinkError> {
    Answer::read(response, now).await.classify(secrets)
}

/// A request that got no answer. An invalid request (bad URL, bad header value) is permanent; anything else
/// (refused, reset, timed out, TLS, body) is retryable. The reason names the cause with the error's sources, never
/// the URL, and with `secrets` redacted.
pub fn transport_error(error: reqwest::Error, secrets: &[&str]) -> SinkError {
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    if error.is_timeout() && !reason.contains("timed out") {
        reason.push_str(" (timed out)");
    }
    let reason = redact(&reason, secrets);
    if error.is_builder() {
        SinkError::permanent(format!("invalid request: {reason}"))
    } else {
        SinkError::retryable(reason)
    }
}

/// Parts of a URL at least this long are treated as secrets on their own (a token in its path or query).
const MIN_SECRET_PART: usize = 8;

/// The first 16 hex digits of the SHA-256 of `text`: names a secret (a URL, a token) without revealing it.
pub fn short_digest(text: &str) -> String {
    let mut digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    digest.truncate(16);
    digest
}

/// What to redact of a secret URL: the URL as written and as parsed, and its password, path and query when they
/// are long enough to be a token on their own.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = vec![url.to_owned()];
    if let Ok(parsed) = reqwest::Url::parse(url) {
        secrets.push(parsed.as_str().to_owned());
        let parts = [parsed.password(), Some(parsed.path()), parsed.query()];
        secrets.extend(
            parts
                .into_iter()
                .flatten()
                .filter(|part| part.len() >= MIN_SECRET_PART)
                .map(str::to_owned),
        );
    }
    secrets
}

/// `url_secrets`, plus each query parameter's value long enough to be a token on its own (a robot's `key=`, a
/// signed URL's `sig=`), which an answer may quote alone.
pub fn url_and_query_secrets(url: &str) -> Vec<String> {
    let mut secrets = url_secrets(url);
    if let Ok(parsed) = reqwest::Url::parse(url) {
        secrets.extend(
            parsed
                .query_pairs()
                .filter(|(_, value)| value.len() >= MIN_SECRET_PART)
                .map(|(_, value)| value.into_owned()),
        );
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http;

    fn now() -> DateTime<Utc> {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (http::HeaderName::from_static(name), value.parse().unwrap()))
            .collect()
    }

    fn response(status: u16, pairs: &[(&'static str, &str)], body: &str) -> reqwest::Response {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in pairs {
            builder = builder.header(*name, *value);
        }
        reqwest::Response::from(builder.body(body.to_owned()).unwrap())
    }

    #[test]
    fn redaction_replaces_every_secret_and_keeps_a_kib() {
        let url = "https://hooks.example/services/T1/B2/tok3n";
        let body = format!("bad hook {url}; token tok3n; again tok3n");
        assert_eq!(
            redact(&body, &[url, "", "tok3n"]),
            "bad hook <redacted>; token <redacted>; again <redacted>"
        );
        assert_eq!(redact("nothing secret", &["", "x1"]), "nothing secret");

        let long = "é".repeat(RESPONSE_KEEP);
        let kept = redact(&long, &[]);
        assert!(kept.len() <= RESPONSE_KEEP && kept.len() >= RESPONSE_KEEP - 1);
        assert!(kept.chars().all(|c| c == 'é'));

        let secret_at_end = format!("{}s3cr3t", "a".repeat(RESPONSE_KEEP - 3));
        assert!(!redact(&secret_at_end, &["s3cr3t"]).contains("s3c"));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let wait = |value: &str| retry_after(&headers(&[("retry-after", value)]), now());
        assert_eq!(wait("2"), Some(Duration::from_secs(2)));
        assert_eq!(wait(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(
            wait("Sat, 21 Nov 2026 10:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(wait("Sat, 21 Nov 2026 09:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("-1"), None);
        assert_eq!(wait("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
    }

    #[test]
    fn reset_in_every_form() {
        let reset = |value: &str| reset_after(value, now());
        assert_eq!(reset("2026-11-21T10:05Z"), Some(Duration::from_secs(300)));
        assert_eq!(
            reset("2026-11-21T10:00:10.5Z"),
            Some(Duration::from_millis(10_500))
        );
        assert_eq!(
            reset("2026-11-21T11:01+01:00"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            reset("2026-11-21T11:01+0100"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(reset("2026-11-21T09:00Z"), Some(Duration::ZERO));
        let epoch = now().timestamp() + 42;
        assert_eq!(reset(&epoch.to_string()), Some(Duration::from_secs(42)));
        assert_eq!(reset("17"), Some(Duration::from_secs(17)));
        assert_eq!(
            reset("Sat, 21 Nov 2026 10:00:07 GMT"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(reset("later"), None);
        assert_eq!(reset("-5"), None);
    }

    #[test]
    fn slow_down_when_the_budget_is_spent_or_nearly() {
        let slow = |pairs: &[(&'static str, &str)]| {
            RateLimitHints::from_headers(&headers(pairs), now()).slow_down()
        };
        assert_eq!(slow(&[]), None);
        assert_eq!(
            slow(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "30")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            slow(&[("x-ratelimit-remaining", "0")]),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            slow(&[
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "10"),
                ("x-ratelimit-reset", "20")
            ]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            slow(&[
                ("x-ratelimit-nearlimit", "true"),
                ("x-ratelimit-remaining", "50"),
                ("x-ratelimit-reset", "2026-11-21T10:01Z")
            ]),
            Some(Duration::from_millis(1200))
        );
        assert_eq!(
            slow(&[
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "60"),
                ("x-ratelimit-reset", "20")
            ]),
            None,
            "plenty left"
        );
        assert_eq!(
            slow(&[("x-ratelimit-nearlimit", "true")]),
            None,
            "nothing to spread over"
        );
    }

    #[tokio::test]
    async fn success_keeps_the_redacted_answer() {
        let receipt = classify(response(200, &[], "ok tok3n"), &["tok3n"], now())
            .await
            .unwrap();
        let kept = receipt.response.unwrap();
        assert_eq!(kept.status, Some(200));
        assert_eq!(kept.body, "ok <redacted>");
        assert_eq!(kept.slow_down, None);

        let receipt = classify(
            response(
                202,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "3")],
                "",
            ),
            &[],
            now(),
        )
        .await
        .unwrap();
        assert_eq!(
            receipt.response.unwrap().slow_down,
            Some(Duration::from_secs(3))
        );
    }

    #[tokio::test]
    async fn rate_limits_are_recognised() {
        let error = classify(
            response(
                429,
                &[("retry-after", "1")],
                r#"{"ok":false,"error":"rate_limited"}"#,
            ),
            &[],
            now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            error,
            SinkError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(1)
        ));
        assert_eq!(
            error.response().unwrap().body,
            r#"{"ok":false,"error":"rate_limited"}"#
        );

        let error = classify(
            response(429, &[("x-ratelimit-reset", "2026-11-21T10:02Z")], ""),
            &[],
            now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            error,
            SinkError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(120)
        ));

        let error = classify(response(429, &[], ""), &[], now())
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            SinkError::RateLimited {
                retry_after: None,
                ..
            }
        ));

        let error = classify(response(503, &[("retry-after", "5")], ""), &[], now())
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            SinkError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(5)
        ));
    }

    #[tokio::test]
    async fn server_errors_are_retryable() {
        for status in [500, 502, 503, 408, 425] {
            let error = classify(response(status, &[], "rollup_error"), &[], now())
                .await
                .unwrap_err();
            assert!(
                matches!(error, SinkError::Retryable { .. }),
                "{status}: {error:?}"
            );
            assert_eq!(error.response().unwrap().status, Some(status));
        }
        let error = classify(response(500, &[], "rollup_error"), &[], now())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "HTTP 500 Internal Server Error: rollup_error"
        );
    }

    #[tokio::test]
    async fn client_errors_are_permanent_and_name_the_body() {
        let error = classify(
            response(400, &[], "invalid_payload\n  for hook tok3n"),
            &["tok3n"],
            now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }));
        assert_eq!(
            error.to_string(),
            "HTTP 400 Bad Request: invalid_payload for hook <redacted>"
        );
        assert_eq!(
            error.response().unwrap().body,
            "invalid_payload\n  for hook <redacted>"
        );

        let error = classify(response(401, &[], ""), &[], now())
            .await
            .unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }));
        assert_eq!(error.to_string(), "HTTP 401 Unauthorized");

        let error = classify(
            response(301, &[("location", "https://elsewhere/tok3n")], ""),
            &["tok3n"],
            now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }));
        assert!(error.to_string().contains("redirects are not followed"));
    }

    #[tokio::test]
    async fn transport_errors_never_show_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/hooks/s3cr3t-token");
        let error = client().unwrap().post(&url).send().await.unwrap_err();
        let error = transport_error(error, &[&url]);
        assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!text.contains("/hooks"), "{text}");
        assert!(text.contains("error sending request"), "{text}");

        let error = client()
            .unwrap()
            .post("ftp://host/s3cr3t-token")
            .send()
            .await
            .unwrap_err();
        let error = transport_error(error, &[]);
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn user_agent_names_herald_and_its_version() {
        assert_eq!(USER_AGENT, format!("herald/{}", env!("CARGO_PKG_VERSION")));
        assert!(client().is_ok());
    }
}
