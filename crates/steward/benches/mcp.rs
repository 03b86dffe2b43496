//! MCP latency benchmark (issue 17): the latency a `tools/call` gains by
//! going through steward, against the same server reached directly, in the
//! same run, over stdio and over streamable HTTP.
//!
//! The server is mock-upstream's MCP mode (`mock_upstream::mcp`: one tool,
//! `echo`, no work), run by this binary itself (`mcp.rs serve-stdio` /
//! `serve-http`), so what is measured is steward and not a server. The
//! client is this binary too (Rust: newline-delimited JSON-RPC on a child's
//! pipes, reqwest over loopback HTTP), one session per target, one call at
//! a time. steward is a release `steward run` in its own process, whose
//! `[mcp.bench]` runs the same server over stdio.
//!
//! | path | direct | through steward |
//! | --- | --- | --- |
//! | stdio | client spawns the server | client spawns `steward mcp bench` (the stdio bridge), which POSTs to the daemon, which relays to its stdio server |
//! | HTTP | client POSTs to the server's `/mcp` | client POSTs to `/mcp/bench`; steward relays to its stdio server |
//! | HTTP → HTTP | (as HTTP) | client POSTs to `/mcp/bench_http`, `[mcp.bench_http] url = ...` (the relay to an HTTP server; skipped, with the reason, where this build does not relay it) |
//!
//! Two more requests split the figure: steward answers `ping` itself
//! (HTTP, token, session; no pipeline, no server), and relays
//! `resources/list` to the server without the pipeline (the mock answers
//! it "method not found" at once). So through steward, `resources/list`
//! minus `ping` is the relay to the stdio server, and `tools/call` minus
//! `resources/list` is the pipeline (policy, store, audit).
//!
//! ```sh
//! cargo bench -p steward --bench mcp
//! BENCH_CALLS=20000 BENCH_ROUNDS=10 cargo bench -p steward --bench mcp
//! BENCH_TMP=/dev/shm cargo bench -p steward --bench mcp     # steward's state dir on tmpfs
//! STEWARD_BIN=/path/to/steward cargo bench -p steward --bench mcp   # another build
//! ```
//!
//! `BENCH_CALLS` (default 5000) calls per target and operation after
//! `BENCH_WARMUP` (default 300), in `BENCH_ROUNDS` (default 5) rounds that
//! visit every target in turn, so the machine's drift lands on all alike;
//! `BENCH_MAX_SECS` (default 300) ends the rounds early. Loopback only;
//! every child process ends with the bench.

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and aborts on setup failure"
)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The first argument that turns this binary into the stdio MCP server.
const SERVE_STDIO: &str = "serve-stdio";
/// The first argument that turns this binary into the HTTP MCP server: it
/// prints its endpoint's URL on one line and serves until stdin ends.
const SERVE_HTTP: &str = "serve-http";

/// How long one request may take before the bench calls it an error: far
/// above any latency measured here, so only a hang hits it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The MCP revision the client asks for.
const PROTOCOL_VERSION: &str = "2025-11-25";

fn main() {
    let runtime = |threads: usize| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime")
    };
    match std::env::args().nth(1).as_deref() {
        Some(SERVE_STDIO) => {
            mock_upstream::mcp::serve_stdio(std::io::stdin().lock(), std::io::stdout().lock()).expect("MCP over stdio");
        }
        Some(SERVE_HTTP) => runtime(1).block_on(serve_http()),
        _ => runtime(2).block_on(bench()),
    }
}

/// The mock's HTTP listener (its `POST /mcp`), until stdin ends.
async fn serve_http() {
    let mock = mock_upstream::MockUpstream::start().await.expect("mock upstream");
    mock.set_recording(false);
    println!("{}/mcp", mock.base_url());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut rest = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut rest).await;
    mock.shutdown().await;
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

