//! The core path, end to end: the real `steward run` process on 127.0.0.1:0
//! in front of mock-upstream, driven over HTTP like an agent would.

mod common;

use common::{CANARY_TOKEN, Env};
use mock_upstream::Faults;
use reqwest::Method;
use serde_json::{Value, json};

#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
async fn post(env: &Env, text: &str) -> reqwest::Response {
    env.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": text })).send().await.unwrap()
}

#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
async fn reason(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injects_the_real_token_and_never_forwards_the_agents() {
    let mut env = Env::new("").await;
    env.start();

    // Bearer, as the OpenAI SDK and curl send it.
    let response = post(&env, "hello").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-steward-call-id"));
    let created: Value = response.json().await.unwrap();
    assert!(created["id"].is_string());

    // x-api-key, as the Anthropic SDK sends it; plus a hop-by-hop header that must not travel.
    let response = env
        .client()
        .post(env.url("/api/social/echo"))
        .header("x-api-key", &env.token)
        .header("connection", "x-private-hop")
        .header("x-private-hop", "1")
        .header("x-keep-me", "yes")
        .body("ping")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ping");

    let seen = env.mock.requests();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {CANARY_TOKEN}").as_str()));
        assert!(request.header("x-api-key").is_none(), "the agent's x-api-key was forwarded");
        assert!(request.headers.iter().all(|(_, v)| !v.contains(&env.token)), "the steward token reached the upstream");
    }
    assert_eq!(seen[1].header("x-keep-me"), Some("yes"));
    assert!(seen[1].header("x-private-hop").is_none());

    // Without the token: 401, and the upstream never hears of it.
    let response =
        env.client().post(env.url("/api/social/api/v1/statuses")).bearer_auth("stw_wrong").send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(reason(response).await, "unauthenticated");
    let response = env.client().get(env.url("/api/social/api/v1/statuses")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(env.mock.requests().len(), 2);

    // A redirect is handed back, never followed with the credential attached.
    let response = env.req(Method::GET, "/api/social/redirect").send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(env.mock.requests().len(), 3);

    let lines = env.wait_audit_lines(5).await;
    assert_eq!(lines.len(), 5, "one audit line per call");
    let first = &lines[0];
    for field in [
        "ts",
        "call_id",
        "agent",
        "door",
        "tool",
        "input_summary",
        "input_sha256",
        "decision",
        "status",
        "duration_ms",
        "attempts",
    ] {
        assert!(first.get(field).is_some(), "audit record lacks {field}: {first}");
    }
    assert_eq!(first["tool"], "post");
    assert_eq!(first["decision"], "allowed");
    assert_eq!(lines.iter().filter(|l| l["decision"] == "unauthenticated").count(), 2);

    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_posts_against_ten_per_hour_forward_exactly_ten_even_after_restart() {
    let mut env = Env::new("").await;
    env.start();
    let calls = (0..20).map(|i| {
        let request =
            env.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": format!("post {i}") }));
        async move { request.send().await.unwrap() }
    });
    let responses = futures_util::future::join_all(calls).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(ok, 10);
    assert_eq!(limited.len(), 10);
    for response in &limited {
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after > 0 && retry_after <= 3600);
    }
    assert_eq!(env.mock.requests().len(), 10);

    env.restart();
    let response = post(&env, "after restart").await;
    assert_eq!(response.status(), 429);
    assert_eq!(reason(response).await, "rate_limited");

    // A crash (kill -9) does not reset the window either.
    env.stop(true);
    env.start();
    assert_eq!(post(&env, "after crash").await.status(), 429);
    assert_eq!(env.mock.requests().len(), 10);
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_refuses_the_next_call_and_survives_restart() {
    let mut env = Env::new("").await;
    // Works without a daemon running.
    let out = env.steward(&["stop", "--reason", "posting junk"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.start();
    let response = post(&env, "x").await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "killed");
    assert!(body["error"]["message"].as_str().unwrap().contains("posting junk"));

    let out = env.steward(&["resume"]);
    assert!(out.status.success());
    assert_eq!(post(&env, "y").await.status(), 200);

    // Engaged while the daemon runs: the very next call after `stop` returns is refused.
    let out = env.steward(&["stop", "--reason", "second time"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("running daemon"));
    assert_eq!(post(&env, "z").await.status(), 403);
    // Unmatched calls hear "killed" too: the switch comes before tool identification.
    let response = env.req(Method::DELETE, "/api/social/nothing").send().await.unwrap();
    assert_eq!(reason(response).await, "killed");

    env.restart();
    assert_eq!(post(&env, "after restart").await.status(), 403);
    let status = env.steward(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "disabled", "no [agent] command: steward does not run the agent");
    assert_eq!(status["kill_switch"]["reason"], "second time");
    assert_eq!(status["daemon"]["running"], true);

    assert!(env.steward(&["resume"]).status.success());
    assert_eq!(post(&env, "back").await.status(), 200);
    assert_eq!(env.mock.requests().len(), 2);
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_breaker_trips_on_the_fifth_identical_call() {
    let mut env = Env::new("").await;
    env.start();
    let created: Value = post(&env, "seed").await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/social/api/v1/statuses/{id}");
    for _ in 0..4 {
        assert_eq!(env.req(Method::GET, &path).send().await.unwrap().status(), 200);
    }
    let fifth = env.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(fifth.status(), 403);
    assert_eq!(reason(fifth).await, "loop_detected");
    // The agent is now stopped, whatever it calls.
    assert_eq!(reason(post(&env, "different").await).await, "killed");
    let status: Value = serde_json::from_slice(&env.steward(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["kill_switch"]["reason"], "loop detected: read_status");

    // After a human resumes, the count starts afresh.
    assert!(env.steward(&["resume"]).status.success());
    assert_eq!(env.req(Method::GET, &path).send().await.unwrap().status(), 200);
    let last: Value = serde_json::from_slice(&env.steward(&["last", "--json", "--failed"]).stdout).unwrap();
    let decisions: Vec<&str> = last.as_array().unwrap().iter().map(|r| r["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["killed", "loop_detected"]);
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_idempotent_calls_but_never_a_post_once_sent() {
    let mut env = Env::new("").await;
    env.start();
    let created: Value = post(&env, "seed").await.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    env.mock.clear_requests();

    env.mock.push_status(503);
    let response = env.req(Method::GET, &format!("/api/social/api/v1/statuses/{id}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(env.mock.requests().len(), 2, "503 then 200: two attempts");

    // The connection dies after the POST was sent: never retried.
    env.mock.clear_requests();
    env.mock.set_faults(Faults { reset_connections: 1, ..Faults::default() });
    let response = post(&env, "risky").await;
    assert_eq!(response.status(), 502);
    assert_eq!(reason(response).await, "upstream_unreachable");
    env.mock.set_faults(Faults::default());

    // A 503 on a POST is handed back as is, not retried.
    env.mock.push_status(503);
    assert_eq!(post(&env, "also risky").await.status(), 503);
    assert!(env.mock.requests().iter().filter(|r| r.method == "POST").count() <= 2);

    let lines = env.wait_audit_lines(4).await;
    let attempts: Vec<u64> = lines.iter().map(|l| l["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2, 1, 1]);
    assert_eq!(lines[2]["decision"], "upstream_unreachable");
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_rotates_without_losing_or_duplicating_a_line() {
    let mut env = Env::new("max_file_size = \"4KiB\"").await;
    env.start();
    let mut ids = std::collections::HashSet::new();
    for batch in 0..10 {
        let calls = (0..20).map(|i| {
            let request = env.req(Method::POST, "/api/social/echo").body(format!("message {batch}-{i}"));
            async move { request.send().await.unwrap() }
        });
        for response in futures_util::future::join_all(calls).await {
            assert_eq!(response.status(), 200);
            ids.insert(response.headers()["x-steward-call-id"].to_str().unwrap().to_owned());
            let _ = response.bytes().await;
        }
    }
    env.stop(false);
    let lines = env.audit_lines();
    assert_eq!(lines.len(), 200);
    let logged: std::collections::HashSet<String> =
        lines.iter().map(|l| l["call_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(logged, ids);
    let files = std::fs::read_dir(env.state_dir().join("logs")).unwrap().count();
    assert!(files > 3, "expected several rotated files, found {files}");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_refusals_and_nothing_panics() {
    let mut env = Env::new("").await;
    env.start();
    let response = env.req(Method::GET, "/api/nosuch/x").send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(reason(response).await, "unknown_upstream");

    let response = env.req(Method::POST, "/api/social/echo").body(vec![b'x'; 65 * 1024]).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(reason(response).await, "body_too_large");

    let response = env.req(Method::GET, "/api/social/api/v1/statuses/%FF%FE").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(reason(response).await, "bad_request");

    let response = env.req(Method::GET, "/api/social/api/v1/../../admin").send().await.unwrap();
    assert!(response.status() == 400 || response.status() == 403);

    let response = env.req(Method::PATCH, "/api/social/api/v1/statuses/1").send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "unmatched");
    assert!(body["error"]["message"].as_str().unwrap().contains("[[tools]]"));

    let response = env.client().get(env.url("/elsewhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(env.client().get(env.url("/healthz")).send().await.unwrap().status(), 200);
    assert!(env.mock.requests().is_empty(), "nothing bad was forwarded");
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_retried_on_connect_errors_then_a_clean_502() {
    // Port 1 on loopback refuses connections: no byte is ever sent, so even a POST may be retried.
    let tools = format!(
        "{}\n[upstreams.down]\nbase_url = \"http://127.0.0.1:1\"\n\n[[tools]]\nname = \"down_post\"\nupstream = \"down\"\nmatch = \"POST /x\"\nretry = \"never\"\n",
        common::DEFAULT_TOOLS
    );
    let mut env = Env::with_tools("", &tools).await;
    env.start();
    let response = env.req(Method::POST, "/api/down/x").body("{}").send().await.unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "upstream_unreachable");
    assert!(!body.to_string().contains("127.0.0.1:1"), "internal details reached the agent: {body}");
    let lines = env.wait_audit_lines(1).await;
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["decision"], "upstream_unreachable");
    env.stop(false);
    env.assert_no_secret_leaked();
}
