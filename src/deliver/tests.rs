//! The engine with the real store: a backlog larger than what it holds in memory is read back in pages, and every
//! delivery goes out once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::ManualClock;
use crate::reload::{Applied, Reloader};
use crate::store::delivery::{DeliveryQuery, DeliveryState, NewDelivery, Queued};
use crate::store::{Dispatched, SqliteStore};

fn t(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
}

const CONFIG: &str = "
route: {receiver: log}
receivers: [{name: log, log_configs: [{}]}]
delivery: {concurrency: 2}
";

/// Queues `count` deliveries to the log receiver, each its own group, as the dispatcher would.
async fn queue(store: &SqliteStore, from: usize, count: usize) -> Vec<DeliveryRecord> {
    let queued = (from..from + count)
        .map(|n| {
            let group_key = format!("{{}}:{{n=\"{n}\"}}");
            let notification =
                Notification::synthetic("log", crate::alert::Status::Firing, t(0), None);
            Arc::new(Queued {
                deliveries: vec![NewDelivery {
                    id: store.delivery_ids(1),
                    receiver: "log".into(),
                    integration: "log".into(),
                    integration_key: "log/0".into(),
                    destination: "log".into(),
                    group_key,
                    status: "firing".into(),
                    alert_count: 1,
                    payload: serde_json::to_string(&notification).unwrap().into(),
                    claim_until: None,
                }],
                sent: None,
            })
        })
        .collect();
    let dispatched = Dispatched {
        queued,
        ..Dispatched::default()
    };
    store
        .dispatch(dispatched, t(0))
        .await
        .unwrap()
        .into_iter()
        .map(|enqueued| enqueued.record)
        .collect()
}

#[tokio::test]
async fn a_backlog_beyond_memory_waits_in_the_store_and_every_delivery_goes_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("herald.db"), Duration::from_secs(1))
            .await
            .unwrap(),
    );
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t(0)));
    let settings = crate::config::load_str(CONFIG, "herald.yaml")
        .unwrap()
        .settings;
    let client = reqwest::Client::new();
    let applied = Applied::build(settings, &client, &clock).unwrap();
    let reloader = Reloader::new(applied, None, client, Arc::clone(&clock));
    // Queued before the engine starts: it reads them back in pages of at most 10.
    queue(&store, 0, 45).await;
    let shutdown = CancellationToken::new();
    let dyn_store: Arc<dyn Store> = store.clone();
    let (handle, engine) =
        start_bounded(reloader.subscribe(), dyn_store, clock, shutdown.clone(), 10);
    // Queued while it runs, more than it holds: those beyond wait in the store too.
    let more = queue(&store, 45, 35).await;
    handle.queued(more);
    let mut delivered = 0;
    for _ in 0..3000 {
        delivered = store
            .delivery_counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(state, _)| *state == DeliveryState::Delivered)
            .map_or(0, |(_, count)| count);
        if delivered == 80 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(delivered, 80);
    let all = store
        .deliveries(DeliveryQuery {
            limit: 1000,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 80);
    assert!(
        all.iter().all(|delivery| delivery.attempts == 1),
        "each sent once: {all:?}"
    );
    shutdown.cancel();
    engine.await.unwrap();
    store.close().await.unwrap();
}
