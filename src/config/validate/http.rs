//! Validation of `http_config` (and of the `tls_config` email shares with it): credentials, OAuth2, proxy, TLS
//! material (read and parsed here, so a missing file or a key that does not match its certificate fails
//! `check-config` with the key path and the file) and `http_headers`.

use std::collections::BTreeMap;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::Checker;
use crate::config::Secret;
use crate::config::httpconfig::{
    Authorization, ClientIdentity, HttpConfig, HttpHeader, OAuth2Settings, Pem, PrivateKey,
    ProxySettings, TlsSettings, TlsVersion,
};
use crate::config::raw::{RawHttpConfig, RawHttpHeader, RawOAuth2, RawTlsConfig};
use crate::config::secret::expand_env;

/// Headers `http_headers` may not set: herald sets them itself, or they belong to the connection.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-authorization",
    "te",
    "trailer",
];

impl Checker<'_> {
    /// The `http_config` at `path` (the default when it is absent).
    pub(super) fn http_config(&mut self, path: &str, raw: Option<&RawHttpConfig>) -> HttpConfig {
        let Some(raw) = raw else {
            return HttpConfig::default();
        };
        let authorization = self.authorization(path, raw);
        let oauth2 = raw
            .oauth2
            .as_ref()
            .and_then(|oauth2| self.oauth2(&format!("{path}.oauth2"), oauth2));
        if oauth2.is_some() && authorization.is_some() {
            self.error(
                format!("{path}.oauth2"),
                "cannot be set together with authorization, basic_auth or bearer_token; set only one",
            );
        }
        HttpConfig {
            tls: self.tls_settings(&format!("{path}.tls_config"), raw.tls_config.as_ref()),
            proxy: self.proxy(
                path,
                raw.proxy_url.as_deref(),
                raw.no_proxy.as_deref(),
                raw.proxy_from_environment,
            ),
            authorization,
            oauth2,
            follow_redirects: raw.follow_redirects.unwrap_or(true),
            headers: self.http_headers(&format!("{path}.http_headers"), raw.http_headers.as_ref()),
        }
    }

    /// The `Authorization` header of an `http_config`: `authorization`, `basic_auth` or `bearer_token`.
    fn authorization(&mut self, path: &str, raw: &RawHttpConfig) -> Option<Authorization> {
        let bearer = self.secret_pair(
            &format!("{path}.bearer_token"),
            raw.bearer_token.as_deref(),
            raw.bearer_token_file.as_deref(),
        );
        let set: Vec<&str> = [
            raw.authorization.as_ref().map(|_| "authorization"),
            raw.basic_auth.as_ref().map(|_| "basic_auth"),
            bearer.as_ref().map(|_| "bearer_token"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let [first, second, ..] = set.as_slice() {
            self.error(
                format!("{path}.{second}"),
                format!("cannot be set together with {first}; set only one"),
            );
            return None;
        }
        if let Some(token) = bearer {
            return Some(Authorization {
                value: Secret::new(format!("Bearer {}", token.expose())),
                secret: token,
            });
        }
        if let Some(auth) = &raw.authorization {
            let path = format!("{path}.authorization");
            let kind = auth.kind.as_deref().unwrap_or("Bearer");
            if kind.is_empty() || kind.contains(char::is_whitespace) {
                self.error(
                    format!("{path}.type"),
                    format!(
                        "invalid authorization type {kind:?}: expected one word such as Bearer"
                    ),
                );
                return None;
            }
            if kind.eq_ignore_ascii_case("basic") {
                self.error(
                    format!("{path}.type"),
                    "use http_config.basic_auth for Basic authorization",
                );
                return None;
            }
            let credentials = self.secret_pair(
                &format!("{path}.credentials"),
                auth.credentials.as_deref(),
                auth.credentials_file.as_deref(),
            );
            let Some(credentials) = credentials else {
                self.error(
                    format!("{path}.credentials"),
                    "must be set (or credentials_file)",
                );
                return None;
            };
            return Some(Authorization {
                value: Secret::new(format!("{kind} {}", credentials.expose())),
                secret: credentials,
            });
        }
        let basic = raw.basic_auth.as_ref()?;
        let path = format!("{path}.basic_auth");
        let username = match (basic.username.as_deref(), basic.username_file.as_deref()) {
            (Some(_), Some(_)) => {
                self.error(
                    format!("{path}.username_file"),
                    format!("cannot be set together with {path}.username; set only one"),
                );
                return None;
            }
            (Some(username), None) => match expand_env(username, self.env) {
                Ok(username) => Some(username),
                Err(message) => {
                    self.error(format!("{path}.username"), message);
                    return None;
                }
            },
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(content) => Some(content.trim_end_matches(['\n', '\r']).to_owned()),
                Err(error) => {
                    self.error(
                        format!("{path}.username_file"),
                        format!("cannot read file {file:?}: {error}"),
                    );
                    return None;
                }
            },
            (None, None) => None,
        };
        let username = match username {
            Some(username) if !username.is_empty() && !username.contains(':') => username,
            _ => {
                self.error(format!("{path}.username"), "must be set, without a colon");
                return None;
            }
        };
        let password = self
            .secret_pair(
                &format!("{path}.password"),
                basic.password.as_deref(),
                basic.password_file.as_deref(),
            )
            .unwrap_or_else(|| Secret::new(""));
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        Some(Authorization {
            value: Secret::new(format!("Basic {encoded}")),
            secret: password,
        })
    }

    /// `proxy_url` (a secret), `no_proxy` and `proxy_from_environment` of the config at `path`.
    fn proxy(
        &mut self,
        path: &str,
        url: Option<&str>,
        no_proxy: Option<&str>,
        from_environment: Option<bool>,
    ) -> ProxySettings {
        let url = self.secret_pair(&format!("{path}.proxy_url"), url, None);
        let url = url.filter(|url| !url.expose().is_empty());
        if let Some(url) = &url {
            match reqwest::Url::parse(url.expose()) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
                // The URL may hold a password: never repeat it.
                _ => self.error(
                    format!("{path}.proxy_url"),
                    "must be an absolute http:// or https:// URL (http://[USER:PASSWORD@]HOST:PORT)",
                ),
            }
        }
        let from_environment = from_environment.unwrap_or(false);
        if from_environment && url.is_some() {
            self.error(
                format!("{path}.proxy_from_environment"),
                "cannot be set together with proxy_url; set only one",
            );
        }
        let no_proxy = no_proxy
            .map(str::trim)
            .filter(|hosts| !hosts.is_empty())
            .map(str::to_owned);
        if no_proxy.is_some() && url.is_none() {
            self.error(format!("{path}.no_proxy"), "needs proxy_url");
        }
        ProxySettings {
            url,
            no_proxy,
            from_environment,
        }
    }

    /// `oauth2`: the client credentials grant.
    fn oauth2(&mut self, path: &str, raw: &RawOAuth2) -> Option<OAuth2Settings> {
        let client_id = match raw.client_id.as_deref().map(|id| expand_env(id, self.env)) {
            Some(Ok(id)) if !id.is_empty() => Some(id),
            Some(Err(message)) => {
                self.error(format!("{path}.client_id"), message);
                None
            }
            _ => {
                self.error(format!("{path}.client_id"), "must be set");
                None
            }
        };
        let client_secret = self.secret_pair(
            &format!("{path}.client_secret"),
            raw.client_secret.as_deref(),
            raw.client_secret_file.as_deref(),
        );
        if client_secret.is_none() {
            self.error(
                format!("{path}.client_secret"),
                "must be set (or client_secret_file)",
            );
        }
        let token_url = match raw.token_url.as_deref() {
            Some(url) => match super::integrations::check_http_url(url) {
                Ok(()) => Some(url.to_owned()),
                Err(message) => {
                    self.error(format!("{path}.token_url"), message);
                    None
                }
            },
            None => {
                self.error(format!("{path}.token_url"), "must be set");
                None
            }
        };
        let tls = self.tls_settings(&format!("{path}.tls_config"), raw.tls_config.as_ref());
        let proxy = self.proxy(
            path,
            raw.proxy_url.as_deref(),
            raw.no_proxy.as_deref(),
            raw.proxy_from_environment,
        );
        Some(OAuth2Settings {
            client_id: client_id?,
            client_secret: client_secret?,
            token_url: token_url?,
            scopes: raw.scopes.clone().unwrap_or_default(),
            endpoint_params: raw.endpoint_params.clone().unwrap_or_default(),
            tls,
            proxy,
        })
    }

    /// `http_headers`: each name checked, values kept, secrets expanded, files read (as secrets).
    fn http_headers(
        &mut self,
        path: &str,
        raw: Option<&BTreeMap<String, RawHttpHeader>>,
    ) -> Vec<HttpHeader> {
        let mut headers = Vec::new();
        for (name, header) in raw.into_iter().flatten() {
            let path = format!("{path}.{name}");
            if reqwest::header::HeaderName::try_from(name.as_str()).is_err() {
                self.error(&path, format!("{name:?} is not a valid HTTP header name"));
                continue;
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                let hint = if name.eq_ignore_ascii_case("authorization") {
                    ": use authorization, basic_auth, bearer_token or oauth2"
                } else {
                    ""
                };
                self.error(
                    &path,
                    format!("{name} cannot be set with http_headers{hint}"),
                );
                continue;
            }
            let values = header.values.clone().unwrap_or_default();
            let mut secrets = Vec::new();
            for (i, secret) in header.secrets.iter().flatten().enumerate() {
                match expand_env(secret, self.env) {
                    Ok(secret) => secrets.push(Secret::new(secret)),
                    Err(message) => self.error(format!("{path}.secrets[{i}]"), message),
                }
            }
            for (i, file) in header.files.iter().flatten().enumerate() {
                match std::fs::read_to_string(file) {
                    Ok(content) => {
                        secrets.push(Secret::new(content.trim_end_matches(['\n', '\r'])));
                    }
                    Err(error) => self.error(
                        format!("{path}.files[{i}]"),
                        format!("cannot read file {file:?}: {error}"),
                    ),
                }
            }
            let invalid = values
                .iter()
                .map(String::as_str)
                .chain(secrets.iter().map(Secret::expose))
                .any(|value| reqwest::header::HeaderValue::from_str(value).is_err());
            if invalid {
                // Never repeat the value: it may be a secret.
                self.error(
                    &path,
                    "a value is not a valid HTTP header value (no line breaks or control characters)",
                );
                continue;
            }
            if values.is_empty() && secrets.is_empty() {
                self.error(&path, "must have values, secrets or files");
                continue;
            }
            headers.push(HttpHeader {
                name: name.clone(),
                values,
                secrets,
            });
        }
        headers
    }

    /// `tls_config` at `path`: certificates and keys read and parsed, the key checked against its certificate.
    pub(super) fn tls_settings(&mut self, path: &str, raw: Option<&RawTlsConfig>) -> TlsSettings {
        let Some(raw) = raw else {
            return TlsSettings::default();
        };
        let ca = self
            .pem_text(path, "ca", raw.ca.as_deref(), raw.ca_file.as_deref())
            .and_then(|(text, file, key)| {
                self.certificates(&format!("{path}.{key}"), &text, file.as_deref())
                    .map(|value| Pem { file, value })
            });
        let cert = self
            .pem_text(path, "cert", raw.cert.as_deref(), raw.cert_file.as_deref())
            .and_then(|(text, file, key)| {
                self.certificates(&format!("{path}.{key}"), &text, file.as_deref())
                    .map(|value| Pem { file, value })
            });
        let key = self.private_key(path, raw);
        let client = match (cert, key, raw.cert.is_some() || raw.cert_file.is_some()) {
            (Some(cert), Some(key), _) => self.identity(path, cert, key),
            (Some(_), None, _) if raw.key.is_none() && raw.key_file.is_none() => {
                self.error(format!("{path}.key_file"), "must be set with cert_file");
                None
            }
            (None, Some(_), false) => {
                self.error(format!("{path}.cert_file"), "must be set with key_file");
                None
            }
            _ => None,
        };
        let server_name = raw
            .server_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned);
        if let Some(name) = &server_name
            && ServerName::try_from(name.as_str()).is_err()
        {
            self.error(
                format!("{path}.server_name"),
                format!("{name:?} is not a valid DNS name or IP address"),
            );
        }
        let min_version = match raw.min_version.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(version) => match version.to_ascii_uppercase().as_str() {
                "TLS12" => Some(TlsVersion::Tls12),
                "TLS13" => Some(TlsVersion::Tls13),
                "TLS10" | "TLS11" => {
                    self.error(
                        format!("{path}.min_version"),
                        format!("{version} is not supported: herald speaks TLS12 and TLS13"),
                    );
                    None
                }
                _ => {
                    self.error(
                        format!("{path}.min_version"),
                        format!("unknown TLS version {version:?}: expected TLS12 or TLS13"),
                    );
                    None
                }
            },
        };
        TlsSettings {
            ca,
            client,
            server_name,
            insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
            min_version,
        }
    }

    /// The PEM text of `{key}` (inline) or `{key}_file`, with the file's path and the key it came from.
    fn pem_text(
        &mut self,
        path: &str,
        key: &'static str,
        inline: Option<&str>,
        file: Option<&str>,
    ) -> Option<(String, Option<String>, String)> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.error(
                    format!("{path}.{key}_file"),
                    format!("cannot be set together with {key}; set only one"),
                );
                None
            }
            (Some(text), None) => Some((text.to_owned(), None, key.to_owned())),
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(text) => Some((text, Some(file.to_owned()), format!("{key}_file"))),
                Err(error) => {
                    self.error(
                        format!("{path}.{key}_file"),
                        format!("cannot read file {file:?}: {error}"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// Every certificate of a PEM text; at least one.
    fn certificates(
        &mut self,
        path: &str,
        text: &str,
        file: Option<&str>,
    ) -> Option<Vec<CertificateDer<'static>>> {
        let source = file.map_or_else(|| "the PEM text".to_owned(), |file| format!("{file:?}"));
        let certificates: Result<Vec<_>, _> =
            CertificateDer::pem_slice_iter(text.as_bytes()).collect();
        match certificates {
            Ok(certificates) if certificates.is_empty() => {
                self.error(path, format!("no PEM certificate found in {source}"));
                None
            }
            Ok(certificates) => Some(certificates),
            Err(error) => {
                self.error(path, format!("invalid PEM in {source}: {error}"));
                None
            }
        }
    }

    /// `key` (a secret) or `key_file`, parsed.
    fn private_key(&mut self, path: &str, raw: &RawTlsConfig) -> Option<Pem<PrivateKey>> {
        let key = self.secret_pair(
            &format!("{path}.key"),
            raw.key.as_deref(),
            raw.key_file.as_deref(),
        )?;
        let (key_path, source) = match raw.key_file.as_deref() {
            Some(file) => (format!("{path}.key_file"), format!("{file:?}")),
            None => (format!("{path}.key"), "the PEM text".to_owned()),
        };
        match PrivateKeyDer::from_pem_slice(key.expose().as_bytes()) {
            Ok(der) => Some(Pem {
                file: raw.key_file.clone(),
                value: PrivateKey(der),
            }),
            // The error names what was wrong, never the key.
            Err(error) => {
                self.error(
                    key_path,
                    format!("no usable PEM private key in {source}: {error}"),
                );
                None
            }
        }
    }

    /// A client certificate and its key, checked to belong together.
    fn identity(
        &mut self,
        path: &str,
        cert: Pem<Vec<CertificateDer<'static>>>,
        key: Pem<PrivateKey>,
    ) -> Option<ClientIdentity> {
        let key_path = if key.file.is_some() {
            format!("{path}.key_file")
        } else {
            format!("{path}.key")
        };
        let signing = match rustls::crypto::aws_lc_rs::sign::any_supported_type(&key.value.0) {
            Ok(signing) => signing,
            Err(error) => {
                self.error(
                    key_path,
                    format!("unsupported private key in {}: {error}", key.origin()),
                );
                return None;
            }
        };
        let certified = rustls::sign::CertifiedKey::new(cert.value.clone(), signing);
        if let Err(error) = certified.keys_match() {
            self.error(
                key_path,
                format!(
                    "the key in {} does not match the certificate in {}: {error}",
                    key.origin(),
                    cert.origin()
                ),
            );
            return None;
        }
        Some(ClientIdentity { cert, key })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{TlsVersion, load_errors, load_str};

    /// A CA, a certificate it signs for `name` and the other's key, as PEM files in `dir`.
    fn pki(dir: &std::path::Path) -> [String; 4] {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let files = [
            ("ca.pem", ca_cert.pem()),
            ("cert.pem", cert.pem()),
            ("key.pem", key.serialize_pem()),
            ("other.pem", other.serialize_pem()),
        ];
        files.map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        })
    }

    #[test]
    fn an_alertmanager_http_config_loads_whole() {
        let dir = tempfile::tempdir().unwrap();
        let [ca, cert, key, _] = pki(dir.path());
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "file-t0ken\n").unwrap();
        let yaml = format!(
            r#"
route: {{receiver: hook}}
receivers:
  - name: hook
    webhook_configs:
      - url: https://hooks.example.com/a
        http_config:
          tls_config: {{ca_file: '{ca}', cert_file: '{cert}', key_file: '{key}', server_name: hooks.internal, min_version: TLS13}}
          proxy_url: http://user:pr0xy-pass@proxy.example.com:3128
          no_proxy: localhost,10.0.0.0/8
          follow_redirects: false
          enable_http2: true
          oauth2:
            client_id: herald
            client_secret: cl1ent-secret
            token_url: https://auth.example.com/token
            scopes: [alerts.write, alerts.read]
            endpoint_params: {{audience: hooks}}
          http_headers:
            X-Team: {{values: [db, ops]}}
            X-Token: {{secrets: [h3ader-secret], files: ['{token}']}}
      - url: https://hooks.example.com/b
        http_config: {{bearer_token: b3arer}}
"#,
            token = token_file.display()
        );
        let settings = load_str(&yaml, "h.yaml").unwrap().settings;
        let hooks = &settings.receivers[0].webhook_configs;
        let http = &hooks[0].http;
        assert!(http.needs_own_client());
        let tls = &http.tls;
        assert_eq!(tls.ca.as_ref().unwrap().value.len(), 1);
        assert_eq!(tls.ca.as_ref().unwrap().file.as_deref(), Some(ca.as_str()));
        assert!(tls.client.is_some());
        assert_eq!(tls.server_name.as_deref(), Some("hooks.internal"));
        assert_eq!(tls.min_version, Some(TlsVersion::Tls13));
        assert!(!http.follow_redirects);
        assert_eq!(http.proxy.no_proxy.as_deref(), Some("localhost,10.0.0.0/8"));
        let oauth2 = http.oauth2.as_ref().unwrap();
        assert_eq!(oauth2.scopes, ["alerts.write", "alerts.read"]);
        assert_eq!(oauth2.endpoint_params["audience"], "hooks");
        assert_eq!(http.headers.len(), 2);
        assert_eq!(http.headers[0].values, ["db", "ops"]);
        let token = &http.headers[1];
        assert_eq!(
            token.secrets.iter().map(|s| s.expose()).collect::<Vec<_>>(),
            ["h3ader-secret", "file-t0ken"]
        );
        let secrets = http.secrets();
        for planted in ["cl1ent-secret", "h3ader-secret", "file-t0ken", "pr0xy-pass"] {
            assert!(secrets.contains(&planted), "{planted} in {secrets:?}");
        }
        let shown = format!("{:?}", settings.receivers);
        for planted in [
            "cl1ent-secret",
            "h3ader-secret",
            "file-t0ken",
            "pr0xy-pass",
            "b3arer",
        ] {
            assert!(!shown.contains(planted), "{planted} shown by Debug");
        }
        assert!(!shown.contains("PRIVATE KEY"));
        let bearer = hooks[1].http.authorization.as_ref().unwrap();
        assert_eq!(bearer.value.expose(), "Bearer b3arer");
        assert!(!hooks[1].http.needs_own_client());
    }

    #[test]
    fn problems_are_reported_with_key_path_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let [_, cert, _, other] = pki(dir.path());
        let missing = dir.path().join("missing.pem").display().to_string();
        let yaml = format!(
            r#"
route: {{receiver: hook}}
receivers:
  - name: hook
    webhook_configs:
      - url: https://h/a
        http_config:
          tls_config: {{ca_file: '{missing}', cert_file: '{cert}', key_file: '{other}', min_version: TLS10}}
          proxy_url: "ftp://user:pr0xy-pass@proxy"
          http_headers: {{Authorization: {{values: [x]}}, X-Empty: {{}}, X-Bad: {{secrets: ["a\nb"]}}}}
      - url: https://h/b
        http_config:
          tls_config: {{ca_file: '{cert}', cert_file: '{cert}', server_name: "not a name"}}
          oauth2: {{client_id: c}}
          bearer_token: t
      - url: https://h/c
        http_config: {{basic_auth: {{username: u, password: p}}, bearer_token: t, tls_config: {{ca: "garbage"}}}}
        method: GET
        body: "{{{{ alerts | nope }}}}"
"#
        );
        let errors = load_errors(&yaml);
        let path = "receivers[0].webhook_configs";
        for expected in [
            format!("{path}[0].http_config.tls_config.ca_file: cannot read file \"{missing}\""),
            format!(
                "{path}[0].http_config.tls_config.key_file: the key in {other} does not match the certificate in {cert}"
            ),
            format!("{path}[0].http_config.tls_config.min_version: TLS10 is not supported"),
            format!("{path}[0].http_config.proxy_url: must be an absolute http:// or https:// URL"),
            format!(
                "{path}[0].http_config.http_headers.Authorization: Authorization cannot be set with http_headers"
            ),
            format!(
                "{path}[0].http_config.http_headers.X-Empty: must have values, secrets or files"
            ),
            format!(
                "{path}[0].http_config.http_headers.X-Bad: a value is not a valid HTTP header value"
            ),
            format!("{path}[1].http_config.tls_config.key_file: must be set with cert_file"),
            format!(
                "{path}[1].http_config.tls_config.server_name: \"not a name\" is not a valid DNS name"
            ),
            format!("{path}[1].http_config.oauth2.client_secret: must be set"),
            format!("{path}[1].http_config.oauth2.token_url: must be set"),
            format!("{path}[2].http_config.bearer_token: cannot be set together with basic_auth"),
            format!(
                "{path}[2].http_config.tls_config.ca: no PEM certificate found in the PEM text"
            ),
            format!("{path}[2].method: unsupported method \"GET\""),
            format!("{path}[2].body: template error"),
        ] {
            assert!(
                errors.iter().any(|error| error.contains(&expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
        assert!(
            !errors.iter().any(|error| error.contains("pr0xy-pass")),
            "{errors:#?}"
        );
    }
}
