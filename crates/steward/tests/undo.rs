//! `steward undo` against a real daemon and mock-upstream: the plan is
//! journaled with each post, the undo runs through the pipeline as a call
//! of the undo tool, and each test checks what reached the upstream.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::process::Output;

use reqwest::Method;
use serde_json::{Value, json};

use common::{Env, UNDOABLE_TOOLS};

async fn started() -> Env {
    let mut env = Env::with_tools("", UNDOABLE_TOOLS).await;
    env.start();
    env
}

/// Posts `text` as the agent; returns the status id the upstream gave and the call id.
async fn post(env: &Env, text: &str) -> (String, String) {
    let response =
        env.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": text })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), call_id)
}

/// `steward undo ARGS` (blocking: the CLI runs its own runtime).
async fn undo(env: &Env, args: &[&str]) -> Output {
    let mut all = vec!["undo"];
    all.extend_from_slice(args);
    let all: Vec<String> = all.iter().map(|s| (*s).to_owned()).collect();
    let path = env.config_path.clone();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::steward_bin())
            .args(&all)
            .arg("--config")
            .arg(&path)
            .env("NO_COLOR", "1")
            .env("USER", "ana")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The paths of the DELETEs that reached the upstream, in order.
fn deletes(env: &Env) -> Vec<String> {
    env.mock.requests().into_iter().filter(|r| r.method == "DELETE").map(|r| r.path).collect()
}

