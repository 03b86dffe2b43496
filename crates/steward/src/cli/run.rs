//! `steward run`: the daemon in the foreground, with the agent supervised
//! (started through the `agent-exec` trampoline so it dies with steward) and
//! systemd notifications (no-op outside systemd).

use std::path::Path;
use std::process::ExitCode;

use steward_core::daemon::{self, DaemonOptions};
use steward_core::supervisor::Launcher;

use super::{CliError, exit, load_config, runtime};

/// `steward run`
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(path: &Path, _args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    init_tracing();
    let rt = runtime()?;
    let options = DaemonOptions { launcher: launcher(), systemd: true, ..DaemonOptions::default() };
    let started = rt.block_on(async {
        let daemon = daemon::start_with(&config, options).await?;
        let stop = daemon.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; draining");
            stop.cancel();
        });
        daemon.wait().await;
        Ok::<_, daemon::DaemonError>(())
    });
    match started {
        Ok(()) => Ok(ExitCode::from(exit::OK)),
        Err(err) => {
            let code = if err.is_config_error() { exit::CONFIG } else { exit::FAILURE };
            anstream::eprintln!("error: steward could not start: {:#}", anyhow::Error::new(err));
            Ok(ExitCode::from(code))
        }
    }
}

/// The agent is started through this very binary (`steward agent-exec`), which
/// sets the parent-death signal before exec'ing it. Without a path to the
/// binary it falls back to a direct start and says so.
fn launcher() -> Launcher {
    match std::env::current_exe() {
        Ok(program) => Launcher::ReExec { program, args: vec!["agent-exec".into()] },
        Err(err) => {
            tracing::warn!(error = %err, "cannot find the steward binary; the agent will not be killed if steward dies");
            Launcher::Direct
        }
    }
}

/// Logs to stderr; `STEWARD_LOG` (e.g. `debug`, `steward_core=trace`) overrides `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
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
