//! One streamable-HTTP MCP server (`[mcp.NAME] url = "..."`): steward is
//! its client, at revision 2025-11-25 (older ones when the server only
//! speaks those).
//!
//! # Requests
//! Every message is one `POST` to `url` with `Accept: application/json,
//! text/event-stream`, the upstream's `Mcp-Session-Id` and the negotiated
//! `MCP-Protocol-Version`, and the credential injected into `auth.header`
//! at the moment of sending (read from the live secrets, marked sensitive;
//! never logged, never in an error). A request is answered with one JSON
//! body or with an SSE stream read until the response to that request id;
//! what the server starts on the stream in between (progress, logs,
//! sampling, elicitation) is routed to the sessions exactly as a stdio
//! server's is (`ServerMessages`). Once initialized, steward opens the
//! server's `GET` stream for the messages it starts outside a request
//! (`405`: the server has none, fine), reconnecting with backoff while the
//! session lives.
//!
//! # Bounds
//! A JSON body or one SSE event larger than `max_message_size` is dropped
//! and, when it is the answer, fails the request with a clear error; an
//! error body is read up to [`ERROR_BODY_MAX`]. A request gets
//! `request_timeout` in all (then the server is told
//! `notifications/cancelled`). Redirects are never followed: the credential
//! must not travel to another host.
//!
//! # Lost sessions and broken streams
//! A `404` to a request that named the session means the server forgot it
//! (it restarted; many servers built on the TypeScript SDK's example answer
//! `400` naming the session instead, read the same way): the message was
//! never processed, so steward initializes
//! again with the stored `initialize` params and sends it once more. A
//! connect failure (no byte left steward) is retried a few times with
//! backoff (the server may be restarting). A stream that breaks after the
//! request left steward is different: the server may have acted. Only a
//! request that cannot act twice (anything but `tools/call`, or a tool
//! whose definition says `readOnlyHint`) is sent again; a `tools/call` is
//! failed with [`McpForwardError::Interrupted`] naming what to check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::sse::{SseEvent, SseReader};
use super::upstream::{ServerMessages, ServerState};
use super::{RELAY_ERROR, SESSION_HEADER, SESSION_VERSIONS};
use crate::config::{AuthInjection, McpServerConfig, McpTransport};
use crate::pipeline::McpForwardError;
use crate::redaction::SharedRedactor;
use crate::secrets::Secrets;

/// The header that names the negotiated revision on every request after
/// `initialize`.
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
/// What a `POST` accepts: MCP requires both.
const ACCEPT_POST: &str = "application/json, text/event-stream";
/// How long a TCP (and TLS) connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `initialize` may take (a cold server may load first).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Sends of one message that failed to connect (nothing left steward, so
/// always safe to repeat), the server perhaps restarting: 250 ms, 500 ms,
/// 1 s, 2 s, 4 s between them (a restart of a few seconds is ridden out).
const CONNECT_ATTEMPTS: u32 = 6;
/// The first wait between two connect attempts.
const CONNECT_BACKOFF: Duration = Duration::from_millis(250);
/// Bytes of an error body read for its JSON-RPC error: an error is short,
/// a hostile server's body is not read further.
const ERROR_BODY_MAX: usize = 64 * 1024;
/// The longest wait before reopening a `GET` stream that ended.
const STREAM_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One initialized session with the server.
#[derive(Debug)]
struct UpSession {
    /// The server's `Mcp-Session-Id` (`None`: a server without sessions).
    id: Option<HeaderValue>,
    /// The negotiated revision, sent as `MCP-Protocol-Version`.
    version: HeaderValue,
    /// The server's `initialize` result, given to every client.
    init_result: Value,
    /// Which session this is, so a stale one is forgotten only once.
    generation: u64,
    /// Ends this session's `GET` stream (a child of the daemon's drain).
    stream: CancellationToken,
}

