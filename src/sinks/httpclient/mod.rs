//! The HTTP client of one integration, built from its `http_config`: its own reqwest client when TLS, proxy or
//! redirect settings differ from the shared one's (`client`), and, on every request, the configured credentials
//! (a fixed `Authorization` header, or an OAuth2 token: `oauth2`) and `http_headers`. A request the destination
//! answers 401 while an OAuth2 token was used is sent once more with a fresh token.
//!
//! Header values from `secrets` and `files`, credentials and tokens are marked sensitive and are in `secrets()`,
//! which every HTTP sink redacts from what it keeps and logs.

mod oauth2;
mod tls;

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};

use self::oauth2::TokenSource;
use super::{SinkError, http};
use crate::clock::Clock;
use crate::config::{HttpConfig, ProxySettings, Secret, TlsSettings};

pub use self::tls::client_config as tls_client_config;

/// How many redirects (307 and 308 only) one request follows.
const MAX_REDIRECTS: usize = 10;

/// An integration's HTTP client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    /// A fixed `Authorization` header, sent unless the integration sets its own.
    authorization: Option<Secret>,
    oauth2: Option<Arc<TokenSource>>,
    /// `http_headers`, in order; secret values are marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The secrets of the `http_config`.
    secrets: Vec<Secret>,
    /// Why the client could not be built: every send fails with it.
    broken: Option<String>,
}

impl From<reqwest::Client> for HttpClient {
    /// The shared client with no `http_config`.
    fn from(client: reqwest::Client) -> Self {
        HttpClient {
            client,
            authorization: None,
            oauth2: None,
            headers: Vec::new(),
            secrets: Vec::new(),
            broken: None,
        }
    }
}

