//! The secrets of `http_config`, webhooks and email (an SMTP password, an OAuth2 client secret and the tokens it
//! gets, header secrets, bearer credentials) never show: the real `herald` binary delivers to peers that fail in
//! ways that echo credentials back, and its log (at debug), `/api/v2/status`, `/metrics`, `herald deliveries` and
//! `herald check-config` are searched for every planted secret.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::clock::SystemClock;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::http_peers::OAuth2Server;
use crate::pki::TestPki;
use crate::receiver::{Reply, ScriptedReceiver};
use crate::smtp_emulator::{SmtpEmulator, SmtpOptions};

const SMTP_PASSWORD: &str = "sm7p-pa55w0rd";
const CLIENT_SECRET: &str = "cl1ent-s3cret";
const HEADER_SECRET: &str = "h3ader-s3cret";
const FILE_SECRET: &str = "f1le-s3cret";
const BEARER: &str = "b3arer-cr3d";

fn herald() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env_remove("HERALD_CONFIG")
        .env_remove("HERALD_URL")
        .env_remove("HERALD_TOKEN")
        .env_remove("RUST_LOG")
        .env("HERALD_LOG", "debug");
    command
}

async fn output(args: &[&str]) -> String {
    let output = herald().args(args).output().await.unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn planted_secrets_never_show_in_logs_status_metrics_or_deliveries() {
    let clock = Arc::new(SystemClock);
    let pki = TestPki::new();
    let auth = OAuth2Server::start("herald", CLIENT_SECRET, 3600, clock.clone()).await;
    // A hook that refuses every request, echoing what it was sent (credentials included) in its answer.
    let echo = ScriptedReceiver::start(clock.clone()).await;
    echo.otherwise(Reply::status(
        400,
        &format!("refused Authorization: Bearer {BEARER}; X-Token: {HEADER_SECRET} {FILE_SECRET}"),
    ));
    // An SMTP server that knows another password: sign-in fails with 535.
    let smtp = SmtpEmulator::start(
        SmtpOptions {
            starttls: Some(pki.server_config(false)),
            implicit_tls: None,
            auth: Some(("alerts@example.com".into(), "another-password".into())),
        },
        clock.clone(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("header-secret");
    std::fs::write(&file, FILE_SECRET).unwrap();
    let config = dir.path().join("herald.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{listen: '127.0.0.1:0'}}
storage: {{url: 'sqlite://{db}'}}
route: {{receiver: team, group_wait: 0s}}
receivers:
  - name: team
    webhook_configs:
      - url: '{hook}'
        http_config:
          oauth2: {{client_id: herald, client_secret: {CLIENT_SECRET}, token_url: '{token}'}}
          http_headers: {{X-Token: {{secrets: [{HEADER_SECRET}], files: ['{file}']}}}}
      - url: '{echo}'
        http_config:
          bearer_token: {BEARER}
          http_headers: {{X-Token: {{secrets: [{HEADER_SECRET}], files: ['{file}']}}}}
    email_configs:
      - to: ops@example.com
        from: herald@example.com
        smarthost: '{smarthost}'
        auth_username: alerts@example.com
        auth_password: {SMTP_PASSWORD}
        tls_config: {{ca_file: '{ca}'}}
"#,
            db = dir.path().join("h.db").display(),
            hook = auth.hook_url(),
            token = auth.token_url(),
            file = file.display(),
            echo = echo.url(),
            smarthost = smtp.smarthost(),
            ca = pki.ca_file.display(),
        ),
    )
    .unwrap();

    let mut child = herald()
        .args(["--log-format", "json", "serve", "-c"])
        .arg(&config)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (address_tx, address_rx) = tokio::sync::oneshot::channel();
    let reader = {
        let log = Arc::clone(&log);
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            let mut address_tx = Some(address_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                    && entry["message"] == "herald is listening"
                    && let Some(tx) = address_tx.take()
                {
                    let _ = tx.send(entry["address"].as_str().unwrap_or_default().to_owned());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let address = tokio::time::timeout(Duration::from_secs(60), address_rx)
        .await
        .unwrap()
        .unwrap();
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    let posted = client
        .post(format!("{base}/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(r#"[{"labels":{"alertname":"Leak"},"endsAt":"2100-01-01T00:00:00Z"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);

    // Wait for the three outcomes: the OAuth2 hook delivered, the echoing hook and the mail dead.
    let mut deliveries = Vec::new();
    for _ in 0..2400 {
        let list: serde_json::Value = client
            .get(format!("{base}/api/herald/v1/deliveries"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        deliveries = list["deliveries"].as_array().unwrap().clone();
        let state = |key: &str| {
            deliveries
                .iter()
                .find(|d| d["integration_key"] == key)
                .map(|d| d["state"].as_str().unwrap_or_default().to_owned())
        };
        if state("webhook/0").as_deref() == Some("delivered")
            && state("webhook/1").as_deref() == Some("dead")
            && state("email/0").as_deref() == Some("dead")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");
    let token = auth.tokens()[0].issued.clone().unwrap();
    assert_eq!(
        echo.requests()[0].headers["authorization"],
        format!("Bearer {BEARER}").as_str()
    );
    assert!(
        smtp.errors()
            .iter()
            .any(|e| e.contains("wrong credentials"))
    );

    let mut shown = String::new();
    for path in [
        "/api/v2/status",
        "/metrics",
        "/api/v2/receivers",
        "/api/herald/v1/deliveries",
    ] {
        let text = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        shown.push_str(&format!("\n== {path}\n{text}"));
    }
    for delivery in &deliveries {
        let id = delivery["id"].as_i64().unwrap().to_string();
        let detail = client
            .get(format!("{base}/api/herald/v1/deliveries/{id}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        shown.push_str(&format!("\n== delivery {id}\n{detail}"));
        shown.push_str(&output(&["deliveries", "--url", &base, "show", &id]).await);
    }
    shown.push_str(&output(&["deliveries", "--url", &base, "list"]).await);
    shown.push_str(&output(&["deliveries", "--url", &base, "list", "--state", "dead"]).await);
    let check = output(&["check-config", "-c", config.to_str().unwrap()]).await;
    assert!(check.contains("webhook/1: "), "{check}");
    shown.push_str(&check);
    assert!(
        shown.contains("<redacted>"),
        "the echoed credentials were there to redact:\n{shown}"
    );
    let dead_mail = deliveries
        .iter()
        .find(|d| d["integration_key"] == "email/0")
        .unwrap();
    assert!(
        dead_mail["last_error"].as_str().unwrap().contains("535"),
        "{dead_mail}"
    );

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    reader.await.unwrap();
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("delivery"),
        "the log has something to search:\n{log}"
    );

    for secret in [
        SMTP_PASSWORD,
        CLIENT_SECRET,
        HEADER_SECRET,
        FILE_SECRET,
        BEARER,
        token.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
}
