//! The `approvals` table (migration 5): supervised mode's requests for a
//! human decision, and their lifecycle.
//!
//! ```text
//! pending ─approve─> approved ─release (once)─> released
//!    ├────deny────> denied
//!    └──expires_ms─> expired   (the sweep, or a decision that came too late)
//! ```
//!
//! Every transition is one conditional `UPDATE` (written once against
//! `db::Db`: the writer thread runs it on SQLite, `pg.rs` on PostgreSQL,
//! where the row lock and the re-checked `WHERE` make it the same), so two
//! deciders (the CLI writing the store directly and the daemon's admin API)
//! or two held calls racing for one grant cannot both win: a decision
//! applies only to a `pending` row whose `expires_ms` is still ahead, and a
//! release only to an `approved` row whose grant is still valid (a grant
//! lives as long as a request does, counted from its approval). The row
//! keeps the request's digest and redacted summary, never its body (see
//! `pipeline::approval`); `decided_*` record who decided, how and when.

use super::db::{Db, Row, RowError, args};
use super::redaction::text;
use super::writer::Response;
use super::{Store, StoreError};

/// Where a request is in its lifecycle (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a human.
    Pending,
    /// Granted, not yet used by a call.
    Approved,
    /// Refused by a human.
    Denied,
    /// Nobody decided before `expires_ms`.
    Expired,
    /// Granted and used by exactly one call.
    Released,
}

impl ApprovalState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Released => "released",
        }
    }

    fn parse(word: &str) -> Option<ApprovalState> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Expired, Self::Released]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `decided_via` of a request the expiry sweep closed.
pub const VIA_EXPIRY: &str = "expiry";

/// A request to record as pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApproval {
    /// Random hex id, the one a human types a prefix of (`steward approve 7f3a`).
    pub id: String,
    /// When it was asked, epoch ms.
    pub created_ms: i64,
    /// When it expires if undecided, epoch ms.
    pub expires_ms: i64,
    /// Front door of the call.
    pub door: String,
    /// The tool that needs approval.
    pub tool: String,
    /// Upstream name.
    pub upstream: String,
    /// HTTP method.
    pub method: String,
    /// Path and redacted query.
    pub path: String,
    /// The canonical digest the grant is bound to (hex SHA-256).
    pub digest: String,
    /// Redacted, truncated summary of the body.
    pub summary: String,
}

/// One stored request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalRow {
    /// Random hex id.
    pub id: String,
    /// When it was asked, epoch ms.
    pub created_ms: i64,
    /// When it expires if undecided, epoch ms.
    pub expires_ms: i64,
    /// Front door of the call.
    pub door: String,
    /// The tool.
    pub tool: String,
    /// Upstream name.
    pub upstream: String,
    /// HTTP method.
    pub method: String,
    /// Path and redacted query.
    pub path: String,
    /// The canonical digest the grant is bound to.
    pub digest: String,
    /// Redacted summary of the body.
    pub summary: String,
    /// Where it is in its lifecycle.
    pub state: ApprovalState,
    /// When it was approved, denied or expired, epoch ms.
    pub decided_ms: Option<i64>,
    /// Who decided (a user name, or `steward` for expiry).
    pub decided_by: Option<String>,
    /// How: `cli`, `dashboard`, `expiry`.
    pub decided_via: Option<String>,
    /// The approver's note, or the denial's reason.
    pub note: Option<String>,
    /// The call that used the grant.
    pub released_call_id: Option<String>,
}

impl ApprovalRow {
    /// Milliseconds from the request to its decision.
    pub fn time_to_decide_ms(&self) -> Option<i64> {
        self.decided_ms.map(|d| d.saturating_sub(self.created_ms).max(0))
    }
}

/// What a human decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Release the call (once).
    Approve,
    /// Refuse it.
    Deny,
}

