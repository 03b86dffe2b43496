//! Every reason the pipeline refuses or fails a call, and the one place each
//! maps to its [`Decision`] (whose one mapping gives the machine-readable
//! `reason`, the HTTP status and the error-rate weight), a message, and
//! whether the agent may retry. Messages are written for the agent's
//! operator and never carry internal details (paths, SQL, upstream bodies,
//! secrets).

use std::time::Duration;

use http::StatusCode;

use crate::decision::Decision;

/// Why a call did not get an upstream response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No valid steward token in `Authorization: Bearer` or `x-api-key`.
    Unauthenticated,
    /// The kill switch is engaged.
    Killed {
        /// Why it was engaged (operator text or the loop breaker's).
        reason: String,
    },
    /// No `[[tools]]` rule matched and `[unmatched]` denies it.
    Unmatched {
        /// `METHOD /path` as received, for the operator to write a rule.
        route: String,
    },
    /// `/api/{name}` names no configured upstream.
    UnknownUpstream {
        /// The name the agent used.
        name: String,
    },
    /// The call completed a run of identical calls: the agent is stopped.
    LoopDetected {
        /// The kill-switch reason recorded.
        reason: String,
    },
    /// The tool's persistent window is full.
    RateLimited {
        /// Tool name.
        tool: String,
        /// When a slot frees up.
        retry_after: Duration,
    },
    /// The request names a model steward has no price for (fail closed).
    UnknownPrice {
        /// The model as requested.
        model: String,
    },
    /// The day's spend plus this call's worst case would pass the cap.
    SpendCap {
        /// Committed spend today, micro-dollars.
        spent_micros: u64,
        /// The cap, micro-dollars.
        cap_micros: u64,
        /// This call's worst case (its input bound plus its max output
        /// tokens, priced), micro-dollars: what did not fit.
        reserve_micros: u64,
    },
    /// A call earlier today used more than its reservation, so priced calls
    /// are stopped for the rest of the spend day.
    SpendStopped {
        /// The stop's reason (provider, model, billed against reserved).
        reason: String,
    },
    /// The credential the upstream needs has expired (fail closed: an
    /// expired token would only earn a 401 upstream, or worse, a lockout).
    CredentialExpired {
        /// Credential name.
        credential: String,
        /// `YYYY-MM-DD` (UTC) it expired.
        expired_on: String,
    },
    /// The request body exceeds `gateway.max_body`.
    BodyTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The request cannot be forwarded as sent (a body the provider would
    /// read differently, a method override).
    BadRequest {
        /// What is wrong, safe to show.
        detail: String,
    },
    /// The front door could not read the request: its target is not a
    /// canonical path, or its body broke off. Answered like `BadRequest`,
    /// but counted and sampled, not journaled (see [`Refusal::is_junk`]).
    Malformed {
        /// What is wrong, safe to show.
        detail: String,
    },
    /// The request body stalled longer than `[gateway] body_timeout`.
    BodyTimeout {
        /// The configured idle limit.
        idle: Duration,
    },
    /// The store or the audit log cannot record the call, so it is not made (fail closed).
    StoreUnavailable,
    /// The upstream could not be reached or broke the connection.
    UpstreamUnreachable {
        /// Attempts made.
        attempts: u32,
    },
    /// The upstream did not answer within its timeouts.
    UpstreamTimeout {
        /// Attempts made.
        attempts: u32,
    },
    /// Supervised mode: no human decided within `[supervised] wait`.
    ApprovalPending {
        /// The request's id, for `steward approve` and for the agent's log.
        id: String,
        /// When to repeat the identical call.
        retry_after: Duration,
    },
    /// The MCP tool's definition changed since it was pinned (tool pinning:
    /// a server must not change what a tool says it does behind the
    /// operator's back).
    ToolChanged {
        /// `[mcp.NAME]`.
        server: String,
        /// The MCP tool name.
        tool: String,
    },
    /// Supervised mode: a human refused the call.
    ApprovalDenied {
        /// The request's id.
        id: String,
        /// The reason the human gave (redacted).
        reason: String,
    },
    /// Supervised mode: nobody decided before `[supervised] expires`.
    ApprovalExpired {
        /// The request's id.
        id: String,
    },
}

