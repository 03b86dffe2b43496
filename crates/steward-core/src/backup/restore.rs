//! Safe extraction of an archive into a target directory, checking every
//! file against the manifest.
//!
//! An archive is untrusted input (a destination can be written by others, a
//! bucket can be compromised). Extraction never uses `tar`'s own `unpack`:
//! each entry is examined and refused, before anything is written for it,
//! when its path is absolute, contains `..`, or is empty; when it is a
//! symlink or hard link whose target is absolute or leaves the target
//! directory; or when it is a device, FIFO or other special file. Files are
//! created with `O_CREAT|O_EXCL` (which never follows a symlink) below
//! directories that are checked not to be symlinks, so even a link the
//! archive itself placed cannot redirect a later write.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{FORMAT, MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest};
use super::{BackupError, Progress};

/// What an extraction found.
#[derive(Debug)]
pub struct Extracted {
    /// The archive's manifest (`None` when the archive broke before it).
    pub manifest: Option<Manifest>,
    /// Files written: archive path → (size, SHA-256 hex).
    pub files: BTreeMap<String, (u64, String)>,
    /// Every mismatch between the files and the manifest, each naming the file.
    pub problems: Vec<String>,
}

/// Extracts the plain tar stream `tar` into `target` (which must exist) and
/// checks every file against the manifest. An unsafe entry stops the
/// extraction with [`BackupError::Unsafe`]. A read error (a damaged or
/// truncated archive, a failed decryption chunk) stops it too, and becomes
/// one of the returned problems, naming the entry being read, next to the
/// checksum mismatches found in what was read before.
///
/// `durable` fsyncs every file (a restore someone will run from); a verify's
/// scratch copy is deleted right after, so it skips that cost.
pub fn extract<R: Read>(
    tar: R,
    target: &Path,
    progress: &dyn Progress,
    durable: bool,
) -> Result<Extracted, BackupError> {
    let mut files = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut problems = Vec::new();
    // A damaged stream ends the extraction, but what was read so far is
    // still compared: a flipped byte inside a file is reported against that
    // file first, not only as "the archive is damaged".
    let damaged = match extract_entries(tar, target, progress, durable, &mut files, &mut manifest) {
        Ok(()) => None,
        Err(e @ BackupError::Damaged { .. }) => Some(e.to_string()),
        Err(e) => return Err(e),
    };
    if let Some(manifest) = &manifest {
        problems.extend(compare(manifest, &files));
    } else if damaged.is_none() {
        problems.push(format!("the archive has no {MANIFEST_NAME}: it was cut short or is not a steward backup"));
    }
    problems.extend(damaged);
    Ok(Extracted { manifest, files, problems })
}

