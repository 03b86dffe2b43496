//! The dashboard's TLS (rustls, the aws-lc-rs provider the rest of steward
//! uses): loading `tls_cert`/`tls_key`, and a listener that hands axum only
//! connections whose handshake finished.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::DashboardError;
use crate::config::DashboardTls;

/// A handshake slower than this is dropped: it would hold up the accept loop.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor for `files`.
pub(super) fn acceptor(files: &DashboardTls) -> Result<TlsAcceptor, DashboardError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| DashboardError::Tls { what: "certificate", path: files.cert.clone(), detail: e.to_string() })?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| DashboardError::Tls {
        what: "key",
        path: files.key.clone(),
        detail: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| DashboardError::Tls { what: "certificate", path: files.cert.clone(), detail: e.to_string() })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// TCP plus a TLS handshake per connection.
pub(super) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        Self { tcp, acceptor }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::debug!(error = %err, "dashboard accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(err)) => tracing::debug!(error = %err, "dashboard TLS handshake failed"),
                Err(_) => tracing::debug!("dashboard TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
