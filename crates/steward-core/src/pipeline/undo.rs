//! Undo in the pipeline: the plan recorded with a call of a tool that
//! declares one, and the operator's undo, run as a call of the undo tool.
//!
//! **Recording.** When a call's tool declares `undo = { tool, path, ... }`,
//! `forward` keeps what the template reads ([`UndoSource`]: the agent's
//! JSON body, the tool's `match` pattern, the call's path segments), the
//! relay keeps the first [`MAX_RESPONSE_BYTES`] of the upstream's answer,
//! and the recorder resolves the template ([`crate::undo::resolve`]) and
//! journals the concrete undo with the call's completion, before the agent
//! sees the end of the response. A non-2xx answer, a body cut or larger
//! than the bound, a missing field, or an undo whose text redaction would
//! change (it holds a credential, so it cannot be stored to be sent later)
//! records `unavailable` with the reason.
//!
//! **Running.** [`Pipeline::undo_call`] and [`Pipeline::undo_batch`] are
//! the daemon's side of `steward undo` (the admin API calls them, never the
//! agent's front doors). Each undo is claimed in the store first (a second
//! undo of the same call answers "already undone" with the first one's
//! time), then sent as one [`Call`] through [`Pipeline::handle`]: the undo
//! tool's credential, retries, loop breaker, rate limit (unless `force`),
//! journal row and audit lines (with `undo_of`). The one bypass: the
//! kill switch does not refuse a call marked [`UndoMark`], because stopping
//! the agent and then cleaning up is the normal sequence. The mark is set
//! here only, so no request from the agent can carry it. A 2xx answer is
//! `undone`, 404 or 410 `gone` (done: it was already deleted), anything else
//! `failed`, published as [`Event::UndoFailed`] (the `undo_failed` alert)
//! and retryable with the same command. A batch runs newest original first.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::Value;

use super::{Call, Door, Pipeline, RequestTarget};
use crate::clock::unix_ms;
use crate::config::UndoCall;
use crate::decision::Decision;
use crate::events::Event;
use crate::store::{ClaimOutcome, StoreError, UndoClaim, UndoPlan, UndoQuery, UndoRow, UndoState};
use crate::undo::{Inputs, MAX_RESPONSE_BYTES, resolve};

/// Most bytes of an undo's answer read before it is dropped: the outcome is
/// its status; the body only has to end so the call is recorded.
const UNDO_ANSWER_BYTES: usize = 1 << 20;

/// Marks a call the operator's undo made: see the module docs.
#[derive(Debug, Clone)]
pub(super) struct UndoMark {
    /// The original call.
    pub(super) of: String,
    /// The tool the undo must be identified as.
    pub(super) tool: String,
    /// The undo tool's rate limit does not apply (`--force`, recorded).
    pub(super) force: bool,
}

/// What a call of a tool with an undo keeps until it is recorded.
#[derive(Debug)]
pub(super) struct UndoSource {
    spec: UndoCall,
    /// The agent's body as JSON (`None`: not JSON).
    request: Option<Value>,
    /// The tool's `match` path pattern.
    pattern: String,
    /// The call's decoded path segments.
    segments: Vec<String>,
}

/// What the relay saw of the answer, for the plan.
pub(super) enum Seen<'a> {
    /// The whole body (at most [`MAX_RESPONSE_BYTES`]).
    Body(&'a [u8]),
    /// The body was larger than the bound.
    TooLarge,
    /// The body did not arrive whole (cut, or the agent hung up).
    Incomplete,
}

impl UndoSource {
    /// The source of `call`, planned as a tool whose undo is `spec`.
    pub(super) fn new(spec: UndoCall, pattern: &str, call: &Call) -> UndoSource {
        UndoSource {
            spec,
            request: serde_json::from_slice(&call.body).ok(),
            pattern: pattern.to_owned(),
            segments: call.path.segments().to_vec(),
        }
    }

    /// The plan for an answer with `status`, of which the relay `seen` this.
    pub(super) fn plan(&self, status: u16, seen: Seen<'_>, redactor: &redact::Redactor) -> UndoPlan {
        let unavailable = |reason: String| UndoPlan::Unavailable { reason };
        if !(200..300).contains(&status) {
            return unavailable(format!("the upstream answered {status}, so there is nothing to undo"));
        }
        let response: Option<Value> = match seen {
            Seen::Body(bytes) => serde_json::from_slice(bytes).ok(),
            Seen::TooLarge => {
                return unavailable(format!(
                    "the response is larger than {} KiB, which steward does not keep to fill the undo",
                    MAX_RESPONSE_BYTES / 1024
                ));
            }
            Seen::Incomplete => return unavailable("the response did not arrive whole".to_owned()),
        };
        let inputs = Inputs {
            response: response.as_ref(),
            request: self.request.as_ref(),
            pattern: &self.pattern,
            segments: &self.segments,
        };
        match resolve(&self.spec, inputs) {
            Ok(undo) => {
                let texts = [Some(&undo.path), undo.body.as_ref()];
                if texts.into_iter().flatten().any(|text| redactor.redact(text) != text.as_str()) {
                    return unavailable(
                        "the undo would carry a secret (redaction changes it), and steward stores no secret \
                         in the clear; undo this call at the provider"
                            .to_owned(),
                    );
                }
                UndoPlan::Call { tool: undo.tool, method: undo.method, path: undo.path, body: undo.body }
            }
            Err(reason) => unavailable(reason),
        }
    }
}

