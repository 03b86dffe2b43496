//! Credentials an upstream echoes back never reach the agent (issue 12 item
//! 5): `steward run` in front of mock-upstream's `/reflect`, which hands the
//! credential steward injected back in headers and body, and scripted
//! streams carrying it one byte per chunk. One test per carrier.

mod common;

use std::time::Duration;

use common::{CANARY_LLM_KEY, CANARY_TOKEN, DEFAULT_TOOLS, Env};
use mock_upstream::Script;
use reqwest::Method;
use serde_json::json;

/// The default tools plus `/reflect`, and an LLM provider on the mock.
fn config() -> String {
    format!(
        r#"{DEFAULT_TOOLS}
[[tools]]
name = "reflect"
upstream = "social"
match = "* /reflect"

[llm.openai]
kind = "openai"
base_url = "{{base}}"
credential = "llm"

[spend]
daily_cap_usd = 5.0
default_max_output_tokens = 100
"#
    )
}

async fn env() -> Env {
    let mut env = Env::with_tools("", &config()).await;
    env.start();
    env
}

/// The credentials in every form a test looks for: raw, base64 (both
/// alphabets), percent-encoded, JSON-escaped.
fn needles() -> Vec<String> {
    let mut needles = common::with_encodings(&[CANARY_TOKEN, CANARY_LLM_KEY]);
    for secret in [CANARY_TOKEN, CANARY_LLM_KEY] {
        needles.push(percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string());
    }
    needles
}

fn assert_clean(what: &str, bytes: &[u8]) {
    leak_check::assert_clean(what, bytes, &needles());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_echoing_the_credential_is_scrubbed() {
    let env = env().await;
    let response = env.req(Method::GET, "/api/social/reflect").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none(), "a scrubbed body changes length");
    let body = response.bytes().await.unwrap();
    assert_clean("the body", &body);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["authorization"], "Bearer [REDACTED:social]");
    assert_eq!(json["token"], "[REDACTED:social]");
    // `base64("user:" + token)`: the token sits at an offset inside the blob.
    assert!(json["basic"].as_str().unwrap().contains("[REDACTED:social]"), "{json}");
    // The upstream did get the real credential.
    assert_eq!(env.mock.requests()[0].header("authorization"), Some(format!("Bearer {CANARY_TOKEN}").as_str()));
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_body_echoing_the_credential_is_scrubbed() {
    let env = env().await;
    let response = env.req(Method::POST, "/api/social/reflect?status=401").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body = response.bytes().await.unwrap();
    assert_clean("the error body", &body);
    assert!(String::from_utf8_lossy(&body).contains("[REDACTED:social]"));
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_header_echoing_the_credential_is_scrubbed() {
    let env = env().await;
    let response = env.req(Method::GET, "/api/social/reflect").send().await.unwrap();
    assert_eq!(response.headers()["x-debug-token"], "[REDACTED:social]");
    for (name, value) in response.headers() {
        assert_clean(name.as_str(), value.as_bytes());
    }
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_carrying_the_credential_is_scrubbed() {
    let env = env().await;
    env.mock.push_script(
        Script::json("{}")
            .header("set-cookie", &format!("sid={CANARY_TOKEN}; HttpOnly"))
            .header("set-cookie", "theme=dark"),
    );
    let response = env.req(Method::GET, "/api/social/reflect").send().await.unwrap();
    let cookies: Vec<&str> = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["sid=[REDACTED:social]; HttpOnly", "theme=dark"], "every value kept, in order");
    // `/reflect`'s own cookie holds the token base64-encoded.
    let response = env.req(Method::GET, "/api/social/reflect").send().await.unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert_eq!(cookie, "session=[REDACTED:social]; Path=/");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_location_carrying_the_credential_is_scrubbed() {
    let env = env().await;
    let response = env.req(Method::GET, "/api/social/reflect?status=302").send().await.unwrap();
    assert_eq!(response.status(), 302, "redirects are relayed, never followed");
    assert_eq!(response.headers()["location"], "/callback?token=[REDACTED:social]");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_carrying_the_credential_one_byte_per_chunk_is_scrubbed() {
    let env = env().await;
    let response = env.req(Method::GET, "/api/social/reflect?sse=1&chunk=1&delay_ms=1").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_clean("the stream", text.as_bytes());
    assert!(text.contains(r#"data: {"token":"[REDACTED:social]"}"#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    env.assert_no_secret_leaked();
}

/// The LLM door: a provider echoing its key inside a stream, one byte per
/// chunk. The agent gets it scrubbed while the usage parser, which reads
/// the upstream's own bytes, still bills the reported usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_stream_echoing_the_key_is_scrubbed_and_still_billed() {
    let env = env().await;
    let chunk = |content: &str| {
        format!(
            "data: {}\n\n",
            json!({"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": content}}]})
        )
    };
    let usage = json!({"model": "gpt-4o-mini", "choices": [],
                       "usage": {"prompt_tokens": 40, "completion_tokens": 3}});
    let stream = [
        chunk("your key is "),
        chunk(CANARY_LLM_KEY),
        chunk("!"),
        format!("data: {usage}\n\n"),
        "data: [DONE]\n\n".into(),
    ];
    env.mock.push_script(Script::sse(stream).split(1).paced(Duration::from_millis(1)));
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "key?"}]});
    let response = env.req(Method::POST, "/llm/openai/v1/chat/completions").json(&body).send().await.unwrap();
    let text = response.text().await.unwrap();
    assert_clean("the LLM stream", text.as_bytes());
    assert!(text.contains(r#""content":"[REDACTED:llm]""#), "{text}");
    assert!(!text.contains("\"usage\":{"), "the usage chunk steward asked for stays hidden: {text}");
    let lines = env.wait_audit_lines(1).await;
    assert_eq!(lines[0]["input_tokens"], 40, "{}", lines[0]);
    assert_eq!(lines[0]["output_tokens"], 3);
    assert_eq!(lines[0]["billing"], "reported");
    env.assert_no_secret_leaked();
}
