//! The auth guard: once any credential is configured (`server.admin_tokens`, `ingest_tokens`, `read_tokens`, or
//! `basic_auth_users` of `server.web_config_file`), every endpoint but `/-/healthy` and `/-/ready` needs one with
//! the right its table row asks for (`routes::Access`): 401 with `WWW-Authenticate` without a valid credential,
//! 403 with one that lacks the right. Tokens are compared in constant time and never logged.

mod basic;

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use super::routes::{self, Access};
use crate::config::{Secret, ServerSettings, Settings};

pub use basic::BasicAuth;

/// The guard's state: the handlers' state and the cache of verified basic auth passwords.
#[derive(Debug, Clone)]
pub struct Guard {
    state: AppState,
    basic: Arc<BasicAuth>,
}

impl Guard {
    pub fn new(state: AppState) -> Self {
        Guard {
            state,
            basic: Arc::new(BasicAuth::default()),
        }
    }
}

/// What a request presented in its `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Basic {
        user: String,
        password: String,
    },
    /// Another scheme, or a header that is not readable.
    Unusable,
}

fn credential(headers: &HeaderMap) -> Credential<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credential::None;
    };
    let Some((scheme, rest)) = value.to_str().ok().and_then(|value| value.split_once(' ')) else {
        return Credential::Unusable;
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Credential::Bearer(rest);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some((user, password)) = decoded.as_deref().and_then(|text| text.split_once(':')) {
            return Credential::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            };
        }
    }
    Credential::Unusable
}

/// The rights a bearer token carries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Rights {
    admin: bool,
    ingest: bool,
    read: bool,
}

impl Rights {
    const ALL: Rights = Rights {
        admin: true,
        ingest: true,
        read: true,
    };

    fn any(self) -> bool {
        self.admin || self.ingest || self.read
    }

    fn allow(self, access: Access) -> bool {
        match access {
            Access::Open => true,
            Access::Read => self.admin || self.read,
            Access::Ingest => self.admin || self.ingest,
            Access::Admin => self.admin,
        }
    }
}

/// Whether `presented` equals one of `tokens`, comparing with each in constant time.
fn accepted(tokens: &[Secret], presented: &str) -> bool {
    tokens.iter().fold(false, |found, token| {
        found | bool::from(token.expose().as_bytes().ct_eq(presented.as_bytes()))
    })
}

fn token_rights(server: &ServerSettings, presented: &str) -> Rights {
    Rights {
        admin: accepted(&server.admin_tokens, presented),
        ingest: accepted(&server.ingest_tokens, presented),
        read: accepted(&server.read_tokens, presented),
    }
}

/// What a request needing `access` is told when it may not go on.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Unauthenticated(&'static str),
    Forbidden(&'static str),
}

fn needs(access: Access) -> &'static str {
    match access {
        Access::Read => {
            "this credential may not read: reading needs a read token, an admin token or a basic auth user"
        }
        Access::Ingest => {
            "this credential may not post alerts: that needs an ingest token, an admin token or a basic auth user"
        }
        Access::Admin | Access::Open => {
            "this credential may not change herald: that needs an admin token or a basic auth user"
        }
    }
}

/// Whether the request is Grafana's webhook with a signature herald checks itself (`ingest.grafana_hmac_secret`):
/// then a request without a credential goes on to that check.
fn signed_grafana(settings: &Settings, matched: &str, access: Access) -> bool {
    access == Access::Ingest
        && matched == "/webhook/grafana"
        && settings.ingest.grafana_signature.is_some()
}

async fn decide(
    guard: &Guard,
    settings: &Settings,
    matched: &str,
    access: Access,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let server = &settings.server;
    let rights = match credential(headers) {
        Credential::None if signed_grafana(settings, matched, access) => return Ok(()),
        Credential::None => {
            return Err(Refusal::Unauthenticated(
                "this endpoint needs a credential: Authorization: Bearer <token> (server.admin_tokens, \
                 ingest_tokens, read_tokens) or basic auth (basic_auth_users of server.web_config_file)",
            ));
        }
        Credential::Bearer(token) => token_rights(server, token),
        Credential::Basic { user, password } => {
            let users = server.web.as_ref().map(|web| &web.basic_auth_users);
            match users {
                Some(users) if guard.basic.verify(users, &user, &password).await => Rights::ALL,
                _ => Rights::default(),
            }
        }
        Credential::Unusable => {
            return Err(Refusal::Unauthenticated(
                "the Authorization header is not a usable Bearer or Basic credential",
            ));
        }
    };
    if !rights.any() {
        return Err(Refusal::Unauthenticated(
            "the credential is not one herald knows (server.admin_tokens, ingest_tokens, read_tokens or \
             basic_auth_users)",
        ));
    }
    if rights.allow(access) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(needs(access)))
    }
}

fn refuse(server: &ServerSettings, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Forbidden(message) => {
            (StatusCode::FORBIDDEN, Json(json!({ "error": message }))).into_response()
        }
        Refusal::Unauthenticated(message) => {
            let mut response =
                (StatusCode::UNAUTHORIZED, Json(json!({ "error": message }))).into_response();
            let headers = response.headers_mut();
            let basic = server
                .web
                .as_ref()
                .is_some_and(|web| !web.basic_auth_users.is_empty());
            if basic {
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"herald\""),
                );
            }
            let tokens = !server.admin_tokens.is_empty()
                || !server.ingest_tokens.is_empty()
                || !server.read_tokens.is_empty();
            if tokens || !basic {
                headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

pub async fn guard(
    State(guard): State<Guard>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let settings = guard.state.settings();
    if !settings.server.auth_enabled() {
        return next.run(request).await;
    }
    let matched = matched.as_ref().map_or("", MatchedPath::as_str);
    let Some(access) = routes::access(request.method(), matched) else {
        return next.run(request).await;
    };
    if access == Access::Open {
        return next.run(request).await;
    }
    match decide(&guard, &settings, matched, access, request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => refuse(&settings.server, refusal),
    }
}

#[cfg(test)]
mod tests;