/// How the operator asked for an undo (the admin API's body).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct UndoRequest {
    /// Ignore the undo tool's rate limit (recorded with the undo).
    pub force: bool,
    /// Say what would be sent, send nothing.
    pub dry_run: bool,
    /// Who asks (the CLI sends `$USER`).
    pub by: String,
    /// `cli` or `dashboard`.
    pub via: String,
}

/// What one undo did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoReport {
    /// The original call.
    pub call_id: String,
    /// Its tool.
    pub tool: String,
    /// When it started, epoch ms.
    pub started_ms: i64,
    /// `would_undo` (dry run), `undone`, `already_gone`, `already_undone`,
    /// `undo_failed`, `unavailable`, `in_progress`.
    pub outcome: String,
    /// One sentence for the operator.
    pub message: String,
    /// The undo: method and path (with query).
    pub method: Option<String>,
    /// Path (and query) of the undo.
    pub path: Option<String>,
    /// JSON body of the undo.
    pub body: Option<String>,
    /// The call that carried the undo, if one was sent.
    pub undo_call_id: Option<String>,
    /// The upstream's status for the undo, if it answered.
    pub status: Option<u16>,
    /// When the undo was done (this one or the first), epoch ms.
    pub done_ms: Option<i64>,
}

impl UndoReport {
    fn of(row: &UndoRow, outcome: &str, message: String) -> UndoReport {
        UndoReport {
            call_id: row.call_id.clone(),
            tool: row.tool.clone(),
            started_ms: row.started_ms,
            outcome: outcome.to_owned(),
            message,
            method: row.method.clone(),
            path: row.path.clone(),
            body: row.body.clone(),
            undo_call_id: row.undo_call_id.clone(),
            status: None,
            done_ms: row.state.is_done().then_some(row.changed_ms),
        }
    }

    /// Whether the call is undone after this (now or before).
    pub fn is_done(&self) -> bool {
        matches!(self.outcome.as_str(), "undone" | "already_gone" | "already_undone")
    }
}

