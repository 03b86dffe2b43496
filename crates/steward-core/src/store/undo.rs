//! The undo plans: one row per released call of a tool that declares an
//! undo (migration 6), and its SQL.
//!
//! **Why a table of its own** rather than columns on `calls`: an undo has a
//! lifecycle of its own (planned → running → undone | gone | failed, and a
//! failed one runs again), with who ran it, how, when, and which call did
//! it. The journal row of the original call is written once and never
//! changes meaning; the plan changes several times. `steward last
//! --undoable` and the batch undo read only this small table (indexed by
//! tool and start), and journal retention deletes a plan with its call.
//!
//! The plan is written in the same op as the call's completion, so it is
//! committed before the agent sees the end of the response. Its text
//! (method, path, body, reasons) is redacted like every other write; the
//! pipeline already refused to plan an undo whose text redaction would
//! change (it could not be sent as stored).
//!
//! `running` is claimed by one conditional `UPDATE` ([`claim`]), so two
//! operators (or a CLI and the dashboard, or two instances of a fleet)
//! undoing the same call send one undo; a daemon that stops mid-undo
//! leaves it `running`, and the next start turns it into `failed`
//! (retryable) with the reason.
//!
//! Every read and write of the table is written once against `db::Db`
//! (see `db.rs`), for SQLite and PostgreSQL.

use serde::Serialize;

use super::StoreError;
use super::db::{Db, Row, RowError, args};

/// Migration 6.
pub(super) const MIGRATION: &str = "CREATE TABLE undos (
        call_id      TEXT PRIMARY KEY NOT NULL,
        tool         TEXT NOT NULL,
        started_ms   INTEGER NOT NULL,
        state        TEXT NOT NULL
                     CHECK (state IN ('planned', 'unavailable', 'running', 'undone', 'gone', 'failed')),
        undo_tool    TEXT,
        method       TEXT,
        path         TEXT,
        body         TEXT,
        reason       TEXT,
        planned_ms   INTEGER NOT NULL,
        changed_ms   INTEGER NOT NULL,
        undo_call_id TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        by           TEXT,
        via          TEXT,
        forced       INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1))
    ) STRICT;
    CREATE INDEX undos_tool_started ON undos (tool, started_ms);
    CREATE INDEX undos_started ON undos (started_ms);
    CREATE INDEX undos_state ON undos (state) WHERE state IN ('running', 'failed');";

/// Where an undo stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoState {
    /// The undo call is known and has not run (or not yet successfully: see `Failed`).
    Planned,
    /// No undo can be made for this call; `reason` says why.
    Unavailable,
    /// An undo call is in flight.
    Running,
    /// The upstream accepted the undo (2xx).
    Undone,
    /// The upstream answered 404 or 410: the object was already gone. Done.
    Gone,
    /// The last undo failed (5xx, network, refused); it can run again.
    Failed,
}

impl UndoState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UndoState::Planned => "planned",
            UndoState::Unavailable => "unavailable",
            UndoState::Running => "running",
            UndoState::Undone => "undone",
            UndoState::Gone => "gone",
            UndoState::Failed => "failed",
        }
    }

    fn parse(name: &str) -> Result<UndoState, StoreError> {
        Ok(match name {
            "planned" => UndoState::Planned,
            "unavailable" => UndoState::Unavailable,
            "running" => UndoState::Running,
            "undone" => UndoState::Undone,
            "gone" => UndoState::Gone,
            "failed" => UndoState::Failed,
            other => return Err(StoreError::Corrupt(format!("unknown undo state {other:?}"))),
        })
    }

    /// Whether an undo may (still) run: planned, or failed before.
    pub fn is_undoable(self) -> bool {
        matches!(self, UndoState::Planned | UndoState::Failed)
    }

    /// Whether the undo is done (undone, or already gone).
    pub fn is_done(self) -> bool {
        matches!(self, UndoState::Undone | UndoState::Gone)
    }
}

impl std::fmt::Display for UndoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan recorded with a call's completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoPlan {
    /// The undo call to send later.
    Call {
        /// Tool the undo is a call of.
        tool: String,
        /// HTTP method.
        method: String,
        /// Path below the upstream, `?query` included.
        path: String,
        /// JSON body.
        body: Option<String>,
    },
    /// Why there is none.
    Unavailable {
        /// One sentence.
        reason: String,
    },
}

/// One undo plan row, with its original call's tool and start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoRow {
    /// The original call.
    pub call_id: String,
    /// The original call's tool.
    pub tool: String,
    /// When the original call started, epoch ms.
    pub started_ms: i64,
    /// Where the undo stands.
    pub state: UndoState,
    /// Tool the undo is a call of (`None` when unavailable).
    pub undo_tool: Option<String>,
    /// HTTP method of the undo.
    pub method: Option<String>,
    /// Path (and query) of the undo.
    pub path: Option<String>,
    /// JSON body of the undo.
    pub body: Option<String>,
    /// Unavailable: why; failed: the last failure.
    pub reason: Option<String>,
    /// When the state last changed (for `undone`/`gone`: when it was done), epoch ms.
    pub changed_ms: i64,
    /// The last undo call sent.
    pub undo_call_id: Option<String>,
    /// How many undo calls ran.
    pub attempts: u32,
    /// Who ran the last undo.
    pub by: Option<String>,
    /// `cli` or `dashboard`.
    pub via: Option<String>,
    /// The last undo ignored the undo tool's rate limit (`--force`).
    pub forced: bool,
}

