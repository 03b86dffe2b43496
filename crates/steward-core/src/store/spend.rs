//! The spend ledger: one row per priced LLM call, holding the worst-case
//! reservation taken at admission and the real cost settled at completion.
//!
//! The daily total is `SUM(COALESCE(settled, reserved))` over the day's rows:
//! a call in flight counts at its worst case, so concurrent calls can never
//! together pass the cap, and the check-and-reserve runs inside the same
//! admission transaction as the kill switch and the rate windows.
//!
//! That sum is kept per day in `spend_days` by triggers on every insert,
//! update and delete of a ledger row ([`DAY_TOTALS_MIGRATION`]), so an
//! admission reads one row instead of summing the whole day's ledger, which
//! grew with every call (100,000 LLM calls a day meant 100,000 rows summed
//! per admission). Triggers rather than code: every writer of `spend`,
//! present and future, keeps the total right inside its own transaction.
//!
//! **The day's stop.** A settlement can carry a [`SpendSettlement::stop`]:
//! the provider billed beyond what was reserved (more output than
//! `max_tokens`, absurd counts), so the cap's arithmetic can no longer be
//! trusted for the rest of the day. The stop is written in the settlement's
//! own transaction (`kv` [`STOP_KEY`]), and every later admission of a
//! priced call on that spend day is refused ([`super::AdmitOutcome::SpendStopped`])
//! until the day ends or `steward resume` lifts it ([`super::Store::lift_spend_stop`]).
//!
//! Every read and write of the ledger is written once against [`Db`] (see
//! `db.rs`), for SQLite and PostgreSQL (whose triggers keep `spend_days`
//! the same way: `pg.rs`).
//!
//! **Bounded numbers.** Settled costs and token counts are stored saturated
//! at [`MAX_STORED_MICROS`] and [`MAX_STORED_TOKENS`], so neither a column nor
//! the day's running total can overflow SQLite's 64-bit integers (an
//! overflowing sum becomes a REAL, which a STRICT INTEGER column refuses,
//! and the whole completion with it).

use super::StoreError;
use super::db::{Db, args};

/// A worst-case reservation against the daily cap, taken at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendHold {
    /// The spend day (`YYYY-MM-DD` in `[spend] timezone`) the call counts toward.
    pub day: String,
    /// `[llm.NAME]` the call goes to.
    pub provider: String,
    /// Model the request names.
    pub model: String,
    /// Worst-case cost in micro-dollars.
    pub reserve_micros: u64,
    /// The day's cap in micro-dollars; `None`: recorded, not capped.
    pub cap_micros: Option<u64>,
}

/// `kv` key of the day's spend stop: JSON `{"day", "reason", "call_id", "at_ms"}`.
pub const STOP_KEY: &str = "spend.stopped";

/// Largest cost stored for one call: one million dollars. Far above any real
/// call and far below `i64::MAX` (9.2e18), so even millions of saturated
/// calls in a day keep the running total an integer.
pub const MAX_STORED_MICROS: u64 = 1_000_000_000_000;

/// Largest token count stored for one call: a thousand times the largest
/// context window sold today.
pub const MAX_STORED_TOKENS: u64 = 10_000_000_000;

/// The stop a settlement writes: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpendStop {
    /// The spend day it holds for (`YYYY-MM-DD` in `[spend] timezone`).
    pub day: String,
    /// Why, for the refusal, `steward status` and the alert: names the
    /// provider, the model and what was billed against what was reserved.
    pub reason: String,
    /// The call that caused it.
    pub call_id: String,
    /// When, epoch ms.
    pub at_ms: i64,
}

/// What a priced call really cost, settled at completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendSettlement {
    /// Cost in micro-dollars.
    pub micros: u64,
    /// Input tokens billed (cached included).
    pub input_tokens: u64,
    /// Output tokens billed (reasoning included).
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// True when the usage was estimated (stream cut, usage missing), not reported.
    pub estimated: bool,
    /// Stops priced calls for the rest of the spend day, with this reason:
    /// the call used more than its reservation.
    pub stop: Option<String>,
}

