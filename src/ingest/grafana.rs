//! `POST|PUT /webhook/grafana` payloads (Grafana's webhook contact point, version 1) -> alerts, keeping Grafana's
//! per-alert links and values for templates.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::webhook::{WebhookAlert, normalise_all};
use super::{BodyError, Limits, Parsed, check_count, check_version, decode};
use crate::alert::{Extra, Source};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    version: String,
    alerts: Vec<WebhookAlert>,
    #[serde(default)]
    org_id: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Parses a Grafana webhook body. `orgId`, `title` and `message` of the notification are kept on each alert beside
/// `silenceURL`, `dashboardURL`, `panelURL`, `imageURL`, `values` and `valueString`.
pub fn parse(body: &[u8], now: DateTime<Utc>, limits: &Limits) -> Result<Parsed, BodyError> {
    let payload: Payload = decode(body)?;
    check_version(&payload.version, "1", "Grafana")?;
    check_count(payload.alerts.len(), limits, "alerts")?;
    let mut group = Extra::new();
    if let Some(org_id) = payload.org_id {
        group.insert("orgId".to_string(), org_id.into());
    }
    for (key, value) in [("title", payload.title), ("message", payload.message)] {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            group.insert(key.to_string(), value.into());
        }
    }
    Ok(normalise_all(
        payload.alerts,
        Source::Grafana,
        &group,
        now,
        limits,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use crate::ingest::test_support::limits;

    pub(crate) const PAYLOAD: &str = r#"{
      "receiver": "herald", "status": "firing", "orgId": 1, "version": "1", "state": "alerting",
      "groupKey": "{}:{alertname=\"CPU\"}", "truncatedAlerts": 0, "title": "[FIRING:1] CPU",
      "message": "**Firing**", "externalURL": "http://grafana:3000/", "groupLabels": {"alertname": "CPU"},
      "commonLabels": {"alertname": "CPU"}, "commonAnnotations": {},
      "alerts": [{
        "status": "firing", "labels": {"alertname": "CPU", "grafana_folder": "Infra", "instance": "web-3"},
        "annotations": {"summary": "CPU above 90%"}, "startsAt": "2026-11-21T09:55:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://grafana:3000/alerting/grafana/abc/view",
        "fingerprint": "c6eadffa33fcdf37", "silenceURL": "http://grafana:3000/alerting/silence/new?x=1",
        "dashboardURL": "http://grafana:3000/d/dash", "panelURL": "http://grafana:3000/d/dash?viewPanel=2",
        "values": {"B": 93.5, "C": 1}, "valueString": "[ var='B' labels={} value=93.5 ]",
        "imageURL": "http://grafana:3000/render/x.png"
      }]}"#;

    #[test]
    fn grafana_payload_keeps_links_and_values() {
        let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let parsed = parse(PAYLOAD.as_bytes(), now, &limits()).unwrap();
        let alert = &parsed.alerts[0];
        assert_eq!(alert.source, Source::Grafana);
        assert_eq!(alert.status_at(now), Status::Firing);
        assert_eq!(alert.extra["dashboardURL"], "http://grafana:3000/d/dash");
        assert_eq!(
            alert.extra["panelURL"],
            "http://grafana:3000/d/dash?viewPanel=2"
        );
        assert_eq!(
            alert.extra["silenceURL"],
            "http://grafana:3000/alerting/silence/new?x=1"
        );
        assert_eq!(alert.extra["imageURL"], "http://grafana:3000/render/x.png");
        assert_eq!(alert.extra["values"]["B"], 93.5);
        assert_eq!(alert.extra["orgId"], 1);
        assert_eq!(alert.extra["title"], "[FIRING:1] CPU");
    }

    #[test]
    fn wrong_version_is_rejected() {
        let body = PAYLOAD.replace(r#""version": "1""#, r#""version": "4""#);
        let now = Utc::now();
        assert_eq!(
            parse(body.as_bytes(), now, &limits())
                .unwrap_err()
                .field
                .as_deref(),
            Some("version")
        );
    }
}
