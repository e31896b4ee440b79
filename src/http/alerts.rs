//! `GET /api/v2/alerts`: stored alerts in Alertmanager's v2 `gettableAlert` shape, so amtool and UIs can read them.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use crate::alert::{Annotations, Fingerprint, Labels, Status};
use crate::inhibit::Inhibitor;
use crate::matcher::{MatchType, Matcher, parse_matcher};
use crate::store::{AlertQuery, StoredAlert};

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, Serialize)]
struct ReceiverRef {
    name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatus {
    state: &'static str,
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
    muted_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    labels: Labels,
    annotations: Annotations,
    starts_at: String,
    ends_at: String,
    updated_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    fingerprint: String,
    receivers: Vec<ReceiverRef>,
    status: AlertStatus,
}

/// Why an alert is held back, for its `status`.
struct Suppression {
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
}

/// An alert in the v2 API's shape. A firing alert without an end (one a webhook announced, firing until its resolve
/// arrives) shows an end `open_end` ahead, as Alertmanager shows every firing alert with a future `endsAt`.
fn gettable(
    stored: StoredAlert,
    receivers: Vec<ReceiverRef>,
    held: Suppression,
    now: DateTime<Utc>,
    open_end: chrono::Duration,
) -> GettableAlert {
    let state = match stored.alert.status_at(now) {
        Status::Resolved => "resolved",
        Status::Firing if held.silenced_by.is_empty() && held.inhibited_by.is_empty() => "active",
        Status::Firing => "suppressed",
    };
    GettableAlert {
        fingerprint: stored.fingerprint.to_string(),
        starts_at: timestamp(stored.alert.starts_at),
        ends_at: timestamp(stored.alert.ends_at.unwrap_or(now + open_end)),
        updated_at: timestamp(stored.updated_at),
        generator_url: stored.alert.generator_url,
        labels: stored.alert.labels,
        annotations: stored.alert.annotations,
        receivers,
        status: AlertStatus {
            state,
            silenced_by: held.silenced_by,
            inhibited_by: held.inhibited_by,
            muted_by: vec![],
        },
    }
}

fn flag(value: &str, name: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "query parameter {name}: expected true or false, got {other:?}"
        ))),
    }
}

/// What a listing asks for.
struct Filter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    include_resolved: bool,
    matchers: Vec<Matcher>,
    receiver: Option<Matcher>,
}

fn parse_query(params: &[(String, String)]) -> Result<Filter, ApiError> {
    let mut filter = Filter {
        active: true,
        silenced: true,
        inhibited: true,
        include_resolved: false,
        matchers: Vec::new(),
        receiver: None,
    };
    for (name, value) in params {
        match name.as_str() {
            "active" => filter.active = flag(value, name)?,
            "resolved" => filter.include_resolved = flag(value, name)?,
            // Nothing is silenced, inhibited or unprocessed yet, so these flags select nothing extra.
            "silenced" => filter.silenced = flag(value, name)?,
            "inhibited" => filter.inhibited = flag(value, name)?,
            // Every stored alert has been processed, so this flag selects nothing extra.
            "unprocessed" => {
                flag(value, name)?;
            }
            "filter" => filter.matchers.push(
                parse_matcher(value)
                    .map_err(|error| ApiError::BadRequest(format!("filter {value:?}: {error}")))?,
            ),
            "receiver" => {
                let regex = Matcher::new("receiver", MatchType::Regex, value.as_str()).map_err(
                    |error| ApiError::BadRequest(format!("receiver {value:?}: {error}")),
                )?;
                filter.receiver = Some(regex);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}"
                )));
            }
        }
    }
    Ok(filter)
}

