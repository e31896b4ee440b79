//! Auth on herald's own listener: with tokens or basic auth users configured, every endpoint of the router's table
//! but health and readiness refuses a request without a credential (401) or without the right (403); Grafana's
//! HMAC still admits its webhook; the web configuration's headers are on every answer.

use std::path::Path;

use herald::config::{GrafanaSignature, Secret};
use herald::http::routes::{Access, ENDPOINTS};
use reqwest::{Method, StatusCode};

use crate::harness::{Herald, settings};

const HASH_COST: u32 = 4;

/// A web configuration with basic auth user `ops` (password `ops-password`) and two response headers.
pub fn web_config(dir: &Path, extra: &str) -> herald::config::WebConfig {
    let hash = bcrypt::hash("ops-password", HASH_COST).unwrap();
    let text = format!(
        "basic_auth_users:\n  ops: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
         Strict-Transport-Security: max-age=31536000\n{extra}"
    );
    let file = dir.join("web.yml");
    std::fs::write(&file, text).unwrap();
    herald::config::load_web_config(&file).unwrap()
}

fn protected(dir: &Path) -> herald::config::Settings {
    let mut settings = settings(&dir.join("auth.db"), "auth-rcv");
    settings.server.admin_tokens = vec![Secret::new("admin-token")];
    settings.server.ingest_tokens = vec![Secret::new("ingest-token")];
    settings.server.read_tokens = vec![Secret::new("read-token")];
    settings.server.web = Some(std::sync::Arc::new(web_config(dir, "")));
    settings
}

#[derive(Clone, Copy, Debug)]
enum As {
    Nobody,
    Bearer(&'static str),
    Basic(&'static str, &'static str),
}

async fn call(herald: &Herald, method: &Method, path: &str, who: As) -> reqwest::Response {
    let path = path.replace("{id}", "1");
    let mut request = herald.client.request(method.clone(), herald.url(&path));
    if matches!(*method, Method::POST | Method::PUT) {
        request = request
            .header("content-type", "application/json")
            .body("[]");
    }
    request = match who {
        As::Nobody => request,
        As::Bearer(token) => request.bearer_auth(token),
        As::Basic(user, password) => request.basic_auth(user, Some(password)),
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_endpoint_but_health_and_readiness_needs_a_credential_with_its_right() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(protected(dir.path())).await;
    assert!(
        ENDPOINTS.len() > 15,
        "the table lists the router's endpoints"
    );
    for endpoint in ENDPOINTS {
        let (method, path) = (&endpoint.method, endpoint.path);
        let what = format!("{method} {path}");
        let anonymous = call(&herald, method, path, As::Nobody).await;
        if endpoint.access == Access::Open {
            assert_eq!(anonymous.status(), StatusCode::OK, "{what} is open");
            continue;
        }
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenges: Vec<_> = anonymous
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(challenges, ["Basic realm=\"herald\"", "Bearer"], "{what}");
        assert_eq!(anonymous.headers()["x-frame-options"], "deny", "{what}");
        for wrong in [
            As::Bearer("guessed"),
            As::Bearer(""),
            As::Basic("ops", "wrong"),
            As::Basic("nobody", "ops-password"),
        ] {
            let refused = call(&herald, method, path, wrong).await;
            assert_eq!(
                refused.status(),
                StatusCode::UNAUTHORIZED,
                "{what} as {wrong:?}"
            );
        }
        for (who, allowed) in [
            (As::Bearer("admin-token"), true),
            (As::Basic("ops", "ops-password"), true),
            (As::Bearer("read-token"), endpoint.access == Access::Read),
            (
                As::Bearer("ingest-token"),
                endpoint.access == Access::Ingest,
            ),
        ] {
            let status = call(&herald, method, path, who).await.status();
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && status != StatusCode::METHOD_NOT_ALLOWED
                        && status != StatusCode::NOT_FOUND
                        || path.contains("{id}") && status == StatusCode::NOT_FOUND,
                    "{what} as {who:?}: {status}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {who:?}");
            }
        }
    }
    // A method a path does not serve is refused before it is routed; unknown paths stay 404.
    let put = call(&herald, &Method::PUT, "/api/v2/status", As::Nobody).await;
    assert_eq!(put.status(), StatusCode::UNAUTHORIZED);
    let unknown = call(&herald, &Method::GET, "/nowhere", As::Nobody).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let ready = call(&herald, &Method::GET, "/-/ready", As::Nobody).await;
    assert_eq!(
        ready.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    herald.stop().await;
}

#[tokio::test]
async fn a_valid_grafana_signature_still_admits_grafanas_webhook() {
    use hmac::{Hmac, KeyInit, Mac};
    let body = crate::ingest::GRAFANA;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"grafana-s3cret").unwrap();
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&dir.path().join("grafana.db"), "auth-rcv");
    settings.server.ingest_tokens = vec![Secret::new("ingest-token")];
    settings.ingest.grafana_signature = Some(GrafanaSignature {
        secret: Secret::new("grafana-s3cret"),
        timestamp_header: None,
    });
    let herald = Herald::start(settings).await;
    let post = |signature: Option<&str>| {
        let mut request = herald
            .client
            .post(herald.url("/webhook/grafana"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Grafana-Alert-Signature", signature);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("00ff")).await.unwrap().status(), 401);
    assert_eq!(post(Some(&signature)).await.unwrap().status(), 200);
    // Without a credential, the other ingest endpoints stay closed.
    let prometheus = herald.post_json("/api/v2/alerts", "[]").await;
    assert_eq!(prometheus.status(), 401);
    herald.stop().await;
}
