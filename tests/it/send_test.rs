//! `herald send-test`: a synthetic firing and resolved notification through every integration of a receiver, with
//! what each destination answered.

use std::sync::Arc;

use herald::clock::SystemClock;

use crate::receiver::{Reply, ScriptedReceiver};

async fn send_test(config: &std::path::Path, receiver: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_remove("HERALD_CONFIG")
        .args(["send-test", "--receiver", receiver, "-c"])
        .arg(config)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn send_test_tries_every_integration_and_says_what_each_answered() {
    let good = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let bad = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    bad.otherwise(Reply::status(400, "invalid_payload"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.yaml");
    std::fs::write(
        &config,
        format!(
            "route: {{receiver: good}}\nreceivers:\n  - name: good\n    log_configs: [{{}}]\n    \
             webhook_configs: [{{url: '{}'}}]\n  - name: bad\n    webhook_configs: [{{url: '{}'}}]\n",
            good.url(),
            bad.url()
        ),
    )
    .unwrap();

    let output = send_test(&config, "good").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("receiver good: 2 integrations\n"),
        "{stdout}"
    );
    assert!(stdout.contains("log/0 (log) firing: ok"), "{stdout}");
    assert!(
        stdout.contains("webhook/0 (webhook) firing: ok (HTTP 200: ok)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("webhook/0 (webhook) resolved: ok (HTTP 200: ok)"),
        "{stdout}"
    );
    let requests = good.requests();
    let statuses: Vec<_> = requests
        .iter()
        .map(|r| r.body["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    assert_eq!(
        requests[0].body["alerts"][0]["labels"]["alertname"],
        "HeraldSendTest"
    );

    let output = send_test(&config, "bad").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("webhook/0 (webhook) firing: FAILED, permanent: HTTP 400"),
        "{stderr}"
    );
    assert!(stderr.contains("2 sends failed"), "{stderr}");
    assert!(
        !stderr.contains(&bad.url()),
        "the URL is a secret: {stderr}"
    );

    let output = send_test(&config, "nobody").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("no receiver \"nobody\"; the configuration has: good, bad"),
        "{stderr}"
    );
    good.stop();
    bad.stop();
}
