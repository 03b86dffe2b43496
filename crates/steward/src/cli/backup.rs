//! `steward backup now|list|verify`: take, list and prove backups.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use comfy_table::{ContentArrangement, Table, presets};
use steward_core::backup::health::KV_VERIFIED_PREFIX;
use steward_core::backup::{Backups, Progress};
use steward_core::config::Config;
use steward_core::secrets::Secrets;
use tokio_util::sync::CancellationToken;

use super::{CliError, exit, format_ms, load_config, now_ms, open_store, print_json, runtime};

/// `steward backup ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Take a backup now (config, state store, declared paths) and apply retention.
    Now(NowArgs),
    /// List the backups at the destination, oldest first.
    List(ListArgs),
    /// Prove a backup restores: download, decrypt, check every SHA-256, SQLite integrity_check, config parse.
    Verify(VerifyArgs),
}

/// `steward backup now`
#[derive(Debug, clap::Args)]
pub struct NowArgs {
    /// Machine-readable output (no progress bar).
    #[arg(long)]
    pub(super) json: bool,
}

/// `steward backup list`
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
}

/// `steward backup verify`
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Backup id (default: the newest).
    id: Option<String>,
    /// age identity file (AGE-SECRET-KEY-1...) for an encrypted backup.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Machine-readable output (no progress bar).
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(path: &Path, command: Command) -> Result<ExitCode, CliError> {
    let config = Arc::new(load_config(path)?);
    match command {
        Command::Now(args) => now(config, &args),
        Command::List(args) => list(config, &args),
        Command::Verify(args) => verify(config, &args),
    }
}

fn now(config: Arc<Config>, args: &NowArgs) -> Result<ExitCode, CliError> {
    let backups = open(&config, None)?;
    let bar = bar(args.json, "backing up");
    let (report, retention) = runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let progress: Arc<dyn Progress> = bar.clone();
        let report = backups
            .backup_now(Some(&store), "manual", now_ms(), progress, &CancellationToken::new())
            .await
            .context("backup failed")?;
        let retention = backups.apply_retention(&store, now_ms()).await.context("retention failed");
        Ok::<_, anyhow::Error>((report, retention))
    })?;
    bar.0.finish_and_clear();
    let deleted = match &retention {
        Ok(decision) => decision.delete.clone(),
        Err(_) => Vec::new(),
    };
    let record = &report.record;
    if args.json {
        print_json(&serde_json::json!({
            "id": record.id,
            "destination": backups.destination(),
            "archive": record.archive,
            "archive_bytes": record.archive_bytes,
            "content_bytes": record.content_bytes,
            "files": record.files,
            "encrypted": record.encrypted,
            "duration_ms": report.duration_ms,
            "warnings": report.warnings,
            "deleted_by_retention": deleted,
            "retention_error": retention.as_ref().err().map(|e| format!("{e:#}")),
        }))?;
    } else {
        anstream::println!("backup {} written to {}", record.id, backups.destination());
        anstream::println!(
            "  {} files, {} ({} before compression){}, {:.1}s",
            record.files,
            human_bytes(record.archive_bytes),
            human_bytes(record.content_bytes),
            if record.encrypted { ", age-encrypted" } else { "" },
            ms_to_secs(report.duration_ms)
        );
        if !deleted.is_empty() {
            anstream::println!("  retention deleted {}", deleted.join(", "));
        }
        for warning in &report.warnings {
            anstream::eprintln!("warning: {warning}");
        }
        if let Err(e) = &retention {
            anstream::eprintln!("warning: {e:#}");
        }
    }
    Ok(ExitCode::from(exit::OK))
}

