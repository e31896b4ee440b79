//! The `herald` binary: `check-config` reports, and `serve` shuts down cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use rusqlite::OptionalExtension;

fn herald() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env_remove("HERALD_CONFIG")
        .env_remove("RUST_LOG")
        .env("HERALD_LOG", "info");
    command
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_reports_every_error_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "herald.yaml",
        r#"
server:
  listen: "not-an-address"
  lisen: "127.0.0.1:1"
storage:
  url: "${HERALD_TEST_UNSET_DB_URL}"
route:
  receiver: log
  routes:
    - receiver: log
    - receiver: pager
      group_wait: 5x
receivers:
  - name: log
    log_configs: [{}]
"#,
    );
    let output = herald()
        .arg("check-config")
        .arg("-c")
        .arg(&path)
        .env_remove("HERALD_TEST_UNSET_DB_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for expected in [
        "server.lisen: unknown key",
        "server.listen: invalid listen address \"not-an-address\"",
        "route.routes[1].group_wait: invalid duration \"5x\"",
        "HERALD_TEST_UNSET_DB_URL is not set",
        "route.routes[1].receiver: receiver \"pager\" is not defined",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("herald.yaml: "),
        "errors name the file:\n{stderr}"
    );
}

#[test]
fn check_config_and_serve_never_echo_a_value_in_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let token = "tok-6b1d0e";
    let path = write(
        dir.path(),
        "herald.yaml",
        &format!(
            "server:\n  admin_tokens: \"{token}\"\nroute: {{receiver: hook}}\nreceivers:\n  - name: hook\n    \
             webhook_configs:\n      - url: http://127.0.0.1:1/\n        http_config: {{authorization: \"Bearer \
             {token}\"}}\n"
        ),
    );
    for command in ["check-config", "serve"] {
        let output = herald().arg(command).arg("-c").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_ne!(output.status.code(), Some(0), "{command}: {stderr}");
        assert!(
            stderr.contains("invalid type: a string, expected"),
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains(token) && !stdout.contains(token),
            "{command} echoed the value:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn check_config_summarises_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", "server:\n  listen: 127.0.0.1:9999\n");
    let output = herald()
        .arg("check-config")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("127.0.0.1:9999"), "{stdout}");
    assert!(stdout.contains("log"), "{stdout}");
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/herald.db");
    let config = format!(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  url: sqlite://{}\nroute:\n  receiver: log\n  group_wait: 0s\n",
        db.display()
    );
    let path = write(dir.path(), "serve.yaml", &config);
    let mut child = herald()
        .args(["--log-format", "json", "serve", "-c"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut address = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if entry["message"] == "herald is listening" {
            address = entry["address"].as_str().map(str::to_string);
            break;
        }
    }
    let address = address.expect("herald never said where it listens");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let response = client
            .post(format!("http://{address}/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(r#"[{"labels":{"alertname":"BeforeShutdown"}}]"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    });

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:#?}");
    let log = rest.join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("store closed"), "{log}");
    let printed = log.contains("[FIRING:1] first: BeforeShutdown");

    // The store was closed cleanly: its WAL was checkpointed into the database file.
    let wal = db.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() == 0)
            .unwrap_or(true),
        "WAL left behind"
    );
    let connection = rusqlite::Connection::open(&db).unwrap();
    let count: i64 = connection
        .query_row("SELECT COUNT(*) FROM alerts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 1);
    // The notification was printed before the stop, or waits in the outbox, or its group (stored with its timer)
    // had not flushed yet: either way the next start sends it. Never lost.
    let state: Option<String> = connection
        .query_row("SELECT state FROM deliveries", [], |row| row.get(0))
        .optional()
        .unwrap();
    assert_eq!(
        state.as_deref() == Some("delivered"),
        printed,
        "{state:?}:\n{log}"
    );
    match state.as_deref() {
        Some("delivered" | "pending") => {}
        None => {
            let groups: i64 = connection
                .query_row("SELECT COUNT(*) FROM groups", [], |row| row.get(0))
                .unwrap();
            assert_eq!(groups, 1, "the unflushed group is stored");
        }
        Some(other) => panic!("delivery left {other}"),
    }
}

