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

    fn uses_state(&self) -> bool {
        false
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alert::{Labels, Status, test_alert};
    use crate::clock::ManualClock;
    use crate::config::{DeliveryOptions, EmailHeader, RetryPolicy, SmartHost, TlsSettings};
    use crate::notification::{NotifiedAlert, Reason};
    use crate::template::TemplateField;

    fn config() -> EmailConfig {
        EmailConfig {
            to: vec!["ops@example.com".into()],
            from: "herald@example.com".into(),
            smarthost: SmartHost {
                host: "127.0.0.1".into(),
                port: 25,
            },
            hello: "localhost".into(),
            auth: None,
            require_tls: false,
            implicit_tls: false,
            tls: TlsSettings::default(),
            headers: vec![EmailHeader {
                name: "Subject".into(),
                value: TemplateField::default_only("default.email.subject"),
            }],
            html: Some(TemplateField::default_only("default.email.html")),
            text: Some(TemplateField::default_only("default.email.text")),
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

    fn notification() -> Notification {
        let at = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let mut firing = test_alert(
            "DiskFull",
            &[("instance", "<db-1>"), ("severity", "critical")],
        );
        firing.starts_at = at("2026-11-21T09:00:00Z");
        firing
            .annotations
            .insert("summary".into(), "disk 97% full".into());
        firing.generator_url = "http://prometheus:9090/graph".into();
        let mut resolved = test_alert(
            "DiskFull",
            &[("instance", "db-2"), ("severity", "critical")],
        );
        resolved.starts_at = at("2026-11-21T08:00:00Z");
        resolved.ends_at = Some(at("2026-11-21T09:30:00Z"));
        Notification::new(
            "ops".into(),
            Reason::First,
            "{}:{alertname=\"DiskFull\"}".into(),
            Labels::from([("alertname".to_owned(), "DiskFull".to_owned())]),
            vec![
                NotifiedAlert {
                    fingerprint: firing.fingerprint(),
                    status: Status::Firing,
                    alert: firing,
                },
                NotifiedAlert {
                    fingerprint: resolved.fingerprint(),
                    status: Status::Resolved,
                    alert: resolved,
                },
            ],
            None,
            Some("https://herald.example".into()),
        )
    }

    fn sink(config: &EmailConfig) -> EmailSink {
        let clock = Arc::new(ManualClock::new("2026-11-21T10:00:00Z".parse().unwrap()));
        EmailSink::new(config, Arc::new(Templates::new()), clock)
    }

    #[test]
    fn the_default_text_is_a_readable_list_of_alerts() {
        let rendered = sink(&config()).render(&notification());
        assert_eq!(
            rendered.headers,
            [("Subject".to_owned(), "[FIRING:1] DiskFull".to_owned())]
        );
        assert_eq!(
            rendered.text.unwrap(),
            "1 firing, 1 resolved - receiver ops\n\
             Group: alertname=DiskFull\n\
             \n\
             FIRING\n\
             \n\
             * DiskFull: disk 97% full\n  \
             Labels: alertname=DiskFull, instance=<db-1>, severity=critical\n  \
             Started: 2026-11-21T09:00:00+00:00\n  \
             Source: http://prometheus:9090/graph\n\
             \n\
             RESOLVED\n\
             \n\
             * DiskFull\n  \
             Labels: alertname=DiskFull, instance=db-2, severity=critical\n  \
             Started: 2026-11-21T08:00:00+00:00\n  \
             Ended: 2026-11-21T09:30:00+00:00\n\
             \n\
             Sent by herald: https://herald.example"
        );
    }

    #[test]
    fn the_default_html_is_a_table_with_values_escaped() {
        let html = sink(&config()).render(&notification()).html.unwrap();
        assert!(html.contains("<th>Status</th><th>Alert</th><th>Labels</th><th>Annotations</th><th>Started</th><th>Source</th>"), "{html}");
        assert!(
            html.contains("<td>instance=&lt;db-1&gt;<br>severity=critical</td>"),
            "{html}"
        );
        assert!(html.contains("1 firing, 1 resolved: DiskFull"), "{html}");
        assert!(html.contains(">RESOLVED</td>"), "{html}");
        assert!(html.contains("ended 2026-11-21T09:30:00+00:00"), "{html}");
        assert!(!html.contains("<db-1>"), "{html}");
    }

    #[test]
    fn empty_parts_are_left_out_and_a_mail_always_has_a_body() {
        let mut config = config();
        let mut templates = Templates::new();
        templates.add("r.text", "{{ '' }}").unwrap();
        config.html = None;
        config.text = Some(TemplateField {
            custom: Some("r.text".into()),
            default: "default.email.text",
        });
        let clock = Arc::new(ManualClock::new("2026-11-21T10:00:00Z".parse().unwrap()));
        let sink = EmailSink::new(&config, Arc::new(templates), clock);
        let rendered = sink.render(&notification());
        assert!(rendered.html.is_none());
        assert!(rendered.text.unwrap().starts_with("1 firing, 1 resolved"));
    }
}
