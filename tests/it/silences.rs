//! The v2 silence API as amtool uses it: create, list (shape checked field by field), get, update in place, replace,
//! expire, filters, errors, the metric, and silences surviving a restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::clock::ManualClock;
use serde_json::{Value, json};

use crate::harness::{Herald, metric, settings};

const T0: &str = "2026-11-21T12:00:00Z";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

async fn start(db: &std::path::Path, clock: &ManualClock) -> Herald {
    Herald::start_with_clock(settings(db, "silences"), Arc::new(clock.clone())).await
}

fn body(matchers: Value, starts_at: &str, ends_at: &str) -> Value {
    json!({
        "matchers": matchers,
        "startsAt": starts_at,
        "endsAt": ends_at,
        "createdBy": "ops@example.com",
        "comment": "database maintenance",
    })
}

fn down() -> Value {
    json!([
        {"name": "alertname", "value": "InstanceDown", "isRegex": false},
        {"name": "env", "value": "dev|test", "isRegex": true, "isEqual": false},
    ])
}

async fn post(herald: &Herald, silence: &Value) -> (u16, Value) {
    let response = herald
        .post_json("/api/v2/silences", silence.to_string())
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn create(herald: &Herald, silence: &Value) -> String {
    let (status, answer) = post(herald, silence).await;
    assert_eq!(status, 200, "{answer}");
    let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["silenceID"]);
    answer["silenceID"].as_str().unwrap().to_string()
}

