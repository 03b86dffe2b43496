//! Gateway overhead benchmark: the same load straight to mock-upstream and
//! through steward (full pipeline: auth, tool match, store admission, credential
//! injection, journal completion, audit line), in the same run, so the
//! difference is steward's cost on this machine.
//!
//! `cargo bench -p steward --bench gateway` prints a Markdown table.
//! `BENCH_SECS` (default 5) sets each phase's length; the steady phases run
//! `BENCH_ROUNDS` (default 3) alternating rounds per target, pooled;
//! `BENCH_ONLY=steady` runs only the steady phases (to compare quickly or
//! profile them); `BENCH_ONLY=lowrate` only the low-rate rows (a quiet
//! agent's pace: 5 clients, each one call every 100 ms, as `hey -q 10 -c 5`).
//! The load generator shares the machine with steward and the mock, so max-RPS
//! figures are a floor for what steward does with a separate client.
//!
//! `BENCH_ONLY=fleet` compares the two stores instead (issue 20): the same
//! daemon with its embedded SQLite store and with a fleet's PostgreSQL
//! store (`[store] url`, a throwaway local cluster: `crates/pg-harness`),
//! in alternating rounds of the same run: p50/p99 at 50 req/s and at 1k
//! req/s, and max req/s.
//!
//! `BENCH_NOOP_PROXY=127.0.0.1:18081 BENCH_UPSTREAM=http://127.0.0.1:18080`
//! runs no benchmark: it serves the no-op proxy (the floor row) on that
//! address until killed, for `bench/peers.sh`.

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and aborts on setup failure"
)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mock_upstream::MockUpstream;

