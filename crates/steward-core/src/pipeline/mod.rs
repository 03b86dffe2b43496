//! The one pipeline. Every front door (HTTP API, LLM, MCP) translates its
//! protocol into a [`Call`] and hands it to [`Pipeline::handle`]; every
//! decision is made here, once:
//!
//! ```text
//! authenticate agent → kill switch → identify tool → loop breaker → rate limit
//!   → forward (credential injected, retries) → record (journal + audit log)
//! ```
//!
//! Kill switch, loop breaker and rate limit are decided together in one store
//! transaction (`Store::admit`), so concurrent calls cannot both take the last
//! slot and a restart never resets a window. A refused call is recorded
//! before the refusal is returned. An allowed call's record is written and
//! flushed before the agent can see the end of the response: the relayed body
//! holds back its final bytes until the journal and audit log have them.

mod forward;
mod refusal;
mod retry;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

pub use forward::{ForwardError, Forwarded, Forwarder};
pub use refusal::{Refusal, RefusalView, refusal_body};
pub use retry::{BASE_DELAY, MAX_ATTEMPTS, MAX_DELAY};

use crate::audit::{AuditLog, AuditRecord};
use crate::config::{Config, LoopBreakerConfig, ToolConfig};
use crate::policy::{self, Identified, ToolMatcher};
use crate::secrets::{AgentToken, Secrets};
use crate::store::{Admission, AdmitOutcome, Completion, Store};

/// The redactor every writer shares; swapped whole when credentials reload.
pub type SharedRedactor = Arc<ArcSwap<redact::Redactor>>;

/// Response header carrying the call id, so an agent's log line can be matched
/// to `steward last` and the audit log.
pub const CALL_ID_HEADER: &str = "x-steward-call-id";

/// Bytes of a JSON response kept to find the created object's `id` for undo.
/// Creation responses are small; a larger body is relayed but not inspected.
const RESPONSE_REF_PEEK_BYTES: usize = 64 * 1024;

/// Which front door a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `/api/{upstream}/...`
    Api,
    /// `/llm/{provider}/...`
    Llm,
    /// MCP tools.
    Mcp,
}

impl Door {
    /// Label used in the journal, audit log and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Api => "api",
            Door::Llm => "llm",
            Door::Mcp => "mcp",
        }
    }
}

/// One agent call, as every front door hands it to the pipeline.
#[derive(Debug)]
pub struct Call {
    /// UUIDv7: time-ordered, so journal ids sort by arrival.
    pub id: String,
    /// The front door it came through.
    pub door: Door,
    /// Wall-clock arrival, for records and rate windows.
    pub received_at: SystemTime,
    /// Monotonic arrival, for durations.
    pub started: Instant,
    /// Upstream name (`/api/{upstream}`).
    pub upstream: String,
    /// HTTP method.
    pub method: Method,
    /// Raw, still percent-encoded path relative to the upstream, starting with `/`.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// Headers as the agent sent them (steward token included; never forwarded).
    pub headers: HeaderMap,
    /// The whole request body (bounded by `gateway.max_body`).
    pub body: Bytes,
}

impl Call {
    /// A new call arriving now.
    pub fn new(
        door: Door,
        upstream: String,
        method: Method,
        path: String,
        query: Option<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            door,
            received_at: SystemTime::now(),
            started: Instant::now(),
            upstream,
            method,
            path,
            query,
            headers,
            body,
        }
    }
}

/// What is recorded about a call, computed once (redacted) when it arrives.
#[derive(Debug, Clone)]
struct CallRecord {
    call_id: String,
    door: Door,
    received_at: SystemTime,
    started: Instant,
    tool: Option<String>,
    upstream: String,
    method: String,
    /// Path plus redacted query.
    path: String,
    input_summary: String,
    input_sha256: String,
}

/// Everything the pipeline needs, built once by the daemon.
pub struct Pipeline {
    agent: String,
    matcher: ToolMatcher,
    loop_breaker: LoopBreakerConfig,
    store: Store,
    audit: Arc<AuditLog>,
    redactor: SharedRedactor,
    agent_token: AgentToken,
    forwarder: Forwarder,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("agent", &self.agent).finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Assembles the pipeline from validated config and opened resources.
    pub fn new(
        config: &Config,
        store: Store,
        audit: Arc<AuditLog>,
        redactor: SharedRedactor,
        secrets: Arc<ArcSwap<Secrets>>,
        agent_token: AgentToken,
    ) -> Result<Self, ForwardError> {
        Ok(Self {
            agent: config.agent.name.clone(),
            matcher: ToolMatcher::new(&config.tools, config.unmatched),
            loop_breaker: config.loop_breaker,
            forwarder: Forwarder::new(&config.upstreams, secrets)?,
            store,
            audit,
            redactor,
            agent_token,
        })
    }

