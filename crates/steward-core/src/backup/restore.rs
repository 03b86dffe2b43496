//! Safe extraction of an archive into a target directory, checking every
//! file against the manifest.
//!
//! An archive is untrusted input (a destination can be written by others, a
//! bucket can be compromised), and so is the record next to it. Extraction
//! never uses `tar`'s own `unpack`, nor its handling of long names and PAX
//! headers (which reads them into memory whole): entries are read raw, and
//! each is examined and refused, before anything is written for it, when
//! - its path is absolute, contains `..`, or is empty;
//! - it is anything but a regular file. steward's writer (`archive`) emits
//!   regular files only, and a backup skips links, so a symlink, hard link,
//!   directory, device or PAX header means the archive was not written by
//!   steward. Refusing every link is simpler and stronger than resolving
//!   chains of them (`l1 -> .`, `up -> l1/..`) as the kernel would;
//! - it does not fit the [`Limits`] the record declares: more files than
//!   its file count, or more bytes (by the tar header, before a byte is
//!   read) than what is left of its content bytes;
//! - it comes after the manifest (written last), or the manifest names a
//!   `config_entry` / `db_entry` that is not one of the archive's files.
//!
//! The decompressed stream as a whole is capped at the declared content
//! plus the tar format's overhead, so a zstd bomb hidden where nothing is
//! written (a long name, after the end of the tar) stops there too; and the
//! filesystem must have room for the declared content before anything is
//! extracted. Every file is created through a [`Dir`] on the target:
//! beneath it, with `O_EXCL`, never through a link.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::beneath::{Dir, is_in_the_way};
use super::manifest::{BackupRecord, FORMAT, MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest};
use super::{BackupError, Progress};

/// Longest GNU long name read: Linux's `PATH_MAX`. Anything longer cannot
/// be created, and the tar crate would read it into memory whole.
const MAX_NAME_BYTES: u64 = 4096;

/// Bytes of the tar format around one file besides its content: its
/// header, a GNU long-name header with up to [`MAX_NAME_BYTES`] of name,
/// and the padding of both to 512-byte blocks.
const ENTRY_OVERHEAD: u64 = 512 + 511 + 512 + MAX_NAME_BYTES + 511;

/// What may follow the end of the tar stream: the rest of its end blocks
/// and record padding (GNU tar pads to 10 KiB; steward writes 1 KiB).
const MAX_TRAILING_BYTES: u64 = 64 * 1024;

/// Manifest bytes allowed per file the record declares: a path of up to
/// [`MAX_NAME_BYTES`], JSON-escaped, its hash, size and mode. With
/// [`MANIFEST_BASE_BYTES`] this bounds the manifest (and the memory its
/// parse takes) by the record, below [`MAX_MANIFEST_BYTES`].
const MANIFEST_BYTES_PER_FILE: u64 = 16 * 1024;

/// Manifest bytes allowed besides its files (id, host, version, entries).
const MANIFEST_BASE_BYTES: u64 = 64 * 1024;

/// Space left free on the filesystem after a restore's declared content:
/// the store and the audit log on the same disk must keep working.
pub const FREE_SPACE_RESERVE: u64 = 64 * 1024 * 1024;

/// Inodes left free after a restore's files: the store and the audit log
/// on the same filesystem must still be able to create theirs.
pub const FREE_INODES_RESERVE: u64 = 10_000;

/// What the backup's record declares, which bounds an extraction before
/// its manifest (the last entry) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file content in all (the manifest excluded).
    pub content_bytes: u64,
    /// Files (the manifest excluded).
    pub files: u64,
}

impl Limits {
    /// The limits `record` declares.
    pub fn of(record: &BackupRecord) -> Self {
        Self { content_bytes: record.content_bytes, files: record.files }
    }

    /// Largest manifest for this many files.
    fn manifest_bytes(self) -> u64 {
        self.files.saturating_mul(MANIFEST_BYTES_PER_FILE).saturating_add(MANIFEST_BASE_BYTES).min(MAX_MANIFEST_BYTES)
    }

