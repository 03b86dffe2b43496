//! Audit log tests: line format, redaction, rotation under concurrency,
//! retention, failure and recovery.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::format_ts;
use crate::config::AfterRetention;

const DAY: Duration = Duration::from_secs(86_400);
const CANARY: &str = "canary-value-123";

fn config(dir: &Path, max_file_size: u64) -> LoggingConfig {
    LoggingConfig {
        dir: dir.to_path_buf(),
        max_file_size,
        retention: Duration::from_secs(30 * 86_400),
        after_retention: AfterRetention::Archive,
        max_total_size: 1 << 30,
    }
}

fn redactor() -> SharedRedactor {
    crate::redaction::shared(redact::RedactorBuilder::new().secret("x", CANARY).build())
}

fn record(call_id: &str) -> AuditRecord {
    AuditRecord {
        ts: format_ts(SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_665_600_123)),
        call_id: call_id.to_owned(),
        agent: "calendar-bot".into(),
        door: "api".into(),
        tool: Some("post_status".into()),
        upstream: "mastodon".into(),
        method: "POST".into(),
        path: "/api/v1/statuses".into(),
        input_summary: "{\"status\":\"hello\"}".into(),
        input_sha256: "ab".repeat(32),
        decision: "allowed".into(),
        phase: super::Phase::Completed,
        reason: None,
        status: Some(200),
        duration_ms: 42,
        attempts: 1,
        extra: serde_json::Map::new(),
    }
}

/// Every line of every audit file in `dir` (rotated files first, active
/// last), checking that each is complete JSON.
fn all_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("audit-"))
        .collect();
    files.sort();
    files.push(dir.join(ACTIVE_FILE));
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{} ends in a partial line", file.display());
        for line in text.lines() {
            out.push(
                serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line in {}: {e}: {line}", file.display())),
            );
        }
    }
    out
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn one_complete_json_line_per_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs").join("audit");
    let log = AuditLog::open(&config(&dir, 1 << 20), redactor()).unwrap();
    assert_eq!(log.active_path(), dir.join("audit.jsonl"));
    let mut rec = record("c1");
    rec.extra.insert("model".into(), "gpt-x".into());
    rec.extra.insert("cost_usd".into(), serde_json::json!(0.0021));
    log.write(&rec).await.unwrap();
    let mut refused = record("c2");
    refused.tool = None;
    refused.decision = "unmatched".into();
    refused.reason = Some("no tool matches POST /x".into());
    refused.status = Some(403);
    log.write(&refused).await.unwrap();
    assert!(log.is_healthy());

    let text = std::fs::read_to_string(log.active_path()).unwrap();
    assert_eq!(text.lines().count(), 2);
    let lines = all_lines(&dir);
    let first = lines[0].as_object().unwrap();
    for key in [
        "ts",
        "call_id",
        "agent",
        "door",
        "tool",
        "upstream",
        "method",
        "path",
        "input_summary",
        "input_sha256",
        "decision",
        "phase",
        "reason",
        "status",
        "duration_ms",
        "attempts",
    ] {
        assert!(first.contains_key(key), "missing {key}");
    }
    assert_eq!(first["phase"], "completed");
    assert_eq!(first["ts"], "2026-11-26T04:00:00.123Z");
    assert_eq!(first["call_id"], "c1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["model"], "gpt-x");
    assert_eq!(first["cost_usd"], 0.0021);
    assert_eq!(lines[1]["tool"], serde_json::Value::Null);
    assert_eq!(lines[1]["decision"], "unmatched");

    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&log.active_path()), 0o600);
    log.shutdown().await;
}

#[test]
fn timestamps_are_rfc3339_utc_milliseconds() {
    assert_eq!(format_ts(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        format_ts(SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_665_600_123)),
        "2026-11-26T04:00:00.123Z"
    );
    assert_eq!(format_ts(SystemTime::UNIX_EPOCH + Duration::from_micros(1_999)), "1970-01-01T00:00:00.001Z");
}

