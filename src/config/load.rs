//! Loading: finds the config file, layers embedded default -> file -> `HERALD__*` environment with the `config`
//! crate, collects unknown keys and type errors, runs validation, and names the origin of every error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ::config::{Config, FileFormat, Format, Map, Source, Value, ValueKind};

use super::raw::RawConfig;
use super::secret::{EnvLookup, process_env};
use super::validate::validate;
use super::{ConfigError, ConfigErrors, Issue, Loaded};

/// The embedded default configuration, also the example users copy.
pub(crate) const DEFAULT_YAML: &str = include_str!("../../config/herald.yaml");
/// How the embedded default is named in messages and in `Settings::origin`.
pub(crate) const EMBEDDED_NAME: &str = "<embedded default>";
/// Used when neither `-c` nor `HERALD_CONFIG` names a file, if it exists.
const SYSTEM_PATH: &str = "/etc/herald/herald.yaml";
/// Environment variables `HERALD__SECTION__KEY` override `section.key`.
const ENV_PREFIX: &str = "herald__";
const ENV_SEPARATOR: &str = "__";

/// The config file to load: `-c FILE` if given, else `HERALD_CONFIG` if set and non-empty, else
/// `/etc/herald/herald.yaml` if it exists, else `None` (the embedded default alone).
pub fn resolve_path(cli: Option<&Path>) -> Option<PathBuf> {
    choose_path(cli, std::env::var_os("HERALD_CONFIG"), || {
        Path::new(SYSTEM_PATH).is_file()
    })
}

fn choose_path(
    cli: Option<&Path>,
    env: Option<std::ffi::OsString>,
    system_exists: impl FnOnce() -> bool,
) -> Option<PathBuf> {
    if let Some(path) = cli {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    system_exists().then(|| PathBuf::from(SYSTEM_PATH))
}

/// Loads the embedded default, then `file` (YAML) if given, then `HERALD__SECTION__KEY` environment variables, and
/// validates the result. Every problem found is returned, each naming its origin and key path.
pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    let env_vars = env_snapshot()?;
    match file {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|error| {
                single(ConfigError {
                    origin: name.clone(),
                    path: String::new(),
                    message: format!("cannot read file: {error}"),
                })
            })?;
            load_layers(Some((&name, &text)), &env_vars, &process_env)
        }
        None => load_layers(None, &env_vars, &process_env),
    }
}

/// Loads the embedded default, then `yaml` (named `name` in messages), without the environment layer.
/// `${VAR}` references in secret fields are still expanded from the process environment.
pub fn load_str(yaml: &str, name: &str) -> Result<Loaded, ConfigErrors> {
    load_layers(Some((name, yaml)), &[], &process_env)
}

/// The layering and checking behind `load` and `load_str`, with the environment passed in.
pub(crate) fn load_layers(
    file: Option<(&str, &str)>,
    env_vars: &[(String, String)],
    env: EnvLookup<'_>,
) -> Result<Loaded, ConfigErrors> {
    let primary = file.map_or(EMBEDDED_NAME, |(name, _)| name);
    let mut layers = vec![parse_layer(EMBEDDED_NAME, DEFAULT_YAML)?];
    if let Some((name, text)) = file {
        layers.push(parse_layer(name, text)?);
    }
    let (env_layer, env_origins) = env_layer(env_vars);
    layers.push(env_layer);

    let mut builder = Config::builder();
    for layer in layers {
        builder = builder.add_source(layer);
    }
    let merged = builder.build().map_err(|error| {
        single(ConfigError {
            origin: primary.to_owned(),
            path: String::new(),
            message: error.to_string(),
        })
    })?;
    let mut tree = merged.cache;
    let rank = |origin: Option<&str>| match origin {
        Some(EMBEDDED_NAME) => 0,
        Some(origin) if env_origins.contains(origin) => 2,
        _ => 1,
    };
    drop_overridden_twins(&mut tree, &rank);

    let origins = Origins {
        tree: &tree,
        primary,
    };
    let (raw, unknown) = deserialize(tree.clone());
    let mut errors: Vec<ConfigError> = unknown
        .into_iter()
        .map(|path| origins.error(Issue::new(path, "unknown key")))
        .collect();
    let raw = match raw {
        Ok(raw) => raw,
        Err(issue) => {
            errors.push(origins.error(issue));
            return Err(ConfigErrors { errors });
        }
    };
    let outcome = validate(&raw, primary, env);
    errors.extend(outcome.errors.into_iter().map(|issue| origins.error(issue)));
    match outcome.settings {
        Some(settings) if errors.is_empty() => Ok(Loaded {
            settings,
            warnings: outcome
                .warnings
                .into_iter()
                .map(|issue| origins.error(issue).to_string())
                .collect(),
            env_overrides: env_vars.iter().map(|(name, _)| name.clone()).collect(),
        }),
        _ => Err(ConfigErrors { errors }),
    }
}

