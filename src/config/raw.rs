//! Raw configuration as written: serde structs mirroring the YAML keys, every scalar kept as an unchecked string
//! (durations, sizes, addresses) so one bad value does not hide the others. `validate` turns them into `Settings`.
//!
//! No `deny_unknown_fields`: unknown keys are collected all at once with `serde_ignored` by the loader.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, expecting = "a map of configuration sections")]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub storage: RawStorage,
    pub ingest: RawIngest,
    pub route: RawRoute,
    pub receivers: Option<Vec<RawReceiver>>,
    pub time_intervals: Option<Vec<RawTimeInterval>>,
    /// Alertmanager's deprecated name for `time_intervals`: same shape, same name space.
    pub mute_time_intervals: Option<Vec<RawTimeInterval>>,
    pub inhibit_rules: Option<Vec<RawInhibitRule>>,
    pub delivery: RawDelivery,
    /// Template files whose templates (by file name) fields can include or import.
    pub templates: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a map of server settings")]
pub(crate) struct RawServer {
    pub listen: Option<String>,
    pub max_body_bytes: Option<String>,
    pub external_url: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    /// Unset: derived from the open-file limit at start.
    pub max_connections: Option<String>,
    /// Secrets: each `${VAR}`-expanded.
    pub admin_tokens: Option<Vec<String>>,
    /// A file with one token per line.
    pub admin_tokens_file: Option<String>,
    /// Secrets, like `admin_tokens`: bearer tokens that may post alerts.
    pub ingest_tokens: Option<Vec<String>>,
    pub ingest_tokens_file: Option<String>,
    /// Secrets, like `admin_tokens`: bearer tokens that may read.
    pub read_tokens: Option<Vec<String>>,
    pub read_tokens_file: Option<String>,
    /// An exporter-toolkit web configuration file (TLS, basic auth users, response headers).
    pub web_config_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a map of delivery settings")]
pub(crate) struct RawDelivery {
    pub retry: RawRetry,
    pub timeout: Option<String>,
    pub concurrency: Option<String>,
    pub drain_timeout: Option<String>,
    pub retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    expecting = "a retry policy (a map with initial_backoff, max_backoff, max_attempts, max_age)"
)]
pub(crate) struct RawRetry {
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub max_attempts: Option<String>,
    pub max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a rate limit (a map with limit, period and burst)")]
pub(crate) struct RawRateLimit {
    pub limit: Option<String>,
    pub period: Option<String>,
    pub burst: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a map of storage settings")]
pub(crate) struct RawStorage {
    /// Secret: `${VAR}`-expanded; twin of `url_file`.
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub busy_timeout: Option<String>,
    pub resolved_retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a map of ingest settings")]
pub(crate) struct RawIngest {
    pub resolve_timeout: Option<String>,
    pub max_labels_per_alert: Option<String>,
    pub max_alerts_per_request: Option<String>,
    /// Secret: `${VAR}`-expanded; twin of `grafana_hmac_secret_file`.
    pub grafana_hmac_secret: Option<String>,
    pub grafana_hmac_secret_file: Option<String>,
    pub grafana_timestamp_header: Option<String>,
}

/// A route node with Alertmanager's keys; unset values are inherited from the parent by `validate`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a route (a map of route keys)")]
pub(crate) struct RawRoute {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    pub group_wait: Option<String>,
    pub group_interval: Option<String>,
    pub repeat_interval: Option<String>,
    pub matchers: Option<Vec<String>>,
    #[serde(rename = "match")]
    pub match_equal: Option<BTreeMap<String, String>>,
    pub match_re: Option<BTreeMap<String, String>>,
    #[serde(rename = "continue")]
    pub continue_matching: Option<bool>,
    pub routes: Option<Vec<RawRoute>>,
    pub mute_time_intervals: Option<Vec<String>>,
    pub active_time_intervals: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a receiver (a map with name and integrations)")]
pub(crate) struct RawReceiver {
    pub name: Option<String>,
    pub max_alerts: Option<String>,
    pub log_configs: Option<Vec<RawLogConfig>>,
    pub webhook_configs: Option<Vec<RawWebhookConfig>>,
    pub slack_configs: Option<Vec<RawSlackConfig>>,
    pub jira_configs: Option<Vec<RawJiraConfig>>,
    pub pagerduty_configs: Option<Vec<RawPagerDutyConfig>>,
    pub wecom_configs: Option<Vec<RawWeComConfig>>,
    pub msteamsv2_configs: Option<Vec<RawMsTeamsV2Config>>,
    pub email_configs: Option<Vec<RawEmailConfig>>,
}

/// `slack_configs[]`: incoming-webhook mode (`api_url`) or bot mode (`token`, `channel`, `api_url` as the API base).
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a slack config (a map with api_url, or token and channel)")]
pub(crate) struct RawSlackConfig {
    pub api_url: Option<String>,
    pub api_url_file: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub thread_replies: Option<bool>,
    pub send_resolved: Option<bool>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub text: Option<String>,
    pub http_config: Option<RawHttpConfig>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

/// `jira_configs[]`: one issue per alert group, on Jira Cloud (REST v3) or Data Center (REST v2).
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a jira config (a map with api_url, project and issue_type)")]
pub(crate) struct RawJiraConfig {
    pub api_type: Option<String>,
    pub api_url: Option<String>,
    pub user: Option<String>,
    pub api_token: Option<String>,
    pub api_token_file: Option<String>,
    pub personal_access_token: Option<String>,
    pub personal_access_token_file: Option<String>,
    pub project: Option<String>,
    pub issue_type: Option<String>,
    pub priority: Option<String>,
    pub priority_map: Option<BTreeMap<String, String>>,
    pub labels: Option<Vec<String>>,
    pub components: Option<Vec<String>>,
    pub fields: Option<BTreeMap<String, serde_json::Value>>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub comment: Option<String>,
    pub update_summary: Option<bool>,
    pub update_description: Option<bool>,
    pub update_priority: Option<bool>,
    pub comment_on_update: Option<bool>,
    pub resolve_transition: Option<String>,
    pub reopen_transition: Option<String>,
    pub reopen_duration: Option<String>,
    pub wont_fix_resolution: Option<String>,
    pub send_resolved: Option<bool>,
    pub http_config: Option<RawHttpConfig>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

/// `pagerduty_configs[]`, with Alertmanager's keys for the Events API v2 and herald's delivery keys.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a pagerduty config (a map with routing_key)")]
pub(crate) struct RawPagerDutyConfig {
    pub routing_key: Option<String>,
    pub routing_key_file: Option<String>,
    /// Alertmanager's Events API v1 key: read only to say it is not supported.
    pub service_key: Option<String>,
    pub service_key_file: Option<String>,
    pub url: Option<String>,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub source: Option<String>,
    pub class: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub client: Option<String>,
    pub client_url: Option<String>,
    pub details: Option<BTreeMap<String, String>>,
    pub links: Option<Vec<RawPagerDutyLink>>,
    pub images: Option<Vec<RawPagerDutyImage>>,
    pub send_resolved: Option<bool>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a link (a map with href and text)")]
pub(crate) struct RawPagerDutyLink {
    pub href: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an image (a map with src, href and alt)")]
pub(crate) struct RawPagerDutyImage {
    pub src: Option<String>,
    pub href: Option<String>,
    pub alt: Option<String>,
}

/// `wecom_configs[]`: a WeCom group robot.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a wecom config (a map with url)")]
pub(crate) struct RawWeComConfig {
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub msg_type: Option<String>,
    pub mentioned_list: Option<Vec<String>>,
    pub mentioned_mobile_list: Option<Vec<String>>,
    pub title: Option<String>,
    pub text: Option<String>,
    pub send_resolved: Option<bool>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

/// `msteamsv2_configs[]`, with Alertmanager's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an msteamsv2 config (a map with webhook_url)")]
pub(crate) struct RawMsTeamsV2Config {
    pub webhook_url: Option<String>,
    pub webhook_url_file: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    pub send_resolved: Option<bool>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a log config (a map, possibly empty)")]
pub(crate) struct RawLogConfig {
    pub send_resolved: Option<bool>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

/// `webhook_configs[]`, with Alertmanager's keys (`url`, `url_file`, `send_resolved`, `max_alerts`, `http_config`,
/// `timeout`) and herald's (`body`, `method`, `hmac_secret`, `retry`, `rate_limit`).
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a webhook config (a map with url)")]
pub(crate) struct RawWebhookConfig {
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub send_resolved: Option<bool>,
    pub max_alerts: Option<String>,
    pub http_config: Option<RawHttpConfig>,
    /// A template for the request body; Alertmanager's payload when unset.
    pub body: Option<String>,
    pub method: Option<String>,
    pub hmac_secret: Option<String>,
    pub hmac_secret_file: Option<String>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

/// `email_configs[]`, with Alertmanager's keys and herald's `retry`, `rate_limit` and `timeout`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an email config (a map with to, from and smarthost)")]
pub(crate) struct RawEmailConfig {
    pub to: Option<String>,
    pub from: Option<String>,
    pub smarthost: Option<String>,
    pub hello: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub auth_password_file: Option<String>,
    /// CRAM-MD5's secret: recognised so a pasted block gets a clear error, not supported.
    pub auth_secret: Option<String>,
    pub auth_secret_file: Option<String>,
    pub auth_identity: Option<String>,
    pub require_tls: Option<bool>,
    pub force_implicit_tls: Option<bool>,
    pub tls_config: Option<RawTlsConfig>,
    pub headers: Option<BTreeMap<String, String>>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub send_resolved: Option<bool>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub timeout: Option<String>,
}

/// `http_config`, with Prometheus's and Alertmanager's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an HTTP client config (a map such as {authorization: ..., tls_config: ...})")]
pub(crate) struct RawHttpConfig {
    pub authorization: Option<RawAuthorization>,
    pub basic_auth: Option<RawBasicAuth>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub oauth2: Option<RawOAuth2>,
    pub tls_config: Option<RawTlsConfig>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: Option<bool>,
    pub follow_redirects: Option<bool>,
    /// Accepted for Alertmanager compatibility; herald speaks HTTP/1.1.
    #[allow(
        dead_code,
        reason = "accepted for Alertmanager compatibility; herald speaks HTTP/1.1"
    )]
    pub enable_http2: Option<bool>,
    pub http_headers: Option<BTreeMap<String, RawHttpHeader>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an authorization (a map with type and credentials)")]
pub(crate) struct RawAuthorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "basic auth (a map with username and password)")]
pub(crate) struct RawBasicAuth {
    pub username: Option<String>,
    pub username_file: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a TLS config (a map such as {ca_file: ..., cert_file: ..., key_file: ...})")]
pub(crate) struct RawTlsConfig {
    pub ca: Option<String>,
    pub ca_file: Option<String>,
    pub cert: Option<String>,
    pub cert_file: Option<String>,
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub min_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an OAuth2 config (a map with client_id, client_secret and token_url)")]
pub(crate) struct RawOAuth2 {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub endpoint_params: Option<BTreeMap<String, String>>,
    pub tls_config: Option<RawTlsConfig>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: Option<bool>,
}

/// One `http_headers` entry, as Prometheus writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a header's values (a map with values, secrets or files)")]
pub(crate) struct RawHttpHeader {
    pub values: Option<Vec<String>>,
    pub secrets: Option<Vec<String>>,
    pub files: Option<Vec<String>>,
}

/// A named time interval: `time_intervals[]` (or the deprecated `mute_time_intervals[]`).
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a time interval (a map with name and time_intervals)")]
pub(crate) struct RawTimeInterval {
    pub name: Option<String>,
    pub time_intervals: Option<Vec<RawPeriod>>,
}

/// One entry of a time interval's `time_intervals`; each list element is a value or a `START:END` range.
#[derive(Debug, Default, Deserialize)]
#[serde(
    expecting = "a time interval entry (a map of times, weekdays, days_of_month, months, years, location)"
)]
pub(crate) struct RawPeriod {
    pub times: Option<Vec<RawTimeRange>>,
    pub weekdays: Option<Vec<String>>,
    pub days_of_month: Option<Vec<String>>,
    pub months: Option<Vec<String>>,
    pub years: Option<Vec<String>>,
    pub location: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a time range (a map with start_time and end_time)")]
pub(crate) struct RawTimeRange {
    pub start_time: Option<String>,
    pub end_time: Option<String>,
}

/// One `inhibit_rules` entry with Alertmanager's keys, including the deprecated match maps.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "an inhibit rule (a map with source_matchers, target_matchers and equal)")]
pub(crate) struct RawInhibitRule {
    /// Optional and informational, as in Alertmanager; accepted so pasted rules load, not used.
    #[allow(
        dead_code,
        reason = "accepted for Alertmanager compatibility; herald does not use it"
    )]
    pub name: Option<String>,
    pub source_matchers: Option<Vec<String>>,
    pub target_matchers: Option<Vec<String>>,
    pub source_match: Option<BTreeMap<String, String>>,
    pub source_match_re: Option<BTreeMap<String, String>>,
    pub target_match: Option<BTreeMap<String, String>>,
    pub target_match_re: Option<BTreeMap<String, String>>,
    pub equal: Option<Vec<String>>,
}
