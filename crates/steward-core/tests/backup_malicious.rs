//! Hand-crafted hostile archives: restore refuses each without writing a
//! byte outside the target directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::path::Path;

use steward_core::backup::{BackupError, NoProgress, extract};

/// One raw entry: name bytes as stored, type, link target, content.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    link: &'a [u8],
    data: &'a [u8],
}

fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
    Raw { name, kind: tar::EntryType::Regular, link: b"", data }
}

fn link<'a>(name: &'a [u8], kind: tar::EntryType, target: &'a [u8]) -> Raw<'a> {
    Raw { name, kind, link: target, data: b"" }
}

/// A tar whose names are written byte for byte (the `tar` crate's own
/// setters refuse `..` and absolute paths, which is the point here).
fn hostile_tar(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..entry.name.len()].copy_from_slice(entry.name);
            old.linkname[..entry.link.len()].copy_from_slice(entry.link);
        }
        header.set_entry_type(entry.kind);
        header.set_size(u64::try_from(entry.data.len()).unwrap());
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Extracts `tar` into `<base>/target/inner` and returns the error; asserts
/// nothing appeared in `<base>` besides `target`, nor outside `inner`
/// besides `inner` itself.
fn refuse(entries: &[Raw<'_>]) -> String {
    let base = tempfile::tempdir().unwrap();
    let inner = base.path().join("target/inner");
    std::fs::create_dir_all(&inner).unwrap();
    let err = extract(hostile_tar(entries).as_slice(), &inner, &NoProgress, false).unwrap_err();
    assert!(matches!(err, BackupError::Unsafe { .. }), "expected a refusal, got {err}");
    assert_eq!(names(base.path()), vec!["target"]);
    assert_eq!(names(&base.path().join("target")), vec!["inner"]);
    err.to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn path_traversal_is_refused() {
    let text = refuse(&[file(b"ok.txt", b"fine"), file(b"../../escape.txt", b"pwned")]);
    assert!(text.contains("..") && text.contains("escape.txt"), "{text}");
    let text = refuse(&[file(b"a/../../../escape.txt", b"pwned")]);
    assert!(text.contains("`..`"), "{text}");
}

#[test]
fn absolute_paths_are_refused() {
    let sentinel = tempfile::tempdir().unwrap();
    let absolute = format!("{}/evil.txt", sentinel.path().display());
    let text = refuse(&[file(absolute.as_bytes(), b"pwned")]);
    assert!(text.contains("absolute"), "{text}");
    assert!(!sentinel.path().join("evil.txt").exists());
}

#[test]
fn symlinks_leaving_the_target_are_refused() {
    let text = refuse(&[link(b"out", tar::EntryType::Symlink, b"../.."), file(b"out/escape.txt", b"pwned")]);
    assert!(text.contains("symlink"), "{text}");
    let text = refuse(&[link(b"etc", tar::EntryType::Symlink, b"/etc")]);
    assert!(text.contains("outside"), "{text}");
    let text = refuse(&[link(b"sub/up", tar::EntryType::Symlink, b"../../x")]);
    assert!(text.contains("outside"), "{text}");
}

#[test]
fn writing_through_a_link_inside_the_target_is_refused() {
    // The link itself stays inside, but a later entry must not go through it.
    let text = refuse(&[
        file(b"real/keep.txt", b"x"),
        link(b"alias", tar::EntryType::Symlink, b"real"),
        file(b"alias/sneaky.txt", b"y"),
    ]);
    assert!(text.contains("not a directory"), "{text}");
    // Nor replace a file with a link and write through it.
    let text = refuse(&[link(b"f", tar::EntryType::Symlink, b"real"), file(b"f", b"overwrite")]);
    assert!(text.contains("cannot create"), "{text}");
}

#[test]
fn hard_links_leaving_the_target_are_refused() {
    let text = refuse(&[link(b"passwd", tar::EntryType::Link, b"../../../../etc/passwd")]);
    assert!(text.contains("hard link"), "{text}");
    let text = refuse(&[link(b"passwd", tar::EntryType::Link, b"/etc/passwd")]);
    assert!(text.contains("hard link"), "{text}");
}

#[test]
fn special_files_are_refused() {
    let text = refuse(&[Raw { name: b"dev", kind: tar::EntryType::Char, link: b"", data: b"" }]);
    assert!(text.contains("special file"), "{text}");
    let text = refuse(&[Raw { name: b"fifo", kind: tar::EntryType::Fifo, link: b"", data: b"" }]);
    assert!(text.contains("special file"), "{text}");
}

#[test]
fn an_archive_without_a_manifest_is_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let extracted =
        extract(hostile_tar(&[file(b"a.txt", b"hello")]).as_slice(), dir.path(), &NoProgress, false).unwrap();
    assert!(extracted.manifest.is_none());
    assert!(extracted.problems.iter().any(|p| p.contains("MANIFEST.json")), "{:?}", extracted.problems);
}
