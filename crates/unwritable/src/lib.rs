//! Write faults for tests: a file or directory made unwritable for the
//! length of a test, even when the tests run as root (CI does), and made
//! writable again when the guard drops, so a failing test still leaves a
//! temp dir that can be removed.
//!
//! Two mechanisms:
//! - [`Unwritable::immutable`]: `chattr +i`. Nobody, root included, can
//!   write, create, rename or delete through an immutable inode, even
//!   through a file descriptor opened before. Needs `CAP_LINUX_IMMUTABLE`
//!   (root) and a file system with the flag (ext4, xfs, btrfs; tmpfs since
//!   Linux 6.0).
//! - [`Unwritable::read_only`]: the write bits cleared (`chmod a-w`) where
//!   this process honours permission bits, else (root, or any process with
//!   `CAP_DAC_OVERRIDE`) immutable as above. Only later opens see it.
//!
//! When neither works, the test must not pass as if it had checked
//! something: [`Unavailable::not_run`] fails it when
//! `STEWARD_REQUIRE_IMMUTABLE` is set (as `.ci/run` does), and otherwise
//! prints a NOT RUN banner that the test harness does not capture.
//!
//! A test-only crate: it needs none of steward's types, and both
//! `steward-core`'s unit tests and `steward`'s integration tests use it, so
//! the `chattr` dance exists once.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that turns an unavailable mechanism into a failed test
/// instead of a NOT RUN banner. `.ci/run` sets it: CI runs as root on ext4,
/// where `chattr +i` works, so a failure there is a broken runner.
pub const REQUIRE_VAR: &str = "STEWARD_REQUIRE_IMMUTABLE";

/// Paths made unwritable; made writable again by [`Unwritable::clear`] or on
/// drop.
#[must_use = "the paths are writable again as soon as the guard drops"]
#[derive(Debug)]
pub struct Unwritable {
    /// Each path and how to undo what was done to it, in the order done.
    undo: Vec<(PathBuf, Undo)>,
}

/// How one path was made unwritable, so it can be undone.
#[derive(Debug, Clone, Copy)]
enum Undo {
    /// `chattr -i`.
    Immutable,
    /// Restore this mode (the one the path had before).
    Mode(u32),
}

/// Why a path could not be made unwritable here, with what would make it
/// work.
#[derive(Debug)]
pub struct Unavailable {
    /// The whole explanation: what failed and how to get it to work.
    reason: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Unavailable {
    /// Reports that `test` did not run because of `self`: a failed test when
    /// [`REQUIRE_VAR`] is set, else a banner on stderr (written directly,
    /// because the test harness swallows `eprintln!` of a passing test).
    pub fn not_run(&self, test: &str) {
        assert!(
            std::env::var_os(REQUIRE_VAR).is_none(),
            "{test}: {REQUIRE_VAR} is set but the write fault cannot be set up: {self}"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! NOT RUN: {test} !!!\n{self}\n(set {REQUIRE_VAR}=1 to make this a failure, as .ci/run does)\n"
        );
    }
}

impl Unwritable {
    /// Makes `paths` immutable (`chattr +i`), all or none.
    pub fn immutable(paths: &[&Path]) -> Result<Unwritable, Unavailable> {
        let mut guard = Unwritable { undo: Vec::with_capacity(paths.len()) };
        for path in paths {
            // On an error, dropping `guard` undoes the paths already done.
            chattr("+i", path).map_err(|why| Unavailable {
                reason: format!(
                    "`chattr +i {}` failed: {why}. It needs root (CAP_LINUX_IMMUTABLE) and a file system \
                     with the immutable flag (ext4, xfs, btrfs): run the tests as root with TMPDIR on such a \
                     file system",
                    path.display()
                ),
            })?;
            guard.undo.push((path.to_path_buf(), Undo::Immutable));
        }
        Ok(guard)
    }

