//! Shared setup of the backup integration tests: a temp dir with a config
//! whose `[backup]` section points at a destination, agent state files, a
//! planted canary credential, a store with calls in it, and the leak check;
//! and the hostile side: tar archives written byte for byte, zstd bombs,
//! crafted backups planted at the destination, and the measurements the
//! restore tests assert on (a walk of a tree, peak RSS, peak disk use).

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]
#![expect(dead_code, reason = "each test binary uses a different part of the helpers")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use leak_check::private_file;
use steward_core::backup::{Backups, NoProgress, Progress};
use steward_core::config::{Config, LoopBreakerConfig};
use steward_core::secrets::Secrets;
use steward_core::store::{Admission, Completion, LastQuery, Store};

/// The planted credential: must reach no backup artifact, manifest or message.
pub const CANARY: &str = "canary-backup-secret-5e4d3c2b1a09";

/// Start of simulated time (2026-09-01T03:00:00Z).
pub const T0: i64 = 1_788_231_600_000;

/// A test deployment.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: Arc<Config>,
}

impl Setup {
    /// A deployment whose `[backup]` writes to `destination` (`None`: a
    /// local `./dest` directory); `extra` adds lines to `[backup]`, and
    /// `credentials` adds `[credentials.*]` sections.
    #[expect(clippy::panic, reason = "a test helper fails its test by panicking, saying what went wrong")]
    pub fn new(destination: Option<&str>, extra: &str, credentials: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("agent-state/nested")).unwrap();
        std::fs::create_dir_all(root.join("secrets")).unwrap();
        std::fs::write(root.join("calendar.json"), r#"{"events":[{"at":"2026-12-01T10:00","title":"dentist"}]}"#)
            .unwrap();
        std::fs::write(root.join("agent-state/notes.md"), "remember the milk\n").unwrap();
        std::fs::write(root.join("agent-state/nested/deep.bin"), [0u8, 1, 2, 3, 255]).unwrap();
        private_file(&root.join("secrets/social.token"), CANARY);
        let destination = destination.map_or_else(|| format!("file://{}/dest", root.display()), str::to_owned);
        let text = format!(
            r#"[agent]
name = "backup-test"

[state]
dir = "./state"

[credentials.social]
source = "file:secrets/social.token"
{credentials}

[backup]
paths = ["./calendar.json", "./agent-state/", "./secrets/"]
destination = "{destination}"
{extra}
"#
        );
        let path = root.join("steward.toml");
        std::fs::write(&path, text).unwrap();
        let config = steward_core::config::load(&path).unwrap_or_else(|e| panic!("{:?}", miette::Report::new(e)));
        std::fs::create_dir_all(&config.state.dir).unwrap();
        Setup { dir, config: Arc::new(config) }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn dest(&self) -> PathBuf {
        self.root().join("dest")
    }

    pub fn store(&self) -> Store {
        Store::open(&self.config.state.db_path(), steward_core::redaction::shared(redact::Redactor::default())).unwrap()
    }

    /// Resolved on a thread of its own: callers may already be inside a runtime.
    pub fn secrets(&self) -> Secrets {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(Secrets::resolve(&self.config)).unwrap()
                })
                .join()
                .unwrap()
        })
    }

    pub fn backups(&self) -> Backups {
        Backups::open(Arc::clone(&self.config), &self.secrets()).unwrap()
    }
}

/// No progress reporting.
pub fn quiet() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

/// An admission for call `id` at `now_ms`.
pub fn admission(id: &str, now_ms: i64) -> Admission {
    Admission {
        call_id: id.to_owned(),
        now_ms,
        door: "api".into(),
        tool: Some("post".into()),
        upstream: "social".into(),
        method: "POST".into(),
        path: "/api/v1/statuses".into(),
        loop_key: id.to_owned(),
        input_summary: format!("{{\"status\":\"hello {id}\"}}"),
        input_sha256: "ab".repeat(32),
        limit: None,
        loop_breaker: LoopBreakerConfig { max_identical: 0, window: Duration::ZERO },
        undo_by_operator: false,
        spend: None,
    }
}

