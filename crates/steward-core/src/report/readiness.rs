//! The readiness verdict: six criteria, each PASS or FAIL with the value
//! measured, what `[supervised.ready]` requires, and (when it fails) the
//! fix. A pure function of [`ReadinessFacts`], so every branch is tested
//! without a store.

use crate::clock::{format_day, from_unix_ms};
use crate::config::ReadyThresholds;

use super::{DAY_MS, Readiness};

/// PASS or FAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The criterion holds.
    Pass,
    /// It does not: see its fix.
    Fail,
}

impl Verdict {
    /// `PASS` or `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        }
    }

    fn of(holds: bool) -> Self {
        if holds { Verdict::Pass } else { Verdict::Fail }
    }
}

/// One criterion of the verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Criterion {
    /// Stable key for scripts: `supervised_days`, `decisions`,
    /// `no_recent_denial`, `no_crash_loop`, `restore_test`, `doctor`.
    pub key: &'static str,
    /// What is required, in words (thresholds filled in).
    pub required: String,
    /// PASS or FAIL.
    pub status: Verdict,
    /// What was measured.
    pub measured: String,
    /// How to meet it; `None` exactly when it passes.
    pub fix: Option<String>,
}

/// What the criteria judge, measured over the verdict's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessFacts {
    /// The window, days.
    pub window_days: u32,
    /// `[supervised] enabled` in the config.
    pub enabled: bool,
    /// The first supervised start, epoch ms.
    pub since_ms: Option<i64>,
    /// Human decisions (granted or denied) on requests made in the window.
    pub decisions: u64,
    /// The last human denial, epoch ms.
    pub last_denial_ms: Option<i64>,
    /// The latest crash loop in the window (or still held), epoch ms.
    pub crash_loop_ms: Option<i64>,
    /// `None`: no `[backup]`. `Some(None)`: no restore test yet.
    /// `Some(Some((ms, passed)))`: the last one, `passed` only when it
    /// passed and is recent enough for doctor and the alerts.
    pub restore_test: Option<Option<(i64, bool)>>,
    /// `steward doctor`'s FAIL items.
    pub doctor_fails: Vec<String>,
}

/// Judges `facts` against `thresholds` at `now_ms`.
pub fn readiness(facts: &ReadinessFacts, thresholds: &ReadyThresholds, now_ms: i64) -> Readiness {
    let day = |ms: i64| format_day(from_unix_ms(ms));
    let plural = |n: u64, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
    let mut criteria = Vec::new();

    let min_days = i64::from(thresholds.min_days);
    criteria.push(match facts.since_ms {
        None => fail(
            "supervised_days",
            format!("supervised for at least {}", plural(min_days as u64, "day")),
            "never supervised".to_owned(),
            if facts.enabled {
                "start steward (`steward run`): the first week counts from its first start with [supervised] enabled"
                    .to_owned()
            } else {
                "set [supervised] enabled = true in steward.toml and run steward: side-effect calls then wait \
                 for your approval"
                    .to_owned()
            },
        ),
        Some(since) => {
            let days = now_ms.saturating_sub(since).max(0) / DAY_MS;
            let measured = format!("{} (since {})", plural(days as u64, "day"), day(since));
            if days >= min_days {
                pass("supervised_days", format!("supervised for at least {}", plural(min_days as u64, "day")), measured)
            } else {
                fail(
                    "supervised_days",
                    format!("supervised for at least {}", plural(min_days as u64, "day")),
                    measured,
                    format!("keep supervised mode on until {}", day(since + min_days * DAY_MS)),
                )
            }
        }
    });

    let min_decisions = u64::from(thresholds.min_decisions);
    let required = format!(
        "at least {} in the last {}",
        plural(min_decisions, "decision"),
        plural(facts.window_days.into(), "day")
    );
    let measured = plural(facts.decisions, "decision");
    criteria.push(if facts.decisions >= min_decisions {
        pass("decisions", required, measured)
    } else {
        fail("decisions", required, measured, {
            let missing = min_decisions - facts.decisions;
            format!(
                "approve or deny {missing} more request{} (`steward approvals` lists what waits); an agent \
                     that asks rarely needs a longer supervised period",
                if missing == 1 { "" } else { "s" }
            )
        })
    });

    let quiet = i64::from(thresholds.quiet_days);
    let required = format!("no denial in the last {}", plural(quiet as u64, "day"));
    criteria.push(match facts.last_denial_ms {
        Some(at) if now_ms.saturating_sub(at) < quiet * DAY_MS => fail(
            "no_recent_denial",
            required,
            format!("last denial on {}", day(at)),
            format!(
                "find out why that request was denied (`steward last`), fix the agent, and let it run without a \
                 denial until {}",
                day(at + quiet * DAY_MS)
            ),
        ),
        Some(at) => pass("no_recent_denial", required, format!("last denial on {}", day(at))),
        None => pass("no_recent_denial", required, "no denial".to_owned()),
    });

    let required = format!("no crash loop in the last {}", plural(facts.window_days.into(), "day"));
    criteria.push(match facts.crash_loop_ms {
        Some(at) => fail(
            "no_crash_loop",
            required,
            format!("crash loop on {}", day(at)),
            format!(
                "find why the agent crashed (`steward logs agent`), fix it and `steward resume`; this passes once \
                 the agent runs until {} without one",
                day(at + i64::from(facts.window_days) * DAY_MS)
            ),
        ),
        None => pass("no_crash_loop", required, "none".to_owned()),
    });

    let required = "a restore test passed".to_owned();
    criteria.push(match facts.restore_test {
        None => fail(
            "restore_test",
            required,
            "no [backup] configured".to_owned(),
            "add a [backup] section (daily, to another disk or S3) and run `steward backup now` then \
             `steward backup verify`"
                .to_owned(),
        ),
        Some(None) => fail(
            "restore_test",
            required,
            "no restore test yet".to_owned(),
            "run `steward backup verify` (or wait for the scheduled [backup] restore_test)".to_owned(),
        ),
        Some(Some((at, true))) => pass("restore_test", required, format!("passed on {}", day(at))),
        Some(Some((at, false))) => fail(
            "restore_test",
            required,
            format!("the last one, on {}, failed or is too old", day(at)),
            "run `steward backup verify` and fix what it reports".to_owned(),
        ),
    });

    let required = "`steward doctor` has no FAIL".to_owned();
    criteria.push(if facts.doctor_fails.is_empty() {
        pass("doctor", required, "no FAIL".to_owned())
    } else {
        let n = facts.doctor_fails.len() as u64;
        fail(
            "doctor",
            required,
            format!("{}: {}", plural(n, "FAIL"), facts.doctor_fails.join("; ")),
            "run `steward doctor` and apply the fix it prints for each FAIL".to_owned(),
        )
    });

    let ready = criteria.iter().all(|c| c.status == Verdict::Pass);
    Readiness { ready, window_days: facts.window_days, criteria }
}

fn pass(key: &'static str, required: String, measured: String) -> Criterion {
    Criterion { key, required, status: Verdict::of(true), measured, fix: None }
}

fn fail(key: &'static str, required: String, measured: String, fix: String) -> Criterion {
    Criterion { key, required, status: Verdict::of(false), measured, fix: Some(fix) }
}
