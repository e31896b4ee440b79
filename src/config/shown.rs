//! How integration settings are shown to people (`check-config`'s summary and `/api/v2/status`): in Alertmanager's
//! shape and key names, every secret (credentials, tokens, secret URLs, header secrets, private keys) replaced by
//! `<secret>`, as Alertmanager shows them. Settings left at their defaults are left out.

use serde_json::{Map, Value, json};

use super::duration::format_duration;
use super::email::EmailConfig;
use super::httpconfig::{HttpConfig, ProxySettings, TlsSettings};
use super::settings::{Receiver, WebhookConfig};

/// What replaces every secret.
pub const SECRET: &str = "<secret>";

/// A receiver in Alertmanager's shape: its name, `webhook_configs` and `email_configs` (herald's own
/// integrations and herald-only keys are left out, so Alertmanager's tools can read it).
pub fn receiver(receiver: &Receiver) -> Value {
    let mut node = Map::new();
    node.insert("name".into(), json!(receiver.name));
    if !receiver.webhook_configs.is_empty() {
        let hooks: Vec<Value> = receiver
            .webhook_configs
            .iter()
            .map(|hook| webhook(hook, false))
            .collect();
        node.insert("webhook_configs".into(), Value::Array(hooks));
    }
    if !receiver.email_configs.is_empty() {
        let mails: Vec<Value> = receiver
            .email_configs
            .iter()
            .map(|mail| email(mail, false))
            .collect();
        node.insert("email_configs".into(), Value::Array(mails));
    }
    Value::Object(node)
}

/// A webhook config; with `herald`, also herald's keys (`method`, `body`, `hmac_secret`, delivery options) and
/// `http_headers`.
pub fn webhook(config: &WebhookConfig, herald: bool) -> Value {
    let mut node = Map::new();
    node.insert("url".into(), json!(secret_url(config.url.expose())));
    node.insert("send_resolved".into(), json!(config.send_resolved));
    if let Some(max) = config.max_alerts {
        node.insert("max_alerts".into(), json!(max));
    }
    let mut http = http_config(&config.http);
    if !herald {
        // Older Alertmanager tools (Debian's amtool 0.25) refuse the key.
        http.remove("http_headers");
    }
    if !http.is_empty() {
        node.insert("http_config".into(), Value::Object(http));
    }
    if herald {
        node.insert("method".into(), json!(config.method.as_str()));
        if config.body.is_some() {
            node.insert("body".into(), json!("<template>"));
        }
        if config.hmac_secret.is_some() {
            node.insert("hmac_secret".into(), json!(SECRET));
        }
        node.insert(
            "timeout".into(),
            json!(format_duration(config.delivery.timeout)),
        );
    }
    Value::Object(node)
}

/// An email config; with `herald`, also herald's delivery options and whether TLS is implicit.
pub fn email(config: &EmailConfig, herald: bool) -> Value {
    let mut node = Map::new();
    node.insert("to".into(), json!(config.to.join(", ")));
    node.insert("from".into(), json!(config.from));
    node.insert("smarthost".into(), json!(config.smarthost.to_string()));
    node.insert("hello".into(), json!(config.hello));
    if let Some(auth) = &config.auth {
        node.insert("auth_username".into(), json!(auth.username));
        node.insert("auth_password".into(), json!(SECRET));
    }
    node.insert("require_tls".into(), json!(config.require_tls));
    let tls = tls_config(&config.tls);
    if !tls.is_empty() {
        node.insert("tls_config".into(), Value::Object(tls));
    }
    let custom: Map<String, Value> = config
        .headers
        .iter()
        .filter(|header| header.value.custom.is_some())
        .map(|header| (header.name.clone(), json!("<template>")))
        .collect();
    if !custom.is_empty() {
        node.insert("headers".into(), Value::Object(custom));
    }
    node.insert("send_resolved".into(), json!(config.send_resolved));
    if herald {
        if config.implicit_tls {
            node.insert("force_implicit_tls".into(), json!(true));
        }
        for (key, part) in [("html", &config.html), ("text", &config.text)] {
            let shown = match part {
                None => "(none)",
                Some(field) if field.custom.is_some() => "<template>",
                Some(_) => "(default)",
            };
            node.insert(key.into(), json!(shown));
        }
        node.insert(
            "timeout".into(),
            json!(format_duration(config.delivery.timeout)),
        );
    }
    Value::Object(node)
}

