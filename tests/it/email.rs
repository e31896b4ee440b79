//! `email_configs` end to end: alerts posted to herald's HTTP ingest arrive at the SMTP emulator over STARTTLS (the
//! test's CA) with sign-in, with the configured headers and herald's default text and HTML parts, firing then
//! resolved; a 4xx reply is retried, a 5xx reply makes a dead letter that a replay delivers once the server
//! accepts; and `herald send-test` reaches the emulator.

use std::sync::Arc;
use std::time::Duration;

use herald::clock::{Clock, SystemClock};

use crate::delivery::manual_clock;
use crate::harness::{Herald, firing};
use crate::http_config::{settings, wait_for_key};
use crate::pki::TestPki;
use crate::smtp_emulator::{SmtpEmulator, SmtpOptions, SmtpReply};

const USER: &str = "alerts@example.com";
const PASSWORD: &str = "sm7p-pa55word";

fn options(pki: &TestPki) -> SmtpOptions {
    SmtpOptions {
        starttls: Some(pki.server_config(false)),
        implicit_tls: None,
        auth: Some((USER.to_owned(), PASSWORD.to_owned())),
    }
}

fn receivers(smtp: &SmtpEmulator, pki: &TestPki, extra: &str) -> String {
    format!(
        "  - name: hooks\n    email_configs:\n      \
         - to: 'ops@example.com, Team <team@example.com>'\n        from: 'Herald <herald@example.com>'\n        \
         smarthost: '{}'\n        hello: herald.example.com\n        auth_username: {USER}\n        \
         auth_password: {PASSWORD}\n        tls_config: {{ca_file: '{}'}}\n{extra}",
        smtp.smarthost(),
        pki.ca_file.display()
    )
}

