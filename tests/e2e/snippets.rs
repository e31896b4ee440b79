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
    for snippet in [PROMETHEUS_ALERTING, ALERTMANAGER_RECEIVER, GRAFANA_URL] {
        assert!(
            readme.contains(snippet),
            "README.md no longer shows this tested snippet:\n{snippet}"
        );
    }
}
