//! Scenario 1: the real Prometheus uses herald as its Alertmanager (README's snippet). A rule on a constant
//! expression fires at its first evaluation; the alert reaches herald through Prometheus's notifier (API v2), and
//! herald notifies a webhook receiver, posts a Slack message (bot mode) and creates a Jira issue (Cloud), against the
//! emulators. Then the rule is made false and Prometheus reloaded: Prometheus sends the resolve, and herald notifies
//! the webhook, updates the Slack message and transitions the issue to Done.

use std::sync::Arc;

use herald::clock::SystemClock;
use serde_json::{Value, json};

use crate::herald::{E2E_ROUTE, Herald};
use crate::jira_emulator::{CLOUD_API_TOKEN, CLOUD_EMAIL, JiraEmulator, JiraMode, Status};
use crate::peers::Prometheus;
use crate::procs::{eventually, fingerprint, write};
use crate::receiver::{Recorded, ScriptedReceiver};
use crate::slack_emulator::SlackEmulator;
use crate::snippets::{PROMETHEUS_ALERTING, for_herald};

/// The alert's labels: the rule's name and its `labels` (`vector(1)` has none of its own).
const LABELS: [(&str, &str); 3] = [
    ("alertname", "HeraldE2EConstant"),
    ("severity", "critical"),
    ("team", "e2e"),
];

/// The rule file; `EXPR` is replaced by the rule's expression. Only the expression changes between the firing and
/// the resolving version, so Prometheus keeps the alert's state across the reload and sends it as resolved.
const RULES: &str = r#"groups:
  - name: herald-e2e
    interval: 1s
    rules:
      - alert: HeraldE2EConstant
        expr: EXPR
        labels:
          severity: critical
          team: e2e
        annotations:
          summary: constant alert from the real Prometheus
"#;

/// Always one sample, so the alert fires at the first evaluation (no `for`).
const FIRING_EXPR: &str = "vector(1)";
/// Never a sample.
const RESOLVED_EXPR: &str = "vector(1) == 0";

/// The Slack bot token the emulator accepts.
const SLACK_TOKEN: &str = "xoxb-herald-e2e-t0ken";
/// The Slack channel's id in the emulator.
const SLACK_CHANNEL: &str = "C0ALERTS";

/// Where herald sends this scenario's notifications, all integrations of one receiver `e2e`: a scripted webhook
/// receiver, the Slack emulator in bot mode (one message per group, posted then updated), and the Jira Cloud emulator
/// (one issue per group, created then transitioned to Done).
struct Destinations {
    hook: ScriptedReceiver,
    slack: SlackEmulator,
    jira: JiraEmulator,
}

impl Destinations {
    async fn start() -> Destinations {
        let slack = SlackEmulator::start(Arc::new(SystemClock)).await;
        slack
            .channel("alerts", SLACK_CHANNEL, true)
            .token(SLACK_TOKEN);
        Destinations {
            hook: ScriptedReceiver::start(Arc::new(SystemClock)).await,
            slack,
            jira: JiraEmulator::start(JiraMode::Cloud, Arc::new(SystemClock)).await,
        }
    }

    /// herald's `receivers:` section: one receiver, `e2e`, with an integration per destination.
    fn receivers(&self) -> String {
        format!(
            "receivers:
  - name: e2e
    webhook_configs:
      - url: {hook}
        send_resolved: true
    slack_configs:
      - api_url: {slack}
        token: {SLACK_TOKEN}
        channel: \"#alerts\"
    jira_configs:
      - api_type: cloud
        api_url: {jira}
        user: {CLOUD_EMAIL}
        api_token: {CLOUD_API_TOKEN}
        project: OPS
        issue_type: Incident
        priority_map: {{critical: Highest, warning: High}}
        summary: \"{{{{ group_labels.alertname }}}}: {{{{ firing | length }}}} firing\"
        description: \"{{% for a in alerts %}}{{{{ a.annotations.summary }}}} {{{{ a.generator_url }}}}{{% endfor %}}\"
",
            hook = self.hook.url(),
            slack = self.slack.api_url(),
            jira = self.jira.url(),
        )
    }

