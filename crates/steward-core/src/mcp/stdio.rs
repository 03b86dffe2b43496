//! One stdio MCP server: its process (environment, process group, stderr
//! captured and redacted), its framing (one JSON-RPC message per line,
//! bounded by `max_message_size`), the requests in flight towards it, and
//! its restarts.
//!
//! # Environment
//! Cleared, then `PATH`, `HOME`, `LANG`, `TZ`, `USER` from steward's own
//! (unless the value holds a credential), then `[mcp.NAME] env`: plain
//! values as written (a plain value that holds a credential's value stops
//! the server from starting: a credential goes in by reference only), and
//! `credential:NAME` references resolved at each start from the live
//! secrets. The agent never sees any of it: the agent's environment is
//! built separately (`supervisor::launch`) and holds only its steward token.
//!
//! # Framing and quarantine
//! stdout is read line by line, at most `max_message_size` bytes a line. A
//! line that is not a JSON-RPC message (a stray `console.log`, a banner) is
//! quarantined: logged redacted and dropped, and the session goes on. A
//! longer line is dropped whole; when its start names one of steward's
//! request ids (they are numbers), that request fails with a clear error
//! instead of waiting for its timeout. The reader never waits on a client:
//! messages for sessions are queued without blocking (see `hub`), so a
//! burst of thousands of notifications cannot deadlock the two pipes.
//!
//! # Restarts
//! A server that exits fails the requests in flight (never replayed) and is
//! started again by the next request, after a backoff that doubles with
//! each quick exit (1 s to [`MAX_BACKOFF`]); [`CRASH_LOOP_EXITS`] exits
//! within [`MIN_UPTIME`] of their start inside [`CRASH_LOOP_WINDOW`] make it
//! `fatal`: requests are refused with the fix until steward restarts.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::upstream::{ServerMessages, ServerState};
use crate::config::{McpEnvValue, McpServerConfig, McpTransport};
use crate::pipeline::McpForwardError;
use crate::redaction::SharedRedactor;
use crate::secrets::Secrets;
use crate::supervisor::INHERITED_ENV;

/// An exit this soon after the start counts towards the crash loop.
pub const MIN_UPTIME: Duration = Duration::from_secs(10);
/// Quick exits inside [`CRASH_LOOP_WINDOW`] that make a server `fatal`.
pub const CRASH_LOOP_EXITS: usize = 5;
/// The window the crash loop is counted in.
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(600);
/// The longest wait before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long `initialize` may take after a start (npx may download first).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a stopping server gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Lines of stdin queued for the writer: the writer drains them as fast as
/// the server reads; a full queue makes a request wait, never a reader.
const STDIN_QUEUE: usize = 4096;
/// Bytes of an over-long line kept to find the request id it answers.
const OVERSIZE_PREFIX: usize = 256;

/// One running process of the server, initialized.
struct Conn {
    stdin: mpsc::Sender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, McpForwardError>>>>,
    /// The server's `initialize` result.
    init_result: std::sync::OnceLock<Value>,
    /// Cancelled when the process's stdout closed.
    dead: CancellationToken,
}

impl Conn {
    fn fail_all(&self, err: &McpForwardError) {
        let pending: Vec<_> = self.pending.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(err.clone()));
        }
    }
}

/// Restart bookkeeping.
#[derive(Debug, Default)]
struct Restarts {
    /// Starts of the runs that exited within [`MIN_UPTIME`], recent first.
    quick_exits: VecDeque<Instant>,
    /// When the next start may happen.
    not_before: Option<Instant>,
    fatal: Option<String>,
    /// Starts so far.
    starts: u64,
}

/// A stdio MCP server steward runs.
pub struct StdioServer {
    name: String,
    command: Vec<String>,
    env: std::collections::BTreeMap<String, McpEnvValue>,
    workdir: std::path::PathBuf,
    max_message_size: usize,
    request_timeout: Duration,
    secrets: Arc<ArcSwap<Secrets>>,
    redactor: SharedRedactor,
    /// The running process; the lock serializes starts.
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    restarts: Arc<Mutex<Restarts>>,
    /// The `initialize` params the server is (re)started with.
    init_params: Mutex<Option<Value>>,
    next_id: AtomicU64,
    messages: Arc<dyn ServerMessages>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for StdioServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioServer").field("name", &self.name).field("command", &self.command).finish_non_exhaustive()
    }
}

