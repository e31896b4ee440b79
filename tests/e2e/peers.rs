//! The real Prometheus and Alertmanager (Debian's `prometheus` and `prometheus-alertmanager`), each on its own
//! loopback port with its own data directory, never the packaged services' :9090/:9093 or their state.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::procs::{Proc, free_port, program, wait_ready};

/// How many times a start is tried on a new port when the one picked was taken in between.
const PORT_TRIES: usize = 3;

/// Starts `command(port)` on free ports until it is ready (`ready_path` answers 200) or fails for another reason
/// than a taken port.
async fn start_on_free_port(
    name: &str,
    dir: &Path,
    ready_path: &str,
    command: impl Fn(u16) -> Command,
) -> (Proc, String) {
    for _ in 0..PORT_TRIES {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut proc = Proc::spawn(name, command(port), dir);
        // Give a lost race for the port the moment it takes to show, then retry elsewhere.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if proc.exited().is_some() && proc.log().contains("address already in use") {
            continue;
        }
        wait_ready(
            &mut proc,
            &format!("http://{addr}{ready_path}"),
            &reqwest::Client::new(),
        )
        .await;
        return (proc, addr);
    }
    panic!("{name} found no free port in {PORT_TRIES} tries");
}

/// Prometheus's `--rules.alert.resend-delay`, in seconds. Its notifier drops what it is given until its discovery
/// has found the Alertmanagers, about 5 s after a start and again after every reload, so an alert evaluated then
/// reaches herald only when it is sent again: after this delay instead of the default minute. A firing alert is sent
/// with `endsAt` 4 resend delays ahead, which must outlast that gap, or herald would rightly resolve it on its own
/// before Prometheus's resolve arrives.
pub const RESEND_DELAY_SECS: u64 = 8;

/// `prometheus` with `--config.file dir/prometheus.yml` (which names the rule files), TSDB under `dir`, lifecycle
/// API on for reloads.
pub struct Prometheus {
    pub addr: String,
    client: reqwest::Client,
    proc: Proc,
}

impl Prometheus {
    pub async fn start(dir: &Path) -> Prometheus {
        let binary = program("prometheus", "prometheus");
        let config = dir.join("prometheus.yml");
        let data = dir.join("prometheus-data");
        let (proc, addr) = start_on_free_port("prometheus", dir, "/-/ready", |port| {
            let mut command = Command::new(&binary);
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--web.external-url=http://127.0.0.1:{port}/"))
                .arg("--web.enable-lifecycle")
                .arg(format!("--rules.alert.resend-delay={RESEND_DELAY_SECS}s"))
                .arg("--log.level=debug");
            command
        })
        .await;
        Prometheus {
            addr,
            client: reqwest::Client::new(),
            proc,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Reloads the configuration and rule files (`POST /-/reload`, which answers once the reload is done).
    pub async fn reload(&mut self) {
        self.proc.assert_running();
        let response = self
            .client
            .post(self.url("/-/reload"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "Prometheus reload failed: {body}");
    }

    /// The `data` of a `GET /api/v1/...` answer.
    pub async fn api(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "success", "{body}");
        body["data"].clone()
    }

    /// The sum of the samples of Prometheus's own metric `name`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// `prometheus-alertmanager` with `--config.file dir/alertmanager.yml`, its storage under `dir`, and clustering off.
pub struct Alertmanager {
    pub addr: String,
    client: reqwest::Client,
    proc: Proc,
}

impl Alertmanager {
    pub async fn start(dir: &Path, config: &str) -> Alertmanager {
        let binary = program("prometheus-alertmanager", "prometheus-alertmanager");
        let path = crate::procs::write(dir, "alertmanager.yml", config);
        let data = dir.join("alertmanager-data");
        let (proc, addr) = start_on_free_port("alertmanager", dir, "/-/ready", |port| {
            let mut command = Command::new(&binary);
            command
                .arg(format!("--config.file={}", path.display()))
                .arg(format!("--storage.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=debug");
            command
        })
        .await;
        Alertmanager {
            addr,
            client: reqwest::Client::new(),
            proc,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `POST /api/v2/alerts` with `body`; Alertmanager answers 200 with no body when it took them all.
    pub async fn post_alerts(&self, body: &str) {
        let response = self
            .client
            .post(self.url("/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "Alertmanager refused the alerts: {text}");
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}
