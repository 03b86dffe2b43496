//! Read queries: the kill switch, `steward last`, per-tool counts, kv. They
//! take any connection, so the writer can reuse [`kill_state`] inside its
//! transaction.

use rusqlite::{Connection, params};

use super::db::{Db, Row, RowError, args};
use super::{CallRow, JournalFootprint, KillState, LastQuery, StoreError, Window, sql_error};
use crate::decision::Decision;

/// The kill switch row.
pub(super) fn kill_state(conn: &Connection) -> Result<KillState, StoreError> {
    read_kill_state(conn).map_err(kill_state_error)
}

/// The kill switch row, with SQLite's own error (the gate tells a lock from
/// a failure).
pub(super) fn read_kill_state(conn: &Connection) -> rusqlite::Result<KillState> {
    conn.prepare_cached(super::admission::KILL_STATE_SQL).and_then(|mut s| {
        s.query_row([], |row| {
            Ok(KillState {
                engaged: row.get::<_, i64>(0)? != 0,
                reason: row.get(1)?,
                source: row.get(2)?,
                changed_ms: row.get(3)?,
            })
        })
    })
}

/// What a failed read of the kill switch means.
pub(super) fn kill_state_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::Corrupt("the kill switch row is missing".into()),
        e => sql_error("reading the kill switch", e),
    }
}

/// The columns of a journal row, in [`call_row`]'s order.
macro_rules! call_columns {
    () => {
        "id, started_ms, finished_ms, door, tool, upstream, method, path, loop_key, input_summary,
         input_sha256, decision, reason, status, duration_ms, attempts, response_ref, cost_usd, extra_json"
    };
}

/// Rows for `steward last`, newest first. (The casts name the optional
/// filters' types, which PostgreSQL cannot infer from `IS NULL`.)
pub(super) async fn last(db: &impl Db, q: &LastQuery) -> Result<Vec<CallRow>, StoreError> {
    db.rows(
        "reading the journal",
        concat!(
            "SELECT ",
            call_columns!(),
            " FROM calls
             WHERE (CAST(?1 AS TEXT) IS NULL OR tool = ?1)
               AND (CAST(?2 AS BIGINT) IS NULL OR started_ms >= ?2)
               AND (CAST(?3 AS BIGINT) = 0 OR decision != ?5 OR status >= 400 OR (status IS NULL AND finished_ms IS NOT NULL))
             ORDER BY started_ms DESC, id DESC
             LIMIT ?4"
        ),
        &args![q.tool.as_deref(), q.since_ms, q.failed_only, q.limit, Decision::Allowed.as_str()],
        call_row,
    )
    .await
}

/// The journal row of `id`.
pub(super) async fn call(db: &impl Db, id: &str) -> Result<Option<CallRow>, StoreError> {
    db.first("reading a call", concat!("SELECT ", call_columns!(), " FROM calls WHERE id = ?1"), &args![id], call_row)
        .await
}

/// Calls still in flight (admitted, not finished), oldest first.
pub(super) async fn in_flight(db: &impl Db) -> Result<Vec<CallRow>, StoreError> {
    db.rows(
        "reading calls in flight",
        concat!("SELECT ", call_columns!(), " FROM calls WHERE finished_ms IS NULL ORDER BY started_ms, id"),
        &[],
        call_row,
    )
    .await
}

fn call_row(row: &dyn Row) -> Result<CallRow, RowError> {
    let status =
        row.int(13)?.map(|s| u16::try_from(s).map_err(|_| RowError::new(format!("status {s}")))).transpose()?;
    let attempts = row.int_not_null(15)?;
    Ok(CallRow {
        id: row.text_not_null(0)?,
        started_ms: row.int_not_null(1)?,
        finished_ms: row.int(2)?,
        door: row.text_not_null(3)?,
        tool: row.text(4)?,
        upstream: row.text_not_null(5)?,
        method: row.text_not_null(6)?,
        path: row.text_not_null(7)?,
        loop_key: row.text_not_null(8)?,
        input_summary: row.text_not_null(9)?,
        input_sha256: row.text_not_null(10)?,
        decision: row.text_not_null(11)?,
        reason: row.text(12)?,
        status,
        duration_ms: row.int(14)?.map(non_negative),
        attempts: u32::try_from(attempts).map_err(|_| RowError::new(format!("attempts {attempts}")))?,
        response_ref: row.text(16)?,
        cost_usd: row.real(17)?,
        extra_json: row.text(18)?,
    })
}

/// Allowed calls per tool started in `window`.
pub(super) fn tool_counts_in(conn: &Connection, window: Window) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT tool, COUNT(*) FROM calls
             WHERE decision = ?2 AND tool IS NOT NULL AND started_ms > ?1
             GROUP BY tool ORDER BY tool",
        )
        .map_err(|e| sql_error("preparing the tool counts", e))?;
    let rows = stmt
        .query_map(params![window.after_ms(), Decision::Allowed.as_str()], |row| {
            Ok((row.get::<_, String>(0)?, non_negative(row.get::<_, i64>(1)?)))
        })
        .map_err(|e| sql_error("counting calls per tool", e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| sql_error("counting calls per tool", e))
}

/// `(judged, failed)` calls started in `window`, for the error-rate alert:
/// the rows' own flags. See [`super::Store::error_counts_in`].
pub(super) fn error_counts_in(conn: &Connection, window: Window) -> Result<(u64, u64), StoreError> {
    conn.prepare_cached(
        "SELECT COUNT(*), COALESCE(SUM(counts_as_error), 0)
         FROM calls
         WHERE started_ms > ?1 AND counts_as_error IS NOT NULL",
    )
    .and_then(|mut s| {
        s.query_row([window.after_ms()], |row| {
            Ok((non_negative(row.get::<_, i64>(0)?), non_negative(row.get::<_, i64>(1)?)))
        })
    })
    .map_err(|e| sql_error("counting failed calls", e))
}

/// The journal's volume since `since_ms` and the database's size in use,
/// for doctor's disk projection. Two counts over indexes and three pragmas:
/// a fraction of a second even for millions of rows.
pub(super) fn footprint(conn: &Connection, since_ms: i64) -> Result<JournalFootprint, StoreError> {
    let (recent_calls, recent_first_ms) = conn
        .prepare_cached("SELECT COUNT(*), MIN(started_ms) FROM calls WHERE started_ms >= ?1")
        .and_then(|mut s| s.query_row([since_ms], |row| Ok((non_negative(row.get(0)?), row.get(1)?))))
        .map_err(|e| sql_error("counting recent calls", e))?;
    let rows = conn
        .prepare_cached("SELECT COUNT(*) FROM calls")
        .and_then(|mut s| s.query_row([], |row| row.get(0)))
        .map(non_negative)
        .map_err(|e| sql_error("counting journal rows", e))?;
    let pragma = |name: &str| {
        conn.pragma_query_value(None, name, |row| row.get::<_, i64>(0))
            .map(non_negative)
            .map_err(|e| sql_error(&format!("reading {name}"), e))
    };
    let used_pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(JournalFootprint { recent_calls, recent_first_ms, rows, used_bytes: used_pages * pragma("page_size")? })
}

/// SQLite has no unsigned integers; counts and durations are stored as
/// non-negative `i64`.
fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// One kv value.
pub(super) async fn kv_get(db: &impl Db, key: &str) -> Result<Option<String>, StoreError> {
    let value =
        db.first("reading a kv entry", "SELECT value FROM kv WHERE key = ?1", &args![key], |row| row.text(0)).await?;
    Ok(value.flatten())
}