fn single(error: ConfigError) -> ConfigErrors {
    ConfigErrors {
        errors: vec![error],
    }
}

/// A `config` source holding one already-parsed layer.
#[derive(Debug, Clone)]
struct Layer(Map<String, Value>);

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, ::config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// Parses one YAML layer, every value tagged with `name` as its origin. Keys with an empty value (`key:` or
/// `key: null`) are dropped, so they leave the lower layer's value in place.
fn parse_layer(name: &str, text: &str) -> Result<Layer, ConfigErrors> {
    let mut map = FileFormat::Yaml
        .parse(Some(&name.to_owned()), text)
        .map_err(|error| {
            let not_a_map = error
                .downcast_ref::<Box<::config::ConfigError>>()
                .map(|error| &**error)
                .or_else(|| error.downcast_ref::<::config::ConfigError>());
            let message = match not_a_map {
                // Valid YAML that is not a map at the top level.
                Some(error) => format!(
                    "the file must be a map of configuration sections: {}",
                    bare_message(error)
                ),
                None => format!("invalid YAML: {error}"),
            };
            single(ConfigError {
                origin: name.to_owned(),
                path: String::new(),
                message,
            })
        })?;
    map.retain(|_, value| !matches!(value.kind, ValueKind::Nil));
    map.values_mut().for_each(drop_nulls);
    Ok(Layer(map))
}

fn drop_nulls(value: &mut Value) {
    match &mut value.kind {
        ValueKind::Table(table) => {
            table.retain(|_, value| !matches!(value.kind, ValueKind::Nil));
            table.values_mut().for_each(drop_nulls);
        }
        ValueKind::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The `HERALD__*` variables of the process environment with non-empty values, sorted by name.
fn env_snapshot() -> Result<Vec<(String, String)>, ConfigErrors> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.to_ascii_lowercase().starts_with(ENV_PREFIX) || value.is_empty() {
            continue;
        }
        let Ok(value) = value.into_string() else {
            return Err(single(ConfigError {
                origin: format!("environment {name}"),
                path: String::new(),
                message: "value is not valid UTF-8".to_owned(),
            }));
        };
        vars.push((name.to_owned(), value));
    }
    vars.sort();
    Ok(vars)
}

/// The environment layer, as `config::Environment::with_prefix("HERALD").separator("__")` builds it, except that
/// each value's origin is its variable's name (`environment HERALD__SERVER__LISTEN`) so errors can name it.
/// Also returns the set of those origins.
fn env_layer(vars: &[(String, String)]) -> (Layer, HashSet<String>) {
    let mut map = Map::new();
    let mut origins = HashSet::new();
    for (name, value) in vars {
        let key = name.to_ascii_lowercase();
        let Some(key) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let origin = format!("environment {name}");
        map.insert(
            key.replace(ENV_SEPARATOR, "."),
            Value::new(Some(&origin), ValueKind::String(value.clone())),
        );
        origins.insert(origin);
    }
    (Layer(map), origins)
}

/// A secret `x` and its twin `x_file` set in different layers: the higher layer wins and the other is dropped, so a
/// file's `url_file` replaces the default's `url`. Set in the same layer, both stay and validation reports it.
fn drop_overridden_twins(value: &mut Value, rank: &dyn Fn(Option<&str>) -> u8) {
    match &mut value.kind {
        ValueKind::Table(table) => {
            let twins: Vec<(String, String)> = table
                .keys()
                .filter_map(|key| {
                    let base = key.strip_suffix("_file")?;
                    table
                        .contains_key(base)
                        .then(|| (base.to_owned(), key.clone()))
                })
                .collect();
            for (base, file) in twins {
                let base_rank = table.get(&base).map(|v| rank(v.origin()));
                let file_rank = table.get(&file).map(|v| rank(v.origin()));
                match (base_rank, file_rank) {
                    (Some(b), Some(f)) if b < f => {
                        table.remove(&base);
                    }
                    (Some(b), Some(f)) if f < b => {
                        table.remove(&file);
                    }
                    _ => {}
                }
            }
            table
                .values_mut()
                .for_each(|v| drop_overridden_twins(v, rank));
        }
        ValueKind::Array(items) => items
            .iter_mut()
            .for_each(|v| drop_overridden_twins(v, rank)),
        _ => {}
    }
}

/// Deserializes the merged tree into raw structs, collecting every unknown key (sorted) and the first type error.
fn deserialize(tree: Value) -> (Result<RawConfig, Issue>, Vec<String>) {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let result =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(tree, &mut on_ignored));
    let result = result.map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Issue::new(path, bare_message(error.inner()))
    });
    // Sorted, since map keys come in hash order. After a type error, only the unknown keys seen before it.
    unknown.sort();
    (result, unknown)
}

