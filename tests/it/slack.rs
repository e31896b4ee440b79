//! `slack_configs` through herald's HTTP surface against the Slack emulator: incoming-webhook messages, the bot
//! mode's one-message-per-group lifecycle (post, update, thread replies, resolve, a restart in between, firing
//! again), and the same lifecycle through rate limits, server errors, in-body errors and timeouts, with the
//! emulator's rate limits on. herald and the emulator share a `ManualClock`, so every wait is checked exactly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::clock::{Clock, ManualClock};
use herald::config::{Settings, StorageBackend};
use serde_json::Value;

use crate::delivery::manual_clock;
use crate::harness::Herald;
use crate::slack_emulator::{Endpoint, Failure, Recorded, SlackEmulator};

const TOKEN: &str = "xoxb-herald-test-t0ken";
const FOREVER: &str = "2100-01-01T00:00:00Z";
/// The channel's id in the emulator.
const CHANNEL: &str = "C0ALERTS";

/// Settings from YAML: one receiver `team` with one `slack_configs` entry (its keys, one per line), grouping by
/// alertname, notifying at once, then every minute; repeats after an hour; the store in `db`.
fn settings(db: &Path, slack: &[String]) -> Settings {
    let config = slack.join("\n        ");
    let yaml = format!(
        "server:\n  external_url: https://herald.example\n\
         route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1m\n  \
         repeat_interval: 1h\n\
         receivers:\n  - name: team\n    slack_configs:\n      - {config}\n"
    );
    let mut settings = herald::config::load_str(&yaml, "test.yaml")
        .unwrap_or_else(|errors| panic!("{errors}"))
        .settings;
    settings.storage.backend = StorageBackend::Sqlite {
        path: db.to_path_buf(),
    };
    settings
}

/// Bot mode on the emulator's channel `alerts`.
fn bot_config(slack: &SlackEmulator, thread_replies: bool, extra: &[&str]) -> Vec<String> {
    let mut lines = vec![
        format!("api_url: {}", slack.api_url()),
        format!("token: {TOKEN}"),
        "channel: \"#alerts\"".to_owned(),
        format!("thread_replies: {thread_replies}"),
        "retry: {initial_backoff: 1s, max_backoff: 10s}".to_owned(),
    ];
    lines.extend(extra.iter().map(|line| (*line).to_owned()));
    lines
}

/// An emulator with the channel `alerts` (`C0ALERTS`, the bot a member) and the bot token.
async fn emulator(clock: &Arc<ManualClock>) -> SlackEmulator {
    let slack = SlackEmulator::start(clock.clone()).await;
    slack.channel("alerts", CHANNEL, true).token(TOKEN);
    slack
}

/// Alert `DiskFull` on `instance`, ending at `ends_at`.
/// herald with the Slack integration `slack` (see [`settings`]), its store in `dir`, on `clock`.
async fn start_herald(dir: &Path, slack: &[String], clock: &Arc<ManualClock>) -> Herald {
    Herald::start_with_clock(settings(&dir.join("h.db"), slack), clock.clone()).await
}

/// Posts one alert for `instance`, firing for good, and runs the first delivery to its end; returns its detail.
async fn deliver_first(herald: &Herald, clock: &ManualClock, instance: &str) -> Value {
    post_alerts(herald, &[alert(instance, FOREVER)]).await;
    let id = nth_delivery(herald, 1).await;
    run_to_end(herald, clock, id).await
}

fn alert(instance: &str, ends_at: &str) -> String {
    format!(
        r#"{{"labels":{{"alertname":"DiskFull","instance":"{instance}","severity":"critical"}},
        "annotations":{{"summary":"{instance} disk full","runbook_url":"https://runbooks.example/disk"}},
        "generatorURL":"http://prometheus.example/graph?g0.expr=disk","endsAt":"{ends_at}"}}"#
    )
}

async fn post_alerts(herald: &Herald, alerts: &[String]) {
    let response = herald
        .post_json("/api/v2/alerts", format!("[{}]", alerts.join(",")))
        .await;
    assert_eq!(response.status(), 200);
}

