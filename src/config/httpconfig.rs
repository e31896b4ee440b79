//! Validated `http_config` of an HTTP integration (Prometheus's and Alertmanager's keys): TLS, proxy, credentials
//! (an `Authorization` header or OAuth2 client credentials), redirects and extra headers. Secrets stay `Secret`s
//! and key material stays redacted, so these settings can be printed with `{:?}`.

use std::collections::BTreeMap;
use std::fmt;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Secret;

/// `http_config`. The default (no key set) is what an integration without `http_config` uses: the system's trust
/// roots, no proxy, no credentials, redirects followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub tls: TlsSettings,
    pub proxy: ProxySettings,
    /// The `Authorization` header value, from `authorization` (`type` + `credentials`), `basic_auth` or
    /// `bearer_token`; at most one of them (and not with `oauth2`).
    pub authorization: Option<Authorization>,
    /// `oauth2`: a token from the client credentials grant, sent as `Authorization: Bearer`.
    pub oauth2: Option<OAuth2Settings>,
    /// `follow_redirects`, default true: 307 and 308 are followed (method and body kept, at most 10 hops, the
    /// `Authorization` header dropped on a hop to another host); 301, 302 and 303 never are, since they would turn
    /// the POST into a GET and lose the payload.
    pub follow_redirects: bool,
    /// `http_headers`: more headers sent with every request, in the order written.
    pub headers: Vec<HttpHeader>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            tls: TlsSettings::default(),
            proxy: ProxySettings::default(),
            authorization: None,
            oauth2: None,
            follow_redirects: true,
            headers: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// Whether the integration needs its own HTTP client (TLS, proxy or redirect settings differ from the shared
    /// client's); credentials and headers are added per request and do not.
    pub fn needs_own_client(&self) -> bool {
        self.tls != TlsSettings::default()
            || self.proxy != ProxySettings::default()
            || !self.follow_redirects
    }

    /// Every secret value this config holds, to redact from anything kept or shown.
    pub fn secrets(&self) -> Vec<&str> {
        let mut secrets: Vec<&str> = Vec::new();
        if let Some(authorization) = &self.authorization {
            secrets.push(authorization.value.expose());
            secrets.push(authorization.secret.expose());
            // What follows the scheme: the token, or a Basic value's encoded credentials.
            if let Some((_, credentials)) = authorization.value.expose().split_once(' ') {
                secrets.push(credentials);
            }
        }
        secrets.extend(self.proxy.secrets());
        if let Some(oauth2) = &self.oauth2 {
            secrets.push(oauth2.client_secret.expose());
            secrets.extend(oauth2.proxy.secrets());
        }
        for header in &self.headers {
            secrets.extend(header.secrets.iter().map(Secret::expose));
        }
        secrets.retain(|secret| !secret.is_empty());
        secrets
    }
}

/// An `Authorization` header value (`Bearer TOKEN`, `Basic BASE64`) and the secret it was made from (the token,
/// or the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub value: Secret,
    pub secret: Secret,
}

/// `proxy_url` and its companions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// `proxy_url` (a secret: it may carry a password): every request goes through this HTTP proxy.
    pub url: Option<Secret>,
    /// `no_proxy`: comma-separated hosts, domains and networks reached directly (with `proxy_url`).
    pub no_proxy: Option<String>,
    /// `proxy_from_environment`: use `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` instead.
    pub from_environment: bool,
}

impl ProxySettings {
    fn secrets(&self) -> Vec<&str> {
        let Some(url) = &self.url else {
            return Vec::new();
        };
        let mut secrets = vec![url.expose()];
        if let Some((_, rest)) = url.expose().split_once("://")
            && let Some((userinfo, _)) = rest.split_once('@')
        {
            secrets.push(userinfo);
            if let Some((_, password)) = userinfo.split_once(':') {
                secrets.push(password);
            }
        }
        secrets
    }
}

/// A TLS version for `min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// `tls_config`: how the server is verified and how herald proves who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ca` or `ca_file`: the only trust roots (replacing the system's), parsed.
    pub ca: Option<Pem<Vec<CertificateDer<'static>>>>,
    /// `cert` / `cert_file` and `key` / `key_file`: a client certificate chain and its key, for mutual TLS.
    pub client: Option<ClientIdentity>,
    /// `server_name`: the name the server's certificate must be valid for (default: the URL's host).
    pub server_name: Option<String>,
    /// `insecure_skip_verify`: accept any server certificate. For tests only.
    pub insecure_skip_verify: bool,
    /// `min_version`: TLS12 (the default) or TLS13.
    pub min_version: Option<TlsVersion>,
}

/// A client certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert: Pem<Vec<CertificateDer<'static>>>,
    pub key: Pem<PrivateKey>,
}

/// A private key: `Debug` never shows it.
pub struct PrivateKey(pub PrivateKeyDer<'static>);

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        PrivateKey(self.0.clone_key())
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.secret_der() == other.0.secret_der()
    }
}

impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Parsed PEM material and where it came from: a file's path, or `None` when written inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem<T> {
    pub file: Option<String>,
    pub value: T,
}

impl<T> Pem<T> {
    /// The file it was read from, or `inline`.
    pub fn origin(&self) -> &str {
        self.file.as_deref().unwrap_or("inline")
    }
}

/// `oauth2`: the client credentials grant (RFC 6749 section 4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Settings {
    pub client_id: String,
    /// `client_secret` or `client_secret_file`.
    pub client_secret: Secret,
    pub token_url: String,
    pub scopes: Vec<String>,
    /// `endpoint_params`: more form parameters for the token request.
    pub endpoint_params: BTreeMap<String, String>,
    /// `oauth2.tls_config` and `oauth2.proxy_url`: how the token endpoint is reached.
    pub tls: TlsSettings,
    pub proxy: ProxySettings,
}

/// One `http_headers` entry: its plain values, secret values and values read from files (kept as secrets), all
/// sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHeader {
    pub name: String,
    pub values: Vec<String>,
    pub secrets: Vec<Secret>,
}