/// The redirect policy: with `follow`, 307 and 308 (which keep the method and body) up to `MAX_REDIRECTS` hops;
/// never 301, 302 or 303, which would turn the request into a GET without its payload.
pub fn redirect_policy(follow: bool) -> reqwest::redirect::Policy {
    if !follow {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(|attempt| {
        let keeps_the_body = matches!(
            attempt.status(),
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        );
        if keeps_the_body && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// A reqwest client with herald's defaults and the given TLS, proxy and redirect settings.
pub fn reqwest_client(
    tls: &TlsSettings,
    proxy: &ProxySettings,
    follow_redirects: bool,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(http::USER_AGENT)
        .connect_timeout(http::CONNECT_TIMEOUT)
        .redirect(redirect_policy(follow_redirects));
    builder = if *tls == TlsSettings::default() {
        builder.tls_backend_rustls()
    } else {
        builder.tls_backend_preconfigured(tls::client_config(tls)?)
    };
    if let Some(url) = &proxy.url {
        // The proxy URL may carry a password: errors never include it.
        let mut configured = reqwest::Proxy::all(url.expose())
            .map_err(|_| "proxy_url is not a valid proxy URL".to_owned())?;
        if let Some(hosts) = &proxy.no_proxy {
            configured = configured.no_proxy(reqwest::NoProxy::from_string(hosts));
        }
        builder = builder.proxy(configured);
    }
    builder
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {}", error.without_url()))
}

impl HttpClient {
    /// The client for `config`: the shared `client` unless TLS, proxy or redirects differ from its settings.
    /// What cannot be built (validation checked everything it could) is logged, and makes every send fail
    /// permanently with the reason.
    pub fn build(config: &HttpConfig, shared: &reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        match Self::try_build(config, shared, clock) {
            Ok(client) => client,
            Err(reason) => {
                tracing::error!(%reason, "an integration's HTTP client cannot be built; its sends will fail");
                HttpClient {
                    broken: Some(reason),
                    ..HttpClient::from(shared.clone())
                }
            }
        }
    }

    fn try_build(
        config: &HttpConfig,
        shared: &reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let client = if config.needs_own_client() {
            reqwest_client(&config.tls, &config.proxy, config.follow_redirects)?
        } else {
            shared.clone()
        };
        let oauth2 = match &config.oauth2 {
            Some(settings) => {
                let token_client = if settings.tls == TlsSettings::default()
                    && settings.proxy == ProxySettings::default()
                {
                    shared.clone()
                } else {
                    reqwest_client(&settings.tls, &settings.proxy, true)
                        .map_err(|reason| format!("oauth2: {reason}"))?
                };
                Some(Arc::new(TokenSource::new(
                    settings.clone(),
                    token_client,
                    clock,
                )))
            }
            None => None,
        };
        let mut headers = Vec::new();
        for header in &config.headers {
            let name = HeaderName::try_from(header.name.as_str())
                .map_err(|_| format!("http_headers: {:?} is not a header name", header.name))?;
            for value in &header.values {
                let value = HeaderValue::from_str(value)
                    .map_err(|_| format!("http_headers.{}: invalid value", header.name))?;
                headers.push((name.clone(), value));
            }
            for secret in &header.secrets {
                let mut value = HeaderValue::from_str(secret.expose())
                    .map_err(|_| format!("http_headers.{}: invalid secret value", header.name))?;
                value.set_sensitive(true);
                headers.push((name.clone(), value));
            }
        }
        Ok(HttpClient {
            client,
            authorization: config.authorization.as_ref().map(|auth| auth.value.clone()),
            oauth2,
            headers,
            secrets: config.secrets().into_iter().map(Secret::new).collect(),
            broken: None,
        })
    }

    /// A client for tests and tools: the shared defaults with no `http_config`.
    pub fn default_client() -> Result<Self, reqwest::Error> {
        http::client().map(HttpClient::from)
    }

    pub fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.request(method, url)
    }

    pub fn post(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.post(url)
    }

    /// The `http_config`'s secrets (credentials, header secrets, proxy password, the OAuth2 client secret and the
    /// token in use): redact them from everything kept or logged.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .secrets
            .iter()
            .map(|secret| secret.expose().to_owned())
            .collect();
        if let Some(oauth2) = &self.oauth2 {
            secrets.extend(oauth2.secrets());
        }
        secrets
    }

    /// Sends `request` with the configured headers and credentials (an `Authorization` the integration set itself
    /// is kept). `Err` means no answer arrived, or no token could be had; `secrets` (the integration's own) and
    /// the config's are redacted from the reason.
    pub async fn send(
        &self,
        request: RequestBuilder,
        secrets: &[&str],
    ) -> Result<reqwest::Response, SinkError> {
        let own = self.secrets();
        let all: Vec<&str> = secrets
            .iter()
            .copied()
            .chain(own.iter().map(String::as_str))
            .collect();
        if let Some(reason) = &self.broken {
            return Err(SinkError::permanent(reason.clone()));
        }
        let mut request = request
            .build()
            .map_err(|error| http::transport_error(error, &all))?;
        for (name, _) in &self.headers {
            request.headers_mut().remove(name);
        }
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        let has_own_authorization = request.headers().contains_key(AUTHORIZATION);
        if !has_own_authorization && let Some(authorization) = &self.authorization {
            request
                .headers_mut()
                .insert(AUTHORIZATION, sensitive(authorization.expose())?);
        }
        let Some(oauth2) = self.oauth2.as_ref().filter(|_| !has_own_authorization) else {
            return self
                .client
                .execute(request)
                .await
                .map_err(|error| http::transport_error(error, &all));
        };
        let token = oauth2.token().await?;
        let mut again = request.try_clone();
        request.headers_mut().insert(AUTHORIZATION, bearer(&token)?);
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|error| http::transport_error(error, &all))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        oauth2.forget(&token);
        let Some(mut again) = again.take() else {
            return Ok(response);
        };
        tracing::info!(
            "the destination refused the OAuth2 token; fetching a new one and sending again"
        );
        let token = oauth2.token().await?;
        again.headers_mut().insert(AUTHORIZATION, bearer(&token)?);
        let own = self.secrets();
        let all: Vec<&str> = secrets
            .iter()
            .copied()
            .chain(own.iter().map(String::as_str))
            .collect();
        self.client
            .execute(again)
            .await
            .map_err(|error| http::transport_error(error, &all))
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, SinkError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| SinkError::permanent("the credentials are not a valid HTTP header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn bearer(token: &Secret) -> Result<HeaderValue, SinkError> {
    sensitive(&format!("Bearer {}", token.expose()))
}