async fn list(herald: &Herald, query: &str) -> Vec<Value> {
    let response = herald.get(&format!("/api/v2/silences{query}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn get(herald: &Herald, id: &str) -> (u16, Value) {
    let response = herald.get(&format!("/api/v2/silence/{id}")).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn delete(herald: &Herald, id: &str) -> (u16, String) {
    let response = herald
        .client
        .delete(herald.url(&format!("/api/v2/silence/{id}")))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn ids(silences: &[Value]) -> Vec<&str> {
    silences
        .iter()
        .map(|silence| silence["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn silences_are_created_listed_updated_replaced_and_expired_like_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(T0));
    let herald = start(&dir.path().join("s.db"), &clock).await;
    assert!(list(&herald, "").await.is_empty());

    // A start in the past is moved to now, as amtool's `silence add` relies on.
    let id = create(
        &herald,
        &body(down(), "2026-11-21T11:00:00Z", "2026-11-21T14:00:00Z"),
    )
    .await;
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(id, uuid.hyphenated().to_string());

    let listed = list(&herald, "").await;
    assert_eq!(listed.len(), 1);
    let silence = listed[0].as_object().unwrap();
    let mut keys: Vec<&str> = silence.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "comment",
            "createdBy",
            "endsAt",
            "id",
            "matchers",
            "startsAt",
            "status",
            "updatedAt"
        ]
    );
    assert_eq!(silence["id"], json!(id));
    assert_eq!(silence["status"], json!({"state": "active"}));
    assert_eq!(silence["updatedAt"], json!("2026-11-21T12:00:00.000Z"));
    assert_eq!(
        silence["matchers"],
        json!([
            {"name": "alertname", "value": "InstanceDown", "isRegex": false, "isEqual": true},
            {"name": "env", "value": "dev|test", "isRegex": true, "isEqual": false},
        ])
    );
    assert_eq!(silence["startsAt"], json!("2026-11-21T12:00:00.000Z"));
    assert_eq!(silence["endsAt"], json!("2026-11-21T14:00:00.000Z"));
    assert_eq!(silence["createdBy"], json!("ops@example.com"));
    assert_eq!(silence["comment"], json!("database maintenance"));
    assert_eq!(get(&herald, &id).await, (200, listed[0].clone()));

    // amtool's `silence update`: read it, change the end and comment, post it back with its id: same silence.
    clock.advance(Duration::from_secs(60));
    let mut changed = listed[0].clone();
    changed["endsAt"] = json!("2026-11-21T15:00:00.000Z");
    changed["comment"] = json!("takes longer");
    assert_eq!(create(&herald, &changed).await, id);
    let (_, updated) = get(&herald, &id).await;
    assert_eq!(updated["endsAt"], json!("2026-11-21T15:00:00.000Z"));
    assert_eq!(updated["comment"], json!("takes longer"));
    assert_eq!(updated["startsAt"], json!("2026-11-21T12:00:00.000Z"));
    assert_eq!(updated["updatedAt"], json!("2026-11-21T12:01:00.000Z"));
    assert_eq!(list(&herald, "").await.len(), 1);

    // Changing the matchers of an active silence expires it and creates a new one.
    let mut rematched = updated.clone();
    rematched["matchers"] =
        json!([{"name": "alertname", "value": "InstanceDown", "isRegex": false}]);
    let replacement = create(&herald, &rematched).await;
    assert_ne!(replacement, id);
    let (_, old) = get(&herald, &id).await;
    assert_eq!(old["status"]["state"], json!("expired"));
    assert_eq!(old["endsAt"], json!("2026-11-21T12:01:00.000Z"));
    let (_, new) = get(&herald, &replacement).await;
    assert_eq!(new["status"]["state"], json!("active"));
    assert_eq!(new["startsAt"], json!("2026-11-21T12:01:00.000Z"));
    assert_eq!(new["endsAt"], json!("2026-11-21T15:00:00.000Z"));

    // A pending one, and Alertmanager's order: active, pending, expired.
    let pending = create(
        &herald,
        &body(down(), "2026-11-21T13:00:00Z", "2026-11-21T16:00:00Z"),
    )
    .await;
    let listed = list(&herald, "").await;
    assert_eq!(ids(&listed), [replacement.as_str(), &pending, &id]);
    assert_eq!(listed[1]["status"]["state"], json!("pending"));
    assert_eq!(listed[1]["startsAt"], json!("2026-11-21T13:00:00.000Z"));

    // Filters select silences that have an equal matcher.
    let filtered = list(&herald, "?filter=env!~%22dev|test%22").await;
    assert_eq!(ids(&filtered), [pending.as_str(), &id]);
    let filtered = list(
        &herald,
        "?filter=alertname%3D%22InstanceDown%22&filter=env!~%22dev|test%22",
    )
    .await;
    assert_eq!(ids(&filtered), [pending.as_str(), &id]);
    assert!(
        list(&herald, "?filter=alertname%3D~%22InstanceDown%22")
            .await
            .is_empty()
    );

    let text = herald.metrics().await;
    for (state, count) in [("active", 1.0), ("pending", 1.0), ("expired", 1.0)] {
        assert_eq!(
            metric(&text, "herald_silences", &[("state", state)]),
            count,
            "{state}"
        );
    }

    // Time moves on: the pending one starts.
    clock.set(at("2026-11-21T13:00:00Z"));
    let (_, now_active) = get(&herald, &pending).await;
    assert_eq!(now_active["status"]["state"], json!("active"));

    // Expiring: 200 with an empty body, then expired from now on; a second time is a conflict.
    assert_eq!(delete(&herald, &pending).await, (200, String::new()));
    let (_, expired) = get(&herald, &pending).await;
    assert_eq!(expired["status"]["state"], json!("expired"));
    assert_eq!(expired["endsAt"], json!("2026-11-21T13:00:00.000Z"));
    let (status, answer) = delete(&herald, &pending).await;
    assert_eq!(status, 409);
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["error"],
        json!(format!("silence {pending} already expired"))
    );

    // Posting with the id of an expired silence creates a new one and leaves the expired one as it was.
    let mut revived = expired.clone();
    revived["endsAt"] = json!("2026-11-21T18:00:00Z");
    let revived_id = create(&herald, &revived).await;
    assert_ne!(revived_id, pending);
    assert_eq!(get(&herald, &pending).await.1, expired);

    let text = herald.metrics().await;
    assert_eq!(
        metric(&text, "herald_silences", &[("state", "expired")]),
        2.0
    );
    herald.stop().await;
}

#[tokio::test]
async fn unknown_silences_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(T0));
    let herald = start(&dir.path().join("s.db"), &clock).await;
    let unknown = "0b9bd7a6-9d3a-4f6e-8f0e-3c1b2a4d5e6f";
    assert_eq!(get(&herald, unknown).await.0, 404);
    assert_eq!(get(&herald, "not-a-uuid").await.0, 404);
    let (status, answer) = delete(&herald, unknown).await;
    assert_eq!(status, 404);
    assert!(answer.contains("not found"), "{answer}");

    // amtool's `silence import` posts with the old id and retries without one on 404.
    let mut silence = body(down(), T0, "2026-11-21T14:00:00Z");
    silence["id"] = json!(unknown);
    let (status, answer) = post(&herald, &silence).await;
    assert_eq!(status, 404);
    assert_eq!(
        answer["error"],
        json!(format!("silence {unknown} not found"))
    );
    assert!(list(&herald, "").await.is_empty());
    herald.stop().await;
}

#[tokio::test]
async fn invalid_silences_and_queries_get_a_clear_400_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(T0));
    let herald = start(&dir.path().join("s.db"), &clock).await;
    let end = "2026-11-21T14:00:00Z";
    let without = |field: &str| {
        let mut silence = body(down(), T0, end);
        silence.as_object_mut().unwrap().remove(field);
        silence
    };
    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (
            body(json!([]), T0, end),
            "at least one matcher required",
            None,
        ),
        (
            body(
                json!([{"name": "job", "value": "", "isRegex": false},
                       {"name": "env", "value": ".*", "isRegex": true}]),
                T0,
                end,
            ),
            "at least one matcher must not match the empty string",
            None,
        ),
        (
            body(down(), end, end),
            "start time must be before end time",
            None,
        ),
        (
            body(down(), "2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z"),
            "end time can't be in the past",
            None,
        ),
        (without("createdBy"), "createdBy is required", None),
        (without("comment"), "comment is required", None),
        (without("endsAt"), "missing field `endsAt`", None),
        (without("matchers"), "missing field `matchers`", None),
        (
            body(
                json!([{"name": "job", "value": "(", "isRegex": true}]),
                T0,
                end,
            ),
            "invalid regex \"(\"",
            Some("matchers[0]"),
        ),
        (
            body(json!([{"name": "job", "value": "api"}]), T0, end),
            "missing field `isRegex`",
            Some("matchers[0]"),
        ),
        (
            body(down(), "yesterday", end),
            "input contains invalid characters",
            Some("startsAt"),
        ),
    ];
    for (silence, message, field) in cases {
        let (status, answer) = post(&herald, &silence).await;
        assert_eq!(status, 400, "{silence}: {answer}");
        // Alertmanager's shape for this endpoint: a bare JSON string, which amtool shows as it is.
        let error = answer
            .as_str()
            .unwrap_or_else(|| panic!("a JSON string: {answer}"));
        assert!(error.contains(message), "{message:?} in {answer}");
        if let Some(field) = field {
            assert!(error.contains(field), "{field:?} in {answer}");
        }
    }

    let response = herald
        .post_json("/api/v2/silences", "{\"matchers\": [")
        .await;
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer
            .as_str()
            .is_some_and(|error| error.contains("line 1")),
        "{answer}"
    );

    let response = herald
        .client
        .post(herald.url("/api/v2/silences"))
        .header("content-type", "text/plain")
        .body(body(down(), T0, end).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    for query in [
        "?filter=alertname",
        "?filter=%7Ba%3D%22b%22%7D",
        "?active=true",
    ] {
        let response = herald.get(&format!("/api/v2/silences{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].is_string(), "{answer}");
    }

    assert!(list(&herald, "").await.is_empty());
    assert_eq!(metric(&herald.metrics().await, "herald_silences", &[]), 0.0);
    herald.stop().await;
}

#[tokio::test]
async fn silences_survive_a_restart_on_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restart.db");
    let clock = ManualClock::new(at(T0));
    let herald = start(&db, &clock).await;
    let active = create(&herald, &body(down(), T0, "2026-11-21T14:00:00Z")).await;
    let pending = create(
        &herald,
        &body(down(), "2026-11-21T13:00:00Z", "2026-11-21T14:00:00Z"),
    )
    .await;
    let gone = create(&herald, &body(down(), T0, "2026-11-21T14:00:00Z")).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(delete(&herald, &gone).await.0, 200);
    let before = list(&herald, "").await;
    assert_eq!(ids(&before), [active.as_str(), &pending, &gone]);
    herald.stop().await;

    let herald = start(&db, &clock).await;
    assert_eq!(list(&herald, "").await, before);
    // Still write-through after the restart: the reloaded silence can be updated in place and expired.
    let mut changed = before[0].clone();
    changed["endsAt"] = json!("2026-11-21T20:00:00.000Z");
    assert_eq!(create(&herald, &changed).await, active);
    assert_eq!(delete(&herald, &active).await.0, 200);
    assert_eq!(delete(&herald, &gone).await.0, 409);
    herald.stop().await;
}
