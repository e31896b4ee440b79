//! `server.web_config_file`: the web configuration Prometheus and Alertmanager take with `--web.config.file`
//! (exporter-toolkit's format): `tls_server_config`, `basic_auth_users` (bcrypt hashes) and
//! `http_server_config.headers`. Parsed and checked here, with every problem named by its key path in the file and
//! no value (a hash, a header) ever repeated.

mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use yaml_rust2::Yaml;

use super::Secret;
pub use tls::ClientAuth;

use super::TlsVersion;

/// A loaded web configuration.
#[derive(Clone)]
pub struct WebConfig {
    /// The file it came from, as given.
    pub file: PathBuf,
    /// `tls_server_config`: `None` when unset or without a certificate, key, client CA or client auth (plain HTTP).
    pub tls: Option<TlsServer>,
    /// `basic_auth_users`: user name -> bcrypt hash.
    pub basic_auth_users: BTreeMap<String, Secret>,
    /// `http_server_config.headers`: added to every answer.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("file", &self.file)
            .field("tls", &self.tls)
            .field("basic_auth_users", &self.basic_auth_users.keys())
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// `tls_server_config`, checked, with the rustls configuration built from it.
#[derive(Clone)]
pub struct TlsServer {
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// The server configuration each connection's handshake uses.
    pub rustls: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("client_auth", &self.client_auth)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .finish_non_exhaustive()
    }
}

/// One problem in a web configuration file: its key path there and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for WebConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Headers herald sets itself, which the web configuration may not replace.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "www-authenticate",
    "retry-after",
    "date",
];

/// Reads and checks the web configuration `file`; relative paths in it are relative to its directory, as
/// exporter-toolkit resolves them.
pub fn load_web_config(file: &Path) -> Result<WebConfig, Vec<WebConfigIssue>> {
    let text = std::fs::read_to_string(file).map_err(|error| {
        vec![WebConfigIssue {
            path: String::new(),
            message: format!("cannot read file: {error}"),
        }]
    })?;
    let base = file.parent().unwrap_or(Path::new(""));
    parse_web_config(&text, file, base)
}

struct Parser<'a> {
    issues: Vec<WebConfigIssue>,
    base: &'a Path,
}

impl Parser<'_> {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(WebConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    /// The entries of a map at `path` with string keys; anything else is an issue (`None`).
    fn map<'y>(&mut self, path: &str, value: &'y Yaml) -> Option<Vec<(String, &'y Yaml)>> {
        match value {
            Yaml::Null => Some(Vec::new()),
            Yaml::Hash(hash) => {
                let mut entries = Vec::with_capacity(hash.len());
                for (key, value) in hash {
                    match key_text(key) {
                        Some(key) => entries.push((key, value)),
                        None => self.issue(path, "keys must be strings"),
                    }
                }
                Some(entries)
            }
            _ => {
                self.issue(path, "must be a map");
                None
            }
        }
    }

    /// A string at `path`; `None` (with an issue unless null) otherwise. The value is never repeated.
    fn string(&mut self, path: &str, value: &Yaml) -> Option<String> {
        match value {
            Yaml::String(text) => Some(text.clone()),
            Yaml::Null => None,
            _ => {
                self.issue(path, "must be a string");
                None
            }
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.base.join(file)
    }
}

fn key_text(key: &Yaml) -> Option<String> {
    match key {
        Yaml::String(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Parses the text of a web configuration named `file`, resolving relative paths against `base`.
pub fn parse_web_config(
    text: &str,
    file: &Path,
    base: &Path,
) -> Result<WebConfig, Vec<WebConfigIssue>> {
    let documents = yaml_rust2::YamlLoader::load_from_str(text).map_err(|error| {
        vec![WebConfigIssue {
            path: String::new(),
            message: format!(
                "invalid YAML at line {}, column {}",
                error.marker().line(),
                error.marker().col() + 1
            ),
        }]
    })?;
    let mut parser = Parser {
        issues: Vec::new(),
        base,
    };
    let mut config = WebConfig {
        file: file.to_path_buf(),
        tls: None,
        basic_auth_users: BTreeMap::new(),
        headers: Vec::new(),
    };
    let root = documents.first().unwrap_or(&Yaml::Null);
    for (key, value) in parser.map("", root).unwrap_or_default() {
        match key.as_str() {
            "tls_server_config" => config.tls = tls::parse(&mut parser, value),
            "basic_auth_users" => config.basic_auth_users = basic_auth_users(&mut parser, value),
            "http_server_config" => config.headers = http_server_config(&mut parser, value),
            "rate_limit" => parser.issue(key, "is not supported by herald"),
            _ => parser.issue(
                key,
                "unknown key (expected tls_server_config, http_server_config or basic_auth_users)",
            ),
        }
    }
    if parser.issues.is_empty() {
        Ok(config)
    } else {
        Err(parser.issues)
    }
}

fn basic_auth_users(parser: &mut Parser<'_>, value: &Yaml) -> BTreeMap<String, Secret> {
    let mut users = BTreeMap::new();
    for (user, hash) in parser.map("basic_auth_users", value).unwrap_or_default() {
        let path = format!("basic_auth_users.{user}");
        if user.is_empty() || user.contains(':') {
            parser.issue(
                "basic_auth_users",
                "user names must not be empty or contain ':'",
            );
            continue;
        }
        let Yaml::String(hash) = hash else {
            parser.issue(&path, "must be a bcrypt hash (a string)");
            continue;
        };
        if hash.parse::<bcrypt::HashParts>().is_err() {
            parser.issue(
                &path,
                "is not a bcrypt hash (such as htpasswd -nBC 10 \"\" prints after the colon)",
            );
            continue;
        }
        users.insert(user, Secret::new(hash.clone()));
    }
    users
}

fn http_server_config(parser: &mut Parser<'_>, value: &Yaml) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    for (key, value) in parser.map("http_server_config", value).unwrap_or_default() {
        match key.as_str() {
            "http2" => {
                if !matches!(value, Yaml::Boolean(_) | Yaml::Null) {
                    parser.issue("http_server_config.http2", "must be true or false");
                }
            }
            "headers" => {
                for (name, value) in parser
                    .map("http_server_config.headers", value)
                    .unwrap_or_default()
                {
                    let path = format!("http_server_config.headers.{name}");
                    let Ok(header) = HeaderName::try_from(name.as_str()) else {
                        parser.issue(
                            "http_server_config.headers",
                            "a header name is not a valid HTTP header name",
                        );
                        continue;
                    };
                    if RESERVED_HEADERS.contains(&header.as_str()) {
                        parser.issue(&path, "is set by herald and cannot be configured");
                        continue;
                    }
                    let Yaml::String(value) = value else {
                        parser.issue(&path, "must be a string");
                        continue;
                    };
                    match HeaderValue::try_from(value.as_str()) {
                        Ok(value) => headers.push((header, value)),
                        Err(_) => parser.issue(&path, "is not a valid header value"),
                    }
                }
            }
            _ => parser.issue(
                format!("http_server_config.{key}"),
                "unknown key (expected headers or http2)",
            ),
        }
    }
    headers
}

#[cfg(test)]
mod tests;
