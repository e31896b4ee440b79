//! Validation of delivery settings and of integration configs: `delivery`, each integration's `retry`,
//! `rate_limit` and `timeout`, and `webhook_configs`.

use std::time::Duration;

use super::Checker;
use crate::config::Secret;
use crate::config::raw::{RawDelivery, RawLogConfig, RawRateLimit, RawRetry, RawWebhookConfig};
use crate::config::secret::resolve_secret;
use crate::config::settings::{
    DeliveryOptions, DeliverySettings, LogConfig, RateLimit, RetryPolicy, WebhookConfig,
    WebhookMethod,
};

/// Fallbacks for a `delivery.retry` whose keys were overridden with nothing; they equal the embedded default.
const FALLBACK_RETRY: RetryPolicy = RetryPolicy {
    initial_backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(300),
    max_attempts: 200,
    max_age: Duration::from_secs(24 * 3600),
};

/// Delivery settings to check integration configs against when `delivery` itself is invalid.
pub(super) fn fallback_delivery() -> DeliverySettings {
    DeliverySettings {
        retry: FALLBACK_RETRY,
        timeout: Duration::from_secs(10),
        concurrency: 32,
        drain_timeout: Duration::from_secs(10),
        retention: Duration::from_secs(168 * 3600),
    }
}