fn extract_entries<R: Read>(
    tar: R,
    target: &Path,
    progress: &dyn Progress,
    durable: bool,
    files: &mut BTreeMap<String, (u64, String)>,
    manifest: &mut Option<Manifest>,
) -> Result<(), BackupError> {
    let mut archive = tar::Archive::new(tar);
    let mut last: Option<String> = None;
    let damaged =
        |near: &Option<String>, e: &io::Error| BackupError::Damaged { near: near.clone(), detail: e.to_string() };
    let entries = archive.entries().map_err(|e| damaged(&last, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(&last, &e))?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let relative = safe_relative(&raw_path).map_err(|why| BackupError::Unsafe { entry: shown.clone(), why })?;
        let kind = entry.header().entry_type();
        last = Some(shown.clone());
        if shown == MANIFEST_NAME && kind.is_file() {
            let mut text = Vec::new();
            (&mut entry).take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut text).map_err(|e| damaged(&last, &e))?;
            if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_MANIFEST_BYTES {
                return Err(BackupError::Unsafe { entry: shown, why: "the manifest is larger than 64 MiB".into() });
            }
            let parsed: Manifest = serde_json::from_slice(&text).map_err(|e| BackupError::Damaged {
                near: Some(shown.clone()),
                detail: format!("the manifest is not valid: {e}"),
            })?;
            if parsed.format > FORMAT {
                return Err(BackupError::Damaged {
                    near: Some(shown),
                    detail: format!("manifest format {} is newer than this steward supports", parsed.format),
                });
            }
            *manifest = Some(parsed);
            continue;
        }
        let destination = target.join(&relative);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                prepare_parent(target, &relative, &shown)?;
                let mode = entry.header().mode().map_err(|e| damaged(&last, &e))? & 0o777;
                let (size, sha) = write_file(&mut entry, &destination, mode, durable).map_err(|e| match e {
                    WriteError::Create(e) => BackupError::Unsafe {
                        entry: shown.clone(),
                        why: format!("cannot create it ({e}); a duplicate entry or a link in the way"),
                    },
                    WriteError::Read(e) => damaged(&last, &e),
                    WriteError::Write(e) => {
                        BackupError::Restore(format!("cannot write {}: {e}", destination.display()))
                    }
                })?;
                progress.advance(size);
                files.insert(shown, (size, sha));
            }
            tar::EntryType::Directory => {
                prepare_parent(target, &relative, &shown)?;
                make_dir(&destination, &shown)?;
            }
            tar::EntryType::Symlink => {
                let link = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
                let link_text = String::from_utf8_lossy(&link).into_owned();
                let inside =
                    relative.parent().map_or(Some(PathBuf::new()), |p| Some(p.to_path_buf())).and_then(|parent| {
                        let joined = parent.join(Path::new(&link_text));
                        lexically_inside(&joined)
                    });
                if link.is_empty() || Path::new(&link_text).is_absolute() || inside.is_none() {
                    return Err(BackupError::Unsafe {
                        entry: shown,
                        why: format!("it is a symlink to {link_text:?}, which points outside the restore directory"),
                    });
                }
                prepare_parent(target, &relative, &shown)?;
                std::os::unix::fs::symlink(&link_text, &destination).map_err(|e| BackupError::Unsafe {
                    entry: shown.clone(),
                    why: format!("cannot create the link ({e})"),
                })?;
            }
            tar::EntryType::Link => {
                let link = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
                let link_text = String::from_utf8_lossy(&link).into_owned();
                let source = safe_relative(&link).map_err(|_| BackupError::Unsafe {
                    entry: shown.clone(),
                    why: format!("it is a hard link to {link_text:?}, which is outside the restore directory"),
                })?;
                let source_path = target.join(&source);
                let regular = std::fs::symlink_metadata(&source_path).is_ok_and(|m| m.file_type().is_file());
                if !regular || !no_symlink_below(target, &source) {
                    return Err(BackupError::Unsafe {
                        entry: shown,
                        why: format!("it is a hard link to {link_text:?}, which is not a file restored before it"),
                    });
                }
                prepare_parent(target, &relative, &shown)?;
                std::fs::hard_link(&source_path, &destination).map_err(|e| BackupError::Unsafe {
                    entry: shown.clone(),
                    why: format!("cannot create the link ({e})"),
                })?;
            }
            other => {
                return Err(BackupError::Unsafe {
                    entry: shown,
                    why: format!("it is a special file ({other:?}); backups hold only files and directories"),
                });
            }
        }
    }
    // Read to the very end: zstd checks its frame checksum and age its last
    // chunk only there, and the download must not be cut short.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| damaged(&last, &e))?;
    Ok(())
}

/// Every difference between the manifest and what was extracted.
fn compare(manifest: &Manifest, files: &BTreeMap<String, (u64, String)>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for expected in &manifest.files {
        listed.insert(expected.path.as_str());
        match files.get(&expected.path) {
            None => problems.push(format!("{}: listed in the manifest but missing from the archive", expected.path)),
            Some((size, sha)) if *size != expected.size || *sha != expected.sha256 => problems.push(format!(
                "{}: checksum mismatch (SHA-256 {sha}, manifest says {}); the file is damaged",
                expected.path, expected.sha256
            )),
            Some(_) => {}
        }
    }
    for path in files.keys() {
        if !listed.contains(path.as_str()) {
            problems.push(format!("{path}: in the archive but not in the manifest"));
        }
    }
    problems
}

