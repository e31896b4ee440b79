//! `HeldAlert`: an alert as the dispatcher holds it in memory between flushes, packed so that holding every active
//! alert stays cheap (labels and annotations in one allocation each); unpacked only for a notification.

use chrono::{DateTime, Utc};

use crate::alert::{Alert, Extra, Fingerprint, PackedLabels, Source, Status, status_at};

#[derive(Debug, Clone, PartialEq)]
pub struct HeldAlert {
    labels: PackedLabels,
    annotations: PackedLabels,
    generator_url: Box<str>,
    /// Empty for most sources, so it takes no allocation then.
    extra: Option<Box<Extra>>,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    ends_at_defaulted: bool,
    source: Source,
}

impl HeldAlert {
    pub fn new(alert: &Alert) -> Self {
        HeldAlert {
            labels: PackedLabels::new(&alert.labels),
            annotations: PackedLabels::new(&alert.annotations),
            generator_url: alert.generator_url.as_str().into(),
            extra: (!alert.extra.is_empty()).then(|| Box::new(alert.extra.clone())),
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            ends_at_defaulted: alert.ends_at_defaulted,
            source: alert.source,
        }
    }

    pub fn labels(&self) -> &PackedLabels {
        &self.labels
    }

    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    /// Firing while its end is unset or still ahead of `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        status_at(self.ends_at, now)
    }

    /// The alert, unpacked.
    pub fn to_alert(&self) -> Alert {
        Alert {
            labels: self.labels.to_labels(),
            annotations: self.annotations.to_labels(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            ends_at_defaulted: self.ends_at_defaulted,
            generator_url: self.generator_url.to_string(),
            source: self.source,
            extra: self.extra.as_deref().cloned().unwrap_or_default(),
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels.to_labels())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;

    #[test]
    fn an_alert_comes_back_as_it_was_held() {
        let mut alert = test_alert("Down", &[("instance", "db-1")]);
        alert
            .annotations
            .insert("summary".into(), "db-1 is down".into());
        alert.generator_url = "http://prometheus/graph".into();
        alert.ends_at = Some(alert.starts_at + chrono::Duration::minutes(5));
        let held = HeldAlert::new(&alert);
        assert_eq!(held.to_alert(), alert);
        assert_eq!(held.fingerprint(), alert.fingerprint());
        assert_eq!(held.status_at(alert.starts_at), Status::Firing);

        alert.extra.insert(
            "dashboardURL".into(),
            serde_json::json!("http://grafana/d/1"),
        );
        assert_eq!(HeldAlert::new(&alert).to_alert(), alert, "with extra");
    }
}
