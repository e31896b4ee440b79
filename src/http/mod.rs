//! The HTTP surface: shared state and the router (Alertmanager-compatible API, webhooks, health, metrics).

mod alerts;
mod auth;
mod deliveries;
pub mod error;
mod headers;
mod health;
mod ingest;
pub mod metrics;
mod receivers;
pub mod routes;
pub mod serve;
pub mod silences;
mod status;

use std::sync::Arc;

pub use ingest::MAX_IN_FLIGHT as INGEST_MAX_IN_FLIGHT;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::clock::Clock;
use crate::config::Settings;
use crate::deliver::DeliveryHandle;
use crate::dispatch::DispatchHandle;
use crate::ingest::Limits;
use crate::reload::Reloader;
use crate::route::silence::SilenceBook;
use crate::route::tree::RouteNode;
use crate::store::Store;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration in force, and reloading it.
    pub reloader: Reloader,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub dispatch: DispatchHandle,
    pub deliveries: DeliveryHandle,
    pub silences: Arc<SilenceBook>,
    pub metrics: PrometheusHandle,
    /// When this instance started serving.
    pub started: chrono::DateTime<chrono::Utc>,
    /// Admits ingest requests (see `ingest::MAX_IN_FLIGHT`).
    pub ingest_gate: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(
        reloader: Reloader,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        dispatch: DispatchHandle,
        deliveries: DeliveryHandle,
        silences: Arc<SilenceBook>,
    ) -> Self {
        let started = clock.now();
        AppState {
            started,
            reloader,
            store,
            clock,
            dispatch,
            deliveries,
            silences,
            metrics: metrics::handle(),
            ingest_gate: Arc::new(tokio::sync::Semaphore::new(ingest::MAX_IN_FLIGHT)),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.reloader.current().settings)
    }

    /// The route tree in force.
    pub fn routes(&self) -> Arc<RouteNode> {
        Arc::clone(&self.reloader.current().routes)
    }

    /// The ingest limits in force.
    pub fn limits(&self) -> Limits {
        let settings = self.settings();
        Limits {
            resolve_timeout: settings.ingest.resolve_timeout,
            max_labels_per_alert: settings.ingest.max_labels_per_alert,
            max_alerts_per_request: settings.ingest.max_alerts_per_request,
        }
    }
}

/// The router: every endpoint of `routes::ENDPOINTS`, behind the auth guard, with the web configuration's response
/// headers on every answer.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings().server.max_body_bytes;
    let mut router = Router::new();
    for endpoint in routes::ENDPOINTS {
        router = router.route(endpoint.path, endpoint.handler(&state));
    }
    router
        .route_layer(middleware::from_fn_with_state(
            auth::Guard::new(state.clone()),
            auth::guard,
        ))
        .route_layer(middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            headers::add_configured,
        ))
        .with_state(state)
}
