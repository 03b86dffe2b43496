//! `steward runbook`: renders this deployment's one-page runbook from the
//! config and writes it to `[runbook] output` (default
//! `<state dir>/RUNBOOK.md`), then records what it wrote for `steward doctor`.
//!
//! The config is read once: the page and the recorded SHA-256 come from the
//! same bytes, so doctor's "rendered before the config changed" is exact.
//! No credential is resolved: the page renders where no secret is present.
//! Without `[runbook] run_as`, an installed steward unit's `User=` decides
//! whether the commands carry `sudo -u`.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use steward_core::config::{self, ConfigError};
use steward_core::runbook::{self, RenderedRecord};

use super::{CliError, exit, open_store, print_json, runtime};

/// `steward runbook`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the page on stdout instead of writing it (nothing is written or recorded).
    #[arg(long, conflicts_with = "json")]
    stdout: bool,
    /// Machine-readable output: {"path", "bytes", "config_sha256"} of the written page.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let source = std::fs::read_to_string(path).map_err(|e| CliError::config(path, ConfigError::io(path, e)))?;
    let mut config = config::parse(&source, path).map_err(|e| CliError::config(path, e))?;
    // Under the installed unit, the commands must run as its user.
    if config.runbook.run_as.is_none() {
        config.runbook.run_as = runbook::unit_user(runbook::UNIT_PATHS);
    }
    let now = SystemTime::now();
    let page = runbook::render(&config, &config.source_path, now);
    if args.stdout {
        anstream::print!("{page}");
        return Ok(ExitCode::from(exit::OK));
    }
    let record = RenderedRecord {
        at_ms: steward_core::clock::unix_ms(now),
        path: config.runbook.output.clone(),
        config_sha256: runbook::config_sha256(source.as_bytes()),
    };
    runtime()?.block_on(async {
        // The store first: a page doctor could not know about is not worth writing.
        let store = open_store(&config).await?;
        runbook::write_page(&record.path, &page)?;
        runbook::record(&store, &record).await.context("the runbook was written but not recorded")
    })?;
    if args.json {
        print_json(&serde_json::json!({
            "path": record.path,
            "bytes": page.len(),
            "config_sha256": record.config_sha256,
        }))?;
    } else {
        anstream::println!(
            "wrote the runbook to {} ({} bytes); keep a copy where on-call finds it, and run \
             `steward runbook` again after every config change",
            record.path.display(),
            page.len()
        );
    }
    Ok(ExitCode::from(exit::OK))
}
