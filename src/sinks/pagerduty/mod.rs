//! The `pagerduty` integration (`pagerduty_configs`): one PagerDuty alert per alert group through the Events API v2.
//! While any alert of the group fires, each notification is a `trigger` event (PagerDuty appends a trigger with an
//! open `dedup_key` to that alert); when the group has resolved, a `resolve` event closes it. The `dedup_key` is
//! derived from the group key alone (see `event`), so nothing needs storing and it holds across restarts; a group
//! that fires again after its resolve opens a new PagerDuty alert under the same key, as PagerDuty does.
//!
//! The routing key is the credential: it is redacted from every kept answer and reason, and the destination (the
//! rate limit's key, 120 events a minute by default) names only its SHA-256.

mod answer;
pub mod event;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;

use self::event::Rendered;
use super::{Context, Receipt, Sink, SinkError, http};
use crate::alert::Status;
use crate::clock::Clock;
use crate::config::PagerDutyConfig;
use crate::notification::Notification;
use crate::template::Templates;

pub use self::answer::RETRY_AFTER;

/// The `pagerduty` integration built from a `pagerduty_configs[]` entry.
#[derive(Debug, Clone)]
pub struct PagerDutySink {
    config: PagerDutyConfig,
    destination: String,
    templates: Arc<Templates>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl PagerDutySink {
    pub fn new(
        config: &PagerDutyConfig,
        templates: Arc<Templates>,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        PagerDutySink {
            destination: format!(
                "pagerduty:{}",
                http::short_digest(config.routing_key.expose())
            ),
            config: config.clone(),
            templates,
            client,
            clock,
        }
    }

    /// Every templated field of a trigger, rendered for `notification`.
    fn render(&self, notification: &Notification) -> Rendered {
        let renderer = self.templates.renderer(notification, "pagerduty");
        let config = &self.config;
        Rendered {
            summary: event::summary(&renderer.render(&config.description), notification),
            severity: event::event_severity(&renderer.render(&config.severity), notification)
                .to_owned(),
            source: renderer.render(&config.source),
            class: renderer.render(&config.class),
            component: renderer.render(&config.component),
            group: renderer.render(&config.group),
            client: renderer.render(&config.client),
            client_url: renderer.render(&config.client_url),
            details: config
                .details
                .iter()
                .map(|(name, field)| (name.clone(), renderer.render(field)))
                .collect(),
            links: config
                .links
                .iter()
                .map(|link| (renderer.render(&link.href), renderer.render(&link.text)))
                .collect(),
            images: config
                .images
                .iter()
                .map(|image| {
                    (
                        renderer.render(&image.src),
                        renderer.render(&image.href),
                        renderer.render(&image.alt),
                    )
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Sink for PagerDutySink {
    fn integration(&self) -> &'static str {
        "pagerduty"
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
        let key = self.config.routing_key.expose();
        let secrets = [key];
        let dedup_key = event::dedup_key(&notification.group_key);
        let event = match notification.status {
            Status::Firing => event::trigger(
                key,
                &dedup_key,
                &self.render(notification),
                event::started(notification),
            ),
            Status::Resolved => event::resolve(key, &dedup_key),
        };
        let body = event::encode(event)?;
        let response = self
            .client
            .post(&self.config.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| http::transport_error(error, &secrets))?;
        let answer = http::Answer::read(response, self.clock.now()).await;
        answer::classify(&answer, &secrets)
    }
}

#[cfg(test)]
mod tests;