#[tokio::test]
async fn the_redactor_runs_on_the_whole_line() {
    let tmp = tempfile::tempdir().unwrap();
    let redactor = redactor();
    let log = AuditLog::open(&config(tmp.path(), 1 << 20), Arc::clone(&redactor)).unwrap();
    let mut rec = record("c1");
    rec.input_summary = format!("{{\"token\":\"{CANARY}\"}}");
    rec.reason = Some(format!("upstream said {CANARY}"));
    rec.extra.insert("note".into(), CANARY.into());
    log.write(&rec).await.unwrap();
    // A reloaded redactor (new credential) applies to the next write.
    redactor
        .store(Arc::new(redact::RedactorBuilder::new().secret("x", CANARY).secret("y", "second-secret-456").build()));
    let mut rec = record("c2");
    rec.input_summary = "second-secret-456".into();
    log.write(&rec).await.unwrap();
    log.shutdown().await;

    let text = std::fs::read_to_string(tmp.path().join(ACTIVE_FILE)).unwrap();
    assert!(!text.contains(CANARY), "{text}");
    assert!(!text.contains("second-secret-456"), "{text}");
    assert_eq!(text.matches("[REDACTED:credential]").count(), 4, "{text}");
    let lines = all_lines(tmp.path());
    assert_eq!(lines[0]["reason"], "upstream said [REDACTED:credential]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_load_keeps_every_record_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 4096;
    let log = Arc::new(AuditLog::open(&config(tmp.path(), max), redactor()).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for i in 0..1250 {
                    let mut rec = record(&format!("t{t}-{i:05}"));
                    // Varying lengths, so rotation points fall everywhere.
                    rec.input_summary = "x".repeat((i * 7 + t) % 300);
                    log.write(&rec).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(log).unwrap().shutdown().await;

    let mut rotated = 0;
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= max, "{name} has {size} bytes");
        assert_eq!(mode_of(&path), 0o600, "{name}");
        if name != ACTIVE_FILE {
            // audit-YYYYMMDDTHHMMSS.mmmZ-NNNNNN.jsonl
            assert!(name.starts_with("audit-") && name.ends_with(".jsonl") && name.len() == 39, "{name}");
            assert_eq!(&name[14..15], "T");
            assert_eq!(&name[25..27], "Z-");
            rotated += 1;
        }
    }
    assert!(rotated > 100, "only {rotated} rotations");

    let mut seen: HashMap<String, u32> = HashMap::new();
    for line in all_lines(tmp.path()) {
        *seen.entry(line["call_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(seen.len(), 10_000);
    assert!(seen.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_beyond_the_queue_waits_instead_of_dropping() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(&config(tmp.path(), 1 << 30), redactor()).unwrap());
    let total = QUEUE_CAPACITY + 2000;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..total {
        let log = Arc::clone(&log);
        set.spawn(async move { log.write(&record(&format!("b{i}"))).await });
    }
    while let Some(result) = set.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(all_lines(tmp.path()).len(), total);
}

#[tokio::test]
async fn a_record_larger_than_the_limit_gets_a_file_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&config(tmp.path(), 1024), redactor()).unwrap();
    log.write(&record("small")).await.unwrap();
    let mut big = record("big");
    big.input_summary = "y".repeat(4000);
    log.write(&big).await.unwrap();
    log.write(&record("after")).await.unwrap();
    log.shutdown().await;
    let ids: Vec<_> = all_lines(tmp.path()).iter().map(|l| l["call_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 3);
    let active: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(tmp.path().join(ACTIVE_FILE)).unwrap().trim()).unwrap();
    assert_eq!(active["call_id"], "after");
}

#[tokio::test]
async fn a_partial_line_left_by_a_crash_is_trimmed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&record("before-crash")).unwrap();
    std::fs::write(tmp.path().join(ACTIVE_FILE), format!("{good}\n{{\"ts\":\"2026-11-26T04:0")).unwrap();
    let log = AuditLog::open(&config(tmp.path(), 1 << 20), redactor()).unwrap();
    log.write(&record("after-restart")).await.unwrap();
    log.shutdown().await;
    let ids: Vec<_> = all_lines(tmp.path()).iter().map(|l| l["call_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["before-crash", "after-restart"]);
}

#[tokio::test]
async fn a_moved_active_file_is_replaced_not_written_blind() {
    let tmp = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&config(tmp.path(), 1 << 20), redactor()).unwrap();
    log.write(&record("one")).await.unwrap();
    // An outside logrotate moves the file away.
    std::fs::rename(log.active_path(), tmp.path().join("moved.jsonl")).unwrap();
    log.write(&record("two")).await.unwrap();
    log.shutdown().await;
    let active = std::fs::read_to_string(tmp.path().join(ACTIVE_FILE)).unwrap();
    assert!(active.contains("\"two\"") && !active.contains("\"one\""), "{active}");
    assert_eq!(mode_of(&tmp.path().join(ACTIVE_FILE)), 0o600);
}

#[tokio::test]
async fn an_unusable_directory_fails_writes_then_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let log = AuditLog::open(&config(&dir, 1 << 20), redactor()).unwrap();
    log.write(&record("before")).await.unwrap();

    // The directory disappears and its path cannot hold files any more (a
    // plain file: this fails even for root, unlike chmod).
    let moved = tmp.path().join("audit-moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let err = log.write(&record("during")).await.unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err}");
    assert!(!log.is_healthy());
    // Still failing, still not panicking.
    assert!(log.write(&record("during-2")).await.is_err());
    assert!(!log.is_healthy());

    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&moved, &dir).unwrap();
    log.write(&record("after")).await.unwrap();
    assert!(log.is_healthy());
    log.shutdown().await;
    let ids: Vec<_> = all_lines(&dir).iter().map(|l| l["call_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["before", "after"]);
}

/// Rotation needs to create a file in the log's directory: while the
/// directory is read-only (write bits cleared, or `chattr +i` as root, who
/// ignores write bits), every write fails and the log reports unhealthy;
/// once writable again, the next write rotates and succeeds.
#[tokio::test]
async fn a_read_only_directory_fails_rotation_then_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    // Every record needs a rotation, and a rotation needs a writable directory.
    let log = AuditLog::open(&config(&dir, 1), redactor()).unwrap();
    log.write(&record("before")).await.unwrap();
    let mut read_only = match unwritable::Unwritable::read_only(&[&dir]) {
        Ok(guard) => guard,
        Err(unavailable) => return unavailable.not_run("audit: a_read_only_directory_fails_rotation_then_recovers"),
    };
    let failed = log.write(&record("during")).await;
    let healthy_while_read_only = log.is_healthy();
    read_only.clear();
    assert!(failed.is_err());
    assert!(!healthy_while_read_only);
    log.write(&record("after")).await.unwrap();
    assert!(log.is_healthy());
    log.shutdown().await;
    assert_eq!(all_lines(&dir).len(), 2);
}

/// Writes a rotated-looking file with `content` and the given age as of `now`.
fn rotated_file(dir: &Path, name: &str, content: &[u8], now: SystemTime, age: Duration) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_modified(now - age).unwrap();
    path
}

