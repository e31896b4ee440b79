//! Routing through the HTTP surface: receivers computed by the route tree, Alertmanager's `filter` and `receiver`
//! queries, and notifications going to every route an alert matches.

use std::sync::Arc;
use std::time::Duration;

use herald::clock::ManualClock;
use herald::config::StorageBackend;
use serde_json::Value;

use crate::harness::{Herald, metric, wait_for_metric};

const CONFIG: &str = r#"
route:
  receiver: rt-default
  group_by: [alertname]
  routes:
    - receiver: rt-db
      matchers: ['service=~"mysql|postgres"']
    - receiver: rt-web
      matchers: ['team="web"']
      continue: true
    - receiver: rt-audit
      match_re: {team: "web|api"}
receivers:
  - {name: rt-default, log_configs: [{}]}
  - {name: rt-db, log_configs: [{}]}
  - {name: rt-web, log_configs: [{}]}
  - {name: rt-audit, log_configs: [{send_resolved: false}]}
"#;

async fn start(dir: &tempfile::TempDir, clock: &ManualClock) -> Herald {
    let mut settings = herald::config::load_str(CONFIG, "routing.yaml")
        .unwrap()
        .settings;
    settings.storage.backend = StorageBackend::Sqlite {
        path: dir.path().join("routing.db"),
    };
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    Herald::start_with_clock(settings, Arc::new(clock.clone())).await
}

fn names(alerts: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = alerts
        .iter()
        .map(|alert| alert["labels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn alerts_are_routed_listed_and_filtered_like_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap());
    let herald = start(&dir, &clock).await;
    let body = r#"[
      {"labels": {"alertname": "DbDown", "service": "mysql"}},
      {"labels": {"alertname": "WebSlow", "team": "web"}},
      {"labels": {"alertname": "Other", "service": "mysqlx"}}
    ]"#;
    assert_eq!(herald.post_json("/api/v2/alerts", body).await.status(), 200);

    let alerts = herald.alerts("").await;
    let receivers = |name: &str| -> Value {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap()["receivers"]
            .clone()
    };
    assert_eq!(receivers("DbDown"), serde_json::json!([{"name": "rt-db"}]));
    assert_eq!(
        receivers("WebSlow"),
        serde_json::json!([{"name": "rt-web"}, {"name": "rt-audit"}])
    );
    assert_eq!(
        receivers("Other"),
        serde_json::json!([{"name": "rt-default"}]),
        "regexes are anchored"
    );

    assert_eq!(
        names(&herald.alerts("?filter=service%3D%22mysql%22").await),
        ["DbDown"]
    );
    assert_eq!(
        names(
            &herald
                .alerts("?filter=alertname%3D~%22Db.*%7CWeb.*%22")
                .await
        ),
        ["DbDown", "WebSlow"]
    );
    assert_eq!(
        names(
            &herald
                .alerts("?filter=alertname%3D~%22.%2B%22&filter=service!%3D%22%22")
                .await
        ),
        ["DbDown", "Other"]
    );
    assert_eq!(
        names(&herald.alerts("?receiver=rt-audit").await),
        ["WebSlow"]
    );
    assert!(
        herald.alerts("?receiver=audit").await.is_empty(),
        "receiver regex is anchored"
    );
    let groups: Value = herald
        .get("/api/v2/alerts/groups")
        .await
        .json()
        .await
        .unwrap();
    let summary: Vec<(String, String, usize)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let name = g["labels"]["alertname"].as_str().unwrap().to_string();
            (
                g["receiver"]["name"].as_str().unwrap().to_string(),
                name,
                g["alerts"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 4, "{groups:#}");
    for expected in [
        ("rt-db", "DbDown"),
        ("rt-web", "WebSlow"),
        ("rt-audit", "WebSlow"),
        ("rt-default", "Other"),
    ] {
        assert!(
            summary.contains(&(expected.0.to_string(), expected.1.to_string(), 1)),
            "{expected:?} in {summary:?}"
        );
    }
    let audit: Value = herald
        .get("/api/v2/alerts/groups?receiver=rt-audit")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit.as_array().unwrap().len(), 1);

    let bad = herald
        .get("/api/v2/alerts?filter=alertname%3D~%22(%22")
        .await;
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("regex"),
        "{error}"
    );

    // Nothing before group_wait (30s, Alertmanager's default), then one notification per group.
    clock.advance(Duration::from_secs(29));
    let text = herald.metrics().await;
    assert_eq!(
        metric(
            &text,
            "herald_notifications_total",
            &[("receiver", "rt-db")]
        ),
        0.0
    );
    clock.advance(Duration::from_secs(1));
    for (receiver, count) in [
        ("rt-db", 1.0),
        ("rt-web", 1.0),
        ("rt-audit", 1.0),
        ("rt-default", 1.0),
    ] {
        wait_for_metric(&herald, receiver, |text| {
            metric(
                text,
                "herald_notifications_total",
                &[("receiver", receiver)],
            ) == count
        })
        .await;
    }

    // The web alert resolves: rt-web is told, rt-audit (send_resolved: false) is not.
    let resolved = r#"[{"labels": {"alertname": "WebSlow", "team": "web"}, "endsAt": "2020-01-01T00:00:00Z"}]"#;
    assert_eq!(
        herald.post_json("/api/v2/alerts", resolved).await.status(),
        200
    );
    clock.advance(Duration::from_secs(300));
    wait_for_metric(&herald, "the resolve to rt-web", |text| {
        metric(
            text,
            "herald_notifications_total",
            &[("receiver", "rt-web")],
        ) == 2.0
    })
    .await;
    let text = herald.metrics().await;
    assert_eq!(
        metric(
            &text,
            "herald_notifications_total",
            &[("receiver", "rt-audit")]
        ),
        1.0
    );
    herald.stop().await;
}

