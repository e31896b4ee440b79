//! Catch-up after an outage, through herald's HTTP surface: a webhook destination that answers 500, or refuses
//! connections, while ten notifications fail, is marked down (`herald_destination_down`); when it is back, the one
//! probe that finds it releases every waiting notification at once instead of leaving each to its grown backoff.
//! Time is a `ManualClock` shared by herald and the receiver.

use std::time::Duration;

use herald::clock::Clock;

use crate::delivery::manual_clock;
use crate::harness::{Herald, delivery_options, firing, wait_for_metric, webhook_settings};
use crate::metrics_text::metric;
use crate::receiver::{Reply, ScriptedReceiver};

const COUNT: usize = 10;

/// The two kinds of outage.
enum Outage {
    ServerErrors,
    Refused,
}

async fn outage_then_recovery(outage: Outage) {
    let clock = manual_clock();
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let mut receiver = match outage {
        Outage::ServerErrors => {
            let receiver = ScriptedReceiver::start_on(addr, clock.clone()).await;
            receiver.otherwise(Reply::status(500, "internal error"));
            Some(receiver)
        }
        Outage::Refused => None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut options = delivery_options();
    // Long backoffs: without the probe, each notification would wait up to a minute after the return.
    options.retry.initial_backoff = Duration::from_secs(60);
    options.retry.max_backoff = Duration::from_secs(600);
    let url = format!("http://{addr}/hook");
    let settings = webhook_settings(&dir.path().join("h.db"), "catchup", &url, options);
    let herald = Herald::start_with_clock(settings, clock.clone()).await;

    let alerts: Vec<String> = (0..COUNT).map(|i| firing(&format!("Down{i:02}"))).collect();
    let response = herald
        .post_json("/api/v2/alerts", format!("[{}]", alerts.join(",")))
        .await;
    assert_eq!(response.status(), 200);
    // Every notification failed once (its outcome stored), and the destination is down.
    for _ in 0..2400 {
        let tried = herald.deliveries("?limit=100").await;
        if tried.len() == COUNT && tried.iter().all(|d| d["attempts"].as_u64() == Some(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let waiting = herald.deliveries("?state=pending&limit=100").await;
    assert_eq!(waiting.len(), COUNT, "{waiting:#?}");
    wait_for_metric(&herald, "the destination is down", |text| {
        metric(text, "herald_destination_down", &[]) == 1.0
    })
    .await;
    let text = herald.metrics().await;
    assert!(
        text.lines().any(
            |line| line.starts_with("herald_destination_down{destination=\"webhook:")
                && !line.contains("127.0.0.1")
        ),
        "the destination is named by a digest, never its URL"
    );

    // The destination comes back; the next probe (at most 5 s later) finds it and releases the rest.
    let back = clock.now();
    let receiver = match receiver.take() {
        Some(receiver) => {
            receiver.otherwise(Reply::ok());
            receiver
        }
        None => ScriptedReceiver::start_on(addr, clock.clone()).await,
    };
    clock.advance(Duration::from_secs(5));
    receiver.wait_until_delivered(COUNT).await;
    let delivered: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|request| request.answered == Some(200))
        .collect();
    let mut groups: Vec<String> = delivered.iter().map(|r| r.group_key()).collect();
    groups.sort();
    groups.dedup();
    assert_eq!(
        (delivered.len(), groups.len()),
        (COUNT, COUNT),
        "each delivered once"
    );
    for request in &delivered {
        assert!(
            request.at - back <= chrono::Duration::seconds(10),
            "delivered {} after the return",
            request.at - back
        );
    }
    for _ in 0..2400 {
        if herald.deliveries("?state=delivered&limit=100").await.len() == COUNT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        herald.deliveries("?state=delivered&limit=100").await.len(),
        COUNT
    );
    assert_eq!(
        metric(&herald.metrics().await, "herald_destination_down", &[]),
        0.0
    );
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn after_server_errors_everything_waiting_goes_once_a_probe_finds_the_destination_back() {
    outage_then_recovery(Outage::ServerErrors).await;
}

#[tokio::test]
async fn after_refused_connections_everything_waiting_goes_once_a_probe_finds_the_destination_back()
{
    outage_then_recovery(Outage::Refused).await;
}
