//! What an operator feels at the edges of a run: how long `steward run`
//! takes to be ready, how long after `steward stop` is invoked the next call
//! is refused, how much memory the daemon holds idle and after load, and how
//! big the binary is.
//!
//! `cargo bench -p steward --bench startup` prints a Markdown table.
//! `BENCH_RUNS` (default 20) sets the runs of the start and stop rows;
//! `BENCH_CALLS` (default 100000) the calls before the second RSS reading;
//! `STEWARD_BIN` measures another build of the binary.
//!
//! - **Start to ready**: spawn `steward -c steward.toml run`, then poll
//!   `GET /readyz` (a fresh connection every 0.5 ms, raw HTTP on loopback)
//!   until it answers 200. The daemon is stopped with SIGTERM between runs;
//!   the state dir is kept, as across a restart.
//! - **Stop to refusal**: a client calls `POST /api/api/echo` back to back
//!   (one fresh connection per call, so no call waits on another); the bench
//!   spawns `steward stop` and measures from the spawn to the first call
//!   answered 403 `killed`. `steward resume` between runs. The time of the
//!   `stop` process itself (spawn to exit) is shown beside it.
//! - **RSS**: `VmRSS` of the daemon 1 s after ready, then after
//!   `BENCH_CALLS` calls from 32 concurrent keep-alive clients, each split
//!   into `RssAnon` (what steward holds) and `RssFile` (the executable's
//!   mapped pages, shared page cache).
//! - **Binary**: the size of the binary under test, and of a stripped copy.
//!
//! Nothing here is a test: the figures vary with the machine and are
//! recorded in BENCHMARKS.md.

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and aborts on setup failure"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-upstream-token-0123456789";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let runs = env_u64("BENCH_RUNS", 20).max(1) as usize;
    let calls = env_u64("BENCH_CALLS", 100_000);
    let bin = std::env::var("STEWARD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_steward").to_owned());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let mock = rt.block_on(mock_upstream::MockUpstream::start()).expect("mock upstream");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &mock.base_url());

    // Start to ready, `runs` times; the first start creates the state.
    let mut ready = Vec::with_capacity(runs);
    for _ in 0..=runs {
        let (daemon, elapsed, _) = start(&bin, &config);
        ready.push(elapsed);
        terminate(daemon);
    }
    // The first start made the database and the agent token: not a restart.
    let first = ready.remove(0);

    // Stop to refusal, with the daemon running.
    let (daemon, _, addr) = start(&bin, &config);
    let agent_token =
        std::fs::read_to_string(dir.path().join("state/agent.token")).expect("agent token").trim().to_owned();
    assert_eq!(call(addr, &agent_token), Some(200), "a call through steward must pass before the stop runs");
    let idle_rss = {
        std::thread::sleep(Duration::from_secs(1));
        rss(daemon.id())
    };
    let mut refused = Vec::with_capacity(runs);
    let mut stop_exit = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (to_refusal, stop_took) = stop_to_refusal(&bin, &config, addr, &agent_token);
        refused.push(to_refusal);
        stop_exit.push(stop_took);
        let resumed = Command::new(&bin).arg("-c").arg(&config).arg("resume").output().expect("steward resume");
        assert!(resumed.status.success(), "steward resume: {}", String::from_utf8_lossy(&resumed.stderr));
        while call(addr, &agent_token) != Some(200) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    // RSS after load.
    let load_start = Instant::now();
    let done = rt.block_on(load(addr, &agent_token, calls));
    let load_secs = load_start.elapsed().as_secs_f64();
    let loaded_rss = rss(daemon.id());
    terminate(daemon);
    rt.block_on(mock.shutdown());

    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    let stripped = dir.path().join("steward.stripped");
    let stripped_size = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&bin)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&stripped).ok())
        .map(|m| m.len());

    println!("| figure | median | max | min |");
    println!("| --- | --- | --- | --- |");
    row(&format!("`steward run` start to ready ({runs} restarts)"), &mut ready);
    println!("| `steward run` start to ready, first start (creates the state) | {first:.1} ms | | |");
    row(&format!("`steward stop` invoked to the next call refused ({runs} runs)"), &mut refused);
    row("`steward stop` process, spawn to exit", &mut stop_exit);
    println!("| idle RSS, 1 s after ready | {idle_rss} | | |");
    println!("| RSS after {done} calls ({:.0} calls/s, 32 clients) | {loaded_rss} | | |", done as f64 / load_secs);
    println!(
        "| binary under test / stripped copy | {:.1} MB / {} | | |",
        size as f64 / 1e6,
        stripped_size.map_or_else(|| "strip not available".to_owned(), |s| format!("{:.1} MB", s as f64 / 1e6))
    );
}

fn row(what: &str, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    let median = samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN);
    let max = samples.last().copied().unwrap_or(f64::NAN);
    let min = samples.first().copied().unwrap_or(f64::NAN);
    println!("| {what} | {median:.1} ms | {max:.1} ms | {min:.1} ms |");
}

