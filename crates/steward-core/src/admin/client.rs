//! The admin API's client: one JSON request over `<state>/admin.sock` with
//! the admin token, for the CLI and the tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use super::AdminToken;

/// Largest answer the client reads (a list of approvals with their bodies).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens on the socket.
    #[error(
        "no steward daemon answers on {path} ({source}); start it with `steward run` (or `systemctl start steward`)",
        path = path.display()
    )]
    NotRunning {
        /// `<state>/admin.sock`
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The admin token cannot be read.
    #[error(
        "cannot read the admin token {path} ({source}); run this command as the user that runs steward (e.g. `sudo -u steward steward ...`)",
        path = path.display()
    )]
    Token {
        /// `<state>/admin.token`
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The exchange failed midway.
    #[error("the admin API did not answer: {0}")]
    Transport(String),
}

/// A client of one daemon's admin API.
#[derive(Debug)]
pub struct AdminClient {
    socket: PathBuf,
    token: AdminToken,
}

impl AdminClient {
    /// A client of the daemon whose state directory holds `socket` and `token`.
    pub fn new(socket: &Path, token: &Path) -> Result<Self, ClientError> {
        let token = AdminToken::read(token).map_err(|source| ClientError::Token { path: token.to_owned(), source })?;
        Ok(Self { socket: socket.to_owned(), token })
    }

    /// Sends one request (`body` as JSON when given) and returns the status
    /// and the JSON answer (`null` for an empty or non-JSON body).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, serde_json::Value), ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::NotRunning { path: self.socket.clone(), source })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let bytes = match body {
            Some(value) => Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "steward-admin")
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token.expose()))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status();
        let collected = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_bytes();
        driver.abort();
        let value = serde_json::from_slice(&collected).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }
}
