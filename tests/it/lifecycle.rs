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

/// The stored record of the only group in the database at `db`: its first flush (microseconds) and whether it
/// has flushed.
fn stored_group(db: &std::path::Path) -> Option<(i64, bool)> {
    let connection = rusqlite::Connection::open(db).ok()?;
    connection
        .query_row("SELECT first_flush, flushed FROM groups", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .ok()
}

/// When the notification log says the only group was last sent, in microseconds.
fn stored_sent_at(db: &std::path::Path) -> Option<i64> {
    let connection = rusqlite::Connection::open(db).ok()?;
    connection
        .query_row("SELECT sent_at FROM integration_log", [], |row| row.get(0))
        .ok()
}

async fn wait_for_group(
    db: &std::path::Path,
    expected: Option<(chrono::DateTime<chrono::Utc>, bool)>,
) {
    let expected = expected.map(|(first_flush, flushed)| (first_flush.timestamp_micros(), flushed));
    for _ in 0..600 {
        if stored_group(db) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the group's record never became {expected:?}: {:?}",
        stored_group(db)
    );
}

#[tokio::test]
async fn restarts_keep_group_timers_and_send_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("groups.db");
    let start: chrono::DateTime<chrono::Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let boot =
        || Herald::start_with_clock(settings(&db, "restart-groups"), Arc::new(clock.clone()));
    let sent = |text: &str| {
        metric(
            text,
            "herald_notifications_total",
            &[("receiver", "restart-groups")],
        )
    };
    let at = |seconds: i64| start + chrono::Duration::seconds(seconds);

    let herald = boot().await;
    let body = r#"[{"labels":{"alertname":"Durable"},"startsAt":"2026-11-21T12:00:00Z","endsAt":"2099-01-01T00:00:00Z"}]"#;
    assert_eq!(herald.post_json("/api/v2/alerts", body).await.status(), 200);
    wait_for_group(&db, Some((at(30), false))).await;

    // Stopped during group_wait: the group keeps its timer.
    clock.set(at(10));
    herald.stop().await;
    let herald = boot().await;
    clock.set(at(29));
    assert_eq!(sent(&herald.metrics().await), 0.0, "group_wait is not over");
    clock.set(at(30));
    wait_for_metric(&herald, "the first notification", |text| sent(text) == 1.0).await;
    // Once it announced something, the notification log says when, and later flushes tick every group_interval from
    // there: its record is no longer needed, and flushes that send nothing write nothing.
    wait_for_group(&db, None).await;
    assert_eq!(stored_sent_at(&db), Some(at(30).timestamp_micros()));

    // Stopped during repeat_interval: the ticks go on from the first flush, and nothing is sent again.
    clock.set(at(90));
    herald.stop().await;
    let herald = boot().await;
    clock.set(at(330));
    clock.set(at(630));
    assert_eq!(
        sent(&herald.metrics().await),
        1.0,
        "already sent before the restart"
    );

    // repeat_interval (4h) after the first notification, it is sent once more: the log still says the last send
    // was the one before the restart.
    clock.set(at(30 + 4 * 3600));
    wait_for_metric(&herald, "the repeat", |text| sent(text) == 2.0).await;
    assert_eq!(
        stored_sent_at(&db),
        Some(at(30 + 4 * 3600).timestamp_micros()),
        "repeated on the schedule of the first send"
    );
    assert_eq!(stored_group(&db), None);
    herald.stop().await;
}
