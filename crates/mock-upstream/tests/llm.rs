//! Integration tests for the fake LLM providers: response shapes, usage in
//! the places the real APIs put it (streaming and not), the `x-mock-*`
//! knobs, provider-shaped errors and cut streams.

mod common;

use common::{SseEvent, client, parse_sse, read_body};
use mock_upstream::{Faults, MockUpstream};
use serde_json::{Value, json};

#[expect(clippy::unwrap_used, reason = "test helper")]
async fn post(mock: &MockUpstream, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().post(format!("{}{path}", mock.base_url())).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Posts a streaming request and returns its events, asserting a clean end.
async fn stream_events(mock: &MockUpstream, path: &str, body: Value, headers: &[(&str, &str)]) -> Vec<SseEvent> {
    let response = post(mock, path, body, headers).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream; charset=utf-8");
    let (bytes, error) = read_body(response).await;
    assert!(error.is_none(), "stream ended with {error:?}");
    parse_sse(&bytes)
}

const TOKEN_HEADERS: [(&str, &str); 5] = [
    ("x-mock-input-tokens", "120"),
    ("x-mock-output-tokens", "9"),
    ("x-mock-cached-tokens", "100"),
    ("x-mock-reasoning-tokens", "4"),
    ("x-mock-chunks", "3"),
];

// ---------------------------------------------------------------- OpenAI chat

#[tokio::test]
async fn chat_non_streaming_has_usage_and_echoes_model() {
    let mock = MockUpstream::start().await.unwrap();
    let response = post(
        &mock,
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        &TOKEN_HEADERS,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from the");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({
            "prompt_tokens": 120,
            "completion_tokens": 9,
            "total_tokens": 129,
            "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 4, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
            }
        })
    );
}

#[tokio::test]
async fn chat_default_token_counts_follow_body_and_chunks() {
    let mock = MockUpstream::start().await.unwrap();
    let request = json!({"model": "m", "messages": [{"role": "user", "content": "count me"}]});
    let body_len = serde_json::to_vec(&request).unwrap().len() as u64;
    let body: Value = post(&mock, "/v1/chat/completions", request, &[]).await.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], body_len.div_ceil(4));
    assert_eq!(body["usage"]["completion_tokens"], mock_upstream::llm::DEFAULT_CHUNKS);
}

#[tokio::test]
async fn chat_streaming_without_include_usage_has_no_usage_anywhere() {
    let mock = MockUpstream::start().await.unwrap();
    let events = stream_events(
        &mock,
        "/v1/chat/completions",
        json!({"model": "gpt-4.1", "stream": true, "messages": []}),
        &[("x-mock-chunks", "4")],
    )
    .await;
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(SseEvent::json).collect();
    assert_eq!(chunks.len(), 1 + 4 + 1, "role, 4 deltas, finish");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4.1");
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert_eq!(chunk["id"], chunks[0]["id"]);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks[1..5].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert_eq!(text, "Hello from the mock");
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn chat_streaming_with_include_usage_ends_with_a_usage_chunk() {
    let mock = MockUpstream::start().await.unwrap();
    let events = stream_events(
        &mock,
        "/v1/chat/completions",
        json!({
            "model": "gpt-4o-mini", "stream": true, "messages": [],
            "stream_options": {"include_usage": true}
        }),
        &TOKEN_HEADERS,
    )
    .await;
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(SseEvent::json).collect();
    assert_eq!(chunks.len(), 1 + 3 + 1 + 1);
    let (usage_chunk, others) = chunks.split_last().unwrap();
    for chunk in others {
        assert_eq!(chunk["usage"], Value::Null, "{chunk}");
        assert!(chunk.get("usage").is_some(), "usage: null is present");
    }
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 120);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 9);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 129);
    assert_eq!(usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    assert_eq!(usage_chunk["usage"]["completion_tokens_details"]["reasoning_tokens"], 4);
}

#[tokio::test]
async fn chat_stream_cut_fault_ends_without_done() {
    let mock = MockUpstream::start().await.unwrap();
    let response = post(
        &mock,
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": [],
               "stream_options": {"include_usage": true}}),
        &[("x-mock-fault", "cut"), ("x-mock-chunks", "6")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let (bytes, error) = read_body(response).await;
    assert!(error.is_some(), "a cut stream must end with a client-visible error");
    let events = parse_sse(&bytes);
    // role + 6 deltas + finish + usage + [DONE] = 10 events; cut after 5.
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    assert!(events.iter().all(|e| e.json()["usage"].is_null()));
}

