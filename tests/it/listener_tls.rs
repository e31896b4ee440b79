//! HTTPS on herald's own listener, from `tls_server_config` of its web configuration, with certificates made for
//! each test: clients that trust the CA are served; plain HTTP, a TLS 1.2 client under `min_version: TLS13` and a
//! client without a certificate under `RequireAndVerifyClientCert` are not; `herald healthcheck` asks a herald
//! serving HTTPS.

use std::path::Path;
use std::sync::Arc;

use herald::config::Secret;

use crate::harness::{Herald, settings};
use crate::listener_auth::web_config;
use crate::pki::TestPki;

fn tls_section(pki: &TestPki, extra: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{extra}",
        pki.server_cert_file.display(),
        pki.server_key_file.display()
    )
}

fn tls_settings(dir: &Path, web: &str) -> herald::config::Settings {
    let mut settings = settings(&dir.join("tls.db"), "tls-rcv");
    settings.server.read_tokens = vec![Secret::new("read-token")];
    settings.server.web = Some(Arc::new(web_config(dir, web)));
    settings
}

fn trusting(pki: &TestPki) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_file).unwrap()).unwrap();
    reqwest::Client::builder().tls_certs_only([ca])
}

fn with_certificate(pki: &TestPki) -> reqwest::Client {
    let mut pem = std::fs::read(&pki.client_cert_file).unwrap();
    pem.extend(std::fs::read(&pki.client_key_file).unwrap());
    trusting(pki)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn herald_serves_https_with_its_certificate_and_auth() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let settings = tls_settings(dir.path(), &tls_section(&pki, ""));
    let herald = Herald::start_https(settings, trusting(&pki).build().unwrap()).await;
    assert_eq!(herald.get("/-/ready").await.status(), 200);
    assert_eq!(herald.get("/api/v2/alerts").await.status(), 401);
    let read = herald
        .client
        .get(herald.url("/api/v2/alerts"))
        .bearer_auth("read-token")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["x-frame-options"], "deny");
    let plain = reqwest::get(format!("http://{}/-/ready", herald.addr)).await;
    assert!(plain.is_err(), "plain HTTP is not served: {plain:?}");
    let untrusting = reqwest::Client::new()
        .get(herald.url("/-/ready"))
        .send()
        .await;
    assert!(untrusting.is_err(), "the certificate is the test CA's");
    herald.stop().await;
}

#[tokio::test]
async fn min_version_tls13_refuses_a_tls12_client() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let settings = tls_settings(dir.path(), &tls_section(&pki, "  min_version: TLS13\n"));
    let herald = Herald::start_https(settings, trusting(&pki).build().unwrap()).await;
    let old = trusting(&pki)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let refused = old.get(herald.url("/-/ready")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    herald.stop().await;
}

#[tokio::test]
async fn required_client_certificates_are_verified() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
        pki.ca_file.display()
    );
    let settings = tls_settings(dir.path(), &tls_section(&pki, &extra));
    let herald = Herald::start_https(settings, with_certificate(&pki)).await;
    assert_eq!(herald.get("/-/ready").await.status(), 200);
    let anonymous = trusting(&pki).build().unwrap();
    let refused = anonymous.get(herald.url("/-/ready")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    herald.stop().await;
}

#[tokio::test]
async fn healthcheck_asks_a_herald_serving_https() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let settings = tls_settings(dir.path(), &tls_section(&pki, ""));
    let herald = Herald::start_https(settings, trusting(&pki).build().unwrap()).await;
    // The configuration healthcheck reads: herald's address and the same web configuration.
    let config = dir.path().join("herald.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: {}\n  web_config_file: {}\n  read_tokens: [read-token]\n",
            herald.addr,
            dir.path().join("web.yml").display()
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_remove("HERALD_CONFIG")
        .args(["healthcheck", "-c"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("https://{}/-/ready: 200 OK", herald.addr)),
        "{stdout}"
    );
    herald.stop().await;
}
