//! `steward secrets list` and `steward secrets reload`.
//!
//! `list` resolves every source itself (values stay in this process's
//! memory and are dropped at exit) and shows what is known about each
//! credential, never the value. `reload` asks the running daemon to re-read
//! every source, the way `steward reload` does (SIGHUP, then the outcome
//! in `<state>/reload.json`, see `reload`): the daemon reloads its whole
//! config with them, and this command reports the credentials.

use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use owo_colors::OwoColorize;
use steward_core::secrets::{self, Secrets};

use super::reload::{Outcome, ask_daemon};
use super::{CliError, exit, load_config, print_json, runtime};

/// `steward secrets`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List credentials: source, environment, expiry, scopes, fingerprint. Never the value.
    List(ListArgs),
    /// Make the running daemon re-read every credential source (rotation without restart).
    Reload(ReloadArgs),
}

/// `steward secrets list`
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
}

/// `steward secrets reload`
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {}

pub fn run(path: &Path, command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::List(args) => list(path, args),
        Command::Reload(args) => reload(path, args),
    }
}

fn list(path: &Path, args: ListArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let resolution = runtime()?.block_on(Secrets::resolve_all(&config));
    let infos = secrets::describe(&config, &resolution, std::time::SystemTime::now());
    let code = if resolution.errors.is_empty() { exit::OK } else { exit::FAILURE };
    if args.json {
        print_json(&infos)?;
        return Ok(ExitCode::from(code));
    }
    if infos.is_empty() {
        anstream::println!("no credentials are configured");
        return Ok(ExitCode::from(code));
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING).set_header([
        "credential",
        "source",
        "env",
        "expires",
        "scopes",
        "fingerprint",
    ]);
    for info in &infos {
        let expires = match (&info.expires, info.days_left) {
            (Some(day), Some(left)) if left < 0 => format!("{day} (expired)"),
            (Some(day), Some(left)) => format!("{day} ({left}d left)"),
            _ => "unknown".to_owned(),
        };
        let scopes = if info.scopes.is_empty() { "-".to_owned() } else { info.scopes.join(" ") };
        table.add_row([
            info.name.clone(),
            info.source.to_owned(),
            info.environment.to_owned(),
            expires,
            scopes,
            info.fingerprint.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    anstream::println!("{table}");
    for error in &resolution.errors {
        anstream::eprintln!("{} {error}", "error:".red().bold());
    }
    Ok(ExitCode::from(code))
}

fn reload(path: &Path, _args: ReloadArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let Outcome { pid, status } = ask_daemon(&config, "a fresh start reads every credential anyway")?;
    if status["ok"] != true {
        return Err(anyhow!(
            "the daemon could not reload its credentials and keeps the previous values: {}",
            status["error"].as_str().unwrap_or("unknown error")
        )
        .into());
    }
    let report = &status["report"];
    let changed: Vec<&str> =
        report["changed"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let alerts = match report["alert_references"].as_u64() {
        Some(n) if n > 0 => format!(" and {n} alert reference(s)"),
        _ => String::new(),
    };
    anstream::println!(
        "reloaded {} credential(s){alerts} in the daemon (pid {pid}); changed: {}",
        report["credentials"],
        if changed.is_empty() { "none".to_owned() } else { changed.join(", ") }
    );
    Ok(ExitCode::from(exit::OK))
}
