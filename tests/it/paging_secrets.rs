//! The secrets of `pagerduty_configs`, `wecom_configs` and `msteamsv2_configs` (a routing key, a robot's key, a
//! signed webhook URL) never show: the real `herald serve` logs at debug level while each service rejects the first
//! send with an answer that quotes the secret, and neither its log, `/api/v2/status`, `/metrics`, the operator API,
//! `herald deliveries`, `herald check-config` nor `herald send-test` prints one. The dead deliveries are replayed
//! with `herald deliveries retry` and reach the emulators.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::clock::SystemClock;
use serde_json::Value;

use crate::msteams_emulator::{Failure as TeamsFailure, Kind, TeamsEmulator};
use crate::pagerduty_emulator::{Failure as PagerDutyFailure, PagerDutyEmulator};
use crate::wecom_emulator::{Failure as WeComFailure, WeComEmulator};

const ROUTING_KEY: &str = "S3cretR0utingKeyHerald0123456789";
const TEAMS_URL_VAR: &str = "HERALD_TEST_TEAMS_WEBHOOK_URL";

fn herald() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env_remove("HERALD_CONFIG")
        .env_remove("HERALD_URL")
        .env_remove("HERALD_TOKEN")
        .env_remove("RUST_LOG")
        .env("HERALD_LOG", "debug");
    command
}

/// Runs a `herald` subcommand to its end (off the async runtime); returns its output.
async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        herald()
            .args(&args)
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn config(dir: &Path, pagerduty: &PagerDutyEmulator, robot: &str) -> String {
    let key_file = dir.join("routing_key");
    std::fs::write(&key_file, format!("{ROUTING_KEY}\n")).unwrap();
    format!(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  url: sqlite://{}\n\
         route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n\
         receivers:\n  - name: team\n    \
         pagerduty_configs:\n      - routing_key_file: {}\n        url: {}\n    \
         wecom_configs:\n      - url: '{robot}'\n    \
         msteamsv2_configs:\n      - webhook_url: '${{{TEAMS_URL_VAR}}}'\n",
        dir.join("herald.db").display(),
        key_file.display(),
        pagerduty.url(),
    )
}

