//! `steward mcp NAME`, `steward mcp list`, `steward mcp trust NAME`.
//!
//! `steward mcp NAME` is the MCP server command for an agent that only
//! launches stdio servers: it bridges its stdin/stdout (one JSON-RPC
//! message per line) to the running daemon's `/mcp/NAME`, with the agent's
//! steward token. It runs no pipeline of its own: every decision is the
//! daemon's. The daemon is found through `STEWARD_URL` and `STEWARD_TOKEN`
//! (what steward gives a supervised agent), else through the config's
//! state dir (`daemon.addr`, `agent.token`). Both eras pass: a 2025-11-25
//! client's `initialize` opens a session (then its `GET` stream is copied to
//! stdout); a 2026-07-28 client's requests are stateless, so each is sent
//! with the headers that revision mirrors from the body (stdio has none),
//! and its `notifications/cancelled` closes the request's `POST`, which is
//! how that revision cancels over HTTP.
//!
//! `list` shows each `[mcp.*]` server, its state as the daemon published
//! it in the store (stdio: idle, running, exited, fatal; HTTP: idle,
//! reachable, unreachable with the latest error; `stopped` without a
//! daemon), the
//! `[[tools]]` that match its tools and the pins steward holds (a changed
//! definition is marked); `trust`
//! accepts the changed definitions of one server's tools.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Value, json};
use steward_core::config::{McpTransport, ToolDoor};
use steward_core::mcp::pins;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use super::{CliError, load_config, now_ms, open_store, open_store_read_only, print_json, runtime};

/// Longest line the bridge reads from its client: above any
/// `max_message_size` the daemon accepts (which enforces the real bound).
const MAX_LINE: usize = 256 * 1024 * 1024;

/// `steward mcp ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show the MCP servers, the tools that match their tools, and the pins (changed definitions marked).
    List(ListArgs),
    /// Accept the changed tool definitions of one MCP server (see `steward mcp list`).
    Trust(TrustArgs),
    /// `steward mcp NAME`: be the stdio MCP server NAME for an agent, bridged to the running daemon's /mcp/NAME.
    #[command(external_subcommand)]
    Bridge(Vec<OsString>),
}

/// `steward mcp list`
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// One JSON object, for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

/// `steward mcp trust`
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// The `[mcp.NAME]` server whose changed tools to accept.
    server: String,
}

/// Runs `steward mcp ...`.
pub fn run(config_path: &Path, command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::List(args) => list(config_path, &args),
        Command::Trust(args) => trust(config_path, &args),
        Command::Bridge(words) => bridge(config_path, &words),
    }
}

