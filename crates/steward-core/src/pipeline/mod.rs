//! The one pipeline. Every front door (HTTP API, LLM, MCP) translates its
//! protocol into a [`Call`] and hands it to [`Pipeline::handle`]; every
//! decision is made here, once:
//!
//! ```text
//! canonical request (the front door parsed the path once; the agent's token
//!   is stripped from the query) → authenticate agent → kill switch → plan
//!   (identify tool / price LLM call) → approval (supervised mode: precheck
//!   of kill switch, rate limit and spend, then held for a human; released
//!   once) → admission (kill switch again, loop breaker, rate limit, spend
//!   reservation) → audit "admitted" → forward (credential injected,
//!   retries) → record (journal, spend settlement, audit "completed")
//! ```
//!
//! **The kill switch comes first.** A stopped agent hears `killed` for every
//! call it makes, whatever else is wrong with it: matched or unmatched, an
//! unknown upstream or price, an expired credential, a bad or malformed
//! request, a body too large or stalled. Right after authentication, the
//! switch decides every call before anything else is decided for it, and it
//! is read once per call, where the call's fate is settled:
//! - a call on its way through reads it in its admission transaction
//!   (`Store::admit`), the authoritative read: a `steward stop` committed
//!   before it stops the call, atomically with its rate slot and spend
//!   reservation. Planning before it decides nothing anyone sees, and the
//!   approval step's precheck reads the switch before a call is held;
//! - a call refused before admission (by the front door, its plan or the
//!   approval step) reads it as it is refused (`Pipeline::gate`,
//!   [`Pipeline::reject`], [`Pipeline::reject_target`]), and an engaged
//!   switch replaces that refusal with `killed`
//!   ([`crate::store::KillState::refusal_reason`] words it).
//!
//! Either way the call meets the switch as committed when it is decided, and
//! a lone call makes one store read fewer than a separate gate in front of
//! admission would (issue 19). Requests without a valid steward token are
//! not the agent's calls: they stay `unauthenticated`, killed or not, and
//! learn nothing about the switch.
//!
//! `plan` holds what differs per door; kill switch, loop breaker, rate limit
//! and spend cap are decided together in one store transaction
//! (`Store::admit`), so concurrent calls cannot both take the last slot or
//! the last dollar, and a restart never resets a window. A refused call is
//! recorded before the refusal is returned. What each outcome is called,
//! which status it answers and how the error-rate alert weighs it is
//! [`Decision`]'s one mapping; [`Refusal`] says which decision each refusal is.
//!
//! An admitted call leaves steward only after its journal row *and* its
//! `admitted` audit line are written: when the audit log fails, that very
//! call is withdrawn (`Store::withdraw`) and refused, never forwarded
//! unaudited. Its response is scrubbed of every credential value, and its
//! outcome is journaled and audited (`completed`) before the agent can see
//! the end of the response (`relay`), settling its spend fail-safe
//! (`settle`).
//!
//! **Approval comes before admission, never instead of it** (`approval`).
//! A call whose tool needs a human's approval is held after planning, once
//! a read-only precheck found that admission would let it through; a
//! decision releases it at most once, and admission then decides as for
//! any call. An identical repeat of a held call joins it and never reaches
//! admission, so the loop breaker does not count it.
//!
//! Requests that never become calls (no valid token, an unreadable target
//! or body) are counted and sampled into the audit log, not journaled one
//! row each (`junk`).
//!
//! Monitoring hooks sit where every call ends (`finish`, shared by refused
//! and forwarded calls): one [`CallMetrics::record_call`] (atomic counters)
//! per call, and an [`Event`] on the bus for what a human must hear about
//! (loop breaker, spend cap, store or audit write failures). Neither can
//! block a call, and both are interfaces of neutral modules (`telemetry`,
//! `events`): the pipeline never imports `monitor`.
//!
//! Work a call leaves behind (the record of a response the agent abandoned,
//! the drain of an upstream body after its stream ended) runs on the
//! daemon's [`TaskTracker`], so shutdown waits for it like for every other
//! task.

mod approval;
mod forward;
mod junk;
mod live;
mod mcp;
mod mcp_summary;
mod plan;
mod refusal;
mod relay;
mod retry;
mod settle;
mod undo;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Body;
use bytes::Bytes;
pub use canonical_path::{CanonicalPath, CanonicalQuery, RequestTarget, TargetError};
use http::{HeaderMap, HeaderValue, Method, Response};
use tokio_util::task::TaskTracker;

