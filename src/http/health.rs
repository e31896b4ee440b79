//! `GET /-/healthy` (the process serves), `GET /-/ready` (the store is open, migrated and taking writes) and
//! `POST /-/reload` (read the configuration file again: 200, or 500 naming what is wrong while the old one stays).

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

/// `POST /-/reload`, as Alertmanager's: 200 when the configuration was read again and put in force, 500 with the
/// reason when it was not (the configuration in force stays).
pub async fn reload(State(state): State<AppState>) -> (StatusCode, String) {
    match state.reloader.reload().await {
        Ok(warnings) if warnings.is_empty() => {
            (StatusCode::OK, "configuration reloaded\n".to_string())
        }
        Ok(warnings) => (
            StatusCode::OK,
            format!(
                "configuration reloaded, with warnings:\n{}\n",
                warnings.join("\n")
            ),
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {error}\n"),
        ),
    }
}
