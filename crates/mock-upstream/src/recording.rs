//! Owns the request log: every upstream request the mock receives, kept in
//! arrival order with its headers and body exactly as they came off the wire,
//! so tests can assert what steward forwarded (and what it must not have).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::state::lock;
use axum::http::request::Parts;
use bytes::Bytes;

/// How many requests the log keeps before it drops the oldest.
///
/// Why: the binary runs under 10k RPS benchmarks for minutes; an unbounded
/// log would grow by hundreds of megabytes. No test sends this many requests.
pub const MAX_RECORDED: usize = 100_000;

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, upper case (`"POST"`).
    pub method: String,
    /// Path without the query string (`"/api/v1/statuses"`).
    pub path: String,
    /// Raw query string without the `?`, when there was one.
    pub query: Option<String>,
    /// Every header line in arrival order, duplicates kept as separate
    /// entries. Names are lower case because HTTP/1 parsing normalises them;
    /// values are byte-exact (non-UTF-8 bytes are replaced lossily).
    pub headers: Vec<(String, String)>,
    /// The full request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// Builds a record from a request head and its collected body.
    pub(crate) fn from_parts(parts: &Parts, body: &Bytes) -> Self {
        Self {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect(),
            body: body.clone(),
        }
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, or `None` when it is not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The shape `GET /__mock/requests` returns: the record plus the body
    /// as text (when UTF-8) and as base64 (always).
    pub(crate) fn to_wire(&self) -> serde_json::Value {
        use base64::Engine as _;
        serde_json::json!({
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": std::str::from_utf8(&self.body).ok(),
            "body_base64": base64::engine::general_purpose::STANDARD.encode(&self.body),
        })
    }
}

/// The request log. A plain mutex: one short push per request is far below
/// the cost of the HTTP parsing around it.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Off in benchmarks that do not want the copying cost; read without
    /// the lock so a disabled log costs one atomic load.
    enabled: AtomicBool,
    requests: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Self { enabled: AtomicBool::new(true), requests: Mutex::new(VecDeque::new()) }
    }

    pub(crate) fn record(&self, parts: &Parts, body: &Bytes) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        // Copy outside the lock so concurrent requests only contend on the push.
        let request = RecordedRequest::from_parts(parts, body);
        let mut requests = lock(&self.requests);
        if requests.len() >= MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        lock(&self.requests).clear();
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }
}
