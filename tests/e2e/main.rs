//! End-to-end tests: the real Prometheus, Alertmanager and amtool (Debian's `prometheus` and
//! `prometheus-alertmanager`, installed by scripts/test.sh) against the real `herald` binary. Each scenario starts
//! its own processes on loopback ports it picks, with its own temporary directories, waits on real events with
//! bounded timeouts, and stops everything it started. A missing program fails the test; nothing is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alertmanager_to_herald;
mod amtool_delivery;
#[allow(
    dead_code,
    reason = "the scenarios use part of the emulators' shared plumbing"
)]
#[path = "../it/emulator.rs"]
mod emulator;
mod fingerprints;
mod grafana_replay;
mod herald;
#[allow(dead_code, reason = "the scenarios use part of the shared emulator")]
#[path = "../it/jira_emulator.rs"]
mod jira_emulator;
#[path = "../it/metrics_text.rs"]
mod metrics_text;
mod peers;
#[allow(dead_code, reason = "the scenario uses part of the test PKI")]
#[path = "../it/pki.rs"]
mod pki;
mod procs;
mod prometheus_to_herald;
mod protected_herald;
#[allow(
    dead_code,
    reason = "the scenarios use part of the shared scripted receiver"
)]
#[path = "../it/receiver.rs"]
mod receiver;
#[allow(dead_code, reason = "the scenarios use part of the shared emulator")]
#[path = "../it/slack_emulator.rs"]
mod slack_emulator;
mod snippets;
