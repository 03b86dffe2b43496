//! steward's own outbound traffic: alert sinks, the dead-man heartbeat and
//! token introspection. This module owns the HTTP client they share and the
//! secrets their destinations reference (webhook URLs with a token inside,
//! an ntfy token, an SMTP password, the heartbeat URL).
//!
//! `secrets` resolves those references next to the credentials, under the
//! labels named here; `monitor` reads them back by the same labels. The
//! agent's own calls never use this client: they go through the pipeline's
//! forwarder, one client per upstream.
//!
//! It also owns how every outbound HTTP client of the process is built
//! ([`client_builder`]): the forwarder's, the MCP client's, Vault's, the
//! health check's and this module's own.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::{Config, CredentialSource, SinkKind};

/// The HTTP client steward's own requests share: rustls, no redirects (a
/// webhook URL with its token must not be replayed elsewhere), bounded
/// connect time. The error carries no URL.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(reqwest::Error::without_url)
}

/// A `reqwest` client builder whose TLS verifies servers against the
/// platform's roots (as reqwest's own default does, through
/// `rustls-platform-verifier`), with the roots read on the client's first
/// TLS handshake instead of when it is built.
///
/// Reading the system's CA bundle and certificate directory costs ~25 ms
/// of CPU and ~1 MB per client; reqwest's default pays it in `build()`,
/// for every client, on `steward run`'s path to ready (twice with one
/// upstream) and in every CLI command that builds a client. Most of
/// steward's clients talk plain HTTP to loopback and never need the roots.
/// Each builder gets its own lazy verifier, so a client built after a
/// reload reads the roots afresh, as before.
pub fn client_builder() -> reqwest::ClientBuilder {
    match tls_config(&[b"h2", b"http/1.1"]) {
        Ok(config) => reqwest::Client::builder().tls_backend_preconfigured(config),
        // Unreachable with aws-lc-rs's default suites; reqwest's own
        // default verifies against the same roots, read eagerly.
        Err(_) => reqwest::Client::builder(),
    }
}

/// The rustls client config of [`client_builder`] (with ALPN `h2` then
/// `http/1.1`, what reqwest offers by default) and of the fleet store's
/// connections (ALPN `postgresql`): the process's crypto provider
/// (aws-lc-rs), TLS 1.2 and 1.3, and a [`LazyPlatformVerifier`].
pub(crate) fn tls_config(alpn: &[&[u8]]) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = Arc::new(LazyPlatformVerifier { provider: Arc::clone(&provider), inner: OnceLock::new() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A rustls client config that trusts only `roots` (a private CA, such as
/// a database's `sslrootcert`), with the process's crypto provider and
/// ALPN `alpn`.
pub(crate) fn tls_config_with_roots(
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// `rustls_platform_verifier::Verifier`, built on the first certificate it
/// is asked to verify. Signatures are checked with the provider's
/// algorithms, as the platform verifier does, without needing the roots.
/// If the platform has no usable roots, every handshake fails with the
/// platform verifier's error (fail closed), as building the client used to.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn inner(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| rustls_platform_verifier::Verifier::new(Arc::clone(&self.provider)))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Every secret reference of `[alerts]`, `[heartbeat]` and `[store]`, with the label
/// its value is stored under in [`crate::secrets::Secrets`]. Labels contain
/// `:`, which credential names cannot, so they never collide.
pub fn secret_references(config: &Config) -> Vec<(String, CredentialSource)> {
    let mut out = Vec::new();
    for sink in &config.alerts.sinks {
        match &sink.kind {
            SinkKind::Webhook { url } | SinkKind::Slack { url } | SinkKind::Discord { url } => {
                out.push((secret_label(&sink.name, "url"), url.clone()));
            }
            SinkKind::Ntfy { url, token } => {
                out.push((secret_label(&sink.name, "url"), url.clone()));
                if let Some(token) = token {
                    out.push((secret_label(&sink.name, "token"), token.clone()));
                }
            }
            SinkKind::Email(email) => {
                if let Some(password) = &email.password {
                    out.push((secret_label(&sink.name, "password"), password.clone()));
                }
            }
            SinkKind::Command { .. } => {}
        }
    }
    if let Some(heartbeat) = &config.heartbeat {
        out.push((HEARTBEAT_URL_LABEL.to_owned(), heartbeat.url.clone()));
    }
    if let Some(fleet) = &config.store.fleet {
        out.push((crate::config::STORE_URL_LABEL.to_owned(), fleet.url.clone()));
    }
    out
}

/// The [`crate::secrets::Secrets`] label of the heartbeat URL.
pub const HEARTBEAT_URL_LABEL: &str = "heartbeat:url";

/// The [`crate::secrets::Secrets`] label of a sink's `key` (`url`, `token`, `password`).
pub fn secret_label(sink: &str, key: &str) -> String {
    format!("alerts:{sink}:{key}")
}

#[cfg(test)]
mod tests;
