//! The leak check every test tree shares (design principle 4, "nothing
//! leaked"): tests plant canary secrets, run steward, then walk everything
//! steward wrote (audit logs and their zstd archives, the SQLite store and
//! its WAL, alert records, backup archives, logs) and fail naming the file
//! that holds any of them, raw or in a common encoding.
//!
//! Each file is searched as bytes, and in its decoded views too: percent
//! escapes undone (up to three rounds, for double encoding) and JSON string
//! escapes undone, so a needle written `%63anary...` or `\u0063anary...` is
//! found. A SQLite database (the store, found by its header, not its name)
//! is also read through SQLite, value by value: a long value spills onto
//! overflow pages, which can split a needle in the file's raw bytes. The
//! WAL and `-shm` files are read as raw bytes like everything else, while
//! the daemon runs and after.
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

/// Header of every SQLite database file.
const SQLITE_HEADER: &[u8] = b"SQLite format 3\0";

/// Percent-decoding rounds: double encoding (`%2563`) is common, more is
/// contrived.
const PERCENT_ROUNDS: usize = 3;

/// Fails naming `what` when any needle occurs in `bytes` or in one of its
/// decoded views (see the crate docs). A `what` ending in `.zst` is
/// decompressed first (audit archives, backup archives), so a secret cannot
/// hide in a compressed file.
pub fn assert_clean<S: AsRef<str>>(what: &str, bytes: &[u8], needles: &[S]) {
    let decoded;
    let bytes = if what.ends_with(".zst") {
        decoded = zstd::decode_all(bytes).unwrap_or_else(|e| panic!("{what} is not valid zstd: {e}"));
        &decoded[..]
    } else {
        bytes
    };
    let views = decoded_views(bytes);
    for needle in needles {
        let needle = needle.as_ref().as_bytes();
        assert!(!needle.is_empty(), "an empty needle matches everything");
        for (how, view) in std::iter::once(("", bytes)).chain(views.iter().map(|(how, v)| (*how, &v[..]))) {
            assert!(
                !view.windows(needle.len()).any(|w| w == needle),
                "{:?} leaked into {what}{how}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// The decoded views of `bytes` that differ from it, each named for the
/// failure message.
fn decoded_views(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut views = Vec::new();
    let mut current = bytes.to_vec();
    for _ in 0..PERCENT_ROUNDS {
        match percent_decode(&current) {
            Some(next) => {
                views.push((" (percent-decoded)", next.clone()));
                current = next;
            }
            None => break,
        }
    }
    if let Some(json) = json_unescape(bytes) {
        if let Some(both) = percent_decode(&json) {
            views.push((" (JSON-unescaped, then percent-decoded)", both));
        }
        views.push((" (JSON-unescaped)", json));
    }
    if let Some(last) = views.first().map(|(_, v)| v.clone())
        && let Some(both) = json_unescape(&last)
    {
        views.push((" (percent-decoded, then JSON-unescaped)", both));
    }
    views
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// `bytes` with every `%XX` replaced by the byte; `None` when there is none.
fn percent_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push(hi << 4 | lo);
            changed = true;
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    changed.then_some(out)
}

/// The UTF-16 unit of a `\uXXXX` at `i`.
fn unit_at(bytes: &[u8], i: usize) -> Option<u32> {
    if bytes.get(i..i + 2)? != b"\\u" {
        return None;
    }
    bytes.get(i + 2..i + 6)?.iter().try_fold(0u32, |acc, &d| Some(acc << 4 | u32::from(hex(d)?)))
}

/// `bytes` with JSON string escapes undone (`\uXXXX` with surrogate pairs,
/// `\\`, `\"`, `\/`); `None` when there is none.
fn json_unescape(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            if let Some(&c @ (b'\\' | b'"' | b'/')) = bytes.get(i + 1) {
                out.push(c);
                changed = true;
                i += 2;
                continue;
            }
            if let Some(unit) = unit_at(bytes, i) {
                let (code, len) = match unit_at(bytes, i + 6) {
                    Some(low) if (0xD800..0xDC00).contains(&unit) && (0xDC00..0xE000).contains(&low) => {
                        (0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), 12)
                    }
                    _ => (unit, 6),
                };
                if let Some(c) = char::from_u32(code) {
                    out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
                    changed = true;
                    i += len;
                    continue;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

/// Every text and blob value of every table of the SQLite database at
/// `path`, read through SQLite (the WAL included while it exists). `None`
/// when SQLite cannot open it: the raw bytes were checked anyway.
fn database_values(path: &Path) -> Option<Vec<Vec<u8>>> {
    use rusqlite::{Connection, OpenFlags, types::ValueRef};
    let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // Read-only through the WAL while a writer has it open; once the
    // daemon closed the store the WAL is folded in, and `immutable` reads
    // the file without creating a `-wal` or `-shm` next to it.
    let conn = Connection::open_with_flags(path, read_only)
        .and_then(|c| c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map(|()| c))
        .or_else(|_| {
            let uri = format!("file:{}?immutable=1", path.display());
            Connection::open_with_flags(uri, read_only | OpenFlags::SQLITE_OPEN_URI)
        })
        .ok()?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).ok()?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .ok()?;
    let mut values = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\""))).ok()?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).ok()?;
        while let Ok(Some(row)) = rows.next() {
            for i in 0..columns {
                if let Ok(ValueRef::Text(bytes) | ValueRef::Blob(bytes)) = row.get_ref(i) {
                    values.push(bytes.to_vec());
                }
            }
        }
    }
    Some(values)
}

