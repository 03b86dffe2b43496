//! The leak check every test tree shares (design principle 4, "nothing
//! leaked"): tests plant canary secrets, run steward, then walk everything
//! steward wrote (audit logs and their zstd archives, the SQLite store and
//! its WAL, alert records, backup archives, logs) and fail naming the file
//! that holds any of them, raw or in a common encoding.
//!
//! [`private_file`] plants a credential file the way steward requires one
//! (0600); the walk's `allowed` list names such files.
//!
//! A test-only crate: it needs none of steward's types, and both
//! `steward-core`'s and `steward`'s integration tests depend on it, so the
//! walk exists once.

#![expect(clippy::panic, reason = "a test helper fails its test by panicking, with the file named")]

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Writes `contents` (a planted credential) to a new file readable by its
/// owner only (0600), as steward requires of a credential file.
pub fn private_file(path: &Path, contents: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    file.write_all(contents.as_bytes()).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Base64 (standard and URL-safe, unpadded) forms of `secret`: how a token
/// most often reaches a file unredacted once it is not verbatim (a Basic
/// auth header, a JWT segment, a JSON-in-base64 field).
pub fn encodings(secret: &str) -> Vec<String> {
    vec![
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ]
}

/// Each of `secrets` verbatim and in its [`encodings`]: the usual needle list.
pub fn with_encodings(secrets: &[&str]) -> Vec<String> {
    secrets.iter().flat_map(|s| std::iter::once((*s).to_owned()).chain(encodings(s))).collect()
}

/// Fails naming `what` when any needle occurs in `bytes`. A `what` ending in
/// `.zst` is decompressed first (audit archives, backup archives), so a
/// secret cannot hide in a compressed file.
pub fn assert_clean<S: AsRef<str>>(what: &str, bytes: &[u8], needles: &[S]) {
    let decoded;
    let bytes = if what.ends_with(".zst") {
        decoded = zstd::decode_all(bytes).unwrap_or_else(|e| panic!("{what} is not valid zstd: {e}"));
        &decoded[..]
    } else {
        bytes
    };
    for needle in needles {
        let needle = needle.as_ref().as_bytes();
        assert!(!needle.is_empty(), "an empty needle matches everything");
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{:?} leaked into {what}",
            String::from_utf8_lossy(needle)
        );
    }
}

/// Walks `root` and runs [`assert_clean`] on every file except those in
/// `allowed` (the files meant to hold a secret, such as a credential file
/// the test wrote). Fails when the walk found nothing to check, so a wrong
/// `root` cannot pass by accident.
pub fn assert_no_needles<S: AsRef<str>>(root: &Path, needles: &[S], allowed: &[PathBuf]) {
    let mut stack = vec![root.to_owned()];
    let mut checked = 0_usize;
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if allowed.contains(&path) {
                continue;
            }
            // SQLite removes `-wal`/`-shm` when its last connection closes,
            // which may happen between the listing and the read.
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("cannot read {}: {e}", path.display()),
            };
            checked += 1;
            assert_clean(&path.display().to_string(), &bytes, needles);
        }
    }
    assert!(checked > 0, "the leak check found no files to check under {}", root.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_needle_in_any_form_and_in_compressed_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("nested")).unwrap();
        let needles = with_encodings(&["canary-0123"]);
        std::fs::write(root.join("clean.log"), "nothing here").unwrap();
        assert_no_needles(root, &needles, &[]);

        let encoded = encodings("canary-0123").remove(0);
        let archive = zstd::encode_all(format!("x {encoded} y").as_bytes(), 3).unwrap();
        std::fs::write(root.join("nested/audit.jsonl.zst"), archive).unwrap();
        let found = std::panic::catch_unwind(|| assert_no_needles(root, &needles, &[]));
        let message = found.err().and_then(|p| p.downcast::<String>().ok()).map(|s| *s).unwrap_or_default();
        assert!(message.contains("audit.jsonl.zst"), "{message}");

        // The files meant to hold a secret are skipped.
        assert_no_needles(root, &needles, &[root.join("nested/audit.jsonl.zst")]);
    }

    #[test]
    fn an_empty_directory_does_not_pass() {
        let dir = tempfile::tempdir().unwrap();
        assert!(std::panic::catch_unwind(|| assert_no_needles(dir.path(), &["x"], &[])).is_err());
    }
}
