//! The `log` integration: one readable line per notification in herald's own log.

use async_trait::async_trait;

use super::{Context, Receipt, Sink, SinkError};
use crate::alert::Labels;
use crate::alert::label_set;
use crate::config::LogConfig;
use crate::notification::Notification;

#[derive(Debug, Clone)]
pub struct LogSink {
    send_resolved: bool,
}

impl LogSink {
    pub fn new(config: &LogConfig) -> Self {
        LogSink {
            send_resolved: config.send_resolved,
        }
    }
}

/// `[FIRING:2] {alertname="Down"} first: Down {instance="a"}: summary; Down {instance="b"} (resolved)`: the
/// status with its count, the group labels, why it is sent, then each alert with its labels beyond the group's.
pub fn render(notification: &Notification) -> String {
    let count = notification
        .alerts
        .iter()
        .filter(|alert| alert.status == notification.status)
        .count();
    let mut line = format!("[{}:{count}]", notification.status.as_str().to_uppercase());
    if !notification.group_labels.is_empty() {
        line.push(' ');
        line.push_str(&label_set(&notification.group_labels));
    }
    line.push(' ');
    line.push_str(notification.reason.as_str());
    line.push(':');
    for (index, notified) in notification.alerts.iter().enumerate() {
        line.push_str(if index == 0 { " " } else { "; " });
        let alert = &notified.alert;
        line.push_str(alert.name());
        let labels: Labels = alert
            .labels
            .iter()
            .filter(|(name, _)| {
                name.as_str() != "alertname" && !notification.group_labels.contains_key(*name)
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if !labels.is_empty() {
            line.push(' ');
            line.push_str(&label_set(&labels));
        }
        if let Some(text) = alert
            .annotations
            .get("summary")
            .or_else(|| alert.annotations.get("description"))
        {
            line.push_str(": ");
            line.push_str(text);
        }
        if notified.status != notification.status {
            line.push_str(&format!(" ({})", notified.status));
        }
    }
    if notification.truncated > 0 {
        line.push_str(&format!("; and {} more", notification.truncated));
    }
    line
}

#[async_trait]
impl Sink for LogSink {
    fn integration(&self) -> &'static str {
        "log"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn uses_state(&self) -> bool {
        false
    }

    fn destination(&self) -> String {
        "log".to_owned()
    }

    async fn send(
        &self,
        notification: &Notification,
        _context: &Context,
    ) -> Result<Receipt, SinkError> {
        let line = render(notification);
        tracing::info!(
            target: "herald::notify",
            receiver = %notification.receiver,
            status = %notification.status,
            alerts = notification.alerts.len(),
            "{line}"
        );
        Ok(Receipt::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Status, test_alert};
    use crate::notification::{NotifiedAlert, Reason};

    fn notified(name: &str, instance: &str, status: Status) -> NotifiedAlert {
        let mut alert = test_alert(name, &[("instance", instance)]);
        alert
            .annotations
            .insert("summary".to_string(), format!("{instance} is slow"));
        NotifiedAlert {
            fingerprint: alert.fingerprint(),
            status,
            alert,
        }
    }

    #[test]
    fn line_is_readable() {
        let notification = Notification {
            receiver: "log".into(),
            status: Status::Firing,
            reason: Reason::NewAlerts,
            group_key: String::new(),
            group_labels: Labels::from([("alertname".to_string(), "HighLatency".to_string())]),
            common_labels: Labels::new(),
            common_annotations: Default::default(),
            truncated: 0,
            alerts: vec![
                notified("HighLatency", "web-1", Status::Firing),
                notified("HighLatency", "web-2", Status::Resolved),
            ],
            external_url: None,
        };
        assert_eq!(
            render(&notification),
            r#"[FIRING:1] {alertname="HighLatency"} new_alerts: HighLatency {instance="web-1"}: web-1 is slow; HighLatency {instance="web-2"}: web-2 is slow (resolved)"#
        );
    }
}