/// Why an undo could not even be looked at.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// No journaled call matches.
    #[error("no call matches {0:?}; copy the CALL column of `steward last`")]
    NotFound(String),
    /// Several calls match a short id.
    #[error("{text:?} matches {count} calls; give more of the id (`steward last` shows them)")]
    Ambiguous {
        /// What was typed.
        text: String,
        /// How many match (up to 10).
        count: usize,
    },
    /// The call exists but has no undo plan.
    #[error(
        "call {0} has no undo plan: its tool declares no undo, or the call was refused; \
         declare undo = {{ tool = ..., path = ... }} on the tool for future calls"
    )]
    NoPlan(String),
    /// `--tool` names no configured tool.
    #[error("no tool is named `{tool}`; the tools are: {known}")]
    UnknownTool {
        /// What was asked for.
        tool: String,
        /// The configured tools.
        known: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Pipeline {
    /// Undoes the call `id` (a whole id, the short id `steward last` shows,
    /// or a unique prefix). See the module docs.
    pub async fn undo_call(self: &Arc<Self>, id: &str, req: &UndoRequest) -> Result<UndoReport, UndoError> {
        let ids = self.store.find_call_ids(id).await?;
        let call_id = match ids.as_slice() {
            [] => return Err(UndoError::NotFound(id.to_owned())),
            [one] => one.clone(),
            many => match many.iter().find(|m| m.as_str() == id) {
                Some(exact) => exact.clone(),
                None => return Err(UndoError::Ambiguous { text: id.to_owned(), count: many.len() }),
            },
        };
        let query = UndoQuery { call_ids: Some(vec![call_id.clone()]), ..UndoQuery::default() };
        let Some(row) = self.store.undos(query).await?.into_iter().next() else {
            return Err(UndoError::NoPlan(call_id));
        };
        Ok(self.undo_row(row, req).await)
    }

    /// Undoes every undoable call of `tool` started at or after `since_ms`,
    /// newest first (the reverse of the order they were made).
    pub async fn undo_batch(
        self: &Arc<Self>,
        tool: &str,
        since_ms: i64,
        req: &UndoRequest,
    ) -> Result<Vec<UndoReport>, UndoError> {
        let live = self.live.load_full();
        if !live.tool_upstreams.contains_key(tool) {
            let known = live.tool_upstreams.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
            return Err(UndoError::UnknownTool { tool: tool.to_owned(), known });
        }
        let query = UndoQuery {
            tool: Some(tool.to_owned()),
            since_ms: Some(since_ms),
            undoable_only: true,
            ..UndoQuery::default()
        };
        let mut reports = Vec::new();
        for row in self.store.undos(query).await? {
            reports.push(self.undo_row(row, req).await);
        }
        Ok(reports)
    }

    async fn undo_row(self: &Arc<Self>, row: UndoRow, req: &UndoRequest) -> UndoReport {
        if let Some(report) = settled(&row) {
            return report;
        }
        if req.dry_run {
            let message =
                format!("would send {} {}", row.method.as_deref().unwrap_or("?"), row.path.as_deref().unwrap_or("?"));
            return UndoReport::of(&row, "would_undo", message);
        }
        let undo_call_id = uuid::Uuid::now_v7().to_string();
        let claim = UndoClaim {
            call_id: row.call_id.clone(),
            undo_call_id: undo_call_id.clone(),
            by: req.by.clone(),
            via: req.via.clone(),
            forced: req.force,
            now_ms: unix_ms(SystemTime::now()),
        };
        let row = match self.store.claim_undo(claim).await {
            Ok(ClaimOutcome::Claimed(row)) => row,
            Ok(ClaimOutcome::NotClaimed(row)) => {
                return settled(&row).unwrap_or_else(|| UndoReport::of(&row, "in_progress", "busy".to_owned()));
            }
            Ok(ClaimOutcome::NoPlan) => return UndoReport::of(&row, "unavailable", "the plan is gone".to_owned()),
            Err(err) => {
                let message = format!("cannot claim the undo: {}", self.redact(&err.to_string()));
                return UndoReport::of(&row, "undo_failed", message);
            }
        };
        let (state, status, reason) = self.send_undo(&row, undo_call_id).await;
        let now_ms = unix_ms(SystemTime::now());
        if let Err(err) = self.store.finish_undo(&row.call_id, state, reason.as_deref(), now_ms).await {
            tracing::error!(error = %err, call_id = %row.call_id, "could not record an undo's outcome");
            self.write_failed(Some(&err), None);
        }
        let mut report = match state {
            UndoState::Undone => {
                UndoReport::of(&row, "undone", format!("undone (the upstream answered {})", status.unwrap_or(0)))
            }
            UndoState::Gone => UndoReport::of(
                &row,
                "already_gone",
                format!("already gone at the upstream (it answered {}); counted as done", status.unwrap_or(0)),
            ),
            _ => {
                let reason = reason.unwrap_or_default();
                tracing::warn!(call_id = %row.call_id, %reason, "undo failed");
                self.events.publish(Event::UndoFailed {
                    call_id: row.call_id.clone(),
                    tool: row.tool.clone(),
                    reason: reason.clone(),
                });
                UndoReport::of(&row, "undo_failed", format!("{reason}; run the same command again to retry"))
            }
        };
        report.status = status;
        report.done_ms = state.is_done().then_some(now_ms);
        report
    }

    /// Sends the claimed undo of `row` as call `undo_call_id` and reads its
    /// outcome back from the journal: `(state, upstream status, reason)`.
    async fn send_undo(
        self: &Arc<Self>,
        row: &UndoRow,
        undo_call_id: String,
    ) -> (UndoState, Option<u16>, Option<String>) {
        let failed = |reason: String| (UndoState::Failed, None, Some(reason));
        let (Some(tool), Some(method), Some(path)) = (&row.undo_tool, &row.method, &row.path) else {
            return failed("the plan has no undo call".to_owned());
        };
        let live = self.live.load_full();
        let Some(upstream) = live.tool_upstreams.get(tool) else {
            return failed(format!(
                "the undo tool `{tool}` is no longer configured; declare it again (or undo at the provider)"
            ));
        };
        if live.matcher.tool(tool).is_some_and(|t| t.door == crate::config::ToolDoor::Mcp) {
            return self.send_mcp_undo(row, undo_call_id, tool, upstream, path).await;
        }
        let (path_part, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path.as_str(), None),
        };
        let target = match RequestTarget::parse(&format!("{upstream}{path_part}"), query) {
            Ok(target) => target,
            Err(err) => return failed(format!("the recorded undo path is refused: {err}")),
        };
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return failed(format!("the recorded undo method {method:?} is not a method"));
        };
        let mut headers = HeaderMap::new();
        let body = match &row.body {
            Some(body) => {
                headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(body.clone())
            }
            None => Bytes::new(),
        };
        let mut call = Call::new(Door::Api, target, method, headers, body);
        call.id = undo_call_id;
        call.undo = Some(UndoMark { of: row.call_id.clone(), tool: tool.clone(), force: row.forced });
        let call_id = call.id.clone();
        let response = self.handle(call).await;
        drain(response).await;
        let journaled = match self.store.call(&call_id).await {
            Ok(Some(journaled)) => journaled,
            Ok(None) => return failed("the undo call was not journaled".to_owned()),
            Err(err) => {
                return failed(format!("cannot read the undo call's record: {}", self.redact(&err.to_string())));
            }
        };
        let decision = Decision::parse(&journaled.decision);
        match (decision, journaled.status) {
            (Some(Decision::Allowed), Some(status)) if (200..300).contains(&status) => {
                (UndoState::Undone, Some(status), None)
            }
            (Some(Decision::Allowed), Some(status @ (404 | 410))) => (UndoState::Gone, Some(status), None),
            (Some(Decision::Allowed), Some(status)) => {
                (UndoState::Failed, Some(status), Some(format!("the upstream answered {status}")))
            }
            (Some(Decision::Allowed), None) => failed(format!(
                "the upstream did not answer: {}",
                journaled.reason.unwrap_or_else(|| "no response".to_owned())
            )),
            (_, _) => {
                let fix = if journaled.decision == Decision::RateLimited.as_str() {
                    " (wait, or add --force to pass the undo tool's limit)"
                } else {
                    ""
                };
                failed(format!(
                    "steward refused the undo: {}: {}{fix}",
                    journaled.decision,
                    journaled.reason.unwrap_or_default()
                ))
            }
        }
    }
}

