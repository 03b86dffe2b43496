//! The servers of `[mcp.*]` (each an [`Upstream`], stdio or HTTP) and the
//! agent's sessions with them: which session a message the server started
//! belongs to, which server request id a client's request became, whether
//! a request may be sent again after a broken connection, and the scrub of
//! what reaches a session (see the module docs of `mcp`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::http::HttpServer;
use super::pins::{self, Verdict};
use super::stdio::StdioServer;
use super::upstream::{ServerMessages, ServerState, Upstream};
use super::{MAX_SESSIONS, SESSION_BUFFER, SESSION_IDLE};
use crate::clock::unix_ms;
use crate::config::{Config, McpTransport};
use crate::events::{Event, EventBus};
use crate::pipeline::{McpAnswer, McpForwardError};
use crate::redaction::SharedRedactor;
use crate::secrets::Secrets;
use crate::store::{Store, StoreError};

/// Every `[mcp.*]` server steward runs, and the sessions open with them.
#[derive(Debug, Default)]
pub struct McpHub {
    servers: BTreeMap<String, Server>,
    /// Where the tool pins live (`None` only in tests without MCP).
    store: Option<Store>,
    /// Where a changed tool is announced.
    events: Option<EventBus>,
    /// The daemon's drain signal: open `GET` streams end with it.
    shutdown: CancellationToken,
    /// The daemon's task tracker: a stateless request runs on it, so the
    /// agent hanging up cancels the call instead of dropping it unrecorded.
    tasks: TaskTracker,
}

/// One server and the routing of its messages.
#[derive(Debug)]
struct Server {
    process: Arc<Upstream>,
    router: Arc<Router>,
    /// The tool definitions of the latest `tools/list`, by name.
    tools: Mutex<HashMap<String, Value>>,
}

/// One agent session (`Mcp-Session-Id`) with a server.
#[derive(Debug)]
pub struct Session {
    /// The `Mcp-Session-Id`.
    pub id: String,
    /// Messages the server started for this session, until its `GET`
    /// stream reads them.
    tx: mpsc::Sender<Value>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Value>>>,
    /// Requests in flight: the client's id (as JSON text) → steward's id
    /// towards the server, for `notifications/cancelled`.
    in_flight: Mutex<HashMap<String, u64>>,
    /// One request of a 2026-07-28 client, which has no session: the
    /// server's requests during it are refused, not handed to another
    /// client's session.
    stateless: bool,
    /// The stateless client closed its request: a request not sent to the
    /// server yet is not sent (it is cancelled, and recorded so).
    closed: std::sync::atomic::AtomicBool,
    /// When a request last named this session.
    last_used: Mutex<std::time::Instant>,
}

