//! Doctor, section Logging: every route audited, rotation at most 100 MB,
//! redaction on, retention set, the log directory private and writable,
//! then the disk items (`disk.rs`): the store and logs within
//! `max_total_size` and the free space.

use std::os::unix::fs::PermissionsExt;

use super::{CheckResult, Context};
use crate::config::{AfterRetention, DEFAULT_MAX_FILE_SIZE};

/// The section name.
const SECTION: &str = "Logging";

/// Every item of the section, in order.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let mut items = vec![every_route_audited(), rotation(ctx), redaction(ctx), retention(ctx), log_dir(ctx)];
    items.extend(super::disk::check(ctx));
    items
}

fn every_route_audited() -> CheckResult {
    CheckResult::pass(
        SECTION,
        "every route is audited",
        "by construction: /api and /llm calls and MCP tools/call, refused ones included, go through the one \
         pipeline, which writes one audit record per call",
    )
}

fn rotation(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "audit log rotates at 100 MB or less";
    let size = ctx.config.logging.max_file_size;
    let shown = format!("{} MB", size as f64 / 1_000_000.0);
    if size > DEFAULT_MAX_FILE_SIZE {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!("rotates at {shown}"),
            "set [logging] max_file_size = \"100MB\" or less, so one file stays small enough to open",
        );
    }
    CheckResult::pass(SECTION, ITEM, format!("rotates at {shown}"))
}

fn redaction(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "redaction is on";
    let pii = &ctx.config.redaction;
    // The secret rules and the configured PII detectors, as every redactor
    // steward builds has them; credential values are not needed to check them.
    let redactor = crate::secrets::offline_redactor(None, pii);
    if redactor.is_failed() {
        return CheckResult::fail(
            SECTION,
            ITEM,
            "the redactor could not be built, so every audit text is withheld",
            "report this as a steward bug; audit records stay safe but empty until fixed",
        );
    }
    let broken = redactor.self_check();
    if !broken.is_empty() {
        return CheckResult::fail(
            SECTION,
            ITEM,
            format!("secret rules fail their self-check: {}", broken.join(", ")),
            "report this as a steward bug; these token kinds may reach the audit log",
        );
    }
    let off: Vec<&str> = [
        ("email", pii.email),
        ("phone", pii.phone),
        ("credit_card", pii.credit_card),
        ("iban", pii.iban),
        ("ip", pii.ip),
        ("ssn", pii.ssn),
    ]
    .into_iter()
    .filter_map(|(name, on)| (!on).then_some(name))
    .collect();
    if !off.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!("credentials and secret rules on; PII detectors off: {}", off.join(", ")),
            "turn them back on in [redaction] unless the audit log may hold that personal data",
        );
    }
    CheckResult::pass(SECTION, ITEM, "credential values, secret rules and every PII detector, before any write")
}

fn retention(ctx: &Context<'_>) -> CheckResult {
    let logging = &ctx.config.logging;
    let days = logging.retention.as_secs() / 86_400;
    let then = match logging.after_retention {
        AfterRetention::Archive => "archived (zstd)",
        AfterRetention::Delete => "deleted",
    };
    CheckResult::pass(
        SECTION,
        "retention is set",
        format!(
            "rotated files are {then} after {days} days; the directory is capped at {} GB",
            logging.max_total_size as f64 / 1_000_000_000.0
        ),
    )
}

fn log_dir(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "log directory is writable and 0700";
    let dir = &ctx.config.logging.dir;
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return CheckResult::warn(
                SECTION,
                ITEM,
                "the log directory does not exist yet",
                "start `steward run` once: it creates the directory with mode 0700",
            );
        }
        Err(err) => {
            return CheckResult::fail(
                SECTION,
                ITEM,
                format!("cannot inspect the log directory: {err}"),
                "run steward as the user that owns the directory",
            );
        }
    };
    if !meta.is_dir() {
        return CheckResult::fail(
            SECTION,
            ITEM,
            "the log path is not a directory",
            "point [logging] dir at a directory, or remove what is there",
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return CheckResult::fail(
            SECTION,
            ITEM,
            format!("mode {mode:o}: other users can read the audit log"),
            format!("run `chmod 700 {}`", dir.display()),
        );
    }
    // A probe file proves writability better than mode bits (read-only
    // mounts, full disks, ACLs).
    let probe = dir.join(format!(".doctor-probe-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            CheckResult::pass(SECTION, ITEM, format!("mode {mode:o}, writable"))
        }
        Err(err) => CheckResult::fail(
            SECTION,
            ITEM,
            format!("not writable: {err}"),
            "make it writable by the user running steward (and check the disk is not full or read-only)",
        ),
    }
}