fn write_config(dir: &Path, upstream: &str) -> PathBuf {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("token"))
        .expect("token file");
    writeln!(f, "{TOKEN}").expect("write token");
    // A deployment like the quickstart's: one HTTP upstream, one LLM
    // provider, a spend cap, one tool; no agent process, so the figures
    // are steward's own.
    let config = format!(
        r#"
[agent]
name = "bench"
[gateway]
listen = "127.0.0.1:0"
[state]
dir = "./state"
[credentials.api]
source = "file:token"
[upstreams.api]
base_url = "{upstream}"
credential = "api"
[credentials.llm]
source = "file:token"
[llm.openai]
kind = "openai"
base_url = "{upstream}"
credential = "llm"
[spend]
daily_cap_usd = 1000.0
[[tools]]
name = "echo"
upstream = "api"
match = "POST /echo"
side_effect = false
[loop_breaker]
max_identical = 0
"#
    );
    let path = dir.join("steward.toml");
    std::fs::write(&path, config).expect("config");
    path
}

/// Spawns `steward run` and waits until `/readyz` answers 200: (the child,
/// ms from spawn to ready, the gateway's address).
fn start(bin: &str, config: &Path) -> (Child, f64, SocketAddr) {
    let addr_file = config.parent().expect("config dir").join("state/daemon.addr");
    let _ = std::fs::remove_file(&addr_file);
    let began = Instant::now();
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(config)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn steward run");
    let deadline = began + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "steward run was not ready within 30 s");
        let exited = child.try_wait().ok().flatten();
        assert!(exited.is_none(), "steward run exited before it was ready: {exited:?}");
        let addr = std::fs::read_to_string(&addr_file).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok());
        if let Some(addr) = addr
            && get_status(addr, "GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n") == Some(200)
        {
            return (child, began.elapsed().as_secs_f64() * 1000.0, addr);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// SIGTERM and wait: the daemon drains and exits.
fn terminate(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
}

/// One request on a fresh connection; the status code.
fn get_status(addr: SocketAddr, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// One tool call through steward's HTTP door; the status code.
fn call(addr: SocketAddr, token: &str) -> Option<u16> {
    let body = r#"{"status":"benchmark payload of a typical post"}"#;
    let request = format!(
        "POST /api/api/echo HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    get_status(addr, &request)
}

/// Spawns `steward stop` while a client calls back to back: (ms from the
/// spawn to the first call refused with 403, ms from the spawn to the stop
/// process's exit).
fn stop_to_refusal(bin: &str, config: &Path, addr: SocketAddr, token: &str) -> (f64, f64) {
    let refused_at = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let began = Instant::now();
    let caller = {
        let (refused_at, running, token) = (Arc::clone(&refused_at), Arc::clone(&running), token.to_owned());
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                if call(addr, &token) == Some(403) {
                    let ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    refused_at.store(ns.max(1), Ordering::Relaxed);
                    return;
                }
            }
        })
    };
    // The caller is running before the stop starts.
    std::thread::sleep(Duration::from_millis(20));
    let spawned = Instant::now();
    let offset = spawned - began;
    let stop = Command::new(bin)
        .arg("-c")
        .arg(config)
        .arg("stop")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("steward stop");
    let stop_took = spawned.elapsed().as_secs_f64() * 1000.0;
    assert!(stop.success(), "steward stop failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused_at.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    running.store(false, Ordering::Relaxed);
    let _ = caller.join();
    let at = Duration::from_nanos(refused_at.load(Ordering::Relaxed));
    assert!(!at.is_zero(), "no call was refused within 10 s of steward stop");
    ((at.saturating_sub(offset)).as_secs_f64() * 1000.0, stop_took)
}

/// The resident memory of `pid`, in kB, as `/proc/PID/status` splits it.
#[derive(Clone, Copy)]
struct Rss {
    /// `VmRSS`: everything mapped and resident.
    total: u64,
    /// `RssAnon`: the heap, the stacks, what the process itself holds.
    anon: u64,
    /// `RssFile`: mapped files, nearly all the executable's own pages:
    /// page cache shared with every process running the binary.
    file: u64,
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |kb: u64| kb as f64 / 1024.0;
        write!(f, "{:.1} MB (anonymous {:.1}, files {:.1})", mb(self.total), mb(self.anon), mb(self.file))
    }
}

fn rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Rss { total: field("VmRSS:"), anon: field("RssAnon:"), file: field("RssFile:") }
}

/// `calls` calls from 32 keep-alive clients; how many succeeded.
async fn load(addr: SocketAddr, token: &str, calls: u64) -> u64 {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).tcp_nodelay(true).build().expect("client");
    let url = format!("http://{addr}/api/api/echo");
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..32 {
        let (client, url, token, next, ok) =
            (client.clone(), url.clone(), token.to_owned(), Arc::clone(&next), Arc::clone(&ok));
        handles.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .body(r#"{"status":"benchmark payload of a typical post"}"#)
                    .send()
                    .await;
                if let Ok(response) = sent
                    && response.status().is_success()
                    && response.bytes().await.is_ok()
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    ok.load(Ordering::Relaxed)
}