pub use approval::{
    AUDITED_KEY, Approvals, DecideError, EXPIRE_EVERY, HeldRequest, POLL_EVERY, RETRY_PENDING_AFTER, decide, digest,
    policy_version, redacted_body,
};
pub use forward::{ForwardError, Forwarded, Forwarder};
pub use junk::{SAMPLE_EVERY, SAMPLED_COUNT_KEY};
pub use live::LiveConfig;
pub use mcp::{McpAnswer, McpForwardError, McpRelay, McpToolCall, refusal_result, scrub_json};
pub use refusal::{ErrorShape, Refusal, RefusalView, refusal_body, stream_error_event};
pub use retry::{BASE_DELAY, MAX_ATTEMPTS, MAX_DELAY};
pub use undo::{UndoError, UndoReport, UndoRequest};

use crate::audit::{AuditLog, AuditRecord, Phase};
use crate::clock::unix_ms;
use crate::config::{AuthInjection, Config, LlmKind, LlmProviderConfig, UpstreamConfig};
use crate::decision::Decision;
use crate::events::{Event, EventBus};
use crate::policy;
use crate::redaction::SharedRedactor;
use crate::secrets::{AgentToken, Secrets};
use crate::store::{self, Admission, AdmitOutcome, Completion, SpendSettlement, Store, StoreError};
use crate::telemetry::{CallMetrics, Uncounted};
use junk::JunkSampler;
use plan::Plan;

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
    /// Upstream name (`/api/{upstream}`), decoded.
    pub upstream: String,
    /// HTTP method.
    pub method: Method,
    /// The path below the upstream, read once by the front door: the one
    /// value that is matched, classified, recorded and forwarded.
    pub path: CanonicalPath,
    /// The query, as recorded and forwarded (the agent's token is removed
    /// from it before anything reads it).
    pub query: Option<CanonicalQuery>,
    /// Headers as the agent sent them (steward token included; never forwarded).
    pub headers: HeaderMap,
    /// The whole request body (bounded by `gateway.max_body`).
    pub body: Bytes,
    /// Set only by the operator's undo (`undo.rs`), never by a front door:
    /// the call is the undo of another, and the kill switch lets it pass.
    undo: Option<undo::UndoMark>,
    /// The MCP tool a `tools/call` names ([`Call::mcp_tool`]); `None` for
    /// the HTTP doors.
    mcp: Option<McpToolCall>,
}

impl Call {
    /// A new call arriving now, for the canonical `target`.
    pub fn new(door: Door, target: RequestTarget, method: Method, headers: HeaderMap, body: Bytes) -> Self {
        let RequestTarget { upstream, path, query } = target;
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
            undo: None,
            mcp: None,
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
    /// The config snapshot this call runs under, loaded once when it
    /// arrived: a reload never changes a call in flight (see `live`).
    live: Arc<LiveConfig>,
    /// The original call, when this call is the operator's undo of it.
    undo_of: Option<String>,
    /// What the undo plan of this call is resolved from, when its tool
    /// declares an undo (set once the call is forwarded).
    undo_source: Option<Arc<undo::UndoSource>>,
}

/// Everything the pipeline needs, built once by the daemon.
pub struct Pipeline {
    /// What is built from the config, swapped whole by a reload; each call
    /// loads it once (see `live`).
    live: ArcSwap<LiveConfig>,
    store: Store,
    audit: Arc<AuditLog>,
    redactor: SharedRedactor,
    agent_token: AgentToken,
    /// The live credentials: read per call for the expiry check.
    secrets: Arc<ArcSwap<Secrets>>,
    /// Where loop, spend-cap and write-failure events go.
    events: EventBus,
    /// Per-call counters (`/metrics`, once the daemon wires them).
    metrics: Arc<dyn CallMetrics>,
    /// Unauthenticated and malformed requests, counted and sampled.
    junk: JunkSampler,
    /// The daemon's tracker: tasks a call leaves behind run on it, so
    /// shutdown waits for them (the one shutdown mechanism, see `daemon`).
    tasks: TaskTracker,
    /// Calls held for a human's approval (supervised mode), by digest.
    approvals: Arc<Approvals>,
    /// Where the operator's undo of an MCP tool's call goes (the daemon's
    /// MCP hub; unset without `[mcp.*]` servers).
    mcp_relay: std::sync::OnceLock<Arc<dyn McpRelay>>,
    /// The MCP messages other than `tools/call`, counted for the audit
    /// log's summary lines.
    mcp_summary: mcp_summary::McpSummary,
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
        f.debug_struct("Pipeline").field("live", &self.live.load()).finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Assembles the pipeline from validated config and opened resources.
    /// `tasks` is the tracker shutdown waits on.
    pub fn new(
        config: &Config,
        store: Store,
        audit: Arc<AuditLog>,
        redactor: SharedRedactor,
        secrets: Arc<ArcSwap<Secrets>>,
        agent_token: AgentToken,
        tasks: TaskTracker,
    ) -> Result<Self, PipelineError> {
        Ok(Self {
            live: ArcSwap::from_pointee(LiveConfig::build(config, &secrets)?),
            secrets,
            store,
            audit,
            redactor,
            agent_token,
            events: EventBus::new(),
            metrics: Arc::new(Uncounted),
            junk: JunkSampler::default(),
            tasks,
            approvals: Arc::new(Approvals::default()),
            mcp_relay: std::sync::OnceLock::new(),
            mcp_summary: mcp_summary::McpSummary::default(),
        })
    }

