//! Ingest: pure parsers turning each source's payload into normalised alerts, plus the checks they share.

pub mod alertmanager;
pub mod grafana;
pub mod prometheus;
pub mod signature;
mod webhook;

#[cfg(test)]
mod fuzz_tests;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::alert::{Alert, Annotations, Labels};

/// Limits and defaults applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `endsAt` given to v2 API alerts that carry none: now + this.
    pub resolve_timeout: Duration,
    pub max_labels_per_alert: usize,
    pub max_alerts_per_request: usize,
}

/// The outcome of parsing one request body: the alerts to store and the ones rejected individually.
#[derive(Debug, Default)]
pub struct Parsed {
    pub alerts: Vec<Alert>,
    pub rejected: Vec<Rejection>,
}

/// One alert of a batch that failed validation; the rest of the batch is still stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Position of the alert in the request's alert list (0-based).
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    pub reason: String,
}

impl Rejection {
    pub fn new(index: usize, alertname: Option<String>, reason: String) -> Self {
        Rejection {
            index,
            alertname,
            reason,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.alertname {
            Some(name) => write!(f, "alert {} ({name}): {}", self.index, self.reason),
            None => write!(f, "alert {}: {}", self.index, self.reason),
        }
    }
}

/// Why a request body as a whole cannot be used; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub message: String,
    /// Path of the offending field, such as `[2].labels.severity` or `alerts[0].status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl BodyError {
    pub fn new(message: impl Into<String>) -> Self {
        BodyError {
            message: message.into(),
            field: None,
            line: None,
            column: None,
        }
    }

    pub fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        BodyError {
            field: Some(field.into()),
            ..BodyError::new(message)
        }
    }
}

/// Deepest nesting of arrays and objects accepted anywhere in a body; real payloads stay under 6.
const MAX_DEPTH: usize = 32;

