//! The configuration snippets README.md's "Use with Prometheus / Alertmanager / Grafana" shows, as the tests use
//! them: written for herald on 127.0.0.1:9095, and pointed at the test's herald with [`for_herald`]. A test checks the
//! README still shows them word for word.

/// Prometheus's `alerting:` section (`prometheus.yml`).
pub const PROMETHEUS_ALERTING: &str = r#"alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ["127.0.0.1:9095"]
"#;

/// Alertmanager's receiver for herald (`alertmanager.yml`).
pub const ALERTMANAGER_RECEIVER: &str = r#"receivers:
  - name: herald
    webhook_configs:
      - url: http://127.0.0.1:9095/webhook/alertmanager
        send_resolved: true
"#;

/// Prometheus's `alerting:` section for a herald serving HTTPS with basic auth (`prometheus.yml`).
pub const PROMETHEUS_PROTECTED: &str = r#"alerting:
  alertmanagers:
    - api_version: v2
      scheme: https
      basic_auth:
        username: prometheus
        password_file: /etc/prometheus/herald-password
      tls_config:
        ca_file: /etc/prometheus/herald-ca.crt
      static_configs:
        - targets: ["127.0.0.1:9095"]
"#;

/// Alertmanager's receiver for a herald serving HTTPS that takes an ingest token (`alertmanager.yml`).
pub const ALERTMANAGER_PROTECTED: &str = r#"receivers:
  - name: herald
    webhook_configs:
      - url: https://127.0.0.1:9095/webhook/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials_file: /etc/alertmanager/herald-ingest-token
          tls_config:
            ca_file: /etc/alertmanager/herald-ca.crt
"#;

/// amtool's `--http.config.file` for a herald serving HTTPS that takes a token.
pub const AMTOOL_HTTP_CONFIG: &str = r#"authorization:
  credentials_file: /etc/herald/admin-token
tls_config:
  ca_file: /etc/herald/tls/ca.crt
"#;

/// The URL of Grafana's webhook contact point.
pub const GRAFANA_URL: &str = "http://127.0.0.1:9095/webhook/grafana";

/// `snippet` with the README's herald address replaced by `addr`.
pub fn for_herald(snippet: &str, addr: &str) -> String {
    assert!(snippet.contains("127.0.0.1:9095"));
    snippet.replace("127.0.0.1:9095", addr)
}

#[test]
fn readme_shows_the_snippets_the_tests_use() {
    let readme = include_str!("../../README.md");
    for snippet in [
        PROMETHEUS_ALERTING,
        ALERTMANAGER_RECEIVER,
        GRAFANA_URL,
        PROMETHEUS_PROTECTED,
        ALERTMANAGER_PROTECTED,
        AMTOOL_HTTP_CONFIG,
    ] {
        assert!(
            readme.contains(snippet),
            "README.md no longer shows this tested snippet:\n{snippet}"
        );
    }
}
