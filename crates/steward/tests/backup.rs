//! `steward backup now|list|verify` and `steward restore` through the real
//! binary, the scheduled backup inside `steward run`, and the leak check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

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
    let dest = env.dir.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
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
    let id = "20261126T030000Z-beef";
    std::fs::write(dest.join(format!("{id}.tar.zst")), &archive).unwrap();
    let record = serde_json::json!({
        "format": 1, "id": id, "created_ms": 1_790_000_000_000_i64, "host": "h", "steward_version": "0",
        "agent": "a", "tag": "manual", "archive": format!("{id}.tar.zst"), "archive_bytes": archive.len(),
        "archive_sha256": sha256_hex(&archive), "encrypted": false, "files": 1, "content_bytes": 5,
    });
    std::fs::write(dest.join(format!("{id}.json")), record.to_string()).unwrap();

    let target = env.dir.path().join("a/b/target");
    let out = env.steward(&["restore", id, "--to", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("refusing archive entry") && err.contains("escaped.txt"), "{err}");
    assert!(!env.dir.path().join("a/escaped.txt").exists());
    assert!(!env.dir.path().join("a/b/escaped.txt").exists());
    assert!(find(env.dir.path(), "escaped.txt").is_none(), "the hostile entry was written");
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
