//! What a Teams message says: an Adaptive Card (version 1.2) in a `message` with one attachment, as Workflows
//! webhooks take it: the title coloured by state and severity, the rendered text, the labels every alert shares as
//! facts, and buttons to the alert's source and runbook. The whole message is kept under Teams' 28 KB limit by
//! cutting the text (with a visible marker), then leaving out the facts and buttons.

use serde_json::{Value, json};

use crate::alert::Status;
use crate::notification::Notification;
use crate::sinks::SinkError;
use crate::sinks::severity::{Severity, Tone};
use crate::sinks::text::cut_chars;

/// The largest message Teams takes, in bytes of JSON.
pub const MAX_MESSAGE_BYTES: usize = 28 * 1024;
/// The Adaptive Card version sent.
pub const CARD_VERSION: &str = "1.2";
/// The attachment's content type.
pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
/// What ends text that was cut.
pub const TRUNCATED: &str = "\n\n… (truncated)";

/// The longest title kept, in characters.
const MAX_TITLE_CHARS: usize = 500;
/// The most facts shown.
const MAX_FACTS: usize = 20;
/// The longest fact value kept, in characters.
const MAX_FACT_CHARS: usize = 300;
/// The longest link kept; a longer one is left out.
const MAX_LINK_CHARS: usize = 2000;

/// The title's colour (a TextBlock `color`): attention (red) for critical, warning (orange) for warning, accent
/// (blue) for info, good (green) for resolved.
pub fn colour(tone: Tone) -> &'static str {
    match tone {
        Tone::Resolved => "good",
        Tone::Firing(Severity::Critical) => "attention",
        Tone::Firing(Severity::Warning) => "warning",
        Tone::Firing(Severity::Info) => "accent",
    }
}

/// What a card shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    pub title: String,
    pub text: String,
    /// `(name, value)`.
    pub facts: Vec<(String, String)>,
    /// Buttons: `(label, url)`.
    pub links: Vec<(String, String)>,
}

impl Parts {
    /// The parts for `notification`, from its rendered title and text.
    pub fn of(notification: &Notification, title: &str, text: &str) -> Self {
        let title = title.trim();
        let title = if title.is_empty() {
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
            title.to_owned()
        };
        let facts = notification
            .common_labels
            .iter()
            .filter(|(name, _)| name.as_str() != "alertname")
            .take(MAX_FACTS)
            .map(|(name, value)| (name.clone(), cut_chars(value, MAX_FACT_CHARS, "…")))
            .collect();
        let mut links = Vec::new();
        let source = notification
            .alerts
            .iter()
            .filter(|alert| {
                notification.status == Status::Resolved || alert.status == Status::Firing
            })
            .map(|alert| alert.alert.generator_url.trim())
            .find(|url| !url.is_empty());
        if let Some(url) = source.filter(|url| is_link(url)) {
            links.push(("Source".to_owned(), url.to_owned()));
        }
        let runbook = ["runbook_url", "runbook"]
            .iter()
            .find_map(|key| notification.common_annotations.get(*key))
            .map(|url| url.trim())
            .filter(|url| is_link(url));
        if let Some(url) = runbook {
            links.push(("Runbook".to_owned(), url.to_owned()));
        }
        Parts {
            title: cut_chars(&title, MAX_TITLE_CHARS, "…"),
            text: text.trim().to_owned(),
            facts,
            links,
        }
    }
}

fn is_link(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.chars().count() <= MAX_LINK_CHARS
}

/// The Adaptive Card.
pub fn card(tone: Tone, parts: &Parts) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": format!("{} {}", tone.emoji(), parts.title),
        "weight": "Bolder",
        "size": "Medium",
        "color": colour(tone),
        "wrap": true,
    })];
    if !parts.text.is_empty() {
        body.push(json!({"type": "TextBlock", "text": parts.text, "wrap": true}));
    }
    if !parts.facts.is_empty() {
        let facts: Vec<Value> = parts
            .facts
            .iter()
            .map(|(name, value)| json!({"title": name, "value": value}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    });
    if !parts.links.is_empty() {
        let actions: Vec<Value> = parts
            .links
            .iter()
            .map(|(title, url)| json!({"type": "Action.OpenUrl", "title": title, "url": url}))
            .collect();
        card["actions"] = Value::Array(actions);
    }
    card
}

/// The message a webhook takes: the card as its one attachment.
pub fn message(card: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": null, "content": card}],
    })
}

