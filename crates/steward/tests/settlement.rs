//! LLM spend settlement against a lying or broken upstream (issue 23, "LLM
//! spend settlement"): `steward run` in front of scripted mock-upstream
//! streams of every shape the issue found, an alert receiver, and the
//! ledger read back through `steward spend` and the audit log.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DEFAULT_TOOLS, Env};
use mock_upstream::{Script, ScriptEnd};
use reqwest::Method;
use serde_json::{Value, json};

/// Notices the alert receiver got.
type Inbox = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let kept = Arc::clone(&inbox);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let kept = Arc::clone(&kept);
            async move {
                kept.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// A daemon with both providers on the mock, a cap, and alerts to a receiver.
async fn env(cap_usd: f64) -> (Env, Inbox) {
    let (hook, inbox) = receiver().await;
    let config = format!(
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

[alerts]
repeat_every = "1h"

[[alerts.sinks]]
kind = "webhook"
url = "file:hook.url"
"#
    );
    let mut env = Env::with_tools("", &config).await;
    common::private_file(&env.dir.path().join("hook.url"), &format!("{hook}\n"));
    env.start();
    (env, inbox)
}

const MINI: &str = "gpt-4o-mini";

fn chat(stream: bool) -> Value {
    json!({ "model": MINI, "stream": stream, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}] })
}

fn messages() -> Value {
    json!({ "model": "claude-haiku-4-5", "stream": true, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}] })
}

fn delta(model: &str, content: &str) -> String {
    format!("data: {}\n\n", json!({"model": model, "choices": [{"index": 0, "delta": {"content": content}}]}))
}

fn usage(model: &str, input: u64, output: u64) -> String {
    format!(
        "data: {}\n\n",
        json!({"model": model, "choices": [], "usage": {"prompt_tokens": input, "completion_tokens": output}})
    )
}

const DONE: &str = "data: [DONE]\n\n";

fn anthropic_event(kind: &str, data: Value) -> String {
    let mut data = data;
    data["type"] = json!(kind);
    format!("event: {kind}\ndata: {data}\n\n")
}

fn anthropic_stream(output_usage: Value, deltas: usize) -> Vec<String> {
    let mut events = vec![anthropic_event(
        "message_start",
        json!({"message": {"model": "claude-haiku-4-5", "usage": {"input_tokens": 20, "output_tokens": 1}}}),
    )];
    for _ in 0..deltas {
        events.push(anthropic_event(
            "content_block_delta",
            json!({"index": 0, "delta": {"type": "text_delta", "text": "a"}}),
        ));
    }
    events.push(anthropic_event("message_delta", json!({"delta": {"stop_reason": "end_turn"}, "usage": output_usage})));
    events.push(anthropic_event("message_stop", json!({})));
    events
}

