//! Tests of the SQLite outbox: atomic queueing with the notification log, leases, settling, replay, discard and
//! retention.

use super::*;
use crate::alert::Fingerprint;
use crate::store::delivery::{AttemptRecord, NewDelivery, Queued, Settle};

fn t(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("herald.db"), Duration::from_millis(200))
        .await
        .unwrap()
}

fn new_delivery(group: &str) -> NewDelivery {
    NewDelivery {
        receiver: "team".into(),
        integration: "webhook".into(),
        integration_key: "webhook/0".into(),
        destination: "webhook:0123".into(),
        group_key: group.into(),
        status: "firing".into(),
        alert_count: 1,
        payload: r#"{"receiver":"team"}"#.into(),
        claim_until: None,
    }
}

/// Queues notifications the way the dispatcher does, with no group records.
async fn enqueue(store: &SqliteStore, queued: Vec<Queued>) -> Vec<DeliveryRecord> {
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

/// Queues one notification with a delivery per group in `groups` and no log entry.
async fn queue(store: &SqliteStore, groups: &[&str]) -> Vec<DeliveryRecord> {
    let deliveries = groups.iter().map(|group| new_delivery(group)).collect();
    enqueue(
        store,
        vec![Queued {
            deliveries,
            sent: None,
        }],
    )
    .await
}

/// The ids a claim took.
fn ids(claimed: Vec<Claimed>) -> Vec<i64> {
    claimed.into_iter().map(|claimed| claimed.id).collect()
}

fn sent(group: &str) -> SentRecord {
    SentRecord {
        receiver: "team".into(),
        group_key: group.into(),
        firing: vec![Fingerprint(7)],
        resolved: vec![],
        at: t(0),
    }
}

fn attempt(outcome: &str) -> AttemptRecord {
    AttemptRecord {
        started_at: t(1),
        duration_seconds: 0.25,
        outcome: outcome.into(),
        status_code: Some(500),
        error: Some("HTTP 500".into()),
        response: Some("boom".into()),
    }
}

#[tokio::test]
async fn queueing_stores_the_deliveries_and_the_log_entry_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let queued = enqueue(
        &store,
        vec![Queued {
            deliveries: vec![new_delivery("g1"), new_delivery("g1")],
            sent: Some(sent("g1")),
        }],
    )
    .await;
    assert_eq!(queued.len(), 2);
    assert!(
        queued
            .iter()
            .all(|d| d.state == DeliveryState::Pending && d.attempts == 0)
    );
    assert_eq!(queued[0].next_attempt_at, t(0));
    assert_eq!(store.sent().await.unwrap(), vec![sent("g1")]);
    assert_eq!(
        store.open_deliveries(i64::MIN, usize::MAX).await.unwrap(),
        queued
    );
    let claimed = store
        .claim(vec![queued[0].id], t(1), t(10), true)
        .await
        .unwrap();
    assert_eq!(
        (
            claimed[0].input.payload.as_deref().unwrap(),
            claimed[0].input.state.as_deref()
        ),
        (r#"{"receiver":"team"}"#, None),
        "the claim reads the payload"
    );
    let without = store
        .claim(vec![queued[1].id], t(1), t(10), false)
        .await
        .unwrap();
    assert_eq!(
        (without[0].id, without[0].input.payload.as_deref()),
        (queued[1].id, None),
        "a claim whose caller has the payload does not read it"
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_delivery_claimed_as_it_is_queued_is_in_flight_with_its_integration_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let first = queue(&store, &["g"]).await[0].id;
    store.claim(vec![first], t(0), t(10), false).await.unwrap();
    let finished = Finished {
        id: first,
        attempt: attempt("delivered"),
        settle: Settle::Delivered,
        pause: None,
        state: Some(r#"{"ts":"1"}"#.into()),
        now: t(1),
    };
    store.finish(vec![finished]).await.unwrap();
    let mut claimed = new_delivery("g");
    claimed.claim_until = Some(t(20));
    let dispatched = Dispatched {
        queued: vec![Queued {
            deliveries: vec![claimed, new_delivery("other")],
            sent: None,
        }],
        ..Dispatched::default()
    };
    let enqueued = store.dispatch(dispatched, t(2)).await.unwrap();
    assert_eq!(
        (enqueued[0].record.state, enqueued[0].record.lease_until),
        (DeliveryState::InFlight, Some(t(20)))
    );
    assert_eq!(enqueued[0].claimed, Some(Some(r#"{"ts":"1"}"#.to_string())));
    assert_eq!(
        (enqueued[1].record.state, enqueued[1].claimed.clone()),
        (DeliveryState::Pending, None)
    );
    assert!(
        store
            .claim(vec![enqueued[0].record.id], t(3), t(30), false)
            .await
            .unwrap()
            .is_empty(),
        "already leased"
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_claim_holds_a_lease_and_an_expired_lease_can_be_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = queue(&store, &["g"]).await[0].id;
    assert_eq!(
        ids(store.claim(vec![id], t(1), t(10), true).await.unwrap()),
        vec![id]
    );
    assert!(
        store
            .claim(vec![id], t(5), t(20), true)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(
        ids(store.claim(vec![id], t(10), t(20), true).await.unwrap()),
        vec![id],
        "lease ended"
    );
    assert_eq!(store.release(vec![id], t(11)).await.unwrap(), 1);
    let open_now = store.open_deliveries(i64::MIN, usize::MAX).await.unwrap();
    assert_eq!(
        (
            open_now[0].state,
            open_now[0].lease_until,
            open_now[0].next_attempt_at
        ),
        (DeliveryState::Pending, None, t(11))
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn attempts_settle_deliveries_and_pause_their_destination() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = queue(&store, &["g"]).await[0].id;
    store.claim(vec![id], t(1), t(30), true).await.unwrap();
    store
        .finish(vec![Finished {
            id,
            attempt: attempt("rate_limited"),
            settle: Settle::Retry {
                next_attempt_at: t(60),
                error: "rate limited".into(),
            },
            pause: Some(("webhook:0123".into(), t(60))),
            state: None,
            now: t(2),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.pauses(t(2)).await.unwrap(),
        vec![("webhook:0123".to_string(), t(60))]
    );
    assert!(store.pauses(t(61)).await.unwrap().is_empty());
    store.claim(vec![id], t(60), t(90), true).await.unwrap();
    store
        .finish(vec![Finished {
            id,
            attempt: attempt("permanent"),
            settle: Settle::Dead {
                error: "permanent error: HTTP 400".into(),
            },
            pause: None,
            state: None,
            now: t(61),
        }])
        .await
        .unwrap();
    let detail = store.delivery(id).await.unwrap().unwrap();
    assert_eq!(detail.delivery.state, DeliveryState::Dead);
    assert_eq!(detail.delivery.attempts, 2);
    assert_eq!(
        detail.delivery.last_error.as_deref(),
        Some("permanent error: HTTP 400")
    );
    assert_eq!(detail.attempts.len(), 2);
    assert_eq!(detail.attempts[0], attempt("rate_limited"));
    assert!(
        store
            .open_deliveries(i64::MIN, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.delivery_counts().await.unwrap(),
        vec![(DeliveryState::Dead, 1)]
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn replay_discard_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let ids: Vec<i64> = queue(&store, &["a", "b", "c"])
        .await
        .iter()
        .map(|d| d.id)
        .collect();
    store.claim(ids.clone(), t(1), t(100), true).await.unwrap();
    for id in &ids[..2] {
        let settle = Settle::Dead {
            error: "gave up".into(),
        };
        let finished = Finished {
            id: *id,
            attempt: attempt("retryable"),
            settle,
            pause: None,
            state: None,
            now: t(2),
        };
        store.finish(vec![finished]).await.unwrap();
    }
    // In flight: neither replayed nor discarded.
    assert_eq!(
        store.discard_delivery(ids[2]).await.unwrap(),
        Discard::InFlight
    );
    assert!(
        store
            .retry_deliveries(RetrySelection::One(ids[2]), t(3))
            .await
            .unwrap()
            .is_empty()
    );
    let replayed = store
        .retry_deliveries(
            RetrySelection::All {
                state: DeliveryState::Dead,
                receiver: Some("team".into()),
            },
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(replayed.len(), 2);
    assert!(replayed.iter().all(|d| d.state == DeliveryState::Pending
        && d.attempts == 0
        && d.queued_at == t(3)
        && d.created_at == t(0)));
    assert_eq!(
        store.discard_delivery(ids[0]).await.unwrap(),
        Discard::Deleted
    );
    assert_eq!(
        store.discard_delivery(ids[0]).await.unwrap(),
        Discard::NotFound
    );
    assert!(store.delivery(ids[0]).await.unwrap().is_none());

    // Only delivered and dead deliveries past retention are purged.
    let finished = Finished {
        id: ids[1],
        attempt: attempt("delivered"),
        settle: Settle::Delivered,
        pause: None,
        state: None,
        now: t(4),
    };
    store.claim(vec![ids[1]], t(4), t(100), true).await.unwrap();
    store.finish(vec![finished]).await.unwrap();
    assert_eq!(store.purge_deliveries(t(4)).await.unwrap(), 0);
    assert_eq!(store.purge_deliveries(t(5)).await.unwrap(), 1);
    let left = store
        .deliveries(DeliveryQuery {
            limit: 10,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ids[2]]);
    store.close().await.unwrap();
}

#[tokio::test]
async fn listing_filters_and_pages_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut other = new_delivery("x");
    other.receiver = "other".into();
    enqueue(
        &store,
        vec![Queued {
            deliveries: vec![
                new_delivery("a"),
                other,
                new_delivery("b"),
                new_delivery("c"),
            ],
            sent: None,
        }],
    )
    .await;
    let query = |receiver: Option<&str>, before: Option<i64>, limit: usize| DeliveryQuery {
        state: Some(DeliveryState::Pending),
        receiver: receiver.map(str::to_owned),
        before,
        limit,
    };
    let page = store
        .deliveries(query(Some("team"), None, 2))
        .await
        .unwrap();
    assert_eq!(
        page.iter()
            .map(|d| d.group_key.as_str())
            .collect::<Vec<_>>(),
        ["c", "b"]
    );
    let next = store
        .deliveries(query(Some("team"), Some(page[1].id), 2))
        .await
        .unwrap();
    assert_eq!(
        next.iter()
            .map(|d| d.group_key.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(
        store.deliveries(query(None, None, 10)).await.unwrap().len(),
        4
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn integration_state_is_kept_per_group_with_the_outcome_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let ids: Vec<i64> = queue(&store, &["a", "a", "b"])
        .await
        .iter()
        .map(|d| d.id)
        .collect();
    store.claim(vec![ids[0]], t(1), t(30), true).await.unwrap();
    let finished = Finished {
        id: ids[0],
        attempt: attempt("delivered"),
        settle: Settle::Delivered,
        pause: None,
        state: Some(r#"{"ts":"1.2"}"#.into()),
        now: t(2),
    };
    store.finish(vec![finished]).await.unwrap();
    let claimed = store
        .claim(vec![ids[1], ids[2]], t(2), t(3), true)
        .await
        .unwrap();
    let state = |id: i64| {
        claimed
            .iter()
            .find(|claimed| claimed.id == id)
            .and_then(|claimed| claimed.input.state.clone())
    };
    assert_eq!(
        state(ids[1]).as_deref(),
        Some(r#"{"ts":"1.2"}"#),
        "same group"
    );
    assert_eq!(state(ids[2]), None, "other group");
    // Kept until retention, like the deliveries.
    assert_eq!(store.purge_deliveries(t(3)).await.unwrap(), 1);
    let again = store.claim(vec![ids[1]], t(3), t(4), true).await.unwrap();
    assert_eq!(again[0].input.state, None, "purged with the delivery");
    store.close().await.unwrap();
}

#[tokio::test]
async fn group_records_and_log_entries_change_with_the_dispatch_that_decided_it() {
    use crate::store::GroupRecord;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let logged = [sent("live"), sent("gone")]
        .into_iter()
        .map(|sent| Queued {
            deliveries: vec![],
            sent: Some(sent),
        })
        .collect();
    let waiting = GroupRecord {
        id: "g1".into(),
        key: "waiting".into(),
        route_id: "r".into(),
        receiver: "team".into(),
        labels: Default::default(),
        first_flush: t(30),
        flushed: false,
    };
    let dispatched = Dispatched {
        groups: vec![waiting.clone()],
        queued: logged,
        ..Dispatched::default()
    };
    store.dispatch(dispatched, t(0)).await.unwrap();
    assert_eq!(store.groups().await.unwrap(), vec![waiting]);
    let forget = Dispatched {
        dropped: vec!["g1".into()],
        forgotten: vec![("team".into(), "gone".into())],
        ..Dispatched::default()
    };
    store.dispatch(forget, t(1)).await.unwrap();
    assert!(store.groups().await.unwrap().is_empty());
    let kept: Vec<String> = store
        .sent()
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.group_key)
        .collect();
    assert_eq!(kept, ["live"]);
    store.close().await.unwrap();
}

#[test]
fn cached_statements_are_not_compiled_again_at_each_use() {
    use rusqlite::StatementStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut connection = Connection::open(dir.path().join("herald.db")).unwrap();
    configure(&connection, Duration::from_millis(200)).unwrap();
    migrate(&mut connection).unwrap();
    // The shape of the claim's read: its plan would depend on the bound id without the planner's stability setting.
    let sql = "SELECT p.payload FROM deliveries d JOIN delivery_payloads p ON p.delivery_id = d.id WHERE d.id = ?1";
    for id in 1..20_i64 {
        let mut statement = connection.prepare_cached(sql).unwrap();
        let found = statement
            .query_row(params![id], |_| Ok(()))
            .optional()
            .unwrap();
        assert_eq!(found, None);
    }
    let statement = connection.prepare_cached(sql).unwrap();
    assert_eq!(statement.get_status(StatementStatus::RePrepare), 0);
}
