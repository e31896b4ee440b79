//! Validated settings: the typed configuration the daemon is built from. Only `config::load*` produces them, after
//! every check passed, so nothing downstream re-validates.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use super::Secret;
use super::email::EmailConfig;
use super::httpconfig::HttpConfig;
use super::web::WebConfig;
use crate::inhibit::InhibitRule;
use crate::template::{TemplateField, Templates};
use crate::timeinterval::TimeInterval;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the configuration came from, for messages: a file path, or `<embedded default>`.
    pub origin: String,
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub ingest: IngestSettings,
    pub route: Route,
    pub receivers: Vec<Receiver>,
    /// `time_intervals` and the deprecated `mute_time_intervals`, in that order, each in file order; names are
    /// unique across both. Look one up with `Settings::time_interval`.
    pub time_intervals: Vec<TimeInterval>,
    /// `inhibit_rules`, in file order, with their matchers compiled.
    pub inhibit_rules: Vec<InhibitRule>,
    pub delivery: DeliverySettings,
    /// Every template: herald's defaults, the `templates:` files and each templated field, compiled.
    pub templates: Arc<Templates>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `server.listen`, default `127.0.0.1:9095`.
    pub listen: SocketAddr,
    /// `server.max_body_bytes`, default 4 MiB.
    pub max_body_bytes: usize,
    /// `server.external_url`: the URL users reach herald at, used in links; `None` when unset.
    pub external_url: Option<String>,
    /// `server.shutdown_timeout`, default 30s: how long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// `server.header_read_timeout`, default 10s: how long a new connection may take to complete its TLS handshake
    /// and send a request's head, and a keep-alive connection to send the rest of a head once it sent its first byte.
    pub header_read_timeout: Duration,
    /// `server.idle_timeout`, default 6m: how long a keep-alive connection may wait for its next request after an
    /// answer. Longer than the 5 minutes Prometheus and Alertmanager keep idle connections, so they close first.
    pub idle_timeout: Duration,
    /// `server.max_connections`: open HTTP connections served at once; `None` (the default) derives it from the
    /// open-file limit at start (`http::serve::default_max_connections`).
    pub max_connections: Option<usize>,
    /// `server.admin_tokens`: bearer tokens that may use the operator API and write silences; empty means those
    /// are open to anyone who can reach herald.
    pub admin_tokens: Vec<Secret>,
    /// `server.ingest_tokens`: bearer tokens that may post alerts (the v2 API and the webhooks).
    pub ingest_tokens: Vec<Secret>,
    /// `server.read_tokens`: bearer tokens that may read (alerts, groups, silences, status, metrics, deliveries).
    pub read_tokens: Vec<Secret>,
    /// `server.web_config_file`, loaded and checked: TLS, basic auth users and response headers; `None` when unset.
    pub web: Option<Arc<WebConfig>>,
}

impl ServerSettings {
    /// Whether any credential is configured: then every endpoint but `/-/healthy` and `/-/ready` needs one.
    pub fn auth_enabled(&self) -> bool {
        !self.admin_tokens.is_empty()
            || !self.ingest_tokens.is_empty()
            || !self.read_tokens.is_empty()
            || self
                .web
                .as_ref()
                .is_some_and(|web| !web.basic_auth_users.is_empty())
    }
}

/// `delivery`: how the outbox delivers, and the defaults every integration's `retry` and `timeout` start from.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `delivery.retry`: the default retry policy.
    pub retry: RetryPolicy,
    /// `delivery.timeout`, default 10s: how long one send may take before it counts as failed (retryable).
    pub timeout: Duration,
    /// `delivery.concurrency`, default 32: sends in flight at once per receiver (each group and integration keeps
    /// its order).
    pub concurrency: usize,
    /// `delivery.drain_timeout`, default 10s: on shutdown, how long in-flight sends may take before they are
    /// abandoned and returned to pending.
    pub drain_timeout: Duration,
    /// `delivery.retention`, default 168h: how long delivered and dead deliveries and their attempts are kept.
    pub retention: Duration,
}