async fn post(env: &Env, path: &str, body: Value) -> (u16, String) {
    let body = &body;
    let response = env.req(Method::POST, path).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The audit line of the `n`-th call (1-based), once written.
async fn audit_line(env: &Env, n: usize) -> Value {
    let lines = env.wait_audit_lines(n).await;
    assert!(lines.len() >= n, "only {} audit lines", lines.len());
    lines[n - 1].clone()
}

/// The last SSE `data:` payload of a body.
fn last_data(body: &str) -> Value {
    let data = body.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().unwrap();
    serde_json::from_str(data).unwrap()
}

async fn wait_for_alert(inbox: &Inbox, key: &str) -> Value {
    // The engine evaluates right after a bus event, and every 5 s anyway.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(notice) = inbox.lock().unwrap().iter().find(|n| n["key"] == key && n["status"] == "firing") {
            return notice.clone();
        }
        assert!(Instant::now() < deadline, "no `{key}` alert: {:?}", inbox.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spend_json(env: &Env) -> Value {
    let out = env.steward(&["spend", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Item 1: usage beyond the reservation is billed, stops the day at once,
/// and alerts naming provider and model; `steward resume` lifts the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_beyond_the_reservation_is_billed_stops_the_day_and_alerts() {
    let (env, inbox) = env(5.0).await;
    env.mock.push_script(Script::sse([delta(MINI, "hi"), usage(MINI, 50, 5000), DONE.to_owned()]));
    let (status, body) = post(&env, "/llm/openai/v1/chat/completions", chat(true)).await;
    assert_eq!(status, 200);
    // The usage chunk itself passes the reservation: the stream ends there.
    assert_eq!(last_data(&body)["error"]["code"], "output_exceeded", "{body}");
    let line = audit_line(&env, 1).await;
    assert_eq!(line["output_tokens"], 5000, "what was reported is billed: {line}");
    // 50 × $0.15 + 5000 × $0.60 per 1M, rounded up to the micro-dollar.
    assert_eq!(line["cost_usd"], 0.003008, "{line}");
    assert!(line["billing_note"].as_str().unwrap().contains("provider `openai` (model `gpt-4o-mini`)"), "{line}");

    // Far under the $5 cap, and refused: the day is stopped.
    let (status, body) = post(&env, "/llm/openai/v1/chat/completions", chat(false)).await;
    assert_eq!(status, 429, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "spend_cap");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("stopped for today") && message.contains("steward resume"), "{message}");
    assert_eq!(env.mock.requests().len(), 1, "the refused call never reached the provider");
    assert!(spend_json(&env)["today"]["stopped"].as_str().unwrap().contains("gpt-4o-mini"));
    let status: Value = serde_json::from_slice(&env.steward(&["status", "--json"]).stdout).unwrap();
    assert!(status["spend"]["stopped"].as_str().unwrap().contains("`openai`"), "{status}");

    let alert = wait_for_alert(&inbox, "spend_overrun").await;
    let text = alert["message"].as_str().unwrap();
    assert!(text.contains("`openai`") && text.contains("gpt-4o-mini"), "{alert}");
    assert_eq!(alert["severity"], "critical");

    let out = env.steward(&["resume"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("LLM calls are allowed again"), "{out:?}");
    let (status, _) = post(&env, "/llm/openai/v1/chat/completions", chat(false)).await;
    assert_eq!(status, 200);
    env.assert_no_secret_leaked();
}

/// Item 1: a stream whose output passes the reserved output tokens is ended
/// there, with the provider's error shape, and billed what was streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_its_reserved_output_is_ended_with_the_providers_error() {
    let (env, _inbox) = env(5.0).await;
    // 300 deltas (no usage) for a request of max_tokens 100; the upstream
    // would go on forever.
    let frames: Vec<String> = (0..300).map(|_| delta(MINI, "a")).collect();
    env.mock.push_script(Script::sse(frames).ending(ScriptEnd::HoldOpen));
    let started = Instant::now();
    let (status, body) = post(&env, "/llm/openai/v1/chat/completions", chat(true)).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "ended by steward, not by a timeout");
    let error = last_data(&body);
    assert_eq!(error["error"]["code"], "output_exceeded", "{body}");
    assert!(error["error"]["message"].as_str().unwrap().contains("100 output tokens"));
    let relayed = body.matches("\"content\":\"a\"").count();
    assert!((100..=101).contains(&relayed), "relayed up to the reservation: {relayed}");
    let line = audit_line(&env, 1).await;
    assert_eq!(line["billing"], "estimated");
    assert_eq!(line["output_tokens"], 101);
    assert!(line["reason"].as_str().unwrap().contains("reserved output tokens"), "{line}");

    // Anthropic: `event: error`, after the usage it streams (message_delta
    // reports 400 output tokens before the stream goes on).
    env.steward(&["resume"]);
    let mut events = anthropic_stream(json!({"output_tokens": 400}), 3);
    events.pop();
    events.push(anthropic_event(
        "content_block_delta",
        json!({"index": 0, "delta": {"type": "text_delta", "text": "b"}}),
    ));
    env.mock.push_script(Script::sse(events).ending(ScriptEnd::HoldOpen));
    let response =
        env.client().post(env.url("/llm/anthropic/v1/messages")).header("x-api-key", &env.token).json(&messages());
    let body = response.send().await.unwrap().text().await.unwrap();
    assert!(body.ends_with("\n\n") && body.contains("event: error\ndata: "), "{body}");
    assert_eq!(last_data(&body)["error"]["reason"], "output_exceeded");
    let line = audit_line(&env, 2).await;
    assert_eq!(line["output_tokens"], 400);
    env.assert_no_secret_leaked();
}

/// Item 2: cumulative usage reported twice, the later report lower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reported_twice_bills_the_larger_of_each_field() {
    let (env, _inbox) = env(5.0).await;
    env.mock.push_script(Script::sse([usage(MINI, 300, 90), usage(MINI, 10, 1), DONE.to_owned()]));
    post(&env, "/llm/openai/v1/chat/completions", chat(true)).await;
    let line = audit_line(&env, 1).await;
    assert_eq!((line["input_tokens"].as_u64(), line["output_tokens"].as_u64()), (Some(300), Some(90)), "{line}");
    assert_eq!(line["cost_usd"], 0.000099, "{line}");
    env.mock.push_script(Script::sse(anthropic_stream(json!({"input_tokens": 0, "output_tokens": 5}), 5)));
    let response =
        env.client().post(env.url("/llm/anthropic/v1/messages")).header("x-api-key", &env.token).json(&messages());
    response.send().await.unwrap().text().await.unwrap();
    let line = audit_line(&env, 2).await;
    assert_eq!(line["input_tokens"], 20, "message_start's input count stands: {line}");
    env.assert_no_secret_leaked();
}

/// Item 3: usage inside an event over 4 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_to_parse_bills_the_reservation_and_says_so() {
    let (env, _inbox) = env(5.0).await;
    let padding = "x".repeat(4 << 20);
    let huge = format!(
        "data: {}\n\n",
        json!({"model": MINI, "pad": padding, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}})
    );
    env.mock.push_script(Script::sse([delta(MINI, "a"), huge, DONE.to_owned()]));
    let (status, body) = post(&env, "/llm/openai/v1/chat/completions", chat(true)).await;
    assert_eq!(status, 200);
    assert!(body.ends_with(DONE));
    let line = audit_line(&env, 1).await;
    assert_eq!(line["billing"], "reservation", "{line}");
    assert!(line["billing_note"].as_str().unwrap().contains("over 4 MiB"), "{line}");
    let reserved = line["cost_usd"].as_f64().unwrap();
    assert!(reserved > 0.00006, "at least the 100 reserved output tokens: {line}");
    env.assert_no_secret_leaked();
}

