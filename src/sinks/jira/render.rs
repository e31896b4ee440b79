//! Text for Jira: the one-line summary (at most 255 characters), descriptions and comments cut to Jira's 32,767
//! characters, and their bodies as Atlassian Document Format (Cloud, REST v3) or wiki-markup strings (Data Center,
//! REST v2).
//!
//! Lengths are counted in UTF-16 code units, as Jira (Java) counts them, so a cut text fits whichever way the server
//! counts; cuts fall on character boundaries and are marked.

use serde_json::{Value, json};

use crate::config::JiraApi;

/// Jira's longest summary.
pub const SUMMARY_MAX: usize = 255;

/// Jira's longest text field (description, comment body).
pub const TEXT_MAX: usize = 32_767;

/// What ends a cut summary.
const SUMMARY_CUT_MARK: &str = "…";

/// What ends a cut description or comment.
const TEXT_CUT_MARK: &str = "\n… (cut to fit Jira's 32,767-character limit)";

/// The summary when a template renders nothing (Jira requires one).
const EMPTY_SUMMARY: &str = "Alerts";

/// Characters that end a URL in text, besides whitespace (none of them may appear in a URL).
const URL_STOPS: &[char] = &['<', '>', '"', '`', '\\'];

/// Characters that end a sentence rather than a URL when they come last.
const URL_TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', '\'', ')', ']'];

/// The length of `text` as Jira counts it (UTF-16 code units).
fn jira_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` cut to at most `max` UTF-16 units, ending in `mark` when it had to be cut; cut on a character boundary.
pub fn cut(text: &str, max: usize, mark: &str) -> String {
    if jira_len(text) <= max {
        return text.to_owned();
    }
    let room = max.saturating_sub(jira_len(mark));
    let mut used = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        if used + c.len_utf16() > room {
            break;
        }
        used += c.len_utf16();
        end = index + c.len_utf8();
    }
    let mut out = text[..end].trim_end().to_owned();
    out.push_str(mark);
    out
}

/// A summary: one line (runs of whitespace, newlines included, become one space), trimmed, at most 255
/// characters; never empty.
pub fn summary(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return EMPTY_SUMMARY.to_owned();
    }
    cut(&line, SUMMARY_MAX, SUMMARY_CUT_MARK)
}

/// A description or comment's text: line endings normalised, trailing whitespace dropped, at most 32,767
/// characters.
pub fn long_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    cut(text.trim_end(), TEXT_MAX, TEXT_CUT_MARK)
}

/// A description or comment body for the API: an ADF document on Cloud, a wiki-markup string on Data Center.
pub fn body(api: JiraApi, text: &str) -> Value {
    match api {
        JiraApi::Cloud => adf(text),
        JiraApi::DataCenter => wiki(text),
    }
}

/// An Atlassian Document Format document: one paragraph per line (an empty line is an empty paragraph), with
/// `http(s)://` URLs as links.
pub fn adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split('\n')
        .map(|line| json!({"type": "paragraph", "content": inline(line)}))
        .collect();
    let content = if text.is_empty() {
        Vec::new()
    } else {
        paragraphs
    };
    json!({"type": "doc", "version": 1, "content": content})
}

/// A wiki-markup body: the text as written (templates for Data Center may use wiki markup; Jira links bare URLs
/// by itself).
pub fn wiki(text: &str) -> Value {
    Value::String(text.to_owned())
}

/// The text nodes of one line: plain runs and links (ADF text nodes are never empty).
fn inline(line: &str) -> Vec<Value> {
    let mut nodes = Vec::new();
    let mut rest = line;
    while let Some((before, url, after)) = next_url(rest) {
        if !before.is_empty() {
            nodes.push(json!({"type": "text", "text": before}));
        }
        nodes.push(json!({
            "type": "text",
            "text": url,
            "marks": [{"type": "link", "attrs": {"href": url}}],
        }));
        rest = after;
    }
    if !rest.is_empty() {
        nodes.push(json!({"type": "text", "text": rest}));
    }
    nodes
}

/// The first URL in `text`, as (text before, URL, text after).
fn next_url(text: &str) -> Option<(&str, &str, &str)> {
    let start = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| text.find(scheme))
        .min()?;
    let tail = &text[start..];
    let length = tail
        .find(|c: char| c.is_whitespace() || URL_STOPS.contains(&c))
        .unwrap_or(tail.len());
    let url = trim_url(&tail[..length]);
    let scheme_only = !url.contains("://") || url.ends_with("://");
    if scheme_only {
        // Not a URL after all: keep it as text and look further on.
        let skip = start + length.max(1);
        let (before, url, after) = next_url(&text[skip..])?;
        let before_len = skip + before.len();
        return Some((&text[..before_len], url, after));
    }
    let end = start + url.len();
    Some((&text[..start], url, &text[end..]))
}