/// `retry`: exponential backoff with full jitter between attempts, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `initial_backoff`, default 1s: the backoff ceiling after the first failure; it doubles each attempt.
    pub initial_backoff: Duration,
    /// `max_backoff`, default 5m: the largest backoff ceiling.
    pub max_backoff: Duration,
    /// `max_attempts`, default 200: a delivery is dead after this many failed attempts.
    pub max_attempts: u32,
    /// `max_age`, default 24h: a delivery is dead once this long has passed since it was queued.
    pub max_age: Duration,
}

/// `rate_limit`: at most `limit` sends per `period` to one destination, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub period: Duration,
    pub burst: u32,
}

/// The delivery options every integration config has: `retry` (defaults from `delivery.retry`), `rate_limit`
/// (defaults from the service's documented limit; none for webhooks) and `timeout` (default `delivery.timeout`).
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    pub retry: RetryPolicy,
    pub rate_limit: Option<RateLimit>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageBackend {
    /// `sqlite://PATH` (relative paths are relative to the working directory).
    Sqlite { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub backend: StorageBackend,
    /// `storage.busy_timeout`, default 5s: how long a write waits on a locked database before failing.
    pub busy_timeout: Duration,
    /// `storage.resolved_retention`, default 24h: how long resolved alerts, expired silences and the notification
    /// log of groups that are gone are kept before they are deleted.
    pub resolved_retention: Duration,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// `ingest.resolve_timeout`, default 5m: `endsAt` for v2 API alerts that carry none is now + this.
    pub resolve_timeout: Duration,
    /// `ingest.max_labels_per_alert`, default 128: alerts with more labels are rejected.
    pub max_labels_per_alert: usize,
    /// `ingest.max_alerts_per_request`, default 10,000: larger batches are rejected whole.
    pub max_alerts_per_request: usize,
    /// `ingest.grafana_hmac_secret`: when set, `/webhook/grafana` takes only requests signed with it.
    pub grafana_signature: Option<GrafanaSignature>,
}

/// How Grafana's webhook requests must be signed (its contact point's HMAC settings).
#[derive(Debug, Clone)]
pub struct GrafanaSignature {
    pub secret: Secret,
    /// `ingest.grafana_timestamp_header`: when set, the signature covers `timestamp:body`, and the timestamp must
    /// be within 5 minutes of herald's clock.
    pub timestamp_header: Option<String>,
}

/// `group_by`: a list of label names, or `['...']` for every label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Labels(Vec<String>),
    All,
}

/// One node of the route tree, with inherited values already filled in from its parent.
#[derive(Debug, Clone)]
pub struct Route {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// `matchers`, in Alertmanager syntax, as written.
    pub matchers: Vec<String>,
    /// Deprecated `match`: label -> exact value.
    pub match_equal: BTreeMap<String, String>,
    /// Deprecated `match_re`: label -> regex.
    pub match_re: BTreeMap<String, String>,
    pub continue_matching: bool,
    /// Names of `time_intervals` during which this route does not notify (each is defined; not inherited).
    pub mute_time_intervals: Vec<String>,
    /// Names of `time_intervals` outside all of which this route does not notify (each is defined; not inherited).
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
}

/// A named receiver and its integrations.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    /// `max_alerts`: at most this many alerts in one notification (the rest are counted as truncated); `None`
    /// (unset or 0) for no limit.
    pub max_alerts: Option<usize>,
    pub log_configs: Vec<LogConfig>,
    pub webhook_configs: Vec<WebhookConfig>,
    pub slack_configs: Vec<SlackConfig>,
    pub jira_configs: Vec<JiraConfig>,
    pub pagerduty_configs: Vec<PagerDutyConfig>,
    pub wecom_configs: Vec<WeComConfig>,
    pub msteamsv2_configs: Vec<MsTeamsV2Config>,
    pub email_configs: Vec<EmailConfig>,
}

impl Receiver {
    /// Number of integration configs of every kind.
    pub fn integration_count(&self) -> usize {
        self.log_configs.len()
            + self.webhook_configs.len()
            + self.slack_configs.len()
            + self.jira_configs.len()
            + self.pagerduty_configs.len()
            + self.wecom_configs.len()
            + self.msteamsv2_configs.len()
            + self.email_configs.len()
    }
}

