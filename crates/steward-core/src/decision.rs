//! The vocabulary of call outcomes: every decision steward records about a
//! call, and the one exhaustive mapping of each to
//! - its **name**: the journal's and the audit log's `decision`, the metric
//!   label, and the machine-readable `reason` the agent reads;
//! - the **HTTP status** the agent got (none for `allowed`, whose status is
//!   the upstream's, and for `interrupted`, which no agent heard);
//! - how the **error-rate alert** weighs it ([`ErrorWeight`]).
//!
//! The pipeline decides (each `pipeline::Refusal` names its [`Decision`]),
//! the store journals the name and, at write time, the error flag
//! ([`Decision::counts_as_error`]); `steward last` reads the status back
//! ([`status_of_decision`]). A new outcome is a new variant: the `match` in
//! `Decision::facts` does not compile until it says all three, and
//! [`Decision::ALL`]'s test fails until it lists it.

use http::StatusCode;

/// What steward decided about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Admitted and forwarded (or forwarding failed: the journal keeps
    /// `allowed` with no status, the audit line names the failure).
    Allowed,
    /// No valid steward token.
    Unauthenticated,
    /// The kill switch is engaged.
    Killed,
    /// No `[[tools]]` rule matched and `[unmatched]` denies it.
    Unmatched,
    /// The upstream or provider name is not configured.
    UnknownUpstream,
    /// The call completed a run of identical calls; the kill switch is now engaged.
    LoopDetected,
    /// The tool's persistent window is full.
    RateLimited,
    /// The model has no price, so its spend cannot be capped.
    UnknownPrice,
    /// The daily spend cap (or the day's spend stop) refuses priced calls.
    SpendCap,
    /// The upstream's credential has expired.
    CredentialExpired,
    /// The request body is larger than `gateway.max_body`.
    BodyTooLarge,
    /// The request cannot be read or forwarded as sent.
    BadRequest,
    /// The request body stalled past `[gateway] body_timeout`.
    BodyTimeout,
    /// The store or the audit log cannot record the call (fail closed).
    StoreUnavailable,
    /// The upstream could not be reached.
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// Supervised mode: the call waits for a human, who has not decided
    /// within `[supervised] wait`; repeating it later finds the decision.
    ApprovalPending,
    /// Supervised mode: a human refused the call.
    ApprovalDenied,
    /// Supervised mode: nobody decided before `[supervised] expires` (fail closed).
    ApprovalExpired,
    /// An MCP tool's definition (name, description, input schema) changed
    /// since steward pinned it, and nobody ran `steward mcp trust` yet.
    ToolChanged,
    /// steward stopped (crash, `kill -9`) while the call was in flight: the
    /// audit line written at the next start. The journal keeps the row's
    /// decision and says `interrupted` in its reason.
    Interrupted,
}

/// How the error-rate alert weighs an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorWeight {
    /// Left out of both counts: not necessarily the agent (`unauthenticated`),
    /// alerted on their own (`killed`, `spend_cap`: counting them would
    /// re-alert for an hour after `steward resume` or midnight), of
    /// unknown outcome (`interrupted`), or a human's supervision at work
    /// (`approval_*`: a held call repeated every few seconds would drown
    /// the hour's real calls, and a denial is not the agent failing).
    Ignored,
    /// Judged, not failed: the limit or the API worked as configured.
    Judged,
    /// Judged and failed: refused for safety, or the upstream failed.
    Failed,
    /// An allowed call: failed when the upstream answered 5xx or no response
    /// was relayed (unreachable, timed out), else judged.
    ByStatus,
}

/// The facts of one decision (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    name: &'static str,
    status: Option<StatusCode>,
    weight: ErrorWeight,
}