/// Admits and completes `n` calls starting at `from_ms`.
pub async fn write_calls(store: &Store, prefix: &str, n: usize, from_ms: i64) {
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        let now = from_ms + i64::try_from(i).unwrap();
        store.admit(admission(&id, now)).await.unwrap();
        store.complete(completion(&id, now + 5)).await.unwrap();
    }
}

/// A successful completion.
pub fn completion(id: &str, now_ms: i64) -> Completion {
    Completion {
        call_id: id.to_owned(),
        now_ms,
        status: Some(200),
        duration_ms: 5,
        attempts: 1,
        response_ref: None,
        undo: None,
        error: None,
        extra_json: Some("{\"tokens\":3}".into()),
        spend: None,
    }
}

/// Every journal row, newest first.
pub async fn all_rows(store: &Store) -> Vec<steward_core::store::CallRow> {
    store.last(LastQuery { limit: 1_000_000, ..LastQuery::default() }).await.unwrap()
}

/// One raw tar entry: name bytes as stored, type, link target, content.
pub struct Raw<'a> {
    pub name: &'a [u8],
    pub kind: tar::EntryType,
    pub link: &'a [u8],
    pub data: &'a [u8],
}

/// A regular file entry.
pub fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
    Raw { name, kind: tar::EntryType::Regular, link: b"", data }
}

/// A symlink or hard link entry.
pub fn link<'a>(name: &'a [u8], kind: tar::EntryType, target: &'a [u8]) -> Raw<'a> {
    Raw { name, kind, link: target, data: b"" }
}

/// A tar whose names are written byte for byte (the `tar` crate's own
/// setters refuse `..` and absolute paths, which is the point here),
/// without the end-of-archive blocks when `end` is false (so more can be
/// appended).
pub fn hostile_tar_parts(entries: &[Raw<'_>], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend_from_slice(raw_header(entry.name, entry.kind, entry.link, len(entry.data)).as_bytes());
        out.extend_from_slice(entry.data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    if end {
        out.extend_from_slice(&[0u8; 1024]);
    }
    out
}

/// [`hostile_tar_parts`] with the end-of-archive blocks.
pub fn hostile_tar(entries: &[Raw<'_>]) -> Vec<u8> {
    hostile_tar_parts(entries, true)
}

/// An old-style tar header with `name` and `link` as given.
pub fn raw_header(name: &[u8], kind: tar::EntryType, link: &[u8], size: u64) -> tar::Header {
    let mut header = tar::Header::new_old();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    header
}

/// A zstd frame holding `len` zero bytes as RLE blocks: 4 bytes per
/// 128 KiB, so 4.29 GB fit in 131 KB, the shape of the bomb in issue 23.
/// Frames concatenate, so it goes between ordinary frames of the tar.
pub fn zero_frame(len: u64) -> Vec<u8> {
    zero_frame_in_window(len, 17)
}

/// [`zero_frame`] whose header asks the decoder for a window of
/// 2^`window_log` bytes (10 to 41).
pub fn zero_frame_in_window(len: u64, window_log: u8) -> Vec<u8> {
    const BLOCK: u64 = 128 * 1024;
    // Magic, a frame header with no checksum and no content size, and the
    // window descriptor (exponent = window_log - 10, no mantissa).
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (window_log - 10) << 3];
    let mut left = len;
    if left == 0 {
        out.extend_from_slice(&[1, 0, 0]); // the last block, raw, empty
    }
    while left > 0 {
        let size = left.min(BLOCK);
        left -= size;
        let header = (size << 3) | (1 << 1) | u64::from(left == 0);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

/// `bytes.len()` as u64.
pub fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap()
}

/// SHA-256 hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// An id sorting after any real backup, with its `created_ms` (2099-12-31):
/// a planted backup is the newest, the one a restore test picks.
pub const PLANTED_ID: &str = "20991231T000000Z-beef";
pub const PLANTED_MS: i64 = 4_102_358_400_000;

/// The manifest of a crafted backup listing `files` (path, bytes) with
/// their true sizes and hashes; `config_entry`/`db_entry` as given.
pub fn manifest_json(config_entry: &str, db_entry: Option<&str>, files: &[(&str, &[u8])]) -> Vec<u8> {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, data)| {
            serde_json::json!({ "path": path, "size": len(data), "mode": 0o600, "sha256": sha256_hex(data) })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "format": 1, "id": PLANTED_ID, "created_ms": PLANTED_MS, "host": "h", "steward_version": "0",
        "agent": "backup-test", "config_entry": config_entry, "db_entry": db_entry, "files": files,
    }))
    .unwrap()
}

