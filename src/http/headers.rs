//! The response headers of `http_server_config.headers` in `server.web_config_file`, added to every answer.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

pub async fn add_configured(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(web) = state.settings().server.web.as_ref() {
        let headers = response.headers_mut();
        for (name, value) in &web.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
    response
}
