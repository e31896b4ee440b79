//! Validation of `email_configs`: addresses parsed, the smarthost split into host and port, credentials resolved,
//! `tls_config` read, and every header and part template compiled.

use std::time::Duration;

use lettre::message::Mailbox;

use super::Checker;
use crate::config::email::{EmailConfig, EmailHeader, SmartHost, SmtpAuth};
use crate::config::raw::RawEmailConfig;
use crate::config::secret::expand_env;
use crate::config::settings::DeliverySettings;
use crate::config::{Issue, RateLimit};
use crate::template::TemplateField;

/// Alertmanager's `hello` default.
const DEFAULT_HELLO: &str = "localhost";

/// The port of SMTP over implicit TLS (SMTPS).
const SMTPS_PORT: u16 = 465;

/// Headers herald sets itself, per message.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "date",
    "message-id",
    "bcc",
];

/// A default rate limit that keeps a burst of notifications from looking like a spam run to the mail server.
const EMAIL_RATE: RateLimit = RateLimit {
    limit: 1,
    period: Duration::from_secs(1),
    burst: 10,
};

impl Checker<'_> {
    pub(super) fn email_config(
        &mut self,
        path: &str,
        raw: &RawEmailConfig,
        defaults: &DeliverySettings,
    ) -> Option<EmailConfig> {
        let to = self.mailboxes(&format!("{path}.to"), raw.to.as_deref());
        let from = self
            .mailboxes(&format!("{path}.from"), raw.from.as_deref())
            .and_then(|from| match from.as_slice() {
                [one] => Some(one.clone()),
                _ => {
                    self.error(format!("{path}.from"), "must be one address");
                    None
                }
            });
        let smarthost = self.smarthost(&format!("{path}.smarthost"), raw.smarthost.as_deref());
        let hello = match raw.hello.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_HELLO.to_owned(),
            Some(hello) if hello.contains(char::is_whitespace) => {
                self.error(format!("{path}.hello"), "must be one name, without spaces");
                DEFAULT_HELLO.to_owned()
            }
            Some(hello) => hello.to_owned(),
        };
        let auth = self.smtp_auth(path, raw);
        let implicit_tls = raw.force_implicit_tls.unwrap_or(false)
            || smarthost
                .as_ref()
                .is_some_and(|host| host.port == SMTPS_PORT);
        let tls = self.tls_settings(&format!("{path}.tls_config"), raw.tls_config.as_ref());
        let mut headers = Vec::new();
        for (name, source) in raw.headers.iter().flatten() {
            let lower = name.to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                self.error(
                    format!("{path}.headers.{name}"),
                    format!("{name:?} is not a valid mail header name"),
                );
                continue;
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                self.error(
                    format!("{path}.headers.{name}"),
                    format!("{name} is set by herald and cannot be set in headers"),
                );
                continue;
            }
            let key = format!("headers.{name}");
            let default = if lower == "subject" {
                "default.email.subject"
            } else {
                "default.empty"
            };
            let value = self.template_field(path, &key, Some(source), default);
            headers.push(EmailHeader {
                name: canonical_header(name),
                value,
            });
        }
        if !headers
            .iter()
            .any(|header| header.name.eq_ignore_ascii_case("subject"))
        {
            headers.insert(
                0,
                EmailHeader {
                    name: "Subject".to_owned(),
                    value: TemplateField::default_only("default.email.subject"),
                },
            );
        }
        let html = self.email_part(path, "html", raw.html.as_deref(), "default.email.html");
        let text = self.email_part(path, "text", raw.text.as_deref(), "default.email.text");
        if html.is_none() && text.is_none() {
            self.error(
                format!("{path}.text"),
                "html and text cannot both be empty: a mail needs a body",
            );
        }
        let delivery = self.service_options(
            path,
            raw.retry.as_ref(),
            raw.rate_limit.as_ref(),
            raw.timeout.as_deref(),
            defaults,
            Some(EMAIL_RATE),
        );
        Some(EmailConfig {
            to: to?,
            from: from?,
            smarthost: smarthost?,
            hello,
            auth,
            require_tls: raw.require_tls.unwrap_or(true),
            implicit_tls,
            tls,
            headers,
            html,
            text,
            send_resolved: raw.send_resolved.unwrap_or(true),
            delivery,
        })
    }

    /// A comma-separated list of addresses (`ops@example.com, Team <team@example.com>`), each parsed.
    fn mailboxes(&mut self, path: &str, value: Option<&str>) -> Option<Vec<String>> {
        let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
            self.error(path, "must be set");
            return None;
        };
        if value.contains("{{") {
            self.error(
                path,
                "templates are not supported here: write the addresses (Alertmanager's {{ }} templates \
                 become fixed addresses in herald)",
            );
            return None;
        }
        let mut addresses = Vec::new();
        for address in split_addresses(value) {
            match address.parse::<Mailbox>() {
                Ok(_) => addresses.push(address.to_owned()),
                Err(error) => {
                    self.error(path, format!("invalid address {address:?}: {error}"));
                    return None;
                }
            }
        }
        Some(addresses)
    }

    fn smarthost(&mut self, path: &str, value: Option<&str>) -> Option<SmartHost> {
        let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
            self.error(
                path,
                "must be set (HOST:PORT, such as smtp.example.com:587)",
            );
            return None;
        };
        let parsed = value.rsplit_once(':').and_then(|(host, port)| {
            let host = host
                .strip_prefix('[')
                .and_then(|host| host.strip_suffix(']'))
                .unwrap_or(host);
            let port = port.parse::<u16>().ok().filter(|port| *port > 0)?;
            (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| SmartHost {
                host: host.to_owned(),
                port,
            })
        });
        if parsed.is_none() {
            self.error(
                path,
                format!(
                    "invalid smarthost {value:?}: expected HOST:PORT, such as smtp.example.com:587"
                ),
            );
        }
        parsed
    }

    fn smtp_auth(&mut self, path: &str, raw: &RawEmailConfig) -> Option<SmtpAuth> {
        if raw.auth_secret.is_some() || raw.auth_secret_file.is_some() {
            let key = if raw.auth_secret.is_some() {
                "auth_secret"
            } else {
                "auth_secret_file"
            };
            self.error(
                format!("{path}.{key}"),
                "CRAM-MD5 is not supported: use auth_password (PLAIN or LOGIN, over TLS)",
            );
        }
        let password = self.secret_pair(
            &format!("{path}.auth_password"),
            raw.auth_password.as_deref(),
            raw.auth_password_file.as_deref(),
        );
        let username = match raw
            .auth_username
            .as_deref()
            .map(|u| expand_env(u, self.env))
        {
            Some(Ok(username)) if !username.is_empty() => Some(username),
            Some(Err(message)) => {
                self.error(format!("{path}.auth_username"), message);
                return None;
            }
            _ => None,
        };
        if let Some(identity) = raw.auth_identity.as_deref().filter(|id| !id.is_empty())
            && Some(identity) != username.as_deref()
        {
            self.warnings.push(Issue::new(
                format!("{path}.auth_identity"),
                "is not sent: herald signs in as auth_username, with no separate authorization identity",
            ));
        }
        match (username, password) {
            (Some(username), Some(password)) => Some(SmtpAuth { username, password }),
            (Some(_), None) => {
                self.error(
                    format!("{path}.auth_password"),
                    "must be set with auth_username (or auth_password_file)",
                );
                None
            }
            (None, Some(_)) => {
                self.error(
                    format!("{path}.auth_username"),
                    "must be set with auth_password",
                );
                None
            }
            (None, None) => None,
        }
    }

    /// A part's template: the default when unset, none when set to an empty string.
    fn email_part(
        &mut self,
        path: &str,
        key: &str,
        source: Option<&str>,
        default: &'static str,
    ) -> Option<TemplateField> {
        match source {
            Some(source) if source.trim().is_empty() => None,
            source => Some(self.template_field(path, key, source, default)),
        }
    }
}