impl Decision {
    /// Every decision, in declaration order (a test checks it is complete).
    pub const ALL: [Decision; 21] = [
        Decision::Allowed,
        Decision::Unauthenticated,
        Decision::Killed,
        Decision::Unmatched,
        Decision::UnknownUpstream,
        Decision::LoopDetected,
        Decision::RateLimited,
        Decision::UnknownPrice,
        Decision::SpendCap,
        Decision::CredentialExpired,
        Decision::BodyTooLarge,
        Decision::BadRequest,
        Decision::BodyTimeout,
        Decision::StoreUnavailable,
        Decision::UpstreamUnreachable,
        Decision::UpstreamTimeout,
        Decision::ApprovalPending,
        Decision::ApprovalDenied,
        Decision::ApprovalExpired,
        Decision::ToolChanged,
        Decision::Interrupted,
    ];

    /// The one mapping.
    fn facts(self) -> Facts {
        use ErrorWeight::{ByStatus, Failed, Ignored, Judged};
        let (name, status, weight) = match self {
            Decision::Allowed => ("allowed", None, ByStatus),
            Decision::Unauthenticated => ("unauthenticated", Some(StatusCode::UNAUTHORIZED), Ignored),
            Decision::Killed => ("killed", Some(StatusCode::FORBIDDEN), Ignored),
            Decision::Unmatched => ("unmatched", Some(StatusCode::FORBIDDEN), Failed),
            Decision::UnknownUpstream => ("unknown_upstream", Some(StatusCode::NOT_FOUND), Judged),
            Decision::LoopDetected => ("loop_detected", Some(StatusCode::FORBIDDEN), Failed),
            Decision::RateLimited => ("rate_limited", Some(StatusCode::TOO_MANY_REQUESTS), Judged),
            Decision::UnknownPrice => ("unknown_price", Some(StatusCode::FORBIDDEN), Failed),
            Decision::SpendCap => ("spend_cap", Some(StatusCode::TOO_MANY_REQUESTS), Ignored),
            Decision::CredentialExpired => ("credential_expired", Some(StatusCode::FORBIDDEN), Judged),
            Decision::BodyTooLarge => ("body_too_large", Some(StatusCode::PAYLOAD_TOO_LARGE), Judged),
            Decision::BadRequest => ("bad_request", Some(StatusCode::BAD_REQUEST), Judged),
            Decision::BodyTimeout => ("body_timeout", Some(StatusCode::REQUEST_TIMEOUT), Judged),
            Decision::StoreUnavailable => ("store_unavailable", Some(StatusCode::SERVICE_UNAVAILABLE), Failed),
            Decision::UpstreamUnreachable => ("upstream_unreachable", Some(StatusCode::BAD_GATEWAY), Failed),
            Decision::UpstreamTimeout => ("upstream_timeout", Some(StatusCode::GATEWAY_TIMEOUT), Failed),
            Decision::ApprovalPending => ("approval_pending", Some(StatusCode::CONFLICT), Ignored),
            Decision::ApprovalDenied => ("approval_denied", Some(StatusCode::FORBIDDEN), Ignored),
            Decision::ApprovalExpired => ("approval_expired", Some(StatusCode::FORBIDDEN), Ignored),
            Decision::ToolChanged => ("tool_changed", Some(StatusCode::FORBIDDEN), Failed),
            Decision::Interrupted => ("interrupted", None, Ignored),
        };
        Facts { name, status, weight }
    }

