//! The `wecom` integration (`wecom_configs`): posts each notification to a WeCom (企业微信) group robot as markdown
//! (coloured by state and severity) or text (with @-mentions), cut to WeCom's limits (`message`), and reads WeCom's
//! always-200 answers by `errcode` (`answer`).
//!
//! The robot's URL carries its key, the credential: the URL and the key are redacted from every kept answer and
//! reason, and the destination (the rate limit's key, 20 messages a minute by default) names only their SHA-256.

mod answer;
pub mod message;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;

use super::severity::Tone;
use super::{Context, Receipt, Sink, SinkError, http};
use crate::clock::Clock;
use crate::config::{Secret, WeComConfig};
use crate::notification::Notification;
use crate::template::Templates;

pub use self::answer::{BUSY, INVALID_URL, RATE_LIMITED, RETRY_AFTER};

/// The `wecom` integration built from a `wecom_configs[]` entry.
#[derive(Debug, Clone)]
pub struct WeComSink {
    config: WeComConfig,
    /// The URL and its token-like parts (the key), redacted from answers and reasons.
    secrets: Vec<Secret>,
    destination: String,
    templates: Arc<Templates>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl WeComSink {
    pub fn new(
        config: &WeComConfig,
        templates: Arc<Templates>,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let url = config.url.expose();
        WeComSink {
            secrets: http::url_and_query_secrets(url)
                .into_iter()
                .map(Secret::new)
                .collect(),
            destination: format!("wecom:{}", http::short_digest(url)),
            config: config.clone(),
            templates,
            client,
            clock,
        }
    }

    /// The request body for `notification`.
    pub fn body(&self, notification: &Notification) -> serde_json::Value {
        let renderer = self.templates.renderer(notification, "wecom");
        let content = message::content(
            self.config.msg_type,
            Tone::of(notification),
            &renderer.render(&self.config.title),
            &renderer.render(&self.config.text),
        );
        message::body(&self.config, content)
    }
}

#[async_trait]
impl Sink for WeComSink {
    fn integration(&self) -> &'static str {
        "wecom"
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
        let body = serde_json::to_vec(&self.body(notification)).map_err(|error| {
            SinkError::permanent(format!("cannot encode the WeCom message: {error}"))
        })?;
        let response = self
            .client
            .post(self.config.url.expose())
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
mod tests {
    use super::*;
    use crate::alert::{Labels, Status, test_alert};
    use crate::clock::SystemClock;
    use crate::notification::{NotifiedAlert, Reason};

    const URL: &str =
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa";

    fn sink(extra: &str) -> WeComSink {
        let yaml = format!(
            "route: {{receiver: team}}\nreceivers:\n  - name: team\n    wecom_configs:\n      - url: '{URL}'\n{extra}"
        );
        let settings = crate::config::load_str(&yaml, "h.yaml")
            .unwrap_or_else(|errors| panic!("{errors}"))
            .settings;
        WeComSink::new(
            &settings.receivers[0].wecom_configs[0],
            Arc::clone(&settings.templates),
            http::client().unwrap(),
            Arc::new(SystemClock),
        )
    }

    fn notification(status: Status) -> Notification {
        let mut alert = test_alert(
            "DiskFull",
            &[("instance", "db-1"), ("severity", "critical")],
        );
        alert
            .annotations
            .insert("summary".into(), "磁盘已满".into());
        Notification::new(
            "team".into(),
            Reason::First,
            r#"{}:{alertname="DiskFull"}"#.into(),
            Labels::from([("alertname".to_owned(), "DiskFull".to_owned())]),
            vec![NotifiedAlert {
                fingerprint: alert.fingerprint(),
                status,
                alert,
            }],
            None,
            None,
        )
    }

    #[test]
    fn markdown_by_default_with_a_coloured_headline() {
        let body = sink("").body(&notification(Status::Firing));
        assert_eq!(body["msgtype"], "markdown");
        assert_eq!(
            body["markdown"]["content"],
            "**<font color=\"warning\">🔥 [FIRING:1] DiskFull</font>**\n> 🔥 **DiskFull**: 磁盘已满 `instance=db-1` \
             `severity=critical`"
        );
        let resolved = sink("").body(&notification(Status::Resolved));
        assert!(
            resolved["markdown"]["content"]
                .as_str()
                .unwrap()
                .starts_with("**<font color=\"info\">✅ [RESOLVED] DiskFull</font>**"),
            "{resolved}"
        );
    }

    #[test]
    fn text_messages_carry_the_mentions() {
        let sink = sink(
            "        msg_type: text\n        mentioned_list: ['@all']\n        mentioned_mobile_list: ['13800000000']\n        \
             title: '{{ common_labels.alertname }} on {{ common_labels.instance }}'\n",
        );
        let body = sink.body(&notification(Status::Firing));
        assert_eq!(body["msgtype"], "text");
        assert_eq!(
            body["text"]["content"],
            "🔥 DiskFull on db-1\n🔥 DiskFull: 磁盘已满 instance=db-1 severity=critical"
        );
        assert_eq!(body["text"]["mentioned_list"], serde_json::json!(["@all"]));
        assert_eq!(
            body["text"]["mentioned_mobile_list"],
            serde_json::json!(["13800000000"])
        );
    }

    #[test]
    fn the_destination_and_debug_output_hide_the_key() {
        let sink = sink("");
        let key = URL.rsplit('=').next().unwrap();
        assert!(sink.destination().starts_with("wecom:"));
        assert!(!sink.destination().contains(key));
        assert!(!format!("{sink:?}").contains(key));
        assert!(sink.secrets.iter().any(|secret| secret.expose() == key));
    }
}