/// An `http_config`'s settings that differ from the defaults.
pub fn http_config(config: &HttpConfig) -> Map<String, Value> {
    let mut node = Map::new();
    if let Some(authorization) = &config.authorization {
        let value = authorization.value.expose();
        match value.split_once(' ') {
            Some(("Basic", _)) => {
                node.insert("basic_auth".into(), json!({"password": SECRET}));
            }
            Some((kind, _)) => {
                node.insert(
                    "authorization".into(),
                    json!({"type": kind, "credentials": SECRET}),
                );
            }
            None => {
                node.insert("authorization".into(), json!({"credentials": SECRET}));
            }
        }
    }
    if let Some(oauth2) = &config.oauth2 {
        let mut auth = Map::new();
        auth.insert("client_id".into(), json!(oauth2.client_id));
        auth.insert("client_secret".into(), json!(SECRET));
        auth.insert("token_url".into(), json!(oauth2.token_url));
        if !oauth2.scopes.is_empty() {
            auth.insert("scopes".into(), json!(oauth2.scopes));
        }
        if !oauth2.endpoint_params.is_empty() {
            auth.insert("endpoint_params".into(), json!(oauth2.endpoint_params));
        }
        let tls = tls_config(&oauth2.tls);
        if !tls.is_empty() {
            auth.insert("tls_config".into(), Value::Object(tls));
        }
        proxy(&mut auth, &oauth2.proxy);
        node.insert("oauth2".into(), Value::Object(auth));
    }
    let tls = tls_config(&config.tls);
    if !tls.is_empty() {
        node.insert("tls_config".into(), Value::Object(tls));
    }
    proxy(&mut node, &config.proxy);
    if !config.follow_redirects {
        node.insert("follow_redirects".into(), json!(false));
    }
    if !config.headers.is_empty() {
        let headers: Map<String, Value> = config
            .headers
            .iter()
            .map(|header| {
                let mut entry = Map::new();
                if !header.values.is_empty() {
                    entry.insert("values".into(), json!(header.values));
                }
                if !header.secrets.is_empty() {
                    entry.insert("secrets".into(), json!(vec![SECRET; header.secrets.len()]));
                }
                (header.name.clone(), Value::Object(entry))
            })
            .collect();
        node.insert("http_headers".into(), Value::Object(headers));
    }
    node
}

/// A secret URL as `SCHEME://HOST[:PORT]/<secret>`: its credentials, path and query (where tokens live) hidden,
/// still a URL Alertmanager's tools parse (older amtool refuses a bare `<secret>`).
pub fn secret_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => {
            let port = parsed
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            format!(
                "{}://{}{port}/{SECRET}",
                parsed.scheme(),
                parsed.host_str().unwrap_or_default()
            )
        }
        _ => SECRET.to_owned(),
    }
}

/// The proxy URL with its password (if any) as `<secret>`, as Alertmanager's tools can read it back.
fn proxy(node: &mut Map<String, Value>, proxy: &ProxySettings) {
    if let Some(url) = &proxy.url {
        let shown = reqwest::Url::parse(url.expose())
            .ok()
            .and_then(|mut parsed| {
                if parsed.password().is_some() {
                    parsed.set_password(Some(SECRET)).ok()?;
                }
                Some(parsed.to_string())
            })
            .unwrap_or_else(|| SECRET.to_owned());
        node.insert("proxy_url".into(), json!(shown));
    }
    if let Some(hosts) = &proxy.no_proxy {
        node.insert("no_proxy".into(), json!(hosts));
    }
    if proxy.from_environment {
        node.insert("proxy_from_environment".into(), json!(true));
    }
}

/// A `tls_config`'s settings: files by path, inline certificates as `<inline>`, inline keys as `<secret>`.
fn tls_config(tls: &TlsSettings) -> Map<String, Value> {
    let mut node = Map::new();
    if let Some(ca) = &tls.ca {
        match &ca.file {
            Some(file) => node.insert("ca_file".into(), json!(file)),
            None => node.insert("ca".into(), json!("<inline>")),
        };
    }
    if let Some(client) = &tls.client {
        match &client.cert.file {
            Some(file) => node.insert("cert_file".into(), json!(file)),
            None => node.insert("cert".into(), json!("<inline>")),
        };
        match &client.key.file {
            Some(file) => node.insert("key_file".into(), json!(file)),
            None => node.insert("key".into(), json!(SECRET)),
        };
    }
    if let Some(name) = &tls.server_name {
        node.insert("server_name".into(), json!(name));
    }
    if tls.insecure_skip_verify {
        node.insert("insecure_skip_verify".into(), json!(true));
    }
    if let Some(version) = tls.min_version {
        node.insert("min_version".into(), json!(version.as_str()));
    }
    node
}
