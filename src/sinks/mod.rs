//! Sinks: the `Sink` trait every integration implements, the notification it receives, and how a send can fail.

pub mod http;
pub mod jira;
pub mod log;
pub mod slack;
pub mod template;
pub mod webhook;

use std::time::Duration;

use async_trait::async_trait;

use std::collections::BTreeMap;

use crate::alert::{Alert, Annotations, Fingerprint, Labels, Status};
pub use crate::dispatch::group::Reason;

/// One alert inside a notification, with its status when the notification was made.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NotifiedAlert {
    pub fingerprint: Fingerprint,
    pub status: Status,
    pub alert: Alert,
}

/// What a receiver is told: a group of alerts and their state. Stored with each delivery (as JSON), so its fields
/// only grow with serde defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    pub receiver: String,
    /// Firing when any alert of the group fires.
    pub status: Status,
    /// Why it is sent now.
    pub reason: Reason,
    pub group_key: String,
    pub group_labels: Labels,
    /// Labels every alert of the notification has, with the same value.
    pub common_labels: Labels,
    /// Annotations every alert of the notification has, with the same value.
    pub common_annotations: Annotations,
    pub alerts: Vec<NotifiedAlert>,
    /// Alerts left out by the receiver's `max_alerts`.
    pub truncated: usize,
    /// herald's `server.external_url`, for links back.
    pub external_url: Option<String>,
}

/// The entries every map has with the same value.
pub fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut common = first.clone();
    for map in maps {
        common.retain(|name, value| map.get(name) == Some(value));
    }
    common
}

impl Notification {
    /// Builds a notification: common labels and annotations come from every alert, then at most `max_alerts` are
    /// kept.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        receiver: String,
        reason: Reason,
        group_key: String,
        group_labels: Labels,
        mut alerts: Vec<NotifiedAlert>,
        max_alerts: Option<usize>,
        external_url: Option<String>,
    ) -> Self {
        let status = if alerts.iter().any(|alert| alert.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        };
        let common_labels = common(alerts.iter().map(|alert| &alert.alert.labels));
        let common_annotations = common(alerts.iter().map(|alert| &alert.alert.annotations));
        let limit = max_alerts.unwrap_or(usize::MAX);
        let truncated = alerts.len().saturating_sub(limit);
        alerts.truncate(limit);
        Notification {
            receiver,
            status,
            reason,
            group_key,
            group_labels,
            common_labels,
            common_annotations,
            alerts,
            truncated,
            external_url,
        }
    }
}

impl Notification {
    /// A synthetic notification for `receiver`, clearly a test so nobody acts on it: one `HeraldSendTest` alert
    /// (firing, or resolved at `now`). `herald send-test` sends it, and templates are tried on it when checked.
    pub fn synthetic(
        receiver: &str,
        status: Status,
        now: chrono::DateTime<chrono::Utc>,
        external_url: Option<String>,
    ) -> Self {
        let labels: Labels = [
            ("alertname", "HeraldSendTest"),
            ("severity", "info"),
            ("receiver", receiver),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let alert = Alert {
            labels,
            annotations: Annotations::from([(
                "summary".to_owned(),
                "Test notification from herald send-test; nothing is wrong".to_owned(),
            )]),
            starts_at: now,
            ends_at: (status == Status::Resolved).then_some(now),
            ends_at_defaulted: false,
            generator_url: String::new(),
            source: crate::alert::Source::Prometheus,
            extra: Default::default(),
        };
        let reason = match status {
            Status::Firing => Reason::First,
            Status::Resolved => Reason::AllResolved,
        };
        Notification::new(
            receiver.to_owned(),
            reason,
            format!("{{}}:{{alertname=\"HeraldSendTest\",receiver=\"{receiver}\"}}"),
            Labels::from([("alertname".to_owned(), "HeraldSendTest".to_owned())]),
            vec![NotifiedAlert {
                fingerprint: alert.fingerprint(),
                status,
                alert,
            }],
            None,
            external_url,
        )
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;

    #[test]
    fn common_parts_and_truncation() {
        let alerts: Vec<NotifiedAlert> = ["a", "b", "c"]
            .iter()
            .map(|instance| {
                let mut alert = test_alert("Down", &[("instance", instance), ("job", "node")]);
                alert
                    .annotations
                    .insert("runbook".into(), "https://runbooks/down".into());
                alert
                    .annotations
                    .insert("summary".into(), format!("{instance} down"));
                NotifiedAlert {
                    fingerprint: alert.fingerprint(),
                    status: Status::Firing,
                    alert,
                }
            })
            .collect();
        let n = Notification::new(
            "r".into(),
            Reason::First,
            "k".into(),
            Labels::new(),
            alerts,
            Some(2),
            None,
        );
        assert_eq!(
            n.common_labels.keys().collect::<Vec<_>>(),
            ["alertname", "job"]
        );
        assert_eq!(n.common_annotations.keys().collect::<Vec<_>>(), ["runbook"]);
        assert_eq!((n.alerts.len(), n.truncated), (2, 1));
        assert_eq!(n.status, Status::Firing);
    }
}
