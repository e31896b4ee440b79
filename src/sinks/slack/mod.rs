//! The `slack` integration (`slack_configs`). With an incoming webhook (`api_url`) every notification is a new
//! message. With a bot token it keeps one message per alert group: posted with `chat.postMessage`, then updated
//! with `chat.update` (and, with `thread_replies`, answered in its thread) as the group changes and resolves; the
//! message's channel id and `ts` are the integration's state for the group, stored with each delivery's outcome,
//! so this holds across restarts (see `bot` for the lifecycle and how partial progress is retried).
//!
//! The webhook URL and the token are secrets: they are redacted from every kept answer and error reason, and the
//! destination (the rate limit's key) names only their SHA-256.

mod api;
mod bot;
pub mod message;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use self::api::{Posted, WebApi};
use self::bot::{BotState, Plan};
use self::message::{Content, Texts};
use super::httpclient::HttpClient;
use super::{Context, Receipt, Sink, SinkError, http};
use crate::clock::Clock;
use crate::config::{Secret, SlackConfig, SlackMode};
use crate::notification::Notification;
use crate::template::Templates;

pub use self::api::{API_RETRY_AFTER, WEBHOOK_RETRY_AFTER, classify_code};

/// How the sink reaches Slack.
#[derive(Debug, Clone)]
enum Mode {
    Webhook { url: Secret },
    Bot { api: WebApi },
}

/// The `slack` integration built from a `slack_configs[]` entry.
#[derive(Debug, Clone)]
pub struct SlackSink {
    mode: Mode,
    config: SlackConfig,
    /// Everything redacted from kept answers and reasons: the webhook URL and its path, or the token.
    secrets: Vec<Secret>,
    destination: String,
    templates: Arc<Templates>,
    client: HttpClient,
    clock: Arc<dyn Clock>,
}

impl SlackSink {
    pub fn new(
        config: &SlackConfig,
        templates: Arc<Templates>,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let client = HttpClient::build(&config.http, &client, Arc::clone(&clock));
        let (mode, mut secrets, destination): (Mode, Vec<Secret>, String) = match &config.mode {
            SlackMode::Webhook { url } => (
                Mode::Webhook { url: url.clone() },
                http::url_secrets(url.expose())
                    .into_iter()
                    .map(Secret::new)
                    .collect(),
                format!("slack:{}", http::short_digest(url.expose())),
            ),
            SlackMode::Bot { token, api_url } => (
                Mode::Bot {
                    api: WebApi::new(api_url, token.clone(), client.clone(), Arc::clone(&clock)),
                },
                vec![token.clone()],
                format!(
                    "slack-bot:{}:{}",
                    http::short_digest(token.expose()),
                    config.channel.as_deref().unwrap_or_default()
                ),
            ),
        };
        secrets.extend(config.http.secrets().into_iter().map(Secret::new));
        SlackSink {
            mode,
            config: config.clone(),
            secrets,
            destination,
            templates,
            client,
            clock,
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(Secret::expose).collect()
    }

    /// The configured channel (`#name`, `name` or an id), as written.
    fn channel(&self) -> &str {
        self.config.channel.as_deref().unwrap_or_default()
    }

    fn texts(&self, notification: &Notification) -> Texts {
        let renderer = self.templates.renderer(notification, "slack");
        Texts {
            title: renderer.render(&self.config.title),
            title_link: renderer.render(&self.config.title_link),
            text: renderer.render(&self.config.text),
        }
    }

    /// The `channel`, `username`, `icon_emoji` and `icon_url` overrides that are set.
    fn overrides(&self, body: &mut serde_json::Map<String, Value>) {
        let fields = [
            ("channel", &self.config.channel),
            ("username", &self.config.username),
            ("icon_emoji", &self.config.icon_emoji),
            ("icon_url", &self.config.icon_url),
        ];
        for (key, value) in fields {
            if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
                body.insert(key.to_owned(), json!(value));
            }
        }
    }

