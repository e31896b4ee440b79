//! Validated `email_configs`: which SMTP server herald hands mail to and how it signs in, who the mail is from and
//! for, and the templates of each message's headers and parts.

use super::Secret;
use super::httpconfig::TlsSettings;
use super::settings::DeliveryOptions;
use crate::template::TemplateField;

/// `email_configs[]`: one mail per notification, sent over SMTP.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// `to`: the recipients (comma-separated in the config), as written; the envelope's recipients and, unless
    /// `headers` sets `To`, the `To` header.
    pub to: Vec<String>,
    /// `from`: the sender, as written; the envelope's sender and, unless `headers` sets `From`, the header.
    pub from: String,
    /// `smarthost`: the SMTP server, `HOST:PORT`.
    pub smarthost: SmartHost,
    /// `hello`: the name herald gives itself in `EHLO`. Default `localhost`, as Alertmanager.
    pub hello: String,
    /// `auth_username` and `auth_password` (or `auth_password_file`): sign in with PLAIN or LOGIN, whichever the
    /// server offers, when set.
    pub auth: Option<SmtpAuth>,
    /// `require_tls`, default true: upgrade the connection with STARTTLS before anything else, and fail when the
    /// server does not offer it. false: send in plain text.
    pub require_tls: bool,
    /// `force_implicit_tls`, or a smarthost on port 465: TLS from the first byte (SMTPS) instead of STARTTLS.
    pub implicit_tls: bool,
    /// `tls_config`: trust roots, client certificate, server name (default the smarthost's host).
    pub tls: TlsSettings,
    /// `headers`: templated header values by name (`Subject` always, with herald's default unless set).
    pub headers: Vec<EmailHeader>,
    /// `html`: the HTML part's template; `None` when set to an empty string (no HTML part).
    pub html: Option<TemplateField>,
    /// `text`: the plain-text part's template; `None` when set to an empty string (no text part).
    pub text: Option<TemplateField>,
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    pub delivery: DeliveryOptions,
}

/// `HOST:PORT` of an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartHost {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for SmartHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How herald signs in to the SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpAuth {
    pub username: String,
    pub password: Secret,
}

/// One templated header of a mail.
#[derive(Debug, Clone)]
pub struct EmailHeader {
    pub name: String,
    pub value: TemplateField,
}
