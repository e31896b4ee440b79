//! The Slack sink against a loopback stub: what it sends in each mode, the bot lifecycle's requests, and that
//! secrets never show.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::alert::{Labels, Status, test_alert};
use crate::clock::ManualClock;
use crate::config::{DeliveryOptions, RetryPolicy};
use crate::notification::{NotifiedAlert, Reason};
use crate::template::TemplateField;
use sha2::{Digest, Sha256};

const TOKEN: &str = "xoxb-t0ken-s3cr3t";

/// One request the stub saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// A loopback server answering scripted `(status, body)` pairs in order, then `{"ok":true,…}` (or `ok` for paths
/// outside `/api/`).
#[derive(Clone, Default)]
struct Stub {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl Stub {
    async fn start() -> (Stub, String) {
        let stub = Stub::default();
        let shared = stub.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let stub = shared.clone();
            async move { stub.answer(uri, headers, body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (stub, format!("http://{address}"))
    }

    fn answer(&self, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::response::Response {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let count = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(Seen {
                path: uri.path().to_owned(),
                headers,
                body: body.clone(),
            });
            seen.len()
        };
        if let Some((status, text)) = self.script.lock().unwrap().pop_front() {
            return (StatusCode::from_u16(status).unwrap(), text).into_response();
        }
        if !uri.path().starts_with("/api/") {
            return "ok".into_response();
        }
        let ts = body["ts"]
            .as_str()
            .map_or_else(|| format!("1700000000.{count:06}"), str::to_owned);
        axum::Json(json!({"ok": true, "channel": "C0ALERTS", "ts": ts})).into_response()
    }

    fn script(&self, status: u16, body: &str) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, body.to_owned()));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn config(mode: SlackMode, thread_replies: bool) -> SlackConfig {
    SlackConfig {
        mode,
        channel: Some("#alerts".into()),
        username: Some("herald".into()),
        icon_emoji: Some(":rotating_light:".into()),
        icon_url: None,
        thread_replies,
        send_resolved: true,
        title: TemplateField::default_only("default.title"),
        title_link: TemplateField::default_only("default.title_link"),
        text: TemplateField::default_only("default.text"),
        http: Default::default(),
        delivery: DeliveryOptions {
            retry: RetryPolicy {
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                max_attempts: 5,
                max_age: Duration::from_secs(3600),
            },
            rate_limit: None,
            timeout: Duration::from_secs(10),
        },
    }
}

fn sink(config: &SlackConfig) -> SlackSink {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
        "2026-11-21T10:00:00Z".parse::<DateTime<Utc>>().unwrap(),
    ));
    SlackSink::new(
        config,
        Arc::new(Templates::new()),
        http::client().unwrap(),
        clock,
    )
}

fn bot(base: &str, thread_replies: bool) -> SlackSink {
    sink(&config(
        SlackMode::Bot {
            token: Secret::new(TOKEN),
            api_url: format!("{base}/api/"),
        },
        thread_replies,
    ))
}

fn alert(instance: &str, status: Status) -> NotifiedAlert {
    let mut alert = test_alert(
        "DiskFull",
        &[("instance", instance), ("severity", "warning")],
    );
    alert.generator_url = "http://prometheus/graph".into();
    NotifiedAlert {
        fingerprint: alert.fingerprint(),
        status,
        alert,
    }
}

fn notification(reason: Reason, alerts: Vec<NotifiedAlert>) -> Notification {
    Notification::new(
        "ops".into(),
        reason,
        "{}:{alertname=\"DiskFull\"}".into(),
        Labels::from([("alertname".to_string(), "DiskFull".to_string())]),
        alerts,
        None,
        None,
    )
}

fn context(receipt: &Receipt) -> Context {
    Context {
        state: receipt.state.clone(),
    }
}

