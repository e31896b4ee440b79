//! Integration tests: herald in-process over real HTTP on loopback, with a temporary SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod amtool;
mod bad_input;
mod cli;
mod cli_deliveries;
mod crash;
mod delivery;
mod email;
mod emulator;
mod harness;
mod http_config;
mod http_peers;
mod ingest;
mod jira;
mod jira_emulator;
mod lifecycle;
mod metrics_text;
mod pki;
mod receiver;
mod reload;
mod routing;
mod secrets;
mod send_test;
mod silences;
mod slack;
mod slack_emulator;
mod smtp_emulator;
mod tls_listener;
mod webhook_body;
