//! Realistic payloads of all three sources, read back through `GET /api/v2/alerts`.

use herald::alert::{Fingerprint, Labels};
use serde_json::{Value, json};

use std::sync::Arc;
use std::time::Duration;

use herald::clock::ManualClock;

use crate::harness::{Herald, metric, settings, wait_for_metric};

fn fingerprint(pairs: &[(&str, &str)]) -> String {
    let labels: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Fingerprint::of(&labels).to_string()
}

fn find<'a>(alerts: &'a [Value], alertname: &str) -> &'a Value {
    alerts
        .iter()
        .find(|alert| alert["labels"]["alertname"] == alertname)
        .unwrap_or_else(|| panic!("{alertname} missing from {alerts:#?}"))
}

pub const PROMETHEUS: &str = r#"[
  {"labels": {"alertname": "HighRequestLatency", "job": "api", "instance": "api-1:8080", "severity": "warning",
              "team": ""},
   "annotations": {"summary": "High request latency on api-1", "runbook_url": "https://runbooks/latency"},
   "startsAt": "2026-11-21T04:00:00.123Z", "endsAt": "2099-01-01T00:00:00Z",
   "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Aapi_latency_seconds%3Amean5m+%3E+0.5"},
  {"labels": {"alertname": "InstanceDown", "job": "node", "instance": "db-2:9100", "severity": "critical"},
   "annotations": {"summary": "db-2 is down"}}
]"#;

const ALERTMANAGER: &str = r#"{
  "version": "4", "groupKey": "{}/{severity=\"page\"}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
  "status": "firing", "receiver": "herald", "groupLabels": {"alertname": "DiskFull"},
  "commonLabels": {"alertname": "DiskFull", "severity": "page"}, "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "DiskFull", "device": "/dev/sda1", "instance": "db-1", "severity": "page"},
     "annotations": {"description": "97% used"}, "startsAt": "2026-11-21T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
     "generatorURL": "http://prometheus:9090/graph?g0.expr=disk", "fingerprint": "0d5c9b8c0b4a0f1e"}
  ]}"#;

pub const GRAFANA: &str = r#"{
  "receiver": "herald", "status": "firing", "orgId": 1, "version": "1", "state": "alerting",
  "groupKey": "{}:{alertname=\"CPUHigh\"}", "truncatedAlerts": 0, "title": "[FIRING:1] CPUHigh", "message": "",
  "externalURL": "http://grafana:3000/", "groupLabels": {"alertname": "CPUHigh"},
  "commonLabels": {"alertname": "CPUHigh"}, "commonAnnotations": {},
  "alerts": [{
    "status": "firing", "labels": {"alertname": "CPUHigh", "grafana_folder": "Infra", "instance": "web-3"},
    "annotations": {"summary": "CPU above 90%"}, "startsAt": "2026-11-21T04:10:00Z", "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://grafana:3000/alerting/grafana/abc/view", "fingerprint": "c6eadffa33fcdf37",
    "silenceURL": "http://grafana:3000/alerting/silence/new", "dashboardURL": "http://grafana:3000/d/x",
    "panelURL": "http://grafana:3000/d/x?viewPanel=2", "values": {"B": 93.5}, "valueString": "B=93.5"
  }]}"#;