const TOKEN: &str = "bench-upstream-token-0123456789";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if let Ok(listen) = std::env::var("BENCH_NOOP_PROXY") {
        let upstream = std::env::var("BENCH_UPSTREAM").expect("BENCH_UPSTREAM: the upstream's base URL");
        let addr =
            noop_proxy(upstream, listen.parse().expect("BENCH_NOOP_PROXY: an address such as 127.0.0.1:18081")).await;
        println!("no-op proxy on {addr}");
        std::future::pending::<()>().await;
    }
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let phase = Duration::from_secs(secs);

    let mock = MockUpstream::start().await.expect("mock upstream");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.path().join("token"))
        .expect("token file");
    writeln!(f, "{TOKEN}").expect("write token");
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
base_url = "{0}"
credential = "api"
[credentials.llm]
source = "file:token"
[llm.openai]
kind = "openai"
base_url = "{0}"
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
"#,
        mock.base_url()
    );
    std::fs::write(dir.path().join("steward.toml"), config).expect("config");
    let config = steward_core::config::load(&dir.path().join("steward.toml")).expect("valid config");
    let daemon = steward_core::daemon::start(&config).await.expect("daemon");
    let agent_token = std::fs::read_to_string(config.state.token_path()).expect("agent token").trim().to_owned();

    let client = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build().expect("client");
    let direct = Target { client: client.clone(), url: format!("{}/echo", mock.base_url()), token: None };
    let through = Target { client, url: format!("http://{}/api/api/echo", daemon.addr()), token: Some(agent_token) };

    // Warm both paths (connection pools, SQLite page cache).
    fixed_rate(&direct, 500, Duration::from_millis(500)).await;
    fixed_rate(&through, 500, Duration::from_millis(500)).await;

    // The streaming targets: the mock's chat completions straight, through
    // steward, and through a pass-through proxy on the same HTTP stack (axum
    // server, reqwest client, streamed body) with no pipeline: what any proxy
    // hop costs here.
    let llm_direct = Target { url: format!("{}/v1/chat/completions", mock.base_url()), ..direct.clone() };
    let llm_through =
        Target { url: format!("http://{}/llm/openai/v1/chat/completions", daemon.addr()), ..through.clone() };
    let noop = noop_proxy(mock.base_url(), "127.0.0.1:0".parse().expect("addr")).await;
    let llm_noop = Target { url: format!("http://{noop}/v1/chat/completions"), ..direct.clone() };

    // `BENCH_ONLY=steady`: only the steady streams (direct, through a no-op
    // proxy, through steward), for quick comparisons and a profiler.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("steady") {
        let names = ["direct", "no-op proxy", "through steward"];
        let pooled = steady_rounds(&[&llm_direct, &llm_noop, &llm_through], phase).await;
        for (name, steady) in names.into_iter().zip(pooled) {
            println!(
                "steady {name}: TTFB p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms; gap p99 {:.3} ms; {} streams ({} errors), peak {}",
                steady.stats.ttfb.p(50.0),
                steady.stats.ttfb.p(90.0),
                steady.stats.ttfb.p(99.0),
                steady.stats.gap.p(99.0),
                steady.stats.ttfb.lat.len(),
                steady.stats.ttfb.errors,
                steady.peak
            );
        }
        daemon.shutdown().await;
        mock.shutdown().await;
        return;
    }

    if std::env::var("BENCH_ONLY").as_deref() == Ok("fleet") {
        fleet_rows(&dir, &through, phase).await;
        daemon.shutdown().await;
        mock.shutdown().await;
        return;
    }

    // A quiet agent's pace: 5 clients, 10 calls/s each. Twice the phase
    // (at least 10 s, 500 calls per target) so the p99 rests on several
    // samples; the targets alternate in rounds, as in the steady phase.
    // The no-op proxy is the floor: what the hop alone adds at this pace.
    let low_length = (phase * 2).max(Duration::from_secs(10));
    let api_noop = Target { url: format!("http://{noop}/echo"), ..direct.clone() };
    let [dlow, nlow, slow]: [Latencies; 3] =
        paced_rounds(&[&direct, &api_noop, &through], low_length).await.try_into().ok().expect("one result per target");
    if std::env::var("BENCH_ONLY").as_deref() == Ok("lowrate") {
        low_rate_rows(&dlow, &nlow, &slow);
        daemon.shutdown().await;
        mock.shutdown().await;
        return;
    }
    let d1k = fixed_rate(&direct, 1000, phase).await;
    let s1k = fixed_rate(&through, 1000, phase).await;
    let dmax = max_rps(&direct, 64, phase).await;
    let smax = max_rps(&through, 64, phase).await;
    let dstream = streams(&llm_direct, 200).await;
    let sstream = streams(&llm_through, 200).await;
    let [dsteady, nsteady, ssteady]: [Steady; 3] = steady_rounds(&[&llm_direct, &llm_noop, &llm_through], phase)
        .await
        .try_into()
        .ok()
        .expect("one result per target");

    low_rate_rows(&dlow, &nlow, &slow);
    println!(
        "| p50 latency at 1k RPS | {:.3} ms | {:.3} ms | {:.3} ms |",
        d1k.p(50.0),
        s1k.p(50.0),
        s1k.p(50.0) - d1k.p(50.0)
    );
    println!(
        "| p99 latency at 1k RPS | {:.3} ms | {:.3} ms | {:.3} ms |",
        d1k.p(99.0),
        s1k.p(99.0),
        s1k.p(99.0) - d1k.p(99.0)
    );
    println!(
        "| requests completed at 1k RPS | {} ({} errors) | {} ({} errors) | |",
        d1k.lat.len(),
        d1k.errors,
        s1k.lat.len(),
        s1k.errors
    );
    println!("| max RPS, 64 concurrent | {:.0} | {:.0} | |", dmax.0, smax.0);
    println!("| p99 latency at max RPS | {:.3} ms | {:.3} ms | |", dmax.1, smax.1);
    let ttfb_rows = [
        ("200 concurrent streams (steady)", &ssteady),
        ("steady, through a no-op proxy (same HTTP stack, no pipeline)", &nsteady),
    ];
    for (what, through) in ttfb_rows {
        for (pct, label) in [(50.0, "p50"), (99.0, "p99")] {
            println!(
                "| SSE time to first byte {label}, {what} | {:.3} ms | {:.3} ms | {:.3} ms |",
                dsteady.stats.ttfb.p(pct),
                through.stats.ttfb.p(pct),
                through.stats.ttfb.p(pct) - dsteady.stats.ttfb.p(pct)
            );
        }
    }
    println!(
        "| SSE gap between chunks p99 (steady; mock paces {STEADY_GAP_MS} ms) | {:.3} ms | {:.3} ms | {:.3} ms |",
        dsteady.stats.gap.p(99.0),
        ssteady.stats.gap.p(99.0),
        ssteady.stats.gap.p(99.0) - dsteady.stats.gap.p(99.0)
    );
    println!(
        "| steady streams measured (errors), peak concurrency | {} ({}), {} | {} ({}), {} | |",
        dsteady.stats.ttfb.lat.len(),
        dsteady.stats.ttfb.errors,
        dsteady.peak,
        ssteady.stats.ttfb.lat.len(),
        ssteady.stats.ttfb.errors,
        ssteady.peak
    );
    println!(
        "| SSE time to first byte p50, burst: 200 streams started at once | {:.3} ms | {:.3} ms | {:.3} ms |",
        dstream.ttfb.p(50.0),
        sstream.ttfb.p(50.0),
        sstream.ttfb.p(50.0) - dstream.ttfb.p(50.0)
    );
    println!(
        "| SSE time to first byte p99, burst: 200 streams started at once | {:.3} ms | {:.3} ms | {:.3} ms |",
        dstream.ttfb.p(99.0),
        sstream.ttfb.p(99.0),
        sstream.ttfb.p(99.0) - dstream.ttfb.p(99.0)
    );
    println!(
        "| SSE gap between chunks p99 (burst; mock paces 10 ms) | {:.3} ms | {:.3} ms | {:.3} ms |",
        dstream.gap.p(99.0),
        sstream.gap.p(99.0),
        sstream.gap.p(99.0) - dstream.gap.p(99.0)
    );
    println!(
        "| burst streams completed | {} ({} errors) | {} ({} errors) | |",
        dstream.ttfb.lat.len(),
        dstream.ttfb.errors,
        sstream.ttfb.lat.len(),
        sstream.ttfb.errors
    );
    daemon.shutdown().await;
    mock.shutdown().await;
}

