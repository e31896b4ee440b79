//! Dedupe per integration through herald's HTTP surface: a receiver with two webhooks whose notification to one
//! dies and is replayed, a receiver that gains a webhook on reload, and the per-integration log across a restart.
//! Time is a `ManualClock` shared by herald and the receivers. A canary group on its own receiver ticks with the
//! groups under test (all flush first at the same moment), so its notification at a tick shows that the tick's
//! flushes were stored: what the other groups queued then, or that they queued nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald::clock::ManualClock;

use crate::delivery::manual_clock;
use crate::harness::{Herald, firing};
use crate::receiver::{Recorded, Reply, ScriptedReceiver};

const GROUP_INTERVAL: Duration = Duration::from_secs(300);

/// herald's configuration: receiver `team` with a webhook per URL of `team`, alerts named `Canary` to receiver
/// `canary`, and, given `probe`, alerts named `Probe` to receiver `probe`; groups by alertname, notifying at once,
/// then every five minutes.
fn config(db: &Path, team: &[&str], canary: &str, probe: Option<&str>) -> String {
    let hooks: Vec<String> = team.iter().map(|url| format!("{{url: '{url}'}}")).collect();
    let (probe_route, probe_receiver) = match probe {
        Some(url) => (
            ", {receiver: probe, matchers: ['alertname=\"Probe\"']}".to_owned(),
            format!("  - name: probe\n    webhook_configs: [{{url: '{url}'}}]\n"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "server: {{listen: 127.0.0.1:0}}\n\
         storage: {{url: sqlite://{}}}\n\
         route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 5m\n\
         \x20 routes: [{{receiver: canary, matchers: ['alertname=\"Canary\"']}}{probe_route}]\n\
         receivers:\n  - name: team\n    webhook_configs: [{}]\n\
         \x20 - name: canary\n    webhook_configs: [{{url: '{canary}'}}]\n{probe_receiver}",
        db.display(),
        hooks.join(", ")
    )
}

fn canary_alert(n: usize) -> String {
    format!(r#"[{{"labels":{{"alertname":"Canary","n":"{n}"}},"endsAt":"2100-01-01T00:00:00Z"}}]"#)
}

/// The canary: its receiver, and how many notifications it had.
struct Canary {
    receiver: ScriptedReceiver,
    told: usize,
}

impl Canary {
    async fn start(clock: &Arc<ManualClock>) -> Canary {
        Canary {
            receiver: ScriptedReceiver::start(clock.clone()).await,
            told: 0,
        }
    }

    /// Starts its group (with the groups under test, before the clock moves): its first notification arrives.
    async fn begin(&mut self, herald: &Herald) {
        self.alert(herald).await;
        self.told += 1;
        self.receiver.wait_for(self.told).await;
    }

    async fn alert(&self, herald: &Herald) {
        let response = herald
            .post_json("/api/v2/alerts", canary_alert(self.told))
            .await;
        assert_eq!(response.status(), 200);
    }

    /// Moves the clock one group_interval on, with a new canary alert: once the canary receiver has that news,
    /// every group due at the tick was flushed and stored.
    async fn tick(&mut self, herald: &Herald, clock: &ManualClock) {
        self.alert(herald).await;
        clock.advance(GROUP_INTERVAL);
        self.told += 1;
        self.receiver.wait_for(self.told).await;
    }
}

/// Team's deliveries for the group of alerts named `name`, oldest first, as (integration key, state).
async fn deliveries_of(herald: &Herald, name: &str) -> Vec<(String, String)> {
    let group = format!("alertname=\"{name}\"");
    let mut all = herald.deliveries("?receiver=team&limit=1000").await;
    all.reverse();
    all.iter()
        .filter(|delivery| delivery["group_key"].as_str().unwrap().contains(&group))
        .map(|delivery| {
            (
                delivery["integration_key"].as_str().unwrap().to_owned(),
                delivery["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until team has `count` deliveries for the group `name`, none of them pending or in flight; returns them.
async fn settled(herald: &Herald, name: &str, count: usize) -> Vec<(String, String)> {
    for _ in 0..1200 {
        let all = deliveries_of(herald, name).await;
        if all.len() == count
            && all
                .iter()
                .all(|(_, state)| state == "delivered" || state == "dead")
        {
            return all;
        }
        assert!(all.len() <= count, "more than {count}: {all:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "team never had {count} settled deliveries for {name}: {:?}",
        deliveries_of(herald, name).await
    );
}

fn pair(integration: &str, state: &str) -> (String, String) {
    (integration.to_owned(), state.to_owned())
}

/// The alert names and statuses a webhook request carried.
fn alerts(request: &Recorded) -> Vec<String> {
    request.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| {
            format!(
                "{}{}:{}",
                alert["labels"]["alertname"].as_str().unwrap(),
                alert["labels"]["instance"]
                    .as_str()
                    .map(|instance| format!("/{instance}"))
                    .unwrap_or_default(),
                alert["status"].as_str().unwrap()
            )
        })
        .collect()
}

fn answered(requests: &[Recorded]) -> Vec<u16> {
    requests
        .iter()
        .map(|request| request.answered.unwrap())
        .collect()
}

/// The id of team's dead delivery.
async fn dead_delivery(herald: &Herald) -> i64 {
    let dead = herald.deliveries("?receiver=team&state=dead").await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["integration_key"], "webhook/0");
    dead[0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_replayed_dead_letter_reaches_its_webhook_once_and_the_other_webhook_nothing_again() {
    let clock = manual_clock();
    let bad = ScriptedReceiver::start(clock.clone()).await;
    bad.script([Reply::status(400, "invalid_payload")]);
    let good = ScriptedReceiver::start(clock.clone()).await;
    let mut canary = Canary::start(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.yaml");
    let db = dir.path().join("h.db");
    std::fs::write(
        &file,
        config(
            &db,
            &[&bad.url(), &good.url()],
            &canary.receiver.url(),
            None,
        ),
    )
    .unwrap();
    let herald = Herald::start_from_file(&file, clock.clone()).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Split")))
        .await;
    canary.begin(&herald).await;
    assert_eq!(
        settled(&herald, "Split", 2).await,
        [pair("webhook/0", "dead"), pair("webhook/1", "delivered")]
    );
    let id = dead_delivery(&herald).await;

    // Nothing new: the webhook whose notification died is not sent it again (its dead letter holds it), the other
    // one nothing.
    canary.tick(&herald, &clock).await;
    assert_eq!(deliveries_of(&herald, "Split").await.len(), 2);

    // Fixed (it answers 200 from now on), and its dead letter replayed with `herald deliveries retry`.
    let url = format!("http://{}", herald.addr);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["deliveries", "--url", &url, "retry", &id.to_string()])
        .env_remove("HERALD_URL")
        .env_remove("HERALD_TOKEN")
        .env_remove("HERALD_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    herald
        .wait_for_delivery(id, "delivered", |d| d["delivery"]["state"] == "delivered")
        .await;
    let requests = bad.requests();
    assert_eq!(answered(&requests), [400, 200]);
    assert_eq!(alerts(&requests[1]), ["Split:firing"]);

    // A later flush sends nothing new to either.
    canary.tick(&herald, &clock).await;
    canary.tick(&herald, &clock).await;
    assert_eq!(deliveries_of(&herald, "Split").await.len(), 2);
    assert_eq!(bad.requests().len(), 2, "the replay reached it once");
    assert_eq!(good.requests().len(), 1, "the other got it once");

    // The group changes: both are told its current state, once.
    let more =
        r#"[{"labels":{"alertname":"Split","instance":"b"},"endsAt":"2100-01-01T00:00:00Z"}]"#;
    herald.post_json("/api/v2/alerts", more).await;
    canary.tick(&herald, &clock).await;
    settled(&herald, "Split", 4).await;
    for webhook in [&bad, &good] {
        let requests = webhook.requests();
        assert_eq!(
            alerts(requests.last().unwrap()),
            ["Split:firing", "Split/b:firing"]
        );
    }
    assert_eq!((bad.requests().len(), good.requests().len()), (3, 2));
    herald.stop().await;
}

#[tokio::test]
async fn a_webhook_added_on_reload_is_told_what_fires_at_the_next_tick_and_the_other_nothing() {
    let clock = manual_clock();
    let first = ScriptedReceiver::start(clock.clone()).await;
    let added = ScriptedReceiver::start(clock.clone()).await;
    let probe = ScriptedReceiver::start(clock.clone()).await;
    let mut canary = Canary::start(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.yaml");
    let db = dir.path().join("h.db");
    std::fs::write(
        &file,
        config(&db, &[&first.url()], &canary.receiver.url(), None),
    )
    .unwrap();
    let herald = Herald::start_from_file(&file, clock.clone()).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Grows")))
        .await;
    canary.begin(&herald).await;
    assert_eq!(alerts(&first.wait_for(1).await[0]), ["Grows:firing"]);

    // Team gains a webhook; a new route sends alerts named Probe to a receiver of their own.
    std::fs::write(
        &file,
        config(
            &db,
            &[&first.url(), &added.url()],
            &canary.receiver.url(),
            Some(&probe.url()),
        ),
    )
    .unwrap();
    let response = herald
        .client
        .post(herald.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Whenever the dispatcher takes it in, a Probe alert reaches the probe receiver only under the reloaded
    // configuration: once it does, the dispatcher has it.
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Probe")))
        .await;
    probe.wait_for(1).await;
    assert_eq!(
        added.requests().len(),
        0,
        "not before the group's next tick"
    );

    canary.tick(&herald, &clock).await;
    let told = added.wait_for(1).await;
    assert_eq!(
        alerts(&told[0]),
        ["Grows:firing"],
        "what fires in the group"
    );
    assert_eq!(
        settled(&herald, "Grows", 2).await,
        [
            pair("webhook/0", "delivered"),
            pair("webhook/1", "delivered")
        ],
        "the first webhook is sent nothing new"
    );

    canary.tick(&herald, &clock).await;
    assert_eq!(deliveries_of(&herald, "Grows").await.len(), 2);
    let grows = |requests: Vec<Recorded>| {
        requests
            .iter()
            .filter(|request| request.body["groupLabels"]["alertname"] == "Grows")
            .count()
    };
    assert_eq!((grows(first.requests()), grows(added.requests())), (1, 1));
    herald.stop().await;
}

#[tokio::test]
async fn the_log_of_each_webhook_survives_a_restart() {
    let clock = manual_clock();
    let bad = ScriptedReceiver::start(clock.clone()).await;
    bad.script([Reply::status(400, "invalid_payload")]);
    let good = ScriptedReceiver::start(clock.clone()).await;
    let mut canary = Canary::start(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.yaml");
    let db = dir.path().join("h.db");
    std::fs::write(
        &file,
        config(
            &db,
            &[&bad.url(), &good.url()],
            &canary.receiver.url(),
            None,
        ),
    )
    .unwrap();
    let herald = Herald::start_from_file(&file, clock.clone()).await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Kept")))
        .await;
    canary.begin(&herald).await;
    settled(&herald, "Kept", 2).await;
    let id = dead_delivery(&herald).await;
    herald.stop().await;

    // Restarted: at the next ticks nothing is sent again, to either webhook.
    let herald = Herald::start_from_file(&file, clock.clone()).await;
    canary.tick(&herald, &clock).await;
    canary.tick(&herald, &clock).await;
    assert_eq!(deliveries_of(&herald, "Kept").await.len(), 2);
    assert_eq!((bad.requests().len(), good.requests().len()), (1, 1));

    // The dead letter is replayed through the operator API: delivered once, and then nothing more, across another
    // restart.
    let replay = herald
        .client
        .post(herald.url(&format!("/api/herald/v1/deliveries/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    herald
        .wait_for_delivery(id, "delivered", |d| d["delivery"]["state"] == "delivered")
        .await;
    herald.stop().await;
    let herald = Herald::start_from_file(&file, clock.clone()).await;
    canary.tick(&herald, &clock).await;
    assert_eq!(deliveries_of(&herald, "Kept").await.len(), 2);
    assert_eq!(answered(&bad.requests()), [400, 200]);
    assert_eq!(good.requests().len(), 1);
    herald.stop().await;
}
