//! Every reason the pipeline refuses or fails a call, and the one place each
//! maps to an HTTP status, a machine-readable `reason`, and whether the
//! agent may retry. Messages are written for the agent's operator and never
//! carry internal details (paths, SQL, upstream bodies, secrets).

use std::time::Duration;

use http::StatusCode;

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
}

/// How a refusal is presented: the single exhaustive mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalView {
    /// HTTP status for the agent.
    pub status: StatusCode,
    /// Machine-readable reason, also the audit `decision` and the metric label.
    pub reason: &'static str,
    /// Human-readable explanation with the fix.
    pub message: String,
    /// `Retry-After` seconds, for 429/503 where waiting helps.
    pub retry_after_secs: Option<u64>,
    /// Whether repeating the same call later can succeed without a human.
    pub retryable: bool,
}

impl Refusal {
    /// Maps this refusal to status, reason and message.
    pub fn view(&self) -> RefusalView {
        let (status, reason, message, retry_after, retryable) = match self {
            Refusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing or wrong steward token: send the contents of <state dir>/agent.token as `Authorization: Bearer <token>` or `x-api-key: <token>`".to_owned(),
                None,
                false,
            ),
            Refusal::Killed { reason } => (
                StatusCode::FORBIDDEN,
                "killed",
                format!("steward's kill switch is engaged ({reason}); an operator must run `steward resume`"),
                None,
                false,
            ),
            Refusal::Unmatched { route } => (
                StatusCode::FORBIDDEN,
                "unmatched",
                format!("no tool rule matches {route}; add a [[tools]] entry for it or set [unmatched] policy"),
                None,
                false,
            ),
            Refusal::UnknownUpstream { name } => (
                StatusCode::NOT_FOUND,
                "unknown_upstream",
                format!("no upstream named `{name}` is configured; add [upstreams.{name}] to steward.toml"),
                None,
                false,
            ),
            Refusal::LoopDetected { reason } => (
                StatusCode::FORBIDDEN,
                "loop_detected",
                format!("{reason}: the same call repeated too often, so steward stopped the agent; an operator must run `steward resume`"),
                None,
                false,
            ),
            Refusal::RateLimited { tool, retry_after } => {
                let secs = retry_after.as_millis().div_ceil(1000).max(1) as u64;
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("tool `{tool}` reached its limit; retry in {secs}s"),
                    Some(secs),
                    true,
                )
            }
            Refusal::UnknownPrice { model } => (
                StatusCode::FORBIDDEN,
                "unknown_price",
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
                (StatusCode::TOO_MANY_REQUESTS, "spend_cap", message, None, false)
            }
            Refusal::SpendStopped { reason } => (
                StatusCode::TOO_MANY_REQUESTS,
                "spend_cap",
                format!(
                    "LLM calls are stopped for today: {reason}. The cap cannot be trusted while a provider bills \
                     past what was reserved; the stop ends at midnight in [spend] timezone, or when an operator \
                     has checked the provider's bill and runs `steward resume`"
                ),
                None,
                false,
            ),
            Refusal::CredentialExpired { credential, expired_on } => (
                StatusCode::FORBIDDEN,
                "credential_expired",
                format!(
                    "credential `{credential}` for this upstream expired on {expired_on}; an operator must rotate it and run `steward secrets reload`"
                ),
                None,
                false,
            ),
            Refusal::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body exceeds the {limit}-byte limit (gateway.max_body)"),
                None,
                false,
            ),
            Refusal::BadRequest { detail } | Refusal::Malformed { detail } => {
                (StatusCode::BAD_REQUEST, "bad_request", detail.clone(), None, false)
            }
            Refusal::BodyTimeout { idle } => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body stalled for {}s ([gateway] body_timeout); send the whole body without pauses",
                    idle.as_secs()
                ),
                None,
                true,
            ),
            Refusal::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "steward cannot record this call (store or audit log not writable), so it was not made; check `steward status`".to_owned(),
                Some(5),
                true,
            ),
            Refusal::UpstreamUnreachable { attempts } => (
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("the upstream could not be reached ({attempts} attempt(s))"),
                None,
                true,
            ),
            Refusal::UpstreamTimeout { attempts } => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("the upstream did not answer in time ({attempts} attempt(s))"),
                None,
                true,
            ),
        };
        RefusalView { status, reason, message, retry_after_secs: retry_after, retryable }
    }

    /// Whether this refusal is of a request that never became a call (no
    /// valid token, or a target or body the front door could not read): such
    /// requests are counted and sampled into the audit log, never journaled
    /// one row each, so a flood of them costs bounded disk.
    pub fn is_junk(&self) -> bool {
        matches!(self, Refusal::Unauthenticated | Refusal::Malformed { .. } | Refusal::BodyTimeout { .. })
    }

    /// One refusal of every kind, with placeholder details: the statuses of
    /// [`status_of_decision`] come from [`Refusal::view`] through these.
    fn every_kind() -> [Refusal; 17] {
        let all = [
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
        ];
        // A new variant stops this match from compiling: add it to the list above too.
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
                | Refusal::UpstreamTimeout { .. } => {}
            }
        }
        all
    }

    /// Attempts made upstream before this outcome (0 when refused before forwarding).
    pub fn attempts(&self) -> u32 {
        match self {
            Refusal::UpstreamUnreachable { attempts } | Refusal::UpstreamTimeout { attempts } => *attempts,
            _ => 0,
        }
    }
}