/// Item 4: a missing, null or negative Anthropic `output_tokens`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_anthropic_output_count_settles_at_the_reservation() {
    let (env, _inbox) = env(5.0).await;
    for (n, output) in [json!({}), json!({"output_tokens": null}), json!({"output_tokens": -5})].into_iter().enumerate()
    {
        env.mock.push_script(Script::sse(anthropic_stream(output, 5)));
        let request = env.client().post(env.url("/llm/anthropic/v1/messages")).header("x-api-key", &env.token);
        request.json(&messages()).send().await.unwrap().text().await.unwrap();
        let line = audit_line(&env, n + 1).await;
        assert_eq!(line["billing"], "reservation", "{line}");
        // Reservation: 100 output tokens at $5/1M at least.
        assert!(line["cost_usd"].as_f64().unwrap() >= 0.0005, "{line}");
    }
    env.assert_no_secret_leaked();
}

/// Item 5: usage naming another model bills the dearer price and alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_naming_another_model_bills_the_dearer_price_and_alerts() {
    let (env, inbox) = env(5.0).await;
    let body = json!({"id": "x", "model": "o1-pro", "choices": [],
                      "usage": {"prompt_tokens": 1000, "completion_tokens": 10}});
    env.mock.push_script(Script::json(body.to_string()));
    post(&env, "/llm/openai/v1/chat/completions", chat(false)).await;
    let line = audit_line(&env, 1).await;
    // o1-pro: 1000 × $150 + 10 × $600 per 1M = $0.156, not gpt-4o-mini's $0.000156.
    assert!((line["cost_usd"].as_f64().unwrap() - 0.156).abs() < 1e-9, "{line}");
    assert!(line["billing_note"].as_str().unwrap().contains("o1-pro"));
    let alert = wait_for_alert(&inbox, "usage_model_mismatch").await;
    assert!(alert["message"].as_str().unwrap().contains("o1-pro"), "{alert}");
    env.assert_no_secret_leaked();
}

