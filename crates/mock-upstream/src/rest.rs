//! Owns the REST endpoints: a Mastodon-style status API kept in memory,
//! plus the utility endpoints steward's gateway tests need (`/redirect`,
//! `/stream`, `/echo`, `/health`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api_error::{ApiError, Flavor};
use crate::clock::now_rfc3339;
use crate::conn::ConnHandle;
use crate::intake::wants_cut;
use crate::paced::{Pacing, cut_point, paced_body};
use crate::state::{Shared, lock};

/// How many statuses the store keeps before it forgets the oldest.
///
/// Why: benchmarks post for minutes at thousands of requests per second;
/// the store must not grow without bound.
pub const MAX_STATUSES: usize = 100_000;

/// Largest `chunks` the `/stream` endpoint accepts (chunks are generated
/// lazily, so this only bounds the response length).
pub const MAX_STREAM_CHUNKS: usize = 1_000_000;

/// Largest `size` of one `/stream` chunk: 1 MiB.
pub const MAX_STREAM_CHUNK_SIZE: usize = 1024 * 1024;

/// Largest pause between `/stream` chunks or SSE events: one minute, so a
/// typo cannot hang a test for hours.
pub const MAX_DELAY_MS: u64 = 60_000;

/// One stored status, in the subset of Mastodon's shape steward cares about.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Status {
    id: String,
    created_at: String,
    content: String,
    visibility: String,
    sensitive: bool,
    spoiler_text: String,
    in_reply_to_id: Option<String>,
    url: String,
    /// The `Idempotency-Key` that created it, so eviction can forget the key.
    #[serde(skip)]
    idempotency_key: Option<String>,
}

/// The in-memory status store.
#[derive(Debug, Default)]
pub(crate) struct StatusStore {
    /// Last id handed out; ids start at 1 and never repeat.
    last_id: u64,
    statuses: BTreeMap<u64, Status>,
    /// `Idempotency-Key` → status id, as Mastodon dedupes retried posts.
    idempotency: HashMap<String, u64>,
}

impl StatusStore {
    fn insert(&mut self, mut status: Status, key: Option<String>) -> Status {
        self.last_id += 1;
        let id = self.last_id;
        status.id = id.to_string();
        status.url.push_str(&status.id);
        status.idempotency_key.clone_from(&key);
        if let Some(key) = key {
            self.idempotency.insert(key, id);
        }
        self.statuses.insert(id, status.clone());
        if self.statuses.len() > MAX_STATUSES
            && let Some((_, evicted)) = self.statuses.pop_first()
            && let Some(key) = evicted.idempotency_key
        {
            self.idempotency.remove(&key);
        }
        status
    }

    fn by_key(&self, key: &str) -> Option<&Status> {
        self.idempotency.get(key).and_then(|id| self.statuses.get(id))
    }
}

/// The fields of a `POST /api/v1/statuses` body we understand.
#[derive(Debug, Default, Deserialize)]
struct NewStatus {
    status: Option<String>,
    visibility: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    sensitive: bool,
    spoiler_text: Option<String>,
    in_reply_to_id: Option<String>,
}

/// Accepts `true`, `"true"` and `"1"` as Mastodon does for form posts.
fn lenient_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(b) => b,
        Value::String(s) => s == "true" || s == "1",
        _ => false,
    })
}

const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

/// `POST /api/v1/statuses` (JSON or form-encoded).
pub(crate) async fn create_status(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    match create(&shared, &headers, &body) {
        Ok(status) => Json(status).into_response(),
        Err(error) => error.to_response(Flavor::Rest),
    }
}

fn create(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Status, ApiError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let new: NewStatus = if is_form {
        let pairs: serde_json::Map<String, Value> =
            parse_form(body).into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        serde_json::from_value(Value::Object(pairs)).map_err(|e| ApiError::Malformed(e.to_string()))?
    } else if body.is_empty() {
        NewStatus::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::Malformed(e.to_string()))?
    };
    let content = new.status.unwrap_or_default();
    if content.trim().is_empty() {
        return Err(ApiError::Validation("Text can't be blank".to_owned()));
    }
    let visibility = new.visibility.unwrap_or_else(|| "public".to_owned());
    if !VISIBILITIES.contains(&visibility.as_str()) {
        return Err(ApiError::Validation(format!("Visibility {visibility:?} is not one of {VISIBILITIES:?}")));
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut store = lock(&shared.statuses);
    if let Some(existing) = key.as_deref().and_then(|k| store.by_key(k)) {
        return Ok(existing.clone());
    }
    let status = Status {
        id: String::new(),
        created_at: now_rfc3339(),
        content,
        visibility,
        sensitive: new.sensitive,
        spoiler_text: new.spoiler_text.unwrap_or_default(),
        in_reply_to_id: new.in_reply_to_id,
        url: format!("{}/@mock/", shared.base_url),
        idempotency_key: None,
    };
    Ok(store.insert(status, key))
}

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |part: &[u8]| {
        let spaced: Vec<u8> = part.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        percent_encoding::percent_decode(&spaced).decode_utf8_lossy().into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (decode(&pair[..eq]), decode(&pair[eq + 1..])),
            None => (decode(pair), String::new()),
        })
        .collect()
}

