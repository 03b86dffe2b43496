//! Verify and restore. Both download the archive, decrypt, decompress and
//! extract it with the safe extractor, check every file's SHA-256 against
//! the manifest, run `PRAGMA integrity_check` on the restored store and
//! parse the restored config with steward's own loader.
//!
//! Verify (and the scheduled restore test) does exactly that in a scratch
//! directory inside the state dir and deletes it afterwards: a backup counts
//! as verified only once a real restore of it worked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::health::{self, KV_LAST_RESTORE_TEST, KV_VERIFIED_PREFIX, Outcome};
use super::manifest::{BackupRecord, Manifest};
use super::snapshot::{ABSOLUTE_PREFIX, Staging, config_root};
use super::{BackupError, Backups, NoProgress, Progress, archive, pipe, restore};
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
        let (manifest, files, bytes) = self.fetch_checked(&record, &scratch.0, progress, false).await?;
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
                prepare_target(&dir)?;
                let (_, files, bytes) =
                    self.fetch_checked(&record, &dir, progress, true).await.map_err(|e| match e {
                        BackupError::Verify { id, mut problems } => {
                            problems.push(format!("the files in {} are unverified; delete them", dir.display()));
                            BackupError::Verify { id, problems }
                        }
                        other => other,
                    })?;
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

    async fn restore_in_place(
        &self,
        record: &BackupRecord,
        store: Option<&Store>,
        now_ms: i64,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Result<RestoreReport, BackupError> {
        if let Some(pid) = crate::daemon::running_pid(&self.config.state.dir) {
            return Err(BackupError::Restore(format!(
                "steward run (pid {pid}) is using this state; stop it before restoring in place"
            )));
        }
        let scratch = Staging::create(&self.config.state.dir, &scratch_name("inplace", &record.id))?;
        let (manifest, files, bytes) = self.fetch_checked(record, &scratch.0, progress, false).await?;
        // Only now, with a restore proven good, is the current state touched;
        // and first it is saved.
        let pre = self.backup_now(store, "pre-restore", now_ms, Arc::new(NoProgress), cancel).await?;
        let mut skipped = Vec::new();
        for entry in &manifest.files {
            let Some(target) = self.in_place_target(&manifest, &entry.path) else {
                skipped.push(entry.path.clone());
                continue;
            };
            let is_db = Some(&entry.path) == manifest.db_entry.as_ref();
            replace_file(&scratch.0.join(&entry.path), &target, is_db)?;
        }
        Ok(RestoreReport {
            id: record.id.clone(),
            target: config_root(&self.config),
            files,
            bytes,
            pre_restore_backup: Some(pre.record.id),
            skipped,
        })
    }

    /// Where an archive entry goes in an in-place restore: the config file,
    /// the store, or a file under a currently declared path (or the logs
    /// dir). Anything else is not written: the archive does not get to
    /// choose arbitrary places on this machine.
    fn in_place_target(&self, manifest: &Manifest, entry: &str) -> Option<PathBuf> {
        if entry == manifest.config_entry {
            return Some(self.config.source_path.clone());
        }
        if Some(entry) == manifest.db_entry.as_deref() {
            return Some(self.config.state.db_path());
        }
        let relative = restore::safe_relative(entry.as_bytes()).ok()?;
        let target = match relative.strip_prefix(ABSOLUTE_PREFIX) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => config_root(&self.config).join(relative),
        };
        let backup = self.config.backup.as_ref()?;
        let logs = backup.include_logs.then_some(&self.config.logging.dir);
        let allowed = backup.paths.iter().chain(logs).any(|root| target.starts_with(root));
        allowed.then_some(target)
    }

    /// Downloads and extracts `record` into `target` (existing, empty), then
    /// runs every check. Returns the manifest, file count and bytes.
    async fn fetch_checked(
        &self,
        record: &BackupRecord,
        target: &Path,
        progress: Arc<dyn Progress>,
        durable: bool,
    ) -> Result<(Manifest, u64, u64), BackupError> {
        progress.start(record.content_bytes);
        let (tx, rx) = mpsc::channel(pipe::PIPE_CHUNKS);
        let identity = self.identity.clone();
        let encrypted = record.encrypted;
        if encrypted && identity.is_none() {
            return Err(BackupError::NoIdentity);
        }
        let dir = target.to_path_buf();
        let consumer = tokio::task::spawn_blocking(move || {
            let reader = pipe::PipeReader::new(rx);
            let tar = archive::open_archive(reader, encrypted, identity.as_ref())?;
            restore::extract(tar, &dir, progress.as_ref(), durable)
        });
        let downloaded = self.destination.download(&record.archive, tx).await;
        let extracted = consumer.await.map_err(|e| BackupError::Restore(format!("the restore task failed: {e}")))?;
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

/// Name of a scratch directory inside the state dir.
/// (`snapshot` skips these when a declared path contains the state dir.)
fn scratch_name(label: &str, id: &str) -> String {
    format!(".restore-{label}-{id}")
}

/// The restored store passes `PRAGMA integrity_check` and the restored
/// config parses; each problem names the file.
fn check_restored(target: &Path, manifest: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(db_entry) = &manifest.db_entry {
        let db = target.join(db_entry);
        let result =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).and_then(|conn| {
                let mut stmt = conn.prepare("PRAGMA integrity_check")?;
                let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
                rows.collect::<Result<Vec<String>, _>>()
            });
        match result {
            Ok(rows) if rows == ["ok"] => {}
            Ok(rows) => problems.push(format!("{db_entry}: integrity_check failed: {}", rows.join("; "))),
            Err(e) => problems.push(format!("{db_entry}: cannot be opened as SQLite: {e}")),
        }
    }
    let config_path = target.join(&manifest.config_entry);
    match std::fs::read_to_string(&config_path) {
        Ok(text) => {
            if let Err(err) = crate::config::parse(&text, &config_path) {
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

/// Creates `dir` (0700) or checks that it is empty: a restore never mixes
/// with existing files.
fn prepare_target(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Restore(format!(
                    "{} is not empty; restore into a new or empty directory (or use --in-place)",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::daemon::ensure_private_dir(dir)
            .map_err(|e| BackupError::Restore(format!("cannot create {}: {e}", dir.display()))),
        Err(e) => Err(BackupError::Restore(format!("cannot use {}: {e}", dir.display()))),
    }
}

/// Puts `from` at `to` atomically (copy next to it, fsync, rename). For the
/// store, the old `-wal`/`-shm` files go first: SQLite must not replay the
/// old database's log into the restored one.
fn replace_file(from: &Path, to: &Path, is_db: bool) -> Result<(), BackupError> {
    let fail = |e: std::io::Error| BackupError::Restore(format!("cannot restore {}: {e}", to.display()));
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".steward-restore");
    let tmp = PathBuf::from(tmp);
    std::fs::copy(from, &tmp).map_err(fail)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(fail)?;
    if is_db {
        for suffix in ["-wal", "-shm"] {
            let mut side = to.as_os_str().to_owned();
            side.push(suffix);
            match std::fs::remove_file(PathBuf::from(side)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(e)),
            }
        }
    }
    std::fs::rename(&tmp, to).map_err(fail)
}
