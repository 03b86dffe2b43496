//! Hand-crafted hostile archives: extraction refuses each without writing a
//! byte outside the target directory, and records everything it did write.

mod backup_support;

use std::path::Path;

use backup_support::{Raw, file, hostile_tar, link, tree};
use steward_core::backup::{BackupError, Created, Limits, NoProgress, extract, remove_created};

/// Roomy limits: these archives are refused for their shape, not their size.
const ROOMY: Limits = Limits { content_bytes: 1 << 20, files: 100 };

/// Extracts `tar` into `<base>/target/inner` and returns the error; asserts
/// nothing appeared in `<base>` besides `target`, nor outside `inner`
/// besides `inner` itself, and that removing what was recorded as created
/// empties `inner` again.
#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
fn refuse(entries: &[Raw<'_>]) -> String {
    let base = tempfile::tempdir().unwrap();
    let inner = base.path().join("target/inner");
    std::fs::create_dir_all(&inner).unwrap();
    let mut created = Vec::new();
    let err = extract(hostile_tar(entries).as_slice(), &inner, ROOMY, &NoProgress, false, &mut created).unwrap_err();
    assert!(matches!(err, BackupError::Unsafe { .. }), "expected a refusal, got {err}");
    assert_eq!(names(base.path()), vec!["target"]);
    assert_eq!(names(&base.path().join("target")), vec!["inner"]);
    assert!(remove_created(&inner, &created).is_empty());
    assert!(tree(&inner).is_empty(), "not recorded as created: {:?}", tree(&inner));
    err.to_string()
}

#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
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
fn every_symlink_is_refused_wherever_it_points() {
    // Leaving the target, lexically inside, and chains whose every step
    // looks inside but whose last resolves outside (issue 23).
    let up10 = "../".repeat(10);
    let cases: [&[Raw<'_>]; 6] = [
        &[link(b"out", tar::EntryType::Symlink, b"../.."), file(b"out/escape.txt", b"pwned")],
        &[link(b"etc", tar::EntryType::Symlink, b"/etc")],
        &[file(b"real/keep.txt", b"x"), link(b"alias", tar::EntryType::Symlink, b"real")],
        &[link(b"l1", tar::EntryType::Symlink, b"."), link(b"up", tar::EntryType::Symlink, b"l1/..")],
        &[
            file(b"d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/k", b"x"),
            link(b"d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/l", tar::EntryType::Symlink, up10.as_bytes()),
        ],
        &[file(b"ok.txt", b"fine"), link(b"f", tar::EntryType::Symlink, b"ok.txt"), file(b"f", b"overwrite")],
    ];
    for entries in cases {
        let text = refuse(entries);
        assert!(text.contains("a symlink to") && text.contains("only regular files"), "{text}");
    }
}

#[test]
fn every_hard_link_is_refused() {
    for target in [&b"../../../../etc/passwd"[..], b"/etc/passwd", b"ok.txt"] {
        let text = refuse(&[file(b"ok.txt", b"fine"), link(b"passwd", tar::EntryType::Link, target)]);
        assert!(text.contains("hard link"), "{text}");
    }
}

#[test]
fn special_files_directories_and_pax_headers_are_refused() {
    for (kind, what) in [
        (tar::EntryType::Char, "special file"),
        (tar::EntryType::Fifo, "special file"),
        (tar::EntryType::Directory, "directory entry"),
        (tar::EntryType::XHeader, "PAX header"),
        (tar::EntryType::GNUSparse, "special file"),
    ] {
        let text = refuse(&[Raw { name: b"x", kind, link: b"", data: b"" }]);
        assert!(text.contains(what), "{kind:?}: {text}");
    }
}

#[test]
fn a_file_through_a_file_is_refused() {
    let text = refuse(&[file(b"a", b"file"), file(b"a/b", b"under a file")]);
    assert!(text.contains("not a directory"), "{text}");
    let text = refuse(&[file(b"a", b"one"), file(b"./a", b"two")]);
    assert!(text.contains("duplicate"), "{text}");
}

#[test]
fn entries_beyond_what_the_limits_declare_are_refused_before_writing() {
    let base = tempfile::tempdir().unwrap();
    let tar = hostile_tar(&[file(b"a", b"12345"), file(b"b", b"123456")]);
    let tight = Limits { content_bytes: 10, files: 5 };
    let mut created = Vec::new();
    let err = extract(tar.as_slice(), base.path(), tight, &NoProgress, false, &mut created).unwrap_err();
    assert!(err.to_string().contains("declares 6 bytes, more than the 5 bytes left of the 10"), "{err}");
    assert_eq!(created, vec![Created::File("a".into())], "b was written");
    let few = Limits { content_bytes: 100, files: 1 };
    let other = tempfile::tempdir().unwrap();
    let err = extract(tar.as_slice(), other.path(), few, &NoProgress, false, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("more than the 1 files"), "{err}");
}

#[test]
fn a_long_name_is_read_bounded_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{}/file.txt", "d".repeat(150));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o600);
    builder.append_data(&mut header, &long, &b"hi"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let mut created = Vec::new();
    let extracted = extract(tar.as_slice(), dir.path(), ROOMY, &NoProgress, false, &mut created).unwrap();
    assert_eq!(std::fs::read(dir.path().join(&long)).unwrap(), b"hi");
    assert!(extracted.files.contains_key(&long));
    assert_eq!(created.len(), 2);
}

#[test]
fn an_archive_without_a_manifest_is_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let tar = hostile_tar(&[file(b"a.txt", b"hello")]);
    let extracted = extract(tar.as_slice(), dir.path(), ROOMY, &NoProgress, false, &mut Vec::new()).unwrap();
    assert!(extracted.manifest.is_none());
    assert!(extracted.problems.iter().any(|p| p.contains("MANIFEST.json")), "{:?}", extracted.problems);
}