fn list(config: Arc<Config>, args: &ListArgs) -> Result<ExitCode, CliError> {
    let backups = open(&config, None)?;
    let (records, warnings, verified) = runtime()?.block_on(async {
        let (records, warnings) = backups.list().await.context("cannot list backups")?;
        let store = open_store(&config).await?;
        let mut verified = Vec::new();
        for record in &records {
            let mark = store.kv_get(&format!("{KV_VERIFIED_PREFIX}{}", record.id)).await.context("store")?;
            verified.push(mark.and_then(|v| v.parse::<i64>().ok()));
        }
        Ok::<_, anyhow::Error>((records, warnings, verified))
    })?;
    for warning in &warnings {
        anstream::eprintln!("warning: {warning}");
    }
    if args.json {
        let rows: Vec<_> = records
            .iter()
            .zip(&verified)
            .map(|(r, v)| {
                let mut value = serde_json::to_value(r).unwrap_or_default();
                value["verified_ms"] = serde_json::json!(v);
                value
            })
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::from(exit::OK));
    }
    if records.is_empty() {
        anstream::println!("no backups at {}; take one with `steward backup now`", backups.destination());
        return Ok(ExitCode::from(exit::OK));
    }
    let mut table = Table::new();
    table.load_style(presets::UTF8_HORIZONTAL_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["id", "time (UTC)", "size", "files", "encrypted", "verified", "tag"]);
    for (record, verified) in records.iter().zip(&verified) {
        table.add_row([
            record.id.clone(),
            format_ms(record.created_ms),
            human_bytes(record.archive_bytes),
            record.files.to_string(),
            if record.encrypted { "yes" } else { "no" }.to_owned(),
            verified.map_or_else(|| "-".to_owned(), format_ms),
            record.tag.clone(),
        ]);
    }
    anstream::println!("{table}");
    anstream::println!("at {}", backups.destination());
    Ok(ExitCode::from(exit::OK))
}

fn verify(config: Arc<Config>, args: &VerifyArgs) -> Result<ExitCode, CliError> {
    let backups = open(&config, args.identity.as_deref())?;
    let bar = bar(args.json, "verifying");
    let result = runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let progress: Arc<dyn Progress> = bar.clone();
        backups.verify(args.id.as_deref(), Some(&store), now_ms(), progress).await.context("verify failed")
    });
    bar.0.finish_and_clear();
    let report = result?;
    if args.json {
        print_json(&serde_json::json!({
            "id": report.id,
            "ok": true,
            "files": report.files,
            "bytes": report.bytes,
            "archive_bytes": report.archive_bytes,
            "duration_ms": report.duration_ms,
        }))?;
    } else {
        anstream::println!(
            "backup {} verified: {} files ({}) match their SHA-256, the store passes integrity_check, \
             the config loads ({:.1}s)",
            report.id,
            report.files,
            human_bytes(report.bytes),
            ms_to_secs(report.duration_ms)
        );
    }
    Ok(ExitCode::from(exit::OK))
}

/// Opens the destination with only the credentials `[backup]` needs, and
/// `--identity FILE` when given.
pub(super) fn open(config: &Arc<Config>, identity: Option<&Path>) -> anyhow::Result<Backups> {
    let backup = config.backup.as_ref().with_context(|| {
        format!(
            "{} has no [backup] section; add one (see README: Backups) with destination = \"file:///...\"",
            config.source_path.display()
        )
    })?;
    let names = backup.credentials.iter().chain(backup.identity.iter()).map(String::as_str);
    let secrets =
        runtime()?.block_on(Secrets::resolve_only(config, names)).context("cannot resolve the backup credentials")?;
    let mut backups = Backups::open(Arc::clone(config), &secrets).context("cannot open the backup destination")?;
    if let Some(file) = identity {
        backups = backups.with_identity(steward_core::backup::read_identity_file(file)?);
    }
    Ok(backups)
}

/// A progress bar on stderr when it is a terminal and output is for humans.
pub(super) struct Bar(pub indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

pub(super) fn bar(json: bool, label: &'static str) -> Arc<Bar> {
    if json || !std::io::stderr().is_terminal() {
        return Arc::new(Bar(indicatif::ProgressBar::hidden()));
    }
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar.set_message(label);
    Arc::new(Bar(bar))
}

/// `12.3 MB`
pub(super) fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", units[unit]) }
}

fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
