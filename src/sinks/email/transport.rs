//! The SMTP side of the `email` integration: a lettre transport for the smarthost (STARTTLS required by default,
//! implicit TLS on port 465 or with `force_implicit_tls`, plain only with `require_tls: false`; PLAIN or LOGIN
//! sign-in), and how an SMTP failure is classified: a 4xx reply is retried, a 5xx reply is permanent, and so is a
//! server that does not offer what the config requires.

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Identity, Tls, TlsParameters, TlsVersion,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{EmailConfig, TlsVersion as MinVersion};
use crate::sinks::{Response, SinkError, http};

/// The SMTP transport `config` describes, timing each command out after `timeout`.
pub fn transport(
    config: &EmailConfig,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = if config.implicit_tls {
        Tls::Wrapper(parameters(config)?)
    } else if config.require_tls {
        Tls::Required(parameters(config)?)
    } else {
        Tls::None
    };
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.smarthost.host.clone())
            .port(config.smarthost.port)
            .hello_name(ClientId::Domain(config.hello.clone()))
            .tls(tls)
            .timeout(Some(timeout));
    if let Some(auth) = &config.auth {
        builder = builder
            .credentials(Credentials::new(
                auth.username.clone(),
                auth.password.expose().to_owned(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}

/// TLS parameters from `tls_config`: the server name (default the smarthost's host), trust roots (the `ca` only,
/// when set), the client certificate, `insecure_skip_verify` and the lowest version.
fn parameters(config: &EmailConfig) -> Result<TlsParameters, String> {
    let tls = &config.tls;
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| config.smarthost.host.clone());
    let mut builder = TlsParameters::builder(name)
        .dangerous_accept_invalid_certs(tls.insecure_skip_verify)
        .set_min_tls_version(match tls.min_version {
            Some(MinVersion::Tls13) => TlsVersion::Tlsv13,
            Some(MinVersion::Tls12) | None => TlsVersion::Tlsv12,
        });
    if let Some(ca) = &tls.ca {
        builder = builder.certificate_store(CertificateStore::None);
        for certificate in &ca.value {
            let certificate = Certificate::from_der(certificate.to_vec())
                .map_err(|error| format!("CA certificate in {}: {error}", ca.origin()))?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(client) = &tls.client {
        let identity = Identity::from_pem(
            certificates_pem(&client.cert.value).as_bytes(),
            key_pem(&client.key.value.0).as_bytes(),
        )
        .map_err(|error| format!("client certificate: {error}"))?;
        builder = builder.identify_with(identity);
    }
    builder
        .build_rustls()
        .map_err(|error| format!("TLS: {error}"))
}

/// PEM text of DER blocks under `label`.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

fn certificates_pem(certificates: &[CertificateDer<'static>]) -> String {
    certificates
        .iter()
        .map(|certificate| pem("CERTIFICATE", certificate))
        .collect()
}

fn key_pem(key: &PrivateKeyDer<'static>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem(label, key.secret_der())
}

/// What the server answered to an accepted mail, as kept in the audit trail.
pub fn accepted(response: &lettre::transport::smtp::response::Response) -> Response {
    let message = response.message().collect::<Vec<_>>().join(" ");
    Response {
        status: None,
        body: http::redact(&format!("{} {message}", response.code()), &[]),
        slow_down: None,
    }
}

/// Classifies a failed send: a 4xx reply (or no reply: refused, reset, timed out, TLS) is retried; a 5xx reply,
/// or a client-side refusal (the server does not offer STARTTLS, or the mail cannot be encoded), is permanent.
/// `secrets` are redacted from the reason.
pub fn failure(error: &lettre::transport::smtp::Error, secrets: &[&str]) -> SinkError {
    let reason = http::redact(&describe(error), secrets);
    let response = error.status().map(|_| Response {
        status: None,
        body: reason.clone(),
        slow_down: None,
    });
    if error.is_permanent() || error.is_client() {
        SinkError::Permanent { reason, response }
    } else {
        SinkError::Retryable { reason, response }
    }
}

/// The error with its sources, on one line.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let mut reason = format!("SMTP: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    reason.split_whitespace().collect::<Vec<_>>().join(" ")
}
