//! The one pipeline. Every front door (HTTP API, LLM, MCP) translates its
//! protocol into a [`Call`] and hands it to [`Pipeline::handle`]; every
//! decision is made here, once:
//!
//! ```text
//! authenticate agent → plan (identify tool / price LLM call) → kill switch
//!   → loop breaker → rate limit → spend reservation → forward (credential
//!   injected, retries) → record (journal, spend settlement, audit log)
//! ```
//!
//! `plan` holds what differs per door; kill switch, loop breaker, rate limit
//! and spend cap are decided together in one store transaction
//! (`Store::admit`), so concurrent calls cannot both take the last slot or
//! the last dollar, and a restart never resets a window. A refused call is
//! recorded before the refusal is returned. An allowed call's record is
//! written before the agent can see the end of the response (`relay`).
//!
//! Monitoring hooks sit where every call ends (`refuse`, `record_outcome`):
//! one [`Metrics::record_call`] (atomic counters) per call, and an
//! [`Event`] on the bus for what a human must hear about (loop breaker,
//! spend cap, store or audit write failures). Neither can block a call.

mod forward;
mod plan;
mod refusal;
mod relay;
mod retry;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

pub use forward::{ForwardError, Forwarded, Forwarder};
pub use refusal::{ErrorShape, Refusal, RefusalView, refusal_body, status_of_decision};
pub use retry::{BASE_DELAY, MAX_ATTEMPTS, MAX_DELAY};

use crate::audit::{AuditLog, AuditRecord};
use crate::config::{
    AuthInjection, Config, LlmKind, LlmProviderConfig, LoopBreakerConfig, SpendConfig, UpstreamConfig,
};
use crate::events::{Event, EventBus};
use crate::llm::PriceTable;
use crate::monitor::Metrics;
use crate::policy::{self, ToolMatcher};
use crate::secrets::{AgentToken, ScopeWatch, Secrets};
use crate::store::{Admission, AdmitOutcome, Completion, SpendSettlement, Store};
use plan::Plan;
use relay::{Observer, Recorder, relay_body};

/// The redactor every writer shares; swapped whole when credentials reload.
pub type SharedRedactor = Arc<ArcSwap<redact::Redactor>>;

/// Response header carrying the call id, so an agent's log line can be matched
/// to `steward last` and the audit log.
pub const CALL_ID_HEADER: &str = "x-steward-call-id";

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
    /// Error JSON the agent's client expects.
    shape: ErrorShape,
}

/// Everything the pipeline needs, built once by the daemon.
pub struct Pipeline {
    agent: String,
    matcher: ToolMatcher,
    loop_breaker: LoopBreakerConfig,
    /// `[llm.*]` providers by name.
    llm: std::collections::BTreeMap<String, LlmProviderConfig>,
    /// Built-in prices merged with `[prices.*]`.
    prices: PriceTable,
    spend: SpendConfig,
    store: Store,
    audit: Arc<AuditLog>,
    redactor: SharedRedactor,
    agent_token: AgentToken,
    forwarder: Forwarder,
    /// The live credentials: read per call for the expiry check.
    secrets: Arc<ArcSwap<Secrets>>,
    /// Upstreams that report their token's scopes.
    scope_watch: ScopeWatch,
    /// Where loop, spend-cap and write-failure events go.
    events: EventBus,
    /// Per-call counters for `/metrics`.
    metrics: Arc<Metrics>,
}

