//! The alert object Alertmanager's and Grafana's webhooks share, and its normalisation.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Limits, Parsed, Rejection, check_times, clean_annotations, clean_labels, present};
use crate::alert::{Alert, Annotations, Extra, Labels, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WebhookStatus {
    Firing,
    Resolved,
}

/// One entry of a webhook payload's `alerts` list; the Grafana-only fields are absent in Alertmanager's.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookAlert {
    status: WebhookStatus,
    labels: Labels,
    #[serde(default)]
    annotations: Option<Annotations>,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default, rename = "silenceURL")]
    silence_url: Option<String>,
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(default, rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(default, rename = "imageURL")]
    image_url: Option<String>,
    #[serde(default)]
    values: Option<serde_json::Value>,
    #[serde(default)]
    value_string: Option<String>,
}

/// Normalises every alert of a webhook payload, rejecting invalid ones individually. `group_extra` is added to each
/// alert's extra data (Grafana's `orgId`, `title`, …).
pub(crate) fn normalise_all(
    alerts: Vec<WebhookAlert>,
    source: Source,
    group_extra: &Extra,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, raw) in alerts.into_iter().enumerate() {
        let alertname = raw.labels.get("alertname").cloned();
        match normalise(raw, source, group_extra, now, limits) {
            Ok(alert) => parsed.alerts.push(alert),
            Err(reason) => parsed
                .rejected
                .push(Rejection::new(index, alertname, reason)),
        }
    }
    parsed
}

/// A firing alert is open-ended unless it names a future end; a resolved alert ends at its `endsAt`, or now when it
/// carries none (or one still ahead).
fn normalise(
    raw: WebhookAlert,
    source: Source,
    group_extra: &Extra,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Alert, String> {
    let labels = clean_labels(raw.labels, limits).map_err(|reason| format!("labels: {reason}"))?;
    let starts_at = present(raw.starts_at).unwrap_or(now);
    let sent_end = present(raw.ends_at);
    check_times(starts_at, sent_end, now, limits)?;
    let ends_at = match raw.status {
        WebhookStatus::Firing => sent_end.filter(|end| *end > now),
        WebhookStatus::Resolved => {
            let end = sent_end.filter(|end| *end <= now).unwrap_or(now);
            if end < starts_at {
                return Err(format!(
                    "resolved, but startsAt {} is still ahead",
                    starts_at.to_rfc3339()
                ));
            }
            Some(end)
        }
    };
    let mut extra = group_extra.clone();
    let urls = [
        ("silenceURL", raw.silence_url),
        ("dashboardURL", raw.dashboard_url),
        ("panelURL", raw.panel_url),
        ("imageURL", raw.image_url),
        ("valueString", raw.value_string),
    ];
    for (key, value) in urls {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            extra.insert(key.to_string(), serde_json::Value::String(value));
        }
    }
    if let Some(values) = raw.values.filter(|values| !values.is_null()) {
        extra.insert("values".to_string(), values);
    }
    Ok(Alert {
        labels,
        annotations: clean_annotations(raw.annotations),
        starts_at,
        ends_at,
        ends_at_defaulted: false,
        generator_url: raw.generator_url.unwrap_or_default(),
        source,
        extra,
    })
}
