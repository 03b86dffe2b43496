//! Owns the fake LLM providers: what they share (request parsing, the
//! `x-mock-*` knobs, deterministic text and token counts, SSE framing,
//! streamed and cut responses). The provider shapes live in `openai` and
//! `anthropic`.
//!
//! # Knobs (request headers)
//! | header | default | meaning |
//! | --- | --- | --- |
//! | `x-mock-input-tokens` | body length / 4, rounded up | reported input tokens |
//! | `x-mock-output-tokens` | number of content deltas | reported output tokens |
//! | `x-mock-cached-tokens` | 0 | cached input tokens (OpenAI `cached_tokens`, Anthropic `cache_read_input_tokens`) |
//! | `x-mock-cache-write-tokens` | 0 | Anthropic `cache_creation_input_tokens` |
//! | `x-mock-reasoning-tokens` | 0 | OpenAI `reasoning_tokens` |
//! | `x-mock-chunks` | [`DEFAULT_CHUNKS`] | number of content deltas |
//! | `x-mock-delay-ms` | 0 | pause between SSE events (OpenAI chat: the usage chunk and `[DONE]` follow the finish chunk at once, as the real API sends them) |
//! | `x-mock-fault` | none | `cut`, `reset`, or a status such as `429` / `529` |
//!
//! Token values are reported verbatim in each provider's own fields; the
//! mock does not enforce relations between them (cached <= input).

pub(crate) mod anthropic;
pub(crate) mod openai;

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::api_error::ApiError;
use crate::conn::ConnHandle;
use crate::intake::wants_cut;
use crate::paced::{Pacing, cut_point, paced_body};
use crate::rest::MAX_DELAY_MS;
use crate::state::{Shared, lock};

/// Content deltas per response when `x-mock-chunks` is absent.
pub const DEFAULT_CHUNKS: usize = 5;

/// Largest `x-mock-chunks`.
///
/// Why: the events are built up front; this bounds that memory while
/// leaving room for long-stream tests.
pub const MAX_CHUNKS: usize = 100_000;

/// The words the fake model "writes"; delta `i` is `WORDS[i % len]`.
static WORDS: [&str; 8] = ["Hello", " from", " the", " mock", " upstream", ",", " steward", "."];

/// Per-request knobs read from the `x-mock-*` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Knobs {
    /// Reported input (prompt) tokens.
    pub input_tokens: u64,
    /// Reported output (completion) tokens.
    pub output_tokens: u64,
    /// Reported cached input tokens (cache reads).
    pub cached_tokens: u64,
    /// Reported cache-write tokens (Anthropic only).
    pub cache_write_tokens: u64,
    /// Reported reasoning tokens (OpenAI only).
    pub reasoning_tokens: u64,
    /// Number of content deltas generated.
    pub chunks: usize,
    /// Pause between SSE events.
    pub delay: Duration,
    /// `x-mock-fault: cut`: drop the connection half-way.
    pub cut: bool,
}

impl Knobs {
    /// Reads the knobs; a header that is present but not a number is a 400,
    /// so a typo in a test fails loudly.
    pub(crate) fn from_request(headers: &HeaderMap, body_len: usize) -> Result<Self, ApiError> {
        let chunks = number(headers, "x-mock-chunks")?.unwrap_or(DEFAULT_CHUNKS as u64);
        let chunks = usize::try_from(chunks)
            .ok()
            .filter(|&c| c <= MAX_CHUNKS)
            .ok_or_else(|| ApiError::Invalid(format!("x-mock-chunks must be <= {MAX_CHUNKS}")))?;
        let delay_ms = number(headers, "x-mock-delay-ms")?.unwrap_or(0);
        if delay_ms > MAX_DELAY_MS {
            return Err(ApiError::Invalid(format!("x-mock-delay-ms must be <= {MAX_DELAY_MS}")));
        }
        let default_input = u64::try_from(body_len.div_ceil(4)).unwrap_or(u64::MAX);
        Ok(Self {
            input_tokens: number(headers, "x-mock-input-tokens")?.unwrap_or(default_input),
            output_tokens: number(headers, "x-mock-output-tokens")?.unwrap_or(chunks as u64),
            cached_tokens: number(headers, "x-mock-cached-tokens")?.unwrap_or(0),
            cache_write_tokens: number(headers, "x-mock-cache-write-tokens")?.unwrap_or(0),
            reasoning_tokens: number(headers, "x-mock-reasoning-tokens")?.unwrap_or(0),
            chunks,
            delay: Duration::from_millis(delay_ms),
            cut: wants_cut(headers),
        })
    }

    /// The content deltas, in order.
    pub(crate) fn deltas(&self) -> impl Iterator<Item = &'static str> + use<> {
        WORDS.iter().copied().cycle().take(self.chunks)
    }

    /// The whole generated text.
    pub(crate) fn text(&self) -> String {
        self.deltas().collect()
    }
}

fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::Invalid(format!("{name} must be a non-negative integer")))
}

/// The request body as a JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::Malformed("expected a JSON object".to_owned())),
        Err(error) => Err(ApiError::Malformed(error.to_string())),
    }
}

/// The required `model` field, echoed back in every response.
pub(crate) fn model_of(request: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    match request.get("model") {
        Some(Value::String(model)) if !model.is_empty() => Ok(model.clone()),
        _ => Err(ApiError::Invalid("model: field required".to_owned())),
    }
}