/// A human's decision about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalDecision {
    /// The request's full id.
    pub id: String,
    /// Approve or deny.
    pub verdict: Verdict,
    /// Who (the CLI sends `$USER`; the dashboard its session's user).
    pub by: String,
    /// How: `cli` or `dashboard`.
    pub via: String,
    /// The approver's note or the denial's reason.
    pub note: Option<String>,
    /// When, epoch ms.
    pub now_ms: i64,
}

/// What [`Store::decide_approval`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// The decision was recorded; the row as it is now.
    Recorded(ApprovalRow),
    /// Someone decided first (or the grant was used): nothing changed.
    AlreadyDecided(ApprovalRow),
    /// It expired before the decision arrived, and is now recorded as expired.
    Expired(ApprovalRow),
}

/// The approval writes, run on the writer thread.
#[derive(Debug)]
pub(super) enum ApprovalWrite {
    Create(NewApproval),
    Decide(ApprovalDecision),
    ExpireDue { now_ms: i64 },
    Release { id: String, call_id: String, now_ms: i64 },
}

impl ApprovalWrite {
    /// Free text through the redactor (see `redaction.rs`): ids, digests,
    /// states and numbers are steward's own.
    pub(super) fn redacted(self, r: &redact::Redactor) -> ApprovalWrite {
        match self {
            ApprovalWrite::Create(a) => {
                let NewApproval { id, created_ms, expires_ms, door, tool, upstream, method, path, digest, summary } = a;
                ApprovalWrite::Create(NewApproval {
                    id,
                    created_ms,
                    expires_ms,
                    door,
                    tool: text(r, tool),
                    upstream: text(r, upstream),
                    method: text(r, method),
                    path: text(r, path),
                    digest,
                    summary: text(r, summary),
                })
            }
            ApprovalWrite::Decide(d) => {
                let ApprovalDecision { id, verdict, by, via, note, now_ms } = d;
                ApprovalWrite::Decide(ApprovalDecision {
                    id,
                    verdict,
                    by: text(r, by),
                    via: text(r, via),
                    note: note.map(|n| text(r, n)),
                    now_ms,
                })
            }
            ApprovalWrite::ExpireDue { now_ms } => ApprovalWrite::ExpireDue { now_ms },
            ApprovalWrite::Release { id, call_id, now_ms } => ApprovalWrite::Release { id, call_id, now_ms },
        }
    }

    /// Applies the write in the caller's transaction, on either database.
    pub(super) async fn apply(&self, db: &impl Db) -> Result<Response, StoreError> {
        match self {
            ApprovalWrite::Create(a) => db
                .execute(
                    "recording an approval request",
                    "INSERT INTO approvals (id, created_ms, expires_ms, door, tool, upstream, method, path, digest,
                                            summary, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending')",
                    &args![
                        &a.id,
                        a.created_ms,
                        a.expires_ms,
                        &a.door,
                        &a.tool,
                        &a.upstream,
                        &a.method,
                        &a.path,
                        &a.digest,
                        &a.summary
                    ],
                )
                .await
                .map(|_| Response::Done),
            ApprovalWrite::Decide(d) => decide(db, d).await.map(|d| Response::Decided(Box::new(d))),
            ApprovalWrite::ExpireDue { now_ms } => expire_due(db, *now_ms, None).await.map(Response::Count),
            ApprovalWrite::Release { id, call_id, now_ms } => db
                .execute(
                    "releasing an approved call",
                    "UPDATE approvals SET state = 'released', released_call_id = ?2
                     WHERE id = ?1 AND state = 'approved' AND ?3 < decided_ms + (expires_ms - created_ms)",
                    &args![id, call_id, *now_ms],
                )
                .await
                .map(Response::Count),
        }
    }
}

