//! Retention of rotated log files: archive (zstd) or delete after
//! `retention`, then enforce `max_total_size`.
//!
//! Every [`FAMILIES`] member in `logging.dir` (the audit log and the agent's
//! captured output) is handled the same way, and `max_total_size` bounds the
//! directory together with the state store (whose size the caller passes):
//! the oldest archives go first, then the oldest rotated files, whichever log
//! they belong to. Active files and the store are never deleted (the store
//! holds live state; see `doctor/disk.rs` for what the budget means).
//!
//! Archiving never loses a record: the archive is written under a temporary
//! name, synced, decompressed again and compared (SHA-256) with the original,
//! renamed into place, and only then is the original deleted. A crash at any
//! point leaves either the original or a verified archive (or both, in which
//! case the next run redoes the archive). The archive keeps the original's
//! mtime, so age ordering survives compression.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{AuditError, FAMILIES, Family};
use crate::config::{AfterRetention, LoggingConfig};

/// zstd level for archives: zstd's default, a good ratio on JSON at a
/// fraction of the CPU of the high levels.
const ZSTD_LEVEL: i32 = 3;

/// Subdirectory of `logging.dir` holding `<rotated name>.zst` files.
pub const ARCHIVE_DIR: &str = "archive";

/// What one retention run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Archives written (each replacing an expired rotated file).
    pub archived: Vec<PathBuf>,
    /// Expired rotated files deleted (`after_retention = delete`).
    pub deleted_expired: Vec<PathBuf>,
    /// Files deleted, oldest first, to bring the directory under `max_total_size`.
    pub deleted_for_size: Vec<PathBuf>,
    /// Bytes in the directory afterwards (active + rotated + archives); the
    /// store's bytes are not included.
    pub total_bytes: u64,
    /// Files that could not be handled, with why; retried next run.
    pub failures: Vec<String>,
}

/// A file retention may act on.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    size: u64,
    mtime: SystemTime,
}

/// `store_bytes`: the state store's files, counted against `max_total_size`
/// but never deleted here.
pub(super) fn run(cfg: &LoggingConfig, now: SystemTime, store_bytes: u64) -> Result<RetentionReport, AuditError> {
    let mut report = RetentionReport::default();
    let archive_dir = cfg.dir.join(ARCHIVE_DIR);
    remove_stale_temporaries(&archive_dir, &mut report);

    for file in list(&cfg.dir, is_rotated)? {
        let age = now.duration_since(file.mtime).unwrap_or(Duration::ZERO);
        if age <= cfg.retention {
            continue;
        }
        match cfg.after_retention {
            AfterRetention::Archive => match archive(&file, &archive_dir) {
                Ok(archived) => report.archived.push(archived),
                Err(e) => report.failures.push(e.to_string()),
            },
            AfterRetention::Delete => match std::fs::remove_file(&file.path) {
                Ok(()) => report.deleted_expired.push(file.path),
                Err(e) => report.failures.push(AuditError::io("delete", &file.path, e).to_string()),
            },
        }
    }

    let mut archives = if archive_dir.is_dir() { list(&archive_dir, is_archive)? } else { Vec::new() };
    let mut rotated = list(&cfg.dir, is_rotated)?;
    let active: u64 =
        FAMILIES.iter().map(|family| std::fs::metadata(cfg.dir.join(family.active)).map_or(0, |m| m.len())).sum();
    let mut total = active + archives.iter().chain(&rotated).map(|f| f.size).sum::<u64>();
    // Oldest archives go first, then the oldest rotated files; never the active file.
    archives.reverse();
    rotated.reverse();
    let budget = cfg.max_total_size.saturating_sub(store_bytes);
    while total > budget {
        let Some(victim) = archives.pop().or_else(|| rotated.pop()) else {
            break;
        };
        match std::fs::remove_file(&victim.path) {
            Ok(()) => {
                total = total.saturating_sub(victim.size);
                report.deleted_for_size.push(victim.path);
            }
            Err(e) => report.failures.push(AuditError::io("delete", &victim.path, e).to_string()),
        }
    }
    report.total_bytes = total;
    Ok(report)
}