/// How a refusal is presented: the single exhaustive mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalView {
    /// HTTP status for the agent (the decision's).
    pub status: StatusCode,
    /// The decision: its name is the machine-readable `reason`, the audit
    /// and journal `decision` and the metric label.
    pub decision: Decision,
    /// Human-readable explanation with the fix.
    pub message: String,
    /// `Retry-After` seconds, for 429/503 where waiting helps.
    pub retry_after_secs: Option<u64>,
    /// Whether repeating the same call later can succeed without a human.
    pub retryable: bool,
    /// The approval request the refusal is about (supervised mode), carried
    /// in every error shape as `approval_id`.
    pub approval_id: Option<String>,
}

impl Refusal {
    /// The decision this refusal is recorded as.
    pub fn decision(&self) -> Decision {
        match self {
            Refusal::Unauthenticated => Decision::Unauthenticated,
            Refusal::Killed { .. } => Decision::Killed,
            Refusal::Unmatched { .. } => Decision::Unmatched,
            Refusal::UnknownUpstream { .. } => Decision::UnknownUpstream,
            Refusal::LoopDetected { .. } => Decision::LoopDetected,
            Refusal::RateLimited { .. } => Decision::RateLimited,
            Refusal::UnknownPrice { .. } => Decision::UnknownPrice,
            Refusal::SpendCap { .. } | Refusal::SpendStopped { .. } => Decision::SpendCap,
            Refusal::CredentialExpired { .. } => Decision::CredentialExpired,
            Refusal::BodyTooLarge { .. } => Decision::BodyTooLarge,
            Refusal::BadRequest { .. } | Refusal::Malformed { .. } => Decision::BadRequest,
            Refusal::BodyTimeout { .. } => Decision::BodyTimeout,
            Refusal::StoreUnavailable => Decision::StoreUnavailable,
            Refusal::UpstreamUnreachable { .. } => Decision::UpstreamUnreachable,
            Refusal::UpstreamTimeout { .. } => Decision::UpstreamTimeout,
            Refusal::ApprovalPending { .. } => Decision::ApprovalPending,
            Refusal::ApprovalDenied { .. } => Decision::ApprovalDenied,
            Refusal::ApprovalExpired { .. } => Decision::ApprovalExpired,
            Refusal::ToolChanged { .. } => Decision::ToolChanged,
        }
    }

