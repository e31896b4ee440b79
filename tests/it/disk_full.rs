//! A full disk: while the store's volume has no room, ingest is refused with 503 and nothing unacknowledged is
//! stored; once room is freed herald writes again by itself, without a restart, having lost no acknowledged alert
//! and sent nothing twice. The volume is a small tmpfs mounted for the test (it needs root, as CI has).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use herald::clock::SystemClock;

use crate::harness::{Herald, delivery_options, firing, webhook_settings};
use crate::receiver::ScriptedReceiver;

/// A tmpfs of a few MiB, unmounted when dropped.
struct Volume {
    path: PathBuf,
}

impl Volume {
    fn mount(path: &Path, size: &str) -> Volume {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("the disk-full test runs `mount`, which is missing");
        assert!(
            status.success(),
            "the disk-full test must mount a {size} tmpfs at {} (it needs root): mount failed with {status}",
            path.display()
        );
        Volume {
            path: path.to_owned(),
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the volume to the last byte with a file of its own, which `free` deletes.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    // What the last whole block left.
    while file.write_all(&[0u8]).is_ok() {}
}

async fn post(herald: &Herald, names: &[String]) -> u16 {
    let body = format!(
        "[{}]",
        names
            .iter()
            .map(|name| firing(name))
            .collect::<Vec<_>>()
            .join(",")
    );
    herald
        .post_json("/api/v2/alerts", body)
        .await
        .status()
        .as_u16()
}

fn batch(from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|i| format!("Alert{i:05}"))
        .collect()
}

#[tokio::test]
async fn a_full_disk_refuses_ingest_then_recovers_by_itself_losing_and_repeating_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::mount(&dir.path().join("volume"), "16m");
    let receiver = ScriptedReceiver::start(Arc::new(SystemClock)).await;
    let herald = Herald::start(webhook_settings(
        &volume.path.join("herald.db"),
        "team",
        &receiver.url(),
        delivery_options(),
    ))
    .await;

    let mut acknowledged = Vec::new();
    let mut next = 0;
    for _ in 0..10 {
        let names = batch(next, 10);
        next += 10;
        assert_eq!(post(&herald, &names).await, 200);
        acknowledged.extend(names);
    }
    receiver.wait_for(acknowledged.len()).await;

    let filler = volume.path.join("filler");
    fill(&filler);
    // Until the store meets the full disk; then every post is refused.
    let mut refused = 0;
    for _ in 0..200 {
        let names = batch(next, 10);
        next += 10;
        match post(&herald, &names).await {
            200 => acknowledged.extend(names),
            503 => {
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
            other => panic!("a post to a full disk was answered {other}"),
        }
    }
    assert_eq!(refused, 5, "posts to a full disk are refused");
    let ahead = batch(next, 10);
    next += 10;
    assert_eq!(post(&herald, &ahead).await, 503, "still refused while full");

    std::fs::remove_file(&filler).unwrap();
    // Writes resume by themselves once room is freed (within a generous bound; RELIABILITY.md has the figure).
    let mut resumed = false;
    for _ in 0..600 {
        let names = batch(next, 10);
        next += 10;
        if post(&herald, &names).await == 200 {
            acknowledged.extend(names);
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed, "herald wrote again after room was freed");
    for _ in 0..5 {
        let names = batch(next, 10);
        next += 10;
        assert_eq!(post(&herald, &names).await, 200);
        acknowledged.extend(names);
    }

    // Every acknowledged alert is stored and notified, and none twice.
    let requests = receiver.wait_for(acknowledged.len()).await;
    let mut told: BTreeMap<String, usize> = BTreeMap::new();
    for request in &requests {
        let name = request.body["groupLabels"]["alertname"]
            .as_str()
            .unwrap()
            .to_owned();
        *told.entry(name).or_default() += 1;
    }
    for name in &acknowledged {
        assert_eq!(told.get(name), Some(&1), "{name} told once");
    }
    let stored = herald.alerts("").await;
    assert!(
        stored.len() >= acknowledged.len(),
        "{} stored, {} acknowledged",
        stored.len(),
        acknowledged.len()
    );
    herald.stop().await;
}
