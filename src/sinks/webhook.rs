//! The `webhook` integration: sends Alertmanager's webhook payload (version 4), or a body rendered from the
//! `body` template in the destination's own format (DingTalk, Feishu, Mattermost ...), to a URL with POST, PUT or
//! PATCH; the `http_config` adds credentials, TLS, a proxy and headers (`Content-Type` among them, JSON unless set),
//! and an optional HMAC-SHA256 signature covers the body.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;
use sha2::Sha256;

use super::httpclient::HttpClient;
use super::{Context, Receipt, Sink, SinkError, http};
use crate::alert::{Annotations, Fingerprint, Labels, Status};
use crate::clock::{Clock, SystemClock};
use crate::config::{Secret, WebhookConfig, WebhookMethod};
use crate::notification::{Notification, NotifiedAlert};
use crate::template::{TemplateField, Templates};

/// Header carrying the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-herald-timestamp";

/// Header carrying `sha256=<lowercase hex HMAC-SHA256 of "{timestamp}.{body}">`.
pub const SIGNATURE_HEADER: &str = "x-herald-signature";

/// Go's zero time, which Alertmanager sends as a firing alert's `endsAt`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Alertmanager's webhook payload, version 4.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload<'a> {
    pub version: &'static str,
    pub group_key: &'a str,
    pub truncated_alerts: usize,
    pub status: Status,
    pub receiver: &'a str,
    pub group_labels: &'a Labels,
    pub common_labels: &'a Labels,
    pub common_annotations: &'a Annotations,
    /// herald's external URL, or "" when unset.
    #[serde(rename = "externalURL")]
    pub external_url: &'a str,
    pub alerts: Vec<PayloadAlert<'a>>,
}

/// One alert of the payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadAlert<'a> {
    pub status: Status,
    pub labels: &'a Labels,
    pub annotations: &'a Annotations,
    /// RFC 3339, UTC with `Z`.
    pub starts_at: String,
    /// The end of a resolved alert; `0001-01-01T00:00:00Z` for a firing one, as Alertmanager sends.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    pub fingerprint: Fingerprint,
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl<'a> PayloadAlert<'a> {
    fn new(notified: &'a NotifiedAlert) -> Self {
        let alert = &notified.alert;
        let ends_at = match (notified.status, alert.ends_at) {
            (Status::Resolved, Some(end)) => rfc3339(end),
            _ => ZERO_TIME.to_owned(),
        };
        PayloadAlert {
            status: notified.status,
            labels: &alert.labels,
            annotations: &alert.annotations,
            starts_at: rfc3339(alert.starts_at),
            ends_at,
            generator_url: &alert.generator_url,
            fingerprint: notified.fingerprint,
        }
    }
}

/// The payload for a notification, keeping at most `max_alerts` of its alerts (`None` or 0: all); the ones left
/// out are added to the notification's own `truncated` count.
pub fn payload(notification: &Notification, max_alerts: Option<usize>) -> Payload<'_> {
    let keep = max_alerts
        .filter(|max| *max > 0)
        .unwrap_or(usize::MAX)
        .min(notification.alerts.len());
    Payload {
        version: "4",
        group_key: &notification.group_key,
        truncated_alerts: notification.truncated + (notification.alerts.len() - keep),
        status: notification.status,
        receiver: &notification.receiver,
        group_labels: &notification.group_labels,
        common_labels: &notification.common_labels,
        common_annotations: &notification.common_annotations,
        external_url: notification.external_url.as_deref().unwrap_or(""),
        alerts: notification.alerts[..keep]
            .iter()
            .map(PayloadAlert::new)
            .collect(),
    }
}

/// Lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"` with `secret` as the key.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> Result<String, SinkError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| SinkError::permanent("hmac_secret cannot be used as an HMAC-SHA256 key"))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// A parsed URL that may hold a token: never shown.
#[derive(Clone)]
struct SecretUrl(reqwest::Url);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The `webhook` integration built from a `webhook_configs[]` entry.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    url: Secret,
    /// The URL parsed once, so a send does not parse it again (`None` when it does not parse: each send then fails
    /// as it should).
    parsed: Option<SecretUrl>,
    method: Method,
    /// The body's template; Alertmanager's payload when `None`.
    body: Option<TemplateField>,
    templates: Arc<Templates>,
    hmac_secret: Option<Secret>,
    /// Everything redacted from kept answers and error reasons: the URL (and its token-like parts), the HMAC
    /// secret, and the `http_config`'s secrets (which the client adds).
    secrets: Vec<Secret>,
    send_resolved: bool,
    max_alerts: Option<usize>,
    destination: String,
    client: HttpClient,
    clock: Arc<dyn Clock>,
}

