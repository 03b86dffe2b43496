//! Doctor, section Logging, the disk items: how much disk the store and the
//! logs will use over the retention window at the call rate the journal
//! shows, against `[logging] max_total_size` and the free space.
//!
//! # What the budget means
//! `max_total_size` bounds the logs **and** the store together: retention
//! counts the store's files (database, WAL, shared memory) as used and
//! deletes the oldest archives, then the oldest rotated files, until the two
//! fit. The store itself is never trimmed to fit. It holds live state (the
//! rate windows, the loop breaker's memory, calls in flight, the kill
//! switch, the spend ledger), and deleting journal rows for space would
//! reset limits or lose the record `steward last` reads; its rows leave only
//! once `retention_days` (or a longer window that counts them) has passed,
//! and its WAL is held under `store::JOURNAL_SIZE_LIMIT`. So the budget is
//! met by the logs giving way, and these items warn before that costs audit
//! history, or before the disk runs out (a full disk makes steward refuse
//! every call: fail closed, but an outage).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{CheckResult, Context};
use crate::config::Config;
use crate::store::{JOURNAL_SIZE_LIMIT, Store};

/// The section these items belong to.
const SECTION: &str = "Logging";

/// How far back the call rate is observed: a week smooths the daily cycle
/// and a quiet weekend; longer would keep a traffic change invisible.
const OBSERVE: Duration = Duration::from_secs(7 * 86_400);

/// The shortest span a rate is computed over: ten calls in the first
/// minute after a start are not 14,400 calls a day.
const MIN_SPAN: Duration = Duration::from_secs(3_600);

/// Journal rows from which the store's bytes per call are measured on the
/// database itself; fewer rows are dominated by the schema's fixed pages.
const MEASURE_FROM_ROWS: u64 = 1_000;

/// Store bytes per call when the journal is too small to measure: a priced
/// LLM call (journal row, its indexes, a spend ledger row), measured by the
/// sustained-load bench (BENCHMARKS.md, "disk per call").
pub const DEFAULT_STORE_BYTES_PER_CALL: u64 = 900;

/// Audit-log bytes per call when `audit.jsonl` has too few lines to
/// measure: an LLM call's line, measured by the same bench.
pub const DEFAULT_AUDIT_BYTES_PER_CALL: u64 = 650;

/// Lines of `audit.jsonl` from which its bytes per call are measured.
const MEASURE_FROM_LINES: u64 = 100;

/// The tail of `audit.jsonl` read to measure its lines: bounded I/O
/// however large the file.
const AUDIT_SAMPLE: u64 = 256 * 1024;

/// The call rate the journal shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObservedRate {
    /// Calls journaled in the window (refusals included: they cost disk too).
    pub calls: u64,
    /// Days they span (at least [`MIN_SPAN`]).
    pub days: f64,
}

impl ObservedRate {
    /// Calls per day.
    pub fn per_day(&self) -> f64 {
        self.calls as f64 / self.days
    }
}

/// What doctor found on disk, gathered once.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskProbe {
    /// `None` when no call was journaled in the last [`OBSERVE`] (or no store yet).
    pub rate: Option<ObservedRate>,
    /// The store's files now: database, WAL, shared memory.
    pub store_bytes: u64,
    /// Measured on the database, or [`DEFAULT_STORE_BYTES_PER_CALL`].
    pub store_bytes_per_call: u64,
    /// Everything under the log directory now (active, rotated, archives, agent log).
    pub log_bytes: u64,
    /// Measured on `audit.jsonl`, or [`DEFAULT_AUDIT_BYTES_PER_CALL`].
    pub audit_bytes_per_call: u64,
    /// Free bytes (for steward's user) on the state directory's file system.
    pub state_free: Option<u64>,
    /// Free bytes on the log directory's file system.
    pub log_free: Option<u64>,
    /// Both directories are on one file system (the usual layout).
    pub same_filesystem: bool,
}