/// Item 6: an HTTP 500 carrying a whole stream with usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_carrying_usage_bills_the_usage() {
    let (env, _inbox) = env(5.0).await;
    env.mock.push_script(Script::sse([delta(MINI, "a"), usage(MINI, 1000, 50), DONE.to_owned()]).status(500));
    let (status, _) = post(&env, "/llm/openai/v1/chat/completions", chat(true)).await;
    assert_eq!(status, 500);
    let line = audit_line(&env, 1).await;
    assert_eq!(line["billing"], "reported", "{line}");
    assert!((line["cost_usd"].as_f64().unwrap() - 0.00018).abs() < 1e-9, "{line}");
    env.assert_no_secret_leaked();
}

/// Item 7: 10^18 tokens on two concurrent streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_counts_saturate_settle_stop_the_day_and_keep_every_row() {
    let (env, inbox) = env(5.0).await;
    for _ in 0..2 {
        let frames =
            [delta(MINI, "a"), usage(MINI, 1_000_000_000_000_000_000, 1_000_000_000_000_000_000), DONE.to_owned()];
        env.mock.push_script(Script::sse(frames).paced(Duration::from_millis(50)));
    }
    let (a, b) = tokio::join!(
        post(&env, "/llm/openai/v1/chat/completions", chat(true)),
        post(&env, "/llm/openai/v1/chat/completions", chat(true))
    );
    assert_eq!((a.0, b.0), (200, 200));
    let lines = env.wait_audit_lines(2).await;
    for line in &lines {
        assert_eq!(line["output_tokens"], 100_000_000, "saturated: {line}");
    }
    let last = env.steward(&["last", "--json"]);
    let rows: Value = serde_json::from_slice(&last.stdout).unwrap();
    assert!(rows.as_array().unwrap().iter().all(|r| r["finished_ms"].is_number() && r["status"] == 200), "{rows}");
    let (status, _) = post(&env, "/llm/openai/v1/chat/completions", chat(false)).await;
    assert_eq!(status, 429);
    let alert = wait_for_alert(&inbox, "spend_overrun").await;
    assert!(alert["message"].as_str().unwrap().contains("100000000 tokens"), "{alert}");
    env.assert_no_secret_leaked();
}

/// Item 8: after `[DONE]` the agent's stream ends at once and is settled,
/// though the upstream keeps the connection open; a client that closes
/// right after `[DONE]` leaves the usage billed, not "agent disconnected".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_event_ends_the_stream_at_once_and_keeps_its_usage() {
    let (env, _inbox) = env(5.0).await;
    let frames = [delta(MINI, "a"), usage(MINI, 70, 1), DONE.to_owned()];
    env.mock.push_script(Script::sse(frames.clone()).ending(ScriptEnd::HoldOpen));
    let started = Instant::now();
    let (_, body) = post(&env, "/llm/openai/v1/chat/completions", chat(true)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the upstream holds the connection open: not waited for");
    assert!(body.ends_with(DONE), "{body}");
    let line = audit_line(&env, 1).await;
    assert_eq!((line["input_tokens"].as_u64(), line["reason"].is_null()), (Some(70), true), "{line}");

    // An SDK-like client: reads up to `[DONE]`, then drops the connection.
    env.mock.push_script(Script::sse(frames).ending(ScriptEnd::HoldOpen));
    let mut response = env.req(Method::POST, "/llm/openai/v1/chat/completions").json(&chat(true)).send().await.unwrap();
    let mut seen = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        seen.extend_from_slice(&chunk);
        if seen.ends_with(DONE.as_bytes()) {
            break;
        }
    }
    drop(response);
    let line = audit_line(&env, 2).await;
    assert_eq!(line["billing"], "reported", "{line}");
    assert_eq!(line["input_tokens"], 70);
    assert!(line["reason"].is_null(), "not an agent disconnect: {line}");
    env.assert_no_secret_leaked();
}

