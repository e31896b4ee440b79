//! The delivery engine through herald's HTTP surface against a scripted webhook receiver: Retry-After, backoff,
//! rate limits, dead letters and replay, a destination down for a long stretch, order within a group, and the
//! admin guard. Time is a `ManualClock` shared by herald and the receiver, so waits are checked exactly.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use herald::clock::{Clock, ManualClock};
use herald::config::{Authorization, RateLimit, Secret};

use crate::harness::{Herald, delivery_options, firing, metric, webhook_settings};
use crate::receiver::{Reply, ScriptedReceiver};

/// A manual clock at a whole second, like the store's timestamps (microseconds) can hold exactly.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now().trunc_subsecs(0)))
}

fn time(value: &serde_json::Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

fn attempts(detail: &serde_json::Value) -> u64 {
    detail["delivery"]["attempts"].as_u64().unwrap()
}

#[tokio::test]
async fn retry_after_then_server_error_then_success_is_delivered_once_after_the_waits() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    receiver.script([
        Reply::retry_after(429, 2),
        Reply::status(500, "internal error"),
        Reply::ok(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut options = delivery_options();
    options.retry.initial_backoff = Duration::from_secs(1);
    options.retry.max_backoff = Duration::from_secs(10);
    let settings = webhook_settings(
        &dir.path().join("h.db"),
        "retry-after",
        &receiver.url(),
        options,
    );
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    let response = herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Disk")))
        .await;
    assert_eq!(response.status(), 200);
    let first = receiver.wait_for(1).await[0].clone();
    let id = herald.first_delivery().await;
    let detail = herald
        .wait_for_delivery(id, "tried once", |d| attempts(d) == 1)
        .await;
    let told = time(&detail["delivery"]["next_attempt_at"]);
    assert_eq!(
        told - first.at,
        chrono::Duration::seconds(2),
        "Retry-After: 2 is honoured"
    );
    assert_eq!(detail["delivery"]["state"], "pending");

    clock.set(told);
    let second = receiver.wait_for(2).await[1].clone();
    assert!(second.at - first.at >= chrono::Duration::seconds(2));
    let detail = herald
        .wait_for_delivery(id, "tried twice", |d| attempts(d) == 2)
        .await;
    let backoff = time(&detail["delivery"]["next_attempt_at"]);
    assert!(
        backoff >= second.at && backoff <= second.at + chrono::Duration::seconds(2),
        "second failure backs off below 2 × initial_backoff: {backoff} after {}",
        second.at
    );
    clock.set(backoff.max(clock.now()));

    let requests = receiver.wait_for(3).await;
    let detail = herald
        .wait_for_delivery(id, "delivered", |d| d["delivery"]["state"] == "delivered")
        .await;
    assert_eq!(requests.len(), 3, "delivered once");
    assert_eq!(requests[2].body["alerts"][0]["labels"]["alertname"], "Disk");
    assert_eq!(requests[2].body["version"], "4");
    assert_eq!(requests[2].headers["content-type"], "application/json");
    assert!(
        requests[2].headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("herald/")
    );
    let audit = detail["attempts"].as_array().unwrap();
    let outcomes: Vec<_> = audit
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["rate_limited", "retryable", "delivered"]);
    let codes: Vec<_> = audit
        .iter()
        .map(|a| a["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [429, 500, 200]);
    assert!(
        audit[0]["response"]
            .as_str()
            .unwrap()
            .contains("rate_limited")
    );
    assert_eq!(audit[1]["response"], "internal error");
    assert_eq!(
        detail["notification"]["alerts"][0]["alert"]["labels"]["alertname"],
        "Disk"
    );

    let text = herald.metrics().await;
    assert_eq!(
        metric(
            &text,
            "herald_notifications_total",
            &[("receiver", "retry-after")]
        ),
        1.0
    );
    assert!(
        metric(
            &text,
            "herald_rate_limited_total",
            &[("integration", "webhook")]
        ) >= 1.0
    );
    assert!(
        metric(
            &text,
            "herald_delivery_latency_seconds_count",
            &[("integration", "webhook")]
        ) >= 3.0
    );
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn a_destination_limited_to_one_per_second_gets_all_of_a_burst_of_100_no_faster() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    receiver.enforce_min_gap(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let mut options = delivery_options();
    options.rate_limit = Some(RateLimit {
        limit: 1,
        period: Duration::from_secs(1),
        burst: 1,
    });
    let settings = webhook_settings(
        &dir.path().join("h.db"),
        "limited",
        &receiver.url(),
        options,
    );
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    let alerts: Vec<String> = (0..100).map(|i| firing(&format!("Burst{i:03}"))).collect();
    let response = herald
        .post_json("/api/v2/alerts", format!("[{}]", alerts.join(",")))
        .await;
    assert_eq!(response.status(), 200);
    for count in 1..=100 {
        receiver.wait_for(count).await;
        clock.advance(Duration::from_secs(1));
    }
    let requests = receiver.requests();
    for _ in 0..1200 {
        if herald.deliveries("?state=delivered&limit=1000").await.len() == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        herald.deliveries("?state=delivered&limit=1000").await.len(),
        100
    );
    assert_eq!(requests.len(), 100, "each notification sent once");
    assert_eq!(receiver.violations(), 0, "never faster than the limit");
    let mut groups: Vec<String> = requests.iter().map(|r| r.group_key()).collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups.len(), 100, "all 100 notifications arrived");
    for pair in requests.windows(2) {
        assert!(pair[1].at - pair[0].at >= chrono::Duration::seconds(1));
    }
    herald.stop().await;
    receiver.stop();
}

/// herald whose receiver `name` answered 400 `invalid_payload` to its one notification: that delivery is dead.
pub struct DeadDelivery {
    pub herald: Herald,
    pub receiver: ScriptedReceiver,
    pub id: i64,
    pub detail: serde_json::Value,
    /// Holds the store's directory for as long as the test runs.
    pub _dir: tempfile::TempDir,
}

pub async fn with_a_dead_delivery(name: &str) -> DeadDelivery {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    receiver.script([Reply::status(400, "invalid_payload")]);
    let dir = tempfile::tempdir().unwrap();
    let settings = webhook_settings(
        &dir.path().join("h.db"),
        name,
        &receiver.url(),
        delivery_options(),
    );
    let herald = Herald::start_with_clock(settings, clock).await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Bad")))
        .await;
    let id = herald.first_delivery().await;
    let detail = herald
        .wait_for_delivery(id, "dead", |d| d["delivery"]["state"] == "dead")
        .await;
    DeadDelivery {
        herald,
        receiver,
        id,
        detail,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_permanent_error_is_dead_with_its_reason_and_replay_delivers_it() {
    let DeadDelivery {
        herald,
        receiver,
        id,
        detail,
        _dir,
    } = with_a_dead_delivery("permanent").await;
    let reason = detail["delivery"]["last_error"].as_str().unwrap();
    assert!(reason.starts_with("permanent error: HTTP 400"), "{reason}");
    assert!(reason.contains("invalid_payload"), "{reason}");
    assert_eq!(
        herald
            .deliveries("?state=dead&receiver=permanent")
            .await
            .len(),
        1
    );
    assert_eq!(
        receiver.requests().len(),
        1,
        "a permanent error is not retried"
    );
    let text = herald.metrics().await;
    assert_eq!(
        metric(&text, "herald_deliveries", &[("state", "dead")]),
        1.0
    );
    assert_eq!(
        metric(&text, "herald_deliveries", &[("state", "pending")]),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            "herald_notifications_failed_total",
            &[("receiver", "permanent"), ("reason", "permanent")]
        ),
        1.0
    );

    let replay = herald
        .client
        .post(herald.url("/api/herald/v1/deliveries/retry?state=dead&receiver=permanent"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let body: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(body["retried"], 1);
    let detail = herald
        .wait_for_delivery(id, "delivered", |d| d["delivery"]["state"] == "delivered")
        .await;
    assert_eq!(receiver.requests().len(), 2);
    assert_eq!(
        detail["attempts"].as_array().unwrap().len(),
        2,
        "both attempts are kept"
    );
    assert_eq!(
        detail["delivery"]["last_error"],
        serde_json::Value::Null,
        "delivered: the earlier error stays in its attempt only"
    );

    // A delivered delivery can be discarded; an unknown one is 404.
    let discard = herald
        .client
        .delete(herald.url(&format!("/api/herald/v1/deliveries/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(discard.status(), 200);
    let gone = herald.get(&format!("/api/herald/v1/deliveries/{id}")).await;
    assert_eq!(gone.status(), 404);
    let bad = herald.get("/api/herald/v1/deliveries?state=lost").await;
    assert_eq!(bad.status(), 400);
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn a_destination_down_for_a_long_stretch_loses_nothing_and_recovers_by_itself() {
    let clock = manual_clock();
    let start = clock.now();
    // A port nobody listens on: connections are refused.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let dir = tempfile::tempdir().unwrap();
    let mut options = delivery_options();
    options.retry.initial_backoff = Duration::from_secs(1);
    options.retry.max_backoff = Duration::from_secs(60);
    let url = format!("http://{addr}/hook");
    let settings = webhook_settings(&dir.path().join("h.db"), "outage", &url, options);
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Outage")))
        .await;
    let id = herald.first_delivery().await;
    let mut next_step = clock.now();
    for tried in 1..=6 {
        let detail = herald
            .wait_for_delivery(id, "retried", |d| attempts(d) == tried)
            .await;
        assert_eq!(detail["delivery"]["state"], "pending");
        let last = &detail["attempts"][tried as usize - 1];
        assert_eq!(last["outcome"], "retryable");
        assert!(
            !last["error"].as_str().unwrap().contains("/hook"),
            "errors never show the URL"
        );
        // Time passes well beyond each backoff while the destination stays down (the last step waits until the
        // destination is back up, so that attempt reaches it).
        next_step = time(&detail["delivery"]["next_attempt_at"]) + chrono::Duration::minutes(10);
        if tried < 6 {
            clock.set(next_step);
        }
    }
    let waited = metric(
        &herald.metrics().await,
        "herald_delivery_oldest_open_seconds",
        &[],
    );
    assert!(
        waited >= 2400.0,
        "the outbox says how long its oldest delivery waits: {waited}"
    );
    let receiver = ScriptedReceiver::start_on(addr, clock.clone()).await;
    receiver.script([
        Reply::status(503, "unavailable"),
        Reply::status(503, "unavailable"),
        Reply::status(503, "unavailable"),
    ]);
    clock.set(next_step);
    // Down since the third failure: its one waiting delivery goes when the destination's probe does, at most
    // 5 s after its failure (MAX_PROBE_INTERVAL), and not before its own retry time (else the attempt is a probe
    // ahead of it, which spends nothing).
    for tried in 7..=9 {
        let detail = herald
            .wait_for_delivery(id, "retried", |d| attempts(d) == tried)
            .await;
        let failed = time(&detail["attempts"][tried as usize - 1]["started_at"]);
        let own = time(&detail["delivery"]["next_attempt_at"]);
        clock.set(
            own.max(failed + chrono::Duration::seconds(6))
                .max(clock.now()),
        );
    }
    let detail = herald
        .wait_for_delivery(id, "delivered", |d| d["delivery"]["state"] == "delivered")
        .await;
    assert!(
        clock.now() - start > chrono::Duration::hours(1),
        "a long stretch"
    );
    assert_eq!(attempts(&detail), 10);
    assert_eq!(
        metric(
            &herald.metrics().await,
            "herald_delivery_oldest_open_seconds",
            &[]
        ),
        0.0
    );
    let answered: Vec<_> = receiver
        .requests()
        .iter()
        .map(|r| r.answered.unwrap())
        .collect();
    assert_eq!(answered, [503, 503, 503, 200]);
    assert_eq!(
        receiver.requests()[3].body["alerts"][0]["labels"]["alertname"],
        "Outage"
    );
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn a_resolve_never_overtakes_its_firing() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    receiver.script([Reply::retry_after(429, 600)]);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = webhook_settings(
        &dir.path().join("h.db"),
        "ordered",
        &receiver.url(),
        delivery_options(),
    );
    settings.route.group_interval = Duration::from_secs(60);
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Flap")))
        .await;
    let id = herald.first_delivery().await;
    let detail = herald
        .wait_for_delivery(id, "failed once", |d| attempts(d) == 1)
        .await;
    let retry_at = time(&detail["delivery"]["next_attempt_at"]);
    let ended = clock.now().to_rfc3339();
    let resolve = format!(r#"[{{"labels":{{"alertname":"Flap"}},"endsAt":"{ended}"}}]"#);
    herald.post_json("/api/v2/alerts", resolve).await;
    // The group flushes the resolve after group_interval, while the firing still waits for its retry.
    clock.advance(Duration::from_secs(61));
    for _ in 0..1200 {
        if herald.deliveries("").await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let queued = herald.deliveries("").await;
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0]["status"], "resolved");
    // Queued, possibly claimed as it was stored (its receiver had a free slot), but not sent.
    assert!(
        matches!(queued[0]["state"].as_str(), Some("pending" | "in_flight")),
        "{queued:#?}"
    );
    assert_eq!(
        receiver.requests().len(),
        1,
        "the resolve waits behind its firing"
    );
    clock.set(retry_at.max(clock.now()));
    let requests = receiver.wait_for(3).await;
    let statuses: Vec<_> = requests
        .iter()
        .map(|r| r.body["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["firing", "firing", "resolved"]);
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn admin_tokens_guard_the_operator_api_and_silence_writes() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = webhook_settings(
        &dir.path().join("h.db"),
        "guarded",
        &receiver.url(),
        delivery_options(),
    );
    settings.server.admin_tokens = vec![Secret::new("s3cret-token")];
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    let anonymous = herald.get("/api/herald/v1/deliveries").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = herald
        .client
        .get(herald.url("/api/herald/v1/deliveries"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let allowed = herald
        .client
        .get(herald.url("/api/herald/v1/deliveries"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let silence = r#"{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2100-01-01T00:00:00Z","createdBy":"t","comment":"c"}"#;
    let denied = herald.post_json("/api/v2/silences", silence).await;
    assert_eq!(denied.status(), 401);
    let created = herald
        .client
        .post(herald.url("/api/v2/silences"))
        .bearer_auth("s3cret-token")
        .header("content-type", "application/json")
        .body(silence)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    // With a token configured, reading and posting alerts need one too; health and readiness stay open.
    assert_eq!(herald.get("/api/v2/silences").await.status(), 401);
    let posted = herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Open")))
        .await;
    assert_eq!(posted.status(), 401);
    assert_eq!(herald.get("/-/ready").await.status(), 200);
    assert_eq!(herald.get("/-/healthy").await.status(), 200);
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn a_spent_rate_limit_budget_holds_the_destination_until_its_reset() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    receiver.script([Reply::Status {
        code: 200,
        headers: vec![
            ("x-ratelimit-limit", "100".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", "5".into()),
        ],
        body: "ok".into(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let settings = webhook_settings(
        &dir.path().join("h.db"),
        "budget",
        &receiver.url(),
        delivery_options(),
    );
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("First")))
        .await;
    let first = receiver.wait_for(1).await[0].clone();
    let id = herald.first_delivery().await;
    herald
        .wait_for_delivery(id, "delivered", |d| d["delivery"]["state"] == "delivered")
        .await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Second")))
        .await;
    for _ in 0..1200 {
        if herald.deliveries("?state=pending").await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        herald.deliveries("?state=pending").await.len(),
        1,
        "queued, waiting"
    );
    clock.advance(Duration::from_secs(5));
    let second = receiver.wait_for(2).await[1].clone();
    assert!(
        second.at - first.at >= chrono::Duration::seconds(5),
        "held until the reset"
    );
    assert_eq!(second.body["alerts"][0]["labels"]["alertname"], "Second");
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn a_send_still_in_flight_after_the_drain_time_goes_back_to_pending() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    receiver.script([Reply::Hang]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let mut settings = webhook_settings(&db, "drained", &receiver.url(), delivery_options());
    settings.delivery.drain_timeout = Duration::from_millis(200);
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Slow")))
        .await;
    receiver.wait_for(1).await;
    herald.stop().await;
    let connection = rusqlite::Connection::open(&db).unwrap();
    let (state, lease): (String, Option<i64>) = connection
        .query_row("SELECT state, lease_until FROM deliveries", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (state.as_str(), lease),
        ("pending", None),
        "returned to pending at shutdown"
    );
    receiver.stop();
}

#[tokio::test]
async fn webhooks_carry_authorization_and_a_verifiable_signature() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = webhook_settings(
        &dir.path().join("h.db"),
        "signed",
        &receiver.url(),
        delivery_options(),
    );
    let hook = &mut settings.receivers[0].webhook_configs[0];
    hook.http.authorization = Some(Authorization {
        value: Secret::new("Bearer hook-token"),
        secret: Secret::new("hook-token"),
    });
    hook.hmac_secret = Some(Secret::new("signing-key"));
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Signed")))
        .await;
    let request = receiver.wait_for(1).await[0].clone();
    assert_eq!(request.headers["authorization"], "Bearer hook-token");
    let timestamp: i64 = request.headers["x-herald-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(timestamp, clock.now().timestamp());
    let expected =
        herald::sinks::webhook::signature(b"signing-key", timestamp, &request.raw).unwrap();
    assert_eq!(
        request.headers["x-herald-signature"],
        format!("sha256={expected}").as_str()
    );
    herald.stop().await;
    receiver.stop();
}