impl DiskProbe {
    /// Reads the journal (through `store`, when it opened), the files and
    /// the file systems.
    pub async fn gather(config: &Config, store: Option<&Store>, now: SystemTime) -> DiskProbe {
        let now_ms = crate::clock::unix_ms(now);
        let since_ms = now_ms.saturating_sub(i64::try_from(OBSERVE.as_millis()).unwrap_or(i64::MAX));
        let footprint = match store {
            Some(store) => store.journal_footprint(since_ms).await.ok(),
            None => None,
        };
        let rate = footprint.and_then(|f| {
            let first = f.recent_first_ms?;
            let span_ms = now_ms.saturating_sub(first.max(since_ms));
            let span = Duration::from_millis(u64::try_from(span_ms).unwrap_or(0)).max(MIN_SPAN);
            (f.recent_calls > 0).then(|| ObservedRate { calls: f.recent_calls, days: span.as_secs_f64() / 86_400.0 })
        });
        let store_bytes_per_call = footprint
            .filter(|f| f.rows >= MEASURE_FROM_ROWS)
            .map_or(DEFAULT_STORE_BYTES_PER_CALL, |f| f.used_bytes / f.rows);
        let store_bytes = store.map_or(0, |store| store.wal_stats().total_bytes());
        let logs = &config.logging.dir;
        let audit = logs.join(crate::audit::ACTIVE_FILE);
        let (state_fs, log_fs) = (existing_ancestor(&config.state.dir), existing_ancestor(logs));
        let device = |p: &Option<PathBuf>| p.as_ref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.dev());
        DiskProbe {
            rate,
            store_bytes,
            store_bytes_per_call,
            log_bytes: tree_bytes(logs),
            audit_bytes_per_call: line_bytes(&audit).unwrap_or(DEFAULT_AUDIT_BYTES_PER_CALL),
            state_free: state_fs.as_ref().and_then(|p| fs2::available_space(p).ok()),
            log_free: log_fs.as_ref().and_then(|p| fs2::available_space(p).ok()),
            same_filesystem: device(&state_fs).is_some() && device(&state_fs) == device(&log_fs),
        }
    }
}

/// The disk steward will use at the observed rate, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Projection {
    /// The store holding the journal's whole keep window, plus a full WAL.
    store: u64,
    /// `retention_days` of audit lines, uncompressed (before archiving).
    logs: u64,
    /// What retention lets both use: the logs give way beyond
    /// `max_total_size`, the store does not.
    total: u64,
    /// Days of audit files that fit next to the store in the budget.
    logs_days_kept: f64,
}

fn project(config: &Config, probe: &DiskProbe, rate: ObservedRate) -> Projection {
    let days = |d: Duration| d.as_secs_f64() / 86_400.0;
    let per_day = rate.per_day();
    let store = (per_day * days(crate::daemon::journal_keep(config)) * probe.store_bytes_per_call as f64) as u64
        + JOURNAL_SIZE_LIMIT;
    let audit_per_day = per_day * probe.audit_bytes_per_call as f64;
    let logs = (audit_per_day * days(config.logging.retention)) as u64;
    let budget = config.logging.max_total_size;
    let total = store.max(budget.min(store.saturating_add(logs)));
    let logs_days_kept = budget.saturating_sub(store) as f64 / audit_per_day.max(1.0);
    Projection { store, logs, total, logs_days_kept }
}

/// Both disk items, in order.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    vec![budget(ctx), free_space(ctx)]
}

fn budget(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "the store and logs fit in max_total_size";
    let logging = &ctx.config.logging;
    let budget = logging.max_total_size;
    let retention_days = logging.retention.as_secs() / 86_400;
    let Some(rate) = ctx.disk.rate else {
        return CheckResult::pass(
            SECTION,
            ITEM,
            format!(
                "no calls journaled in the last 7 days, nothing to project; max_total_size ({}) covers the logs and \
                 the store together",
                human(budget)
            ),
        );
    };
    let p = project(ctx.config, &ctx.disk, rate);
    let at = format!("at {} calls/day", calls(rate.per_day()));
    if p.store > budget {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!(
                "{at} the store alone will reach ~{} (journal kept {} days), over max_total_size ({}); it is never \
                 trimmed for size (it holds the rate windows, the kill switch and the spend ledger), so the audit \
                 log would keep only its active file",
                human(p.store),
                crate::daemon::journal_keep(ctx.config).as_secs() / 86_400,
                human(budget)
            ),
            format!(
                "raise [logging] max_total_size to at least {}, or lower [logging] retention_days (the journal is \
                 kept as long)",
                human(p.store.saturating_add(p.logs))
            ),
        );
    }
    if p.store.saturating_add(p.logs) > budget {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!(
                "{at} the store (~{}) and {retention_days} days of audit files (~{}) need ~{}, over max_total_size \
                 ({}): audit files older than about {:.0} days will be deleted",
                human(p.store),
                human(p.logs),
                human(p.store.saturating_add(p.logs)),
                human(budget),
                p.logs_days_kept.floor()
            ),
            format!(
                "raise [logging] max_total_size to {}, or lower [logging] retention_days to {:.0}",
                human(p.store.saturating_add(p.logs)),
                p.logs_days_kept.floor().max(1.0)
            ),
        );
    }
    CheckResult::pass(
        SECTION,
        ITEM,
        format!(
            "{at}: store ~{}, {retention_days} days of audit files ~{}, within max_total_size ({})",
            human(p.store),
            human(p.logs),
            human(budget)
        ),
    )
}

