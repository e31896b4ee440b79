use std::path::Path;

use super::*;

/// A self-signed certificate and its key, as PEM.
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn parse(text: &str, base: &Path) -> Result<WebConfig, Vec<String>> {
    parse_web_config(text, Path::new("web.yml"), base)
        .map_err(|issues| issues.iter().map(ToString::to_string).collect())
}

fn issues(text: &str) -> Vec<String> {
    parse(text, Path::new("/nonexistent")).unwrap_err()
}

#[test]
fn an_empty_file_or_empty_sections_change_nothing() {
    for text in [
        "",
        "# nothing\n",
        "tls_server_config: {}\nbasic_auth_users:\n",
        "http_server_config: {http2: true}\n",
    ] {
        let config = parse(text, Path::new(".")).unwrap();
        assert!(config.tls.is_none(), "{text:?}");
        assert!(config.basic_auth_users.is_empty());
        assert!(config.headers.is_empty());
    }
}

#[test]
fn users_headers_and_tls_with_paths_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &cert).unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let text = format!(
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_ca_file: ca.pem\n  \
         client_auth_type: VerifyClientCertIfGiven\n  min_version: TLS13\n\
         basic_auth_users:\n  alice: {hash}\n\
         http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    );
    let file = dir.path().join("web.yml");
    std::fs::write(&file, text).unwrap();
    let config = load_web_config(&file).unwrap();
    let tls = config.tls.as_ref().unwrap();
    assert_eq!(tls.client_auth, ClientAuth::VerifyIfGiven);
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    // herald speaks HTTP/1.1 only, so h2 is never offered.
    assert_eq!(tls.rustls.alpn_protocols, [b"http/1.1".to_vec()]);
    assert_eq!(config.basic_auth_users["alice"].expose(), hash);
    assert_eq!(config.headers[0].0.as_str(), "x-content-type-options");
    assert_eq!(config.headers[0].1, "nosniff");
    let shown = format!("{config:?}");
    assert!(!shown.contains(&hash), "{shown}");

    // Inline PEM works as well.
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        cert.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>(),
        key.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let config = parse(&inline, dir.path()).unwrap();
    assert_eq!(config.tls.unwrap().client_auth, ClientAuth::None);
}

#[test]
fn every_problem_is_named_by_its_key_path_without_its_value() {
    let found = issues(
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing-key.pem\n  min_version: TLS10\n  \
         client_auth_type: RequireAnyClientCert\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  bogus: 1\n\
         basic_auth_users:\n  alice: not-a-hash-SECRETISH\n  bob: 12\n\
         http_server_config:\n  headers:\n    Content-Type: text/plain\n    X-Bad: \"a\\nb-SECRETISH\"\n  other: 1\n\
         extra: 1\n",
    );
    for expected in [
        "tls_server_config.min_version: TLS 1.0 and 1.1 are not supported",
        "tls_server_config.client_auth_type: client certificates are always verified",
        "tls_server_config.cipher_suites: is not supported by herald",
        "tls_server_config.bogus: unknown key",
        "basic_auth_users.alice: is not a bcrypt hash",
        "basic_auth_users.bob: must be a bcrypt hash (a string)",
        "http_server_config.headers.Content-Type: is set by herald",
        "http_server_config.headers.X-Bad: is not a valid header value",
        "http_server_config.other: unknown key",
        "extra: unknown key",
    ] {
        assert!(
            found.iter().any(|issue| issue.starts_with(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
    assert!(
        !found.iter().any(|issue| issue.contains("SECRETISH")),
        "{found:#?}"
    );
}

#[test]
fn tls_needs_a_readable_matching_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    std::fs::write(dir.path().join("other-key.pem"), &other_key).unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let check = |text: &str| parse(text, dir.path()).unwrap_err();
    let only_cert = check("tls_server_config: {cert_file: cert.pem}\n");
    assert!(
        only_cert[0].contains("needs cert_file (or cert) and key_file (or key)"),
        "{only_cert:?}"
    );
    let missing = check("tls_server_config: {cert_file: nope.pem, key_file: key.pem}\n");
    assert!(
        missing[0].starts_with("tls_server_config.cert_file: cannot read file"),
        "{missing:?}"
    );
    let empty = check("tls_server_config: {cert_file: cert.pem, key_file: empty.pem}\n");
    assert!(
        empty[0].starts_with("tls_server_config.key_file: holds no PEM private key"),
        "{empty:?}"
    );
    let mismatched = check("tls_server_config: {cert_file: cert.pem, key_file: other-key.pem}\n");
    assert!(
        mismatched[0].contains("cannot be used together"),
        "{mismatched:?}"
    );
    assert!(!mismatched[0].contains("PRIVATE KEY"), "{mismatched:?}");
    let ca_without_policy = check(
        "tls_server_config: {cert_file: cert.pem, key_file: key.pem, client_ca_file: cert.pem}\n",
    );
    assert!(
        ca_without_policy[0].starts_with("tls_server_config.client_auth_type: must be"),
        "{ca_without_policy:?}"
    );
    let policy_without_ca = check(
        "tls_server_config: {cert_file: cert.pem, key_file: key.pem, client_auth_type: RequireAndVerifyClientCert}\n",
    );
    assert!(
        policy_without_ca[0].starts_with("tls_server_config.client_ca_file: must be set"),
        "{policy_without_ca:?}"
    );
    let versions = check(
        "tls_server_config: {cert_file: cert.pem, key_file: key.pem, min_version: TLS13, max_version: TLS12}\n",
    );
    assert!(
        versions[0].starts_with("tls_server_config.max_version: must not be lower"),
        "{versions:?}"
    );
}

#[test]
fn the_herald_configuration_reports_web_config_problems_under_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yml");
    std::fs::write(&file, "basic_auth_users: {alice: plain-password}\n").unwrap();
    let yaml = format!("server:\n  web_config_file: {}\n", file.display());
    let errors = crate::config::load_errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "herald.yaml: server.web_config_file: {:?}: basic_auth_users.alice: is not a bcrypt hash",
            file.display().to_string()
        )),
        "{errors:?}"
    );
    assert!(!errors[0].contains("plain-password"), "{errors:?}");
    let missing = crate::config::load_errors("server:\n  web_config_file: /nonexistent/web.yml\n");
    assert!(
        missing[0].contains("\"/nonexistent/web.yml\": cannot read file"),
        "{missing:?}"
    );

    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&file, format!("basic_auth_users: {{alice: '{hash}'}}\n")).unwrap();
    let settings = crate::config::load_str(&yaml, "h.yaml").unwrap().settings;
    assert!(settings.server.auth_enabled());
    let summary = crate::config::summary(&crate::config::load_str(&yaml, "h.yaml").unwrap());
    assert!(summary.contains("1 basic auth user"), "{summary}");
    assert!(!summary.contains(&hash), "{summary}");
}