async fn bench() {
    let calls = env_u64("BENCH_CALLS", 5000).max(1);
    let warmup = env_u64("BENCH_WARMUP", 300);
    let rounds = env_u64("BENCH_ROUNDS", 5).clamp(1, calls);
    let deadline = Instant::now() + Duration::from_secs(env_u64("BENCH_MAX_SECS", 300));
    let steward = std::env::var("STEWARD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_steward").to_owned());
    let me = std::env::current_exe().expect("own path");

    // The HTTP server: measured directly, and the upstream of `[mcp.bench_http]`.
    let (_http_server, http_url) = spawn_http_server(&me).await;

    let dir = match std::env::var_os("BENCH_TMP") {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let config = dir.path().join("steward.toml");
    let mut relay_skipped = None;
    std::fs::write(&config, config_text(&me, Some(&http_url))).expect("config");
    let daemon = match Daemon::start(&steward, &config) {
        Ok(daemon) => daemon,
        Err(reason) => {
            // A build that refuses `url =` servers: everything else still runs.
            relay_skipped = Some(format!("steward run refused [mcp.bench_http] url = ...: {reason}"));
            std::fs::write(&config, config_text(&me, None)).expect("config");
            Daemon::start(&steward, &config).expect("steward run")
        }
    };
    let door = |server: &str| format!("http://{}/mcp/{server}", daemon.addr);

    let mut targets = vec![
        Target::stdio("stdio, direct", Command::new(&me).arg(SERVE_STDIO)),
        Target::stdio(
            "stdio, through `steward mcp`",
            Command::new(&steward)
                .args(["mcp", "bench"])
                .env("STEWARD_URL", format!("http://{}", daemon.addr))
                .env("STEWARD_TOKEN", &daemon.token),
        ),
        Target::http("HTTP, direct", http_url.clone(), None),
        Target::http("HTTP, through steward → stdio server", door("bench"), Some(daemon.token.clone())),
        Target::http("HTTP, through steward → HTTP server (url =)", door("bench_http"), Some(daemon.token.clone())),
    ];
    for target in &mut targets {
        if let Err(reason) = target.open().await {
            assert!(target.name.contains("url ="), "{}: {reason}\n--- daemon ---\n{}", target.name, daemon.log());
            relay_skipped.get_or_insert(reason);
            target.skip = true;
        }
    }

    // (target, operation) series; the pairs compared below index into it.
    let series: Vec<(usize, Op)> = [(0, Op::Call), (1, Op::Call), (2, Op::Call), (3, Op::Call), (4, Op::Call)]
        .into_iter()
        .chain([(0, Op::Ping), (1, Op::Ping), (2, Op::Ping), (3, Op::Ping)])
        .chain([(0, Op::Relay), (1, Op::Relay), (2, Op::Relay), (3, Op::Relay)])
        .filter(|(t, _)| !targets[*t].skip)
        .collect();
    let mut samples: Vec<Samples> = series.iter().map(|_| Samples::default()).collect();
    for &(t, op) in &series {
        for _ in 0..warmup {
            let _ = targets[t].op(op).await;
        }
    }
    let load_before = load_average();
    let per_round = calls.div_ceil(rounds);
    let mut rounds_run = 0;
    for _ in 0..rounds {
        if Instant::now() > deadline {
            break;
        }
        rounds_run += 1;
        for (i, &(t, op)) in series.iter().enumerate() {
            for _ in 0..per_round {
                let start = Instant::now();
                match targets[t].op(op).await {
                    Ok(()) => samples[i].ms.push(start.elapsed().as_secs_f64() * 1000.0),
                    Err(error) => {
                        samples[i].errors += 1;
                        samples[i].first_error.get_or_insert(error);
                    }
                }
            }
        }
    }
    for s in &mut samples {
        s.ms.sort_by(f64::total_cmp);
    }
    let find = |t: usize, op: Op| series.iter().position(|&s| s == (t, op)).map(|i| &samples[i]);

    println!(
        "{} calls per row in {rounds_run} interleaved rounds after {warmup} warm-up calls; steward {steward}; \
         state dir {}; load average before {load_before}, after {}\n",
        per_round * rounds_run,
        dir.path().display(),
        load_average()
    );
    println!(
        "| path | request | direct p50 / p99 / max | through steward p50 / p99 / max | added p50 | added p99 | errors (direct, through) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let rows: [(&str, usize, usize, Op); 7] = [
        ("stdio", 0, 1, Op::Call),
        ("HTTP, steward → stdio server", 2, 3, Op::Call),
        ("HTTP, steward → HTTP server (`url =`)", 2, 4, Op::Call),
        ("stdio: bridge + door + relay, no pipeline", 0, 1, Op::Relay),
        ("HTTP: door + stdio relay, no pipeline", 2, 3, Op::Relay),
        ("stdio: bridge + door, no server", 0, 1, Op::Ping),
        ("HTTP: door only", 2, 3, Op::Ping),
    ];
    for (path, direct, through, op) in rows {
        let (Some(d), Some(s)) = (find(direct, op), find(through, op)) else {
            println!("| {path} | {} | skipped | skipped | | | |", op.name());
            continue;
        };
        println!(
            "| {path} | {} | {} | {} | {:.3} ms | {:.3} ms | {}, {} |",
            op.name(),
            d.summary(),
            s.summary(),
            s.p(50.0) - d.p(50.0),
            s.p(99.0) - d.p(99.0),
            d.errors,
            s.errors
        );
    }
    if let Some(reason) = relay_skipped {
        println!("\nHTTP → HTTP server skipped: {reason}");
    }
    for (i, &(t, op)) in series.iter().enumerate() {
        if let Some(error) = &samples[i].first_error {
            println!("\nfirst error of {} {}: {error}", targets[t].name, op.name());
        }
    }
    drop(targets);
    daemon.stop();
}