    /// Maps this refusal to its decision, status and message.
    pub fn view(&self) -> RefusalView {
        let (message, retry_after, retryable) = match self {
            Refusal::Unauthenticated => (
                                "missing or wrong steward token: send the contents of <state dir>/agent.token as `Authorization: Bearer <token>` or `x-api-key: <token>`".to_owned(),
                None,
                false,
            ),
            Refusal::Killed { reason } => (
                                crate::store::KillState::refusal_message(reason),
                None,
                false,
            ),
            Refusal::Unmatched { route } => (
                                format!("no tool rule matches {route}; add a [[tools]] entry for it or set [unmatched] policy"),
                None,
                false,
            ),
            Refusal::UnknownUpstream { name } => (
                                format!("no upstream named `{name}` is configured; add [upstreams.{name}] to steward.toml"),
                None,
                false,
            ),
            Refusal::LoopDetected { reason } => (
                                format!("{reason}: the same call repeated too often, so steward stopped the agent; an operator must run `steward resume`"),
                None,
                false,
            ),
            Refusal::RateLimited { tool, retry_after } => {
                let secs = retry_after.as_millis().div_ceil(1000).max(1) as u64;
                (
                                        format!("tool `{tool}` reached its limit; retry in {secs}s"),
                    Some(secs),
                    true,
                )
            }
            Refusal::UnknownPrice { model } => (
                                format!(
                    "steward has no price for model `{model}`, so it cannot cap its spend; add [prices.\"{model}\"] with input and output USD per 1M tokens to steward.toml"
                ),
                None,
                false,
            ),
            Refusal::SpendCap { spent_micros, cap_micros, reserve_micros } => {
                let usd = crate::config::units::Usd::from_micros;
                let message = if spent_micros >= cap_micros {
                    format!(
                        "the daily LLM spend cap is reached: {} of {} committed today; LLM calls are refused \
                         until midnight in [spend] timezone",
                        usd(*spent_micros),
                        usd(*cap_micros)
                    )
                } else {
                    format!(
                        "this call's worst case ({}: its input plus max output tokens, priced) does not fit in \
                         the {} left under the {} daily LLM spend cap ({} committed today); the cap is not \
                         reached: a call with a lower max_tokens (max_completion_tokens) may fit",
                        usd(*reserve_micros),
                        usd(cap_micros.saturating_sub(*spent_micros)),
                        usd(*cap_micros),
                        usd(*spent_micros)
                    )
                };
                (message, None, false)
            }
            Refusal::SpendStopped { reason } => (
                                format!(
                    "LLM calls are stopped for today: {reason}. The cap cannot be trusted while a provider bills \
                     past what was reserved; the stop ends at midnight in [spend] timezone, or when an operator \
                     has checked the provider's bill and runs `steward resume`"
                ),
                None,
                false,
            ),
            Refusal::CredentialExpired { credential, expired_on } => (
                                format!(
                    "credential `{credential}` for this upstream expired on {expired_on}; an operator must rotate it and run `steward secrets reload`"
                ),
                None,
                false,
            ),
            Refusal::BodyTooLarge { limit } => (
                                format!("request body exceeds the {limit}-byte limit (gateway.max_body)"),
                None,
                false,
            ),
            Refusal::BadRequest { detail } | Refusal::Malformed { detail } => {
                (detail.clone(), None, false)
            }
            Refusal::BodyTimeout { idle } => (
                                format!(
                    "the request body stalled for {}s ([gateway] body_timeout); send the whole body without pauses",
                    idle.as_secs()
                ),
                None,
                true,
            ),
            Refusal::StoreUnavailable => (
                                "steward cannot record this call (store or audit log not writable), so it was not made; check `steward status`".to_owned(),
                Some(5),
                true,
            ),
            Refusal::UpstreamUnreachable { attempts } => (
                                format!("the upstream could not be reached ({attempts} attempt(s))"),
                None,
                true,
            ),
            Refusal::UpstreamTimeout { attempts } => (
                                format!("the upstream did not answer in time ({attempts} attempt(s))"),
                None,
                true,
            ),
            Refusal::ApprovalPending { id, retry_after } => {
                let secs = retry_after.as_secs().max(1);
                (
                    format!(
                        "this call waits for a human's approval (request {id}); repeat the identical call in \
                         {secs}s to get the decision. An operator runs `steward approve {id}` or \
                         `steward deny {id} --reason ...`"
                    ),
                    Some(secs),
                    true,
                )
            }
            Refusal::ApprovalDenied { id, reason } => (
                format!("a human denied this call (request {id}): {reason}; do not repeat it unchanged"),
                None,
                false,
            ),
            Refusal::ApprovalExpired { id } => (
                format!(
                    "nobody approved this call in time (request {id} expired); an operator must be watching \
                     `steward approvals` before the agent tries again"
                ),
                None,
                false,
            ),
            Refusal::ToolChanged { server, tool } => (
                format!(
                    "the MCP server `{server}` changed the definition of tool `{tool}` since steward pinned it; \
                     an operator must review it (`steward mcp list`) and run `steward mcp trust {server}`"
                ),
                None,
                false,
            ),
        };
        let decision = self.decision();
        // Every refusal's decision has a status (a test checks it).
        let status = decision.status().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let approval_id = match self {
            Refusal::ApprovalPending { id, .. }
            | Refusal::ApprovalDenied { id, .. }
            | Refusal::ApprovalExpired { id } => Some(id.clone()),
            _ => None,
        };
        RefusalView { status, decision, message, retry_after_secs: retry_after, retryable, approval_id }
    }

