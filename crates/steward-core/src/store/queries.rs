//! The journal's and kv's reads and their maintenance writes: `steward
//! last`, one call, the calls in flight, per-tool and error counts, the
//! journal's footprint, kv (get, set, delete, the write probe) and the
//! journal's retention. Written once against [`Db`] (see `db.rs`): the
//! store runs them on its SQLite connections with `db::at_once` (the
//! writes inside the writer's transaction), `pg.rs` on PostgreSQL.
//!
//! SQLite only, on a `rusqlite` connection: the kill switch's read
//! ([`read_kill_state`]: the gate's fast path tells a lock from a failure
//! by SQLite's own error) and the file's bytes in use ([`used_bytes`]:
//! SQLite's pages; PostgreSQL's size is its own question).

use rusqlite::Connection;

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
         input_sha256, decision, reason, status, duration_ms, attempts, response_ref, cost_usd, extra_json, instance"
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
               AND (CAST(?6 AS TEXT) IS NULL OR instance = ?6)
             ORDER BY started_ms DESC, id DESC
             LIMIT ?4"
        ),
        &args![q.tool.as_deref(), q.since_ms, q.failed_only, q.limit, Decision::Allowed.as_str(), q.instance.as_deref()],
        call_row,
    )
    .await
}

/// The journal row of `id`.
pub(super) async fn call(db: &impl Db, id: &str) -> Result<Option<CallRow>, StoreError> {
    db.first("reading a call", concat!("SELECT ", call_columns!(), " FROM calls WHERE id = ?1"), &args![id], call_row)
        .await
}

/// Calls still in flight (admitted, not finished), oldest first; only
/// `instance`'s when given (a fleet's instance at its start: the others'
/// calls are theirs).
pub(super) async fn in_flight(db: &impl Db, instance: Option<&str>) -> Result<Vec<CallRow>, StoreError> {
    db.rows(
        "reading calls in flight",
        concat!(
            "SELECT ",
            call_columns!(),
            " FROM calls WHERE finished_ms IS NULL AND (CAST(?1 AS TEXT) IS NULL OR instance = ?1)
             ORDER BY started_ms, id"
        ),
        &args![instance],
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
        instance: row.text(19)?,
    })
}

/// Allowed calls per tool started in `window`.
pub(super) async fn tool_counts_in(db: &impl Db, window: Window) -> Result<Vec<(String, u64)>, StoreError> {
    db.rows(
        "counting calls per tool",
        "SELECT tool, COUNT(*) FROM calls
         WHERE decision = ?2 AND tool IS NOT NULL AND started_ms > ?1
         GROUP BY tool ORDER BY tool",
        &args![window.after_ms(), Decision::Allowed.as_str()],
        |row| Ok((row.text_not_null(0)?, non_negative(row.int_not_null(1)?))),
    )
    .await
}

/// `(judged, failed)` calls started in `window`, for the error-rate alert:
/// the rows' own flags. See [`super::Store::error_counts_in`].
pub(super) async fn error_counts_in(db: &impl Db, window: Window) -> Result<(u64, u64), StoreError> {
    let counts = db
        .first(
            "counting failed calls",
            "SELECT COUNT(*), CAST(COALESCE(SUM(counts_as_error), 0) AS BIGINT)
             FROM calls
             WHERE started_ms > ?1 AND counts_as_error IS NOT NULL",
            &args![window.after_ms()],
            |row| Ok((non_negative(row.int_not_null(0)?), non_negative(row.int_not_null(1)?))),
        )
        .await?;
    // An aggregate without GROUP BY always returns its one row.
    Ok(counts.unwrap_or((0, 0)))
}

/// The journal's volume since `since_ms`, for doctor's disk projection:
/// two counts over indexes, a fraction of a second even for millions of
/// rows. `used_bytes` is left 0: what the database occupies is each
/// database's own question (on SQLite, [`used_bytes`]), which the caller
/// fills in.
pub(super) async fn footprint(db: &impl Db, since_ms: i64) -> Result<JournalFootprint, StoreError> {
    let (recent_calls, recent_first_ms) = db
        .first(
            "counting recent calls",
            "SELECT COUNT(*), MIN(started_ms) FROM calls WHERE started_ms >= ?1",
            &args![since_ms],
            |row| Ok((non_negative(row.int_not_null(0)?), row.int(1)?)),
        )
        .await?
        .unwrap_or((0, None));
    let rows = db
        .first("counting journal rows", "SELECT COUNT(*) FROM calls", &[], |row| row.int_not_null(0))
        .await?
        .map_or(0, non_negative);
    Ok(JournalFootprint { recent_calls, recent_first_ms, rows, used_bytes: 0 })
}

/// The bytes of the SQLite file in use (its pages not on the free list):
/// three pragmas, SQLite's own arithmetic.
pub(super) fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let pragma = |name: &str| {
        conn.pragma_query_value(None, name, |row| row.get::<_, i64>(0))
            .map(non_negative)
            .map_err(|e| sql_error(&format!("reading {name}"), e))
    };
    let used_pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(used_pages * pragma("page_size")?)
}

/// Deletes up to `max_rows` finished journal rows of calls started before
/// `before_ms`, oldest first (ties by id), then the undo plans left
/// without their call; the rows deleted.
pub(super) async fn prune_journal(db: &impl Db, before_ms: i64, max_rows: u64) -> Result<u64, StoreError> {
    let deleted = db
        .execute(
            "pruning the journal",
            "DELETE FROM calls WHERE id IN (
                 SELECT id FROM calls WHERE started_ms < ?1 AND finished_ms IS NOT NULL
                 ORDER BY started_ms, id LIMIT ?2)",
            &args![before_ms, i64::try_from(max_rows).unwrap_or(i64::MAX)],
        )
        .await?;
    super::undo::prune_orphans(db, before_ms).await?;
    Ok(deleted)
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

/// Sets one kv value.
pub(super) async fn kv_set(db: &impl Db, key: &str, value: &str, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "writing a kv entry",
        "INSERT INTO kv (key, value, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
        &args![key, value, now_ms],
    )
    .await
    .map(|_| ())
}

/// Removes one kv value (nothing when it is absent).
pub(super) async fn kv_delete(db: &impl Db, key: &str) -> Result<(), StoreError> {
    db.execute("deleting a key", "DELETE FROM kv WHERE key = ?1", &args![key]).await.map(|_| ())
}

/// Rewrites one row of `kv` (see [`super::Store::check_writable`]): a
/// real write, so a database that refuses writes fails here, which an
/// empty transaction would not notice (it writes nothing).
pub(super) async fn write_probe(db: &impl Db) -> Result<(), StoreError> {
    db.execute(
        "writing the probe row",
        "INSERT INTO kv (key, value, updated_ms) VALUES ('store.write_probe', '', 0)
         ON CONFLICT (key) DO UPDATE SET updated_ms = kv.updated_ms + 1",
        &[],
    )
    .await
    .map(|_| ())
}
