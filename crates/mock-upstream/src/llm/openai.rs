//! Owns the fake OpenAI API: Chat Completions, Responses, Embeddings and the
//! model list, with usage in exactly the places the real API puts it.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Exchange, is_stream, model_of, parse_object, sse_event};
use crate::api_error::{ApiError, Flavor};
use crate::clock::now_unix;
use crate::conn::ConnHandle;
use crate::state::Shared;

/// OpenAI's request-id response header.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `system_fingerprint` of every completion.
const FINGERPRINT: &str = "fp_mock";

/// Vector length when the request gives no `dimensions`.
///
/// Why: small keeps responses and benchmarks cheap; clients that need a
/// real size ask for it with `dimensions`.
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 8;

/// Largest `dimensions` accepted (`text-embedding-3-large` has 3072).
pub const MAX_EMBEDDING_DIMENSIONS: usize = 4096;

/// The models `GET /v1/models` lists: id, owner, creation time.
const MODELS: [(&str, &str, i64); 4] = [
    ("gpt-4o-mini", "system", 1_721_172_741),
    ("gpt-4.1", "system", 1_744_316_542),
    ("o4-mini", "system", 1_744_225_351),
    ("text-embedding-3-small", "system", 1_705_948_997),
];

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|error| error.to_response(Flavor::OpenAi))
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(chat(&shared, conn, &headers, &body))
}

fn chat(shared: &Shared, conn: ConnHandle, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let request = parse_object(body)?;
    let model = model_of(&request)?;
    let exchange = Exchange::new(shared, conn, headers, body.len(), REQUEST_ID)?;
    let knobs = &exchange.knobs;
    let id = format!("chatcmpl-mock{}", exchange.seq);
    let created = now_unix();
    let usage = json!({
        "prompt_tokens": knobs.input_tokens,
        "completion_tokens": knobs.output_tokens,
        "total_tokens": knobs.input_tokens.saturating_add(knobs.output_tokens),
        "prompt_tokens_details": { "cached_tokens": knobs.cached_tokens, "audio_tokens": 0 },
        "completion_tokens_details": {
            "reasoning_tokens": knobs.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    });

    if !is_stream(&request) {
        return Ok(exchange.json(&json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": knobs.text(),
                    "refusal": null,
                    "annotations": [],
                },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        })));
    }

    // Usage appears only when asked for: `null` on every chunk, then one
    // extra chunk with empty `choices` carrying it.
    let include_usage =
        request.get("stream_options").and_then(|options| options.get("include_usage")).and_then(Value::as_bool)
            == Some(true);
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        });
        if include_usage {
            chunk["usage"] = usage.cloned().unwrap_or(Value::Null);
        }
        sse_event(None, &chunk)
    };
    let choice = |delta: Value, finish: Value| json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]);
    let mut frames = Vec::with_capacity(knobs.chunks + 4);
    frames.push(chunk(choice(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null), None));
    for delta in knobs.deltas() {
        frames.push(chunk(choice(json!({ "content": delta }), Value::Null), None));
    }
    frames.push(chunk(choice(json!({}), json!("stop")), None));
    if include_usage {
        frames.push(chunk(json!([]), Some(&usage)));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    // The usage chunk and `[DONE]` follow the finish chunk at once.
    Ok(exchange.sse_with_tail(frames, 1 + usize::from(include_usage)))
}

/// `POST /v1/responses`.
pub(crate) async fn responses(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(create_response(&shared, conn, &headers, &body))
}

fn create_response(shared: &Shared, conn: ConnHandle, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let request = parse_object(body)?;
    let model = model_of(&request)?;
    let exchange = Exchange::new(shared, conn, headers, body.len(), REQUEST_ID)?;
    let knobs = &exchange.knobs;
    let response_id = format!("resp_mock{}", exchange.seq);
    let item_id = format!("msg_mock{}", exchange.seq);
    let text = knobs.text();
    let usage = json!({
        "input_tokens": knobs.input_tokens,
        "input_tokens_details": { "cached_tokens": knobs.cached_tokens },
        "output_tokens": knobs.output_tokens,
        "output_tokens_details": { "reasoning_tokens": knobs.reasoning_tokens },
        "total_tokens": knobs.input_tokens.saturating_add(knobs.output_tokens),
    });
    let part = |text: &str| json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] });
    let message = |status: &str, content: Value| {
        json!({
            "id": item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        })
    };
    let envelope = response_envelope(&request, &response_id, &model);
    let with = |status: &str, output: Value, usage: Value| {
        let mut response = envelope.clone();
        response.insert("status".to_owned(), json!(status));
        response.insert("output".to_owned(), output);
        response.insert("usage".to_owned(), usage);
        Value::Object(response)
    };
    let completed = with("completed", json!([message("completed", json!([part(&text)]))]), usage);

    if !is_stream(&request) {
        return Ok(exchange.json(&completed));
    }

    let in_progress = with("in_progress", json!([]), Value::Null);
    let mut events: Vec<(&str, Value)> = vec![
        ("response.created", json!({ "response": in_progress })),
        ("response.in_progress", json!({ "response": in_progress })),
        ("response.output_item.added", json!({ "output_index": 0, "item": message("in_progress", json!([])) })),
        (
            "response.content_part.added",
            json!({ "item_id": item_id, "output_index": 0, "content_index": 0, "part": part("") }),
        ),
    ];
    for delta in knobs.deltas() {
        events.push((
            "response.output_text.delta",
            json!({
                "item_id": item_id, "output_index": 0, "content_index": 0,
                "delta": delta, "logprobs": [],
            }),
        ));
    }
    events.extend([
        (
            "response.output_text.done",
            json!({
                "item_id": item_id, "output_index": 0, "content_index": 0,
                "text": text, "logprobs": [],
            }),
        ),
        (
            "response.content_part.done",
            json!({ "item_id": item_id, "output_index": 0, "content_index": 0, "part": part(&text) }),
        ),
        ("response.output_item.done", json!({ "output_index": 0, "item": message("completed", json!([part(&text)])) })),
        ("response.completed", json!({ "response": completed })),
    ]);
    let frames = events
        .into_iter()
        .enumerate()
        .map(|(sequence, (kind, mut data))| {
            data["type"] = json!(kind);
            data["sequence_number"] = json!(sequence);
            sse_event(Some(kind), &data)
        })
        .collect();
    Ok(exchange.sse(frames))
}