#[tokio::test]
async fn firing_then_resolved_arrive_over_starttls_with_the_configured_headers() {
    let clock = manual_clock();
    let pki = TestPki::new();
    let smtp = SmtpEmulator::start(options(&pki), clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "        headers: {Subject: '[{{ status | upper }}] {{ common_labels.alertname }} on \
                 {{ common_labels.instance }}', X-Herald-Team: db, Reply-To: oncall@example.com}\n";
    let herald = Herald::start_with_clock(
        settings(dir.path(), &receivers(&smtp, &pki, extra)),
        clock.clone(),
    )
    .await;

    let started = clock.now().to_rfc3339();
    let alert = r#"{"labels":{"alertname":"DiskFull","instance":"db-1","severity":"critical"},
        "annotations":{"summary":"disk 97% full","description":"only 3% left on /var"},
        "generatorURL":"http://prometheus:9090/graph?g0.expr=disk","startsAt":"STARTED",
        "endsAt":"2100-01-01T00:00:00Z"}"#
        .replace("STARTED", &started);
    let posted = herald
        .post_json("/api/v2/alerts", format!("[{alert}]"))
        .await;
    assert_eq!(posted.status(), 200);
    smtp.wait_for_data(1).await;
    let mails = smtp.mails();
    let mail = &mails[0];
    assert_eq!(mail.hello, "herald.example.com");
    assert!(mail.tls, "sent after STARTTLS");
    assert_eq!(mail.user.as_deref(), Some(USER));
    assert_eq!(mail.from, "herald@example.com");
    assert_eq!(mail.to, ["ops@example.com", "team@example.com"]);
    let header = |name: &str| mail.header(name).unwrap_or_default();
    assert_eq!(header("Subject"), "[FIRING] DiskFull on db-1");
    assert_eq!(header("From"), "Herald <herald@example.com>");
    assert_eq!(header("To"), "ops@example.com, Team <team@example.com>");
    assert_eq!(header("X-Herald-Team"), "db");
    assert_eq!(header("Reply-To"), "oncall@example.com");
    assert!(
        header("Content-Type").starts_with("multipart/alternative"),
        "{}",
        mail.data
    );
    let body = mail.body();
    for part in [
        "1 firing, 0 resolved - receiver hooks",
        "* DiskFull: disk 97% full",
        "Labels: alertname=DiskFull, instance=db-1, severity=critical",
        "description: only 3% left on /var",
        "Source: http://prometheus:9090/graph?g0.expr=disk",
        &format!("Started: {started}"),
        "<th>Status</th><th>Alert</th><th>Labels</th>",
        "<td>instance=db-1<br>severity=critical</td>",
        // HTML-escaped, as every value in the HTML part.
        "<a href=\"http:&#x2f;&#x2f;prometheus:9090&#x2f;graph?g0.expr=disk\">source</a>",
    ] {
        assert!(body.contains(part), "{part:?} missing in\n{body}");
    }
    wait_for_key(&herald, "email/0", "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;

    let ended = clock.now().to_rfc3339();
    let resolve = alert.replace("2100-01-01T00:00:00Z", &ended);
    herald
        .post_json("/api/v2/alerts", format!("[{resolve}]"))
        .await;
    clock.advance(Duration::from_secs(301));
    smtp.wait_for_data(2).await;
    let resolved = &smtp.mails()[1];
    assert_eq!(
        resolved.header("Subject").unwrap(),
        "[RESOLVED] DiskFull on db-1"
    );
    assert!(
        resolved.body().contains("0 firing, 1 resolved"),
        "{}",
        resolved.body()
    );
    assert!(
        resolved.body().contains("RESOLVED\r\n"),
        "{}",
        resolved.body()
    );
    assert_eq!(smtp.errors(), Vec::<String>::new(), "no protocol errors");
    herald.stop().await;
}

#[tokio::test]
async fn a_4xx_reply_is_retried_and_a_5xx_reply_is_dead_until_replayed() {
    let clock = manual_clock();
    let pki = TestPki::new();
    let smtp = SmtpEmulator::start(options(&pki), clock.clone()).await;
    smtp.script([SmtpReply::transient(), SmtpReply::permanent()]);
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start_with_clock(
        settings(dir.path(), &receivers(&smtp, &pki, "")),
        clock.clone(),
    )
    .await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Spammy")))
        .await;
    let once = wait_for_key(&herald, "email/0", "tried once", |d| d["attempts"] == 1).await;
    assert_eq!(once["state"], "pending", "451 is retried");
    assert!(
        once["last_error"].as_str().unwrap().contains("451"),
        "{once}"
    );
    let next: chrono::DateTime<chrono::Utc> =
        once["next_attempt_at"].as_str().unwrap().parse().unwrap();
    clock.set(next.max(clock.now()));
    let dead = wait_for_key(&herald, "email/0", "dead", |d| d["state"] == "dead").await;
    let reason = dead["last_error"].as_str().unwrap();
    assert!(
        reason.contains("554") && reason.contains("rejected as spam"),
        "{reason}"
    );
    assert!(!reason.contains(PASSWORD));
    assert!(smtp.mails().is_empty());

    let replay = herald
        .client
        .post(herald.url("/api/herald/v1/deliveries/retry?state=dead&receiver=hooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    wait_for_key(&herald, "email/0", "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(smtp.data_replies(), [451, 554, 250]);
    assert_eq!(smtp.sessions(), 3, "one SMTP session per attempt");
    assert!(smtp.mails()[0].at >= next);
    assert_eq!(smtp.mails().len(), 1, "delivered once");
    assert_eq!(
        smtp.mails()[0].header("Subject").unwrap(),
        "[FIRING:1] Spammy"
    );
    assert_eq!(smtp.errors(), Vec::<String>::new());
    herald.stop().await;
}

#[tokio::test]
async fn smtps_on_implicit_tls_and_plain_smtp_without_tls() {
    let clock = manual_clock();
    let pki = TestPki::new();
    let implicit = SmtpEmulator::start(
        SmtpOptions {
            implicit_tls: Some(pki.server_config(false)),
            ..SmtpOptions::default()
        },
        clock.clone(),
    )
    .await;
    let plain = SmtpEmulator::start(SmtpOptions::default(), clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let receivers = format!(
        "  - name: hooks\n    email_configs:\n      \
         - {{to: a@example.com, from: h@example.com, smarthost: '{}', force_implicit_tls: true, \
         tls_config: {{ca_file: '{}', server_name: localhost}}, text: '', html: '<b>{{{{ status }}}}</b>'}}\n      \
         - {{to: b@example.com, from: h@example.com, smarthost: '{}', require_tls: false, html: ''}}\n",
        implicit.smarthost(),
        pki.ca_file.display(),
        plain.smarthost()
    );
    let herald = Herald::start_with_clock(settings(dir.path(), &receivers), clock.clone()).await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Both")))
        .await;
    implicit.wait_for_data(1).await;
    plain.wait_for_data(1).await;
    let secure = &implicit.mails()[0];
    assert!(secure.tls);
    assert!(
        secure
            .header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(secure.body().contains("<b>firing</b>"), "{}", secure.body());
    let clear = &plain.mails()[0];
    assert!(!clear.tls);
    assert!(
        clear
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(clear.hello, "localhost", "Alertmanager's default hello");
    assert!(implicit.errors().is_empty() && plain.errors().is_empty());
    herald.stop().await;
}

#[tokio::test]
async fn send_test_mails_through_the_emulator() {
    let smtp = SmtpEmulator::start(SmtpOptions::default(), Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.yaml");
    std::fs::write(
        &config,
        format!(
            "route: {{receiver: mail}}\nreceivers:\n  - name: mail\n    email_configs:\n      \
             - {{to: ops@example.com, from: herald@example.com, smarthost: '{}', require_tls: false}}\n",
            smtp.smarthost()
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_remove("HERALD_CONFIG")
        .args(["send-test", "--receiver", "mail", "-c"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("email/0 (email) firing: ok (250 "),
        "{stdout}"
    );
    assert!(stdout.contains("email/0 (email) resolved: ok"), "{stdout}");
    let subjects: Vec<String> = smtp
        .mails()
        .iter()
        .map(|mail| mail.header("Subject").unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["[FIRING:1] HeraldSendTest", "[RESOLVED] HeraldSendTest"]
    );
    assert!(smtp.errors().is_empty(), "{:?}", smtp.errors());
}