/// The alerts on `instances`, resolved now.
async fn resolve(herald: &Herald, clock: &ManualClock, instances: &[&str]) {
    let now = clock.now().to_rfc3339();
    let alerts: Vec<String> = instances.iter().map(|i| alert(i, &now)).collect();
    post_alerts(herald, &alerts).await;
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

fn attempts(detail: &Value) -> u64 {
    detail["delivery"]["attempts"].as_u64().unwrap()
}

fn state(detail: &Value) -> &str {
    detail["delivery"]["state"].as_str().unwrap()
}

/// The id of the `n`th delivery queued (1-based), waiting (up to a generous bound) for it.
async fn nth_delivery(herald: &Herald, n: usize) -> i64 {
    for _ in 0..1200 {
        let deliveries = herald.deliveries("?limit=1000").await;
        if deliveries.len() >= n {
            return deliveries[deliveries.len() - n]["id"].as_i64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("delivery {n} was never queued");
}

/// Lets delivery `id` run to its end: after each failed attempt, moves the shared clock to when herald said it would
/// try again (or, if later, when its 1/s rate limit allows the next send); returns the settled delivery.
async fn run_to_end(herald: &Herald, clock: &ManualClock, id: i64) -> Value {
    let mut tried = 0;
    loop {
        let detail = herald
            .wait_for_delivery(id, "attempted or settled", |d| {
                matches!(state(d), "delivered" | "dead")
                    || (state(d) == "pending" && attempts(d) > tried)
            })
            .await;
        if matches!(state(&detail), "delivered" | "dead") {
            return detail;
        }
        tried = attempts(&detail);
        let next = time(&detail["delivery"]["next_attempt_at"]);
        let last = detail["attempts"].as_array().unwrap().last().unwrap();
        let allowed = time(&last["started_at"]) + chrono::Duration::seconds(1);
        clock.set(next.max(allowed).max(clock.now()));
    }
}

/// Moves the clock past the group's next flush (group_interval 1m) and runs the `n`th delivery to its end.
async fn flush(herald: &Herald, clock: &ManualClock, n: usize) -> Value {
    clock.advance(Duration::from_secs(61));
    let id = nth_delivery(herald, n).await;
    run_to_end(herald, clock, id).await
}

/// No request went out before the wait a rate limit asked for (its Retry-After, else herald's 30 s default).
fn assert_retry_after_honoured(requests: &[Recorded]) {
    for (i, request) in requests.iter().enumerate() {
        let limited = request.status() == Some(429)
            || matches!(
                request.error().as_deref(),
                Some("ratelimited" | "rate_limited")
            );
        if !limited {
            continue;
        }
        let wait = request
            .answer
            .as_ref()
            .and_then(|answer| answer.retry_after)
            .unwrap_or(30);
        let until = request.at + chrono::Duration::seconds(wait as i64);
        for later in &requests[i + 1..] {
            assert!(
                later.at >= until,
                "{:?} at {} came before the Retry-After of request {i} expired at {until}",
                later.endpoint,
                later.at
            );
        }
    }
}

#[tokio::test]
async fn webhook_mode_posts_a_coloured_message_for_the_firing_and_another_for_the_resolve() {
    let clock = manual_clock();
    let slack = emulator(&clock).await;
    let url = slack.webhook_url("team");
    let dir = tempfile::tempdir().unwrap();
    let config = vec![
        format!("api_url: {url}"),
        "channel: \"#ops\"".to_owned(),
        "username: herald".to_owned(),
        "icon_emoji: \":rotating_light:\"".to_owned(),
    ];
    let herald = start_herald(dir.path(), &config, &clock).await;

    let detail = deliver_first(&herald, &clock, "db-1").await;
    assert_eq!(state(&detail), "delivered");
    let posts = slack.webhook_posts("team");
    assert_eq!(posts.len(), 1);
    let firing = &posts[0];
    assert_eq!(firing.text, "[FIRING:1] DiskFull");
    assert_eq!(firing.channel.as_deref(), Some("#ops"));
    assert_eq!(firing.username.as_deref(), Some("herald"));
    assert_eq!(firing.icon_emoji.as_deref(), Some(":rotating_light:"));
    assert_eq!(firing.attachments[0]["color"], "#FF0000");
    assert_eq!(
        firing.blocks[0]["text"]["text"],
        "*<http://prometheus.example/graph?g0.expr=disk|[FIRING:1] DiskFull>*"
    );
    let details = firing.attachments[0]["blocks"].to_string();
    assert!(details.contains("db-1 disk full"), "{details}");
    assert!(
        details.contains("<https://runbooks.example/disk|:book: Runbook>"),
        "{details}"
    );
    assert!(
        details.contains(
            "https://herald.example/#/silences/new?filter=%7Balertname%3D%22DiskFull%22%7D"
        ),
        "{details}"
    );
    let secret = url.rsplit('/').next().unwrap();
    assert!(!detail.to_string().contains(secret), "the URL is a secret");

    resolve(&herald, &clock, &["db-1"]).await;
    let detail = flush(&herald, &clock, 2).await;
    assert_eq!(state(&detail), "delivered");
    let posts = slack.webhook_posts("team");
    assert_eq!(posts.len(), 2, "webhooks cannot edit: a second message");
    assert_eq!(posts[1].text, "[RESOLVED] DiskFull");
    assert_eq!(posts[1].attachments[0]["color"], "#439FE0");
    assert_eq!(slack.violations().total(), 0);
    herald.stop().await;
}

#[tokio::test]
async fn bot_mode_keeps_one_message_per_group_updated_and_threaded_across_a_restart() {
    let clock = manual_clock();
    let slack = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let config = bot_config(&slack, true, &[]);
    let herald = start_herald(dir.path(), &config, &clock).await;

    assert_eq!(
        state(&deliver_first(&herald, &clock, "a").await),
        "delivered"
    );
    let messages = slack.messages("alerts");
    assert_eq!(messages.len(), 1);
    let ts = messages[0].ts.clone();
    assert_eq!(messages[0].text, "[FIRING:1] DiskFull");
    assert_eq!(messages[0].attachments[0]["color"], "#FF0000");
    let post = &slack.requests_to(Endpoint::PostMessage)[0];
    assert_eq!(post.token(), Some(TOKEN));
    assert_eq!(
        post.headers["content-type"],
        "application/json; charset=utf-8"
    );

    // A new alert joins the group: the message is updated and the thread says what changed.
    post_alerts(&herald, &[alert("b", FOREVER)]).await;
    assert_eq!(state(&flush(&herald, &clock, 2).await), "delivered");
    assert_eq!(
        slack.messages("alerts").len(),
        1,
        "no new top-level message"
    );
    let message = slack.message("alerts", &ts).unwrap();
    assert_eq!(message.text, "[FIRING:2] DiskFull");
    assert_eq!(message.updates(), 1);
    let thread = slack.thread("alerts", &ts);
    assert_eq!(thread.len(), 1);
    assert!(
        thread[0].text.contains("1 newly firing") && thread[0].text.contains("instance=b"),
        "{}",
        thread[0].text
    );

    // Restarted on the same store, herald still updates the same message when the repeat comes.
    herald.stop().await;
    let herald = start_herald(dir.path(), &config, &clock).await;
    clock.advance(Duration::from_secs(3600));
    let id = nth_delivery(&herald, 3).await;
    let detail = run_to_end(&herald, &clock, id).await;
    assert_eq!(state(&detail), "delivered");
    assert_eq!(detail["notification"]["reason"], "repeat");
    let update = slack.requests_to(Endpoint::Update).pop().unwrap();
    assert_eq!(update.body["ts"], ts.as_str());
    assert_eq!(update.body["channel"], CHANNEL);
    assert_eq!(slack.messages("alerts").len(), 1);
    assert_eq!(slack.message("alerts", &ts).unwrap().updates(), 2);
    let thread = slack.thread("alerts", &ts);
    assert_eq!(thread.len(), 2);
    assert!(
        thread[1].text.contains("Still firing"),
        "{}",
        thread[1].text
    );

    // The resolve updates it to resolved.
    resolve(&herald, &clock, &["a", "b"]).await;
    assert_eq!(state(&flush(&herald, &clock, 4).await), "delivered");
    let message = slack.message("alerts", &ts).unwrap();
    assert_eq!(message.text, "[RESOLVED] DiskFull");
    assert_eq!(message.attachments[0]["color"], "#439FE0");
    assert_eq!(slack.messages("alerts").len(), 1);
    let thread = slack.thread("alerts", &ts);
    assert_eq!(thread.len(), 3);
    assert!(
        thread[2].text.contains("All resolved"),
        "{}",
        thread[2].text
    );

    // Firing again after the resolve is a new incident: a new message.
    post_alerts(&herald, &[alert("a", FOREVER)]).await;
    assert_eq!(state(&flush(&herald, &clock, 5).await), "delivered");
    let messages = slack.messages("alerts");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].text, "[FIRING:1] DiskFull");
    assert_eq!(
        slack.message("alerts", &ts).unwrap().text,
        "[RESOLVED] DiskFull",
        "the old incident's message stays resolved"
    );
    assert_eq!(slack.violations().total(), 0);
    assert_retry_after_honoured(&slack.requests());
    herald.stop().await;
}

#[tokio::test]
async fn bot_mode_rides_out_rate_limits_errors_and_timeouts_without_duplicates_or_lost_updates() {
    let clock = manual_clock();
    let slack = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let config = bot_config(&slack, true, &["timeout: 500ms"]);
    let herald = start_herald(dir.path(), &config, &clock).await;

    // The first post is answered 429 with Retry-After: 30.
    slack.fail_next(
        Endpoint::PostMessage,
        1,
        Failure::RateLimited { retry_after: 30 },
    );
    let detail = deliver_first(&herald, &clock, "a").await;
    assert_eq!(state(&detail), "delivered");
    let outcomes: Vec<&str> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["rate_limited", "delivered"]);
    let posts = slack.requests_to(Endpoint::PostMessage);
    assert_eq!(
        posts[1].at - posts[0].at,
        chrono::Duration::seconds(30),
        "retried exactly when Retry-After allowed"
    );
    let ts = slack.messages("alerts")[0].ts.clone();

    // An update meets a 503, then an in-body `ratelimited` (no Retry-After: herald waits 30 s).
    slack
        .fail_next(Endpoint::Update, 1, Failure::Unavailable)
        .fail_next(Endpoint::Update, 1, Failure::api_error("ratelimited"));
    post_alerts(&herald, &[alert("b", FOREVER)]).await;
    let detail = flush(&herald, &clock, 2).await;
    assert_eq!(state(&detail), "delivered");
    assert_eq!(attempts(&detail), 3);

    // `internal_error` on the update, then on the thread reply after the update went through: the retry edits the
    // same message again and replies once.
    slack
        .fail_next(Endpoint::Update, 1, Failure::api_error("internal_error"))
        .fail_next(
            Endpoint::PostMessage,
            1,
            Failure::api_error("internal_error"),
        );
    post_alerts(&herald, &[alert("c", FOREVER)]).await;
    let detail = flush(&herald, &clock, 3).await;
    assert_eq!(state(&detail), "delivered");
    assert_eq!(attempts(&detail), 3);
    let errors: Vec<&str> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["error"].as_str())
        .collect();
    assert!(errors[1].contains("thread reply failed"), "{errors:?}");

    // The resolve's update hangs past the 500ms timeout, then goes through.
    slack.fail_next(Endpoint::Update, 1, Failure::Hang);
    resolve(&herald, &clock, &["a", "b", "c"]).await;
    let detail = flush(&herald, &clock, 4).await;
    assert_eq!(state(&detail), "delivered");
    assert!(
        detail["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("timeout"),
        "{detail:#}"
    );

    let messages = slack.messages("alerts");
    assert_eq!(messages.len(), 1, "no duplicate top-level message");
    let message = &messages[0];
    assert_eq!(message.ts, ts);
    assert_eq!(message.text, "[RESOLVED] DiskFull", "no update lost");
    assert_eq!(message.attachments[0]["color"], "#439FE0");
    let thread: Vec<String> = slack
        .thread("alerts", &ts)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(thread.len(), 3, "one reply per update: {thread:#?}");
    assert!(thread[0].contains("instance=b"), "{thread:#?}");
    assert!(thread[1].contains("instance=c"), "{thread:#?}");
    assert!(thread[2].contains("All resolved"), "{thread:#?}");
    for update in slack.requests_to(Endpoint::Update) {
        assert_eq!(
            update.body["ts"],
            ts.as_str(),
            "every update targets the message"
        );
    }
    let requests = slack.requests();
    assert_retry_after_honoured(&requests);
    assert!(
        requests.iter().any(|r| r.answer.is_none()),
        "one request hung"
    );
    assert_eq!(slack.violations().total(), 0);
    herald.stop().await;
}