/// Whether the request asked for `"stream": true`.
pub(crate) fn is_stream(request: &serde_json::Map<String, Value>) -> bool {
    request.get("stream").and_then(Value::as_bool) == Some(true)
}

/// One SSE event: an optional `event:` line and one `data:` line.
pub(crate) fn sse_event(event: Option<&str>, data: &Value) -> Bytes {
    let mut frame = String::with_capacity(128);
    if let Some(event) = event {
        frame.push_str("event: ");
        frame.push_str(event);
        frame.push('\n');
    }
    frame.push_str("data: ");
    frame.push_str(&data.to_string());
    frame.push_str("\n\n");
    Bytes::from(frame)
}

/// Everything one LLM exchange needs to answer: the knobs, the connection
/// (for cuts), the provider's request-id header and a unique sequence number.
pub(crate) struct Exchange<'a> {
    shared: &'a Shared,
    conn: ConnHandle,
    /// The request's `x-mock-*` knobs.
    pub knobs: Knobs,
    /// Unique per instance; ids such as `chatcmpl-mock{seq}` use it.
    pub seq: u64,
    request_id_header: HeaderName,
}

impl<'a> Exchange<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        conn: ConnHandle,
        headers: &HeaderMap,
        body_len: usize,
        request_id_header: HeaderName,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            knobs: Knobs::from_request(headers, body_len)?,
            seq: shared.next_id(),
            shared,
            conn,
            request_id_header,
        })
    }

    fn pacing(&self, total: usize, delay: Duration) -> Pacing {
        let configured = lock(&self.shared.faults).cut_stream_after();
        Pacing {
            delay,
            paced_frames: usize::MAX,
            cut_after: cut_point(total, configured, self.knobs.cut),
            shutdown: self.shared.shutdown.clone(),
            conn: self.conn.clone(),
        }
    }

    fn with_request_id(&self, mut response: Response) -> Response {
        if let Ok(value) = HeaderValue::from_str(&format!("req_mock{}", self.seq)) {
            response.headers_mut().insert(self.request_id_header.clone(), value);
        }
        response
    }

    /// A non-streaming JSON answer. With `x-mock-fault: cut` the body is
    /// sent half-way and the connection dropped.
    pub(crate) fn json(&self, body: &Value) -> Response {
        let bytes = Bytes::from(body.to_string());
        let response = if self.knobs.cut {
            let half = bytes.len() / 2;
            let frames = [bytes.slice(..half), bytes.slice(half..)].into_iter();
            let mut pacing = self.pacing(2, Duration::ZERO);
            pacing.cut_after = Some(1);
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], paced_body(frames, pacing))
                .into_response()
        } else {
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
        };
        self.with_request_id(response)
    }

    /// A `text/event-stream` answer of `frames`, paced by `x-mock-delay-ms`
    /// and cut by the stream faults.
    pub(crate) fn sse(&self, frames: Vec<Bytes>) -> Response {
        self.sse_with_tail(frames, 0)
    }

    /// [`Exchange::sse`] whose last `tail` frames follow the one before at
    /// once, unpaced, as a provider's trailing frames do.
    pub(crate) fn sse_with_tail(&self, frames: Vec<Bytes>, tail: usize) -> Response {
        let mut pacing = self.pacing(frames.len(), self.knobs.delay);
        pacing.paced_frames = frames.len().saturating_sub(tail);
        let response = (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            paced_body(frames.into_iter(), pacing),
        )
            .into_response();
        self.with_request_id(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn defaults_derive_from_body_and_chunks() {
        let knobs = Knobs::from_request(&HeaderMap::new(), 41).unwrap();
        assert_eq!(knobs.input_tokens, 11);
        assert_eq!(knobs.chunks, DEFAULT_CHUNKS);
        assert_eq!(knobs.output_tokens, DEFAULT_CHUNKS as u64);
        assert_eq!(knobs.text(), "Hello from the mock upstream");
        assert!(!knobs.cut);
    }

    #[test]
    fn headers_override_every_count() {
        let knobs = Knobs::from_request(
            &headers(&[
                ("x-mock-input-tokens", "100"),
                ("x-mock-output-tokens", "7"),
                ("x-mock-cached-tokens", "40"),
                ("x-mock-chunks", "10"),
                ("x-mock-delay-ms", "5"),
                ("x-mock-fault", "cut"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(knobs.input_tokens, 100);
        assert_eq!(knobs.output_tokens, 7);
        assert_eq!(knobs.cached_tokens, 40);
        assert_eq!(knobs.deltas().count(), 10);
        assert_eq!(knobs.delay, Duration::from_millis(5));
        assert!(knobs.cut);
    }

    #[test]
    fn malformed_or_oversized_knobs_are_refused() {
        assert!(Knobs::from_request(&headers(&[("x-mock-chunks", "many")]), 0).is_err());
        assert!(Knobs::from_request(&headers(&[("x-mock-chunks", "1000000")]), 0).is_err());
        assert!(Knobs::from_request(&headers(&[("x-mock-delay-ms", "3600000")]), 0).is_err());
    }

    #[test]
    fn sse_event_framing() {
        let frame = sse_event(Some("ping"), &serde_json::json!({"type": "ping"}));
        assert_eq!(&frame[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        let frame = sse_event(None, &serde_json::json!(1));
        assert_eq!(&frame[..], b"data: 1\n\n");
    }
}