/// Rejects bodies nested deeper than `MAX_DEPTH`, including inside fields that are otherwise ignored.
fn check_depth(body: &[u8]) -> Result<(), BodyError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut line, mut line_start) = (1usize, 0usize);
    for (offset, byte) in body.iter().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'\n' => {
                line += 1;
                line_start = offset + 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(BodyError {
                        message: format!("JSON nested deeper than {MAX_DEPTH} levels"),
                        field: None,
                        line: Some(line),
                        column: Some(offset - line_start + 1),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Decodes JSON strictly (trailing data, invalid UTF-8 and nesting beyond serde_json's limit are errors), naming the
/// path, line and column of the first problem.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    check_depth(body)?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let field = (path != ".").then_some(path);
        let message = match &field {
            Some(field) => format!("invalid JSON at {field}: {inner}"),
            None => format!("invalid JSON: {inner}"),
        };
        BodyError {
            message,
            field,
            line: Some(inner.line()),
            column: Some(inner.column()),
        }
    })?;
    deserializer.end().map_err(|inner| BodyError {
        message: format!("invalid JSON: {inner}"),
        field: None,
        line: Some(inner.line()),
        column: Some(inner.column()),
    })?;
    Ok(value)
}

/// Checks a webhook payload's `version` field.
pub(crate) fn check_version(found: &str, expected: &str, sender: &str) -> Result<(), BodyError> {
    if found == expected {
        return Ok(());
    }
    Err(BodyError::at(
        "version",
        format!("unsupported {sender} webhook payload version {found:?}, expected {expected:?}"),
    ))
}

/// Checks the number of alerts in a request.
pub(crate) fn check_count(count: usize, limits: &Limits, field: &str) -> Result<(), BodyError> {
    if count == 0 {
        return Err(BodyError::at(field, "no alerts in request body"));
    }
    if count > limits.max_alerts_per_request {
        return Err(BodyError::at(
            field,
            format!(
                "{count} alerts in one request, more than the limit of {} (ingest.max_alerts_per_request)",
                limits.max_alerts_per_request
            ),
        ));
    }
    Ok(())
}

/// Drops empty label values (as Alertmanager does) and checks what remains: at least one label, within the limit,
/// non-empty names.
pub(crate) fn clean_labels(raw: Labels, limits: &Limits) -> Result<Labels, String> {
    let labels: Labels = raw
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if labels.is_empty() {
        return Err("at least one label pair with a non-empty value is required".to_string());
    }
    if labels.len() > limits.max_labels_per_alert {
        return Err(format!(
            "{} labels, more than the limit of {} (ingest.max_labels_per_alert)",
            labels.len(),
            limits.max_labels_per_alert
        ));
    }
    if labels.contains_key("") {
        return Err("label names must not be empty".to_string());
    }
    Ok(labels)
}

/// Drops empty annotation values, as Alertmanager does for labels, so an unset annotation and an empty one agree.
pub(crate) fn clean_annotations(raw: Option<Annotations>) -> Annotations {
    raw.unwrap_or_default()
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`), which Alertmanager and Grafana send for "no end".
pub(crate) fn is_zero_time(time: &DateTime<Utc>) -> bool {
    time.timestamp() == -62_135_596_800 && time.timestamp_subsec_nanos() == 0
}

/// A time as sent, `None` when it was not sent or is Go's zero time (which means unset).
pub(crate) fn present(time: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    time.filter(|time| !is_zero_time(time))
}

/// The one check of an alert's times, whichever path it came by: its end as sent (or, when none was sent, the end
/// a missing one defaults to: `resolve_timeout` from now) may not come before its start. So a start far in the
/// future is refused on every path, as is an end sent before the start; each path then applies its own defaults.
pub(crate) fn check_times(
    starts_at: DateTime<Utc>,
    sent_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<(), String> {
    let end = sent_end.unwrap_or(now + limits.resolve_timeout);
    if end < starts_at {
        return Err(match sent_end {
            Some(end) => format!(
                "endsAt {} is before startsAt {}",
                end.to_rfc3339(),
                starts_at.to_rfc3339()
            ),
            None => format!(
                "startsAt {} is after the end a missing endsAt defaults to ({})",
                starts_at.to_rfc3339(),
                end.to_rfc3339()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Limits;
    use std::time::Duration;

    pub fn limits() -> Limits {
        Limits {
            resolve_timeout: Duration::from_secs(300),
            max_labels_per_alert: 128,
            max_alerts_per_request: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_names_field_and_position() {
        let error = decode::<Vec<crate::ingest::prometheus::PostableAlert>>(
            br#"[{"labels":{"a":"b"}},{"labels":{"severity":5}}]"#,
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("[1].labels.severity"));
        assert_eq!(error.line, Some(1));
        assert!(error.column.unwrap_or(0) > 30, "{error:?}");
        assert!(error.message.contains("invalid type"), "{}", error.message);
    }

    #[test]
    fn decode_rejects_trailing_data_invalid_utf8_and_deep_nesting() {
        assert!(decode::<serde_json::Value>(b"[] x").is_err());
        assert!(decode::<serde_json::Value>(b"[\"\xff\xfe\"]").is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let error = decode::<serde_json::Value>(deep.as_bytes()).unwrap_err();
        assert!(
            error.message.contains("nested deeper than 32"),
            "{}",
            error.message
        );
        assert_eq!(error.column, Some(33));
        let shallow = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(decode::<serde_json::Value>(shallow.as_bytes()).is_ok());
        let in_string = format!("[\"{}\\\"{}\"]", "[".repeat(100), "{".repeat(100));
        assert!(
            decode::<Vec<String>>(in_string.as_bytes()).is_ok(),
            "brackets inside strings do not count"
        );
    }

    #[test]
    fn labels_are_cleaned_and_limited() {
        let limits = test_support::limits();
        let raw: Labels = [("a", "1"), ("empty", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(clean_labels(raw, &limits).unwrap().len(), 1);
        let only_empty: Labels = [("a".to_string(), String::new())].into();
        assert!(clean_labels(only_empty, &limits).is_err());
        let many: Labels = (0..200)
            .map(|i| (format!("l{i}"), "v".to_string()))
            .collect();
        assert!(
            clean_labels(many, &limits)
                .unwrap_err()
                .contains("limit of 128")
        );
    }

    /// What one path refuses, every path refuses: the same times sent to the v2 API and to both webhooks.
    #[test]
    fn every_path_checks_times_alike() {
        let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let limits = test_support::limits();
        let zero = "0001-01-01T00:00:00Z";
        // (startsAt, endsAt, webhook status, refused)
        let cases = [
            ("9999-12-31T23:59:59Z", zero, "firing", true),
            (
                "2026-11-21T09:00:00Z",
                "2026-11-21T08:00:00Z",
                "firing",
                true,
            ),
            (
                "2026-11-21T09:00:00Z",
                "2026-11-21T08:00:00Z",
                "resolved",
                true,
            ),
            (
                "2026-11-21T09:00:00Z",
                "9999-12-31T23:59:59Z",
                "firing",
                false,
            ),
            ("2026-11-21T10:01:00Z", zero, "firing", false),
            ("2026-11-21T09:00:00Z", zero, "firing", false),
            (
                "2026-11-21T09:00:00Z",
                "2026-11-21T09:30:00Z",
                "resolved",
                false,
            ),
        ];
        for (starts_at, ends_at, status, refused) in cases {
            let alert = format!(
                r#"{{"status": "{status}", "labels": {{"alertname": "A"}}, "annotations": {{}},
                "startsAt": "{starts_at}", "endsAt": "{ends_at}", "generatorURL": "", "fingerprint": "f"}}"#
            );
            let v2 = format!("[{alert}]");
            let alertmanager = format!(
                r#"{{"version": "4", "groupKey": "k", "truncatedAlerts": 0, "status": "{status}",
                "receiver": "herald", "groupLabels": {{}}, "commonLabels": {{}}, "commonAnnotations": {{}},
                "externalURL": "", "alerts": [{alert}]}}"#
            );
            let grafana = format!(
                r#"{{"receiver": "herald", "status": "{status}", "orgId": 1, "version": "1",
                "state": "alerting", "groupKey": "k", "truncatedAlerts": 0, "title": "t", "message": "m",
                "externalURL": "", "groupLabels": {{}}, "commonLabels": {{}}, "commonAnnotations": {{}},
                "alerts": [{alert}]}}"#
            );
            let results = [
                ("v2", prometheus::parse(v2.as_bytes(), now, &limits)),
                (
                    "alertmanager",
                    alertmanager::parse(alertmanager.as_bytes(), now, &limits),
                ),
                ("grafana", grafana::parse(grafana.as_bytes(), now, &limits)),
            ];
            for (path, parsed) in results {
                let parsed = parsed.unwrap();
                assert_eq!(
                    (parsed.rejected.len(), parsed.alerts.len()),
                    if refused { (1, 0) } else { (0, 1) },
                    "{path}: startsAt {starts_at}, endsAt {ends_at}, {status}: {:?}",
                    parsed.rejected
                );
            }
        }
    }
}
