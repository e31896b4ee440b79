//! What a Slack message says: the fallback `text`, a heading block with the title and its link, and one coloured
//! attachment (colour by state and severity) holding the rendered text, the labels and annotations every alert
//! shares, runbook and silence links, and the counts. Everything is cut to Slack's limits: `text` 40,000
//! characters, 50 blocks per message, 3,000 characters per section, 10 fields of 2,000.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::alert::Status;
use crate::notification::Notification;
pub use crate::sinks::severity::{Severity, severity};

/// The longest `text` Slack takes, in characters.
pub const MAX_TEXT_CHARS: usize = 40_000;
/// The most blocks one message may have.
pub const MAX_BLOCKS: usize = 50;
/// The longest text of a section block, in characters.
pub const MAX_SECTION_CHARS: usize = 3_000;
/// The most fields a section may have.
const MAX_FIELDS: usize = 10;
/// The longest field of a section, in characters.
const MAX_FIELD_CHARS: usize = 2_000;
/// The longest title link kept; a longer one is left out rather than cut.
const MAX_LINK_CHARS: usize = 2_000;
/// The most distinct runbooks linked.
const MAX_RUNBOOKS: usize = 3;
/// What ends text that was cut.
const CUT: &str = "…";
/// What ends the rendered text when it did not fit.
const TRUNCATED: &str = "\n… (truncated)";

/// Firing, critical (or of unknown severity, as Alertmanager's `danger`).
pub const CRITICAL: &str = "#FF0000";
/// Firing, warning.
pub const WARNING: &str = "#FFA500";
/// Firing, info.
pub const INFO: &str = "#36A64F";
/// Resolved.
pub const RESOLVED: &str = "#439FE0";

/// Annotations that name a runbook.
const RUNBOOK_KEYS: [&str; 2] = ["runbook_url", "runbook"];

/// The attachment's colour: resolved blue, else by severity (unknown severity is critical red).
pub fn colour(notification: &Notification) -> &'static str {
    if notification.status == Status::Resolved {
        return RESOLVED;
    }
    match severity(notification) {
        Some(Severity::Info) => INFO,
        Some(Severity::Warning) => WARNING,
        Some(Severity::Critical) | None => CRITICAL,
    }
}

/// The rendered templates of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    pub title: String,
    pub title_link: String,
    pub text: String,
}

/// A message's content, for an incoming webhook, `chat.postMessage` or `chat.update`.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// The fallback shown in notifications: the title.
    pub text: String,
    pub blocks: Vec<Value>,
    pub attachments: Vec<Value>,
}

impl Content {
    /// `text`, `blocks` and `attachments` as a JSON object to add fields to.
    pub fn to_json(&self) -> serde_json::Map<String, Value> {
        let mut body = serde_json::Map::new();
        body.insert("text".into(), json!(self.text));
        body.insert("blocks".into(), json!(self.blocks));
        body.insert("attachments".into(), json!(self.attachments));
        body
    }
}

/// Builds the message for `notification`; `updated_at` adds when it was last changed (bot mode).
pub fn content(
    notification: &Notification,
    texts: &Texts,
    updated_at: Option<DateTime<Utc>>,
) -> Content {
    let title = title(notification, &texts.title);
    let heading = section(&heading_text(&title, texts.title_link.trim()));
    let mut tail = Vec::new();
    tail.extend(labels_block(notification));
    tail.extend(annotations_block(notification, &texts.text));
    tail.extend(links_block(notification));
    tail.push(context_block(notification, updated_at));
    // The heading is a top-level block; the attachment's blocks share the rest of the budget.
    let budget = MAX_BLOCKS.saturating_sub(1 + tail.len()).max(1);
    let mut blocks: Vec<Value> = text_sections(&texts.text, budget)
        .iter()
        .map(|text| section(text))
        .collect();
    blocks.extend(tail);
    let fallback = truncate(&title, MAX_TEXT_CHARS);
    Content {
        text: fallback.clone(),
        blocks: vec![heading],
        attachments: vec![json!({
            "color": colour(notification),
            "fallback": fallback,
            "blocks": blocks,
        })],
    }
}

