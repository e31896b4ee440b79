//! The admin guard: when `server.admin_tokens` is set, the operator API (`/api/herald/...`) and silence writes
//! (`POST /api/v2/silences`, `DELETE /api/v2/silence/{id}`) and `POST /-/reload` need `Authorization: Bearer <token>`
//! with one of them.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Whether a request needs an admin token.
fn guarded(method: &Method, path: &str) -> bool {
    path.starts_with("/api/herald/")
        || path == "/-/reload"
        || (path.starts_with("/api/v2/silence")
            && (method == Method::POST || method == Method::DELETE))
}

/// Whether `presented` equals one of `tokens`, comparing in constant time.
fn accepted(tokens: &[crate::config::Secret], presented: &str) -> bool {
    tokens.iter().fold(false, |found, token| {
        found | bool::from(token.expose().as_bytes().ct_eq(presented.as_bytes()))
    })
}

pub async fn admin_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let settings = state.settings();
    let tokens = &settings.server.admin_tokens;
    if tokens.is_empty() || !guarded(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if accepted(tokens, token) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("the bearer token is not one of server.admin_tokens".into())
            .into_response(),
        None => ApiError::Unauthorized(
            "this endpoint needs an admin token: send Authorization: Bearer <token> (server.admin_tokens)".into(),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn operator_api_and_silence_writes_are_guarded() {
        assert!(guarded(&Method::GET, "/api/herald/v1/deliveries"));
        assert!(guarded(&Method::POST, "/api/v2/silences"));
        assert!(guarded(&Method::DELETE, "/api/v2/silence/abc"));
        assert!(guarded(&Method::POST, "/-/reload"));
        assert!(!guarded(&Method::GET, "/api/v2/silences"));
        assert!(!guarded(&Method::POST, "/api/v2/alerts"));
        assert!(!guarded(&Method::GET, "/metrics"));
    }

    #[test]
    fn tokens_match_exactly() {
        let tokens = [Secret::new("alpha"), Secret::new("beta")];
        assert!(accepted(&tokens, "beta"));
        assert!(!accepted(&tokens, "bet"));
        assert!(!accepted(&tokens, "betaa"));
        assert!(!accepted(&tokens, ""));
    }
}
