//! The operator API for the outbox: `GET /api/herald/v1/deliveries?state=&receiver=&limit=&before=`,
//! `GET /api/herald/v1/deliveries/{id}` (with its notification and attempts), `POST .../deliveries/{id}/retry`,
//! `POST .../deliveries/retry?state=dead&receiver=` and `DELETE .../deliveries/{id}`.
//!
//! Status codes: 200 done; 400 bad query; 401 without an admin token (when `server.admin_tokens` is set); 404
//! unknown delivery; 409 a delivery in flight (retry or discard it when it settles); 503 store unavailable.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::store::StoreError;
use crate::store::delivery::{
    AttemptRecord, DeliveryQuery, DeliveryRecord, DeliveryState, Discard, RetrySelection,
};

/// Deliveries listed when `limit` is not given, and the most one page may hold.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

fn unavailable(error: StoreError) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

fn state_param(value: Option<&str>) -> Result<Option<DeliveryState>, ApiError> {
    value
        .filter(|value| !value.is_empty())
        .map(|value| value.parse().map_err(ApiError::BadRequest))
        .transpose()
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    state: Option<String>,
    receiver: Option<String>,
    limit: Option<usize>,
    before: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct DeliveryList {
    deliveries: Vec<DeliveryRecord>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let query = DeliveryQuery {
        state: state_param(params.state.as_deref())?,
        receiver: params.receiver.filter(|receiver| !receiver.is_empty()),
        before: params.before,
        limit,
    };
    let deliveries = state.store.deliveries(query).await.map_err(unavailable)?;
    let next_before = (deliveries.len() == limit)
        .then(|| deliveries.last().map(|delivery| delivery.id))
        .flatten();
    Ok(Json(DeliveryList {
        deliveries,
        next_before,
    }))
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    delivery: DeliveryRecord,
    /// The notification as queued (JSON).
    notification: Value,
    attempts: Vec<AttemptRecord>,
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<DeliveryView>, ApiError> {
    let detail = state
        .store
        .delivery(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery with id {id}")))?;
    let notification =
        serde_json::from_str(&detail.payload).unwrap_or(Value::String(detail.payload));
    Ok(Json(DeliveryView {
        delivery: detail.delivery,
        notification,
        attempts: detail.attempts,
    }))
}

pub async fn retry_one(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let current = state
        .store
        .delivery(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery with id {id}")))?;
    if current.delivery.state == DeliveryState::InFlight {
        return Err(ApiError::Conflict(format!(
            "delivery {id} is being sent; retry it when it settles"
        )));
    }
    let retried = state
        .store
        .retry_deliveries(RetrySelection::One(id), state.clock.now())
        .await
        .map_err(unavailable)?;
    if retried.is_empty() {
        return Err(ApiError::Conflict(format!(
            "delivery {id} is being sent; retry it when it settles"
        )));
    }
    tracing::info!(delivery = id, "delivery queued again by an operator");
    state.deliveries.queued(retried.clone());
    Ok(Json(
        json!({ "retried": retried.len(), "deliveries": retried }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct RetryParams {
    state: Option<String>,
    receiver: Option<String>,
}

pub async fn retry_many(
    State(state): State<AppState>,
    Query(params): Query<RetryParams>,
) -> Result<Json<Value>, ApiError> {
    let selected = state_param(params.state.as_deref())?.unwrap_or(DeliveryState::Dead);
    if !matches!(selected, DeliveryState::Dead | DeliveryState::Pending) {
        return Err(ApiError::BadRequest(format!(
            "state must be dead or pending to retry, not {selected}"
        )));
    }
    let receiver = params.receiver.filter(|receiver| !receiver.is_empty());
    let retried = state
        .store
        .retry_deliveries(
            RetrySelection::All {
                state: selected,
                receiver: receiver.clone(),
            },
            state.clock.now(),
        )
        .await
        .map_err(unavailable)?;
    let count = retried.len();
    tracing::info!(count, state = %selected, receiver = receiver.as_deref().unwrap_or("*"),
        "deliveries queued again by an operator");
    state.deliveries.queued(retried);
    Ok(Json(json!({ "retried": count })))
}

pub async fn discard(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    match state
        .store
        .discard_delivery(id)
        .await
        .map_err(unavailable)?
    {
        Discard::Deleted => {
            tracing::info!(delivery = id, "delivery discarded by an operator");
            state.deliveries.forget(id);
            Ok(Json(json!({ "discarded": id })))
        }
        Discard::NotFound => Err(ApiError::NotFound(format!("no delivery with id {id}"))),
        Discard::InFlight => Err(ApiError::Conflict(format!(
            "delivery {id} is being sent; discard it when it settles"
        ))),
    }
}