/// GETs `url`; its status and body.
async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The deliveries in `state`, waiting (up to a generous bound) until there are `count`.
async fn wait_for_deliveries(address: &str, state: &str, count: usize) -> Vec<Value> {
    let url = format!("http://{address}/api/herald/v1/deliveries?state={state}");
    let mut deliveries = Vec::new();
    for _ in 0..2400 {
        let (status, body) = get(&url).await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        deliveries = body["deliveries"].as_array().unwrap().clone();
        if deliveries.len() == count {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never {count} deliveries {state}: {deliveries:#?}");
}

#[tokio::test]
async fn routing_keys_robot_keys_and_webhook_urls_never_show() {
    let clock = Arc::new(SystemClock);
    let pagerduty = PagerDutyEmulator::start(clock.clone()).await;
    pagerduty.routing_key(ROUTING_KEY);
    let wecom = WeComEmulator::start(clock.clone()).await;
    let robot = wecom.robot();
    let robot_key = robot.rsplit("key=").next().unwrap().to_owned();
    let teams = TeamsEmulator::start(clock.clone()).await;
    let teams_url = teams.webhook("ops", Kind::Workflow);
    let signature = teams_url.rsplit("sig=").next().unwrap().to_owned();
    let teams_path = teams_url
        .split('?')
        .next()
        .unwrap()
        .split_once("/workflows/")
        .unwrap()
        .1
        .to_owned();

    // Each service's first answer is a permanent error that quotes the secret.
    pagerduty.fail_next(
        1,
        PagerDutyFailure::Invalid(vec![format!("Invalid routing key {ROUTING_KEY}")]),
    );
    wecom.fail_next(
        1,
        WeComFailure::ErrCode(93000, format!("invalid webhook url, key={robot_key}")),
    );
    teams.fail_next(
        1,
        TeamsFailure::Status {
            code: 400,
            body: format!("cannot deliver to {teams_url} (sig={signature})"),
            retry_after: None,
        },
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.yaml");
    std::fs::write(&path, config(dir.path(), &pagerduty, &robot)).unwrap();
    let env = vec![(TEAMS_URL_VAR, teams_url.clone())];
    let mut child = herald()
        .args(["--log-format", "json", "serve", "-c"])
        .arg(&path)
        .env(TEAMS_URL_VAR, &teams_url)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let reader = {
        let log = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "herald is listening"
                {
                    let _ =
                        address_tx.send(entry["address"].as_str().unwrap_or_default().to_owned());
                }
                log.lock().unwrap().push(line);
            }
        })
    };
    let address =
        tokio::task::spawn_blocking(move || address_rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap()
            .expect("herald never said where it listens");

    let alerts = r#"[{"labels":{"alertname":"DiskFull","instance":"db-1","severity":"critical"},
        "annotations":{"summary":"db-1 disk full"},"endsAt":"2100-01-01T00:00:00Z"}]"#;
    let posted = reqwest::Client::new()
        .post(format!("http://{address}/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let dead = wait_for_deliveries(&address, "dead", 3).await;

    let url = format!("http://{address}");
    let mut shown = Vec::new();
    let list = run(
        vec![
            "deliveries".into(),
            "--url".into(),
            url.clone(),
            "list".into(),
        ],
        vec![],
    )
    .await;
    assert!(list.status.success(), "{}", text(&list));
    for integration in ["pagerduty/0", "wecom/0", "msteamsv2/0"] {
        assert!(text(&list).contains(integration), "{}", text(&list));
    }
    shown.push(text(&list));
    let mut reasons = Vec::new();
    for delivery in &dead {
        let id = delivery["id"].as_i64().unwrap().to_string();
        let show = run(
            vec![
                "deliveries".into(),
                "--url".into(),
                url.clone(),
                "show".into(),
                id.clone(),
            ],
            vec![],
        )
        .await;
        assert!(show.status.success(), "{}", text(&show));
        shown.push(text(&show));
        let (_, detail) = get(&format!("{url}/api/herald/v1/deliveries/{id}")).await;
        reasons.push(delivery["last_error"].as_str().unwrap().to_owned());
        shown.push(detail);
    }
    assert!(
        reasons.iter().all(|reason| reason.contains("<redacted>")),
        "each service's message is shown, redacted: {reasons:#?}"
    );

    let retry = run(
        vec![
            "deliveries".into(),
            "--url".into(),
            url.clone(),
            "retry".into(),
            "--all".into(),
            "--state".into(),
            "dead".into(),
        ],
        vec![],
    )
    .await;
    assert!(retry.status.success(), "{}", text(&retry));
    shown.push(text(&retry));
    wait_for_deliveries(&address, "delivered", 3).await;
    assert_eq!(pagerduty.alerts().len(), 1);
    assert_eq!(wecom.messages().len(), 1);
    assert_eq!(teams.cards("ops").len(), 1);

    for endpoint in [
        "/api/v2/status",
        "/metrics",
        "/api/v2/receivers",
        "/api/v2/alerts",
        "/api/herald/v1/deliveries",
    ] {
        let (status, body) = get(&format!("{url}{endpoint}")).await;
        assert_eq!(status, 200, "{endpoint}");
        shown.push(body);
    }

    let check = run(
        vec![
            "check-config".into(),
            "-c".into(),
            path.display().to_string(),
        ],
        env.clone(),
    )
    .await;
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("team: 3 integrations (pagerduty: 1, wecom: 1, msteamsv2: 1)"),
        "{}",
        text(&check)
    );
    shown.push(text(&check));
    let send_test = run(
        vec![
            "send-test".into(),
            "-c".into(),
            path.display().to_string(),
            "--receiver".into(),
            "team".into(),
        ],
        env,
    )
    .await;
    assert!(send_test.status.success(), "{}", text(&send_test));
    for expected in [
        "pagerduty/0 (pagerduty) firing: ok (HTTP 202: ",
        "pagerduty/0 (pagerduty) resolved: ok (HTTP 202: ",
        "wecom/0 (wecom) firing: ok (HTTP 200: {\"errcode\":0,\"errmsg\":\"ok\"})",
        "msteamsv2/0 (msteamsv2) resolved: ok (HTTP 202)",
    ] {
        assert!(
            text(&send_test).contains(expected),
            "{expected:?} in {}",
            text(&send_test)
        );
    }
    shown.push(text(&send_test));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        reader.join().unwrap();
        status
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("DiskFull") || log.contains("delivery"),
        "the log has content"
    );
    shown.push(log);

    let everything = shown.join("\n");
    for secret in [
        ROUTING_KEY,
        robot_key.as_str(),
        robot.as_str(),
        signature.as_str(),
        teams_url.as_str(),
        teams_path.as_str(),
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
    assert_eq!(pagerduty.protocol_errors(), Vec::<String>::new());
    assert_eq!(wecom.protocol_errors(), Vec::<String>::new());
    assert_eq!(teams.protocol_errors(), Vec::<String>::new());
}