impl StdioServer {
    /// The server `[mcp.name]` describes, not started yet. `None` for a
    /// server that is not stdio.
    #[expect(clippy::too_many_arguments, reason = "the daemon's shared resources, passed once")]
    pub fn new(
        name: &str,
        config: &McpServerConfig,
        config_dir: &std::path::Path,
        secrets: Arc<ArcSwap<Secrets>>,
        redactor: SharedRedactor,
        messages: Arc<dyn ServerMessages>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Option<Self> {
        let McpTransport::Stdio { command, env, workdir } = &config.transport else { return None };
        Some(Self {
            name: name.to_owned(),
            command: command.clone(),
            env: env.clone(),
            workdir: workdir.clone().unwrap_or_else(|| config_dir.to_path_buf()),
            max_message_size: usize::try_from(config.max_message_size).unwrap_or(usize::MAX),
            request_timeout: config.request_timeout,
            secrets,
            redactor,
            conn: tokio::sync::Mutex::new(None),
            restarts: Arc::new(Mutex::new(Restarts::default())),
            init_params: Mutex::new(None),
            next_id: AtomicU64::new(1),
            messages,
            shutdown,
            tasks,
        })
    }

    /// `[mcp.NAME]`'s name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest message either way, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Where the server is in its life.
    pub fn state(&self) -> ServerState {
        let restarts = self.restarts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = &restarts.fatal {
            return ServerState::Fatal(reason.clone());
        }
        match self.conn.try_lock() {
            Ok(conn) => match conn.as_ref() {
                Some(c) if !c.dead.is_cancelled() => ServerState::Running,
                Some(_) => ServerState::Exited,
                None if restarts.starts > 0 => ServerState::Exited,
                None => ServerState::Idle,
            },
            // Starting right now.
            Err(_) => ServerState::Running,
        }
    }

    /// The server's `initialize` result for a client that sent `params`:
    /// the server is started (and initialized with `params`) if it is not
    /// running yet.
    pub async fn initialize(&self, params: &Value) -> Result<Value, McpForwardError> {
        {
            let mut stored = self.init_params.lock().unwrap_or_else(PoisonError::into_inner);
            if stored.is_none() && params.is_object() {
                *stored = Some(params.clone());
            }
        }
        let conn = self.running().await?;
        Ok(conn.init_result.get().cloned().unwrap_or(Value::Null))
    }

    /// Sends the request `method` with `params` and waits for the server's
    /// response message (`result` or `error`, id already steward's).
    /// `on_sent` learns the id steward gave it (for cancellation).
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        on_sent: impl FnOnce(u64),
    ) -> Result<Value, McpForwardError> {
        let conn = self.running().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        let mut message = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if let (Some(params), Some(object)) = (params, message.as_object_mut()) {
            object.insert("params".to_owned(), params);
        }
        if let Err(err) = self.send(&conn, &message).await {
            conn.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            return Err(err);
        }
        on_sent(id);
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(McpForwardError::Unreachable(format!("the MCP server `{}` went away", self.name))),
            Err(_) => {
                conn.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                let cancel = json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": { "requestId": id, "reason": "steward: request_timeout" },
                });
                let _ = self.send(&conn, &cancel).await;
                Err(McpForwardError::Timeout(self.request_timeout))
            }
        }
    }

    /// Stops waiting for steward's request `id` (the agent cancelled it):
    /// its caller gets [`McpForwardError::Cancelled`] at once.
    pub async fn abandon(&self, id: u64) {
        let conn = self.conn.lock().await.clone();
        if let Some(conn) = conn
            && let Some(tx) = conn.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id)
        {
            let _ = tx.send(Err(McpForwardError::Cancelled));
        }
    }

    /// Sends a notification or a response to the running server (not
    /// started for it: a notification for a server that is not running
    /// has no one to tell).
    pub async fn notify(&self, message: &Value) -> Result<(), McpForwardError> {
        let conn = self.conn.lock().await.clone();
        match conn {
            Some(conn) if !conn.dead.is_cancelled() => self.send(&conn, message).await,
            _ => Err(McpForwardError::Unreachable(format!("the MCP server `{}` is not running", self.name))),
        }
    }

    async fn send(&self, conn: &Conn, message: &Value) -> Result<(), McpForwardError> {
        let mut line = serde_json::to_vec(message).unwrap_or_default();
        if line.len() > self.max_message_size {
            return Err(McpForwardError::TooLarge(self.max_message_size as u64));
        }
        line.push(b'\n');
        conn.stdin
            .send(line)
            .await
            .map_err(|_| McpForwardError::Unreachable(format!("the MCP server `{}` exited", self.name)))
    }

    /// The running, initialized process: started (after its backoff) when
    /// there is none.
    async fn running(&self) -> Result<Arc<Conn>, McpForwardError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.dead.is_cancelled()
        {
            return Ok(Arc::clone(conn));
        }
        let wait = {
            let restarts = self.restarts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(reason) = &restarts.fatal {
                return Err(McpForwardError::Unreachable(reason.clone()));
            }
            restarts.not_before.map(|at| at.saturating_duration_since(Instant::now()))
        };
        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
            tracing::info!(server = %self.name, wait_ms = wait.as_millis(), "waiting out the MCP server's restart backoff");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.cancelled() => {
                    return Err(McpForwardError::Unreachable("steward is shutting down".to_owned()));
                }
            }
        }
        let conn = self.start().await?;
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// The server's environment (see the module docs).
    fn environment(&self) -> Result<Vec<(String, String)>, McpForwardError> {
        let secrets = self.secrets.load();
        let forms: Vec<(String, String)> = secrets
            .names()
            .filter_map(|name| secrets.get(name).map(|v| (name.to_owned(), v.expose_secret().to_owned())))
            .filter(|(_, v)| !v.is_empty())
            .flat_map(|(name, value)| {
                let mut forms = redact::encoded_forms(&value);
                if forms.is_empty() {
                    forms.push(value);
                }
                forms.into_iter().map(move |form| (name.clone(), form))
            })
            .collect();
        let holds = |value: &str| forms.iter().find(|(_, form)| value.contains(form.as_str())).map(|(n, _)| n.clone());
        let mut env = Vec::new();
        for name in INHERITED_ENV {
            if let Ok(value) = std::env::var(name)
                && holds(&value).is_none()
            {
                env.push(((*name).to_owned(), value));
            }
        }
        for (name, value) in &self.env {
            let value = match value {
                McpEnvValue::Plain(text) => {
                    if let Some(credential) = holds(text) {
                        return Err(McpForwardError::Unreachable(format!(
                            "[mcp.{}] env {name} holds the value of credential `{credential}`; write \
                             {name} = \"credential:{credential}\" instead of the value",
                            self.name
                        )));
                    }
                    text.clone()
                }
                McpEnvValue::Credential(credential) => match secrets.get(credential) {
                    Some(secret) => secret.expose_secret().to_owned(),
                    None => {
                        return Err(McpForwardError::Unreachable(format!(
                            "credential `{credential}` for [mcp.{}] env {name} is not loaded; check its source",
                            self.name
                        )));
                    }
                },
            };
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), value));
        }
        Ok(env)
    }

    /// Starts the process and initializes it.
    async fn start(&self) -> Result<Arc<Conn>, McpForwardError> {
        let env = self.environment()?;
        let Some((program, args)) = self.command.split_first() else {
            return Err(McpForwardError::Unreachable(format!("[mcp.{}] has an empty command", self.name)));
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(&self.workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|err| {
            McpForwardError::Unreachable(format!(
                "cannot start the MCP server `{}` ({program}): {err}; check [mcp.{}] command",
                self.name, self.name
            ))
        })?;
        let started = Instant::now();
        self.restarts.lock().unwrap_or_else(PoisonError::into_inner).starts += 1;
        let pid = child.id().unwrap_or(0);
        tracing::info!(server = %self.name, pid, "MCP server started");
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(McpForwardError::Unreachable(format!("the MCP server `{}` has no pipes", self.name)));
        };
        let (tx, rx) = mpsc::channel::<Vec<u8>>(STDIN_QUEUE);
        let conn = Arc::new(Conn {
            stdin: tx,
            pending: Mutex::new(HashMap::new()),
            init_result: std::sync::OnceLock::new(),
            dead: CancellationToken::new(),
        });
        self.tasks.spawn(write_stdin(stdin, rx, conn.dead.clone()));
        self.tasks.spawn(log_stderr(stderr, self.name.clone(), self.redactor.clone()));
        let reader = Reader {
            server: self.name.clone(),
            conn: Arc::clone(&conn),
            max: self.max_message_size,
            redactor: self.redactor.clone(),
            messages: Arc::clone(&self.messages),
        };
        self.tasks.spawn(reader.run(stdout));
        let dead = conn.dead.clone();
        let shutdown = self.shutdown.clone();
        let name = self.name.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(server = %name, status = ?status.ok(), "MCP server exited");
                }
                () = shutdown.cancelled() => {
                    let stopped = crate::supervisor::stop_group(&mut child, pid, STOP_GRACE).await;
                    tracing::info!(server = %name, status = ?stopped.status, "MCP server stopped");
                }
            }
            dead.cancel();
        });
        self.watch_exit(Arc::clone(&conn), started);

        // Initialize it as the first client asked, at a revision steward relays.
        let params =
            super::upstream::initialize_params(self.init_params.lock().unwrap_or_else(PoisonError::into_inner).clone());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (otx, orx) = oneshot::channel();
        conn.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, otx);
        self.send(&conn, &json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": params })).await?;
        let answer = match tokio::time::timeout(INIT_TIMEOUT, orx).await {
            Ok(Ok(Ok(answer))) => answer,
            Ok(Ok(Err(err))) => return Err(err),
            Ok(Err(_)) | Err(_) => {
                return Err(McpForwardError::Unreachable(format!(
                    "the MCP server `{}` did not answer initialize within {}s; run its command by hand to see why",
                    self.name,
                    INIT_TIMEOUT.as_secs()
                )));
            }
        };
        let Some(result) = answer.get("result").cloned() else {
            let message = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("no result");
            return Err(McpForwardError::Unreachable(format!(
                "the MCP server `{}` refused initialize: {}",
                self.name,
                self.redactor.load().redact(message)
            )));
        };
        self.send(&conn, &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await?;
        let _ = conn.init_result.set(result);
        Ok(conn)
    }

    /// When the process ends: the restart bookkeeping.
    fn watch_exit(&self, conn: Arc<Conn>, started: Instant) {
        let dead = conn.dead.clone();
        let name = self.name.clone();
        let restarts = Arc::clone(&self.restarts);
        self.tasks.spawn(async move {
            dead.cancelled().await;
            conn.fail_all(&McpForwardError::Unreachable(format!("the MCP server `{name}` exited")));
            let now = Instant::now();
            let mut r = restarts.lock().unwrap_or_else(PoisonError::into_inner);
            if now.duration_since(started) < MIN_UPTIME {
                r.quick_exits.push_front(started);
            }
            while r.quick_exits.back().is_some_and(|at| now.duration_since(*at) > CRASH_LOOP_WINDOW) {
                r.quick_exits.pop_back();
            }
            let quick = r.quick_exits.len();
            if quick >= CRASH_LOOP_EXITS {
                let reason = format!(
                    "the MCP server `{name}` crash-looped ({quick} exits within {}s of starting in {} min); fix \
                     its command or environment, then restart steward",
                    MIN_UPTIME.as_secs(),
                    CRASH_LOOP_WINDOW.as_secs() / 60
                );
                tracing::error!(server = %name, "{reason}");
                r.fatal = Some(reason);
            } else if quick > 0 {
                let exp = u32::try_from(quick - 1).unwrap_or(u32::MAX).min(5);
                let backoff = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
                r.not_before = Some(now + backoff);
            } else {
                r.not_before = None;
            }
        });
    }
}