#[test]
fn destinations_hash_the_secret() {
    let url = "https://hooks.slack.com/services/T000/B000/s3cr3tpath";
    let hook = sink(&config(
        SlackMode::Webhook {
            url: Secret::new(url),
        },
        false,
    ));
    let expected = hex::encode(Sha256::digest(url.as_bytes()));
    assert_eq!(hook.destination(), format!("slack:{}", &expected[..16]));
    assert_eq!(hook.integration(), "slack");
    assert!(hook.send_resolved());
    let bot = bot("https://slack.example", false);
    let expected = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    assert_eq!(
        bot.destination(),
        format!("slack-bot:{}:#alerts", &expected[..16])
    );
    let shown = format!(
        "{hook:?} {bot:?} {} {}",
        hook.destination(),
        bot.destination()
    );
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

#[tokio::test]
async fn webhook_posts_a_new_message_with_the_overrides_each_time() {
    let (stub, base) = Stub::start().await;
    let url = format!("{base}/services/T000/B000/s3cr3tpath");
    let hook = sink(&config(
        SlackMode::Webhook {
            url: Secret::new(&url),
        },
        true,
    ));
    let firing = notification(Reason::First, vec![alert("db-1", Status::Firing)]);
    let receipt = hook.send(&firing, &Context::default()).await.unwrap();
    assert_eq!(receipt.state, None, "webhooks keep no state");
    let resolved = notification(Reason::AllResolved, vec![alert("db-1", Status::Resolved)]);
    hook.send(&resolved, &Context::default()).await.unwrap();
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    let body = &seen[0].body;
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(body["text"], "[FIRING:1] DiskFull");
    assert_eq!(body["channel"], "#alerts");
    assert_eq!(body["username"], "herald");
    assert_eq!(body["icon_emoji"], ":rotating_light:");
    assert!(body.get("icon_url").is_none());
    assert_eq!(body["attachments"][0]["color"], message::WARNING);
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "*<http://prometheus/graph|[FIRING:1] DiskFull>*"
    );
    assert_eq!(seen[1].body["attachments"][0]["color"], message::RESOLVED);
    assert_eq!(seen[1].body["text"], "[RESOLVED] DiskFull");

    stub.script(404, "channel_not_found for /services/T000/B000/s3cr3tpath");
    let error = hook.send(&firing, &Context::default()).await.unwrap_err();
    assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("s3cr3tpath"), "{shown}");
    assert!(shown.contains("channel_not_found"), "{shown}");
}

#[tokio::test]
async fn bot_posts_then_updates_and_replies_in_the_thread() {
    let (stub, base) = Stub::start().await;
    let sink = bot(&base, true);
    let first = notification(Reason::First, vec![alert("a", Status::Firing)]);
    let posted = sink.send(&first, &Context::default()).await.unwrap();
    let state = posted.state.clone().unwrap();
    assert_eq!(state["channel"], "C0ALERTS");
    assert_eq!(state["ts"], "1700000000.000001");

    let more = notification(
        Reason::NewAlerts,
        vec![alert("a", Status::Firing), alert("b", Status::Firing)],
    );
    let updated = sink.send(&more, &context(&posted)).await.unwrap();
    assert_eq!(updated.state.as_ref().unwrap()["ts"], "1700000000.000001");
    let resolved = notification(
        Reason::AllResolved,
        vec![alert("a", Status::Resolved), alert("b", Status::Resolved)],
    );
    let done = sink.send(&resolved, &context(&updated)).await.unwrap();
    assert_eq!(done.state.as_ref().unwrap()["status"], "resolved");

    let seen = stub.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/chat.postMessage",
            "/api/chat.update",
            "/api/chat.postMessage",
            "/api/chat.update",
            "/api/chat.postMessage"
        ]
    );
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    assert_eq!(
        seen[0].headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(seen[0].body["channel"], "#alerts");
    assert!(seen[0].body.get("thread_ts").is_none());
    assert_eq!(seen[1].body["channel"], "C0ALERTS");
    assert_eq!(seen[1].body["ts"], "1700000000.000001");
    assert_eq!(seen[1].body["text"], "[FIRING:2] DiskFull");
    assert_eq!(seen[2].body["thread_ts"], "1700000000.000001");
    assert_eq!(seen[2].body["channel"], "C0ALERTS");
    assert!(
        seen[2].body["text"]
            .as_str()
            .unwrap()
            .starts_with("🔥 *1 newly firing:* *DiskFull* `instance=b`"),
        "{}",
        seen[2].body["text"]
    );
    assert_eq!(seen[3].body["attachments"][0]["color"], message::RESOLVED);
    assert!(
        seen[4].body["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ *All resolved.*")
    );

    // Firing again after the resolve: a new message.
    sink.send(&first, &context(&done)).await.unwrap();
    let last = stub.seen().pop().unwrap();
    assert_eq!(last.path, "/api/chat.postMessage");
    assert!(last.body.get("thread_ts").is_none());
}

