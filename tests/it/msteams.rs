//! `msteamsv2_configs` through herald's HTTP surface against the Teams emulator: Adaptive Cards for the firing and
//! the resolve on a Workflows webhook and on a legacy connector, rate limits (a 429 with `Retry-After`, a connector's
//! "HTTP error 429" text) waited out, and a rejected card dead-lettered with Teams' answer, then replayed. herald and
//! the emulator share a `ManualClock`.

use std::time::Duration;

use crate::delivery::manual_clock;
use crate::flow::{
    FOREVER, alert, attempts, deliver, flush, outcomes, replay_dead, resolve, start, state,
};
use crate::msteams_emulator::{Failure, Kind, MAX_MESSAGE_BYTES, TeamsEmulator};

/// Teams has no default rate limit in herald; the retry policy's backoff is the only gap.
const GAP: Duration = Duration::from_secs(1);

fn config(url: &str, extra: &str) -> String {
    format!(
        "    msteamsv2_configs:\n      - webhook_url: '{url}'\n        retry: {{initial_backoff: 1s, max_backoff: 10s}}\n{extra}"
    )
}

#[tokio::test]
async fn a_workflows_webhook_gets_a_card_for_the_firing_and_one_for_the_resolve() {
    let clock = manual_clock();
    let teams = TeamsEmulator::start(clock.clone()).await;
    let url = teams.webhook("ops", Kind::Workflow);
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&url, ""), &clock).await;

    let detail = deliver(
        &herald,
        &clock,
        &[alert("DiskFull", "db-1", FOREVER)],
        1,
        GAP,
    )
    .await;
    assert_eq!(state(&detail), "delivered");
    assert_eq!(detail["attempts"][0]["status_code"], 202);
    let cards = teams.cards("ops");
    assert_eq!(cards.len(), 1);
    let card = &cards[0];
    assert_eq!(card.card["version"], "1.2");
    assert_eq!(card.text(0), "🔥 [FIRING:1] DiskFull");
    assert_eq!(card.card["body"][0]["color"], "attention");
    assert_eq!(
        card.text(1),
        "- 🔥 **DiskFull**: db-1 disk full instance=db-1 severity=critical"
    );
    assert_eq!(card.card["body"][2]["facts"][0]["title"], "instance");
    assert_eq!(
        card.card["actions"][1]["url"],
        "https://runbooks.example/disk"
    );

    resolve(&herald, &clock, "DiskFull", &["db-1"]).await;
    assert_eq!(state(&flush(&herald, &clock, 2, GAP).await), "delivered");
    let cards = teams.cards("ops");
    assert_eq!(cards.len(), 2);
    assert_eq!(cards[1].text(0), "✅ [RESOLVED] DiskFull");
    assert_eq!(cards[1].card["body"][0]["color"], "good");
    let signature = url.rsplit("sig=").next().unwrap();
    assert!(
        !detail.to_string().contains(signature),
        "the URL is a secret"
    );
    assert_eq!(teams.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_legacy_connector_s_answers_are_understood_and_its_429_text_waited_out() {
    let clock = manual_clock();
    let teams = TeamsEmulator::start(clock.clone()).await;
    let url = teams.webhook("legacy", Kind::Connector);
    let dir = tempfile::tempdir().unwrap();
    let extra = "        title: '{{ common_labels.alertname }} on {{ common_labels.instance }}'\n        \
                 text: \"{% for i in range(3000) %}磁盘已满 \\\"{{ i }}\\\"\\n{% endfor %}\"\n";
    let herald = start(dir.path(), &config(&url, extra), &clock).await;

    teams
        .fail_next(1, Failure::ConnectorError(429))
        .fail_next(1, Failure::ConnectorError(502));
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
        ["rate_limited", "retryable", "delivered"]
    );
    assert_eq!(detail["attempts"][2]["response"], "1");
    let requests = teams.requests();
    assert!(
        requests[1].at - requests[0].at >= chrono::Duration::seconds(30),
        "a 429 without Retry-After waits herald's 30 s"
    );
    let card = &teams.cards("legacy")[0];
    assert_eq!(card.text(0), "🔥 DiskFull on db-1");
    assert!(card.text(1).starts_with("磁盘已满 \"0\""));
    assert!(card.text(1).ends_with("… (truncated)"), "cut to fit 28 KB");
    assert!(requests.iter().all(|r| r.raw.len() <= MAX_MESSAGE_BYTES));
    assert_eq!(teams.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured_and_a_5xx_retried() {
    let clock = manual_clock();
    let teams = TeamsEmulator::start(clock.clone()).await;
    let url = teams.webhook("ops", Kind::Workflow);
    let dir = tempfile::tempdir().unwrap();
    let herald = start(dir.path(), &config(&url, ""), &clock).await;

    teams
        .fail_next(
            1,
            Failure::Status {
                code: 429,
                body: r#"{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded."}}"#
                    .to_owned(),
                retry_after: Some(45),
            },
        )
        .fail_next(
            1,
            Failure::Status {
                code: 500,
                body: String::new(),
                retry_after: None,
            },
        );
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
        ["rate_limited", "retryable", "delivered"]
    );
    let requests = teams.requests();
    assert!(requests[1].at - requests[0].at >= chrono::Duration::seconds(45));
    assert_eq!(teams.cards("ops").len(), 1);
    assert_eq!(teams.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn a_rejected_card_is_dead_with_teams_answer_and_a_replay_delivers_it_once() {
    let clock = manual_clock();
    let teams = TeamsEmulator::start(clock.clone()).await;
    let workflow = teams.webhook("ops", Kind::Workflow);
    let connector = teams.webhook("legacy", Kind::Connector);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "    msteamsv2_configs:\n      - webhook_url: '{workflow}'\n      - webhook_url: '{connector}'\n"
    );
    let herald = start(dir.path(), &config, &clock).await;

    teams
        .fail_next_on(
            "ops",
            1,
            Failure::Status {
                code: 400,
                body: r#"{"error":{"code":"InvalidRequestContent","message":"The request content is not valid."}}"#
                    .to_owned(),
                retry_after: None,
            },
        )
        .fail_next_on("legacy", 1, Failure::ConnectorError(400));
    clock.advance(GAP);
    crate::flow::post_alerts(&herald, &[alert("DiskFull", "db-1", FOREVER)]).await;
    let mut dead = Vec::new();
    for _ in 0..2400 {
        dead = herald.deliveries("?state=dead").await;
        if dead.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(dead.len(), 2, "{:#?}", herald.deliveries("").await);
    dead.sort_by_key(|d| d["integration_key"].as_str().unwrap().to_owned());
    let reasons: Vec<&str> = dead
        .iter()
        .map(|d| d["last_error"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].starts_with("permanent error: Teams: HTTP 400 Bad Request: {\"error\":{\"code\":\"InvalidRequestContent\""),
        "{reasons:#?}"
    );
    assert!(
        reasons[1].starts_with(
            "permanent error: Teams: Webhook message delivery failed with error: Microsoft Teams endpoint returned \
             HTTP error 400"
        ),
        "{reasons:#?}"
    );
    for delivery in &dead {
        let detail = herald.delivery(delivery["id"].as_i64().unwrap()).await;
        assert_eq!(attempts(&detail), 1, "not retried");
        let text = detail.to_string();
        assert!(!text.contains(workflow.rsplit("sig=").next().unwrap()));
        assert!(!text.contains("webhookb2"), "{text}");
    }

    assert_eq!(replay_dead(&herald, &clock, GAP).await, 2);
    for delivery in &dead {
        let id = delivery["id"].as_i64().unwrap();
        let detail = herald
            .wait_for_delivery(id, "delivered", |d| state(d) == "delivered")
            .await;
        assert_eq!(outcomes(&detail), ["permanent", "delivered"]);
    }
    assert_eq!(teams.cards("ops").len(), 1);
    assert_eq!(teams.cards("legacy").len(), 1);
    assert_eq!(teams.protocol_errors(), Vec::<String>::new());
    herald.stop().await;
}
