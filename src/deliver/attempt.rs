//! One attempt at a delivery: send its notification (read when it was claimed) through its integration within the
//! timeout, and decide what becomes of it; the engine stores the attempt and the outcome, many in one transaction.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::breaker::Reach;
use super::policy;
use crate::clock::Clock;
use crate::config::{RetryPolicy, format_duration};
use crate::notification::Notification;
use crate::sinks::integrations::{Integration, Integrations};
use crate::sinks::{Context, Receipt, SinkError};
use crate::store::delivery::{AttemptRecord, Finished, Settle};

/// What an attempt needs.
pub(crate) struct Job {
    pub id: i64,
    pub receiver: Arc<str>,
    pub integration_key: Arc<str>,
    pub destination: Arc<str>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub queued_at: DateTime<Utc>,
    /// Its notification, as queued or read when it was claimed.
    pub payload: Payload,
    /// Its integration's state for its group (JSON), read when it was claimed.
    pub state: Option<String>,
    /// `None` when the delivery's integration is no longer configured.
    pub integration: Option<Integration>,
    pub clock: Arc<dyn Clock>,
    /// A random number in [0, 1) for the backoff's jitter.
    pub jitter: f64,
    /// `Some(its own retry time)` when it probes a down destination ahead of that time: a failure then spends
    /// none of its attempts and keeps its retry time.
    pub early: Option<DateTime<Utc>>,
}

/// A delivery's notification: as the dispatcher made it, or as read back from the store (JSON).
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Held(Arc<Notification>),
    Stored(String),
}

/// What came of an attempt, to store.
#[derive(Debug)]
pub(crate) struct Completion {
    pub id: i64,
    pub receiver: Arc<str>,
    /// The attempt and the delivery's new state, as stored.
    pub finished: Finished,
    /// The destination must not be sent to before this.
    pub pause: Option<(String, DateTime<Utc>)>,
    pub destination: Arc<str>,
    /// Whether the destination answered; `None` when nothing was sent (no integration, unreadable notification).
    pub reach: Option<Reach>,
    /// The retry policy of its integration, which paces the probes of its destination.
    pub retry: Option<RetryPolicy>,
}