#[tokio::test]
async fn cut_stream_after_fault_applies_to_llm_streams() {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_faults(Faults { cut_stream_after: Some(2), ..Faults::default() });
    let response = post(
        &mock,
        "/v1/messages",
        json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true, "messages": []}),
        &[],
    )
    .await;
    let (bytes, error) = read_body(response).await;
    assert!(error.is_some());
    let names: Vec<String> = parse_sse(&bytes).into_iter().filter_map(|e| e.event).collect();
    assert_eq!(names, ["message_start", "content_block_start"]);
}

#[tokio::test]
async fn non_streaming_cut_breaks_the_json_body() {
    let mock = MockUpstream::start().await.unwrap();
    let response =
        post(&mock, "/v1/chat/completions", json!({"model": "m", "messages": []}), &[("x-mock-fault", "cut")]).await;
    assert_eq!(response.status(), 200);
    let (bytes, error) = read_body(response).await;
    assert!(error.is_some());
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err(), "half a JSON document");
}

// ----------------------------------------------------------- OpenAI responses

#[tokio::test]
async fn responses_non_streaming_has_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let body: Value = post(
        &mock,
        "/v1/responses",
        json!({"model": "gpt-4.1", "input": "hi", "instructions": "be brief"}),
        &TOKEN_HEADERS,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "gpt-4.1");
    assert_eq!(body["instructions"], "be brief");
    assert_eq!(body["output"][0]["type"], "message");
    assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(body["output"][0]["content"][0]["text"], "Hello from the");
    assert_eq!(
        body["usage"],
        json!({
            "input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 100},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 4},
            "total_tokens": 129
        })
    );
}

#[tokio::test]
async fn responses_streaming_events_and_completed_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let events = stream_events(
        &mock,
        "/v1/responses",
        json!({"model": "gpt-4.1", "input": "hi", "stream": true}),
        &TOKEN_HEADERS,
    )
    .await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, event) in events.iter().enumerate() {
        let data = event.json();
        assert_eq!(data["type"], event.event.as_deref().unwrap());
        assert_eq!(data["sequence_number"], i);
    }
    let created = events[0].json();
    assert_eq!(created["response"]["status"], "in_progress");
    assert_eq!(created["response"]["usage"], Value::Null);
    let deltas: String = events[4..7].iter().map(|e| e.json()["delta"].as_str().unwrap().to_owned()).collect();
    assert_eq!(deltas, "Hello from the");
    let completed = events.last().unwrap().json();
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(completed["response"]["usage"]["input_tokens"], 120);
    assert_eq!(completed["response"]["usage"]["output_tokens"], 9);
    assert_eq!(completed["response"]["usage"]["input_tokens_details"]["cached_tokens"], 100);
    assert!(events.iter().all(|e| e.data != "[DONE]"), "no [DONE] sentinel");
}

// ---------------------------------------------------------- OpenAI embeddings

