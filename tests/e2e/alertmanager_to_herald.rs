//! Scenario 2: the real Alertmanager notifies herald through a `webhook_configs` receiver (README's snippet). Alerts
//! posted to Alertmanager reach herald in Alertmanager's groups, flow on to herald's receiver, and their resolves
//! follow, one alert of a group first, then the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use herald::clock::SystemClock;
use serde_json::{Value, json};

use crate::herald::{Herald, statuses, webhook_config};
use crate::peers::Alertmanager;
use crate::procs::{eventually, fingerprint};
use crate::receiver::{Recorded, ScriptedReceiver};
use crate::snippets::{ALERTMANAGER_RECEIVER, for_herald};

const DISK_1: [(&str, &str); 3] = [
    ("alertname", "DiskFull"),
    ("instance", "db-1"),
    ("severity", "critical"),
];
const DISK_2: [(&str, &str); 3] = [
    ("alertname", "DiskFull"),
    ("instance", "db-2"),
    ("severity", "warning"),
];
const CPU: [(&str, &str); 3] = [
    ("alertname", "CPUHigh"),
    ("instance", "web-1"),
    ("severity", "warning"),
];

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An alert as Prometheus would post it to Alertmanager's v2 API; `ends_at` resolves it.
fn alert(labels: &[(&str, &str)], starts_at: &str, ends_at: Option<&str>) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    let mut alert = json!({
        "labels": labels,
        "annotations": {"summary": format!("{} on {}", labels["alertname"].as_str().unwrap(),
            labels["instance"].as_str().unwrap())},
        "startsAt": starts_at,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = json!(ends_at);
    }
    alert
}

/// A `GET /api/v2/alerts/groups` answer as group labels -> the sorted fingerprints of the group's alerts.
fn partition(groups: &Value) -> BTreeMap<String, Vec<String>> {
    groups
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            let mut fingerprints: Vec<String> = group["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|alert| alert["fingerprint"].as_str().unwrap().to_owned())
                .collect();
            fingerprints.sort();
            (group["labels"].to_string(), fingerprints)
        })
        .collect()
}

fn by_alertname<'a>(requests: &'a [Recorded], alertname: &str) -> Vec<&'a Recorded> {
    requests
        .iter()
        .filter(|request| request.body["groupLabels"]["alertname"] == alertname)
        .collect()
}