async fn send(job: &Job) -> Result<Receipt, SinkError> {
    let Some(integration) = &job.integration else {
        return Err(SinkError::permanent(format!(
            "integration {} of receiver {:?} is no longer configured",
            job.integration_key, job.receiver
        )));
    };
    let read;
    let notification: &Notification = match &job.payload {
        Payload::Held(notification) => notification,
        Payload::Stored(json) => {
            read = serde_json::from_str::<Notification>(json).map_err(|error| {
                SinkError::permanent(format!("the stored notification cannot be read: {error}"))
            })?;
            &read
        }
    };
    let context = Context {
        state: job
            .state
            .as_deref()
            .and_then(|state| serde_json::from_str(state).ok()),
    };
    let timeout = integration.options.timeout;
    match tokio::time::timeout(timeout, integration.sink.send(notification, &context)).await {
        Ok(result) => result,
        Err(_) => Err(SinkError::retryable(format!(
            "no answer within {} (timeout)",
            format_duration(timeout)
        ))),
    }
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[tracing::instrument(skip_all, fields(delivery = job.id, receiver = %job.receiver, integration = %job.integration_key, attempt = job.attempts + 1))]
pub(crate) async fn run(job: Job) -> Completion {
    let started_at = job.clock.now();
    let timer = Instant::now();
    let result = send(&job).await;
    let duration = timer.elapsed();
    let now = job.clock.now();
    let attempts = job.attempts + 1;
    let kind = job
        .integration
        .as_ref()
        .map_or("unknown", |integration| integration.sink.integration());
    let (settle, pause, response, outcome) = match &result {
        Ok(receipt) => (
            Settle::Delivered,
            None,
            receipt.response.clone(),
            "delivered",
        ),
        Err(error) => {
            let (settle, pause) = match &job.integration {
                // A probe ahead of its own retry time: judged on the attempts it made before, and its retry time
                // stays (its age is judged as for any attempt).
                Some(integration) if job.early.is_some() => {
                    let (settle, pause) = policy::after_failure(
                        &integration.options.retry,
                        error,
                        job.attempts,
                        job.queued_at,
                        now,
                        job.jitter,
                    );
                    match (settle, job.early) {
                        (Settle::Retry { error, .. }, Some(own)) => (
                            Settle::Retry {
                                next_attempt_at: own.max(pause.unwrap_or(own)),
                                error,
                            },
                            pause,
                        ),
                        (settle, _) => (settle, pause),
                    }
                }
                Some(integration) => policy::after_failure(
                    &integration.options.retry,
                    error,
                    attempts,
                    job.queued_at,
                    now,
                    job.jitter,
                ),
                None => (
                    Settle::Dead {
                        error: format!("permanent error: {error}"),
                    },
                    None,
                ),
            };
            (settle, pause, error.response().cloned(), error.reason())
        }
    };
    let slow_down = response
        .as_ref()
        .and_then(|response| response.slow_down)
        .and_then(|wait| chrono::Duration::from_std(wait).ok())
        .map(|wait| now + wait);
    let pause = later(pause, slow_down);
    metrics::counter!("herald_delivery_attempts_total", "integration" => kind, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("herald_delivery_latency_seconds", "integration" => kind)
        .record(duration.as_secs_f64());
    if let Err(SinkError::RateLimited { .. }) = &result {
        metrics::counter!("herald_rate_limited_total", "integration" => kind).increment(1);
    }
    let reach = match &result {
        Ok(_) | Err(SinkError::RateLimited { .. }) => Some(Reach::Answered),
        Err(SinkError::Retryable { .. }) => Some(Reach::Failed),
        Err(SinkError::Permanent { response, .. }) => response.as_ref().map(|_| Reach::Answered),
    };
    let state = result
        .as_ref()
        .ok()
        .and_then(|receipt| receipt.state.as_ref())
        .map(ToString::to_string);
    record(
        job,
        started_at,
        duration,
        Outcome {
            settle,
            pause,
            response,
            state,
            reach,
        },
        result.as_ref().err(),
        kind,
    )
}

/// What an attempt decided, to store.
struct Outcome {
    settle: Settle,
    pause: Option<DateTime<Utc>>,
    response: Option<crate::sinks::Response>,
    /// The integration's new state for the group (JSON).
    state: Option<String>,
    reach: Option<Reach>,
}

fn record(
    job: Job,
    started_at: DateTime<Utc>,
    duration: std::time::Duration,
    outcome: Outcome,
    error: Option<&SinkError>,
    kind: &'static str,
) -> Completion {
    let Outcome {
        settle,
        pause,
        response,
        state,
        reach,
    } = outcome;
    let attempt = AttemptRecord {
        started_at,
        duration_seconds: duration.as_secs_f64(),
        outcome: error.map_or("delivered", SinkError::reason).to_owned(),
        status_code: response.as_ref().and_then(|response| response.status),
        error: error.map(ToString::to_string),
        response: response
            .map(|response| response.body)
            .filter(|body| !body.is_empty()),
    };
    let receiver = job.receiver.to_string();
    match &settle {
        Settle::Delivered => {
            tracing::debug!("delivered");
            metrics::counter!("herald_notifications_total", "receiver" => receiver, "integration" => kind)
                .increment(1);
        }
        Settle::Retry {
            next_attempt_at,
            error,
        } => {
            tracing::info!(%error, retry_at = %next_attempt_at, "delivery failed; will retry");
        }
        Settle::Dead { error: reason } => {
            tracing::warn!(error = %reason, "delivery is dead");
            let label = match error {
                Some(SinkError::Permanent { .. }) => "permanent",
                _ => "retries_exhausted",
            };
            metrics::counter!("herald_notifications_failed_total", "receiver" => receiver,
                "integration" => kind, "reason" => label)
            .increment(1);
        }
    }
    let pause = pause.map(|until| (job.destination.to_string(), until));
    let spent = !(job.early.is_some() && matches!(settle, Settle::Retry { .. }));
    let finished = Finished {
        id: job.id,
        attempt,
        settle,
        pause: pause.clone(),
        state,
        now: job.clock.now(),
        spent,
    };
    Completion {
        id: job.id,
        receiver: job.receiver,
        finished,
        pause,
        destination: job.destination,
        reach,
        retry: job
            .integration
            .as_ref()
            .map(|integration| integration.options.retry),
    }
}

/// Starts the delivery counters of every receiver and integration `integrations` configures at 0 (those already
/// counting keep their values), so `rate()` and dashboards see them before their first event.
pub(super) fn start_counters(integrations: &Integrations) {
    for receiver in integrations.receiver_names() {
        let Some(configured) = integrations.receiver(receiver) else {
            continue;
        };
        for integration in &configured.integrations {
            let kind = integration.sink.integration();
            for outcome in ["delivered", "retryable", "rate_limited", "permanent"] {
                metrics::counter!("herald_delivery_attempts_total", "integration" => kind, "outcome" => outcome)
                    .increment(0);
            }
            metrics::counter!("herald_rate_limited_total", "integration" => kind).increment(0);
            metrics::counter!("herald_template_failures_total", "integration" => kind).increment(0);
            metrics::counter!("herald_notifications_total", "receiver" => receiver.to_owned(), "integration" => kind)
                .increment(0);
            for reason in ["permanent", "retries_exhausted"] {
                metrics::counter!("herald_notifications_failed_total", "receiver" => receiver.to_owned(),
                    "integration" => kind, "reason" => reason)
                .increment(0);
            }
        }
    }
}
