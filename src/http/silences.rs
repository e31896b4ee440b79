//! Alertmanager's v2 silence API, so amtool and UIs work unchanged: `GET|POST /api/v2/silences`,
//! `GET|DELETE /api/v2/silence/{id}`.
//!
//! Status codes: 200 done; 400 invalid body or query (JSON `{"error": ...}`, naming the field when the JSON is the
//! problem); 404 unknown silence id (also when posting with an unknown `id`); 409 expiring an already expired
//! silence; 413 / 415 as for alerts; 503 when the store cannot commit (nothing changed).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::ingest::json_body;
use crate::ingest::decode;
use crate::matcher::{Matcher, Matchers, parse_matcher};
use crate::route::silence::{PostableSilence, Silence, SilenceError, api_order};
use axum::response::{IntoResponse, Response};

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Serialize)]
pub struct SilenceStatus {
    state: &'static str,
}

/// The v2 API's `gettableSilence`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    id: String,
    status: SilenceStatus,
    updated_at: String,
    matchers: Matchers,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

fn gettable(silence: Silence, now: DateTime<Utc>) -> GettableSilence {
    GettableSilence {
        status: SilenceStatus {
            state: silence.state(now).as_str(),
        },
        updated_at: timestamp(silence.updated_at),
        starts_at: timestamp(silence.starts_at),
        ends_at: timestamp(silence.ends_at),
        id: silence.id,
        matchers: silence.matchers,
        created_by: silence.created_by,
        comment: silence.comment,
    }
}

/// The v2 API's answer to a post.
#[derive(Debug, Serialize)]
pub struct PostedSilence {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

fn api_error(error: SilenceError) -> ApiError {
    match error {
        SilenceError::Invalid(message) => ApiError::BadRequest(message),
        error @ SilenceError::NotFound(_) => ApiError::NotFound(error.to_string()),
        error @ SilenceError::AlreadyExpired(_) => ApiError::Conflict(error.to_string()),
        SilenceError::Store(error) => {
            ApiError::Unavailable(format!("{error}; the silence was not changed, try again"))
        }
    }
}

/// `GET /api/v2/silences`: every silence (expired ones until retention deletes them), in Alertmanager's order.
/// Repeated `filter` parameters (one matcher each, such as `alertname="Down"`) keep the silences that have a
/// matcher equal to each filter (same name, operator and value), as Alertmanager does.
pub async fn get_silences(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<GettableSilence>>, ApiError> {
    let mut filters: Vec<Matcher> = Vec::new();
    for (name, value) in &params {
        match name.as_str() {
            "filter" => filters.push(
                parse_matcher(value)
                    .map_err(|error| ApiError::BadRequest(format!("filter {value:?}: {error}")))?,
            ),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}"
                )));
            }
        }
    }
    let now = state.clock.now();
    let snapshot = state.silences.snapshot();
    let mut listed: Vec<&Silence> = snapshot
        .list()
        .filter(|silence| silence.has_matchers(&filters))
        .collect();
    listed.sort_by(|a, b| api_order(a, b, now));
    Ok(Json(
        listed
            .into_iter()
            .map(|silence| gettable(silence.clone(), now))
            .collect(),
    ))
}

/// An error of `POST /api/v2/silences`. Alertmanager's API answers 400 there with a bare JSON string, and amtool
/// shows that string to the operator, so 400s keep that shape; other errors are herald's usual ones.
pub struct PostSilenceError(ApiError);

impl From<ApiError> for PostSilenceError {
    fn from(error: ApiError) -> Self {
        PostSilenceError(error)
    }
}

impl IntoResponse for PostSilenceError {
    fn into_response(self) -> Response {
        match self.0 {
            error @ (ApiError::BadRequest(_) | ApiError::BadBody(_)) => {
                (StatusCode::BAD_REQUEST, Json(error.to_string())).into_response()
            }
            error => error.into_response(),
        }
    }
}

/// `POST /api/v2/silences`: creates a silence, or updates / replaces the one whose `id` is given.
pub async fn post_silences(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PostedSilence>, PostSilenceError> {
    let body = json_body(&state, &headers, body)?;
    let posted: PostableSilence = decode(&body).map_err(ApiError::BadBody)?;
    let id = state
        .silences
        .upsert(posted, state.clock.now())
        .await
        .map_err(api_error)?;
    Ok(Json(PostedSilence { silence_id: id }))
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GettableSilence>, ApiError> {
    let silence = state
        .silences
        .get(&id)
        .ok_or_else(|| api_error(SilenceError::NotFound(id)))?;
    Ok(Json(gettable(silence, state.clock.now())))
}

/// `DELETE /api/v2/silence/{id}`: expires the silence now; 200 with an empty body, as Alertmanager answers.
pub async fn delete_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .silences
        .expire(&id, state.clock.now())
        .await
        .map_err(api_error)?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::route::silence::SilenceState;

    #[test]
    fn gettable_has_the_api_shape() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let silence = Silence {
            id: "a4c1e0c4-6f6e-4d0b-9a53-2f1f3c1c2b1a".into(),
            matchers: Matchers(vec![parse_matcher("alertname=\"Down\"").unwrap()]),
            starts_at: at("2026-11-21T12:00:00Z"),
            ends_at: at("2026-11-21T14:00:00.5Z"),
            created_by: "ops".into(),
            comment: "maintenance".into(),
            updated_at: at("2026-11-21T11:59:00.123Z"),
        };
        let now = at("2026-11-21T13:00:00Z");
        assert_eq!(silence.state(now), SilenceState::Active);
        assert_eq!(
            serde_json::to_value(gettable(silence, now)).unwrap(),
            serde_json::json!({
                "id": "a4c1e0c4-6f6e-4d0b-9a53-2f1f3c1c2b1a",
                "status": {"state": "active"},
                "updatedAt": "2026-11-21T11:59:00.123Z",
                "matchers": [{"name": "alertname", "value": "Down", "isRegex": false, "isEqual": true}],
                "startsAt": "2026-11-21T12:00:00.000Z",
                "endsAt": "2026-11-21T14:00:00.500Z",
                "createdBy": "ops",
                "comment": "maintenance",
            })
        );
    }
}