/// The HTTP status the agent got for a call journaled with `decision` (a
/// refusal reason), from the one mapping in [`Refusal::view`]. Calls refused
/// at admission (killed, loop_detected, rate_limited, spend_cap) are
/// journaled inside the admission transaction, before a response exists, so
/// their rows carry no status: `steward last` fills it in from here.
/// `None` for `allowed` and anything unknown.
pub fn status_of_decision(decision: &str) -> Option<u16> {
    Refusal::every_kind()
        .iter()
        .map(Refusal::view)
        .find(|view| view.reason == decision)
        .map(|view| view.status.as_u16())
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
    match shape {
        ErrorShape::Steward => serde_json::json!({
            "error": { "type": "steward", "reason": view.reason, "message": view.message, "call_id": call_id }
        }),
        ErrorShape::OpenAi => serde_json::json!({
            "error": {
                "message": view.message,
                "type": format!("steward_{}", view.reason),
                "param": null,
                "code": view.reason,
                "reason": view.reason,
                "call_id": call_id,
            }
        }),
        ErrorShape::Anthropic => serde_json::json!({
            "type": "error",
            "error": {
                "type": anthropic_error_type(view.status),
                "message": view.message,
                "reason": view.reason,
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

    #[test]
    fn every_decision_maps_back_to_the_status_the_agent_got() {
        let expected = [
            ("unauthenticated", 401),
            ("killed", 403),
            ("loop_detected", 403),
            ("unmatched", 403),
            ("unknown_upstream", 404),
            ("body_too_large", 413),
            ("bad_request", 400),
            ("rate_limited", 429),
            ("spend_cap", 429),
            ("credential_expired", 403),
            ("unknown_price", 403),
            ("store_unavailable", 503),
            ("upstream_unreachable", 502),
            ("upstream_timeout", 504),
            ("body_timeout", 408),
        ];
        for (decision, status) in expected {
            assert_eq!(status_of_decision(decision), Some(status), "{decision}");
        }
        // Every kind has its row (SpendStopped shares `spend_cap`, Malformed `bad_request`).
        let reasons: std::collections::BTreeSet<_> = Refusal::every_kind().iter().map(|r| r.view().reason).collect();
        assert_eq!(reasons.len(), expected.len());
        assert_eq!(status_of_decision("allowed"), None);
        assert_eq!(status_of_decision("interrupted"), None);
    }
}