#[tokio::test]
async fn a_message_that_cannot_be_edited_any_more_is_replaced_and_later_updates_follow_the_new_one()
{
    let clock = manual_clock();
    let slack = emulator(&clock).await;
    slack.set_edit_window(Some(Duration::from_secs(30)));
    let dir = tempfile::tempdir().unwrap();
    let config = bot_config(&slack, false, &[]);
    let herald = start_herald(dir.path(), &config, &clock).await;

    assert_eq!(
        state(&deliver_first(&herald, &clock, "a").await),
        "delivered"
    );
    post_alerts(&herald, &[alert("b", FOREVER)]).await;
    assert_eq!(state(&flush(&herald, &clock, 2).await), "delivered");
    let updates = slack.requests_to(Endpoint::Update);
    assert_eq!(updates[0].error().as_deref(), Some("edit_window_closed"));
    let messages = slack.messages("alerts");
    assert_eq!(messages.len(), 2, "replaced by a new message");
    assert_eq!(messages[1].text, "[FIRING:2] DiskFull");
    let newer = messages[1].ts.clone();

    slack.set_edit_window(None);
    post_alerts(&herald, &[alert("c", FOREVER)]).await;
    assert_eq!(state(&flush(&herald, &clock, 3).await), "delivered");
    let update = slack.requests_to(Endpoint::Update).pop().unwrap();
    assert_eq!(update.body["ts"], newer.as_str());
    assert_eq!(slack.messages("alerts").len(), 2);
    assert_eq!(
        slack.message("alerts", &newer).unwrap().text,
        "[FIRING:3] DiskFull"
    );
    assert!(
        slack.thread("alerts", &newer).is_empty(),
        "no thread replies unless asked"
    );
    assert_eq!(slack.violations().total(), 0);
    herald.stop().await;
}

