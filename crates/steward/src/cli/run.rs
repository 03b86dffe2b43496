//! `steward run`: the daemon in the foreground, with the agent supervised
//! (started in its box, `agent-exec`, so it dies with steward and cannot
//! reach steward's files), systemd notifications (no-op outside systemd),
//! and SIGHUP reloading the whole config (`steward reload`). Its log goes to stderr: text (coloured
//! only on a terminal) or, with `--log-format json`, one JSON object per
//! line for log shippers.
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

/// `steward run` (SIGTERM/Ctrl-C drain and stop; SIGHUP reloads the config and credentials)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How steward's own log lines are written to stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--log-format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (coloured only on a terminal).
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`), for log shippers.
    Json,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    init_tracing(args.log_format);
    if let Err(errno) = nix::sys::prctl::set_dumpable(false) {
        return Err(anyhow::anyhow!(
            "cannot make steward non-dumpable ({errno}): its environment and memory would be readable by processes \
             of its uid"
        )
        .into());
    }
    let rt = runtime()?;
    // The dashboard's report verdict counts the doctor's FAIL items, scored
    // as `steward report` scores them.
    let doctor = steward_core::dashboard::DoctorFails(std::sync::Arc::new(|config, now| {
        Box::pin(async move { super::report::doctor_fails(&config, now).await })
    }));
    let options =
        DaemonOptions { launcher: launcher(), systemd: true, doctor_fails: Some(doctor), ..DaemonOptions::default() };
    let started = rt.block_on(async {
        // Registered before the daemon takes its lock: `steward reload`
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
        Err(err) => match err.downcast::<daemon::DaemonError>() {
            Ok(daemon::DaemonError::Credentials(unresolved)) => Err(CliError::unresolved(path, &unresolved)),
            Ok(err) if err.is_config_error() => Err(CliError::Credentials {
                path: path.to_owned(),
                problems: vec![err.to_string()],
                needs_a_person: true,
            }),
            Ok(err) => Err(anyhow::Error::new(err).context("steward could not start").into()),
            Err(err) => Err(err.context("steward could not start").into()),
        },
    }
}

/// The agent is started in its box by this very binary (`steward
/// agent-exec`); `/proc/self/exe` when the binary's path is unknown (deleted
/// after an upgrade): never without the box.
fn launcher() -> Launcher {
    let program = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    Launcher::ReExec { program, args: vec!["agent-exec".into()] }
}

/// Logs to stderr in `format`; `STEWARD_LOG` (e.g. `debug`,
/// `steward_core=trace`) overrides `info`. Colour codes only when stderr
/// gets colour ([`super::color_on_stderr`]): never into a file or journald.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(super::color_on_stderr()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// SIGHUP (`steward reload`, `steward secrets reload`, systemd's
/// `ExecReload`) re-reads the config file and every credential source; a
/// refused reload keeps the running config and is logged by the reloader.
async fn reload_on_hangup(mut hangups: Signal, reloader: daemon::Reloader) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading the config");
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
