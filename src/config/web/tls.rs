//! `tls_server_config` of a web configuration: the certificate and key, the client CA and client auth policy, the
//! protocol versions, and the rustls server configuration built from them (so a certificate that does not load is a
//! configuration error, found by `check-config`, never a failed start).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use yaml_rust2::Yaml;

use super::{Parser, TlsServer};
use crate::config::TlsVersion;

/// `client_auth_type`, as exporter-toolkit (Go's `tls.ClientAuthType`) names it; the two that take a certificate
/// without verifying it are not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (the default).
    None,
    /// `VerifyClientCertIfGiven`: a client may present no certificate; one it presents must verify.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`.
    Require,
}

/// `min_version` / `max_version`: TLS12 or TLS13 (rustls has no older ones).
fn parse_version(text: &str) -> Result<TlsVersion, &'static str> {
    match text {
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS10" | "TLS11" => Err("TLS 1.0 and 1.1 are not supported: use TLS12 or TLS13"),
        _ => Err("must be TLS12 or TLS13"),
    }
}

/// Certificate material: a file (relative to the web configuration's directory) or inline PEM.
enum Pem {
    File(PathBuf),
    Inline(String),
}

impl Pem {
    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|error| {
                format!("cannot read file {:?}: {error}", path.display().to_string())
            }),
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }
}

/// Keys Go's and exporter-toolkit's TLS settings have that herald does not take (rustls chooses the cipher suites
/// and curves; client certificate SANs are not checked).
const UNSUPPORTED: &[&str] = &["cipher_suites", "curve_preferences", "client_allowed_sans"];

pub(super) fn parse(parser: &mut Parser<'_>, value: &Yaml) -> Option<TlsServer> {
    let mut cert = None;
    let mut key = None;
    let mut client_ca = None;
    let mut client_auth = None;
    let mut min_version = TlsVersion::Tls12;
    let mut max_version = TlsVersion::Tls13;
    let before = parser.issues.len();
    for (name, value) in parser.map("tls_server_config", value)? {
        let path = format!("tls_server_config.{name}");
        match name.as_str() {
            "cert_file" => {
                cert = parser
                    .string(&path, value)
                    .map(|f| (path, Pem::File(parser.path(&f))))
            }
            "cert" => cert = parser.string(&path, value).map(|t| (path, Pem::Inline(t))),
            "key_file" => {
                key = parser
                    .string(&path, value)
                    .map(|f| (path, Pem::File(parser.path(&f))))
            }
            "key" => key = parser.string(&path, value).map(|t| (path, Pem::Inline(t))),
            "client_ca_file" => {
                client_ca = parser
                    .string(&path, value)
                    .map(|f| (path, Pem::File(parser.path(&f))));
            }
            "client_auth_type" => {
                client_auth = match parser.string(&path, value).as_deref() {
                    None | Some("" | "NoClientCert") => Some(ClientAuth::None),
                    Some("VerifyClientCertIfGiven") => Some(ClientAuth::VerifyIfGiven),
                    Some("RequireAndVerifyClientCert") => Some(ClientAuth::Require),
                    Some("RequestClientCert" | "RequireAnyClientCert") => {
                        parser.issue(
                            &path,
                            "client certificates are always verified by herald: use VerifyClientCertIfGiven or \
                             RequireAndVerifyClientCert",
                        );
                        None
                    }
                    Some(_) => {
                        parser.issue(
                            &path,
                            "must be NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                        );
                        None
                    }
                };
            }
            "min_version" | "max_version" => {
                if let Some(text) = parser.string(&path, value) {
                    match parse_version(&text) {
                        Ok(version) if name == "min_version" => min_version = version,
                        Ok(version) => max_version = version,
                        Err(message) => parser.issue(&path, message),
                    }
                }
            }
            // Go's server always prefers its own order when asked to; rustls decides the order itself.
            "prefer_server_cipher_suites" => {}
            _ if UNSUPPORTED.contains(&name.as_str()) => {
                parser.issue(&path, "is not supported by herald")
            }
            _ => parser.issue(&path, "unknown key"),
        }
    }
    if parser.issues.len() > before {
        return None;
    }
    let client_auth = client_auth.unwrap_or(ClientAuth::None);
    if cert.is_none() && key.is_none() && client_ca.is_none() && client_auth == ClientAuth::None {
        // exporter-toolkit serves plain HTTP for an empty tls_server_config.
        return None;
    }
    if min_version > max_version {
        parser.issue(
            "tls_server_config.max_version",
            "must not be lower than min_version",
        );
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        parser.issue(
            "tls_server_config",
            "needs cert_file (or cert) and key_file (or key)",
        );
        return None;
    };
    let roots = match (&client_ca, client_auth) {
        (None, ClientAuth::None) => None,
        (Some(_), ClientAuth::None) => {
            parser.issue(
                "tls_server_config.client_auth_type",
                "must be VerifyClientCertIfGiven or RequireAndVerifyClientCert when client_ca_file is set",
            );
            None
        }
        (None, _) => {
            parser.issue(
                "tls_server_config.client_ca_file",
                "must be set to verify client certificates",
            );
            None
        }
        (Some((path, pem)), _) => certificates(parser, path, pem).and_then(|certs| {
            let mut roots = rustls::RootCertStore::empty();
            let (_, ignored) = roots.add_parsable_certificates(certs);
            if roots.is_empty() || ignored > 0 {
                parser.issue(
                    path,
                    "holds a certificate that is not a valid CA certificate",
                );
                return None;
            }
            Some(Arc::new(roots))
        }),
    };
    let chain = certificates(parser, &cert.0, &cert.1);
    let private = match key.1.read() {
        Ok(bytes) => PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|_| parser.issue(&key.0, "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"))
            .ok(),
        Err(message) => {
            parser.issue(&key.0, message);
            None
        }
    };
    if parser.issues.len() > before {
        return None;
    }
    let (chain, private) = (chain?, private?);
    match build(chain, private, roots, client_auth, min_version, max_version) {
        Ok(config) => Some(TlsServer {
            client_auth,
            min_version,
            max_version,
            rustls: Arc::new(config),
        }),
        Err(message) => {
            parser.issue("tls_server_config", message);
            None
        }
    }
}

fn certificates(
    parser: &mut Parser<'_>,
    path: &str,
    pem: &Pem,
) -> Option<Vec<CertificateDer<'static>>> {
    let bytes = match pem.read() {
        Ok(bytes) => bytes,
        Err(message) => {
            parser.issue(path, message);
            return None;
        }
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Some(certs),
        _ => {
            parser.issue(path, "holds no PEM certificate");
            None
        }
    }
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Option<Arc<rustls::RootCertStore>>,
    client_auth: ClientAuth,
    min_version: TlsVersion,
    max_version: TlsVersion,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(version, _)| (min_version..=max_version).contains(version))
    .map(|(_, version)| version)
    .collect();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|error| format!("cannot use these TLS versions: {error}"))?;
    let builder = match (roots, client_auth) {
        (Some(roots), ClientAuth::Require | ClientAuth::VerifyIfGiven) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if client_auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|error| format!("cannot verify clients with client_ca_file: {error}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|error| format!("the certificate and key cannot be used together: {error}"))?;
    // herald serves HTTP/1.1: a client offered h2 must not pick it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
