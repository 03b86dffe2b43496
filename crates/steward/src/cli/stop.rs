//! `steward stop` and `steward resume`: the persistent kill switch.
//!
//! Both write the store directly, so they work whether or not a daemon runs;
//! a running daemon checks the switch inside every admission transaction, so
//! the very next call after `stop` returns is refused.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use steward_core::daemon::running_pid;

use super::{CliError, exit, load_config, now_ms, open_store, runtime};

/// `steward stop`
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Why: shown to the agent in every refusal, in `steward status` and in the journal.
    #[arg(long, default_value = "stopped by operator")]
    reason: String,
}

/// `steward resume`
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {}

pub fn stop(path: &Path, args: StopArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    runtime()?.block_on(async {
        let store = open_store(&config)?;
        store.engage_kill(&args.reason, "cli", now_ms()).await.context("cannot engage the kill switch")
    })?;
    anstream::println!("kill switch engaged ({}): every call is refused until `steward resume`", args.reason);
    if let Some(pid) = running_pid(&config.state.dir) {
        anstream::println!("the running daemon (pid {pid}) refuses calls from now on");
    }
    Ok(ExitCode::from(exit::OK))
}

pub fn resume(path: &Path, _args: ResumeArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let previous = runtime()?.block_on(async {
        let store = open_store(&config)?;
        let previous = store.kill_state().await.context("cannot read the kill switch")?;
        store.release_kill(now_ms()).await.context("cannot release the kill switch")?;
        Ok::<_, anyhow::Error>(previous)
    })?;
    if previous.engaged {
        anstream::println!(
            "kill switch released (was: {}); calls are allowed again",
            previous.reason.unwrap_or_default()
        );
    } else {
        anstream::println!("kill switch was not engaged; nothing changed");
    }
    Ok(ExitCode::from(exit::OK))
}
