//! Peers for `http_config` tests: a forwarding HTTP proxy (absolute-form requests, `Proxy-Authorization`
//! required when set, forwarded to the target and its answer passed back), and an OAuth2 authorization server
//! with a protected webhook (client credentials grant with HTTP Basic client authentication; tokens that expire
//! on the injected clock, or are revoked; 401 for a token it does not know).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use herald::clock::Clock;

use crate::emulator::{self, Server};

// ---------------------------------------------------------------------------------------------------------------
// Forwarding proxy

/// One request the proxy forwarded (or refused).
#[derive(Debug, Clone)]
pub struct Proxied {
    /// The absolute-form target of the request.
    pub target: String,
    pub proxy_authorization: Option<String>,
    pub answered: u16,
}

#[derive(Default)]
struct ProxyInner {
    /// `Proxy-Authorization` value required, when set.
    required: Option<String>,
    requests: Vec<Proxied>,
    errors: Vec<String>,
}

type ProxyShared = emulator::Shared<ProxyInner>;

pub struct ForwardProxy {
    pub addr: SocketAddr,
    shared: ProxyShared,
    _server: Server,
}

async fn proxy(
    State(shared): State<ProxyShared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.to_string();
    let proxy_authorization = headers
        .get("proxy-authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let required = shared.lock().required.clone();
    let refused = if uri.scheme().is_none() {
        shared
            .lock()
            .errors
            .push(format!("not a proxy request: {target}"));
        Some(StatusCode::BAD_REQUEST)
    } else if required.is_some() && required != proxy_authorization {
        Some(StatusCode::PROXY_AUTHENTICATION_REQUIRED)
    } else {
        None
    };
    let response = match refused {
        Some(status) => status.into_response(),
        None => {
            let client = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let mut forwarded = client.request(method, &target).body(body);
            for (name, value) in &headers {
                if !matches!(
                    name.as_str(),
                    "proxy-authorization" | "host" | "connection" | "proxy-connection"
                ) {
                    forwarded = forwarded.header(name, value);
                }
            }
            match forwarded.send().await {
                Ok(answer) => {
                    let status = answer.status();
                    let body = answer.bytes().await.unwrap_or_default();
                    (status, body).into_response()
                }
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
    };
    let answered = response.status().as_u16();
    shared.record(|inner| {
        inner.requests.push(Proxied {
            target,
            proxy_authorization,
            answered,
        });
    });
    response
}

impl ForwardProxy {
    /// A proxy that requires `Proxy-Authorization: Basic base64(user:password)` when `credentials` are given.
    pub async fn start(credentials: Option<(&str, &str)>, clock: Arc<dyn Clock>) -> Self {
        let inner = ProxyInner {
            required: credentials.map(|(user, password)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            }),
            ..ProxyInner::default()
        };
        let shared = ProxyShared::new(inner, clock);
        let server = Server::start(emulator::loopback().await, proxy, shared.clone());
        ForwardProxy {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    pub fn requests(&self) -> Vec<Proxied> {
        self.shared.lock().requests.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// OAuth2 authorization server and protected webhook

/// One token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub at: DateTime<Utc>,
    pub form: BTreeMap<String, String>,
    pub issued: Option<String>,
}

/// One request to the protected webhook.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub at: DateTime<Utc>,
    pub token: Option<String>,
    pub answered: u16,
    pub body: serde_json::Value,
}

struct OAuthInner {
    client_id: String,
    client_secret: String,
    expires_in: i64,
    issued: usize,
    /// Tokens it knows, with when each expires.
    valid: BTreeMap<String, DateTime<Utc>>,
    tokens: Vec<TokenRequest>,
    deliveries: Vec<Delivered>,
    errors: Vec<String>,
}

type OAuthShared = emulator::Shared<OAuthInner>;

pub struct OAuth2Server {
    pub addr: SocketAddr,
    shared: OAuthShared,
    _server: Server,
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form/?{text}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn form_decode(text: &str) -> String {
    form(format!("v={text}").as_bytes())
        .remove("v")
        .unwrap_or_default()
}

async fn oauth(
    State(shared): State<OAuthShared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = shared.now();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if uri.path() == "/token" {
        let fields = form(&body);
        let client = header("authorization")
            .and_then(|v| v.strip_prefix("Basic ").map(str::to_owned))
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .and_then(|v| {
                v.split_once(':')
                    .map(|(id, secret)| (form_decode(id), form_decode(secret)))
            });
        return shared.record(|inner| {
            let mut request = TokenRequest {
                at: now,
                form: fields.clone(),
                issued: None,
            };
            let answer = if client != Some((inner.client_id.clone(), inner.client_secret.clone())) {
                inner
                    .errors
                    .push("token request with wrong client credentials".into());
                (
                    StatusCode::UNAUTHORIZED,
                    r#"{"error":"invalid_client"}"#.to_owned(),
                )
            } else if fields.get("grant_type").map(String::as_str) != Some("client_credentials") {
                inner.errors.push(format!(
                    "token request with grant {:?}",
                    fields.get("grant_type")
                ));
                (
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"unsupported_grant_type"}"#.to_owned(),
                )
            } else {
                inner.issued += 1;
                let token = format!("access-{}-t0ken", inner.issued);
                inner.valid.insert(
                    token.clone(),
                    now + chrono::Duration::seconds(inner.expires_in),
                );
                request.issued = Some(token.clone());
                (
                    StatusCode::OK,
                    serde_json::json!({"access_token": token, "token_type": "Bearer",
                        "expires_in": inner.expires_in})
                    .to_string(),
                )
            };
            inner.tokens.push(request);
            (answer.0, [("content-type", "application/json")], answer.1).into_response()
        });
    }
    let token = header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
    shared.record(|inner| {
        let valid = token
            .as_ref()
            .and_then(|token| inner.valid.get(token))
            .is_some_and(|expires| now < *expires);
        let answered = if valid { 200 } else { 401 };
        inner.deliveries.push(Delivered {
            at: now,
            token: token.clone(),
            answered,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        });
        if valid {
            (StatusCode::OK, "ok").into_response()
        } else {
            (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_token"}"#).into_response()
        }
    })
}

impl OAuth2Server {
    pub async fn start(
        client_id: &str,
        client_secret: &str,
        expires_in: i64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let inner = OAuthInner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            expires_in,
            issued: 0,
            valid: BTreeMap::new(),
            tokens: Vec::new(),
            deliveries: Vec::new(),
            errors: Vec::new(),
        };
        let shared = OAuthShared::new(inner, clock);
        let server = Server::start(emulator::loopback().await, oauth, shared.clone());
        OAuth2Server {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn hook_url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Forgets every token it issued, as when they are revoked.
    pub fn revoke_all(&self) {
        self.shared.lock().valid.clear();
    }

    pub fn tokens(&self) -> Vec<TokenRequest> {
        self.shared.lock().tokens.clone()
    }

    pub fn deliveries(&self) -> Vec<Delivered> {
        self.shared.lock().deliveries.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// Waits until the webhook accepted `count` requests.
    pub async fn wait_for_accepted(&self, count: usize) -> Vec<Delivered> {
        self.shared
            .wait_until(
                &format!("{count} accepted deliveries"),
                || {
                    self.deliveries()
                        .iter()
                        .filter(|d| d.answered == 200)
                        .count()
                        >= count
                },
                || format!("{:#?}", self.deliveries()),
            )
            .await;
        self.deliveries()
    }
}