fn list(config_path: &Path, args: &ListArgs) -> Result<ExitCode, CliError> {
    let config = load_config(config_path)?;
    let daemon_running = steward_core::state_dir::running_pid(&config.state.dir).is_some();
    let (pins, states) = runtime()?.block_on(async {
        let store = open_store_read_only(&config).await?;
        let pins = pins::all(&store).await.context("cannot read the tool pins")?;
        let states =
            steward_core::store::mcp_servers::all(&store).await.context("cannot read the MCP servers' states")?;
        Ok::<_, anyhow::Error>((pins, states))
    })?;
    let servers: Vec<Value> = config
        .mcp
        .iter()
        .map(|(name, server)| {
            let transport = match &server.transport {
                McpTransport::Stdio { command, .. } => json!({ "stdio": command }),
                McpTransport::Http { url, .. } => json!({ "url": url }),
            };
            let tools: Vec<Value> = config
                .tools
                .iter()
                .filter(|t| t.door == ToolDoor::Mcp && &t.upstream == name)
                .map(|t| json!({ "name": t.name, "match": t.path, "limit": t.limit.map(|l| format!("{}/{}s", l.max, l.per.as_secs())), "side_effect": t.side_effect }))
                .collect();
            let pinned: Vec<Value> = pins
                .iter()
                .filter(|(s, _, _)| s == name)
                .map(|(_, tool, pin)| json!({ "tool": tool, "changed": pin.changed(), "pinned": &pin.pinned[..12], "seen": &pin.seen[..12], "description": pin.description }))
                .collect();
            let (state, reason) = steward_core::store::mcp_servers::as_seen(states.get(name), daemon_running);
            json!({ "name": name, "transport": transport, "state": state, "reason": reason, "tools": tools, "pins": pinned })
        })
        .collect();
    if args.json {
        print_json(&json!({ "servers": servers }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if servers.is_empty() {
        anstream::println!("No MCP servers: add an [mcp.NAME] section to steward.toml.");
        return Ok(ExitCode::SUCCESS);
    }
    for server in &servers {
        let transport = match (server["transport"]["stdio"].as_array(), server["transport"]["url"].as_str()) {
            (Some(argv), _) => {
                format!("stdio: {}", argv.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            }
            (None, Some(url)) => format!("http: {url}"),
            (None, None) => String::new(),
        };
        let state = match server["reason"].as_str() {
            Some(reason) => format!("{}: {reason}", server["state"].as_str().unwrap_or_default()),
            None => server["state"].as_str().unwrap_or_default().to_owned(),
        };
        anstream::println!("[mcp.{}]  {state}\n  {transport}", server["name"].as_str().unwrap_or_default());
        let mut table = Table::new();
        table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header(["MCP TOOL", "PIN", "DESCRIPTION (latest)"]);
        for pin in server["pins"].as_array().into_iter().flatten() {
            let state = if pin["changed"] == true {
                format!(
                    "CHANGED ({} -> {}): run `steward mcp trust {}`",
                    pin["pinned"].as_str().unwrap_or_default(),
                    pin["seen"].as_str().unwrap_or_default(),
                    server["name"].as_str().unwrap_or_default()
                )
            } else {
                format!("pinned {}", pin["pinned"].as_str().unwrap_or_default())
            };
            table.add_row([
                pin["tool"].as_str().unwrap_or_default().to_owned(),
                state,
                pin["description"].as_str().unwrap_or_default().to_owned(),
            ]);
        }
        anstream::println!("{table}");
        let rules: Vec<String> = server["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!("{} = {}", t["name"].as_str().unwrap_or_default(), t["match"].as_str().unwrap_or_default())
            })
            .collect();
        anstream::println!(
            "  [[tools]]: {}\n",
            if rules.is_empty() { "none (every tool follows [unmatched])".to_owned() } else { rules.join(", ") }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn trust(config_path: &Path, args: &TrustArgs) -> Result<ExitCode, CliError> {
    let config = load_config(config_path)?;
    if !config.mcp.contains_key(&args.server) {
        let known: Vec<&str> = config.mcp.keys().map(String::as_str).collect();
        return Err(anyhow::anyhow!(
            "no MCP server named `{}` in the config; the servers are: {}",
            args.server,
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        )
        .into());
    }
    let trusted = runtime()?.block_on(async {
        let store = open_store(&config).await?;
        pins::trust(&store, &args.server, now_ms()).await.context("cannot update the tool pins")
    })?;
    if trusted.is_empty() {
        anstream::println!("No changed tool definitions on [mcp.{}]: nothing to trust.", args.server);
    } else {
        anstream::println!("Trusted the new definitions of [mcp.{}]: {}", args.server, trusted.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the daemon is and the agent's token.
fn daemon(config_path: &Path) -> anyhow::Result<(String, String)> {
    if let (Ok(url), Ok(token)) = (std::env::var("STEWARD_URL"), std::env::var("STEWARD_TOKEN")) {
        return Ok((url.trim_end_matches('/').to_owned(), token));
    }
    let config = steward_core::config::load(config_path)
        .map_err(|_| anyhow::anyhow!("set STEWARD_URL and STEWARD_TOKEN (steward sets both for the agent it runs), or pass --config of the running daemon"))?;
    let addr = std::fs::read_to_string(config.state.addr_path())
        .context("no running daemon: start `steward run` first (no daemon.addr in the state dir)")?;
    let token = std::fs::read_to_string(config.state.token_path()).context("cannot read the agent token")?;
    Ok((format!("http://{}", addr.trim()), token.trim().to_owned()))
}

fn bridge(config_path: &Path, words: &[OsString]) -> Result<ExitCode, CliError> {
    let [server] = words else {
        return Err(anyhow::anyhow!(
            "usage: steward mcp NAME (one [mcp.NAME] server), steward mcp list, steward mcp trust NAME"
        )
        .into());
    };
    let server = server.to_string_lossy().into_owned();
    let (url, token) = daemon(config_path)?;
    runtime()?.block_on(Bridge::new(format!("{url}/mcp/{server}"), token)?.run())?;
    Ok(ExitCode::SUCCESS)
}

/// The stdio ↔ streamable-HTTP bridge.
struct Bridge {
    endpoint: String,
    token: String,
    client: reqwest::Client,
    session: Mutex<Option<String>>,
    stdout: Arc<Mutex<tokio::io::Stdout>>,
    /// The stateless requests in flight, by id (JSON text): a
    /// `notifications/cancelled` aborts the request's `POST`.
    stateless: std::sync::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
}

impl Bridge {
    fn new(endpoint: String, token: String) -> anyhow::Result<Arc<Self>> {
        let client = steward_core::outbound::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Arc::new(Self {
            endpoint,
            token,
            client,
            session: Mutex::new(None),
            stdout: Arc::new(Mutex::new(tokio::io::stdout())),
            stateless: std::sync::Mutex::default(),
        }))
    }

    async fn write(&self, message: &Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        let mut stdout = self.stdout.lock().await;
        let _ = stdout.write_all(&line).await;
        let _ = stdout.flush().await;
    }

    async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let mut lines = BufReader::new(tokio::io::stdin());
        let mut buf = Vec::new();
        let tasks = tokio_util::task::TaskTracker::new();
        loop {
            buf.clear();
            let read =
                (&mut lines).take(MAX_LINE as u64).read_until(b'\n', &mut buf).await.context("cannot read stdin")?;
            if read == 0 {
                break;
            }
            let Ok(message) = serde_json::from_slice::<Value>(&buf) else {
                if !buf.iter().all(u8::is_ascii_whitespace) {
                    self.write(&json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32700, "message": "steward mcp: a line that is not JSON" } })).await;
                }
                continue;
            };
            if message.get("method").and_then(Value::as_str) == Some("initialize") {
                // The session id must be known before anything else is sent.
                Arc::clone(&self).send(message).await;
                let bridge = Arc::clone(&self);
                tasks.spawn(async move { bridge.listen().await });
            } else if let Some(key) = stateless_request(&message) {
                // Held while the task is spawned: it removes itself only once listed.
                let mut in_flight = self.stateless.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let bridge = Arc::clone(&self);
                let done = key.clone();
                let task = tasks.spawn(async move {
                    Arc::clone(&bridge).send(message).await;
                    bridge.stateless.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&done);
                });
                in_flight.insert(key, task.abort_handle());
            } else if let Some(abort) = self.cancelled_stateless(&message) {
                abort.abort();
            } else {
                let bridge = Arc::clone(&self);
                tasks.spawn(async move { bridge.send(message).await });
            }
        }
        tasks.close();
        // Requests still in flight get their answers; the GET stream ends with the session.
        if let Some(session) = self.session.lock().await.clone() {
            let _ = self
                .client
                .delete(&self.endpoint)
                .bearer_auth(&self.token)
                .header("mcp-session-id", session)
                .send()
                .await;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait()).await;
        Ok(())
    }

    /// The in-flight stateless request a `notifications/cancelled` names,
    /// taken off the list.
    fn cancelled_stateless(&self, message: &Value) -> Option<tokio::task::AbortHandle> {
        if message.get("method").and_then(Value::as_str) != Some("notifications/cancelled") {
            return None;
        }
        let key = message.pointer("/params/requestId")?.to_string();
        self.stateless.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key)
    }

    /// POSTs one message and writes the answer (if any) to stdout.
    async fn send(self: Arc<Self>, message: Value) {
        let id = message.get("id").cloned();
        let is_request = message.get("method").is_some() && id.is_some();
        let mut request = self
            .client
            .post(&self.endpoint)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(message.to_string());
        let headers = steward_core::mcp::stateless_request_headers(&message);
        if headers.is_empty()
            && let Some(session) = self.session.lock().await.clone()
        {
            request = request.header("mcp-session-id", session);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                if is_request {
                    let text = format!(
                        "steward mcp: cannot reach the steward daemon at {}: {err}; is `steward run` running?",
                        self.endpoint
                    );
                    self.write(&json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32000, "message": text } }))
                        .await;
                }
                return;
            }
        };
        if let Some(session) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            *self.session.lock().await = Some(session.to_owned());
        }
        let status = response.status();
        if status.is_success() && is_sse(&response) {
            // A request with a progress token: its progress, then its
            // answer, as they come.
            self.relay_events(response).await;
            return;
        }
        let Ok(body) = response.bytes().await else { return };
        if body.is_empty() {
            return;
        }
        let Ok(mut answer) = serde_json::from_slice::<Value>(&body) else { return };
        if !status.is_success() && is_request {
            // A transport error of the daemon's: answered as the request's error.
            if let Some(object) = answer.as_object_mut() {
                object.insert("id".to_owned(), id.unwrap_or(Value::Null));
            }
        } else if !is_request {
            return;
        }
        self.write(&answer).await;
    }

    /// The session's GET stream: every message the server starts, to stdout.
    async fn listen(self: Arc<Self>) {
        let Some(session) = self.session.lock().await.clone() else { return };
        let response = self
            .client
            .get(&self.endpoint)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .send()
            .await;
        let Ok(response) = response else { return };
        if !response.status().is_success() {
            return;
        }
        self.relay_events(response).await;
    }

    /// Writes every message of an SSE `response` to stdout, as it comes.
    async fn relay_events(&self, mut response: reqwest::Response) {
        let mut pending = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            pending.extend_from_slice(&chunk);
            while let Some(end) = find(&pending, b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let data: Vec<&str> =
                    text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if data.is_empty() {
                    continue;
                }
                if let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) {
                    self.write(&message).await;
                }
            }
        }
    }
}

/// Whether the daemon answered as an SSE stream.
fn is_sse(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

/// The id (JSON text) of a 2026-07-28 request, which the bridge sends
/// statelessly; `None` for anything else.
fn stateless_request(message: &Value) -> Option<String> {
    message.get("method")?;
    let id = message.get("id")?;
    message.pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")?;
    Some(id.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
