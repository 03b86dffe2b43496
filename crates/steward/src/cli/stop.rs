//! `steward stop` and `steward resume`: the persistent kill switch.
//!
//! Both write the store directly, so they work whether or not a daemon runs;
//! a running daemon checks the switch inside every admission transaction, so
//! the very next call after `stop` returns is refused, and its supervisor
//! notices within a quarter second and stops the agent (SIGTERM to its
//! process group, `stop_grace`, SIGKILL). `resume` also clears a crash-loop
//! (`fatal`) or exit-78 hold, so the daemon starts the agent again, and
//! lifts the day's LLM spend stop (a provider billed past a reservation).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use steward_core::agent_state;
use steward_core::redaction;
use steward_core::secrets::local_redactor;
use steward_core::state_dir::running_pid;

use super::{CliError, exit, load_config, now_ms, open_store, open_store_with, runtime};

/// `steward stop`
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Why: shown to the agent in every refusal, in `steward status` and in
    /// the journal (secrets and personal data in it are redacted first:
    /// token shapes, the agent token, and credentials from `env:`, `file:`
    /// and `systemd:` sources).
    #[arg(long, default_value = "stopped by operator")]
    reason: String,
}

/// `steward resume`
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {}

pub fn stop(path: &Path, args: StopArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    // The reason is stored, shown to the agent and alerted: the store
    // redacts it on the way in, knowing the agent token and every credential
    // readable at once, without asking `pass` or Vault (a stop must not wait
    // on them). The same redactor redacts what is printed.
    let reason = runtime()?.block_on(async {
        let redactor = redaction::shared(local_redactor(&config).await);
        let reason = redactor.load().redact(&args.reason).into_owned();
        let store = open_store_with(&config, redactor).await?;
        store.engage_kill(&reason, "cli", now_ms()).await.context("cannot engage the kill switch")?;
        Ok::<_, anyhow::Error>(reason)
    })?;
    anstream::println!("kill switch engaged ({reason}): every call is refused until `steward resume`");
    if config.store.fleet.is_some() {
        anstream::println!(
            "the store is the fleet's database: every instance refuses calls within about a second (see `steward status --fleet`)"
        );
    }
    if let Some(pid) = running_pid(&config.state.dir) {
        let agent = if config.agent.process.is_some() {
            " and stops the agent (SIGTERM, then SIGKILL after [agent] stop_grace)"
        } else {
            ""
        };
        anstream::println!("the running daemon (pid {pid}) refuses calls from now on{agent}");
    }
    Ok(ExitCode::from(exit::OK))
}

pub fn resume(path: &Path, _args: ResumeArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let (previous, fatal, spend_stop) = runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let previous = store.kill_state().await.context("cannot read the kill switch")?;
        let now = now_ms();
        store.release_kill(now).await.context("cannot release the kill switch")?;
        let fatal = agent_state::request_resume(&store, now).await.context("cannot clear the agent's hold")?;
        let spend_stop = store.lift_spend_stop().await.context("cannot lift the LLM spend stop")?;
        Ok::<_, anyhow::Error>((previous, fatal, spend_stop))
    })?;

    if previous.engaged {
        anstream::println!(
            "kill switch released (was: {}); calls are allowed again",
            previous.reason.unwrap_or_default()
        );
    } else {
        anstream::println!("kill switch was not engaged");
    }
    if let Some(fatal) = fatal {
        anstream::println!("the agent's crash-loop hold is cleared (was: {})", fatal.reason);
    }
    if let Some(stop) = spend_stop {
        anstream::println!("LLM calls are allowed again (stopped on {}: {})", stop.day, stop.reason);
    }
    if config.agent.process.is_some() && running_pid(&config.state.dir).is_some() {
        anstream::println!("the running daemon starts the agent again");
    }
    Ok(ExitCode::from(exit::OK))
}