    /// The firing notification arrived everywhere, once: the webhook's (returned), a Slack message, a Jira issue.
    async fn assert_firing(&self, generator_url: impl Fn(&Recorded) -> String) -> Recorded {
        let requests = self.hook.wait_for(1).await;
        assert_eq!(requests.len(), 1, "one notification: {requests:#?}");
        let firing = requests[0].clone();
        assert_eq!(firing.body["status"], "firing", "{:#}", firing.body);

        let messages = eventually("the Slack message", || async {
            let messages = self.slack.messages("alerts");
            (!messages.is_empty()).then_some(messages)
        })
        .await;
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert_eq!(messages[0].text, "[FIRING:1] HeraldE2EConstant");
        assert_eq!(messages[0].token, SLACK_TOKEN);

        self.jira
            .wait_until("the Jira issue is created", |jira| {
                !jira.issues().is_empty()
            })
            .await;
        let issues = self.jira.issues();
        assert_eq!(issues.len(), 1, "{issues:#?}");
        let issue = &issues[0];
        assert_eq!(issue.project, "OPS");
        assert_eq!(issue.issue_type, "Incident");
        assert_eq!(issue.summary, "HeraldE2EConstant: 1 firing");
        assert_eq!(issue.priority, "Highest", "from severity=critical");
        assert_eq!(issue.status, Status::ToDo);
        assert_eq!(
            issue.description_text(),
            format!(
                "constant alert from the real Prometheus {}",
                generator_url(&firing)
            )
        );
        firing
    }

    /// The resolve arrived everywhere, once: the webhook's (returned), the Slack message updated, the issue Done.
    async fn assert_resolved(&self) -> Recorded {
        let requests = self.hook.wait_for(2).await;
        assert_eq!(requests.len(), 2, "firing, then resolved: {requests:#?}");
        let resolved = requests[1].clone();
        assert_eq!(resolved.body["status"], "resolved", "{:#}", resolved.body);

        let message = eventually("the Slack message to say resolved", || async {
            let messages = self.slack.messages("alerts");
            messages
                .iter()
                .find(|message| message.text.starts_with("[RESOLVED]"))
                .cloned()
        })
        .await;
        assert_eq!(message.text, "[RESOLVED] HeraldE2EConstant");
        assert_eq!(message.updates(), 1, "the message posted, then updated");
        assert_eq!(self.slack.messages("alerts").len(), 1, "no new message");

        self.jira
            .wait_until("the Jira issue is resolved", |jira| {
                jira.issues()
                    .iter()
                    .all(|issue| issue.status == Status::Done)
            })
            .await;
        let issues = self.jira.issues();
        assert_eq!(issues.len(), 1, "no new issue: {issues:#?}");
        let transitions: Vec<&str> = issues[0]
            .history
            .iter()
            .map(|change| change.via.as_str())
            .collect();
        assert_eq!(transitions, ["Done"]);
        resolved
    }
}