    /// Where the operator's undo of an MCP tool's call is sent (set once,
    /// by the daemon).
    pub fn set_mcp_relay(&self, relay: Arc<dyn McpRelay>) {
        let _ = self.mcp_relay.set(relay);
    }

    /// The pipeline publishing on the daemon's `events` and counting into
    /// its `metrics` (instead of a private bus and no counters).
    pub fn with_monitoring(mut self, events: EventBus, metrics: Arc<dyn CallMetrics>) -> Self {
        self.events = events;
        self.metrics = metrics;
        self
    }

    /// Builds the snapshot of `config` that [`Pipeline::swap_config`] would
    /// apply, without applying it: a reload builds first and refuses a
    /// config whose parts cannot be built.
    pub fn prepare_config(&self, config: &Config) -> Result<LiveConfig, PipelineError> {
        LiveConfig::build(config, &self.secrets)
    }

    /// Makes `live` the config of every call that arrives from now on;
    /// calls in flight finish under the one they loaded.
    pub fn swap_config(&self, live: LiveConfig) {
        self.live.store(Arc::new(live));
    }

    /// The store, for front doors and the daemon's background tasks.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tracker shutdown waits on, for the tasks serving this pipeline.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
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
        self.strip_agent_token(&mut call);
        let mut record = self.describe(&call);
        let plan = match self.admit(&mut call, &mut record).await {
            Ok(plan) => plan,
            Err((refusal, journaled)) => return self.refuse(record, refusal, journaled).await,
        };
        if let Err(view) = self.audit_admission(&record).await {
            return refusal_response(&view, &record.call_id, record.shape);
        }
        self.forward(call, record, plan).await
    }

    /// Records and answers a call the front door could not complete (body
    /// too large, body broken off or stalled, a method override). The gate
    /// still comes first: an unauthenticated client learns nothing about
    /// the request's validity, and a stopped agent hears `killed`.
    pub async fn reject(self: &Arc<Self>, mut call: Call, refusal: Refusal) -> Response<Body> {
        self.strip_agent_token(&mut call);
        let record = self.describe(&call);
        let refusal = self.gate(&call.headers).await.err().unwrap_or(refusal);
        self.refuse(record, refusal, false).await
    }

    /// The first steps of a request refused before admission:
    /// authentication, then the kill switch (see the module docs).
    async fn gate(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if !self.authenticated(headers) {
            return Err(Refusal::Unauthenticated);
        }
        self.kill_refusal().await.map_or(Ok(()), Err)
    }

    /// The kill switch as committed: `Some(killed)` while it is engaged,
    /// `Some(store_unavailable)` when it cannot be read (fail closed).
    async fn kill_refusal(&self) -> Option<Refusal> {
        match self.store.kill_state().await {
            Ok(state) => state.refusal_reason(&self.redactor.load()).map(|reason| Refusal::Killed { reason }),
            Err(err) => {
                tracing::error!(error = %err, "cannot read the kill switch; refusing the call (fail closed)");
                Some(Refusal::StoreUnavailable)
            }
        }
    }