/// The rendered title, or a plain one when the template rendered nothing.
fn title(notification: &Notification, rendered: &str) -> String {
    let rendered = rendered.trim();
    if !rendered.is_empty() {
        return rendered.to_owned();
    }
    let name = notification
        .group_labels
        .get("alertname")
        .or_else(|| notification.common_labels.get("alertname"))
        .map_or("alerts", String::as_str);
    format!(
        "[{}] {name}",
        notification.status.as_str().to_ascii_uppercase()
    )
}

/// `*<link|title>*`, or `*title*` without a link (or with one too long to fit); escaped and cut to a section's
/// length.
fn heading_text(title: &str, link: &str) -> String {
    let room = MAX_SECTION_CHARS - 2;
    if link.is_empty() || link.chars().count() > MAX_LINK_CHARS {
        return format!("*{}*", truncate(&escape(title), room));
    }
    let link = link_url(link);
    let room = room.saturating_sub(link.chars().count() + 3).max(1);
    format!("*<{link}|{}>*", truncate(&escape(title), room))
}

/// A `mrkdwn` section block.
fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS)}})
}

/// The rendered text in sections of at most 3,000 characters (cut at line ends where possible), at most `budget` of
/// them and 40,000 characters in all; what does not fit ends with "… (truncated)".
pub fn text_sections(text: &str, budget: usize) -> Vec<String> {
    let text = text.trim();
    if text.is_empty() || budget == 0 {
        return Vec::new();
    }
    let limited = truncate_with(text, MAX_TEXT_CHARS, TRUNCATED);
    let mut chunks = chunk(&limited, MAX_SECTION_CHARS);
    if chunks.len() > budget {
        chunks.truncate(budget);
        if let Some(last) = chunks.last_mut() {
            let kept = truncate_with(last, MAX_SECTION_CHARS - TRUNCATED.chars().count(), "");
            *last = format!("{kept}{TRUNCATED}");
        }
    }
    chunks
}

/// Splits `text` into pieces of at most `max` characters, at the last line break of each piece when it has one.
fn chunk(text: &str, max: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some((end, _)) = rest.char_indices().nth(max) else {
            chunks.push(rest.to_owned());
            break;
        };
        let cut = rest[..end].rfind('\n').filter(|at| *at > 0).unwrap_or(end);
        chunks.push(rest[..cut].to_owned());
        rest = rest[cut..].strip_prefix('\n').unwrap_or(&rest[cut..]);
    }
    chunks
}

/// The labels every alert shares (but `alertname`, which the title names), as fields; more than ten are listed
/// in the section's text.
fn labels_block(notification: &Notification) -> Option<Value> {
    let labels: Vec<(&String, &String)> = notification
        .common_labels
        .iter()
        .filter(|(name, _)| name.as_str() != "alertname")
        .collect();
    if labels.is_empty() {
        return None;
    }
    let fields: Vec<Value> = labels
        .iter()
        .take(MAX_FIELDS)
        .map(|(name, value)| {
            let text = format!("*{}*\n{}", escape(name), escape(value));
            json!({"type": "mrkdwn", "text": truncate(&text, MAX_FIELD_CHARS)})
        })
        .collect();
    let mut heading = "*Labels*".to_owned();
    let more: Vec<String> = labels
        .iter()
        .skip(MAX_FIELDS)
        .map(|(name, value)| format!("`{}={}`", escape(name), escape(value)))
        .collect();
    if !more.is_empty() {
        heading.push('\n');
        heading.push_str(&more.join(" "));
    }
    Some(json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(&heading, MAX_SECTION_CHARS)},
        "fields": fields,
    }))
}

/// The annotations every alert shares, one per line, but runbooks (linked below) and a summary the text already
/// shows.
fn annotations_block(notification: &Notification, text: &str) -> Option<Value> {
    let lines: Vec<String> = notification
        .common_annotations
        .iter()
        .filter(|(name, _)| !RUNBOOK_KEYS.contains(&name.as_str()))
        .filter(|(name, value)| !(name.as_str() == "summary" && text.contains(value.as_str())))
        .map(|(name, value)| format!("*{}*: {}", escape(name), escape(value)))
        .collect();
    (!lines.is_empty()).then(|| section(&lines.join("\n")))
}

/// Links to runbooks and to a new silence for the group, when there are any.
fn links_block(notification: &Notification) -> Option<Value> {
    let runbooks = runbooks(notification);
    let mut links: Vec<String> = runbooks
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let label = if runbooks.len() == 1 {
                ":book: Runbook".to_owned()
            } else {
                format!(":book: Runbook {}", i + 1)
            };
            format!("<{}|{label}>", link_url(url))
        })
        .collect();
    if let Some(url) = silence_url(notification) {
        links.push(format!("<{}|:no_bell: Silence>", link_url(&url)));
    }
    (!links.is_empty()).then(|| section(&links.join("   ")))
}

