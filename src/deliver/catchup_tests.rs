//! The engine against a destination that goes down and comes back, on a manual clock: while it is down only one
//! delivery at a time probes it, at the backoff pace; once a probe gets an answer, what waited goes at once,
//! within the destination's rate limit and its Retry-After.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::ManualClock;
use crate::config::{DeliveryOptions, RateLimit, RetryPolicy};
use crate::reload::{Applied, Reloader};
use crate::sinks::integrations::{Integration, ReceiverIntegrations};
use crate::sinks::{Context, Receipt, Response, Sink, SinkError};
use crate::store::delivery::{DeliveryState, NewDelivery, Queued};
use crate::store::{Dispatched, SqliteStore};

fn t(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
}

const DESTINATION: &str = "webhook:0f0f0f0f";

/// One send as the destination saw it.
#[derive(Debug, Clone)]
struct Sent {
    at: DateTime<Utc>,
    group: String,
    answered: u16,
}

#[derive(Debug, Default)]
struct Script {
    up: bool,
    /// Answered (429, Retry-After) once, before anything else, when set.
    retry_after: Option<u64>,
    sent: Vec<Sent>,
}

/// A destination that answers 500 while down and 200 once up.
#[derive(Debug)]
struct Flaky {
    clock: Arc<ManualClock>,
    script: std::sync::Mutex<Script>,
    count: watch::Sender<usize>,
}

impl Flaky {
    fn set_up(&self, up: bool) {
        self.script.lock().unwrap().up = up;
    }

    fn sent(&self) -> Vec<Sent> {
        self.script.lock().unwrap().sent.clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Sent> {
        let mut seen = self.count.subscribe();
        tokio::time::timeout(Duration::from_secs(60), seen.wait_for(|n| *n >= count))
            .await
            .unwrap_or_else(|_| panic!("{count} sends expected, got {:?}", self.sent()))
            .unwrap();
        self.sent()
    }
}

#[async_trait]
impl Sink for Flaky {
    fn integration(&self) -> &'static str {
        "webhook"
    }

    fn send_resolved(&self) -> bool {
        true
    }

    fn destination(&self) -> String {
        DESTINATION.to_owned()
    }

    async fn send(&self, notification: &Notification, _: &Context) -> Result<Receipt, SinkError> {
        let answered = {
            let mut script = self.script.lock().unwrap();
            let answered = match script.retry_after.take() {
                Some(_) => 429,
                None if script.up => 200,
                None => 500,
            };
            script.sent.push(Sent {
                at: self.clock.now(),
                group: notification.group_key.clone(),
                answered,
            });
            answered
        };
        self.count.send_modify(|count| *count += 1);
        let response = Some(Response {
            status: Some(answered),
            body: String::new(),
            slow_down: None,
        });
        match answered {
            200 => Ok(Receipt {
                response,
                state: None,
            }),
            429 => Err(SinkError::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
                response,
            }),
            _ => Err(SinkError::Retryable {
                reason: "HTTP 500".into(),
                response,
            }),
        }
    }
}

/// A delivery of `notification` to the flaky destination, with an id reserved from `store`.
fn delivery(
    store: &SqliteStore,
    notification: &Notification,
    claim_until: Option<DateTime<Utc>>,
) -> NewDelivery {
    NewDelivery {
        id: store.delivery_ids(1),
        receiver: "hook".into(),
        integration: "webhook".into(),
        integration_key: "webhook/0".into(),
        destination: DESTINATION.into(),
        group_key: notification.group_key.clone(),
        status: "firing".into(),
        alert_count: 1,
        payload: serde_json::to_string(notification).unwrap().into(),
        claim_until,
    }
}

struct Rig {
    clock: Arc<ManualClock>,
    sink: Arc<Flaky>,
    store: Arc<SqliteStore>,
    db: std::path::PathBuf,
    shutdown: CancellationToken,
    engine: tokio::task::JoinHandle<()>,
    /// The engine stops when its handle and configuration are gone.
    _handle: DeliveryHandle,
    _reloader: Reloader,
    _dir: tempfile::TempDir,
}

