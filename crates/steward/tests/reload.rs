//! `steward reload` (and SIGHUP) against a real daemon: a new limit is
//! enforced without restarting the agent, an invalid config is refused and
//! the old one keeps running, a listener change needs a restart, each
//! reload is audited with both hashes, and `status` shows the running hash
//! and whether the file on disk differs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

mod common;

use std::time::{Duration, Instant};

use common::{DEFAULT_TOOLS, Env};
use reqwest::Method;
use serde_json::{Value, json};

/// How long a test waits for the daemon or the agent to get somewhere.
const WAIT: Duration = Duration::from_secs(20);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A post with a distinct body each time (identical ones would trip the loop breaker).
async fn post(env: &Env, n: u32) -> u16 {
    let response = env
        .req(Method::POST, "/api/social/api/v1/statuses")
        .json(&json!({ "status": format!("post {n}") }))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

fn status_of(env: &Env) -> Value {
    let out = env.steward(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_status(env: &Env, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = status_of(env);
        if ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "status never matched; last:\n{status:#}\n{}", env.daemon_log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rewrites the config file: `from` becomes `to` (which must be there).
fn edit(env: &Env, from: &str, to: &str) -> String {
    let before = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(before.contains(from), "{from:?} not in the config");
    let after = before.replacen(from, to, 1);
    std::fs::write(&env.config_path, &after).unwrap();
    after
}

/// The `door = "config"` audit lines, oldest first.
fn reload_lines(env: &Env) -> Vec<Value> {
    env.all_audit_lines().into_iter().filter(|l| l["door"] == "config").collect()
}

/// Waits for the daemon's answer to a SIGHUP sent at `sent` (unix ms).
fn wait_reload_json(env: &Env, sent: i64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = std::fs::read_to_string(env.state_dir().join("reload.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .filter(|s| s["at_ms"].as_i64().is_some_and(|at| at >= sent))
        {
            return status;
        }
        assert!(Instant::now() < deadline, "no reload outcome: {}", env.daemon_log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_limit_applies_on_reload_without_restarting_the_agent_and_an_invalid_one_is_refused() {
    let tools = DEFAULT_TOOLS.replace("limit = \"10/hour\"", "limit = \"2/hour\"");
    let agent = "command = [\"sh\", \"-c\", \"echo start >> starts.txt; exec sleep 1000\"]";
    let mut env = Env::with_agent_and_tools(agent, "", &tools).await;
    let original = std::fs::read(&env.config_path).unwrap();
    env.start();
    let daemon_pid = env.daemon_pid();
    let before = wait_status(&env, |s| s["state"] == "running");
    let agent_pid = before["pid"].clone();
    assert!(agent_pid.is_u64(), "{before:#}");
    assert_eq!(before["config"]["running_sha256"], sha256(&original), "{before:#}");
    assert_eq!(before["config"]["differs"], false, "{before:#}");

    assert_eq!(post(&env, 1).await, 200);
    assert_eq!(post(&env, 2).await, 200);
    assert_eq!(post(&env, 3).await, 429, "the old limit, 2/hour");

    // Edited, not yet reloaded: status says the file differs, and the old limit holds.
    let edited = edit(&env, "limit = \"2/hour\"", "limit = \"4/hour\"");
    let status = status_of(&env);
    assert_eq!(status["config"]["differs"], true, "{status:#}");
    assert_eq!(status["config"]["file_sha256"], sha256(edited.as_bytes()), "{status:#}");
    let out = env.steward(&["status"]);
    assert!(text(&out.stdout).contains("differs"), "{}", text(&out.stdout));
    assert_eq!(post(&env, 4).await, 429);

    let out = env.steward(&["reload"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), env.daemon_log());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("sections changed: tools"), "{stdout}");
    assert!(!stdout.contains("restart needed"), "{stdout}");
    assert_eq!(post(&env, 5).await, 200, "the new limit, 4/hour");
    assert_eq!(post(&env, 6).await, 200);
    assert_eq!(post(&env, 7).await, 429);

    // The agent and the daemon kept running.
    let after = status_of(&env);
    assert_eq!(after["pid"], agent_pid, "{after:#}");
    assert_eq!(after["state"], "running");
    assert_eq!(env.daemon_pid(), daemon_pid);
    assert_eq!(std::fs::read_to_string(env.work("starts.txt")).unwrap().lines().count(), 1, "the agent started once");
    assert_eq!(after["config"]["running_sha256"], sha256(edited.as_bytes()), "{after:#}");
    assert_eq!(after["config"]["differs"], false, "{after:#}");

    // One audit line, with both hashes and the section.
    let lines = reload_lines(&env);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["decision"], "reloaded");
    assert_eq!(lines[0]["phase"], "reload");
    assert_eq!(lines[0]["config_sha256_old"], sha256(&original));
    assert_eq!(lines[0]["config_sha256_new"], sha256(edited.as_bytes()));
    assert_eq!(lines[0]["sections_changed"], json!(["tools"]));

    // An invalid file: `steward reload` refuses it (exit 3) and sends nothing.
    edit(&env, "limit = \"4/hour\"", "limit = \"lots\"");
    let out = env.steward(&["reload"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("keeps its current config"), "{}", text(&out.stderr));
    // SIGHUP straight to the daemon (systemd's ExecReload): refused, logged, audited.
    let sent = now_ms();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(daemon_pid.unwrap()).unwrap()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let outcome = wait_reload_json(&env, sent);
    assert_eq!(outcome["ok"], false, "{outcome:#}");
    assert_eq!(outcome["kind"], "config", "{outcome:#}");
    assert!(outcome["problems"][0].as_str().unwrap().contains("steward.toml:"), "{outcome:#}");
    assert!(env.daemon_log().contains("reload refused"), "{}", env.daemon_log());

    // A valid file whose credential does not resolve: the daemon refuses, `steward reload` says why (exit 3).
    edit(&env, "limit = \"lots\"", "limit = \"100/hour\"");
    let with_missing = format!(
        "{}\n[credentials.extra]\nsource = \"env:STEWARD_RELOAD_TEST_UNSET\"\n",
        std::fs::read_to_string(&env.config_path).unwrap()
    );
    std::fs::write(&env.config_path, with_missing).unwrap();
    let out = env.steward(&["reload"]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("STEWARD_RELOAD_TEST_UNSET"), "{stderr}");
    assert!(stderr.contains("keeps running the previous one"), "{stderr}");

    // The old config (4/hour, already used up) is still the one enforced.
    assert_eq!(post(&env, 8).await, 429);
    let refused: Vec<Value> = reload_lines(&env).into_iter().filter(|l| l["decision"] == "reload_refused").collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(refused.iter().all(|l| l["config_sha256_old"] == sha256(edited.as_bytes())), "{refused:#?}");
    assert_eq!(status_of(&env)["config"]["differs"], true);

    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_change_needs_a_restart_and_the_rest_is_applied() {
    let tools = DEFAULT_TOOLS.replace("limit = \"10/hour\"", "limit = \"1/hour\"");
    let mut env = Env::with_tools("", &tools).await;
    env.start();
    assert_eq!(post(&env, 1).await, 200);
    assert_eq!(post(&env, 2).await, 429);

    edit(&env, "listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:7\"");
    edit(&env, "limit = \"1/hour\"", "limit = \"3/hour\"");
    let out = env.steward(&["reload"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), env.daemon_log());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("restart needed: gateway.listen"), "{stdout}");
    assert!(stdout.contains("sections changed: gateway, tools"), "{stdout}");

    // Still listening where it was, with the new limit.
    assert_eq!(post(&env, 3).await, 200);
    let status = status_of(&env);
    assert_eq!(status["config"]["restart_needed"], json!(["gateway.listen"]), "{status:#}");
    assert_eq!(status["config"]["differs"], false, "{status:#}");
    let out = env.steward(&["status"]);
    assert!(text(&out.stdout).contains("restart needed"), "{}", text(&out.stdout));
    let out = env.steward(&["doctor", "--json"]);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let check = checks.iter().find(|c| c["item"] == "the daemon runs the config on disk").unwrap();
    assert_eq!(check["status"], "warn", "{check}");
    assert!(check["detail"].as_str().unwrap().contains("gateway.listen"), "{check}");

    let lines = reload_lines(&env);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["restart_needed"], json!(["gateway.listen"]));

    env.stop(false);
    env.assert_no_secret_leaked();
}

#[test]
fn reload_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, "[agent]\nname = \"x\"\n").unwrap();
    let out = std::process::Command::new(common::steward_bin())
        .args(["reload", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no steward daemon is running"), "{}", text(&out.stderr));
}
