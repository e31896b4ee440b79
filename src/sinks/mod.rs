//! Sinks: the `Sink` trait every integration implements, the notification it receives, and how a send can fail.

pub mod log;

use std::time::Duration;

use async_trait::async_trait;

use crate::alert::{Alert, Fingerprint, Labels, Status};
pub use crate::dispatch::group::Reason;

/// One alert inside a notification, with its status when the notification was made.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifiedAlert {
    pub fingerprint: Fingerprint,
    pub status: Status,
    pub alert: Alert,
}

/// What a receiver is told: a group of alerts and their state.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub receiver: String,
    /// Firing when any alert of the group fires.
    pub status: Status,
    /// Why it is sent now.
    pub reason: Reason,
    pub group_key: String,
    pub group_labels: Labels,
    pub alerts: Vec<NotifiedAlert>,
    /// herald's `server.external_url`, for links back.
    pub external_url: Option<String>,
}

/// What a destination answered to a successful send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub detail: String,
}

/// Why a send failed; the caller decides what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    #[error("retryable: {0}")]
    Retryable(String),
    #[error("rate limited{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SinkError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SinkError::Retryable(_) => "retryable",
            SinkError::RateLimited { .. } => "rate_limited",
            SinkError::Permanent(_) => "permanent",
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

    async fn send(&self, notification: &Notification) -> Result<Receipt, SinkError>;
}