/// One row of `steward spend`: a day and model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpendRow {
    /// Spend day.
    pub day: String,
    /// Model.
    pub model: String,
    /// Priced calls.
    pub calls: u64,
    /// Settled cost, micro-dollars.
    pub settled_micros: u64,
    /// Reservations of calls still in flight, micro-dollars.
    pub reserved_micros: u64,
    /// Input tokens settled.
    pub input_tokens: u64,
    /// Output tokens settled.
    pub output_tokens: u64,
}

/// Migration 2: the ledger.
pub(super) const MIGRATION: &str = "CREATE TABLE spend (
        call_id         TEXT PRIMARY KEY NOT NULL,
        day             TEXT NOT NULL,
        provider        TEXT NOT NULL,
        model           TEXT NOT NULL,
        reserved_micros INTEGER NOT NULL,
        settled_micros  INTEGER,
        input_tokens    INTEGER,
        output_tokens   INTEGER,
        cached_tokens   INTEGER,
        estimated       INTEGER NOT NULL DEFAULT 0,
        created_ms      INTEGER NOT NULL,
        settled_ms      INTEGER
    ) STRICT;
    CREATE INDEX spend_day ON spend (day);";

/// Migration 3: the per-day running total, backfilled from the ledger.
pub(super) const DAY_TOTALS_MIGRATION: &str = "CREATE TABLE spend_days (
        day              TEXT PRIMARY KEY NOT NULL,
        committed_micros INTEGER NOT NULL
    ) STRICT;
    INSERT INTO spend_days (day, committed_micros)
        SELECT day, SUM(COALESCE(settled_micros, reserved_micros)) FROM spend GROUP BY day;
    CREATE TRIGGER spend_days_on_insert AFTER INSERT ON spend BEGIN
        INSERT OR IGNORE INTO spend_days (day, committed_micros) VALUES (NEW.day, 0);
        UPDATE spend_days SET committed_micros = committed_micros + COALESCE(NEW.settled_micros, NEW.reserved_micros)
            WHERE day = NEW.day;
    END;
    CREATE TRIGGER spend_days_on_update AFTER UPDATE OF day, reserved_micros, settled_micros ON spend BEGIN
        UPDATE spend_days SET committed_micros = committed_micros - COALESCE(OLD.settled_micros, OLD.reserved_micros)
            WHERE day = OLD.day;
        INSERT OR IGNORE INTO spend_days (day, committed_micros) VALUES (NEW.day, 0);
        UPDATE spend_days SET committed_micros = committed_micros + COALESCE(NEW.settled_micros, NEW.reserved_micros)
            WHERE day = NEW.day;
    END;
    CREATE TRIGGER spend_days_on_delete AFTER DELETE ON spend BEGIN
        UPDATE spend_days SET committed_micros = committed_micros - COALESCE(OLD.settled_micros, OLD.reserved_micros)
            WHERE day = OLD.day;
    END;";

