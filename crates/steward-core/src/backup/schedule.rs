//! The backup and restore-test schedules inside `steward run`.
//!
//! Each schedule is a cron expression in the configured time zone. The time
//! of the last run is persisted in the store (kv), so a run missed while
//! steward was stopped (the 03:00 backup of a machine that was off) happens
//! at the next start: a run is due as soon as the first cron time after the
//! last run has passed, or when there never was a run. A failed run is
//! retried after [`RETRY_AFTER_MS`] rather than at the next slot, and the
//! failure is recorded for the alert engine either way.
//!
//! The loop sleeps at most [`MAX_SLEEP`] at a time and re-reads the wall
//! clock, so a suspended machine or a clock change does not delay a run by
//! more than that. It is one task on the daemon's tracker and stops on the
//! shutdown token; a running upload is aborted (nothing partial is visible).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use jiff::tz::TimeZone;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::health::{
    self, KV_LAST_FAILURE, KV_LAST_RESTORE_TEST, KV_RESTORE_TEST_LAST_RUN, KV_SCHEDULE_LAST_RUN, Outcome,
};
use super::{BackupError, Backups, NoProgress};
use crate::clock::unix_ms;
use crate::config::{Config, parse_cron};
use crate::secrets::Secrets;
use crate::store::Store;

/// A failed scheduled run is tried again after this long (15 minutes): soon
/// enough to ride out a short outage of the destination, rare enough not to
/// hammer it.
pub const RETRY_AFTER_MS: i64 = 15 * 60_000;

/// Longest single sleep of the scheduler before it looks at the clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// When a schedule should run next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Now: a slot passed since the last run, or there never was one.
    Now,
    /// At this epoch ms.
    At(i64),
    /// Never (the expression matches no future time).
    Never,
}

/// When `cron` (in `tz`) is next due, given the last run and the time now.
pub fn next_due(cron: &croner::Cron, tz: &TimeZone, last_run_ms: Option<i64>, now_ms: i64) -> Due {
    let Some(last) = last_run_ms else { return Due::Now };
    let Ok(from) = jiff::Timestamp::from_millisecond(last) else { return Due::Now };
    match cron.find_next_occurrence(&from.to_zoned(tz.clone()), false) {
        Ok(next) => {
            let ms = next.timestamp().as_millisecond();
            if ms <= now_ms { Due::Now } else { Due::At(ms) }
        }
        Err(_) => Due::Never,
    }
}

/// Starts the scheduler on `tracker` when `config` has a `[backup]` section.
pub fn spawn(
    tracker: &TaskTracker,
    config: Arc<Config>,
    store: Store,
    secrets: Arc<ArcSwap<Secrets>>,
    shutdown: CancellationToken,
) {
    if config.backup.is_none() {
        return;
    }
    tracker.spawn(async move {
        if let Err(e) = run(config, store, secrets, shutdown).await {
            tracing::error!(error = %e, "the backup scheduler stopped");
        }
    });
}

/// One schedule: its expression, its kv key, and when a failed run may retry.
struct Slot {
    cron: croner::Cron,
    last_run_key: &'static str,
    retry_at: Option<i64>,
}

impl Slot {
    async fn due(&self, store: &Store, tz: &TimeZone, now_ms: i64) -> Result<Due, BackupError> {
        let last = store.kv_get(self.last_run_key).await?.and_then(|v| v.parse::<i64>().ok());
        let due = next_due(&self.cron, tz, last, now_ms);
        Ok(match (due, self.retry_at) {
            (Due::Now, Some(retry)) if retry > now_ms => Due::At(retry),
            (due, _) => due,
        })
    }
}

