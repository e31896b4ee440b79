//! Herald: an alert-routing daemon. This crate root wires the modules together; `run` is the one entry point.
#![forbid(unsafe_code)]

pub mod alert;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod dispatch;
pub mod http;
pub mod ingest;
pub mod inhibit;
pub mod matcher;
pub mod notification;
pub mod reload;
pub mod route;
pub mod sinks;
pub mod store;
pub mod template;
pub mod timeinterval;
pub mod version;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::store::StoreError;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("configuration cannot be applied: {0}")]
    Config(String),
    #[error("HTTP server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Runs herald on `listener` until `shutdown` is cancelled, with the system clock.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    run_with_clock(settings, listener, shutdown, Arc::new(SystemClock)).await
}

/// Runs herald with an injected clock and no configuration file to reload.
pub async fn run_with_clock(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<(), RunError> {
    run_with_reload(settings, listener, shutdown, clock, None).await
}

/// Runs herald: opens the store, starts the background tasks, serves HTTP; reloads the configuration from `source`
/// on `POST /-/reload` or SIGHUP; on shutdown stops accepting, lets in-flight requests finish (bounded by
/// `server.shutdown_timeout`), stops the tasks and closes the store cleanly.
pub async fn run_with_reload(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
    source: Option<reload::ConfigSource>,
) -> Result<(), RunError> {
    // The metrics recorder first: what starts next records into it from its first step.
    http::metrics::handle();
    let client = sinks::http::client()
        .map_err(|error| RunError::Config(format!("cannot build the HTTP client: {error}")))?;
    let applied = reload::Applied::build(settings, &client, &clock).map_err(RunError::Config)?;
    let settings = Arc::clone(&applied.settings);
    let reloader = reload::Reloader::new(applied, source, client, Arc::clone(&clock));
    let store = store::open(&settings.storage).await?;
    let silences = match route::silence::SilenceBook::load(Arc::clone(&store)).await {
        Ok(book) => Arc::new(book),
        Err(error) => {
            if let Err(close) = store.close().await {
                tracing::warn!(error = %close, "closing the store failed");
            }
            return Err(error.into());
        }
    };
    let background = CancellationToken::new();
    // The engine stops last, so what the dispatcher queues while stopping is still known to it.
    let delivery_shutdown = CancellationToken::new();
    let (deliveries, engine) = deliver::start(
        reloader.subscribe(),
        Arc::clone(&store),
        Arc::clone(&clock),
        delivery_shutdown.clone(),
    );
    let (dispatch, dispatcher) = dispatch::start(
        reloader.subscribe(),
        deliveries.clone(),
        Arc::clone(&store),
        Arc::clone(&clock),
        Arc::clone(&silences),
        background.clone(),
    );
    let sweeper = dispatch::sweeper::start(
        Arc::clone(&store),
        Arc::clone(&clock),
        dispatch.clone(),
        {
            let reloader = reloader.clone();
            move || {
                let settings = Arc::clone(&reloader.current().settings);
                dispatch::sweeper::Retention {
                    resolved: settings.storage.resolved_retention,
                    deliveries: settings.delivery.retention,
                }
            }
        },
        background.clone(),
    );
    let silence_gc = route::silence::spawn_gc(
        Arc::clone(&silences),
        Arc::clone(&clock),
        {
            let reloader = reloader.clone();
            move || reloader.current().settings.storage.resolved_retention
        },
        background.clone(),
    );
    let hangups = spawn_reload_on_sighup(reloader.clone(), background.clone());
    let state = http::AppState::new(
        reloader,
        Arc::clone(&store),
        clock,
        dispatch,
        deliveries,
        silences,
    );
    let upkeep = spawn_metrics_upkeep(state.metrics.clone(), background.clone());
    let tls = tls_source(&settings, &state.reloader);
    let limits = connection_limits(&settings, &state.reloader);
    let app = http::router(state);

    if let Ok(address) = listener.local_addr() {
        let store = match &settings.storage.backend {
            config::StorageBackend::Sqlite { path } => format!("sqlite://{}", path.display()),
        };
        tracing::info!(
            %address,
            tls = tls.is_some(),
            version = version::VERSION,
            revision = version::REVISION,
            origin = %settings.origin,
            %store,
            "herald is listening"
        );
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = watchdog::spawn(background.clone());

    http::serve::serve(
        listener,
        app,
        tls,
        limits,
        shutdown,
        settings.server.shutdown_timeout,
    )
    .await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down");

    background.cancel();
    for task in [dispatcher, sweeper, silence_gc, upkeep, hangups]
        .into_iter()
        .chain(watchdog)
    {
        if let Err(error) = task.await {
            tracing::warn!(%error, "background task ended abnormally");
        }
    }
    // Sends in flight finish within `delivery.drain_timeout` or go back to pending; pending ones wait in the store.
    delivery_shutdown.cancel();
    if let Err(error) = engine.await {
        tracing::warn!(%error, "delivery engine ended abnormally");
    }
    store.close().await?;
    tracing::info!("store closed");
    Ok(())
}

/// Where the HTTPS listener takes its TLS configuration from, when herald started with `tls_server_config`: the
/// configuration in force (a reload renews certificates), or the one it started with while the one in force has
/// none (serving HTTPS or HTTP is decided at start). `None` serves plain HTTP.
fn tls_source(settings: &Settings, reloader: &reload::Reloader) -> Option<http::serve::TlsSource> {
    let tls_of = |settings: &Settings| {
        let web = settings.server.web.as_ref()?;
        web.tls.as_ref().map(|tls| Arc::clone(&tls.rustls))
    };
    let started = tls_of(settings)?;
    let reloader = reloader.clone();
    Some(Box::new(move || {
        tls_of(&reloader.current().settings).unwrap_or_else(|| Arc::clone(&started))
    }))
}

/// The connection settings in force, read as each connection is accepted: a reload changes them for the
/// connections accepted after it. Raises the open-file limit to its hard limit first, and derives
/// `server.max_connections` from it when unset.
fn connection_limits(
    settings: &Settings,
    reloader: &reload::Reloader,
) -> http::serve::LimitsSource {
    let nofile = http::serve::raise_open_file_limit();
    let derived = http::serve::default_max_connections(nofile);
    let max_connections = settings.server.max_connections.unwrap_or(derived);
    if !http::serve::fits_open_file_limit(max_connections, nofile) {
        tracing::warn!(
            max_connections,
            open_file_limit = nofile,
            "server.max_connections is close to or above the open-file limit: connections may fail for want of \
             file descriptors; raise the limit (LimitNOFILE= in systemd, ulimit -n) or lower server.max_connections"
        );
    }
    tracing::debug!(
        max_connections,
        open_file_limit = nofile,
        "connection limit"
    );
    let reloader = reloader.clone();
    Box::new(move || {
        let settings = &reloader.current().settings;
        http::serve::Limits {
            header_read_timeout: settings.server.header_read_timeout,
            idle_timeout: settings.server.idle_timeout,
            max_connections: settings.server.max_connections.unwrap_or(derived),
        }
    })
}

/// Reloads the configuration on each SIGHUP, like `POST /-/reload`. The signal is watched before this returns, so
/// a SIGHUP sent once herald says it listens is never missed.
fn spawn_reload_on_sighup(
    reloader: reload::Reloader,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup());
    tokio::spawn(async move {
        let mut hangups = match hangups {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP; reload with POST /-/reload");
                return;
            }
        };
        loop {
            tokio::select! {
                Some(()) = hangups.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = reloader.reload().await;
                }
                () = shutdown.cancelled() => break,
            }
        }
    })
}

fn spawn_metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = ticker.tick() => handle.run_upkeep(),
                () = shutdown.cancelled() => break,
            }
        }
    })
}
