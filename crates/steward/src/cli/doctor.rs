//! `steward doctor`: the production checklist, item by item.
//!
//! Exit codes are its own: 0 when nothing fails (warnings allowed), 1 when
//! any item fails, 2 when doctor could not run (the config does not load).
//! The table groups items by section; with `--json` the output is the stable
//! list of `{"section", "item", "status", "detail", "fix"}`.

use std::path::Path;
use std::process::ExitCode;

use owo_colors::OwoColorize;
use steward_core::doctor::{self, CheckResult, Report, Status};

use super::{CliError, print_json, runtime};

/// Doctor's exit codes.
pub mod code {
    /// Every item passes or warns.
    pub const OK: u8 = 0;
    /// At least one item fails.
    pub const FAILED: u8 = 1;
    /// Doctor could not run.
    pub const COULD_NOT_RUN: u8 = 2;
}

/// `steward doctor`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output: a list of {"section", "item", "status", "detail", "fix"}.
    #[arg(long)]
    pub(super) json: bool,
}

/// Runs doctor; failures to run are reported here, so the exit code is always doctor's.
pub fn run(path: &Path, args: Args) -> ExitCode {
    let config = match steward_core::config::load(path) {
        Ok(config) => config,
        Err(err) => {
            let err = CliError::config(path, err);
            if args.json {
                anstream::println!("{}", serde_json::to_string_pretty(&err.to_json()).unwrap_or_default());
            } else {
                anstream::eprint!("{}", err.to_text());
                anstream::eprintln!("steward doctor could not run: fix the config first");
            }
            return ExitCode::from(code::COULD_NOT_RUN);
        }
    };
    let report = match runtime() {
        Ok(rt) => rt.block_on(doctor::run(&config, std::time::SystemTime::now())),
        Err(err) => {
            CliError::Other(err).report(args.json);
            return ExitCode::from(code::COULD_NOT_RUN);
        }
    };
    let printed = if args.json { print_json(&report.checks) } else { print_table(&report) };
    if let Err(err) = printed {
        CliError::Other(err).report(args.json);
        return ExitCode::from(code::COULD_NOT_RUN);
    }
    match report.worst() {
        Status::Fail => ExitCode::from(code::FAILED),
        Status::Pass | Status::Warn => ExitCode::from(code::OK),
    }
}

/// The grouped table: one block per section, one line per item, the fix
/// under each item that does not pass.
fn print_table(report: &Report) -> anyhow::Result<()> {
    let width = report.checks.iter().map(|c| c.item.chars().count()).max().unwrap_or(0);
    let mut section = "";
    for check in &report.checks {
        if check.section != section {
            if !section.is_empty() {
                anstream::println!();
            }
            section = check.section;
            anstream::println!("{}", section.bold());
        }
        print_item(check, width);
    }
    anstream::println!();
    anstream::println!(
        "{} pass, {} warn, {} fail",
        report.count(Status::Pass),
        report.count(Status::Warn),
        report.count(Status::Fail)
    );
    Ok(())
}

fn print_item(check: &CheckResult, width: usize) {
    let label = check.status.label();
    let status = match check.status {
        Status::Pass => label.green().to_string(),
        Status::Warn => label.yellow().bold().to_string(),
        Status::Fail => label.red().bold().to_string(),
    };
    anstream::println!("  {status}  {:<width$}  {}", check.item, check.detail);
    if let Some(fix) = &check.fix {
        anstream::println!("        {} {fix}", "fix:".dimmed());
    }
}