    async fn send_webhook(
        &self,
        url: &Secret,
        notification: &Notification,
    ) -> Result<Receipt, SinkError> {
        let secrets = self.secrets();
        let mut body = message::content(notification, &self.texts(notification), None).to_json();
        self.overrides(&mut body);
        let bytes = serde_json::to_vec(&body).map_err(|error| {
            SinkError::permanent(format!("cannot encode the Slack message: {error}"))
        })?;
        let request = self
            .client
            .post(url.expose())
            .header(CONTENT_TYPE, "application/json")
            .body(bytes);
        let response = self.client.send(request, &secrets).await?;
        let answer = http::Answer::read(response, self.clock.now()).await;
        api::webhook_answer(&answer, &secrets)
    }

    async fn send_bot(
        &self,
        api: &WebApi,
        notification: &Notification,
        context: &Context,
    ) -> Result<Receipt, SinkError> {
        let content = message::content(
            notification,
            &self.texts(notification),
            Some(self.clock.now()),
        );
        let previous = BotState::read(context.state.as_ref());
        match bot::plan(previous, notification, self.channel()) {
            Plan::Post => self.post(api, notification, &content).await,
            Plan::Update(previous) => self.update(api, notification, &content, previous).await,
        }
    }

    /// Posts a new message; its channel id and `ts` become the state.
    async fn post(
        &self,
        api: &WebApi,
        notification: &Notification,
        content: &Content,
    ) -> Result<Receipt, SinkError> {
        let mut body = content.to_json();
        self.overrides(&mut body);
        let Posted {
            channel,
            ts,
            response,
        } = api
            .call("chat.postMessage", &Value::Object(body))
            .await
            .map_err(SinkError::from)?;
        let state = BotState::after(channel, ts, self.channel(), notification);
        Ok(Receipt {
            response: Some(response),
            state: state.to_json(),
        })
    }

    /// Updates the stored message (a new one replaces it when it cannot be edited any more), then replies in its
    /// thread with `thread_replies`.
    async fn update(
        &self,
        api: &WebApi,
        notification: &Notification,
        content: &Content,
        previous: BotState,
    ) -> Result<Receipt, SinkError> {
        let mut body = content.to_json();
        body.insert("channel".into(), json!(previous.channel));
        body.insert("ts".into(), json!(previous.ts));
        let response = match api.call("chat.update", &Value::Object(body)).await {
            Ok(posted) => posted.response,
            Err(failure) if failure.message_gone() => {
                tracing::info!(code = failure.code.as_deref().unwrap_or_default(), channel = %previous.channel,
                    "the group's Slack message cannot be updated; posting a new one");
                return self.post(api, notification, content).await;
            }
            Err(failure) => return Err(failure.into()),
        };
        if self.config.thread_replies {
            self.reply(api, &previous, notification).await?;
        }
        let state = BotState::after(
            previous.channel.clone(),
            previous.ts.clone(),
            self.channel(),
            notification,
        );
        Ok(Receipt {
            response: Some(response),
            state: state.to_json(),
        })
    }

    /// Replies in the message's thread with what changed.
    async fn reply(
        &self,
        api: &WebApi,
        previous: &BotState,
        notification: &Notification,
    ) -> Result<(), SinkError> {
        let mut body = serde_json::Map::new();
        self.overrides(&mut body);
        body.insert("channel".into(), json!(previous.channel));
        body.insert("thread_ts".into(), json!(previous.ts));
        body.insert("text".into(), json!(bot::change(previous, notification)));
        api.call("chat.postMessage", &Value::Object(body))
            .await
            .map(|_| ())
            .map_err(|failure| {
                api::prefix(
                    "message updated, but the thread reply failed",
                    failure.error,
                )
            })
    }
}

#[async_trait]
impl Sink for SlackSink {
    fn integration(&self) -> &'static str {
        "slack"
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
        context: &Context,
    ) -> Result<Receipt, SinkError> {
        match &self.mode {
            Mode::Webhook { url } => self.send_webhook(url, notification).await,
            Mode::Bot { api } => self.send_bot(api, notification, context).await,
        }
    }
}

#[cfg(test)]
mod tests;
