//! `GET /api/v2/status`: Alertmanager's status shape (cluster, version, uptime, configuration) for amtool and UIs.

use axum::Json;
use axum::extract::State;
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::AppState;
use crate::config::{Loaded, summary};

/// herald runs without Alertmanager's gossip cluster; replicas will share work through the store instead. The
/// configuration is given as the effective settings' summary (as `herald check-config` prints it), not as YAML.
pub async fn get_status(State(state): State<AppState>) -> Json<Value> {
    let loaded = Loaded {
        settings: (*state.settings()).clone(),
        warnings: Vec::new(),
        env_overrides: Vec::new(),
    };
    Json(json!({
        "cluster": { "name": "", "status": "disabled", "peers": [] },
        "config": { "original": summary(&loaded) },
        "uptime": state.started.to_rfc3339_opts(SecondsFormat::Millis, true),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
    }))
}
