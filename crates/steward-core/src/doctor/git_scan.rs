//! "No secret in version control": scans every file git tracks in the
//! repository that holds the config, with the redactor's secret rules
//! ([`crate::config::find_literal_secrets`], the scan that refuses a literal
//! secret in the config at load).
//!
//! Runs `git` itself (`rev-parse --show-toplevel`, `ls-files -z`): the index
//! is what gets committed and pushed, so that is what is scanned. Binary
//! files (a NUL byte in the first 8 KiB), symlinks and files over
//! [`MAX_SCANNED_FILE_BYTES`] are skipped. A finding carries the file
//! (relative to the repository root), the line and the rule, never the text.
//!
//! [`tracked`] asks git whether given paths (the state dir, secret files)
//! are in the index at all: a tracked agent token or store is pushed with
//! the next commit whatever it contains.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files larger than this (1 MiB) are not scanned: configs and scripts are
/// small, and large tracked files are data, vendored code or build output.
pub const MAX_SCANNED_FILE_BYTES: u64 = 1 << 20;

/// Bytes examined for a NUL to tell a binary file.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// One secret found in a tracked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedSecret {
    /// Path relative to the repository root.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The rule that matched (`github-pat`, `private-key`, ...).
    pub kind: String,
}

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOutcome {
    /// `git` is not installed or could not run.
    GitUnavailable(String),
    /// The directory is not inside a git work tree: nothing is tracked.
    NotARepository,
    /// Scanned `files` tracked files; `secrets` is every finding.
    Scanned {
        /// Files read and scanned.
        files: usize,
        /// Every finding, in file then line order.
        secrets: Vec<TrackedSecret>,
    },
}

/// Scans the git-tracked files of the repository containing `dir`.
pub fn scan_tracked_files(dir: &Path) -> ScanOutcome {
    let top = match git(dir, &["rev-parse", "--show-toplevel"], None) {
        Ok(Some(out)) => PathBuf::from(String::from_utf8_lossy(&out).trim()),
        Ok(None) => return ScanOutcome::NotARepository,
        Err(err) => return ScanOutcome::GitUnavailable(err),
    };
    let listing = match git(&top, &["ls-files", "-z"], None) {
        Ok(Some(out)) => out,
        Ok(None) => return ScanOutcome::NotARepository,
        Err(err) => return ScanOutcome::GitUnavailable(err),
    };
    let mut files = 0;
    let mut secrets = Vec::new();
    for name in listing.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let relative = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let path = top.join(&relative);
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_file() || meta.len() > MAX_SCANNED_FILE_BYTES {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if bytes[..bytes.len().min(BINARY_SNIFF_BYTES)].contains(&0) {
            continue;
        }
        files += 1;
        let text = String::from_utf8_lossy(&bytes);
        let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        for finding in crate::config::find_literal_secrets(&text) {
            let line = line_starts.partition_point(|start| *start <= finding.range.start);
            secrets.push(TrackedSecret { file: relative.clone(), line, kind: finding.kind });
        }
    }
    ScanOutcome::Scanned { files, secrets }
}

/// Which of `paths` (files or directories) git tracks: a file that is in the
/// index, or a directory with anything in the index under it. Each path is
/// asked of the repository that contains it; paths outside any repository,
/// or that do not exist, are not tracked. `Err` when git could not run.
pub fn tracked(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    for path in paths {
        let (dir, pathspec) = if path.is_dir() {
            (path.as_path(), std::ffi::OsStr::new("."))
        } else if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            (dir, name)
        } else {
            continue;
        };
        if !dir.is_dir() {
            continue;
        }
        let listing = git(dir, &["ls-files", "-z", "--"], Some(pathspec))?;
        if listing.is_some_and(|out| !out.is_empty()) {
            found.push(path.clone());
        }
    }
    Ok(found)
}

/// Runs `git -C dir args...`: `Ok(Some(stdout))` on success, `Ok(None)` when
/// git ran but refused (not a repository), `Err` when git could not run.
/// `pathspec`, when given, is appended last (it may not be UTF-8).
fn git(dir: &Path, args: &[&str], pathspec: Option<&std::ffi::OsStr>) -> Result<Option<Vec<u8>>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .args(pathspec)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    Ok(output.status.success().then_some(output.stdout))
}
