//! Prometheus metrics: the process-wide recorder, the per-route HTTP middleware and `GET /metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use crate::alert::Source;
use crate::store::delivery::DeliveryState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds: 1 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn describe() {
    metrics::describe_counter!(
        "herald_alerts_received_total",
        "Alerts accepted and stored, by source and status."
    );
    metrics::describe_counter!(
        "herald_alerts_invalid_total",
        "Alerts or request bodies rejected as invalid, by source."
    );
    metrics::describe_counter!(
        "herald_http_requests_total",
        "HTTP requests by route, method and status code."
    );
    metrics::describe_histogram!(
        "herald_http_request_duration_seconds",
        "HTTP request latency by route and method."
    );
    metrics::describe_counter!(
        "herald_notifications_total",
        "Deliveries a destination accepted, by receiver and integration."
    );
    metrics::describe_counter!(
        "herald_notifications_failed_total",
        "Deliveries given up on (dead), by receiver, integration and reason: permanent or retries_exhausted."
    );
    metrics::describe_counter!(
        "herald_delivery_attempts_total",
        "Delivery attempts by integration and outcome: delivered, retryable, rate_limited, permanent."
    );
    metrics::describe_histogram!(
        "herald_delivery_latency_seconds",
        "How long each delivery attempt took, by integration."
    );
    metrics::describe_counter!(
        "herald_template_failures_total",
        "Templates that failed to render and fell back to the default, by integration."
    );
    metrics::describe_gauge!(
        "herald_config_last_reload_successful",
        "1 when the last configuration reload succeeded (or none was tried), 0 when it failed."
    );
    metrics::describe_gauge!(
        "herald_config_last_reload_success_timestamp_seconds",
        "When the configuration in force was loaded, in Unix seconds."
    );
    metrics::describe_counter!(
        "herald_rate_limited_total",
        "Attempts a destination answered with a rate limit (429 or its equivalent), by integration."
    );
    metrics::describe_gauge!(
        "herald_destination_down",
        "1 while a destination is down (failed sends in a row; one delivery at a time probes it), else 0, by \
         destination (its kind and a digest, never its URL)."
    );
    metrics::describe_gauge!(
        "herald_aggregation_groups",
        "Aggregation groups the dispatcher holds."
    );
    metrics::describe_counter!(
        "herald_notifications_suppressed_total",
        "Alerts or flushes held back, by reason: silenced, inhibited, muted (time interval), deduped."
    );
    metrics::describe_counter!(
        "herald_store_commits_total",
        "Store transactions committed or attempted."
    );
    metrics::describe_counter!(
        "herald_ingest_refused_total",
        "Ingest requests answered 503 because herald could not keep up (nothing stored; senders retry), by reason: \
         busy (too many ingest requests at once) or backlog (the dispatcher is behind)."
    );
    metrics::describe_counter!(
        "herald_store_syncs_total",
        "Syncs (fsync) that made committed writes durable; each covers every commit made while the one before ran."
    );
    metrics::describe_counter!(
        "herald_store_wal_restarts_total",
        "Times the store's write-ahead log was started over by a checkpoint that briefly held up writes, as steady \
         writes gave it no pause to start over by itself."
    );
    metrics::describe_counter!(
        "herald_store_writes_total",
        "Store write requests; divided by commits, how many writes share a commit."
    );
    metrics::describe_gauge!(
        "herald_http_connections",
        "Open HTTP connections (those served from the reserve over server.max_connections included)."
    );
    metrics::describe_gauge!(
        "herald_http_connections_limit",
        "server.max_connections in force: open connections served as usual."
    );
    metrics::describe_counter!(
        "herald_http_connections_closed_total",
        "HTTP connections herald closed, by reason: header_timeout (no complete request head, TLS handshake \
         included, within server.header_read_timeout), idle_timeout (no request for server.idle_timeout), evicted \
         (idle, closed to make room at server.max_connections), over_limit (accepted past the limit with none idle: \
         answered once and closed), refused (past the limit and its reserve: closed unanswered)."
    );
    metrics::describe_gauge!(
        "herald_build_info",
        "Always 1, labelled with the version, the source revision and the Rust compiler herald was built with."
    );
    metrics::gauge!(
        "herald_build_info",
        "version" => crate::version::VERSION,
        "revision" => crate::version::REVISION,
        "rustversion" => crate::version::RUST_VERSION
    )
    .set(1.0);
    // Every counter with a fixed label set starts at 0, so rate() and dashboards work before its first event;
    // those labelled by receiver and integration start when a configuration is put in force (deliver).
    for name in [
        "herald_store_commits_total",
        "herald_store_syncs_total",
        "herald_store_wal_restarts_total",
        "herald_store_writes_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    metrics::gauge!("herald_http_connections").increment(0.0);
    for closed in super::serve::Closed::ALL {
        metrics::counter!("herald_http_connections_closed_total", "reason" => closed.as_str())
            .absolute(0);
    }
    for reason in ["busy", "backlog"] {
        metrics::counter!("herald_ingest_refused_total", "reason" => reason).absolute(0);
    }
    for reason in ["silenced", "inhibited", "muted", "deduped"] {
        metrics::counter!("herald_notifications_suppressed_total", "reason" => reason).absolute(0);
    }
    process_collector().describe();
    for source in Source::ALL {
        metrics::counter!("herald_alerts_invalid_total", "source" => source.as_str()).absolute(0);
        for status in ["firing", "resolved"] {
            metrics::counter!("herald_alerts_received_total", "source" => source.as_str(), "status" => status)
                .absolute(0);
        }
    }
}

/// The `process_*` metrics (CPU, memory, file descriptors, start time, threads), read at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; herald's metrics may be missing"
                );
            }
            describe();
            handle
        })
        .clone()
}