/// Writes queued lines to the server's stdin until the queue closes, the
/// pipe breaks or the process is gone (`dead`: the queue's senders may
/// outlive it, and shutdown waits for this task).
async fn write_stdin(mut stdin: tokio::process::ChildStdin, mut rx: mpsc::Receiver<Vec<u8>>, dead: CancellationToken) {
    loop {
        let line = tokio::select! {
            line = rx.recv() => line,
            () = dead.cancelled() => None,
        };
        let Some(line) = line else { break };
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
}

/// The server's stderr, redacted, into steward's log.
async fn log_stderr(stderr: tokio::process::ChildStderr, server: String, redactor: SharedRedactor) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = crate::supervisor::render_output(&redactor.load(), line.as_bytes(), 0);
        tracing::info!(server = %server, "MCP server stderr: {line}");
    }
}

/// Logs a stdout line that is not a JSON-RPC message, redacted and
/// escaped, and drops it (see the module docs).
pub fn quarantine_line(server: &str, redactor: &redact::Redactor, line: &[u8]) {
    let text = crate::supervisor::render_output(redactor, line, 0);
    tracing::warn!(server = %server, "quarantined a line on the MCP server's stdout that is not JSON-RPC: {text}");
}

/// Reads the server's stdout.
struct Reader {
    server: String,
    conn: Arc<Conn>,
    max: usize,
    redactor: SharedRedactor,
    messages: Arc<dyn ServerMessages>,
}

