//! `herald deliveries list|show|retry|discard`: the real binary against herald in-process, with a dead delivery
//! made by a scripted receiver that answers 400; and the admin token, from `--token` and from HERALD_TOKEN.

use std::process::Output;

use herald::config::Secret;

use crate::delivery::{DeadDelivery, manual_clock, with_a_dead_delivery};
use crate::harness::{Herald, delivery_options, webhook_settings};

/// Runs `herald deliveries ARGS` against `herald` (`--url` first), with `env` set and no HERALD_* inherited.
async fn deliveries(herald: &Herald, args: &[&str], env: &[(&str, &str)]) -> Output {
    let url = format!("http://{}", herald.addr);
    run(&["deliveries", "--url", &url], args, env).await
}

async fn run(prefix: &[&str], args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args(prefix)
        .args(args)
        .env_remove("HERALD_URL")
        .env_remove("HERALD_TOKEN")
        .env_remove("HERALD_CONFIG")
        .env_remove("RUST_LOG")
        .env("HERALD_LOG", "info")
        .envs(env.iter().copied());
    command.output().await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit 0 with nothing on stderr; returns stdout.
fn succeeded(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert_eq!(stderr(output), "", "nothing but output on a success");
    stdout(output)
}

/// Asserts exit 1 with nothing on stdout; returns stderr.
fn failed(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert_eq!(stdout(output), "");
    stderr(output)
}

#[tokio::test]
async fn list_show_retry_and_discard_a_dead_delivery() {
    let DeadDelivery {
        herald,
        receiver,
        id,
        _dir,
        ..
    } = with_a_dead_delivery("ops").await;

    let table = succeeded(&deliveries(&herald, &["list", "--state", "dead"], &[]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row:\n{table}");
    assert!(
        lines[0].starts_with("ID  STATE  RECEIVER  INTEGRATION  STATUS  ALERTS  ATTEMPTS"),
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..7],
        [
            id.to_string().as_str(),
            "dead",
            "ops",
            "webhook/0",
            "firing",
            "1",
            "1"
        ],
        "{table}"
    );
    assert!(
        lines[1].contains("permanent error: HTTP 400"),
        "the last error is shown:\n{table}"
    );
    let none = succeeded(&deliveries(&herald, &["list", "--state", "pending"], &[]).await);
    assert_eq!(none, "no deliveries\n");

    let shown = succeeded(&deliveries(&herald, &["show", &id.to_string()], &[]).await);
    for expected in [
        "state:         dead\n",
        "receiver:      ops\n",
        "alert names:  Bad\n",
        "attempt 1: ",
        "  permanent  status 400\n",
        "  response:  invalid_payload\n",
    ] {
        assert!(
            shown.contains(expected),
            "missing {expected:?} in:\n{shown}"
        );
    }

    let json = succeeded(&deliveries(&herald, &["list", "-o", "json"], &[]).await);
    let body: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(body["deliveries"][0]["id"], id);
    assert_eq!(body["deliveries"][0]["state"], "dead");

    let retried =
        succeeded(&deliveries(&herald, &["retry", "--all", "--state", "dead"], &[]).await);
    assert_eq!(retried, "queued 1 delivery again\n");
    herald
        .wait_for_delivery(id, "delivered", |d| d["delivery"]["state"] == "delivered")
        .await;

    let again = succeeded(&deliveries(&herald, &["retry", &id.to_string()], &[]).await);
    assert_eq!(again, format!("queued delivery {id} again\n"));
    herald
        .wait_for_delivery(id, "delivered again", |d| {
            d["delivery"]["state"] == "delivered" && d["attempts"].as_array().unwrap().len() == 3
        })
        .await;

    let discarded = succeeded(&deliveries(&herald, &["discard", &id.to_string()], &[]).await);
    assert_eq!(discarded, format!("discarded delivery {id}\n"));
    let gone = herald.get(&format!("/api/herald/v1/deliveries/{id}")).await;
    assert_eq!(gone.status(), 404);

    let error = failed(&deliveries(&herald, &["show", "999"], &[]).await);
    assert_eq!(
        error,
        "herald: herald answered 404 Not Found: no delivery with id 999\n"
    );
    herald.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn the_admin_token_comes_from_the_option_or_the_environment() {
    let clock = manual_clock();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = webhook_settings(
        &dir.path().join("h.db"),
        "ops",
        "http://127.0.0.1:9/hook",
        delivery_options(),
    );
    settings.server.admin_tokens = vec![Secret::new("tok")];
    let herald = Herald::start_with_clock(settings, clock).await;

    let error = failed(&deliveries(&herald, &["list"], &[]).await);
    assert!(
        error.contains("herald answered 401 Unauthorized"),
        "{error}"
    );
    assert!(error.contains("--token or set HERALD_TOKEN"), "{error}");
    let error = failed(&deliveries(&herald, &["list", "--token", "wrong"], &[]).await);
    assert!(error.contains("401"), "{error}");
    assert!(
        !error.contains("wrong"),
        "the token is never printed: {error}"
    );

    let listed = succeeded(&deliveries(&herald, &["list", "--token", "tok"], &[]).await);
    assert_eq!(listed, "no deliveries\n");
    let listed = succeeded(&deliveries(&herald, &["list"], &[("HERALD_TOKEN", "tok")]).await);
    assert_eq!(listed, "no deliveries\n");
    herald.stop().await;
}

#[tokio::test]
async fn an_unreachable_herald_is_named_with_a_hint() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    let output = run(&["deliveries", "list"], &[], &[("HERALD_URL", &url)]).await;
    let error = failed(&output);
    assert!(
        error.contains(&format!("cannot reach herald at {url}/")),
        "{error}"
    );
    assert!(error.contains("--url or HERALD_URL"), "{error}");
}
