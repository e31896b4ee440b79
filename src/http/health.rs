//! `GET /-/healthy` (the process serves) and `GET /-/ready` (the store is open, migrated and taking writes).

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use crate::store::Health;

pub async fn healthy() -> &'static str {
    "OK"
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    match state.store.health() {
        Health::Ready => (StatusCode::OK, "OK".to_string()),
        Health::NotReady(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}
