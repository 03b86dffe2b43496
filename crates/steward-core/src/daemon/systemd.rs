//! systemd integration for `steward run` under `Type=notify`
//! (`packaging/steward.service`): `READY=1` once the gateway listens and the
//! supervisor runs, `WATCHDOG=1` at half the unit's `WatchdogSec` while the
//! supervisor's loop is alive, `STOPPING=1` when the drain begins.
//!
//! Without `NOTIFY_SOCKET` in the environment (not under systemd) every
//! notification is a no-op. The agent never sees these variables: its
//! environment is built from scratch (see `supervisor`).

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::supervisor::SupervisorStats;

/// Tells systemd startup is complete and, when the unit has a watchdog,
/// starts the tracked task that keeps it fed.
pub(super) fn ready(tracker: &TaskTracker, shutdown: CancellationToken, stats: Arc<SupervisorStats>) {
    notify(&[NotifyState::Ready, NotifyState::Status("steward is running")]);
    let Some(timeout) = sd_notify::watchdog_enabled() else { return };
    let every = (timeout / 2).max(Duration::from_millis(100));
    tracing::info!(timeout_ms = timeout.as_millis(), "systemd watchdog enabled");
    tracker.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        let mut last_seen = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            // Only a supervisor loop that moved since the last ping proves the
            // daemon is alive; a wedged one lets the watchdog restart steward.
            let seen = stats.loop_ticks();
            if last_seen != Some(seen) {
                notify(&[NotifyState::Watchdog]);
                last_seen = Some(seen);
            } else {
                tracing::error!("the supervisor loop has not moved since the last watchdog ping; not pinging");
            }
        }
    });
}

/// Tells systemd the daemon is draining.
pub(super) fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(state: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(state) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
}
