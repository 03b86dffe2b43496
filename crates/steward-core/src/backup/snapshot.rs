//! What goes into a backup: the config file, a consistent snapshot of the
//! SQLite store, the declared agent-state paths and (optionally) the audit
//! logs, each mapped to its path inside the archive.
//!
//! The store is copied with `VACUUM INTO` on its own read connection: one
//! read transaction, so the copy is a consistent point in time even while
//! the daemon keeps writing (WAL lets both run), and never a file copy of a
//! database whose latest commits may sit in the `-wal` file.
//!
//! Archive paths are relative to the config file's directory, so a restored
//! tree resolves the config's relative paths inside itself. A file outside
//! that directory is stored under `_absolute/` plus its absolute path.
//!
//! Never included: the live database files (`-wal`, `-shm` too), the agent
//! token, the daemon lock and address, `file:` credential sources, and the
//! destination directory itself.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::BackupError;
use super::archive::Source;
use crate::config::{BackupDestination, Config, CredentialSource};

/// Prefix of archive paths for files outside the config file's directory.
pub(super) const ABSOLUTE_PREFIX: &str = "_absolute";

/// Name of the store snapshot inside the staging directory.
const DB_SNAPSHOT: &str = "steward.db";

/// The files of one backup, ready to archive.
#[derive(Debug)]
pub(super) struct Plan {
    /// In archive order: config, store snapshot, then the rest sorted.
    pub sources: Vec<Source>,
    /// Archive path of the config file.
    pub config_entry: String,
    /// Archive path of the store snapshot (`None`: no store yet).
    pub db_entry: Option<String>,
    /// Things skipped on purpose that the user should know about.
    pub warnings: Vec<String>,
    /// Holds the store snapshot; removed on drop.
    pub _staging: Staging,
}

/// A private scratch directory removed on drop.
#[derive(Debug)]
pub(super) struct Staging(pub PathBuf);

impl Staging {
    /// Creates `<parent>/<name>` (0700), replacing a stale one left by a crash.
    pub fn create(parent: &Path, name: &str) -> Result<Self, BackupError> {
        let path = parent.join(name);
        let io = |e: std::io::Error| BackupError::Source { path: path.display().to_string(), source: e };
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io)?;
        }
        std::fs::create_dir_all(&path).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(Self(path))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove a backup scratch directory");
        }
    }
}

/// Builds the plan for backup `id`: snapshots the store into a staging
/// directory inside the state dir and lists every file. Blocking.
pub(super) fn plan(config: &Config, id: &str) -> Result<Plan, BackupError> {
    let Some(backup) = &config.backup else {
        return Err(BackupError::Config("no [backup] section in the config".into()));
    };
    let root = config_root(config);
    let state_dir = &config.state.dir;
    crate::state_dir::ensure_private_dir(state_dir).map_err(|e| BackupError::Config(e.to_string()))?;
    let staging = Staging::create(state_dir, &format!(".backup-{id}"))?;

    let mut excluded: BTreeSet<PathBuf> = BTreeSet::new();
    let db = config.state.db_path();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        excluded.insert(PathBuf::from(name));
    }
    excluded.insert(config.state.token_path());
    excluded.insert(config.state.admin_token_path());
    excluded.insert(config.state.admin_socket_path());
    excluded.insert(config.state.lock_path());
    excluded.insert(config.state.addr_path());
    excluded.insert(staging.0.clone());
    for credential in config.credentials.values() {
        if let CredentialSource::File(path) = &credential.source {
            excluded.insert(path.clone());
        }
    }
    if let BackupDestination::Local(dir) = &backup.destination {
        excluded.insert(dir.clone());
    }
    // Scratch directories of other backups and restore tests.
    if let Ok(entries) = std::fs::read_dir(state_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".backup-") || name.starts_with(".restore-") {
                excluded.insert(entry.path());
            }
        }
    }
    if !backup.include_logs {
        excluded.insert(config.logging.dir.clone());
    }

    let mut warnings = Vec::new();
    let config_entry = archive_path(&root, &config.source_path)?;
    let mut sources = vec![Source { archive_path: config_entry.clone(), file: config.source_path.clone() }];
    let db_entry = if config.store.fleet.is_some() {
        warnings.push(
            "the store is the fleet's PostgreSQL database ([store] url): this backup holds the config and agent \
             state; back the database up with pg_dump or point-in-time recovery (docs/fleet.md)"
                .to_owned(),
        );
        None
    } else if db.exists() {
        let snapshot = staging.0.join(DB_SNAPSHOT);
        snapshot_db(&db, &snapshot)?;
        let entry = archive_path(&root, &db)?;
        sources.push(Source { archive_path: entry.clone(), file: snapshot });
        Some(entry)
    } else {
        warnings.push(format!("{} does not exist yet; the backup holds no store", db.display()));
        None
    };

    let mut rest: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut roots: Vec<PathBuf> = backup.paths.clone();
    if backup.include_logs {
        roots.push(config.logging.dir.clone());
    }
    for declared in &roots {
        match std::fs::symlink_metadata(declared) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::Config(format!(
                    "declared path {} does not exist; create it or remove it from [backup] paths",
                    declared.display()
                )));
            }
            Err(e) => return Err(BackupError::Source { path: declared.display().to_string(), source: e }),
            Ok(_) => walk(declared, &root, &excluded, &mut rest, &mut warnings)?,
        }
    }
    for (entry, file) in rest {
        if entry != config_entry && Some(&entry) != db_entry.as_ref() {
            sources.push(Source { archive_path: entry, file });
        }
    }
    Ok(Plan { sources, config_entry, db_entry, warnings, _staging: staging })
}