const ROUTES: &str = r#"
route:
  receiver: default
  routes:
    - receiver: db
      matchers: ['service=~"mysql|postgres"']
      routes:
        - receiver: db-eu
          matchers: ['region="eu"']
    - receiver: web
      matchers: ['team="web"']
      continue: true
    - receiver: audit
      match_re: {team: "web|api"}
receivers: [{name: default}, {name: db}, {name: db-eu}, {name: web}, {name: audit}]
"#;

#[test]
fn route_test_prints_receivers_and_verifies_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "routes.yaml", ROUTES);
    let run = |args: &[&str]| {
        let output = herald()
            .arg("route-test")
            .arg("-c")
            .arg(&path)
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
        )
    };
    assert_eq!(
        run(&["team=web", "alertname=X"]),
        (Some(0), "web,audit".to_string())
    );
    assert_eq!(
        run(&["service=mysql", "region=\"eu\""]),
        (Some(0), "db-eu".to_string())
    );
    assert_eq!(run(&["service=mysqlx"]), (Some(0), "default".to_string()));
    assert_eq!(
        run(&["--verify-receivers", "web,audit", "team=web"]).0,
        Some(0)
    );
    assert_eq!(
        run(&["--verify-receivers", "db", "service=postgres", "region=eu"]).0,
        Some(1)
    );
    assert_eq!(run(&["not-a-label"]).0, Some(1));

    let (code, tree) = run(&["--tree"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        tree,
        "default route  receiver: default\n\
         ├── {service=~\"mysql|postgres\"}  receiver: db\n\
         │   └── {region=\"eu\"}  receiver: db-eu\n\
         ├── {team=\"web\"}  receiver: web  continue: true\n\
         └── {team=~\"web|api\"}  receiver: audit"
    );
}

#[test]
fn check_config_names_a_bad_template_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let shared = write(
        dir.path(),
        "shared.j2",
        "{% macro title() %}\n{{ status }\n{% endmacro %}\n",
    );
    let path = write(
        dir.path(),
        "herald.yaml",
        &format!(
            "templates: ['{}']\nroute: {{receiver: team}}\nreceivers:\n  - name: team\n    slack_configs:\n      \
             - api_url: https://hooks.slack.example/services/T/B/x\n        text: \"fine\\n{{{{ alerts | nope }}}}\"\n",
            shared.display()
        ),
    );
    let output = herald()
        .arg("check-config")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("templates[0]: shared.j2: template error at line 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("receivers[0].slack_configs[0].text: template error at line 2"),
        "{stderr}"
    );
}

#[test]
fn an_alertmanager_receiver_block_with_every_paging_integration_passes_check_config_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "alertmanager.yml",
        r#"
route:
  receiver: oncall
  group_by: [alertname, cluster]
receivers:
  - name: oncall
    pagerduty_configs:
      - routing_key: 0123456789abcdef0123456789abcdef
        severity: critical
        class: database
        component: postgres
        group: payments
        details:
          firing: "{{ alerts | length }} firing"
        links:
          - href: https://runbooks.example.com/db
            text: runbook
    msteamsv2_configs:
      - webhook_url: https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=xyz
        title: "Database alerts"
    email_configs:
      - to: oncall@example.com
        from: alertmanager@example.com
        smarthost: smtp.example.com:587
        auth_username: alertmanager
        auth_password: hunter2
        headers:
          Subject: "Database alerts"
    webhook_configs:
      - url: https://oapi.dingtalk.com/robot/send?access_token=abc
        send_resolved: true
        http_config:
          http_headers:
            X-Team:
              values: [payments]
        body: '{"msgtype": "text", "text": {"content": "{{ alerts | length }} alerts"}}'