#[tokio::test]
async fn a_permanent_slack_error_makes_the_delivery_dead_with_its_reason() {
    let clock = manual_clock();
    let slack = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = bot_config(&slack, false, &[]);
    config[2] = "channel: \"#nowhere\"".to_owned();
    let herald = start_herald(dir.path(), &config, &clock).await;

    let detail = deliver_first(&herald, &clock, "a").await;
    assert_eq!(state(&detail), "dead");
    assert_eq!(attempts(&detail), 1, "not retried");
    let dead = herald.deliveries("?state=dead&receiver=team").await;
    assert_eq!(dead.len(), 1);
    let reason = dead[0]["last_error"].as_str().unwrap();
    assert!(
        reason.starts_with("permanent error: Slack chat.postMessage: channel_not_found"),
        "{reason}"
    );
    assert!(!detail.to_string().contains(TOKEN), "the token is a secret");
    assert_eq!(slack.requests().len(), 1);
    herald.stop().await;
}

#[tokio::test]
async fn a_revoked_webhook_makes_the_delivery_dead_with_slacks_error() {
    let clock = manual_clock();
    let slack = emulator(&clock).await;
    let url = slack.webhook_url("revoked");
    slack.revoke_webhook("revoked");
    let dir = tempfile::tempdir().unwrap();
    let config = vec![format!("api_url: {url}")];
    let herald = start_herald(dir.path(), &config, &clock).await;

    let detail = deliver_first(&herald, &clock, "a").await;
    assert_eq!(state(&detail), "dead");
    let reason = detail["delivery"]["last_error"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 403") && reason.ends_with("invalid_token"),
        "{reason}"
    );
    let secret = url.rsplit('/').next().unwrap();
    assert!(!detail.to_string().contains(secret), "the URL is a secret");
    herald.stop().await;
}
