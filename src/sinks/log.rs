//! The `log` integration: one readable line per notification in herald's own log.

use async_trait::async_trait;

use super::{Notification, Receipt, Sink, SinkError};
use crate::config::LogConfig;

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

/// `[FIRING] HighLatency {instance="web-1", severity="warning"}: summary text`, one part per alert.
pub fn render(notification: &Notification) -> String {
    let mut line = String::new();
    for (index, notified) in notification.alerts.iter().enumerate() {
        if index > 0 {
            line.push_str("; ");
        }
        let alert = &notified.alert;
        line.push_str(&format!(
            "[{}] {}",
            notified.status.as_str().to_uppercase(),
            alert.name()
        ));
        let labels: Vec<String> = alert
            .labels
            .iter()
            .filter(|(name, _)| name.as_str() != "alertname")
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect();
        if !labels.is_empty() {
            line.push_str(&format!(" {{{}}}", labels.join(", ")));
        }
        if let Some(text) = alert
            .annotations
            .get("summary")
            .or_else(|| alert.annotations.get("description"))
        {
            line.push_str(": ");
            line.push_str(text);
        }
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

    async fn send(&self, notification: &Notification) -> Result<Receipt, SinkError> {
        let line = render(notification);
        tracing::info!(
            target: "herald::notify",
            receiver = %notification.receiver,
            status = %notification.status,
            alerts = notification.alerts.len(),
            "{line}"
        );
        Ok(Receipt { detail: line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, Status, test_alert};
    use crate::sinks::NotifiedAlert;

    #[test]
    fn line_is_readable() {
        let mut alert = test_alert("HighLatency", &[("instance", "web-1")]);
        alert
            .annotations
            .insert("summary".to_string(), "p99 above 2s".to_string());
        let notification = Notification {
            receiver: "log".into(),
            status: Status::Firing,
            group_key: String::new(),
            group_labels: Labels::new(),
            alerts: vec![NotifiedAlert {
                fingerprint: alert.fingerprint(),
                status: Status::Firing,
                alert,
            }],
            external_url: None,
        };
        assert_eq!(
            render(&notification),
            r#"[FIRING] HighLatency {instance="web-1"}: p99 above 2s"#
        );
    }
}