/// What one `POST` came to.
#[derive(Debug)]
enum PostError {
    /// `404` (or `400` naming the session) to a request that named the
    /// session: never processed.
    SessionLost,
    /// The connection failed before any byte of the request left steward.
    NotSent(String),
    /// The request left steward, then the connection or stream broke
    /// before the answer: the server may have acted.
    Broke(String),
    /// The answer is larger than `max_message_size`.
    TooLarge,
    /// An answer that is not MCP (a redirect, `401`, a `500` without a
    /// JSON-RPC error, an unknown content type), said for the operator.
    Refused(String),
}

/// The parts of the server a `GET` stream task shares with the requests.
struct Link {
    name: String,
    url: url::Url,
    /// `[credentials.*]` name injected into every request, if any.
    credential: Option<String>,
    auth: AuthInjection,
    max_message_size: usize,
    secrets: Arc<ArcSwap<Secrets>>,
    redactor: SharedRedactor,
    client: reqwest::Client,
    messages: Arc<dyn ServerMessages>,
    tasks: TaskTracker,
}

/// Health as `steward mcp list` shows it.
#[derive(Debug, Default)]
struct Health {
    /// steward has tried to reach the server.
    contacted: bool,
    /// Why the latest exchange failed (redacted); `None` after a success.
    last_error: Option<String>,
}

/// A streamable-HTTP MCP server steward is the client of.
pub struct HttpServer {
    link: Arc<Link>,
    request_timeout: Duration,
    /// The live session; the lock serializes (re)initialization.
    session: tokio::sync::Mutex<Option<Arc<UpSession>>>,
    generation: AtomicU64,
    /// The `initialize` params the server is (re)initialized with.
    init_params: Mutex<Option<Value>>,
    next_id: AtomicU64,
    /// Requests in flight → their abandon signal (the agent cancelled).
    pending: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    health: Mutex<Health>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer").field("name", &self.link.name).field("url", &self.link.url.as_str()).finish()
    }
}

impl HttpServer {
    /// The server `[mcp.name]` describes, not contacted yet. `None` for a
    /// server that is not HTTP, or whose client cannot be built.
    pub fn new(
        name: &str,
        config: &McpServerConfig,
        secrets: Arc<ArcSwap<Secrets>>,
        redactor: SharedRedactor,
        messages: Arc<dyn ServerMessages>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Option<Self> {
        let McpTransport::Http { url, credential, auth } = &config.transport else { return None };
        let url = match url::Url::parse(url) {
            Ok(url) => url,
            Err(err) => {
                tracing::error!(server = %name, error = %err, "[mcp.{name}] url is not a URL; the server is not relayed");
                return None;
            }
        };
        // No read timeout here: an SSE stream may be quiet for long; every
        // request is bounded by request_timeout instead.
        let client = crate::outbound::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .build();
        let client = match client {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(server = %name, error = %err, "cannot build the HTTP client of [mcp.{name}]");
                return None;
            }
        };
        let link = Link {
            name: name.to_owned(),
            url,
            credential: credential.clone(),
            auth: auth.clone(),
            max_message_size: usize::try_from(config.max_message_size).unwrap_or(usize::MAX),
            secrets,
            redactor,
            client,
            messages,
            tasks,
        };
        Some(Self {
            link: Arc::new(link),
            request_timeout: config.request_timeout,
            session: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            init_params: Mutex::new(None),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            health: Mutex::new(Health::default()),
            shutdown,
        })
    }

