//! Property-based fuzzing of the three ingest parsers (v2 API, Alertmanager webhook, Grafana webhook): whatever
//! arrives, a parser answers (never panics), accounts for every alert it was sent, and accepts only alerts that
//! hold herald's invariants.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Parsed, alertmanager, grafana, prometheus, test_support};

fn now() -> DateTime<Utc> {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

/// Times as senders write them, good and bad.
fn time() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!("0001-01-01T00:00:00Z")),
        Just(json!("2026-11-21T09:00:00Z")),
        Just(json!("2026-11-21T10:04:00.123456789Z")),
        Just(json!("2026-11-21T11:00:00+02:00")),
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!("not a time")),
        Just(json!(1_700_000_000)),
        Just(json!("")),
    ]
}

/// Label names and values, including empty, reserved, odd and long ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("alertname".to_owned()),
        Just("__name__".to_owned()),
        "[a-z_]{1,12}",
        "\\PC{0,16}",
        Just("x".repeat(300)),
    ]
}

fn labels() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(text(), text(), 0..6).prop_map(|labels| json!(labels))
}

fn alert() -> impl Strategy<Value = Value> {
    (
        labels(),
        labels(),
        time(),
        time(),
        prop_oneof![Just("firing"), Just("resolved"), Just("pending")],
    )
        .prop_map(|(labels, annotations, starts_at, ends_at, status)| {
            json!({
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": starts_at,
                "endsAt": ends_at,
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "f",
            })
        })
}

/// What every accepted alert holds, and that every alert sent is accounted for.
fn check(parsed: Result<Parsed, super::BodyError>, sent: usize) -> Result<(), TestCaseError> {
    let Ok(parsed) = parsed else {
        // Refused whole (shape, version, count): fine, as long as it did not panic.
        return Ok(());
    };
    prop_assert_eq!(parsed.alerts.len() + parsed.rejected.len(), sent);
    for alert in &parsed.alerts {
        prop_assert!(!alert.labels.is_empty(), "an alert without labels");
        prop_assert!(alert.labels.keys().all(|name| !name.is_empty()));
        prop_assert!(alert.labels.values().all(|value| !value.is_empty()));
        if let Some(ends_at) = alert.ends_at {
            prop_assert!(
                ends_at >= alert.starts_at,
                "ends {} before it starts {}",
                ends_at,
                alert.starts_at
            );
        }
    }
    Ok(())
}

proptest! {
    // A fixed seed: the same cases on every run, so the suite stays deterministic (change it to explore others).
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_2026),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_a_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let limits = test_support::limits();
        let _ = prometheus::parse(&body, now(), &limits);
        let _ = alertmanager::parse(&body, now(), &limits);
        let _ = grafana::parse(&body, now(), &limits);
    }

    #[test]
    fn every_parser_accounts_for_its_alerts_and_accepts_only_sound_ones(
        alerts in prop::collection::vec(alert(), 0..8),
        status in prop_oneof![Just("firing"), Just("resolved")],
    ) {
        let limits = test_support::limits();
        let sent = alerts.len();
        let v2 = Value::Array(alerts.clone()).to_string();
        check(prometheus::parse(v2.as_bytes(), now(), &limits), sent)?;
        let webhook = json!({
            "version": "4", "groupKey": "k", "truncatedAlerts": 0, "status": status, "receiver": "herald",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "alerts": alerts,
        });
        check(alertmanager::parse(webhook.to_string().as_bytes(), now(), &limits), sent)?;
        let mut grafana_body = webhook;
        grafana_body["version"] = json!("1");
        grafana_body["orgId"] = json!(1);
        grafana_body["title"] = json!("t");
        grafana_body["message"] = json!("m");
        grafana_body["state"] = json!("alerting");
        check(grafana::parse(grafana_body.to_string().as_bytes(), now(), &limits), sent)?;
    }

    /// A valid body cut short or with one byte changed is answered, never a panic.
    #[test]
    fn mutated_valid_bodies_never_panic_a_parser(
        alerts in prop::collection::vec(alert(), 1..4),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let limits = test_support::limits();
        let mut body = Value::Array(alerts).to_string().into_bytes();
        let at = flip.index(body.len());
        body[at] = byte;
        let cut = cut.index(body.len() + 1);
        let body = &body[..cut];
        let _ = prometheus::parse(body, now(), &limits);
        let _ = alertmanager::parse(body, now(), &limits);
        let _ = grafana::parse(body, now(), &limits);
    }
}
