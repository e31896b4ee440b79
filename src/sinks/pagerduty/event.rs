//! What herald sends to PagerDuty's Events API v2: the group's `dedup_key` (the SHA-256 of its group key, as
//! Alertmanager derives it, so it is the same after a restart and after a move from Alertmanager), a `trigger` event
//! with its payload while the group fires, a `resolve` event when it has resolved; each cut to PagerDuty's limits
//! (summary 1,024 characters, the whole event 512 KB).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::alert::Status;
use crate::notification::Notification;
use crate::sinks::SinkError;
use crate::sinks::severity::{Severity, severity};
use crate::sinks::text::cut_chars;

/// The longest summary PagerDuty takes, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// The largest event PagerDuty takes, in bytes of JSON.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// What ends text that was cut.
const CUT: &str = "…";

/// What ends a detail that was cut to fit the event's size.
const DETAIL_CUT: &str = "… (cut to fit PagerDuty's 512 KB event limit)";

/// The severities PagerDuty takes, as sent.
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The group's `dedup_key`: the lowercase hex SHA-256 of its group key.
pub fn dedup_key(group_key: &str) -> String {
    hex::encode(Sha256::digest(group_key.as_bytes()))
}

/// The fields of a trigger event, rendered from the config's templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub summary: String,
    pub severity: String,
    pub source: String,
    pub class: String,
    pub component: String,
    pub group: String,
    pub client: String,
    pub client_url: String,
    pub details: BTreeMap<String, String>,
    /// `(href, text)`.
    pub links: Vec<(String, String)>,
    /// `(src, href, alt)`.
    pub images: Vec<(String, String, String)>,
}

/// The event's severity: the rendered `severity` when it is one of PagerDuty's, else read as a severity label
/// (`page` is critical); when nothing was rendered, the alerts' `severity` labels the same way; else `error`.
pub fn event_severity(rendered: &str, notification: &Notification) -> &'static str {
    let as_pagerduty = |value: &str| {
        let value = value.trim().to_ascii_lowercase();
        SEVERITIES.into_iter().find(|known| *known == value)
    };
    let from_label = |severity: Severity| match severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    if !rendered.trim().is_empty() {
        return as_pagerduty(rendered)
            .or_else(|| Severity::parse(rendered).map(from_label))
            .unwrap_or("error");
    }
    notification
        .common_labels
        .get("severity")
        .and_then(|value| as_pagerduty(value))
        .or_else(|| severity(notification).map(from_label))
        .unwrap_or("error")
}

/// The summary: the rendered one (one line's worth of whitespace kept as is), else `[STATUS] alertname`, cut to
/// 1,024 characters.
pub fn summary(rendered: &str, notification: &Notification) -> String {
    let rendered = rendered.trim();
    let text = if rendered.is_empty() {
        let name = notification
            .group_labels
            .get("alertname")
            .or_else(|| notification.common_labels.get("alertname"))
            .map_or("alerts", String::as_str);
        format!(
            "[{}] {name}",
            notification.status.as_str().to_ascii_uppercase()
        )
    } else {
        rendered.to_owned()
    };
    cut_chars(&text, MAX_SUMMARY_CHARS, CUT)
}

/// When the group started firing: the earliest start of its firing alerts.
pub fn started(notification: &Notification) -> Option<DateTime<Utc>> {
    notification
        .alerts
        .iter()
        .filter(|alert| alert.status == Status::Firing)
        .map(|alert| alert.alert.starts_at)
        .min()
}

fn insert_text(map: &mut Map<String, Value>, key: &str, value: &str) {
    let value = value.trim();
    if !value.is_empty() {
        map.insert(key.to_owned(), json!(value));
    }
}

