//! Supervised mode end to end: the real `steward run` in front of
//! mock-upstream, the agent's calls sent with a real HTTP client, the human's
//! decisions made with the real CLI. Every test checks what reached the
//! upstream.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use common::{CANARY_TOKEN, DEFAULT_TOOLS, Env};
use http::{Method, StatusCode};
use serde_json::Value;
use steward_core::admin::AdminClient;

/// The tool under supervision: `post` (side_effect, so `approval =
/// "supervised"` by default).
const PATH: &str = "/api/social/api/v1/statuses";

async fn supervised_env(section: &str, extra: &str) -> Env {
    Env::with_tools("", &format!("{DEFAULT_TOOLS}\n[supervised]\nenabled = true\n{section}\n{extra}")).await
}

/// The upstream calls made to the statuses endpoint.
fn upstream_posts(env: &Env) -> usize {
    env.mock.requests().iter().filter(|r| r.method == "POST" && r.path == "/api/v1/statuses").count()
}

async fn post_status(env: &Env, body: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = env
        .req(reqwest::Method::POST, PATH)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)), headers)
}

fn cli_json(env: &Env, args: &[&str]) -> Value {
    let out = env.steward(args);
    assert!(
        out.status.success(),
        "steward {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pending(env: &Env) -> Vec<Value> {
    cli_json(env, &["approvals", "--json"])["approvals"].as_array().cloned().unwrap_or_default()
}

async fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the daemon (its socket cannot be read by the leak walker) and
/// checks that no planted secret reached any file.
fn finish(env: Arc<Env>) {
    let mut env = Arc::try_unwrap(env).ok().unwrap();
    env.stop(false);
    env.assert_no_secret_leaked();
}

/// The approval audit lines (`phase = "approval"`) with `decision`.
fn approval_lines(env: &Env, decision: &str) -> Vec<Value> {
    env.all_audit_lines().into_iter().filter(|l| l["phase"] == "approval" && l["decision"] == decision).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_call_reaches_the_upstream_exactly_once() {
    let mut env = supervised_env("wait = \"25s\"", "").await;
    env.start();
    let env = Arc::new(env);
    let agent = {
        let env = Arc::clone(&env);
        tokio::spawn(async move { post_status(&env, r#"{"status": "hello world"}"#).await })
    };
    let request = wait_until("the pending request", || pending(&env).into_iter().next()).await;
    assert_eq!(request["tool"], "post");
    assert!(request["body"].as_str().unwrap().contains("hello world"), "{request:#}");
    assert_eq!(upstream_posts(&env), 0, "nothing leaves before the approval");
    let id = request["id"].as_str().unwrap();
    let approved = cli_json(&env, &["approve", &id[..6], "--note", "fine", "--json"]);
    assert_eq!(approved["approval"]["state"], "approved", "{approved:#}");
    let (status, body, _) = agent.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream_posts(&env), 1);
    // The grant was used: the identical repeat is a new request, not a second release.
    assert!(pending(&env).is_empty());
    let requested = approval_lines(&env, "approval_pending");
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["approval_id"], id);
    let decided = wait_until("the approval's audit line", || approval_lines(&env, "approved").into_iter().next()).await;
    assert_eq!((decided["approval_id"].as_str(), decided["decided_via"].as_str()), (Some(id), Some("cli")));
    assert!(decided["time_to_decide_ms"].as_i64().is_some(), "{decided}");
    // `steward last` shows the decision among the calls.
    let last = String::from_utf8(env.steward(&["last"]).stdout).unwrap();
    let line = last.lines().find(|l| l.contains("approval") && l.contains("approved")).unwrap_or_default();
    assert!(line.contains("via cli") && line.contains(": fine"), "{last}");
    finish(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_never_reaches_the_upstream() {
    let mut env = supervised_env("wait = \"25s\"", "").await;
    env.start();
    let env = Arc::new(env);
    let agent = {
        let env = Arc::clone(&env);
        tokio::spawn(async move { post_status(&env, r#"{"status": "buy now"}"#).await })
    };
    let request = wait_until("the pending request", || pending(&env).into_iter().next()).await;
    let id = request["id"].as_str().unwrap();
    cli_json(&env, &["deny", id, "--reason", "off-brand", "--json"]);
    let (status, body, headers) = agent.await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["reason"], "approval_denied", "{body}");
    assert_eq!(body["error"]["approval_id"], id, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("off-brand"), "{body}");
    assert_eq!(headers["x-should-retry"], "false");
    assert_eq!(upstream_posts(&env), 0);
    let journal = env.journal();
    assert_eq!(journal[0]["decision"], "approval_denied", "{journal:#?}");
    wait_until("the denial's audit line", || approval_lines(&env, "denied").into_iter().next()).await;
    finish(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_request_expires_denied_and_is_audited() {
    let mut env = supervised_env("wait = \"1s\"\nexpires = \"2s\"", "").await;
    env.start();
    let (status, body, headers) = post_status(&env, r#"{"status": "later"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["reason"], "approval_pending", "{body}");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    assert!(headers.contains_key("retry-after"));
    assert_eq!(headers["x-should-retry"], "true");
    let expired = wait_until("the expiry's audit line", || approval_lines(&env, "expired").into_iter().next()).await;
    assert_eq!(expired["approval_id"], id.as_str());
    assert_eq!(expired["decided_via"], "expiry");
    // Too late to approve: the decision is refused and nothing is released.
    let out = env.steward(&["approve", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(upstream_posts(&env), 0);
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_releases_only_the_identical_call() {
    let mut env = supervised_env("wait = \"1s\"", "").await;
    env.start();
    let call = r#"{"status": "exact words"}"#;
    let (status, body, _) = post_status(&env, call).await;
    assert_eq!(status, 409, "{body}");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    // The identical repeat joins the same request: no new one.
    let (status, body, _) = post_status(&env, &call.replace(": ", ":  ")).await;
    assert_eq!((status, body["error"]["approval_id"].as_str()), (409, Some(id.as_str())), "{body}");
    cli_json(&env, &["approve", &id, "--json"]);
    // One byte different: a new request, never a release.
    let (status, body, _) = post_status(&env, r#"{"status": "exact words!"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert_ne!(body["error"]["approval_id"].as_str(), Some(id.as_str()));
    assert_eq!(upstream_posts(&env), 0);
    // The identical call is released, once.
    let (status, body, _) = post_status(&env, call).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream_posts(&env), 1);
    let (status, body, _) = post_status(&env, call).await;
    assert_eq!(status, 409, "a grant is single-use: {body}");
    assert_eq!(upstream_posts(&env), 1);
    // Repeats of a pending call never count toward the loop breaker (5 identical calls).
    for _ in 0..5 {
        let (status, body, _) = post_status(&env, call).await;
        assert_eq!(status, 409, "{body}");
    }
    let kill = cli_json(&env, &["status", "--json"]);
    assert_eq!(kill["kill_switch"]["engaged"], false, "{kill:#}");
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_identical_concurrent_calls_make_one_request_and_one_upstream_call() {
    let mut env = supervised_env("wait = \"10s\"", "").await;
    env.start();
    let env = Arc::new(env);
    let mut agents = Vec::new();
    for _ in 0..10 {
        let env = Arc::clone(&env);
        agents.push(tokio::spawn(async move { post_status(&env, r#"{"status": "once"}"#).await }));
    }
    let request = wait_until("the pending request", || pending(&env).into_iter().next()).await;
    let id = request["id"].as_str().unwrap().to_owned();
    cli_json(&env, &["approve", &id, "--json"]);
    let mut statuses = Vec::new();
    for agent in agents {
        statuses.push(agent.await.unwrap().0);
    }
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    assert_eq!(upstream_posts(&env), 1);
    finish(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_and_their_expiry_survive_a_restart() {
    let mut env = supervised_env("wait = \"1s\"\nexpires = \"1h\"", "").await;
    env.start();
    let call = r#"{"status": "across restarts"}"#;
    let (status, body, _) = post_status(&env, call).await;
    assert_eq!(status, 409, "{body}");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    env.stop(false);
    // No daemon: the store lists it (summary only) and says where the body is.
    let listed = cli_json(&env, &["approvals", "--json"]);
    assert_eq!(listed["daemon_running"], false);
    assert_eq!(listed["approvals"][0]["id"], id.as_str(), "{listed:#}");
    let text = env.steward(&["approvals"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("only while"), "{}", String::from_utf8_lossy(&text.stdout));
    env.start();
    // The identical repeat re-attaches its body to the same request.
    let (status, body, _) = post_status(&env, call).await;
    assert_eq!((status, body["error"]["approval_id"].as_str()), (409, Some(id.as_str())), "{body}");
    let shown = pending(&env);
    assert!(shown[0]["body"].as_str().unwrap().contains("across restarts"), "{shown:#?}");
    // Approved while no daemon runs: the store holds the grant, and the repeat is released once.
    env.stop(false);
    let approved = cli_json(&env, &["approve", &id, "--json"]);
    assert_eq!(approved["via_daemon"], false, "{approved:#}");
    env.start();
    let (status, body, _) = post_status(&env, call).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream_posts(&env), 1);
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_expired_while_steward_was_down_is_expired_never_approved() {
    let mut env = supervised_env("wait = \"1s\"\nexpires = \"3s\"", "").await;
    env.start();
    let call = r#"{"status": "stale"}"#;
    let (status, body, _) = post_status(&env, call).await;
    assert_eq!(status, 409, "{body}");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    env.stop(false);
    let expires_ms = cli_json(&env, &["approvals", "--json"])["approvals"][0]["expires_ms"].as_i64().unwrap();
    wait_until("the expiry to pass", || {
        (steward_core::clock::unix_ms(std::time::SystemTime::now()) > expires_ms).then_some(())
    })
    .await;
    let out = env.steward(&["approve", &id]);
    assert!(!out.status.success(), "an expired request cannot be approved");
    env.start();
    let (status, body, _) = post_status(&env, call).await;
    assert_ne!(status, 200, "{body}");
    assert_eq!(upstream_posts(&env), 0);
    let expired = wait_until("the expiry's audit line", || approval_lines(&env, "expired").into_iter().next()).await;
    assert_eq!(expired["approval_id"], id.as_str());
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_approved_after_the_kill_switch_was_engaged_is_refused_killed() {
    let mut env = supervised_env("wait = \"25s\"", "").await;
    env.start();
    let env = Arc::new(env);
    let agent = {
        let env = Arc::clone(&env);
        tokio::spawn(async move { post_status(&env, r#"{"status": "risky"}"#).await })
    };
    let request = wait_until("the pending request", || pending(&env).into_iter().next()).await;
    let out = env.steward(&["stop", "--reason", "incident"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cli_json(&env, &["approve", request["id"].as_str().unwrap(), "--json"]);
    let (status, body, _) = agent.await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["reason"], "killed", "{body}");
    assert_eq!(upstream_posts(&env), 0);
    finish(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_token_reaches_no_approval_endpoint() {
    let mut env = supervised_env("wait = \"1s\"", "").await;
    env.start();
    let (status, body, _) = post_status(&env, r#"{"status": "mine"}"#).await;
    assert_eq!(status, 409, "{body}");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    let presented = env.dir.path().join("presented.token");
    std::fs::write(&presented, &env.token).unwrap();
    let agent = AdminClient::new(&env.state_dir().join("admin.sock"), &presented).unwrap();
    let by = serde_json::json!({"by": "agent", "via": "cli", "note": "self-approved", "reason": "x"});
    for (method, path) in [
        (Method::GET, "/admin/v1/approvals".to_owned()),
        (Method::POST, format!("/admin/v1/approvals/{id}/approve")),
        (Method::POST, format!("/admin/v1/approvals/{id}/deny")),
    ] {
        let body = (method == Method::POST).then_some(&by);
        let (status, answer) = agent.request(method, &path, body).await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {answer}");
    }
    // Nor through the gateway, with any method.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let response = env.req(method, &format!("/admin/v1/approvals/{id}/approve")).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    }
    assert_eq!(pending(&env)[0]["state"], "pending");
    assert_eq!(upstream_posts(&env), 0);
    std::fs::remove_file(&presented).unwrap();
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_notice_reaches_a_webhook_without_a_secret() {
    let inbox: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = Arc::clone(&inbox);
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let kept = Arc::clone(&kept);
            async move {
                kept.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut env =
        supervised_env("wait = \"1s\"", "[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:hook.url\"\n").await;
    common::private_file(&env.dir.path().join("hook.url"), &format!("{hook}\n"));
    env.start();
    // The agent quotes the upstream's token in its post: the notice must not.
    let (status, body, _) = post_status(&env, &format!(r#"{{"status": "my token is {CANARY_TOKEN}"}}"#)).await;
    assert_eq!(status, 409, "{body}");
    let id = body["error"]["approval_id"].as_str().unwrap().to_owned();
    let notice = wait_until("the approval notice", || {
        inbox.lock().unwrap().iter().find(|n| n["key"] == "approval:post").cloned()
    })
    .await;
    let message = notice["message"].as_str().unwrap();
    assert!(message.contains(&format!("steward approve {id}")), "{message}");
    assert!(message.contains(&format!("steward deny {id} --reason")), "{message}");
    assert!(!notice.to_string().contains(CANARY_TOKEN), "{notice}");
    assert_eq!(upstream_posts(&env), 0);
    env.stop(false);
    env.assert_no_secret_leaked();
}
