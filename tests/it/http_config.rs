//! `http_config` end to end: alerts posted to herald's HTTP ingest reach webhooks over mutual TLS with a CA the
//! test made, through a forwarding proxy, with OAuth2 client-credentials tokens (cached until shortly before they
//! expire on the injected clock, fetched again once when refused), and with `http_headers`.

use std::time::Duration;

use herald::config::Settings;

use crate::delivery::manual_clock;
use crate::harness::{Herald, firing};
use crate::http_peers::{ForwardProxy, OAuth2Server};
use crate::pki::{SERVER_NAME, TestPki};
use crate::receiver::ScriptedReceiver;

/// Settings from `receivers` (YAML of one receiver named `hooks`, indented as a list item), with the store in
/// `dir`, herald on a free port and group_wait 0.
pub fn settings(dir: &std::path::Path, receivers: &str) -> Settings {
    let yaml = format!(
        "server: {{listen: '127.0.0.1:0'}}\nstorage: {{url: 'sqlite://{}'}}\n\
         route: {{receiver: hooks, group_by: [alertname], group_wait: 0s}}\nreceivers:\n{receivers}",
        dir.join("h.db").display()
    );
    match herald::config::load_str(&yaml, "test.yaml") {
        Ok(loaded) => loaded.settings,
        Err(errors) => panic!("{errors}\n{yaml}"),
    }
}

/// The deliveries of integration `key`, newest first.
async fn of(herald: &Herald, key: &str) -> Vec<serde_json::Value> {
    herald
        .deliveries("")
        .await
        .into_iter()
        .filter(|d| d["integration_key"] == key)
        .collect()
}