/// The table's head and its first rows: latency at a quiet agent's pace,
/// through steward and through the no-op proxy (the floor).
fn low_rate_rows(direct: &Latencies, noop: &Latencies, through: &Latencies) {
    println!("| measurement | direct to mock | through steward | added by steward |");
    println!("| --- | --- | --- | --- |");
    let rows = [(" (5 clients x 10/s)", through), (", no-op proxy (same HTTP stack, no pipeline)", noop)];
    for (what, target) in rows {
        for (pct, label) in [(50.0, "p50"), (99.0, "p99")] {
            println!(
                "| {label} latency at 50 req/s{what} | {:.3} ms | {:.3} ms | {:.3} ms |",
                direct.p(pct),
                target.p(pct),
                target.p(pct) - direct.p(pct)
            );
        }
    }
    println!(
        "| requests completed at 50 req/s | {} ({} errors) | {} ({} errors) | |",
        direct.lat.len(),
        direct.errors,
        through.lat.len(),
        through.errors
    );
}

/// `BENCH_ONLY=fleet`: a second daemon on the same config with `[store]
/// url` set (a throwaway PostgreSQL cluster on loopback, with pg-harness's
/// test settings: `fsync` and `synchronous_commit` off, so no commit waits
/// for a disk flush), and both measured in the same run, alternating.
async fn fleet_rows(dir: &tempfile::TempDir, sqlite: &Target, phase: Duration) {
    let cluster = pg_harness::PgCluster::start().expect("PostgreSQL (initdb, postgres) for BENCH_ONLY=fleet");
    let url = cluster.url();
    steward_core::store::pg::fleet::migrate_at(&url).await.expect("migrate the bench database");
    let text = std::fs::read_to_string(dir.path().join("steward.toml")).expect("config");
    let text = text.replace("dir = \"./state\"", "dir = \"./state-pg\"")
        + "[store]\nurl = \"file:store.url\"\ninstance = \"bench\"\npool = 16\n";
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.path().join("store.url"))
        .expect("store url file");
    writeln!(f, "{url}").expect("write store url");
    std::fs::write(dir.path().join("steward-pg.toml"), text).expect("config");
    let config = steward_core::config::load(&dir.path().join("steward-pg.toml")).expect("valid config");
    let daemon = steward_core::daemon::start(&config).await.expect("daemon on PostgreSQL");
    let token = std::fs::read_to_string(config.state.token_path()).expect("agent token").trim().to_owned();
    let pg = Target { url: format!("http://{}/api/api/echo", daemon.addr()), token: Some(token), ..sqlite.clone() };
    fixed_rate(&pg, 500, Duration::from_millis(500)).await;

    let low_length = (phase * 2).max(Duration::from_secs(10));
    let [lite_low, pg_low]: [Latencies; 2] =
        paced_rounds(&[sqlite, &pg], low_length).await.try_into().ok().expect("one result per target");
    let lite_1k = fixed_rate(sqlite, 1000, phase).await;
    let pg_1k = fixed_rate(&pg, 1000, phase).await;
    let lite_max = max_rps(sqlite, 64, phase).await;
    let pg_max = max_rps(&pg, 64, phase).await;
    println!("| measurement (through steward) | SQLite store | PostgreSQL store | difference |");
    println!("| --- | --- | --- | --- |");
    for (what, lite, pg) in [("50 req/s (5 clients x 10/s)", &lite_low, &pg_low), ("1k req/s", &lite_1k, &pg_1k)] {
        for (pct, label) in [(50.0, "p50"), (99.0, "p99")] {
            println!(
                "| {label} latency at {what} | {:.3} ms | {:.3} ms | {:+.3} ms |",
                lite.p(pct),
                pg.p(pct),
                pg.p(pct) - lite.p(pct)
            );
        }
        println!(
            "| requests completed at {what} | {} ({} errors) | {} ({} errors) | |",
            lite.lat.len(),
            lite.errors,
            pg.lat.len(),
            pg.errors
        );
    }
    println!("| max req/s, 64 concurrent | {:.0} | {:.0} | |", lite_max.0, pg_max.0);
    println!("| p99 latency at max req/s | {:.3} ms | {:.3} ms | |", lite_max.1, pg_max.1);
    daemon.shutdown().await;
    drop(cluster);
}

