//! `ApiError`: every failure an HTTP handler answers with; 4xx bodies are safe to show, 5xx are also logged.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ingest::{BodyError, Rejection};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadBody(BodyError),
    #[error("{} of {} alerts rejected", rejected.len(), rejected.len() + stored)]
    Rejected {
        stored: usize,
        rejected: Vec<Rejection>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    /// The request conflicts with the current state of what it names (expiring an expired silence).
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {limit} bytes (server.max_body_bytes)")]
    TooLarge { limit: usize },
    #[error("unsupported content type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// herald cannot keep up: nothing was stored; the sender should try again after `retry_after` seconds.
    #[error("{message}")]
    Overloaded { message: String, retry_after: u64 },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, body) = match self {
            ApiError::BadBody(error) => {
                let mut body = json!({ "error": message });
                for (key, value) in [
                    ("field", error.field.map(serde_json::Value::from)),
                    ("line", error.line.map(serde_json::Value::from)),
                    ("column", error.column.map(serde_json::Value::from)),
                ] {
                    if let Some(value) = value {
                        body[key] = value;
                    }
                }
                (StatusCode::BAD_REQUEST, body)
            }
            ApiError::Rejected { stored, rejected } => {
                let summary = if stored == 0 {
                    format!("{message}; nothing was stored")
                } else {
                    format!("{message}; the other {stored} were stored")
                };
                let details: Vec<String> = rejected.iter().map(ToString::to_string).collect();
                let shown = details
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                let more = details.len().saturating_sub(3);
                let summary = match more {
                    0 => format!("{summary}: {shown}"),
                    more => format!("{summary}: {shown}; and {more} more"),
                };
                (
                    StatusCode::BAD_REQUEST,
                    json!({ "error": summary, "stored": stored, "rejected": rejected, "details": details }),
                )
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, json!({ "error": message })),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, json!({ "error": message })),
            ApiError::Unauthorized(_) => {
                let body = Json(json!({ "error": message }));
                return (
                    StatusCode::UNAUTHORIZED,
                    [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                    body,
                )
                    .into_response();
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, json!({ "error": message })),
            ApiError::TooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, json!({ "error": message }))
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({ "error": message }),
            ),
            ApiError::Unavailable(_) => {
                tracing::error!(error = %message, "request failed: store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": message }))
            }
            ApiError::Overloaded { retry_after, .. } => {
                tracing::warn!(error = %message, "request refused: overloaded");
                let body = Json(json!({ "error": message }));
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, retry_after.to_string())],
                    body,
                )
                    .into_response();
            }
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overload_is_a_503_that_says_when_to_try_again() {
        let response = ApiError::Overloaded {
            message: "behind".into(),
            retry_after: 1,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            json!({"error": "behind"})
        );
    }
}