/// Pending rows past their expiry become `expired` (only `id` when given).
async fn expire_due(db: &impl Db, now_ms: i64, id: Option<&str>) -> Result<u64, StoreError> {
    db.execute(
        "expiring approval requests",
        "UPDATE approvals SET state = 'expired', decided_ms = ?1, decided_by = 'steward', decided_via = ?2
         WHERE state = 'pending' AND expires_ms <= ?1 AND (CAST(?3 AS TEXT) IS NULL OR id = ?3)",
        &args![now_ms, VIA_EXPIRY, id],
    )
    .await
}

async fn decide(db: &impl Db, d: &ApprovalDecision) -> Result<Decided, StoreError> {
    let state = match d.verdict {
        Verdict::Approve => ApprovalState::Approved,
        Verdict::Deny => ApprovalState::Denied,
    };
    let changed = db
        .execute(
            "recording an approval decision",
            "UPDATE approvals SET state = ?2, decided_ms = ?3, decided_by = ?4, decided_via = ?5, note = ?6
             WHERE id = ?1 AND state = 'pending' AND expires_ms > ?3",
            &args![&d.id, state.as_str(), d.now_ms, &d.by, &d.via, &d.note],
        )
        .await?;
    let expired = if changed == 0 { expire_due(db, d.now_ms, Some(&d.id)).await? > 0 } else { false };
    let row = by_id(db, &d.id).await?.ok_or_else(|| StoreError::NotFound(format!("approval request {}", d.id)))?;
    Ok(match (changed, expired) {
        (0, true) => Decided::Expired(row),
        (0, false) => Decided::AlreadyDecided(row),
        _ => Decided::Recorded(row),
    })
}

/// `SELECT` of every column of `approvals`, in [`approval_row`]'s order,
/// followed by the rest of the statement.
macro_rules! select_approvals {
    ($($rest:literal),+) => {
        concat!(
            "SELECT id, created_ms, expires_ms, door, tool, upstream, method, path, digest, summary, state,
                    decided_ms, decided_by, decided_via, note, released_call_id FROM approvals ",
            $($rest),+
        )
    };
}

fn approval_row(row: &dyn Row) -> Result<ApprovalRow, RowError> {
    let state = row.text_not_null(10)?;
    Ok(ApprovalRow {
        id: row.text_not_null(0)?,
        created_ms: row.int_not_null(1)?,
        expires_ms: row.int_not_null(2)?,
        door: row.text_not_null(3)?,
        tool: row.text_not_null(4)?,
        upstream: row.text_not_null(5)?,
        method: row.text_not_null(6)?,
        path: row.text_not_null(7)?,
        digest: row.text_not_null(8)?,
        summary: row.text_not_null(9)?,
        // The table's CHECK allows only the five words.
        state: ApprovalState::parse(&state).unwrap_or(ApprovalState::Expired),
        decided_ms: row.int(11)?,
        decided_by: row.text(12)?,
        decided_via: row.text(13)?,
        note: row.text(14)?,
        released_call_id: row.text(15)?,
    })
}

pub(super) async fn by_id(db: &impl Db, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
    db.first("reading an approval", select_approvals!("WHERE id = ?1"), &args![id], approval_row).await
}

/// Most rows a prefix lookup returns: enough to list an ambiguous prefix's matches.
const PREFIX_MATCHES: i64 = 20;

impl Store {
    /// Records a new pending request.
    pub async fn create_approval(&self, a: NewApproval) -> Result<(), StoreError> {
        self.write_approval(ApprovalWrite::Create(a)).await.map(|_| ())
    }

    /// Approves or denies a pending request (see [`Decided`]).
    /// [`StoreError::NotFound`] when no request has that id.
    pub async fn decide_approval(&self, d: ApprovalDecision) -> Result<Decided, StoreError> {
        match self.write_approval(ApprovalWrite::Decide(d)).await? {
            Response::Decided(decided) => Ok(*decided),
            other => Err(super::unexpected(&other)),
        }
    }