impl Pipeline {
    /// The undo of an MCP tool's call: a `tools/call` of the undo tool
    /// (recorded path `/<MCP tool name>`, body = its arguments) through
    /// the pipeline, sent to the server by the MCP hub. An `isError` result
    /// (the tool's, or steward's refusal) is a failed undo.
    async fn send_mcp_undo(
        self: &Arc<Self>,
        row: &UndoRow,
        undo_call_id: String,
        tool: &str,
        server: &str,
        path: &str,
    ) -> (UndoState, Option<u16>, Option<String>) {
        let failed = |reason: String| (UndoState::Failed, None, Some(reason));
        let Some(relay) = self.mcp_relay.get().cloned() else {
            return failed(format!("the MCP server `{server}` is not running in this daemon; restart steward"));
        };
        let name = percent_encoding::percent_decode_str(path.trim_start_matches('/')).decode_utf8_lossy().into_owned();
        let arguments = row.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok());
        let mut call = Call::mcp_tool(
            server,
            super::McpToolCall { name: name.clone(), read_only: false },
            arguments.clone(),
            HeaderMap::new(),
        );
        call.id = undo_call_id;
        call.undo = Some(UndoMark { of: row.call_id.clone(), tool: tool.to_owned(), force: row.forced });
        let params =
            serde_json::json!({ "name": name, "arguments": arguments.unwrap_or_else(|| serde_json::json!({})) });
        let server_name = server.to_owned();
        let forward = || async move { relay.call_tool(&server_name, params).await };
        match self.handle_mcp(call, forward).await {
            super::McpAnswer::Result(result) if result.get("isError").and_then(Value::as_bool) != Some(true) => {
                (UndoState::Undone, Some(200), None)
            }
            super::McpAnswer::Result(result) => {
                let text = result.pointer("/content/0/text").and_then(Value::as_str).unwrap_or("an error result");
                failed(format!("the undo tool answered: {}", self.redact(text)))
            }
            super::McpAnswer::Error(error) => {
                let text = error.get("message").and_then(Value::as_str).unwrap_or("an error");
                failed(format!("the MCP server answered an error: {}", self.redact(text)))
            }
        }
    }
}

/// The report of a row that will not run: done, unavailable or running.
fn settled(row: &UndoRow) -> Option<UndoReport> {
    let at = crate::clock::format_ts(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(row.changed_ms).unwrap_or(0)),
    );
    match row.state {
        UndoState::Undone => Some(UndoReport::of(row, "already_undone", format!("already undone at {at}"))),
        UndoState::Gone => {
            Some(UndoReport::of(row, "already_undone", format!("already undone at {at} (it was already gone)")))
        }
        UndoState::Unavailable => Some(UndoReport::of(
            row,
            "unavailable",
            format!("no undo: {}", row.reason.as_deref().unwrap_or("unavailable")),
        )),
        UndoState::Running => Some(UndoReport::of(row, "in_progress", format!("an undo is in flight since {at}"))),
        UndoState::Planned | UndoState::Failed => None,
    }
}

/// Reads an undo's answer to its end (bounded), so its record is written.
async fn drain(response: Response<Body>) {
    let mut body = response.into_body();
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > UNDO_ANSWER_BYTES {
            break;
        }
    }
}
