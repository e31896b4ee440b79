//! The mail herald sends for a notification: the rendered header and part templates assembled into a MIME message
//! (`multipart/alternative` with text and HTML, or one of them), with its envelope, date and message id.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};

use crate::config::EmailConfig;

/// What the templates rendered for one notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Header name and rendered value, in the config's order (`Subject` among them).
    pub headers: Vec<(String, String)>,
    pub text: Option<String>,
    pub html: Option<String>,
}

impl Rendered {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A header value on one line: a template's line breaks would end the header (or inject others).
fn one_line(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn mailboxes(key: &str, value: &str) -> Result<Mailboxes, String> {
    value
        .parse::<Mailboxes>()
        .map_err(|error| format!("the {key} header is not a list of addresses: {error}"))
}

/// The envelope: `from` and `to` as configured (the headers may say otherwise, as in Alertmanager).
pub fn envelope(config: &EmailConfig) -> Result<Envelope, String> {
    let from: Mailbox = config
        .from
        .parse()
        .map_err(|error| format!("from: {error}"))?;
    let to = config
        .to
        .iter()
        .map(|address| {
            address
                .parse::<Mailbox>()
                .map(|mailbox| mailbox.email)
                .map_err(|error| format!("to: {error}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from.email), to).map_err(|error| format!("envelope: {error}"))
}

/// Builds the message. Errors name what was wrong (a rendered header that is not an address list).
pub fn build(
    config: &EmailConfig,
    rendered: &Rendered,
    date: DateTime<Utc>,
) -> Result<Message, String> {
    let from = match rendered.header("From") {
        Some(value) => one_line(value),
        None => config.from.clone(),
    };
    let to = match rendered.header("To") {
        Some(value) => one_line(value),
        None => config.to.join(", "),
    };
    let mut builder = Message::builder()
        .envelope(envelope(config)?)
        .date(SystemTime::from(date))
        .message_id(None)
        .mailbox(header::From::from(mailboxes("From", &from)?))
        .mailbox(header::To::from(mailboxes("To", &to)?));
    for (name, value) in &rendered.headers {
        let value = one_line(value);
        match name.to_ascii_lowercase().as_str() {
            "from" | "to" => {}
            "subject" => builder = builder.subject(value),
            "cc" => builder = builder.mailbox(header::Cc::from(mailboxes("Cc", &value)?)),
            "reply-to" => {
                builder = builder.mailbox(header::ReplyTo::from(mailboxes("Reply-To", &value)?));
            }
            _ => {
                let name = HeaderName::new_from_ascii(name.clone())
                    .map_err(|_| format!("{name:?} is not a mail header name"))?;
                builder = builder.raw_header(HeaderValue::new(name, value));
            }
        }
    }
    let message = match (&rendered.text, &rendered.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text.clone())),
        (None, None) => builder.singlepart(SinglePart::plain(String::new())),
    };
    message.map_err(|error| format!("the mail cannot be built: {error}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{DeliveryOptions, RetryPolicy, SmartHost, TlsSettings};

    fn config() -> EmailConfig {
        EmailConfig {
            to: vec!["ops@example.com".into(), "Team <team@example.com>".into()],
            from: "herald@example.com".into(),
            smarthost: SmartHost {
                host: "smtp.example.com".into(),
                port: 587,
            },
            hello: "localhost".into(),
            auth: None,
            require_tls: true,
            implicit_tls: false,
            tls: TlsSettings::default(),
            headers: Vec::new(),
            html: None,
            text: None,
            send_resolved: true,
            delivery: DeliveryOptions {
                retry: RetryPolicy {
                    initial_backoff: Duration::from_secs(1),
                    max_backoff: Duration::from_secs(60),
                    max_attempts: 5,
                    max_age: Duration::from_secs(3600),
                },
                rate_limit: None,
                timeout: Duration::from_secs(10),
            },
        }
    }

    fn text(message: &Message) -> String {
        String::from_utf8(message.formatted()).unwrap()
    }

    #[test]
    fn headers_parts_and_envelope() {
        let rendered = Rendered {
            headers: vec![
                (
                    "Subject".into(),
                    "[FIRING:1] DiskFull\nBcc: evil@example.com".into(),
                ),
                ("X-Team".into(), "db".into()),
            ],
            text: Some("plain body".into()),
            html: Some("<p>html body</p>".into()),
        };
        let date = "2026-11-21T10:00:00Z".parse().unwrap();
        let message = build(&config(), &rendered, date).unwrap();
        let formatted = text(&message);
        assert!(
            formatted.contains("Subject: [FIRING:1] DiskFull Bcc: evil@example.com\r\n"),
            "{formatted}"
        );
        assert!(!formatted.contains("\r\nBcc:"), "{formatted}");
        assert!(formatted.contains("X-Team: db\r\n"), "{formatted}");
        assert!(
            formatted.contains("From: herald@example.com\r\n"),
            "{formatted}"
        );
        assert!(
            formatted.contains("To: ops@example.com, Team <team@example.com>\r\n"),
            "{formatted}"
        );
        assert!(
            formatted.contains("Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"),
            "{formatted}"
        );
        assert!(formatted.contains("multipart/alternative"), "{formatted}");
        assert!(formatted.contains("\r\nMessage-ID: <"), "{formatted}");
        assert!(
            formatted.contains("plain body") && formatted.contains("<p>html body</p>"),
            "{formatted}"
        );
        let envelope = message.envelope();
        assert_eq!(envelope.from().unwrap().to_string(), "herald@example.com");
        let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["ops@example.com", "team@example.com"]);
    }

    #[test]
    fn to_and_from_headers_override_what_is_shown_not_the_envelope() {
        let rendered = Rendered {
            headers: vec![
                ("Subject".into(), "s".into()),
                ("To".into(), "Shown <shown@example.com>".into()),
                ("From".into(), "Alerts <alerts@example.com>".into()),
            ],
            text: Some("t".into()),
            html: None,
        };
        let message = build(&config(), &rendered, Utc::now()).unwrap();
        let formatted = text(&message);
        assert!(
            formatted.contains("To: Shown <shown@example.com>\r\n"),
            "{formatted}"
        );
        assert!(
            formatted.contains("From: Alerts <alerts@example.com>\r\n"),
            "{formatted}"
        );
        assert!(
            formatted.contains("Content-Type: text/plain"),
            "{formatted}"
        );
        assert_eq!(message.envelope().to().len(), 2);
        let bad = Rendered {
            headers: vec![("To".into(), "not an address".into())],
            ..rendered
        };
        assert!(
            build(&config(), &bad, Utc::now())
                .unwrap_err()
                .contains("To header")
        );
    }
}