    /// The store, for front doors and the daemon's background tasks.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `call` through every step and returns the agent's response.
    pub async fn handle(self: &Arc<Self>, call: Call) -> Response<Body> {
        let mut record = self.describe(&call);
        match self.admit(&call, &mut record).await {
            Ok(tool) => self.forward(call, record, tool.as_ref()).await,
            Err((refusal, journaled)) => self.refuse(record, refusal, journaled).await,
        }
    }

    /// Records and answers a call the front door could not even assemble
    /// (body too large, malformed path). Authentication still comes first, so
    /// an unauthenticated client learns nothing about the request's validity.
    pub async fn reject(self: &Arc<Self>, call: Call, refusal: Refusal) -> Response<Body> {
        let record = self.describe(&call);
        let refusal = if self.authenticated(&call.headers) { refusal } else { Refusal::Unauthenticated };
        self.refuse(record, refusal, false).await
    }

    fn describe(&self, call: &Call) -> CallRecord {
        let redactor = self.redactor.load();
        let path = match &call.query {
            Some(query) => format!("{}?{}", call.path, query),
            None => call.path.clone(),
        };
        CallRecord {
            call_id: call.id.clone(),
            door: call.door,
            received_at: call.received_at,
            started: call.started,
            tool: None,
            upstream: call.upstream.clone(),
            method: call.method.as_str().to_owned(),
            path: policy::truncate_summary(&redactor.redact(&path)),
            input_summary: policy::input_summary(&redactor, &call.body),
            input_sha256: policy::input_sha256(&call.body),
        }
    }

    fn authenticated(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer ").or_else(|| v.as_bytes().strip_prefix(b"bearer ")));
        let api_key = headers.get("x-api-key").map(HeaderValue::as_bytes);
        bearer.is_some_and(|t| self.agent_token.verify(t)) || api_key.is_some_and(|t| self.agent_token.verify(t))
    }

    /// Steps up to forwarding. `Err((refusal, journaled))`: `journaled` tells
    /// whether the store already holds the call's row.
    async fn admit(&self, call: &Call, record: &mut CallRecord) -> Result<Option<ToolConfig>, (Refusal, bool)> {
        if !self.authenticated(&call.headers) {
            return Err((Refusal::Unauthenticated, false));
        }
        if !self.forwarder.has_upstream(&call.upstream) {
            return Err((Refusal::UnknownUpstream { name: call.upstream.clone() }, false));
        }
        let tool = match self.matcher.identify(&call.upstream, call.method.as_str(), &call.path) {
            Identified::Tool(tool) => Some(tool.clone()),
            Identified::UnmatchedAllowed => None,
            Identified::UnmatchedDenied => {
                // The kill switch comes before tool identification: a stopped agent hears "killed".
                return Err(match self.store.kill_state().await {
                    Ok(state) if state.engaged => (Refusal::Killed { reason: state.reason.unwrap_or_default() }, false),
                    Ok(_) => (Refusal::Unmatched { route: format!("{} {}", call.method, record.path) }, false),
                    Err(_) => (Refusal::StoreUnavailable, false),
                });
            }
        };
        record.tool = tool.as_ref().map(|t| t.name.clone());
        if !self.audit.is_healthy() {
            return Err((Refusal::StoreUnavailable, false));
        }
        let tool_name = record.tool.clone().unwrap_or_default();
        let admission = Admission {
            call_id: record.call_id.clone(),
            now_ms: unix_ms(record.received_at),
            door: record.door.as_str().to_owned(),
            tool: record.tool.clone(),
            upstream: record.upstream.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            loop_key: policy::loop_key(&tool_name, &record.method, &call.path, call.query.as_deref(), &call.body),
            input_summary: record.input_summary.clone(),
            input_sha256: record.input_sha256.clone(),
            limit: tool.as_ref().and_then(|t| t.limit),
            loop_breaker: self.loop_breaker,
        };
        match self.store.admit(admission).await {
            Ok(AdmitOutcome::Admitted) => Ok(tool),
            Ok(AdmitOutcome::Killed { reason }) => Err((Refusal::Killed { reason }, true)),
            Ok(AdmitOutcome::LoopDetected { reason }) => {
                tracing::warn!(tool = %tool_name, "loop breaker tripped; kill switch engaged");
                Err((Refusal::LoopDetected { reason }, true))
            }
            Ok(AdmitOutcome::RateLimited { retry_after_ms }) => Err((
                Refusal::RateLimited {
                    tool: tool_name,
                    retry_after: std::time::Duration::from_millis(u64::try_from(retry_after_ms).unwrap_or(1)),
                },
                true,
            )),
            Err(err) => {
                tracing::error!(error = %err, "store refused the admission; failing closed");
                Err((Refusal::StoreUnavailable, false))
            }
        }
    }