    /// Whether this refusal is of a request that never became a call (no
    /// valid token, or a target or body the front door could not read): such
    /// requests are counted and sampled into the audit log, never journaled
    /// one row each, so a flood of them costs bounded disk.
    pub fn is_junk(&self) -> bool {
        matches!(self, Refusal::Unauthenticated | Refusal::Malformed { .. } | Refusal::BodyTimeout { .. })
    }

    /// Attempts made upstream before this outcome (0 when refused before forwarding).
    pub fn attempts(&self) -> u32 {
        match self {
            Refusal::UpstreamUnreachable { attempts } | Refusal::UpstreamTimeout { attempts } => *attempts,
            _ => 0,
        }
    }
}

/// Which error JSON a refusal is written in: the agent's SDK must recognise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// steward's own: `{"error": {"type": "steward", "reason", "message", "call_id"}}`.
    Steward,
    /// OpenAI's: `{"error": {"message", "type", "param", "code"}}` (+ `reason`, `call_id`).
    OpenAi,
    /// Anthropic's: `{"type": "error", "error": {"type", "message"}}` (+ `reason`, `call_id`).
    Anthropic,
}

/// The JSON body of a refusal in `shape`. Every shape carries the
/// machine-readable `reason` and the `call_id`.
pub fn refusal_body(view: &RefusalView, call_id: &str, shape: ErrorShape) -> serde_json::Value {
    let mut body = shaped_body(view, call_id, shape);
    if let Some(id) = &view.approval_id
        && let Some(error) = body.get_mut("error").and_then(serde_json::Value::as_object_mut)
    {
        error.insert("approval_id".to_owned(), id.clone().into());
    }
    body
}

fn shaped_body(view: &RefusalView, call_id: &str, shape: ErrorShape) -> serde_json::Value {
    match shape {
        ErrorShape::Steward => serde_json::json!({
            "error": { "type": "steward", "reason": view.decision.as_str(), "message": view.message, "call_id": call_id }
        }),
        ErrorShape::OpenAi => serde_json::json!({
            "error": {
                "message": view.message,
                "type": format!("steward_{}", view.decision.as_str()),
                "param": null,
                "code": view.decision.as_str(),
                "reason": view.decision.as_str(),
                "call_id": call_id,
            }
        }),
        ErrorShape::Anthropic => serde_json::json!({
            "type": "error",
            "error": {
                "type": anthropic_error_type(view.status),
                "message": view.message,
                "reason": view.decision.as_str(),
                "call_id": call_id,
            }
        }),
    }
}

/// The last event of a stream that steward ends with an error (the upstream
/// cut it, or it passed its reserved output): the shape the agent's SDK
/// raises from. OpenAI's SDK raises on any event whose data has an `error`
/// object (chat chunks carry nothing else; the Responses API's `event:
/// error` carries its `code` and `message` too); Anthropic's raises on
/// `event: error`. `code` is also the error's machine-readable `reason`.
pub fn stream_error_event(shape: ErrorShape, responses: bool, code: &str, message: &str, call_id: &str) -> String {
    let data = match shape {
        ErrorShape::Anthropic => serde_json::json!({
            "type": "error",
            "error": { "type": "api_error", "message": message, "reason": code, "call_id": call_id },
        }),
        ErrorShape::OpenAi | ErrorShape::Steward => {
            let error = serde_json::json!({
                "message": message,
                "type": format!("steward_{code}"),
                "param": null,
                "code": code,
                "reason": code,
                "call_id": call_id,
            });
            if responses {
                serde_json::json!({ "type": "error", "code": code, "message": message, "param": null, "error": error })
            } else {
                serde_json::json!({ "error": error })
            }
        }
    };
    let named = shape == ErrorShape::Anthropic || responses;
    format!("{}data: {data}\n\n", if named { "event: error\n" } else { "" })
}