    /// Most bytes the decompressed tar stream may hold.
    fn stream_bytes(self) -> u64 {
        self.content_bytes
            .saturating_add(self.files.saturating_add(1).saturating_mul(ENTRY_OVERHEAD))
            .saturating_add(self.manifest_bytes())
            .saturating_add(MAX_TRAILING_BYTES)
    }
}

/// One thing an extraction created beneath its target, so that a failed
/// restore can take it back (see [`remove_created`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A file (relative to the target).
    File(PathBuf),
    /// A directory (relative to the target).
    Dir(PathBuf),
}

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

/// Extracts the plain tar stream `tar` into `target` (which must exist)
/// within `limits` and checks every file against the manifest. An unsafe
/// entry stops the extraction with [`BackupError::Unsafe`]. A read error (a
/// damaged or truncated archive, a failed decryption chunk) stops it too,
/// and becomes one of the returned problems, naming the entry being read,
/// next to the checksum mismatches found in what was read before.
///
/// Everything created is pushed onto `created` as it is created, whatever
/// the outcome. `durable` fsyncs every file (a restore someone will run
/// from); a verify's scratch copy is deleted right after, so it skips that.
pub fn extract<R: Read>(
    tar: R,
    target: &Path,
    limits: Limits,
    progress: &dyn Progress,
    durable: bool,
    created: &mut Vec<Created>,
) -> Result<Extracted, BackupError> {
    let root = Dir::open_ambient(target)
        .map_err(|e| BackupError::Restore(format!("cannot open {}: {e}", target.display())))?;
    check_free_space(&root, limits)?;
    let mut files = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut problems = Vec::new();
    let read = Rc::new(Cell::new(0));
    let capped = Capped { inner: tar, left: limits.stream_bytes(), read: Rc::clone(&read) };
    let mut extraction = Extraction { root, limits, progress, durable, created, files: &mut files, read };
    // A damaged stream ends the extraction, but what was read so far is
    // still compared: a flipped byte inside a file is reported against that
    // file first, not only as "the archive is damaged".
    let damaged = match extraction.run(capped, &mut manifest) {
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

/// Refuses an extraction whose declared content does not fit the free space
/// of `root`'s filesystem (with [`FREE_SPACE_RESERVE`] bytes and
/// [`FREE_INODES_RESERVE`] inodes to spare).
fn check_free_space(root: &Dir, limits: Limits) -> Result<(), BackupError> {
    let free = root
        .free_space()
        .map_err(|e| BackupError::Restore(format!("cannot read the free space of {}: {e}", root.path().display())))?;
    let needed = limits.content_bytes.saturating_add(FREE_SPACE_RESERVE);
    if needed > free.bytes {
        return Err(BackupError::Restore(format!(
            "not enough free space: the backup's record declares {} bytes of files, and {} must stay free, but \
             the filesystem of {} has {} bytes free; free some space there, or restore onto another disk \
             (`steward restore ID --to DIR`)",
            limits.content_bytes,
            FREE_SPACE_RESERVE,
            root.path().display(),
            free.bytes
        )));
    }
    // Each file may need a directory too.
    let inodes = limits.files.saturating_mul(2).saturating_add(FREE_INODES_RESERVE);
    if let Some(free_inodes) = free.inodes.filter(|free| inodes > *free) {
        return Err(BackupError::Restore(format!(
            "not enough free inodes: the backup's record declares {} files, and {FREE_INODES_RESERVE} inodes must \
             stay free, but the filesystem of {} has {free_inodes}; free some there, or restore onto another disk \
             (`steward restore ID --to DIR`)",
            limits.files,
            root.path().display()
        )));
    }
    Ok(())
}

/// The state of one extraction.
struct Extraction<'a> {
    /// The target directory.
    root: Dir,
    /// What the record declares.
    limits: Limits,
    /// Progress reporting.
    progress: &'a dyn Progress,
    /// fsync every file.
    durable: bool,
    /// Everything created, in order.
    created: &'a mut Vec<Created>,
    /// Files written: archive path → (size, SHA-256 hex).
    files: &'a mut BTreeMap<String, (u64, String)>,
    /// Decompressed bytes read so far (shared with the [`Capped`] reader).
    read: Rc<Cell<u64>>,
}

impl Extraction<'_> {
    fn run<R: Read>(&mut self, tar: Capped<R>, manifest: &mut Option<Manifest>) -> Result<(), BackupError> {
        let cap = self.limits.stream_bytes();
        let mut archive = tar::Archive::new(tar);
        let mut last: Option<String> = None;
        let read = Rc::clone(&self.read);
        let limits = self.limits;
        // An error while reading is a damaged archive, or, once the cap is
        // reached, a stream larger than its record allows.
        let damaged = |near: &Option<String>, e: &io::Error| {
            if read.get() > cap {
                BackupError::Unsafe {
                    entry: near.clone().unwrap_or_else(|| "(the archive)".to_owned()),
                    why: format!(
                        "the archive expands beyond the {cap} bytes its record allows ({} bytes in {} files, plus \
                         the tar format's overhead): a decompression bomb, or an archive that does not match its \
                         record",
                        limits.content_bytes, limits.files
                    ),
                }
            } else {
                BackupError::Damaged { near: near.clone(), detail: e.to_string() }
            }
        };
        let mut long_name: Option<Vec<u8>> = None;
        let mut count = 0u64;
        let mut content_left = self.limits.content_bytes;
        let entries = archive.entries().map_err(|e| damaged(&last, &e))?.raw(true);
        for entry in entries {
            let mut entry = entry.map_err(|e| damaged(&last, &e))?;
            let kind = entry.header().entry_type();
            let size = entry.size();
            if kind.is_gnu_longname() {
                if long_name.is_some() || size > MAX_NAME_BYTES {
                    return Err(BackupError::Unsafe {
                        entry: last.map_or_else(|| "(the first entry)".to_owned(), |l| format!("(after {l})")),
                        why: format!(
                            "a GNU long name of {size} bytes{}; a path has at most {MAX_NAME_BYTES}",
                            if long_name.is_some() { " follows another" } else { "" }
                        ),
                    });
                }
                let mut name = Vec::new();
                (&mut entry).take(MAX_NAME_BYTES).read_to_end(&mut name).map_err(|e| damaged(&last, &e))?;
                if name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
                continue;
            }
            let raw_path = long_name.take().unwrap_or_else(|| entry.path_bytes().into_owned());
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            let refuse = |why: String| BackupError::Unsafe { entry: shown.clone(), why };
            if manifest.is_some() {
                return Err(refuse(format!("it comes after {MANIFEST_NAME}, which steward writes last")));
            }
            let relative = safe_relative(&raw_path).map_err(refuse)?;
            last = Some(shown.clone());
            if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
                return Err(refuse(not_a_file(kind, &entry)));
            }
            if shown == MANIFEST_NAME {
                let most = self.limits.manifest_bytes();
                if size > most {
                    return Err(refuse(format!(
                        "the manifest is {size} bytes, more than the {most} a backup of {} files needs",
                        self.limits.files
                    )));
                }
                let mut text = Vec::new();
                (&mut entry).take(most).read_to_end(&mut text).map_err(|e| damaged(&last, &e))?;
                let parsed = parse_manifest(&text, &shown)?;
                check_references(&parsed, self.files)?;
                *manifest = Some(parsed);
                continue;
            }
            count += 1;
            if count > self.limits.files {
                return Err(refuse(format!(
                    "the archive holds more than the {} files its record declares",
                    self.limits.files
                )));
            }
            if size > content_left {
                return Err(refuse(format!(
                    "its tar header declares {size} bytes, more than the {content_left} bytes left of the {} bytes \
                     of files its record declares; refused before writing it (a decompression bomb, or an archive \
                     that does not match its record)",
                    self.limits.content_bytes
                )));
            }
            content_left -= size;
            let mode = entry.header().mode().map_err(|e| damaged(&last, &e))? & 0o777;
            let (size, sha) = self.write_file(&mut entry, &relative, &shown, mode).map_err(|e| match e {
                WriteError::Refused(e) => e,
                WriteError::Read(e) => damaged(&last, &e),
            })?;
            self.progress.advance(size);
            self.files.insert(shown, (size, sha));
        }
        // Read to the very end: zstd checks its frame checksum and age its
        // last chunk only there, and the download must not be cut short.
        // Only padding may follow the tar's end.
        let mut rest = archive.into_inner();
        let trailing =
            io::copy(&mut (&mut rest).take(MAX_TRAILING_BYTES + 1), &mut io::sink()).map_err(|e| damaged(&last, &e))?;
        if trailing > MAX_TRAILING_BYTES {
            return Err(BackupError::Unsafe {
                entry: last.unwrap_or_else(|| "(the archive)".to_owned()),
                why: format!(
                    "more than {MAX_TRAILING_BYTES} bytes come after the end of the tar stream, where only \
                     padding may be (a decompression bomb, or not a steward backup)"
                ),
            });
        }
        Ok(())
    }

    /// Creates `relative` (new, beneath the target, never through a link)
    /// and copies `from` into it, hashing on the way. Returns size and SHA-256.
    fn write_file(
        &mut self,
        from: &mut impl Read,
        relative: &Path,
        shown: &str,
        mode: u32,
    ) -> Result<(u64, String), WriteError> {
        let refused = |why: String| WriteError::Refused(BackupError::Unsafe { entry: shown.to_owned(), why });
        let parent = relative.parent().unwrap_or(Path::new(""));
        let name = relative.file_name().unwrap_or(OsStr::new(""));
        let mut dirs = Vec::new();
        let made = self.root.create_dir_all(parent, &mut dirs);
        self.created.extend(dirs.into_iter().map(Created::Dir));
        let dir = made.map_err(|e| {
            if is_in_the_way(&e) {
                refused(format!("{} is not a directory (a link or a file is in the way)", parent.display()))
            } else {
                WriteError::Refused(BackupError::Restore(format!(
                    "cannot create {}: {e}",
                    self.root.path().join(parent).display()
                )))
            }
        })?;
        let mut file = dir.create_new(name, 0o600).map_err(|e| {
            refused(format!("cannot create it ({e}); a duplicate entry or a link or directory in the way"))
        })?;
        self.created.push(Created::File(relative.to_path_buf()));
        let write = |e: io::Error| {
            WriteError::Refused(BackupError::Restore(format!(
                "cannot write {}: {e}",
                self.root.path().join(relative).display()
            )))
        };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = from.read(&mut buf).map_err(WriteError::Read)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(write)?;
            size += u64::try_from(n).unwrap_or(0);
        }
        if self.durable {
            file.sync_all().map_err(write)?;
        }
        // Never setuid/setgid/sticky, whatever the archive says.
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777)).map_err(write)?;
        Ok((size, hex::encode(hasher.finalize())))
    }
}

