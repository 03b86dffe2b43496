//! `steward backup now|list|verify` and `steward restore` through the real
//! binary, the scheduled backup inside `steward run`, and the leak check.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Env;
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An environment whose `[backup]` section backs up its whole directory
/// (the credential file, agent token and live database must still stay out).
async fn env_with_backup(extra: &str) -> Env {
    let env = Env::new("").await;
    std::fs::write(env.dir.path().join("calendar.json"), "{\"events\":[\"dentist\"]}").unwrap();
    let mut config = std::fs::OpenOptions::new().append(true).open(&env.config_path).unwrap();
    writeln!(
        config,
        "\n[backup]\npaths = [\"./\"]\ndestination = \"file://{}/dest\"\n{extra}",
        env.dir.path().display()
    )
    .unwrap();
    env
}

#[expect(clippy::panic, reason = "a test helper fails its test by panicking, saying what went wrong")]
fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "failed: {}\n{}", text(&out.stdout), text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

#[tokio::test]
async fn backup_list_verify_restore_and_config_check() {
    let env = env_with_backup("").await;
    // Put calls in the store the way the CLI does: a kill switch change.
    let out = env.steward(&["stop", "--reason", "before backup"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = env.steward(&["backup", "now"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("written to file://"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("not a different location"),
        "same-device warning missing: {}",
        text(&out.stderr)
    );

    let now = json(&env.steward(&["backup", "now", "--json"]));
    let id = now["id"].as_str().unwrap().to_owned();
    assert!(now["files"].as_u64().unwrap() >= 3);

    let list = json(&env.steward(&["backup", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["id"], id.as_str());
    assert_eq!(list[1]["verified_ms"], Value::Null);
    let table = env.steward(&["backup", "list"]);
    assert!(text(&table.stdout).contains(&id));

    let verified = json(&env.steward(&["backup", "verify", &id, "--json"]));
    assert_eq!(verified["ok"], true);
    let list = json(&env.steward(&["backup", "list", "--json"]));
    assert!(list[1]["verified_ms"].is_i64(), "verify did not mark the backup: {list}");

    let target = env.dir.path().join("restored");
    let out = env.steward(&["restore", &id, "--to", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("restored backup"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(target.join("calendar.json")).unwrap(), "{\"events\":[\"dentist\"]}");
    assert!(!target.join("social.token").exists(), "the credential file was backed up");
    assert!(!target.join("state/agent.token").exists(), "the agent token was backed up");
    assert!(!target.join("state/admin.token").exists(), "the admin token was backed up");

    // The restored config passes `steward config check --offline` (its
    // credential files are not in the backup), and its store has the kill switch.
    let restored_config = target.join("steward.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["config", "check", "--offline", "--config", restored_config.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["status", "--json", "--config", restored_config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(json(&out)["kill_switch"]["reason"], "before backup");

    // A flipped byte: verify fails (exit 1) and names the damaged file.
    let record = &list[1];
    let archive = env.dir.path().join("dest").join(record["archive"].as_str().unwrap());
    let original = std::fs::read(&archive).unwrap();
    let mut bytes = original.clone();
    let at = bytes.len() / 3;
    bytes[at] ^= 0xff;
    std::fs::write(&archive, &bytes).unwrap();
    let out = env.steward(&["backup", "verify", &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("verify failed") && err.contains(&id), "{err}");
    std::fs::write(&archive, &original).unwrap();

    // Unknown ids and restoring over a non-empty directory are refused.
    let out = env.steward(&["restore", "20990101T000000Z-0000", "--to", "/tmp/never-used"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no backup"), "{}", text(&out.stderr));
    let out = env.steward(&["restore", list[0]["id"].as_str().unwrap(), "--to", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not empty"), "{}", text(&out.stderr));

    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn a_hostile_archive_is_refused_by_restore() {
    let env = env_with_backup("").await;
    // A zstd tar with a traversal entry, and a record that matches it exactly.
    let mut header = tar::Header::new_old();
    let name = b"../../escaped.txt";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(5);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"pwned"[..]).unwrap();
    let archive = zstd::encode_all(builder.into_inner().unwrap().as_slice(), 3).unwrap();
    plant(&env, &archive, 1, 5);

    let target = env.dir.path().join("a/b/target");
    let out = env.steward(&["restore", PLANTED, "--to", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("refusing archive entry") && err.contains("escaped.txt"), "{err}");
    assert!(!env.dir.path().join("a/escaped.txt").exists());
    assert!(!env.dir.path().join("a/b/escaped.txt").exists());
    assert!(find(env.dir.path(), "escaped.txt").is_none(), "the hostile entry was written");
    // The directories created for the target went with the refusal.
    assert!(!env.dir.path().join("a").exists(), "{err}");
    assert!(err.contains("removed"), "{err}");
}

/// Id of a planted backup: it sorts after (and its `created_ms` is later
/// than) any real one, so it is the newest, the one a restore test picks.
const PLANTED: &str = "20991231T000000Z-beef";

/// Stores `archive` (a zstd tar) as backup [`PLANTED`] at the environment's
/// destination, with a record matching its bytes and declaring `files`
/// files of `content_bytes` bytes.
fn plant(env: &Env, archive: &[u8], files: u64, content_bytes: u64) {
    let dest = env.dir.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join(format!("{PLANTED}.tar.zst")), archive).unwrap();
    let record = serde_json::json!({
        "format": 1, "id": PLANTED, "created_ms": 4_102_358_400_000_i64, "host": "h", "steward_version": "0",
        "agent": "a", "tag": "manual", "archive": format!("{PLANTED}.tar.zst"), "archive_bytes": archive.len(),
        "archive_sha256": sha256_hex(archive), "encrypted": false, "files": files, "content_bytes": content_bytes,
    });
    std::fs::write(dest.join(format!("{PLANTED}.json")), record.to_string()).unwrap();
}

/// Plants a backup holding the environment's own config, whose manifest
/// names `config_entry` and `db_entry`, paths outside the archive.
fn plant_with_references(env: &Env, config_entry: &str, db_entry: &str) {
    let config = std::fs::read(&env.config_path).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "format": 1, "id": PLANTED, "created_ms": 4_102_358_400_000_i64, "host": "h", "steward_version": "0",
        "agent": "a", "config_entry": config_entry, "db_entry": db_entry,
        "files": [{ "path": "steward.toml", "size": config.len(), "mode": 0o600, "sha256": sha256_hex(&config) }],
    }))
    .unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [("steward.toml", &config), ("MANIFEST.json", &manifest)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(data.len()).unwrap());
        header.set_mode(0o600);
        builder.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    let archive = zstd::encode_all(builder.into_inner().unwrap().as_slice(), 3).unwrap();
    plant(env, &archive, 1, u64::try_from(config.len()).unwrap());
}

/// Runs `steward args` to the end, sampling its resident memory (VmHWM)
/// every 5 ms; returns the output and the highest peak seen.
fn run_measured(env: &Env, args: &[&str]) -> (std::process::Output, u64) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .arg("--config")
        .arg(&env.config_path)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&done);
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            peak = peak.max(peak_rss(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    (out, sampler.join().unwrap())
}

/// Peak resident memory (VmHWM) of process `pid` in bytes, while it runs.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// What a refused restore or restore test may take: the attacks of issue 23
/// reached 2 GB (CLI) and 4.24 GB (daemon).
const MAX_RSS: u64 = 200 * 1024 * 1024;

#[tokio::test]
async fn verify_and_restore_refuse_a_manifest_naming_dev_zero_or_the_live_store() {
    let env = env_with_backup("").await;
    let out = env.steward(&["stop", "--reason", "make the live store exist"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let restores = env.dir.path().join("restores");
    std::fs::create_dir(&restores).unwrap();
    // From the verify scratch dir (`state/.restore-verify-ID/`), the live store is `../steward.db`.
    for (config_entry, db_entry) in [("/dev/zero", "/dev/zero"), ("steward.toml", "../steward.db")] {
        plant_with_references(&env, config_entry, db_entry);
        let field = if config_entry == "/dev/zero" { "config_entry" } else { "db_entry" };
        let (out, rss) = run_measured(&env, &["backup", "verify", PLANTED]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(field) && err.contains("not a file of this archive"), "{err}");
        assert!(rss < MAX_RSS, "verify peaked at {rss} bytes");
        let target = restores.join("target");
        let (out, rss) = run_measured(&env, &["restore", PLANTED, "--to", target.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(field) && err.contains("removed"), "{err}");
        assert!(rss < MAX_RSS, "restore peaked at {rss} bytes");
        assert_eq!(std::fs::read_dir(&restores).unwrap().count(), 0, "a refused restore left files: {err}");
        eprintln!("{config_entry} / {db_entry}: refused, peak RSS {rss} bytes");
    }
    // Nothing was written to the live store's files by the refused runs.
    let out = env.steward(&["status", "--json"]);
    assert_eq!(json(&out)["kill_switch"]["reason"], "make the live store exist");
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn the_daemons_scheduled_restore_test_refuses_a_manifest_naming_dev_zero() {
    // Issue 23: the daemon's restore test of such a backup peaked at 4.24 GB.
    let mut env = env_with_backup("schedule = \"0 3 1 1 *\"\nrestore_test = \"0 4 1 1 *\"").await;
    plant_with_references(&env, "/dev/zero", "/dev/zero");
    env.start();
    let pid = env.daemon_pid().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = 0;
    while !env.daemon_log().contains("restore test failed") {
        peak = peak.max(peak_rss(pid).unwrap_or(0));
        assert!(Instant::now() < deadline, "no restore test ran: {}", env.daemon_log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peak = peak.max(peak_rss(pid).unwrap_or(0));
    env.stop(false);
    eprintln!("steward run: the scheduled restore test was refused; daemon peak RSS {peak} bytes");
    let log = env.daemon_log();
    assert!(log.contains("config_entry") && log.contains("not a file of this archive"), "{log}");
    assert!(peak < MAX_RSS, "the daemon peaked at {peak} bytes");
    let leftovers: Vec<_> = std::fs::read_dir(env.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    env.assert_no_secret_leaked();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    digest.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn find(root: &Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(root).ok()? {
        let path = entry.ok()?.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir()
            && let Some(found) = find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

#[tokio::test]
async fn steward_run_catches_up_a_missed_scheduled_backup_at_start() {
    // Never backed up: the first start counts as a missed run.
    let mut env = env_with_backup("schedule = \"0 3 1 1 *\"\nrestore_test = \"never\"").await;
    env.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let out = env.steward(&["backup", "list", "--json"]);
        let list = json(&out);
        if !list.as_array().unwrap().is_empty() {
            break list;
        }
        assert!(Instant::now() < deadline, "no scheduled backup ran: {}", env.daemon_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(records[0]["tag"], "scheduled");
    env.stop(false);
    assert!(env.daemon_log().contains("scheduled backup done"), "{}", env.daemon_log());
    // A restart the same day does not back up again: the run is persisted.
    env.start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.stop(false);
    let list = json(&env.steward(&["backup", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    env.assert_no_secret_leaked();
}
