//! Sustained-load benchmark: calls at full speed through a real `steward run`
//! process for a minute, recording in one run what a busy agent costs in disk
//! and memory: the WAL's peak size, the state directory per 100k calls, the
//! daemon's RSS over time (heap and file-backed pages apart), the latency
//! percentiles, and the store's checkpoint pauses from `/metrics`.
//!
//! ```sh
//! cargo bench -p steward --bench sustained                      # 60 s, 32 clients, LLM door
//! BENCH_SECS=20 BENCH_CONCURRENCY=64 BENCH_DOOR=api cargo bench -p steward --bench sustained
//! STEWARD_BIN=/tmp/steward-before cargo bench -p steward --bench sustained   # another build
//! ```
//!
//! `STEWARD_BIN` runs the same load against another `steward` binary (the
//! build before a change): the "added p99" of a change is the difference of
//! two runs of this bench. The load generator and the mock upstream share
//! this process (and the machine's cores) with nothing else; steward runs
//! in its own process so its RSS is its own.

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and aborts on setup failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mock_upstream::MockUpstream;

/// The upstream credential steward injects (never seen by the load generator).
const UPSTREAM_TOKEN: &str = "bench-upstream-token-0123456789";

/// How often the WAL file's size is sampled for its peak: well under the
/// time the WAL takes to grow by a megabyte at full speed.
const WAL_SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// How often RSS and the store's files are sampled for the time series.
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let env_u64 = |name: &str, default: u64| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let secs = env_u64("BENCH_SECS", 60);
    let concurrency = env_u64("BENCH_CONCURRENCY", 32);
    let idle_secs = env_u64("BENCH_IDLE_SECS", 5);
    let llm = std::env::var("BENCH_DOOR").as_deref() != Ok("api");
    let bin = std::env::var("STEWARD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_steward").to_owned());

    let mock = MockUpstream::start().await.expect("mock upstream");
    mock.set_recording(false);
    let dir = tempfile::tempdir().expect("tempdir");
    leak_check::private_file(&dir.path().join("upstream.token"), &format!("{UPSTREAM_TOKEN}\n"));
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, config_text(&mock.base_url())).expect("config");
    let state = dir.path().join("state");
    let mut daemon = Daemon::start(&bin, &config, &state);
    let url = if llm {
        format!("http://{}/llm/openai/v1/chat/completions", daemon.addr)
    } else {
        format!("http://{}/api/api/echo", daemon.addr)
    };
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build().expect("client");
    let target = Target { client: client.clone(), url, token: daemon.token.clone(), llm };

    let wal = state.join("steward.db-wal");
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let wal_peak = Arc::new(AtomicU64::new(0));
    let wal_sampler = {
        let (wal, stop, peak) = (wal.clone(), Arc::clone(&stop_sampling), Arc::clone(&wal_peak));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(file_len(&wal), Ordering::Relaxed);
                tokio::time::sleep(WAL_SAMPLE_EVERY).await;
            }
        })
    };
    let done = Arc::new(AtomicU64::new(0));
    let series_sampler = {
        let (pid, state, stop, done) = (daemon.pid(), state.clone(), Arc::clone(&stop_sampling), Arc::clone(&done));
        tokio::spawn(async move {
            let start = Instant::now();
            let mut series = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                series.push(Sample::take(pid, &state, start.elapsed(), done.load(Ordering::Relaxed)));
                tokio::time::sleep(RSS_SAMPLE_EVERY).await;
            }
            series
        })
    };

    // Full speed: `concurrency` clients back to back for `secs`.
    let length = Duration::from_secs(secs);
    let end = Instant::now() + length;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, done) = (target.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0_u64);
                while Instant::now() < end {
                    let start = Instant::now();
                    if target.hit().await {
                        done.fetch_add(1, Ordering::Relaxed);
                        lat.push(start.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.expect("worker");
        lat.extend(l);
        errors += e;
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let calls = lat.len() as u64;
    let loaded = Sample::take(daemon.pid(), &state, length, calls);
    let metrics = scrape_metrics(&client, &daemon.addr).await;

    // Idle: the WAL must come back down without a restart, and RSS stay put.
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle = Sample::take(daemon.pid(), &state, length + Duration::from_secs(idle_secs), calls);
    stop_sampling.store(true, Ordering::Relaxed);
    let _ = wal_sampler.await;
    let series = series_sampler.await.expect("sampler");
    daemon.stop();
    mock.shutdown().await;

    let usage = DirUsage::of(&state);
    let per_100k = |bytes: u64| bytes as f64 * 100_000.0 / calls.max(1) as f64;
    let mb = |bytes: f64| bytes / 1_000_000.0;
    let p = |pct: f64| lat.get(((pct / 100.0) * (lat.len().max(1) - 1) as f64).round() as usize).copied();
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3} ms"));

    println!("steward: {bin}");
    println!(
        "door: {}, {concurrency} clients, {secs} s at full speed, then {idle_secs} s idle\n",
        if llm { "llm (priced chat completion)" } else { "api (POST /echo)" }
    );
    println!("| measurement | value |");
    println!("| --- | --- |");
    println!("| calls completed (errors) | {calls} ({errors}) |");
    println!("| calls per second | {:.0} |", calls as f64 / length.as_secs_f64());
    println!("| latency p50 / p99 / p99.9 | {} / {} / {} |", ms(p(50.0)), ms(p(99.0)), ms(p(99.9)));
    println!(
        "| WAL peak (sampled every {} ms) | {:.1} MB |",
        WAL_SAMPLE_EVERY.as_millis(),
        mb(wal_peak.load(Ordering::Relaxed) as f64)
    );
    println!(
        "| WAL at the end of the load / after {idle_secs} s idle | {:.1} MB / {:.1} MB |",
        mb(loaded.wal as f64),
        mb(idle.wal as f64)
    );
    println!(
        "| state dir after the run (store + WAL + audit logs) | {:.1} MB = {:.1} MB per 100k calls |",
        mb(usage.total as f64),
        mb(per_100k(usage.total))
    );
    println!(
        "| of which `steward.db` | {:.1} MB = {:.0} bytes per call |",
        mb(usage.db as f64),
        usage.db as f64 / calls.max(1) as f64
    );
    println!("| of which `steward.db-wal` + `-shm` | {:.1} MB |", mb((usage.wal + usage.shm) as f64));
    println!(
        "| of which audit log (`audit*.jsonl`) | {:.1} MB = {:.0} bytes per call |",
        mb(usage.audit as f64),
        usage.audit as f64 / calls.max(1) as f64
    );
    for mode in ["passive", "restart", "truncate"] {
        let Some(h) = CheckpointSummary::parse(&metrics, mode) else { continue };
        println!(
            "| `{mode}` checkpoints during the load (from `/metrics`) | {}, mean {:.1} ms, p99 ≤ {}, max ≤ {} |",
            h.count,
            h.mean_ms(),
            h.bound(0.99),
            h.bound(1.0)
        );
    }
    println!();
    println!(
        "| t (s) | calls | RSS MB | anon (heap) MB | file-backed MB | of which -shm mapped MB | shmem MB | WAL MB | -shm MB | db MB |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let shown = series.iter().filter(|s| s.at.as_secs() % 10 == 0).chain([&loaded, &idle]);
    for s in shown {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} | {:.1} |",
            s.at.as_secs(),
            s.calls,
            s.rss_kb as f64 / 1000.0,
            s.anon_kb as f64 / 1000.0,
            s.file_kb as f64 / 1000.0,
            s.shm_map_kb as f64 / 1000.0,
            s.shmem_kb as f64 / 1000.0,
            mb(s.wal as f64),
            mb(s.shm as f64),
            mb(s.db as f64)
        );
    }
    let after_warmup = series.iter().find(|s| s.at >= Duration::from_secs(10));
    if let Some(first) = after_warmup {
        let growth = (loaded.rss_kb as f64 - first.rss_kb as f64) / first.rss_kb.max(1) as f64 * 100.0;
        println!("\nRSS from t=10 s to the end of the load: {growth:+.1} %");
    }
}

