//! Scenario: a protected herald — HTTPS from a web configuration (certificates made by the test), a basic auth user
//! for Prometheus, an ingest token for Alertmanager, admin and read tokens for amtool — and the real Prometheus,
//! Alertmanager and amtool configured as README's "Protecting herald" shows: each delivers or queries over TLS with
//! its credential, and without one herald refuses them.

use std::path::Path;

use serde_json::json;

use crate::herald::{E2E_ROUTE, Herald};
use crate::peers::{Alertmanager, Prometheus};
use crate::pki::TestPki;
use crate::procs::{eventually, program, write};
use crate::snippets::{
    ALERTMANAGER_PROTECTED, AMTOOL_HTTP_CONFIG, PROMETHEUS_PROTECTED, for_herald,
};

const PROMETHEUS_PASSWORD: &str = "prometheus-e2e-password";
const INGEST_TOKEN: &str = "alertmanager-e2e-ingest-token";
const ADMIN_TOKEN: &str = "amtool-e2e-admin-token";
const READ_TOKEN: &str = "amtool-e2e-read-token";

const RULES: &str = r#"groups:
  - name: herald-e2e-protected
    interval: 1s
    rules:
      - alert: FromProtectedPrometheus
        expr: vector(1)
"#;

/// herald's web configuration: TLS with the test PKI's server certificate, basic auth user `prometheus`.
fn web_config(dir: &Path, pki: &TestPki) -> std::path::PathBuf {
    let hash = bcrypt::hash(PROMETHEUS_PASSWORD, 4).unwrap();
    write(
        dir,
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prometheus: {hash}\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
            pki.server_cert_file.display(),
            pki.server_key_file.display()
        ),
    )
}

/// A client trusting the test CA and sending the admin token.
fn admin_client(pki: &TestPki) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_file).unwrap()).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Whether amtool succeeded, and its stdout (with its stderr when it failed).
async fn amtool(herald: &Herald, http_config: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut command = tokio::process::Command::new(program("amtool", "prometheus-alertmanager"));
    command.arg(format!("--alertmanager.url=https://{}", herald.addr));
    if let Some(file) = http_config {
        command.arg(format!("--http.config.file={}", file.display()));
    }
    let output = command.args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        (true, stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        (false, format!("{stdout}{stderr}"))
    }
}

/// Waits until herald stores an alert named `alertname`, failing with the sender's `log`.
async fn wait_for_alert(herald: &Herald, alertname: &str, log: impl Fn() -> String) {
    let what = format!("herald to store {alertname}");
    let wait = eventually(&what, || async {
        let alerts = herald.alerts("").await;
        alerts
            .iter()
            .any(|alert| alert["labels"]["alertname"] == alertname)
            .then_some(())
    });
    // Shorter than `eventually`'s own limit, so a failure shows the sender's log.
    if tokio::time::timeout(std::time::Duration::from_secs(50), wait)
        .await
        .is_err()
    {
        panic!(
            "herald never stored {alertname}; the sender's log:\n{}",
            log()
        );
    }
}