fn not_found() -> Response {
    ApiError::NotFound("Record not found".to_owned()).to_response(Flavor::Rest)
}

/// `GET /api/v1/statuses/{id}`.
pub(crate) async fn get_status(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let found = id.parse::<u64>().ok().and_then(|id| lock(&shared.statuses).statuses.get(&id).cloned());
    found.map_or_else(not_found, |status| Json(status).into_response())
}

/// `DELETE /api/v1/statuses/{id}`: answers the deleted status.
pub(crate) async fn delete_status(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let removed = id.parse::<u64>().ok().and_then(|id| {
        let mut store = lock(&shared.statuses);
        let status = store.statuses.remove(&id)?;
        if let Some(key) = &status.idempotency_key {
            store.idempotency.remove(key);
        }
        Some(status)
    });
    removed.map_or_else(not_found, |status| Json(status).into_response())
}

/// Query of `GET /api/v1/statuses`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/statuses`: every stored status, newest first (`?limit=N`
/// keeps the newest N).
pub(crate) async fn list_statuses(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let limit = match query {
        Ok(Query(query)) => query.limit.unwrap_or(usize::MAX),
        Err(rejection) => {
            return ApiError::Invalid(rejection.body_text()).to_response(Flavor::Rest);
        }
    };
    let statuses: Vec<Status> = lock(&shared.statuses).statuses.values().rev().take(limit).cloned().collect();
    Json(statuses).into_response()
}

/// `/redirect` (any method): `302` to the status list, so tests can check
/// that steward does not follow redirects with injected credentials.
pub(crate) async fn redirect() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, HeaderValue::from_static("/api/v1/statuses"))]).into_response()
}

/// Query of `GET /stream`.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    #[serde(default = "default_chunks")]
    chunks: usize,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default = "default_size")]
    size: usize,
}

fn default_chunks() -> usize {
    5
}

fn default_size() -> usize {
    64
}

/// `GET /stream?chunks=N&delay_ms=D&size=B`: a chunked body of N chunks of
/// B bytes, D ms apart. Chunk `i` is B copies of the letter `a + i % 26`,
/// so a client can check order and completeness.
pub(crate) async fn stream(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnHandle>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return ApiError::Invalid(rejection.body_text()).to_response(Flavor::Rest);
        }
    };
    if query.chunks > MAX_STREAM_CHUNKS || query.size > MAX_STREAM_CHUNK_SIZE || query.delay_ms > MAX_DELAY_MS {
        return ApiError::Invalid(format!(
            "limits: chunks <= {MAX_STREAM_CHUNKS}, size <= {MAX_STREAM_CHUNK_SIZE}, \
             delay_ms <= {MAX_DELAY_MS}"
        ))
        .to_response(Flavor::Rest);
    }
    // One buffer per letter, shared by every chunk that uses it.
    let letters: Vec<Bytes> =
        (b'a'..=b'z').take(query.chunks.min(26)).map(|letter| Bytes::from(vec![letter; query.size])).collect();
    let frames = (0..query.chunks).map(move |i| letters[i % letters.len()].clone());
    let configured_cut = lock(&shared.faults).cut_stream_after();
    let pacing = Pacing {
        paced_frames: usize::MAX,
        delay: Duration::from_millis(query.delay_ms),
        cut_after: cut_point(query.chunks, configured_cut, wants_cut(&headers)),
        shutdown: shared.shutdown.clone(),
        conn,
    };
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))], paced_body(frames, pacing))
        .into_response()
}

/// `POST /echo`: the body back, with the same content type.
pub(crate) async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let mut response = body.into_response();
    match headers.get(header::CONTENT_TYPE) {
        Some(content_type) => {
            response.headers_mut().insert(header::CONTENT_TYPE, content_type.clone());
        }
        None => {
            response.headers_mut().remove(header::CONTENT_TYPE);
        }
    }
    response
}

/// `GET /health`: `200 ok`.
pub(crate) async fn health() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_and_percent() {
        let pairs = parse_form(b"status=hello+world%21&visibility=unlisted&flag");
        assert_eq!(
            pairs,
            vec![
                ("status".to_owned(), "hello world!".to_owned()),
                ("visibility".to_owned(), "unlisted".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn store_evicts_the_oldest_and_forgets_its_key() {
        let mut store = StatusStore::default();
        let template = Status {
            id: String::new(),
            created_at: String::new(),
            content: "x".to_owned(),
            visibility: "public".to_owned(),
            sensitive: false,
            spoiler_text: String::new(),
            in_reply_to_id: None,
            url: "http://h/@mock/".to_owned(),
            idempotency_key: None,
        };
        let first = store.insert(template.clone(), Some("k1".to_owned()));
        assert_eq!(first.id, "1");
        assert_eq!(first.url, "http://h/@mock/1");
        for _ in 0..MAX_STATUSES {
            store.insert(template.clone(), None);
        }
        assert_eq!(store.statuses.len(), MAX_STATUSES);
        assert!(store.by_key("k1").is_none());
        assert!(store.idempotency.is_empty());
    }
}
