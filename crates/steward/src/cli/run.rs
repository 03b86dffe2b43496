//! `steward run`: the daemon in the foreground, with the agent supervised
//! (started in its box, `agent-exec`, so it dies with steward and cannot
//! reach steward's files), systemd notifications (no-op outside systemd),
//! and SIGHUP reloading credentials.
//!
//! The daemon makes itself non-dumpable first (`PR_SET_DUMPABLE = 0`): its
//! `/proc/<pid>/environ` and `mem` then belong to root, and ptrace is refused,
//! even to a process of the same uid. Its environment may hold `env:`
//! credentials, and its memory holds every credential.

use std::path::Path;
use std::process::ExitCode;

use steward_core::daemon::{self, DaemonOptions};
use steward_core::supervisor::Launcher;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{CliError, exit, load_config, runtime};

/// `steward run` (SIGTERM/Ctrl-C drain and stop; SIGHUP reloads credentials)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(path: &Path, _args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    init_tracing();
    if let Err(errno) = nix::sys::prctl::set_dumpable(false) {
        return Err(anyhow::anyhow!(
            "cannot make steward non-dumpable ({errno}): its environment and memory would be readable by processes \
             of its uid"
        )
        .into());
    }
    let rt = runtime()?;
    let options = DaemonOptions { launcher: launcher(), systemd: true, ..DaemonOptions::default() };
    let started = rt.block_on(async {
        // Registered before the daemon takes its lock: `steward secrets reload`
        // may signal as soon as the lock is held, `steward stop`, systemd or a
        // test may send SIGTERM as soon as the address file exists, and an
        // unhandled SIGHUP or SIGTERM would kill the process without draining.
        // A signal that arrives while the daemon starts is kept and acted on
        // once it has started.
        let hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => return Err(anyhow::Error::new(err).context("cannot handle SIGHUP")),
        };
        let terminate =
            signal(SignalKind::terminate()).map_err(|e| anyhow::Error::new(e).context("cannot handle SIGTERM"))?;
        let interrupt =
            signal(SignalKind::interrupt()).map_err(|e| anyhow::Error::new(e).context("cannot handle SIGINT"))?;
        let daemon = daemon::start_with(&config, options).await.map_err(anyhow::Error::new)?;
        let stop = daemon.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal(terminate, interrupt).await;
            tracing::info!("signal received; draining");
            stop.cancel();
        });
        tokio::spawn(reload_on_hangup(hangups, daemon.reloader()));
        daemon.wait().await;
        Ok(())
    });
    match started {
        Ok(()) => Ok(ExitCode::from(exit::OK)),
        Err(err) => {
            let config_error =
                err.downcast_ref::<daemon::DaemonError>().is_some_and(daemon::DaemonError::is_config_error);
            anstream::eprintln!("error: steward could not start: {err:#}");
            Ok(ExitCode::from(if config_error { exit::CONFIG } else { exit::FAILURE }))
        }
    }
}

/// The agent is started in its box by this very binary (`steward
/// agent-exec`); `/proc/self/exe` when the binary's path is unknown (deleted
/// after an upgrade): never without the box.
fn launcher() -> Launcher {
    let program = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    Launcher::ReExec { program, args: vec!["agent-exec".into()] }
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

/// The first SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal(mut terminate: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
