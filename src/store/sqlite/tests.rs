//! Tests of the SQLite backend: durability, merge on re-send, expiry, group commit, failures.

use super::*;
use crate::alert::{Labels, Source, Status};
use crate::store::AlertCounts;

fn t(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
}

fn alert(name: &str, start: i64, end: Option<i64>) -> Alert {
    Alert {
        labels: Labels::from([("alertname".to_string(), name.to_string())]),
        annotations: [("summary".to_string(), format!("{name} is broken"))].into(),
        starts_at: t(start),
        ends_at: end.map(t),
        ends_at_defaulted: false,
        generator_url: "http://prometheus/graph".to_string(),
        source: Source::Prometheus,
        extra: Default::default(),
    }
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(
        &dir.path().join("nested/herald.db"),
        Duration::from_millis(200),
    )
    .await
    .unwrap()
}

fn all(now: DateTime<Utc>) -> AlertQuery {
    AlertQuery {
        now,
        include_resolved: true,
    }
}

#[tokio::test]
async fn upsert_merges_resends_and_reports_each_alert_with_its_status_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let changes = store
        .upsert_alerts(vec![alert("A", 0, Some(300))], t(10))
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].previous, changes[0].status),
        (None, Status::Firing)
    );

    let changes = store
        .upsert_alerts(
            vec![alert("A", 0, Some(360)), alert("A", 0, Some(360))],
            t(70),
        )
        .await
        .unwrap();
    assert_eq!(changes.len(), 2, "each alert of the write, as stored");
    assert!(
        changes.iter().all(
            |change| change.previous == Some(Status::Firing) && change.status == Status::Firing
        ),
        "re-sends keep their status: {changes:?}"
    );
    assert_eq!(changes[1].alert.ends_at, Some(t(360)), "the new version");
    let stored = store.alerts(all(t(70))).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].alert.ends_at, Some(t(360)));
    assert_eq!(stored[0].updated_at, t(70));

    let changes = store
        .upsert_alerts(vec![alert("A", 0, Some(80))], t(90))
        .await
        .unwrap();
    assert_eq!(
        (changes[0].previous, changes[0].status),
        (Some(Status::Firing), Status::Resolved)
    );
    assert_eq!(
        store.alert_counts(t(90)).await.unwrap(),
        AlertCounts {
            firing: 0,
            resolved: 1
        }
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn alerts_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .upsert_alerts(vec![alert("A", 0, None), alert("B", 0, Some(100))], t(1))
        .await
        .unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        store.upsert_alerts(vec![alert("C", 0, None)], t(2)).await,
        Err(StoreError::Closed)
    ));

    let store = open(&dir).await;
    let stored = store.alerts(all(t(2))).await.unwrap();
    let names: Vec<_> = stored.iter().map(|s| s.alert.name().to_string()).collect();
    assert_eq!(stored.len(), 2, "{names:?}");
    let changes = store.resolve_expired(t(100)).await.unwrap();
    assert_eq!(changes.len(), 1, "expiry known again after reopen");
    assert_eq!(changes[0].alert.name(), "B");
    let a = stored.iter().find(|s| s.alert.name() == "A").unwrap();
    assert_eq!(a.alert, alert("A", 0, None));
    assert_eq!(a.fingerprint, a.alert.fingerprint());
    store.close().await.unwrap();
}

#[tokio::test]
async fn expired_alerts_resolve_once_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .upsert_alerts(vec![alert("A", 0, Some(100)), alert("B", 0, None)], t(1))
        .await
        .unwrap();
    assert!(store.resolve_expired(t(99)).await.unwrap().is_empty());
    let changes = store.resolve_expired(t(100)).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].alert.name(), "A");
    assert_eq!(changes[0].status, Status::Resolved);
    assert!(
        store.resolve_expired(t(200)).await.unwrap().is_empty(),
        "resolved only once"
    );
    let active = store
        .alerts(AlertQuery {
            now: t(200),
            include_resolved: false,
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(store.purge_resolved(t(100)).await.unwrap(), 0);
    assert_eq!(store.purge_resolved(t(101)).await.unwrap(), 1);
    assert_eq!(store.alerts(all(t(200))).await.unwrap().len(), 1);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir).await);
    let mut tasks = Vec::new();
    for writer in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let batch = (0..20)
                .map(|i| alert(&format!("W{writer}-{i}"), 0, None))
                .collect();
            store
                .upsert_alerts(batch, t(1))
                .await
                .map(|changes| changes.len())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 20);
    }
    assert_eq!(store.alert_counts(t(1)).await.unwrap().firing, 64 * 20);
    store.close().await.unwrap();
}

