//! Doctor: Backups. Daily, to another device or remote, recent, and
//! restore-tested, read from the config and the outcomes the backup
//! subsystem records in the store (`backup::health`).

use std::os::unix::fs::MetadataExt;

use super::{CheckResult, Context};
use crate::backup::{MAX_BACKUP_AGE_MS, MAX_RESTORE_TEST_AGE_MS};
use crate::config::BackupDestination;

const SECTION: &str = "Backups";

fn hours(ms: i64) -> String {
    format!("{:.1} h", ms as f64 / 3_600_000.0)
}

/// The Backups section.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let mut out = Vec::new();
    if ctx.config.store.fleet.is_some() {
        // steward's archive cannot hold a shared database consistently.
        out.push(CheckResult::warn(
            SECTION,
            "the fleet's database is backed up",
            "the store is the fleet's PostgreSQL database ([store] url): steward's backups keep the config and \
             agent state, not the database",
            "back the database up with pg_dump (daily, to another host) or continuous archiving for point-in-time \
             recovery, and test a restore; see docs/fleet.md",
        ));
    }
    let Some(backup) = &ctx.config.backup else {
        out.extend(super::not_configured::backups(ctx));
        return out;
    };
    // A five-field cron whose day fields are all `*` runs at least daily.
    let fields: Vec<&str> = backup.schedule.split_whitespace().collect();
    let daily = fields.len() == 5 && fields[2..].iter().all(|f| *f == "*");
    out.push(if daily {
        CheckResult::pass(SECTION, "config and state are backed up daily", format!("schedule \"{}\"", backup.schedule))
    } else {
        CheckResult::warn(
            SECTION,
            "config and state are backed up daily",
            format!("schedule \"{}\" is not daily", backup.schedule),
            "set [backup] schedule to a daily cron, e.g. \"0 3 * * *\"",
        )
    });
    out.push(match &backup.destination {
        BackupDestination::S3(s3) => CheckResult::pass(
            SECTION,
            "backups go to another device or remote",
            format!("S3-compatible bucket {}", s3.bucket),
        ),
        BackupDestination::Local(path) => {
            let device = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| m.dev());
            let same = device(path).zip(device(&ctx.config.state.dir)).map(|(a, b)| a == b);
            match same {
                Some(false) => CheckResult::pass(
                    SECTION,
                    "backups go to another device or remote",
                    format!("{} is on another device than the state dir", path.display()),
                ),
                Some(true) => CheckResult::warn(
                    SECTION,
                    "backups go to another device or remote",
                    format!("{} is on the same device as the state dir: a failed disk loses both", path.display()),
                    "point [backup] destination at another disk or at S3-compatible storage",
                ),
                None => CheckResult::warn(
                    SECTION,
                    "backups go to another device or remote",
                    format!("cannot tell the device of {}", path.display()),
                    "create the destination directory, then run `steward backup now`",
                ),
            }
        }
    });
    let now_ms = crate::clock::unix_ms(ctx.now);
    match &ctx.backup_health {
        None => {
            out.push(CheckResult::warn(
                SECTION,
                "the last backup is recent",
                "no backup outcome recorded (store not readable yet)",
                "run `steward backup now`",
            ));
            out.push(CheckResult::warn(
                SECTION,
                "a restore was tested recently",
                "no restore test recorded",
                "run `steward backup verify`",
            ));
        }
        Some(health) => {
            out.push(match health.last_success_ms {
                Some(ms) if !health.overdue && !health.failing => {
                    CheckResult::pass(SECTION, "the last backup is recent", format!("{} ago", hours(now_ms - ms)))
                }
                Some(ms) => CheckResult::fail(
                    SECTION,
                    "the last backup is recent",
                    format!(
                        "last success {} ago{}",
                        hours(now_ms - ms),
                        if health.failing { ", and the latest attempt failed" } else { "" }
                    ),
                    format!("run `steward backup now` and fix what it reports (limit {})", hours(MAX_BACKUP_AGE_MS)),
                ),
                None => CheckResult::fail(
                    SECTION,
                    "the last backup is recent",
                    "no successful backup yet",
                    "run `steward backup now`",
                ),
            });
            out.push(match health.last_restore_test {
                Some((ms, true)) if !health.restore_test_due => CheckResult::pass(
                    SECTION,
                    "a restore was tested recently",
                    format!("passed {} ago", hours(now_ms - ms)),
                ),
                Some((ms, ok)) => CheckResult::fail(
                    SECTION,
                    "a restore was tested recently",
                    format!("last test {} {} ago", if ok { "passed" } else { "FAILED" }, hours(now_ms - ms)),
                    format!(
                        "run `steward backup verify` (the scheduled test must pass within {})",
                        hours(MAX_RESTORE_TEST_AGE_MS)
                    ),
                ),
                None => CheckResult::fail(
                    SECTION,
                    "a restore was tested recently",
                    "no restore test yet",
                    "run `steward backup verify`",
                ),
            });
        }
    }
    out
}
