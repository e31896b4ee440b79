//! The notification model: what a receiver is told about one aggregation group (its alerts, why it is sent now),
//! shared by the dispatcher that builds it, the outbox that stores it and the sinks that render it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Annotations, Fingerprint, Labels, Status};

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The receiver had not been told about this group before.
    First,
    /// Alerts fire that the last notification did not include.
    NewAlerts,
    /// Some alerts resolved since the last notification.
    SomeResolved,
    /// Every alert the receiver was told about has resolved.
    AllResolved,
    /// Nothing changed, but `repeat_interval` passed.
    Repeat,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::First => "first",
            Reason::NewAlerts => "new_alerts",
            Reason::SomeResolved => "some_resolved",
            Reason::AllResolved => "all_resolved",
            Reason::Repeat => "repeat",
        }
    }
}

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
