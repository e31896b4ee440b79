//! rustls client configurations from a `tls_config`: the trust roots (`ca` replaces the system's), the client
//! certificate for mutual TLS, the name the server's certificate is checked against (`server_name`), the lowest
//! TLS version, and `insecure_skip_verify`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{TlsSettings, TlsVersion};

/// The crypto provider herald's TLS uses (the one reqwest uses).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the rustls client configuration `tls` describes. The error says what failed, never key material.
pub fn client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        Some(TlsVersion::Tls12) | None => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|error| format!("TLS versions: {error}"))?;
    let verifier = verifier(tls, &provider)?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &tls.client {
        Some(identity) => builder
            .with_client_auth_cert(
                identity.cert.value.clone(),
                identity.key.value.0.clone_key(),
            )
            .map_err(|error| format!("client certificate: {error}")),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// How the server's certificate is checked.
fn verifier(
    tls: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    if tls.insecure_skip_verify {
        return Ok(Arc::new(AcceptAnyCertificate {
            provider: Arc::clone(provider),
        }));
    }
    let base: Arc<dyn ServerCertVerifier> = match &tls.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in &ca.value {
                roots
                    .add(certificate.clone())
                    .map_err(|error| format!("CA certificate in {}: {error}", ca.origin()))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(provider),
            )
            .build()
            .map_err(|error| format!("CA certificates in {}: {error}", ca.origin()))?
        }
        None => Arc::new(
            rustls_platform_verifier::Verifier::new(Arc::clone(provider))
                .map_err(|error| format!("the system's trust roots: {error}"))?,
        ),
    };
    Ok(match &tls.server_name {
        Some(name) => Arc::new(FixedServerName {
            inner: base,
            name: ServerName::try_from(name.clone())
                .map_err(|error| format!("server_name {name:?}: {error}"))?,
        }),
        None => base,
    })
}

/// Checks the server's certificate against a configured name instead of the URL's host.
#[derive(Debug)]
struct FixedServerName {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate is accepted; the handshake's signatures are still checked, so the
/// connection is encrypted to whoever holds the presented certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
