//! `steward reload`: the running daemon re-reads the config file and every
//! credential source, validates them and swaps them in at once (see
//! `steward_core::daemon::Reloader`).
//!
//! The CLI talks to the daemon the way `steward secrets reload` always has:
//! SIGHUP to the pid in the lock, then it waits for the outcome the daemon
//! records in `<state>/reload.json` ([`ask_daemon`], shared by both
//! commands). systemd's `ExecReload=/bin/kill -HUP $MAINPID` reaches the
//! same code.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use steward_core::config::Config;
use steward_core::state_dir::running_pid;

use super::{CliError, exit, load_config, now_ms};

/// How long the CLI waits for the daemon's answer: every credential source
/// may take its full timeout (10 s for a command or Vault), so allow a few
/// of them.
const RELOAD_WAIT: Duration = Duration::from_secs(60);

/// `steward reload`
#[derive(Debug, clap::Args)]
pub struct Args {}

/// What the daemon recorded for the reload this command asked for.
pub(super) struct Outcome {
    /// The daemon's pid.
    pub(super) pid: i32,
    /// `reload.json`: `ok`, then `report` or `kind`/`error`/`problems`.
    pub(super) status: serde_json::Value,
}

pub fn run(path: &Path, _args: Args) -> Result<ExitCode, CliError> {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(err) => {
            anstream::eprintln!("steward reload: nothing was sent; the running daemon keeps its current config");
            return Err(err);
        }
    };
    let Outcome { pid, status } = ask_daemon(&config, "a fresh start reads the whole config anyway")?;
    if status["ok"] != true {
        let problems: Vec<String> = status["problems"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .filter(|p: &Vec<String>| !p.is_empty())
            .unwrap_or_else(|| vec![status["error"].as_str().unwrap_or("unknown error").to_owned()]);
        return Err(CliError::Reload { path: path.to_owned(), problems });
    }
    let report = &status["report"];
    let words = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let list = |items: Vec<String>| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    let short = |key: &str| report[key].as_str().unwrap_or("-").chars().take(12).collect::<String>();
    anstream::println!(
        "reloaded the config in the daemon (pid {pid}): sha256 {} -> {}",
        short("config_sha256_old"),
        short("config_sha256_new")
    );
    anstream::println!("sections changed: {}", list(words("sections_changed")));
    anstream::println!("credentials: {} loaded, changed: {}", report["credentials"], list(words("changed")));
    let restart = words("restart_needed");
    if !restart.is_empty() {
        anstream::println!(
            "restart needed: {} (not applied: these keys keep their running values until steward restarts, \
             e.g. `systemctl restart steward`; everything else is applied)",
            restart.join(", ")
        );
    }
    Ok(ExitCode::from(exit::OK))
}

/// Sends SIGHUP to the daemon of `config` and waits for the outcome it
/// records. `fresh_start` says why no daemon is not a problem.
pub(super) fn ask_daemon(config: &Config, fresh_start: &str) -> Result<Outcome, CliError> {
    let pid = running_pid(&config.state.dir).ok_or_else(|| {
        anyhow!(
            "no steward daemon is running with state dir {}; start it with `steward run` ({fresh_start})",
            config.state.dir.display()
        )
    })?;
    let pid: i32 = pid.parse().with_context(|| format!("the daemon lock holds no pid ({pid:?})"))?;
    let sent_ms = now_ms();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP)
        .with_context(|| format!("cannot signal the daemon (pid {pid})"))?;
    let status_path = config.state.reload_status_path();
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        if let Some(status) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .filter(|status| status["at_ms"].as_i64().is_some_and(|at| at >= sent_ms))
        {
            return Ok(Outcome { pid, status });
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "sent SIGHUP to the daemon (pid {pid}) but it recorded no outcome within {}s; check its log",
                RELOAD_WAIT.as_secs()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