/// A `trigger` event for the group.
pub fn trigger(
    routing_key: &str,
    dedup_key: &str,
    rendered: &Rendered,
    timestamp: Option<DateTime<Utc>>,
) -> Value {
    let mut payload = Map::new();
    payload.insert("summary".into(), json!(rendered.summary));
    let source = rendered.source.trim();
    payload.insert(
        "source".into(),
        json!(if source.is_empty() { "herald" } else { source }),
    );
    payload.insert("severity".into(), json!(rendered.severity));
    if let Some(timestamp) = timestamp {
        payload.insert(
            "timestamp".into(),
            json!(timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
    }
    insert_text(&mut payload, "class", &rendered.class);
    insert_text(&mut payload, "component", &rendered.component);
    insert_text(&mut payload, "group", &rendered.group);
    payload.insert("custom_details".into(), json!(rendered.details));
    let mut event = Map::new();
    event.insert("routing_key".into(), json!(routing_key));
    event.insert("event_action".into(), json!("trigger"));
    event.insert("dedup_key".into(), json!(dedup_key));
    event.insert("payload".into(), Value::Object(payload));
    insert_text(&mut event, "client", &rendered.client);
    insert_text(&mut event, "client_url", &rendered.client_url);
    let links: Vec<Value> = rendered
        .links
        .iter()
        .filter(|(href, _)| !href.trim().is_empty())
        .map(|(href, text)| {
            let mut link = Map::new();
            insert_text(&mut link, "href", href);
            insert_text(&mut link, "text", text);
            Value::Object(link)
        })
        .collect();
    if !links.is_empty() {
        event.insert("links".into(), Value::Array(links));
    }
    let images: Vec<Value> = rendered
        .images
        .iter()
        .filter(|(src, _, _)| !src.trim().is_empty())
        .map(|(src, href, alt)| {
            let mut image = Map::new();
            insert_text(&mut image, "src", src);
            insert_text(&mut image, "href", href);
            insert_text(&mut image, "alt", alt);
            Value::Object(image)
        })
        .collect();
    if !images.is_empty() {
        event.insert("images".into(), Value::Array(images));
    }
    Value::Object(event)
}

/// A `resolve` event for the group.
pub fn resolve(routing_key: &str, dedup_key: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": dedup_key,
    })
}

/// The event as JSON, at most 512 KB: when it is larger, its details are cut (each to an equal share, halved until
/// the event fits), and left out when even that is not enough. An event too large without details fails
/// permanently.
pub fn encode(mut event: Value) -> Result<Vec<u8>, SinkError> {
    let bytes = to_vec(&event)?;
    if bytes.len() <= MAX_EVENT_BYTES {
        return Ok(bytes);
    }
    let Some(details) = event
        .pointer("/payload/custom_details")
        .and_then(Value::as_object)
        .cloned()
    else {
        return Err(too_large());
    };
    let mut share = MAX_EVENT_BYTES / details.len().max(1);
    while share >= DETAIL_CUT.len() * 2 {
        let cut: Map<String, Value> = details
            .iter()
            .map(|(name, value)| {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                let text = crate::sinks::text::cut_bytes(&text, share, DETAIL_CUT);
                (name.clone(), Value::String(text))
            })
            .collect();
        set_details(&mut event, Value::Object(cut));
        let bytes = to_vec(&event)?;
        if bytes.len() <= MAX_EVENT_BYTES {
            return Ok(bytes);
        }
        share /= 2;
    }
    set_details(
        &mut event,
        json!({"note": "the details were left out: they did not fit PagerDuty's 512 KB event limit"}),
    );
    let bytes = to_vec(&event)?;
    if bytes.len() <= MAX_EVENT_BYTES {
        return Ok(bytes);
    }
    Err(too_large())
}

fn set_details(event: &mut Value, details: Value) {
    if let Some(slot) = event.pointer_mut("/payload/custom_details") {
        *slot = details;
    }
}

fn to_vec(event: &Value) -> Result<Vec<u8>, SinkError> {
    serde_json::to_vec(event).map_err(|error| {
        SinkError::permanent(format!("cannot encode the PagerDuty event: {error}"))
    })
}

