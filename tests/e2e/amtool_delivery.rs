//! Scenario 4: the real `amtool` (Debian's prometheus-alertmanager) against the real herald, on the wall clock: a
//! silence added with amtool holds a notification back while the unsilenced alert's goes out, amtool's queries show
//! which alert is silenced and by what, and expiring the silence with amtool releases the notification.

use std::sync::Arc;

use herald::clock::SystemClock;
use serde_json::json;

use crate::herald::{Herald, webhook_config};
use crate::procs::program;
use crate::receiver::ScriptedReceiver;

/// amtool's stdout for a command that must succeed.
async fn amtool(herald: &Herald, args: &[&str]) -> String {
    let output = tokio::process::Command::new(program("amtool", "prometheus-alertmanager"))
        .arg(format!("--alertmanager.url=http://{}", herald.addr))
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "amtool {args:?} failed ({}): {}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn alertnames(requests: &[crate::receiver::Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|request| {
            request.body["groupLabels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn amtool_silence_holds_back_and_expiry_releases_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let hook = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let herald = Herald::start(dir.path(), &webhook_config(&hook.url())).await;

    let id = amtool(
        &herald,
        &[
            "silence",
            "add",
            "alertname=~E2EMaint.*",
            "host=db-1",
            "--comment=e2e maintenance",
            "--author=e2e",
            "--duration=1h",
        ],
    )
    .await
    .trim()
    .to_owned();
    assert_eq!(id.len(), 36, "amtool printed the new silence's id: {id:?}");
    let active = amtool(&herald, &["silence", "query"]).await;
    assert!(
        active.contains(&id) && active.contains("e2e maintenance"),
        "{active}"
    );

    let alerts = json!([
        {"labels": {"alertname": "E2EMaintenance", "host": "db-1"}, "endsAt": "2100-01-01T00:00:00Z"},
        {"labels": {"alertname": "E2ELoud", "host": "web-1"}, "endsAt": "2100-01-01T00:00:00Z"}
    ]);
    let (status, body) = herald
        .post_json("/api/v2/alerts", &alerts.to_string())
        .await;
    assert_eq!(status, 200, "{body}");

    // The unsilenced group is notified; the silenced group's flush is held back.
    let requests = hook.wait_for(1).await;
    herald
        .wait_metric(
            "herald_notifications_suppressed_total",
            &[("reason", "silenced")],
            1.0,
        )
        .await;
    assert_eq!(alertnames(&hook.requests()), ["E2ELoud"], "{requests:#?}");
    let listed = amtool(&herald, &["alert", "query"]).await;
    assert!(
        listed.contains("E2ELoud") && !listed.contains("E2EMaintenance"),
        "amtool leaves the silenced alert out:\n{listed}"
    );
    let with_silenced = amtool(&herald, &["alert", "query", "--silenced"]).await;
    assert!(
        with_silenced.contains("E2EMaintenance"),
        "amtool --silenced lists it:\n{with_silenced}"
    );
    let silenced = herald
        .alerts("?filter=alertname%3D%22E2EMaintenance%22")
        .await;
    assert_eq!(silenced.len(), 1, "{silenced:#?}");
    assert_eq!(silenced[0]["status"]["silencedBy"], json!([id]));

    // Expiring the silence with amtool releases the held-back notification.
    amtool(&herald, &["silence", "expire", &id]).await;
    let requests = hook.wait_for(2).await;
    assert_eq!(
        alertnames(&requests),
        ["E2ELoud", "E2EMaintenance"],
        "{requests:#?}"
    );
    let released = &requests[1].body;
    assert_eq!(released["status"], "firing");
    assert_eq!(
        released["alerts"][0]["labels"],
        json!({"alertname": "E2EMaintenance", "host": "db-1"})
    );
    let expired = amtool(&herald, &["silence", "query", "--expired"]).await;
    assert!(expired.contains(&id), "expired:\n{expired}");
    let active = amtool(&herald, &["silence", "query"]).await;
    assert!(!active.contains(&id), "no longer active:\n{active}");
    let listed = amtool(&herald, &["alert", "query"]).await;
    assert!(
        listed.contains("E2ELoud") && listed.contains("E2EMaintenance"),
        "{listed}"
    );
    assert_eq!(hook.requests().len(), 2, "nothing sent twice");
    herald.stop();
}