/// The bench's deployment: one OpenAI-compatible provider and one REST
/// upstream on the mock, a cap no call reaches, the loop breaker off (every
/// call is identical), logs inside the state dir so its size is everything.
fn config_text(base: &str) -> String {
    format!(
        r#"
[agent]
name = "bench"
[gateway]
listen = "127.0.0.1:0"
[state]
dir = "./state"
[logging]
dir = "./state/logs"
[credentials.upstream]
source = "file:upstream.token"
[upstreams.api]
base_url = "{base}"
credential = "upstream"
[llm.openai]
kind = "openai"
base_url = "{base}"
credential = "upstream"
[spend]
daily_cap_usd = 1000000.0
[[tools]]
name = "echo"
upstream = "api"
match = "POST /echo"
side_effect = false
[loop_breaker]
max_identical = 0
"#
    )
}

/// A `steward run` child process.
struct Daemon {
    child: Child,
    addr: String,
    token: String,
}

impl Daemon {
    fn start(bin: &str, config: &Path, state: &Path) -> Daemon {
        let stderr = std::fs::File::create(config.with_file_name("daemon.stderr")).expect("stderr file");
        let mut child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("STEWARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn steward run");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(addr) = std::fs::read_to_string(state.join("daemon.addr")) {
                break addr.trim().to_owned();
            }
            assert!(child.try_wait().expect("wait").is_none(), "steward run exited early");
            assert!(Instant::now() < deadline, "steward did not start within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let token = std::fs::read_to_string(state.join("agent.token")).expect("agent token").trim().to_owned();
        Daemon { child, addr, token }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a clean drain) and wait.
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    url: String,
    token: String,
    llm: bool,
}

impl Target {
    async fn hit(&self) -> bool {
        let body = if self.llm {
            r#"{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"summarise the day's posts in one line"}]}"#
        } else {
            r#"{"status":"benchmark payload of a typical post"}"#
        };
        let request =
            self.client.post(&self.url).bearer_auth(&self.token).header("content-type", "application/json").body(body);
        match request.send().await {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

/// One point of the time series.
struct Sample {
    at: Duration,
    calls: u64,
    rss_kb: u64,
    anon_kb: u64,
    file_kb: u64,
    shmem_kb: u64,
    /// Resident pages of the WAL index (`steward.db-shm`) mapping: part of
    /// `file_kb`, and it grows with the WAL's frame count.
    shm_map_kb: u64,
    wal: u64,
    shm: u64,
    db: u64,
}

impl Sample {
    fn take(pid: u32, state: &Path, at: Duration, calls: u64) -> Sample {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Sample {
            at,
            calls,
            shm_map_kb: mapped_rss_kb(pid, "steward.db-shm"),
            rss_kb: field("VmRSS:"),
            anon_kb: field("RssAnon:"),
            file_kb: field("RssFile:"),
            shmem_kb: field("RssShmem:"),
            wal: file_len(&state.join("steward.db-wal")),
            shm: file_len(&state.join("steward.db-shm")),
            db: file_len(&state.join("steward.db")),
        }
    }
}

/// Resident kB of the mappings of `pid` whose path ends with `name`, from
/// `/proc/<pid>/smaps`.
fn mapped_rss_kb(pid: u32, name: &str) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut inside, mut kb) = (false, 0);
    for line in smaps.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            if inside {
                kb += rss.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0);
            }
        } else if line.split_whitespace().nth(1).is_some_and(|perms| perms.len() == 4 && line.contains('-')) {
            // A mapping header: `start-end perms offset dev inode [path]`.
            inside = line.trim_end().ends_with(name);
        }
    }
    kb
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Bytes on disk in the state dir, by kind.
#[derive(Default)]
struct DirUsage {
    total: u64,
    db: u64,
    wal: u64,
    shm: u64,
    audit: u64,
}

