//! Test harness: herald in-process on 127.0.0.1:0 with a temporary SQLite store, and helpers to talk to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herald::clock::{Clock, SystemClock};
use herald::config::{
    DeliveryOptions, DeliverySettings, GroupBy, IngestSettings, LogConfig, Receiver, Route, Secret,
    ServerSettings, Settings, StorageBackend, StorageSettings, WebhookConfig,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Settings for a test: one receiver named `receiver` with a log integration; store at `db`.
pub fn settings(db: &Path, receiver: &str) -> Settings {
    Settings {
        origin: "test".into(),
        server: ServerSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 64 * 1024,
            external_url: None,
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(360),
            max_connections: None,
            admin_tokens: vec![],
            ingest_tokens: vec![],
            read_tokens: vec![],
            web: None,
        },
        storage: StorageSettings {
            backend: StorageBackend::Sqlite {
                path: db.to_path_buf(),
            },
            busy_timeout: Duration::from_millis(100),
            resolved_retention: Duration::from_secs(3600),
        },
        ingest: IngestSettings {
            resolve_timeout: Duration::from_secs(300),
            max_labels_per_alert: 128,
            max_alerts_per_request: 1000,
            grafana_signature: None,
        },
        route: Route {
            receiver: receiver.into(),
            group_by: GroupBy::Labels(vec!["alertname".into()]),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            matchers: vec![],
            match_equal: Default::default(),
            match_re: Default::default(),
            continue_matching: false,
            mute_time_intervals: vec![],
            active_time_intervals: vec![],
            routes: vec![],
        },
        receivers: vec![Receiver {
            name: receiver.into(),
            max_alerts: None,
            log_configs: vec![LogConfig {
                send_resolved: true,
                delivery: delivery_options(),
            }],
            webhook_configs: vec![],
            slack_configs: vec![],
            jira_configs: vec![],
            pagerduty_configs: vec![],
            wecom_configs: vec![],
            msteamsv2_configs: vec![],
            email_configs: vec![],
        }],
        time_intervals: vec![],
        inhibit_rules: vec![],
        delivery: default_delivery(),
        templates: Default::default(),
    }
}

/// Settings whose one receiver, `receiver`, POSTs to the webhook at `url`; groups by alertname and notifies at
/// once (group_wait 0).
pub fn webhook_settings(
    db: &Path,
    receiver: &str,
    url: &str,
    delivery: DeliveryOptions,
) -> Settings {
    let mut settings = settings(db, receiver);
    settings.route.group_wait = Duration::ZERO;
    settings.receivers[0].log_configs.clear();
    settings.receivers[0].webhook_configs.push(WebhookConfig {
        url: Secret::new(url),
        send_resolved: true,
        method: Default::default(),
        body: None,
        http: Default::default(),
        hmac_secret: None,
        max_alerts: None,
        delivery,
    });
    settings
}

/// A firing alert (one JSON object) that stays firing for as long as any test runs.
pub fn firing(name: &str) -> String {
    format!(r#"{{"labels":{{"alertname":"{name}"}},"endsAt":"2100-01-01T00:00:00Z"}}"#)
}

/// The embedded default's `delivery` section.
pub fn default_delivery() -> DeliverySettings {
    herald::config::load_str("", "defaults")
        .unwrap()
        .settings
        .delivery
}

/// An integration's delivery options as the embedded default sets them.
pub fn delivery_options() -> DeliveryOptions {
    let delivery = default_delivery();
    DeliveryOptions {
        retry: delivery.retry,
        rate_limit: None,
        timeout: delivery.timeout,
    }
}

pub struct Herald {
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    pub db: PathBuf,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), herald::RunError>>,
}

