//! `steward restore ID --to DIR | --in-place`: restore a backup.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use steward_core::backup::{Progress, RestoreMode};
use tokio_util::sync::CancellationToken;

use super::backup::{bar, human_bytes, open};
use super::{CliError, exit, load_config, now_ms, open_store, print_json, runtime};

/// `steward restore`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup id (`steward backup list`).
    id: String,
    /// Restore into this directory (new or empty); live state is not touched.
    #[arg(long, required_unless_present = "in_place", conflicts_with = "in_place")]
    to: Option<PathBuf>,
    /// Restore over the live config, store and declared paths. Takes a backup of the
    /// current state first; refused while `steward run` is running.
    #[arg(long)]
    in_place: bool,
    /// age identity file (AGE-SECRET-KEY-1...) for an encrypted backup.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Machine-readable output (no progress bar).
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = Arc::new(load_config(path)?);
    let backups = open(&config, args.identity.as_deref())?;
    let mode = match &args.to {
        Some(dir) => RestoreMode::Into(std::path::absolute(dir).context("bad --to directory")?),
        None => RestoreMode::InPlace,
    };
    let bar = bar(args.json, "restoring");
    let result = runtime()?.block_on(async {
        let store = match &mode {
            // The live store is about to be replaced: no handle may stay open on it.
            RestoreMode::InPlace => None,
            RestoreMode::Into(_) => Some(open_store(&config).await?),
        };
        let progress: Arc<dyn Progress> = bar.clone();
        backups
            .restore(&args.id, mode, store.as_ref(), now_ms(), progress, &CancellationToken::new())
            .await
            .context("restore failed")
    });
    bar.0.finish_and_clear();
    let report = result?;
    if args.json {
        print_json(&serde_json::json!({
            "id": report.id,
            "target": report.target,
            "files": report.files,
            "bytes": report.bytes,
            "pre_restore_backup": report.pre_restore_backup,
            "skipped": report.skipped,
        }))?;
        return Ok(ExitCode::from(exit::OK));
    }
    anstream::println!(
        "restored backup {} into {}: {} files ({}), every SHA-256 checked, store integrity ok, config loads",
        report.id,
        report.target.display(),
        report.files,
        human_bytes(report.bytes)
    );
    if let Some(pre) = &report.pre_restore_backup {
        anstream::println!(
            "  the state before the restore is backup {pre} (`steward restore {pre} --in-place` undoes this)"
        );
    }
    for skipped in &report.skipped {
        anstream::eprintln!("warning: {skipped} was not restored: it is outside every declared [backup] path");
    }
    if report.pre_restore_backup.is_none() {
        anstream::println!(
            "  check it with `steward config check --offline --config {}` (credentials are not in backups)",
            report.target.join("steward.toml").display()
        );
    }
    Ok(ExitCode::from(exit::OK))
}