fn micros_i64(micros: u64) -> i64 {
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// A settled cost as stored: saturated at [`MAX_STORED_MICROS`].
fn stored_micros(micros: u64) -> i64 {
    micros_i64(micros.min(MAX_STORED_MICROS))
}

/// A token count as stored: saturated at [`MAX_STORED_TOKENS`].
fn stored_tokens(tokens: u64) -> i64 {
    micros_i64(tokens.min(MAX_STORED_TOKENS))
}

/// The stop in force on `day`, if any.
pub(super) async fn stop_on(db: &impl Db, day: &str) -> Result<Option<SpendStop>, StoreError> {
    let stored = super::queries::kv_get(db, STOP_KEY).await?;
    Ok(stored.and_then(|text| serde_json::from_str::<SpendStop>(&text).ok()).filter(|stop| stop.day == day))
}

/// Records the day's stop, unless one is already in force that day (the
/// first cause stays on record).
async fn write_stop(db: &impl Db, call_id: &str, reason: &str, now_ms: i64) -> Result<(), StoreError> {
    let day = db
        .first("reading a call's spend day", "SELECT day FROM spend WHERE call_id = ?1", &args![call_id], |row| {
            row.text(0)
        })
        .await?
        .flatten();
    let Some(day) = day else { return Ok(()) };
    if stop_on(db, &day).await?.is_some() {
        return Ok(());
    }
    let stop = SpendStop { day, reason: reason.to_owned(), call_id: call_id.to_owned(), at_ms: now_ms };
    let text =
        serde_json::to_string(&stop).map_err(|e| StoreError::Unavailable(format!("encoding a spend stop: {e}")))?;
    db.execute(
        "recording the day's spend stop",
        "INSERT INTO kv (key, value, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
        &args![STOP_KEY, &text, now_ms],
    )
    .await
    .map(|_| ())
}

/// The day's committed spend: settled costs plus open reservations.
pub(super) async fn day_total(db: &impl Db, day: &str) -> Result<u64, StoreError> {
    let total = db
        .first(
            "summing the day's spend",
            "SELECT committed_micros FROM spend_days WHERE day = ?1",
            &args![day],
            |row| row.int_not_null(0),
        )
        .await?;
    Ok(total.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Records a reservation for an admitted call.
pub(super) async fn reserve(db: &impl Db, call_id: &str, hold: &SpendHold, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "reserving spend",
        "INSERT INTO spend (call_id, day, provider, model, reserved_micros, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &args![call_id, &hold.day, &hold.provider, &hold.model, micros_i64(hold.reserve_micros), now_ms],
    )
    .await
    .map(|_| ())
}

/// Settles a reservation at the real cost (saturated, see the module docs),
/// copies it onto the journal row, and records the day's stop the
/// settlement carries. When the settlement itself cannot be stored, the
/// reservation is billed and the day stopped instead, so the journal row is
/// never lost with it and the cap stays closed. (On a database where a
/// failed statement aborts the transaction, the settlement runs under a
/// savepoint, so the fallback can still be written.)
pub(super) async fn settle(db: &impl Db, call_id: &str, s: &SpendSettlement, now_ms: i64) -> Result<(), StoreError> {
    let guarded = db.aborts_on_error();
    if guarded {
        db.execute("opening the settlement's savepoint", "SAVEPOINT settle", &[]).await?;
    }
    let settled = settle_exactly(db, call_id, s, now_ms).await;
    if guarded {
        let end = if settled.is_ok() { "RELEASE settle" } else { "ROLLBACK TO settle" };
        db.execute("closing the settlement's savepoint", end, &[]).await?;
    }
    if let Err(err) = settled {
        tracing::error!(error = %err, call_id, "cannot store a call's settlement; billing its reservation");
        db.execute(
            "settling spend at its reservation",
            "UPDATE spend SET settled_micros = reserved_micros, estimated = 1, settled_ms = ?2 WHERE call_id = ?1",
            &args![call_id, now_ms],
        )
        .await?;
        let reason = format!(
            "the settlement of call {call_id} could not be stored ({err}); it was billed at its reservation, \
             and LLM calls are stopped for the day"
        );
        return write_stop(db, call_id, &reason, now_ms).await;
    }
    match &s.stop {
        Some(reason) => write_stop(db, call_id, reason, now_ms).await,
        None => Ok(()),
    }
}

async fn settle_exactly(db: &impl Db, call_id: &str, s: &SpendSettlement, now_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "settling spend",
        "UPDATE spend SET settled_micros = ?2, input_tokens = ?3, output_tokens = ?4, cached_tokens = ?5,
                estimated = ?6, settled_ms = ?7
         WHERE call_id = ?1",
        &args![
            call_id,
            stored_micros(s.micros),
            stored_tokens(s.input_tokens),
            stored_tokens(s.output_tokens),
            stored_tokens(s.cached_tokens),
            s.estimated,
            now_ms
        ],
    )
    .await?;
    let usd = s.micros.min(MAX_STORED_MICROS) as f64 / 1_000_000.0;
    db.execute("recording a call's cost", "UPDATE calls SET cost_usd = ?2 WHERE id = ?1", &args![call_id, usd])
        .await
        .map(|_| ())
}

/// Settles the open reservation of `call_id`, if it has one, at no cost:
/// the call never left steward.
pub(super) async fn release(db: &impl Db, call_id: &str, now_ms: i64) -> Result<(), StoreError> {
    let released = db
        .execute(
            "releasing a reservation",
            "UPDATE spend SET settled_micros = 0, estimated = 0, settled_ms = ?2
             WHERE call_id = ?1 AND settled_micros IS NULL",
            &args![call_id, now_ms],
        )
        .await?;
    if released > 0 {
        db.execute("recording a call's cost", "UPDATE calls SET cost_usd = 0 WHERE id = ?1", &args![call_id]).await?;
    }
    Ok(())
}

/// At daemon start: reservations of calls that never completed are settled at
/// their worst case (fail closed: the upstream may have billed them in full).
pub(super) async fn settle_open_at_reserved(
    db: &impl Db,
    now_ms: i64,
    instance: Option<&str>,
) -> Result<(), StoreError> {
    db.execute(
        "settling interrupted reservations",
        "UPDATE spend SET settled_micros = reserved_micros, estimated = 1, settled_ms = ?1
         WHERE settled_micros IS NULL
           AND (CAST(?2 AS TEXT) IS NULL
                OR call_id IN (SELECT id FROM calls WHERE instance = ?2 AND finished_ms IS NULL))",
        &args![now_ms, instance],
    )
    .await
    .map(|_| ())
}

/// Deletes up to `max_rows` settled records of days before `before_day`
/// (oldest day first, ties by call id), then the running totals of days
/// left without records. The delete trigger keeps each day's total equal
/// to its remaining records until then.
pub(super) async fn prune(db: &impl Db, before_day: &str, max_rows: u64) -> Result<u64, StoreError> {
    let deleted = db
        .execute(
            "pruning the spend ledger",
            "DELETE FROM spend WHERE call_id IN (
                 SELECT call_id FROM spend WHERE day < ?1 AND settled_micros IS NOT NULL
                 ORDER BY day, call_id LIMIT ?2)",
            &args![before_day, i64::try_from(max_rows).unwrap_or(i64::MAX)],
        )
        .await?;
    db.execute(
        "pruning the spend day totals",
        "DELETE FROM spend_days WHERE day < ?1 AND NOT EXISTS (SELECT 1 FROM spend WHERE spend.day = spend_days.day)",
        &args![before_day],
    )
    .await?;
    Ok(deleted)
}

/// Per day and model, for days in `[from_day, to_day]` (inclusive, `YYYY-MM-DD`).
pub(super) async fn by_day(db: &impl Db, from_day: &str, to_day: &str) -> Result<Vec<SpendRow>, StoreError> {
    db.rows(
        "reading spend",
        "SELECT day, model, COUNT(*),
                CAST(COALESCE(SUM(settled_micros), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN settled_micros IS NULL THEN reserved_micros ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT)
         FROM spend WHERE day >= ?1 AND day <= ?2
         GROUP BY day, model ORDER BY day DESC, model",
        &args![from_day, to_day],
        |row| {
            let n = |i: usize| row.int_not_null(i).map(|v| u64::try_from(v).unwrap_or(0));
            Ok(SpendRow {
                day: row.text_not_null(0)?,
                model: row.text_not_null(1)?,
                calls: n(2)?,
                settled_micros: n(3)?,
                reserved_micros: n(4)?,
                input_tokens: n(5)?,
                output_tokens: n(6)?,
            })
        },
    )
    .await
}
