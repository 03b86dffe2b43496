//! The state dir (`[state] dir`): steward's private directory (the store,
//! the agent token, the daemon's address and reload record) and the lock
//! that lets one daemon at a time use it.
//!
//! Everything here keeps the directory private: it is created 0700, and
//! every file steward writes in it is 0600. The daemon takes the lock
//! ([`acquire_lock`]); `steward status`, `stop`, `secrets reload` and an
//! in-place restore ask whether a daemon holds it ([`running_pid`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fs2::FileExt;

/// Why the state dir, or a file in it, could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// A directory or file steward needs could not be created.
    #[error("cannot prepare {path}: {source}", path = path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Another daemon holds the lock on this state dir.
    #[error("another steward daemon (pid {pid}) already runs with state dir {dir}; stop it first, or give this one its own [state] dir", dir = dir.display())]
    AlreadyRunning {
        /// Its pid as written in the lock file.
        pid: String,
        /// The shared state dir.
        dir: PathBuf,
    },
}

/// Creates `dir` (and parents) and restricts it to the owner: it holds the
/// store, the agent token and the audit log.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StateDirError> {
    let io = |source| StateDirError::Io { path: dir.to_owned(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// The database and its WAL and shared-memory files are created by SQLite
/// with the umask's mode (0644): made 0600 like everything else steward owns.
pub fn restrict_store_files(db: &Path) -> Result<(), StateDirError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                return Err(StateDirError::Io { path, source });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a daemon holds the lock of this state dir, and its pid.
pub fn running_pid(state_dir: &Path) -> Option<String> {
    let path = state_dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).ok()?;
    if file.try_lock_exclusive().is_ok() {
        let _ = FileExt::unlock(&file);
        return None;
    }
    Some(std::fs::read_to_string(&path).unwrap_or_default().trim().to_owned())
}

/// Takes the daemon lock at `path` (in state dir `dir`) and writes this
/// process's pid into it. Hold the file for the daemon's lifetime: the OS
/// releases the lock when it ends, even on `kill -9`.
pub fn acquire_lock(path: &Path, dir: &Path) -> Result<std::fs::File, StateDirError> {
    use std::io::{Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StateDirError::Io { path: path.to_owned(), source };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    if file.try_lock_exclusive().is_err() {
        let pid = std::fs::read_to_string(path).unwrap_or_default().trim().to_owned();
        return Err(StateDirError::AlreadyRunning { pid, dir: dir.to_owned() });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// Writes `contents` to `path` atomically (temp file + rename), mode 0600.
pub fn write_private(path: &Path, contents: &str) -> Result<(), StateDirError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StateDirError::Io { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