/// Which plans [`super::Store::undos`] returns.
#[derive(Debug, Clone, Default)]
pub struct UndoQuery {
    /// Only these original calls.
    pub call_ids: Option<Vec<String>>,
    /// Only calls of this tool.
    pub tool: Option<String>,
    /// Only calls started at or after this time, epoch ms.
    pub since_ms: Option<i64>,
    /// Only plans that can still run (planned or failed).
    pub undoable_only: bool,
    /// Only failed undos.
    pub failed_only: bool,
    /// At most this many, newest original call first (0: no limit).
    pub limit: u32,
}

/// Who asks for an undo (see [`super::Store::claim_undo`]).
#[derive(Debug, Clone)]
pub struct UndoClaim {
    /// The original call.
    pub call_id: String,
    /// The undo call about to be sent.
    pub undo_call_id: String,
    /// Who asked.
    pub by: String,
    /// `cli` or `dashboard`.
    pub via: String,
    /// The undo tool's rate limit is ignored.
    pub forced: bool,
    /// Now, epoch ms.
    pub now_ms: i64,
}

/// What [`super::Store::claim_undo`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The plan is now `running` under the claim; send it.
    Claimed(UndoRow),
    /// Nothing to send: the row as it stands (done, unavailable or running).
    NotClaimed(UndoRow),
    /// The call has no plan (its tool declares no undo, or it was not released).
    NoPlan,
}

/// `SELECT` of the columns [`undo_row`] reads, followed by the rest of the
/// statement.
macro_rules! select_undos {
    ($($rest:literal),+) => {
        concat!(
            "SELECT call_id, tool, started_ms, state, undo_tool, method, path, body, reason, changed_ms,
                    undo_call_id, attempts, by, via, forced FROM undos ",
            $($rest),+
        )
    };
}

/// A row of [`select_undos`], with its state still as stored: an unknown
/// one is named by [`with_state`].
fn undo_row(r: &dyn Row) -> Result<(UndoRow, String), RowError> {
    let attempts = r.int_not_null(11)?;
    Ok((
        UndoRow {
            call_id: r.text_not_null(0)?,
            tool: r.text_not_null(1)?,
            started_ms: r.int_not_null(2)?,
            state: UndoState::Planned,
            undo_tool: r.text(4)?,
            method: r.text(5)?,
            path: r.text(6)?,
            body: r.text(7)?,
            reason: r.text(8)?,
            changed_ms: r.int_not_null(9)?,
            undo_call_id: r.text(10)?,
            attempts: u32::try_from(attempts).map_err(|_| RowError::new(format!("attempts {attempts}")))?,
            by: r.text(12)?,
            via: r.text(13)?,
            forced: r.int_not_null(14)? != 0,
        },
        r.text_not_null(3)?,
    ))
}

fn with_state((mut row, state): (UndoRow, String)) -> Result<UndoRow, StoreError> {
    row.state = UndoState::parse(&state)?;
    Ok(row)
}

/// Records `plan` for the completed call `call_id` (same op as the completion).
pub(super) async fn record(db: &impl Db, call_id: &str, plan: &UndoPlan, now_ms: i64) -> Result<(), StoreError> {
    let (state, tool, method, path, body, reason) = match plan {
        UndoPlan::Call { tool, method, path, body } => {
            (UndoState::Planned, Some(tool), Some(method), Some(path), body.as_ref(), None)
        }
        UndoPlan::Unavailable { reason } => (UndoState::Unavailable, None, None, None, None, Some(reason)),
    };
    db.execute(
        "recording an undo plan",
        "INSERT INTO undos (call_id, tool, started_ms, state, undo_tool, method, path, body, reason, planned_ms, changed_ms)
         SELECT id, COALESCE(tool, ''), started_ms, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8 FROM calls WHERE id = ?1
         ON CONFLICT (call_id) DO NOTHING",
        &args![
            call_id,
            state.as_str(),
            tool.map(String::as_str),
            method.map(String::as_str),
            path.map(String::as_str),
            body.map(String::as_str),
            reason.map(String::as_str),
            now_ms
        ],
    )
    .await
    .map(|_| ())
}