impl Reader {
    async fn run(self, stdout: tokio::process::ChildStdout) {
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_line(&mut reader, &mut buf, self.max).await {
                Ok(Line::Eof) | Err(_) => break,
                Ok(Line::Complete) => self.dispatch(&buf).await,
                Ok(Line::TooLong { prefix, len }) => self.too_long(&prefix, len),
            }
        }
        self.conn.dead.cancel();
    }

    async fn dispatch(&self, line: &[u8]) {
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let message: Value = match serde_json::from_slice(text) {
            Ok(Value::Object(object)) if object.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {
                Value::Object(object)
            }
            _ => return quarantine_line(&self.server, &self.redactor.load(), text),
        };
        let has_method = message.get("method").is_some();
        match (message.get("id"), has_method) {
            (Some(id), false) => {
                let waiting = id
                    .as_u64()
                    .and_then(|id| self.conn.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id));
                match waiting {
                    Some(tx) => {
                        let _ = tx.send(Ok(message));
                    }
                    None => {
                        tracing::warn!(server = %self.server, id = %id, "the MCP server answered a request steward did not send (or gave up on)")
                    }
                }
            }
            (Some(id), true) => {
                if message.get("method").and_then(Value::as_str) == Some("ping") {
                    let _ = self.conn.stdin.try_send(pong(id));
                } else if !self.messages.server_request(message.clone()) {
                    let error = json!({
                        "jsonrpc": "2.0",
                        "id": id,
                        "error": super::rpc_error(super::RELAY_ERROR, "steward: no agent session can take this request now"),
                    });
                    let mut line = serde_json::to_vec(&error).unwrap_or_default();
                    line.push(b'\n');
                    let _ = self.conn.stdin.try_send(line);
                }
            }
            (None, true) => self.messages.server_notification(message),
            (None, false) => quarantine_line(&self.server, &self.redactor.load(), text),
        }
    }

    fn too_long(&self, prefix: &[u8], len: usize) {
        tracing::warn!(
            server = %self.server,
            bytes = len,
            max_message_size = self.max,
            "dropped a message from the MCP server larger than max_message_size"
        );
        if let Some(id) = request_id_in(prefix)
            && let Some(tx) = self.conn.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id)
        {
            let _ = tx.send(Err(McpForwardError::TooLarge(self.max as u64)));
        }
    }
}

