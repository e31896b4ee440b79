//! Teams' answers. A Workflows webhook answers 202 with an empty body when it took the message; a legacy Office 365
//! connector answers 200 with the body `1`, and fails with HTTP 200 too, with a text such as `Webhook message
//! delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 …`: such a text is a rate limit when
//! it names 429, retried when it names a 5xx, else permanent. Other statuses are classified as usual (429 waits for
//! `Retry-After`, else 30 s). Secrets are redacted from the kept answer and reasons.

use std::time::Duration;

use crate::sinks::http::{self, Answer};
use crate::sinks::{Receipt, SinkError};

/// The wait after a rate limit that named none.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How many characters of an error text a reason quotes.
const TEXT_CHARS: usize = 300;

/// Reads a Teams webhook's answer.
pub fn classify(answer: &Answer, secrets: &[&str]) -> Result<Receipt, SinkError> {
    let response = answer.response(secrets);
    let status = answer.status.as_u16();
    if answer.status.is_success() {
        let body = answer.body.trim();
        if status == 202 || body.is_empty() || body == "1" {
            return Ok(Receipt {
                response: Some(response),
                state: None,
            });
        }
        let text: String = http::redact(body, secrets)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(TEXT_CHARS)
            .collect();
        let reason = format!("Teams: {text}");
        return Err(match named_status(body) {
            Some(429) => SinkError::RateLimited {
                retry_after: Some(answer.retry_after().unwrap_or(RETRY_AFTER)),
                response: Some(response),
            },
            Some(500..=599) => SinkError::Retryable {
                reason,
                response: Some(response),
            },
            _ => SinkError::Permanent {
                reason,
                response: Some(response),
            },
        });
    }
    match answer.classify(secrets) {
        Err(SinkError::RateLimited {
            retry_after,
            response,
        }) => Err(SinkError::RateLimited {
            retry_after: Some(retry_after.unwrap_or(RETRY_AFTER)),
            response,
        }),
        Err(SinkError::Retryable { reason, response }) => Err(SinkError::Retryable {
            reason: format!("Teams: {reason}"),
            response,
        }),
        Err(SinkError::Permanent { reason, response }) => Err(SinkError::Permanent {
            reason: format!("Teams: {reason}"),
            response,
        }),
        Ok(receipt) => Ok(receipt),
    }
}

/// The HTTP status a connector's failure text names: the number after `HTTP error`, else a standalone `429` anywhere
/// in it (not part of a longer number or id).
pub fn named_status(text: &str) -> Option<u16> {
    let lower = text.to_ascii_lowercase();
    if let Some(at) = lower.find("http error") {
        let digits: String = lower[at + "http error".len()..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(status) = digits.parse::<u16>()
            && (100..=599).contains(&status)
        {
            return Some(status);
        }
    }
    let bytes = text.as_bytes();
    let standalone = text.match_indices("429").any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + 3).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    });
    standalone.then_some(429)
}

#[cfg(test)]
mod tests {
    use axum::http;
    use chrono::{DateTime, Utc};

    use super::*;

    const SIG: &str = "s1gn4ture0123456789";

    fn now() -> DateTime<Utc> {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    async fn classified(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Result<Receipt, SinkError> {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let answer = Answer::read(
            reqwest::Response::from(builder.body(body.to_owned()).unwrap()),
            now(),
        )
        .await;
        classify(&answer, &[SIG])
    }

    #[tokio::test]
    async fn workflows_202_and_the_connectors_1_are_success() {
        assert!(classified(202, &[], "").await.is_ok());
        assert!(classified(202, &[], "{\"accepted\":true}").await.is_ok());
        assert_eq!(
            classified(200, &[], "1")
                .await
                .unwrap()
                .response
                .unwrap()
                .body,
            "1"
        );
        assert!(classified(200, &[], "").await.is_ok());
    }

    #[tokio::test]
    async fn connector_failure_texts_are_classified_by_what_they_name() {
        let limited = classified(
            200,
            &[],
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with \
             ContextId tId=0b4290a1,oId=1.",
        )
        .await
        .unwrap_err();
        assert!(
            matches!(limited, SinkError::RateLimited { retry_after: Some(w), .. } if w == RETRY_AFTER),
            "{limited:?}"
        );
        let server = classified(
            200,
            &[],
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 502 with \
             ContextId tId=f4291,oId=2.",
        )
        .await
        .unwrap_err();
        assert!(matches!(server, SinkError::Retryable { .. }), "{server:?}");
        let bad = classified(200, &[], &format!("Summary or Text is required. ({SIG})"))
            .await
            .unwrap_err();
        assert!(matches!(bad, SinkError::Permanent { .. }), "{bad:?}");
        assert_eq!(
            bad.to_string(),
            "Teams: Summary or Text is required. (<redacted>)"
        );
        let plain_429 = classified(200, &[], "throttled: 429 too many requests")
            .await
            .unwrap_err();
        assert!(
            matches!(plain_429, SinkError::RateLimited { .. }),
            "{plain_429:?}"
        );
    }

    #[test]
    fn named_statuses() {
        assert_eq!(
            named_status("returned HTTP error 413 with ContextId"),
            Some(413)
        );
        assert_eq!(named_status("error 429"), Some(429));
        assert_eq!(named_status("tId=b4290,oId=14291"), None);
        assert_eq!(named_status("x4429 and 4290"), None);
        assert_eq!(named_status("no status here"), None);
    }

    #[tokio::test]
    async fn http_errors_are_classified_by_status() {
        let limited = classified(429, &[("retry-after", "15")], "")
            .await
            .unwrap_err();
        assert!(
            matches!(limited, SinkError::RateLimited { retry_after: Some(w), .. } if w == Duration::from_secs(15))
        );
        let untold = classified(429, &[], "").await.unwrap_err();
        assert!(
            matches!(untold, SinkError::RateLimited { retry_after: Some(w), .. } if w == RETRY_AFTER)
        );
        let bad = classified(
            400,
            &[],
            r#"{"error":{"code":"InvalidRequestContent","message":"bad"}}"#,
        )
        .await
        .unwrap_err();
        assert!(matches!(bad, SinkError::Permanent { .. }));
        assert!(
            bad.to_string().starts_with("Teams: HTTP 400 Bad Request: "),
            "{bad}"
        );
        let unavailable = classified(503, &[], "").await.unwrap_err();
        assert!(matches!(unavailable, SinkError::Retryable { .. }));
    }
}
