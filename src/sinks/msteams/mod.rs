//! The `msteamsv2` integration (`msteamsv2_configs`): posts each notification as an Adaptive Card to a Microsoft
//! Teams Workflows webhook (`card`), and reads its answers and those of a legacy Office 365 connector (`answer`).
//!
//! The webhook URL is the credential: it and its token-like parts (path, signature) are redacted from every kept
//! answer and reason, and the destination (the rate limit's key) names only its SHA-256.

mod answer;
pub mod card;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;

use self::card::Parts;
use super::severity::Tone;
use super::{Context, Receipt, Sink, SinkError, http};
use crate::clock::Clock;
use crate::config::{MsTeamsV2Config, Secret};
use crate::notification::Notification;
use crate::template::Templates;

pub use self::answer::{RETRY_AFTER, named_status};

/// The `msteamsv2` integration built from an `msteamsv2_configs[]` entry.
#[derive(Debug, Clone)]
pub struct MsTeamsSink {
    config: MsTeamsV2Config,
    /// The URL and its token-like parts, redacted from answers and reasons.
    secrets: Vec<Secret>,
    destination: String,
    templates: Arc<Templates>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl MsTeamsSink {
    pub fn new(
        config: &MsTeamsV2Config,
        templates: Arc<Templates>,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let url = config.webhook_url.expose();
        MsTeamsSink {
            secrets: http::url_and_query_secrets(url)
                .into_iter()
                .map(Secret::new)
                .collect(),
            destination: format!("msteams:{}", http::short_digest(url)),
            config: config.clone(),
            templates,
            client,
            clock,
        }
    }

    /// The message for `notification`, encoded.
    pub fn body(&self, notification: &Notification) -> Result<Vec<u8>, SinkError> {
        let renderer = self.templates.renderer(notification, "msteamsv2");
        let parts = Parts::of(
            notification,
            &renderer.render(&self.config.title),
            &renderer.render(&self.config.text),
        );
        card::encode(Tone::of(notification), parts)
    }
}

#[async_trait]
impl Sink for MsTeamsSink {
    fn integration(&self) -> &'static str {
        "msteamsv2"
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
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::expose).collect();
        let body = self.body(notification)?;
        let response = self
            .client
            .post(self.config.webhook_url.expose())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| http::transport_error(error, &secrets))?;
        let answer = http::Answer::read(response, self.clock.now()).await;
        answer::classify(&answer, &secrets)
    }
}