#[tokio::test]
async fn prometheus_alertmanager_and_amtool_use_a_protected_herald_over_tls() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let web = web_config(dir.path(), &pki);
    let server = format!(
        "  web_config_file: {}\n  ingest_tokens: [{INGEST_TOKEN}]\n  admin_tokens: [{ADMIN_TOKEN}]\n  \
         read_tokens: [{READ_TOKEN}]\n",
        web.display()
    );
    let herald = Herald::start_protected(
        dir.path(),
        &server,
        &format!("{E2E_ROUTE}receivers:\n  - name: e2e\n    log_configs: [{{}}]\n"),
        admin_client(&pki),
    )
    .await;
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_file).unwrap()).unwrap(),
        ])
        .build()
        .unwrap();
    let refused = anonymous
        .get(herald.url("/api/v2/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");

    // Prometheus: basic auth and the CA, as README shows.
    let password = write(dir.path(), "herald-password", PROMETHEUS_PASSWORD);
    write(dir.path(), "rules.yml", RULES);
    let alerting = for_herald(PROMETHEUS_PROTECTED, &herald.addr)
        .replace(
            "/etc/prometheus/herald-password",
            &password.display().to_string(),
        )
        .replace(
            "/etc/prometheus/herald-ca.crt",
            &pki.ca_file.display().to_string(),
        );
    write(
        dir.path(),
        "prometheus.yml",
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n{alerting}",
            dir.path().join("rules.yml").display()
        ),
    );
    let prometheus = Prometheus::start(dir.path()).await;
    wait_for_alert(&herald, "FromProtectedPrometheus", || prometheus.log()).await;

    // Alertmanager: an ingest token and the CA in its webhook's http_config, as README shows.
    let token = write(dir.path(), "herald-ingest-token", INGEST_TOKEN);
    let receiver = for_herald(ALERTMANAGER_PROTECTED, &herald.addr)
        .replace(
            "/etc/alertmanager/herald-ingest-token",
            &token.display().to_string(),
        )
        .replace(
            "/etc/alertmanager/herald-ca.crt",
            &pki.ca_file.display().to_string(),
        );
    let alertmanager = Alertmanager::start(
        dir.path(),
        &format!("route:\n  receiver: herald\n  group_wait: 0s\n  group_interval: 1s\n{receiver}"),
    )
    .await;
    alertmanager
        .post_alerts(
            &json!([{"labels": {"alertname": "ThroughAlertmanager", "instance": "db-1"}}])
                .to_string(),
        )
        .await;
    wait_for_alert(&herald, "ThroughAlertmanager", || alertmanager.log()).await;

    // amtool: the admin token and the CA in its --http.config.file, as README shows; a read token may query but
    // not add a silence; no credential, no answer.
    let admin = write(dir.path(), "admin-token", ADMIN_TOKEN);
    let read = write(dir.path(), "read-token", READ_TOKEN);
    let http_config = |name: &str, token: &Path| {
        write(
            dir.path(),
            name,
            &AMTOOL_HTTP_CONFIG
                .replace("/etc/herald/admin-token", &token.display().to_string())
                .replace("/etc/herald/tls/ca.crt", &pki.ca_file.display().to_string()),
        )
    };
    let as_admin = http_config("amtool-admin.yml", &admin);
    let as_reader = http_config("amtool-read.yml", &read);
    let (ok, listed) = amtool(&herald, Some(&as_reader), &["alert", "query"]).await;
    assert!(ok, "{listed}");
    assert!(
        listed.contains("FromProtectedPrometheus") && listed.contains("ThroughAlertmanager"),
        "{listed}"
    );
    let add = [
        "silence",
        "add",
        "alertname=ThroughAlertmanager",
        "--duration=1h",
        "--comment=e2e",
    ];
    let (ok, denied) = amtool(&herald, Some(&as_reader), &add).await;
    assert!(!ok, "a read token cannot add a silence: {denied}");
    let (ok, id) = amtool(&herald, Some(&as_admin), &add).await;
    assert!(ok, "{id}");
    assert_eq!(
        id.trim().len(),
        36,
        "amtool printed the new silence's id: {id:?}"
    );
    let (ok, silences) = amtool(&herald, Some(&as_reader), &["silence", "query"]).await;
    assert!(ok && silences.contains(id.trim()), "{silences}");
    let no_credential = write(
        dir.path(),
        "amtool-anonymous.yml",
        &format!("tls_config:\n  ca_file: {}\n", pki.ca_file.display()),
    );
    let (ok, refused) = amtool(&herald, Some(&no_credential), &["alert", "query"]).await;
    assert!(!ok, "{refused}");

    drop(prometheus);
    drop(alertmanager);
    herald.stop();
}