#[tokio::test]
async fn alertmanager_groups_and_resolves_reach_herald() {
    let dir = tempfile::tempdir().unwrap();
    let hook = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let herald = Herald::start(dir.path(), &webhook_config(&hook.url())).await;
    let alertmanager = Alertmanager::start(
        dir.path(),
        &format!(
            "route:\n  receiver: herald\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  \
             repeat_interval: 1h\n{}",
            for_herald(ALERTMANAGER_RECEIVER, &herald.addr)
        ),
    )
    .await;
    let (disk_1, disk_2, cpu) = (
        fingerprint(&DISK_1),
        fingerprint(&DISK_2),
        fingerprint(&CPU),
    );

    // Started now, not earlier than group_wait ago: Alertmanager flushes a group at once for an alert older than
    // group_wait, and under load it may then send the first disk alone before it takes in the second.
    let started = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let firing = json!([
        alert(&DISK_1, &started, None),
        alert(&DISK_2, &started, None),
        alert(&CPU, &started, None)
    ]);
    alertmanager.post_alerts(&firing.to_string()).await;

    // Alertmanager sends herald a webhook per group (at least: it sends again when a send outlasts its
    // group_interval, so the count is not pinned); herald notifies once per group.
    let requests = hook.wait_for(2).await;
    let route = [("route", "/webhook/alertmanager"), ("code", "200")];
    herald
        .wait_metric("herald_http_requests_total", &route, 2.0)
        .await;
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let disk = by_alertname(&requests, "DiskFull");
    let cpus = by_alertname(&requests, "CPUHigh");
    assert_eq!((disk.len(), cpus.len()), (1, 1), "{requests:#?}");
    assert_eq!(
        statuses(disk[0]),
        BTreeMap::from([
            (disk_1.clone(), "firing".to_owned()),
            (disk_2.clone(), "firing".to_owned())
        ])
    );
    assert_eq!(
        statuses(cpus[0]),
        BTreeMap::from([(cpu.clone(), "firing".to_owned())])
    );
    assert_eq!(disk[0].body["status"], "firing");
    assert_eq!(
        disk[0].body["commonLabels"],
        json!({"alertname": "DiskFull"})
    );

    // Herald groups these alerts as Alertmanager does, under the same fingerprints, and kept what Alertmanager
    // passed on: start times, annotations, links.
    let in_alertmanager = partition(&alertmanager.get_json("/api/v2/alerts/groups").await);
    let in_herald = partition(&herald.get_json("/api/v2/alerts/groups").await);
    assert_eq!(in_herald, in_alertmanager);
    assert_eq!(
        in_herald.values().cloned().collect::<Vec<_>>(),
        vec![vec![cpu.clone()], {
            let mut disk = vec![disk_1.clone(), disk_2.clone()];
            disk.sort();
            disk
        }]
    );
    let posted_start: chrono::DateTime<Utc> = started.parse().unwrap();
    for stored in herald.alerts("").await {
        let stored_start: chrono::DateTime<Utc> =
            stored["startsAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(stored_start, posted_start, "{stored:#}");
        assert_eq!(
            stored["generatorURL"],
            "http://prometheus.example:9090/graph?g0.expr=up"
        );
        let name = stored["labels"]["alertname"].as_str().unwrap();
        let instance = stored["labels"]["instance"].as_str().unwrap();
        assert_eq!(
            stored["annotations"]["summary"],
            format!("{name} on {instance}")
        );
    }

    // One alert of a group resolves: Alertmanager sends the group with it resolved, herald notifies the change.
    alertmanager
        .post_alerts(&json!([alert(&DISK_1, &started, Some(&now()))]).to_string())
        .await;
    let requests = hook.wait_for(3).await;
    let change = &requests[2];
    assert_eq!(change.body["groupLabels"]["alertname"], "DiskFull");
    assert_eq!(change.body["status"], "firing", "one is still firing");
    assert_eq!(
        statuses(change),
        BTreeMap::from([
            (disk_1.clone(), "resolved".to_owned()),
            (disk_2.clone(), "firing".to_owned())
        ])
    );

    // The rest resolve: both groups' resolves follow.
    alertmanager
        .post_alerts(
            &json!([
                alert(&DISK_2, &started, Some(&now())),
                alert(&CPU, &started, Some(&now()))
            ])
            .to_string(),
        )
        .await;
    let requests = hook.wait_for(5).await;
    assert_eq!(requests.len(), 5, "{requests:#?}");
    let resolves = &requests[3..];
    for resolve in resolves {
        assert_eq!(resolve.body["status"], "resolved", "{:#}", resolve.body);
    }
    // As in Alertmanager, a resolved alert leaves its group once its resolve was notified: db-1 is not repeated.
    assert_eq!(
        statuses(by_alertname(resolves, "DiskFull")[0]),
        BTreeMap::from([(disk_2, "resolved".to_owned())])
    );
    assert_eq!(
        statuses(by_alertname(resolves, "CPUHigh")[0]),
        BTreeMap::from([(cpu, "resolved".to_owned())])
    );
    eventually("herald to list no active alert", || async {
        herald.alerts("").await.is_empty().then_some(())
    })
    .await;
    // Alertmanager sent herald each change. The counter moves when the request's task resumes after its commit,
    // which may be after the notifications it caused have left, so it is waited for.
    herald
        .wait_metric("herald_http_requests_total", &route, 5.0)
        .await;
    herald.stop();
}
