//! Owns the fake Anthropic Messages API, including its split streaming
//! usage: input and cache tokens in `message_start`, the final output
//! tokens in `message_delta`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Exchange, is_stream, model_of, parse_object, sse_event};
use crate::api_error::{ApiError, Flavor};
use crate::conn::ConnHandle;
use crate::state::Shared;

/// Anthropic's request-id response header.
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// The models `GET /v1/models` lists with `anthropic-version`: id, display
/// name, release date.
const MODELS: [(&str, &str, &str); 2] = [
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
];

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create_message(&shared, conn, &headers, &body).unwrap_or_else(|error| error.to_response(Flavor::Anthropic))
}

fn create_message(shared: &Shared, conn: ConnHandle, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let request = parse_object(body)?;
    let model = model_of(&request)?;
    let exchange = Exchange::new(shared, conn, headers, body.len(), REQUEST_ID)?;
    let knobs = &exchange.knobs;
    let id = format!("msg_mock{}", exchange.seq);

    if !is_stream(&request) {
        return Ok(exchange.json(&json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{ "type": "text", "text": knobs.text() }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": knobs.input_tokens,
                "cache_creation_input_tokens": knobs.cache_write_tokens,
                "cache_read_input_tokens": knobs.cached_tokens,
                "output_tokens": knobs.output_tokens,
                "service_tier": "standard",
            },
        })));
    }

    // As the real API: message_start reports a placeholder output count of
    // 1; message_delta carries the final, cumulative output tokens.
    let mut events: Vec<(&str, Value)> = vec![
        (
            "message_start",
            json!({
                "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {
                        "input_tokens": knobs.input_tokens,
                        "cache_creation_input_tokens": knobs.cache_write_tokens,
                        "cache_read_input_tokens": knobs.cached_tokens,
                        "output_tokens": 1,
                        "service_tier": "standard",
                    },
                },
            }),
        ),
        ("content_block_start", json!({ "index": 0, "content_block": { "type": "text", "text": "" } })),
        ("ping", json!({})),
    ];
    for delta in knobs.deltas() {
        events.push(("content_block_delta", json!({ "index": 0, "delta": { "type": "text_delta", "text": delta } })));
    }
    events.extend([
        ("content_block_stop", json!({ "index": 0 })),
        (
            "message_delta",
            json!({
                "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                "usage": { "output_tokens": knobs.output_tokens },
            }),
        ),
        ("message_stop", json!({})),
    ]);
    let frames = events
        .into_iter()
        .map(|(kind, mut data)| {
            data["type"] = json!(kind);
            sse_event(Some(kind), &data)
        })
        .collect();
    Ok(exchange.sse(frames))
}

/// Anthropic's `GET /v1/models` list.
pub(crate) fn models() -> Response {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, name, created)| json!({ "type": "model", "id": id, "display_name": name, "created_at": created }))
        .collect();
    axum::Json(json!({
        "data": data,
        "has_more": false,
        "first_id": MODELS.first().map(|m| m.0),
        "last_id": MODELS.last().map(|m| m.0),
    }))
    .into_response()
}