impl Checker<'_> {
    fn attempts(&mut self, path: &str, value: Option<&str>) -> Option<u32> {
        self.parse(path, value, |value| match value.parse::<u32>() {
            Ok(0) => Err("must be greater than 0".to_owned()),
            Ok(count) => Ok(count),
            Err(_) => Err(format!(
                "invalid number {value:?}: expected a positive integer"
            )),
        })
    }

    /// A retry policy at `path`; keys left out take `base`'s values.
    fn retry(&mut self, path: &str, raw: Option<&RawRetry>, base: RetryPolicy) -> RetryPolicy {
        let Some(raw) = raw else {
            return base;
        };
        let mut policy = base;
        if let Some(value) = raw.initial_backoff.as_deref()
            && let Some(d) = self.positive_duration(&format!("{path}.initial_backoff"), Some(value))
        {
            policy.initial_backoff = d;
        }
        if let Some(value) = raw.max_backoff.as_deref()
            && let Some(d) = self.positive_duration(&format!("{path}.max_backoff"), Some(value))
        {
            policy.max_backoff = d;
        }
        if let Some(value) = raw.max_attempts.as_deref()
            && let Some(n) = self.attempts(&format!("{path}.max_attempts"), Some(value))
        {
            policy.max_attempts = n;
        }
        if let Some(value) = raw.max_age.as_deref()
            && let Some(d) = self.positive_duration(&format!("{path}.max_age"), Some(value))
        {
            policy.max_age = d;
        }
        if policy.max_backoff < policy.initial_backoff {
            self.error(
                format!("{path}.max_backoff"),
                "must not be less than initial_backoff",
            );
        }
        policy
    }

    /// A rate limit at `path`: `limit` sends per `period` (default 1s), bursts of `burst` (default 1).
    fn rate_limit(&mut self, path: &str, raw: Option<&RawRateLimit>) -> Option<RateLimit> {
        let raw = raw?;
        let limit = self.attempts(&format!("{path}.limit"), raw.limit.as_deref());
        let period = match raw.period.as_deref() {
            Some(value) => self.positive_duration(&format!("{path}.period"), Some(value)),
            None => Some(Duration::from_secs(1)),
        };
        let burst = match raw.burst.as_deref() {
            Some(value) => self.attempts(&format!("{path}.burst"), Some(value)),
            None => Some(1),
        };
        Some(RateLimit {
            limit: limit?,
            period: period?,
            burst: burst?,
        })
    }

    /// The delivery options of the integration config at `path`.
    pub(super) fn delivery_options(
        &mut self,
        path: &str,
        retry: Option<&RawRetry>,
        rate_limit: Option<&RawRateLimit>,
        timeout: Option<&str>,
        defaults: &DeliverySettings,
    ) -> DeliveryOptions {
        let retry = self.retry(&format!("{path}.retry"), retry, defaults.retry);
        let rate_limit = self.rate_limit(&format!("{path}.rate_limit"), rate_limit);
        let timeout = match timeout {
            Some(value) => self
                .positive_duration(&format!("{path}.timeout"), Some(value))
                .unwrap_or(defaults.timeout),
            None => defaults.timeout,
        };
        DeliveryOptions {
            retry,
            rate_limit,
            timeout,
        }
    }

    pub(super) fn delivery(&mut self, raw: &RawDelivery) -> Option<DeliverySettings> {
        let base = RetryPolicy {
            initial_backoff: self
                .positive_duration(
                    "delivery.retry.initial_backoff",
                    raw.retry.initial_backoff.as_deref(),
                )
                .unwrap_or(FALLBACK_RETRY.initial_backoff),
            max_backoff: self
                .positive_duration(
                    "delivery.retry.max_backoff",
                    raw.retry.max_backoff.as_deref(),
                )
                .unwrap_or(FALLBACK_RETRY.max_backoff),
            max_attempts: self
                .attempts(
                    "delivery.retry.max_attempts",
                    raw.retry.max_attempts.as_deref(),
                )
                .unwrap_or(FALLBACK_RETRY.max_attempts),
            max_age: self
                .positive_duration("delivery.retry.max_age", raw.retry.max_age.as_deref())
                .unwrap_or(FALLBACK_RETRY.max_age),
        };
        if base.max_backoff < base.initial_backoff {
            self.error(
                "delivery.retry.max_backoff",
                "must not be less than initial_backoff",
            );
        }
        let timeout = self.positive_duration("delivery.timeout", raw.timeout.as_deref());
        let concurrency = self.count("delivery.concurrency", raw.concurrency.as_deref());
        let drain_timeout = self.duration("delivery.drain_timeout", raw.drain_timeout.as_deref());
        let retention = self.positive_duration("delivery.retention", raw.retention.as_deref());
        Some(DeliverySettings {
            retry: base,
            timeout: timeout?,
            concurrency: concurrency?,
            drain_timeout: drain_timeout?,
            retention: retention?,
        })
    }

    pub(super) fn log_config(
        &mut self,
        path: &str,
        raw: &RawLogConfig,
        defaults: &DeliverySettings,
    ) -> LogConfig {
        LogConfig {
            send_resolved: raw.send_resolved.unwrap_or(true),
            delivery: self.delivery_options(
                path,
                raw.retry.as_ref(),
                raw.rate_limit.as_ref(),
                raw.timeout.as_deref(),
                defaults,
            ),
        }
    }

    /// A secret and its `_file` twin at `path`; records the problem and returns `None` when it cannot be read.
    pub(super) fn secret_pair(
        &mut self,
        path: &str,
        value: Option<&str>,
        file: Option<&str>,
    ) -> Option<Secret> {
        match resolve_secret(value, file, path, self.env) {
            Ok(secret) => secret,
            Err(issue) => {
                self.errors.push(issue);
                None
            }
        }
    }

    pub(super) fn webhook_config(
        &mut self,
        path: &str,
        raw: &RawWebhookConfig,
        defaults: &DeliverySettings,
    ) -> Option<WebhookConfig> {
        let url = self.secret_pair(
            &format!("{path}.url"),
            raw.url.as_deref(),
            raw.url_file.as_deref(),
        );
        let url = match url {
            Some(url) => match check_http_url(url.expose()) {
                Ok(()) => Some(url),
                Err(message) => {
                    let key = if raw.url.is_some() { "url" } else { "url_file" };
                    self.error(format!("{path}.{key}"), message);
                    None
                }
            },
            // Given but not resolved (an unset variable, an unreadable file): that was reported.
            None if raw.url.is_some() || raw.url_file.is_some() => None,
            None => {
                self.error(format!("{path}.url"), "must be set (or url_file)");
                None
            }
        };
        let http = self.http_config(&format!("{path}.http_config"), raw.http_config.as_ref());
        let method = match raw.method.as_deref().map(str::trim) {
            None | Some("") => Some(WebhookMethod::Post),
            Some(method) => match method.to_ascii_uppercase().as_str() {
                "POST" => Some(WebhookMethod::Post),
                "PUT" => Some(WebhookMethod::Put),
                "PATCH" => Some(WebhookMethod::Patch),
                _ => {
                    self.error(
                        format!("{path}.method"),
                        format!("unsupported method {method:?}: expected POST, PUT or PATCH"),
                    );
                    None
                }
            },
        };
        let body = raw
            .body
            .as_deref()
            .map(|source| self.template_field(path, "body", Some(source), "default.webhook_body"));
        let hmac_secret = self.secret_pair(
            &format!("{path}.hmac_secret"),
            raw.hmac_secret.as_deref(),
            raw.hmac_secret_file.as_deref(),
        );
        if hmac_secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            self.error(format!("{path}.hmac_secret"), "must not be empty");
        }
        let max_alerts = match raw.max_alerts.as_deref() {
            None => None,
            Some(value) => self.parse(&format!("{path}.max_alerts"), Some(value), |value| {
                value.parse::<usize>().map_err(|_| {
                    format!(
                        "invalid number {value:?}: expected a non-negative integer (0: no limit)"
                    )
                })
            }),
        }
        .filter(|limit| *limit > 0);
        let delivery = self.delivery_options(
            path,
            raw.retry.as_ref(),
            raw.rate_limit.as_ref(),
            raw.timeout.as_deref(),
            defaults,
        );
        Some(WebhookConfig {
            url: url?,
            send_resolved: raw.send_resolved.unwrap_or(true),
            method: method?,
            body,
            http,
            hmac_secret,
            max_alerts,
            delivery,
        })
    }
}