/// Why a file could not be written.
enum WriteError {
    Create(io::Error),
    Read(io::Error),
    Write(io::Error),
}

/// Copies `from` into a new file at `to` (never an existing one, never
/// through a symlink), hashing on the way. Returns size and SHA-256.
fn write_file(from: &mut impl Read, to: &Path, mode: u32, durable: bool) -> Result<(u64, String), WriteError> {
    let mut file: File =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(to).map_err(WriteError::Create)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf).map_err(WriteError::Read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(WriteError::Write)?;
        size += u64::try_from(n).unwrap_or(0);
    }
    if durable {
        file.sync_all().map_err(WriteError::Write)?;
    }
    // Never setuid/setgid/sticky, whatever the archive says.
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777)).map_err(WriteError::Write)?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Creates the directories above `relative` inside `target`, refusing to go
/// through anything that is not a real directory (a symlink in particular).
fn prepare_parent(target: &Path, relative: &Path, shown: &str) -> Result<(), BackupError> {
    let Some(parent) = relative.parent() else { return Ok(()) };
    let mut current = target.to_path_buf();
    for component in parent.components() {
        current.push(component);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(_) => {
                return Err(BackupError::Unsafe {
                    entry: shown.to_owned(),
                    why: format!("{} is not a directory (a link or file is in the way)", current.display()),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(&current, shown)?,
            Err(e) => return Err(BackupError::Restore(format!("cannot examine {}: {e}", current.display()))),
        }
    }
    Ok(())
}

fn make_dir(path: &Path, shown: &str) -> Result<(), BackupError> {
    match std::fs::create_dir(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| BackupError::Restore(format!("cannot chmod {}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir());
            if is_dir {
                Ok(())
            } else {
                Err(BackupError::Unsafe {
                    entry: shown.to_owned(),
                    why: format!("{} exists and is not a directory", path.display()),
                })
            }
        }
        Err(e) => Err(BackupError::Restore(format!("cannot create {}: {e}", path.display()))),
    }
}

/// Whether no directory between `target` and `relative`'s parent is a symlink.
fn no_symlink_below(target: &Path, relative: &Path) -> bool {
    let mut current = target.to_path_buf();
    relative.parent().is_none_or(|parent| {
        parent.components().all(|c| {
            current.push(c);
            std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_dir())
        })
    })
}

/// A tar path as a relative path of normal components only: refuses
/// absolute paths, `..`, and empty names. `.` components are dropped.
pub fn safe_relative(raw: &[u8]) -> Result<PathBuf, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "its name is not UTF-8".to_owned())?;
    if text.is_empty() || text.contains('\0') {
        return Err("its name is empty".into());
    }
    let path = Path::new(text);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("its path is absolute".into());
            }
            Component::ParentDir => return Err("its path contains `..`".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("its name is empty".into());
    }
    Ok(out)
}

/// Resolves `..` lexically in a relative path; `None` when it climbs above
/// its start (leaves the restore directory).
fn lexically_inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_relative() {
        assert_eq!(safe_relative(b"a/b.txt").unwrap(), PathBuf::from("a/b.txt"));
        assert_eq!(safe_relative(b"./a").unwrap(), PathBuf::from("a"));
        for bad in [&b"/etc/passwd"[..], b"../x", b"a/../../x", b"a/..", b"", b".", b"\xff"] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_targets_are_resolved_lexically() {
        assert_eq!(lexically_inside(Path::new("a/../b")), Some(PathBuf::from("b")));
        assert_eq!(lexically_inside(Path::new("a/../../b")), None);
        assert_eq!(lexically_inside(Path::new("..")), None);
    }
}
