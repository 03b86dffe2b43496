//! Verify and restore. Both download the archive, decrypt, decompress and
//! extract it with the safe extractor, check every file's SHA-256 against
//! the manifest, run `PRAGMA integrity_check` on the restored store and
//! parse the restored config with steward's own loader.
//!
//! Verify (and the scheduled restore test) does exactly that in a scratch
//! directory inside the state dir and deletes it afterwards: a backup counts
//! as verified only once a real restore of it worked. The checks read the
//! extracted tree only, through a [`Dir`]: the manifest names the config and
//! the store, and extraction already refused a name that is not one of the
//! archive's own files.
//!
//! A restore into a directory that fails (refused, damaged, unverified)
//! removes everything it wrote, and the directories it created for the
//! target, or names exactly what it could not remove. The in-place restore
//! lives in `in_place`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::beneath::Dir;
use super::health::{self, KV_LAST_RESTORE_TEST, KV_VERIFIED_PREFIX, Outcome};
use super::manifest::{BackupRecord, Manifest};
use super::restore::{Created, Limits};
use super::snapshot::Staging;
use super::{BackupError, Backups, Progress, archive, pipe, restore};
use crate::store::Store;

/// Where `steward restore` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreMode {
    /// Into this directory, which must not exist or be empty. Live state is
    /// never touched.
    Into(PathBuf),
    /// Over the live config, store and declared paths, after a pre-restore
    /// backup of the current state. Refused while the daemon runs.
    InPlace,
}

/// What a passed verify checked.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The backup.
    pub id: String,
    /// Files whose SHA-256 matched.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Archive bytes downloaded.
    pub archive_bytes: u64,
    /// Wall time in ms.
    pub duration_ms: u64,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup restored.
    pub id: String,
    /// Where (the directory, or the config's directory for in-place).
    pub target: PathBuf,
    /// Files restored.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The backup taken of the state just before an in-place restore.
    pub pre_restore_backup: Option<String>,
    /// Files of the archive not written (in-place: outside every declared path).
    pub skipped: Vec<String>,
}

impl Backups {
    /// Verifies backup `id` (the newest when `None`) by restoring it into a
    /// scratch directory. Records the result in `store` when given: the
    /// verified mark (read by retention) and the restore-test outcome (read
    /// by [`health`](super::health)).
    pub async fn verify(
        &self,
        id: Option<&str>,
        store: Option<&Store>,
        now_ms: i64,
        progress: Arc<dyn Progress>,
    ) -> Result<VerifyReport, BackupError> {
        let started = std::time::Instant::now();
        let result = self.verify_inner(id, progress).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let finished_ms = now_ms.saturating_add(i64::try_from(duration_ms).unwrap_or(0));
        if let Some(store) = store {
            let outcome = match &result {
                Ok(report) => Outcome {
                    ms: finished_ms,
                    ok: true,
                    id: Some(report.id.clone()),
                    detail: format!("{} files verified", report.files),
                },
                Err(e) => Outcome {
                    ms: finished_ms,
                    ok: false,
                    id: id.map(str::to_owned),
                    detail: self.destination.scrub(&e.to_string()),
                },
            };
            if let Ok(report) = &result {
                store
                    .kv_set(&format!("{KV_VERIFIED_PREFIX}{}", report.id), &finished_ms.to_string(), finished_ms)
                    .await?;
            }
            health::record(store, KV_LAST_RESTORE_TEST, &outcome).await?;
        }
        result.map(|mut report| {
            report.duration_ms = duration_ms;
            report
        })
    }

    async fn verify_inner(&self, id: Option<&str>, progress: Arc<dyn Progress>) -> Result<VerifyReport, BackupError> {
        let record = match id {
            Some(id) => self.find(id).await?,
            None => self.newest().await?.ok_or_else(|| BackupError::NotFound("(none yet)".into()))?,
        };
        let scratch = Staging::create(&self.config.state.dir, &scratch_name("verify", &record.id))?;
        // The scratch directory goes as a whole (`Staging`'s drop).
        let (manifest, files, bytes) =
            self.fetch_checked(&record, &scratch.0, progress, false, &mut Vec::new()).await?;
        drop(manifest);
        Ok(VerifyReport { id: record.id, files, bytes, archive_bytes: record.archive_bytes, duration_ms: 0 })
    }