fn lines_of(n: usize, tag: &str) -> Vec<u8> {
    (0..n).map(|i| format!("{{\"call_id\":\"{tag}-{i}\"}}\n")).collect::<String>().into_bytes()
}

#[tokio::test]
async fn retention_archives_old_files_losslessly() {
    let tmp = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&config(tmp.path(), 1 << 20), redactor()).unwrap();
    log.write(&record("active")).await.unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_665_600);
    let old_bytes = lines_of(500, "old");
    let old = rotated_file(tmp.path(), "audit-20261001T000000.000Z-000001.jsonl", &old_bytes, now, 31 * DAY);
    let recent =
        rotated_file(tmp.path(), "audit-20261120T000000.000Z-000002.jsonl", &lines_of(5, "new"), now, 29 * DAY);
    let report = log.run_retention(now, 0).unwrap();
    let archive = tmp.path().join("archive/audit-20261001T000000.000Z-000001.jsonl.zst");
    assert_eq!(report.archived, vec![archive.clone()]);
    assert!(report.deleted_expired.is_empty() && report.deleted_for_size.is_empty());
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(!old.exists());
    assert!(recent.exists());
    let restored = zstd::decode_all(std::fs::File::open(&archive).unwrap()).unwrap();
    assert_eq!(restored, old_bytes);
    assert!(std::fs::metadata(&archive).unwrap().len() < u64::try_from(old_bytes.len()).unwrap());
    assert_eq!(std::fs::metadata(&archive).unwrap().modified().unwrap(), now - 31 * DAY);
    assert_eq!(mode_of(&archive), 0o600);
    assert_eq!(mode_of(&tmp.path().join("archive")), 0o700);
    let expected_total: u64 =
        [log.active_path(), recent, archive].iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(report.total_bytes, expected_total);

    // Nothing left to do: a second run changes nothing, but removes the
    // temporary a crashed run left behind.
    let junk = tmp.path().join("archive/.audit-x.jsonl.zst.tmp");
    std::fs::write(&junk, b"junk").unwrap();
    let again = log.run_retention(now, 0).unwrap();
    assert!(again.archived.is_empty() && again.deleted_for_size.is_empty());
    assert_eq!(again.total_bytes, expected_total);
    assert!(!junk.exists());
    log.shutdown().await;
}

