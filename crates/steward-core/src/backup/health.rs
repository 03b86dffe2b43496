//! What the alert engine and `steward doctor` read about backups: the last
//! success, the last failure, the last restore test, persisted in the
//! store's kv table by whoever ran them (the daemon's scheduler or the CLI).

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// No successful backup for longer than this (26 h: a daily schedule plus
/// two hours of slack) is an alert.
pub const MAX_BACKUP_AGE_MS: i64 = 26 * 3_600_000;

/// A restore test older than this (8 days: weekly plus a day) is an alert.
pub const MAX_RESTORE_TEST_AGE_MS: i64 = 8 * 86_400_000;

/// kv key: JSON [`Outcome`] of the last successful backup.
pub const KV_LAST_SUCCESS: &str = "backup.last_success";
/// kv key: JSON [`Outcome`] of the last failed backup.
pub const KV_LAST_FAILURE: &str = "backup.last_failure";
/// kv key: JSON [`Outcome`] of the last restore test (scheduled or `backup verify`).
pub const KV_LAST_RESTORE_TEST: &str = "backup.last_restore_test";
/// kv key prefix: `backup.verified.<id>` = epoch ms of the verify that passed.
pub const KV_VERIFIED_PREFIX: &str = "backup.verified.";
/// kv key: epoch ms of the last scheduled backup run (catch-up at start).
pub const KV_SCHEDULE_LAST_RUN: &str = "backup.schedule.last_run";
/// kv key: epoch ms since when the alert engine watches backups (set on its
/// first evaluation with `[backup]` configured): "no backup for 26 h" counts
/// from here until the first success.
pub const KV_WATCHED_SINCE: &str = "backup.watched_since";
/// kv key: epoch ms of the last scheduled restore test run.
pub const KV_RESTORE_TEST_LAST_RUN: &str = "backup.restore_test.last_run";

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// When it finished, epoch ms.
    pub ms: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The backup concerned, when known.
    pub id: Option<String>,
    /// Why it failed (already free of credentials), or a short summary.
    pub detail: String,
}

/// The backup state at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupHealth {
    /// Last successful backup, epoch ms.
    pub last_success_ms: Option<i64>,
    /// Id of that backup.
    pub last_success_id: Option<String>,
    /// Last failed backup: when, and why.
    pub last_failure: Option<(i64, String)>,
    /// Last restore test: when, and whether it passed.
    pub last_restore_test: Option<(i64, bool)>,
    /// Why the last restore test failed.
    pub last_restore_test_detail: Option<String>,
    /// The most recent backup attempt failed (a failure newer than the last success).
    pub failing: bool,
    /// No success within [`MAX_BACKUP_AGE_MS`] (or never).
    pub overdue: bool,
    /// The last restore test failed, or none passed within [`MAX_RESTORE_TEST_AGE_MS`].
    pub restore_test_due: bool,
}

/// Reads the recorded outcomes and judges them at `now_ms`.
pub async fn health(store: &Store, now_ms: i64) -> Result<BackupHealth, StoreError> {
    let success = read(store, KV_LAST_SUCCESS).await?;
    let failure = read(store, KV_LAST_FAILURE).await?;
    let test = read(store, KV_LAST_RESTORE_TEST).await?;
    let last_success_ms = success.as_ref().map(|o| o.ms);
    let failing = match (&failure, last_success_ms) {
        (Some(f), Some(s)) => f.ms > s,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let overdue = last_success_ms.is_none_or(|ms| now_ms.saturating_sub(ms) > MAX_BACKUP_AGE_MS);
    let restore_test_due = match &test {
        Some(t) => !t.ok || now_ms.saturating_sub(t.ms) > MAX_RESTORE_TEST_AGE_MS,
        None => true,
    };
    Ok(BackupHealth {
        last_success_ms,
        last_success_id: success.and_then(|o| o.id),
        last_failure: failure.map(|o| (o.ms, o.detail)),
        last_restore_test: test.as_ref().map(|o| (o.ms, o.ok)),
        last_restore_test_detail: test.filter(|o| !o.ok).map(|o| o.detail),
        failing,
        overdue,
        restore_test_due,
    })
}

/// Records `outcome` under `key`.
pub async fn record(store: &Store, key: &str, outcome: &Outcome) -> Result<(), StoreError> {
    let text = serde_json::to_string(outcome).unwrap_or_default();
    store.kv_set(key, &text, outcome.ms).await
}

async fn read(store: &Store, key: &str) -> Result<Option<Outcome>, StoreError> {
    Ok(store.kv_get(key).await?.and_then(|text| serde_json::from_str(&text).ok()))
}