impl DirUsage {
    fn of(dir: &Path) -> DirUsage {
        let mut usage = DirUsage::default();
        let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(entry.path());
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                usage.total += meta.len();
                match name.as_str() {
                    "steward.db" => usage.db += meta.len(),
                    "steward.db-wal" => usage.wal += meta.len(),
                    "steward.db-shm" => usage.shm += meta.len(),
                    n if n.starts_with("audit") => usage.audit += meta.len(),
                    _ => {}
                }
            }
        }
        usage
    }
}

async fn scrape_metrics(client: &reqwest::Client, addr: &str) -> String {
    match client.get(format!("http://{addr}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// One mode of `steward_store_checkpoint_duration_seconds`, read back from
/// the exposition text (absent from a build before the metric existed).
struct CheckpointSummary {
    count: u64,
    sum: f64,
    /// Cumulative `(le, count)`.
    buckets: Vec<(String, u64)>,
}

impl CheckpointSummary {
    fn parse(text: &str, mode: &str) -> Option<CheckpointSummary> {
        let name = "steward_store_checkpoint_duration_seconds";
        let label = format!("mode=\"{mode}\"");
        let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        let mut summary = CheckpointSummary { count: 0, sum: 0.0, buckets: Vec::new() };
        let mut seen = false;
        for line in text.lines().filter(|l| l.starts_with(name) && l.contains(&label)) {
            seen = true;
            if line.starts_with(&format!("{name}_count")) {
                summary.count = value(line)? as u64;
            } else if line.starts_with(&format!("{name}_sum")) {
                summary.sum = value(line)?;
            } else if let Some(le) = line.split("le=\"").nth(1).and_then(|rest| rest.split('"').next()) {
                summary.buckets.push((le.to_owned(), value(line)? as u64));
            }
        }
        seen.then_some(summary)
    }

    fn mean_ms(&self) -> f64 {
        self.sum * 1000.0 / self.count.max(1) as f64
    }

    /// The upper bound of the bucket holding the `q` quantile.
    fn bound(&self, q: f64) -> String {
        if self.count == 0 {
            return "-".to_owned();
        }
        let rank = (q * self.count as f64).ceil() as u64;
        let le = self.buckets.iter().find(|(_, n)| *n >= rank.max(1)).map_or("+Inf", |(le, _)| le.as_str());
        match le.parse::<f64>() {
            Ok(secs) => format!("{} ms", secs * 1000.0),
            Err(_) => le.to_owned(),
        }
    }
}
