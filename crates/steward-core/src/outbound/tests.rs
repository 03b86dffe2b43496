use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client_builder;

/// A TLS server on 127.0.0.1 with the test certificate (issued by a test CA
/// that no system trusts), answering one fixed HTTP/1.1 response per
/// connection. Returns its port and the ALPN protocol each handshake chose.
async fn tls_server() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Option<Vec<u8>>>) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../steward/tests/fixtures");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixtures.join("dashboard-test.crt")).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(fixtures.join("dashboard-test.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else { continue };
            let _ = tx.send(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            let _ = tls.shutdown().await;
        }
    });
    (port, rx)
}

/// The roots are read lazily, but a server the platform does not trust is
/// still refused: the handshake fails on the certificate, nothing is sent.
#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let (port, mut handshakes) = tls_server().await;
    let client = client_builder().build().unwrap();
    let err = client.get(format!("https://127.0.0.1:{port}/")).send().await.unwrap_err();
    let chain = {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    };
    assert!(chain.contains("certificate") && chain.contains("UnknownIssuer"), "{chain}");
    assert!(handshakes.try_recv().is_err(), "no handshake may complete");
}

/// The same client over plain HTTP needs no roots at all.
#[tokio::test]
async fn plain_http_works_without_roots() {
    let mock = mock_upstream::MockUpstream::start().await.unwrap();
    let client = client_builder().build().unwrap();
    let response = client.get(format!("{}/healthz", mock.base_url())).send().await.unwrap();
    assert!(response.status().is_success() || response.status().is_client_error(), "{}", response.status());
    mock.shutdown().await;
}
