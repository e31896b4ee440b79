//! `pagerduty_configs` through herald's HTTP surface against the PagerDuty emulator: one PagerDuty alert per group
//! (one `dedup_key` across flushes, repeats and a restart; trigger while firing, resolve when resolved), rate limits
//! and server errors retried without an early request, and a 400 dead-lettered with PagerDuty's errors, then
//! replayed. herald and the emulator share a `ManualClock`.

use std::sync::Arc;
use std::time::Duration;

use herald::clock::ManualClock;
use serde_json::Value;

use crate::delivery::manual_clock;
use crate::flow::{
    FOREVER, alert, attempts, deliver, flush, nth_delivery, outcomes, post_alerts, replay_dead,
    resolve, run_to_end, start, state,
};
use crate::pagerduty_emulator::{Failure, PagerDutyEmulator};

const KEY: &str = "R0ut1ngKeyForHeraldTests0123abcd";
/// herald's default rate limit for PagerDuty: 120 a minute.
const GAP: Duration = Duration::from_millis(500);

async fn emulator(clock: &Arc<ManualClock>) -> PagerDutyEmulator {
    let pagerduty = PagerDutyEmulator::start(clock.clone()).await;
    pagerduty.routing_key(KEY);
    pagerduty
}

fn config(pagerduty: &PagerDutyEmulator, extra: &str) -> String {
    format!(
        "    pagerduty_configs:\n      - routing_key: {KEY}\n        url: {}\n        \
         retry: {{initial_backoff: 1s, max_backoff: 10s}}\n{extra}",
        pagerduty.url()
    )
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn one_dedup_key_per_group_across_flushes_repeats_a_restart_and_the_resolve() {
    let clock = manual_clock();
    let pagerduty = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &pagerduty,
        "        links: [{href: '{{ external_url }}/#/alerts', text: herald}]\n",
    );
    let herald = start(dir.path(), &config, &clock).await;

    let detail = deliver(
        &herald,
        &clock,
        &[alert("DiskFull", "db-1", FOREVER)],
        1,
        GAP,
    )
    .await;
    assert_eq!(state(&detail), "delivered");
    let group_key = detail["notification"]["group_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let dedup_key = sha256_hex(&group_key);
    let first = &pagerduty.requests()[0];
    assert_eq!(first.action(), "trigger");
    assert_eq!(first.dedup_key(), dedup_key);
    assert_eq!(first.body["routing_key"], KEY);
    let payload = &first.body["payload"];
    assert_eq!(payload["summary"], "[FIRING:1] DiskFull");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "db-1");
    assert_eq!(payload["custom_details"]["num_firing"], "1");
    assert!(
        payload["custom_details"]["firing"]
            .as_str()
            .unwrap()
            .contains("db-1 disk full"),
        "{payload}"
    );
    assert_eq!(first.body["client"], "herald");
    assert_eq!(first.body["client_url"], "https://herald.example");
    assert_eq!(
        first.body["links"][0]["href"],
        "https://herald.example/#/alerts"
    );
    assert_eq!(detail["attempts"][0]["status_code"], 202);

    // A second alert joins the group at the next flush: the same PagerDuty alert takes the trigger.
    post_alerts(&herald, &[alert("DiskFull", "db-2", FOREVER)]).await;
    assert_eq!(state(&flush(&herald, &clock, 2, GAP).await), "delivered");
    let second = pagerduty.requests().pop().unwrap();
    assert_eq!(
        (second.action(), second.dedup_key()),
        ("trigger", dedup_key.as_str())
    );
    assert_eq!(second.body["payload"]["summary"], "[FIRING:2] DiskFull");

    // Restarted on the same store, the repeat an hour later still uses the group's key.
    herald.stop().await;
    let herald = start(dir.path(), &config, &clock).await;
    clock.advance(Duration::from_secs(3600));
    let id = nth_delivery(&herald, 3).await;
    let detail = run_to_end(&herald, &clock, id, GAP).await;
    assert_eq!(state(&detail), "delivered");
    assert_eq!(detail["notification"]["reason"], "repeat");
    assert_eq!(pagerduty.requests().pop().unwrap().dedup_key(), dedup_key);

    // The resolve closes it; every event went to one PagerDuty alert.
    resolve(&herald, &clock, "DiskFull", &["db-1", "db-2"]).await;
    assert_eq!(state(&flush(&herald, &clock, 4, GAP).await), "delivered");
    let resolved = pagerduty.requests().pop().unwrap();
    assert_eq!(resolved.action(), "resolve");
    assert_eq!(resolved.dedup_key(), dedup_key);
    let alerts = pagerduty.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].dedup_key, dedup_key);
    assert_eq!(alerts[0].triggers.len(), 3);
    assert!(!alerts[0].open);

    // Another group gets its own key.
    let other = deliver(&herald, &clock, &[alert("CpuHot", "db-1", FOREVER)], 5, GAP).await;
    assert_eq!(state(&other), "delivered");
    assert_ne!(pagerduty.requests().pop().unwrap().dedup_key(), dedup_key);
    assert_eq!(pagerduty.alerts().len(), 2);
    assert_eq!(pagerduty.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_no_sooner_than_asked() {
    let clock = manual_clock();
    let pagerduty = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&pagerduty, ""), &clock).await;

    pagerduty
        .fail_next(
            1,
            Failure::RateLimited {
                retry_after: Some(20),
            },
        )
        .fail_next(1, Failure::ServerError(503))
        .fail_next(1, Failure::RateLimited { retry_after: None })
        .fail_next(1, Failure::ServerError(500));
    let detail = deliver(
        &herald,
        &clock,
        &[alert("DiskFull", "db-1", FOREVER)],
        1,
        GAP,
    )
    .await;
    assert_eq!(state(&detail), "delivered");
    assert_eq!(
        outcomes(&detail),
        [
            "rate_limited",
            "retryable",
            "rate_limited",
            "retryable",
            "delivered"
        ]
    );
    let requests = pagerduty.requests();
    assert_eq!(requests.len(), 5);
    assert!(
        requests[1].at - requests[0].at >= chrono::Duration::seconds(20),
        "Retry-After honoured"
    );
    assert!(
        requests[3].at - requests[2].at >= chrono::Duration::seconds(30),
        "a 429 without Retry-After waits herald's 30 s"
    );
    let keys: Vec<&str> = requests.iter().map(|r| r.dedup_key()).collect();
    assert!(keys.windows(2).all(|pair| pair[0] == pair[1]), "{keys:?}");
    assert_eq!(pagerduty.alerts().len(), 1);
    assert_eq!(pagerduty.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_400_is_dead_with_pagerdutys_errors_and_a_replay_delivers_it_once() {
    let clock = manual_clock();
    let pagerduty = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&pagerduty, ""), &clock).await;

    pagerduty.fail_next(
        1,
        Failure::Invalid(vec![
            "'payload.summary' is missing or blank".to_owned(),
            format!("Unknown routing key {KEY}"),
        ]),
    );
    let detail = deliver(
        &herald,
        &clock,
        &[alert("DiskFull", "db-1", FOREVER)],
        1,
        GAP,
    )
    .await;
    assert_eq!(state(&detail), "dead");
    assert_eq!(attempts(&detail), 1, "not retried");
    let reason = detail["delivery"]["last_error"].as_str().unwrap();
    assert_eq!(
        reason,
        "permanent error: PagerDuty rejected the event (HTTP 400 Bad Request): Event object is invalid: \
         'payload.summary' is missing or blank; Unknown routing key <redacted>"
    );
    assert_eq!(detail["attempts"][0]["status_code"], 400);
    assert!(
        !detail.to_string().contains(KEY),
        "the routing key is a secret"
    );

    assert_eq!(replay_dead(&herald, &clock, GAP).await, 1);
    let id = detail["delivery"]["id"].as_i64().unwrap();
    let detail = herald
        .wait_for_delivery(id, "delivered", |d| state(d) == "delivered")
        .await;
    assert_eq!(outcomes(&detail), ["permanent", "delivered"]);
    assert_eq!(pagerduty.requests().len(), 2);
    let alerts = pagerduty.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].triggers.len(), 1, "delivered once");
    assert_eq!(pagerduty.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_long_summary_and_details_are_cut_to_pagerdutys_limits() {
    let clock = manual_clock();
    let pagerduty = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &pagerduty,
        "        description: \"{% for i in range(600) %}磁盘已满 {% endfor %}\"\n        \
         details: {dump: \"{% for i in range(90000) %}告警告警{% endfor %}\"}\n        severity: warning\n",
    );
    let herald = start(dir.path(), &config, &clock).await;
    let detail = deliver(
        &herald,
        &clock,
        &[alert("DiskFull", "db-1", FOREVER)],
        1,
        GAP,
    )
    .await;
    assert_eq!(state(&detail), "delivered");
    let request = &pagerduty.requests()[0];
    let summary = request.body["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.starts_with("磁盘已满 磁盘已满") && summary.ends_with('…'));
    assert!(request.raw.len() <= 512 * 1024);
    let dump: &Value = &request.body["payload"]["custom_details"]["dump"];
    assert!(
        dump.as_str().unwrap().contains("cut to fit"),
        "the details were cut"
    );
    assert_eq!(request.body["payload"]["severity"], "warning");
    assert_eq!(pagerduty.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_burst_of_groups_stays_within_120_events_a_minute() {
    let clock = manual_clock();
    let pagerduty = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&pagerduty, ""), &clock).await;

    let groups = 130;
    let alerts: Vec<String> = (0..groups)
        .map(|i| alert(&format!("Alert{i:03}"), "db-1", FOREVER))
        .collect();
    post_alerts(&herald, &alerts).await;
    for sent in 1..=groups {
        pagerduty.wait_for_requests(sent).await;
        clock.advance(GAP);
    }
    let requests = pagerduty.requests();
    assert_eq!(requests.len(), groups);
    assert!(requests.iter().all(|r| r.status() == Some(202)));
    for pair in requests.windows(2) {
        assert!(pair[1].at - pair[0].at >= chrono::Duration::milliseconds(500));
    }
    assert_eq!(pagerduty.alerts().len(), groups);
    assert_eq!(pagerduty.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}
