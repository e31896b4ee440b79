//! Hot reload: the configuration in force (settings, route tree, built integrations) behind a watch channel, and
//! reloading it from its file on `POST /-/reload` or SIGHUP. A configuration that does not load keeps the one in
//! force; keys that only take effect at start (`server.listen`, `server.max_body_bytes`, `storage`) are reported.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{Mutex, watch};

use crate::clock::Clock;
use crate::config::{ConfigErrors, Loaded, Settings};
use crate::route::tree::RouteNode;
use crate::sinks::integrations::Integrations;

/// Where a reload reads the configuration from (the file `serve` started with, layered as at start).
pub type ConfigSource = Arc<dyn Fn() -> Result<Loaded, ConfigErrors> + Send + Sync>;

/// A configuration in force: settings and what was built from them.
#[derive(Debug)]
pub struct Applied {
    pub settings: Arc<Settings>,
    pub routes: Arc<RouteNode>,
    pub integrations: Arc<Integrations>,
}

impl Applied {
    pub fn build(
        settings: Settings,
        client: &reqwest::Client,
        clock: &Arc<dyn Clock>,
    ) -> Result<Applied, String> {
        let routes =
            RouteNode::build(&settings.route).map_err(|error| format!("route: {error}"))?;
        let integrations = Integrations::build(&settings, client, clock);
        Ok(Applied {
            settings: Arc::new(settings),
            routes: Arc::new(routes),
            integrations: Arc::new(integrations),
        })
    }
}

/// Keys read once at start: a reload that changes them says they wait for a restart.
fn needs_restart(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.server.listen != new.server.listen {
        keys.push("server.listen");
    }
    if old.server.max_body_bytes != new.server.max_body_bytes {
        keys.push("server.max_body_bytes");
    }
    if old.storage.backend != new.storage.backend {
        keys.push("storage.url");
    }
    keys
}

/// Holds the configuration in force and reloads it.
#[derive(Clone)]
pub struct Reloader {
    source: Option<ConfigSource>,
    applied: Arc<watch::Sender<Arc<Applied>>>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// One reload at a time.
    running: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("reloadable", &self.source.is_some())
            .finish()
    }
}

impl Reloader {
    pub fn new(
        applied: Applied,
        source: Option<ConfigSource>,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        metrics::gauge!("herald_config_last_reload_successful").set(1.0);
        metrics::gauge!("herald_config_last_reload_success_timestamp_seconds")
            .set(clock.now().timestamp() as f64);
        Reloader {
            source,
            applied: Arc::new(watch::Sender::new(Arc::new(applied))),
            client,
            clock,
            running: Arc::new(Mutex::new(())),
        }
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Applied> {
        Arc::clone(&self.applied.borrow())
    }

    /// Tells of every configuration put in force from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Applied>> {
        self.applied.subscribe()
    }

    /// Reads the configuration again and puts it in force; on failure the one in force stays. Returns what the
    /// new configuration warns about.
    pub async fn reload(&self) -> Result<Vec<String>, String> {
        let _one_at_a_time = self.running.lock().await;
        let result = self.load_and_apply().await;
        let success = result.is_ok();
        metrics::gauge!("herald_config_last_reload_successful").set(if success {
            1.0
        } else {
            0.0
        });
        if success {
            metrics::gauge!("herald_config_last_reload_success_timestamp_seconds")
                .set(Utc::now().timestamp() as f64);
        }
        match &result {
            Ok(warnings) => tracing::info!(warnings = warnings.len(), "configuration reloaded"),
            Err(error) => {
                tracing::error!(%error, "configuration reload failed; the one in force stays")
            }
        }
        result
    }

    async fn load_and_apply(&self) -> Result<Vec<String>, String> {
        let source = self
            .source
            .clone()
            .ok_or("this herald was started without a configuration file to reload")?;
        let loaded = tokio::task::spawn_blocking(move || source())
            .await
            .map_err(|error| format!("reading the configuration failed: {error}"))?
            .map_err(|errors| errors.to_string())?;
        let mut warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        let current = self.current();
        for key in needs_restart(&current.settings, &loaded.settings) {
            warnings.push(format!("{key} changed: it takes effect at the next start"));
        }
        let applied = Applied::build(loaded.settings, &self.client, &self.clock)?;
        self.applied.send_replace(Arc::new(applied));
        for warning in &warnings {
            tracing::warn!(%warning, "configuration");
        }
        Ok(warnings)
    }
}