/// `/proc/loadavg`'s three figures: how busy the machine was (the other
/// processes on it weigh on every p99 here).
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// `steward.toml`: `[mcp.bench]` runs this binary's stdio server; with
/// `http_url`, `[mcp.bench_http]` reaches the HTTP server.
fn config_text(me: &Path, http_url: Option<&str>) -> String {
    let me = me.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    let mut text = format!(
        r#"
[agent]
name = "bench"
[gateway]
listen = "127.0.0.1:0"
[state]
dir = "./state"
[mcp.bench]
command = ["{me}", "{SERVE_STDIO}"]
[[tools]]
name = "echo"
mcp = "bench"
match = "echo"
side_effect = false
[loop_breaker]
max_identical = 0
"#
    );
    if let Some(url) = http_url {
        text.push_str(&format!(
            r#"
[mcp.bench_http]
url = "{url}"
[[tools]]
name = "echo_http"
mcp = "bench_http"
match = "echo"
side_effect = false
"#
        ));
    }
    text
}

async fn spawn_http_server(me: &Path) -> (Child, String) {
    let mut child = Command::new(me)
        .arg(SERVE_HTTP)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("HTTP MCP server");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).await.expect("the server's URL");
    (child, line.trim().to_owned())
}

/// The running `steward run`.
struct Daemon {
    child: std::process::Child,
    addr: String,
    token: String,
    log: std::path::PathBuf,
}