/// The fields of a `response` object that do not change while it streams,
/// echoing the request's settings as the real API does.
fn response_envelope(request: &Map<String, Value>, id: &str, model: &str) -> Map<String, Value> {
    let echo = |field: &str, default: Value| request.get(field).cloned().unwrap_or(default);
    let Value::Object(envelope) = json!({
        "id": id,
        "object": "response",
        "created_at": now_unix(),
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "model": model,
        "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
        "previous_response_id": echo("previous_response_id", Value::Null),
        "reasoning": { "effort": null, "summary": null },
        "store": echo("store", json!(true)),
        "temperature": echo("temperature", json!(1.0)),
        "text": { "format": { "type": "text" } },
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_p": echo("top_p", json!(1.0)),
        "truncation": "disabled",
        "user": null,
        "metadata": echo("metadata", json!({})),
    }) else {
        return Map::new();
    };
    envelope
}

/// `POST /v1/embeddings`: one deterministic vector per input (a hash of
/// the input text), as floats or, with `"encoding_format": "base64"`, as
/// little-endian f32 bytes in base64 (what the official Python SDK asks for).
pub(crate) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(embed(&shared, conn, &headers, &body))
}

fn embed(shared: &Shared, conn: ConnHandle, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    use base64::Engine as _;

    let request = parse_object(body)?;
    let model = model_of(&request)?;
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        // A flat array of token ids is one input.
        Some(Value::Array(items)) if items.iter().all(Value::is_number) && !items.is_empty() => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => {
            return Err(ApiError::Invalid("input: a string or a non-empty array is required".to_owned()));
        }
    };
    let dimensions = match request.get("dimensions") {
        None => DEFAULT_EMBEDDING_DIMENSIONS,
        Some(value) => value
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| (1..=MAX_EMBEDDING_DIMENSIONS).contains(d))
            .ok_or_else(|| ApiError::Invalid(format!("dimensions must be 1..={MAX_EMBEDDING_DIMENSIONS}")))?,
    };
    let base64 = match request.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::Invalid(format!("encoding_format {other:?} is not one of \"float\", \"base64\"")));
        }
    };
    let exchange = Exchange::new(shared, conn, headers, body.len(), REQUEST_ID)?;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding_of(input, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let tokens = exchange.knobs.input_tokens;
    Ok(exchange.json(&json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}

/// A deterministic pseudo-embedding: component `j` is FNV-1a of the text
/// and `j`, mapped to `-1..1`.
fn embedding_of(text: &str, dimensions: usize) -> Vec<f32> {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let base = text.bytes().fold(FNV_OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME));
    (0..dimensions)
        .map(|j| {
            let hash = (j as u64)
                .to_le_bytes()
                .iter()
                .fold(base, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME));
            let unit = (hash >> 40) as f32 / (1u64 << 24) as f32;
            unit * 2.0 - 1.0
        })
        .collect()
}

/// `GET /v1/models`: OpenAI's list, or Anthropic's when the request carries
/// `anthropic-version` (both providers serve this path).
pub(crate) async fn models(headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") {
        return super::anthropic::models();
    }
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, owner, created)| json!({ "id": id, "object": "model", "created": created, "owned_by": owner }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_and_bounded() {
        let a = embedding_of("hello", 16);
        assert_eq!(a, embedding_of("hello", 16));
        assert_ne!(a, embedding_of("hello!", 16));
        assert_eq!(a.len(), 16);
        assert!(a.iter().all(|x| (-1.0..1.0).contains(x)));
    }
}
