//! File access beneath a directory that someone else can change: the
//! agent's declared paths an in-place restore writes into, a `--to` target,
//! the scratch tree a verify reads back.
//!
//! A [`Dir`] is an open directory. Every path below it is resolved by the
//! kernel in one `openat2` call with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`:
//! a symlink anywhere on the way (planted by the agent, by an archive, or
//! swapped in while a restore runs) fails the open with `ELOOP` instead of
//! being followed, and nothing resolves above the directory. New files are
//! created with `O_CREAT | O_EXCL`, renames and removals act on the name in
//! an already-opened parent (`renameat`, `unlinkat`), which never follow a
//! link either. No path string is ever re-resolved through the ambient
//! filesystem once the [`Dir`] is open.
//!
//! Only relative paths of plain names are accepted (no `..`, no `/` at the
//! start, no `.`): callers pass paths that went through
//! [`safe_relative`](super::restore::safe_relative).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::UnlinkatFlags;

/// Mode of every directory a restore creates: the restored state is private
/// to the user running steward, like the state dir.
const DIR_MODE: u32 = 0o700;

/// How every path below a [`Dir`] is resolved: never above it, never
/// through a link (`NO_SYMLINKS` implies no `/proc` magic links either).
fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// What is at a name, looked at without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A real directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// Room left on a filesystem for an unprivileged user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FreeSpace {
    /// Bytes.
    pub bytes: u64,
    /// Inodes (files and directories); `None` when the filesystem does not
    /// count them.
    pub inodes: Option<u64>,
}

/// An open directory; see the module docs.
#[derive(Debug)]
pub(super) struct Dir {
    /// The directory itself.
    fd: OwnedFd,
    /// Its path, for messages only: never opened again.
    path: PathBuf,
}