    /// Removes from the query every parameter holding the agent's token, in
    /// any encoding (`?access_token=stw_...`): like the `Authorization`
    /// header, it is steward's and never travels upstream, nor into a record.
    fn strip_agent_token(&self, call: &mut Call) {
        let Some(query) = &call.query else { return };
        let (rest, dropped) = query.remove_pairs(|text| self.agent_token.appears_in(text));
        if dropped > 0 {
            tracing::debug!(call_id = %call.id, parameters = dropped, "removed the agent token from the query");
            call.query = rest;
        }
    }

    /// Writes the `admitted` line of an admitted call and waits for it. A
    /// failed write withdraws the admission (journal row refused, spend
    /// reservation released, rate slot freed) and refuses this very call:
    /// no call is forwarded without its audit line.
    async fn audit_admission(&self, record: &CallRecord) -> Result<(), RefusalView> {
        let line = self.audit_record(record, Decision::Allowed, Phase::Admitted, None, None, 0);
        let Err(err) = self.audit.write(&line).await else {
            return Ok(());
        };
        tracing::error!(error = %err, call_id = %record.call_id, "could not audit an admitted call; refusing it (fail closed)");
        self.write_failed(None, Some(&err));
        let view = Refusal::StoreUnavailable.view();
        let withdrawn = self
            .store
            .withdraw(&record.call_id, view.decision, &view.message, view.status.as_u16(), unix_ms(SystemTime::now()))
            .await;
        if let Err(store_err) = &withdrawn {
            tracing::error!(error = %store_err, call_id = %record.call_id, "could not withdraw the call's admission");
            self.write_failed(Some(store_err), None);
        }
        Err(self.record_refusal(record.clone(), Refusal::StoreUnavailable, true).await)
    }