/// The common runbook annotation, else the distinct runbooks of the alerts (firing ones first), at most three.
pub fn runbooks(notification: &Notification) -> Vec<String> {
    let runbook = |annotations: &crate::alert::Annotations| {
        RUNBOOK_KEYS
            .iter()
            .find_map(|key| annotations.get(*key))
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    if let Some(common) = runbook(&notification.common_annotations) {
        return vec![common];
    }
    let mut alerts: Vec<_> = notification.alerts.iter().collect();
    alerts.sort_by_key(|alert| alert.status != Status::Firing);
    let mut found: Vec<String> = Vec::new();
    for url in alerts
        .iter()
        .filter_map(|alert| runbook(&alert.alert.annotations))
    {
        if !found.contains(&url) {
            found.push(url);
        }
        if found.len() == MAX_RUNBOOKS {
            break;
        }
    }
    found
}

/// `{external_url}/#/silences/new?filter=<{group labels as matchers}, URL-encoded>`, when herald has an external
/// URL; the common labels stand in for group labels when the group has none.
pub fn silence_url(notification: &Notification) -> Option<String> {
    let base = notification.external_url.as_deref()?.trim();
    if base.is_empty() {
        return None;
    }
    let labels = if notification.group_labels.is_empty() {
        &notification.common_labels
    } else {
        &notification.group_labels
    };
    if labels.is_empty() {
        return None;
    }
    let matchers: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", matcher_value(value)))
        .collect();
    let filter = format!("{{{}}}", matchers.join(","));
    Some(format!(
        "{}/#/silences/new?filter={}",
        base.trim_end_matches('/'),
        percent_encode(&filter)
    ))
}

/// A matcher's value in double quotes' escaping.
fn matcher_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Percent-encodes every byte but the unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The counts, what was left out, and (bot mode) when the message was last updated.
fn context_block(notification: &Notification, updated_at: Option<DateTime<Utc>>) -> Value {
    let (firing, resolved) = counts(notification);
    let mut text = format!("*{firing}* firing · *{resolved}* resolved");
    if notification.truncated > 0 {
        text.push_str(&format!(" · {} more not listed", notification.truncated));
    }
    if let Some(at) = updated_at {
        let iso = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        text.push_str(&format!(
            " · updated <!date^{}^{{date_short_pretty}} {{time_secs}}|{iso}>",
            at.timestamp()
        ));
    }
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
}

/// Firing and resolved alerts listed in the notification.
pub fn counts(notification: &Notification) -> (usize, usize) {
    let firing = notification
        .alerts
        .iter()
        .filter(|alert| alert.status == Status::Firing)
        .count();
    (firing, notification.alerts.len() - firing)
}

/// Escapes the characters Slack's `mrkdwn` gives meaning to (`&`, `<`, `>`).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A URL as the target of a `<url|label>` link: the characters that would end it are percent-encoded.
fn link_url(url: &str) -> String {
    url.trim()
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace(' ', "%20")
}

/// At most `max` characters of `text`, ending with "…" when cut.
pub fn truncate(text: &str, max: usize) -> String {
    truncate_with(text, max, CUT)
}

/// At most `max` characters of `text`; when cut, the kept start ends with `marker` (counted in `max`).
fn truncate_with(text: &str, max: usize, marker: &str) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(marker.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(marker);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, test_alert};
    use crate::notification::{NotifiedAlert, Reason};

    fn alert(instance: &str, severity: &str, status: Status) -> NotifiedAlert {
        let mut alert = test_alert(
            "DiskFull",
            &[("instance", instance), ("severity", severity)],
        );
        alert.generator_url = format!("http://prometheus:9090/graph?instance={instance}");
        alert
            .annotations
            .insert("summary".into(), format!("{instance} disk full"));
        NotifiedAlert {
            fingerprint: alert.fingerprint(),
            status,
            alert,
        }
    }

    fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
        Notification::new(
            "ops".into(),
            Reason::First,
            r#"{}:{alertname="DiskFull"}"#.into(),
            Labels::from([("alertname".to_string(), "DiskFull".to_string())]),
            alerts,
            None,
            Some("https://herald.example/".into()),
        )
    }

    fn texts() -> Texts {
        Texts {
            title: "[FIRING:1] DiskFull".into(),
            title_link: "http://prometheus:9090/graph".into(),
            text: "🔥 *DiskFull*: db-1 disk full".into(),
        }
    }

    fn attachment_blocks(content: &Content) -> &Vec<Value> {
        content.attachments[0]["blocks"].as_array().unwrap()
    }

    #[test]
    fn colour_by_state_and_severity() {
        let firing = |severity: &str| notification(vec![alert("a", severity, Status::Firing)]);
        assert_eq!(colour(&firing("critical")), CRITICAL);
        assert_eq!(colour(&firing("warning")), WARNING);
        assert_eq!(colour(&firing("info")), INFO);
        assert_eq!(colour(&firing("whatever")), CRITICAL, "unknown is red");
        let resolved = notification(vec![alert("a", "critical", Status::Resolved)]);
        assert_eq!(colour(&resolved), RESOLVED);

        // No common severity: the highest among the firing alerts; resolved ones do not count.
        let mixed = notification(vec![
            alert("a", "info", Status::Firing),
            alert("b", "warning", Status::Firing),
            alert("c", "critical", Status::Resolved),
        ]);
        assert_eq!(severity(&mixed), Some(Severity::Warning));
        assert_eq!(colour(&mixed), WARNING);
        assert_eq!(Severity::parse(" WARN "), Some(Severity::Warning));
        assert_eq!(Severity::parse("page"), Some(Severity::Critical));
    }

    #[test]
    fn layout_has_a_linked_title_the_text_labels_links_and_counts() {
        let mut n = notification(vec![alert("db-1", "critical", Status::Firing)]);
        n.common_annotations
            .insert("runbook_url".into(), "https://runbooks/disk".into());
        n.common_annotations
            .insert("description".into(), "disk <90%> & more".into());
        let content = content(&n, &texts(), None);
        assert_eq!(content.text, "[FIRING:1] DiskFull");
        assert_eq!(content.blocks.len(), 1);
        assert_eq!(
            content.blocks[0]["text"]["text"],
            "*<http://prometheus:9090/graph|[FIRING:1] DiskFull>*"
        );
        let attachment = &content.attachments[0];
        assert_eq!(attachment["color"], CRITICAL);
        assert_eq!(attachment["fallback"], "[FIRING:1] DiskFull");
        let blocks = attachment_blocks(&content);
        assert_eq!(blocks[0]["text"]["text"], "🔥 *DiskFull*: db-1 disk full");
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["*instance*\ndb-1", "*severity*\ncritical"],
            "alertname is in the title"
        );
        assert_eq!(
            blocks[2]["text"]["text"], "*description*: disk &lt;90%&gt; &amp; more",
            "the summary is already in the text; runbooks are links"
        );
        let links = blocks[3]["text"]["text"].as_str().unwrap();
        assert!(
            links.starts_with("<https://runbooks/disk|:book: Runbook>"),
            "{links}"
        );
        assert!(
            links.contains(
                "<https://herald.example/#/silences/new?filter=%7Balertname%3D%22DiskFull%22%7D|:no_bell: Silence>"
            ),
            "{links}"
        );
        assert_eq!(blocks[4]["type"], "context");
        assert_eq!(
            blocks[4]["elements"][0]["text"],
            "*1* firing · *0* resolved"
        );
    }

    #[test]
    fn no_link_without_a_title_link_and_no_silence_without_an_external_url() {
        let mut n = notification(vec![alert("db-1", "critical", Status::Resolved)]);
        n.external_url = None;
        let mut plain = texts();
        plain.title_link = " ".into();
        plain.title = String::new();
        let content = content(&n, &plain, None);
        assert_eq!(
            content.text, "[RESOLVED] DiskFull",
            "an empty title falls back"
        );
        assert_eq!(content.blocks[0]["text"]["text"], "*[RESOLVED] DiskFull*");
        assert_eq!(content.attachments[0]["color"], RESOLVED);
        let all = serde_json::to_string(&content.attachments).unwrap();
        assert!(!all.contains("silences"), "{all}");
    }

    #[test]
    fn silence_filter_escapes_and_encodes_the_group_matchers() {
        let mut n = notification(vec![alert("a", "critical", Status::Firing)]);
        n.group_labels
            .insert("job".into(), "say \"hi\" \\ & go".into());
        let url = silence_url(&n).unwrap();
        assert_eq!(
            url,
            format!(
                "https://herald.example/#/silences/new?filter={}",
                percent_encode(r#"{alertname="DiskFull",job="say \"hi\" \\ & go"}"#)
            )
        );
        assert!(!url["https://herald.example/".len()..].contains(['"', ' ', '&', '{']));
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn runbooks_come_from_common_annotations_or_the_alerts() {
        let mut a = alert("a", "critical", Status::Resolved);
        a.alert
            .annotations
            .insert("runbook".into(), "https://rb/a".into());
        let mut b = alert("b", "critical", Status::Firing);
        b.alert
            .annotations
            .insert("runbook_url".into(), "https://rb/b".into());
        let n = notification(vec![a, b]);
        assert_eq!(runbooks(&n), ["https://rb/b", "https://rb/a"]);
    }

    #[test]
    fn long_text_is_cut_to_slacks_limits() {
        // One section up to 3,000 characters, cut at line ends.
        let lines: Vec<String> = (0..400)
            .map(|i| format!("line {i:04} {}", "x".repeat(20)))
            .collect();
        let text = lines.join("\n");
        let sections = text_sections(&text, 49);
        assert!(sections.len() > 1);
        assert!(
            sections
                .iter()
                .all(|s| s.chars().count() <= MAX_SECTION_CHARS)
        );
        assert!(
            sections.iter().all(|s| s.starts_with("line ")),
            "cut at line ends"
        );
        assert_eq!(sections.join("\n"), text, "nothing lost when it fits");

        // A single huge line: cut hard; the whole is at most 40,000 characters.
        let huge = "é".repeat(100_000);
        let sections = text_sections(&huge, 49);
        let total: usize = sections.iter().map(|s| s.chars().count()).sum();
        assert!(total <= MAX_TEXT_CHARS, "{total}");
        assert!(sections.last().unwrap().ends_with("… (truncated)"));

        // Fewer blocks than the text needs: the last one says it was truncated.
        let sections = text_sections(&huge, 2);
        assert_eq!(sections.len(), 2);
        assert!(sections[1].ends_with("… (truncated)"));
        assert!(sections[1].chars().count() <= MAX_SECTION_CHARS);

        let n = notification(vec![alert("a", "critical", Status::Firing)]);
        let mut long = texts();
        long.text = huge;
        long.title = "t".repeat(50_000);
        let content = content(&n, &long, None);
        assert_eq!(content.text.chars().count(), MAX_TEXT_CHARS);
        assert!(
            content.blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= MAX_SECTION_CHARS
        );
        let blocks = attachment_blocks(&content);
        assert!(content.blocks.len() + blocks.len() <= MAX_BLOCKS);
        for block in blocks {
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(text.chars().count() <= MAX_SECTION_CHARS);
            }
        }
    }

    #[test]
    fn many_labels_fit_ten_fields() {
        let labels: Vec<(String, String)> = (0..14)
            .map(|i| (format!("l{i:02}"), format!("v{i}")))
            .collect();
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let a = test_alert("Many", &pairs);
        let n = notification(vec![NotifiedAlert {
            fingerprint: a.fingerprint(),
            status: Status::Firing,
            alert: a,
        }]);
        let content = content(&n, &texts(), None);
        let block = &attachment_blocks(&content)[1];
        assert_eq!(block["fields"].as_array().unwrap().len(), MAX_FIELDS);
        let text = block["text"]["text"].as_str().unwrap();
        assert!(
            text.contains("`l10=v10`") && text.contains("`l13=v13`"),
            "{text}"
        );
    }

    #[test]
    fn counts_truncation_and_update_time_are_in_the_context() {
        let mut n = notification(vec![
            alert("a", "critical", Status::Firing),
            alert("b", "critical", Status::Resolved),
        ]);
        n.truncated = 3;
        let at: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let content = content(&n, &texts(), Some(at));
        let blocks = attachment_blocks(&content);
        let context = blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            context.starts_with("*1* firing · *1* resolved · 3 more not listed · updated <!date^"),
            "{context}"
        );
        assert!(context.ends_with("|2026-11-21T10:00:00Z>"), "{context}");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo", 4), "hél…");
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