impl Session {
    fn new(id: String, stateless: bool) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(if stateless { 1 } else { SESSION_BUFFER });
        Arc::new(Self {
            id,
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            in_flight: Mutex::new(HashMap::new()),
            stateless,
            closed: std::sync::atomic::AtomicBool::new(false),
            last_used: Mutex::new(std::time::Instant::now()),
        })
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(PoisonError::into_inner) = std::time::Instant::now();
    }

    /// When it was last used; now while its `GET` stream is open (a client
    /// that only listens is using it).
    fn used_at(&self, now: std::time::Instant) -> std::time::Instant {
        if self.rx.try_lock().is_err() {
            return now;
        }
        *self.last_used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client is gone (a stateless request's response was closed):
    /// nothing more is sent to the server for it.
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The stand-in session of one stateless (2026-07-28) request: never
    /// registered, so nothing the server starts is routed to it.
    pub fn stateless() -> Arc<Self> {
        Self::new(format!("stateless-{}", hex::encode(rand::random::<[u8; 8]>())), true)
    }

    /// The receiving end of this session's server messages, for its one
    /// `GET` stream; `None` while another stream holds it.
    pub fn stream(&self) -> Option<tokio::sync::OwnedMutexGuard<mpsc::Receiver<Value>>> {
        Arc::clone(&self.rx).try_lock_owned().ok()
    }

    /// Queues a message without waiting; false when the buffer is full.
    fn push(&self, message: Value) -> bool {
        self.tx.try_send(message).is_ok()
    }
}

/// Routes what a server starts to its sessions (see the module docs).
#[derive(Debug, Default)]
struct Router {
    sessions: Mutex<BTreeMap<String, Arc<Session>>>,
    /// Progress token (JSON text) → session id.
    progress: Mutex<HashMap<String, String>>,
    /// Progress token (JSON text) → the stream of the one `POST` that
    /// carries it, while that request is answered as SSE (see
    /// [`McpHub::stream_related`]): what the server says about the request
    /// goes there, before its answer, instead of to the session's `GET`.
    streams: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    /// The session that made the latest request, and whether it was a
    /// stateless request (then no session takes the server's requests).
    latest: Mutex<Option<(String, bool)>>,
    /// What messages are scrubbed of before a session reads them.
    secrets: Option<Arc<ArcSwap<Secrets>>>,
}

impl Router {
    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `message` scrubbed of every credential value (a server may echo
    /// what steward injected, or what its environment holds).
    fn scrubbed(&self, message: Value) -> Value {
        match &self.secrets {
            Some(secrets) => crate::pipeline::scrub_json(&secrets.load().scrubber(), message),
            None => message,
        }
    }

    /// Ends the sessions idle for [`SESSION_IDLE`], then the least recently
    /// used ones while [`MAX_SESSIONS`] are open, so one more fits. Returns
    /// the ids ended.
    fn make_room(&self, now: std::time::Instant) -> Vec<String> {
        let mut sessions = self.lock_sessions();
        let mut ended: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.used_at(now)) >= SESSION_IDLE)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ended {
            sessions.remove(id);
        }
        if sessions.len() >= MAX_SESSIONS {
            let mut by_use: Vec<(std::time::Instant, String)> =
                sessions.iter().map(|(id, s)| (s.used_at(now), id.clone())).collect();
            by_use.sort();
            for (_, id) in by_use.into_iter().take(sessions.len() + 1 - MAX_SESSIONS) {
                sessions.remove(&id);
                ended.push(id);
            }
        }
        drop(sessions);
        if !ended.is_empty() {
            self.progress.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, s| !ended.contains(s));
        }
        ended
    }

    /// Hands `message` (about the request with progress `token`) to that
    /// request's own stream; gives it back when there is none, or it is
    /// full or closed (then it goes to the session, as without one).
    fn to_request_stream(&self, token: &Value, message: Value) -> Result<(), Value> {
        let stream = self.streams.lock().unwrap_or_else(PoisonError::into_inner).get(&token.to_string()).cloned();
        match stream {
            Some(stream) => stream.try_send(message).map_err(mpsc::error::TrySendError::into_inner),
            None => Err(message),
        }
    }

    fn session_for_progress(&self, token: &Value) -> Option<Arc<Session>> {
        let id = self.progress.lock().unwrap_or_else(PoisonError::into_inner).get(&token.to_string()).cloned()?;
        self.lock_sessions().get(&id).cloned()
    }
}

impl ServerMessages for Router {
    fn server_request(&self, message: Value) -> bool {
        let mut message = self.scrubbed(message);
        if let Some(token) = message.pointer("/params/_meta/progressToken").cloned() {
            match self.to_request_stream(&token, message) {
                Ok(()) => return true,
                Err(back) => message = back,
            }
        }
        let session = message
            .pointer("/params/_meta/progressToken")
            .and_then(|token| self.session_for_progress(token))
            .or_else(|| {
                let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match latest {
                    // A 2026-07-28 client takes no server requests (they are
                    // refused with an error to the server), and another
                    // client's session must not get them either.
                    Some((_, true)) => None,
                    Some((id, false)) => self
                        .lock_sessions()
                        .get(&id)
                        .cloned()
                        .or_else(|| self.lock_sessions().values().next_back().cloned()),
                    None => self.lock_sessions().values().next_back().cloned(),
                }
            });
        session.is_some_and(|s| s.push(message))
    }