/// How a Slack integration posts.
#[derive(Debug, Clone)]
pub enum SlackMode {
    /// `api_url`: an incoming webhook (the URL is the credential); every notification is a new message.
    Webhook { url: Secret },
    /// `token`: a bot token; the group's first notification is posted, later ones update it (and reply in its
    /// thread with `thread_replies`). `api_url` is the Web API base, default `https://slack.com/api`.
    Bot { token: Secret, api_url: String },
}

/// `slack_configs[]`.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub mode: SlackMode,
    /// `channel`: overrides the webhook's channel; required in bot mode (`#name`, `name` or an id).
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    /// `thread_replies` (bot mode), default false: also reply in the message's thread on each update.
    pub thread_replies: bool,
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    pub title: TemplateField,
    pub title_link: TemplateField,
    pub text: TemplateField,
    /// `http_config`: TLS, proxy, headers (credentials are the webhook URL or the token).
    pub http: HttpConfig,
    pub delivery: DeliveryOptions,
}

/// Which Jira REST API a site speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JiraApi {
    /// Jira Cloud, REST v3 with Atlassian Document Format.
    Cloud,
    /// Jira Data Center / Server, REST v2 with wiki markup.
    DataCenter,
}

/// How herald signs in to Jira.
#[derive(Debug, Clone)]
pub enum JiraAuth {
    /// `user` + `api_token`: `Authorization: Basic`.
    Basic { user: String, token: Secret },
    /// `personal_access_token`: `Authorization: Bearer`.
    Bearer { token: Secret },
}

/// `jira_configs[]`: one issue per alert group.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    pub api: JiraApi,
    /// `api_url`: the site's base URL (`https://example.atlassian.net`), without `/rest/...`.
    pub api_url: String,
    pub auth: JiraAuth,
    pub project: String,
    pub issue_type: String,
    /// `priority`: a template for the priority's name; when unset, `priority_map` by the `severity` label.
    pub priority: Option<TemplateField>,
    /// `priority_map`: severity label value -> priority name.
    pub priority_map: BTreeMap<String, String>,
    pub labels: Vec<String>,
    pub components: Vec<String>,
    /// `fields`: more fields set on create (custom fields by id: `customfield_10001: ...`).
    pub fields: BTreeMap<String, serde_json::Value>,
    pub summary: TemplateField,
    pub description: TemplateField,
    pub comment: TemplateField,
    pub update_summary: bool,
    pub update_description: bool,
    pub update_priority: bool,
    /// `comment_on_update`, default false: comment on updates, unless the comment would repeat the last one.
    pub comment_on_update: bool,
    /// `resolve_transition`, default `Done`: the transition run when the group resolves.
    pub resolve_transition: String,
    /// `reopen_transition`, default `To Do`: run when the group fires again within `reopen_duration`.
    pub reopen_transition: String,
    /// `reopen_duration`, default 24h: after it, a group that fires again gets a new issue.
    pub reopen_duration: Duration,
    /// `wont_fix_resolution`: an issue resolved (by a person) with this resolution is never reopened.
    pub wont_fix_resolution: Option<String>,
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    /// `http_config`: TLS, proxy, headers (credentials are `user` + `api_token` or the personal access token).
    pub http: HttpConfig,
    pub delivery: DeliveryOptions,
}

/// A link or image of a PagerDuty event: each part a template.
#[derive(Debug, Clone)]
pub struct PagerDutyLink {
    /// `href`: where the link (or a click on the image) goes.
    pub href: TemplateField,
    /// `text` of a link, `alt` of an image.
    pub text: TemplateField,
}

/// An image of a PagerDuty event (`images[]`).
#[derive(Debug, Clone)]
pub struct PagerDutyImage {
    /// `src`: the image's URL (HTTPS, for PagerDuty to show it).
    pub src: TemplateField,
    pub href: TemplateField,
    pub alt: TemplateField,
}

