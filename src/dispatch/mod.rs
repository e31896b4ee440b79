//! The first dispatcher: turns alert status changes into notifications for the root route's receiver and sends
//! them through that receiver's integrations. Grouping, the route tree and dedupe replace this in their own module.

pub mod sweeper;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::alert::{Labels, Status};
use crate::config::Settings;
use crate::sinks::log::LogSink;
use crate::sinks::{Notification, NotifiedAlert, Sink};
use crate::store::StateChange;

/// A receiver's name and its built integrations.
#[derive(Debug, Clone)]
pub struct ReceiverSinks {
    pub name: String,
    pub sinks: Vec<Arc<dyn Sink>>,
}

impl ReceiverSinks {
    pub fn build(settings: &Settings, name: &str) -> Self {
        let sinks = settings
            .receiver(name)
            .map(|receiver| {
                receiver
                    .log_configs
                    .iter()
                    .map(|config| Arc::new(LogSink::new(config)) as Arc<dyn Sink>)
                    .collect()
            })
            .unwrap_or_default();
        ReceiverSinks {
            name: name.to_string(),
            sinks,
        }
    }
}

/// Where ingest and the sweeper hand status changes to the dispatcher.
#[derive(Debug, Clone)]
pub struct DispatchHandle {
    sender: mpsc::UnboundedSender<Vec<StateChange>>,
}

impl DispatchHandle {
    pub fn submit(&self, changes: Vec<StateChange>) {
        if changes.is_empty() {
            return;
        }
        if self.sender.send(changes).is_err() {
            tracing::warn!("dispatcher has stopped; status changes not notified");
        }
    }
}

/// A change worth telling: an alert that starts (or starts again) firing, or one that was firing and resolved.
fn is_notifiable(change: &StateChange) -> bool {
    match change.status {
        Status::Firing => change.previous != Some(Status::Firing),
        Status::Resolved => change.previous == Some(Status::Firing),
    }
}

fn notification(receiver: &str, change: StateChange, external_url: Option<&str>) -> Notification {
    Notification {
        receiver: receiver.to_string(),
        status: change.status,
        group_key: change.fingerprint.to_string(),
        group_labels: Labels::new(),
        alerts: vec![NotifiedAlert {
            fingerprint: change.fingerprint,
            status: change.status,
            alert: change.alert,
        }],
        external_url: external_url.map(str::to_string),
    }
}

async fn deliver(receiver: &ReceiverSinks, notification: &Notification) {
    for sink in &receiver.sinks {
        if notification.status == Status::Resolved && !sink.send_resolved() {
            continue;
        }
        let integration = sink.integration();
        match sink.send(notification).await {
            Ok(_) => {
                metrics::counter!("herald_notifications_total", "receiver" => receiver.name.clone(),
                    "integration" => integration)
                .increment(1);
            }
            Err(error) => {
                tracing::warn!(%error, receiver = %receiver.name, integration, "notification failed");
                metrics::counter!("herald_notifications_failed_total", "receiver" => receiver.name.clone(),
                    "integration" => integration, "reason" => error.reason())
                .increment(1);
            }
        }
    }
}

/// Starts the dispatcher task; it runs until `shutdown` is cancelled, then finishes what was already submitted.
pub fn start(
    settings: &Settings,
    shutdown: CancellationToken,
) -> (DispatchHandle, tokio::task::JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Vec<StateChange>>();
    let sinks = ReceiverSinks::build(settings, &settings.route.receiver);
    let external_url = settings.server.external_url.clone();
    let task = tokio::spawn(async move {
        loop {
            let changes = tokio::select! {
                changes = receiver.recv() => changes,
                () = shutdown.cancelled() => {
                    receiver.close();
                    receiver.recv().await
                }
            };
            let Some(changes) = changes else { break };
            for change in changes.into_iter().filter(is_notifiable) {
                deliver(
                    &sinks,
                    &notification(&sinks.name, change, external_url.as_deref()),
                )
                .await;
            }
        }
    });
    (DispatchHandle { sender }, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;

    fn change(previous: Option<Status>, status: Status) -> StateChange {
        let alert = test_alert("A", &[]);
        StateChange {
            fingerprint: alert.fingerprint(),
            alert,
            previous,
            status,
        }
    }

    #[test]
    fn only_real_transitions_are_notified() {
        assert!(is_notifiable(&change(None, Status::Firing)));
        assert!(is_notifiable(&change(
            Some(Status::Resolved),
            Status::Firing
        )));
        assert!(is_notifiable(&change(
            Some(Status::Firing),
            Status::Resolved
        )));
        assert!(
            !is_notifiable(&change(None, Status::Resolved)),
            "never announced, nothing to resolve"
        );
    }
}
