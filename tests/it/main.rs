//! Integration tests: herald in-process over real HTTP on loopback, with a temporary SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod amtool;
mod bad_input;
mod cli;
mod cli_deliveries;
mod crash;
mod delivery;
mod deploy;
mod emulator;
mod flow;
mod harness;
mod ingest;
mod jira;
mod jira_emulator;
mod lifecycle;
mod metrics_text;
mod msteams;
mod msteams_emulator;
mod pagerduty;
mod pagerduty_emulator;
mod paging_secrets;
mod receiver;
mod reload;
mod routing;
mod rust_version;
mod send_test;
mod silences;
mod slack;
mod slack_emulator;
mod wecom;
mod wecom_emulator;
