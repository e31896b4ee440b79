//! `POST /webhook/alertmanager` payloads (Alertmanager's webhook notifier, version 4) -> alerts.

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
}

/// Parses a version 4 webhook payload. Firing alerts carry `endsAt: 0001-01-01T00:00:00Z` and stay open until a
/// resolve arrives.
pub fn parse(body: &[u8], now: DateTime<Utc>, limits: &Limits) -> Result<Parsed, BodyError> {
    let payload: Payload = decode(body)?;
    check_version(&payload.version, "4", "Alertmanager")?;
    check_count(payload.alerts.len(), limits, "alerts")?;
    Ok(normalise_all(
        payload.alerts,
        Source::Alertmanager,
        &Extra::new(),
        now,
        limits,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use crate::ingest::test_support::limits;

    const PAYLOAD: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0, "status": "firing",
      "receiver": "herald", "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {"alertname": "DiskFull"},
      "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
         "annotations": {"summary": "disk 97% full"}, "startsAt": "2026-11-21T09:00:00.5Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": "abc"},
        {"status": "resolved", "labels": {"alertname": "DiskFull", "instance": "db-2"},
         "annotations": {}, "startsAt": "2026-11-21T08:00:00Z", "endsAt": "2026-11-21T09:30:00Z",
         "generatorURL": "", "fingerprint": "def"}
      ]}"#;

    #[test]
    fn webhook_payload_is_normalised() {
        let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let parsed = parse(PAYLOAD.as_bytes(), now, &limits()).unwrap();
        assert!(parsed.rejected.is_empty());
        let firing = &parsed.alerts[0];
        assert_eq!(firing.ends_at, None, "zero endsAt means open");
        assert_eq!(firing.status_at(now), Status::Firing);
        assert_eq!(firing.source, Source::Alertmanager);
        let resolved = &parsed.alerts[1];
        assert_eq!(
            resolved.ends_at,
            Some("2026-11-21T09:30:00Z".parse().unwrap())
        );
        assert_eq!(resolved.status_at(now), Status::Resolved);
    }

    #[test]
    fn resolved_without_end_ends_now_and_versions_are_checked() {
        let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let body =
            br#"{"version":"4","alerts":[{"status":"resolved","labels":{"alertname":"X"}}]}"#;
        let parsed = parse(body, now, &limits()).unwrap();
        assert_eq!(parsed.alerts[0].ends_at, Some(now));

        let error = parse(br#"{"version":"3","alerts":[]}"#, now, &limits()).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("version"));
        let error = parse(
            br#"{"version":"4","alerts":[{"status":"open","labels":{}}]}"#,
            now,
            &limits(),
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("alerts[0].status"));
        let error = parse(br#"{"version":"4","alerts":[]}"#, now, &limits()).unwrap_err();
        assert!(error.message.contains("no alerts"));
    }
}
