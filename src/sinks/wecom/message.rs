//! What a WeCom group robot message says: a first line with an emoji and (in markdown) a colour by state and
//! severity, then the rendered text; cut to WeCom's limits on a UTF-8 boundary with a visible marker (markdown
//! 4,096 bytes, text 2,048). Text messages carry the configured @-mentions.

use serde_json::{Map, Value, json};

use crate::config::{WeComConfig, WeComMessageType};
use crate::sinks::severity::{Severity, Tone};
use crate::sinks::text::cut_bytes;

/// The longest markdown content WeCom takes, in bytes.
pub const MAX_MARKDOWN_BYTES: usize = 4096;
/// The longest text content WeCom takes, in bytes.
pub const MAX_TEXT_BYTES: usize = 2048;
/// What ends content that was cut.
pub const TRUNCATED: &str = "\n… (truncated)";

/// WeCom markdown's font colour for a tone: `warning` (orange-red) for critical, `comment` (grey) for warning and
/// info, `info` (green) for resolved.
pub fn colour(tone: Tone) -> &'static str {
    match tone {
        Tone::Resolved => "info",
        Tone::Firing(Severity::Critical) => "warning",
        Tone::Firing(Severity::Warning | Severity::Info) => "comment",
    }
}

/// The most bytes content of `msg_type` may have.
pub fn limit(msg_type: WeComMessageType) -> usize {
    match msg_type {
        WeComMessageType::Markdown => MAX_MARKDOWN_BYTES,
        WeComMessageType::Text => MAX_TEXT_BYTES,
    }
}

/// The message's content: the headline (emoji, and a colour in markdown) with the title, then the text; cut to the
/// type's limit.
pub fn content(msg_type: WeComMessageType, tone: Tone, title: &str, text: &str) -> String {
    let title = title.trim();
    let text = text.trim();
    let headline = match msg_type {
        WeComMessageType::Markdown => format!(
            "**<font color=\"{}\">{} {title}</font>**",
            colour(tone),
            tone.emoji()
        ),
        WeComMessageType::Text => format!("{} {title}", tone.emoji()),
    };
    let full = if text.is_empty() {
        headline
    } else {
        format!("{headline}\n{text}")
    };
    cut_bytes(&full, limit(msg_type), TRUNCATED)
}

/// The request body for `content`.
pub fn body(config: &WeComConfig, content: String) -> Value {
    match config.msg_type {
        WeComMessageType::Markdown => {
            json!({"msgtype": "markdown", "markdown": {"content": content}})
        }
        WeComMessageType::Text => {
            let mut text = Map::new();
            text.insert("content".into(), json!(content));
            if !config.mentioned_list.is_empty() {
                text.insert("mentioned_list".into(), json!(config.mentioned_list));
            }
            if !config.mentioned_mobile_list.is_empty() {
                text.insert(
                    "mentioned_mobile_list".into(),
                    json!(config.mentioned_mobile_list),
                );
            }
            json!({"msgtype": "text", "text": text})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_starts_with_a_coloured_headline() {
        let firing = content(
            WeComMessageType::Markdown,
            Tone::Firing(Severity::Critical),
            " [FIRING:1] DiskFull ",
            "> 🔥 **DiskFull**: db-1 disk full\n",
        );
        assert_eq!(
            firing,
            "**<font color=\"warning\">🔥 [FIRING:1] DiskFull</font>**\n> 🔥 **DiskFull**: db-1 disk full"
        );
        let resolved = content(
            WeComMessageType::Markdown,
            Tone::Resolved,
            "[RESOLVED] DiskFull",
            "",
        );
        assert_eq!(
            resolved,
            "**<font color=\"info\">✅ [RESOLVED] DiskFull</font>**"
        );
        let warning = content(
            WeComMessageType::Markdown,
            Tone::Firing(Severity::Warning),
            "t",
            "",
        );
        assert!(warning.contains("color=\"comment\">⚠️ t"), "{warning}");
        let text = content(
            WeComMessageType::Text,
            Tone::Firing(Severity::Info),
            "t",
            "body",
        );
        assert_eq!(text, "ℹ️ t\nbody");
    }

    #[test]
    fn content_is_cut_to_the_limit_on_a_utf8_boundary_with_a_marker() {
        let long = "磁盘已满，请尽快处理。".repeat(500);
        for msg_type in [WeComMessageType::Markdown, WeComMessageType::Text] {
            let cut = content(msg_type, Tone::Firing(Severity::Critical), "告警", &long);
            assert!(cut.len() <= limit(msg_type), "{}", cut.len());
            assert!(
                cut.len() > limit(msg_type) - 4,
                "as much as fits: {}",
                cut.len()
            );
            assert!(cut.ends_with(TRUNCATED), "{cut}");
            let kept = cut.strip_suffix(TRUNCATED).unwrap();
            assert!(
                kept.ends_with(|c: char| "磁盘已满，请尽快处理。".contains(c)),
                "{kept}"
            );
        }
        let fits = content(
            WeComMessageType::Text,
            Tone::Resolved,
            "t",
            &"x".repeat(100),
        );
        assert!(!fits.contains("truncated"));
    }
}