#[tokio::test]
async fn retention_deletes_old_files_in_delete_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LoggingConfig { after_retention: AfterRetention::Delete, ..config(tmp.path(), 1 << 20) };
    let log = AuditLog::open(&cfg, redactor()).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_665_600);
    let old = rotated_file(tmp.path(), "audit-20261001T000000.000Z-000001.jsonl", &lines_of(3, "o"), now, 40 * DAY);
    let recent = rotated_file(tmp.path(), "audit-20261120T000000.000Z-000002.jsonl", &lines_of(3, "n"), now, DAY);
    let report = log.run_retention(now, 0).unwrap();
    assert_eq!(report.deleted_expired, vec![old.clone()]);
    assert!(report.archived.is_empty());
    assert!(!old.exists() && recent.exists() && log.active_path().exists());
    assert!(!tmp.path().join("archive").exists());
    log.shutdown().await;
}

#[tokio::test]
async fn retention_enforces_the_total_size_oldest_archives_first() {
    let tmp = tempfile::tempdir().unwrap();
    let archive_dir = tmp.path().join("archive");
    std::fs::create_dir(&archive_dir).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_665_600);
    let kb = |n: usize| vec![b'a'; n * 1024];
    let a1 = rotated_file(&archive_dir, "audit-20260901T000000.000Z-000001.jsonl.zst", &kb(10), now, 3 * DAY);
    let a2 = rotated_file(&archive_dir, "audit-20260902T000000.000Z-000002.jsonl.zst", &kb(10), now, 2 * DAY);
    let r1 = rotated_file(tmp.path(), "audit-20261101T000000.000Z-000003.jsonl", &kb(10), now, DAY);
    let r2 = rotated_file(tmp.path(), "audit-20261102T000000.000Z-000004.jsonl", &kb(10), now, Duration::from_secs(60));
    let active = tmp.path().join(ACTIVE_FILE);
    // Whole lines: a file ending in a partial line would be trimmed at open.
    std::fs::write(&active, [vec![b'a'; 10 * 1024 - 1], vec![b'\n']].concat()).unwrap();
    // 50 KB on disk, 25 KB allowed: both archives and the older rotated file go.
    let cfg = LoggingConfig { max_total_size: 25 * 1024, ..config(tmp.path(), 1 << 20) };
    let log = AuditLog::open(&cfg, redactor()).unwrap();
    let report = log.run_retention(now, 0).unwrap();
    assert_eq!(report.deleted_for_size, vec![a1.clone(), a2.clone(), r1.clone()]);
    assert_eq!(report.total_bytes, 20 * 1024);
    assert!(!a1.exists() && !a2.exists() && !r1.exists() && r2.exists() && active.exists());

    // The active file is never deleted, even alone over the limit.
    let cfg = LoggingConfig { max_total_size: 1, ..config(tmp.path(), 1 << 20) };
    let report = retention::run(&cfg, now, 0).unwrap();
    assert_eq!(report.deleted_for_size, vec![r2]);
    assert!(active.exists());
    assert_eq!(report.total_bytes, 10 * 1024);
    log.shutdown().await;
}

