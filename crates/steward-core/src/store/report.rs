//! The read queries behind `steward report`: the journal, the approvals and
//! the kv table summarized over a [`Window`], written once against [`Db`]
//! (see `db.rs`) for SQLite and PostgreSQL. Each is one indexed scan that
//! groups in SQL, so a week of a busy agent returns a few hundred rows, not
//! its calls. What the numbers mean (days, medians, the readiness verdict)
//! is decided in `crate::report`; these only count.

use super::db::{Db, args};
use super::{Store, StoreError, Window};
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
        on_db!(self, |db| calls_by_bucket(db, window, bucket_ms.max(1)))
    }

    /// Refused calls started in `window` per decision (`rate_limited`,
    /// `loop_detected`, ...), most frequent first.
    pub async fn refusals_in(&self, window: Window) -> Result<Vec<(String, u64)>, StoreError> {
        on_db!(self, |db| refusals_in(db, window))
    }

    /// Admitted calls started in `window` whose upstream failed.
    pub async fn upstream_errors_in(&self, window: Window) -> Result<UpstreamErrors, StoreError> {
        on_db!(self, |db| upstream_errors_in(db, window))
    }

    /// Approval requests created in `window`, oldest first.
    pub async fn approvals_in(&self, window: Window) -> Result<Vec<ApprovalOutcome>, StoreError> {
        on_db!(self, |db| approvals_in(db, window))
    }

    /// When a human last denied a request, epoch ms (`None`: never).
    pub async fn last_denial_ms(&self) -> Result<Option<i64>, StoreError> {
        on_db!(self, |db| last_denial_ms(db))
    }

    /// Every kv entry whose key starts with `prefix`: `(key, value, updated_ms)`, by key.
    /// On a fleet's store, this instance's entries (or the fleet's, for its
    /// shared keys: see [`Store::kv_get`]), keyed as they were set.
    pub async fn kv_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
        let stored = self.kv_key(prefix);
        let namespace = stored.len() - prefix.len();
        let rows = on_db!(self, |db| kv_with_prefix(db, &stored))?;
        Ok(rows.into_iter().map(|(key, value, at)| (key[namespace..].to_owned(), value, at)).collect())
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// See [`Store::calls_by_bucket`]; `bucket_ms` at least 1. The calls no
/// tool matched come first in their bucket (`NULLS FIRST`: SQLite's
/// default, not PostgreSQL's).
pub(super) async fn calls_by_bucket(
    db: &impl Db,
    window: Window,
    bucket_ms: i64,
) -> Result<Vec<ToolBucket>, StoreError> {
    db.rows(
        "counting calls per tool",
        "SELECT tool, (started_ms / ?2) * ?2 AS bucket, COUNT(*),
                CAST(SUM(CASE WHEN decision = ?3 THEN 1 ELSE 0 END) AS BIGINT)
         FROM calls WHERE started_ms > ?1
         GROUP BY tool, bucket ORDER BY bucket, tool NULLS FIRST",
        &args![window.after_ms(), bucket_ms, Decision::Allowed.as_str()],
        |row| {
            Ok(ToolBucket {
                tool: row.text(0)?,
                bucket_ms: row.int_not_null(1)?,
                calls: count(row.int_not_null(2)?),
                allowed: count(row.int_not_null(3)?),
            })
        },
    )
    .await
}

/// See [`Store::refusals_in`].
pub(super) async fn refusals_in(db: &impl Db, window: Window) -> Result<Vec<(String, u64)>, StoreError> {
    db.rows(
        "counting refusals",
        "SELECT decision, COUNT(*) FROM calls WHERE started_ms > ?1 AND decision != ?2
         GROUP BY decision ORDER BY COUNT(*) DESC, decision",
        &args![window.after_ms(), Decision::Allowed.as_str()],
        |row| Ok((row.text_not_null(0)?, count(row.int_not_null(1)?))),
    )
    .await
}

/// An admitted call's failure is in its row: a 5xx status, or no status with
/// the forwarding error as its reason (`interrupted` rows are steward's own
/// restart, not the upstream's failure).
pub(super) async fn upstream_errors_in(db: &impl Db, window: Window) -> Result<UpstreamErrors, StoreError> {
    let errors = db
        .first(
            "counting upstream errors",
            "SELECT CAST(COALESCE(SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN status IS NULL AND reason IS NOT NULL AND reason != ?3
                                            AND substr(reason, 1, length(CAST(?4 AS TEXT))) != ?4
                                       THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN status IS NULL AND substr(reason, 1, length(CAST(?4 AS TEXT))) = ?4
                                       THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM calls WHERE started_ms > ?1 AND decision = ?2 AND finished_ms IS NOT NULL",
            &args![
                window.after_ms(),
                Decision::Allowed.as_str(),
                Decision::Interrupted.as_str(),
                TIMEOUT_REASON_PREFIX
            ],
            |row| {
                Ok(UpstreamErrors {
                    status_5xx: count(row.int_not_null(0)?),
                    unreachable: count(row.int_not_null(1)?),
                    timeout: count(row.int_not_null(2)?),
                })
            },
        )
        .await?;
    // An aggregate without GROUP BY always returns its one row.
    Ok(errors.unwrap_or_default())
}

/// See [`Store::approvals_in`].
pub(super) async fn approvals_in(db: &impl Db, window: Window) -> Result<Vec<ApprovalOutcome>, StoreError> {
    db.rows(
        "reading approvals",
        "SELECT state, created_ms, decided_ms, decided_via FROM approvals
         WHERE created_ms > ?1 ORDER BY created_ms, id",
        &args![window.after_ms()],
        |row| {
            Ok(ApprovalOutcome {
                state: row.text_not_null(0)?,
                created_ms: row.int_not_null(1)?,
                decided_ms: row.int(2)?,
                decided_via: row.text(3)?,
            })
        },
    )
    .await
}

/// See [`Store::last_denial_ms`].
pub(super) async fn last_denial_ms(db: &impl Db) -> Result<Option<i64>, StoreError> {
    let last = db
        .first(
            "reading the last denial",
            "SELECT MAX(decided_ms) FROM approvals WHERE state = 'denied' AND COALESCE(decided_via, '') != 'expiry'",
            &[],
            |row| row.int(0),
        )
        .await?;
    Ok(last.flatten())
}

/// See [`Store::kv_with_prefix`].
pub(super) async fn kv_with_prefix(db: &impl Db, prefix: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
    db.rows(
        "listing kv entries",
        "SELECT key, value, updated_ms FROM kv WHERE substr(key, 1, length(CAST(?1 AS TEXT))) = ?1 ORDER BY key",
        &args![prefix],
        |row| Ok((row.text_not_null(0)?, row.text_not_null(1)?, row.int_not_null(2)?)),
    )
    .await
}