/// The engine with `count` deliveries queued for the flaky destination (down at first), one group each.
async fn rig(count: usize, concurrency: usize, rate_limit: Option<RateLimit>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let store = Arc::new(
        SqliteStore::open(&db, Duration::from_secs(1))
            .await
            .unwrap(),
    );
    let clock = Arc::new(ManualClock::new(t(0)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let config = format!(
        "route: {{receiver: hook}}\nreceivers: [{{name: hook, log_configs: [{{}}]}}]\n\
         delivery: {{concurrency: {concurrency}}}\n"
    );
    let settings = crate::config::load_str(&config, "herald.yaml")
        .unwrap()
        .settings;
    let client = reqwest::Client::new();
    let applied = Applied::build(settings, &client, &dyn_clock).unwrap();
    let sink = Arc::new(Flaky {
        clock: clock.clone(),
        script: std::sync::Mutex::new(Script::default()),
        count: watch::Sender::new(0),
    });
    let options = DeliveryOptions {
        retry: RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_attempts: 200,
            max_age: Duration::from_secs(86_400),
        },
        rate_limit,
        timeout: Duration::from_secs(10),
    };
    let integrations = Integrations::from_receivers(HashMap::from([(
        "hook".to_owned(),
        ReceiverIntegrations {
            max_alerts: None,
            integrations: vec![Integration::new("webhook/0".into(), sink.clone(), options)],
        },
    )]));
    let applied = Applied {
        integrations: Arc::new(integrations),
        ..applied
    };
    let reloader = Reloader::new(applied, None, client, Arc::clone(&dyn_clock));
    let queued = (0..count)
        .map(|n| {
            let mut notification =
                Notification::synthetic("hook", crate::alert::Status::Firing, t(0), None);
            notification.group_key = format!("{{}}:{{n=\"{n}\"}}");
            Arc::new(Queued {
                deliveries: vec![delivery(&store, &notification, None)],
                sent: None,
            })
        })
        .collect();
    store
        .dispatch(
            Dispatched {
                queued,
                ..Dispatched::default()
            },
            t(0),
        )
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let dyn_store: Arc<dyn Store> = store.clone();
    let (handle, engine) = start(reloader.subscribe(), dyn_store, dyn_clock, shutdown.clone());
    Rig {
        clock,
        sink,
        store,
        db,
        shutdown,
        engine,
        _handle: handle,
        _reloader: reloader,
        _dir: dir,
    }
}

impl Rig {
    /// Waits until `count` attempts are stored: the engine has taken their outcomes (and so paced its probes).
    async fn wait_stored(&self, count: i64) {
        let connection = rusqlite::Connection::open(&self.db).unwrap();
        let mut stored = 0;
        for _ in 0..6000 {
            stored = connection
                .query_row("SELECT COUNT(*) FROM delivery_attempts", [], |row| {
                    row.get::<_, i64>(0)
                })
                .unwrap();
            if stored >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            stored,
            count,
            "attempts stored; sent: {:?}",
            self.sink.sent()
        );
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.engine.await.unwrap();
        self.store.close().await.unwrap();
    }
}

fn failed_at(sent: &[Sent]) -> Vec<i64> {
    sent.iter()
        .filter(|sent| sent.answered == 500)
        .map(|sent| (sent.at - t(0)).num_seconds())
        .collect()
}

fn delivered(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter().filter(|sent| sent.answered == 200).collect()
}

/// Every delivery delivered exactly once.
fn each_once(sent: &[Sent], count: usize) {
    let mut groups: Vec<&str> = delivered(sent).iter().map(|s| s.group.as_str()).collect();
    groups.sort_unstable();
    let all = groups.len();
    groups.dedup();
    assert_eq!((all, groups.len()), (count, count), "{sent:?}");
}

#[tokio::test]
async fn while_down_only_probes_go_at_the_backoff_pace_and_on_recovery_everything_goes_at_once() {
    let rig = rig(10, 1, None).await;
    // Three sends in a row fail: the destination is down, and the other seven are not sent.
    rig.sink.wait_for(3).await;
    rig.wait_stored(3).await;
    // Probes 1, 2, 4, 5, 5 s apart (the backoff, capped at MAX_PROBE_INTERVAL), one at a time.
    let probes = [1, 3, 7, 12, 17, 22];
    let mut stored = 3;
    for second in 1..=22 {
        rig.clock.set(t(second));
        if probes.contains(&second) {
            stored += 1;
            rig.wait_stored(stored).await;
        }
    }
    let sent = rig.sink.sent();
    assert_eq!(
        failed_at(&sent),
        [0, 0, 0, 1, 3, 7, 12, 17, 22],
        "only probes while down: {sent:?}"
    );
    // Back up after the probe at 22 s: the next probe (27 s) finds it, and everything waiting goes then.
    rig.sink.set_up(true);
    for second in 23..=27 {
        rig.clock.set(t(second));
    }
    let sent = rig.sink.wait_for(9 + 10).await;
    each_once(&sent, 10);
    assert!(
        delivered(&sent).iter().all(|sent| sent.at == t(27)),
        "all at the successful probe, 5 s after the return: {sent:?}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn what_waited_for_a_destination_goes_within_its_rate_limit_when_it_is_back() {
    let limit = RateLimit {
        limit: 1,
        period: Duration::from_secs(1),
        burst: 1,
    };
    let rig = rig(8, 4, Some(limit)).await;
    for second in 0..3 {
        rig.clock.set(t(second));
        rig.wait_stored(second + 1).await;
    }
    // Down after the third failure (2 s); back up before its first probe (3 s).
    rig.sink.set_up(true);
    for second in 3..=10 {
        rig.clock.set(t(second));
        rig.sink
            .wait_for(3 + usize::try_from(second).unwrap() - 2)
            .await;
    }
    let sent = rig.sink.wait_for(3 + 8).await;
    assert_eq!(failed_at(&sent), [0, 1, 2]);
    each_once(&sent, 8);
    let times: Vec<i64> = delivered(&sent)
        .iter()
        .map(|sent| (sent.at - t(0)).num_seconds())
        .collect();
    assert_eq!(
        times,
        [3, 4, 5, 6, 7, 8, 9, 10],
        "one a second, as the limit allows"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_probe_answered_with_retry_after_releases_the_destination_only_when_the_pause_ends() {
    let rig = rig(5, 1, None).await;
    rig.sink.wait_for(3).await;
    rig.wait_stored(3).await;
    {
        let mut script = rig.sink.script.lock().unwrap();
        script.up = true;
        script.retry_after = Some(30);
    }
    // The probe at 1 s is answered 429 with Retry-After: 30: the destination is up but paused until 31 s.
    rig.clock.set(t(1));
    rig.wait_stored(4).await;
    for second in [2, 10, 20, 30] {
        rig.clock.set(t(second));
    }
    assert_eq!(rig.sink.sent().len(), 4, "nothing before the pause ends");
    rig.clock.set(t(31));
    let sent = rig.sink.wait_for(4 + 5).await;
    assert_eq!(sent[3].answered, 429);
    each_once(&sent, 5);
    assert!(
        delivered(&sent).iter().all(|sent| sent.at == t(31)),
        "{sent:?}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_delivery_handed_before_its_transaction_commits_is_sent_at_once_and_settled_once_stored()
{
    let rig = rig(0, 2, None).await;
    rig.sink.set_up(true);
    let handle = &rig._handle;
    // The engine publishes its free send slots once it has read back what the store holds (nothing here).
    let mut slot = false;
    for _ in 0..6000 {
        slot = handle.take_slot("hook");
        if slot {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(slot, "the engine never published a free send slot");
    let mut notification =
        Notification::synthetic("hook", crate::alert::Status::Firing, t(0), None);
    notification.group_key = "{}:{n=\"early\"}".into();
    let delivery = delivery(&rig.store, &notification, Some(t(15)));
    handle.handed(vec![Handed {
        record: delivery.record(t(0)),
        notification: Some(Arc::new(notification)),
        claimed: Some(None),
        stored: false,
    }]);
    // Sent while its transaction has not committed.
    let sent = rig.sink.wait_for(1).await;
    assert_eq!(sent[0].group, "{}:{n=\"early\"}");
    let id = delivery.id;
    assert!(
        rig.store.delivery(id).await.unwrap().is_none(),
        "nothing is stored before the dispatcher's transaction"
    );
    // The transaction commits; only then is the outcome stored, against the row it wrote.
    rig.store
        .dispatch(
            Dispatched {
                queued: vec![Arc::new(Queued {
                    deliveries: vec![delivery],
                    sent: None,
                })],
                ..Dispatched::default()
            },
            t(0),
        )
        .await
        .unwrap();
    handle.stored(vec![id]);
    rig.wait_stored(1).await;
    let detail = rig.store.delivery(id).await.unwrap().unwrap();
    assert_eq!(
        (
            detail.delivery.state,
            detail.delivery.attempts,
            detail.attempts.len()
        ),
        (DeliveryState::Delivered, 1, 1)
    );
    assert_eq!(rig.sink.sent().len(), 1, "sent once");
    rig.stop().await;
}
