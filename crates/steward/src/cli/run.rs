//! `steward run`: the daemon in the foreground.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use steward_core::daemon;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{CliError, exit, load_config, runtime};

/// `steward run` (SIGTERM/Ctrl-C drain and stop; SIGHUP reloads credentials)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(path: &Path, _args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    init_tracing();
    let rt = runtime()?;
    rt.block_on(async {
        // Registered before the daemon takes its lock: `steward secrets reload`
        // may signal as soon as the lock is held, and an unhandled SIGHUP
        // would terminate the process.
        let hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let daemon = daemon::start(&config).await.context("steward could not start")?;
        let stop = daemon.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; draining");
            stop.cancel();
        });
        tokio::spawn(reload_on_hangup(hangups, daemon.reloader()));
        daemon.wait().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::from(exit::OK))
}

/// Logs to stderr; `STEWARD_LOG` (e.g. `debug`, `steward_core=trace`) overrides `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// SIGHUP (`steward secrets reload`) re-reads every credential source; a
/// failed reload keeps the previous values and is logged by the reloader.
async fn reload_on_hangup(mut hangups: Signal, reloader: daemon::SecretsReloader) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading credentials");
        let _ = reloader.reload().await;
    }
}

async fn wait_for_signal() {
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
