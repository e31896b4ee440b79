//! Ingest handlers: check the request, run the source's parser, store, and acknowledge only after the commit.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use chrono::{DateTime, Utc};

use super::AppState;
use super::error::ApiError;
use crate::alert::Source;
use crate::ingest::signature::{self, SIGNATURE_HEADERS, Signed};
use crate::ingest::{self, BodyError, Limits, Parsed};

/// How long an ingest request waits for room in the dispatcher's backlog before it is answered 503.
const HAND_OVER_WAIT: Duration = Duration::from_secs(2);

/// The `Retry-After` of a 503 answered because herald is behind (Prometheus and Alertmanager retry on 5xx).
const RETRY_AFTER_SECONDS: u64 = 1;

type Parser = fn(&[u8], DateTime<Utc>, &Limits) -> Result<Parsed, BodyError>;

/// Accepts `application/json` (with parameters such as charset) and `application/*+json`.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(value))
    }
}

/// A JSON request's body: 415 unless the content type is JSON, 413 over `server.max_body_bytes`.
pub(super) fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    check_content_type(headers)?;
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge {
                limit: state.settings().server.max_body_bytes,
            }
        } else {
            ApiError::BadRequest(format!("cannot read request body: {rejection}"))
        }
    })
}

/// With `ingest.grafana_hmac_secret` set, only requests signed with it are taken (401 otherwise).
fn check_grafana_signature(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let settings = state.settings();
    let Some(config) = &settings.ingest.grafana_signature else {
        return Ok(());
    };
    let value = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let signed = Signed {
        signature: SIGNATURE_HEADERS.iter().find_map(|name| value(name)),
        timestamp: config.timestamp_header.as_deref().and_then(value),
    };
    signature::verify(
        config.secret.expose().as_bytes(),
        config.timestamp_header.as_deref(),
        signed,
        body,
        now,
    )
    .map_err(|error| {
        tracing::warn!(%error, "Grafana request refused");
        ApiError::Unauthorized(error.to_string())
    })
}

async fn ingest(
    state: &AppState,
    source: Source,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    parse: Parser,
) -> Result<StatusCode, ApiError> {
    let invalid = |count: usize| {
        metrics::counter!("herald_alerts_invalid_total", "source" => source.as_str())
            .increment(count as u64)
    };
    let body = json_body(state, headers, body).inspect_err(|_| invalid(1))?;
    let now = state.clock.now();
    if source == Source::Grafana {
        check_grafana_signature(state, headers, &body, now).inspect_err(|_| invalid(1))?;
    }
    let Parsed { alerts, rejected } = parse(&body, now, &state.limits()).map_err(|error| {
        invalid(1);
        ApiError::BadBody(error)
    })?;
    invalid(rejected.len());
    let stored = alerts.len();
    if stored > 0 {
        // Room for the changes is reserved before the alerts are stored: what is acknowledged always reaches the
        // dispatcher, and a dispatcher that is behind slows senders down instead of queueing without bound.
        let reservation = state
            .dispatch
            .reserve(stored, HAND_OVER_WAIT)
            .await
            .map_err(|busy| {
                metrics::counter!("herald_ingest_refused_total", "reason" => "backlog")
                    .increment(1);
                ApiError::Overloaded {
                    message: format!("{busy}; nothing was stored, send the alerts again shortly"),
                    retry_after: RETRY_AFTER_SECONDS,
                }
            })?;
        let statuses: Vec<_> = alerts.iter().map(|alert| alert.status_at(now)).collect();
        // The dispatcher takes the changes as soon as they are committed; the answer waits until they are durable.
        // The alerts are counted at the commit, before the dispatcher sees them, so the count never lags behind a
        // notification they caused.
        state
            .store
            .upsert_alerts_then(
                alerts,
                now,
                Box::new(move |changes| {
                    for status in statuses {
                        metrics::counter!("herald_alerts_received_total",
                            "source" => source.as_str(), "status" => status.as_str())
                        .increment(1);
                    }
                    reservation.submit(changes);
                }),
            )
            .await
            .map_err(|error| {
                ApiError::Unavailable(format!(
                    "{error}; the alerts were not stored, send them again"
                ))
            })?;
    }
    if rejected.is_empty() {
        Ok(StatusCode::OK)
    } else {
        for rejection in &rejected {
            tracing::debug!(source = source.as_str(), %rejection, "alert rejected");
        }
        Err(ApiError::Rejected { stored, rejected })
    }
}

/// Ingest requests handled at once; more are answered 503 before their bodies are read, so a flood of senders
/// cannot make herald hold more request bodies than this.
pub const MAX_IN_FLIGHT: usize = 256;

/// Lets an ingest request in only while fewer than `MAX_IN_FLIGHT` are being handled.
async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_admitted) = Arc::clone(&state.ingest_gate).try_acquire_owned() else {
        metrics::counter!("herald_ingest_refused_total", "reason" => "busy").increment(1);
        return ApiError::Overloaded {
            message: format!(
                "herald is handling {MAX_IN_FLIGHT} ingest requests already; nothing was stored, send the alerts \
                 again shortly"
            ),
            retry_after: RETRY_AFTER_SECONDS,
        }
        .into_response();
    };
    next.run(request).await
}

/// A handler for one source: `POST /api/v2/alerts`, `POST /webhook/alertmanager` or `POST|PUT /webhook/grafana`.
pub fn handler(source: Source, method: MethodFilter, state: &AppState) -> MethodRouter<AppState> {
    let parse: Parser = match source {
        Source::Prometheus => ingest::prometheus::parse,
        Source::Alertmanager => ingest::alertmanager::parse,
        Source::Grafana => ingest::grafana::parse,
    };
    let handle = move |State(state): State<AppState>,
                       headers: HeaderMap,
                       body: Result<Bytes, BytesRejection>| async move {
        ingest(&state, source, &headers, body, parse).await
    };
    on(method, handle).layer(middleware::from_fn_with_state(state.clone(), gate))
}