/// Anthropic's error `type` for a status, so its SDK maps it to the right exception.
fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One refusal of every kind; a new variant stops the `match` from compiling.
    fn every_kind() -> Vec<Refusal> {
        let all = vec![
            Refusal::Unauthenticated,
            Refusal::Killed { reason: String::new() },
            Refusal::Unmatched { route: String::new() },
            Refusal::UnknownUpstream { name: String::new() },
            Refusal::LoopDetected { reason: String::new() },
            Refusal::RateLimited { tool: String::new(), retry_after: Duration::ZERO },
            Refusal::UnknownPrice { model: String::new() },
            Refusal::SpendCap { spent_micros: 0, cap_micros: 0, reserve_micros: 0 },
            Refusal::SpendStopped { reason: String::new() },
            Refusal::CredentialExpired { credential: String::new(), expired_on: String::new() },
            Refusal::BodyTooLarge { limit: 0 },
            Refusal::BadRequest { detail: String::new() },
            Refusal::Malformed { detail: String::new() },
            Refusal::BodyTimeout { idle: Duration::ZERO },
            Refusal::StoreUnavailable,
            Refusal::UpstreamUnreachable { attempts: 0 },
            Refusal::UpstreamTimeout { attempts: 0 },
            Refusal::ApprovalPending { id: String::new(), retry_after: Duration::ZERO },
            Refusal::ApprovalDenied { id: String::new(), reason: String::new() },
            Refusal::ApprovalExpired { id: String::new() },
            Refusal::ToolChanged { server: String::new(), tool: String::new() },
        ];
        for refusal in &all {
            match refusal {
                Refusal::Unauthenticated
                | Refusal::Killed { .. }
                | Refusal::Unmatched { .. }
                | Refusal::UnknownUpstream { .. }
                | Refusal::LoopDetected { .. }
                | Refusal::RateLimited { .. }
                | Refusal::UnknownPrice { .. }
                | Refusal::SpendCap { .. }
                | Refusal::SpendStopped { .. }
                | Refusal::CredentialExpired { .. }
                | Refusal::BodyTooLarge { .. }
                | Refusal::BadRequest { .. }
                | Refusal::Malformed { .. }
                | Refusal::BodyTimeout { .. }
                | Refusal::StoreUnavailable
                | Refusal::UpstreamUnreachable { .. }
                | Refusal::UpstreamTimeout { .. }
                | Refusal::ApprovalPending { .. }
                | Refusal::ApprovalDenied { .. }
                | Refusal::ApprovalExpired { .. }
                | Refusal::ToolChanged { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_refusal_is_answered_with_its_decisions_status() {
        for refusal in every_kind() {
            let view = refusal.view();
            assert_eq!(Some(view.status), view.decision.status(), "{refusal:?}");
            assert_ne!(view.decision, Decision::Allowed, "{refusal:?}");
        }
        let pending = Refusal::ApprovalPending { id: "7f3a".into(), retry_after: Duration::from_secs(30) }.view();
        assert_eq!((pending.status.as_u16(), pending.retryable, pending.retry_after_secs), (409, true, Some(30)));
        for shape in [ErrorShape::Steward, ErrorShape::OpenAi, ErrorShape::Anthropic] {
            assert_eq!(refusal_body(&pending, "c", shape)["error"]["approval_id"], "7f3a", "{shape:?}");
        }
        for refusal in [
            Refusal::ApprovalDenied { id: "7f3a".into(), reason: "off-brand".into() },
            Refusal::ApprovalExpired { id: "7f3a".into() },
        ] {
            let view = refusal.view();
            assert_eq!((view.status.as_u16(), view.retryable), (403, false), "{refusal:?}");
        }
        // Every refusal decision is reachable from a refusal.
        let decided: Vec<Decision> = every_kind().iter().map(Refusal::decision).collect();
        for decision in Decision::ALL {
            let expected = !matches!(decision, Decision::Allowed | Decision::Interrupted);
            assert_eq!(decided.contains(&decision), expected, "{decision:?}");
        }
    }
}
