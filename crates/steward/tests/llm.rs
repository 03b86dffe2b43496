//! The LLM front door end to end: `steward run` in front of mock-upstream's
//! OpenAI and Anthropic endpoints, driven with plain HTTP like an SDK would.

mod common;

use common::{CANARY_LLM_KEY, DEFAULT_TOOLS, Env};
use reqwest::Method;
use serde_json::{Value, json};

/// `[llm.*]` sections pointing at the mock, and a spend cap.
fn llm_config(cap_usd: f64) -> String {
    format!(
        r#"{DEFAULT_TOOLS}
[llm.openai]
kind = "openai"
base_url = "{{base}}"
credential = "llm"

[llm.anthropic]
kind = "anthropic"
base_url = "{{base}}"
credential = "llm"

[spend]
daily_cap_usd = {cap_usd}
default_max_output_tokens = 100
"#
    )
}

async fn env_with_cap(cap_usd: f64) -> Env {
    let mut env = Env::with_tools("", &llm_config(cap_usd)).await;
    env.start();
    env
}

fn chat(model: &str, text: &str, stream: bool) -> Value {
    json!({ "model": model, "messages": [{"role": "user", "content": text}], "stream": stream })
}

/// Parses an SSE body into its `data:` payloads.
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_is_injected_priced_and_audited() {
    let env = env_with_cap(5.0).await;
    let response = env
        .req(Method::POST, "/llm/openai/v1/chat/completions")
        .json(&chat("gpt-4o-mini", "hello there, my email is jane@example.com", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let seen = &env.mock.requests()[0];
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {CANARY_LLM_KEY}").as_str()));
    let forwarded = seen.json().unwrap();
    assert_eq!(forwarded["max_completion_tokens"], 100, "steward bounds the output when the request sets none");

    let lines = env.wait_audit_lines(1).await;
    let line = &lines[0];
    assert_eq!(line["door"], "llm");
    assert_eq!(line["tool"], "openai:chat.completions");
    assert_eq!(line["model"], "gpt-4o-mini");
    assert_eq!(line["stream"], false);
    assert!(line["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(line["output_tokens"], 5);
    assert!(line["cost_usd"].as_f64().unwrap() > 0.0);
    let summary = line["input_summary"].as_str().unwrap();
    assert!(summary.starts_with("hello there"), "{summary}");
    assert!(!summary.contains("jane@example.com"), "PII reached the audit log: {summary}");

    let spend = env.steward(&["spend", "--json"]);
    assert!(spend.status.success(), "{}", String::from_utf8_lossy(&spend.stderr));
    let spend: Value = serde_json::from_slice(&spend.stdout).unwrap();
    assert!(spend["today"]["spent_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(spend["today"]["cap_usd"], 5.0);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_relay_unchanged_except_the_usage_chunk_steward_asked_for() {
    let env = env_with_cap(5.0).await;
    let response = env
        .req(Method::POST, "/llm/openai/v1/chat/completions")
        .header("x-mock-chunks", "4")
        .json(&chat("gpt-4o-mini", "stream please", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        events.iter().all(|e| !e.contains("\"usage\":{")),
        "the client did not ask for usage, so it must not see it: {text}"
    );
    let forwarded = env.mock.requests()[0].json().unwrap();
    assert_eq!(forwarded["stream_options"]["include_usage"], true);

    // A client that asked for usage gets it.
    let mut asked = chat("gpt-4o-mini", "stream with usage", true);
    asked["stream_options"] = json!({ "include_usage": true });
    let text = env
        .req(Method::POST, "/llm/openai/v1/chat/completions")
        .json(&asked)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sse_data(&text).iter().any(|e| e.contains("\"usage\"")));

    let lines = env.wait_audit_lines(2).await;
    assert!(lines.iter().all(|l| l["stream"] == true && l["output_tokens"].as_u64().unwrap() > 0));
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_gets_its_key_header_and_its_error_shape() {
    let env = env_with_cap(5.0).await;
    let response = env
        .client()
        .post(env.url("/llm/anthropic/v1/messages"))
        .header("x-api-key", &env.token)
        .json(&json!({ "model": "claude-haiku-4-5", "max_tokens": 50, "stream": true,
                        "messages": [{"role": "user", "content": "hi"}] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("message_stop"));
    let seen = &env.mock.requests()[0];
    assert_eq!(seen.header("x-api-key"), Some(CANARY_LLM_KEY));
    assert!(seen.header("authorization").is_none());
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));

    // Unknown model: refused before anything is sent, in Anthropic's shape.
    let response = env
        .client()
        .post(env.url("/llm/anthropic/v1/messages"))
        .header("x-api-key", &env.token)
        .json(&json!({ "model": "claude-imaginary-9", "max_tokens": 5, "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(body["error"]["reason"], "unknown_price");
    assert!(body["error"]["message"].as_str().unwrap().contains("[prices.\"claude-imaginary-9\"]"));
    assert_eq!(env.mock.requests().len(), 1);
    // `steward last` names the endpoint and the model refused, with the status the agent got.
    let rows: Value = serde_json::from_slice(&env.steward(&["last", "--json", "-n", "1"]).stdout).unwrap();
    assert_eq!(rows[0]["decision"], "unknown_price");
    assert_eq!(rows[0]["tool"], "anthropic:messages", "{rows}");
    assert!(rows[0]["input_summary"].as_str().unwrap().starts_with("model claude-imaginary-9"), "{rows}");
    assert_eq!(rows[0]["status"], 403);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_never_settle_above_the_cap() {
    // Worst case of one call: gpt-4o-mini, ~100 input tokens bound + 100 output
    // at $0.15/$0.60 per 1M: a few hundredths of a cent. A 0.1 cent cap fits a handful.
    let cap_usd = 0.001;
    let env = env_with_cap(cap_usd).await;
    let calls = (0..100).map(|i| {
        let request = env
            .req(Method::POST, "/llm/openai/v1/chat/completions")
            .header("x-mock-chunks", "3")
            .header("x-mock-delay-ms", "20")
            .json(&chat("gpt-4o-mini", &format!("call {i}"), true));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let capped: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert!(ok > 0 && !capped.is_empty(), "ok {ok}, capped {}", capped.len());
    assert_eq!(ok + capped.len(), 100);
    for (_, body) in &capped {
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "spend_cap", "OpenAI error shape: {body}");
        // The agent learns what did not fit and what to change, or that the cap is reached
        // (when the reservations in flight filled it exactly).
        let message = body["error"]["message"].as_str().unwrap();
        let does_not_fit = message.contains("worst case") && message.contains("max_tokens");
        assert!(does_not_fit || message.contains("cap is reached"), "{message}");
    }
    let lines = env.wait_audit_lines(100).await;
    let settled: f64 = lines.iter().filter_map(|l| l["cost_usd"].as_f64()).sum();
    assert!(settled <= cap_usd, "settled {settled} > cap {cap_usd}");

    // Every refusal happened because its reservation did not fit at that moment.
    let last = env.steward(&["last", "--json", "-n", "200", "--failed"]);
    let rows: Value = serde_json::from_slice(&last.stdout).unwrap();
    let refused: Vec<_> = rows.as_array().unwrap().iter().filter(|r| r["decision"] == "spend_cap").collect();
    assert_eq!(refused.len(), capped.len());
    for row in refused {
        let reason = row["reason"].as_str().unwrap();
        let numbers: Vec<u64> =
            reason.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
        let (spent, cap, reserve) = (numbers[0], numbers[1], numbers[2]);
        assert!(spent + reserve > cap, "refused although it fit: {reason}");
    }
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_too_large_for_the_cap_is_refused_as_such_and_smaller_calls_still_pass() {
    let env = env_with_cap(5.0).await;
    let send = |body: Value| env.req(Method::POST, "/llm/openai/v1/chat/completions").json(&body).send();
    assert_eq!(send(chat("gpt-4o-mini", "a small one", false)).await.unwrap().status(), 200);
    // o1-pro at $600 per 1M output tokens: 100k tokens are a $60 worst case against a $5 cap.
    let mut big = chat("o1-pro", "write a novel", false);
    big["max_completion_tokens"] = json!(100_000);
    let response = send(big).await.unwrap();
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not fit") && message.contains("$60"), "{message}");
    assert!(message.contains("the cap is not reached"), "{message}");
    assert!(!message.contains("cap is reached"), "{message}");
    assert_eq!(send(chat("gpt-4o-mini", "another small one", false)).await.unwrap().status(), 200);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_is_an_error_for_the_client_and_still_billed() {
    let env = env_with_cap(5.0).await;
    let response = env
        .req(Method::POST, "/llm/openai/v1/chat/completions")
        .header("x-mock-fault", "cut")
        .header("x-mock-chunks", "10")
        .json(&chat("gpt-4o-mini", "this will break", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "headers arrived before the cut");
    // Not a clean end that looks complete: no `[DONE]`, and a final error
    // event the SDK raises, naming the cut.
    let body = response.text().await.unwrap();
    let events = sse_data(&body);
    assert!(!events.iter().any(|e| e == "[DONE]"), "{body}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_cut", "{body}");

    let lines = env.wait_audit_lines(1).await;
    let line = &lines[0];
    assert!(
        line["reason"].as_str().unwrap().contains("broke off")
            || line["reason"].as_str().unwrap().contains("final event")
    );
    assert!(line["cost_usd"].as_f64().unwrap() > 0.0, "tokens seen are billed: {line}");
    assert_eq!(line["cost_estimated"], true);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_llm_calls_trip_the_loop_breaker() {
    let env = env_with_cap(5.0).await;
    let body = chat("gpt-4o-mini", "same thing again", false);
    for _ in 0..4 {
        let r = env.req(Method::POST, "/llm/openai/v1/chat/completions").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let fifth = env.req(Method::POST, "/llm/openai/v1/chat/completions").json(&body).send().await.unwrap();
    assert_eq!(fifth.status(), 403);
    let err: Value = fifth.json().await.unwrap();
    assert_eq!(err["error"]["code"], "loop_detected");
    env.assert_no_secret_leaked();
}

/// The Python interpreter with the official SDKs: `.venv` at the repo root
/// (created by `.ci/run`), else `python3`. `None` (test skipped, loudly) when
/// the SDKs are missing, unless `STEWARD_REQUIRE_SDKS` is set, as CI does.
fn sdk_python() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let python = if venv.exists() { venv } else { std::path::PathBuf::from("python3") };
    let ok = std::process::Command::new(&python)
        .args(["-c", "import openai, anthropic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("STEWARD_REQUIRE_SDKS").is_none(),
        "STEWARD_REQUIRE_SDKS is set but the openai/anthropic SDKs are not importable"
    );
    eprintln!("SKIPPED: the official openai/anthropic Python SDKs are not installed (run .ci/run to create .venv)");
    None
}

#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
fn run_sdk(env: &Env, python: &std::path::Path, script: &str) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk").join(script);
    let out = std::process::Command::new(python)
        .arg(&script)
        .env("OPENAI_BASE_URL", env.url("/llm/openai/v1"))
        .env("OPENAI_API_KEY", &env.token)
        .env("ANTHROPIC_BASE_URL", env.url("/llm/anthropic"))
        .env("ANTHROPIC_API_KEY", &env.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdks_work_through_steward() {
    let Some(python) = sdk_python() else { return };
    let env = env_with_cap(1.0).await;

    let openai = run_sdk(&env, &python, "openai_client.py");
    assert!(!openai["chat_text"].as_str().unwrap().is_empty());
    assert!(openai["chat_usage"].as_u64().unwrap() > 0);
    assert!(!openai["stream_text"].as_str().unwrap().is_empty());
    assert_eq!(openai["stream_usage_chunks"], 0, "the SDK must not see the usage chunk it did not ask for");
    assert!(openai["embedding_len"].as_u64().unwrap() > 0);
    assert_eq!(openai["unknown_price"], "unknown_price");
    assert_eq!(openai["spend_cap"], "spend_cap");

    let anthropic = run_sdk(&env, &python, "anthropic_client.py");
    assert!(!anthropic["text"].as_str().unwrap().is_empty());
    assert!(anthropic["stream_output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(anthropic["unknown_price"], "unknown_price");
    assert_eq!(anthropic["spend_cap"], "spend_cap");

    // The SDKs' own retries did not multiply anything: each refusal was asked once,
    // and refused calls never reached the upstream.
    let last = env.steward(&["last", "--json", "-n", "100", "--failed"]);
    let rows: Value = serde_json::from_slice(&last.stdout).unwrap();
    let refused: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["decision"].as_str().unwrap()).collect();
    assert_eq!(refused.iter().filter(|d| **d == "spend_cap").count(), 2, "{refused:?}");
    assert_eq!(refused.iter().filter(|d| **d == "unknown_price").count(), 2, "{refused:?}");
    assert_eq!(env.mock.requests().len(), 5, "only the allowed calls reached the upstream");
    env.assert_no_secret_leaked();
}

/// Issue 23 item 9: a stream steward ends with an error (the upstream cut
/// it, or it passed its reserved output) surfaces in the official SDKs as
/// the API's error with steward's message, not `APIConnectionError`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_show_the_error_event_of_a_stream_steward_ended() {
    let Some(python) = sdk_python() else { return };
    let env = env_with_cap(1.0).await;
    let out = run_sdk(&env, &python, "stream_errors.py");
    assert_eq!(out["openai_cut"]["type"], "APIError", "{out}");
    assert!(out["openai_cut"]["message"].as_str().unwrap().contains("the upstream cut this stream"), "{out}");
    // Anthropic's SDK raises its status error (the stream's status was 200).
    assert_eq!(out["anthropic_cut"]["type"], "APIStatusError", "{out}");
    assert!(out["anthropic_cut"]["message"].as_str().unwrap().contains("upstream_cut"), "{out}");
    assert_eq!(out["openai_exceeded"]["type"], "APIError", "{out}");
    assert!(out["openai_exceeded"]["message"].as_str().unwrap().contains("10 output tokens"), "{out}");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_llm_call_never_logs_its_prompt() {
    let env = env_with_cap(5.0).await;
    let response = env
        .client()
        .post(env.url("/llm/openai/v1/chat/completions"))
        .bearer_auth("stw_wrong")
        .json(&json!({ "model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "system prompt canary-prompt-7731"},
            {"role": "user", "content": "hi"}] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let lines = env.wait_audit_lines(1).await;
    assert_eq!(lines[0]["decision"], "unauthenticated");
    assert_eq!(lines[0]["input_summary"], "");
    assert!(!lines[0].to_string().contains("canary-prompt-7731"));
    env.assert_no_secret_leaked();
}