/// Alertmanager's query parameters: `active`, `silenced`, `inhibited`, `unprocessed` (default true), `filter`
/// (matchers, all must match), `receiver` (an anchored regex one of the alert's receivers must match); and herald's
/// `resolved` (default false) to include alerts that ended but are still retained.
pub async fn get_alerts(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<GettableAlert>>, ApiError> {
    let filter = parse_query(&params)?;
    Ok(Json(list(&state, &filter).await?))
}

/// A group of `GET /api/v2/alerts/groups`.
#[derive(Debug, Serialize)]
pub struct AlertGroup {
    labels: Labels,
    receiver: ReceiverRef,
    alerts: Vec<GettableAlert>,
}

/// `GET /api/v2/alerts/groups`: the listed alerts grouped as the route tree groups them (one entry per route and
/// group labels), with the same query parameters as `GET /api/v2/alerts`.
pub async fn get_alert_groups(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<AlertGroup>>, ApiError> {
    let filter = parse_query(&params)?;
    let alerts = list(&state, &filter).await?;
    let mut groups: std::collections::BTreeMap<(String, String), AlertGroup> =
        std::collections::BTreeMap::new();
    for alert in alerts {
        for route in state.routes().matching(&alert.labels) {
            if let Some(regex) = &filter.receiver
                && !regex.matches(&route.receiver)
            {
                continue;
            }
            let labels = route.group_labels(&alert.labels);
            let group = groups
                .entry((route.group_key(&labels), route.receiver.clone()))
                .or_insert_with(|| AlertGroup {
                    labels,
                    receiver: ReceiverRef {
                        name: route.receiver.clone(),
                    },
                    alerts: Vec::new(),
                });
            group.alerts.push(alert.clone());
        }
    }
    Ok(Json(groups.into_values().collect()))
}

/// The stored alerts a query selects, in Alertmanager's v2 shape.
async fn list(state: &AppState, filter: &Filter) -> Result<Vec<GettableAlert>, ApiError> {
    let now = state.clock.now();
    let open_end = chrono::Duration::from_std(state.settings().ingest.resolve_timeout)
        .unwrap_or(chrono::Duration::MAX);
    let stored = state
        .store
        .alerts(AlertQuery {
            now,
            include_resolved: filter.include_resolved,
        })
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    let inhibitor = Inhibitor::new(state.settings().inhibit_rules.clone());
    let routes = state.routes();
    let firing: Vec<(Fingerprint, Labels)> = stored
        .iter()
        .filter(|stored| stored.alert.status_at(now) == Status::Firing)
        .map(|stored| (stored.fingerprint, stored.alert.labels.clone()))
        .collect();
    let mut alerts = Vec::new();
    for stored in stored {
        let labels = &stored.alert.labels;
        let firing_now = stored.alert.status_at(now) == Status::Firing;
        if !filter
            .matchers
            .iter()
            .all(|matcher| matcher.matches(labels.get(&matcher.name).map_or("", String::as_str)))
        {
            continue;
        }
        let held = if firing_now {
            let sources = firing
                .iter()
                .map(|(fingerprint, labels)| (*fingerprint, labels));
            Suppression {
                silenced_by: state.silences.muted_by(labels, now),
                inhibited_by: inhibitor
                    .inhibited_by(labels, sources)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            }
        } else {
            Suppression {
                silenced_by: vec![],
                inhibited_by: vec![],
            }
        };
        let unsuppressed = held.silenced_by.is_empty() && held.inhibited_by.is_empty();
        if (firing_now && unsuppressed && !filter.active)
            || (!held.silenced_by.is_empty() && !filter.silenced)
            || (!held.inhibited_by.is_empty() && !filter.inhibited)
        {
            continue;
        }
        let receivers: Vec<ReceiverRef> = routes
            .receivers(labels)
            .into_iter()
            .map(|name| ReceiverRef {
                name: name.to_string(),
            })
            .collect();
        if let Some(regex) = &filter.receiver
            && !receivers
                .iter()
                .any(|receiver| regex.matches(&receiver.name))
        {
            continue;
        }
        alerts.push(gettable(stored, receivers, held, now, open_end));
    }
    Ok(alerts)
}