fn labels_json() -> Value {
    LABELS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn prometheus_config(dir: &std::path::Path, herald: &Herald) -> String {
    format!(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n{}",
        dir.join("rules.yml").display(),
        for_herald(PROMETHEUS_ALERTING, &herald.addr)
    )
}

#[tokio::test]
async fn prometheus_alert_fires_and_resolves_through_herald() {
    let dir = tempfile::tempdir().unwrap();
    let destinations = Destinations::start().await;
    let herald = Herald::start(
        dir.path(),
        &format!("{E2E_ROUTE}{}", destinations.receivers()),
    )
    .await;
    write(dir.path(), "rules.yml", &RULES.replace("EXPR", FIRING_EXPR));
    write(
        dir.path(),
        "prometheus.yml",
        &prometheus_config(dir.path(), &herald),
    );
    let mut prometheus = Prometheus::start(dir.path()).await;
    let expected_fingerprint = fingerprint(&LABELS);

    // Prometheus takes herald as its Alertmanager, on the v2 API (once its discovery has run).
    let expected = json!([{"url": format!("http://{}/api/v2/alerts", herald.addr)}]);
    eventually("Prometheus to list herald as its Alertmanager", || async {
        let alertmanagers = prometheus.api("/api/v1/alertmanagers").await;
        (alertmanagers["activeAlertmanagers"] == expected).then_some(())
    })
    .await;

    // Fires: notified onward with Prometheus's labels, annotations and link, under Prometheus's fingerprint.
    let firing = destinations
        .assert_firing(|firing| {
            firing.body["alerts"][0]["generatorURL"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .await;
    let body = &firing.body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "e2e");
    assert_eq!(
        body["groupLabels"],
        json!({"alertname": "HeraldE2EConstant"})
    );
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body:#}");
    let alert = &alerts[0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"], labels_json());
    assert_eq!(
        alert["annotations"],
        json!({"summary": "constant alert from the real Prometheus"})
    );
    assert_eq!(alert["fingerprint"], expected_fingerprint.as_str());
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with(&prometheus.url("/graph?g0.expr=")),
        "Prometheus's link to the rule's expression: {generator}"
    );
    let started = alert["startsAt"].as_str().unwrap().to_owned();

    // herald's own view of the alert agrees, and so does Prometheus's.
    let stored = herald.alerts("").await;
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0]["fingerprint"], expected_fingerprint.as_str());
    assert_eq!(stored[0]["status"]["state"], "active");
    assert_eq!(stored[0]["labels"], labels_json());
    assert_eq!(stored[0]["generatorURL"], generator);
    let rules_view = prometheus.api("/api/v1/alerts").await;
    assert_eq!(rules_view["alerts"][0]["state"], "firing", "{rules_view:#}");

    // The rule is made false and Prometheus reloaded: it sends the alert as resolved, herald notifies the resolve.
    write(
        dir.path(),
        "rules.yml",
        &RULES.replace("EXPR", RESOLVED_EXPR),
    );
    let reload_sent = chrono::Utc::now();
    prometheus.reload().await;
    let reload_done = chrono::Utc::now();
    let resolved = destinations.assert_resolved().await;
    let body = &resolved.body;
    assert_eq!(body["groupKey"], firing.body["groupKey"], "the same group");
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{body:#}");
    let alert = &alerts[0];
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["fingerprint"], expected_fingerprint.as_str());
    assert_eq!(alert["labels"], labels_json());
    assert_eq!(alert["startsAt"], started.as_str(), "the same start");
    let ends: chrono::DateTime<chrono::Utc> = alert["endsAt"].as_str().unwrap().parse().unwrap();
    let starts: chrono::DateTime<chrono::Utc> = started.parse().unwrap();
    assert!(ends >= starts, "ends {ends} after it started {starts}");
    // The end is Prometheus's first evaluation after the reload, not the `endsAt` of its last firing send (at least
    // 3 resend delays later), which herald would have used had it timed the alert out itself.
    let window = chrono::Duration::seconds(2);
    assert!(
        ends >= reload_sent - window && ends <= reload_done + window,
        "the resolve's end {ends} is Prometheus's evaluation after the reload ({reload_sent} to {reload_done})"
    );

    eventually("herald to list no active alert", || async {
        herald.alerts("").await.is_empty().then_some(())
    })
    .await;
    let with_resolved = herald.alerts("?resolved=true").await;
    assert_eq!(with_resolved.len(), 1, "{with_resolved:#?}");
    assert_eq!(
        with_resolved[0]["fingerprint"],
        expected_fingerprint.as_str()
    );

    // The resolve came from Prometheus: herald received the alert resolved, and Prometheus counted no failed send
    // to herald. (Its notifier's counters restart with the reload; alerts evaluated before its discovery found
    // herald are counted as dropped, not as errors.)
    let received_resolved = [("source", "prometheus"), ("status", "resolved")];
    assert!(
        herald
            .metric("herald_alerts_received_total", &received_resolved)
            .await
            >= 1.0
    );
    assert!(
        prometheus
            .metric("prometheus_notifications_sent_total")
            .await
            >= 1.0
    );
    assert_eq!(
        prometheus
            .metric("prometheus_notifications_errors_total")
            .await,
        0.0,
        "Prometheus failed to send to herald:\n{}",
        prometheus.log()
    );
    herald.stop();
}
