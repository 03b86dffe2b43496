//! Doctor sections whose subsystems have not landed in this build:
//! Monitoring, Backups, Runbook and First deployment. Each checklist item is
//! listed (so scripts see the whole checklist) as WARN "not configured" with
//! the fix. When a subsystem lands, its section function here is replaced
//! by a real check in its own file.

use super::{CheckResult, Context};

/// One WARN "not configured" item.
fn missing(section: &'static str, item: &'static str, fix: &str) -> CheckResult {
    CheckResult::warn(section, item, "not configured", fix)
}

/// Monitoring: alerts with a sink, the last alert test, the dead-man heartbeat.
pub(super) fn monitoring(_ctx: &Context<'_>) -> Vec<CheckResult> {
    const SECTION: &str = "Monitoring";
    vec![
        missing(
            SECTION,
            "agent-down, error-rate and spend alerts have a sink",
            "add an [alerts] section with the three default alerts and at least one sink (webhook, ntfy, email or command)",
        ),
        missing(SECTION, "the last alert test succeeded", "run `steward alerts test` once [alerts] is configured"),
        missing(
            SECTION,
            "dead-man heartbeat is configured",
            "add a [heartbeat] section pinging an external dead-man service, so a dead host is noticed too",
        ),
    ]
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

/// Runbook: contacts and the rendered runbook.
pub(super) fn runbook(_ctx: &Context<'_>) -> Vec<CheckResult> {
    const SECTION: &str = "Runbook";
    vec![
        missing(SECTION, "contacts are listed", "add [runbook] contacts = [\"name <email or phone>\"]"),
        missing(SECTION, "the runbook is rendered", "run `steward runbook` and keep the page where on-call finds it"),
    ]
}

/// First deployment: the mode, and the days left in supervised mode.
pub(super) fn first_deployment(_ctx: &Context<'_>) -> Vec<CheckResult> {
    vec![missing(
        "First deployment",
        "supervised mode for the first week",
        "set [agent] mode = \"supervised\" for the first week, so a human approves every side-effecting call",
    )]
}
