//! The daemon's part in a fleet (`[store] url`, `docs/fleet.md`): its
//! lease, renewed every second, and the reaper, which every few seconds
//! settles the calls of instances whose lease lapsed (a crash, `kill -9`,
//! a host gone). Every live instance runs both; two reapers never settle
//! one instance twice (`store/pg/lease.rs`).
//!
//! A lease that cannot be renewed (the database is unreachable) is logged
//! and retried: calls are refused meanwhile by the kill switch watch,
//! which turns unknown (fail closed). A renewal refused because another
//! live process holds the name stops this daemon: two processes of one
//! name would settle each other's calls.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::clock::unix_ms;
use crate::store::Store;

/// How often the lease is renewed.
const BEAT: Duration = Duration::from_secs(1);
/// How often this instance looks for lapsed ones.
const REAP: Duration = Duration::from_secs(5);

/// Runs until `shutdown`; on the way out, marks the instance stopped (a
/// clean exit leaves nothing to reap). `lease` is `[store] lease`.
pub(super) async fn task(store: Store, lease: Duration, shutdown: CancellationToken) {
    let Some(fleet) = store.fleet() else { return };
    let mut beat = tokio::time::interval(BEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reap = tokio::time::interval(REAP);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = beat.tick() => {
                if let Err(err) = fleet.beat(lease, unix_ms(SystemTime::now())).await {
                    let taken = err.to_string().contains(crate::store::pg::lease::NAME_TAKEN);
                    tracing::error!(error = %err, "cannot renew this instance's lease in the fleet's database");
                    if taken {
                        shutdown.cancel();
                        break;
                    }
                }
            }
            _ = reap.tick() => match fleet.reap(lease, unix_ms(SystemTime::now())).await {
                Ok(settled) => {
                    for (instance, calls) in settled {
                        tracing::warn!(
                            %instance, calls,
                            "an instance of the fleet stopped renewing its lease: its calls in flight were settled \
                             as interrupted, their reservations billed in full; check that host (`steward status --fleet`)"
                        );
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot look for lapsed instances in the fleet's database"),
            },
        }
    }
    if let Err(err) = fleet.leave().await {
        tracing::warn!(error = %err, "cannot mark this instance stopped in the fleet's database; its lease will lapse");
    }
}