/// A deserialization error's message without the key and origin the `config` crate appends (we print both), and
/// without the value: an error names what was found only by its kind, since a value in the wrong place may be a
/// secret (`admin_tokens: "TOKEN"` where a list belongs).
fn bare_message(error: &::config::ConfigError) -> String {
    match error {
        ::config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => {
            format!(
                "invalid type: {}, expected {expected}",
                kind_of(&unexpected.to_string())
            )
        }
        ::config::ConfigError::At { error, .. } => bare_message(error),
        other => without_values(&other.to_string()),
    }
}

/// What kind of value was found, from how `config` or serde describe it (`string "X"`, `64-bit integer `5``,
/// `sequence`), without the value.
fn kind_of(found: &str) -> &'static str {
    const KINDS: [(&str, &str); 9] = [
        ("string", "a string"),
        ("boolean", "a boolean"),
        ("floating point", "a number"),
        ("character", "a character"),
        ("unit value", "null"),
        ("sequence", "a sequence"),
        ("map", "a map"),
        ("byte array", "bytes"),
        ("Option value", "an optional value"),
    ];
    if let Some((_, kind)) = KINDS.iter().find(|(name, _)| found.starts_with(name)) {
        return kind;
    }
    let words = found.split('`').next().unwrap_or_default();
    if words.contains("integer") {
        "an integer"
    } else {
        "a value"
    }
}

/// A serde message with the value it quotes replaced by the value's kind: `invalid type: string "X", expected …`
/// becomes `invalid type: a string, expected …`, and `unknown variant `X`, expected …` loses the variant.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        // The last `, expected ` ends the value: a value may itself hold that text, the description never does.
        return match rest.rfind(", expected ") {
            Some(end) => {
                let (found, expected) = rest.split_at(end);
                format!("{prefix}{}{expected}", kind_of(found))
            }
            None => format!("{prefix}{}", kind_of(rest)),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some(end) = rest.rfind("`, expected ")
    {
        return format!("unknown variant{}", &rest[end + 1..]);
    }
    message.to_owned()
}

/// `route.routes[0].recevier` from serde_ignored's path (which would print `route.routes.0.recevier`).
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => String::new(),
        serde_ignored::Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        serde_ignored::Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// Finds which layer a key path's value came from, to name it in an error.
struct Origins<'a> {
    tree: &'a Value,
    /// Named when no value on the path carries an origin: the file, or the embedded default.
    primary: &'a str,
}

