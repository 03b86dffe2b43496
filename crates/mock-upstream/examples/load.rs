//! A rough throughput check of the mock on its own: starts it in-process and
//! drives it with keep-alive connections from the same process, so the
//! number is a lower bound shared with the client's cost.
//!
//! `cargo run --release -p mock-upstream --example load -- [PATH] [SECONDS] [CONNECTIONS] [--no-record]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mock_upstream::MockUpstream;

#[tokio::main]
#[expect(clippy::print_stdout, reason = "an example that reports a number")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let record = !args.iter().any(|a| a == "--no-record");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let path = positional.first().map_or("/health", |p| p.as_str()).to_owned();
    let seconds: u64 = positional.get(1).map_or(Ok(5), |s| s.parse())?;
    let connections: usize = positional.get(2).map_or(Ok(32), |s| s.parse())?;

    let mock = MockUpstream::start().await?;
    mock.set_recording(record);
    let url = format!("{}{path}", mock.base_url());
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(connections).build()?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, done, failed) = (client.clone(), url.clone(), done.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let ok = match client.get(&url).send().await {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let counter = if ok { &done } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let done = done.load(Ordering::Relaxed);
    println!(
        "{path}: {done} ok, {} failed in {seconds}s over {connections} connections \
         (recording {}): {:.0} req/s; recorded {}",
        failed.load(Ordering::Relaxed),
        if record { "on" } else { "off" },
        done as f64 / seconds as f64,
        mock.requests().len(),
    );
    mock.shutdown().await;
    Ok(())
}
