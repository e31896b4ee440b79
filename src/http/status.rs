//! `GET /api/v2/status`: Alertmanager's status shape (cluster, version, uptime, configuration) for amtool and UIs; the
//! configuration is given in Alertmanager's shape so `amtool config routes` can read the route tree.

use axum::Json;
use axum::extract::State;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use super::AppState;
use crate::config::{GroupBy, Route, Settings, format_duration, shown};

/// A route in Alertmanager's YAML shape (written as JSON, which YAML parsers read), keys left out when unset.
fn route_json(route: &Route) -> Value {
    let mut node = Map::new();
    node.insert("receiver".into(), json!(route.receiver));
    let group_by = match &route.group_by {
        GroupBy::All => json!(["..."]),
        GroupBy::Labels(labels) => json!(labels),
    };
    node.insert("group_by".into(), group_by);
    for (key, value) in [
        ("group_wait", route.group_wait),
        ("group_interval", route.group_interval),
        ("repeat_interval", route.repeat_interval),
    ] {
        node.insert(key.into(), json!(format_duration(value)));
    }
    if !route.matchers.is_empty() {
        node.insert("matchers".into(), json!(route.matchers));
    }
    if !route.match_equal.is_empty() {
        node.insert("match".into(), json!(route.match_equal));
    }
    if !route.match_re.is_empty() {
        node.insert("match_re".into(), json!(route.match_re));
    }
    if route.continue_matching {
        node.insert("continue".into(), json!(true));
    }
    if !route.mute_time_intervals.is_empty() {
        node.insert(
            "mute_time_intervals".into(),
            json!(route.mute_time_intervals),
        );
    }
    if !route.active_time_intervals.is_empty() {
        node.insert(
            "active_time_intervals".into(),
            json!(route.active_time_intervals),
        );
    }
    if !route.routes.is_empty() {
        node.insert(
            "routes".into(),
            Value::Array(route.routes.iter().map(route_json).collect()),
        );
    }
    Value::Object(node)
}

/// The configuration in Alertmanager's shape, for `amtool config show` and `amtool config routes`: the route
/// tree, the receivers by name with their Alertmanager integrations (`webhook_configs`, `email_configs`, secrets
/// shown as `<secret>`; herald's own integrations are left out) and the time intervals by name, as YAML.
fn alertmanager_config(settings: &Settings) -> String {
    let receivers: Vec<Value> = settings.receivers.iter().map(shown::receiver).collect();
    let intervals: Vec<Value> = settings
        .time_intervals
        .iter()
        .map(|interval| json!({ "name": interval.name(), "time_intervals": [] }))
        .collect();
    let mut config = json!({
        "global": { "resolve_timeout": format_duration(settings.ingest.resolve_timeout) },
        "route": route_json(&settings.route),
        "receivers": receivers,
    });
    if !intervals.is_empty() {
        config["time_intervals"] = Value::Array(intervals);
    }
    let mut text = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut text);
    match emitter.dump(&yaml(&config)) {
        Ok(()) => text.strip_prefix("---\n").unwrap_or(&text).to_owned() + "\n",
        // JSON is YAML too.
        Err(_) => serde_json::to_string_pretty(&config).unwrap_or_default(),
    }
}

/// The same value as a YAML document, keys in their order.
fn yaml(value: &Value) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(flag) => Yaml::Boolean(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Yaml::Integer(integer),
            None => Yaml::Real(number.to_string()),
        },
        Value::String(text) => Yaml::String(text.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(yaml).collect()),
        Value::Object(map) => Yaml::Hash(
            map.iter()
                .map(|(key, value)| (Yaml::String(key.clone()), yaml(value)))
                .collect(),
        ),
    }
}

/// herald runs without Alertmanager's gossip cluster; replicas will share work through the store instead.
pub async fn get_status(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "cluster": { "name": "", "status": "disabled", "peers": [] },
        "config": { "original": alertmanager_config(&state.settings()) },
        "uptime": state.started.to_rfc3339_opts(SecondsFormat::Millis, true),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": crate::version::REVISION,
            "version": env!("CARGO_PKG_VERSION"),
        },
    }))
}