/// Counts requests and records their latency under the matched route pattern (never the raw path).
pub async fn track(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16().to_string();
    metrics::histogram!("herald_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("herald_http_requests_total", "route" => route, "method" => method, "code" => code)
        .increment(1);
    response
}

/// `GET /metrics`: everything recorded, plus gauges read from this instance's store at scrape time.
pub async fn render(State(state): State<AppState>) -> Response {
    process_collector().collect();
    let mut text = state.metrics.render();
    let now = state.clock.now();
    match state.store.alert_counts(now).await {
        Ok(counts) => {
            text.push_str(
                "# HELP herald_alerts Stored alerts by state.\n# TYPE herald_alerts gauge\n",
            );
            text.push_str(&format!(
                "herald_alerts{{state=\"firing\"}} {}\n",
                counts.firing
            ));
            text.push_str(&format!(
                "herald_alerts{{state=\"resolved\"}} {}\n",
                counts.resolved
            ));
        }
        Err(error) => tracing::warn!(%error, "cannot count alerts for metrics"),
    }
    match state.store.delivery_counts().await {
        Ok(counts) => {
            text.push_str("# HELP herald_deliveries Stored deliveries by state.\n# TYPE herald_deliveries gauge\n");
            for delivery_state in DeliveryState::ALL {
                let count = counts
                    .iter()
                    .find(|(counted, _)| *counted == delivery_state)
                    .map_or(0, |(_, count)| *count);
                text.push_str(&format!(
                    "herald_deliveries{{state=\"{}\"}} {count}\n",
                    delivery_state.as_str()
                ));
            }
        }
        Err(error) => tracing::warn!(%error, "cannot count deliveries for metrics"),
    }
    match state.store.oldest_open_delivery().await {
        Ok(oldest) => {
            let age = oldest.map_or(0.0, |queued| {
                (now - queued).num_milliseconds().max(0) as f64 / 1000.0
            });
            text.push_str(
                "# HELP herald_delivery_oldest_open_seconds How long the oldest pending or in-flight delivery has \
                 waited (0 when none).\n# TYPE herald_delivery_oldest_open_seconds gauge\n",
            );
            text.push_str(&format!("herald_delivery_oldest_open_seconds {age}\n"));
        }
        Err(error) => tracing::warn!(%error, "cannot read the oldest open delivery for metrics"),
    }
    text.push_str(&format!(
        "# HELP herald_dispatch_backlog Alert changes stored and waiting for the dispatcher (ingest answers 503 \
         once {} wait).\n# TYPE herald_dispatch_backlog gauge\nherald_dispatch_backlog {}\n",
        crate::dispatch::BACKLOG_ALERTS,
        state.dispatch.backlog()
    ));
    text.push_str("# HELP herald_silences Silences by state.\n# TYPE herald_silences gauge\n");
    for (silence_state, count) in state.silences.counts(now) {
        text.push_str(&format!(
            "herald_silences{{state=\"{}\"}} {count}\n",
            silence_state.as_str()
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