    fn server_notification(&self, message: Value) {
        let message = self.scrubbed(message);
        let method = message.get("method").and_then(Value::as_str).unwrap_or_default();
        if method == "notifications/progress"
            && let Some(token) = message.pointer("/params/progressToken").cloned()
        {
            if let Err(message) = self.to_request_stream(&token, message)
                && let Some(session) = self.session_for_progress(&token)
            {
                let _ = session.push(message);
            }
            return;
        }
        for session in self.lock_sessions().values() {
            if !session.push(message.clone()) {
                tracing::warn!(session = %session.id, method, "dropped a server notification: the session's GET stream is not reading");
            }
        }
    }
}

/// A request's own stream of what the server says about it (see
/// [`McpHub::stream_related`]); dropping it sends the rest to the session.
#[derive(Debug)]
pub struct RelatedStream {
    router: Arc<Router>,
    key: String,
    stream: mpsc::Sender<Value>,
}

impl Drop for RelatedStream {
    fn drop(&mut self) {
        let mut streams = self.router.streams.lock().unwrap_or_else(PoisonError::into_inner);
        // Another request may have taken the token since (a client reusing
        // it): only this request's own entry is removed.
        if streams.get(&self.key).is_some_and(|s| s.same_channel(&self.stream)) {
            streams.remove(&self.key);
        }
    }
}

impl McpHub {
    /// The servers of `config` (not started or contacted: each with its first session).
    pub fn new(
        config: &Config,
        secrets: &Arc<ArcSwap<Secrets>>,
        redactor: &SharedRedactor,
        store: &Store,
        events: &EventBus,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Self {
        let config_dir = config.source_path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let mut servers = BTreeMap::new();
        for (name, server) in &config.mcp {
            let router = Arc::new(Router { secrets: Some(Arc::clone(secrets)), ..Router::default() });
            let messages: Arc<dyn ServerMessages> = router.clone();
            let process = match &server.transport {
                McpTransport::Stdio { .. } => StdioServer::new(
                    name,
                    server,
                    &config_dir,
                    Arc::clone(secrets),
                    redactor.clone(),
                    messages,
                    shutdown.clone(),
                    tasks.clone(),
                )
                .map(Upstream::Stdio),
                McpTransport::Http { .. } => HttpServer::new(
                    name,
                    server,
                    Arc::clone(secrets),
                    redactor.clone(),
                    messages,
                    shutdown.clone(),
                    tasks.clone(),
                )
                .map(Upstream::Http),
            };
            if let Some(process) = process {
                servers.insert(name.clone(), Server { process: Arc::new(process), router, tools: Mutex::default() });
            }
        }
        Self {
            servers,
            store: Some(store.clone()),
            events: Some(events.clone()),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
        }
    }

    /// Pins the tools of a `tools/list` answer of `server` (first sight) or
    /// checks them against their pins, and removes the changed ones (see
    /// `pins`); a change seen for the first time is announced.
    pub async fn pin_listed(&self, server: &str, tools: &mut Vec<Value>) -> Result<(), StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let now_ms = unix_ms(std::time::SystemTime::now());
        let mut keep = Vec::with_capacity(tools.len());
        for tool in tools.drain(..) {
            match pins::observe(store, server, &tool, now_ms).await? {
                Verdict::Trusted => keep.push(tool),
                Verdict::Changed { new } => self.announce_change(server, &tool, new),
            }
        }
        *tools = keep;
        Ok(())
    }