/// The message as JSON, at most 28 KB: the text is cut (with a marker) to what fits; then facts and buttons are left
/// out. A message that still does not fit fails permanently.
pub fn encode(tone: Tone, mut parts: Parts) -> Result<Vec<u8>, SinkError> {
    let bytes = to_vec(&message(card(tone, &parts)))?;
    if bytes.len() <= MAX_MESSAGE_BYTES {
        return Ok(bytes);
    }
    let over = bytes.len() - MAX_MESSAGE_BYTES;
    let room = escaped_len(&parts.text).saturating_sub(over + escaped_len(TRUNCATED));
    if room > 0 {
        let kept = escaped_prefix(&parts.text, room).trim_end();
        parts.text = format!("{kept}{TRUNCATED}");
        let bytes = to_vec(&message(card(tone, &parts)))?;
        if bytes.len() <= MAX_MESSAGE_BYTES {
            return Ok(bytes);
        }
    }
    parts.text.clear();
    parts.facts.clear();
    parts.links.clear();
    let bytes = to_vec(&message(card(tone, &parts)))?;
    if bytes.len() <= MAX_MESSAGE_BYTES {
        return Ok(bytes);
    }
    Err(SinkError::permanent(
        "the Teams message is larger than Teams' 28 KB limit even with its text left out; shorten the title",
    ))
}

/// How many bytes a character takes inside a JSON string.
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if u32::from(c) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// How many bytes `text` takes inside a JSON string.
fn escaped_len(text: &str) -> usize {
    text.chars().map(escaped_char_len).sum()
}

/// The longest prefix of `text` that takes at most `budget` bytes inside a JSON string.
fn escaped_prefix(text: &str, budget: usize) -> &str {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += escaped_char_len(c);
        if used > budget {
            return &text[..at];
        }
    }
    text
}

fn to_vec(value: &Value) -> Result<Vec<u8>, SinkError> {
    serde_json::to_vec(value)
        .map_err(|error| SinkError::permanent(format!("cannot encode the Teams message: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, test_alert};
    use crate::notification::{NotifiedAlert, Reason};

    fn notification(status: Status) -> Notification {
        let mut alert = test_alert("DiskFull", &[("instance", "db-1"), ("severity", "warning")]);
        alert.generator_url = "http://prometheus.example/graph?g0.expr=disk".into();
        alert
            .annotations
            .insert("runbook_url".into(), "https://runbooks.example/disk".into());
        Notification::new(
            "team".into(),
            Reason::First,
            r#"{}:{alertname="DiskFull"}"#.into(),
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
    fn the_card_has_a_coloured_title_text_facts_and_buttons() {
        let n = notification(Status::Firing);
        let parts = Parts::of(&n, "[FIRING:1] DiskFull", "- 🔥 **DiskFull**: full\n");
        let message = message(card(Tone::of(&n), &parts));
        assert_eq!(message["type"], "message");
        let attachment = &message["attachments"][0];
        assert_eq!(attachment["contentType"], CARD_CONTENT_TYPE);
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.2");
        assert_eq!(card["body"][0]["text"], "⚠️ [FIRING:1] DiskFull");
        assert_eq!(card["body"][0]["color"], "warning");
        assert_eq!(card["body"][1]["text"], "- 🔥 **DiskFull**: full");
        assert_eq!(
            card["body"][2]["facts"],
            json!([{"title": "instance", "value": "db-1"}, {"title": "severity", "value": "warning"}])
        );
        assert_eq!(
            card["actions"][0]["url"],
            "http://prometheus.example/graph?g0.expr=disk"
        );
        assert_eq!(card["actions"][1]["url"], "https://runbooks.example/disk");

        let resolved = notification(Status::Resolved);
        let card = super::card(Tone::of(&resolved), &Parts::of(&resolved, "", ""));
        assert_eq!(card["body"][0]["text"], "✅ [RESOLVED] DiskFull");
        assert_eq!(card["body"][0]["color"], "good");
        assert_eq!(
            card["body"].as_array().unwrap().len(),
            2,
            "no empty text block"
        );
    }

    #[test]
    fn a_message_over_28_kb_has_its_text_cut_on_a_boundary_with_a_marker() {
        let n = notification(Status::Firing);
        let text = "- 🔥 **磁盘已满** \"quoted\"\n".repeat(3000);
        let bytes = encode(Tone::of(&n), Parts::of(&n, "title", &text)).unwrap();
        assert!(bytes.len() <= MAX_MESSAGE_BYTES, "{}", bytes.len());
        assert!(
            bytes.len() > MAX_MESSAGE_BYTES - 64,
            "as much as fits: {}",
            bytes.len()
        );
        let message: Value = serde_json::from_slice(&bytes).unwrap();
        let kept = message["attachments"][0]["content"]["body"][1]["text"]
            .as_str()
            .unwrap();
        assert!(kept.ends_with(TRUNCATED), "{kept}");
        assert!(text.starts_with(kept.strip_suffix(TRUNCATED).unwrap()));
        assert!(message["attachments"][0]["content"]["body"][2]["facts"].is_array());

        let small = encode(Tone::of(&n), Parts::of(&n, "t", "short")).unwrap();
        let message: Value = serde_json::from_slice(&small).unwrap();
        assert_eq!(
            message["attachments"][0]["content"]["body"][1]["text"],
            "short"
        );
    }
}
