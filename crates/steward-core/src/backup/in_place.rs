//! In-place restore: puts a verified backup back over the live config, the
//! store and the declared paths, which the agent can change while (and
//! before) it runs.
//!
//! Order: the backup is restored into a scratch directory and fully
//! checked; every place it would write is then checked for links in the
//! way; only then is the current state saved (a pre-restore backup) and
//! each file replaced. Each file goes to a place beneath an *anchor*, a
//! directory the operator named (the config's directory, the state dir, the
//! parent of a declared path), opened as a [`Dir`]: below it, nothing is
//! resolved through a link (`RESOLVE_NO_SYMLINKS`), a link where a
//! directory should be is refused, and the new content is written to a
//! fresh temporary name (`O_EXCL`, random) and renamed over the old file,
//! which replaces a link there instead of writing through it.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::beneath::{Dir, Kind, is_in_the_way};
use super::manifest::{BackupRecord, Manifest};
use super::snapshot::{ABSOLUTE_PREFIX, Staging, config_root};
use super::verify::{RestoreReport, scratch_name};
use super::{BackupError, Backups, NoProgress, Progress, restore};
use crate::store::Store;

/// Attempts at a fresh temporary name before giving up: a name someone
/// planted is never reused, and 64 random bits do not collide by chance.
const TEMP_ATTEMPTS: usize = 8;

/// Where one archive entry goes.
#[derive(Debug, Clone)]
struct Placement {
    /// The entry, relative to the scratch directory it was extracted into.
    entry: PathBuf,
    /// A directory the operator named, opened following its own links.
    anchor: PathBuf,
    /// The file, beneath `anchor`: nothing on the way is a link.
    relative: PathBuf,
    /// The store: its old `-wal`/`-shm` files go first, so SQLite does not
    /// replay the old database's log into the restored one.
    is_db: bool,
}

impl Placement {
    /// The live path (for messages).
    fn shown(&self) -> PathBuf {
        self.anchor.join(&self.relative)
    }
}

