//! `GET /api/v2/receivers`: the configured receivers, in Alertmanager's shape.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;

#[derive(Debug, Serialize)]
pub struct ReceiverName {
    name: String,
}

pub async fn get_receivers(State(state): State<AppState>) -> Json<Vec<ReceiverName>> {
    Json(
        state
            .settings()
            .receivers
            .iter()
            .map(|receiver| ReceiverName {
                name: receiver.name.clone(),
            })
            .collect(),
    )
}
