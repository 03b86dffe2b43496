//! The `mock-upstream` binary: serves the fake upstream on `--listen` until
//! Ctrl-C or SIGTERM, then shuts down gracefully; with `--mcp-stdio`, serves
//! the MCP mock (`mock_upstream::mcp`) on stdin/stdout instead, until stdin
//! ends.
//!
//! Exit codes: 0 after a clean shutdown, 1 when the address cannot be bound
//! or the signal handler cannot be installed.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use mock_upstream::MockUpstream;

/// Fake REST / OpenAI / Anthropic upstream for steward's tests and demo.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MOCK_UPSTREAM_LISTEN", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Do not record requests (for long benchmarks).
    #[arg(long)]
    no_record: bool,
    /// Serve the MCP mock over stdio (one JSON-RPC message per line) until
    /// stdin ends, instead of listening.
    #[arg(long)]
    mcp_stdio: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mock-upstream: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.mcp_stdio {
        let serve = || mock_upstream::mcp::serve_stdio(std::io::stdin().lock(), std::io::stdout().lock());
        return tokio::task::spawn_blocking(serve).await.context("the MCP stdio task")?.context("MCP over stdio");
    }
    let mock =
        MockUpstream::start_on(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    mock.set_recording(!args.no_record);
    announce(&mock);
    wait_for_stop_signal().await?;
    mock.shutdown().await;
    Ok(())
}

/// Prints the base URL on stdout, so scripts using `--listen 127.0.0.1:0`
/// can read the port.
#[expect(clippy::print_stdout, reason = "the binary's one line of output")]
fn announce(mock: &MockUpstream) {
    println!("mock-upstream listening on {}", mock.base_url());
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")?;
    Ok(())
}
