//! Sinks: the `Sink` trait every integration implements, the notification it receives, and how a send can fail.

pub mod email;
pub mod http;
pub mod httpclient;
pub mod integrations;
pub mod jira;
pub mod log;
pub mod msteams;
pub mod pagerduty;
pub mod severity;
pub mod slack;
pub mod text;
pub mod webhook;
pub mod wecom;

use std::time::Duration;

use async_trait::async_trait;

use crate::notification::Notification;

/// What a destination answered, as kept in a delivery's audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Response {
    /// The HTTP status code, when the destination speaks HTTP.
    pub status: Option<u16>,
    /// The start of the body (at most `RESPONSE_KEEP` bytes), with the integration's secrets redacted.
    pub body: String,
    /// Asked to slow down (its rate-limit budget is nearly spent): wait this long before the destination's next
    /// send, even after a success.
    #[serde(skip)]
    pub slow_down: Option<Duration>,
}

/// How much of a response body an attempt keeps.
pub const RESPONSE_KEEP: usize = 1024;

/// What a destination answered to a successful send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    pub response: Option<Response>,
    /// What the integration keeps about this group for its next send (a Slack message's channel and ts, a Jira
    /// issue key); stored with the delivery's outcome. `None` keeps what was stored.
    pub state: Option<serde_json::Value>,
}

/// What an integration knows when it sends, besides the notification.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// What it kept about this group after its last successful send (`Receipt::state`).
    pub state: Option<serde_json::Value>,
}

/// Why a send failed; the delivery engine decides what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again after a backoff (connection refused, timeout, 5xx).
    #[error("{reason}")]
    Retryable {
        reason: String,
        response: Option<Response>,
    },
    /// The destination asked to wait: `retry_after` when it said how long.
    #[error("rate limited{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        response: Option<Response>,
    },
    /// Trying again cannot help (bad request, bad credentials, unknown channel).
    #[error("{reason}")]
    Permanent {
        reason: String,
        response: Option<Response>,
    },
}

impl SinkError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        SinkError::Retryable {
            reason: reason.into(),
            response: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SinkError::Permanent {
            reason: reason.into(),
            response: None,
        }
    }

    /// A bounded label for metrics and the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            SinkError::Retryable { .. } => "retryable",
            SinkError::RateLimited { .. } => "rate_limited",
            SinkError::Permanent { .. } => "permanent",
        }
    }

    /// What the destination answered, when it answered.
    pub fn response(&self) -> Option<&Response> {
        match self {
            SinkError::Retryable { response, .. }
            | SinkError::RateLimited { response, .. }
            | SinkError::Permanent { response, .. } => response.as_ref(),
        }
    }
}

/// One configured integration of a receiver.
#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The integration's name in metrics and logs (`log`, `webhook`, `slack` …).
    fn integration(&self) -> &'static str;

    /// Whether resolved notifications are sent to it (`send_resolved`).
    fn send_resolved(&self) -> bool;

    /// Whether its sends read what it kept about the group (`Context::state`). One that does not may be sent a
    /// notification before its delivery is stored, since nothing stored is needed to send it.
    fn uses_state(&self) -> bool {
        true
    }

    /// Names the destination for rate limiting: integrations with the same destination (one webhook URL, one
    /// Slack channel, one Jira site) share its limit and its pauses. Secrets in it are hashed, so it can be stored
    /// and shown.
    fn destination(&self) -> String;

    async fn send(
        &self,
        notification: &Notification,
        context: &Context,
    ) -> Result<Receipt, SinkError>;
}
