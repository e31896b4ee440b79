//! Hot reload: `POST /-/reload` reads the configuration file again and puts it in force without a restart; a file
//! that does not load leaves the configuration in force untouched.

use std::path::Path;
use std::sync::Arc;

use herald::clock::SystemClock;

use crate::harness::{Herald, firing, metric};
use crate::receiver::ScriptedReceiver;

fn config(db: &Path, receiver: &str, url: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0}}\nstorage: {{url: sqlite://{}}}\n\
         route: {{receiver: {receiver}, group_by: [alertname], group_wait: 0s}}\n\
         receivers:\n  - name: {receiver}\n    webhook_configs: [{{url: '{url}'}}]\n",
        db.display()
    )
}

async fn reload(herald: &Herald) -> (u16, String) {
    let response = herald
        .client
        .post(herald.url("/-/reload"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_reload_changes_routes_and_integrations_and_a_bad_file_changes_nothing() {
    let first = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let second = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let file = dir.path().join("herald.yaml");
    std::fs::write(&file, config(&db, "before", &first.url())).unwrap();
    let herald = Herald::start_reloadable(&file).await;

    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Early")))
        .await;
    assert_eq!(first.wait_for(1).await[0].body["receiver"], "before");

    std::fs::write(&file, config(&db, "after", &second.url())).unwrap();
    let (status, body) = reload(&herald).await;
    assert_eq!((status, body.as_str()), (200, "configuration reloaded\n"));
    let receivers: Vec<serde_json::Value> =
        herald.get("/api/v2/receivers").await.json().await.unwrap();
    assert_eq!(receivers, [serde_json::json!({"name": "after"})]);
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Late")))
        .await;
    // The stored firing alert is regrouped under the new tree and told to the new receiver too.
    let requests = second.wait_for(2).await;
    let mut told: Vec<String> = requests
        .iter()
        .map(|request| {
            request.body["groupLabels"]["alertname"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    told.sort();
    assert_eq!(told, ["Early", "Late"]);
    assert!(
        requests
            .iter()
            .all(|request| request.body["receiver"] == "after")
    );
    assert_eq!(
        first.requests().len(),
        1,
        "nothing more goes to the old integration"
    );

    std::fs::write(
        &file,
        "route: {receiver: nobody}\nreceivers: [{name: after, webhook_configs: [{}]}]\n",
    )
    .unwrap();
    let (status, body) = reload(&herald).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("failed to reload config: "), "{body}");
    assert!(
        body.contains("route.receiver: receiver \"nobody\" is not defined"),
        "{body}"
    );
    assert!(
        body.contains("receivers[0].webhook_configs[0].url: must be set"),
        "{body}"
    );
    assert_eq!(
        metric(
            &herald.metrics().await,
            "herald_config_last_reload_successful",
            &[]
        ),
        0.0
    );
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("AfterFailure")))
        .await;
    let requests = second.wait_for(3).await;
    assert_eq!(
        requests[2].body["groupLabels"]["alertname"], "AfterFailure",
        "the config in force stays"
    );
    herald.stop().await;
    first.stop();
    second.stop();
}

#[tokio::test]
async fn a_failed_reload_names_a_misshapen_secret_by_its_path_only() {
    let receiver = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let file = dir.path().join("herald.yaml");
    std::fs::write(&file, config(&db, "team", &receiver.url())).unwrap();
    let herald = Herald::start_reloadable(&file).await;
    let token = "tok-0c4e9b";
    std::fs::write(
        &file,
        config(&db, "team", &receiver.url()).replace(
            "server: {listen: 127.0.0.1:0}",
            &format!("server: {{listen: 127.0.0.1:0, admin_tokens: \"{token}\"}}"),
        ),
    )
    .unwrap();
    let (status, body) = reload(&herald).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("server.admin_tokens: invalid type: a string, expected a sequence"),
        "{body}"
    );
    assert!(!body.contains(token), "the body echoed the value: {body}");
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn herald_started_without_a_file_says_there_is_nothing_to_reload() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(crate::harness::settings(&dir.path().join("h.db"), "fixed")).await;
    let (status, body) = reload(&herald).await;
    assert_eq!(status, 500);
    assert!(
        body.contains("without a configuration file to reload"),
        "{body}"
    );
    herald.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_file_of_a_running_herald() {
    let hook = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let file = dir.path().join("herald.yaml");
    std::fs::write(&file, config(&db, "before", &hook.url())).unwrap();
    let (mut child, address) = crate::crash::serve(&file);
    std::fs::write(&file, config(&db, "after-sighup", &hook.url())).unwrap();
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    let client = reqwest::Client::new();
    let mut names = String::new();
    for _ in 0..1200 {
        names = client
            .get(format!("http://{address}/api/v2/receivers"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if names.contains("after-sighup") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(names, r#"[{"name":"after-sighup"}]"#);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success(), "still stops cleanly");
    hook.stop();
}