#[tokio::test]
async fn the_store_counts_against_the_total_size_and_the_logs_give_way() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_665_600);
    let kb = |n: usize| vec![b'a'; n * 1024];
    let r1 = rotated_file(tmp.path(), "audit-20261101T000000.000Z-000001.jsonl", &kb(10), now, 2 * DAY);
    let r2 = rotated_file(tmp.path(), "audit-20261102T000000.000Z-000002.jsonl", &kb(10), now, DAY);
    let cfg = LoggingConfig { max_total_size: 35 * 1024, ..config(tmp.path(), 1 << 20) };
    let log = AuditLog::open(&cfg, redactor()).unwrap();
    // 20 KB of logs fit in 35 KB alone; next to a 20 KB store only 15 KB do.
    assert!(log.run_retention(now, 0).unwrap().deleted_for_size.is_empty());
    let report = log.run_retention(now, 20 * 1024).unwrap();
    assert_eq!(report.deleted_for_size, vec![r1.clone()]);
    assert_eq!(report.total_bytes, 10 * 1024, "the store's bytes are not the log directory's");
    assert!(!r1.exists() && r2.exists());
    // A store over the whole budget empties the rotated files, never the active file.
    let report = log.run_retention(now, 1 << 20).unwrap();
    assert_eq!(report.deleted_for_size, vec![r2]);
    assert!(log.active_path().exists());
    log.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(&config(tmp.path(), 1 << 20), redactor()).unwrap());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let log = Arc::clone(&log);
        set.spawn(async move { log.write(&record(&format!("s{i}"))).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    Arc::try_unwrap(log).unwrap().shutdown().await;
    assert_eq!(all_lines(tmp.path()).len(), 100);
    // Reopening appends after what is there.
    let log = AuditLog::open(&config(tmp.path(), 1 << 20), redactor()).unwrap();
    log.write(&record("next")).await.unwrap();
    log.shutdown().await;
    assert_eq!(all_lines(tmp.path()).len(), 101);
}

#[test]
fn audit_log_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<AuditLog>();
}

#[tokio::test]
async fn the_agent_log_family_rotates_and_shares_retention_and_the_total_size() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = LineLog::open(tmp.path(), AGENT, 4096).unwrap();
    for i in 0..200 {
        agent.write_line(format!("2026-11-26T04:00:00.000Z stdout line {i:04} {}", "x".repeat(40))).await.unwrap();
    }
    assert_eq!(agent.active_path(), tmp.path().join("agent.log"));
    agent.shutdown().await;
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| AGENT.is_rotated(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    rotated.sort();
    assert!(rotated.len() >= 2, "{rotated:?}");
    let mut seen = Vec::new();
    for file in rotated.iter().chain(std::iter::once(&tmp.path().join("agent.log"))) {
        assert!(std::fs::metadata(file).unwrap().len() <= 4096);
        assert_eq!(mode_of(file), 0o600);
        seen.extend(std::fs::read_to_string(file).unwrap().lines().map(str::to_owned));
    }
    assert_eq!(seen.len(), 200, "every line exactly once, in order");
    assert!(seen.iter().enumerate().all(|(i, l)| l.contains(&format!("line {i:04} "))));

    // Expired agent files are archived like audit files; the total counts both families.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_665_600);
    let old = rotated_file(tmp.path(), "agent-20261001T000000.000Z-000001.log", &lines_of(50, "a"), now, 31 * DAY);
    let log = AuditLog::open(&config(tmp.path(), 1 << 20), redactor()).unwrap();
    log.write(&record("one")).await.unwrap();
    let report = log.run_retention(now, 0).unwrap();
    assert_eq!(report.archived, vec![tmp.path().join("archive/agent-20261001T000000.000Z-000001.log.zst")]);
    assert!(!old.exists());
    let on_disk: u64 = walk_sizes(tmp.path());
    assert_eq!(report.total_bytes, on_disk);
    log.shutdown().await;
}