/// Why the pipeline could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An upstream client could not be built.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The built-in price table is broken (a build defect).
    #[error(transparent)]
    Prices(#[from] crate::llm::PriceError),
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
    ) -> Result<Self, PipelineError> {
        let api =
            config.upstreams.iter().map(|(name, upstream)| (plan::forward_key(Door::Api, name), upstream.clone()));
        let llm =
            config.llm.iter().map(|(name, provider)| (plan::forward_key(Door::Llm, name), llm_upstream(provider)));
        Ok(Self {
            agent: config.agent.name.clone(),
            matcher: ToolMatcher::new(&config.tools, config.unmatched),
            loop_breaker: config.loop_breaker,
            llm: config.llm.clone(),
            prices: PriceTable::with_builtin(&config.prices)?,
            spend: config.spend.clone(),
            forwarder: Forwarder::new(api.chain(llm), Arc::clone(&secrets))?,
            secrets,
            scope_watch: ScopeWatch::new(config),
            store,
            audit,
            redactor,
            agent_token,
            events: EventBus::new(),
            metrics: Arc::new(Metrics::new()),
        })
    }

    /// The pipeline publishing on the daemon's `events` and counting into
    /// its `metrics` (instead of a private bus and registry).
    pub fn with_monitoring(mut self, events: EventBus, metrics: Arc<Metrics>) -> Self {
        self.events = events;
        self.metrics = metrics;
        self
    }

    /// The store, for front doors and the daemon's background tasks.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The metrics registry `/metrics` serves.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `text` through the shared redactor.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.load().redact(text).into_owned()
    }

    /// Whether the audit log's last write succeeded (for `/readyz`).
    pub fn audit_healthy(&self) -> bool {
        self.audit.is_healthy()
    }

    /// Publishes a write failure, redacted (store errors can quote paths and values).
    fn write_failed(&self, store: Option<&dyn std::fmt::Display>, audit: Option<&dyn std::fmt::Display>) {
        let redactor = self.redactor.load();
        if let Some(err) = store {
            self.events.publish(Event::StoreWriteFailed { detail: redactor.redact(&err.to_string()).into_owned() });
        }
        if let Some(err) = audit {
            self.events.publish(Event::AuditWriteFailed { detail: redactor.redact(&err.to_string()).into_owned() });
        }
    }

    /// Runs `call` through every step and returns the agent's response.
    pub async fn handle(self: &Arc<Self>, mut call: Call) -> Response<Body> {
        let mut record = self.describe(&call);
        match self.admit(&mut call, &mut record).await {
            Ok(plan) => self.forward(call, record, plan).await,
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
        let shape = match call.door {
            Door::Llm => match self.llm.get(&call.upstream).map(|p| p.kind) {
                Some(LlmKind::Anthropic) => ErrorShape::Anthropic,
                _ => ErrorShape::OpenAi,
            },
            Door::Api | Door::Mcp => ErrorShape::Steward,
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
            // LLM prompts are never summarised whole: `plan_llm` sets the last
            // user message; a call refused before planning keeps only the hash.
            input_summary: match call.door {
                Door::Llm => String::new(),
                Door::Api | Door::Mcp => policy::input_summary(&redactor, &call.body),
            },
            input_sha256: policy::input_sha256(&call.body),
            shape,
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
    async fn admit(&self, call: &mut Call, record: &mut CallRecord) -> Result<Plan, (Refusal, bool)> {
        if !self.authenticated(&call.headers) {
            return Err((Refusal::Unauthenticated, false));
        }
        let plan = match call.door {
            Door::Api | Door::Mcp => self.plan_api(call, record).await?,
            Door::Llm => self.plan_llm(call, record)?,
        };
        record.tool.clone_from(&plan.tool);
        if !self.audit.is_healthy() {
            return Err((Refusal::StoreUnavailable, false));
        }
        let tool_name = plan.tool.clone().unwrap_or_default();
        let admission = Admission {
            call_id: record.call_id.clone(),
            now_ms: unix_ms(record.received_at),
            door: record.door.as_str().to_owned(),
            tool: plan.tool.clone(),
            upstream: record.upstream.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            loop_key: policy::loop_key(&tool_name, &record.method, &call.path, call.query.as_deref(), &call.body),
            input_summary: record.input_summary.clone(),
            input_sha256: record.input_sha256.clone(),
            limit: plan.limit,
            loop_breaker: self.loop_breaker,
            spend: plan.llm.as_ref().and_then(|l| l.hold.clone()),
        };
        match self.store.admit(admission).await {
            Ok(AdmitOutcome::Admitted) => Ok(plan),
            Ok(AdmitOutcome::Killed { reason }) => Err((Refusal::Killed { reason }, true)),
            Ok(AdmitOutcome::LoopDetected { reason }) => {
                tracing::warn!(tool = %tool_name, "loop breaker tripped; kill switch engaged");
                self.events.publish(Event::LoopDetected { tool: tool_name.clone() });
                self.events
                    .publish(Event::KillSwitchEngaged { reason: reason.clone(), source: "loop_breaker".to_owned() });
                Err((Refusal::LoopDetected { reason }, true))
            }
            Ok(AdmitOutcome::RateLimited { retry_after_ms }) => Err((
                Refusal::RateLimited {
                    tool: tool_name,
                    retry_after: std::time::Duration::from_millis(u64::try_from(retry_after_ms).unwrap_or(1)),
                },
                true,
            )),
            Ok(AdmitOutcome::SpendCapped { spent_micros, cap_micros, reserve_micros }) => {
                self.events.publish(Event::SpendCapHit { spent_micros, cap_micros, reserve_micros });
                Err((Refusal::SpendCap { spent_micros, cap_micros, reserve_micros }, true))
            }
            Err(err) => {
                tracing::error!(error = %err, "store refused the admission; failing closed");
                self.write_failed(Some(&err), None);
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
                spend: None,
            };
            self.store.record_refused(admission, view.reason, &view.message, view.status.as_u16()).await
        };
        let audit = self.audit_record(&record, view.reason, Some(view.message.clone()), Some(view.status.as_u16()), 0);
        // Journal and audit log are written at once: the agent waits for the slower, not the sum.
        // Counted before the writes: this future may be dropped while it
        // waits (the agent hung up), and the queued writes still land.
        self.metrics.record_call(
            record.door.as_str(),
            record.tool.as_deref(),
            view.reason,
            None,
            record.started.elapsed(),
        );
        let (journaled, audited) = tokio::join!(journal, self.audit.write(&audit));
        if let Err(err) = &journaled {
            tracing::error!(error = %err, call_id = %record.call_id, "could not journal a refused call");
        }
        if let Err(err) = &audited {
            tracing::error!(error = %err, call_id = %record.call_id, "could not write the audit record of a refused call");
        }
        self.write_failed(
            journaled.as_ref().err().map(|e| e as &dyn std::fmt::Display),
            audited.as_ref().err().map(|e| e as &dyn std::fmt::Display),
        );
        refusal_response(&view, &record.call_id, record.shape)
    }

    async fn forward(self: &Arc<Self>, call: Call, record: CallRecord, plan: Plan) -> Response<Body> {
        let forwarded = match self.forwarder.send(&plan.forward_key, &call, &plan.body, plan.retry).await {
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
                // Nothing reached the provider: a reservation is released at no cost.
                let spend = plan.llm.as_ref().and_then(|l| l.hold.as_ref()).map(|_| SpendSettlement {
                    micros: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cached_tokens: 0,
                    estimated: false,
                });
                let outcome = Outcome {
                    decision: view.reason,
                    reason: Some(view.message.clone()),
                    status: Some(view.status.as_u16()),
                    attempts: refusal.attempts(),
                    response_ref: None,
                    error: Some(detail),
                    spend,
                    extra: serde_json::Map::new(),
                };
                self.record_outcome(&record, outcome).await;
                return refusal_response(&view, &record.call_id, record.shape);
            }
        };
        let Forwarded { response, attempts } = forwarded;
        if call.door != Door::Llm && !self.scope_watch.is_empty() {
            self.scope_watch.observe(&call.upstream, response.headers());
        }
        let status = response.status();
        let mut headers = forward::response_headers(response.headers());
        if let Ok(value) = HeaderValue::from_str(&record.call_id) {
            headers.insert(CALL_ID_HEADER, value);
        }
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let observer = match &plan.llm {
            Some(llm) if llm.price.is_some() && status.is_success() => {
                Observer::llm(llm, content_type.starts_with("text/event-stream"))
            }
            Some(_) => Observer::None,
            None => Observer::api(content_type.contains("json")),
        };
        let mut expected_len =
            if call.method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                Some(0)
            } else {
                response.content_length()
            };
        if observer.rewrites() {
            headers.remove(http::header::CONTENT_LENGTH);
            expected_len = None;
        }
        let recorder =
            Recorder { pipeline: Arc::clone(self), record, status: status.as_u16(), attempts, llm: plan.llm };
        let body = if expected_len == Some(0) {
            recorder.finish(None, &observer).await;
            Body::empty()
        } else {
            relay_body(response, recorder, observer, expected_len)
        };
        let mut out = Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }

    /// Journals the final outcome of an admitted call (settling its spend)
    /// and writes its audit line, both at once: the caller waits for the
    /// slower of the two, not the sum.
    async fn record_outcome(&self, record: &CallRecord, outcome: Outcome) {
        let completion = Completion {
            call_id: record.call_id.clone(),
            now_ms: unix_ms(SystemTime::now()),
            status: outcome.status.filter(|_| outcome.decision == "allowed"),
            duration_ms: elapsed_ms(record.started),
            attempts: outcome.attempts,
            response_ref: outcome.response_ref,
            error: outcome.error,
            extra_json: (!outcome.extra.is_empty())
                .then(|| serde_json::Value::Object(outcome.extra.clone()).to_string()),
            spend: outcome.spend,
        };
        let mut audit = self.audit_record(record, outcome.decision, outcome.reason, outcome.status, outcome.attempts);
        audit.extra = outcome.extra;
        // Counted before the writes: this future may be dropped while it
        // waits (the agent hung up mid-relay), and the queued writes still land.
        self.metrics.record_call(
            record.door.as_str(),
            record.tool.as_deref(),
            outcome.decision,
            outcome.status,
            record.started.elapsed(),
        );
        let (journaled, audited) = tokio::join!(self.store.complete(completion), self.audit.write(&audit));
        if let Err(err) = &journaled {
            tracing::error!(error = %err, call_id = %record.call_id, "could not journal a call's outcome");
        }
        if let Err(err) = &audited {
            tracing::error!(error = %err, call_id = %record.call_id, "could not write an audit record");
        }
        self.write_failed(
            journaled.as_ref().err().map(|e| e as &dyn std::fmt::Display),
            audited.as_ref().err().map(|e| e as &dyn std::fmt::Display),
        );
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
            ts: crate::audit::format_ts(record.received_at),
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

/// An `[llm.*]` provider as the forwarder sees it: the credential goes where
/// the provider's API expects it.
fn llm_upstream(provider: &LlmProviderConfig) -> UpstreamConfig {
    let auth = match provider.kind {
        LlmKind::OpenAi => AuthInjection { header: "Authorization".into(), format: "Bearer {secret}".into() },
        LlmKind::Anthropic => AuthInjection { header: "x-api-key".into(), format: "{secret}".into() },
    };
    UpstreamConfig {
        base_url: provider.base_url.clone(),
        credential: Some(provider.credential.clone()),
        auth,
        connect_timeout: provider.connect_timeout,
        read_timeout: provider.read_timeout,
        scopes_header: None,
        introspection_url: None,
        introspection_credential: None,
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
    /// Settles the call's spend reservation.
    spend: Option<SpendSettlement>,
    /// Door-specific audit fields (model, tokens, cost).
    extra: serde_json::Map<String, serde_json::Value>,
}

fn refusal_response(view: &RefusalView, call_id: &str, shape: ErrorShape) -> Response<Body> {
    let body = refusal_body(view, call_id, shape).to_string();
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
    // Honoured by the OpenAI and Anthropic SDKs: a refusal that waiting cannot
    // fix is not retried, so steward is not hammered and no upstream call multiplies.
    let should_retry = if view.retryable { "true" } else { "false" };
    headers.insert("x-should-retry", HeaderValue::from_static(should_retry));
    response
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
