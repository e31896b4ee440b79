//! PagerDuty's answers to an event: 202 (any 2xx) is accepted; 400 is an invalid event, permanent, with PagerDuty's
//! `message` and `errors` in the reason; 429 is a rate limit (`Retry-After` when given, else 30 s); 5xx and other
//! transient statuses are retried; other 4xx are permanent. Secrets are redacted from the kept answer and reasons.

use std::time::Duration;

use serde_json::Value;

use crate::sinks::http::{self, Answer};
use crate::sinks::{Receipt, SinkError};

/// The wait after a 429 that named none: PagerDuty counts events per minute, so half of one.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How many characters of PagerDuty's error list a reason quotes.
const ERRORS_CHARS: usize = 600;

/// `message: error; error` from a PagerDuty error body (`{"status":…,"message":…,"errors":[…]}`), when it is one.
fn errors(body: &str) -> Option<String> {
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(body) else {
        return None;
    };
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|message| !message.is_empty());
    let errors: Vec<String> = body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|error| {
            error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned)
        })
        .collect();
    match (message, errors.is_empty()) {
        (None, true) => None,
        (Some(message), true) => Some(message.to_owned()),
        (None, false) => Some(errors.join("; ")),
        (Some(message), false) => Some(format!("{message}: {}", errors.join("; "))),
    }
}

/// Reads PagerDuty's answer to an event.
pub fn classify(answer: &Answer, secrets: &[&str]) -> Result<Receipt, SinkError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(Receipt {
            response: Some(answer.response(secrets)),
            state: None,
        });
    }
    match status.as_u16() {
        400 => {
            let response = answer.response(secrets);
            let said = errors(&answer.body).map_or_else(
                || {
                    response
                        .body
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                },
                |said| http::redact(&said, secrets),
            );
            let said: String = said.chars().take(ERRORS_CHARS).collect();
            let mut reason = "PagerDuty rejected the event (HTTP 400 Bad Request)".to_owned();
            if !said.is_empty() {
                reason.push_str(": ");
                reason.push_str(&said);
            }
            Err(SinkError::Permanent {
                reason,
                response: Some(response),
            })
        }
        429 => Err(SinkError::RateLimited {
            retry_after: Some(answer.retry_after().unwrap_or(RETRY_AFTER)),
            response: Some(answer.response(secrets)),
        }),
        _ => match answer.classify(secrets) {
            Err(SinkError::Retryable { reason, response }) => Err(SinkError::Retryable {
                reason: format!("PagerDuty: {reason}"),
                response,
            }),
            Err(SinkError::Permanent { reason, response }) => Err(SinkError::Permanent {
                reason: format!("PagerDuty: {reason}"),
                response,
            }),
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http;
    use chrono::{DateTime, Utc};

    use super::*;

    const KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

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

    async fn classified(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Result<Receipt, SinkError> {
        classify(&answer(status, headers, body).await, &[KEY])
    }

    #[tokio::test]
    async fn accepted_events_are_delivered() {
        let body = r#"{"status":"success","message":"Event processed","dedup_key":"abc"}"#;
        let receipt = classified(202, &[], body).await.unwrap();
        let kept = receipt.response.unwrap();
        assert_eq!((kept.status, kept.body.as_str()), (Some(202), body));
        assert!(classified(200, &[], "").await.is_ok());
    }

    #[tokio::test]
    async fn an_invalid_event_is_permanent_with_pagerdutys_errors_and_no_key() {
        let body = format!(
            r#"{{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)","'payload.summary' is missing or blank","key {KEY} unknown"]}}"#
        );
        let error = classified(400, &[], &body).await.unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "PagerDuty rejected the event (HTTP 400 Bad Request): Event object is invalid: Length of \
             'routing_key' is incorrect (should be 32 characters); 'payload.summary' is missing or blank; key \
             <redacted> unknown"
        );
        assert!(!format!("{error:?}").contains(KEY));
        assert_eq!(error.response().unwrap().status, Some(400));

        let plain = classified(400, &[], "Bad\nRequest").await.unwrap_err();
        assert_eq!(
            plain.to_string(),
            "PagerDuty rejected the event (HTTP 400 Bad Request): Bad Request"
        );
        let bare = classified(400, &[], "").await.unwrap_err();
        assert_eq!(
            bare.to_string(),
            "PagerDuty rejected the event (HTTP 400 Bad Request)"
        );
    }

    #[tokio::test]
    async fn rate_limits_wait_for_retry_after_else_half_a_minute() {
        let told = classified(429, &[("retry-after", "12")], "")
            .await
            .unwrap_err();
        assert!(
            matches!(told, SinkError::RateLimited { retry_after: Some(w), .. } if w == Duration::from_secs(12)),
            "{told:?}"
        );
        let untold = classified(429, &[], r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#)
            .await
            .unwrap_err();
        assert!(
            matches!(untold, SinkError::RateLimited { retry_after: Some(w), .. } if w == RETRY_AFTER),
            "{untold:?}"
        );
    }

    #[tokio::test]
    async fn server_errors_are_retried_and_other_client_errors_are_permanent() {
        for status in [500, 502, 503, 504] {
            let error = classified(status, &[], "oops").await.unwrap_err();
            assert!(
                matches!(error, SinkError::Retryable { .. }),
                "{status}: {error:?}"
            );
            assert!(error.to_string().starts_with("PagerDuty: HTTP "), "{error}");
        }
        for status in [401, 403, 404, 413] {
            let error = classified(status, &[], "no").await.unwrap_err();
            assert!(
                matches!(error, SinkError::Permanent { .. }),
                "{status}: {error:?}"
            );
        }
    }
}