impl WebhookSink {
    /// The sink for `config`, sending with the shared `client` unless its `http_config` needs one of its own.
    pub fn new(config: &WebhookConfig, client: reqwest::Client) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self::with_http(config, HttpClient::build(&config.http, &client, clock))
    }

    /// The sink for `config`, sending with `client` (built from its `http_config`).
    pub fn with_http(config: &WebhookConfig, client: HttpClient) -> Self {
        let url = config.url.expose();
        let mut secrets = http::url_secrets(url);
        secrets.extend(config.http.secrets().into_iter().map(str::to_owned));
        if let Some(secret) = &config.hmac_secret {
            secrets.push(secret.expose().to_owned());
        }
        let method = match config.method {
            WebhookMethod::Post => Method::POST,
            WebhookMethod::Put => Method::PUT,
            WebhookMethod::Patch => Method::PATCH,
        };
        WebhookSink {
            url: config.url.clone(),
            parsed: reqwest::Url::parse(url).ok().map(SecretUrl),
            method,
            body: config.body.clone(),
            templates: Arc::new(Templates::new()),
            hmac_secret: config.hmac_secret.clone(),
            secrets: secrets.into_iter().map(Secret::new).collect(),
            send_resolved: config.send_resolved,
            max_alerts: config.max_alerts,
            destination: format!("webhook:{}", http::short_digest(url)),
            client,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for the signature's timestamp and for reading `Retry-After` dates.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Renders the `body` template with `templates` (the configuration's, where it was compiled).
    pub fn with_templates(mut self, templates: Arc<Templates>) -> Self {
        self.templates = templates;
        self
    }

    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(Secret::expose).collect()
    }

    /// The request body: the rendered template (over at most `max_alerts` alerts), or Alertmanager's payload.
    fn body(&self, notification: &Notification) -> Result<Vec<u8>, SinkError> {
        let Some(template) = &self.body else {
            return serde_json::to_vec(&payload(notification, self.max_alerts)).map_err(|error| {
                SinkError::permanent(format!("cannot encode the payload: {error}"))
            });
        };
        let limited;
        let notification = match self.max_alerts {
            Some(max) if max > 0 && max < notification.alerts.len() => {
                let mut kept = notification.clone();
                kept.truncated += kept.alerts.len() - max;
                kept.alerts.truncate(max);
                limited = kept;
                &limited
            }
            _ => notification,
        };
        self.templates
            .renderer(notification, "webhook")
            .render_strict(template)
            .map(String::into_bytes)
            .map_err(|reason| {
                SinkError::permanent(format!("the body cannot be rendered: {reason}"))
            })
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn integration(&self) -> &'static str {
        "webhook"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn uses_state(&self) -> bool {
        false
    }

    fn destination(&self) -> String {
        self.destination.clone()
    }

    async fn send(
        &self,
        notification: &Notification,
        _context: &Context,
    ) -> Result<Receipt, SinkError> {
        let secrets = self.secrets();
        let body = self.body(notification)?;
        let request = match &self.parsed {
            Some(SecretUrl(url)) => self.client.request(self.method.clone(), url.clone()),
            None => self.client.request(self.method.clone(), self.url.expose()),
        };
        let mut request = request.header(CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.hmac_secret {
            let timestamp = self.clock.now().timestamp();
            let signature = signature(secret.expose().as_bytes(), timestamp, &body)?;
            request = request
                .header(TIMESTAMP_HEADER, timestamp)
                .header(SIGNATURE_HEADER, format!("sha256={signature}"));
        }
        let response = self.client.send(request.body(body), &secrets).await?;
        let own = self.client.secrets();
        let secrets: Vec<&str> = secrets
            .into_iter()
            .chain(own.iter().map(String::as_str))
            .collect();
        http::classify(response, &secrets, self.clock.now()).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    use tokio::sync::mpsc;

    use super::*;
    use crate::alert::test_alert;
    use crate::clock::ManualClock;
    use crate::config::{Authorization, DeliveryOptions, HttpConfig, RetryPolicy};
    use crate::notification::Reason;
    use axum::http::HeaderValue;

    const TOKEN: &str = "s3cr3t-token";

    fn time(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn config(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: Secret::new(url),
            send_resolved: true,
            method: WebhookMethod::Post,
            body: None,
            http: HttpConfig::default(),
            hmac_secret: None,
            max_alerts: None,
            delivery: DeliveryOptions {
                retry: RetryPolicy {
                    initial_backoff: Duration::from_secs(1),
                    max_backoff: Duration::from_secs(300),
                    max_attempts: 10,
                    max_age: Duration::from_secs(3600),
                },
                rate_limit: None,
                timeout: Duration::from_secs(10),
            },
        }
    }

    fn notified(instance: &str, status: Status) -> NotifiedAlert {
        let mut alert = test_alert("DiskFull", &[("instance", instance), ("severity", "page")]);
        alert.starts_at = time("2026-11-21T09:00:00.5Z");
        if status == Status::Resolved {
            alert.ends_at = Some(time("2026-11-21T09:30:00Z"));
        }
        alert
            .annotations
            .insert("summary".into(), format!("{instance} disk full"));
        alert.generator_url = "http://prometheus:9090/graph".into();
        NotifiedAlert {
            fingerprint: alert.fingerprint(),
            status,
            alert,
        }
    }

    fn notification() -> Notification {
        Notification::new(
            "ops".into(),
            Reason::First,
            r#"{}:{alertname="DiskFull"}"#.into(),
            Labels::from([("alertname".to_string(), "DiskFull".to_string())]),
            vec![
                notified("db-1", Status::Firing),
                notified("db-2", Status::Resolved),
                notified("db-3", Status::Firing),
            ],
            None,
            Some("https://herald.example".into()),
        )
    }

    #[test]
    fn payload_is_alertmanagers_version_4() {
        let n = notification();
        let json = serde_json::to_value(payload(&n, None)).unwrap();
        assert_eq!(json["version"], "4");
        assert_eq!(json["groupKey"], r#"{}:{alertname="DiskFull"}"#);
        assert_eq!(json["truncatedAlerts"], 0);
        assert_eq!(json["status"], "firing");
        assert_eq!(json["receiver"], "ops");
        assert_eq!(json["groupLabels"]["alertname"], "DiskFull");
        assert_eq!(json["commonLabels"]["severity"], "page");
        assert_eq!(json["commonAnnotations"], serde_json::json!({}));
        assert_eq!(json["externalURL"], "https://herald.example");
        let first = &json["alerts"][0];
        assert_eq!(first["status"], "firing");
        assert_eq!(first["labels"]["instance"], "db-1");
        assert_eq!(first["annotations"]["summary"], "db-1 disk full");
        assert_eq!(first["startsAt"], "2026-11-21T09:00:00.500Z");
        assert_eq!(first["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(first["generatorURL"], "http://prometheus:9090/graph");
        let fingerprint = first["fingerprint"].as_str().unwrap();
        assert_eq!(fingerprint, n.alerts[0].fingerprint.to_string());
        assert!(fingerprint.len() == 16 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(json["alerts"][1]["status"], "resolved");
        assert_eq!(json["alerts"][1]["endsAt"], "2026-11-21T09:30:00Z");

        let mut bare = n.clone();
        bare.external_url = None;
        assert_eq!(
            serde_json::to_value(payload(&bare, None)).unwrap()["externalURL"],
            ""
        );
    }

    #[test]
    fn max_alerts_truncates_on_top_of_the_notification() {
        let mut n = notification();
        n.truncated = 4;
        let kept = payload(&n, Some(2));
        assert_eq!((kept.alerts.len(), kept.truncated_alerts), (2, 5));
        let all = payload(&n, Some(0));
        assert_eq!((all.alerts.len(), all.truncated_alerts), (3, 4));
        let more = payload(&n, Some(10));
        assert_eq!((more.alerts.len(), more.truncated_alerts), (3, 4));
    }

    #[test]
    fn payload_parses_back_with_herald_s_own_ingest() {
        let n = notification();
        let body = serde_json::to_vec(&payload(&n, None)).unwrap();
        let now = time("2026-11-21T10:00:00Z");
        let parsed =
            crate::ingest::alertmanager::parse(&body, now, &crate::ingest::test_support::limits())
                .unwrap();
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        assert_eq!(parsed.alerts.len(), n.alerts.len());
        for (back, sent) in parsed.alerts.iter().zip(&n.alerts) {
            assert_eq!(back.labels, sent.alert.labels);
            assert_eq!(back.annotations, sent.alert.annotations);
            assert_eq!(back.fingerprint(), sent.fingerprint);
            assert_eq!(back.status_at(now), sent.status);
            assert_eq!(back.starts_at, sent.alert.starts_at);
            assert_eq!(back.ends_at, sent.alert.ends_at);
            assert_eq!(back.generator_url, sent.alert.generator_url);
        }
    }

    #[test]
    fn destination_hashes_the_url() {
        let url = format!("https://hooks.example/{TOKEN}");
        let sink = WebhookSink::new(&config(&url), http::client().unwrap());
        let destination = sink.destination();
        assert!(destination.starts_with("webhook:"), "{destination}");
        assert_eq!(destination.len(), "webhook:".len() + 16);
        assert!(!destination.contains(TOKEN));
        assert!(!format!("{sink:?}").contains(TOKEN));
        let other = WebhookSink::new(
            &config("https://hooks.example/other"),
            http::client().unwrap(),
        );
        assert_ne!(other.destination(), destination);
        assert_eq!(sink.integration(), "webhook");
        assert!(sink.send_resolved());
    }

    /// One request as the test server saw it.
    struct Seen {
        method: axum::http::Method,
        path: String,
        headers: HeaderMap,
        body: Bytes,
    }

    /// A loopback server answering every request with `status`, `headers` and `body`; returns the webhook URL (with
    /// a token in its path) and what the server saw.
    async fn serve(
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
    ) -> (String, mpsc::UnboundedReceiver<Seen>) {
        let (seen, requests) = mpsc::unbounded_channel();
        let app = Router::new().fallback(
            move |method: axum::http::Method,
                  uri: Uri,
                  request_headers: HeaderMap,
                  request_body: Bytes| {
                let seen = seen.clone();
                async move {
                    let _ = seen.send(Seen {
                        method,
                        path: uri.path().to_owned(),
                        headers: request_headers,
                        body: request_body,
                    });
                    let mut response =
                        (StatusCode::from_u16(status).unwrap(), body).into_response();
                    for (name, value) in headers {
                        response
                            .headers_mut()
                            .insert(*name, HeaderValue::from_static(value));
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}/hooks/{TOKEN}"), requests)
    }

    #[tokio::test]
    async fn posts_the_payload_with_authorization_and_signature() {
        let (url, mut requests) = serve(200, &[], "ok").await;
        let mut config = config(&url);
        config.http.authorization = Some(Authorization {
            value: Secret::new("Bearer t0ken-abc"),
            secret: Secret::new("t0ken-abc"),
        });
        config.hmac_secret = Some(Secret::new("hm4c-key"));
        config.max_alerts = Some(2);
        let clock = Arc::new(ManualClock::new(time("2026-11-21T10:00:00Z")));
        let sink = WebhookSink::new(&config, http::client().unwrap()).with_clock(clock);
        let n = notification();

        let receipt = sink.send(&n, &Context::default()).await.unwrap();
        let kept = receipt.response.unwrap();
        assert_eq!((kept.status, kept.body.as_str()), (Some(200), "ok"));

        let seen = requests.recv().await.unwrap();
        assert_eq!(seen.path, format!("/hooks/{TOKEN}"));
        let header = |name: &str| seen.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("authorization"), "Bearer t0ken-abc");
        assert_eq!(header("user-agent"), http::USER_AGENT);
        assert_eq!(
            seen.body,
            serde_json::to_vec(&payload(&n, Some(2))).unwrap()
        );
        let json: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(json["truncatedAlerts"], 1);

        let timestamp = header("x-herald-timestamp");
        assert_eq!(
            timestamp,
            time("2026-11-21T10:00:00Z").timestamp().to_string()
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"hm4c-key").unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&seen.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(header("x-herald-signature"), expected);
    }

    #[tokio::test]
    async fn unsigned_requests_carry_no_signature_headers() {
        let (url, mut requests) = serve(204, &[], "").await;
        let sink = WebhookSink::new(&config(&url), http::client().unwrap());
        sink.send(&notification(), &Context::default())
            .await
            .unwrap();
        let seen = requests.recv().await.unwrap();
        assert!(seen.headers.get("x-herald-signature").is_none());
        assert!(seen.headers.get("x-herald-timestamp").is_none());
        assert!(seen.headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn rate_limited_with_retry_after() {
        let (url, _requests) = serve(429, &[("retry-after", "2")], "slow down").await;
        let sink = WebhookSink::new(&config(&url), http::client().unwrap());
        let error = sink
            .send(&notification(), &Context::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, SinkError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(2)),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn server_error_is_retryable() {
        let (url, _requests) = serve(500, &[], "boom").await;
        let sink = WebhookSink::new(&config(&url), http::client().unwrap());
        let error = sink
            .send(&notification(), &Context::default())
            .await
            .unwrap_err();
        assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
        assert_eq!(error.to_string(), "HTTP 500 Internal Server Error: boom");
    }

    #[tokio::test]
    async fn bad_request_is_permanent_with_the_body_redacted() {
        let body = "invalid payload for /hooks/s3cr3t-token (Bearer t0ken-abc)";
        let (url, _requests) = serve(400, &[], body).await;
        let mut config = config(&url);
        config.http.authorization = Some(Authorization {
            value: Secret::new("Bearer t0ken-abc"),
            secret: Secret::new("t0ken-abc"),
        });
        let sink = WebhookSink::new(&config, http::client().unwrap());
        let error = sink
            .send(&notification(), &Context::default())
            .await
            .unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
        let kept = error.response().unwrap();
        assert_eq!(kept.status, Some(400));
        assert_eq!(kept.body, "invalid payload for <redacted> (<redacted>)");
        assert!(
            error
                .to_string()
                .starts_with("HTTP 400 Bad Request: invalid payload")
        );
        assert!(!format!("{error:?}").contains(TOKEN));
        assert!(!format!("{error:?}").contains("t0ken-abc"));
    }

    #[tokio::test]
    async fn connection_refused_is_retryable_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let sink = WebhookSink::new(
            &config(&format!("http://{address}/hooks/{TOKEN}")),
            http::client().unwrap(),
        );
        let error = sink
            .send(&notification(), &Context::default())
            .await
            .unwrap_err();
        assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("/hooks"), "{text}");
    }

    #[tokio::test]
    async fn invalid_url_is_permanent_without_the_url() {
        let sink = WebhookSink::new(
            &config(&format!("ftp://host/{TOKEN}")),
            http::client().unwrap(),
        );
        let error = sink
            .send(&notification(), &Context::default())
            .await
            .unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
        assert!(!error.to_string().contains(TOKEN), "{error}");
    }

    /// A DingTalk robot's text message, as a user would write it.
    const DINGTALK: &str = r#"{"msgtype":"text","text":{"content":{{ ("[" ~ (status | upper) ~ "] " ~ (alerts | map(attribute="annotations.summary") | join("; "))) | tojson }}},"at":{"isAtAll":false}}"#;

    fn templated(url: &str, source: &str) -> (WebhookConfig, Arc<Templates>) {
        let mut templates = Templates::new();
        templates.add("hooks.body", source).unwrap();
        let mut config = config(url);
        config.body = Some(TemplateField {
            custom: Some("hooks.body".into()),
            default: "default.webhook_body",
        });
        (config, Arc::new(templates))
    }

    #[tokio::test]
    async fn a_body_template_is_sent_with_its_method_and_headers() {
        let (url, mut requests) = serve(200, &[], r#"{"errcode":0,"errmsg":"ok"}"#).await;
        let (mut config, templates) = templated(&url, DINGTALK);
        config.method = WebhookMethod::Put;
        config.max_alerts = Some(2);
        config.http.headers = vec![crate::config::HttpHeader {
            name: "Content-Type".into(),
            values: vec!["application/json; charset=utf-8".into()],
            secrets: vec![],
        }];
        config.hmac_secret = Some(Secret::new("hm4c-key"));
        let sink = WebhookSink::new(&config, http::client().unwrap()).with_templates(templates);
        sink.send(&notification(), &Context::default())
            .await
            .unwrap();
        let seen = requests.recv().await.unwrap();
        assert_eq!(seen.method, axum::http::Method::PUT);
        assert_eq!(
            seen.headers
                .get_all("content-type")
                .iter()
                .collect::<Vec<_>>(),
            ["application/json; charset=utf-8"]
        );
        let json: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(json["msgtype"], "text");
        assert_eq!(
            json["text"]["content"], "[FIRING] db-1 disk full; db-2 disk full",
            "max_alerts applies to the template's alerts too"
        );
        let timestamp: i64 = seen.headers["x-herald-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected = signature(b"hm4c-key", timestamp, &seen.body).unwrap();
        assert_eq!(
            seen.headers["x-herald-signature"],
            format!("sha256={expected}").as_str()
        );
    }

    #[tokio::test]
    async fn a_body_that_fails_to_render_is_permanent_and_nothing_is_sent() {
        let (url, mut requests) = serve(200, &[], "ok").await;
        let (config, templates) = templated(&url, "{{ alerts | no_such_filter }}");
        let sink = WebhookSink::new(&config, http::client().unwrap()).with_templates(templates);
        let error = sink
            .send(&notification(), &Context::default())
            .await
            .unwrap_err();
        assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("the body cannot be rendered: template hooks.body failed"),
            "{error}"
        );
        assert!(requests.try_recv().is_err());
    }
}
