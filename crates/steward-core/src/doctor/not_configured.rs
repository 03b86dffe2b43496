//! Doctor sections whose subsystems are not configured: Backups when
//! `[backup]` is absent. Each checklist item is
//! listed (so scripts see the whole checklist) as WARN "not configured" with
//! the fix. When a subsystem lands, its section function here is replaced
//! by a real check in its own file.

use super::{CheckResult, Context};

/// One WARN "not configured" item.
fn missing(section: &'static str, item: &'static str, fix: &str) -> CheckResult {
    CheckResult::warn(section, item, "not configured", fix)
}

/// Backups: daily, off-device, recent, restore-tested.
pub(super) fn backups(_ctx: &Context<'_>) -> Vec<CheckResult> {
    const SECTION: &str = "Backups";
    vec![
        missing(SECTION, "config and state are backed up daily", "add a [backup] section with a daily schedule"),
        missing(
            SECTION,
            "backups go to another device or remote",
            "point [backup] at another disk or S3-compatible storage, not the state directory's disk",
        ),
        missing(SECTION, "the last backup is recent", "configure [backup]; doctor then reports the last backup's age"),
        missing(
            SECTION,
            "a restore was tested recently",
            "configure [backup] restore tests; doctor then reports the last one's age",
        ),
    ]
}