    async fn refuse(&self, record: CallRecord, refusal: Refusal, journaled: bool) -> Response<Body> {
        let view = refusal.view();
        let journal = async {
            if journaled {
                return Ok(());
            }
            let admission = Admission {
                call_id: record.call_id.clone(),
                now_ms: unix_ms(record.received_at),
                door: record.door.as_str().to_owned(),
                tool: record.tool.clone(),
                upstream: record.upstream.clone(),
                method: record.method.clone(),
                path: record.path.clone(),
                loop_key: String::new(),
                input_summary: record.input_summary.clone(),
                input_sha256: record.input_sha256.clone(),
                limit: None,
                loop_breaker: LoopBreakerConfig { max_identical: 0, window: std::time::Duration::ZERO },
            };
            self.store.record_refused(admission, view.reason, &view.message, view.status.as_u16()).await
        };
        let audit = self.audit_record(&record, view.reason, Some(view.message.clone()), Some(view.status.as_u16()), 0);
        // Journal and audit log are written at once: the agent waits for the slower, not the sum.
        let (journaled, audited) = tokio::join!(journal, self.audit.write(&audit));
        if let Err(err) = journaled {
            tracing::error!(error = %err, call_id = %record.call_id, "could not journal a refused call");
        }
        if let Err(err) = audited {
            tracing::error!(error = %err, call_id = %record.call_id, "could not write the audit record of a refused call");
        }
        refusal_response(&view, &record.call_id)
    }

    async fn forward(self: &Arc<Self>, call: Call, record: CallRecord, tool: Option<&ToolConfig>) -> Response<Body> {
        let forwarded = match self.forwarder.send(&call, tool).await {
            Ok(forwarded) => forwarded,
            Err(err) => {
                let refusal = match &err {
                    ForwardError::Timeout { attempts } => Refusal::UpstreamTimeout { attempts: *attempts },
                    ForwardError::Unreachable { attempts, .. } => Refusal::UpstreamUnreachable { attempts: *attempts },
                    ForwardError::Build(_) => Refusal::UpstreamUnreachable { attempts: 0 },
                };
                let detail = self.redactor.load().redact(&err.to_string()).into_owned();
                tracing::warn!(call_id = %record.call_id, upstream = %record.upstream, error = %detail, "forwarding failed");
                let view = refusal.view();
                let outcome = Outcome {
                    decision: view.reason,
                    reason: Some(view.message.clone()),
                    status: Some(view.status.as_u16()),
                    attempts: refusal.attempts(),
                    response_ref: None,
                    error: Some(detail),
                };
                self.record_outcome(&record, outcome).await;
                return refusal_response(&view, &record.call_id);
            }
        };
        let Forwarded { response, attempts } = forwarded;
        let status = response.status();
        let mut headers = forward::response_headers(response.headers());
        if let Ok(value) = HeaderValue::from_str(&record.call_id) {
            headers.insert(CALL_ID_HEADER, value);
        }
        let expected_len =
            if call.method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                Some(0)
            } else {
                response.content_length()
            };
        let peek_json =
            headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.contains("json"));
        let recorder = Recorder { pipeline: Arc::clone(self), record, status: status.as_u16(), attempts };
        let body = if expected_len == Some(0) {
            recorder.finish(None, Vec::new()).await;
            Body::empty()
        } else {
            relay_body(response, recorder, expected_len, peek_json)
        };
        let mut out = Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }

    /// Journals the final outcome of an admitted call and writes its audit
    /// line, both at once: the caller waits for the slower of the two, not the sum.
    async fn record_outcome(&self, record: &CallRecord, outcome: Outcome) {
        let completion = Completion {
            call_id: record.call_id.clone(),
            now_ms: unix_ms(SystemTime::now()),
            status: outcome.status.filter(|_| outcome.decision == "allowed"),
            duration_ms: elapsed_ms(record.started),
            attempts: outcome.attempts,
            response_ref: outcome.response_ref,
            error: outcome.error,
            extra_json: None,
        };
        let audit = self.audit_record(record, outcome.decision, outcome.reason, outcome.status, outcome.attempts);
        let (journaled, audited) = tokio::join!(self.store.complete(completion), self.audit.write(&audit));
        if let Err(err) = journaled {
            tracing::error!(error = %err, call_id = %record.call_id, "could not journal a call's outcome");
        }
        if let Err(err) = audited {
            tracing::error!(error = %err, call_id = %record.call_id, "could not write an audit record");
        }
    }

    fn audit_record(
        &self,
        record: &CallRecord,
        decision: &str,
        reason: Option<String>,
        status: Option<u16>,
        attempts: u32,
    ) -> AuditRecord {
        AuditRecord {
            ts: rfc3339_ms(record.received_at),
            call_id: record.call_id.clone(),
            agent: self.agent.clone(),
            door: record.door.as_str().to_owned(),
            tool: record.tool.clone(),
            upstream: record.upstream.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            input_summary: record.input_summary.clone(),
            input_sha256: record.input_sha256.clone(),
            decision: decision.to_owned(),
            reason,
            status,
            duration_ms: elapsed_ms(record.started),
            attempts,
            extra: serde_json::Map::new(),
        }
    }
}

