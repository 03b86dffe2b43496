//! Redaction at the store's write boundary: every free-text value of every
//! write passes the store's redactor (the audit log's own, in the daemon)
//! before it reaches SQLite, so `steward.db` and its WAL hold only what the
//! audit log would.
//!
//! [`Request::redacted`] destructures every request and every record
//! exhaustively (no `..`): a new request, or a new field on one, does not
//! compile until it says here whether it is redacted. Left as they are, and
//! why:
//! - identifiers and digests steward generates: the call id (UUIDv7, the
//!   join key between admission and completion), `loop_key` and
//!   `input_sha256` (hex), the spend day (`YYYY-MM-DD`);
//! - closed vocabularies: `door`, `decision` (a refusal label);
//! - kv keys: steward's constants plus config names (a sink, an upstream),
//!   which the config loader already refuses to hold a literal secret; and
//!   reads look rows up by the key as written;
//! - numbers.
//!
//! JSON values (`extra_json`, most kv values) are redacted string by string,
//! object keys included, and re-serialized only when something changed: a
//! whole-text pass could cut a document's syntax and make its reader drop
//! the record.

use std::borrow::Cow;

use redact::Redactor;
use serde_json::Value;

use super::writer::Request;
use super::{Admission, Completion, SpendHold, SpendSettlement};

impl Request {
    /// This request with every free-text value passed through `r`.
    pub(super) fn redacted(self, r: &Redactor) -> Request {
        match self {
            Request::Admit(a) => Request::Admit(admission(r, a)),
            Request::Precheck(a) => Request::Precheck(admission(r, a)),
            Request::Approval(w) => Request::Approval(w.redacted(r)),
            Request::Refused { admission: a, decision, reason, status } => {
                Request::Refused { admission: admission(r, a), decision, reason: text(r, reason), status }
            }
            Request::Complete(c) => Request::Complete(completion(r, c)),
            Request::Withdraw { call_id, decision, reason, status, now_ms } => {
                Request::Withdraw { call_id, decision, reason: text(r, reason), status, now_ms }
            }
            Request::EngageKill { reason, source, now_ms } => {
                Request::EngageKill { reason: text(r, reason), source: text(r, source), now_ms }
            }
            Request::KvSet { key, value, now_ms } => Request::KvSet { key, value: json_or_text(r, value), now_ms },
            Request::ReleaseKill { now_ms } => Request::ReleaseKill { now_ms },
            Request::SettleInterrupted { now_ms } => Request::SettleInterrupted { now_ms },
            Request::KvDelete { key } => Request::KvDelete { key },
            Request::PruneJournal { before_ms, max_rows } => Request::PruneJournal { before_ms, max_rows },
            Request::PruneSpend { before_day, max_rows } => Request::PruneSpend { before_day, max_rows },
            Request::ClaimUndo(c) => {
                Request::ClaimUndo(super::UndoClaim { by: text(r, c.by), via: text(r, c.via), ..c })
            }
            Request::FinishUndo { call_id, state, reason, now_ms } => {
                Request::FinishUndo { call_id, state, reason: reason.map(|v| text(r, v)), now_ms }
            }
            Request::Ping => Request::Ping,
            Request::Rewind => Request::Rewind,
            Request::Checkpoint(mode) => Request::Checkpoint(mode),
            #[cfg(test)]
            Request::Exec(sql) => Request::Exec(sql),
        }
    }
}

fn admission(r: &Redactor, a: Admission) -> Admission {
    let Admission {
        call_id,
        now_ms,
        door,
        tool,
        upstream,
        method,
        path,
        loop_key,
        input_summary,
        input_sha256,
        limit,
        loop_breaker,
        spend,
        undo_by_operator,
    } = a;
    Admission {
        call_id,
        now_ms,
        door,
        tool: tool.map(|t| text(r, t)),
        upstream: text(r, upstream),
        method: text(r, method),
        path: text(r, path),
        loop_key,
        input_summary: text(r, input_summary),
        input_sha256,
        limit,
        loop_breaker,
        spend: spend.map(|s| hold(r, s)),
        undo_by_operator,
    }
}

fn hold(r: &Redactor, h: SpendHold) -> SpendHold {
    let SpendHold { day, provider, model, reserve_micros, cap_micros } = h;
    SpendHold { day, provider: text(r, provider), model: text(r, model), reserve_micros, cap_micros }
}

fn completion(r: &Redactor, c: Completion) -> Completion {
    let Completion { call_id, now_ms, status, duration_ms, attempts, response_ref, error, extra_json, spend, undo } = c;
    Completion {
        call_id,
        now_ms,
        status,
        duration_ms,
        attempts,
        response_ref: response_ref.map(|v| text(r, v)),
        error: error.map(|v| text(r, v)),
        extra_json: extra_json.map(|v| json_or_text(r, v)),
        spend: spend.map(|s| settlement(r, s)),
        undo: undo.map(|u| undo_plan(r, u)),
    }
}

/// Every text of a plan; the pipeline already refused a plan redaction would change.
fn undo_plan(r: &Redactor, plan: super::UndoPlan) -> super::UndoPlan {
    use super::UndoPlan;
    match plan {
        UndoPlan::Call { tool, method, path, body } => UndoPlan::Call {
            tool: text(r, tool),
            method: text(r, method),
            path: text(r, path),
            body: body.map(|b| json_or_text(r, b)),
        },
        UndoPlan::Unavailable { reason } => UndoPlan::Unavailable { reason: text(r, reason) },
    }
}

fn settlement(r: &Redactor, s: SpendSettlement) -> SpendSettlement {
    let SpendSettlement { micros, input_tokens, output_tokens, cached_tokens, estimated, stop } = s;
    SpendSettlement { micros, input_tokens, output_tokens, cached_tokens, estimated, stop: stop.map(|v| text(r, v)) }
}

/// `value` redacted, reusing its allocation when nothing matched.
pub(super) fn text(r: &Redactor, value: String) -> String {
    match r.redact(&value) {
        Cow::Borrowed(_) => value,
        Cow::Owned(redacted) => redacted,
    }
}

/// A JSON document redacted string by string (keys too), re-serialized only
/// when something changed; anything that is not JSON is redacted as text.
fn json_or_text(r: &Redactor, value: String) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(&value) else {
        return text(r, value);
    };
    if !redact_strings(r, &mut doc) {
        return value;
    }
    // Serializing a `Value` cannot fail (string keys only); fall back to the
    // text pass rather than store the original.
    serde_json::to_string(&doc).unwrap_or_else(|_| text(r, value))
}

/// Redacts every string and object key in `v`; whether anything changed.
fn redact_strings(r: &Redactor, v: &mut Value) -> bool {
    match v {
        Value::String(s) => match r.redact(s) {
            Cow::Owned(redacted) => {
                *s = redacted;
                true
            }
            Cow::Borrowed(_) => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| redact_strings(r, item) | changed),
        Value::Object(map) => {
            let renamed: Vec<(String, String)> = map
                .keys()
                .filter_map(|k| match r.redact(k) {
                    Cow::Owned(redacted) => Some((k.clone(), redacted)),
                    Cow::Borrowed(_) => None,
                })
                .collect();
            let mut changed = !renamed.is_empty();
            for (old, new) in renamed {
                if let Some(value) = map.remove(&old) {
                    map.insert(new, value);
                }
            }
            for value in map.values_mut() {
                changed |= redact_strings(r, value);
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}