fn pong(id: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({ "jsonrpc": "2.0", "id": id, "result": {} })).unwrap_or_default();
    line.push(b'\n');
    line
}

/// steward's numeric request id in the start of a response (`"id":12`).
pub(super) fn request_id_in(prefix: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(prefix);
    let at = text.find("\"id\"")?;
    let rest = text[at + 4..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

enum Line {
    Eof,
    Complete,
    TooLong { prefix: Vec<u8>, len: usize },
}

/// Reads one line into `buf` (without its `\n`), at most `max` bytes; a
/// longer one is consumed whole and reported with its first bytes.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    let mut len = 0_usize;
    let mut prefix = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if len == 0 {
                Line::Eof
            } else if len > max {
                Line::TooLong { prefix, len }
            } else {
                Line::Complete
            });
        }
        let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        if len + chunk.len() > max {
            if prefix.is_empty() {
                prefix.extend_from_slice(&buf[..buf.len().min(OVERSIZE_PREFIX)]);
                if prefix.len() < OVERSIZE_PREFIX {
                    prefix.extend_from_slice(&chunk[..chunk.len().min(OVERSIZE_PREFIX - prefix.len())]);
                }
                buf.clear();
            }
        } else {
            buf.extend_from_slice(chunk);
        }
        len += chunk.len();
        let consumed = chunk.len() + usize::from(newline);
        reader.consume(consumed);
        if newline {
            return Ok(if len > max { Line::TooLong { prefix, len } } else { Line::Complete });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_an_over_long_line_names_its_request() {
        let input = b"{\"a\":1}\n{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\nend\n".to_vec();
        let mut reader = BufReader::with_capacity(8, &input[..]);
        let mut buf = Vec::new();
        assert!(matches!(read_line(&mut reader, &mut buf, 40).await.unwrap(), Line::Complete));
        assert_eq!(buf, b"{\"a\":1}");
        buf.clear();
        let Line::TooLong { prefix, len } = read_line(&mut reader, &mut buf, 40).await.unwrap() else { panic!() };
        assert!(len > 40);
        assert_eq!(request_id_in(&prefix), Some(42));
        buf.clear();
        assert!(matches!(read_line(&mut reader, &mut buf, 40).await.unwrap(), Line::Complete));
        assert_eq!(buf, b"end");
        buf.clear();
        assert!(matches!(read_line(&mut reader, &mut buf, 40).await.unwrap(), Line::Eof));
    }
}
