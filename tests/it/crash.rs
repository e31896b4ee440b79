//! Crash safety: herald killed with SIGKILL while deliveries are pending and in flight, then started again on the
//! same store, delivers every notification; only the sends in flight at the kill are sent twice.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use herald::clock::SystemClock;

use crate::receiver::{Reply, ScriptedReceiver};

/// Starts `herald serve -c config`; returns the child and the address it listens on. Its log is drained on a thread
/// so it never blocks on a full pipe.
pub fn serve(config: &Path) -> (Child, String) {
    let (child, start) = serve_with_start_line(config);
    let address = start["address"].as_str().unwrap_or_default().to_owned();
    (child, address)
}

/// Starts `herald serve -c config` as `serve` does; returns the child and its start line (JSON).
pub fn serve_with_start_line(config: &Path) -> (Child, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_remove("HERALD_CONFIG")
        .env_remove("RUST_LOG")
        .env("HERALD_LOG", "info")
        .args(["--log-format", "json", "serve", "-c"])
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (found, address) = mpsc::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if entry["message"] == "herald is listening"
                && let Some(sender) = found.take()
            {
                let _ = sender.send(entry);
            }
        }
    });
    let start = address
        .recv_timeout(Duration::from_secs(60))
        .expect("herald never said where it listens");
    (child, start)
}

async fn deliveries(client: &reqwest::Client, address: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = client
        .get(format!(
            "http://{address}/api/herald/v1/deliveries?limit=1000"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["deliveries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn sigkill_with_deliveries_pending_and_in_flight_loses_nothing() {
    const GROUPS: usize = 6;
    const CONCURRENCY: usize = 2;
    let receiver = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    // The first sends never get an answer: they are in flight when herald is killed (the 8s send timeout leaves a
    // loaded machine plenty of time to kill it first; their lease ends 5s after that).
    receiver.script([Reply::Hang, Reply::Hang]);
    receiver.otherwise(Reply::ok());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: 127.0.0.1:0}}\nstorage: {{url: sqlite://{}}}\n\
             route: {{receiver: hook, group_by: [alertname], group_wait: 0s}}\n\
             receivers: [{{name: hook, webhook_configs: [{{url: '{}', timeout: 8s}}]}}]\n\
             delivery: {{concurrency: {CONCURRENCY}}}\n",
            dir.path().join("herald.db").display(),
            receiver.url()
        ),
    )
    .unwrap();

    let (mut first, address) = serve(&config);
    let client = reqwest::Client::new();
    let alerts: Vec<String> = (0..GROUPS)
        .map(|i| {
            format!(r#"{{"labels":{{"alertname":"Crash{i}"}},"endsAt":"2100-01-01T00:00:00Z"}}"#)
        })
        .collect();
    let response = client
        .post(format!("http://{address}/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(format!("[{}]", alerts.join(",")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    receiver.wait_for(CONCURRENCY).await;
    // Every notification is queued: the in-flight ones and the ones waiting behind the concurrency bound.
    for _ in 0..1200 {
        if deliveries(&client, &address).await.len() == GROUPS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let queued = deliveries(&client, &address).await;
    let count = |state: &str| queued.iter().filter(|d| d["state"] == state).count();
    // In flight: being sent, or claimed to be sent next (the engine claims ahead of its free slots).
    assert_eq!(count("in_flight") + count("pending"), GROUPS, "{queued:#?}");
    assert!(count("in_flight") >= CONCURRENCY, "{queued:#?}");
    first.kill().unwrap();
    first.wait().unwrap();
    let in_flight_at_kill = receiver.requests().len();
    assert_eq!(in_flight_at_kill, CONCURRENCY);

    let (mut second, address) = serve(&config);
    let requests = receiver.wait_for(GROUPS + in_flight_at_kill).await;
    for _ in 0..1200 {
        let all = deliveries(&client, &address).await;
        if all.len() == GROUPS && all.iter().all(|d| d["state"] == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let all = deliveries(&client, &address).await;
    assert!(all.iter().all(|d| d["state"] == "delivered"), "{all:#?}");
    let mut groups: Vec<String> = requests.iter().map(|r| r.group_key()).collect();
    groups.sort();
    let sent = groups.len();
    groups.dedup();
    assert_eq!(groups.len(), GROUPS, "every notification arrived");
    assert_eq!(
        sent - groups.len(),
        in_flight_at_kill,
        "only the sends in flight at the kill were sent twice"
    );
    let answered_ok = requests.iter().filter(|r| r.answered == Some(200)).count();
    assert_eq!(
        answered_ok, GROUPS,
        "each notification accepted exactly once"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    second.wait().unwrap();
    receiver.stop();
}