    /// The largest message either way, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.link.max_message_size
    }

    /// Reachable, unreachable (and why), or not contacted yet.
    pub fn state(&self) -> ServerState {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match (&health.last_error, health.contacted) {
            (Some(error), _) => ServerState::Unreachable(error.clone()),
            (None, true) => ServerState::Reachable,
            (None, false) => ServerState::Idle,
        }
    }

    fn note<T>(&self, result: &Result<T, McpForwardError>) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.contacted = true;
        match result {
            Ok(_) => health.last_error = None,
            Err(
                err @ (McpForwardError::Unreachable(_) | McpForwardError::Timeout(_) | McpForwardError::Interrupted(_)),
            ) => {
                health.last_error = Some(self.link.redactor.load().redact(&err.to_string()).into_owned());
            }
            // Too large or cancelled: the server answered, it is reachable.
            Err(_) => health.last_error = None,
        }
    }

    /// The server's `initialize` result for a client that sent `params`:
    /// the server is initialized (with the first client's `params`) if
    /// steward has no session with it yet.
    pub async fn initialize(&self, params: &Value) -> Result<Value, McpForwardError> {
        {
            let mut stored = self.init_params.lock().unwrap_or_else(PoisonError::into_inner);
            if stored.is_none() && params.is_object() {
                *stored = Some(params.clone());
            }
        }
        let session = self.session().await;
        self.note(&session);
        Ok(session?.init_result.clone())
    }

    /// Sends the request `method` with `params` and waits for the server's
    /// response message (see the module docs for what is sent again).
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        replayable: bool,
        on_sent: impl FnOnce(u64),
    ) -> Result<Value, McpForwardError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if let (Some(params), Some(object)) = (params, message.as_object_mut()) {
            object.insert("params".to_owned(), params);
        }
        let (abandon_tx, abandon_rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, abandon_tx);
        on_sent(id);
        let result = tokio::select! {
            answered = tokio::time::timeout(self.request_timeout, self.exchange(id, method, &message, replayable)) => {
                match answered {
                    Ok(result) => result,
                    Err(_) => {
                        self.tell_cancelled(id, "steward: request_timeout").await;
                        Err(McpForwardError::Timeout(self.request_timeout))
                    }
                }
            }
            _ = abandon_rx => Err(McpForwardError::Cancelled),
        };
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        self.note(&result);
        result
    }

    /// One request until its answer: the session (re)initialized as
    /// needed, sent again only as the module docs allow.
    async fn exchange(
        &self,
        id: u64,
        method: &str,
        message: &Value,
        replayable: bool,
    ) -> Result<Value, McpForwardError> {
        let name = &self.link.name;
        let mut renewed = false;
        let mut replayed = false;
        loop {
            let session = self.session().await?;
            match self.link.post_connecting(Some(&session), message, Some(id)).await {
                Ok((Some(answer), _)) => return Ok(answer),
                Ok((None, _)) => {
                    return Err(McpForwardError::Unreachable(format!(
                        "the MCP server `{name}` accepted the request {method} without answering it"
                    )));
                }
                Err(PostError::SessionLost) => {
                    self.forget(&session).await;
                    if renewed {
                        return Err(McpForwardError::Unreachable(format!(
                            "the MCP server `{name}` forgot the session again right after steward initialized it"
                        )));
                    }
                    renewed = true;
                    tracing::info!(server = %name, "the MCP server forgot steward's session (it restarted?); initializing again");
                }
                Err(PostError::Broke(detail)) if replayable && !replayed => {
                    replayed = true;
                    tracing::info!(server = %name, method, error = %detail, "the connection to the MCP server broke; sending the request again (it cannot act twice)");
                    // A server that died leaves other pooled connections
                    // behind; the pool notices their end within moments,
                    // and the one second try must not go out on one of them.
                    tokio::time::sleep(CONNECT_BACKOFF).await;
                }
                Err(PostError::Broke(detail)) if method == "tools/call" => {
                    let tool = message.pointer("/params/name").and_then(Value::as_str).unwrap_or("?");
                    return Err(McpForwardError::Interrupted(format!(
                        "the connection to the MCP server `{name}` broke while the tool `{tool}` was running \
                         ({detail}); steward does not repeat a tool call that may have acted: check on the server \
                         whether it ran before calling it again"
                    )));
                }
                Err(err) => return Err(self.link.forward_error(err, method)),
            }
        }
    }

    /// Stops waiting for steward's request `id` (the agent cancelled it,
    /// and `notifications/cancelled` went to the server).
    pub fn abandon(&self, id: u64) {
        if let Some(tx) = self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id) {
            let _ = tx.send(());
        }
    }

    /// Sends a notification or a response to the server, in the current
    /// session (none: no one to tell).
    pub async fn notify(&self, message: &Value) -> Result<(), McpForwardError> {
        let session = self.session.lock().await.clone();
        let Some(session) = session else {
            return Err(McpForwardError::Unreachable(format!(
                "steward has no session with the MCP server `{}`",
                self.link.name
            )));
        };
        match self.link.post(Some(&session), message, None).await {
            Ok(_) => Ok(()),
            Err(PostError::SessionLost) => {
                self.forget(&session).await;
                Err(McpForwardError::Unreachable(format!("the MCP server `{}` forgot the session", self.link.name)))
            }
            Err(err) => Err(self.link.forward_error(err, "a notification")),
        }
    }

    /// Tells the server steward gave up on request `id`.
    async fn tell_cancelled(&self, id: u64, reason: &str) {
        let cancel = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": { "requestId": id, "reason": reason },
        });
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, self.notify(&cancel)).await;
    }

    /// The live session, initialized first when there is none.
    async fn session(&self) -> Result<Arc<UpSession>, McpForwardError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(Arc::clone(session));
        }
        if self.shutdown.is_cancelled() {
            return Err(McpForwardError::Unreachable("steward is shutting down".to_owned()));
        }
        let session = tokio::time::timeout(INIT_TIMEOUT, self.connect()).await.unwrap_or_else(|_| {
            Err(McpForwardError::Unreachable(format!(
                "the MCP server `{}` did not answer initialize within {}s",
                self.link.name,
                INIT_TIMEOUT.as_secs()
            )))
        })?;
        let session = Arc::new(session);
        *slot = Some(Arc::clone(&session));
        self.link.tasks.spawn(Arc::clone(&self.link).listen(Arc::clone(&session)));
        Ok(session)
    }

    /// Forgets `stale` (once, however many requests saw it lost) and ends
    /// its `GET` stream.
    async fn forget(&self, stale: &UpSession) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| s.generation == stale.generation)
            && let Some(session) = slot.take()
        {
            session.stream.cancel();
        }
    }

    /// Initializes a session: `initialize` as the first client asked (at
    /// a revision steward relays), then `notifications/initialized`.
    async fn connect(&self) -> Result<UpSession, McpForwardError> {
        let name = &self.link.name;
        let params =
            super::upstream::initialize_params(self.init_params.lock().unwrap_or_else(PoisonError::into_inner).clone());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": params });
        let (answer, session_id) = match self.link.post_connecting(None, &message, Some(id)).await {
            Ok((Some(answer), session_id)) => (answer, session_id),
            Ok((None, _)) => {
                return Err(McpForwardError::Unreachable(format!(
                    "the MCP server `{name}` accepted initialize without answering it"
                )));
            }
            Err(err) => return Err(self.link.forward_error(err, "initialize")),
        };
        let Some(result) = answer.get("result").cloned() else {
            let message = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("no result");
            return Err(McpForwardError::Unreachable(format!(
                "the MCP server `{name}` refused initialize: {}",
                self.link.redactor.load().redact(message)
            )));
        };
        let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
        let Some(version) = SESSION_VERSIONS.iter().find(|v| **v == version) else {
            return Err(McpForwardError::Unreachable(format!(
                "the MCP server `{name}` answered initialize with protocol version {version:?}, which steward does \
                 not relay (it relays {})",
                SESSION_VERSIONS.join(", ")
            )));
        };
        let session = UpSession {
            id: session_id,
            version: HeaderValue::from_static(version),
            init_result: result,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            stream: self.shutdown.child_token(),
        };
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        if let Err(err) = self.link.post(Some(&session), &initialized, None).await {
            return Err(self.link.forward_error(err, "notifications/initialized"));
        }
        tracing::info!(server = %name, version, session = session.id.is_some(), "MCP server initialized over streamable HTTP");
        Ok(session)
    }
}

