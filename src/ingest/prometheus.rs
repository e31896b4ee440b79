//! `POST /api/v2/alerts` payloads (Alertmanager's v2 API, as Prometheus and amtool send) -> alerts.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    BodyError, Limits, Parsed, Rejection, check_count, check_times, clean_annotations,
    clean_labels, decode, present,
};
use crate::alert::{Alert, Annotations, Extra, Labels, Source};

/// One element of the posted array (Alertmanager's `postableAlert`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostableAlert {
    labels: Labels,
    #[serde(default)]
    annotations: Option<Annotations>,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// Parses a v2 API body with Alertmanager's semantics: missing `startsAt` is now (or `endsAt` when only that is
/// given), missing `endsAt` is now + resolve_timeout (Go's zero time, `0001-01-01T00:00:00Z`, which amtool sends
/// for both, counts as missing), empty label values are dropped, and invalid alerts are rejected
/// one by one while the valid ones are kept.
pub fn parse(body: &[u8], now: DateTime<Utc>, limits: &Limits) -> Result<Parsed, BodyError> {
    let posted: Vec<PostableAlert> = decode(body)?;
    check_count(posted.len(), limits, "")?;
    let mut parsed = Parsed::default();
    for (index, raw) in posted.into_iter().enumerate() {
        let alertname = raw.labels.get("alertname").cloned();
        match normalise(raw, now, limits) {
            Ok(alert) => parsed.alerts.push(alert),
            Err(reason) => parsed
                .rejected
                .push(Rejection::new(index, alertname, reason)),
        }
    }
    Ok(parsed)
}

fn normalise(raw: PostableAlert, now: DateTime<Utc>, limits: &Limits) -> Result<Alert, String> {
    let labels = clean_labels(raw.labels, limits).map_err(|reason| format!("labels: {reason}"))?;
    let (raw_starts_at, raw_ends_at) = (present(raw.starts_at), present(raw.ends_at));
    let starts_at = match (raw_starts_at, raw_ends_at) {
        (Some(start), _) => start,
        (None, Some(end)) => end,
        (None, None) => now,
    };
    check_times(starts_at, raw_ends_at, now, limits)?;
    let (ends_at, timeout) = match raw_ends_at {
        Some(end) => (end, false),
        None => (now + limits.resolve_timeout, true),
    };
    Ok(Alert {
        labels,
        annotations: clean_annotations(raw.annotations),
        starts_at,
        ends_at: Some(ends_at),
        ends_at_defaulted: timeout,
        generator_url: raw.generator_url.unwrap_or_default(),
        source: Source::Prometheus,
        extra: Extra::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use crate::ingest::test_support::limits;

    fn now() -> DateTime<Utc> {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn prometheus_payload_is_normalised() {
        let body = br#"[{"labels":{"alertname":"HighLatency","instance":"web-1:9100","severity":"warning","empty":""},
            "annotations":{"summary":"p99 over 2s"},"startsAt":"2026-11-21T09:58:00.123Z",
            "endsAt":"2026-11-21T10:04:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=x"}]"#;
        let parsed = parse(body, now(), &limits()).unwrap();
        assert!(parsed.rejected.is_empty());
        let alert = &parsed.alerts[0];
        assert_eq!(alert.labels.len(), 3, "empty label value dropped");
        assert_eq!(alert.name(), "HighLatency");
        assert_eq!(alert.annotations["summary"], "p99 over 2s");
        assert_eq!(
            alert.starts_at,
            "2026-11-21T09:58:00.123Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(alert.status_at(now()), Status::Firing);
        assert_eq!(
            alert.generator_url,
            "http://prometheus:9090/graph?g0.expr=x"
        );
        assert!(!alert.ends_at_defaulted);
    }

    #[test]
    fn missing_times_get_alertmanager_defaults() {
        let parsed = parse(br#"[{"labels":{"alertname":"A"}}]"#, now(), &limits()).unwrap();
        let alert = &parsed.alerts[0];
        assert_eq!(alert.starts_at, now());
        assert_eq!(alert.ends_at, Some(now() + chrono::Duration::minutes(5)));
        assert!(alert.ends_at_defaulted);

        let parsed = parse(
            br#"[{"labels":{"alertname":"A"},"endsAt":"2026-11-21T09:00:00Z"}]"#,
            now(),
            &limits(),
        )
        .unwrap();
        let alert = &parsed.alerts[0];
        assert_eq!(
            alert.starts_at,
            alert.ends_at.unwrap(),
            "startsAt defaults to endsAt when only endsAt is given"
        );
        assert_eq!(alert.status_at(now()), Status::Resolved);
    }

    #[test]
    fn go_zero_times_count_as_missing() {
        let parsed = parse(
            br#"[{"labels":{"alertname":"A"},"startsAt":"0001-01-01T00:00:00.000Z","endsAt":"0001-01-01T00:00:00Z"}]"#,
            now(),
            &limits(),
        )
        .unwrap();
        let alert = &parsed.alerts[0];
        assert_eq!(alert.starts_at, now());
        assert_eq!(alert.ends_at, Some(now() + chrono::Duration::minutes(5)));
        assert!(alert.ends_at_defaulted);
        assert_eq!(alert.status_at(now()), Status::Firing);
    }

    #[test]
    fn invalid_alerts_are_rejected_individually() {
        let body = br#"[{"labels":{"alertname":"ok"}},{"labels":{}},
            {"labels":{"alertname":"backwards"},"startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T09:00:00Z"}]"#;
        let parsed = parse(body, now(), &limits()).unwrap();
        assert_eq!(parsed.alerts.len(), 1);
        assert_eq!(parsed.rejected.len(), 2);
        assert_eq!(parsed.rejected[0].index, 1);
        assert!(parsed.rejected[0].reason.contains("at least one label"));
        assert_eq!(parsed.rejected[1].index, 2);
        assert!(
            parsed.rejected[1].reason.contains("before startsAt"),
            "{}",
            parsed.rejected[1].reason
        );
    }

    #[test]
    fn structural_errors_reject_the_body() {
        for body in [
            &br#"{"labels":{}}"#[..],
            br#"[]"#,
            br#"[{"annotations":{}}]"#,
            br#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#,
            br#"[{"labels":{"a":["b"]}}]"#,
            b"not json",
        ] {
            assert!(
                parse(body, now(), &limits()).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let error = parse(br#"[{"annotations":{}}]"#, now(), &limits()).unwrap_err();
        assert!(
            error.message.contains("missing field `labels`"),
            "{}",
            error.message
        );
    }
}
