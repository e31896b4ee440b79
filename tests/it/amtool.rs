//! The real `amtool` (Debian's prometheus-alertmanager package, installed by scripts/test.sh) against herald: add a
//! silence, see the alert suppressed in `amtool alert query`, expire it, see the notification go out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use herald::clock::ManualClock;

use crate::harness::{Herald, metric, settings, wait_for_metric};

/// amtool's path; a missing amtool fails the test with what to do, never skips it.
fn amtool() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("amtool"))
        .find(|candidate| candidate.is_file());
    match found {
        Some(path) => path,
        None => panic!(
            "amtool is not installed: it comes with Debian's prometheus-alertmanager package, which scripts/test.sh \
             installs (apt-get install prometheus-alertmanager)"
        ),
    }
}

/// Runs amtool against `herald` with `args`.
async fn amtool_output(herald: &Herald, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(amtool())
        .arg(format!("--alertmanager.url=http://{}", herald.addr))
        .args(args)
        .output()
        .await
        .unwrap()
}

/// amtool's exit code and stderr for a command expected to fail.
async fn run_failing(herald: &Herald, args: &[&str]) -> (Option<i32>, String) {
    let output = amtool_output(herald, args).await;
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// amtool's stdout for a command that must succeed.
async fn run(herald: &Herald, args: &[&str]) -> String {
    let output = amtool_output(herald, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "amtool {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn amtool_silences_suppress_and_release_notifications() {
    let dir = tempfile::tempdir().unwrap();
    // amtool stamps silences with the wall clock, so herald's clock starts there and is moved on by hand.
    let clock = ManualClock::new(chrono::Utc::now());
    let herald = Herald::start_with_clock(
        settings(&dir.path().join("amtool.db"), "amtool-rcv"),
        Arc::new(clock.clone()),
    )
    .await;
    let sent = |text: &str| {
        metric(
            text,
            "herald_notifications_total",
            &[("receiver", "amtool-rcv")],
        )
    };

    let id = run(
        &herald,
        &[
            "silence",
            "add",
            "alertname=Maintenance",
            "--comment=planned work",
            "--author=ops",
            "--duration=2h",
        ],
    )
    .await;
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "amtool printed the new silence's id: {id:?}");
    clock.advance(Duration::from_secs(1));
    let listed = run(&herald, &["silence", "query"]).await;
    assert!(
        listed.contains(&id) && listed.contains("planned work"),
        "{listed}"
    );

    let body = r#"[{"labels": {"alertname": "Maintenance", "host": "db-1"}}, {"labels": {"alertname": "Loud", "host": "web-1"}}]"#;
    assert_eq!(herald.post_json("/api/v2/alerts", body).await.status(), 200);
    let active = run(&herald, &["alert", "query"]).await;
    assert!(
        active.contains("Loud") && !active.contains("Maintenance"),
        "silenced alerts are not listed:\n{active}"
    );
    let silenced = run(&herald, &["alert", "query", "--silenced"]).await;
    assert!(
        silenced.contains("Maintenance"),
        "--silenced lists it:\n{silenced}"
    );

    clock.advance(Duration::from_secs(30));
    wait_for_metric(&herald, "the unsilenced notification", |text| {
        sent(text) == 1.0
    })
    .await;

    run(&herald, &["silence", "expire", &id]).await;
    // amtool's own `--expired` view compares with the wall clock, which this test's clock runs ahead of; ask herald.
    let silence: serde_json::Value = herald
        .get(&format!("/api/v2/silence/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(silence["status"]["state"], "expired", "{silence}");
    let active = run(&herald, &["alert", "query"]).await;
    assert!(
        active.contains("Maintenance"),
        "no longer silenced:\n{active}"
    );

    clock.advance(Duration::from_secs(300));
    wait_for_metric(&herald, "the released notification", |text| {
        sent(text) == 2.0
    })
    .await;

    let (code, stderr) = run_failing(&herald, &["silence", "add", "foo=\"\"", "--comment=x"]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("at least one matcher must not match the empty string"),
        "amtool shows why:\n{stderr}"
    );

    let status = run(&herald, &["config", "show"]).await;
    assert!(
        status.contains("amtool-rcv"),
        "amtool reads herald's status:\n{status}"
    );
    herald.stop().await;
}

#[tokio::test]
async fn amtool_reads_the_route_tree_and_tests_routes_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "storage: {{url: 'sqlite://{}'}}\n\
         route:\n  receiver: default\n  group_by: [alertname]\n  routes:\n    \
         - receiver: db\n      matchers: ['service=~\"mysql|postgres\"']\n      continue: true\n    \
         - receiver: web\n      match: {{team: web}}\n      group_wait: 5s\n\
         receivers: [{{name: default}}, {{name: db}}, {{name: web}}]\n",
        dir.path().join("h.db").display()
    );
    let settings = herald::config::load_str(&yaml, "amtool-routes.yaml")
        .unwrap()
        .settings;
    let herald = Herald::start(settings).await;
    let tree = run(&herald, &["config", "routes", "show"]).await;
    for receiver in ["default", "db", "web"] {
        assert!(tree.contains(receiver), "{tree}");
    }
    let tested = run(
        &herald,
        &[
            "config",
            "routes",
            "test",
            "--verify.receivers=db",
            "service=mysql",
        ],
    )
    .await;
    assert!(tested.contains("db"), "{tested}");
    let tested = run(
        &herald,
        &[
            "config",
            "routes",
            "test",
            "--verify.receivers=web",
            "team=web",
        ],
    )
    .await;
    assert!(tested.contains("web"), "{tested}");
    let (code, stderr) = run_failing(
        &herald,
        &[
            "config",
            "routes",
            "test",
            "--verify.receivers=web",
            "service=redis",
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    herald.stop().await;
}

#[tokio::test]
async fn amtool_alert_add_gives_an_active_alert_that_amtool_alert_query_shows() {
    let dir = tempfile::tempdir().unwrap();
    // amtool stamps nothing itself: it sends Go's zero time for startsAt and endsAt, which mean "unset".
    let herald = Herald::start(settings(&dir.path().join("amtool-add.db"), "amtool-rcv")).await;
    run(
        &herald,
        &[
            "alert",
            "add",
            "alertname=AddedByHand",
            "instance=db-7",
            "--annotation=summary=added with amtool",
        ],
    )
    .await;
    let alerts = herald.alerts("").await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let added = &alerts[0];
    assert_eq!(added["status"]["state"], "active", "{added:#}");
    let starts: chrono::DateTime<chrono::Utc> =
        added["startsAt"].as_str().unwrap().parse().unwrap();
    let ends: chrono::DateTime<chrono::Utc> = added["endsAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (ends - starts).num_seconds(),
        300,
        "no end given: now + resolve_timeout, as Alertmanager: {added:#}"
    );
    let queried = run(&herald, &["alert", "query"]).await;
    assert!(queried.contains("AddedByHand"), "{queried}");
    assert!(queried.contains("added with amtool"), "{queried}");
    herald.stop().await;
}

#[tokio::test]
async fn amtool_writes_silences_with_the_admin_token_from_its_http_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&dir.path().join("amtool-token.db"), "amtool-rcv");
    settings.server.admin_tokens = vec![herald::config::Secret::new("amtool-admin-token")];
    let herald = Herald::start(settings).await;
    let add = [
        "silence",
        "add",
        "alertname=Maintenance",
        "--duration=1h",
        "--comment=planned",
    ];
    let (code, _) = run_failing(&herald, &add).await;
    assert_ne!(code, Some(0), "without the token amtool is refused");

    let token = dir.path().join("admin-token");
    std::fs::write(&token, "amtool-admin-token\n").unwrap();
    let http_config = dir.path().join("amtool-http.yaml");
    std::fs::write(
        &http_config,
        format!(
            "authorization:\n  type: Bearer\n  credentials_file: {}\n",
            token.display()
        ),
    )
    .unwrap();
    let flag = format!("--http.config.file={}", http_config.display());
    let mut with_token = vec![flag.as_str()];
    with_token.extend(add);
    let id = run(&herald, &with_token).await;
    assert_eq!(
        id.trim().len(),
        36,
        "amtool printed the new silence's id: {id:?}"
    );
    herald.stop().await;
}

#[tokio::test]
async fn the_status_shows_the_configuration_in_force_as_yaml_that_amtool_reads() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(settings(&dir.path().join("status.db"), "amtool-rcv")).await;
    let status: serde_json::Value = herald.get("/api/v2/status").await.json().await.unwrap();
    let original = status["config"]["original"].as_str().unwrap();
    assert!(!original.trim_start().starts_with('{'), "{original}");
    let documents = yaml_rust2::YamlLoader::load_from_str(original).unwrap();
    let config = &documents[0];
    assert_eq!(
        config["global"]["resolve_timeout"].as_str(),
        Some("5m"),
        "{original}"
    );
    assert_eq!(config["route"]["receiver"].as_str(), Some("amtool-rcv"));
    assert_eq!(config["receivers"][0]["name"].as_str(), Some("amtool-rcv"));
    let shown = run(&herald, &["config", "show"]).await;
    assert!(shown.contains("resolve_timeout: 5m"), "{shown}");
    assert!(shown.contains("amtool-rcv"), "{shown}");
    herald.stop().await;
}