/// Item 9: a cut stream ends with a final error event the SDK can show,
/// in each provider's shape, and the output seen is billed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_ends_with_an_error_event_in_the_providers_shape() {
    let (env, _inbox) = env(5.0).await;
    // Cut in the middle of an event: the half event is never relayed.
    env.mock.push_script(
        Script::sse([delta(MINI, "a"), delta(MINI, "b"), "data: {\"choi".to_owned()]).ending(ScriptEnd::Cut),
    );
    let (status, body) = post(&env, "/llm/openai/v1/chat/completions", chat(true)).await;
    assert_eq!(status, 200);
    assert!(!body.lines().any(|l| l == "data: {\"choi"), "half an event is never relayed: {body}");
    assert_eq!(body.matches("data: ").count(), 3, "{body}");
    let error = last_data(&body);
    assert_eq!(error["error"]["code"], "upstream_cut", "{body}");
    assert!(error["error"]["message"].as_str().unwrap().contains("cut"));
    let line = audit_line(&env, 1).await;
    assert_eq!((line["billing"].as_str(), line["output_tokens"].as_u64()), (Some("estimated"), Some(2)), "{line}");

    let mut events = anthropic_stream(json!({"output_tokens": 3}), 3);
    events.truncate(3);
    env.mock.push_script(Script::sse(events).ending(ScriptEnd::Cut));
    let request = env.client().post(env.url("/llm/anthropic/v1/messages")).header("x-api-key", &env.token);
    let body = request.json(&messages()).send().await.unwrap().text().await.unwrap();
    assert!(body.contains("event: error\ndata: "), "{body}");
    let error = last_data(&body);
    assert_eq!((error["type"].as_str(), error["error"]["reason"].as_str()), (Some("error"), Some("upstream_cut")));
    env.assert_no_secret_leaked();
}

/// The issue's load shape: 30 concurrent streams each reporting far more
/// than reserved against a small cap. Everything reported is billed, the
/// next call is refused, and an alert fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_over_reporting_streams_are_all_billed_then_refused_and_alerted() {
    // One worst case: ~1k input bound + 100 output at gpt-4o-mini prices,
    // about $0.0002; a $0.05 cap admits all 30.
    let cap = 0.05;
    let (env, inbox) = env(cap).await;
    for _ in 0..30 {
        let frames = [delta(MINI, "a"), delta(MINI, "b"), usage(MINI, 100, 60_000), DONE.to_owned()];
        // Slow enough that all 30 are admitted before the first one settles.
        env.mock.push_script(Script::sse(frames).paced(Duration::from_millis(400)));
    }
    // One client: building one per request takes longer than a stream lasts.
    let client = env.client();
    let calls = (0..30).map(|i| {
        // Distinct prompts: thirty identical calls would trip the loop breaker.
        let mut body = chat(true);
        body["messages"][0]["content"] = json!(format!("call {i}"));
        let request = client.post(env.url("/llm/openai/v1/chat/completions")).bearer_auth(&env.token).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{:?}", results.iter().map(|r| &r.1).collect::<Vec<_>>());
    let lines = env.wait_audit_lines(30).await;
    // 100 × $0.15 + 60,000 × $0.60 per 1M = $0.036015 each, as reported.
    let billed: f64 = lines.iter().map(|l| l["cost_usd"].as_f64().unwrap()).sum();
    assert!((billed - 30.0 * 0.036015).abs() < 1e-6, "billed {billed}");
    let spent = spend_json(&env)["today"]["spent_usd"].as_f64().unwrap();
    assert!((spent - billed).abs() < 1e-6, "ledger {spent} vs audit {billed}");
    let (status, body) = post(&env, "/llm/openai/v1/chat/completions", chat(false)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(env.mock.requests().len(), 30);
    wait_for_alert(&inbox, "spend_overrun").await;
    wait_for_alert(&inbox, "spend_cap").await;
    env.assert_no_secret_leaked();
}
