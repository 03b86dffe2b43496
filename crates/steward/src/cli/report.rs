//! `steward report`: what the agent did over a window (`--since`, 7 days by
//! default) and whether it is ready to run without approvals. Text by
//! default, `--json` for scripts, `--markdown` to paste into a ticket. The
//! readiness verdict needs `steward doctor`'s FAIL items, so the checklist
//! is scored here too (credentials resolved, disk probed), as `doctor` does.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use steward_core::config::{Config, units::parse_duration};
use steward_core::doctor::Status;
use steward_core::report;

use super::{CliError, exit, load_config, open_store_read_only, print_json, runtime};

/// `steward report`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How far back: a duration such as `7d`, `36h`, `90m` (units: ms, s, m, h, d).
    #[arg(long, default_value = "7d", value_parser = since)]
    since: Duration,
    /// Machine-readable output: the report as one JSON object.
    #[arg(long, conflicts_with = "markdown")]
    pub(super) json: bool,
    /// Markdown, to paste into a ticket.
    #[arg(long)]
    markdown: bool,
}

/// `--since`: the config's durations, at least a second.
fn since(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err("the window must be at least 1s, like 7d".to_owned()),
        Err(e) => Err(format!("{e}; write a duration such as 7d, 36h or 90m")),
    }
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let now = SystemTime::now();
    let report = runtime()?.block_on(async {
        let doctor_fails = doctor_fails(&config, now).await;
        let store = open_store_read_only(&config).await?;
        let inputs = report::Inputs { now, since: args.since, doctor_fails };
        report::gather(&store, &config, inputs).await.context("cannot read the report from the store")
    })?;
    if args.json {
        print_json(&report)?;
    } else if args.markdown {
        anstream::print!("{}", report::markdown(&report));
    } else {
        anstream::print!("{}", report::text(&report));
    }
    Ok(ExitCode::from(exit::OK))
}

/// `steward doctor`'s FAIL items as `Section: item`.
pub(super) async fn doctor_fails(config: &Config, now: SystemTime) -> Vec<String> {
    steward_core::doctor::run(config, now)
        .await
        .checks
        .into_iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("{}: {}", c.section, c.item))
        .collect()
}