"#,
    );
    let output = herald()
        .arg("check-config")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for integration in ["pagerduty", "msteamsv2", "email", "webhook"] {
        assert!(stdout.contains(integration), "{integration}:\n{stdout}");
    }
    for secret in [
        "0123456789abcdef0123456789abcdef",
        "hunter2",
        "sig=xyz",
        "access_token=abc",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shown:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn check_config_allow_unset_secrets_lists_the_unset_variables_and_still_reports_real_errors() {
    let dir = tempfile::tempdir().unwrap();
    let valid = write(
        dir.path(),
        "ci.yaml",
        "route: {receiver: hook}\n\
         receivers: [{name: hook, webhook_configs: [{url: '${HERALD_TEST_UNSET_HOOK_URL}'}]}]\n",
    );
    let check = |path: &Path, allow: bool| {
        let mut command = herald();
        command
            .arg("check-config")
            .arg("-c")
            .arg(path)
            .env_remove("HERALD_TEST_UNSET_HOOK_URL");
        if allow {
            command.arg("--allow-unset-secrets");
        }
        command.output().unwrap()
    };
    let strict = check(&valid, false);
    assert_eq!(strict.status.code(), Some(1));
    let allowed = check(&valid, true);
    let stdout = String::from_utf8_lossy(&allowed.stdout);
    assert_eq!(allowed.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("HERALD_TEST_UNSET_HOOK_URL"), "{stdout}");
    assert!(
        stdout.contains("receivers[0].webhook_configs[0].url"),
        "{stdout}"
    );

    let broken = write(
        dir.path(),
        "broken.yaml",
        "route: {receiver: hook, group_wait: 5x}\n\
         receivers: [{name: hook, webhook_configs: [{url: '${HERALD_TEST_UNSET_HOOK_URL}'}]}]\n",
    );
    let allowed = check(&broken, true);
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert_eq!(allowed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("route.group_wait"), "{stderr}");
    assert!(!stderr.contains("HERALD_TEST_UNSET_HOOK_URL"), "{stderr}");
}

#[test]
fn a_listen_address_from_the_environment_is_blamed_on_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "herald.yaml",
        &format!(
            "storage: {{url: sqlite://{}}}\n",
            dir.path().join("herald.db").display()
        ),
    );
    // 192.0.2.1 (TEST-NET-1) is no address of this machine.
    let output = herald()
        .arg("serve")
        .arg("-c")
        .arg(&path)
        .env("HERALD__SERVER__LISTEN", "192.0.2.1:9095")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 192.0.2.1:9095 (environment HERALD__SERVER__LISTEN)"),
        "{stderr}"
    );
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn healthcheck_exits_0_only_while_herald_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "server:\n  listen: 0.0.0.0:{port}\nstorage:\n  url: sqlite://{}\n",
        dir.path().join("herald.db").display()
    );
    let path = write(dir.path(), "herald.yaml", &config);
    let check = |args: &[&str]| herald().arg("healthcheck").args(args).output().unwrap();

    let down = check(&["-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert_eq!(down.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/-/ready")),
        "{stderr}"
    );

    let mut child = herald()
        .args(["--log-format", "json", "serve", "-c"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("herald is listening"));
    assert!(listening, "herald never said it listens");

    let up = check(&["-c", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert_eq!(
        up.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(stdout.contains("200 OK"), "{stdout}");
    let by_url = check(&["--url", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(by_url.status.code(), Some(0));
    let elsewhere = check(&["--url", &format!("http://127.0.0.1:{}", free_port())]);
    assert_eq!(elsewhere.status.code(), Some(1));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn serve_tells_systemd_ready_keeps_the_watchdog_fed_and_says_stopping() {
    use std::os::unix::net::UnixDatagram;

    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let config = format!(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  url: sqlite://{}\n",
        dir.path().join("herald.db").display()
    );
    let path = write(dir.path(), "herald.yaml", &config);
    let mut child = herald()
        .args(["serve", "-c"])
        .arg(&path)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut receive = || {
        let mut buffer = [0u8; 4096];
        let length = socket.recv(&mut buffer).expect("herald stopped notifying");
        String::from_utf8_lossy(&buffer[..length]).into_owned()
    };
    assert_eq!(receive(), "READY=1\n");
    for _ in 0..3 {
        assert_eq!(receive(), "WATCHDOG=1\n");
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = std::iter::repeat_with(&mut receive)
        .take(100)
        .find(|message| message != "WATCHDOG=1\n");
    assert_eq!(stopping.as_deref(), Some("STOPPING=1\n"));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