/// The directory archive paths are relative to: the config file's.
pub(super) fn config_root(config: &Config) -> PathBuf {
    config.source_path.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// Copies the live store to `to` with `VACUUM INTO` (one read transaction).
fn snapshot_db(db: &Path, to: &Path) -> Result<(), BackupError> {
    let fail = |e: rusqlite::Error| BackupError::Snapshot(format!("{}: {e}", db.display()));
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    conn.busy_timeout(crate::store::BUSY_TIMEOUT).map_err(fail)?;
    let target = to.to_str().ok_or_else(|| BackupError::Snapshot(format!("{} is not UTF-8", to.display())))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(fail)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| BackupError::Source { path: to.display().to_string(), source: e })
}

/// Adds `path` (a file, or a directory walked recursively) to `out`.
fn walk(
    path: &Path,
    root: &Path,
    excluded: &BTreeSet<PathBuf>,
    out: &mut BTreeMap<String, PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<(), BackupError> {
    if excluded.contains(path) {
        return Ok(());
    }
    let io = |e: std::io::Error| BackupError::Source { path: path.display().to_string(), source: e };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        warnings.push(format!("{} is a symlink; skipped (restores never create links)", path.display()));
    } else if kind.is_file() {
        match archive_path(root, path) {
            Ok(entry) => {
                out.insert(entry, path.to_path_buf());
            }
            Err(_) => warnings.push(format!("{} has a name that is not UTF-8; skipped", path.display())),
        }
    } else if kind.is_dir() {
        let mut children: Vec<PathBuf> =
            std::fs::read_dir(path).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(io)?;
        children.sort();
        for child in children {
            walk(&child, root, excluded, out, warnings)?;
        }
    } else {
        warnings.push(format!("{} is not a regular file or directory; skipped", path.display()));
    }
    Ok(())
}

/// The archive path of an absolute `file`: relative to `root` when inside
/// it, `_absolute/...` otherwise. Errors for names that are not UTF-8.
pub(super) fn archive_path(root: &Path, file: &Path) -> Result<String, BackupError> {
    let relative = match file.strip_prefix(root) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => Path::new(ABSOLUTE_PREFIX).join(file.strip_prefix("/").unwrap_or(file)),
    };
    let text = relative
        .to_str()
        .ok_or_else(|| BackupError::Config(format!("{} has a name that is not UTF-8", file.display())))?;
    Ok(text.to_owned())
}