    fn describe(&self, call: &Call) -> CallRecord {
        let live = self.live.load_full();
        let redactor = self.redactor.load();
        let path = match &call.query {
            Some(query) => format!("{}?{}", call.path, query),
            None => call.path.as_str().to_owned(),
        };
        let shape = match call.door {
            Door::Llm => match live.llm.get(&call.upstream).map(|p| p.kind) {
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
            live,
            undo_of: call.undo.as_ref().map(|mark| mark.of.clone()),
            undo_source: None,
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
        // The operator's undo was authenticated by the admin API, and the
        // kill switch does not stop it (see `undo`); no agent call is marked.
        let agents = call.undo.is_none();
        if agents && !self.authenticated(&call.headers) {
            return Err((Refusal::Unauthenticated, false));
        }
        let (plan, loop_key) = match self.plan_and_supervise(call, record).await {
            Ok(planned) => planned,
            // Refused before admission: the kill switch, read now, comes first.
            Err(refusal) if agents => return Err((self.kill_refusal().await.unwrap_or(refusal), false)),
            Err(refusal) => return Err((refusal, false)),
        };
        let tool_name = plan.tool.clone().unwrap_or_default();
        match self.store.admit(self.admission(record, loop_key, Some(&plan))).await {
            Ok(outcome) => self.admitted(outcome, &tool_name).map(|()| plan).map_err(|refusal| (refusal, true)),
            Err(err) => {
                tracing::error!(error = %err, "store refused the admission; failing closed");
                self.write_failed(Some(&err), None);
                Err((Refusal::StoreUnavailable, false))
            }
        }
    }

    /// The steps before admission: the door's plan (which decides nothing
    /// anyone sees), then the approval step (whose precheck reads the kill
    /// switch before a call is held for a human). Returns the plan and the
    /// call's loop key.
    async fn plan_and_supervise(&self, call: &mut Call, record: &mut CallRecord) -> Result<(Plan, String), Refusal> {
        let plan = match call.door {
            Door::Api => self.plan_api(call, record),
            Door::Llm => self.plan_llm(call, record),
            Door::Mcp => self.plan_mcp(call, record),
        }?;
        record.tool.clone_from(&plan.tool);
        let tool_name = plan.tool.clone().unwrap_or_default();
        let loop_key = policy::loop_key(
            &tool_name,
            &record.method,
            call.path.as_str(),
            call.query.as_ref().map(CanonicalQuery::as_str),
            &call.body,
        );
        self.supervise(call, record, &plan, &loop_key).await?;
        Ok((plan, loop_key))
    }

    /// What admission's `outcome` means for the call: `Ok` when admitted,
    /// else its refusal, with the events a human must hear about. Shared by
    /// admission and the approval step's precheck.
    fn admitted(&self, outcome: AdmitOutcome, tool_name: &str) -> Result<(), Refusal> {
        match outcome {
            AdmitOutcome::Admitted => Ok(()),
            AdmitOutcome::Killed { reason } => Err(Refusal::Killed { reason }),
            AdmitOutcome::LoopDetected { reason } => {
                tracing::warn!(tool = %tool_name, "loop breaker tripped; kill switch engaged");
                self.events.publish(Event::LoopDetected { tool: tool_name.to_owned() });
                self.events
                    .publish(Event::KillSwitchEngaged { reason: reason.clone(), source: "loop_breaker".to_owned() });
                Err(Refusal::LoopDetected { reason })
            }
            AdmitOutcome::RateLimited { retry_after_ms } => Err(Refusal::RateLimited {
                tool: tool_name.to_owned(),
                retry_after: std::time::Duration::from_millis(u64::try_from(retry_after_ms).unwrap_or(1)),
            }),
            AdmitOutcome::SpendCapped { spent_micros, cap_micros, reserve_micros } => {
                self.events.publish(Event::SpendCapHit { spent_micros, cap_micros, reserve_micros });
                Err(Refusal::SpendCap { spent_micros, cap_micros, reserve_micros })
            }
            AdmitOutcome::SpendStopped { reason } => Err(Refusal::SpendStopped { reason }),
        }
    }

    /// The journal row of a call, with the gates admission applies to it:
    /// `plan`'s limit and spend reservation, and the loop breaker. A call
    /// refused before admission has no plan, and `Store::record_refused`
    /// reads only the row.
    fn admission(&self, record: &CallRecord, loop_key: String, plan: Option<&Plan>) -> Admission {
        Admission {
            call_id: record.call_id.clone(),
            now_ms: unix_ms(record.received_at),
            door: record.door.as_str().to_owned(),
            tool: record.tool.clone(),
            upstream: record.upstream.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            loop_key,
            input_summary: record.input_summary.clone(),
            input_sha256: record.input_sha256.clone(),
            limit: plan.and_then(|p| p.limit),
            loop_breaker: record.live.loop_breaker,
            spend: plan.and_then(|p| p.llm.as_ref()).and_then(|l| l.hold.clone()),
            undo_by_operator: record.undo_of.is_some(),
        }
    }

    async fn refuse(&self, record: CallRecord, refusal: Refusal, journaled: bool) -> Response<Body> {
        if refusal.is_junk() {
            return self.refuse_junk(record, &refusal).await;
        }
        let (call_id, shape) = (record.call_id.clone(), record.shape);
        let view = self.record_refusal(record, refusal, journaled).await;
        refusal_response(&view, &call_id, shape)
    }

    /// Journals and audits a refused call (not junk: see `refuse`), and
    /// returns how the refusal is worded, for the front door to answer in
    /// its protocol.
    async fn record_refusal(&self, record: CallRecord, refusal: Refusal, journaled: bool) -> RefusalView {
        let view = refusal.view();
        let journal = async {
            if journaled {
                return Ok(());
            }
            let admission = self.admission(&record, String::new(), None);
            self.store.record_refused(admission, view.decision, &view.message, view.status.as_u16()).await
        };
        let audit = self.audit_record(
            &record,
            view.decision,
            Phase::Refused,
            Some(view.message.clone()),
            Some(view.status.as_u16()),
            0,
        );
        self.finish(&record, view.decision, None, journal, audit).await;
        view
    }

    /// Where every journaled call ends, refused or forwarded: counted, then
    /// its `journal` write and its `audit` line, both at once (the caller
    /// waits for the slower of the two, not the sum). A failed write is
    /// logged and published.
    async fn finish(
        &self,
        record: &CallRecord,
        decision: Decision,
        status: Option<u16>,
        journal: impl Future<Output = Result<(), StoreError>>,
        audit: AuditRecord,
    ) {
        // Counted before the writes: this future may be dropped while it
        // waits (the agent hung up), and the queued writes still land.
        self.metrics.record_call(
            record.door.as_str(),
            record.tool.as_deref(),
            decision.as_str(),
            status,
            record.started.elapsed(),
        );
        let (journaled, audited) = tokio::join!(journal, self.audit.write(&audit));
        if let Err(err) = &journaled {
            tracing::error!(error = %err, call_id = %record.call_id, %decision, "could not journal a call");
        }
        if let Err(err) = &audited {
            tracing::error!(error = %err, call_id = %record.call_id, %decision, "could not write a call's audit record");
        }
        self.write_failed(
            journaled.as_ref().err().map(|e| e as &dyn std::fmt::Display),
            audited.as_ref().err().map(|e| e as &dyn std::fmt::Display),
        );
    }

    async fn forward(self: &Arc<Self>, call: Call, mut record: CallRecord, plan: Plan) -> Response<Body> {
        if let Some((spec, pattern)) = &plan.undo {
            record.undo_source = Some(Arc::new(undo::UndoSource::new(spec.clone(), pattern, &call)));
        }
        let forwarded = match record.live.forwarder.send(&plan.forward_key, &call, &plan.body, plan.retry).await {
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
                    stop: None,
                });
                let outcome = Outcome {
                    decision: view.decision,
                    reason: Some(view.message.clone()),
                    status: Some(view.status.as_u16()),
                    attempts: refusal.attempts(),
                    response_ref: None,
                    error: Some(detail),
                    spend,
                    extra: serde_json::Map::new(),
                    undo: record.undo_source.as_ref().map(|_| store::UndoPlan::Unavailable {
                        reason: "the upstream was not reached, so there is nothing to undo".to_owned(),
                    }),
                };
                self.record_outcome(&record, outcome).await;
                return refusal_response(&view, &record.call_id, record.shape);
            }
        };
        let Forwarded { response, attempts } = forwarded;
        if call.door != Door::Llm && !record.live.scope_watch.is_empty() {
            record.live.scope_watch.observe(&call.upstream, response.headers());
        }
        self.respond(&call.method, record, plan.llm, response, attempts).await
    }

    /// Journals the final outcome of an admitted call (settling its spend)
    /// and writes its audit line (see `finish`).
    async fn record_outcome(&self, record: &CallRecord, mut outcome: Outcome) {
        if let Some(of) = &record.undo_of {
            outcome.extra.insert("undo_of".into(), of.clone().into());
        }
        let completion = Completion {
            call_id: record.call_id.clone(),
            now_ms: unix_ms(SystemTime::now()),
            status: outcome.status.filter(|_| outcome.decision == Decision::Allowed),
            duration_ms: elapsed_ms(record.started),
            attempts: outcome.attempts,
            response_ref: outcome.response_ref,
            error: outcome.error,
            extra_json: (!outcome.extra.is_empty())
                .then(|| serde_json::Value::Object(outcome.extra.clone()).to_string()),
            spend: outcome.spend,
            undo: outcome.undo,
        };
        let mut audit = self.audit_record(
            record,
            outcome.decision,
            Phase::Completed,
            outcome.reason,
            outcome.status,
            outcome.attempts,
        );
        audit.extra = outcome.extra;
        self.finish(record, outcome.decision, outcome.status, self.store.complete(completion), audit).await;
    }

    fn audit_record(
        &self,
        record: &CallRecord,
        decision: Decision,
        phase: Phase,
        reason: Option<String>,
        status: Option<u16>,
        attempts: u32,
    ) -> AuditRecord {
        AuditRecord {
            ts: crate::clock::format_ts(record.received_at),
            call_id: record.call_id.clone(),
            agent: record.live.agent.clone(),
            door: record.door.as_str().to_owned(),
            tool: record.tool.clone(),
            upstream: record.upstream.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            input_summary: record.input_summary.clone(),
            input_sha256: record.input_sha256.clone(),
            decision: decision.as_str().to_owned(),
            phase,
            reason,
            status,
            duration_ms: elapsed_ms(record.started),
            attempts,
            extra: record.undo_of.iter().map(|of| ("undo_of".to_owned(), of.clone().into())).collect(),
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
    /// `Allowed`, or the failure when forwarding failed.
    decision: Decision,
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
    /// The undo plan, for a call whose tool declares an undo.
    undo: Option<store::UndoPlan>,
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

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
