//! The dispatcher with the real store and delivery engine, on a manual clock: what it writes, and what it does not.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::alert::{Alert, Source};
use crate::clock::ManualClock;
use crate::reload::Reloader;
use crate::store::SqliteStore;
use crate::store::delivery::{DeliveryQuery, DeliveryState};

fn t(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
}

const CONFIG: &str = "
route:
  receiver: log
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 10s
  repeat_interval: 1h
receivers:
  - name: log
    log_configs: [{}]
";

/// The dispatcher and the delivery engine on `store`, with `CONFIG`.
struct Running {
    store: Arc<SqliteStore>,
    clock: ManualClock,
    dispatch: DispatchHandle,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(dir: &tempfile::TempDir) -> Running {
        Self::start_with(dir, CONFIG).await
    }

    async fn start_with(dir: &tempfile::TempDir, config: &str) -> Running {
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("herald.db"), Duration::from_secs(1))
                .await
                .unwrap(),
        );
        let clock = ManualClock::new(t(0));
        let shared_clock: Arc<dyn Clock> = Arc::new(clock.clone());
        let settings = crate::config::load_str(config, "herald.yaml")
            .unwrap()
            .settings;
        let client = reqwest::Client::new();
        let applied = Applied::build(settings, &client, &shared_clock).unwrap();
        let reloader = Reloader::new(applied, None, client, Arc::clone(&shared_clock));
        let dyn_store: Arc<dyn Store> = store.clone();
        let silences = Arc::new(SilenceBook::load(Arc::clone(&dyn_store)).await.unwrap());
        let shutdown = CancellationToken::new();
        let (deliveries, engine) = crate::deliver::start(
            reloader.subscribe(),
            Arc::clone(&dyn_store),
            Arc::clone(&shared_clock),
            shutdown.clone(),
        );
        let (dispatch, dispatcher) = start(
            reloader.subscribe(),
            deliveries,
            dyn_store,
            shared_clock,
            silences,
            shutdown.clone(),
        );
        Running {
            store,
            clock,
            dispatch,
            shutdown,
            tasks: vec![dispatcher, engine],
        }
    }

    /// Stores alerts as ingest does and hands their changes over.
    async fn post(&self, alerts: Vec<Alert>) {
        let reservation = self
            .dispatch
            .reserve(alerts.len(), Duration::from_secs(10))
            .await
            .unwrap();
        let changes = self
            .store
            .upsert_alerts(alerts, self.clock.now())
            .await
            .unwrap();
        reservation.submit(changes);
    }

    /// Waits until `count` deliveries were delivered.
    async fn delivered(&self, count: u64) {
        for _ in 0..3000 {
            let delivered = self
                .store
                .delivery_counts()
                .await
                .unwrap()
                .into_iter()
                .find(|(state, _)| *state == DeliveryState::Delivered)
                .map_or(0, |(_, count)| count);
            if delivered == count {
                return;
            }
            assert!(delivered < count, "{delivered} delivered, expected {count}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "never delivered {count}: {:?}",
            self.store.delivery_counts().await.unwrap()
        );
    }

    /// Deliveries per integration key, oldest first.
    async fn deliveries(&self) -> Vec<String> {
        let mut all = self
            .store
            .deliveries(DeliveryQuery {
                limit: 1000,
                ..DeliveryQuery::default()
            })
            .await
            .unwrap();
        all.reverse();
        all.into_iter()
            .map(|delivery| format!("{}:{}", delivery.integration_key, delivery.status))
            .collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        self.store.close().await.unwrap();
    }
}

fn alert(instance: &str, summary: &str) -> Alert {
    Alert {
        labels: [("alertname", "Down"), ("instance", instance)]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        annotations: [("summary".to_owned(), summary.to_owned())].into(),
        starts_at: t(0),
        ends_at: Some(t(3600 * 24)),
        ends_at_defaulted: false,
        generator_url: String::new(),
        source: Source::Prometheus,
        extra: Default::default(),
    }
}

