//! Alertmanager's command-line flags, which users type by habit, work on `herald serve` and `check-config`:
//! `--config.file`, `--web.listen-address`, `--web.external-url` and `--log.level`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use herald::clock::SystemClock;

use crate::receiver::{Reply, ScriptedReceiver};

#[tokio::test]
async fn alertmanager_flags_replace_the_configured_listen_address_and_external_url() {
    let receiver = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    receiver.otherwise(Reply::ok());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.yaml");
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: herald starts only because the flag replaces it.
    std::fs::write(
        &config,
        format!(
            "server: {{listen: '192.0.2.1:9095', external_url: 'http://configured.example'}}\n\
             storage: {{url: sqlite://{}}}\n\
             route: {{receiver: hook, group_by: [alertname], group_wait: 0s}}\n\
             receivers: [{{name: hook, webhook_configs: [{{url: '{}'}}]}}]\n",
            dir.path().join("herald.db").display(),
            receiver.url()
        ),
    )
    .unwrap();

    let checked = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("check-config")
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let mut herald = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_remove("HERALD_CONFIG")
        .env_remove("RUST_LOG")
        .env("HERALD_LOG", "warn")
        .args(["--log-format", "json", "serve"])
        .arg(format!("--config.file={}", config.display()))
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--web.external-url=http://herald.example:9095/",
            "--log.level=debug",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = herald.stderr.take().unwrap();
    let (lines, logged) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = lines.send(entry);
            }
        }
    });
    let mut address = None;
    let mut debug = false;
    while address.is_none() {
        let entry = logged
            .recv_timeout(Duration::from_secs(60))
            .expect("herald never said where it listens");
        debug |= entry["level"] == "DEBUG";
        if entry["message"] == "herald is listening" {
            address = entry["address"].as_str().map(str::to_owned);
        }
    }
    let address = address.unwrap();
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let posted = reqwest::Client::new()
        .post(format!("http://{address}/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(r#"[{"labels":{"alertname":"Flags"}}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let requests = receiver.wait_for(1).await;
    assert_eq!(
        requests[0].body["externalURL"], "http://herald.example:9095",
        "{:#}",
        requests[0].body
    );
    // --log.level=debug wins over HERALD_LOG=warn.
    while !debug {
        match logged.recv_timeout(Duration::from_secs(10)) {
            Ok(entry) => debug |= entry["level"] == "DEBUG",
            Err(_) => break,
        }
    }
    assert!(debug, "no debug line was logged");

    let _ = Command::new("kill")
        .args(["-TERM", &herald.id().to_string()])
        .status();
    assert!(herald.wait().unwrap().success());
    receiver.stop();
}
