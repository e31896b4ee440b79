//! How bad a notification is, from its alerts' `severity` labels (`alert::Severity`), and how that looks: shared by
//! the integrations that colour or flag their messages by severity (Slack, WeCom, Teams) and by PagerDuty's event
//! severity.

pub use crate::alert::Severity;
use crate::alert::Status;
use crate::notification::Notification;

/// The notification's severity: its common `severity` label, else the highest among its firing alerts.
pub fn severity(notification: &Notification) -> Option<Severity> {
    if let Some(common) = notification
        .common_labels
        .get("severity")
        .and_then(|value| Severity::parse(value))
    {
        return Some(common);
    }
    notification
        .alerts
        .iter()
        .filter(|alert| alert.status == Status::Firing)
        .filter_map(|alert| alert.alert.labels.get("severity"))
        .filter_map(|value| Severity::parse(value))
        .max()
}

/// What a notification looks like at a glance: resolved, or firing at a severity (unknown counts as critical, as
/// Slack's red does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Resolved,
    Firing(Severity),
}

impl Tone {
    pub fn of(notification: &Notification) -> Self {
        if notification.status == Status::Resolved {
            return Tone::Resolved;
        }
        Tone::Firing(severity(notification).unwrap_or(Severity::Critical))
    }

    /// The emoji that starts a message in this tone.
    pub fn emoji(self) -> &'static str {
        match self {
            Tone::Resolved => "✅",
            Tone::Firing(Severity::Critical) => "🔥",
            Tone::Firing(Severity::Warning) => "⚠️",
            Tone::Firing(Severity::Info) => "ℹ️",
        }
    }
}