fn too_large() -> SinkError {
    SinkError::permanent(
        "the PagerDuty event is larger than PagerDuty's 512 KB limit even without its details; shorten the \
         summary, links or images",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, test_alert};
    use crate::notification::{NotifiedAlert, Reason};

    fn notification(labels: &[(&str, &str)], status: Status) -> Notification {
        let alert = test_alert("DiskFull", labels);
        Notification::new(
            "pager".into(),
            Reason::First,
            r#"{}/{severity="page"}:{alertname="DiskFull"}"#.into(),
            Labels::from([("alertname".to_owned(), "DiskFull".to_owned())]),
            vec![NotifiedAlert {
                fingerprint: alert.fingerprint(),
                status,
                alert,
            }],
            None,
            None,
        )
    }

    #[test]
    fn the_dedup_key_is_the_sha256_of_the_group_key() {
        let key = dedup_key(r#"{}:{alertname="DiskFull"}"#);
        assert_eq!(key.len(), 64);
        assert!(
            key.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(key, dedup_key(r#"{}:{alertname="DiskFull"}"#));
        assert_ne!(key, dedup_key(r#"{}:{alertname="DiskFul"}"#));
        assert_eq!(
            dedup_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn severity_comes_from_the_template_else_the_labels_else_error() {
        let critical = notification(&[("severity", "page")], Status::Firing);
        assert_eq!(event_severity("", &critical), "critical");
        assert_eq!(event_severity("warning", &critical), "warning");
        assert_eq!(event_severity(" Info ", &critical), "info");
        assert_eq!(event_severity("error", &critical), "error");
        assert_eq!(event_severity("p3", &critical), "warning");
        assert_eq!(event_severity("whatever", &critical), "error");
        let error = notification(&[("severity", "error")], Status::Firing);
        assert_eq!(event_severity("", &error), "error", "PagerDuty's own word");
        let unknown = notification(&[("severity", "sev9")], Status::Firing);
        assert_eq!(event_severity("", &unknown), "error");
        let none = notification(&[], Status::Firing);
        assert_eq!(event_severity("", &none), "error");
    }

    #[test]
    fn the_summary_is_cut_to_1024_characters_on_a_character_boundary() {
        let n = notification(&[], Status::Firing);
        let long = "磁盘已满 ".repeat(400);
        let summary = summary(&long, &n);
        assert_eq!(summary.chars().count(), MAX_SUMMARY_CHARS);
        assert!(summary.ends_with('…'));
        assert!(long.starts_with(summary.trim_end_matches('…')));
        assert_eq!(super::summary("  short  ", &n), "short");
        assert_eq!(super::summary("", &n), "[FIRING] DiskFull");
        let exact = "x".repeat(MAX_SUMMARY_CHARS);
        assert_eq!(super::summary(&exact, &n), exact);
    }

    fn rendered() -> Rendered {
        Rendered {
            summary: "[FIRING:1] DiskFull".into(),
            severity: "critical".into(),
            source: "db-1".into(),
            class: " ".into(),
            component: "disk".into(),
            group: String::new(),
            client: "herald".into(),
            client_url: String::new(),
            details: BTreeMap::from([("num_firing".into(), "1".into())]),
            links: vec![
                ("https://runbooks.example/disk".into(), "Runbook".into()),
                ("".into(), "dropped".into()),
            ],
            images: vec![(
                "https://img.example/x.png".into(),
                String::new(),
                "graph".into(),
            )],
        }
    }

    #[test]
    fn a_trigger_has_the_payload_and_leaves_out_empty_fields() {
        let at: DateTime<Utc> = "2026-11-21T09:00:00Z".parse().unwrap();
        let event = trigger("k".repeat(32).as_str(), "dd", &rendered(), Some(at));
        assert_eq!(event["event_action"], "trigger");
        assert_eq!(event["dedup_key"], "dd");
        let payload = &event["payload"];
        assert_eq!(payload["summary"], "[FIRING:1] DiskFull");
        assert_eq!(payload["source"], "db-1");
        assert_eq!(payload["severity"], "critical");
        assert_eq!(payload["timestamp"], "2026-11-21T09:00:00.000Z");
        assert_eq!(payload["component"], "disk");
        assert!(payload.get("class").is_none());
        assert!(payload.get("group").is_none());
        assert_eq!(payload["custom_details"]["num_firing"], "1");
        assert_eq!(event["client"], "herald");
        assert!(event.get("client_url").is_none());
        assert_eq!(
            event["links"],
            json!([{"href": "https://runbooks.example/disk", "text": "Runbook"}])
        );
        assert_eq!(
            event["images"],
            json!([{"src": "https://img.example/x.png", "alt": "graph"}])
        );
        let mut bare = rendered();
        bare.source = "  ".into();
        assert_eq!(
            trigger("k", "d", &bare, None)["payload"]["source"],
            "herald"
        );
        let resolve = resolve("k", "dd");
        assert_eq!(
            resolve,
            json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "dd"})
        );
    }

    #[test]
    fn an_event_over_512_kb_has_its_details_cut_to_fit() {
        let mut big = rendered();
        big.details.insert("firing".into(), "火".repeat(300_000));
        big.details.insert("resolved".into(), "x".repeat(100_000));
        let bytes = encode(trigger("k", "d", &big, None)).unwrap();
        assert!(bytes.len() <= MAX_EVENT_BYTES, "{}", bytes.len());
        let event: Value = serde_json::from_slice(&bytes).unwrap();
        let firing = event["payload"]["custom_details"]["firing"]
            .as_str()
            .unwrap();
        assert!(firing.ends_with(DETAIL_CUT), "cut with a marker");
        assert!(firing.starts_with("火火"));
        assert_eq!(event["payload"]["custom_details"]["num_firing"], "1");

        let small = encode(trigger("k", "d", &rendered(), None)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&small).unwrap(),
            trigger("k", "d", &rendered(), None)
        );

        let mut hopeless = rendered();
        hopeless.links = vec![("https://x".repeat(100_000), String::new())];
        let error = encode(trigger("k", "d", &hopeless, None)).unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
    }
}