#[tokio::test]
async fn embeddings_float_and_base64() {
    let mock = MockUpstream::start().await.unwrap();
    let body: Value = post(
        &mock,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 4}),
        &[("x-mock-input-tokens", "2")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(body["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[1]["object"], "embedding");
    let floats: Vec<f32> =
        data[0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(floats.len(), 4);

    let encoded: Value = post(
        &mock,
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "a", "dimensions": 4,
               "encoding_format": "base64"}),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    use base64::Engine as _;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(encoded["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let decoded: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(decoded, floats, "same input, same vector, either encoding");
}

#[tokio::test]
async fn models_lists_follow_the_provider() {
    let mock = MockUpstream::start().await.unwrap();
    let url = format!("{}/v1/models", mock.base_url());
    let openai: Value = client().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["object"], "model");
    assert!(openai["data"][0]["id"].is_string());

    let anthropic: Value =
        client().get(&url).header("anthropic-version", "2023-06-01").send().await.unwrap().json().await.unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["has_more"], false);
}

// ------------------------------------------------------------------ Anthropic

#[tokio::test]
async fn messages_non_streaming_has_usage() {
    let mock = MockUpstream::start().await.unwrap();
    let response = post(
        &mock,
        "/v1/messages",
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
               "messages": [{"role": "user", "content": "hi"}]}),
        &[
            ("x-mock-input-tokens", "20"),
            ("x-mock-cached-tokens", "15"),
            ("x-mock-cache-write-tokens", "5"),
            ("x-mock-chunks", "2"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["content"], json!([{"type": "text", "text": "Hello from"}]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 20);
    assert_eq!(body["usage"]["output_tokens"], 2);
    assert_eq!(body["usage"]["cache_read_input_tokens"], 15);
    assert_eq!(body["usage"]["cache_creation_input_tokens"], 5);
}

#[tokio::test]
async fn messages_streaming_splits_usage_like_the_real_api() {
    let mock = MockUpstream::start().await.unwrap();
    let events = stream_events(
        &mock,
        "/v1/messages",
        json!({"model": "claude-haiku-4-5", "max_tokens": 100, "stream": true, "messages": []}),
        &[
            ("x-mock-input-tokens", "33"),
            ("x-mock-output-tokens", "12"),
            ("x-mock-chunks", "3"),
            ("x-mock-delay-ms", "1"),
        ],
    )
    .await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for event in &events {
        assert_eq!(event.json()["type"], event.event.as_deref().unwrap());
    }
    let start = events[0].json();
    assert_eq!(start["message"]["model"], "claude-haiku-4-5");
    assert_eq!(start["message"]["usage"]["input_tokens"], 33);
    assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 0);
    let text: String = events[3..6]
        .iter()
        .map(|e| {
            let data = e.json();
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from the");
    let delta = events[7].json();
    assert_eq!(delta["usage"]["output_tokens"], 12);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
}

#[tokio::test]
async fn messages_stream_cut_stops_half_way() {
    let mock = MockUpstream::start().await.unwrap();
    let response = post(
        &mock,
        "/v1/messages",
        json!({"model": "claude-haiku-4-5", "max_tokens": 10, "stream": true, "messages": []}),
        &[("x-mock-fault", "cut"), ("x-mock-chunks", "5")],
    )
    .await;
    let (bytes, error) = read_body(response).await;
    assert!(error.is_some());
    let names: Vec<String> = parse_sse(&bytes).into_iter().filter_map(|e| e.event).collect();
    // 3 + 5 deltas + 3 = 11 events; cut after 5.
    assert_eq!(names.len(), 5);
    assert!(!names.iter().any(|n| n == "message_delta" || n == "message_stop"));
}

// --------------------------------------------------------------------- errors

#[tokio::test]
async fn fault_429_uses_each_providers_error_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let openai = post(
        &mock,
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
        &[("x-mock-fault", "429"), ("x-mock-retry-after", "7")],
    )
    .await;
    assert_eq!(openai.status(), 429);
    assert_eq!(openai.headers()["retry-after"], "7");
    let body: Value = openai.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].is_string());
    assert!(body["error"].get("param").is_some());

    let anthropic =
        post(&mock, "/v1/messages", json!({"model": "m", "max_tokens": 1, "messages": []}), &[("x-mock-fault", "429")])
            .await;
    assert_eq!(anthropic.status(), 429);
    assert_eq!(anthropic.headers()["retry-after"], "1");
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn fault_529_is_anthropic_overloaded() {
    let mock = MockUpstream::start().await.unwrap();
    let response = post(
        &mock,
        "/v1/messages",
        json!({"model": "m", "max_tokens": 1, "stream": true, "messages": []}),
        &[("x-mock-fault", "529")],
    )
    .await;
    assert_eq!(response.status(), 529);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
}

#[tokio::test]
async fn server_faults_apply_to_llm_endpoints_in_provider_shape() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_status(503);
    let response = post(&mock, "/v1/responses", json!({"model": "m", "input": "x"}), &[]).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
}

#[tokio::test]
async fn invalid_requests_are_refused_in_provider_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let missing_model = post(&mock, "/v1/chat/completions", json!({"messages": []}), &[]).await;
    assert_eq!(missing_model.status(), 400);
    let body: Value = missing_model.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let not_json = client().post(format!("{}/v1/messages", mock.base_url())).body("{nope").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let bad_knob =
        post(&mock, "/v1/messages", json!({"model": "m", "messages": []}), &[("x-mock-chunks", "lots")]).await;
    assert_eq!(bad_knob.status(), 400);
}

#[tokio::test]
async fn llm_requests_are_recorded_with_provider_headers() {
    let mock = MockUpstream::start().await.unwrap();
    post(
        &mock,
        "/v1/messages",
        json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}),
        &[("x-api-key", "sk-ant-real"), ("anthropic-version", "2023-06-01")],
    )
    .await;
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].header("X-Api-Key"), Some("sk-ant-real"));
    assert_eq!(requests[0].json().unwrap()["model"], "claude-haiku-4-5");
}
