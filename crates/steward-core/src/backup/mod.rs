//! Backups that are proven: snapshot, archive, upload, retention, verify,
//! restore, and the schedule that runs them inside `steward run`.
//!
//! - `snapshot`: what goes in (config, a `VACUUM INTO` copy of the store,
//!   declared paths, optionally logs) and what never does (live database
//!   files, the agent and admin tokens, the admin socket, credential files).
//! - `archive`: tar + zstd (+ age), streamed with constant memory.
//! - `pipe`: the bounded pipe between blocking archive code and async uploads.
//! - `destination`: local directory or S3-compatible bucket via
//!   `object_store`; atomic uploads; records make backups visible.
//! - [`manifest`]: the manifest inside each archive and the record next to it.
//! - [`retention`]: daily/weekly/monthly keep rules, a pure function of time.
//! - `restore`: safe extraction (regular files only, no absolute paths or
//!   `..`, bounded by what the record declares and the free space).
//! - `beneath`: file access beneath a directory without following links
//!   (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
//! - `verify`: verify = restore into a scratch dir + checksums +
//!   `PRAGMA integrity_check` + config parse; restore into a new directory.
//! - `in_place`: restore over the live config, store and declared paths.
//! - [`schedule`]: cron schedules, catch-up of missed runs, the daemon task.
//! - [`health`](mod@health): last success / failure / restore test for alerts and doctor.
//!
//! [`Backups`] ties them together; every operation takes the current time as
//! a parameter.

mod archive;
mod beneath;
mod destination;
pub mod health;
mod in_place;
pub mod manifest;
mod pipe;
mod restore;
pub mod retention;
pub mod schedule;
mod snapshot;
mod verify;

use std::collections::BTreeSet;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use destination::describe_destination;
pub use health::{BackupHealth, MAX_BACKUP_AGE_MS, MAX_RESTORE_TEST_AGE_MS, health};
pub use manifest::{BackupRecord, Manifest, ManifestEntry};
pub use restore::{Created, Extracted, FREE_SPACE_RESERVE, Limits, extract, remove_created, safe_relative};
pub use retention::RetentionDecision;
pub use verify::{RestoreMode, RestoreReport, VerifyReport};

use crate::config::{BackupConfig, Config};
use crate::secrets::Secrets;
use crate::store::{Store, StoreError};
use destination::{Destination, RECORD_SUFFIX};
use health::{KV_LAST_FAILURE, KV_LAST_SUCCESS, KV_VERIFIED_PREFIX, Outcome};

/// Archives without a record older than this are leftovers of a crashed
/// upload and are deleted by retention (a day: no upload takes that long).
const ORPHAN_AGE_MS: i64 = 86_400_000;

/// Why a backup operation failed. Messages never contain a credential.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The configuration cannot support the operation.
    #[error("{0}")]
    Config(String),
    /// A file to back up could not be read.
    #[error("cannot read {path}: {source}")]
    Source {
        /// The file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The store could not be snapshotted.
    #[error("cannot snapshot the state store {0}")]
    Snapshot(String),
    /// Writing the archive failed.
    #[error("{0}")]
    Archive(String),
    /// The destination failed (already redacted).
    #[error("backup destination: {0}")]
    Destination(String),
    /// No backup with that id.
    #[error("no backup {0} at the destination; `steward backup list` shows the ids")]
    NotFound(String),
    /// The backup is encrypted and no identity was given.
    #[error(
        "this backup is encrypted: pass --identity FILE (the age identity, AGE-SECRET-KEY-1...) or set \
         [backup] identity to a credential holding it"
    )]
    NoIdentity,
    /// Decryption failed.
    #[error("cannot decrypt the backup: {0}")]
    Decrypt(String),
    /// The archive is damaged or truncated.
    #[error("the archive is damaged{}: {detail}", near.as_ref().map(|n| format!(" (at or after {n})")).unwrap_or_default())]
    Damaged {
        /// The last entry read before it broke.
        near: Option<String>,
        /// What broke.
        detail: String,
    },
    /// An archive entry that restore refuses to write.
    #[error("refusing archive entry {entry:?}: {why}; nothing was written outside the restore directory")]
    Unsafe {
        /// The entry's path as stored.
        entry: String,
        /// Why.
        why: String,
    },
    /// Restoring failed on this machine's side.
    #[error("{0}")]
    Restore(String),
    /// A restore into a directory failed; what it had written there was
    /// removed, or `cleanup` names what is left.
    #[error("{error}; {cleanup}")]
    Abandoned {
        /// Why the restore failed.
        error: Box<BackupError>,
        /// What the clean-up removed or left.
        cleanup: String,
    },
    /// Verification found problems (each names the file).
    #[error("backup {id} failed verification:\n  {}", problems.join("\n  "))]
    Verify {
        /// The backup.
        id: String,
        /// Each problem.
        problems: Vec<String>,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Shutdown interrupted the operation; nothing partial was left visible.
    #[error("cancelled by shutdown")]
    Cancelled,
}