impl Daemon {
    /// Starts `steward run` and waits for its address; `Err` carries the
    /// end of its log when it exits first.
    fn start(bin: &str, config: &Path) -> Result<Daemon, String> {
        let state = config.with_file_name("state");
        let log = config.with_file_name("daemon.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = std::process::Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("STEWARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn steward run");
        let started = Instant::now();
        let addr = loop {
            if let Ok(addr) = std::fs::read_to_string(state.join("daemon.addr")) {
                break addr.trim().to_owned();
            }
            if child.try_wait().expect("wait").is_some() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(text
                    .lines()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n"));
            }
            assert!(started.elapsed() < Duration::from_secs(30), "steward did not start within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let token = std::fs::read_to_string(state.join("agent.token")).expect("agent token").trim().to_owned();
        Ok(Daemon { child, addr, token, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (a clean drain) and wait.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `tools/call` of `echo`, checked.
    Call,
    /// `ping` (steward answers it itself).
    Ping,
    /// `resources/list`: relayed by steward without the pipeline; the mock
    /// answers "method not found".
    Relay,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Call => "`tools/call`",
            Op::Ping => "`ping`",
            Op::Relay => "`resources/list`",
        }
    }
}

#[derive(Default)]
struct Samples {
    ms: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
}

impl Samples {
    fn p(&self, pct: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        self.ms[((pct / 100.0) * (self.ms.len() - 1) as f64).round() as usize]
    }

    fn summary(&self) -> String {
        let max = self.ms.last().copied().unwrap_or(f64::NAN);
        format!("{:.3} / {:.3} / {max:.3} ms", self.p(50.0), self.p(99.0))
    }
}

/// One client session with one server, direct or through steward.
struct Target {
    name: &'static str,
    transport: Transport,
    next_id: u64,
    /// The session could not be opened (the `url =` relay on a build without it).
    skip: bool,
}

enum Transport {
    Stdio {
        /// Held so the child lives as long as the session (killed on drop).
        _child: Box<Child>,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
        line: String,
    },
    Http {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
        session: Option<String>,
    },
}

impl Target {
    fn stdio(name: &'static str, command: &mut Command) -> Target {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a stdio MCP server");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Target {
            name,
            transport: Transport::Stdio { _child: Box::new(child), stdin, stdout, line: String::new() },
            next_id: 0,
            skip: false,
        }
    }

    fn http(name: &'static str, url: String, token: Option<String>) -> Target {
        let client = reqwest::Client::builder().tcp_nodelay(true).no_proxy().build().expect("client");
        Target { name, transport: Transport::Http { client, url, token, session: None }, next_id: 0, skip: false }
    }

    /// `initialize`, then `notifications/initialized`.
    async fn open(&mut self) -> Result<(), String> {
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "steward-mcp-bench", "version": "1" },
        });
        let answer = self.request("initialize", params).await?;
        if answer.get("result").is_none() {
            return Err(format!("initialize failed: {answer}"));
        }
        self.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }), false).await?;
        Ok(())
    }

    async fn op(&mut self, op: Op) -> Result<(), String> {
        match op {
            Op::Call => {
                let text = format!("call {}", self.next_id);
                let params = json!({ "name": "echo", "arguments": { "text": text } });
                let answer = self.request("tools/call", params).await?;
                let got = answer.pointer("/result/content/0/text").and_then(Value::as_str);
                if got != Some(text.as_str()) || answer.pointer("/result/isError") == Some(&json!(true)) {
                    return Err(format!("unexpected answer: {answer}"));
                }
            }
            Op::Ping => {
                let answer = self.request("ping", json!({})).await?;
                if answer.get("result").is_none() {
                    return Err(format!("unexpected answer: {answer}"));
                }
            }
            Op::Relay => {
                let answer = self.request("resources/list", json!({})).await?;
                if answer.pointer("/error/code") != Some(&json!(-32601)) {
                    return Err(format!("unexpected answer: {answer}"));
                }
            }
        }
        Ok(())
    }

    /// One request; its response message.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.send(&message, true))
            .await
            .map_err(|_| format!("no answer to {method} within {REQUEST_TIMEOUT:?}"))??;
        match answer {
            Some(answer) if answer.get("id") == Some(&json!(id)) => Ok(answer),
            other => Err(format!("no response to request {id}: {other:?}")),
        }
    }

    /// Sends one message; with `expect_answer`, the response to it (stdio:
    /// the next line that is a response; HTTP: the JSON body, or the
    /// response event of an SSE body).
    async fn send(&mut self, message: &Value, expect_answer: bool) -> Result<Option<Value>, String> {
        match &mut self.transport {
            Transport::Stdio { stdin, stdout, line, .. } => {
                let mut bytes = message.to_string().into_bytes();
                bytes.push(b'\n');
                stdin.write_all(&bytes).await.map_err(|e| e.to_string())?;
                stdin.flush().await.map_err(|e| e.to_string())?;
                if !expect_answer {
                    return Ok(None);
                }
                loop {
                    line.clear();
                    if stdout.read_line(line).await.map_err(|e| e.to_string())? == 0 {
                        return Err("the server closed its stdout".to_owned());
                    }
                    let Ok(answer) = serde_json::from_str::<Value>(line) else { continue };
                    // Notifications and server requests are not the answer.
                    if answer.get("method").is_none() {
                        return Ok(Some(answer));
                    }
                }
            }
            Transport::Http { client, url, token, session } => {
                let mut request = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", PROTOCOL_VERSION)
                    .body(message.to_string());
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(session) = session {
                    request = request.header("mcp-session-id", session.as_str());
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                if let Some(id) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                    *session = Some(id.to_owned());
                }
                let status = response.status();
                let sse = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream"));
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
                }
                if !expect_answer {
                    return Ok(None);
                }
                if !sse {
                    return serde_json::from_slice(&body).map(Some).map_err(|e| e.to_string());
                }
                let text = String::from_utf8_lossy(&body);
                let answer = text
                    .split("\n\n")
                    .filter_map(|event| {
                        let data: Vec<&str> =
                            event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                        serde_json::from_str::<Value>(&data.join("\n")).ok()
                    })
                    .find(|m| m.get("method").is_none());
                Ok(answer)
            }
        }
    }
}
