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
    /// The request body exceeds `gateway.max_body`.
    BodyTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The request cannot be forwarded as sent (bad path, bad header).
    BadRequest {
        /// What is wrong, safe to show.
        detail: String,
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
            Refusal::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body exceeds the {limit}-byte limit (gateway.max_body)"),
                None,
                false,
            ),
            Refusal::BadRequest { detail } => (StatusCode::BAD_REQUEST, "bad_request", detail.clone(), None, false),
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

    /// Attempts made upstream before this outcome (0 when refused before forwarding).
    pub fn attempts(&self) -> u32 {
        match self {
            Refusal::UpstreamUnreachable { attempts } | Refusal::UpstreamTimeout { attempts } => *attempts,
            _ => 0,
        }
    }
}

/// The JSON body of a refusal: `{"error": {"type", "reason", "message", "call_id"}}`.
pub fn refusal_body(view: &RefusalView, call_id: &str) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "type": "steward",
            "reason": view.reason,
            "message": view.message,
            "call_id": call_id,
        }
    })
}
