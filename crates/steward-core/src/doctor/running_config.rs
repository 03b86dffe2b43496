//! Doctor: Config. The running daemon runs the file on disk: its SHA-256,
//! recorded in the store at start and at each reload (see
//! `daemon::reload`), equals the file's, and no changed key waits for a
//! restart.

use super::{CheckResult, Context};

const SECTION: &str = "Config";
const ITEM: &str = "the daemon runs the config on disk";

/// The first 12 hex digits: enough to tell two files apart on screen.
fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// The Config section.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let file = ctx.config.source.sha256();
    // Without a daemon the detail names no hash: doctor's output on one
    // setup stays the same from run to run, whatever the file holds.
    let result = match &ctx.running_config {
        None => CheckResult::pass(SECTION, ITEM, "no daemon is running; `steward run` reads the file as it is"),
        Some(drift) => match &drift.running_sha256 {
            None => CheckResult::warn(
                SECTION,
                ITEM,
                "the running daemon recorded no config hash (started by an older steward)",
                "restart steward once (`systemctl restart steward`); later edits apply with `steward reload`",
            ),
            Some(running) if drift.differs => CheckResult::warn(
                SECTION,
                ITEM,
                format!(
                    "the file on disk (sha256 {}) differs from the running config (sha256 {}): edited, not reloaded",
                    short(file),
                    short(running)
                ),
                "run `steward config check`, then `steward reload` to apply it (or undo the edit)",
            ),
            Some(running) if !drift.restart_needed.is_empty() => CheckResult::warn(
                SECTION,
                ITEM,
                format!(
                    "running sha256 {}, but {} wait(s) for a restart: {}",
                    short(running),
                    drift.restart_needed.len(),
                    drift.restart_needed.join(", ")
                ),
                "restart steward (`systemctl restart steward`) to apply them",
            ),
            Some(running) => CheckResult::pass(
                SECTION,
                ITEM,
                format!("running sha256 {}, the same as the file on disk", short(running)),
            ),
        },
    };
    vec![result]
}
