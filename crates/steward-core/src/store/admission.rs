//! Admission: the one place that decides whether a call may go through,
//! and journals it either way (see [`super::Store::admit`]). Written once
//! against [`Db`], inside the caller's write transaction, so the same rules
//! run on every database the store can use (see `db.rs`). The order: kill
//! switch, loop breaker, rate limit, spend stop and cap, then the insert
//! and the reservation. The kill switch's own writes (engage, release) are
//! here too: admission reads what they write.

use redact::Redactor;

use super::db::{Arg, Db, args};
use super::{Admission, AdmitOutcome, KillState, StoreError, Window, duration_ms, spend};
use crate::decision::Decision;

/// The kill switch's row.
pub(super) const KILL_STATE_SQL: &str = "SELECT engaged, reason, source, changed_ms FROM kill_switch WHERE id = 1";

/// The kill switch as this transaction sees it.
pub(super) async fn kill_state(db: &impl Db) -> Result<KillState, StoreError> {
    let state = db
        .first("reading the kill switch", KILL_STATE_SQL, &[], |row| {
            Ok(KillState {
                engaged: row.int_not_null(0)? != 0,
                reason: row.text(1)?,
                source: row.text(2)?,
                changed_ms: row.int_not_null(3)?,
            })
        })
        .await?;
    state.ok_or_else(|| StoreError::Corrupt("the kill switch row is missing".into()))
}

/// Kill switch, loop breaker, rate limit, spend, insert: see
/// [`super::Store::admit`]. The kill switch's reason is redacted again as
/// it is copied onto the refused call: `steward stop` wrote it knowing
/// fewer secrets than the daemon.
pub(super) async fn admit(db: &impl Db, a: &Admission, redactor: &Redactor) -> Result<AdmitOutcome, StoreError> {
    let kill = kill_state(db).await?;
    if !a.undo_by_operator
        && let Some(reason) = kill.refusal_reason(redactor)
    {
        // Journaled as a call refused before admission would be: the
        // refusal's message and status (the pipeline reads the switch
        // here for every call it admits).
        let message = KillState::refusal_message(&reason);
        let status = Decision::Killed.status().map(|s| s.as_u16());
        let row = NewRow { decision: Decision::Killed, reason: Some(&message), status, finished: true };
        insert_call(db, a, &row).await?;
        return Ok(AdmitOutcome::Killed { reason });
    }
    if let Some(tool) = a.tool.as_deref()
        && let Some(refused) = admit_tool(db, a, tool, &kill).await?
    {
        return Ok(refused);
    }
    let admitted = NewRow { decision: Decision::Allowed, reason: None, status: None, finished: false };
    let Some(hold) = &a.spend else {
        insert_call(db, a, &admitted).await?;
        return Ok(AdmitOutcome::Admitted);
    };
    if let Some(stop) = spend::stop_on(db, &hold.day).await? {
        let row = NewRow { decision: Decision::SpendCap, reason: Some(&stop.reason), status: None, finished: true };
        insert_call(db, a, &row).await?;
        return Ok(AdmitOutcome::SpendStopped { reason: stop.reason });
    }
    let spent_micros = spend::day_total(db, &hold.day).await?;
    if let Some(cap_micros) = hold.cap_micros
        && spent_micros.saturating_add(hold.reserve_micros) > cap_micros
    {
        let reason = format!(
            "daily spend cap: {spent_micros} of {cap_micros} micro-USD committed, this call reserves {}",
            hold.reserve_micros
        );
        let row = NewRow { decision: Decision::SpendCap, reason: Some(&reason), status: None, finished: true };
        insert_call(db, a, &row).await?;
        return Ok(AdmitOutcome::SpendCapped { spent_micros, cap_micros, reserve_micros: hold.reserve_micros });
    }
    insert_call(db, a, &admitted).await?;
    spend::reserve(db, &a.call_id, hold, a.now_ms).await?;
    Ok(AdmitOutcome::Admitted)
}

