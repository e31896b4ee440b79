//! The one table of endpoints: every method and path herald serves, its handler, and the right a caller needs
//! when auth is configured. The router and the auth guard are both built from it, so no endpoint can be served
//! without a rule.

use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, delete, get, post};

use super::{AppState, alerts, deliveries, health, ingest, metrics, receivers, silences, status};
use crate::alert::Source;

/// What a caller must hold to use an endpoint once any credential is configured (`ServerSettings::auth_enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Open to anyone: `/-/healthy` and `/-/ready`, for probes.
    Open,
    /// A read token, or an admin token or basic auth user.
    Read,
    /// An ingest token, or an admin token or basic auth user (or, for Grafana's webhook, a valid HMAC signature).
    Ingest,
    /// An admin token or a basic auth user.
    Admin,
}

/// One endpoint: a method on a path (axum's syntax, `{id}` for a segment).
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: fn(&AppState) -> MethodRouter<AppState>,
}

impl Endpoint {
    pub(super) fn handler(&self, state: &AppState) -> MethodRouter<AppState> {
        (self.handler)(state)
    }
}

/// Every endpoint herald serves.
pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::POST,
        path: "/api/v2/alerts",
        access: Access::Ingest,
        handler: |state| ingest::handler(Source::Prometheus, MethodFilter::POST, state),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v2/alerts",
        access: Access::Read,
        handler: |_| get(alerts::get_alerts),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v2/alerts/groups",
        access: Access::Read,
        handler: |_| get(alerts::get_alert_groups),
    },
    Endpoint {
        method: Method::POST,
        path: "/webhook/alertmanager",
        access: Access::Ingest,
        handler: |state| ingest::handler(Source::Alertmanager, MethodFilter::POST, state),
    },
    Endpoint {
        method: Method::POST,
        path: "/webhook/grafana",
        access: Access::Ingest,
        handler: |state| ingest::handler(Source::Grafana, MethodFilter::POST, state),
    },
    Endpoint {
        method: Method::PUT,
        path: "/webhook/grafana",
        access: Access::Ingest,
        handler: |state| ingest::handler(Source::Grafana, MethodFilter::PUT, state),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v2/silences",
        access: Access::Read,
        handler: |_| get(silences::get_silences),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v2/silences",
        access: Access::Admin,
        handler: |_| post(silences::post_silences),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v2/silence/{id}",
        access: Access::Read,
        handler: |_| get(silences::get_silence),
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/v2/silence/{id}",
        access: Access::Admin,
        handler: |_| delete(silences::delete_silence),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v2/receivers",
        access: Access::Read,
        handler: |_| get(receivers::get_receivers),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v2/status",
        access: Access::Read,
        handler: |_| get(status::get_status),
    },
    Endpoint {
        method: Method::GET,
        path: "/-/healthy",
        access: Access::Open,
        handler: |_| get(health::healthy),
    },
    Endpoint {
        method: Method::GET,
        path: "/-/ready",
        access: Access::Open,
        handler: |_| get(health::ready),
    },
    Endpoint {
        method: Method::POST,
        path: "/-/reload",
        access: Access::Admin,
        handler: |_| post(health::reload),
    },
    Endpoint {
        method: Method::GET,
        path: "/metrics",
        access: Access::Read,
        handler: |_| get(metrics::render),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/herald/v1/deliveries",
        access: Access::Read,
        handler: |_| get(deliveries::list),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/herald/v1/deliveries/retry",
        access: Access::Admin,
        handler: |_| post(deliveries::retry_many),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/herald/v1/deliveries/{id}",
        access: Access::Read,
        handler: |_| get(deliveries::show),
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/herald/v1/deliveries/{id}",
        access: Access::Admin,
        handler: |_| delete(deliveries::discard),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/herald/v1/deliveries/{id}/retry",
        access: Access::Admin,
        handler: |_| post(deliveries::retry_one),
    },
];

/// The access an endpoint needs: HEAD as its GET; a method the path does not serve (answered 405) needs a read
/// right, so an unauthenticated caller learns nothing; an unmatched path (404) is `None`.
pub fn access(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let mut known_path = false;
    for endpoint in ENDPOINTS.iter().filter(|endpoint| endpoint.path == path) {
        known_path = true;
        if endpoint.method == method {
            return Some(endpoint.access);
        }
    }
    known_path.then_some(Access::Read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_health_and_readiness_are_open() {
        let open: Vec<&str> = ENDPOINTS
            .iter()
            .filter(|endpoint| endpoint.access == Access::Open)
            .map(|endpoint| endpoint.path)
            .collect();
        assert_eq!(open, ["/-/healthy", "/-/ready"]);
    }

    #[test]
    fn access_follows_the_table() {
        assert_eq!(
            access(&Method::POST, "/api/v2/alerts"),
            Some(Access::Ingest)
        );
        assert_eq!(access(&Method::GET, "/api/v2/alerts"), Some(Access::Read));
        assert_eq!(access(&Method::HEAD, "/-/ready"), Some(Access::Open));
        assert_eq!(access(&Method::PUT, "/-/ready"), Some(Access::Read));
        assert_eq!(
            access(&Method::DELETE, "/api/v2/silence/{id}"),
            Some(Access::Admin)
        );
        assert_eq!(access(&Method::GET, "/nowhere"), None);
    }

    #[test]
    fn each_method_and_path_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for endpoint in ENDPOINTS {
            assert!(
                seen.insert((endpoint.method.clone(), endpoint.path)),
                "{} {} twice",
                endpoint.method,
                endpoint.path
            );
        }
    }
}