/// Walks `root` and runs [`assert_clean`] on every file except those in
/// `allowed` (the files meant to hold a secret, such as a credential file
/// the test wrote), and on every value of every SQLite database among them.
/// Fails when the walk found nothing to check, so a wrong `root` cannot pass
/// by accident. Returns the files it checked, so a test can prove that the
/// one it cares about (`steward.db-wal` while the daemon runs) was among them.
pub fn assert_no_needles<S: AsRef<str>>(root: &Path, needles: &[S], allowed: &[PathBuf]) -> Vec<PathBuf> {
    let mut stack = vec![root.to_owned()];
    let mut checked = Vec::new();
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
            // A Unix socket (the daemon's admin.sock) or a FIFO holds no
            // bytes on disk, and reading one fails (ENXIO) or blocks.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_symlink()) {
                continue;
            }
            // SQLite removes `-wal`/`-shm` when its last connection closes,
            // which may happen between the listing and the read.
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("cannot read {}: {e}", path.display()),
            };
            let what = path.display().to_string();
            assert_clean(&what, &bytes, needles);
            if bytes.starts_with(SQLITE_HEADER) {
                let values = database_values(&path).unwrap_or_else(|| panic!("SQLite cannot read {what}"));
                for value in values {
                    assert_clean(&format!("{what} (a stored value)"), &value, needles);
                }
            }
            checked.push(path);
        }
    }
    assert!(!checked.is_empty(), "the leak check found no files to check under {}", root.display());
    checked
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

    fn leak_message(root: &Path, needles: &[String]) -> String {
        let found = std::panic::catch_unwind(|| assert_no_needles(root, needles, &[]));
        found.err().and_then(|p| p.downcast::<String>().ok()).map(|s| *s).unwrap_or_default()
    }

    #[test]
    fn escaped_needles_are_found_in_the_decoded_views() {
        let needles = vec!["canary-0123".to_owned()];
        for (i, text) in [
            "GET /echo/%63anary-0123 200",
            "GET /echo/%2563anary%2D0123",
            r#"{"path":"\u0063anary-0123"}"#,
            r#"{"path":"\u0025\u0036\u0033anary-0123"}"#,
            r#"{"q":"%63anary\u002d0123"}"#,
        ]
        .into_iter()
        .enumerate()
        {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(format!("{i}.log")), text).unwrap();
            assert!(leak_message(dir.path(), &needles).contains(&format!("{i}.log")), "{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clean.log"), "canary-0124 %63anary-01 \\u0063").unwrap();
        assert_no_needles(dir.path(), &needles, &[]);
    }

    #[test]
    fn a_value_split_across_sqlite_overflow_pages_is_found() {
        let needle = "canary-overflow-0123";
        let needles = vec![needle.to_owned()];
        // SQLite fills overflow pages from the end of a long value: page
        // boundaries sit at fixed distances from its end. Grow the tail
        // until the needle straddles one: the raw file then holds it split
        // by the next page's header, and only SQLite's reading sees it whole.
        let split = (4000..4200).find_map(|tail| {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("store.db");
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch("CREATE TABLE kv (key TEXT, value TEXT)").unwrap();
            conn.execute(
                "INSERT INTO kv VALUES ('k', ?1)",
                [format!("{}{needle}{}", "x".repeat(6000), "y".repeat(tail))],
            )
            .unwrap();
            drop(conn);
            let raw = std::fs::read(&db).unwrap();
            (!raw.windows(needle.len()).any(|w| w == needle.as_bytes())).then_some(dir)
        });
        let dir = split.expect("some length splits the needle across pages");
        assert!(leak_message(dir.path(), &needles).contains("store.db (a stored value)"));

        // While a writer holds it in WAL mode, the rows are read through the WAL.
        let wal_dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(wal_dir.path().join("live.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v TEXT)")
            .unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [format!("a {needle} b")]).unwrap();
        let message = leak_message(wal_dir.path(), &needles);
        assert!(message.contains("live.db"), "{message}");
        conn.execute("DELETE FROM t", []).unwrap();
        // The deleted row's bytes are still in the WAL file: the raw scan finds them.
        assert!(leak_message(wal_dir.path(), &needles).contains("live.db-wal"));
        drop(conn);
    }

    #[test]
    fn an_empty_directory_does_not_pass() {
        let dir = tempfile::tempdir().unwrap();
        assert!(std::panic::catch_unwind(|| assert_no_needles(dir.path(), &["x"], &[])).is_err());
    }
}
