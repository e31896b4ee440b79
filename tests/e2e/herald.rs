//! The real `herald` binary, started with `serve -c <config>` on 127.0.0.1:0 with its SQLite store in the scenario's
//! temporary directory; its address is read from the "herald is listening" line of its JSON log.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::metrics_text::metric;
use crate::procs::{Proc, WAIT_LIMIT, eventually, wait_ready, write};
use crate::receiver::Recorded;

/// The start of the configuration the scenarios give herald: everything goes to receiver `e2e`, grouped by
/// alertname, with a group wait and interval of one second.
pub const E2E_ROUTE: &str =
    "route:\n  receiver: e2e\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n";

/// A configuration sending everything to receiver `e2e` (see [`E2E_ROUTE`]), a webhook at `url`.
pub fn webhook_config(url: &str) -> String {
    format!("{E2E_ROUTE}receivers:\n  - name: e2e\n    webhook_configs:\n      - url: {url}\n")
}

/// A notification's alerts as fingerprint -> status.
pub fn statuses(notification: &Recorded) -> BTreeMap<String, String> {
    notification.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| {
            (
                alert["fingerprint"].as_str().unwrap().to_owned(),
                alert["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub struct Herald {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http`, or `https` when its web configuration has `tls_server_config`.
    pub scheme: &'static str,
    pub db: PathBuf,
    pub client: reqwest::Client,
    proc: Proc,
}

impl Herald {
    /// Starts herald with `config` (YAML: route, receivers, …) after a `server` and `storage` section of its own.
    pub async fn start(dir: &Path, config: &str) -> Herald {
        Self::launch(dir, "", config, "http", reqwest::Client::new()).await
    }

    /// Starts herald serving HTTPS, with `server` (indented lines: `web_config_file`, tokens) added to its
    /// `server` section; `client` (trusting herald's CA and sending a credential) is the one its helpers use.
    pub async fn start_protected(
        dir: &Path,
        server: &str,
        config: &str,
        client: reqwest::Client,
    ) -> Herald {
        Self::launch(dir, server, config, "https", client).await
    }

    async fn launch(
        dir: &Path,
        server: &str,
        config: &str,
        scheme: &'static str,
        client: reqwest::Client,
    ) -> Herald {
        let db = dir.join("herald.db");
        let config = format!(
            "server:\n  listen: 127.0.0.1:0\n{server}storage:\n  url: sqlite://{}\n{config}",
            db.display()
        );
        let path = write(dir, "herald.yaml", &config);
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .env_remove("HERALD_CONFIG")
            .env_remove("RUST_LOG")
            .env("HERALD_LOG", "info")
            .args(["--log-format", "json", "serve", "-c"])
            .arg(&path);
        let mut proc = Proc::spawn("herald", command, dir);
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        let addr = loop {
            proc.assert_running();
            let listening = proc.log().lines().find_map(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                (entry["message"] == "herald is listening")
                    .then(|| entry["address"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(addr) = listening {
                break addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "herald never said where it listens:\n{}",
                proc.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let mut herald = Herald {
            addr,
            scheme,
            db,
            client,
            proc,
        };
        let ready = herald.url("/-/ready");
        wait_ready(&mut herald.proc, &ready, &herald.client).await;
        herald
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// POSTs (or with `method`, PUTs…) a JSON body with extra `headers`; returns the status and body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> (u16, String) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        self.send_json(reqwest::Method::POST, path, &[], body).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// `GET /api/v2/alerts{query}`.
    pub async fn alerts(&self, query: &str) -> Vec<Value> {
        let alerts = self.get_json(&format!("/api/v2/alerts{query}")).await;
        alerts.as_array().unwrap().clone()
    }

    /// The sum of the samples of metric `name` whose labels include all of `labels`; 0 when there are none.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        let text = response.text().await.unwrap();
        metric(&text, name, labels)
    }

    /// Waits until metric `name{labels}` reaches at least `value`.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        eventually(
            &format!("herald's {name}{labels:?} to reach {value}"),
            || async { (self.metric(name, labels).await >= value).then_some(()) },
        )
        .await;
    }

    /// Stops herald with SIGTERM and checks it exits cleanly.
    pub fn stop(mut self) {
        let code = self.proc.terminate();
        assert_eq!(code, Some(0), "herald's exit:\n{}", self.proc.log());
    }
}