/// [`paced`] for each target in turn, in [`STEADY_ROUNDS`] rounds of
/// `length / rounds`, pooled per target.
async fn paced_rounds(targets: &[&Target], length: Duration) -> Vec<Latencies> {
    let rounds = u32::try_from(STEADY_ROUNDS).unwrap_or(1);
    let mut pooled: Vec<Latencies> = targets.iter().map(|_| Latencies { lat: Vec::new(), errors: 0 }).collect();
    for _ in 0..rounds {
        for (target, sum) in targets.iter().zip(pooled.iter_mut()) {
            let round = paced(target, 5, 10, length / rounds).await;
            sum.lat.extend(round.lat);
            sum.errors += round.errors;
        }
    }
    for sum in &mut pooled {
        sum.lat.sort_by(|a, b| a.total_cmp(b));
    }
    pooled
}

/// Closed loop at a fixed pace: `clients` loops, each sending one request
/// every 1/`per_client_rps` s (or as soon as the previous answer is in, if
/// that is later), as `hey -q per_client_rps -c clients` does.
async fn paced(target: &Target, clients: u64, per_client_rps: u64, length: Duration) -> Latencies {
    let end = Instant::now() + length;
    let mut handles = Vec::new();
    for i in 0..clients {
        let target = target.clone();
        handles.push(tokio::spawn(async move {
            let every = Duration::from_nanos(1_000_000_000 / per_client_rps);
            // Spread the clients over the period instead of in step.
            tokio::time::sleep(every / u32::try_from(clients).unwrap_or(1) * u32::try_from(i).unwrap_or(0)).await;
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut lat, mut errors) = (Vec::new(), 0);
            while Instant::now() < end {
                interval.tick().await;
                let start = Instant::now();
                if target.hit().await {
                    lat.push(start.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for handle in handles {
        let (l, e) = handle.await.unwrap_or_default();
        lat.extend(l);
        errors += e;
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    Latencies { lat, errors }
}

#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Target {
    async fn hit(&self) -> bool {
        let mut request = self.client.post(&self.url).body(r#"{"status":"benchmark payload of a typical post"}"#);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

struct Latencies {
    lat: Vec<f64>,
    errors: u64,
}

impl Latencies {
    fn p(&self, pct: f64) -> f64 {
        if self.lat.is_empty() {
            return f64::NAN;
        }
        let i = ((pct / 100.0) * (self.lat.len() - 1) as f64).round() as usize;
        self.lat[i]
    }
}

/// Time to first byte and gaps between chunks of `n` concurrent streams.
struct StreamStats {
    ttfb: Latencies,
    gap: Latencies,
}

/// One streamed chat completion of `chunks` chunks `delay_ms` apart:
/// (time to first byte, gaps between chunks) in ms, `None` on any failure.
async fn one_stream(target: &Target, chunks: u64, delay_ms: u64) -> Option<(f64, Vec<f64>)> {
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"bench"}]}"#;
    let mut request = target
        .client
        .post(&target.url)
        .header("content-type", "application/json")
        .header("x-mock-chunks", chunks.to_string())
        .header("x-mock-delay-ms", delay_ms.to_string())
        .body(body);
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let start = Instant::now();
    let mut response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let (mut ttfb, mut gaps, mut last) = (None, Vec::new(), Instant::now());
    while let Ok(Some(_chunk)) = response.chunk().await {
        let now = Instant::now();
        match ttfb {
            None => ttfb = Some(start.elapsed().as_secs_f64() * 1000.0),
            Some(_) => gaps.push((now - last).as_secs_f64() * 1000.0),
        }
        last = now;
    }
    Some((ttfb?, gaps))
}

/// Sorted statistics of finished streams (`None`: a stream that failed).
fn stream_stats(results: impl IntoIterator<Item = Option<(f64, Vec<f64>)>>) -> StreamStats {
    let (mut ttfb, mut gap, mut errors) = (Vec::new(), Vec::new(), 0);
    for result in results {
        match result {
            Some((first, gaps)) => {
                ttfb.push(first);
                gap.extend(gaps);
            }
            None => errors += 1,
        }
    }
    ttfb.sort_by(|a, b| a.total_cmp(b));
    gap.sort_by(|a, b| a.total_cmp(b));
    StreamStats { ttfb: Latencies { lat: ttfb, errors }, gap: Latencies { lat: gap, errors: 0 } }
}

async fn streams(target: &Target, n: usize) -> StreamStats {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { one_stream(&target, 20, 10).await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.ok().flatten());
    }
    stream_stats(results)
}

/// Chunks per stream in the steady phase, and the mock's pause between them:
/// a 2 s answer at 20 chunks per second, about the pace of a real model.
const STEADY_CHUNKS: u64 = 40;
/// See [`STEADY_CHUNKS`].
const STEADY_GAP_MS: u64 = 50;

/// What the steady phase measured.
struct Steady {
    stats: StreamStats,
    /// Most streams open at once.
    peak: u64,
}

/// Rounds of the steady phase ([`steady_rounds`]); `BENCH_ROUNDS` overrides.
const STEADY_ROUNDS: usize = 3;

/// The steady phase for each target in turn, repeated for `BENCH_ROUNDS`
/// rounds (default [`STEADY_ROUNDS`]), each target's samples pooled over the
/// rounds. Alternating spreads the machine's drift (other processes, CPU
/// frequency, page cache) over every target alike, where one long phase per
/// target would hand each its own slice of it: on this 2-core VM the direct
/// p99 alone moved 0.78 to 1.06 ms between consecutive single phases.
async fn steady_rounds(targets: &[&Target], length: Duration) -> Vec<Steady> {
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(STEADY_ROUNDS).max(1);
    let mut pooled: Vec<Steady> = Vec::new();
    for _ in 0..rounds {
        for (i, target) in targets.iter().enumerate() {
            let round = steady_streams(target, 200, length).await;
            match pooled.get_mut(i) {
                None => pooled.push(round),
                Some(sum) => {
                    sum.stats.ttfb.lat.extend(round.stats.ttfb.lat);
                    sum.stats.ttfb.errors += round.stats.ttfb.errors;
                    sum.stats.gap.lat.extend(round.stats.gap.lat);
                    sum.peak = sum.peak.max(round.peak);
                }
            }
        }
    }
    for steady in &mut pooled {
        steady.stats.ttfb.lat.sort_by(|a, b| a.total_cmp(b));
        steady.stats.gap.lat.sort_by(|a, b| a.total_cmp(b));
    }
    pooled
}

/// `concurrency` streams open at all times: new streams arrive open-loop at
/// `concurrency / stream length` per second for a warm-up of one stream
/// length (until the level is reached) plus `length`; only streams started
/// after the warm-up are measured, so each of them starts while about
/// `concurrency` others are streaming.
async fn steady_streams(target: &Target, concurrency: u64, length: Duration) -> Steady {
    let stream_len = Duration::from_millis(STEADY_CHUNKS * STEADY_GAP_MS);
    let every = stream_len / u32::try_from(concurrency).unwrap_or(1);
    let open = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let measure_from = begin + stream_len;
    let end = measure_from + length;
    let mut handles = Vec::new();
    while Instant::now() < end {
        interval.tick().await;
        let measured = Instant::now() >= measure_from;
        let (target, open, peak) = (target.clone(), Arc::clone(&open), Arc::clone(&peak));
        handles.push(tokio::spawn(async move {
            let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now_open, Ordering::Relaxed);
            let result = one_stream(&target, STEADY_CHUNKS, STEADY_GAP_MS).await;
            open.fetch_sub(1, Ordering::Relaxed);
            measured.then_some(result)
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        // `None`: started during the warm-up, not measured.
        if let Some(result) = handle.await.ok().flatten() {
            results.push(result);
        }
    }
    Steady { stats: stream_stats(results), peak: peak.load(Ordering::Relaxed) }
}

/// Starts a pass-through proxy to `upstream` on `listen` and returns its
/// address: the request is forwarded with its headers and body, the answer
/// streamed back as it arrives. No auth, policy, store, audit or parsing.
async fn noop_proxy(upstream: String, listen: std::net::SocketAddr) -> std::net::SocketAddr {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;

    async fn forward(State((client, upstream)): State<(reqwest::Client, String)>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let url = format!("{upstream}{}", parts.uri.path());
        let mut headers = parts.headers;
        headers.remove(axum::http::header::HOST);
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        let sent = client.request(parts.method, url).headers(headers).body(body).send().await;
        match sent {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    if name != axum::http::header::TRANSFER_ENCODING && name != axum::http::header::CONTENT_LENGTH {
                        response = response.header(name, value);
                    }
                }
                response.body(Body::from_stream(answer.bytes_stream())).unwrap_or_default()
            }
            Err(_) => Response::builder().status(502).body(Body::empty()).unwrap_or_default(),
        }
    }

    let client = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build().expect("client");
    let app = axum::Router::new().fallback(forward).with_state((client, upstream));
    // The gateway's backlog, so the comparison is of the pipeline, not of listen queues.
    let listener = steward_core::gateway::bind(listen).expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Open-loop load: one request every 1/rps seconds regardless of completions.
async fn fixed_rate(target: &Target, rps: u64, length: Duration) -> Latencies {
    let mut interval = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rps));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + length;
    let mut handles = Vec::new();
    while Instant::now() < end {
        interval.tick().await;
        let target = target.clone();
        handles.push(tokio::spawn(async move {
            let start = Instant::now();
            let ok = target.hit().await;
            (ok, start.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::with_capacity(handles.len());
    let mut errors = 0;
    for handle in handles {
        match handle.await {
            Ok((true, ms)) => lat.push(ms),
            _ => errors += 1,
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    Latencies { lat, errors }
}

/// Closed-loop load: `workers` loops back to back; returns (RPS, p99 ms).
async fn max_rps(target: &Target, workers: usize, length: Duration) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + length;
    let mut handles = Vec::new();
    for _ in 0..workers {
        let target = target.clone();
        let done = Arc::clone(&done);
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let start = Instant::now();
                if target.hit().await {
                    done.fetch_add(1, Ordering::Relaxed);
                    lat.push(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap_or_default());
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let p99 = all.get(((all.len() as f64) * 0.99) as usize).copied().unwrap_or(f64::NAN);
    (done.load(Ordering::Relaxed) as f64 / length.as_secs_f64(), p99)
}