/// See [`super::Store::claim_undo`]. One conditional `UPDATE`: of two
/// claims of one plan, on any database, the second finds it running (on
/// PostgreSQL it waits for the first's row lock, then re-checks the state).
pub(super) async fn claim(db: &impl Db, c: &UndoClaim) -> Result<ClaimOutcome, StoreError> {
    let claimed = db
        .execute(
            "claiming an undo",
            "UPDATE undos SET state = 'running', undo_call_id = ?2, by = ?3, via = ?4, forced = ?5, changed_ms = ?6,
                    attempts = attempts + 1
             WHERE call_id = ?1 AND state IN ('planned', 'failed')",
            &args![&c.call_id, &c.undo_call_id, &c.by, &c.via, c.forced, c.now_ms],
        )
        .await?;
    Ok(match one(db, &c.call_id).await? {
        Some(row) if claimed > 0 => ClaimOutcome::Claimed(row),
        Some(row) => ClaimOutcome::NotClaimed(row),
        None if claimed > 0 => return Err(StoreError::NotFound(format!("undo of {}", c.call_id))),
        None => ClaimOutcome::NoPlan,
    })
}

/// See [`super::Store::finish_undo`].
pub(super) async fn finish(
    db: &impl Db,
    call_id: &str,
    state: UndoState,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let changed = db
        .execute(
            "finishing an undo",
            "UPDATE undos SET state = ?2, reason = ?3, changed_ms = ?4 WHERE call_id = ?1 AND state = 'running'",
            &args![call_id, state.as_str(), reason, now_ms],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("running undo of call {call_id}")));
    }
    Ok(())
}

/// At startup: undos a stopped daemon left `running` become `failed` (retryable).
pub(super) async fn fail_running(db: &impl Db, now_ms: i64, instance: Option<&str>) -> Result<(), StoreError> {
    db.execute(
        "failing undos left running",
        "UPDATE undos SET state = 'failed', changed_ms = ?1,
                reason = 'steward stopped while the undo was in flight; check the upstream, then run it again'
         WHERE state = 'running'
           AND (CAST(?2 AS TEXT) IS NULL
                OR undo_call_id IN (SELECT id FROM calls WHERE instance = ?2 AND finished_ms IS NULL))",
        &args![now_ms, instance],
    )
    .await
    .map(|_| ())
}

/// Plans whose call the journal no longer holds (after pruning).
pub(super) async fn prune_orphans(db: &impl Db, before_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "pruning undo plans",
        "DELETE FROM undos WHERE started_ms < ?1 AND NOT EXISTS (SELECT 1 FROM calls WHERE calls.id = undos.call_id)",
        &args![before_ms],
    )
    .await
    .map(|_| ())
}

/// The plan of `call_id`, if it has one.
pub(super) async fn one(db: &impl Db, call_id: &str) -> Result<Option<UndoRow>, StoreError> {
    db.first("reading an undo plan", select_undos!("WHERE call_id = ?1"), &args![call_id], undo_row)
        .await?
        .map(with_state)
        .transpose()
}

/// See [`super::Store::undos`]. One statement for every filter: the flags
/// are parameters (`0`: not asked for), so the text stays the same.
pub(super) async fn query(db: &impl Db, q: &UndoQuery) -> Result<Vec<UndoRow>, StoreError> {
    let rows = db
        .rows(
            "reading undo plans",
            select_undos!(
                "WHERE started_ms >= ?1 AND (CAST(?2 AS TEXT) IS NULL OR tool = ?2)
                   AND (CAST(?3 AS BIGINT) = 0 OR state IN ('planned', 'failed'))
                   AND (CAST(?4 AS BIGINT) = 0 OR state = 'failed')
                 ORDER BY started_ms DESC, call_id DESC"
            ),
            &args![q.since_ms.unwrap_or(i64::MIN), &q.tool, q.undoable_only, q.failed_only],
            undo_row,
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let r = with_state(r)?;
        if q.call_ids.as_ref().is_some_and(|ids| !ids.contains(&r.call_id)) {
            continue;
        }
        out.push(r);
        if q.limit > 0 && out.len() >= q.limit as usize {
            break;
        }
    }
    Ok(out)
}

/// Journal ids matching `text`: the whole id, the short id `steward last`
/// shows (its last group), or a prefix of either; at most 10, newest first
/// (ties by id). Only hex digits and `-` get into the pattern, so it holds
/// no `LIKE` wildcard, and it is lowercase like every id steward makes
/// (SQLite's `LIKE` ignores ASCII case, PostgreSQL's does not).
pub(super) async fn find_call_ids(db: &impl Db, text: &str) -> Result<Vec<String>, StoreError> {
    let pattern: String = text.chars().filter(|c| c.is_ascii_hexdigit() || *c == '-').collect();
    if pattern.is_empty() || pattern.len() != text.len() {
        return Ok(Vec::new());
    }
    db.rows(
        "finding a call",
        "SELECT id FROM calls
         WHERE id = ?1 OR id LIKE CAST(?1 AS TEXT) || '%' OR id LIKE '%-' || CAST(?1 AS TEXT) || '%'
         ORDER BY started_ms DESC, id DESC LIMIT 10",
        &args![pattern.to_ascii_lowercase().as_str()],
        |r| r.text_not_null(0),
    )
    .await
}