    /// What pinning says of a `tools/call` of `name` on `server`: its
    /// definition from the latest `tools/list` (asked of the server when
    /// steward has not seen one yet) against its pin. A tool the server
    /// does not list is left to the server to refuse.
    pub async fn pin_verdict(&self, server: &str, name: &str) -> Result<Verdict, StoreError> {
        let Some(store) = &self.store else { return Ok(Verdict::Trusted) };
        let Some(entry) = self.servers.get(server) else { return Ok(Verdict::Trusted) };
        let known = entry.tools.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
        let definition = match known {
            Some(definition) => Some(definition),
            None => {
                self.refresh_tools(server).await;
                entry.tools.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
            }
        };
        let Some(definition) = definition else { return Ok(Verdict::Trusted) };
        let verdict = pins::observe(store, server, &definition, unix_ms(std::time::SystemTime::now())).await?;
        if let Verdict::Changed { new } = verdict {
            self.announce_change(server, &definition, new);
        }
        Ok(verdict)
    }

    /// Asks `server` for its tools (every page) and remembers them.
    async fn refresh_tools(&self, server: &str) {
        let Some(entry) = self.servers.get(server) else { return };
        let mut cursor: Option<Value> = None;
        for _ in 0..100 {
            let params = cursor.take().map(|c| serde_json::json!({ "cursor": c }));
            let Ok(answer) = entry.process.request("tools/list", params, true, |_| {}).await else { return };
            let Some(tools) = answer.pointer("/result/tools").and_then(Value::as_array) else { return };
            self.remember_tools(server, tools);
            match answer.pointer("/result/nextCursor") {
                Some(next) if !next.is_null() => cursor = Some(next.clone()),
                _ => return,
            }
        }
    }

    fn announce_change(&self, server: &str, tool: &Value, new: bool) {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        if new {
            tracing::error!(server = %server, tool = %name, "an MCP tool's definition changed since it was pinned; refusing it until `steward mcp trust {server}`");
            if let Some(events) = &self.events {
                events.publish(Event::McpToolChanged { server: server.to_owned(), tool: name });
            }
        }
    }

    /// The daemon's drain signal.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The daemon's task tracker.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Whether `name` is an `[mcp.*]` server steward relays to.
    pub fn has(&self, name: &str) -> bool {
        self.servers.contains_key(name)
    }

    /// The names of the servers, with their state.
    pub fn states(&self) -> Vec<(String, ServerState)> {
        self.servers.iter().map(|(name, s)| (name.clone(), s.process.state())).collect()
    }

    /// The server `name`.
    pub fn server(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.servers.get(name).map(|s| &s.process)
    }