/// Progress reporting for long operations (a progress bar in the CLI).
pub trait Progress: Send + Sync {
    /// The total amount of work, in bytes, when known.
    fn start(&self, _total_bytes: u64) {}
    /// `bytes` more are done.
    fn advance(&self, _bytes: u64) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What `backup_now` did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The record written.
    pub record: BackupRecord,
    /// Skipped files, files that changed while read, same-device destination.
    pub warnings: Vec<String>,
    /// Wall time in ms.
    pub duration_ms: u64,
}

/// An opened backup setup: config, destination, identity.
pub struct Backups {
    config: Arc<Config>,
    destination: Destination,
    recipients: Vec<age::x25519::Recipient>,
    identity: Option<age::x25519::Identity>,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups").field("destination", &self.destination).finish_non_exhaustive()
    }
}

impl Backups {
    /// Opens the destination of `config`'s `[backup]` section, resolving its
    /// credential and identity from `secrets`.
    pub fn open(config: Arc<Config>, secrets: &Secrets) -> Result<Self, BackupError> {
        let backup = backup_config(&config)?;
        let destination = Destination::open(backup, secrets)?;
        let recipients = backup
            .encrypt_to
            .iter()
            .map(|r| r.parse::<age::x25519::Recipient>().map_err(|e| BackupError::Config(format!("{r}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let identity = match &backup.identity {
            Some(name) => {
                let value = secrets
                    .get(name)
                    .ok_or_else(|| BackupError::Config(format!("the identity credential `{name}` is not resolved")))?;
                Some(parse_identity(value.expose_secret()).ok_or_else(|| {
                    BackupError::Config(format!("credential `{name}` holds no age identity (AGE-SECRET-KEY-1...)"))
                })?)
            }
            None => None,
        };
        Ok(Self { config, destination, recipients, identity })
    }

    /// Replaces the identity used to decrypt (`--identity FILE`).
    pub fn with_identity(mut self, identity: age::x25519::Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// `file:///...` or `s3://bucket/prefix`.
    pub fn destination(&self) -> &str {
        self.destination.describe()
    }

    /// Warnings about the setup itself: a local destination on the same
    /// device as the state dir is "not a different location".
    pub fn setup_warnings(&self) -> Vec<String> {
        match self.destination.same_device_as(&self.config.state.dir) {
            Some(true) => vec![format!(
                "the destination {} is on the same device as the state dir {}: not a different \
                 location; a failed disk loses both (use another disk or S3)",
                self.destination.describe(),
                self.config.state.dir.display()
            )],
            _ => Vec::new(),
        }
    }

    /// Takes a backup now: snapshot, archive, upload, then the record.
    /// Records the outcome in `store` (kv) when given. `tag` says why
    /// (`manual`, `scheduled`, `pre-restore`).
    pub async fn backup_now(
        &self,
        store: Option<&Store>,
        tag: &str,
        now_ms: i64,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Result<BackupReport, BackupError> {
        let started = std::time::Instant::now();
        let result = self.backup_inner(tag, now_ms, progress, cancel).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let finished_ms = now_ms.saturating_add(i64::try_from(duration_ms).unwrap_or(0));
        let outcome = match &result {
            Ok((record, _)) => Outcome {
                ms: finished_ms,
                ok: true,
                id: Some(record.id.clone()),
                detail: format!("{} files, {} bytes", record.files, record.archive_bytes),
            },
            Err(e) => Outcome { ms: finished_ms, ok: false, id: None, detail: self.destination.scrub(&e.to_string()) },
        };
        // A shutdown is not a failed backup: nothing is recorded, and the
        // scheduler runs it again at the next start.
        if let Some(store) = store.filter(|_| !matches!(result, Err(BackupError::Cancelled))) {
            let key = if outcome.ok { KV_LAST_SUCCESS } else { KV_LAST_FAILURE };
            health::record(store, key, &outcome).await?;
        }
        let (record, mut warnings) = result?;
        warnings.extend(self.setup_warnings());
        Ok(BackupReport { record, warnings, duration_ms })
    }

    async fn backup_inner(
        &self,
        tag: &str,
        now_ms: i64,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Result<(BackupRecord, Vec<String>), BackupError> {
        let id = manifest::new_id(now_ms);
        let config = Arc::clone(&self.config);
        let plan_id = id.clone();
        let plan = tokio::task::spawn_blocking(move || snapshot::plan(&config, &plan_id))
            .await
            .map_err(|e| BackupError::Archive(format!("the snapshot task failed: {e}")))??;
        let total: u64 = plan.sources.iter().filter_map(|s| std::fs::metadata(&s.file).ok()).map(|m| m.len()).sum();
        progress.start(total);
        let manifest = Manifest {
            format: manifest::FORMAT,
            id: id.clone(),
            created_ms: now_ms,
            host: manifest::host_name(),
            steward_version: env!("CARGO_PKG_VERSION").to_owned(),
            agent: self.config.agent.name.clone(),
            config_entry: plan.config_entry.clone(),
            db_entry: plan.db_entry.clone(),
            files: Vec::new(),
        };
        let encrypted = !self.recipients.is_empty();
        let archive_name = format!("{id}.tar.zst{}", if encrypted { ".age" } else { "" });
        let (tx, rx) = mpsc::channel(pipe::PIPE_CHUNKS);
        let recipients = self.recipients.clone();
        let mut warnings = plan.warnings.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let sink = archive::HashingWriter::new(pipe::PipeWriter::new(tx));
            let result = archive::write_archive(sink, &plan.sources, &recipients, manifest, progress.as_ref());
            drop(plan);
            // The pipe's sender is dropped here: that end of stream is what
            // lets the upload finish.
            result.map(|(sink, written)| (sink.bytes, hex::encode(sha2::Digest::finalize(sink.hasher)), written))
        });
        let upload = self.destination.upload(&archive_name, rx, cancel).await;
        let produced = producer.await.map_err(|e| BackupError::Archive(format!("the archive task failed: {e}")))?;
        let pending = match (upload, produced) {
            (Ok(pending), Ok(produced)) => (pending, produced),
            (Ok(pending), Err(e)) => {
                self.destination.abort(pending).await;
                return Err(e);
            }
            (Err(e), _) => return Err(e),
        };
        let (pending, (archive_bytes, archive_sha256, written)) = pending;
        self.destination.complete(pending).await?;
        warnings.extend(written.warnings);
        let record = BackupRecord {
            format: manifest::FORMAT,
            id: id.clone(),
            created_ms: now_ms,
            host: written.manifest.host.clone(),
            steward_version: written.manifest.steward_version.clone(),
            agent: written.manifest.agent.clone(),
            tag: tag.to_owned(),
            archive: archive_name,
            archive_bytes,
            archive_sha256,
            encrypted,
            files: u64::try_from(written.manifest.files.len()).unwrap_or(u64::MAX),
            content_bytes: written.manifest.files.iter().map(|f| f.size).sum(),
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| BackupError::Archive(format!("cannot encode the record: {e}")))?;
        self.destination.put_small(&format!("{id}{RECORD_SUFFIX}"), json).await?;
        Ok((record, warnings))
    }

    /// Every complete backup, oldest first, and warnings about unreadable records.
    pub async fn list(&self) -> Result<(Vec<BackupRecord>, Vec<String>), BackupError> {
        self.destination.records().await
    }

    /// The record of backup `id`.
    pub async fn find(&self, id: &str) -> Result<BackupRecord, BackupError> {
        if !manifest::is_valid_id(id) {
            return Err(BackupError::NotFound(id.to_owned()));
        }
        let bytes = match self.destination.get_small(&format!("{id}{RECORD_SUFFIX}")).await {
            Ok(bytes) => bytes,
            Err(BackupError::Destination(text)) if text.contains("not found") => {
                return Err(BackupError::NotFound(id.to_owned()));
            }
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Damaged { near: Some(format!("{id}{RECORD_SUFFIX}")), detail: e.to_string() })
    }

    /// The newest backup, if any.
    pub async fn newest(&self) -> Result<Option<BackupRecord>, BackupError> {
        Ok(self.list().await?.0.pop())
    }

    /// Applies the keep rules at `now_ms`: deletes what they do not keep
    /// (record first, so a backup disappears from listings before its
    /// archive goes) and archives left without a record by a crash.
    pub async fn apply_retention(&self, store: &Store, now_ms: i64) -> Result<RetentionDecision, BackupError> {
        let backup = backup_config(&self.config)?;
        let tz = jiff::tz::TimeZone::get(&backup.timezone)
            .map_err(|e| BackupError::Config(format!("time zone {}: {e}", backup.timezone)))?;
        let (records, _) = self.list().await?;
        let mut verified = BTreeSet::new();
        for record in &records {
            if store.kv_get(&format!("{KV_VERIFIED_PREFIX}{}", record.id)).await?.is_some() {
                verified.insert(record.id.clone());
            }
        }
        let times: Vec<(String, i64)> = records.iter().map(|r| (r.id.clone(), r.created_ms)).collect();
        let decision = retention::decide(&times, &verified, backup.keep, &tz, now_ms);
        for id in &decision.delete {
            if let Some(record) = records.iter().find(|r| &r.id == id) {
                self.destination.delete(&format!("{id}{RECORD_SUFFIX}")).await?;
                self.destination.delete(&record.archive).await?;
                store.kv_delete(&format!("{KV_VERIFIED_PREFIX}{id}")).await?;
            }
        }
        let listed: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        for (name, modified_ms) in self.destination.list_names().await? {
            let Some(id) = name.split(".tar.zst").next().filter(|_| name.contains(".tar.zst")) else { continue };
            if !listed.contains(id) && now_ms.saturating_sub(modified_ms) > ORPHAN_AGE_MS {
                self.destination.delete(&name).await?;
            }
        }
        Ok(decision)
    }
}

/// The `[backup]` section, or why there is none.
fn backup_config(config: &Config) -> Result<&BackupConfig, BackupError> {
    config.backup.as_ref().ok_or_else(|| {
        BackupError::Config(format!(
            "{} has no [backup] section; add one with at least destination = \"file:///...\"",
            config.source_path.display()
        ))
    })
}

/// The first `AGE-SECRET-KEY-1...` line of an identity file's text.
pub fn parse_identity(text: &str) -> Option<age::x25519::Identity> {
    text.lines().map(str::trim).filter(|l| l.starts_with("AGE-SECRET-KEY-")).find_map(|l| l.parse().ok())
}

/// Reads an identity file (`age-keygen` output) for `--identity FILE`.
pub fn read_identity_file(path: &std::path::Path) -> Result<age::x25519::Identity, BackupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BackupError::Config(format!("cannot read identity file {}: {e}", path.display())))?;
    parse_identity(&text).ok_or_else(|| {
        BackupError::Config(format!("{} holds no age identity (a line AGE-SECRET-KEY-1...)", path.display()))
    })
}
