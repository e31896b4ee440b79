//! The Jira sink against a small scripted server: request shapes, the stored state, comments riding on edits and
//! transitions, and the wait after a create that got no answer. The full lifecycle runs against the stateful emulator in `tests/it/jira.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fields::tests::{config, notification};
use super::*;
use crate::alert::Status;
use crate::clock::ManualClock;
use crate::config::JiraApi;
use crate::sinks::http;
use sha2::{Digest, Sha256};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// How the server answers a request: a status and JSON body, or never.
type Script = Arc<dyn Fn(&Method, &str) -> Option<(u16, Value)> + Send + Sync>;

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(script: Script) -> Server {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let record = Arc::clone(&record);
                let script = Arc::clone(&script);
                async move {
                    let path = uri.path().to_owned();
                    record.lock().unwrap().push(Seen {
                        method: method.clone(),
                        path: path.clone(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    match script(&method, &path) {
                        Some((status, body)) => answer(status, body),
                        None => std::future::pending().await,
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            url: format!("http://{address}"),
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    if body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(body)).into_response()
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-11-21T12:00:00Z".parse().unwrap()))
}

fn sink(api: JiraApi, url: &str, clock: &Arc<ManualClock>) -> JiraSink {
    let mut config = config(api);
    config.api_url = url.to_owned();
    let clock: Arc<dyn Clock> = clock.clone();
    JiraSink::new(
        &config,
        Arc::new(Templates::new()),
        http::client().unwrap(),
        clock,
    )
}

fn no_issues() -> Value {
    json!({"issues": [], "isLast": true})
}

#[test]
fn destination_names_the_site_by_hash() {
    let clock = clock();
    let sink = sink(JiraApi::Cloud, "https://example.atlassian.net", &clock);
    let destination = sink.destination();
    let digest = hex::encode(Sha256::digest(b"https://example.atlassian.net"));
    assert_eq!(destination, format!("jira:{}", &digest[..16]));
    assert_eq!(sink.integration(), "jira");
    assert!(sink.send_resolved());
    assert!(!format!("{sink:?}").contains("t0ken-secret"));
}

#[tokio::test]
async fn a_first_firing_notification_searches_then_creates_with_adf_and_keeps_the_key() {
    let script: Script = Arc::new(|method, path| match (method.as_str(), path) {
        ("POST", "/rest/api/3/search/jql") => Some((200, no_issues())),
        ("POST", "/rest/api/3/issue") => {
            Some((201, json!({"id": "10000", "key": "OPS-1", "self": "x"})))
        }
        _ => Some((404, json!({"errorMessages": ["no"], "errors": {}}))),
    });
    let server = Server::start(script).await;
    let clock = clock();
    let sink = sink(JiraApi::Cloud, &server.url, &clock);
    let n = notification("critical", Status::Firing);

    let receipt = sink.send(&n, &Context::default()).await.unwrap();
    let response = receipt.response.unwrap();
    assert_eq!(response.status, Some(201));
    assert_eq!(response.body, "created OPS-1");
    assert_eq!(
        receipt.state,
        Some(json!({"project": "OPS", "key": "OPS-1", "id": "10000"}))
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let label = fields::group_label(&n.group_key);
    assert_eq!(
        seen[0].body["jql"],
        format!(r#"project = "OPS" AND labels = "{label}" ORDER BY created DESC"#)
    );
    let create = &seen[1].body["fields"];
    assert_eq!(create["labels"], json!(["alerts", label]));
    assert_eq!(create["description"]["type"], "doc");
    assert_eq!(create["priority"], json!({"name": "Highest"}));
    let authorization = seen[1].headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("Basic "), "{authorization}");
    assert_eq!(seen[1].headers["content-type"], "application/json");
    assert!(sink.unanswered_since(&label).is_none());
}

#[tokio::test]
async fn a_stored_open_issue_is_read_edited_and_commented_once() {
    let script: Script = Arc::new(|method, path| match (method.as_str(), path) {
        ("GET", "/rest/api/2/issue/OPS-7") => Some((
            200,
            json!({"id": "10006", "key": "OPS-7", "fields": {
                "status": {"name": "To Do", "statusCategory": {"key": "new"}}}}),
        )),
        ("PUT", "/rest/api/2/issue/OPS-7") => Some((204, Value::Null)),
        _ => Some((500, json!({}))),
    });
    let server = Server::start(script).await;
    let clock = clock();
    let mut sink = sink(JiraApi::DataCenter, &server.url, &clock);
    sink.config.comment_on_update = true;
    let mut n = notification("warning", Status::Firing);
    n.reason = crate::notification::Reason::Repeat;
    let stored = json!({"project": "OPS", "key": "OPS-7"});

    let receipt = sink
        .send(
            &n,
            &Context {
                state: Some(stored),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        receipt.response.unwrap().body,
        "updated OPS-7; commented on OPS-7"
    );
    let state = receipt.state.unwrap();
    assert_eq!(state["key"], "OPS-7");
    let hash = state["comment_hash"].as_str().unwrap().to_owned();

    let again = sink
        .send(&n, &Context { state: Some(state) })
        .await
        .unwrap();
    assert_eq!(
        again.response.unwrap().body,
        "updated OPS-7; comment unchanged"
    );
    assert_eq!(again.state.unwrap()["comment_hash"], hash);

    let seen = server.seen();
    let paths: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /rest/api/2/issue/OPS-7",
            "PUT /rest/api/2/issue/OPS-7",
            "GET /rest/api/2/issue/OPS-7",
            "PUT /rest/api/2/issue/OPS-7",
        ]
    );
    assert!(
        seen[1].body["fields"]["description"].is_string(),
        "wiki text"
    );
    let comment = &seen[1].body["update"]["comment"][0]["add"]["body"];
    assert!(
        comment.as_str().unwrap().starts_with("FIRING (repeat)"),
        "{comment}"
    );
    assert!(
        seen[3].body.get("update").is_none(),
        "the same comment is not added again"
    );
}

#[tokio::test]
async fn after_a_create_without_an_answer_the_retry_waits_for_search_before_creating_again() {
    let creates = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&creates);
    let script: Script = Arc::new(move |method, path| match (method.as_str(), path) {
        ("POST", "/rest/api/3/search/jql") => Some((200, no_issues())),
        ("POST", "/rest/api/3/issue") => {
            let mut count = counter.lock().unwrap();
            *count += 1;
            // The first create never answers.
            (*count > 1).then(|| (201, json!({"id": "10001", "key": "OPS-2"})))
        }
        _ => Some((500, json!({}))),
    });
    let server = Server::start(script).await;
    let clock = clock();
    let sink = sink(JiraApi::Cloud, &server.url, &clock);
    let n = notification("critical", Status::Firing);
    let label = fields::group_label(&n.group_key);

    let lost = tokio::time::timeout(
        Duration::from_millis(300),
        sink.send(&n, &Context::default()),
    )
    .await;
    assert!(lost.is_err(), "the first create hangs");
    assert_eq!(sink.unanswered_since(&label), Some(clock.now()));

    clock.advance(Duration::from_secs(10));
    let error = sink.send(&n, &Context::default()).await.unwrap_err();
    assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
    assert!(error.to_string().contains("got no answer"), "{error}");

    clock.advance(LOST_CREATE_SETTLE);
    let receipt = sink.send(&n, &Context::default()).await.unwrap();
    assert_eq!(receipt.state.unwrap()["key"], "OPS-2");
    assert_eq!(sink.unanswered_since(&label), None);
    assert_eq!(*creates.lock().unwrap(), 2);
    let searches = server
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/search/jql"))
        .count();
    assert_eq!(searches, 3, "every attempt searched first");
}

#[tokio::test]
async fn a_resolve_whose_transition_is_not_offered_fails_permanently_naming_the_offered_ones() {
    let script: Script = Arc::new(|method, path| match (method.as_str(), path) {
        ("POST", "/rest/api/3/search/jql") => Some((
            200,
            json!({"issues": [{"id": "1", "key": "OPS-1", "fields": {
                "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}}}]}),
        )),
        ("PUT", "/rest/api/3/issue/OPS-1") => Some((204, Value::Null)),
        ("GET", "/rest/api/3/issue/OPS-1/transitions") => Some((
            200,
            json!({"transitions": [{"id": "11", "name": "Stop", "to": {"name": "To Do",
                "statusCategory": {"key": "new"}}}]}),
        )),
        _ => Some((500, json!({}))),
    });
    let server = Server::start(script).await;
    let clock = clock();
    let sink = sink(JiraApi::Cloud, &server.url, &clock);
    let n = notification("critical", Status::Resolved);
    let error = sink.send(&n, &Context::default()).await.unwrap_err();
    assert!(matches!(error, SinkError::Permanent { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "cannot transition OPS-1: no transition named \"Done\" (resolve_transition) is offered; the issue \
         offers: \"Stop\" (to To Do)"
    );
}

#[tokio::test]
async fn a_resolved_notification_without_an_issue_changes_nothing() {
    let script: Script = Arc::new(|method, path| match (method.as_str(), path) {
        ("POST", "/rest/api/3/search/jql") => Some((200, no_issues())),
        _ => Some((500, json!({}))),
    });
    let server = Server::start(script).await;
    let clock = clock();
    let sink = sink(JiraApi::Cloud, &server.url, &clock);
    let n = notification("critical", Status::Resolved);
    let receipt = sink.send(&n, &Context::default()).await.unwrap();
    assert_eq!(receipt.state, None, "the stored state stays");
    assert_eq!(receipt.response.unwrap().body, "no open issue to resolve");
}