/// Bytes of every regular file below `dir`.
fn walk_sizes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk_sizes(&p) } else { std::fs::metadata(&p).unwrap().len() })
        .sum()
}

/// A line written while nothing is queued is written by its caller; while
/// the writer is busy it joins the queue instead, and the thread writes it
/// once the writer is free. Either way it is in the file when `write_line`
/// returns, and an inline write into a clean file still gets its timed sync.
#[tokio::test]
#[expect(clippy::await_holding_lock, reason = "the test holds the writer as its thread would, across the wait")]
async fn a_lone_line_is_written_inline_and_a_busy_writer_queues_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = LineLog::open(tmp.path(), AUDIT, 1 << 20).unwrap();
    let lines_on_disk = || std::fs::read_to_string(tmp.path().join("audit.jsonl")).unwrap().lines().count();

    // Inline: written before any await.
    assert!(matches!(log.write_inline("one".into()), Ok(Ok(()))));
    assert_eq!(lines_on_disk(), 1);
    // The writer thread syncs it within the interval, though it was never woken by a line.
    let synced = std::time::Instant::now();
    while writer::lock(&log.writer).is_dirty() {
        assert!(synced.elapsed() < SYNC_INTERVAL * 5, "an inline write was never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The writer is busy (held here as the thread would hold it): the line is given back...
    let shared = Arc::clone(&log.writer);
    let held = writer::lock(&shared);
    assert!(matches!(log.write_inline("two".into()), Err(line) if line == "two"));
    // ...and `write_line` queues it; the thread writes it once the writer is free.
    let queued = tokio::spawn({
        let log = Arc::new(log);
        let writing = Arc::clone(&log);
        async move {
            writing.write_line("two".into()).await.unwrap();
            log
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!queued.is_finished(), "the queued line waits for the writer");
    drop(held);
    let log = Arc::into_inner(queued.await.unwrap()).unwrap();
    assert_eq!(lines_on_disk(), 2);
    log.shutdown().await;
    assert_eq!(std::fs::read_to_string(tmp.path().join("audit.jsonl")).unwrap(), "one\ntwo\n");
}

/// The agent's log, budgeted, never writes on the caller's thread: pruning
/// its directory may list and delete files.
#[test]
fn a_budgeted_log_always_writes_through_its_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let log = LineLog::open_with_budget(tmp.path(), AGENT, 4096, Some(1 << 20)).unwrap();
    assert!(matches!(log.write_inline("out".into()), Err(line) if line == "out"));
}

/// The warm-up redacts lines shaped like the log's own and writes none:
/// each is a record as `write` serializes it (every key of a record), and
/// the redactor leaves it whole (steward's own ids, digests and times are
/// not mistaken for secrets, so the states it warms are those real lines
/// reach).
#[tokio::test]
async fn the_warm_up_redacts_real_shaped_lines_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&config(dir.path(), 1 << 20), redactor()).unwrap();
    log.warm_up();
    assert_eq!(std::fs::metadata(log.active_path()).unwrap().len(), 0, "the warm-up wrote to the log");

    let keys = |line: &str| -> Vec<String> {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    };
    let real = keys(&serde_json::to_string(&record("c1")).unwrap());
    let redactor = redactor().load_full();
    let now = SystemTime::now();
    for i in 0..200 {
        let line = warm_up_line(i, now + Duration::from_millis(u64::from(i) * 7919));
        let got = keys(&line);
        assert!(real.iter().all(|k| got.contains(k)), "line {i} is not shaped like a record: {line}");
        assert_eq!(redactor.redact(&line), line, "line {i} was redacted");
    }
}