impl Dir {
    /// Opens `path`, following links in it: it comes from the operator
    /// (the config, `--to`), not from an archive or the agent.
    pub fn open_ambient(path: &Path) -> io::Result<Dir> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).bits())
            .open(path)?;
        Ok(Dir { fd: OwnedFd::from(file), path: path.to_path_buf() })
    }

    /// The path this directory was opened as (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `relative` beneath this one.
    pub fn open_dir(&self, relative: &Path) -> io::Result<Dir> {
        let fd = open_beneath(self.fd.as_fd(), relative, OFlag::O_DIRECTORY | OFlag::O_RDONLY, None)?;
        Ok(Dir { fd, path: self.path.join(relative) })
    }

    /// Opens the directory `relative` beneath this one, creating (0700)
    /// each missing component; an existing component must be a real
    /// directory. Pushes each directory it created onto `created`, parents
    /// first.
    pub fn create_dir_all(&self, relative: &Path, created: &mut Vec<PathBuf>) -> io::Result<Dir> {
        let mut done = PathBuf::new();
        let mut current = self.open_dir(Path::new(""))?;
        for component in relative.components() {
            let Component::Normal(name) = component else { return Err(not_plain(relative)) };
            done.push(name);
            let next = match current.open_dir(Path::new(name)) {
                Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => {
                    match nix::sys::stat::mkdirat(current.fd.as_fd(), name, Mode::from_bits_truncate(DIR_MODE)) {
                        Ok(()) => created.push(done.clone()),
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    current.open_dir(Path::new(name))?
                }
                other => other?,
            };
            current = next;
        }
        Ok(current)
    }

    /// Creates the file `name` in this directory: a new file only
    /// (`O_EXCL`: an existing name, a link included, fails with
    /// `AlreadyExists`), write-only, with `mode`.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = open_beneath(self.fd.as_fd(), Path::new(name), flags, Some(Mode::from_bits_truncate(mode & 0o777)))?;
        Ok(File::from(fd))
    }

    /// Opens the regular file `relative` beneath this one for reading.
    pub fn open_file(&self, relative: &Path) -> io::Result<File> {
        // O_NONBLOCK: opening a FIFO someone put there must not hang; it is
        // then refused as not a regular file.
        let fd = open_beneath(self.fd.as_fd(), relative, OFlag::O_RDONLY | OFlag::O_NONBLOCK, None)?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(file)
    }

    /// What is at `relative` (not following it), `None` when nothing is.
    pub fn kind(&self, relative: &Path) -> io::Result<Option<Kind>> {
        let (parent, name) = self.parent_of(relative)?;
        let stat = match nix::sys::stat::fstatat(parent.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        Ok(Some(if kind == SFlag::S_IFDIR {
            Kind::Dir
        } else if kind == SFlag::S_IFREG {
            Kind::File
        } else if kind == SFlag::S_IFLNK {
            Kind::Symlink
        } else {
            Kind::Other
        }))
    }

    /// Renames `from` to `to`, both names in this directory. A link at `to`
    /// is replaced, never followed.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        plain_name(from)?;
        plain_name(to)?;
        nix::fcntl::renameat(self.fd.as_fd(), from, self.fd.as_fd(), to).map_err(io::Error::from)
    }

    /// Removes the file (or link: never its target) at `relative`.
    pub fn remove_file(&self, relative: &Path) -> io::Result<()> {
        let (parent, name) = self.parent_of(relative)?;
        nix::unistd::unlinkat(parent.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)
    }

    /// Removes the empty directory at `relative`.
    pub fn remove_dir(&self, relative: &Path) -> io::Result<()> {
        let (parent, name) = self.parent_of(relative)?;
        nix::unistd::unlinkat(parent.fd.as_fd(), name, UnlinkatFlags::RemoveDir).map_err(io::Error::from)
    }

    /// Makes renames and creations in this directory durable.
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(self.fd.as_fd()).map_err(io::Error::from)
    }

    /// What an unprivileged user may still create on this directory's
    /// filesystem.
    #[allow(
        clippy::useless_conversion,
        reason = "the counts are u64 on 64-bit Linux but narrower on 32-bit targets (an `expect` would fail there)"
    )]
    pub fn free_space(&self) -> io::Result<FreeSpace> {
        let stat = nix::sys::statvfs::fstatvfs(self.fd.as_fd())?;
        let bytes = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
        // A filesystem without an inode table (btrfs) reports none at all.
        let inodes = (u64::from(stat.files()) > 0).then(|| u64::from(stat.files_available()));
        Ok(FreeSpace { bytes, inodes })
    }

    /// The directory holding `relative` (opened beneath this one) and the
    /// last name.
    fn parent_of<'p>(&self, relative: &'p Path) -> io::Result<(Dir, &'p OsStr)> {
        let name = relative.file_name().ok_or_else(|| not_plain(relative))?;
        plain_name(name)?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        Ok((self.open_dir(parent)?, name))
    }
}

/// Whether `e` means a link or a non-directory was in the way of a path
/// beneath a [`Dir`] (`ELOOP` for a link, `ENOTDIR` for a file, `EXDEV`
/// for an escape).
pub(super) fn is_in_the_way(e: &io::Error) -> bool {
    let in_the_way = [Errno::ELOOP, Errno::ENOTDIR, Errno::EXDEV];
    e.raw_os_error().is_some_and(|code| in_the_way.contains(&Errno::from_raw(code)))
}

/// Opens `relative` beneath `dir` with `flags` (plus `O_NOFOLLOW |
/// O_CLOEXEC`), refusing every link; `mode` only with `O_CREAT`. The empty
/// path opens `dir` again.
fn open_beneath(dir: BorrowedFd<'_>, relative: &Path, flags: OFlag, mode: Option<Mode>) -> io::Result<OwnedFd> {
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(not_plain(relative));
    }
    let relative = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut how = OpenHow::new().flags(flags).resolve(resolve_flags());
    if let Some(mode) = mode {
        how = how.mode(mode);
    }
    match nix::fcntl::openat2(dir, relative, how) {
        // A kernel before 5.6, or a seccomp filter that does not know the
        // call: the same guarantee, one plain name at a time.
        Err(Errno::ENOSYS | Errno::EPERM) => walk_beneath(dir, relative, flags, mode.unwrap_or(Mode::empty())),
        other => other.map_err(io::Error::from),
    }
}