impl Link {
    /// The headers of every request: what it accepts, the session and
    /// revision, and the credential (sensitive).
    fn headers(&self, session: Option<&UpSession>) -> Result<HeaderMap, McpForwardError> {
        let mut headers = HeaderMap::new();
        if let Some(session) = session {
            if let Some(id) = &session.id {
                headers.insert(SESSION_HEADER, id.clone());
            }
            headers.insert(PROTOCOL_HEADER, session.version.clone());
        }
        if let Some(credential) = &self.credential {
            let secrets = self.secrets.load();
            let secret = secrets.get(credential).ok_or_else(|| {
                McpForwardError::Unreachable(format!(
                    "credential `{credential}` for [mcp.{}] is not loaded; check its source",
                    self.name
                ))
            })?;
            let name = HeaderName::from_bytes(self.auth.header.as_bytes()).map_err(|_| {
                McpForwardError::Unreachable(format!(
                    "[mcp.{}] auth header `{}` is not a header name",
                    self.name, self.auth.header
                ))
            })?;
            let mut value = HeaderValue::from_str(&self.auth.format.replace("{secret}", secret.expose_secret()))
                .map_err(|_| {
                    McpForwardError::Unreachable(format!(
                        "credential `{credential}` contains bytes not allowed in an HTTP header"
                    ))
                })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// What to tell the agent (and the operator) for a failed `POST` of
    /// `what`.
    fn forward_error(&self, err: PostError, what: &str) -> McpForwardError {
        let name = &self.name;
        match err {
            PostError::SessionLost => {
                McpForwardError::Unreachable(format!("the MCP server `{name}` forgot steward's session during {what}"))
            }
            PostError::NotSent(detail) => McpForwardError::Unreachable(format!(
                "cannot connect to the MCP server `{name}` ({detail}); check that it runs and [mcp.{name}] url"
            )),
            PostError::Broke(detail) => McpForwardError::Unreachable(format!(
                "the connection to the MCP server `{name}` broke during {what} ({detail})"
            )),
            PostError::TooLarge => McpForwardError::TooLarge(self.max_message_size as u64),
            PostError::Refused(detail) => McpForwardError::Unreachable(detail),
        }
    }

    /// [`Link::post`], sent again while the connection cannot be made
    /// (nothing left steward).
    async fn post_connecting(
        &self,
        session: Option<&UpSession>,
        message: &Value,
        want: Option<u64>,
    ) -> Result<(Option<Value>, Option<HeaderValue>), PostError> {
        let mut wait = CONNECT_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.post(session, message, want).await {
                Err(PostError::NotSent(detail)) if attempt < CONNECT_ATTEMPTS => {
                    tracing::debug!(server = %self.name, attempt, error = %detail, "cannot connect to the MCP server; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `POST`s one message; for a request (`want`: its id) reads the
    /// answer from a JSON body or the SSE stream. Also returns the
    /// `Mcp-Session-Id` the server answered with (for `initialize`).
    async fn post(
        &self,
        session: Option<&UpSession>,
        message: &Value,
        want: Option<u64>,
    ) -> Result<(Option<Value>, Option<HeaderValue>), PostError> {
        let body = serde_json::to_vec(message).unwrap_or_default();
        if body.len() > self.max_message_size {
            return Err(PostError::TooLarge);
        }
        let mut headers = self.headers(session).map_err(|err| PostError::Refused(err.to_string()))?;
        headers.insert(http::header::ACCEPT, HeaderValue::from_static(ACCEPT_POST));
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let sent = self.client.post(self.url.clone()).headers(headers).body(body).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(err) if err.is_connect() => return Err(PostError::NotSent(self.describe(&err))),
            Err(err) => return Err(PostError::Broke(self.describe(&err))),
        };
        let status = response.status();
        let session_id = response.headers().get(SESSION_HEADER).cloned();
        if status == StatusCode::NOT_FOUND && session.is_some_and(|s| s.id.is_some()) {
            return Err(PostError::SessionLost);
        }
        if status.is_redirection() {
            return Err(PostError::Refused(format!(
                "the MCP server `{}` answered with a redirect (HTTP {status}); steward does not follow redirects, so \
                 the credential cannot travel to another host: set [mcp.{}] url to the final address",
                self.name, self.name
            )));
        }
        if !status.is_success() {
            let body = self.read_bounded(response, ERROR_BODY_MAX).await.unwrap_or_default();
            // Many servers built on the TypeScript SDK's example answer an
            // unknown session with 400 "No valid session ID provided"
            // instead of 404: rejected before processing all the same.
            if status == StatusCode::BAD_REQUEST
                && session.is_some_and(|s| s.id.is_some())
                && String::from_utf8_lossy(&body).to_ascii_lowercase().contains("session")
            {
                return Err(PostError::SessionLost);
            }
            return self.refused(status, &body, want).map(|answer| (answer, session_id));
        }
        let Some(want) = want else {
            // A notification or a response: 202, nothing to read.
            return Ok((None, session_id));
        };
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default();
        match content_type.as_str() {
            "application/json" => {
                let bytes = self.read_bounded(response, self.max_message_size).await?;
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(answer) if answer.get("id").and_then(Value::as_u64) == Some(want) => {
                        Ok((Some(answer), session_id))
                    }
                    _ => Err(PostError::Refused(format!(
                        "the MCP server `{}` answered with a JSON body that is not the response to the request",
                        self.name
                    ))),
                }
            }
            "text/event-stream" => {
                let mut events = SseReader::new(response.bytes_stream(), self.max_message_size);
                loop {
                    match events.next().await {
                        Ok(Some(SseEvent::Message(data))) => {
                            if let Some(answer) = self.dispatch(session, &data)
                                && answer.get("id").and_then(Value::as_u64) == Some(want)
                            {
                                return Ok((Some(answer), session_id));
                            }
                        }
                        Ok(Some(SseEvent::TooLarge { prefix, len })) => {
                            tracing::warn!(server = %self.name, bytes = len, max_message_size = self.max_message_size, "dropped a message from the MCP server larger than max_message_size");
                            if super::stdio::request_id_in(&prefix) == Some(want) {
                                return Err(PostError::TooLarge);
                            }
                        }
                        Ok(None) => {
                            return Err(PostError::Broke("the stream ended before the answer".to_owned()));
                        }
                        Err(err) => return Err(PostError::Broke(self.describe(&err))),
                    }
                }
            }
            other => Err(PostError::Refused(format!(
                "the MCP server `{}` answered with Content-Type {other:?}, neither application/json nor \
                 text/event-stream; check that [mcp.{}] url is its MCP endpoint",
                self.name, self.name
            ))),
        }
    }

    /// A non-2xx answer: its JSON-RPC error when it carries one for the
    /// request, else a refusal that says the status and what to check.
    fn refused(&self, status: StatusCode, body: &[u8], want: Option<u64>) -> Result<Option<Value>, PostError> {
        if let Some(want) = want
            && let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(body)
            && answer.get("error").is_some_and(Value::is_object)
            && answer.get("id").is_none_or(|id| id.is_null() || id.as_u64() == Some(want))
        {
            answer.insert("id".to_owned(), want.into());
            answer.insert("jsonrpc".to_owned(), "2.0".into());
            return Ok(Some(Value::Object(answer)));
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => match &self.credential {
                Some(credential) => {
                    format!("; check credential `{credential}` and [mcp.{}] auth (header and format)", self.name)
                }
                None => format!("; the server wants a credential: add credential = \"NAME\" to [mcp.{}]", self.name),
            },
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                format!("; check that [mcp.{}] url is the server's MCP endpoint", self.name)
            }
            _ => String::new(),
        };
        Err(PostError::Refused(format!("the MCP server `{}` answered HTTP {status}{hint}", self.name)))
    }

    /// A body, up to `max` bytes.
    async fn read_bounded(&self, response: reqwest::Response, max: usize) -> Result<Vec<u8>, PostError> {
        if response.content_length().is_some_and(|len| len > max as u64) {
            return Err(PostError::TooLarge);
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| PostError::Broke(self.describe(&err)))?;
            if body.len() + chunk.len() > max {
                return Err(PostError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Routes one message the server sent on a stream; a response is
    /// handed back to the caller.
    fn dispatch(&self, session: Option<&UpSession>, data: &[u8]) -> Option<Value> {
        let message: Value = match serde_json::from_slice(data) {
            Ok(Value::Object(object)) if object.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {
                Value::Object(object)
            }
            _ => {
                super::quarantine_line(&self.name, &self.redactor.load(), data);
                return None;
            }
        };
        let has_method = message.get("method").is_some();
        match (message.get("id").cloned(), has_method) {
            (Some(_), false) => Some(message),
            (Some(id), true) => {
                let reply = if message.get("method").and_then(Value::as_str) == Some("ping") {
                    json!({ "jsonrpc": "2.0", "id": id, "result": {} })
                } else if self.messages.server_request(message) {
                    return None;
                } else {
                    json!({
                        "jsonrpc": "2.0",
                        "id": id,
                        "error": super::rpc_error(RELAY_ERROR, "steward: no agent session can take this request now"),
                    })
                };
                self.answer_later(session, reply);
                None
            }
            (None, true) => {
                self.messages.server_notification(message);
                None
            }
            (None, false) => {
                super::quarantine_line(&self.name, &self.redactor.load(), data);
                None
            }
        }
    }

    /// Sends steward's own answer to a server request without holding up
    /// the stream it came on.
    fn answer_later(&self, session: Option<&UpSession>, reply: Value) {
        let Some(session) = session else { return };
        let Ok(mut headers) = self.headers(Some(session)) else { return };
        headers.insert(http::header::ACCEPT, HeaderValue::from_static(ACCEPT_POST));
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = self.client.post(self.url.clone()).headers(headers).body(reply.to_string());
        self.tasks.spawn(async move {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, request.send()).await;
        });
    }

    /// The server's `GET` stream of `session`: what it starts outside a
    /// request, routed like the rest; reopened with backoff until the
    /// session ends, the server says it has none (`405`) or forgot the
    /// session (`404`: the next request initializes again).
    async fn listen(self: Arc<Self>, session: Arc<UpSession>) {
        let mut wait = Duration::from_secs(1);
        loop {
            let Ok(mut headers) = self.headers(Some(&session)) else { return };
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
            let request = self.client.get(self.url.clone()).headers(headers).send();
            let response = tokio::select! {
                response = request => response,
                () = session.stream.cancelled() => return,
            };
            let opened = tokio::time::Instant::now();
            match response {
                Ok(response) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!(server = %self.name, "the MCP server has no GET stream (405)");
                    return;
                }
                Ok(response) if response.status() == StatusCode::NOT_FOUND => return,
                Ok(response) if response.status().is_success() => {
                    let mut events = SseReader::new(response.bytes_stream(), self.max_message_size);
                    loop {
                        let next = tokio::select! {
                            next = events.next() => next,
                            () = session.stream.cancelled() => return,
                        };
                        match next {
                            Ok(Some(SseEvent::Message(data))) => {
                                if let Some(stray) = self.dispatch(Some(&session), &data) {
                                    let id = stray.get("id").cloned().unwrap_or(Value::Null);
                                    tracing::warn!(server = %self.name, id = %id, "the MCP server sent a response on its GET stream; dropped");
                                }
                            }
                            Ok(Some(SseEvent::TooLarge { len, .. })) => {
                                tracing::warn!(server = %self.name, bytes = len, max_message_size = self.max_message_size, "dropped a message from the MCP server larger than max_message_size");
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                Ok(response) => {
                    tracing::debug!(server = %self.name, status = %response.status(), "the MCP server refused its GET stream");
                }
                Err(err) => {
                    tracing::debug!(server = %self.name, error = %self.describe(&err), "the MCP server's GET stream failed");
                }
            }
            if opened.elapsed() > STREAM_BACKOFF_MAX {
                wait = Duration::from_secs(1);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = session.stream.cancelled() => return,
            }
            wait = (wait * 2).min(STREAM_BACKOFF_MAX);
        }
    }

    /// A transport error's chain, redacted (the URL is the operator's, the
    /// credential is never part of it; redacted all the same).
    fn describe(&self, err: &reqwest::Error) -> String {
        let mut text = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(err);
        while let Some(err) = source {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&err.to_string());
            source = err.source();
        }
        self.redactor.load().redact(&text).into_owned()
    }
}