    /// Keeps the definitions of a `tools/list` answer of `server`.
    pub fn remember_tools(&self, server: &str, tools: &[Value]) {
        let Some(entry) = self.servers.get(server) else { return };
        let mut known = entry.tools.lock().unwrap_or_else(PoisonError::into_inner);
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                known.insert(name.to_owned(), tool.clone());
            }
        }
    }

    /// Whether the tool `name` of `server` said it only reads, in the
    /// latest `tools/list` (false when unknown: fail closed).
    pub fn read_only(&self, server: &str, name: &str) -> bool {
        let Some(entry) = self.servers.get(server) else { return false };
        let known = entry.tools.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(name).and_then(|t| t.pointer("/annotations/readOnlyHint")).and_then(Value::as_bool).unwrap_or(false)
    }

    /// Opens a session with `server` for a client that sent `initialize`
    /// with `params`: the server's result (the server started if needed)
    /// and the new session.
    pub async fn open_session(&self, server: &str, params: &Value) -> Result<(Arc<Session>, Value), McpForwardError> {
        let Some(entry) = self.servers.get(server) else {
            return Err(McpForwardError::Unreachable(format!("no MCP server named `{server}`")));
        };
        let result = entry.process.initialize(params).await?;
        let session = Session::new(hex::encode(rand::random::<[u8; 16]>()), false);
        let ended = entry.router.make_room(std::time::Instant::now());
        if !ended.is_empty() {
            tracing::info!(
                server = %server,
                ended = ended.len(),
                "ended idle or least recently used MCP sessions to open a new one (their clients start new sessions)"
            );
        }
        entry.router.lock_sessions().insert(session.id.clone(), Arc::clone(&session));
        Ok((session, result))
    }

    /// The open session `id` with `server`.
    pub fn session(&self, server: &str, id: &str) -> Option<Arc<Session>> {
        let session = self.servers.get(server)?.router.lock_sessions().get(id).cloned()?;
        session.touch();
        Some(session)
    }

    /// Sends what `server` says about the client request with progress
    /// `token` (its progress notifications, its requests carrying that
    /// token) to `stream` instead of the session's `GET` stream, until the
    /// returned guard is dropped: the door answers such a `POST` as SSE, so
    /// its progress reaches the client before its answer, on one
    /// connection (over two, the client may read the answer first and drop
    /// the progress that arrives after it). `None` for an unknown server.
    pub fn stream_related(&self, server: &str, token: &Value, stream: mpsc::Sender<Value>) -> Option<RelatedStream> {
        let router = Arc::clone(&self.servers.get(server)?.router);
        let key = token.to_string();
        router.streams.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), stream.clone());
        Some(RelatedStream { router, key, stream })
    }

    /// Ends the session `id`; false when there was none.
    pub fn close_session(&self, server: &str, id: &str) -> bool {
        let Some(entry) = self.servers.get(server) else { return false };
        entry.router.progress.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, s| s != id);
        entry.router.lock_sessions().remove(id).is_some()
    }

    /// Sends the client request `method` (`params`, the client's `client_id`)
    /// of `session` to `server` and returns the server's response message.
    pub async fn request(
        &self,
        server: &str,
        session: &Session,
        client_id: &Value,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, McpForwardError> {
        let Some(entry) = self.servers.get(server) else {
            return Err(McpForwardError::Unreachable(format!("no MCP server named `{server}`")));
        };
        if session.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(McpForwardError::Cancelled);
        }
        *entry.router.latest.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((session.id.clone(), session.stateless));
        let token = params.as_ref().and_then(|p| p.pointer("/_meta/progressToken")).map(Value::to_string);
        if let Some(token) = &token {
            entry
                .router
                .progress
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(token.clone(), session.id.clone());
        }
        // A request that cannot act twice may be sent again when the
        // connection breaks under it (HTTP); a tool call only when its
        // definition says it only reads.
        let replayable = method != "tools/call"
            || params
                .as_ref()
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|name| self.read_only(server, name));
        let key = client_id.to_string();
        let answer = entry
            .process
            .request(method, params, replayable, |id| {
                session.in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), id);
            })
            .await;
        session.in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        if let Some(token) = &token {
            entry.router.progress.lock().unwrap_or_else(PoisonError::into_inner).remove(token);
        }
        // A tools/call answer is scrubbed by the pipeline, every other one here.
        if method == "tools/call" { answer } else { answer.map(|message| entry.router.scrubbed(message)) }
    }

    /// Relays a client notification or response to `server`. A
    /// `notifications/cancelled` is rewritten to the id the server knows;
    /// one for a request no longer in flight is dropped.
    pub async fn relay(&self, server: &str, session: &Session, mut message: Value) -> Result<(), McpForwardError> {
        let Some(entry) = self.servers.get(server) else {
            return Err(McpForwardError::Unreachable(format!("no MCP server named `{server}`")));
        };
        if message.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
            let Some(client_id) = message.pointer("/params/requestId").map(Value::to_string) else { return Ok(()) };
            let upstream = session.in_flight.lock().unwrap_or_else(PoisonError::into_inner).get(&client_id).copied();
            let (Some(upstream), Some(slot)) = (upstream, message.pointer_mut("/params/requestId")) else {
                return Ok(());
            };
            *slot = upstream.into();
            let sent = entry.process.notify(&message).await;
            entry.process.abandon(upstream).await;
            return sent;
        }
        entry.process.notify(&message).await
    }
}

impl crate::pipeline::McpRelay for McpHub {
    fn call_tool<'a>(
        &'a self,
        server: &'a str,
        params: Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<McpAnswer, McpForwardError>> + Send + 'a>> {
        Box::pin(async move {
            let Some(entry) = self.servers.get(server) else {
                return Err(McpForwardError::Unreachable(format!("no MCP server named `{server}`")));
            };
            // The server may not have been started since steward started.
            entry.process.initialize(&Value::Null).await?;
            let replayable =
                params.get("name").and_then(Value::as_str).is_some_and(|name| self.read_only(server, name));
            let message = entry.process.request("tools/call", Some(params), replayable, |_| {}).await?;
            Ok(super::answer_of(message))
        })
    }
}

