//! The MCP door's calls in the one pipeline: a `tools/call` is a [`Call`]
//! with [`Door::Mcp`] whose upstream is the `[mcp.*]` server, whose path is
//! `/tools/call/<tool name>` and whose body is `{"name", "arguments"}`
//! (the request's `_meta`, a progress token that differs per call, is left
//! out, so the loop breaker and an approval's digest see the same call as
//! the same). Everything up to forwarding is shared with the other doors
//! (`Pipeline::admit`: gate, plan, approval, admission; the `admitted`
//! audit line); planning differs (`plan_mcp`: the tool from the MCP rules),
//! and so does forwarding: the front door hands in the exchange with the
//! server's session as a future, run only once the call is admitted.
//!
//! The answer is MCP's, never a transport error: a refusal is a tool
//! result with `isError: true` whose text is the reason and its fix
//! ([`refusal_result`]), so the agent's client neither reconnects nor
//! retries on its own. The server's answer is scrubbed of every credential
//! value before the agent sees it, like an HTTP response.

use std::future::Future;
use std::sync::Arc;

use serde_json::{Value, json};

use super::plan::{Plan, forward_key};
use super::undo::Seen;
use super::{Call, CallRecord, Door, Outcome, Pipeline, Refusal, RefusalView};
use crate::config::{Approval, RetryPolicy, UndoSpec};
use crate::decision::Decision;
use crate::policy::Identified;
use crate::store;

/// What the MCP door knows of a `tools/call` beyond its body.
#[derive(Debug, Clone)]
pub struct McpToolCall {
    /// The MCP tool name (`params.name`).
    pub name: String,
    /// The tool's definition says it only reads (`annotations.readOnlyHint`):
    /// what `[unmatched] policy = "allow-get"` lets through.
    pub read_only: bool,
}

/// What the agent gets for a `tools/call`: the JSON-RPC `result` or `error`
/// member of the response (the door adds `jsonrpc` and the agent's `id`).
#[derive(Debug, Clone, PartialEq)]
pub enum McpAnswer {
    /// `result`: the server's (scrubbed), or steward's refusal (`isError`).
    Result(Value),
    /// `error`: the server's JSON-RPC error (scrubbed).
    Error(Value),
}

/// Why a forwarded `tools/call` got no answer from the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum McpForwardError {
    /// The server could not be started or reached, or it went away
    /// before it answered.
    #[error("the MCP server is unreachable: {0}")]
    Unreachable(String),
    /// No answer within `[mcp.*] request_timeout`.
    #[error("the MCP server did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The answer was larger than `[mcp.*] max_message_size`.
    #[error("the MCP server's answer is larger than max_message_size ({0} bytes)")]
    TooLarge(u64),
    /// The agent cancelled the request (`notifications/cancelled`, relayed
    /// to the server); steward stops waiting for its answer.
    #[error("the agent cancelled the request")]
    Cancelled,
    /// The connection broke while a call that may act was in flight; it
    /// is not sent again. The text says what happened and what to check.
    #[error("{0}")]
    Interrupted(String),
}

/// How the operator's undo of an MCP tool's call reaches the server: the
/// MCP hub, handed to the pipeline by the daemon (the pipeline does not
/// import the MCP door).
pub trait McpRelay: Send + Sync {
    /// Sends `tools/call` with `params` to the server `server`.
    fn call_tool<'a>(
        &'a self,
        server: &'a str,
        params: Value,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<McpAnswer, McpForwardError>> + Send + 'a>>;
}

/// The `isError` tool result that words `view` for the agent: the reason
/// first (`rate_limited: ...`), then the message with its fix. `_meta`
/// carries the call id and the machine-readable reason.
pub fn refusal_result(view: &RefusalView, call_id: &str) -> Value {
    let mut meta = json!({ "steward/call_id": call_id, "steward/reason": view.decision.as_str() });
    if let (Some(secs), Some(meta)) = (view.retry_after_secs, meta.as_object_mut()) {
        meta.insert("steward/retry_after_secs".to_owned(), secs.into());
    }
    json!({
        "content": [{ "type": "text", "text": format!("{}: {}", view.decision.as_str(), view.message) }],
        "isError": true,
        "_meta": meta,
    })
}

impl super::Pipeline {
    /// The kill switch for an MCP message that is not a `tools/call` (a
    /// `tools/call` meets it in the pipeline like every call): `Some` with
    /// the refusal's text while the switch is engaged, or while it cannot
    /// be read (fail closed). `headers` are the request's: an
    /// unauthenticated one is answered by the door before this.
    pub async fn mcp_message_refusal(&self, headers: &http::HeaderMap) -> Option<String> {
        let refusal = self.gate(headers).await.err()?;
        let view = refusal.view();
        Some(format!("{}: {}", view.decision.as_str(), view.message))
    }
}