impl Herald {
    pub async fn start(settings: Settings) -> Herald {
        Self::start_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Herald {
        Self::start_with_source(settings, clock, None).await
    }

    /// herald configured from the file at `config`, which `POST /-/reload` reads again.
    pub async fn start_reloadable(config: &Path) -> Herald {
        Self::start_from_file(config, Arc::new(SystemClock)).await
    }

    /// herald configured from the file at `config` (which `POST /-/reload` reads again), on `clock`.
    pub async fn start_from_file(config: &Path, clock: Arc<dyn Clock>) -> Herald {
        let path = config.to_path_buf();
        let source: herald::reload::ConfigSource =
            Arc::new(move || herald::config::load(Some(&path)));
        let settings = source().unwrap().settings;
        Self::start_with_source(settings, clock, Some(source)).await
    }

    async fn start_with_source(
        settings: Settings,
        clock: Arc<dyn Clock>,
        source: Option<herald::reload::ConfigSource>,
    ) -> Herald {
        Self::start_with_client(settings, clock, source, "http", reqwest::Client::new()).await
    }

    /// herald serving HTTPS (its settings have a web configuration with `tls_server_config`), asked with `client`
    /// (which trusts its CA, and presents a certificate if it must).
    pub async fn start_https(settings: Settings, client: reqwest::Client) -> Herald {
        Self::start_with_client(settings, Arc::new(SystemClock), None, "https", client).await
    }

    async fn start_with_client(
        settings: Settings,
        clock: Arc<dyn Clock>,
        source: Option<herald::reload::ConfigSource>,
        scheme: &'static str,
        client: reqwest::Client,
    ) -> Herald {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let StorageBackend::Sqlite { path: db } = settings.storage.backend.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(herald::run_with_reload(
            settings,
            listener,
            shutdown.clone(),
            clock,
            source,
        ));
        let herald = Herald {
            addr,
            scheme,
            db,
            client,
            shutdown,
            task,
        };
        herald.wait_until(|status| status == 200, "/-/ready").await;
        herald
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn alerts(&self, query: &str) -> Vec<serde_json::Value> {
        let response = self.get(&format!("/api/v2/alerts{query}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `GET /api/herald/v1/deliveries{query}`'s list.
    pub async fn deliveries(&self, query: &str) -> Vec<serde_json::Value> {
        let response = self.get(&format!("/api/herald/v1/deliveries{query}")).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["deliveries"].as_array().unwrap().clone()
    }

    /// The id of the first delivery queued, waiting (up to a generous bound) for one.
    pub async fn first_delivery(&self) -> i64 {
        for _ in 0..1200 {
            if let Some(first) = self.deliveries("").await.last() {
                return first["id"].as_i64().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no delivery was queued");
    }

    /// `GET /api/herald/v1/deliveries/{id}`: the delivery, its notification and attempts.
    pub async fn delivery(&self, id: i64) -> serde_json::Value {
        let response = self.get(&format!("/api/herald/v1/deliveries/{id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls delivery `id` until `done` holds on it (a real event: its stored state), failing after a generous
    /// bound; returns it.
    pub async fn wait_for_delivery(
        &self,
        id: i64,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..1200 {
            let detail = self.delivery(id).await;
            if done(&detail) {
                return detail;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "delivery {id} never became {what}: {:#}",
            self.delivery(id).await
        );
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Polls `path` until its status satisfies `done`, failing after a generous bound.
    pub async fn wait_until(&self, done: impl Fn(u16) -> bool, path: &str) {
        for _ in 0..600 {
            if let Ok(response) = self.client.get(self.url(path)).send().await
                && done(response.status().as_u16())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} never reached the expected status");
    }

    /// Graceful stop; returns what `run` returned.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

pub use crate::metrics_text::metric;

/// Waits until `check` holds on the metrics text, failing after a generous bound.
pub async fn wait_for_metric(herald: &Herald, what: &str, check: impl Fn(&str) -> bool) {
    for _ in 0..600 {
        if check(&herald.metrics().await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("metrics never showed {what}:\n{}", herald.metrics().await);
}
