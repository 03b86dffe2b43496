//! `steward runbook` end to end: the page is written where `[runbook] output`
//! points and recorded, doctor's two Runbook items follow it (current, then
//! stale after a config edit, then gone), `--stdout` prints pasteable
//! commands, and no planted secret reaches the page or the store.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use common::Env;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
fn append(path: &std::path::Path, lines: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(lines.as_bytes()).unwrap();
}

/// `(status, detail)` of a doctor item.
#[expect(clippy::unwrap_used, clippy::panic, reason = "a test helper: a failed step is a failed test")]
fn doctor_item(env: &Env, item: &str) -> (String, String) {
    let out = env.steward(&["doctor", "--json"]);
    assert_ne!(out.status.code(), Some(2), "doctor could not run: {}", text(&out.stderr));
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let check = checks.iter().find(|c| c["item"] == item).unwrap_or_else(|| panic!("no {item:?} in {checks:?}"));
    (check["status"].as_str().unwrap().to_owned(), check["detail"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_runbook_is_written_recorded_and_checked_by_doctor() {
    let env = Env::new("").await;
    append(
        &env.config_path,
        "\n[runbook]\ncontacts = [\"Ana Ops <ana@example.com> (on-call, first)\", \"Platform team <+1 555 0100>\"]\n\
         output = \"./docs/RUNBOOK.md\"\nnotes = \"Social account owner: marketing (Bo).\"\n",
    );
    let config = env.config_path.display().to_string();
    let page_path = env.dir.path().join("docs/RUNBOOK.md");

    assert_eq!(doctor_item(&env, "contacts are listed"), ("pass".into(), "2 contact(s) in [runbook]".into()));
    assert_eq!(doctor_item(&env, "the runbook is rendered"), ("warn".into(), "not rendered yet".into()));

    // --stdout prints, writes nothing and records nothing.
    let out = env.steward(&["runbook", "--stdout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains(&format!("steward stop --config {config} --reason \"what went wrong\"\n")), "{printed}");
    assert!(printed.contains(&format!("steward last --config {config} --tool post\n")), "{printed}");
    assert!(printed.contains("1. Ana Ops <ana@example.com> (on-call, first)\n2. Platform team <+1 555 0100>\n"));
    assert!(!page_path.exists());
    assert_eq!(doctor_item(&env, "the runbook is rendered").1, "not rendered yet");

    let out = env.steward(&["runbook", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    let page = std::fs::read_to_string(&page_path).unwrap();
    let config_sha256 = hex(&Sha256::digest(std::fs::read(&env.config_path).unwrap()));
    assert_eq!(
        written,
        serde_json::json!({"path": page_path, "bytes": page.len(), "config_sha256": config_sha256}),
        "{written}"
    );
    assert_eq!(std::fs::metadata(&page_path).unwrap().permissions().mode() & 0o777, 0o644);
    assert!(page.starts_with("# Runbook: test-agent\n"), "{page}");
    assert!(page.contains(&format!("steward resume --config {config}\n")), "{page}");
    assert_eq!(
        doctor_item(&env, "the runbook is rendered"),
        ("pass".into(), "RUNBOOK.md was rendered from the current config".into())
    );

    // Any edit of the config, even a comment, makes the page stale.
    append(&env.config_path, "# tuned the limits\n");
    assert_eq!(
        doctor_item(&env, "the runbook is rendered"),
        ("warn".into(), "RUNBOOK.md was rendered before the config changed".into())
    );
    let out = env.steward(&["runbook"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("wrote the runbook to {}", page_path.display())));
    assert_eq!(doctor_item(&env, "the runbook is rendered").0, "pass");

    std::fs::remove_file(&page_path).unwrap();
    let (status, detail) = doctor_item(&env, "the runbook is rendered");
    assert_eq!(status, "warn");
    assert!(detail.starts_with("the rendered file is gone"), "{detail}");

    let out = env.steward(&["runbook"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn an_unwritable_output_fails_and_records_nothing() {
    let env = Env::new("").await;
    std::fs::write(env.dir.path().join("blocker"), "a file, not a directory").unwrap();
    append(
        &env.config_path,
        "\n[runbook]\ncontacts = [\"Ana <ana@example.com>\"]\noutput = \"./blocker/RUNBOOK.md\"\n",
    );
    let out = env.steward(&["runbook", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    // With --json, the error is a JSON object on stdout.
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot write the runbook to"), "{}", text(&out.stdout));
    assert_eq!(doctor_item(&env, "the runbook is rendered").1, "not rendered yet");

    // An invalid [runbook] is a config error with its fix.
    std::fs::write(
        &env.config_path,
        std::fs::read_to_string(&env.config_path).unwrap().replace("\"Ana <ana@example.com>\"", "\" \""),
    )
    .unwrap();
    let out = env.steward(&["runbook", "--stdout"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("a contact is empty"), "{}", text(&out.stderr));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
