//! The first dispatcher: turns alert status changes into notifications for the receivers of the routes each alert
//! matches, and sends them through those receivers' integrations. Grouping with its timers and dedupe replace the
//! one-notification-per-change rule in their own module.

pub mod group;
pub mod sweeper;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::alert::Status;
use crate::config::{Receiver, Settings};
use crate::route::tree::RouteNode;
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
    pub fn build(receiver: &Receiver) -> Self {
        let sinks = receiver
            .log_configs
            .iter()
            .map(|config| Arc::new(LogSink::new(config)) as Arc<dyn Sink>)
            .collect();
        ReceiverSinks {
            name: receiver.name.clone(),
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

/// The notification a route sends for one change: to its receiver, in the alert's group on that route.
fn notification(
    route: &RouteNode,
    change: &StateChange,
    external_url: Option<&str>,
) -> Notification {
    let group_labels = route.group_labels(&change.alert.labels);
    Notification {
        receiver: route.receiver.clone(),
        status: change.status,
        group_key: route.group_key(&group_labels),
        group_labels,
        alerts: vec![NotifiedAlert {
            fingerprint: change.fingerprint,
            status: change.status,
            alert: change.alert.clone(),
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

/// Starts the dispatcher task: each change goes to the receiver of every route it matches. It runs until `shutdown`
/// is cancelled, then finishes what was already submitted.
pub fn start(
    settings: &Settings,
    routes: Arc<RouteNode>,
    shutdown: CancellationToken,
) -> (DispatchHandle, tokio::task::JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Vec<StateChange>>();
    let receivers: HashMap<String, ReceiverSinks> = settings
        .receivers
        .iter()
        .map(|receiver| (receiver.name.clone(), ReceiverSinks::build(receiver)))
        .collect();
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
            for change in changes.iter().filter(|change| is_notifiable(change)) {
                for route in routes.matching(&change.alert.labels) {
                    let Some(sinks) = receivers.get(&route.receiver) else {
                        continue;
                    };
                    deliver(sinks, &notification(route, change, external_url.as_deref())).await;
                }
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