#[tokio::test]
async fn locked_database_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let blocker = Connection::open(store.path()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let error = store
        .upsert_alerts(vec![alert("A", 0, None)], t(1))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(matches!(store.health(), Health::NotReady(reason) if reason.contains("locked")));
    assert!(
        store.alerts(all(t(1))).await.unwrap().is_empty(),
        "nothing was stored"
    );

    blocker.execute_batch("ROLLBACK").unwrap();
    let mut waited = 0;
    while store.health() != Health::Ready {
        assert!(waited < 600, "store never became ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    store
        .upsert_alerts(vec![alert("A", 0, None)], t(2))
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn full_disk_fails_the_write_and_keeps_earlier_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let store = tokio::task::spawn_blocking(move || {
        SqliteStore::open_blocking(path, Duration::from_millis(200), Some(8i64))
    })
    .await
    .unwrap()
    .unwrap();
    store
        .upsert_alerts(vec![alert("kept", 0, None)], t(1))
        .await
        .unwrap();
    let big: Vec<Alert> = (0..500)
        .map(|i| {
            let mut a = alert(&format!("big-{i}"), 0, None);
            a.annotations.insert("description".into(), "x".repeat(2000));
            a
        })
        .collect();
    let error = store.upsert_alerts(big, t(2)).await.unwrap_err();
    assert!(error.to_string().contains("full"), "{error}");
    let stored = store.alerts(all(t(2))).await.unwrap();
    assert_eq!(stored.len(), 1, "the failed batch left nothing behind");
    assert_eq!(stored[0].alert.name(), "kept");
    store.close().await.unwrap();
}

fn silence_record(id: &str, end: i64) -> SilenceRecord {
    SilenceRecord {
        id: id.to_string(),
        matchers: vec![
            crate::store::MatcherRecord {
                name: "alertname".into(),
                value: "Down".into(),
                is_regex: false,
                is_equal: true,
            },
            crate::store::MatcherRecord {
                name: "env".into(),
                value: "dev|test".into(),
                is_regex: true,
                is_equal: false,
            },
        ],
        starts_at: t(0),
        ends_at: t(end),
        created_by: "ops".into(),
        comment: "maintenance window".into(),
        updated_at: t(0) + chrono::Duration::microseconds(123_456),
    }
}

#[tokio::test]
async fn silences_round_trip_update_by_id_survive_reopen_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert!(store.silences().await.unwrap().is_empty());
    store.save_silence(silence_record("b", 600)).await.unwrap();
    store
        .save_silences(vec![silence_record("a", 300), silence_record("c", 900)])
        .await
        .unwrap();
    let mut changed = silence_record("b", 100);
    changed.comment = "ended early".into();
    changed.updated_at = t(100);
    store.save_silence(changed.clone()).await.unwrap();
    let expected = vec![silence_record("a", 300), changed, silence_record("c", 900)];
    assert_eq!(store.silences().await.unwrap(), expected);

    // Matchers are stored in the v2 API's JSON shape.
    let json: String = store
        .read(|connection| {
            connection.query_row("SELECT matchers FROM silences WHERE id = 'a'", [], |row| {
                row.get(0)
            })
        })
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!([
            {"name": "alertname", "value": "Down", "isRegex": false, "isEqual": true},
            {"name": "env", "value": "dev|test", "isRegex": true, "isEqual": false},
        ])
    );

    store.close().await.unwrap();
    let store = open(&dir).await;
    assert_eq!(store.silences().await.unwrap(), expected);
    assert_eq!(store.purge_silences(t(300)).await.unwrap(), 1);
    let left: Vec<String> = store
        .silences()
        .await
        .unwrap()
        .into_iter()
        .map(|silence| silence.id)
        .collect();
    assert_eq!(left, ["a", "c"]);
    store.close().await.unwrap();
}