async fn run(
    config: Arc<Config>,
    store: Store,
    secrets: Arc<ArcSwap<Secrets>>,
    shutdown: CancellationToken,
) -> Result<(), BackupError> {
    let Some(backup) = &config.backup else { return Ok(()) };
    let tz = TimeZone::get(&backup.timezone).map_err(|e| BackupError::Config(format!("{}: {e}", backup.timezone)))?;
    let parse = |text: &str| parse_cron(text).map_err(|e| BackupError::Config(format!("cron {text:?}: {e}")));
    let mut backup_slot = Slot { cron: parse(&backup.schedule)?, last_run_key: KV_SCHEDULE_LAST_RUN, retry_at: None };
    let mut test_slot = match &backup.restore_test {
        Some(text) => Some(Slot { cron: parse(text)?, last_run_key: KV_RESTORE_TEST_LAST_RUN, retry_at: None }),
        None => None,
    };
    loop {
        let now = unix_ms(SystemTime::now());
        let mut wake = now.saturating_add(i64::try_from(MAX_SLEEP.as_millis()).unwrap_or(60_000));
        match backup_slot.due(&store, &tz, now).await? {
            Due::Now => {
                let ok = scheduled_backup(&config, &store, &secrets, &shutdown, now).await?;
                backup_slot.retry_at = (!ok).then(|| now.saturating_add(RETRY_AFTER_MS));
                continue;
            }
            Due::At(at) => wake = wake.min(at),
            Due::Never => {}
        }
        if let Some(slot) = &mut test_slot {
            match slot.due(&store, &tz, now).await? {
                Due::Now => {
                    // A restore test has no partial state worth keeping: on
                    // shutdown it is dropped (its scratch dir goes with it)
                    // and runs again at the next start.
                    let test = scheduled_restore_test(&config, &store, &secrets, now);
                    let ok = tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        ok = test => ok?,
                    };
                    slot.retry_at = (!ok).then(|| now.saturating_add(RETRY_AFTER_MS));
                    continue;
                }
                Due::At(at) => wake = wake.min(at),
                Due::Never => {}
            }
        }
        let sleep = Duration::from_millis(u64::try_from(wake.saturating_sub(now)).unwrap_or(0).max(1_000));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// One scheduled backup plus retention. `Ok(false)` when it failed (the
/// failure is recorded); `Err` only for the store itself or shutdown.
async fn scheduled_backup(
    config: &Arc<Config>,
    store: &Store,
    secrets: &ArcSwap<Secrets>,
    shutdown: &CancellationToken,
    now: i64,
) -> Result<bool, BackupError> {
    tracing::info!("scheduled backup starting");
    let backups = match Backups::open(Arc::clone(config), &secrets.load()) {
        Ok(backups) => backups,
        Err(e) => {
            tracing::error!(error = %e, "scheduled backup failed");
            let outcome = Outcome { ms: now, ok: false, id: None, detail: e.to_string() };
            health::record(store, KV_LAST_FAILURE, &outcome).await?;
            return Ok(false);
        }
    };
    match backups.backup_now(Some(store), "scheduled", now, Arc::new(NoProgress), shutdown).await {
        Ok(report) => {
            store.kv_set(KV_SCHEDULE_LAST_RUN, &now.to_string(), now).await?;
            for warning in &report.warnings {
                tracing::warn!(backup = %report.record.id, "{warning}");
            }
            tracing::info!(
                backup = %report.record.id,
                files = report.record.files,
                bytes = report.record.archive_bytes,
                ms = report.duration_ms,
                "scheduled backup done"
            );
            let after = unix_ms(SystemTime::now());
            match backups.apply_retention(store, after).await {
                Ok(decision) if !decision.delete.is_empty() => {
                    tracing::info!(deleted = ?decision.delete, "backup retention deleted old backups");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "backup retention failed"),
            }
            Ok(true)
        }
        Err(BackupError::Cancelled) => Ok(false),
        Err(e) => {
            tracing::error!(error = %e, "scheduled backup failed");
            Ok(false)
        }
    }
}

/// One scheduled restore test of the newest backup (result recorded by
/// `verify`). `Ok(false)` when it failed.
async fn scheduled_restore_test(
    config: &Arc<Config>,
    store: &Store,
    secrets: &ArcSwap<Secrets>,
    now: i64,
) -> Result<bool, BackupError> {
    tracing::info!("scheduled restore test starting");
    let result = match Backups::open(Arc::clone(config), &secrets.load()) {
        Ok(backups) => backups.verify(None, Some(store), now, Arc::new(NoProgress)).await,
        Err(e) => {
            let outcome = Outcome { ms: now, ok: false, id: None, detail: e.to_string() };
            health::record(store, KV_LAST_RESTORE_TEST, &outcome).await?;
            Err(e)
        }
    };
    store.kv_set(KV_RESTORE_TEST_LAST_RUN, &now.to_string(), now).await?;
    match result {
        Ok(report) => {
            tracing::info!(backup = %report.id, files = report.files, ms = report.duration_ms, "restore test passed");
            Ok(true)
        }
        Err(e) => {
            tracing::error!(error = %e, "restore test failed");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_missed_run_is_due_at_start() {
        let cron = parse_cron("0 3 * * *").unwrap();
        let tz = TimeZone::UTC;
        assert_eq!(next_due(&cron, &tz, None, at("2026-11-26T10:00:00Z")), Due::Now);
        // Last run yesterday 03:00; now is 10:00 the next day: the 03:00 slot was missed.
        assert_eq!(next_due(&cron, &tz, Some(at("2026-11-25T03:00:00Z")), at("2026-11-26T10:00:00Z")), Due::Now);
        // Last run today 03:00: next is tomorrow 03:00.
        assert_eq!(
            next_due(&cron, &tz, Some(at("2026-11-26T03:00:05Z")), at("2026-11-26T10:00:00Z")),
            Due::At(at("2026-11-27T03:00:00Z"))
        );
    }

    #[test]
    fn schedules_follow_the_time_zone() {
        let cron = parse_cron("0 3 * * *").unwrap();
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // 03:00 in Berlin in winter is 02:00 UTC.
        assert_eq!(
            next_due(&cron, &berlin, Some(at("2026-11-26T05:00:00Z")), at("2026-11-26T06:00:00Z")),
            Due::At(at("2026-11-27T02:00:00Z"))
        );
    }
}
