//! The read queries behind `steward report`: the journal, the approvals and
//! the kv table summarized over a [`Window`]. Each is one indexed scan that
//! groups in SQL, so a week of a busy agent returns a few hundred rows, not
//! its calls. What the numbers mean (days, medians, the readiness verdict)
//! is decided in `crate::report`; these only count.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError, Window, sql_error};
use crate::decision::Decision;

/// Calls of one tool started in one time bucket (see [`Store::calls_by_bucket`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolBucket {
    /// The tool; `None` for calls no tool matched.
    pub tool: Option<String>,
    /// Start of the bucket, epoch ms (a multiple of the bucket length).
    pub bucket_ms: i64,
    /// Every journaled call, refusals included.
    pub calls: u64,
    /// Of those, the calls admitted (`allowed`).
    pub allowed: u64,
}

/// Admitted calls whose upstream failed, by how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamErrors {
    /// The upstream answered 5xx.
    pub status_5xx: u64,
    /// The upstream could not be reached (connect failure, reset, no request built).
    pub unreachable: u64,
    /// The upstream did not answer in time.
    pub timeout: u64,
}

/// One approval request as the report counts it (the full row is [`super::ApprovalRow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalOutcome {
    /// `pending`, `approved`, `released`, `denied` or `expired`.
    pub state: String,
    /// When it was requested, epoch ms.
    pub created_ms: i64,
    /// When it was decided, epoch ms.
    pub decided_ms: Option<i64>,
    /// `cli`, `dashboard` or `expiry`.
    pub decided_via: Option<String>,
}

/// The journal's reason of a call whose upstream timed out starts so
/// (`pipeline::forward::ForwardError::Timeout`'s message).
const TIMEOUT_REASON_PREFIX: &str = "upstream timed out";

impl Store {
    /// Calls started in `window` per tool and bucket of `bucket_ms`
    /// (buckets start at multiples of it, from the epoch), sorted by
    /// bucket then tool. A report groups the buckets into days of its
    /// time zone: 15-minute buckets fit every zone's offset.
    pub async fn calls_by_bucket(&self, window: Window, bucket_ms: i64) -> Result<Vec<ToolBucket>, StoreError> {
        self.read(move |conn| calls_by_bucket(conn, window, bucket_ms.max(1))).await
    }

    /// Refused calls started in `window` per decision (`rate_limited`,
    /// `loop_detected`, ...), most frequent first.
    pub async fn refusals_in(&self, window: Window) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(move |conn| refusals_in(conn, window)).await
    }

    /// Admitted calls started in `window` whose upstream failed.
    pub async fn upstream_errors_in(&self, window: Window) -> Result<UpstreamErrors, StoreError> {
        self.read(move |conn| upstream_errors_in(conn, window)).await
    }

    /// Approval requests created in `window`, oldest first.
    pub async fn approvals_in(&self, window: Window) -> Result<Vec<ApprovalOutcome>, StoreError> {
        self.read(move |conn| approvals_in(conn, window)).await
    }

    /// When a human last denied a request, epoch ms (`None`: never).
    pub async fn last_denial_ms(&self) -> Result<Option<i64>, StoreError> {
        self.read(last_denial_ms).await
    }

    /// Every kv entry whose key starts with `prefix`: `(key, value, updated_ms)`, by key.
    pub async fn kv_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |conn| kv_with_prefix(conn, &prefix)).await
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn calls_by_bucket(conn: &Connection, window: Window, bucket_ms: i64) -> Result<Vec<ToolBucket>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT tool, (started_ms / ?2) * ?2 AS bucket, COUNT(*), SUM(decision = ?3)
             FROM calls WHERE started_ms > ?1
             GROUP BY tool, bucket ORDER BY bucket, tool",
        )
        .map_err(|e| sql_error("preparing the calls per tool", e))?;
    let rows = stmt
        .query_map(params![window.after_ms(), bucket_ms, Decision::Allowed.as_str()], |row| {
            Ok(ToolBucket {
                tool: row.get(0)?,
                bucket_ms: row.get(1)?,
                calls: count(row.get(2)?),
                allowed: count(row.get(3)?),
            })
        })
        .map_err(|e| sql_error("counting calls per tool", e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| sql_error("counting calls per tool", e))
}

fn refusals_in(conn: &Connection, window: Window) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT decision, COUNT(*) FROM calls WHERE started_ms > ?1 AND decision != ?2
             GROUP BY decision ORDER BY COUNT(*) DESC, decision",
        )
        .map_err(|e| sql_error("preparing the refusals", e))?;
    let rows = stmt
        .query_map(params![window.after_ms(), Decision::Allowed.as_str()], |row| {
            Ok((row.get::<_, String>(0)?, count(row.get(1)?)))
        })
        .map_err(|e| sql_error("counting refusals", e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| sql_error("counting refusals", e))
}

/// An admitted call's failure is in its row: a 5xx status, or no status with
/// the forwarding error as its reason (`interrupted` rows are steward's own
/// restart, not the upstream's failure).
fn upstream_errors_in(conn: &Connection, window: Window) -> Result<UpstreamErrors, StoreError> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(status >= 500), 0),
                COALESCE(SUM(status IS NULL AND reason IS NOT NULL AND reason != ?3
                             AND substr(reason, 1, length(?4)) != ?4), 0),
                COALESCE(SUM(status IS NULL AND substr(reason, 1, length(?4)) = ?4), 0)
         FROM calls WHERE started_ms > ?1 AND decision = ?2 AND finished_ms IS NOT NULL",
    )
    .and_then(|mut s| {
        s.query_row(
            params![
                window.after_ms(),
                Decision::Allowed.as_str(),
                Decision::Interrupted.as_str(),
                TIMEOUT_REASON_PREFIX
            ],
            |row| {
                Ok(UpstreamErrors {
                    status_5xx: count(row.get(0)?),
                    unreachable: count(row.get(1)?),
                    timeout: count(row.get(2)?),
                })
            },
        )
    })
    .map_err(|e| sql_error("counting upstream errors", e))
}

fn approvals_in(conn: &Connection, window: Window) -> Result<Vec<ApprovalOutcome>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT state, created_ms, decided_ms, decided_via FROM approvals
             WHERE created_ms > ?1 ORDER BY created_ms, id",
        )
        .map_err(|e| sql_error("preparing the approvals query", e))?;
    let rows = stmt
        .query_map([window.after_ms()], |row| {
            Ok(ApprovalOutcome {
                state: row.get(0)?,
                created_ms: row.get(1)?,
                decided_ms: row.get(2)?,
                decided_via: row.get(3)?,
            })
        })
        .map_err(|e| sql_error("reading approvals", e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| sql_error("reading approvals", e))
}

fn last_denial_ms(conn: &Connection) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached(
        "SELECT MAX(decided_ms) FROM approvals WHERE state = 'denied' AND COALESCE(decided_via, '') != 'expiry'",
    )
    .and_then(|mut s| s.query_row([], |row| row.get::<_, Option<i64>>(0)).optional())
    .map(Option::flatten)
    .map_err(|e| sql_error("reading the last denial", e))
}

fn kv_with_prefix(conn: &Connection, prefix: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value, updated_ms FROM kv WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key")
        .map_err(|e| sql_error("preparing the kv listing", e))?;
    let rows = stmt
        .query_map([prefix], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(|e| sql_error("listing kv entries", e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| sql_error("listing kv entries", e))
}