    /// Expires every pending request whose `expires_ms` is not after
    /// `now_ms`; returns how many (at start, and by the periodic sweep).
    pub async fn expire_approvals(&self, now_ms: i64) -> Result<u64, StoreError> {
        match self.write_approval(ApprovalWrite::ExpireDue { now_ms }).await? {
            Response::Count(n) => Ok(n),
            other => Err(super::unexpected(&other)),
        }
    }

    /// Uses the grant of approved request `id` for `call_id`: true for
    /// exactly one caller, false when it is not approved (any more) or its
    /// grant is void.
    pub async fn release_approval(&self, id: &str, call_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let req = ApprovalWrite::Release { id: id.to_owned(), call_id: call_id.to_owned(), now_ms };
        match self.write_approval(req).await? {
            Response::Count(n) => Ok(n == 1),
            other => Err(super::unexpected(&other)),
        }
    }

    /// Pending requests, oldest first.
    pub async fn pending_approvals(&self) -> Result<Vec<ApprovalRow>, StoreError> {
        on_db!(self, |db| db.rows(
            "reading approvals",
            select_approvals!("WHERE state = 'pending' ORDER BY created_ms, id"),
            &[],
            approval_row,
        ))
    }

    /// One request by its full id.
    pub async fn approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let id = id.to_owned();
        on_db!(self, |db| by_id(db, &id))
    }

    /// Requests whose id starts with `prefix` (case-insensitive), newest
    /// first, at most 20: one is the request meant, more is ambiguous.
    pub async fn approvals_by_prefix(&self, prefix: &str) -> Result<Vec<ApprovalRow>, StoreError> {
        // Ids are lowercase hex: anything else matches nothing (and no LIKE wildcard gets through).
        let prefix = prefix.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        on_db!(self, |db| db.rows(
            "reading approvals",
            select_approvals!(
                "WHERE substr(id, 1, length(CAST(?1 AS TEXT))) = CAST(?1 AS TEXT) ORDER BY created_ms DESC, id LIMIT ?2"
            ),
            &args![&prefix, PREFIX_MATCHES],
            approval_row,
        ))
    }

    /// The request still open for `digest` at `now_ms`: pending (even if
    /// overdue: the caller expires it), or approved with a grant still
    /// valid, newest first. A held call that steward's restart cut off is
    /// found again through it.
    pub async fn open_approval_for(&self, digest: &str, now_ms: i64) -> Result<Option<ApprovalRow>, StoreError> {
        let digest = digest.to_owned();
        on_db!(self, |db| db.first(
            "reading approvals",
            select_approvals!(
                "WHERE digest = ?1 AND (state = 'pending'
                       OR (state = 'approved' AND ?2 < decided_ms + (expires_ms - created_ms)))
                     ORDER BY created_ms DESC, id LIMIT 1"
            ),
            &args![&digest, now_ms],
            approval_row,
        ))
    }

    /// Requests decided (approved, denied, expired, whether used since or
    /// not) at or after `since_ms`, in decision order: the audit of
    /// decisions, `steward last` and `steward report`.
    pub async fn approvals_decided_since(&self, since_ms: i64) -> Result<Vec<ApprovalRow>, StoreError> {
        on_db!(self, |db| db.rows(
            "reading approvals",
            select_approvals!("WHERE decided_ms IS NOT NULL AND decided_ms >= ?1 ORDER BY decided_ms, id"),
            &args![since_ms],
            approval_row,
        ))
    }

    /// Requests created at or after `since_ms`, oldest first.
    pub async fn approvals_created_since(&self, since_ms: i64) -> Result<Vec<ApprovalRow>, StoreError> {
        on_db!(self, |db| db.rows(
            "reading approvals",
            select_approvals!("WHERE created_ms >= ?1 ORDER BY created_ms, id"),
            &args![since_ms],
            approval_row,
        ))
    }

    async fn write_approval(&self, w: ApprovalWrite) -> Result<Response, StoreError> {
        self.write(super::writer::Request::Approval(w)).await
    }
}
