//! The PagerDuty sink end to end against a loopback server: what it renders from the config's templates and what
//! it POSTs for a firing and a resolved group.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;
use tokio::sync::mpsc;

use super::*;
use crate::alert::{Labels, test_alert};
use crate::clock::SystemClock;
use crate::notification::{NotifiedAlert, Reason};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn sink(extra: &str, url: &str) -> PagerDutySink {
    let yaml = format!(
        "server: {{external_url: 'https://herald.example'}}\nroute: {{receiver: pager}}\nreceivers:\n  - name: pager\n    \
         pagerduty_configs:\n      - routing_key: {KEY}\n        url: '{url}'\n{extra}"
    );
    let settings = crate::config::load_str(&yaml, "h.yaml")
        .unwrap_or_else(|errors| panic!("{errors}"))
        .settings;
    PagerDutySink::new(
        &settings.receivers[0].pagerduty_configs[0],
        Arc::clone(&settings.templates),
        http::client().unwrap(),
        Arc::new(SystemClock),
    )
}

fn notification(statuses: &[Status]) -> Notification {
    let alerts = statuses
        .iter()
        .enumerate()
        .map(|(i, status)| {
            let mut alert = test_alert(
                "DiskFull",
                &[
                    ("instance", &format!("db-{i}")),
                    ("severity", "page"),
                    ("job", "node"),
                ],
            );
            alert
                .annotations
                .insert("summary".into(), format!("db-{i} disk full"));
            NotifiedAlert {
                fingerprint: alert.fingerprint(),
                status: *status,
                alert,
            }
        })
        .collect();
    Notification::new(
        "pager".into(),
        Reason::First,
        r#"{}:{alertname="DiskFull"}"#.into(),
        Labels::from([("alertname".to_owned(), "DiskFull".to_owned())]),
        alerts,
        None,
        Some("https://herald.example".into()),
    )
}

#[test]
fn defaults_render_a_useful_trigger() {
    let sink = sink("", "https://events.example/v2/enqueue");
    let n = notification(&[Status::Firing, Status::Resolved]);
    let rendered = sink.render(&n);
    assert_eq!(rendered.summary, "[FIRING:1] DiskFull");
    assert_eq!(rendered.severity, "critical", "from severity=page");
    assert_eq!(
        rendered.source, "node",
        "the common job label (instances differ)"
    );
    assert_eq!(rendered.client, "herald");
    assert_eq!(rendered.client_url, "https://herald.example");
    assert_eq!(
        rendered.details["firing"],
        "DiskFull instance=db-0 job=node severity=page: db-0 disk full"
    );
    assert_eq!(
        rendered.details["resolved"],
        "DiskFull instance=db-1 job=node severity=page: db-1 disk full"
    );
    assert_eq!(rendered.details["num_firing"], "1");
    assert_eq!(rendered.details["num_resolved"], "1");
    assert_eq!((rendered.class.as_str(), rendered.group.as_str()), ("", ""));
    assert!(sink.destination().starts_with("pagerduty:"));
    assert!(!sink.destination().contains(KEY));
    assert!(!format!("{sink:?}").contains(KEY));
}

#[test]
fn templates_fill_every_field() {
    let sink = sink(
        "        description: '{{ common_labels.alertname }}: {{ firing | length }} firing'\n        \
         severity: '{{ common_labels.severity }}'\n        source: '{{ common_labels.job }}'\n        \
         class: disk\n        component: '{{ common_labels.job }}'\n        group: prod\n        \
         details: {runbook: 'https://runbooks.example/{{ common_labels.alertname }}'}\n        \
         links: [{href: '{{ external_url }}/#/alerts', text: herald}]\n",
        "https://events.example/v2/enqueue",
    );
    let rendered = sink.render(&notification(&[Status::Firing, Status::Firing]));
    assert_eq!(rendered.summary, "DiskFull: 2 firing");
    assert_eq!(rendered.severity, "critical");
    assert_eq!(rendered.source, "node");
    assert_eq!(
        (
            rendered.class.as_str(),
            rendered.component.as_str(),
            rendered.group.as_str()
        ),
        ("disk", "node", "prod")
    );
    assert_eq!(
        rendered.details["runbook"],
        "https://runbooks.example/DiskFull"
    );
    assert_eq!(rendered.details.len(), 5);
    assert_eq!(
        rendered.links,
        [(
            "https://herald.example/#/alerts".to_owned(),
            "herald".to_owned()
        )]
    );
}

/// A loopback server answering 202 like PagerDuty; returns its URL and the requests it saw.
async fn serve() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Value)>) {
    let (seen, requests) = mpsc::unbounded_channel();
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let seen = seen.clone();
        async move {
            let event: Value = serde_json::from_slice(&body).unwrap();
            let answer = serde_json::json!({
                "status": "success", "message": "Event processed", "dedup_key": event["dedup_key"],
            });
            let _ = seen.send((headers, event));
            (StatusCode::ACCEPTED, answer.to_string()).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/v2/enqueue"), requests)
}

#[tokio::test]
async fn a_firing_group_triggers_and_a_resolved_one_resolves_under_one_dedup_key() {
    let (url, mut requests) = serve().await;
    let sink = sink("", &url);
    let firing = notification(&[Status::Firing]);
    let receipt = sink.send(&firing, &Context::default()).await.unwrap();
    assert_eq!(receipt.response.unwrap().status, Some(202));
    let (headers, trigger) = requests.recv().await.unwrap();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(trigger["routing_key"], KEY);
    assert_eq!(trigger["event_action"], "trigger");
    let key = event::dedup_key(&firing.group_key);
    assert_eq!(trigger["dedup_key"], key.as_str());
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert!(trigger["payload"]["timestamp"].is_string());

    let mut resolved = notification(&[Status::Resolved]);
    resolved.reason = Reason::AllResolved;
    sink.send(&resolved, &Context::default()).await.unwrap();
    let (_, resolve) = requests.recv().await.unwrap();
    assert_eq!(
        resolve,
        serde_json::json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": key})
    );
}
