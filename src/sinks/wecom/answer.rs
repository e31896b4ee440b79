//! A WeCom robot's answers. WeCom answers HTTP 200 to everything and says what happened in `errcode`: 0 is success;
//! 45009 is its rate limit (20 messages a minute per robot: wait a minute); -1 is "system busy" (retried); 93000
//! (invalid webhook URL) and every other code are permanent, with WeCom's `errmsg` in the reason. An HTTP error
//! (a proxy's) is classified by its status. Secrets are redacted from the kept answer and reasons.

use std::time::Duration;

use serde_json::Value;

use crate::sinks::http::{self, Answer};
use crate::sinks::{Receipt, Response, SinkError};

/// WeCom's "API freq out of limit".
pub const RATE_LIMITED: i64 = 45009;
/// WeCom's "invalid webhook url".
pub const INVALID_URL: i64 = 93000;
/// WeCom's "system busy, retry later".
pub const BUSY: i64 = -1;

/// The wait after a rate limit: WeCom counts messages per minute.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// How many characters of `errmsg` a reason quotes.
const ERRMSG_CHARS: usize = 300;

/// Reads a WeCom robot's answer.
pub fn classify(answer: &Answer, secrets: &[&str]) -> Result<Receipt, SinkError> {
    let response = answer.response(secrets);
    if !answer.status.is_success() {
        return match answer.classify(secrets) {
            Err(SinkError::RateLimited {
                retry_after,
                response,
            }) => Err(SinkError::RateLimited {
                retry_after: Some(retry_after.unwrap_or(RETRY_AFTER)),
                response,
            }),
            Err(SinkError::Retryable { reason, response }) => Err(SinkError::Retryable {
                reason: format!("WeCom: {reason}"),
                response,
            }),
            Err(SinkError::Permanent { reason, response }) => Err(SinkError::Permanent {
                reason: format!("WeCom: {reason}"),
                response,
            }),
            Ok(receipt) => Ok(receipt),
        };
    }
    let parsed: Option<(i64, String)> =
        serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|body| {
                let code = body.get("errcode")?.as_i64()?;
                let message = body
                    .get("errmsg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                Some((code, message))
            });
    let Some((code, message)) = parsed else {
        return Err(SinkError::Retryable {
            reason: "WeCom: the answer has no errcode".to_owned(),
            response: Some(response),
        });
    };
    classify_code(code, &message, response, secrets)
}

/// What `errcode` means.
pub fn classify_code(
    code: i64,
    message: &str,
    response: Response,
    secrets: &[&str],
) -> Result<Receipt, SinkError> {
    let message: String = http::redact(message.trim(), secrets)
        .chars()
        .take(ERRMSG_CHARS)
        .collect();
    let mut reason = format!("WeCom errcode {code}");
    if !message.is_empty() {
        reason.push_str(": ");
        reason.push_str(&message);
    }
    match code {
        0 => Ok(Receipt {
            response: Some(response),
            state: None,
        }),
        RATE_LIMITED => Err(SinkError::RateLimited {
            retry_after: Some(RETRY_AFTER),
            response: Some(response),
        }),
        BUSY => Err(SinkError::Retryable {
            reason,
            response: Some(response),
        }),
        INVALID_URL => Err(SinkError::Permanent {
            reason: format!("{reason} (check the robot's URL and key; was the robot removed?)"),
            response: Some(response),
        }),
        _ => Err(SinkError::Permanent {
            reason,
            response: Some(response),
        }),
    }
}

#[cfg(test)]
mod tests {
    use axum::http;
    use chrono::{DateTime, Utc};

    use super::*;

    const KEY: &str = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa";

    fn now() -> DateTime<Utc> {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    async fn classified(status: u16, body: &str) -> Result<Receipt, SinkError> {
        let response = http::Response::builder()
            .status(status)
            .body(body.to_owned())
            .unwrap();
        let answer = Answer::read(reqwest::Response::from(response), now()).await;
        classify(&answer, &[KEY])
    }

    #[tokio::test]
    async fn errcode_0_is_success() {
        let receipt = classified(200, r#"{"errcode":0,"errmsg":"ok"}"#)
            .await
            .unwrap();
        assert_eq!(
            receipt.response.unwrap().body,
            r#"{"errcode":0,"errmsg":"ok"}"#
        );
    }

    #[tokio::test]
    async fn errcode_45009_is_a_rate_limit_of_a_minute() {
        let error = classified(200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#)
            .await
            .unwrap_err();
        assert!(
            matches!(error, SinkError::RateLimited { retry_after: Some(w), .. } if w == RETRY_AFTER),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn other_codes_are_permanent_with_the_errmsg_and_no_key() {
        let body = format!(
            r#"{{"errcode":93000,"errmsg":"invalid webhook url, hint: [1700000000_1_abc], key={KEY}"}}"#
        );
        let error = classified(200, &body).await.unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "WeCom errcode 93000: invalid webhook url, hint: [1700000000_1_abc], key=<redacted> (check the robot's \
             URL and key; was the robot removed?)"
        );
        assert!(!format!("{error:?}").contains(KEY));
        let too_long = classified(
            200,
            r#"{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}"#,
        )
        .await
        .unwrap_err();
        assert!(matches!(too_long, SinkError::Permanent { .. }));
        assert!(
            too_long.to_string().contains("exceed max length"),
            "{too_long}"
        );
    }

    #[tokio::test]
    async fn busy_and_unreadable_answers_are_retried() {
        let busy = classified(200, r#"{"errcode":-1,"errmsg":"system busy"}"#)
            .await
            .unwrap_err();
        assert!(matches!(busy, SinkError::Retryable { .. }), "{busy:?}");
        let html = classified(200, "<html>gateway</html>").await.unwrap_err();
        assert!(matches!(html, SinkError::Retryable { .. }), "{html:?}");
    }

    #[tokio::test]
    async fn http_errors_are_classified_by_status() {
        let unavailable = classified(502, "bad gateway").await.unwrap_err();
        assert!(matches!(unavailable, SinkError::Retryable { .. }));
        assert!(
            unavailable.to_string().starts_with("WeCom: HTTP 502"),
            "{unavailable}"
        );
        let limited = classified(429, "").await.unwrap_err();
        assert!(
            matches!(limited, SinkError::RateLimited { retry_after: Some(w), .. } if w == RETRY_AFTER)
        );
        let forbidden = classified(403, "no").await.unwrap_err();
        assert!(matches!(forbidden, SinkError::Permanent { .. }));
    }
}