/// [`open_beneath`] without `openat2`: opens each directory on the way with
/// `O_NOFOLLOW | O_DIRECTORY` relative to the one before, then the last
/// name with `flags` (which hold `O_NOFOLLOW`). With plain names only, this
/// is exactly `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`.
fn walk_beneath(dir: BorrowedFd<'_>, relative: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let names: Vec<&OsStr> = relative.iter().collect();
    let Some((last, parents)) = names.split_last() else { return Err(not_plain(relative)) };
    let mut current: Option<OwnedFd> = None;
    for name in parents {
        let at = current.as_ref().map_or(dir, AsFd::as_fd);
        current = Some(nix::fcntl::openat(at, *name, dir_flags, Mode::empty())?);
    }
    let at = current.as_ref().map_or(dir, AsFd::as_fd);
    Ok(nix::fcntl::openat(at, *last, flags, mode)?)
}

/// Refuses a name that is not one plain component.
fn plain_name(name: &OsStr) -> io::Result<()> {
    let path = Path::new(name);
    let mut components = path.components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(()),
        _ => Err(not_plain(path)),
    }
}

fn not_plain(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a relative path of plain names", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Dir) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::fs::write(outside.path().join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        std::os::unix::fs::symlink("real", root.path().join("alias")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), root.path().join("f.tmp")).unwrap();
        let dir = Dir::open_ambient(root.path()).unwrap();
        (root, outside, dir)
    }

    #[test]
    fn no_link_is_followed_on_the_way_or_at_the_end() {
        let (root, outside, dir) = setup();
        for through in ["out", "alias"] {
            let err = dir.create_dir_all(&Path::new(through).join("x"), &mut Vec::new()).unwrap_err();
            assert!(is_in_the_way(&err), "{through}: {err}");
            let err = dir.open_file(&Path::new(through).join("victim")).unwrap_err();
            assert!(is_in_the_way(&err), "{through}: {err}");
        }
        let err = dir.create_new(OsStr::new("f.tmp"), 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert!(dir.open_file(Path::new("f.tmp")).is_err());
        assert_eq!(dir.kind(Path::new("out")).unwrap(), Some(Kind::Symlink));
        assert_eq!(dir.kind(Path::new("real")).unwrap(), Some(Kind::Dir));
        assert_eq!(dir.kind(Path::new("none")).unwrap(), None);
        // Removing the link removes the link, not what it points to.
        dir.remove_file(Path::new("f.tmp")).unwrap();
        assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(root.path().join("f.tmp")).is_err());
        for bad in ["../x", "/etc/passwd", "a/../b", "./a"] {
            assert!(dir.open_file(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn directories_are_created_beneath_and_recorded() {
        let (root, _outside, dir) = setup();
        let mut created = Vec::new();
        let deep = dir.create_dir_all(Path::new("real/a/b"), &mut created).unwrap();
        assert_eq!(created, vec![PathBuf::from("real/a"), PathBuf::from("real/a/b")]);
        drop(deep.create_new(OsStr::new("f"), 0o640).unwrap());
        deep.rename(OsStr::new("f"), OsStr::new("g")).unwrap();
        assert!(root.path().join("real/a/b/g").is_file());
        assert!(deep.rename(OsStr::new("g"), OsStr::new("../g")).is_err());
        assert!(dir.free_space().unwrap().bytes > 0);
        nix::unistd::mkfifo(&root.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(dir.open_file(Path::new("fifo")).is_err(), "a FIFO is not a file (and must not block)");
    }

    #[test]
    fn the_fallback_walk_refuses_links_too() {
        let (_root, _outside, dir) = setup();
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for through in ["out/victim", "alias/x", "f.tmp"] {
            let err = walk_beneath(dir.fd.as_fd(), Path::new(through), flags, Mode::empty()).unwrap_err();
            assert!(is_in_the_way(&err), "{through}");
        }
        std::fs::write(dir.path().join("real/ok"), "x").unwrap();
        walk_beneath(dir.fd.as_fd(), Path::new("real/ok"), flags, Mode::empty()).unwrap();
    }
}