/// The honest part of a crafted backup: the deployment's own config (so
/// it loads) and its calendar.
pub fn honest_files(s: &Setup) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("steward.toml", std::fs::read(&s.config.source_path).unwrap()),
        ("calendar.json", std::fs::read(s.root().join("calendar.json")).unwrap()),
    ]
}

/// Stores `archive` (a zstd stream) as backup [`PLANTED_ID`] at the local
/// destination with a record that matches its bytes and declares `files`
/// files of `content_bytes` bytes in all.
pub fn plant(s: &Setup, archive: &[u8], files: u64, content_bytes: u64) {
    let dest = s.dest();
    std::fs::create_dir_all(&dest).unwrap();
    let name = format!("{PLANTED_ID}.tar.zst");
    std::fs::write(dest.join(&name), archive).unwrap();
    let record = serde_json::json!({
        "format": 1, "id": PLANTED_ID, "created_ms": PLANTED_MS, "host": "h", "steward_version": "0",
        "agent": "backup-test", "tag": "manual", "archive": name, "archive_bytes": archive.len(),
        "archive_sha256": sha256_hex(archive), "encrypted": false, "files": files, "content_bytes": content_bytes,
    });
    std::fs::write(dest.join(format!("{PLANTED_ID}.json")), record.to_string()).unwrap();
}

/// Plants a backup of `entries` followed by a manifest (config and calendar
/// from [`honest_files`] come first); the record declares what the manifest
/// lists. `manifest` gets the honest files and returns the manifest bytes.
pub fn plant_with(
    s: &Setup,
    entries: &[Raw<'_>],
    manifest: impl FnOnce(&[(&str, &[u8])]) -> Vec<u8>,
) -> Vec<(&'static str, Vec<u8>)> {
    let honest = honest_files(s);
    let listed: Vec<(&str, &[u8])> = honest.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    let manifest = manifest(&listed);
    let mut all: Vec<Raw<'_>> = honest.iter().map(|(p, d)| file(p.as_bytes(), d)).collect();
    all.extend(entries.iter().map(|e| Raw { name: e.name, kind: e.kind, link: e.link, data: e.data }));
    all.push(file(b"MANIFEST.json", &manifest));
    let archive = zstd::encode_all(hostile_tar(&all).as_slice(), 3).unwrap();
    let content: u64 =
        listed.iter().map(|(_, d)| len(d)).sum::<u64>() + entries.iter().map(|e| len(e.data)).sum::<u64>();
    plant(s, &archive, u64::try_from(listed.len() + entries.len()).unwrap(), content);
    honest
}

/// Every path under `root` (not following links) with its kind and size,
/// and the target of each link: what "nothing changed here" compares.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                "dir".to_owned()
            } else {
                format!("file {} bytes", meta.len())
            };
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), what);
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Bytes allocated on disk under `root` (not following links).
pub fn disk_bytes(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(root) else { return 0 };
    entries
        .flatten()
        .map(|entry| match std::fs::symlink_metadata(entry.path()) {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Samples [`disk_bytes`] of a tree every 10 ms on a thread of its own
/// until [`DiskPeak::stop`]: the most a restore ever had on disk there,
/// even when it deletes its files before returning.
pub struct DiskPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl DiskPeak {
    pub fn start(root: &Path) -> DiskPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (root, flag, max) = (root.to_path_buf(), Arc::clone(&stop), Arc::clone(&peak));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                max.fetch_max(disk_bytes(&root), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        DiskPeak { stop, peak, thread }
    }

    /// The peak in bytes.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        self.peak.load(Ordering::SeqCst)
    }
}

/// Peak resident memory (VmHWM) of process `pid` ("self" for this one), in bytes.
pub fn peak_rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}
