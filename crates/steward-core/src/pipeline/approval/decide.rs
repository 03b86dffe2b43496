//! A human's decision about a request named by an id prefix: the one path
//! the admin API and `steward approve`/`deny` (writing the store directly
//! when no daemon runs) share, so both resolve prefixes and refuse the same
//! way.

use crate::store::{ApprovalDecision, ApprovalRow, ApprovalState, Decided, Store, StoreError, Verdict};

/// Why a decision was not recorded. Every message names the next step.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No request has an id starting with the prefix.
    #[error("no approval request has an id starting with `{0}`; `steward approvals` lists the pending ones")]
    NotFound(String),
    /// Several requests match: the prefix must be longer.
    #[error("`{prefix}` matches {} requests ({}); type more of the id", .matches.len(), ids(.matches))]
    Ambiguous {
        /// What was typed.
        prefix: String,
        /// The requests it matches.
        matches: Vec<ApprovalRow>,
    },
    /// A denial needs its reason (the agent and the audit log get it).
    #[error("a denial needs a reason; add --reason \"...\" (the agent is told it)")]
    MissingReason,
    /// Already approved, denied, expired or used.
    #[error("request {} is already {}{}; nothing changed", .0.id, .0.state, by(.0))]
    AlreadyDecided(Box<ApprovalRow>),
    /// It expired before the decision arrived (now recorded as expired).
    #[error("request {} expired before this decision arrived, so it is denied; the agent must ask again", .0.id)]
    Expired(Box<ApprovalRow>),
    /// The store cannot answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn ids(rows: &[ApprovalRow]) -> String {
    rows.iter().map(|r| format!("{} {} {} {}", r.id, r.state, r.tool, r.path)).collect::<Vec<_>>().join("; ")
}

fn by(row: &ApprovalRow) -> String {
    match (&row.decided_by, &row.decided_via) {
        (Some(by), Some(via)) => format!(" (by {by} via {via})"),
        _ => String::new(),
    }
}

/// Approves or denies the request whose id starts with `prefix`.
pub async fn decide(
    store: &Store,
    prefix: &str,
    verdict: Verdict,
    by: &str,
    via: &str,
    note: Option<String>,
    now_ms: i64,
) -> Result<ApprovalRow, DecideError> {
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if verdict == Verdict::Deny && note.is_none() {
        return Err(DecideError::MissingReason);
    }
    let prefix = prefix.trim();
    let mut matches = store.approvals_by_prefix(prefix).await?;
    // An exact id wins over longer ids it prefixes; else one pending match wins over decided ones.
    let row = if let Some(exact) = matches.iter().position(|r| r.id == prefix.to_ascii_lowercase()) {
        matches.swap_remove(exact)
    } else {
        let pending: Vec<usize> = (0..matches.len()).filter(|&i| matches[i].state == ApprovalState::Pending).collect();
        match (matches.len(), pending.as_slice()) {
            (0, _) => return Err(DecideError::NotFound(prefix.to_owned())),
            (1, _) => matches.swap_remove(0),
            (_, [one]) => matches.swap_remove(*one),
            _ => return Err(DecideError::Ambiguous { prefix: prefix.to_owned(), matches }),
        }
    };
    let decision = ApprovalDecision { id: row.id, verdict, by: by.to_owned(), via: via.to_owned(), note, now_ms };
    match store.decide_approval(decision).await? {
        Decided::Recorded(row) => Ok(row),
        Decided::AlreadyDecided(row) => Err(DecideError::AlreadyDecided(Box::new(row))),
        Decided::Expired(row) => Err(DecideError::Expired(Box::new(row))),
    }
}