#[tokio::test]
async fn three_sources_are_stored_and_listed_in_alertmanager_shape() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(settings(&dir.path().join("h.db"), "ingest-receiver")).await;

    let response = herald.post_json("/api/v2/alerts", PROMETHEUS).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "",
        "200 with no body, as Alertmanager"
    );
    assert_eq!(
        herald
            .post_json("/webhook/alertmanager", ALERTMANAGER)
            .await
            .status(),
        200
    );
    let response = herald
        .client
        .put(herald.url("/webhook/grafana"))
        .header("content-type", "application/json; charset=utf-8")
        .body(GRAFANA)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let alerts = herald.alerts("").await;
    assert_eq!(alerts.len(), 4, "{alerts:#?}");

    let latency = find(&alerts, "HighRequestLatency");
    assert_eq!(
        latency["fingerprint"],
        fingerprint(&[
            ("alertname", "HighRequestLatency"),
            ("instance", "api-1:8080"),
            ("job", "api"),
            ("severity", "warning")
        ])
    );
    assert_eq!(
        latency["labels"].as_object().unwrap().len(),
        4,
        "empty label value dropped"
    );
    assert_eq!(
        latency["annotations"]["runbook_url"],
        "https://runbooks/latency"
    );
    assert_eq!(latency["startsAt"], "2026-11-21T04:00:00.123Z");
    assert_eq!(latency["endsAt"], "2099-01-01T00:00:00.000Z");
    assert_eq!(
        latency["generatorURL"],
        "http://prometheus:9090/graph?g0.expr=job%3Aapi_latency_seconds%3Amean5m+%3E+0.5"
    );
    assert_eq!(
        latency["status"],
        json!({"state": "active", "silencedBy": [], "inhibitedBy": [], "mutedBy": []})
    );
    assert_eq!(latency["receivers"], json!([{"name": "ingest-receiver"}]));
    let receivers: Value = herald.get("/api/v2/receivers").await.json().await.unwrap();
    assert_eq!(receivers, json!([{"name": "ingest-receiver"}]));
    assert!(latency["updatedAt"].as_str().unwrap().ends_with('Z'));

    let down = find(&alerts, "InstanceDown");
    let starts: chrono::DateTime<chrono::Utc> = down["startsAt"].as_str().unwrap().parse().unwrap();
    let ends: chrono::DateTime<chrono::Utc> = down["endsAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (ends - starts).num_seconds(),
        300,
        "missing endsAt = now + resolve_timeout"
    );

    let disk = find(&alerts, "DiskFull");
    assert_eq!(
        disk["fingerprint"],
        fingerprint(&[
            ("alertname", "DiskFull"),
            ("device", "/dev/sda1"),
            ("instance", "db-1"),
            ("severity", "page")
        ])
    );
    // Open-ended (firing until its resolve arrives), shown with a future end as Alertmanager shows firing alerts.
    let disk_ends: chrono::DateTime<chrono::Utc> =
        disk["endsAt"].as_str().unwrap().parse().unwrap();
    let updated: chrono::DateTime<chrono::Utc> =
        disk["updatedAt"].as_str().unwrap().parse().unwrap();
    assert!(disk_ends > updated, "{disk:#}");
    assert_eq!(disk["status"]["state"], "active");

    let cpu = find(&alerts, "CPUHigh");
    assert_eq!(cpu["annotations"]["summary"], "CPU above 90%");
    assert_eq!(cpu["startsAt"], "2026-11-21T04:10:00.000Z");

    let text = herald.metrics().await;
    for source in ["prometheus", "alertmanager", "grafana"] {
        assert!(
            metric(
                &text,
                "herald_alerts_received_total",
                &[("source", source), ("status", "firing")]
            ) >= 1.0
        );
    }
    assert!(metric(&text, "herald_alerts", &[("state", "firing")]) >= 4.0);
    assert!(
        metric(
            &text,
            "herald_http_requests_total",
            &[
                ("route", "/api/v2/alerts"),
                ("method", "POST"),
                ("code", "200")
            ]
        ) >= 1.0
    );
    assert!(text.contains(
        "herald_http_request_duration_seconds_bucket{route=\"/webhook/grafana\",method=\"PUT\""
    ));
    herald.stop().await;
}