fn free_space(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "the disk has room for the retention window";
    let disk = &ctx.disk;
    let budget = ctx.config.logging.max_total_size;
    // Without a rate, the budget is what steward may grow to.
    let (store_total, logs_total, basis) = match disk.rate {
        Some(rate) => {
            let p = project(ctx.config, disk, rate);
            (p.store, p.total.saturating_sub(p.store), format!("at {} calls/day", calls(rate.per_day())))
        }
        None => {
            (disk.store_bytes.max(JOURNAL_SIZE_LIMIT), budget, format!("at most max_total_size ({})", human(budget)))
        }
    };
    let store_more = store_total.saturating_sub(disk.store_bytes);
    let logs_more = logs_total.saturating_sub(disk.log_bytes);
    let mut short = Vec::new();
    let mut unknown = Vec::new();
    let mut need = |what: &str, more: u64, free: Option<u64>| match free {
        Some(free) if more > free => short.push(format!("{what} needs ~{} more, {} free", human(more), human(free))),
        Some(_) => {}
        None => unknown.push(what.to_owned()),
    };
    if disk.same_filesystem {
        need("the state and log directories' disk", store_more.saturating_add(logs_more), disk.state_free);
    } else {
        need("the state directory's disk", store_more, disk.state_free);
        need("the log directory's disk", logs_more, disk.log_free);
    }
    if !short.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!("{basis}, over the retention window: {}", short.join("; ")),
            "free disk space, lower [logging] max_total_size or retention_days, or move [state] dir / [logging] dir \
             to a larger disk; a full disk makes steward refuse every call",
        );
    }
    if !unknown.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!("cannot read the free space of {}", unknown.join(" and ")),
            "run doctor as the user steward runs as, on the host it runs on",
        );
    }
    CheckResult::pass(
        SECTION,
        ITEM,
        format!("{basis}: the store and logs fit in the free space over the retention window"),
    )
}

/// Bytes of the regular files under `dir`, two levels deep (the log
/// directory and its `archive/`); 0 when it does not exist.
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(meta) if meta.is_dir() => std::fs::read_dir(entry.path())
                .map(|inner| {
                    inner.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
                })
                .unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Average bytes per line of the last [`AUDIT_SAMPLE`] bytes of `path`;
/// `None` with fewer than [`MEASURE_FROM_LINES`] whole lines.
fn line_bytes(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(AUDIT_SAMPLE))).ok()?;
    let mut tail = Vec::new();
    file.take(AUDIT_SAMPLE).read_to_end(&mut tail).ok()?;
    // The first line may be cut by the seek: count from the first line break.
    let first = tail.iter().position(|&b| b == b'\n')?;
    let whole = &tail[first + 1..];
    let lines = u64::try_from(whole.iter().filter(|&&b| b == b'\n').count()).ok()?;
    (lines >= MEASURE_FROM_LINES).then(|| u64::try_from(whole.len()).unwrap_or(u64::MAX) / lines)
}

/// `path` or its nearest existing ancestor: where its files would go.
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|p| p.exists()).map(Path::to_path_buf)
}

/// `950 KB`, `1.2 GB` (decimal units, as the config writes sizes).
fn human(bytes: u64) -> String {
    let mut value = bytes as f64;
    for unit in ["bytes", "KB", "MB", "GB"] {
        if value < 1000.0 {
            return if unit == "bytes" { format!("{bytes} bytes") } else { format!("{value:.1} {unit}") };
        }
        value /= 1000.0;
    }
    format!("{value:.1} TB")
}

/// `12`, `1,250`, `86,400`: whole calls, grouped.
fn calls(per_day: f64) -> String {
    let digits = format!("{:.0}", per_day.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates_read_as_a_human_writes_them() {
        assert_eq!(human(999), "999 bytes");
        assert_eq!(human(2_000_000_000), "2.0 GB");
        assert_eq!(human(33_554_432), "33.6 MB");
        assert_eq!(calls(86_400.4), "86,400");
        assert_eq!(calls(12.0), "12");
        assert_eq!(calls(1_250_000.0), "1,250,000");
    }

    #[test]
    fn the_audit_line_size_is_measured_on_whole_lines_of_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let line = format!("{}\n", "x".repeat(99));
        std::fs::write(&path, line.repeat(50)).unwrap();
        assert_eq!(line_bytes(&path), None, "too few lines to measure");
        // A file larger than the sample: the seek cuts a line, which is skipped.
        std::fs::write(&path, line.repeat(10_000)).unwrap();
        assert_eq!(line_bytes(&path), Some(100));
    }
}