/// Bytes of everything retention counts against `max_total_size` in `dir`
/// (active files, rotated files, archives), and `family`'s rotated files and
/// archives, oldest first: what a budgeted writer may delete.
pub(super) fn usage(dir: &Path, family: Family) -> Result<(u64, Vec<(PathBuf, u64)>), AuditError> {
    let archive_dir = dir.join(ARCHIVE_DIR);
    let archives = if archive_dir.is_dir() { list(&archive_dir, is_archive)? } else { Vec::new() };
    let rotated = list(dir, is_rotated)?;
    let active: u64 =
        FAMILIES.iter().map(|family| std::fs::metadata(dir.join(family.active)).map_or(0, |m| m.len())).sum();
    let total = active + archives.iter().chain(&rotated).map(|f| f.size).sum::<u64>();
    let ours = |entry: &Entry| {
        let name = entry.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        family.is_rotated(name.strip_suffix(".zst").unwrap_or(name))
    };
    let mut mine: Vec<(PathBuf, u64)> = archives.iter().filter(|e| ours(e)).map(|e| (e.path.clone(), e.size)).collect();
    mine.extend(rotated.iter().filter(|e| ours(e)).map(|e| (e.path.clone(), e.size)));
    Ok((total, mine))
}

/// `audit-<stamp>-<seq>.jsonl`, `agent-<stamp>-<seq>.log`; never an active file.
fn is_rotated(name: &str) -> bool {
    FAMILIES.iter().any(|family| family.is_rotated(name))
}

/// A rotated file's name plus `.zst`.
fn is_archive(name: &str) -> bool {
    name.strip_suffix(".zst").is_some_and(is_rotated)
}

/// Regular files of `dir` whose name passes `keep`, oldest first (mtime,
/// then name: names carry the rotation time).
fn list(dir: &Path, keep: fn(&str) -> bool) -> Result<Vec<Entry>, AuditError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| AuditError::io("list", dir, e))? {
        let entry = entry.map_err(|e| AuditError::io("list", dir, e))?;
        if !entry.file_name().to_str().is_some_and(keep) {
            continue;
        }
        // A file removed meanwhile is simply not there any more.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            path: entry.path(),
            size: meta.len(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    out.sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.path.cmp(&b.path)));
    Ok(out)
}

/// Temporaries of an archive run that crashed; their original is still there.
fn remove_stale_temporaries(archive_dir: &Path, report: &mut RetentionReport) {
    let Ok(entries) = std::fs::read_dir(archive_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            report.failures.push(AuditError::io("delete", &entry.path(), e).to_string());
        }
    }
}

/// Compresses `file` into `<archive_dir>/<name>.zst`, verifies it, and
/// deletes the original. Returns the archive's path.
fn archive(file: &Entry, archive_dir: &Path) -> Result<PathBuf, AuditError> {
    let name = file.path.file_name().and_then(|n| n.to_str()).unwrap_or("audit.jsonl");
    let dest = archive_dir.join(format!("{name}.zst"));
    let tmp = archive_dir.join(format!(".{name}.zst.tmp"));
    if !archive_dir.is_dir() {
        DirBuilder::new()
            .mode(0o700)
            .create(archive_dir)
            .map_err(|e| AuditError::io("create directory", archive_dir, e))?;
    }

    let source = File::open(&file.path).map_err(|e| AuditError::io("read", &file.path, e))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| AuditError::io("create", &tmp, e))?;
    let mut reader = Hashing { inner: source, hasher: Sha256::new() };
    let written = zstd::stream::copy_encode(&mut reader, &mut out, ZSTD_LEVEL)
        .and_then(|()| out.set_modified(file.mtime))
        .and_then(|()| out.sync_all());
    let verified = written
        .map_err(|e| AuditError::io("compress", &file.path, e))
        .and_then(|()| verify(&tmp, reader.hasher.finalize().as_slice()));
    if let Err(e) = verified {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    drop(out);

    std::fs::rename(&tmp, &dest).map_err(|e| AuditError::io("rename", &tmp, e))?;
    sync_dir(archive_dir)?;
    std::fs::remove_file(&file.path).map_err(|e| AuditError::io("delete", &file.path, e))?;
    Ok(dest)
}

/// Decompresses `archive` and checks it hashes to `expected`.
fn verify(archive: &Path, expected: &[u8]) -> Result<(), AuditError> {
    let compressed = File::open(archive).map_err(|e| AuditError::io("reopen", archive, e))?;
    let mut sink = HashingSink(Sha256::new());
    zstd::stream::copy_decode(compressed, &mut sink).map_err(|e| AuditError::io("verify", archive, e))?;
    if sink.0.finalize().as_slice() != expected {
        return Err(AuditError::io(
            "verify",
            archive,
            std::io::Error::other("archive does not decompress to the original"),
        ));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| AuditError::io("sync", dir, e))
}

/// Hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes what is written to it.
struct HashingSink(Sha256);

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