/// Splits a list of addresses on the commas between them (not those inside quotes or angle brackets).
fn split_addresses(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(list[start..].trim());
    parts.retain(|part| !part.is_empty());
    parts
}

/// `subject` -> `Subject`, `x-team` -> `X-Team`: how mail headers are usually written.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_errors, load_str};

    #[test]
    fn an_alertmanager_email_receiver_loads_unchanged() {
        let yaml = r#"
route: {receiver: mail}
receivers:
  - name: mail
    email_configs:
      - to: 'ops@example.com, "Ops, Team" <team@example.com>'
        from: alertmanager@example.com
        smarthost: smtp.example.com:587
        hello: herald.example.com
        auth_username: alertmanager@example.com
        auth_password: sm7p-pass
        auth_identity: alertmanager@example.com
        require_tls: true
        tls_config: {server_name: smtp.example.com, insecure_skip_verify: false}
        headers: {subject: '[{{ status }}] {{ common_labels.alertname }}', X-Priority: '1', Reply-To: oncall@example.com}
        send_resolved: true
      - to: a@example.com
        from: b@example.com
        smarthost: '[::1]:465'
        html: ''
        text: "{{ alerts | length }} alerts"
"#;
        let loaded = load_str(yaml, "h.yaml").unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let mails = &loaded.settings.receivers[0].email_configs;
        let first = &mails[0];
        assert_eq!(
            first.to,
            ["ops@example.com", r#""Ops, Team" <team@example.com>"#]
        );
        assert_eq!(first.smarthost.to_string(), "smtp.example.com:587");
        assert_eq!(first.hello, "herald.example.com");
        assert_eq!(first.auth.as_ref().unwrap().password.expose(), "sm7p-pass");
        assert!(first.require_tls && !first.implicit_tls);
        let names: Vec<&str> = first.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Reply-To", "X-Priority", "Subject"]);
        assert!(first.headers[2].value.custom.is_some());
        assert!(first.html.is_some() && first.text.is_some());
        assert!(!format!("{first:?}").contains("sm7p-pass"));
        let second = &mails[1];
        assert!(second.implicit_tls, "port 465 is implicit TLS");
        assert_eq!(second.smarthost.to_string(), "[::1]:465");
        assert!(second.html.is_none());
        assert_eq!(second.headers[0].name, "Subject");
        assert_eq!(second.headers[0].value.custom, None);
        assert!(second.send_resolved);
        assert!(second.delivery.rate_limit.is_some());
    }

    #[test]
    fn email_problems_are_reported_with_their_paths() {
        let yaml = r#"
route: {receiver: mail}
receivers:
  - name: mail
    email_configs:
      - to: 'not an address'
        from: 'a@example.com, b@example.com'
        smarthost: smtp.example.com
        auth_username: u
        auth_secret: cram
        headers: {Content-Type: text/plain, Subject: '{% if %}'}
        html: ''
        text: ' '
      - to: '{{ .GroupLabels.team }}@example.com'
        from: a@example.com
        smarthost: smtp:25
        auth_password: p
        auth_identity: someone-else
        tls_config: {ca_file: /nonexistent/ca.pem}
        unknown_key: 1
"#;
        let errors = load_errors(yaml);
        let path = "receivers[0].email_configs";
        for expected in [
            format!("{path}[0].to: invalid address \"not an address\""),
            format!("{path}[0].from: must be one address"),
            format!(
                "{path}[0].smarthost: invalid smarthost \"smtp.example.com\": expected HOST:PORT"
            ),
            format!("{path}[0].auth_secret: CRAM-MD5 is not supported"),
            format!("{path}[0].auth_password: must be set with auth_username"),
            format!("{path}[0].headers.Content-Type: Content-Type is set by herald"),
            format!("{path}[0].headers.Subject: template error at line 1"),
            format!("{path}[0].text: html and text cannot both be empty"),
            format!("{path}[1].to: templates are not supported here"),
            format!("{path}[1].auth_username: must be set with auth_password"),
            format!("{path}[1].tls_config.ca_file: cannot read file \"/nonexistent/ca.pem\""),
            format!("{path}[1].unknown_key: unknown key"),
        ] {
            assert!(
                errors.iter().any(|error| error.contains(&expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
    }

    #[test]
    fn addresses_split_on_commas_outside_quotes_and_brackets() {
        assert_eq!(
            split_addresses(r#"a@x.org, "Ops, Team" <ops@x.org>,b@x.org,"#),
            ["a@x.org", r#""Ops, Team" <ops@x.org>"#, "b@x.org"]
        );
    }

    #[test]
    fn header_names_are_written_canonically() {
        assert_eq!(canonical_header("subject"), "Subject");
        assert_eq!(canonical_header("X-TEAM-id"), "X-Team-Id");
        assert_eq!(canonical_header("Reply-To"), "Reply-To");
    }
}