impl Origins<'_> {
    fn error(&self, issue: Issue) -> ConfigError {
        ConfigError {
            origin: self.origin(&issue.path).to_owned(),
            path: issue.path,
            message: issue.message,
        }
    }

    /// The origin of the value at `path`, or of its nearest ancestor that has one.
    fn origin(&self, path: &str) -> &str {
        let mut value = self.tree;
        let mut found = value.origin();
        for segment in path_segments(path) {
            let next = match (&value.kind, segment) {
                (ValueKind::Table(table), Segment::Key(key)) => table.get(key),
                (ValueKind::Array(items), Segment::Index(index)) => items.get(index),
                _ => None,
            };
            let Some(next) = next else { break };
            value = next;
            found = next.origin().or(found);
        }
        found.unwrap_or(self.primary)
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `route.routes[1].group_wait` into `route`, `routes`, 1, `group_wait`.
fn path_segments(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|part| !part.is_empty()) {
        let (key, mut indexes) = part
            .split_once('[')
            .map_or((part, ""), |(key, rest)| (key, rest));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        while let Some((index, rest)) = indexes.split_once(']') {
            if let Ok(index) = index.parse() {
                segments.push(Segment::Index(index));
            }
            indexes = rest.strip_prefix('[').unwrap_or(rest);
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::config::{GroupBy, StorageBackend};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_yaml(yaml: &str) -> Result<Loaded, ConfigErrors> {
        load_layers(Some(("herald.yaml", yaml)), &[], &no_env)
    }

    fn errors(yaml: &str) -> Vec<String> {
        load_yaml(yaml)
            .unwrap_err()
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn temp_file(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        file
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn embedded_default_loads_with_documented_defaults() {
        let loaded = load_layers(None, &[], &no_env).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.origin, "<embedded default>");
        assert_eq!(s.server.listen, addr("127.0.0.1:9095"));
        assert_eq!(s.server.max_body_bytes, 4_194_304);
        assert_eq!(s.server.external_url, None);
        assert_eq!(s.server.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.server.idle_timeout, Duration::from_secs(360));
        assert_eq!(s.server.max_connections, None);
        assert_eq!(
            s.storage.backend,
            StorageBackend::Sqlite {
                path: PathBuf::from("data/herald.db")
            }
        );
        assert_eq!(s.storage.busy_timeout, Duration::from_secs(5));
        assert_eq!(s.storage.resolved_retention, Duration::from_secs(24 * 3600));
        assert_eq!(s.ingest.resolve_timeout, Duration::from_secs(300));
        assert_eq!(s.ingest.max_labels_per_alert, 128);
        assert_eq!(s.ingest.max_alerts_per_request, 10_000);
        assert_eq!(s.route.receiver, "log");
        assert_eq!(s.route.group_by, GroupBy::Labels(Vec::new()));
        assert_eq!(s.route.group_wait, Duration::from_secs(30));
        assert_eq!(s.route.group_interval, Duration::from_secs(300));
        assert_eq!(s.route.repeat_interval, Duration::from_secs(4 * 3600));
        assert!(s.route.routes.is_empty());
        assert_eq!(s.receivers.len(), 1);
        assert_eq!(s.receivers[0].name, "log");
        assert_eq!(s.receivers[0].log_configs.len(), 1);
        assert!(s.receivers[0].log_configs[0].send_resolved);
        assert!(loaded.warnings.is_empty());
        assert!(loaded.env_overrides.is_empty());
    }

    #[test]
    fn embedded_default_documents_every_key() {
        let keys = [
            "server:",
            "listen:",
            "max_body_bytes:",
            "external_url:",
            "shutdown_timeout:",
            "header_read_timeout:",
            "idle_timeout:",
            "max_connections:",
            "storage:",
            "url:",
            "url_file:",
            "busy_timeout:",
            "resolved_retention:",
            "ingest:",
            "resolve_timeout:",
            "max_labels_per_alert:",
            "max_alerts_per_request:",
            "route:",
            "receiver:",
            "group_by:",
            "group_wait:",
            "group_interval:",
            "repeat_interval:",
            "matchers:",
            "match:",
            "match_re:",
            "continue:",
            "routes:",
            "mute_time_intervals:",
            "active_time_intervals:",
            "receivers:",
            "name:",
            "log_configs:",
            "send_resolved:",
            "time_intervals:",
            "times:",
            "start_time:",
            "end_time:",
            "weekdays:",
            "days_of_month:",
            "months:",
            "years:",
            "location:",
            "inhibit_rules:",
            "source_matchers:",
            "target_matchers:",
            "source_match:",
            "source_match_re:",
            "target_match:",
            "target_match_re:",
            "equal:",
            "admin_tokens:",
            "admin_tokens_file:",
            "ingest_tokens:",
            "ingest_tokens_file:",
            "read_tokens:",
            "read_tokens_file:",
            "web_config_file:",
            "delivery:",
            "retry:",
            "initial_backoff:",
            "max_backoff:",
            "max_attempts:",
            "max_age:",
            "timeout:",
            "concurrency:",
            "drain_timeout:",
            "retention:",
            "rate_limit:",
            "webhook_configs:",
            "http_config:",
            "authorization:",
            "credentials:",
            "basic_auth:",
            "hmac_secret:",
            "grafana_hmac_secret:",
            "grafana_timestamp_header:",
            "templates:",
            "slack_configs:",
            "api_url:",
            "token:",
            "channel:",
            "username:",
            "icon_emoji:",
            "icon_url:",
            "thread_replies:",
            "title:",
            "title_link:",
            "text:",
            "jira_configs:",
            "api_type:",
            "user:",
            "api_token:",
            "personal_access_token:",
            "project:",
            "issue_type:",
            "priority:",
            "priority_map:",
            "labels:",
            "components:",
            "fields:",
            "summary:",
            "description:",
            "comment:",
            "update_summary:",
            "update_description:",
            "update_priority:",
            "comment_on_update:",
            "resolve_transition:",
            "reopen_transition:",
            "reopen_duration:",
            "wont_fix_resolution:",
            "pagerduty_configs:",
            "routing_key:",
            "severity:",
            "source:",
            "class:",
            "component:",
            "group:",
            "client:",
            "client_url:",
            "details:",
            "links:",
            "images:",
            "wecom_configs:",
            "msg_type:",
            "mentioned_list:",
            "mentioned_mobile_list:",
            "msteamsv2_configs:",
            "webhook_url:",
        ];
        for key in keys {
            assert!(
                DEFAULT_YAML.contains(key),
                "config/herald.yaml does not mention {key}"
            );
        }
    }

    /// The commented `inhibit_rules` example in the embedded default loads once uncommented.
    #[test]
    fn embedded_inhibit_rules_example_loads() {
        let start = DEFAULT_YAML.find("# inhibit_rules:").unwrap();
        let example: String = DEFAULT_YAML[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .map(|line| line.strip_prefix("# ").unwrap_or(&line[1..]))
            .map(|line| format!("{line}\n"))
            .collect();
        let loaded = load_yaml(&example).unwrap();
        let rules = &loaded.settings.inhibit_rules;
        assert_eq!(rules.len(), 2, "{example}");
        assert_eq!(
            rules[0].to_string(),
            "{severity=\"critical\"} inhibits {severity=~\"warning|info\"} when equal [alertname, cluster]"
        );
        assert_eq!(
            rules[1].to_string(),
            "{alertname=\"NodeDown\",instance=~\".+:9100\"} inhibits {service=~\"node|disk\",severity=\"warning\"} \
             when equal [instance]"
        );
        assert!(
            load_layers(None, &[], &no_env)
                .unwrap()
                .settings
                .inhibit_rules
                .is_empty()
        );
    }

    #[test]
    fn empty_and_comment_only_files_keep_the_defaults() {
        for yaml in ["", "# nothing here\n", "server:\nroute:\n"] {
            let loaded = load_yaml(yaml).unwrap();
            assert_eq!(
                loaded.settings.server.listen,
                addr("127.0.0.1:9095"),
                "{yaml:?}"
            );
            assert_eq!(loaded.settings.origin, "herald.yaml");
        }
    }

    #[test]
    fn file_overrides_keys_and_replaces_lists() {
        let yaml = r#"
server:
  listen: ":8080"
  max_body_bytes: 1MiB
  external_url: https://herald.example.com
storage:
  url: sqlite:///var/lib/herald/herald.db
ingest:
  max_labels_per_alert: 64
route:
  receiver: team
receivers:
  - name: team
    log_configs:
      - send_resolved: false
"#;
        let s = load_yaml(yaml).unwrap().settings;
        assert_eq!(s.server.listen, addr("0.0.0.0:8080"));
        assert_eq!(s.server.max_body_bytes, 1 << 20);
        assert_eq!(
            s.server.external_url.as_deref(),
            Some("https://herald.example.com")
        );
        // Untouched keys of a merged section keep their defaults.
        assert_eq!(s.server.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(
            s.storage.backend,
            StorageBackend::Sqlite {
                path: PathBuf::from("/var/lib/herald/herald.db")
            }
        );
        assert_eq!(s.storage.busy_timeout, Duration::from_secs(5));
        assert_eq!(s.ingest.max_labels_per_alert, 64);
        assert_eq!(s.ingest.max_alerts_per_request, 10_000);
        // The receivers list replaced the default one whole.
        assert_eq!(s.receivers.len(), 1);
        assert_eq!(s.receivers[0].name, "team");
        assert!(!s.receivers[0].log_configs[0].send_resolved);
        assert_eq!(s.route.receiver, "team");
    }

    #[test]
    fn replacing_receivers_without_the_default_one_needs_a_route_receiver() {
        let errors = errors("receivers: [{name: team}]\n");
        assert_eq!(
            errors,
            ["<embedded default>: route.receiver: receiver \"log\" is not defined"]
        );
    }

    #[test]
    fn environment_overrides_apply_last_and_name_their_variable() {
        let file = "server:\n  listen: 127.0.0.1:1111\n";
        let env = [
            (
                "HERALD__SERVER__LISTEN".to_owned(),
                "0.0.0.0:9095".to_owned(),
            ),
            (
                "HERALD__INGEST__MAX_ALERTS_PER_REQUEST".to_owned(),
                "500".to_owned(),
            ),
            (
                "HERALD__SERVER__SHUTDOWN_TIMEOUT".to_owned(),
                "1m".to_owned(),
            ),
        ];
        let loaded = load_layers(Some(("herald.yaml", file)), &env, &no_env).unwrap();
        assert_eq!(loaded.settings.server.listen, addr("0.0.0.0:9095"));
        assert_eq!(loaded.settings.ingest.max_alerts_per_request, 500);
        assert_eq!(
            loaded.settings.server.shutdown_timeout,
            Duration::from_secs(60)
        );
        assert_eq!(loaded.env_overrides.len(), 3);

        let env = [
            ("HERALD__SERVER__LISTEN".to_owned(), "nope".to_owned()),
            ("HERALD__SERVER__LISTN".to_owned(), "x".to_owned()),
        ];
        let errors = load_layers(Some(("herald.yaml", file)), &env, &no_env).unwrap_err();
        let errors: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "environment HERALD__SERVER__LISTN: server.listn: unknown key",
                "environment HERALD__SERVER__LISTEN: server.listen: invalid listen address \"nope\": expected \
                 host:port such as 127.0.0.1:9095",
            ]
        );
    }

    #[test]
    fn load_reads_the_file_and_names_it() {
        let file = temp_file("server:\n  listen: 127.0.0.1:9999\n");
        let loaded = load(Some(file.path())).unwrap();
        assert_eq!(loaded.settings.server.listen.port(), 9999);
        assert_eq!(loaded.settings.origin, file.path().display().to_string());

        let missing = Path::new("/nonexistent/herald.yaml");
        let error = load(Some(missing)).unwrap_err();
        assert_eq!(error.errors.len(), 1);
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/herald.yaml: cannot read file"),
            "{error}"
        );
    }

    /// The acceptance test: five different problems in one file are all reported together, each with the file
    /// name and key path.
    #[test]
    fn load_reports_every_problem_at_once() {
        let file = temp_file(
            r#"
server:
  listen: abc
  listn: 127.0.0.1:9095
storage:
  url: "${HERALD_TEST_UNSET_VAR_5F0C2A}"
route:
  receiver: log
  routes:
    - receiver: log
    - receiver: pager
      group_wait: 5x
"#,
        );
        let name = file.path().display().to_string();
        let errors = load(Some(file.path())).unwrap_err();
        let lines: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                format!("{name}: server.listn: unknown key"),
                format!(
                    "{name}: server.listen: invalid listen address \"abc\": expected host:port such as 127.0.0.1:9095"
                ),
                format!(
                    "{name}: storage.url: environment variable HERALD_TEST_UNSET_VAR_5F0C2A is not set"
                ),
                format!("{name}: route.routes[1].receiver: receiver \"pager\" is not defined"),
                format!("{name}: route.routes[1].group_wait: invalid duration \"5x\""),
            ]
        );
        assert!(errors.errors.iter().all(|error| error.origin == name));
        assert_eq!(errors.to_string(), lines.join("\n"));
    }

    #[test]
    fn unknown_keys_are_all_reported_with_full_paths() {
        let errors = errors(
            r#"
servr: {}
route:
  routes:
    - recevier: log
      routes:
        - group_wiat: 1m
receivers:
  - name: log
    log_configs:
      - send_resolvd: true
    victorops_configs: []
"#,
        );
        assert_eq!(
            errors,
            [
                "herald.yaml: receivers[0].log_configs[0].send_resolvd: unknown key",
                "herald.yaml: receivers[0].victorops_configs: unknown key",
                "herald.yaml: route.routes[0].recevier: unknown key",
                "herald.yaml: route.routes[0].routes[0].group_wiat: unknown key",
                "herald.yaml: servr: unknown key",
            ]
        );
    }

    #[test]
    fn children_inherit_receiver_group_by_and_timers() {
        let yaml = r#"
route:
  receiver: default
  group_by: [alertname, cluster]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 2h
  routes:
    - matchers: ['team="db"']
      receiver: db
      group_wait: 5s
      mute_time_intervals: [weekends]
      routes:
        - match: {severity: critical}
          group_by: ['...']
          repeat_interval: 30m
          routes:
            - match_re: {service: "pg.*"}
    - match: {team: web}
      continue: true
receivers:
  - name: default
  - name: db
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: [saturday, sunday]}]
"#;
        let route = load_yaml(yaml).unwrap().settings.route;
        let db = &route.routes[0];
        assert_eq!(db.receiver, "db");
        assert_eq!(
            db.group_by,
            GroupBy::Labels(vec!["alertname".into(), "cluster".into()])
        );
        assert_eq!(db.group_wait, Duration::from_secs(5));
        assert_eq!(db.group_interval, Duration::from_secs(60));
        assert_eq!(db.repeat_interval, Duration::from_secs(7200));
        assert_eq!(db.matchers, ["team=\"db\""]);
        assert_eq!(db.mute_time_intervals, ["weekends"]);
        let critical = &db.routes[0];
        assert_eq!(critical.receiver, "db");
        assert_eq!(critical.group_by, GroupBy::All);
        assert_eq!(critical.group_wait, Duration::from_secs(5));
        assert_eq!(critical.repeat_interval, Duration::from_secs(1800));
        assert_eq!(
            critical.match_equal.get("severity").map(String::as_str),
            Some("critical")
        );
        // Time intervals are not inherited (as in Alertmanager).
        assert!(critical.mute_time_intervals.is_empty());
        let service = &critical.routes[0];
        assert_eq!(service.group_by, GroupBy::All);
        assert_eq!(service.repeat_interval, Duration::from_secs(1800));
        assert_eq!(
            service.match_re.get("service").map(String::as_str),
            Some("pg.*")
        );
        let web = &route.routes[1];
        assert_eq!(web.receiver, "default");
        assert!(web.continue_matching);
        assert_eq!(web.group_wait, Duration::from_secs(10));
    }

    #[test]
    fn group_by_all_must_stand_alone() {
        let yaml = "route:\n  group_by: ['...']\n";
        assert_eq!(
            load_yaml(yaml).unwrap().settings.route.group_by,
            GroupBy::All
        );
        assert_eq!(
            errors("route:\n  group_by: [alertname, '...']\n"),
            ["herald.yaml: route.group_by: \"...\" (group by all labels) must be the only entry"]
        );
        assert_eq!(
            errors("route:\n  group_by: [alertname, alertname, 'bad-name']\n"),
            [
                "herald.yaml: route.group_by[1]: duplicate label name \"alertname\"",
                "herald.yaml: route.group_by[2]: invalid label name \"bad-name\"",
            ]
        );
    }

    #[test]
    fn receiver_names_must_be_unique_and_not_empty() {
        let yaml =
            "receivers:\n  - name: log\n  - name: team\n  - name: log\n  - log_configs: [{}]\n";
        assert_eq!(
            errors(yaml),
            [
                "herald.yaml: receivers[2].name: duplicate receiver name \"log\"",
                "herald.yaml: receivers[3].name: receiver name must be set and not empty",
            ]
        );
    }

    #[test]
    fn postgres_is_recognised_but_not_supported_and_its_password_never_shown() {
        for url in [
            "postgres://herald:hunter2@db/herald",
            "postgresql://herald:hunter2@db/herald",
        ] {
            let errors = errors(&format!("storage:\n  url: {url}\n"));
            assert_eq!(errors.len(), 1);
            assert!(
                errors[0].starts_with(
                    "herald.yaml: storage.url: PostgreSQL backend is not supported yet"
                )
            );
            assert!(!errors[0].contains("hunter2"), "{}", errors[0]);
        }
        let errors = errors("storage:\n  url: mysql://u:hunter2@db/x\n");
        assert!(
            errors[0].contains("unsupported storage URL scheme \"mysql\""),
            "{}",
            errors[0]
        );
        assert!(!errors[0].contains("hunter2"));
    }

    #[test]
    fn storage_url_expands_environment_variables() {
        let env = |name: &str| (name == "HERALD_DB_DIR").then(|| "/srv/herald".to_owned());
        let yaml = "storage:\n  url: sqlite://${HERALD_DB_DIR}/herald.db\n";
        let loaded = load_layers(Some(("herald.yaml", yaml)), &[], &env).unwrap();
        assert_eq!(
            loaded.settings.storage.backend,
            StorageBackend::Sqlite {
                path: PathBuf::from("/srv/herald/herald.db")
            }
        );
        let errors = errors("storage:\n  url: ${HERALD_DB_URL}\n");
        assert_eq!(
            errors,
            ["herald.yaml: storage.url: environment variable HERALD_DB_URL is not set"]
        );
    }

    #[test]
    fn url_file_in_a_file_replaces_the_default_url_but_not_one_beside_it() {
        let secret = temp_file("sqlite:///srv/herald.db\n");
        let path = secret.path().display();
        let loaded = load_yaml(&format!("storage:\n  url_file: {path}\n")).unwrap();
        assert_eq!(
            loaded.settings.storage.backend,
            StorageBackend::Sqlite {
                path: PathBuf::from("/srv/herald.db")
            }
        );

        let errors = errors(&format!(
            "storage:\n  url: sqlite://x.db\n  url_file: {path}\n"
        ));
        assert_eq!(
            errors,
            [
                "herald.yaml: storage.url_file: cannot be set together with storage.url; set only one"
            ]
        );

        // An environment URL overrides a file's url_file.
        let env = [(
            "HERALD__STORAGE__URL".to_owned(),
            "sqlite://env.db".to_owned(),
        )];
        let yaml = format!("storage:\n  url_file: {path}\n");
        let loaded = load_layers(Some(("herald.yaml", &yaml)), &env, &no_env).unwrap();
        assert_eq!(
            loaded.settings.storage.backend,
            StorageBackend::Sqlite {
                path: PathBuf::from("env.db")
            }
        );
    }

    #[test]
    fn unreadable_url_file_names_the_file() {
        let errors = errors("storage:\n  url_file: /nonexistent/db-url\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with(
            "herald.yaml: storage.url_file: cannot read file \"/nonexistent/db-url\""
        ));
    }

    #[test]
    fn repeat_interval_shorter_than_group_interval_is_a_warning() {
        let yaml = r#"
route:
  routes:
    - matchers: ['a="b"']
      group_interval: 10m
      repeat_interval: 1m
"#;
        let loaded = load_yaml(yaml).unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "herald.yaml: route.routes[0].repeat_interval: repeat_interval 1m is shorter than group_interval 10m: \
              notifications repeat only at the next group_interval"
            ]
        );
    }

    #[test]
    fn timers_and_limits_are_checked() {
        let yaml = r#"
server:
  max_body_bytes: 0
  external_url: herald.example.com
  shutdown_timeout: 30
  header_read_timeout: 0s
  idle_timeout: soon
  max_connections: 0
storage:
  busy_timeout: -1s
ingest:
  resolve_timeout: 0s
  max_labels_per_alert: 0
  max_alerts_per_request: many
route:
  group_interval: 0
  repeat_interval: 0s
"#;
        assert_eq!(
            errors(yaml),
            [
                "herald.yaml: server.max_body_bytes: must be greater than 0",
                "herald.yaml: server.external_url: invalid external URL \"herald.example.com\": expected an absolute \
                 http:// or https:// URL such as https://herald.example.com",
                "herald.yaml: server.shutdown_timeout: invalid duration \"30\"",
                "herald.yaml: server.header_read_timeout: must be greater than 0",
                "herald.yaml: server.idle_timeout: invalid duration \"soon\"",
                "herald.yaml: server.max_connections: must be greater than 0",
                "herald.yaml: storage.busy_timeout: invalid duration \"-1s\"",
                "herald.yaml: ingest.resolve_timeout: must be greater than 0",
                "herald.yaml: ingest.max_labels_per_alert: must be greater than 0",
                "herald.yaml: ingest.max_alerts_per_request: invalid number \"many\": expected a positive integer",
                "herald.yaml: route.group_interval: must be greater than 0",
                "herald.yaml: route.repeat_interval: must be greater than 0",
            ]
        );
    }

    #[test]
    fn root_route_takes_no_matchers_or_continue() {
        let yaml = "route:\n  matchers: ['a=\"b\"']\n  match: {a: b}\n  match_re: {a: b.*}\n  continue: true\n";
        assert_eq!(
            errors(yaml),
            [
                "herald.yaml: route.matchers: the root route must not have matchers (it matches every alert)",
                "herald.yaml: route.match: the root route must not have match (it matches every alert)",
                "herald.yaml: route.match_re: the root route must not have match_re (it matches every alert)",
                "herald.yaml: route.continue: the root route must not have continue (it matches every alert)",
            ]
        );
        assert_eq!(
            errors("route:\n  receiver: ''\n"),
            ["herald.yaml: route.receiver: the root route must have a receiver"]
        );
    }

    #[test]
    fn yaml_syntax_error_names_the_file_and_position() {
        let errors = errors("server:\n  listen: [unclosed\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("herald.yaml: invalid YAML: "),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains("line"), "{}", errors[0]);
    }

    #[test]
    fn type_errors_are_reported_with_their_path() {
        assert_eq!(
            errors("route:\n  routes: 5\n"),
            ["herald.yaml: route.routes: invalid type: an integer, expected a sequence"]
        );
        assert_eq!(
            errors("receivers: [{name: log, log_configs: [5]}]\n"),
            [
                "herald.yaml: receivers[0].log_configs[0]: invalid type: an integer, expected a log config (a map, \
                 possibly empty)",
            ]
        );
        assert_eq!(
            errors("- a\n- b\n"),
            [
                "herald.yaml: the file must be a map of configuration sections: invalid type: a sequence, expected a \
                 map"
            ]
        );
    }

    #[test]
    fn a_value_in_the_wrong_shape_is_never_echoed() {
        let token = "tok-3f9a1c7e";
        for (yaml, expected) in [
            (
                format!("server:\n  admin_tokens: \"{token}\"\n"),
                "herald.yaml: server.admin_tokens: invalid type: a string, expected a sequence",
            ),
            (
                format!(
                    "route: {{receiver: hook}}\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: \
                     http://127.0.0.1:1/\n        http_config:\n          authorization: \"Bearer {token}\"\n"
                ),
                "herald.yaml: receivers[0].webhook_configs[0].http_config.authorization: invalid type: a string, \
                 expected",
            ),
            (
                format!("server:\n  admin_tokens: [[\"{token}\"]]\n"),
                "herald.yaml: server.admin_tokens[0]: invalid type: a sequence, expected",
            ),
        ] {
            let errors = errors(&yaml).join("\n");
            assert!(errors.starts_with(expected), "{errors}");
            assert!(!errors.contains(token), "{errors}");
            assert!(!errors.contains("tok-"), "{errors}");
        }
    }

    #[test]
    fn serde_messages_lose_the_values_they_quote() {
        assert_eq!(
            without_values(r#"invalid type: string "s3cret, expected x", expected a map"#),
            "invalid type: a string, expected a map"
        );
        assert_eq!(
            without_values("invalid value: integer `7`, expected a port"),
            "invalid value: an integer, expected a port"
        );
        assert_eq!(
            without_values("invalid type: sequence, expected a string"),
            "invalid type: a sequence, expected a string"
        );
        assert_eq!(
            without_values("invalid value: 64-bit unsigned integer `7`, expected x"),
            "invalid value: an integer, expected x"
        );
        assert_eq!(
            without_values("unknown variant `s3cret`, expected one of `a`, `b`"),
            "unknown variant, expected one of `a`, `b`"
        );
        assert_eq!(without_values("missing field `url`"), "missing field `url`");
    }

    #[test]
    fn config_path_resolution() {
        let cli = Path::new("/tmp/cli.yaml");
        assert_eq!(
            choose_path(Some(cli), Some("/tmp/env.yaml".into()), || true),
            Some(cli.to_path_buf())
        );
        assert_eq!(
            choose_path(None, Some("/tmp/env.yaml".into()), || true),
            Some(PathBuf::from("/tmp/env.yaml"))
        );
        assert_eq!(
            choose_path(None, Some("".into()), || true),
            Some(PathBuf::from(SYSTEM_PATH))
        );
        assert_eq!(
            choose_path(None, None, || true),
            Some(PathBuf::from(SYSTEM_PATH))
        );
        assert_eq!(choose_path(None, None, || false), None);
        assert_eq!(resolve_path(Some(cli)), Some(cli.to_path_buf()));
    }
}
