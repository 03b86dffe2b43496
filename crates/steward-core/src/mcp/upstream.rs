//! The one face the hub sees of an `[mcp.*]` server, whichever way steward
//! reaches it: a process it runs over stdio (`stdio`) or a server it is the
//! client of over streamable HTTP (`http`). The hub's sessions, id
//! rewriting, cancellation and progress routing are written once against
//! [`Upstream`]; only framing, connection and restart differ below it.

use serde_json::{Value, json};

use super::http::HttpServer;
use super::stdio::StdioServer;
use crate::pipeline::McpForwardError;

/// Where messages the server starts go (the hub's sessions).
pub trait ServerMessages: Send + Sync {
    /// A request from the server (sampling, elicitation, roots): to the
    /// session it belongs to. `false` when no session can take it.
    fn server_request(&self, message: Value) -> bool;
    /// A notification from the server.
    fn server_notification(&self, message: Value);
}

/// Where a server is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Not started (stdio) or not contacted (HTTP) yet: the first session does it.
    Idle,
    /// A stdio server running and initialized.
    Running,
    /// A stdio server that exited; started again by the next request.
    Exited,
    /// A stdio server that crash-looped: refused until steward restarts.
    Fatal(String),
    /// An HTTP server whose latest exchange succeeded.
    Reachable,
    /// An HTTP server whose latest exchange failed, and why (redacted).
    Unreachable(String),
}

impl ServerState {
    /// One word for `steward mcp list`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ServerState::Idle => "idle",
            ServerState::Running => "running",
            ServerState::Exited => "exited",
            ServerState::Fatal(_) => "fatal",
            ServerState::Reachable => "reachable",
            ServerState::Unreachable(_) => "unreachable",
        }
    }

    /// Why the server is refused or unreachable, when it is.
    pub fn last_error(&self) -> Option<&str> {
        match self {
            ServerState::Fatal(reason) | ServerState::Unreachable(reason) => Some(reason),
            _ => None,
        }
    }
}

/// An `[mcp.*]` server as the hub drives it.
#[derive(Debug)]
pub enum Upstream {
    /// A process steward runs (`command`).
    Stdio(StdioServer),
    /// A streamable-HTTP server steward is the client of (`url`).
    Http(HttpServer),
}

impl Upstream {
    /// The largest message either way, in bytes.
    pub fn max_message_size(&self) -> usize {
        match self {
            Upstream::Stdio(server) => server.max_message_size(),
            Upstream::Http(server) => server.max_message_size(),
        }
    }

    /// Where the server is in its life.
    pub fn state(&self) -> ServerState {
        match self {
            Upstream::Stdio(server) => server.state(),
            Upstream::Http(server) => server.state(),
        }
    }

    /// The server's `initialize` result for a client that sent `params`
    /// (the server started or connected, and initialized, if needed).
    pub async fn initialize(&self, params: &Value) -> Result<Value, McpForwardError> {
        match self {
            Upstream::Stdio(server) => server.initialize(params).await,
            Upstream::Http(server) => server.initialize(params).await,
        }
    }

    /// Sends the request `method` with `params` and waits for the server's
    /// response message (`result` or `error`, id already steward's).
    /// `on_sent` learns the id steward gave it (for cancellation).
    /// `replayable`: the request may be sent again when the connection
    /// broke while it was in flight (it cannot act twice); a request the
    /// server provably never processed (HTTP 404 for a lost session) is
    /// sent again either way. stdio never re-sends.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        replayable: bool,
        on_sent: impl FnOnce(u64),
    ) -> Result<Value, McpForwardError> {
        match self {
            Upstream::Stdio(server) => server.request(method, params, on_sent).await,
            Upstream::Http(server) => server.request(method, params, replayable, on_sent).await,
        }
    }

    /// Stops waiting for steward's request `id` (the agent cancelled it).
    pub async fn abandon(&self, id: u64) {
        match self {
            Upstream::Stdio(server) => server.abandon(id).await,
            Upstream::Http(server) => server.abandon(id),
        }
    }

    /// Sends a notification or a response to the server.
    pub async fn notify(&self, message: &Value) -> Result<(), McpForwardError> {
        match self {
            Upstream::Stdio(server) => server.notify(message).await,
            Upstream::Http(server) => server.notify(message).await,
        }
    }
}

/// The `initialize` params a server is (re)started with: the first
/// client's (`stored`), or steward's own, at a session revision steward
/// speaks to servers (the client's when it is one, else the newest).
pub(super) fn initialize_params(stored: Option<Value>) -> Value {
    let mut params = stored.unwrap_or_else(
        || json!({ "capabilities": {}, "clientInfo": { "name": "steward", "version": env!("CARGO_PKG_VERSION") } }),
    );
    if let Some(object) = params.as_object_mut() {
        let asked = object.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
        let version = super::SESSION_VERSIONS.iter().find(|v| **v == asked).unwrap_or(&super::SESSION_VERSIONS[0]);
        object.insert("protocolVersion".to_owned(), (*version).into());
    }
    params
}
