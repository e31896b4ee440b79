//! Scenario 3: the same label sets posted to the real Alertmanager and to herald get the same fingerprints in both
//! `GET /api/v2/alerts` answers (and the ones Prometheus's algorithm gives), including label sets written in another
//! order, with an empty value (which both drop), with characters that need escaping, and pairs that only the
//! separators between names and values tell apart.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::herald::Herald;
use crate::peers::Alertmanager;
use crate::procs::{eventually, fingerprint};

const LONG: &str = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\
                    abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789";

/// Label sets, each in the order it is written into the JSON sent.
const LABEL_SETS: &[&[(&str, &str)]] = &[
    &[
        ("alertname", "FingerprintA"),
        ("instance", "db-1:9100"),
        ("job", "node"),
    ],
    &[
        ("zeta", "1"),
        ("alertname", "FingerprintB"),
        ("_private", "2"),
        ("mid", "3"),
        ("Alpha", "4"),
    ],
    &[
        ("alertname", "FingerprintC"),
        ("text", "ümlaut ✓ 日本語 🚨"),
    ],
    &[("alertname", "FingerprintD"), ("empty", ""), ("kept", "x")],
    &[
        ("alertname", "FingerprintE"),
        ("quote", "say \"hi\""),
        ("backslash", "a\\b"),
        ("newline", "line1\nline2"),
        ("braces", "{a=\"b\",c}"),
        ("long", LONG),
    ],
    &[("alertname", "FingerprintF"), ("a", "bc")],
    &[("alertname", "FingerprintF"), ("ab", "c")],
];

/// A v2 alert with the labels written in the order given, firing for as long as the test runs.
fn alert_json(labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{}:{}", json!(name), json!(value)))
        .collect();
    format!(
        r#"{{"labels":{{{}}},"endsAt":"2100-01-01T00:00:00Z"}}"#,
        labels.join(",")
    )
}

/// The label set without empty values, sorted, as a comparable key.
fn key(labels: &[(&str, &str)]) -> String {
    let map: BTreeMap<&str, &str> = labels
        .iter()
        .copied()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    serde_json::to_string(&map).unwrap()
}

/// A `GET /api/v2/alerts` answer as labels -> fingerprint.
fn fingerprints(alerts: &Value) -> BTreeMap<String, String> {
    alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(alert["labels"].clone()).unwrap();
            (
                serde_json::to_string(&labels).unwrap(),
                alert["fingerprint"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fingerprints_match_alertmanagers() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(
        dir.path(),
        "route:\n  receiver: quiet\nreceivers:\n  - name: quiet\n",
    )
    .await;
    let alertmanager = Alertmanager::start(
        dir.path(),
        "route:\n  receiver: quiet\nreceivers:\n  - name: quiet\n",
    )
    .await;
    let body = format!(
        "[{}]",
        LABEL_SETS
            .iter()
            .map(|labels| alert_json(labels))
            .collect::<Vec<_>>()
            .join(",")
    );
    alertmanager.post_alerts(&body).await;
    let (status, answer) = herald.post_json("/api/v2/alerts", &body).await;
    assert_eq!(status, 200, "{answer}");

    let expected: BTreeMap<String, String> = LABEL_SETS
        .iter()
        .map(|labels| (key(labels), fingerprint(labels)))
        .collect();
    assert_eq!(expected.len(), LABEL_SETS.len(), "distinct label sets");
    let in_alertmanager = eventually("Alertmanager to list every alert", || async {
        let listed = fingerprints(&alertmanager.get_json("/api/v2/alerts").await);
        (listed.len() == LABEL_SETS.len()).then_some(listed)
    })
    .await;
    let in_herald = fingerprints(&herald.get_json("/api/v2/alerts").await);
    assert_eq!(
        in_alertmanager, expected,
        "Alertmanager: Prometheus's algorithm"
    );
    assert_eq!(
        in_herald, in_alertmanager,
        "herald agrees with Alertmanager"
    );
    herald.stop();
}
