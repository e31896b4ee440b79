//! `wecom_configs` through herald's HTTP surface against the WeCom robot emulator: markdown coloured by severity,
//! text with mentions and content cut on a UTF-8 boundary, 45009 waited out, a burst of groups kept under 20 messages
//! a minute, and 93000 dead-lettered with WeCom's errmsg, then replayed. herald and the emulator share a
//! `ManualClock`.

use std::sync::Arc;
use std::time::Duration;

use herald::clock::ManualClock;

use crate::delivery::manual_clock;
use crate::flow::{
    FOREVER, alert, attempts, deliver, flush, outcomes, post_alerts, replay_dead, resolve, start,
    state,
};
use crate::wecom_emulator::{Failure, MAX_TEXT_BYTES, WeComEmulator};

/// herald's default rate limit for WeCom: 20 a minute.
const GAP: Duration = Duration::from_secs(3);

fn config(robot: &str, extra: &str) -> String {
    format!(
        "    wecom_configs:\n      - url: '{robot}'\n        retry: {{initial_backoff: 1s, max_backoff: 10s}}\n{extra}"
    )
}

async fn emulator(clock: &Arc<ManualClock>) -> (WeComEmulator, String) {
    let wecom = WeComEmulator::start(clock.clone()).await;
    let robot = wecom.robot();
    (wecom, robot)
}

#[tokio::test]
async fn markdown_messages_for_the_firing_and_the_resolve() {
    let clock = manual_clock();
    let (wecom, robot) = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&robot, ""), &clock).await;

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
        detail["attempts"][0]["response"],
        r#"{"errcode":0,"errmsg":"ok"}"#
    );
    assert_eq!(
        wecom.requests()[0].headers["content-type"],
        "application/json"
    );
    let messages = wecom.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].msgtype, "markdown");
    assert_eq!(
        messages[0].content,
        "**<font color=\"warning\">🔥 [FIRING:1] DiskFull</font>**\n> 🔥 **DiskFull**: db-1 disk full \
         `instance=db-1` `severity=critical`"
    );

    resolve(&herald, &clock, "DiskFull", &["db-1"]).await;
    assert_eq!(state(&flush(&herald, &clock, 2, GAP).await), "delivered");
    let messages = wecom.messages();
    assert_eq!(messages.len(), 2);
    assert!(
        messages[1].content.starts_with(
            "**<font color=\"info\">✅ [RESOLVED] DiskFull</font>**\n> ✅ **DiskFull**"
        ),
        "{}",
        messages[1].content
    );
    let key = robot.rsplit('=').next().unwrap();
    assert!(
        !detail.to_string().contains(key),
        "the robot's key is a secret"
    );
    assert_eq!(wecom.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn text_messages_mention_and_are_cut_to_2048_bytes_on_a_character_boundary() {
    let clock = manual_clock();
    let (wecom, robot) = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "        msg_type: text\n        mentioned_list: ['@all']\n        \
                 mentioned_mobile_list: ['13800000000']\n        \
                 text: \"{% for i in range(400) %}磁盘已满，{% endfor %}\"\n";
    let herald = start(dir.path(), &config(&robot, extra), &clock).await;

    let detail = deliver(
        &herald,
        &clock,
        &[alert("DiskFull", "db-1", FOREVER)],
        1,
        GAP,
    )
    .await;
    assert_eq!(state(&detail), "delivered");
    let message = &wecom.messages()[0];
    assert_eq!(message.msgtype, "text");
    assert_eq!(message.mentioned_list, ["@all"]);
    assert_eq!(message.mentioned_mobile_list, ["13800000000"]);
    assert!(
        message
            .content
            .starts_with("🔥 [FIRING:1] DiskFull\n磁盘已满，")
    );
    assert!(message.content.len() <= MAX_TEXT_BYTES);
    assert!(
        message.content.len() > MAX_TEXT_BYTES - 4,
        "as much as fits"
    );
    assert!(
        message.content.ends_with("\n… (truncated)"),
        "{}",
        message.content
    );
    assert_eq!(wecom.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_45009_is_waited_out_for_a_minute_and_a_busy_robot_is_retried() {
    let clock = manual_clock();
    let (wecom, robot) = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&robot, ""), &clock).await;

    wecom
        .fail_next(1, Failure::rate_limited())
        .fail_next(1, Failure::ErrCode(-1, "system busy".to_owned()))
        .fail_next(1, Failure::Http(502, "Bad Gateway".to_owned()));
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
        ["rate_limited", "retryable", "retryable", "delivered"]
    );
    let requests = wecom.requests();
    assert!(
        requests[1].at - requests[0].at >= chrono::Duration::seconds(60),
        "a 45009 waits a minute"
    );
    assert_eq!(wecom.messages().len(), 1);
    assert_eq!(wecom.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_burst_of_groups_stays_within_20_messages_a_minute() {
    let clock = manual_clock();
    let (wecom, robot) = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&robot, ""), &clock).await;

    let groups = 25;
    let alerts: Vec<String> = (0..groups)
        .map(|i| alert(&format!("Alert{i:02}"), "db-1", FOREVER))
        .collect();
    post_alerts(&herald, &alerts).await;
    for sent in 1..=groups {
        wecom.wait_for_requests(sent).await;
        clock.advance(GAP);
    }
    let messages = wecom.messages();
    assert_eq!(messages.len(), groups);
    for pair in messages.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= chrono::Duration::seconds(3),
            "spaced by the rate limit"
        );
    }
    assert_eq!(wecom.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_93000_is_dead_with_wecoms_errmsg_and_a_replay_delivers_it_once() {
    let clock = manual_clock();
    let (wecom, robot) = emulator(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&robot, ""), &clock).await;

    wecom.fail_next(1, Failure::invalid_url());
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
    assert!(
        reason.starts_with(
            "permanent error: WeCom errcode 93000: invalid webhook url, hint: [1733200000_17_ab12]"
        ),
        "{reason}"
    );
    assert_eq!(replay_dead(&herald, &clock, GAP).await, 1);
    let id = detail["delivery"]["id"].as_i64().unwrap();
    let detail = herald
        .wait_for_delivery(id, "delivered", |d| state(d) == "delivered")
        .await;
    assert_eq!(outcomes(&detail), ["permanent", "delivered"]);
    assert_eq!(wecom.messages().len(), 1);
    assert_eq!(wecom.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}
