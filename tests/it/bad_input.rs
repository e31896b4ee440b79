//! Bad input is answered with a clear 4xx, nothing of it is stored, and the daemon keeps serving.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Herald, settings};

async fn assert_rejected(
    herald: &Herald,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    status: u16,
    needle: &str,
) {
    let response = herald
        .client
        .post(herald.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), status, "{path} {needle}");
    let error: Value = response.json().await.unwrap();
    let message = error["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{path}: expected {needle:?} in {error}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(settings(&dir.path().join("h.db"), "bad-input")).await;
    let json = "application/json";
    let v2 = "/api/v2/alerts";

    assert_rejected(
        &herald,
        v2,
        json,
        b"[{\"labels\": {\"a\": \"b\"}".to_vec(),
        400,
        "EOF while parsing",
    )
    .await;
    assert_rejected(
        &herald,
        v2,
        json,
        br#"[{"labels": {"a": 1}}]"#.to_vec(),
        400,
        "[0].labels.a",
    )
    .await;
    assert_rejected(
        &herald,
        v2,
        json,
        br#"[{"labels": "x"}]"#.to_vec(),
        400,
        "invalid type",
    )
    .await;
    assert_rejected(
        &herald,
        v2,
        json,
        br#"[{"annotations": {"a": "b"}}]"#.to_vec(),
        400,
        "missing field `labels`",
    )
    .await;
    assert_rejected(&herald, v2, json, b"[]".to_vec(), 400, "no alerts").await;
    assert_rejected(
        &herald,
        v2,
        json,
        br#"{"labels": {}}"#.to_vec(),
        400,
        "expected a sequence",
    )
    .await;
    let big = format!(
        r#"[{{"labels": {{"alertname": "x"}}, "annotations": {{"a": "{}"}}}}]"#,
        "x".repeat(100_000)
    );
    assert_rejected(
        &herald,
        v2,
        json,
        big.into_bytes(),
        413,
        "larger than the limit",
    )
    .await;
    assert_rejected(
        &herald,
        v2,
        "application/x-www-form-urlencoded",
        b"[]".to_vec(),
        415,
        "unsupported content type",
    )
    .await;
    assert_rejected(
        &herald,
        v2,
        "text/plain",
        br#"[{"labels":{"a":"b"}}]"#.to_vec(),
        415,
        "application/json",
    )
    .await;
    let labels: Vec<String> = (0..10_000).map(|i| format!(r#""l{i}":"v""#)).collect();
    let wide = format!(r#"[{{"labels": {{{}}}}}]"#, labels.join(","));
    let mut wide_settings = settings(&dir.path().join("wide.db"), "bad-input-wide");
    wide_settings.server.max_body_bytes = 1024 * 1024;
    let wide_herald = Herald::start(wide_settings).await;
    assert_rejected(
        &wide_herald,
        v2,
        json,
        wide.into_bytes(),
        400,
        "more than the limit of 128",
    )
    .await;
    assert!(wide_herald.alerts("?resolved=true").await.is_empty());
    wide_herald.stop().await;
    assert_rejected(
        &herald,
        v2,
        json,
        b"[{\"labels\": {\"a\": \"\xff\xfe\"}}]".to_vec(),
        400,
        "invalid",
    )
    .await;
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    assert_rejected(
        &herald,
        v2,
        json,
        deep.clone().into_bytes(),
        400,
        "nested deeper than",
    )
    .await;
    let hidden = format!(r#"[{{"labels": {{"alertname": "deep"}}, "unknown": {deep}}}]"#);
    assert_rejected(
        &herald,
        v2,
        json,
        hidden.into_bytes(),
        400,
        "nested deeper than",
    )
    .await;

    let am = "/webhook/alertmanager";
    assert_rejected(
        &herald,
        am,
        json,
        br#"{"version": "4", "alerts": [{"labels": {"a": "b"}}]}"#.to_vec(),
        400,
        "alerts[0]",
    )
    .await;
    assert_rejected(
        &herald,
        am,
        json,
        br#"{"version": "4", "alerts": []}"#.to_vec(),
        400,
        "no alerts",
    )
    .await;
    assert_rejected(
        &herald,
        am,
        json,
        br#"{"version": "2", "alerts": []}"#.to_vec(),
        400,
        "version",
    )
    .await;
    // Times the v2 API refuses, the webhooks refuse too.
    assert_rejected(
        &herald,
        am,
        json,
        br#"{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "Far"},
            "startsAt": "9999-12-31T23:59:59Z", "endsAt": "0001-01-01T00:00:00Z"}]}"#
            .to_vec(),
        400,
        "startsAt 9999-12-31T23:59:59+00:00 is after",
    )
    .await;
    assert_rejected(
        &herald,
        am,
        json,
        br#"{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "Back"},
            "startsAt": "2026-11-21T09:00:00Z", "endsAt": "2026-11-21T08:00:00Z"}]}"#
            .to_vec(),
        400,
        "is before startsAt",
    )
    .await;
    let grafana = "/webhook/grafana";
    assert_rejected(
        &herald,
        grafana,
        json,
        br#"{"version": "1"}"#.to_vec(),
        400,
        "missing field `alerts`",
    )
    .await;
    assert_rejected(
        &herald,
        grafana,
        json,
        b"null".to_vec(),
        400,
        "invalid type",
    )
    .await;

    assert!(
        herald.alerts("?resolved=true").await.is_empty(),
        "nothing was stored"
    );
    assert_eq!(herald.get("/-/healthy").await.status(), 200);
    assert_eq!(herald.get("/-/ready").await.status(), 200);
    assert_eq!(
        herald
            .post_json(v2, r#"[{"labels":{"alertname":"StillServing"}}]"#)
            .await
            .status(),
        200
    );
    herald.stop().await;
}

#[tokio::test]
async fn malformed_json_error_names_position() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(settings(&dir.path().join("h.db"), "bad-position")).await;
    let response = herald
        .post_json(
            "/api/v2/alerts",
            "[{\"labels\": {\"a\": \"b\"}},\n {\"labels\": {\"c\": true}}]",
        )
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["field"], "[1].labels.c");
    assert_eq!(error["line"], 2);
    assert!(error["column"].as_u64().unwrap() > 10, "{error}");
    herald.stop().await;
}

/// More ingest requests at once than herald handles are answered 503 with Retry-After before their bodies are read;
/// once the others finish, posts are taken again.
#[tokio::test]
async fn too_many_ingest_requests_at_once_are_answered_503_with_retry_after() {
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(settings(&dir.path().join("gate.db"), "gate")).await;
    // Requests whose body never comes: each holds its place until its connection closes.
    let mut held = Vec::new();
    for _ in 0..herald::http::INGEST_MAX_IN_FLIGHT {
        let mut stream = tokio::net::TcpStream::connect(herald.addr).await.unwrap();
        stream
            .write_all(
                b"POST /api/v2/alerts HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n\
                  Content-Length: 1000\r\n\r\n[",
            )
            .await
            .unwrap();
        held.push(stream);
    }
    let body = r#"[{"labels": {"alertname": "Gate"}}]"#;
    let mut refused = None;
    for _ in 0..600 {
        let response = herald.post_json("/api/v2/alerts", body).await;
        if response.status() == 503 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("never refused while every place was held");
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: serde_json::Value = refused.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("send the alerts again"),
        "{error}"
    );
    drop(held);
    herald.wait_until(|status| status == 200, "/-/ready").await;
    let mut taken = false;
    for _ in 0..600 {
        if herald.post_json("/api/v2/alerts", body).await.status() == 200 {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        taken,
        "posts are taken again once the held requests are gone"
    );
    herald.stop().await;
}