    /// Restores backup `id`; see [`RestoreMode`].
    pub async fn restore(
        &self,
        id: &str,
        mode: RestoreMode,
        store: Option<&Store>,
        now_ms: i64,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Result<RestoreReport, BackupError> {
        let record = self.find(id).await?;
        match mode {
            RestoreMode::Into(dir) => {
                if record.encrypted && self.identity.is_none() {
                    return Err(BackupError::NoIdentity);
                }
                let made = prepare_target(&dir)?;
                let mut created = Vec::new();
                let (_, files, bytes) = match self.fetch_checked(&record, &dir, progress, true, &mut created).await {
                    Ok(done) => done,
                    Err(e) => return Err(abandon(e, &dir, &created, &made)),
                };
                if let Some(store) = store {
                    store.kv_set(&format!("{KV_VERIFIED_PREFIX}{}", record.id), &now_ms.to_string(), now_ms).await?;
                }
                Ok(RestoreReport {
                    id: record.id,
                    target: dir,
                    files,
                    bytes,
                    pre_restore_backup: None,
                    skipped: Vec::new(),
                })
            }
            RestoreMode::InPlace => self.restore_in_place(&record, store, now_ms, progress, cancel).await,
        }
    }

    /// Downloads and extracts `record` into `target` (existing, empty), then
    /// runs every check. Returns the manifest, file count and bytes. What
    /// the extraction created is in `created`, whatever the outcome.
    pub(super) async fn fetch_checked(
        &self,
        record: &BackupRecord,
        target: &Path,
        progress: Arc<dyn Progress>,
        durable: bool,
        created: &mut Vec<Created>,
    ) -> Result<(Manifest, u64, u64), BackupError> {
        progress.start(record.content_bytes);
        let (tx, rx) = mpsc::channel(pipe::PIPE_CHUNKS);
        let identity = self.identity.clone();
        let encrypted = record.encrypted;
        if encrypted && identity.is_none() {
            return Err(BackupError::NoIdentity);
        }
        let dir = target.to_path_buf();
        let limits = Limits::of(record);
        let consumer = tokio::task::spawn_blocking(move || {
            let mut created = Vec::new();
            let extracted = pipe::PipeReader::new(rx);
            let extracted = archive::open_archive(extracted, encrypted, identity.as_ref())
                .and_then(|tar| restore::extract(tar, &dir, limits, progress.as_ref(), durable, &mut created));
            (created, extracted)
        });
        let downloaded = self.destination.download(&record.archive, tx).await;
        let (made, extracted) =
            consumer.await.map_err(|e| BackupError::Restore(format!("the restore task failed: {e}")))?;
        *created = made;
        let (archive_bytes, archive_sha) = downloaded?;
        let extracted = extracted?;
        let mut problems = extracted.problems;
        if archive_bytes != record.archive_bytes || archive_sha != record.archive_sha256 {
            problems.push(format!(
                "{}: the stored archive differs from what was uploaded (SHA-256 {archive_sha}, record says {})",
                record.archive, record.archive_sha256
            ));
        }
        let Some(manifest) = extracted.manifest else {
            return Err(BackupError::Verify { id: record.id.clone(), problems });
        };
        if manifest.id != record.id {
            problems.push(format!("the manifest names backup {}, not {}", manifest.id, record.id));
        }
        let listed = u64::try_from(manifest.files.len()).unwrap_or(u64::MAX);
        let listed_bytes = manifest.files.iter().fold(0u64, |sum, f| sum.saturating_add(f.size));
        if listed != record.files || listed_bytes != record.content_bytes {
            problems.push(format!(
                "the manifest lists {listed} files of {listed_bytes} bytes, but the record declares {} files of {} \
                 bytes",
                record.files, record.content_bytes
            ));
        }
        let target_owned = target.to_path_buf();
        let checked = manifest.clone();
        let checks = tokio::task::spawn_blocking(move || check_restored(&target_owned, &checked))
            .await
            .map_err(|e| BackupError::Restore(format!("the check task failed: {e}")))?;
        problems.extend(checks);
        if !problems.is_empty() {
            return Err(BackupError::Verify { id: record.id.clone(), problems });
        }
        let files = u64::try_from(extracted.files.len()).unwrap_or(u64::MAX);
        let bytes = extracted.files.values().map(|(size, _)| size).sum();
        Ok((manifest, files, bytes))
    }
}

/// Largest config file the check reads into memory: a `steward.toml` is a
/// few KB, and the parse must not be the way to exhaust memory.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Name of a scratch directory inside the state dir.
/// (`snapshot` skips these when a declared path contains the state dir.)
pub(super) fn scratch_name(label: &str, id: &str) -> String {
    format!(".restore-{label}-{id}")
}

/// The restored store passes `PRAGMA integrity_check` and the restored
/// config parses; each problem names the file. Both are opened beneath
/// `target`, never through a link.
fn check_restored(target: &Path, manifest: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let root = match Dir::open_ambient(target) {
        Ok(root) => root,
        Err(e) => return vec![format!("cannot open {}: {e}", target.display())],
    };
    if let Some(db_entry) = &manifest.db_entry {
        match check_store(&root, db_entry) {
            Ok(rows) if rows == ["ok"] => {}
            Ok(rows) => problems.push(format!("{db_entry}: integrity_check failed: {}", rows.join("; "))),
            Err(e) => problems.push(format!("{db_entry}: cannot be opened as SQLite: {e}")),
        }
    }
    match read_config(&root, &manifest.config_entry) {
        Ok((path, text)) => {
            if let Err(err) = crate::config::parse(&text, &path) {
                problems.push(format!(
                    "{}: the restored config does not load: {}",
                    manifest.config_entry,
                    err.message()
                ));
            }
        }
        Err(e) => problems.push(format!("{}: cannot read the restored config: {e}", manifest.config_entry)),
    }
    problems
}

/// `PRAGMA integrity_check` of the extracted store `entry`: a regular file
/// beneath `root` (checked through the [`Dir`]), opened read-only by SQLite
/// without following a link.
fn check_store(root: &Dir, entry: &str) -> Result<Vec<String>, String> {
    let relative = restore::safe_relative(entry.as_bytes())?;
    root.open_file(&relative).map_err(|e| e.to_string())?;
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let result = rusqlite::Connection::open_with_flags(root.path().join(&relative), flags).and_then(|conn| {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect::<Result<Vec<String>, _>>()
    });
    result.map_err(|e| e.to_string())
}

/// The extracted config `entry` (beneath `root`, at most
/// [`MAX_CONFIG_BYTES`]) and the path it has in the restored tree.
fn read_config(root: &Dir, entry: &str) -> Result<(PathBuf, String), String> {
    let relative = restore::safe_relative(entry.as_bytes())?;
    let file = root.open_file(&relative).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
        return Err(format!("it is larger than {MAX_CONFIG_BYTES} bytes, which no steward config is"));
    }
    Ok((root.path().join(relative), text))
}

