//! The built integrations of every receiver, found by receiver name and integration key (`webhook/0`).

use std::collections::HashMap;
use std::sync::Arc;

use super::Sink;
use super::email::EmailSink;
use super::httpclient::HttpClient;
use super::jira::JiraSink;
use super::log::LogSink;
use super::msteams::MsTeamsSink;
use super::pagerduty::PagerDutySink;
use super::slack::SlackSink;
use super::webhook::WebhookSink;
use super::wecom::WeComSink;
use crate::clock::Clock;
use crate::config::{DeliveryOptions, Settings};

/// One integration config of a receiver, built.
#[derive(Debug, Clone)]
pub struct Integration {
    /// `kind/index` within its receiver: `webhook/0`.
    pub key: String,
    /// Its destination for rate limiting (the sink's, named once).
    pub destination: String,
    pub sink: Arc<dyn Sink>,
    pub options: DeliveryOptions,
}

impl Integration {
    pub fn new(key: String, sink: Arc<dyn Sink>, options: DeliveryOptions) -> Self {
        Integration {
            key,
            destination: sink.destination(),
            sink,
            options,
        }
    }
}

/// A receiver's integrations and its notification size limit.
#[derive(Debug, Clone, Default)]
pub struct ReceiverIntegrations {
    pub max_alerts: Option<usize>,
    pub integrations: Vec<Integration>,
}

/// Every receiver's integrations.
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    receivers: HashMap<String, ReceiverIntegrations>,
}

impl Integrations {
    /// Builds every integration the settings configure, sharing one HTTP client and herald's clock.
    pub fn build(settings: &Settings, client: &reqwest::Client, clock: &Arc<dyn Clock>) -> Self {
        let receivers = settings
            .receivers
            .iter()
            .map(|receiver| {
                let mut integrations = Vec::with_capacity(receiver.integration_count());
                for (index, config) in receiver.log_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("log/{index}"),
                        Arc::new(LogSink::new(config)),
                        config.delivery.clone(),
                    ));
                }
                for (index, config) in receiver.webhook_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("webhook/{index}"),
                        Arc::new(
                            WebhookSink::with_http(
                                config,
                                HttpClient::build(&config.http, client, Arc::clone(clock)),
                            )
                            .with_clock(Arc::clone(clock))
                            .with_templates(Arc::clone(&settings.templates)),
                        ),
                        config.delivery.clone(),
                    ));
                }
                for (index, config) in receiver.slack_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("slack/{index}"),
                        Arc::new(SlackSink::new(
                            config,
                            Arc::clone(&settings.templates),
                            client.clone(),
                            Arc::clone(clock),
                        )),
                        config.delivery.clone(),
                    ));
                }
                for (index, config) in receiver.jira_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("jira/{index}"),
                        Arc::new(JiraSink::new(
                            config,
                            Arc::clone(&settings.templates),
                            client.clone(),
                            Arc::clone(clock),
                        )),
                        config.delivery.clone(),
                    ));
                }
                for (index, config) in receiver.pagerduty_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("pagerduty/{index}"),
                        Arc::new(PagerDutySink::new(
                            config,
                            Arc::clone(&settings.templates),
                            client.clone(),
                            Arc::clone(clock),
                        )),
                        config.delivery.clone(),
                    ));
                }
                for (index, config) in receiver.wecom_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("wecom/{index}"),
                        Arc::new(WeComSink::new(
                            config,
                            Arc::clone(&settings.templates),
                            client.clone(),
                            Arc::clone(clock),
                        )),
                        config.delivery.clone(),
                    ));
                }
                for (index, config) in receiver.msteamsv2_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("msteamsv2/{index}"),
                        Arc::new(MsTeamsSink::new(
                            config,
                            Arc::clone(&settings.templates),
                            client.clone(),
                            Arc::clone(clock),
                        )),
                        config.delivery.clone(),
                    ));
                }
                for (index, config) in receiver.email_configs.iter().enumerate() {
                    integrations.push(Integration::new(
                        format!("email/{index}"),
                        Arc::new(EmailSink::new(
                            config,
                            Arc::clone(&settings.templates),
                            Arc::clone(clock),
                        )),
                        config.delivery.clone(),
                    ));
                }
                (
                    receiver.name.clone(),
                    ReceiverIntegrations {
                        max_alerts: receiver.max_alerts,
                        integrations,
                    },
                )
            })
            .collect();
        Integrations { receivers }
    }

    /// Integrations built by hand (tests with sinks of their own).
    #[cfg(test)]
    pub(crate) fn from_receivers(receivers: HashMap<String, ReceiverIntegrations>) -> Self {
        Integrations { receivers }
    }

    pub fn receiver(&self, name: &str) -> Option<&ReceiverIntegrations> {
        self.receivers.get(name)
    }

    pub fn find(&self, receiver: &str, key: &str) -> Option<&Integration> {
        self.receivers
            .get(receiver)?
            .integrations
            .iter()
            .find(|integration| integration.key == key)
    }

    /// Every receiver's name.
    pub fn receiver_names(&self) -> impl Iterator<Item = &str> {
        self.receivers.keys().map(String::as_str)
    }

    pub fn all(&self) -> impl Iterator<Item = &Integration> {
        self.receivers
            .values()
            .flat_map(|receiver| receiver.integrations.iter())
    }
}
