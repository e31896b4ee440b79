//! `webhook_configs` with a templated `body` and a `method`, end to end: a DingTalk-style robot message, firing then
//! resolved, rendered from herald's template language and sent with PUT, with the `Content-Type` and a token
//! header from `http_config.http_headers`.

use std::time::Duration;

use herald::clock::Clock;

use crate::delivery::manual_clock;
use crate::harness::Herald;
use crate::http_config::{settings, wait_for_key};
use crate::receiver::ScriptedReceiver;

#[tokio::test]
async fn a_templated_body_reaches_the_hook_firing_then_resolved() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let receivers = format!(
        r#"  - name: hooks
    webhook_configs:
      - url: '{}'
        method: PUT
        http_config:
          http_headers:
            Content-Type: {{values: ['application/json; charset=utf-8']}}
            X-Robot-Token: {{secrets: [r0bot-t0ken]}}
        body: |
          {{"msgtype": "markdown", "markdown": {{"title": {{{{ ("[" ~ (status | upper) ~ "] " ~ group_labels.alertname) | tojson }}}},
           "text": {{{{ (alerts | map(attribute="annotations.summary") | join("\n")) | tojson }}}}}}}}
"#,
        receiver.url()
    );
    let herald = Herald::start_with_clock(settings(dir.path(), &receivers), clock.clone()).await;
    let alert = r#"{"labels":{"alertname":"Quota \"db\""},"annotations":{"summary":"quota at 97%"},
        "endsAt":"ENDS"}"#;
    herald
        .post_json(
            "/api/v2/alerts",
            format!("[{}]", alert.replace("ENDS", "2100-01-01T00:00:00Z")),
        )
        .await;
    let first = receiver.wait_for(1).await[0].clone();
    assert_eq!(first.body["msgtype"], "markdown");
    assert_eq!(first.body["markdown"]["title"], "[FIRING] Quota \"db\"");
    assert_eq!(first.body["markdown"]["text"], "quota at 97%");
    assert_eq!(
        first.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(first.headers["x-robot-token"], "r0bot-t0ken");
    wait_for_key(&herald, "webhook/0", "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;

    let ended = clock.now().to_rfc3339();
    herald
        .post_json(
            "/api/v2/alerts",
            format!("[{}]", alert.replace("ENDS", &ended)),
        )
        .await;
    clock.advance(Duration::from_secs(301));
    let second = receiver.wait_for(2).await[1].clone();
    assert_eq!(second.body["markdown"]["title"], "[RESOLVED] Quota \"db\"");
    herald.stop().await;
}