/// Writes the journal completion and audit record of an allowed call once its
/// response is fully relayed (or broken off). Dropped unfinished (the agent
/// hung up), it records from a spawned task: nothing is lost.
struct Recorder {
    pipeline: Arc<Pipeline>,
    record: CallRecord,
    status: u16,
    attempts: u32,
}

impl Recorder {
    async fn finish(&self, error: Option<String>, peeked: Vec<u8>) {
        let outcome = Outcome {
            decision: "allowed",
            reason: error.clone(),
            status: Some(self.status),
            attempts: self.attempts,
            response_ref: response_ref(&peeked),
            error,
        };
        self.pipeline.record_outcome(&self.record, outcome).await;
    }
}

/// The final facts of an admitted call, for the journal and the audit log.
struct Outcome {
    /// `allowed`, or the refusal reason when forwarding failed.
    decision: &'static str,
    /// Audit `reason`: the refusal message or the relay error.
    reason: Option<String>,
    /// HTTP status the agent got.
    status: Option<u16>,
    /// Upstream attempts made.
    attempts: u32,
    /// The created object's id, for undo.
    response_ref: Option<String>,
    /// Journal `error`: the redacted detail for the operator.
    error: Option<String>,
}

/// Holds the recorder until the body is done; records on drop if never finished.
struct RecordGuard(Option<Recorder>);

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if let Some(recorder) = self.0.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move {
                recorder.finish(Some("agent disconnected before the response ended".into()), Vec::new()).await
            });
        }
    }
}

/// Relays the upstream body chunk by chunk (no buffering) and records the call
/// before the agent can observe the end: before the last byte when the length
/// is known, before the end of a chunked body otherwise.
fn relay_body(response: reqwest::Response, recorder: Recorder, expected_len: Option<u64>, peek_json: bool) -> Body {
    struct State {
        upstream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
        guard: RecordGuard,
        seen: u64,
        expected: Option<u64>,
        peek: Option<Vec<u8>>,
        done: bool,
    }
    impl State {
        async fn finish(&mut self, error: Option<String>) {
            if let Some(recorder) = self.guard.0.take() {
                recorder.finish(error, self.peek.take().unwrap_or_default()).await;
            }
        }
    }
    let state = State {
        upstream: response.bytes_stream().boxed(),
        guard: RecordGuard(Some(recorder)),
        seen: 0,
        expected: expected_len,
        peek: peek_json.then(Vec::new),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.upstream.next().await {
            Some(Ok(chunk)) => {
                st.seen += chunk.len() as u64;
                if let Some(peek) = st.peek.as_mut() {
                    if peek.len() + chunk.len() <= RESPONSE_REF_PEEK_BYTES {
                        peek.extend_from_slice(&chunk);
                    } else {
                        st.peek = None;
                    }
                }
                if st.expected.is_some_and(|n| st.seen >= n) {
                    st.finish(None).await;
                    st.done = true;
                }
                Some((Ok(chunk), st))
            }
            Some(Err(err)) => {
                st.finish(Some(format!("upstream body broke off after {} bytes", st.seen))).await;
                st.done = true;
                Some((Err(std::io::Error::other(err)), st))
            }
            None => {
                st.finish(None).await;
                None
            }
        }
    });
    Body::from_stream(stream)
}

/// The created object's `id` from a JSON response, kept for `steward rollback`.
fn response_ref(peeked: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(peeked).ok()?;
    match value.get("id")? {
        serde_json::Value::String(s) => Some(policy::truncate_summary(s)),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn refusal_response(view: &RefusalView, call_id: &str) -> Response<Body> {
    let body = refusal_body(view, call_id).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = view.status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(call_id) {
        headers.insert(CALL_ID_HEADER, value);
    }
    if let Some(secs) = view.retry_after_secs {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-26T04:00:00.123Z`.
pub fn rfc3339_ms(t: SystemTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from(t).format(&format).unwrap_or_default()
}
