//! Helpers shared by the mock-upstream integration tests: a client that
//! never follows redirects or proxies, a body reader that keeps the bytes
//! received before an error, and a small SSE parser.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers: failing loudly is the point")]

use futures_util::StreamExt as _;

/// A client for talking to the mock: no redirects, no proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap()
}

/// Reads the whole body; returns the bytes received and the error that
/// ended it, if it did not end cleanly.
pub async fn read_body(response: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(error) => return (body, Some(error)),
        }
    }
    (body, None)
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` field (lines joined with `\n`).
    pub data: String,
}

impl SseEvent {
    /// The data as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// Parses complete SSE events (terminated by a blank line) out of `body`.
/// A trailing incomplete event is ignored, as a client would.
pub fn parse_sse(body: &[u8]) -> Vec<SseEvent> {
    let text = std::str::from_utf8(body).unwrap();
    let mut events = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find("\n\n") {
        let block = &rest[..end];
        rest = &rest[end + 2..];
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                event = Some(value.trim_start().to_owned());
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        if event.is_some() || !data.is_empty() {
            events.push(SseEvent { event, data: data.join("\n") });
        }
    }
    events
}

#[test]
fn parse_sse_handles_named_and_unnamed_events() {
    let events = parse_sse(b"event: a\ndata: {\"x\":1}\n\ndata: [DONE]\n\ndata: partial");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event.as_deref(), Some("a"));
    assert_eq!(events[0].json()["x"], 1);
    assert_eq!(events[1].event, None);
    assert_eq!(events[1].data, "[DONE]");
}