#[tokio::test]
async fn flushes_that_send_nothing_touch_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(&dir).await;
    let alerts: Vec<Alert> = (0..50).map(|n| alert(&format!("db-{n}"), "down")).collect();
    running.post(alerts).await;
    running.delivered(50).await;
    // Every group flushed at 0 and now waits for its next tick at 10.
    running.clock.sleeping_until(t(10)).await;
    let commits = running.store.commits();
    for tick in 1..=6 {
        running.clock.set(t(10 * tick));
        running.clock.sleeping_until(t(10 * (tick + 1))).await;
    }
    assert_eq!(
        running.store.commits(),
        commits,
        "six ticks of 50 groups with nothing new wrote nothing"
    );

    // A re-send with new annotations is held in memory: the repeat carries them, on the first flush's schedule.
    running.post(vec![alert("db-7", "down for an hour")]).await;
    running.clock.set(t(3600));
    running.delivered(100).await;
    let newest = running
        .store
        .deliveries(DeliveryQuery {
            limit: 100,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    let repeat = newest
        .iter()
        .find(|delivery| delivery.group_key.contains("db-7"))
        .unwrap();
    let detail = running.store.delivery(repeat.id).await.unwrap().unwrap();
    let notification: Notification = serde_json::from_str(&detail.payload).unwrap();
    assert_eq!(notification.reason, crate::notification::Reason::Repeat);
    assert_eq!(
        notification.alerts[0].alert.annotations["summary"],
        "down for an hour"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_full_backlog_refuses_after_the_wait_and_frees_room_once_taken_in() {
    tokio::time::pause();
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let handle = DispatchHandle {
        sender,
        room: Arc::new(Semaphore::new(BACKLOG_ALERTS)),
    };
    let first = handle
        .reserve(BACKLOG_ALERTS * 2, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        handle.backlog(),
        BACKLOG_ALERTS,
        "a request larger than the backlog takes all of it"
    );
    assert_eq!(
        handle.reserve(1, Duration::from_secs(2)).await.unwrap_err(),
        Busy
    );
    first.submit(Vec::new());
    assert_eq!(
        handle.backlog(),
        0,
        "nothing handed over frees its room at once"
    );

    let full = handle
        .reserve(BACKLOG_ALERTS, Duration::from_secs(1))
        .await
        .unwrap();
    let change = StateChange {
        fingerprint: alert("a", "s").fingerprint(),
        alert: alert("a", "s"),
        previous: None,
        status: Status::Firing,
        at: t(0),
    };
    full.submit(vec![change]);
    let waiting = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.reserve(1, Duration::from_secs(60)).await.is_ok() })
    };
    let handed = receiver.recv().await.unwrap();
    drop(handed);
    assert!(
        waiting.await.unwrap(),
        "room freed when the changes were taken in"
    );
}

/// One receiver with two log integrations, the second without `send_resolved`.
const TWO_LOGS: &str = "
route:
  receiver: log
  group_by: [alertname]
  group_wait: 0s
  group_interval: 10s
  repeat_interval: 1h
receivers:
  - name: log
    log_configs: [{}, {send_resolved: false}]
";

#[tokio::test]
async fn each_integration_is_logged_and_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start_with(&dir, TWO_LOGS).await;
    running
        .post(vec![alert("db-1", "down"), alert("db-2", "down")])
        .await;
    running.delivered(2).await;
    running.clock.sleeping_until(t(10)).await;
    let mut db2 = alert("db-2", "down");
    db2.ends_at = Some(t(0));
    running.post(vec![db2]).await;
    running.clock.set(t(10));
    running.delivered(3).await;
    assert_eq!(
        running.deliveries().await,
        ["log/0:firing", "log/1:firing", "log/0:firing"],
        "a partial resolve goes only to the integration with send_resolved"
    );
    let log = running.store.sent().await.unwrap();
    let resolved: Vec<(&str, usize)> = log
        .iter()
        .map(|record| (record.integration_key.as_str(), record.told.resolved.len()))
        .collect();
    assert_eq!(resolved, [("log/0", 1), ("log/1", 0)]);
    running.stop().await;
}

#[tokio::test]
async fn an_upgrade_copies_each_receivers_entries_to_its_integrations_and_notifies_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start_with(&dir, TWO_LOGS).await;
    running.post(vec![alert("db-1", "down")]).await;
    running.delivered(2).await;
    running.stop().await;
    {
        // The log as a herald that kept it per receiver left it.
        let connection = rusqlite::Connection::open(dir.path().join("herald.db")).unwrap();
        connection
            .execute_batch(
                "DELETE FROM integration_log WHERE integration_key = 'log/1';
                 UPDATE integration_log SET integration_key = '', delivery_id = NULL;",
            )
            .unwrap();
    }
    let running = Running::start_with(&dir, TWO_LOGS).await;
    running.post(vec![alert("db-1", "still down")]).await;
    running.clock.sleeping_until(t(10)).await;
    running.clock.set(t(10));
    running.clock.sleeping_until(t(20)).await;
    assert_eq!(
        running.deliveries().await.len(),
        2,
        "nothing told again: only the first start's deliveries"
    );
    let keys: Vec<String> = running
        .store
        .sent()
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.integration_key)
        .collect();
    assert_eq!(keys, ["log/0", "log/1"], "stored per integration at start");
    running.stop().await;
}