#[cfg(test)]
mod session_tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn open(router: &Router, id: &str, used: Instant) -> Arc<Session> {
        let session = Session::new(id.to_owned(), false);
        *session.last_used.lock().unwrap() = used;
        router.lock_sessions().insert(id.to_owned(), Arc::clone(&session));
        session
    }

    #[test]
    fn idle_sessions_end_and_the_least_recently_used_make_room_at_the_cap() {
        let router = Router::default();
        let now = Instant::now() + SESSION_IDLE + Duration::from_secs(10);
        open(&router, "idle", now - SESSION_IDLE - Duration::from_secs(1));
        // Idle as long, but its GET stream is open: in use.
        let listening = open(&router, "listening", now - SESSION_IDLE - Duration::from_secs(1));
        let _stream = listening.stream().unwrap();
        router.progress.lock().unwrap().insert("\"tok\"".into(), "idle".into());
        for i in 0..MAX_SESSIONS - 1 {
            open(&router, &format!("s{i:04}"), now - Duration::from_secs(1000 - i as u64));
        }
        assert_eq!(router.lock_sessions().len(), MAX_SESSIONS + 1);
        let ended = router.make_room(now);
        assert_eq!(ended[0], "idle");
        assert_eq!(ended[1..], ["s0000".to_owned()], "the least recently used makes room for one");
        assert_eq!(router.lock_sessions().len(), MAX_SESSIONS - 1);
        assert!(router.lock_sessions().contains_key("listening"));
        assert!(router.progress.lock().unwrap().is_empty(), "the ended session's progress routes are gone");
        assert!(router.make_room(now).is_empty(), "room for one more already");
    }

    /// What `McpHub::stream_related` registers, for `router`.
    fn related(router: &Arc<Router>, token: &Value) -> (RelatedStream, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(4);
        let key = token.to_string();
        router.streams.lock().unwrap().insert(key.clone(), tx.clone());
        (RelatedStream { router: Arc::clone(router), key, stream: tx }, rx)
    }

    #[test]
    fn a_requests_progress_goes_to_its_own_stream_while_it_is_open_then_to_its_session() {
        let router = Arc::new(Router::default());
        let session = open(&router, "s", Instant::now());
        let token = serde_json::json!("t1");
        router.progress.lock().unwrap().insert(token.to_string(), "s".into());
        let progress = |n: u64| serde_json::json!({ "method": "notifications/progress", "params": { "progressToken": "t1", "progress": n } });
        let asked = serde_json::json!({ "id": 9, "method": "sampling/createMessage", "params": { "_meta": { "progressToken": "t1" } } });

        let (guard, mut rx) = related(&router, &token);
        router.server_notification(progress(1));
        assert!(router.server_request(asked.clone()), "the server's request carrying the token is taken");
        assert_eq!(rx.try_recv().unwrap()["params"]["progress"], 1);
        assert_eq!(rx.try_recv().unwrap()["id"], 9);
        let mut get = session.stream().unwrap();
        assert!(get.try_recv().is_err(), "nothing went to the session's GET stream");

        // A second request reusing the token takes it over; the first one's
        // end does not remove the second's route.
        let (second, mut rx2) = related(&router, &token);
        drop(guard);
        router.server_notification(progress(2));
        assert_eq!(rx2.try_recv().unwrap()["params"]["progress"], 2);
        drop(second);
        assert!(router.streams.lock().unwrap().is_empty());

        // Without a stream: the session, as before.
        router.server_notification(progress(3));
        assert_eq!(get.try_recv().unwrap()["params"]["progress"], 3);
        assert!(rx.try_recv().is_err() && rx2.try_recv().is_err());
    }
}
