//! Driving herald through an alert group's life on a manual clock, for the paging and chat integrations' tests:
//! settings from a receiver's YAML, alerts posted through the v2 API, deliveries run to their end by moving the
//! clock to each retry (and past the destination's rate limit), and group flushes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::clock::{Clock, ManualClock};
use herald::config::{Settings, StorageBackend};
use serde_json::Value;

use crate::harness::Herald;

/// An `endsAt` far enough ahead that the alert fires for as long as any test runs.
pub const FOREVER: &str = "2100-01-01T00:00:00Z";

/// Settings from YAML: one receiver `team` with the integrations `integrations` (indented as under a receiver),
/// grouping by alertname, notifying at once, then every minute; repeats after an hour; the store in `db`.
pub fn settings(db: &Path, integrations: &str) -> Settings {
    let yaml = format!(
        "server:\n  external_url: https://herald.example\n\
         route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1m\n  \
         repeat_interval: 1h\n\
         receivers:\n  - name: team\n{integrations}"
    );
    let mut settings = herald::config::load_str(&yaml, "test.yaml")
        .unwrap_or_else(|errors| panic!("{errors}"))
        .settings;
    settings.storage.backend = StorageBackend::Sqlite {
        path: db.to_path_buf(),
    };
    settings
}

/// herald with `integrations` (see [`settings`]), its store in `dir`, on `clock`.
pub async fn start(dir: &Path, integrations: &str, clock: &Arc<ManualClock>) -> Herald {
    Herald::start_with_clock(settings(&dir.join("h.db"), integrations), clock.clone()).await
}

/// Alert `name` on `instance`, critical, ending at `ends_at`, with a summary, a runbook and a source.
pub fn alert(name: &str, instance: &str, ends_at: &str) -> String {
    format!(
        r#"{{"labels":{{"alertname":"{name}","instance":"{instance}","severity":"critical"}},
        "annotations":{{"summary":"{instance} disk full","runbook_url":"https://runbooks.example/disk"}},
        "generatorURL":"http://prometheus.example/graph?g0.expr=disk","endsAt":"{ends_at}"}}"#
    )
}

pub async fn post_alerts(herald: &Herald, alerts: &[String]) {
    let response = herald
        .post_json("/api/v2/alerts", format!("[{}]", alerts.join(",")))
        .await;
    assert_eq!(response.status(), 200);
}

/// Alert `name` on each of `instances`, resolved now.
pub async fn resolve(herald: &Herald, clock: &ManualClock, name: &str, instances: &[&str]) {
    let now = clock.now().to_rfc3339();
    let alerts: Vec<String> = instances.iter().map(|i| alert(name, i, &now)).collect();
    post_alerts(herald, &alerts).await;
}

pub fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

pub fn attempts(detail: &Value) -> u64 {
    detail["delivery"]["attempts"].as_u64().unwrap()
}

pub fn state(detail: &Value) -> &str {
    detail["delivery"]["state"].as_str().unwrap()
}

/// The outcome of each attempt of a delivery, in order.
pub fn outcomes(detail: &Value) -> Vec<String> {
    detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// The id of the `n`th delivery queued (1-based), waiting (up to a generous bound) for it.
pub async fn nth_delivery(herald: &Herald, n: usize) -> i64 {
    for _ in 0..1200 {
        let deliveries = herald.deliveries("?limit=1000").await;
        if deliveries.len() >= n {
            return deliveries[deliveries.len() - n]["id"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("delivery {n} was never queued");
}

/// Lets delivery `id` run to its end: after each failed attempt, moves the clock to when herald said it would try
/// again (or, if later, `gap` after the last attempt, when the destination's rate limit allows the next send);
/// returns the settled delivery.
pub async fn run_to_end(herald: &Herald, clock: &ManualClock, id: i64, gap: Duration) -> Value {
    let mut tried = 0;
    loop {
        let detail = herald
            .wait_for_delivery(id, "attempted or settled", |d| {
                matches!(state(d), "delivered" | "dead")
                    || (state(d) == "pending" && attempts(d) > tried)
            })
            .await;
        if matches!(state(&detail), "delivered" | "dead") {
            return detail;
        }
        tried = attempts(&detail);
        let next = time(&detail["delivery"]["next_attempt_at"]);
        let last = detail["attempts"].as_array().unwrap().last().unwrap();
        let allowed = time(&last["started_at"]) + chrono::Duration::from_std(gap).unwrap();
        clock.set(next.max(allowed).max(clock.now()));
    }
}

/// Moves the clock on by `gap` (so the destination's rate limit lets the next send go), posts `alerts` and runs the
/// `n`th delivery (the one they cause) to its end.
pub async fn deliver(
    herald: &Herald,
    clock: &ManualClock,
    alerts: &[String],
    n: usize,
    gap: Duration,
) -> Value {
    clock.advance(gap);
    post_alerts(herald, alerts).await;
    let id = nth_delivery(herald, n).await;
    run_to_end(herald, clock, id, gap).await
}

/// Moves the clock past the group's next flush (group_interval 1m) and runs the `n`th delivery to its end.
pub async fn flush(herald: &Herald, clock: &ManualClock, n: usize, gap: Duration) -> Value {
    clock.advance(Duration::from_secs(61));
    let id = nth_delivery(herald, n).await;
    run_to_end(herald, clock, id, gap).await
}

/// Moves the clock on by `gap` (past the destination's rate limit) and replays every dead delivery of receiver
/// `team` (`POST /api/herald/v1/deliveries/retry`); returns how many.
pub async fn replay_dead(herald: &Herald, clock: &ManualClock, gap: Duration) -> u64 {
    clock.advance(gap);
    let replay = herald
        .client
        .post(herald.url("/api/herald/v1/deliveries/retry?state=dead&receiver=team"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let body: Value = replay.json().await.unwrap();
    body["retried"].as_u64().unwrap()
}