const SUPPRESSING: &str = r#"
route:
  receiver: sup-default
  group_by: [alertname, cluster]
  routes:
    - receiver: sup-crit
      matchers: ['severity="critical"']
    - receiver: sup-warn
      matchers: ['severity="warning"']
    - receiver: sup-quiet
      matchers: ['team="night"']
      mute_time_intervals: [always]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
time_intervals:
  - name: always
    time_intervals:
      - times: [{start_time: "00:00", end_time: "24:00"}]
receivers:
  - {name: sup-default, log_configs: [{}]}
  - {name: sup-crit, log_configs: [{}]}
  - {name: sup-warn, log_configs: [{}]}
  - {name: sup-quiet, log_configs: [{}]}
"#;

#[tokio::test]
async fn inhibited_alerts_wait_for_their_source_and_muted_routes_stay_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap());
    let mut settings = herald::config::load_str(SUPPRESSING, "suppressing.yaml")
        .unwrap()
        .settings;
    settings.storage.backend = StorageBackend::Sqlite {
        path: dir.path().join("suppressing.db"),
    };
    let herald = Herald::start_with_clock(settings, Arc::new(clock.clone())).await;
    let sent = |text: &str, receiver: &str| {
        metric(
            text,
            "herald_notifications_total",
            &[("receiver", receiver)],
        )
    };

    let body = r#"[
      {"labels": {"alertname": "ClusterDown", "cluster": "c1", "severity": "critical"}},
      {"labels": {"alertname": "PodSlow", "cluster": "c1", "severity": "warning"}},
      {"labels": {"alertname": "PodSlow", "cluster": "c2", "severity": "warning"}},
      {"labels": {"alertname": "Backup", "team": "night"}}
    ]"#;
    assert_eq!(herald.post_json("/api/v2/alerts", body).await.status(), 200);
    clock.advance(Duration::from_secs(30));
    wait_for_metric(&herald, "critical and the uninhibited warning", |text| {
        sent(text, "sup-crit") == 1.0 && sent(text, "sup-warn") == 1.0
    })
    .await;
    let text = herald.metrics().await;
    assert!(
        metric(
            &text,
            "herald_notifications_suppressed_total",
            &[("reason", "inhibited")]
        ) >= 1.0
    );
    assert!(
        metric(
            &text,
            "herald_notifications_suppressed_total",
            &[("reason", "muted")]
        ) >= 1.0
    );
    assert_eq!(sent(&text, "sup-quiet"), 0.0, "muted by its time interval");

    // The critical alert resolves: its resolve goes out, and the c1 warning it held back is news.
    let resolved = r#"[{"labels": {"alertname": "ClusterDown", "cluster": "c1", "severity": "critical"},
                        "endsAt": "2026-11-21T12:00:40Z"}]"#;
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        herald.post_json("/api/v2/alerts", resolved).await.status(),
        200
    );
    clock.advance(Duration::from_secs(300));
    wait_for_metric(&herald, "the resolve and the released warning", |text| {
        sent(text, "sup-crit") == 2.0 && sent(text, "sup-warn") == 2.0
    })
    .await;
    assert_eq!(sent(&herald.metrics().await, "sup-quiet"), 0.0);
    herald.stop().await;
}