#[tokio::test]
async fn resends_update_instead_of_adding_and_resolves_are_reflected() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2026-11-21T05:00:00Z".parse().unwrap());
    let settings = settings(&dir.path().join("h.db"), "resend-receiver");
    let herald = Herald::start_with_clock(settings, Arc::new(clock.clone())).await;
    let sent = |text: &str| {
        metric(
            text,
            "herald_notifications_total",
            &[("receiver", "resend-receiver"), ("integration", "log")],
        )
    };
    let firing = r#"[{"labels":{"alertname":"Flappy","instance":"x"},"startsAt":"2026-11-21T04:00:00Z","endsAt":"2099-01-01T00:00:00Z"}]"#;
    assert_eq!(
        herald.post_json("/api/v2/alerts", firing).await.status(),
        200
    );
    // It started long before group_wait ago, so its new group flushes at once.
    wait_for_metric(&herald, "the firing notification", |text| sent(text) == 1.0).await;
    for _ in 0..2 {
        assert_eq!(
            herald.post_json("/api/v2/alerts", firing).await.status(),
            200
        );
    }
    assert_eq!(herald.alerts("").await.len(), 1);

    let resolved = r#"[{"labels":{"alertname":"Flappy","instance":"x"},"startsAt":"2026-11-21T04:00:00Z","endsAt":"2026-11-21T04:30:00Z"}]"#;
    assert_eq!(
        herald.post_json("/api/v2/alerts", resolved).await.status(),
        200
    );
    assert!(
        herald.alerts("").await.is_empty(),
        "resolved alerts are not active"
    );
    let all = herald.alerts("?resolved=true").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"]["state"], "resolved");
    assert_eq!(all[0]["endsAt"], "2026-11-21T04:30:00.000Z");

    clock.advance(Duration::from_secs(300));
    wait_for_metric(&herald, "the resolved notification", |text| {
        sent(text) == 2.0
    })
    .await;
    assert_eq!(
        sent(&herald.metrics().await),
        2.0,
        "one firing and one resolved notification, none for re-sends"
    );
    herald.stop().await;
}

#[tokio::test]
async fn partially_invalid_batch_stores_the_valid_alerts_and_names_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(settings(&dir.path().join("h.db"), "partial-receiver")).await;
    let body = r#"[{"labels":{"alertname":"Good"}},{"labels":{}},
        {"labels":{"alertname":"Backwards"},"startsAt":"2026-11-21T04:00:00Z","endsAt":"2026-11-21T03:00:00Z"}]"#;
    let response = herald.post_json("/api/v2/alerts", body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["stored"], 1);
    assert_eq!(error["rejected"][0]["index"], 1);
    assert_eq!(error["rejected"][1]["alertname"], "Backwards");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("2 of 3 alerts rejected"),
        "{error}"
    );
    let alerts = herald.alerts("").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["labels"]["alertname"], "Good");
    let text = herald.metrics().await;
    assert!(
        metric(
            &text,
            "herald_alerts_invalid_total",
            &[("source", "prometheus")]
        ) >= 2.0
    );
    herald.stop().await;
}

#[tokio::test]
async fn with_a_grafana_secret_only_signed_grafana_requests_are_taken() {
    use herald::config::{GrafanaSignature, Secret};
    use hmac::{Hmac, KeyInit, Mac};
    let sign = |message: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"grafana-s3cret").unwrap();
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = settings(&dir.path().join("h.db"), "signed-grafana");
    config.ingest.grafana_signature = Some(GrafanaSignature {
        secret: Secret::new("grafana-s3cret"),
        timestamp_header: None,
    });
    let herald = Herald::start(config).await;
    let post = |headers: Vec<(&'static str, String)>| {
        let mut request = herald
            .client
            .post(herald.url("/webhook/grafana"))
            .header("content-type", "application/json")
            .body(GRAFANA);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let unsigned = post(vec![]).await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let body: Value = unsigned.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing signature"),
        "{body}"
    );
    let forged = post(vec![(
        "X-Grafana-Alerting-Signature",
        sign("something else"),
    )])
    .await
    .unwrap();
    assert_eq!(forged.status(), 401);
    assert!(
        herald.alerts("").await.is_empty(),
        "refused requests store nothing"
    );
    // Both header names Grafana uses are accepted.
    for header in ["X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature"] {
        let signed = post(vec![(header, sign(GRAFANA))]).await.unwrap();
        assert_eq!(signed.status(), 200, "{header}");
    }
    assert_eq!(herald.alerts("").await.len(), 1);
    // Other sources are not affected.
    let prometheus = herald
        .post_json("/api/v2/alerts", r#"[{"labels":{"alertname":"Unsigned"}}]"#)
        .await;
    assert_eq!(prometheus.status(), 200);
    herald.stop().await;
}