#[tokio::test]
async fn a_deleted_message_is_replaced_and_a_failed_reply_keeps_the_state() {
    let (stub, base) = Stub::start().await;
    let sink = bot(&base, true);
    let first = notification(Reason::First, vec![alert("a", Status::Firing)]);
    let posted = sink.send(&first, &Context::default()).await.unwrap();
    let repeat = notification(Reason::Repeat, vec![alert("a", Status::Firing)]);

    stub.script(200, r#"{"ok":false,"error":"message_not_found"}"#);
    let replaced = sink.send(&repeat, &context(&posted)).await.unwrap();
    assert_eq!(replaced.state.as_ref().unwrap()["ts"], "1700000000.000003");
    let seen = stub.seen();
    assert_eq!(seen[1].path, "/api/chat.update");
    assert_eq!(seen[2].path, "/api/chat.postMessage");
    assert!(
        seen[2].body.get("thread_ts").is_none(),
        "a new top-level message"
    );
    assert_eq!(seen.len(), 3, "no reply under a brand-new message");

    // Updated, but the reply failed: an error, and the stored state (unchanged) still names the same message.
    stub.script(
        200,
        r#"{"ok":true,"channel":"C0ALERTS","ts":"1700000000.000003"}"#,
    );
    stub.script(200, r#"{"ok":false,"error":"internal_error"}"#);
    let error = sink.send(&repeat, &context(&replaced)).await.unwrap_err();
    assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
    assert!(error.to_string().contains("thread reply failed"), "{error}");
    sink.send(&repeat, &context(&replaced)).await.unwrap();
    let seen = stub.seen();
    let tail: Vec<(&str, Option<&str>)> = seen[3..]
        .iter()
        .map(|s| {
            (
                s.path.as_str(),
                s.body["ts"].as_str().or(s.body["thread_ts"].as_str()),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            ("/api/chat.update", Some("1700000000.000003")),
            ("/api/chat.postMessage", Some("1700000000.000003")),
            ("/api/chat.update", Some("1700000000.000003")),
            ("/api/chat.postMessage", Some("1700000000.000003")),
        ],
        "the retry edits the same message again and replies in its thread"
    );
}

#[tokio::test]
async fn bot_errors_are_classified_and_never_show_the_token() {
    let (stub, base) = Stub::start().await;
    let sink = bot(&base, false);
    let first = notification(Reason::First, vec![alert("a", Status::Firing)]);
    stub.script(
        200,
        &format!(r#"{{"ok":false,"error":"channel_not_found","echo":"{TOKEN}"}}"#),
    );
    let error = sink.send(&first, &Context::default()).await.unwrap_err();
    assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("Slack chat.postMessage: channel_not_found"),
        "{error}"
    );
    assert!(!format!("{error:?}").contains(TOKEN));

    stub.script(429, r#"{"ok":false,"error":"ratelimited"}"#);
    let error = sink.send(&first, &Context::default()).await.unwrap_err();
    assert!(
        matches!(error, SinkError::RateLimited { retry_after: Some(wait), .. } if wait == API_RETRY_AFTER),
        "{error:?}"
    );
    stub.script(503, "service_unavailable");
    let error = sink.send(&first, &Context::default()).await.unwrap_err();
    assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
}
