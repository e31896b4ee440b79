//! `/metrics` of a herald that has done nothing yet: build information, process figures, and every counter of a
//! known label set at 0, so `rate()` and dashboards work from the start as they do with Alertmanager.

use std::process::Command;

use crate::crash::serve_with_start_line;
use crate::metrics_text::metric;

#[tokio::test]
async fn a_fresh_herald_shows_build_info_process_metrics_and_counters_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: 127.0.0.1:0}}\nstorage: {{url: sqlite://{}}}\n\
             route: {{receiver: pager}}\n\
             receivers: [{{name: pager, webhook_configs: [{{url: 'http://127.0.0.1:9/hook'}}]}}]\n",
            dir.path().join("herald.db").display()
        ),
    )
    .unwrap();
    let (herald, start) = serve_with_start_line(&config);
    let herald = Stopped(herald);
    // The start line names the version, where the configuration came from, and the store.
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"), "{start}");
    assert!(
        start["origin"].as_str().unwrap().ends_with("herald.yaml"),
        "{start}"
    );
    assert_eq!(
        start["store"],
        format!("sqlite://{}", dir.path().join("herald.db").display()),
        "{start}"
    );
    let address = start["address"].as_str().unwrap().to_owned();
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let build = text
        .lines()
        .find(|line| line.starts_with("herald_build_info{"))
        .unwrap_or_else(|| panic!("no herald_build_info:\n{text}"));
    assert!(build.ends_with(" 1"), "{build}");
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    assert!(build.contains("revision=\""), "{build}");
    assert!(build.contains("rustversion=\"1."), "{build}");

    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("{process} "))),
            "no {process}:\n{text}"
        );
    }
    assert!(metric(&text, "process_resident_memory_bytes", &[]) > 0.0);

    let zero = |name: &str, labels: &[(&str, &str)]| {
        let present = text.lines().any(|line| {
            line.starts_with(name)
                && labels
                    .iter()
                    .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        });
        assert!(present, "{name} {labels:?} is not shown:\n{text}");
        assert_eq!(metric(&text, name, labels), 0.0, "{name} {labels:?}");
    };
    zero(
        "herald_notifications_total",
        &[("receiver", "pager"), ("integration", "webhook")],
    );
    for reason in ["permanent", "retries_exhausted"] {
        zero(
            "herald_notifications_failed_total",
            &[
                ("receiver", "pager"),
                ("integration", "webhook"),
                ("reason", reason),
            ],
        );
    }
    for outcome in ["delivered", "retryable", "rate_limited", "permanent"] {
        zero(
            "herald_delivery_attempts_total",
            &[("integration", "webhook"), ("outcome", outcome)],
        );
    }
    zero("herald_rate_limited_total", &[("integration", "webhook")]);
    for reason in ["busy", "backlog"] {
        zero("herald_ingest_refused_total", &[("reason", reason)]);
    }
    for reason in ["silenced", "inhibited", "muted", "deduped"] {
        zero(
            "herald_notifications_suppressed_total",
            &[("reason", reason)],
        );
    }
    for reason in [
        "header_timeout",
        "idle_timeout",
        "evicted",
        "over_limit",
        "refused",
    ] {
        zero(
            "herald_http_connections_closed_total",
            &[("reason", reason)],
        );
    }
    // The connection asking is the one open; the limit is derived from the open-file limit.
    assert_eq!(metric(&text, "herald_http_connections", &[]), 1.0);
    assert!(metric(&text, "herald_http_connections_limit", &[]) >= 16.0);
    zero(
        "herald_alerts_received_total",
        &[("source", "prometheus"), ("status", "firing")],
    );

    let mut herald = herald;
    let _ = Command::new("kill")
        .args(["-TERM", &herald.0.id().to_string()])
        .status();
    assert!(herald.0.wait().unwrap().success());
}

/// A herald process, killed if the test ends before stopping it.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