/// Creates `dir` (0700, with any missing parents) or checks that it is
/// empty: a restore never mixes with existing files. Returns the
/// directories it created, outermost first, so a failed restore removes
/// them again.
fn prepare_target(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Restore(format!(
                    "{} is not empty; restore into a new or empty directory (or use --in-place)",
                    dir.display()
                )));
            }
            Ok(Vec::new())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let missing: Vec<PathBuf> =
                dir.ancestors().take_while(|d| std::fs::symlink_metadata(d).is_err()).map(Path::to_path_buf).collect();
            let mut made = Vec::new();
            for path in missing.into_iter().rev() {
                if let Err(e) = std::fs::create_dir(&path) {
                    let stayed = remove_dirs(&made);
                    let left = if stayed.is_empty() { String::new() } else { format!("; left {}", stayed.join(", ")) };
                    return Err(BackupError::Restore(format!("cannot create {}: {e}{left}", path.display())));
                }
                made.push(path);
            }
            crate::state_dir::ensure_private_dir(dir)
                .map_err(|e| BackupError::Restore(format!("cannot create {}: {e}", dir.display())))?;
            Ok(made)
        }
        Err(e) => Err(BackupError::Restore(format!("cannot use {}: {e}", dir.display()))),
    }
}

/// Removes the (empty) directories `made`, innermost first; returns those
/// that stayed (someone else wrote into them).
fn remove_dirs(made: &[PathBuf]) -> Vec<String> {
    made.iter().rev().filter(|d| std::fs::remove_dir(d).is_err()).map(|d| d.display().to_string()).collect()
}

/// Takes back what a failed restore into `dir` wrote (`created`, then the
/// directories `made` for it) and adds to `error` what it removed, or
/// exactly what it could not.
fn abandon(error: BackupError, dir: &Path, created: &[Created], made: &[PathBuf]) -> BackupError {
    let left = restore::remove_created(dir, created);
    let cleanup = if !left.is_empty() {
        let left: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        format!(
            "the restore removed what it could but left: {}; delete them before restoring there again",
            left.join(", ")
        )
    } else {
        let stayed = remove_dirs(made);
        match (made.first(), stayed.is_empty()) {
            (Some(top), true) => format!("the restore removed everything it had written, and {}", top.display()),
            (None, true) => format!("the restore removed everything it had written; {} is as before", dir.display()),
            (_, false) => format!(
                "the restore removed everything it had written, but left the directories {} (someone else \
                 wrote there)",
                stayed.join(", ")
            ),
        }
    };
    match error {
        BackupError::Verify { id, mut problems } => {
            problems.push(cleanup);
            BackupError::Verify { id, problems }
        }
        other => BackupError::Abandoned { error: Box::new(other), cleanup },
    }
}
