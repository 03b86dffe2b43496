//! Doctor sections whose subsystems have not landed in this build:
//! First deployment (and Backups when `[backup]` is absent). Each checklist item is
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

/// First deployment: the mode, and the days left in supervised mode.
/// Supervised (human-approval) mode is not built yet, so the only mode is
/// autonomous: said as it is, with what a user can do meanwhile, rather
/// than a fix naming a setting this build would refuse.
pub(super) fn first_deployment(_ctx: &Context<'_>) -> Vec<CheckResult> {
    vec![CheckResult::warn(
        "First deployment",
        "supervised mode for the first week",
        "autonomous: calls are forwarded without a human's approval (supervised mode is not in this build)",
        "for the first week, keep tight [[tools]] limits on side effects, watch `steward last` and \
         `steward logs agent -f`, and keep `steward stop` at hand",
    )]
}
