//! The end of an admitted call, written once against [`Db`] (see `db.rs`):
//! its completion (outcome, settlement, undo plan), its withdrawal (an
//! admission that was never forwarded), and the settlement of the calls a
//! stopped daemon left in flight. See [`super::Store::complete`],
//! [`super::Store::withdraw`] and [`super::Store::settle_interrupted`].

use super::db::{Db, args};
use super::{Completion, StoreError, spend, undo};
use crate::decision::Decision;

/// Records the final outcome of the admitted call `c.call_id`, settles its
/// spend and records its undo plan, in the caller's transaction.
pub(super) async fn complete(db: &impl Db, c: &Completion) -> Result<(), StoreError> {
    let changed = db
        .execute(
            "completing a call",
            "UPDATE calls SET finished_ms = ?2, status = ?3, duration_ms = ?4, attempts = ?5,
                    response_ref = ?6, reason = COALESCE(?7, reason), extra_json = ?8, counts_as_error = ?9
             WHERE id = ?1",
            &args![
                &c.call_id,
                c.now_ms,
                c.status,
                i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
                c.attempts,
                &c.response_ref,
                &c.error,
                &c.extra_json,
                // Only admitted (`allowed`) calls are completed.
                Decision::Allowed.counts_as_error(c.status),
            ],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("call {}", c.call_id)));
    }
    if let Some(settlement) = &c.spend {
        spend::settle(db, &c.call_id, settlement, c.now_ms).await?;
    }
    if let Some(plan) = &c.undo {
        undo::record(db, &c.call_id, plan, c.now_ms).await?;
    }
    Ok(())
}

/// Turns the admitted, never forwarded call `call_id` into a refusal and
/// releases its reservation at no cost.
pub(super) async fn withdraw(
    db: &impl Db,
    call_id: &str,
    decision: Decision,
    reason: &str,
    status: u16,
    now_ms: i64,
) -> Result<(), StoreError> {
    let changed = db
        .execute(
            "withdrawing a call",
            "UPDATE calls SET decision = ?2, reason = ?3, status = ?4, finished_ms = ?5,
                    duration_ms = CASE WHEN ?5 > started_ms THEN ?5 - started_ms ELSE 0 END, counts_as_error = ?6
             WHERE id = ?1 AND finished_ms IS NULL",
            &args![call_id, decision.as_str(), reason, status, now_ms, decision.counts_as_error(Some(status))],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("call {call_id} in flight")));
    }
    spend::release(db, call_id, now_ms).await
}

/// Finishes the calls still in flight as `interrupted` at `now_ms`, bills
/// their open reservations in full and fails the undos they were running
/// (see [`super::Store::settle_interrupted`]); the calls finished. Every
/// call when `instance` is `None` (one instance restarting: nothing of it
/// is running); on a fleet, the calls `instance` admitted (its own at its
/// restart, or a lapsed one's, by the reaper: `pg/lease.rs`). The outcome
/// is unknown, so the status stays NULL and the error-rate alert leaves the
/// calls out.
pub(super) async fn settle_interrupted(db: &impl Db, now_ms: i64, instance: Option<&str>) -> Result<u64, StoreError> {
    spend::settle_open_at_reserved(db, now_ms, instance).await?;
    undo::fail_running(db, now_ms, instance).await?;
    db.execute(
        "settling interrupted calls",
        "UPDATE calls SET finished_ms = ?1, reason = ?2, status = NULL, counts_as_error = NULL,
                duration_ms = CASE WHEN ?1 > started_ms THEN ?1 - started_ms ELSE 0 END
         WHERE finished_ms IS NULL AND (CAST(?3 AS TEXT) IS NULL OR instance = ?3)",
        &args![now_ms, Decision::Interrupted.as_str(), instance],
    )
    .await
}