/// Why an entry that is not a regular file is refused.
fn not_a_file<R: Read>(kind: tar::EntryType, entry: &tar::Entry<'_, R>) -> String {
    let target = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
    let what = match kind {
        tar::EntryType::Symlink => format!("a symlink to {:?}", target.unwrap_or_default()),
        tar::EntryType::Link => format!("a hard link to {:?}", target.unwrap_or_default()),
        tar::EntryType::Directory => "a directory entry".to_owned(),
        tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => "a PAX header".to_owned(),
        tar::EntryType::GNULongLink => "a GNU long link name".to_owned(),
        other => format!("a special file ({other:?})"),
    };
    format!(
        "it is {what}; steward backups hold only regular files (a backup skips links, directories are \
         implied), so this archive was not written by steward"
    )
}

/// Parses the manifest's text.
fn parse_manifest(text: &[u8], shown: &str) -> Result<Manifest, BackupError> {
    let parsed: Manifest = serde_json::from_slice(text).map_err(|e| BackupError::Damaged {
        near: Some(shown.to_owned()),
        detail: format!("the manifest is not valid: {e}"),
    })?;
    if parsed.format > FORMAT {
        return Err(BackupError::Damaged {
            near: Some(shown.to_owned()),
            detail: format!("manifest format {} is newer than this steward supports", parsed.format),
        });
    }
    Ok(parsed)
}