impl Backups {
    /// Restores `record` over the live state; see the module docs.
    pub(super) async fn restore_in_place(
        &self,
        record: &BackupRecord,
        store: Option<&Store>,
        now_ms: i64,
        progress: Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Result<RestoreReport, BackupError> {
        if let Some(pid) = crate::state_dir::running_pid(&self.config.state.dir) {
            return Err(BackupError::Restore(format!(
                "steward run (pid {pid}) is using this state; stop it before restoring in place"
            )));
        }
        let scratch = Staging::create(&self.config.state.dir, &scratch_name("inplace", &record.id))?;
        let (manifest, files, bytes) = self.fetch_checked(record, &scratch.0, progress, false, &mut Vec::new()).await?;
        let mut placements = Vec::new();
        let mut skipped = Vec::new();
        for entry in &manifest.files {
            match self.placement(&manifest, &entry.path) {
                Some(placement) => placements.push(placement),
                None => skipped.push(entry.path.clone()),
            }
        }
        let checked = placements.clone();
        let blocked = tokio::task::spawn_blocking(move || links_in_the_way(&checked))
            .await
            .map_err(|e| BackupError::Restore(format!("the restore task failed: {e}")))?;
        if !blocked.is_empty() {
            return Err(BackupError::Restore(format!(
                "cannot restore in place: {}. steward never writes through a link it did not create; move each \
                 aside (`mv PATH PATH.moved`) and run the restore again. Nothing was changed",
                blocked.join("; ")
            )));
        }
        // Only now, with a restore proven good, is the current state touched;
        // and first it is saved.
        let pre = self.backup_now(store, "pre-restore", now_ms, Arc::new(NoProgress), cancel).await?;
        let source = scratch.0.clone();
        let total = placements.len();
        let written = tokio::task::spawn_blocking(move || replace_all(&source, &placements))
            .await
            .map_err(|e| BackupError::Restore(format!("the restore task failed: {e}")))?;
        drop(scratch);
        if let Err((done, e)) = written {
            let id = &pre.record.id;
            return Err(BackupError::Restore(format!(
                "{e}; {done} of {total} files were restored before that. Backup {id} holds the state from before \
                 the restore: `steward restore {id} --in-place` puts it back"
            )));
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
    fn placement(&self, manifest: &Manifest, entry: &str) -> Option<Placement> {
        let source = restore::safe_relative(entry.as_bytes()).ok()?;
        let in_dir = |file: &Path, is_db: bool| {
            Some(Placement {
                entry: source.clone(),
                anchor: file.parent()?.to_path_buf(),
                relative: PathBuf::from(file.file_name()?),
                is_db,
            })
        };
        if entry == manifest.config_entry {
            return in_dir(&self.config.source_path, false);
        }
        if Some(entry) == manifest.db_entry.as_deref() {
            return in_dir(&self.config.state.db_path(), true);
        }
        let target = match source.strip_prefix(ABSOLUTE_PREFIX) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => config_root(&self.config).join(&source),
        };
        let backup = self.config.backup.as_ref()?;
        let logs = backup.include_logs.then_some(&self.config.logging.dir);
        // The deepest declared path holding the file; its parent is the
        // anchor, so the declared directory itself is not followed if it
        // became a link (a backup skips a declared path that is a link).
        let root = backup
            .paths
            .iter()
            .chain(logs)
            .filter(|root| target.starts_with(root))
            .max_by_key(|root| root.components().count())?;
        let anchor = root.parent().unwrap_or(root).to_path_buf();
        let relative = target.strip_prefix(&anchor).ok()?.to_path_buf();
        Some(Placement { entry: source, anchor, relative, is_db: false })
    }
}

/// Every link (or file) sitting where a restored file needs a directory, and
/// every directory where it needs a file, as messages naming the path.
fn links_in_the_way(placements: &[Placement]) -> Vec<String> {
    let mut blocked = std::collections::BTreeSet::new();
    for placement in placements {
        // A missing anchor is created later, with everything below it.
        let Ok(anchor) = Dir::open_ambient(&placement.anchor) else { continue };
        let mut at = PathBuf::new();
        let components: Vec<_> = placement.relative.components().collect();
        for (i, component) in components.iter().enumerate() {
            at.push(component);
            let last = i + 1 == components.len();
            let shown = placement.anchor.join(&at).display().to_string();
            match (anchor.kind(&at), last) {
                (Ok(None), _) => break,
                (Ok(Some(Kind::Dir)), false) => {}
                // A file, or a link to one, is replaced by the rename.
                (Ok(Some(Kind::File | Kind::Symlink)), true) => {}
                (Ok(Some(Kind::Symlink)), false) => {
                    blocked.insert(format!("{shown} is a symlink where the backup has a directory"));
                    break;
                }
                (Ok(Some(Kind::Dir)), true) => {
                    blocked.insert(format!("{shown} is a directory where the backup has a file"));
                }
                (Ok(Some(_)), _) => {
                    blocked.insert(format!("{shown} is not a directory or a regular file"));
                    break;
                }
                (Err(e), _) => {
                    blocked.insert(format!("cannot examine {shown}: {e}"));
                    break;
                }
            }
        }
    }
    blocked.into_iter().collect()
}

/// Replaces every placement's file; on failure, how many were done and why.
fn replace_all(source: &Path, placements: &[Placement]) -> Result<(), (usize, BackupError)> {
    let scratch = Dir::open_ambient(source)
        .map_err(|e| (0, BackupError::Restore(format!("cannot open {}: {e}", source.display()))))?;
    for (done, placement) in placements.iter().enumerate() {
        replace_file(&scratch, placement).map_err(|e| (done, e))?;
    }
    Ok(())
}

/// Puts the extracted entry at its placement atomically: a new temporary
/// file beside the target (`O_EXCL`), the content, fsync, rename over the
/// target, fsync of the directory.
fn replace_file(scratch: &Dir, placement: &Placement) -> Result<(), BackupError> {
    let shown = placement.shown();
    let fail = |e: io::Error| {
        if is_in_the_way(&e) {
            BackupError::Restore(format!(
                "cannot restore {}: a link or a file is in the way beneath {} (it appeared during the \
                 restore); steward never writes through a link it did not create",
                shown.display(),
                placement.anchor.display()
            ))
        } else {
            BackupError::Restore(format!("cannot restore {}: {e}", shown.display()))
        }
    };
    std::fs::create_dir_all(&placement.anchor).map_err(fail)?;
    let anchor = Dir::open_ambient(&placement.anchor).map_err(fail)?;
    let parent = placement.relative.parent().unwrap_or(Path::new(""));
    let name = placement.relative.file_name().ok_or_else(|| fail(io::ErrorKind::InvalidInput.into()))?;
    let dir = anchor.create_dir_all(parent, &mut Vec::new()).map_err(fail)?;
    let mut from = scratch.open_file(&placement.entry).map_err(fail)?;
    let mode = from.metadata().map_err(fail)?.permissions().mode() & 0o777;
    let (temp, mut file) = create_temp(&dir).map_err(fail)?;
    let written = io::copy(&mut from, &mut file)
        .and_then(|_| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = dir.remove_file(Path::new(&temp));
        return Err(fail(e));
    }
    if placement.is_db {
        for suffix in ["-wal", "-shm"] {
            let mut side = name.to_owned();
            side.push(suffix);
            match dir.remove_file(Path::new(&side)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = dir.remove_file(Path::new(&temp));
                    return Err(fail(e));
                }
            }
        }
    }
    if let Err(e) = dir.rename(&temp, name) {
        let _ = dir.remove_file(Path::new(&temp));
        return Err(fail(e));
    }
    dir.sync().map_err(fail)
}

/// A new file with a fresh random name in `dir` (`O_EXCL`: an existing
/// name, a planted link included, is never opened).
fn create_temp(dir: &Dir) -> io::Result<(OsString, std::fs::File)> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..TEMP_ATTEMPTS {
        let name = OsString::from(format!(".steward-restore-{:016x}", rand::random::<u64>()));
        match dir.create_new(&name, 0o600) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}