    /// Makes `paths` read-only for every later open: write bits cleared
    /// where this process honours them, else immutable. All or none.
    pub fn read_only(paths: &[&Path]) -> Result<Unwritable, Unavailable> {
        if !honours_permissions()? {
            return Self::immutable(paths).map_err(|e| Unavailable {
                reason: format!("this process ignores permission bits (root or CAP_DAC_OVERRIDE), and {e}"),
            });
        }
        let mut guard = Unwritable { undo: Vec::with_capacity(paths.len()) };
        for path in paths {
            let mode = std::fs::metadata(path).map_err(|e| io_unavailable("stat", path, &e))?.permissions().mode();
            set_mode(path, mode & !0o222).map_err(|e| io_unavailable("chmod a-w", path, &e))?;
            guard.undo.push((path.to_path_buf(), Undo::Mode(mode)));
        }
        Ok(guard)
    }

    /// Makes every path writable again, now. Fails the test when a path
    /// stays unwritable, naming the command that fixes it.
    pub fn clear(&mut self) {
        let failures = self.undo_all();
        assert!(failures.is_empty(), "cannot make writable again: {}", failures.join("; "));
    }

    /// Undoes everything, newest first; the failures, each with its fix.
    fn undo_all(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((path, undo)) = self.undo.pop() {
            let result = match undo {
                Undo::Immutable => chattr("-i", &path),
                Undo::Mode(mode) => set_mode(&path, mode).map_err(|e| e.to_string()),
            };
            if let Err(why) = result {
                let fix = match undo {
                    Undo::Immutable => format!("chattr -i {}", path.display()),
                    Undo::Mode(mode) => format!("chmod {mode:o} {}", path.display()),
                };
                failures.push(format!("{} ({why}): run `{fix}`", path.display()));
            }
        }
        failures
    }
}

impl Drop for Unwritable {
    /// Undoes everything even when the test failed half way. No panic here
    /// (a panic while unwinding aborts the test binary): a path left
    /// unwritable is reported on stderr with its fix.
    fn drop(&mut self) {
        for failure in self.undo_all() {
            let _ = writeln!(std::io::stderr(), "cannot make writable again: {failure}");
        }
    }
}

/// Whether this process honours permission bits: root, or any process with
/// `CAP_DAC_OVERRIDE`, opens a 0400 file for writing. Asked, not guessed
/// from the uid, because capabilities decide it.
fn honours_permissions() -> Result<bool, Unavailable> {
    let probe = tempfile::NamedTempFile::new().map_err(|e| Unavailable {
        reason: format!("cannot create a probe file in the temp dir: {e}; set TMPDIR to a writable directory"),
    })?;
    set_mode(probe.path(), 0o400).map_err(|e| io_unavailable("chmod 400", probe.path(), &e))?;
    Ok(std::fs::OpenOptions::new().write(true).open(probe.path()).is_err())
}

/// `chattr <flag> <path>`; the error is chattr's own message.
fn chattr(flag: &str, path: &Path) -> Result<(), String> {
    match Command::new("chattr").arg(flag).arg(path).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("{} ({})", String::from_utf8_lossy(&out.stderr).trim(), out.status)),
        Err(e) => Err(format!("cannot run chattr ({e}); install e2fsprogs")),
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn io_unavailable(what: &str, path: &Path, e: &std::io::Error) -> Unavailable {
    Unavailable { reason: format!("`{what} {}` failed: {e}", path.display()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whichever mechanism applies here, a read-only directory refuses a new
    /// file, and takes one again after the guard drops.
    #[test]
    fn a_read_only_directory_refuses_new_files_until_the_guard_drops() {
        let dir = tempfile::tempdir().unwrap();
        let guard = match Unwritable::read_only(&[dir.path()]) {
            Ok(guard) => guard,
            Err(unavailable) => return unavailable.not_run("unwritable: a read-only directory"),
        };
        assert!(std::fs::write(dir.path().join("new"), b"x").is_err());
        drop(guard);
        std::fs::write(dir.path().join("new"), b"x").unwrap();
    }

    /// An immutable file refuses writes through a descriptor opened before.
    #[test]
    fn an_immutable_file_refuses_writes_through_an_open_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let mut open = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let mut guard = match Unwritable::immutable(&[&path]) {
            Ok(guard) => guard,
            Err(unavailable) => return unavailable.not_run("unwritable: an immutable file"),
        };
        assert!(open.write_all(b"x").is_err());
        guard.clear();
        open.write_all(b"x").unwrap();
    }
}