/// What the mock still holds: the ids of its statuses, newest first.
async fn remaining(env: &Env) -> Vec<String> {
    let list: Value =
        reqwest::get(format!("{}/api/v1/statuses", env.mock.base_url())).await.unwrap().json().await.unwrap();
    list.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

fn reports(out: &Output) -> Vec<Value> {
    let parsed = serde_json::from_slice(&out.stdout);
    assert!(parsed.is_ok(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    parsed.unwrap()
}

#[tokio::test]
async fn three_posts_are_undone_newest_first_with_one_command() {
    let env = started().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(post(&env, &format!("bad post {i}")).await.0);
    }
    // Every post has its plan, before anything else happens.
    let out = env.steward(&["last", "--undoable", "--json"]);
    let plans: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plans.len(), 3, "{plans:?}");
    assert_eq!(plans[0]["path"], format!("/api/v1/statuses/{}", ids[2]));
    assert_eq!(plans[0]["method"], "DELETE");

    let out = undo(&env, &["--tool", "post", "--since", "1h", "--yes", "--json"]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let done = reports(&out);
    assert!(done.iter().all(|r| r["outcome"] == "undone"), "{done:?}");
    let expected: Vec<String> = ids.iter().rev().map(|id| format!("/api/v1/statuses/{id}")).collect();
    assert_eq!(deletes(&env), expected, "newest first, the right ids");
    assert!(remaining(&env).await.is_empty());

    // Each delete carried the injected credential and is audited as an undo.
    let undo_lines: Vec<Value> = env.audit_lines().into_iter().filter(|l| l["tool"] == "delete_status").collect();
    assert_eq!(undo_lines.len(), 3);
    for line in &undo_lines {
        assert!(line["undo_of"].as_str().is_some(), "{line}");
        assert_eq!(line["status"], 200);
    }
    let recorded = env.mock.requests();
    let delete = recorded.iter().find(|r| r.method == "DELETE").unwrap();
    assert!(
        delete.headers.iter().any(|(n, v)| n == "authorization" && v == &format!("Bearer {}", common::CANARY_TOKEN))
    );

    // `steward last` marks them; nothing is left to undo.
    let journal = env.journal();
    let posts: Vec<&Value> = journal.iter().filter(|r| r["tool"] == "post").collect();
    assert!(posts.iter().all(|r| r["undo"]["state"] == "undone"), "{posts:?}");
    let out = env.steward(&["last"]);
    assert!(text(&out.stdout).contains("undone"), "{}", text(&out.stdout));
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn undoing_a_call_twice_sends_one_delete() {
    let env = started().await;
    let (id, call_id) = post(&env, "oops").await;
    let short = call_id.rsplit('-').next().unwrap();
    let first = undo(&env, &[short, "--yes", "--json"]).await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(reports(&first)[0]["outcome"], "undone");
    let second = undo(&env, &[&call_id, "--yes", "--json"]).await;
    assert!(second.status.success(), "{}", text(&second.stderr));
    let again = &reports(&second)[0];
    assert_eq!(again["outcome"], "already_undone", "{again}");
    assert!(again["message"].as_str().unwrap().starts_with("already undone at 20"), "{again}");
    assert_eq!(deletes(&env), [format!("/api/v1/statuses/{id}")]);
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn a_failed_undo_is_recorded_alerted_and_can_be_retried() {
    let env = started().await;
    let (id, call_id) = post(&env, "oops").await;
    env.mock.push_status(500);
    let out = undo(&env, &[&call_id, "--yes", "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "a failed undo is never reported as success");
    let failed = &reports(&out)[0];
    assert_eq!(failed["outcome"], "undo_failed", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("500"), "{failed}");
    assert_eq!(remaining(&env).await, std::slice::from_ref(&id), "the post is still up");
    let out = env.steward(&["last", "--undoable", "--json"]);
    let plans: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plans[0]["state"], "failed", "{plans:?}");
    // The alert: the engine fires on the event and the store's failed undo.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = env.steward(&["status", "--json"]);
        let text = text(&status.stdout);
        if text.contains("undo_failed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no undo_failed alert: {text}\n{}", env.daemon_log());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The fault cleared: the same command succeeds.
    let out = undo(&env, &[&call_id, "--yes", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(reports(&out)[0]["outcome"], "undone");
    assert_eq!(deletes(&env).len(), 2);
    assert!(remaining(&env).await.is_empty());
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn the_kill_switch_does_not_block_an_undo_and_it_is_audited() {
    let env = started().await;
    let (id, call_id) = post(&env, "oops").await;
    let out = env.steward(&["stop", "--reason", "bad posts"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The agent is stopped...
    let refused =
        env.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({"status": "more"})).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    // ...and the operator cleans up.
    let out = undo(&env, &[&call_id, "--yes", "--json"]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(reports(&out)[0]["outcome"], "undone");
    assert_eq!(deletes(&env), [format!("/api/v1/statuses/{id}")]);
    let line = env.audit_lines().into_iter().find(|l| l["tool"] == "delete_status").unwrap();
    assert_eq!(line["undo_of"], call_id.as_str());
    assert_eq!(line["decision"], "allowed");
    // Still stopped for the agent.
    let refused = env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn a_post_whose_response_has_no_id_has_an_unavailable_plan_with_the_reason() {
    let env = started().await;
    let response =
        env.req(Method::POST, "/api/social/echo").json(&json!({"status": "no id here"})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    let journal = env.journal();
    let row = journal.iter().find(|r| r["id"] == call_id.as_str()).unwrap();
    assert_eq!(row["undo"]["state"], "unavailable", "{row}");
    assert_eq!(row["undo"]["reason"], "{response.id} is missing: the response has no such field");
    let out = undo(&env, &[&call_id, "--yes", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = &reports(&out)[0];
    assert_eq!(report["outcome"], "unavailable", "{report}");
    assert!(deletes(&env).is_empty());
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_without_yes_or_a_terminal_nothing_is_sent() {
    let env = started().await;
    let (id, _) = post(&env, "oops").await;
    let out = undo(&env, &["--tool", "post", "--since", "1h", "--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains(&format!("DELETE /api/v1/statuses/{id}")) && shown.contains("nothing was sent"), "{shown}");
    let out = undo(&env, &["--tool", "post", "--since", "1h"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("add --yes"), "{}", text(&out.stderr));
    assert!(deletes(&env).is_empty(), "a dry run and an unconfirmed undo send nothing");
    assert_eq!(remaining(&env).await, [id]);
    env.assert_no_secret_leaked();
}

/// The operator's `steward undo` is the human decision: supervised mode does
/// not hold it, while the agent's own call of the same tool waits.
#[tokio::test]
async fn supervised_mode_holds_the_agents_delete_but_not_the_operators_undo() {
    let tools = UNDOABLE_TOOLS.replace(
        "match = \"DELETE /api/v1/statuses/{id}\"\nlimit",
        "match = \"DELETE /api/v1/statuses/{id}\"\nside_effect = true\napproval = \"always\"\nlimit",
    );
    let tools = tools.replace(
        "side_effect = true\nretry = \"never\"\nundo",
        "side_effect = true\napproval = \"never\"\nretry = \"never\"\nundo",
    );
    let mut env = Env::with_tools("", &format!("{tools}\n[supervised]\nenabled = true\nwait = \"1s\"\n")).await;
    env.start();
    let (id, call_id) = post(&env, "oops").await;
    // The agent deleting it itself waits for a human.
    let held = env.req(Method::DELETE, &format!("/api/social/api/v1/statuses/{id}")).send().await.unwrap();
    assert_eq!(held.status(), 409, "{:?}", held.text().await);
    assert!(deletes(&env).is_empty());
    // The operator's undo goes through at once.
    let out = undo(&env, &[&call_id, "--yes", "--json"]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(reports(&out)[0]["outcome"], "undone");
    assert_eq!(deletes(&env), [format!("/api/v1/statuses/{id}")]);
    env.assert_no_secret_leaked();
}