/// Waits until the newest delivery of integration `key` satisfies `done`; returns it.
pub async fn wait_for_key(
    herald: &Herald,
    key: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..2400 {
        if let Some(newest) = of(herald, key).await.first()
            && done(newest)
        {
            return newest.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{key} never became {what}: {:#?}", of(herald, key).await);
}

#[tokio::test]
async fn mutual_tls_with_the_test_ca_a_client_certificate_and_a_server_name() {
    let clock = manual_clock();
    let pki = TestPki::new();
    let (receiver, failures) =
        crate::tls_listener::scripted_receiver(clock.clone(), pki.server_config(true)).await;
    let url = receiver.url();
    let dir = tempfile::tempdir().unwrap();
    let tls = |extra: &str| {
        format!(
            "{{ca_file: '{}', server_name: {SERVER_NAME}{extra}}}",
            pki.ca_file.display()
        )
    };
    let client = format!(
        ", cert_file: '{}', key_file: '{}'",
        pki.client_cert_file.display(),
        pki.client_key_file.display()
    );
    let receivers = format!(
        "  - name: hooks\n    webhook_configs:\n      \
         - {{url: '{url}', http_config: {{tls_config: {}}}}}\n      \
         - {{url: '{url}', http_config: {{tls_config: {}}}}}\n      \
         - {{url: '{url}', http_config: {{tls_config: {{ca_file: '{}'{client}}}}}}}\n",
        tls(&client),
        tls(""),
        pki.other_ca_file.display()
    );
    let herald = Herald::start_with_clock(settings(dir.path(), &receivers), clock.clone()).await;

    let posted = herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Tls")))
        .await;
    assert_eq!(posted.status(), 200);
    let delivered = wait_for_key(&herald, "webhook/0", "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(delivered["attempts"], 1);
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        1,
        "only the client with its certificate gets through"
    );
    assert_eq!(requests[0].body["alerts"][0]["labels"]["alertname"], "Tls");

    // Without a client certificate the server refuses the handshake; with another CA herald refuses the server.
    let refused = wait_for_key(&herald, "webhook/1", "failed", |d| d["attempts"] == 1).await;
    assert_eq!(refused["state"], "pending", "a TLS failure is retried");
    let untrusted = wait_for_key(&herald, "webhook/2", "failed", |d| d["attempts"] == 1).await;
    assert_eq!(untrusted["state"], "pending");
    let reason = untrusted["last_error"].as_str().unwrap();
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
    assert!(
        !failures.lock().unwrap().is_empty(),
        "the server saw refused handshakes"
    );
    herald.stop().await;
}

#[tokio::test]
async fn a_proxy_with_credentials_carries_the_requests() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    let proxy = ForwardProxy::start(Some(("herald", "pr0xy-pa55")), clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let receivers = format!(
        "  - name: hooks\n    webhook_configs:\n      \
         - {{url: '{}', http_config: {{proxy_url: 'http://herald:pr0xy-pa55@{}'}}}}\n",
        receiver.url(),
        proxy.addr
    );
    let herald = Herald::start_with_clock(settings(dir.path(), &receivers), clock.clone()).await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Proxied")))
        .await;
    wait_for_key(&herald, "webhook/0", "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;
    let proxied = proxy.requests();
    assert_eq!(proxied.len(), 1);
    assert_eq!(proxied[0].target, receiver.url());
    assert_eq!(proxied[0].answered, 200);
    assert!(
        proxied[0]
            .proxy_authorization
            .as_deref()
            .is_some_and(|value| value.starts_with("Basic ")),
        "the proxy's credentials come from proxy_url"
    );
    assert!(proxy.errors().is_empty(), "{:?}", proxy.errors());
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].headers.get("proxy-authorization").is_none());
    assert_eq!(
        requests[0].body["alerts"][0]["labels"]["alertname"],
        "Proxied"
    );
    herald.stop().await;
}

#[tokio::test]
async fn oauth2_tokens_are_cached_refreshed_before_expiry_and_fetched_again_when_refused() {
    let clock = manual_clock();
    let auth = OAuth2Server::start("herald-client", "cl1ent/s3cret", 300, clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let receivers = format!(
        "  - name: hooks\n    webhook_configs:\n      \
         - url: '{}'\n        http_config:\n          oauth2:\n            client_id: herald-client\n            \
         client_secret: cl1ent/s3cret\n            token_url: '{}'\n            scopes: [alerts.write, audit]\n            \
         endpoint_params: {{audience: hooks}}\n",
        auth.hook_url(),
        auth.token_url()
    );
    let herald = Herald::start_with_clock(settings(dir.path(), &receivers), clock.clone()).await;

    // Two groups: one token serves both.
    herald
        .post_json(
            "/api/v2/alerts",
            format!("[{},{}]", firing("One"), firing("Two")),
        )
        .await;
    let seen = auth.wait_for_accepted(2).await;
    let tokens = auth.tokens();
    assert_eq!(tokens.len(), 1, "{tokens:#?}");
    assert_eq!(tokens[0].form["grant_type"], "client_credentials");
    assert_eq!(tokens[0].form["scope"], "alerts.write audit");
    assert_eq!(tokens[0].form["audience"], "hooks");
    assert!(
        seen.iter()
            .all(|d| d.token == tokens[0].issued && d.answered == 200)
    );
    let mut names: Vec<&str> = seen
        .iter()
        .map(|d| d.body["alerts"][0]["labels"]["alertname"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["One", "Two"]);

    // Shortly before it expires (300s), the token is replaced before it is used: no 401.
    clock.advance(Duration::from_secs(295));
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Three")))
        .await;
    let seen = auth.wait_for_accepted(3).await;
    let tokens = auth.tokens();
    assert_eq!(tokens.len(), 2);
    assert_eq!(seen.last().unwrap().token, tokens[1].issued);
    assert_eq!(tokens[1].at - tokens[0].at, chrono::Duration::seconds(295));
    assert_eq!(seen.last().unwrap().at, tokens[1].at);
    assert!(seen.iter().all(|d| d.answered == 200), "{seen:#?}");

    // A token the server no longer knows: refused once, fetched again, sent again in the same attempt.
    auth.revoke_all();
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Four")))
        .await;
    let seen = auth.wait_for_accepted(4).await;
    let tokens = auth.tokens();
    assert_eq!(tokens.len(), 3);
    let answers: Vec<u16> = seen.iter().map(|d| d.answered).collect();
    assert_eq!(answers, [200, 200, 200, 401, 200]);
    let four = wait_for_key(&herald, "webhook/0", "delivered", |d| {
        d["state"] == "delivered" && d["group_key"].as_str().unwrap().contains("Four")
    })
    .await;
    assert_eq!(four["attempts"], 1, "the refused token cost no attempt");
    assert!(auth.errors().is_empty(), "{:?}", auth.errors());
    herald.stop().await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_permanent_failure_without_the_secret() {
    let clock = manual_clock();
    let auth = OAuth2Server::start("herald-client", "right-secret", 300, clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let receivers = format!(
        "  - name: hooks\n    webhook_configs:\n      \
         - url: '{}'\n        http_config: {{oauth2: {{client_id: herald-client, client_secret: wr0ng-secret, \
         token_url: '{}'}}}}\n",
        auth.hook_url(),
        auth.token_url()
    );
    let herald = Herald::start_with_clock(settings(dir.path(), &receivers), clock.clone()).await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Denied")))
        .await;
    let dead = wait_for_key(&herald, "webhook/0", "dead", |d| d["state"] == "dead").await;
    let reason = dead["last_error"].as_str().unwrap();
    assert!(
        reason.contains("OAuth2 token request failed: HTTP 401"),
        "{reason}"
    );
    assert!(reason.contains("invalid_client"), "{reason}");
    assert!(!reason.contains("wr0ng-secret"));
    assert!(auth.deliveries().is_empty(), "nothing sent without a token");
    herald.stop().await;
}

#[tokio::test]
async fn http_headers_carry_values_secrets_and_files() {
    let clock = manual_clock();
    let receiver = ScriptedReceiver::start(clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("header-token");
    std::fs::write(&file, "f1le-t0ken\n").unwrap();
    let receivers = format!(
        "  - name: hooks\n    webhook_configs:\n      \
         - url: '{}'\n        http_config:\n          bearer_token: b3arer-cred\n          http_headers:\n            \
         X-Team: {{values: [db, ops]}}\n            X-Token: {{secrets: [h3ader-s3cret], files: ['{}']}}\n",
        receiver.url(),
        file.display()
    );
    let herald = Herald::start_with_clock(settings(dir.path(), &receivers), clock.clone()).await;
    herald
        .post_json("/api/v2/alerts", format!("[{}]", firing("Headers")))
        .await;
    let request = receiver.wait_for(1).await[0].clone();
    let all = |name: &str| -> Vec<String> {
        request
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(all("x-team"), ["db", "ops"]);
    assert_eq!(all("x-token"), ["h3ader-s3cret", "f1le-t0ken"]);
    assert_eq!(all("authorization"), ["Bearer b3arer-cred"]);
    assert_eq!(all("content-type"), ["application/json"]);
    herald.stop().await;
}