    /// The stored name: journal and audit `decision`, metric label, the
    /// agent's `reason`.
    pub fn as_str(self) -> &'static str {
        self.facts().name
    }

    /// The decision stored as `name`; `None` for a name steward never writes.
    pub fn parse(name: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The HTTP status the agent got: `None` for `allowed` (the upstream's)
    /// and `interrupted` (no answer).
    pub fn status(self) -> Option<StatusCode> {
        self.facts().status
    }

    /// How the error-rate alert weighs this outcome.
    pub fn error_weight(self) -> ErrorWeight {
        self.facts().weight
    }

    /// The error flag stored with a finished call: `None` when the error-rate
    /// alert leaves it out, else whether it counts as an error. `status` is
    /// the HTTP status the agent got from the upstream (allowed calls only).
    pub fn counts_as_error(self, status: Option<u16>) -> Option<bool> {
        match self.error_weight() {
            ErrorWeight::Ignored => None,
            ErrorWeight::Judged => Some(false),
            ErrorWeight::Failed => Some(true),
            ErrorWeight::ByStatus => Some(status.is_none_or(|s| s >= 500)),
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP status the agent got for a call journaled with `decision` (a
/// stored name). Calls refused at admission (killed, loop_detected,
/// rate_limited, spend_cap) are journaled inside the admission transaction,
/// before a response exists, so their rows carry no status: `steward last`
/// fills it in from here. `None` for `allowed`, `interrupted` and unknown names.
pub fn status_of_decision(decision: &str) -> Option<u16> {
    Decision::parse(decision).and_then(Decision::status).map(|s| s.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_decision_once_in_declaration_order() {
        // A variant missing from ALL shifts the discriminants of the ones
        // after it, or (added last) makes the last one not ALL's last.
        for (i, decision) in Decision::ALL.into_iter().enumerate() {
            assert_eq!(decision as usize, i, "{decision:?} is not at its place in Decision::ALL");
        }
        assert_eq!(Decision::Interrupted as usize + 1, Decision::ALL.len(), "add the new variant to Decision::ALL");
        let mut names: Vec<_> = Decision::ALL.iter().map(|d| d.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Decision::ALL.len(), "two decisions share a stored name");
        for decision in Decision::ALL {
            assert_eq!(Decision::parse(decision.as_str()), Some(decision));
        }
        assert_eq!(Decision::parse("approval_approved"), None);
    }

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
            ("body_timeout", 408),
            ("rate_limited", 429),
            ("spend_cap", 429),
            ("credential_expired", 403),
            ("unknown_price", 403),
            ("store_unavailable", 503),
            ("upstream_unreachable", 502),
            ("upstream_timeout", 504),
            ("approval_pending", 409),
            ("approval_denied", 403),
            ("approval_expired", 403),
            ("tool_changed", 403),
        ];
        for (decision, status) in expected {
            assert_eq!(status_of_decision(decision), Some(status), "{decision}");
        }
        assert_eq!(expected.len() + 2, Decision::ALL.len(), "every refusal has its status here");
        assert_eq!(status_of_decision("allowed"), None);
        assert_eq!(status_of_decision("interrupted"), None);
        assert_eq!(status_of_decision("nonsense"), None);
    }

    /// The classification the error-rate SQL carried as a list of names
    /// before the flag was stored (migration 4 backfills with that list).
    #[test]
    fn the_error_flag_keeps_the_error_rate_classification() {
        let failed = ["loop_detected", "store_unavailable", "unmatched", "unknown_price", "tool_changed"];
        let ignored = [
            "unauthenticated",
            "killed",
            "spend_cap",
            "interrupted",
            "approval_pending",
            "approval_denied",
            "approval_expired",
        ];
        for decision in Decision::ALL.into_iter().filter(|d| *d != Decision::Allowed) {
            let flag = decision.counts_as_error(None);
            let name = decision.as_str();
            if failed.contains(&name) || matches!(decision, Decision::UpstreamUnreachable | Decision::UpstreamTimeout) {
                assert_eq!(flag, Some(true), "{name}");
            } else if ignored.contains(&name) {
                assert_eq!(flag, None, "{name}");
            } else {
                assert_eq!(flag, Some(false), "{name}");
            }
        }
        assert_eq!(Decision::Allowed.counts_as_error(Some(200)), Some(false));
        assert_eq!(Decision::Allowed.counts_as_error(Some(404)), Some(false));
        assert_eq!(Decision::Allowed.counts_as_error(Some(500)), Some(true));
        assert_eq!(Decision::Allowed.counts_as_error(None), Some(true), "no response relayed");
    }
}