/// `pagerduty_configs[]`: one PagerDuty alert per alert group through the Events API v2.
#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    /// `routing_key` or `routing_key_file`: the integration key of a service or ruleset (32 characters).
    pub routing_key: Secret,
    /// `url`, default `https://events.pagerduty.com/v2/enqueue`.
    pub url: String,
    /// `description`: the event's summary (cut to 1,024 characters).
    pub description: TemplateField,
    /// `severity`: critical, error, warning or info; other values are read as a severity label (`page` is
    /// critical); unset, from the alerts' `severity` labels.
    pub severity: TemplateField,
    pub source: TemplateField,
    pub class: TemplateField,
    pub component: TemplateField,
    pub group: TemplateField,
    pub client: TemplateField,
    pub client_url: TemplateField,
    /// `details`: herald's defaults (`firing`, `resolved`, `num_firing`, `num_resolved`) with the configured keys
    /// added or replacing them; each value a template.
    pub details: BTreeMap<String, TemplateField>,
    pub links: Vec<PagerDutyLink>,
    pub images: Vec<PagerDutyImage>,
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    pub delivery: DeliveryOptions,
}

/// How a WeCom group robot message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeComMessageType {
    /// `markdown` (the default): coloured by state and severity, at most 4,096 bytes.
    Markdown,
    /// `text`: plain, with @-mentions, at most 2,048 bytes.
    Text,
}

/// `wecom_configs[]`: post to a WeCom (企业微信) group robot.
#[derive(Debug, Clone)]
pub struct WeComConfig {
    /// `url` or `url_file`: the robot's webhook URL with its `key` (the credential).
    pub url: Secret,
    pub msg_type: WeComMessageType,
    /// `mentioned_list`: user ids to @-mention (`@all` for everyone); text messages only.
    pub mentioned_list: Vec<String>,
    /// `mentioned_mobile_list`: mobile numbers to @-mention; text messages only.
    pub mentioned_mobile_list: Vec<String>,
    pub title: TemplateField,
    pub text: TemplateField,
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    pub delivery: DeliveryOptions,
}

/// `msteamsv2_configs[]`: post an Adaptive Card to a Microsoft Teams Workflows webhook (or a legacy connector).
#[derive(Debug, Clone)]
pub struct MsTeamsV2Config {
    /// `webhook_url` or `webhook_url_file`: the webhook's URL (the credential).
    pub webhook_url: Secret,
    pub title: TemplateField,
    pub text: TemplateField,
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    pub delivery: DeliveryOptions,
}

/// `log_configs[]`: print one readable line per notification.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    pub delivery: DeliveryOptions,
}

/// `webhook_configs[]`: send Alertmanager's webhook payload (version 4), or a templated body, to a URL.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `url` or `url_file`: where to send; a secret (it often carries a token).
    pub url: Secret,
    /// `send_resolved`, default true.
    pub send_resolved: bool,
    /// `method`: POST (default), PUT or PATCH.
    pub method: WebhookMethod,
    /// `body`: a template for the request body (`Content-Type: application/json` unless `http_headers` sets
    /// one); Alertmanager's payload when unset.
    pub body: Option<TemplateField>,
    /// `http_config`: TLS, proxy, credentials, redirects and extra headers.
    pub http: HttpConfig,
    /// `hmac_secret` or `hmac_secret_file`: when set, each request carries `X-Herald-Timestamp` (Unix seconds) and
    /// `X-Herald-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`.
    pub hmac_secret: Option<Secret>,
    /// `max_alerts`: at most this many alerts per payload (the rest counted in `truncatedAlerts`); `None` for all.
    pub max_alerts: Option<usize>,
    pub delivery: DeliveryOptions,
}

/// The HTTP method of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl WebhookMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookMethod::Post => "POST",
            WebhookMethod::Put => "PUT",
            WebhookMethod::Patch => "PATCH",
        }
    }
}

impl Settings {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|receiver| receiver.name == name)
    }

    pub fn time_interval(&self, name: &str) -> Option<&TimeInterval> {
        self.time_intervals
            .iter()
            .find(|interval| interval.name() == name)
    }
}