/// Every reference of the manifest names a file of the archive itself
/// (already extracted: the manifest is last), never a path outside it.
fn check_references(manifest: &Manifest, files: &BTreeMap<String, (u64, String)>) -> Result<(), BackupError> {
    let references = [("config_entry", Some(&manifest.config_entry)), ("db_entry", manifest.db_entry.as_ref())];
    for (field, reference) in references {
        let Some(reference) = reference else { continue };
        let listed = manifest.files.iter().any(|f| &f.path == reference);
        if !listed || !files.contains_key(reference) {
            return Err(BackupError::Unsafe {
                entry: MANIFEST_NAME.to_owned(),
                why: format!(
                    "its {field} {reference:?} is not a file of this archive; a manifest may name only the \
                     archive's own entries, and restore reads nothing else"
                ),
            });
        }
    }
    Ok(())
}

/// Removes what an extraction `created` beneath `target`, newest first,
/// never following a link. Returns what could not be removed (a directory
/// someone else put files in, a file that went away is not listed).
pub fn remove_created(target: &Path, created: &[Created]) -> Vec<PathBuf> {
    let Ok(root) = Dir::open_ambient(target) else {
        return created
            .iter()
            .map(|c| match c {
                Created::File(p) | Created::Dir(p) => target.join(p),
            })
            .collect();
    };
    let mut left = Vec::new();
    for item in created.iter().rev() {
        let (result, path) = match item {
            Created::File(path) => (root.remove_file(path), path),
            Created::Dir(path) => (root.remove_dir(path), path),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => left.push(target.join(path)),
        }
    }
    left
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

/// Why a file could not be extracted.
enum WriteError {
    /// Refused or failed on this side (already the error to return).
    Refused(BackupError),
    /// Reading the archive failed.
    Read(io::Error),
}

/// Counts the decompressed bytes and fails the read that would go past
/// `left`: the cap on what a hostile archive can make restore decompress.
struct Capped<R> {
    /// The decompressed tar stream.
    inner: R,
    /// Bytes still allowed.
    left: u64,
    /// Bytes read so far, also seen by the error mapping.
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = u64::try_from(n).unwrap_or(u64::MAX);
        self.read.set(self.read.get().saturating_add(got));
        if got > self.left {
            self.left = 0;
            return Err(io::Error::other("the archive is larger than its record allows"));
        }
        self.left -= got;
        Ok(n)
    }
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
    fn the_stream_cap_is_the_declared_content_plus_overhead_and_saturates() {
        let limits = Limits { content_bytes: 74_678, files: 3 };
        let manifest = MANIFEST_BASE_BYTES + 3 * MANIFEST_BYTES_PER_FILE;
        assert_eq!(limits.stream_bytes(), 74_678 + 4 * ENTRY_OVERHEAD + manifest + MAX_TRAILING_BYTES);
        assert_eq!(Limits { content_bytes: 0, files: 1 << 40 }.manifest_bytes(), MAX_MANIFEST_BYTES);
        assert_eq!(Limits { content_bytes: u64::MAX, files: u64::MAX }.stream_bytes(), u64::MAX);
    }

    #[test]
    fn the_capped_reader_fails_past_its_cap() {
        let read = Rc::new(Cell::new(0));
        let mut capped = Capped { inner: io::repeat(0).take(100), left: 10, read: Rc::clone(&read) };
        let mut buf = [0u8; 8];
        assert_eq!(capped.read(&mut buf).unwrap(), 8);
        assert!(capped.read(&mut buf).is_err());
        assert!(read.get() > 10);
    }
}