/// A URL without the punctuation that ends the sentence around it (a `)` stays when the URL opened one).
fn trim_url(url: &str) -> &str {
    let mut url = url;
    while let Some(last) = url.chars().last() {
        let balanced_paren = last == ')' && url.matches('(').count() >= url.matches(')').count();
        if !URL_TRAILING.contains(&last) || balanced_paren {
            break;
        }
        url = &url[..url.len() - last.len_utf8()];
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(document: &Value) -> Vec<Vec<(String, Option<String>)>> {
        document["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|paragraph| {
                assert_eq!(paragraph["type"], "paragraph");
                paragraph["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|node| {
                        assert_eq!(node["type"], "text");
                        let text = node["text"].as_str().unwrap().to_owned();
                        assert!(!text.is_empty(), "ADF text nodes are never empty");
                        let href = node["marks"][0]["attrs"]["href"]
                            .as_str()
                            .map(str::to_owned);
                        (text, href)
                    })
                    .collect()
            })
            .collect()
    }

    fn plain(text: &str) -> (String, Option<String>) {
        (text.to_owned(), None)
    }

    fn link(url: &str) -> (String, Option<String>) {
        (url.to_owned(), Some(url.to_owned()))
    }

    #[test]
    fn adf_has_a_paragraph_per_line_and_links_urls() {
        let document = adf(
            "DiskFull (firing)\n\nRunbook: https://runbooks.example/disk.\nSee (http://grafana/d/1) or http://x/a_(b)",
        );
        assert_eq!(document["type"], "doc");
        assert_eq!(document["version"], 1);
        assert_eq!(
            texts(&document),
            vec![
                vec![plain("DiskFull (firing)")],
                vec![],
                vec![
                    plain("Runbook: "),
                    link("https://runbooks.example/disk"),
                    plain(".")
                ],
                vec![
                    plain("See ("),
                    link("http://grafana/d/1"),
                    plain(") or "),
                    link("http://x/a_(b)")
                ],
            ]
        );
    }

    #[test]
    fn adf_of_nothing_is_an_empty_document_and_a_bare_scheme_is_text() {
        assert_eq!(adf(""), json!({"type": "doc", "version": 1, "content": []}));
        assert_eq!(
            texts(&adf("try http:// then https://ok.example")),
            vec![vec![plain("try http:// then "), link("https://ok.example")]]
        );
        assert_eq!(
            texts(&adf(
                r"see <https://a.example/x> or https://b.example/y\nLabels"
            )),
            vec![vec![
                plain("see <"),
                link("https://a.example/x"),
                plain("> or "),
                link("https://b.example/y"),
                plain(r"\nLabels")
            ]]
        );
    }

    #[test]
    fn wiki_is_the_text_itself() {
        assert_eq!(wiki("h3. Down\n* a"), json!("h3. Down\n* a"));
        assert_eq!(body(JiraApi::DataCenter, "x"), json!("x"));
        assert_eq!(body(JiraApi::Cloud, "x")["type"], "doc");
    }

    #[test]
    fn summary_is_one_line_within_255_and_never_empty() {
        assert_eq!(summary("  Disk\nfull \t on db-1 "), "Disk full on db-1");
        assert_eq!(summary(" \n "), "Alerts");
        let long = "é".repeat(300);
        let cut = summary(&long);
        assert_eq!(cut.chars().count(), 255);
        assert!(cut.ends_with('…'));
        // Characters outside the BMP count twice, as in Java.
        let emoji = "🔥".repeat(200);
        let cut = summary(&emoji);
        assert!(cut.encode_utf16().count() <= 255, "{}", cut.len());
        assert_eq!(cut.chars().filter(|c| *c == '🔥').count(), 127);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        let short = "line 1\r\nline 2\n\n";
        assert_eq!(long_text(short), "line 1\nline 2");
        let long = "ab€".repeat(20_000);
        let cut = long_text(&long);
        assert!(cut.encode_utf16().count() <= TEXT_MAX);
        assert!(cut.encode_utf16().count() > TEXT_MAX - 60);
        assert!(cut.ends_with("(cut to fit Jira's 32,767-character limit)"));
        let exact = "x".repeat(TEXT_MAX);
        assert_eq!(long_text(&exact), exact, "at the limit nothing is cut");
    }
}