/// The per-tool steps of admission: loop breaker, then rate limit. `Some`
/// when the call is refused (and journaled).
async fn admit_tool(
    db: &impl Db,
    a: &Admission,
    tool: &str,
    kill: &KillState,
) -> Result<Option<AdmitOutcome>, StoreError> {
    let breaker = a.loop_breaker;
    if breaker.max_identical > 0 {
        // A release (human `resume`) starts a fresh count: calls before it
        // no longer count toward a loop.
        let window = Window::ending_at(a.now_ms, breaker.window).and_after(kill.changed_ms);
        let earlier = db
            .first(
                "counting identical calls",
                "SELECT COUNT(*) FROM calls
                 WHERE tool = ?1 AND loop_key = ?2 AND started_ms > ?3 AND decision IN (?4, ?5)",
                &args![
                    tool,
                    &a.loop_key,
                    window.after_ms(),
                    Decision::Allowed.as_str(),
                    Decision::RateLimited.as_str()
                ],
                |row| row.int_not_null(0),
            )
            .await?
            .unwrap_or(0);
        if earlier.saturating_add(1) >= i64::from(breaker.max_identical) {
            let reason = format!("loop detected: {tool}");
            engage_kill(db, &reason, "loop_breaker", a.now_ms).await?;
            let row = NewRow { decision: Decision::LoopDetected, reason: Some(&reason), status: None, finished: true };
            insert_call(db, a, &row).await?;
            return Ok(Some(AdmitOutcome::LoopDetected { reason }));
        }
    }

    let Some(limit) = a.limit else { return Ok(None) };
    let per = duration_ms(limit.per);
    let window = Window::ending_at(a.now_ms, limit.per);
    let allowed = Decision::Allowed.as_str();
    let in_window = db
        .first(
            "counting the rate window",
            "SELECT COUNT(*) FROM calls WHERE tool = ?1 AND decision = ?3 AND started_ms > ?2",
            &args![tool, window.after_ms(), allowed],
            |row| row.int_not_null(0),
        )
        .await?
        .unwrap_or(0);
    let max = i64::from(limit.max);
    if in_window < max {
        return Ok(None);
    }
    // The call fits once `in_window - max + 1` calls left the window: when
    // the oldest leaves if the window is exactly full, later if it is
    // over-full (the limit was lowered).
    let leaving = db
        .first(
            "finding the window's oldest call",
            "SELECT started_ms FROM calls WHERE tool = ?1 AND decision = ?4 AND started_ms > ?2
             ORDER BY started_ms LIMIT 1 OFFSET ?3",
            &args![tool, window.after_ms(), in_window - max, allowed],
            |row| row.int_not_null(0),
        )
        .await?;
    // Capped at one window: calls are stamped before the writer orders
    // them, so the oldest in the window may carry a later stamp than this
    // call, and a slot never takes longer than a window to free.
    let retry_after_ms = match leaving {
        Some(started) => started.saturating_add(per).saturating_sub(a.now_ms).clamp(1, per.max(1)),
        None => per.max(1),
    };
    let reason = format!("rate limit: {} per {} ms", limit.max, per);
    let row = NewRow { decision: Decision::RateLimited, reason: Some(&reason), status: None, finished: true };
    insert_call(db, a, &row).await?;
    Ok(Some(AdmitOutcome::RateLimited { retry_after_ms }))
}

/// Engages the kill switch unless it is engaged already (the first cause
/// stays on record).
pub(super) async fn engage_kill(db: &impl Db, reason: &str, source: &str, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "engaging the kill switch",
        "UPDATE kill_switch SET engaged = 1, reason = ?1, source = ?2, changed_ms = ?3 WHERE id = 1 AND engaged = 0",
        &args![reason, source, now_ms],
    )
    .await
    .map(|_| ())
}

/// Releases the kill switch (a human `steward resume`), stamping
/// `changed_ms`, which restarts the loop breaker's count.
pub(super) async fn release_kill(db: &impl Db, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "releasing the kill switch",
        "UPDATE kill_switch SET engaged = 0, changed_ms = ?1 WHERE id = 1",
        &args![now_ms],
    )
    .await
    .map(|_| ())
}

/// The columns an insert decides; the rest come from the [`Admission`].
pub(super) struct NewRow<'a> {
    pub decision: Decision,
    pub reason: Option<&'a str>,
    pub status: Option<u16>,
    /// Refusals are finished on arrival; admitted calls are in flight.
    pub finished: bool,
}

/// Journals `a` with the outcome `row`.
pub(super) async fn insert_call(db: &impl Db, a: &Admission, row: &NewRow<'_>) -> Result<(), StoreError> {
    let finished_ms = row.finished.then_some(a.now_ms);
    let duration_ms = row.finished.then_some(0_i64);
    // An admitted call's flag is written when it completes.
    let counts_as_error = if row.finished { row.decision.counts_as_error(row.status) } else { None };
    let values: [Arg<'_>; 16] = args![
        &a.call_id,
        a.now_ms,
        finished_ms,
        &a.door,
        a.tool.as_deref(),
        &a.upstream,
        &a.method,
        &a.path,
        &a.loop_key,
        &a.input_summary,
        &a.input_sha256,
        row.decision.as_str(),
        row.reason,
        row.status,
        duration_ms,
        counts_as_error,
    ];
    db.execute(
        "journaling a call",
        "INSERT INTO calls (id, started_ms, finished_ms, door, tool, upstream, method, path, loop_key,
                            input_summary, input_sha256, decision, reason, status, duration_ms, attempts,
                            counts_as_error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 0, ?16)",
        &values,
    )
    .await
    .map(|_| ())
}
