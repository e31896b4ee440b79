//! Tests of the SQLite outbox: atomic queueing with the notification log, leases, settling, replay, discard and
//! retention.

use super::*;
use crate::alert::Fingerprint;
use crate::store::delivery::{
    AttemptRecord, LogChangeKind, Logged, NewDelivery, PayloadRead, Queued, RECEIVER_ENTRY, Settle,
    Told,
};

fn t(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("herald.db"), Duration::from_millis(200))
        .await
        .unwrap()
}

/// A delivery to queue; `with_ids` gives it its id.
fn new_delivery(group: &str) -> NewDelivery {
    NewDelivery {
        id: 0,
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

/// Gives each delivery an id reserved from `store`, as the dispatcher does.
fn with_ids(store: &SqliteStore, queued: Vec<Queued>) -> Vec<Arc<Queued>> {
    queued
        .into_iter()
        .map(|mut queued| {
            for delivery in &mut queued.deliveries {
                delivery.id = store.delivery_ids(1);
            }
            Arc::new(queued)
        })
        .collect()
}

/// Queues notifications the way the dispatcher does, with no group records.
async fn enqueue(store: &SqliteStore, queued: Vec<Queued>) -> Vec<DeliveryRecord> {
    let dispatched = Dispatched {
        queued: with_ids(store, queued),
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

fn told(firing: &[u64], at: i64) -> Told {
    Told {
        firing: firing.iter().map(|n| Fingerprint(*n)).collect(),
        resolved: vec![],
        at: t(at),
    }
}

/// The log entry of a notification for `group` that told alert 7 firing, for `integrations`.
fn sent(group: &str, integrations: &[(&str, Option<usize>)]) -> Logged {
    Logged {
        receiver: "team".into(),
        group_key: group.into(),
        told: told(&[7], 0),
        integrations: integrations
            .iter()
            .map(|(key, delivery)| (key.to_string(), *delivery))
            .collect(),
    }
}

/// The stored entry of `integration` for `group`.
fn record(group: &str, integration: &str, told: Told, delivery: Option<i64>) -> SentRecord {
    SentRecord {
        receiver: "team".into(),
        integration_key: integration.into(),
        group_key: group.into(),
        told,
        delivery,
        dead: false,
        had: None,
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
            sent: Some(sent(
                "g1",
                &[
                    ("webhook/0", Some(0)),
                    ("webhook/1", Some(1)),
                    ("log/0", None),
                ],
            )),
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
    assert_eq!(
        store.sent().await.unwrap(),
        vec![
            record("g1", "log/0", told(&[7], 0), None),
            record("g1", "webhook/0", told(&[7], 0), Some(queued[0].id)),
            record("g1", "webhook/1", told(&[7], 0), Some(queued[1].id)),
        ],
        "one entry per integration, with the delivery that carries it"
    );
    assert_eq!(
        store.open_deliveries(i64::MIN, usize::MAX).await.unwrap(),
        queued
    );
    let claimed = store
        .claim(
            vec![queued[0].id, queued[1].id],
            t(1),
            t(10),
            PayloadRead::Only(std::collections::HashSet::from([queued[0].id])),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            claimed[0].input.payload.as_deref().unwrap(),
            claimed[0].input.state.as_deref()
        ),
        (r#"{"receiver":"team"}"#, None),
        "the claim reads the payload asked for"
    );
    assert_eq!(
        (claimed[1].id, claimed[1].input.payload.as_deref()),
        (queued[1].id, None),
        "a claim does not read a payload its caller holds"
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_delivery_claimed_as_it_is_queued_is_in_flight_with_its_integration_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let first = queue(&store, &["g"]).await[0].id;
    store
        .claim(vec![first], t(0), t(10), PayloadRead::None)
        .await
        .unwrap();
    let finished = Finished {
        id: first,
        attempt: attempt("delivered"),
        settle: Settle::Delivered,
        pause: None,
        state: Some(r#"{"ts":"1"}"#.into()),
        now: t(1),
        spent: true,
    };
    store.finish(vec![finished]).await.unwrap();
    let mut claimed = new_delivery("g");
    claimed.claim_until = Some(t(20));
    let dispatched = Dispatched {
        queued: with_ids(
            &store,
            vec![Queued {
                deliveries: vec![claimed, new_delivery("other")],
                sent: None,
            }],
        ),
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
            .claim(vec![enqueued[0].record.id], t(3), t(30), PayloadRead::None)
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
        ids(store
            .claim(vec![id], t(1), t(10), PayloadRead::All)
            .await
            .unwrap()),
        vec![id]
    );
    assert!(
        store
            .claim(vec![id], t(5), t(20), PayloadRead::All)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(
        ids(store
            .claim(vec![id], t(10), t(20), PayloadRead::All)
            .await
            .unwrap()),
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
    store
        .claim(vec![id], t(1), t(30), PayloadRead::All)
        .await
        .unwrap();
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
            spent: true,
        }])
        .await
        .unwrap();
    assert_eq!(
        store.pauses(t(2)).await.unwrap(),
        vec![("webhook:0123".to_string(), t(60))]
    );
    assert!(store.pauses(t(61)).await.unwrap().is_empty());
    store
        .claim(vec![id], t(60), t(90), PayloadRead::All)
        .await
        .unwrap();
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
            spent: true,
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
    store
        .claim(ids.clone(), t(1), t(100), PayloadRead::All)
        .await
        .unwrap();
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
            spent: true,
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
        spent: true,
    };
    store
        .claim(vec![ids[1]], t(4), t(100), PayloadRead::All)
        .await
        .unwrap();
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
    store
        .claim(vec![ids[0]], t(1), t(30), PayloadRead::All)
        .await
        .unwrap();
    let finished = Finished {
        id: ids[0],
        attempt: attempt("delivered"),
        settle: Settle::Delivered,
        pause: None,
        state: Some(r#"{"ts":"1.2"}"#.into()),
        now: t(2),
        spent: true,
    };
    store.finish(vec![finished]).await.unwrap();
    let claimed = store
        .claim(vec![ids[1], ids[2]], t(2), t(3), PayloadRead::All)
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
    let again = store
        .claim(vec![ids[1]], t(3), t(4), PayloadRead::All)
        .await
        .unwrap();
    assert_eq!(again[0].input.state, None, "purged with the delivery");
    store.close().await.unwrap();
}

#[tokio::test]
async fn group_records_and_log_entries_change_with_the_dispatch_that_decided_it() {
    use crate::store::GroupRecord;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let logged = ["live", "gone"]
        .into_iter()
        .map(|group| Queued {
            deliveries: vec![],
            sent: Some(sent(group, &[("webhook/0", None), ("webhook/1", None)])),
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
        queued: with_ids(&store, logged),
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
    assert_eq!(
        kept,
        ["live", "live"],
        "every integration's entry of the group that is gone"
    );
    store.close().await.unwrap();
}

/// Settles delivery `id` after an attempt: delivered, or dead.
async fn settle(store: &SqliteStore, id: i64, delivered: bool, now: i64) {
    store
        .claim(vec![id], t(now), t(now + 10), PayloadRead::None)
        .await
        .unwrap();
    let (outcome, settle) = if delivered {
        ("delivered", Settle::Delivered)
    } else {
        (
            "permanent",
            Settle::Dead {
                error: "HTTP 400".into(),
            },
        )
    };
    let finished = Finished {
        id,
        attempt: attempt(outcome),
        settle,
        pause: None,
        state: None,
        now: t(now),
        spent: true,
    };
    store.finish(vec![finished]).await.unwrap();
}

/// Queues one notification for `group` to webhook/0 that told `firing` at `at`; returns its delivery.
async fn notify(store: &SqliteStore, group: &str, firing: &[u64], at: i64) -> i64 {
    let queued = enqueue(
        store,
        vec![Queued {
            deliveries: vec![new_delivery(group)],
            sent: Some(Logged {
                told: told(firing, at),
                ..sent(group, &[("webhook/0", Some(0))])
            }),
        }],
    )
    .await;
    queued[0].id
}

#[tokio::test]
async fn a_dead_delivery_is_not_told_until_it_is_replayed_and_says_so_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut changes = store.log_changes().unwrap();
    assert!(store.log_changes().is_none(), "one stream, taken once");
    let first = notify(&store, "g", &[1], 0).await;
    settle(&store, first, true, 1).await;
    let second = notify(&store, "g", &[1, 2], 10).await;
    settle(&store, second, false, 11).await;

    let entry = store.sent().await.unwrap().remove(0);
    assert_eq!(
        (
            entry.dead,
            entry.delivery,
            entry.told.clone(),
            entry.had.clone()
        ),
        (true, Some(second), told(&[1, 2], 10), Some(told(&[1], 0))),
        "it has what it was told before the dead one"
    );
    let change = changes.try_recv().unwrap();
    assert_eq!(
        (
            change.integration_key.as_str(),
            change.group_key.as_str(),
            change.delivery
        ),
        ("webhook/0", "g", second)
    );
    assert_eq!(
        change.kind,
        LogChangeKind::Dead {
            had: Some(told(&[1], 0))
        }
    );

    // Replayed: counted as told again.
    store
        .retry_deliveries(RetrySelection::One(second), t(20))
        .await
        .unwrap();
    assert_eq!(changes.try_recv().unwrap().kind, LogChangeKind::Replayed);
    let entry = store.sent().await.unwrap().remove(0);
    assert_eq!((entry.dead, entry.told), (false, told(&[1, 2], 10)));
    settle(&store, second, false, 21).await;
    assert!(matches!(
        changes.try_recv().unwrap().kind,
        LogChangeKind::Dead { .. }
    ));

    // A later notification replaces the dead one; what the integration has stays what it had.
    let third = notify(&store, "g", &[1, 2, 3], 30).await;
    let entry = store.sent().await.unwrap().remove(0);
    assert_eq!(
        (entry.dead, entry.delivery, entry.had),
        (false, Some(third), Some(told(&[1], 0)))
    );
    // A dead delivery whose entry a later one replaced changes nothing; nor does replaying it.
    let fourth = notify(&store, "g", &[1, 2, 3, 4], 40).await;
    settle(&store, third, false, 41).await;
    store
        .retry_deliveries(RetrySelection::One(second), t(42))
        .await
        .unwrap();
    let entry = store.sent().await.unwrap().remove(0);
    assert_eq!(
        (entry.dead, entry.delivery, entry.had),
        (false, Some(fourth), Some(told(&[1, 2, 3], 30)))
    );
    assert!(changes.try_recv().is_err(), "no change to tell");
    store.close().await.unwrap();
}

#[tokio::test]
async fn an_entry_of_a_whole_receiver_from_an_older_herald_is_kept_until_copied_to_its_integrations()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    {
        // A store as the herald that logged per receiver left it.
        let mut connection = Connection::open(&path).unwrap();
        configure(&connection, Duration::from_millis(200)).unwrap();
        let transaction = connection.transaction().unwrap();
        for sql in &MIGRATIONS[..8] {
            transaction.execute_batch(sql).unwrap();
        }
        transaction.pragma_update(None, "user_version", 8).unwrap();
        transaction
            .execute(
                "INSERT INTO notification_log (receiver, group_key, firing, resolved, sent_at) \
                 VALUES ('team', 'g', ?1, '[]', ?2)",
                params![
                    serde_json::to_string(&[Fingerprint(7)]).unwrap(),
                    to_micros(t(0))
                ],
            )
            .unwrap();
        transaction.commit().unwrap();
    }
    let store = open(&dir).await;
    let legacy = record("g", RECEIVER_ENTRY, told(&[7], 0), None);
    assert_eq!(store.sent().await.unwrap(), vec![legacy.clone()]);
    let adopted: Vec<SentRecord> = ["log/0", "webhook/0"]
        .into_iter()
        .map(|integration| SentRecord {
            integration_key: integration.into(),
            ..legacy.clone()
        })
        .collect();
    let dispatched = Dispatched {
        adopted: adopted.clone(),
        ..Dispatched::default()
    };
    store.dispatch(dispatched, t(1)).await.unwrap();
    assert_eq!(
        store.sent().await.unwrap(),
        adopted,
        "copied to each integration, in its place"
    );
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

#[tokio::test]
async fn delivery_ids_are_reserved_past_every_id_used_even_after_the_rows_are_gone_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let first = store.delivery_ids(3);
    assert_eq!(
        store.delivery_ids(1),
        first + 3,
        "reserved ids are consecutive"
    );
    let queued = queue(&store, &["a", "b"]).await;
    let highest = queued.iter().map(|record| record.id).max().unwrap();
    assert!(
        highest > first + 3,
        "each delivery takes a fresh id: {queued:?}"
    );
    for record in &queued {
        store.discard_delivery(record.id).await.unwrap();
    }
    store.close().await.unwrap();
    let store = open(&dir).await;
    assert_eq!(
        store.delivery_ids(1),
        highest + 1,
        "after a restart ids go on past the highest ever stored, though its row is gone"
    );
    store.close().await.unwrap();
}