/// `value` with every credential value `scrubber` knows replaced, as the
/// agent may see it: the one scrub of what an MCP server sends, used for
/// `tools/call` answers here and for every other message by the MCP hub.
pub fn scrub_json(scrubber: &redact::CredentialScrubber, value: Value) -> Value {
    if scrubber.is_empty() {
        return value;
    }
    let text = value.to_string();
    match scrubber.scrub(text.as_bytes()) {
        std::borrow::Cow::Borrowed(_) => value,
        std::borrow::Cow::Owned(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

impl Call {
    /// A `tools/call` of `tool` on the MCP server `server`, whose params
    /// are `arguments` (see the module docs for how it is recorded).
    pub fn mcp_tool(server: &str, tool: McpToolCall, arguments: Option<Value>, headers: http::HeaderMap) -> Self {
        let encoded = percent_encoding::utf8_percent_encode(&tool.name, percent_encoding::NON_ALPHANUMERIC);
        // Every character but a letter or digit is percent-encoded, so the
        // name is one segment that any reader decodes alike.
        let target = super::RequestTarget::parse(&format!("{server}/tools/call/{encoded}"), None)
            .or_else(|_| super::RequestTarget::parse(&format!("{server}/tools/call"), None));
        let target = target.unwrap_or_else(|_| super::RequestTarget {
            upstream: server.to_owned(),
            path: super::CanonicalPath::root(),
            query: None,
        });
        let body = json!({ "name": tool.name, "arguments": arguments.unwrap_or_else(|| json!({})) });
        let mut call = Call::new(Door::Mcp, target, http::Method::POST, headers, body.to_string().into());
        call.mcp = Some(tool);
        call
    }
}

impl Pipeline {
    /// Runs an MCP `tools/call` through every step; `forward` is the
    /// exchange with the server, started only once the call is admitted.
    pub async fn handle_mcp<F, Fut>(self: &Arc<Self>, mut call: Call, forward: F) -> McpAnswer
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<McpAnswer, McpForwardError>>,
    {
        let mut record = self.describe(&call);
        let plan = match self.admit(&mut call, &mut record).await {
            Ok(plan) => plan,
            Err((refusal, journaled)) => return self.refuse_mcp(record, refusal, journaled).await,
        };
        if let Err(view) = self.audit_admission(&record).await {
            return McpAnswer::Result(refusal_result(&view, &record.call_id));
        }
        if let Some((spec, pattern)) = &plan.undo {
            record.undo_source = Some(Arc::new(super::undo::UndoSource::new(spec.clone(), pattern, &call)));
        }
        let answered = forward().await;
        let scrubber = self.secrets.load().scrubber();
        let scrub = |value: Value| -> Value { scrub_json(&scrubber, value) };
        let (answer, outcome) = match answered {
            Ok(McpAnswer::Result(result)) => {
                let result = scrub(result);
                let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
                let mut extra = serde_json::Map::new();
                if is_error {
                    extra.insert("mcp_is_error".into(), true.into());
                }
                let undo = record.undo_source.as_ref().map(|source| {
                    if is_error {
                        return store::UndoPlan::Unavailable {
                            reason: "the tool answered with an error, so there is nothing to undo".to_owned(),
                        };
                    }
                    let bytes = serde_json::to_vec(&result).unwrap_or_default();
                    let seen =
                        if bytes.len() > crate::undo::MAX_RESPONSE_BYTES { Seen::TooLarge } else { Seen::Body(&bytes) };
                    source.plan(200, seen, &self.redactor.load())
                });
                let outcome = Outcome {
                    decision: Decision::Allowed,
                    reason: None,
                    status: Some(200),
                    attempts: 1,
                    response_ref: result.pointer("/structuredContent/id").and_then(json_id),
                    error: None,
                    spend: None,
                    extra,
                    undo,
                };
                (McpAnswer::Result(result), outcome)
            }
            Ok(McpAnswer::Error(error)) => {
                let error = scrub(error);
                let mut extra = serde_json::Map::new();
                extra.insert("mcp_error_code".into(), error.get("code").cloned().unwrap_or(Value::Null));
                let message = error.get("message").and_then(Value::as_str).unwrap_or_default();
                let outcome = Outcome {
                    decision: Decision::Allowed,
                    reason: Some(crate::policy::truncate_summary(&self.redact(message))),
                    status: Some(400),
                    attempts: 1,
                    response_ref: None,
                    error: None,
                    spend: None,
                    extra,
                    undo: record.undo_source.as_ref().map(|_| store::UndoPlan::Unavailable {
                        reason: "the server answered with an error, so there is nothing to undo".to_owned(),
                    }),
                };
                (McpAnswer::Error(error), outcome)
            }
            Err(err) => {
                let refusal = match &err {
                    McpForwardError::Timeout(_) => Refusal::UpstreamTimeout { attempts: 1 },
                    McpForwardError::Unreachable(_)
                    | McpForwardError::TooLarge(_)
                    | McpForwardError::Cancelled
                    | McpForwardError::Interrupted(_) => Refusal::UpstreamUnreachable { attempts: 1 },
                };
                let detail = self.redact(&err.to_string());
                tracing::warn!(call_id = %record.call_id, server = %record.upstream, error = %detail, "MCP tools/call failed");
                let mut view = refusal.view();
                // The cases where the message differs from "try later".
                if let McpForwardError::TooLarge(limit) = err {
                    view.message = format!(
                        "the MCP server's answer is larger than max_message_size ({limit} bytes); ask the tool \
                         for less, or raise [mcp.{}] max_message_size",
                        record.upstream
                    );
                } else if let McpForwardError::Cancelled = err {
                    view.message =
                        "the agent cancelled the call; the MCP server was told (notifications/cancelled)".to_owned();
                } else if let McpForwardError::Interrupted(_) = err {
                    view.message = detail.clone();
                }
                let outcome = Outcome {
                    decision: view.decision,
                    reason: Some(view.message.clone()),
                    status: Some(view.status.as_u16()),
                    attempts: 1,
                    response_ref: None,
                    error: Some(detail),
                    spend: None,
                    extra: serde_json::Map::new(),
                    undo: record.undo_source.as_ref().map(|_| store::UndoPlan::Unavailable {
                        reason: "the MCP server did not answer, so steward cannot tell what to undo".to_owned(),
                    }),
                };
                (McpAnswer::Result(refusal_result(&view, &record.call_id)), outcome)
            }
        };
        self.record_outcome(&record, outcome).await;
        answer
    }

    /// A refused `tools/call`, recorded like any refusal and worded as an
    /// `isError` result.
    async fn refuse_mcp(&self, record: CallRecord, refusal: Refusal, journaled: bool) -> McpAnswer {
        let call_id = record.call_id.clone();
        if refusal.is_junk() {
            let view = refusal.view();
            let _ = self.refuse_junk(record, &refusal).await;
            return McpAnswer::Result(refusal_result(&view, &call_id));
        }
        let view = self.record_refusal(record, refusal, journaled).await;
        McpAnswer::Result(refusal_result(&view, &call_id))
    }

    /// Refuses an MCP `tools/call` the front door cannot let through
    /// (its definition changed since it was pinned, ...): the gate still
    /// comes first, and the refusal is recorded like any other.
    pub async fn reject_mcp(self: &Arc<Self>, call: Call, refusal: Refusal) -> McpAnswer {
        let record = self.describe(&call);
        let refusal = self.gate(&call.headers).await.err().unwrap_or(refusal);
        self.refuse_mcp(record, refusal, false).await
    }

    /// Whether the MCP tool `name` of `server` is one the policy lets the
    /// agent call (`tools/list` hides the others).
    pub fn mcp_tool_allowed(&self, server: &str, name: &str, read_only: bool) -> bool {
        !matches!(self.live.load().matcher.identify_mcp(server, name, read_only), Identified::UnmatchedDenied)
    }

    /// Whether `headers` carry the agent's steward token (the MCP door
    /// authenticates every request, not only `tools/call`).
    pub fn is_agent(&self, headers: &http::HeaderMap) -> bool {
        self.authenticated(headers)
    }

    /// Plans an MCP `tools/call`: the tool from the MCP rules of the server.
    pub(super) fn plan_mcp(&self, call: &Call, record: &CallRecord) -> Result<Plan, Refusal> {
        let live = &record.live;
        let Some(tool_call) = &call.mcp else {
            return Err(Refusal::BadRequest { detail: "an MCP call without a tool name".to_owned() });
        };
        let tool = match live.matcher.identify_mcp(&call.upstream, &tool_call.name, tool_call.read_only) {
            Identified::Tool(tool) => Some(tool),
            Identified::UnmatchedAllowed => None,
            Identified::UnmatchedDenied => {
                let route = format!("the MCP tool `{}` of [mcp.{}]", tool_call.name, call.upstream);
                return Err(Refusal::Unmatched { route });
            }
        };
        if let Some(mark) = &call.undo
            && tool.map(|t| t.name.as_str()) != Some(mark.tool.as_str())
        {
            let detail = format!(
                "the undo is planned as a call of tool `{}`, but the MCP tool `{}` is not it; fix the undo or the tools' match",
                mark.tool, tool_call.name
            );
            return Err(Refusal::BadRequest { detail });
        }
        Ok(Plan {
            tool: tool.map(|t| t.name.clone()),
            // `steward undo --force` passes the undo tool's limit (the undo records it).
            limit: tool.and_then(|t| t.limit).filter(|_| !call.undo.as_ref().is_some_and(|m| m.force)),
            // A tools/call is never repeated by steward: it could act twice.
            retry: RetryPolicy::Never,
            forward_key: forward_key(Door::Mcp, &call.upstream),
            body: call.body.clone(),
            llm: None,
            approval: tool.map_or(Approval::Never, |t| t.approval),
            undo: match tool.and_then(|t| t.undo.as_ref()) {
                Some(UndoSpec::Call(spec)) if call.undo.is_none() => {
                    Some((spec.clone(), "/tools/call/{tool}".to_owned()))
                }
                _ => None,
            },
        })
    }
}

/// A created object's id as the journal keeps it: a string or a number.
fn json_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
