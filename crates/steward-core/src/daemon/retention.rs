//! Retention, run hourly by the daemon: rotated audit files past `[logging]
//! retention` or the disk budget, journal rows older than [`journal_keep`],
//! and spend records older than `[spend] history_days`. Each prune deletes
//! in small batches, so an admission never waits long behind it, and stops
//! at shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::clock::unix_ms;
use crate::config::Config;
use crate::store::{Store, StoreError};

/// How often retention runs: rotated audit files, old journal rows and old
/// spend records. Hourly keeps the 30-day / total-size promises within an
/// hour without churning the disk.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The retention task, to spawn: every [`RETENTION_EVERY`] until
/// `shutdown`, the audit log's retention (on a blocking thread), then the
/// journal and spend-ledger prunes.
pub(super) fn task(
    config: &Config,
    audit: Arc<AuditLog>,
    store: Store,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let journal_keep = journal_keep(config);
    let spend = config.spend.clone();
    async move {
        let mut every = tokio::time::interval(RETENTION_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            let log = Arc::clone(&audit);
            // `max_total_size` covers the store too; the logs give way.
            let store_bytes = store.wal_stats().total_bytes();
            match tokio::task::spawn_blocking(move || log.run_retention(SystemTime::now(), store_bytes)).await {
                Ok(Ok(report)) => tracing::debug!(?report, "audit retention ran"),
                Ok(Err(err)) => tracing::error!(error = %err, "audit retention failed"),
                Err(err) => tracing::error!(error = %err, "audit retention task failed"),
            }
            prune_journal(&store, journal_keep, &shutdown).await;
            prune_spend(&store, &spend, &shutdown).await;
        }
    }
}

/// Rows deleted per pruning transaction (journal or spend ledger): small
/// enough that an admission queued behind the prune waits a few milliseconds
/// at most.
const PRUNE_BATCH: u64 = 2_000;

/// How long finished journal rows are kept: as long as the audit log keeps
/// its files (`[logging] retention`), and never less than a day or than the
/// longest rate-limit or loop-breaker window, which count those rows.
pub fn journal_keep(config: &Config) -> Duration {
    let longest_window = config
        .tools
        .iter()
        .filter_map(|tool| tool.limit.map(|limit| limit.per))
        .chain(std::iter::once(config.loop_breaker.window))
        .max()
        .unwrap_or_default();
    config.logging.retention.max(longest_window).max(Duration::from_secs(86_400))
}

/// Deletes the journal rows older than `keep`.
async fn prune_journal(store: &Store, keep: Duration, shutdown: &CancellationToken) {
    let before = unix_ms(SystemTime::now().checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH));
    let pruned = prune_in_batches("journal", shutdown, || store.prune_journal(before, PRUNE_BATCH)).await;
    if pruned > 0 {
        tracing::info!(rows = pruned, keep_days = keep.as_secs() / 86_400, "pruned old journal rows");
    }
}

/// Deletes the settled spend records of days more than `[spend]
/// history_days` before today (in the spend time zone).
async fn prune_spend(store: &Store, spend: &crate::config::SpendConfig, shutdown: &CancellationToken) {
    let before_day = spend.day_of(SystemTime::now(), spend.history_days);
    let pruned = prune_in_batches("spend ledger", shutdown, || store.prune_spend(&before_day, PRUNE_BATCH)).await;
    if pruned > 0 {
        tracing::info!(rows = pruned, history_days = spend.history_days, "pruned old spend records");
    }
}

/// Runs `batch` (one transaction deleting at most [`PRUNE_BATCH`] rows) until
/// it deletes fewer, fails, or `shutdown`; returns the rows deleted.
async fn prune_in_batches<F, Fut>(what: &str, shutdown: &CancellationToken, mut batch: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let mut pruned = 0_u64;
    while !shutdown.is_cancelled() {
        match batch().await {
            Ok(n) => {
                pruned += n;
                if n < PRUNE_BATCH {
                    break;
                }
                // A pause between batches: a large backlog (the first run
                // after an upgrade) never holds the writer for long at a time.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "{what} pruning failed");
                break;
            }
        }
    }
    pruned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("[agent]\nname = \"t\"\n{extra}");
        crate::config::parse(&text, std::path::Path::new("/srv/t/steward.toml")).unwrap()
    }

    #[test]
    fn the_journal_is_kept_as_long_as_the_logs_and_any_window_that_counts_it() {
        let day = Duration::from_secs(86_400);
        assert_eq!(journal_keep(&config("")), 30 * day, "[logging] retention by default");
        let long_window = config("[logging]\nretention_days = 1\n[loop_breaker]\nwindow = \"3d\"\n");
        assert_eq!(journal_keep(&long_window), 3 * day, "the loop breaker counts rows that old");
    }

    /// One LLM call of `days_back` days ago (in the spend time zone),
    /// reserved at 100 and settled at 40 micro-dollars.
    async fn spent(store: &Store, spend: &crate::config::SpendConfig, id: &str, days_back: u32) {
        use crate::store::tests::spend::{hold, priced, settled};
        let day = spend.day_of(SystemTime::now(), days_back);
        store.admit(priced(id, crate::store::tests::T0, hold(&day, 100, None))).await.unwrap();
        store.complete(settled(id, 40)).await.unwrap();
    }

    #[tokio::test]
    async fn spend_records_older_than_history_days_are_pruned_and_recent_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
        let spend = config("[spend]\nhistory_days = 2\n").spend;
        for (id, days_back) in [("today", 0), ("edge", 2), ("old", 3), ("older", 40)] {
            spent(&store, &spend, id, days_back).await;
        }
        prune_spend(&store, &spend, &CancellationToken::new()).await;
        let (today, edge, old) = (
            spend.day_of(SystemTime::now(), 0),
            spend.day_of(SystemTime::now(), 2),
            spend.day_of(SystemTime::now(), 3),
        );
        assert_eq!(store.spend_total(&today).await.unwrap(), 40);
        assert_eq!(store.spend_total(&edge).await.unwrap(), 40, "history_days = 2 keeps the day two days back");
        assert_eq!(store.spend_total(&old).await.unwrap(), 0);
        let oldest = spend.day_of(SystemTime::now(), 40);
        let rows = store.spend_by_day(&oldest, &today).await.unwrap();
        let days: Vec<_> = rows.iter().map(|r| r.day.as_str()).collect();
        assert_eq!(days, [today.as_str(), edge.as_str()]);
    }
}