/// An absolute http:// or https:// URL with a host. Messages never repeat the URL (it is a secret).
pub(super) fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an absolute http:// or https:// URL")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("must name a host (http://HOST[:PORT]/PATH)".to_owned());
    }
    if url.contains(char::is_whitespace) {
        return Err("must not contain spaces".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{load_errors, load_str};

    #[test]
    fn delivery_defaults_and_per_integration_overrides() {
        let yaml = "route: {receiver: hook}\nreceivers:\n  - name: hook\n    webhook_configs:\n      \
                    - url: http://127.0.0.1:1/a\n        retry: {max_attempts: 3}\n        \
                    rate_limit: {limit: 20, period: 1m}\n        timeout: 3s\n      - url: http://127.0.0.1:1/b\n";
        let settings = load_str(yaml, "h.yaml").unwrap().settings;
        let delivery = &settings.delivery;
        assert_eq!(delivery.timeout, Duration::from_secs(10));
        assert_eq!(delivery.concurrency, 32);
        assert_eq!(delivery.retry.max_attempts, 200);
        assert_eq!(delivery.retention, Duration::from_secs(168 * 3600));
        let hooks = &settings.receivers[0].webhook_configs;
        let first = &hooks[0].delivery;
        assert_eq!(first.retry.max_attempts, 3);
        assert_eq!(
            first.retry.initial_backoff,
            Duration::from_secs(1),
            "inherited"
        );
        let limit = first.rate_limit.unwrap();
        assert_eq!(
            (limit.limit, limit.period, limit.burst),
            (20, Duration::from_secs(60), 1)
        );
        assert_eq!(first.timeout, Duration::from_secs(3));
        assert_eq!(hooks[1].delivery.rate_limit, None);
        assert_eq!(hooks[1].delivery.timeout, Duration::from_secs(10));
        assert!(hooks[1].send_resolved);
    }

    #[test]
    fn webhook_authorization_forms() {
        let yaml = "route: {receiver: hook}\nreceivers:\n  - name: hook\n    webhook_configs:\n      \
                    - url: http://h/a\n        http_config: {authorization: {credentials: tok}}\n      \
                    - url: http://h/b\n        http_config: {authorization: {type: Token, credentials: t2}}\n      \
                    - url: http://h/c\n        http_config: {basic_auth: {username: u, password: p}}\n        \
                    hmac_secret: key\n";
        let settings = load_str(yaml, "h.yaml").unwrap().settings;
        let hooks = &settings.receivers[0].webhook_configs;
        let auth: Vec<_> = hooks
            .iter()
            .map(|hook| {
                hook.http
                    .authorization
                    .as_ref()
                    .unwrap()
                    .value
                    .expose()
                    .to_owned()
            })
            .collect();
        assert_eq!(auth, ["Bearer tok", "Token t2", "Basic dTpw"]);
        assert_eq!(hooks[2].hmac_secret.as_ref().unwrap().expose(), "key");
    }

    #[test]
    fn every_delivery_problem_is_reported_with_its_path() {
        let yaml = "delivery: {timeout: 0s, concurrency: none, retry: {initial_backoff: 1m, max_backoff: 1s}}\n\
                    server: {admin_tokens: ['']}\n\
                    route: {receiver: hook}\nreceivers:\n  - name: hook\n    webhook_configs:\n      \
                    - url: ftp://secret-host/path\n        rate_limit: {limit: 0}\n        retry: {max_attempts: -1}\n      \
                    - send_resolved: false\n      \
                    - url: http://h/x\n        http_config: {authorization: {type: Basic, credentials: x}}\n      \
                    - url: http://h/y\n        http_config: {authorization: {credentials: a}, basic_auth: {username: u}}\n";
        let errors = load_errors(yaml);
        for expected in [
            "delivery.timeout: must be greater than 0",
            "delivery.concurrency: invalid number \"none\"",
            "delivery.retry.max_backoff: must not be less than initial_backoff",
            "server.admin_tokens[0]: must not be empty",
            "receivers[0].webhook_configs[0].url: must be an absolute http:// or https:// URL",
            "receivers[0].webhook_configs[0].rate_limit.limit: must be greater than 0",
            "receivers[0].webhook_configs[0].retry.max_attempts: invalid number \"-1\"",
            "receivers[0].webhook_configs[1].url: must be set (or url_file)",
            "receivers[0].webhook_configs[2].http_config.authorization.type: use http_config.basic_auth",
            "receivers[0].webhook_configs[3].http_config.basic_auth: cannot be set together with authorization",
        ] {
            assert!(
                errors.iter().any(|error| error.contains(expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
        assert!(
            !errors.iter().any(|error| error.contains("secret-host")),
            "URLs are secrets: {errors:#?}"
        );
    }
}
