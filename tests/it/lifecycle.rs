//! Durability and failure: restart on the same store, an unwritable store, expiry of alerts nobody re-sends.

use std::sync::Arc;
use std::time::Duration;

use herald::clock::ManualClock;

use crate::harness::{Herald, metric, settings, wait_for_metric};
use crate::ingest::PROMETHEUS;

#[tokio::test]
async fn alerts_survive_a_restart_on_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restart.db");
    let herald = Herald::start(settings(&db, "restart")).await;
    assert_eq!(
        herald
            .post_json("/api/v2/alerts", PROMETHEUS)
            .await
            .status(),
        200
    );
    let before = herald.alerts("").await;
    herald.stop().await;

    let herald = Herald::start(settings(&db, "restart")).await;
    let after = herald.alerts("").await;
    assert_eq!(after.len(), 2);
    for (a, b) in before.iter().zip(&after) {
        for field in [
            "fingerprint",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "updatedAt",
            "generatorURL",
        ] {
            assert_eq!(a[field], b[field], "{field}");
        }
    }
    herald.stop().await;
}

#[tokio::test]
async fn unwritable_store_answers_503_and_is_not_ready_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(settings(&dir.path().join("locked.db"), "locked")).await;

    // Another process holding the write lock: herald's commit times out (busy_timeout 100ms).
    let blocker = rusqlite::Connection::open(&herald.db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let response = herald.post_json("/api/v2/alerts", PROMETHEUS).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not stored"),
        "{body}"
    );
    let ready = herald.get("/-/ready").await;
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("locked"));
    assert!(
        herald.alerts("?resolved=true").await.is_empty(),
        "nothing acknowledged, nothing stored"
    );
    assert_eq!(
        herald.get("/-/healthy").await.status(),
        200,
        "the process itself is alive"
    );

    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    herald.wait_until(|status| status == 200, "/-/ready").await;
    assert_eq!(
        herald
            .post_json("/api/v2/alerts", PROMETHEUS)
            .await
            .status(),
        200
    );
    assert_eq!(herald.alerts("").await.len(), 2);
    herald.stop().await;
}

#[tokio::test]
async fn alert_not_resent_resolves_when_its_end_passes() {
    let dir = tempfile::tempdir().unwrap();
    let start: chrono::DateTime<chrono::Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let herald = Herald::start_with_clock(
        settings(&dir.path().join("expiry.db"), "expiry"),
        Arc::new(clock.clone()),
    )
    .await;
    let body = r#"[{"labels":{"alertname":"Expiring"},"startsAt":"2026-11-21T11:59:00Z"}]"#;
    assert_eq!(herald.post_json("/api/v2/alerts", body).await.status(), 200);
    let alerts = herald.alerts("").await;
    assert_eq!(
        alerts[0]["endsAt"], "2026-11-21T12:05:00.000Z",
        "now + resolve_timeout"
    );

    let labels = [("receiver", "expiry"), ("integration", "log")];
    wait_for_metric(&herald, "the firing notification", |text| {
        metric(text, "herald_notifications_total", &labels) == 1.0
    })
    .await;
    clock.advance(Duration::from_secs(301));
    wait_for_metric(&herald, "the resolved notification", |text| {
        metric(text, "herald_notifications_total", &labels) == 2.0
    })
    .await;
    assert!(herald.alerts("").await.is_empty());
    let all = herald.alerts("?resolved=true").await;
    assert_eq!(all[0]["status"]["state"], "resolved");
    herald.stop().await;
}
