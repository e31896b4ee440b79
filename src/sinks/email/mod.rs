//! The `email` integration (`email_configs`): one mail per notification, handed to an SMTP smarthost with lettre.
//! The headers (`Subject` by default) and the text and HTML parts are templates over the notification; herald's
//! defaults give a readable table of the alerts. The password is a secret: it is redacted from every kept answer
//! and reason, and the destination (the rate limit's key) names only the smarthost.

mod message;
mod transport;

use std::sync::Arc;

use async_trait::async_trait;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

pub use self::message::{Rendered, build};
use super::{Context, Receipt, Sink, SinkError};
use crate::clock::Clock;
use crate::config::EmailConfig;
use crate::notification::Notification;
use crate::template::Templates;

/// The `email` integration built from an `email_configs[]` entry.
pub struct EmailSink {
    config: EmailConfig,
    templates: Arc<Templates>,
    clock: Arc<dyn Clock>,
    /// The transport, or why it could not be built (every send then fails with it).
    transport: Result<AsyncSmtpTransport<Tokio1Executor>, String>,
    destination: String,
}

impl std::fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSink")
            .field("smarthost", &self.config.smarthost.to_string())
            .field("to", &self.config.to)
            .finish_non_exhaustive()
    }
}

impl EmailSink {
    pub fn new(config: &EmailConfig, templates: Arc<Templates>, clock: Arc<dyn Clock>) -> Self {
        let transport = transport::transport(config, config.delivery.timeout);
        if let Err(reason) = &transport {
            tracing::error!(%reason, smarthost = %config.smarthost, "the SMTP transport cannot be built; its sends will fail");
        }
        EmailSink {
            destination: format!("email:{}", config.smarthost),
            config: config.clone(),
            templates,
            clock,
            transport,
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.config
            .auth
            .iter()
            .map(|auth| auth.password.expose())
            .filter(|secret| !secret.is_empty())
            .collect()
    }

    /// The headers and parts rendered for `notification`.
    pub fn render(&self, notification: &Notification) -> Rendered {
        let renderer = self.templates.renderer(notification, "email");
        let part = |field: &Option<crate::template::TemplateField>| {
            field
                .as_ref()
                .map(|field| renderer.render(field))
                .filter(|text| !text.trim().is_empty())
        };
        let mut rendered = Rendered {
            headers: self
                .config
                .headers
                .iter()
                .map(|header| (header.name.clone(), renderer.render(&header.value)))
                .collect(),
            text: part(&self.config.text),
            html: part(&self.config.html),
        };
        if rendered.text.is_none() && rendered.html.is_none() {
            rendered.text = Some(
                renderer.render(&crate::template::TemplateField::default_only(
                    "default.email.text",
                )),
            );
        }
        rendered
    }
}

#[async_trait]
impl Sink for EmailSink {
    fn integration(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.config.send_resolved
    }

    fn destination(&self) -> String {
        self.destination.clone()
    }

    async fn send(
        &self,
        notification: &Notification,
        _context: &Context,
    ) -> Result<Receipt, SinkError> {
        let transport = self
            .transport
            .as_ref()
            .map_err(|reason| SinkError::permanent(reason.clone()))?;
        let rendered = self.render(notification);
        let message =
            build(&self.config, &rendered, self.clock.now()).map_err(SinkError::permanent)?;
        match transport.send(message).await {
            Ok(response) => Ok(Receipt {
                response: Some(transport::accepted(&response)),
                state: None,
            }),
            Err(error) => Err(transport::failure(&error, &self.secrets())),
        }
    }
}
