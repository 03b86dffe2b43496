//! `steward report`: what the agent did over a window (calls per tool per
//! day, approvals, refusals, upstream errors, spend, loop-breaker trips,
//! alerts, restore tests) and the readiness verdict `steward graduate`
//! requires before supervised mode ends.
//!
//! - this file: the [`Report`] model (serde: the stable shape of
//!   `steward report --json`) and [`gather`], which reads it from the store;
//! - `readiness`: the verdict, a pure function of measured facts and
//!   `[supervised.ready]`;
//! - `render`: the text and Markdown renderings.
//!
//! Days are spend days (`[spend] timezone`), so "spend per day" and "calls
//! per day" cut at the same midnight. The readiness verdict has its own
//! window, the last `min_days` days (at least one), whatever `--since` says,
//! so `steward report` and `steward graduate` always agree.

mod readiness;
mod render;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::clock::from_unix_ms;
use crate::config::Config;
use crate::decision::Decision;
use crate::store::{Store, StoreError, UpstreamErrors, Window};
use crate::supervision::SupervisionState;

pub use readiness::{Criterion, ReadinessFacts, Verdict, readiness};
pub use render::{markdown, text};

/// The journal is grouped in buckets this long before they are put into
/// days: every time zone's offset from UTC is a multiple of 15 minutes.
const BUCKET_MS: i64 = 15 * 60 * 1000;

/// One day.
const DAY_MS: i64 = 86_400_000;

/// Everything `steward report` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// `[agent] name`.
    pub agent: String,
    /// When the report was made, epoch ms.
    pub generated_ms: i64,
    /// The window: calls started after this, epoch ms.
    pub since_ms: i64,
    /// The time zone days are cut in (`[spend] timezone` as written).
    pub timezone: String,
    /// Calls per day and tool, by day then tool.
    pub calls: Vec<ToolDay>,
    /// Every call journaled in the window.
    pub calls_total: u64,
    /// Of those, the calls admitted.
    pub allowed_total: u64,
    /// Approval requests made in the window.
    pub approvals: Approvals,
    /// Refused calls by reason (the journal's decision), most frequent first.
    pub refusals: Vec<ReasonCount>,
    /// Admitted calls whose upstream failed.
    pub upstream_errors: UpstreamErrors,
    /// LLM spend per spend day, oldest first.
    pub spend: Vec<SpendDay>,
    /// LLM spend over the window, USD.
    pub spend_total_usd: f64,
    /// Times the loop breaker stopped the agent.
    pub loop_breaker_trips: u64,
    /// Alerts fired (new incidents and stages, not reminders), by rule.
    pub alerts: Vec<AlertCount>,
    /// Backups whose restore test (`steward backup verify`, scheduled or
    /// not) passed in the window: the backup module keeps one mark per
    /// backup (`backup.verified.<id>`, the latest pass), so a backup
    /// verified twice counts once.
    pub restore_tests_passed: u64,
    /// Supervised mode's records.
    pub supervision: SupervisionState,
    /// Whether the agent is ready to run without approvals.
    pub readiness: Readiness,
}

/// Calls of one tool on one day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolDay {
    /// `YYYY-MM-DD` in the report's time zone.
    pub day: String,
    /// The tool; `(unmatched)` for calls no tool matched.
    pub tool: String,
    /// Every journaled call, refusals included.
    pub calls: u64,
    /// Of those, the calls admitted.
    pub allowed: u64,
}

/// Approval requests, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Approvals {
    /// Requests made.
    pub requested: u64,
    /// Approved by a human (released to the upstream or not yet).
    pub granted: u64,
    /// Denied by a human.
    pub denied: u64,
    /// Nobody decided in time: denied by expiry.
    pub expired: u64,
    /// Still waiting.
    pub pending: u64,
    /// Median time from request to a human's decision, ms (`None`: no decision).
    pub median_decide_ms: Option<u64>,
}

impl Approvals {
    /// Decisions a human made: granted plus denied.
    pub fn decisions(&self) -> u64 {
        self.granted + self.denied
    }
}

/// A count of one refusal reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReasonCount {
    /// The journal's decision, such as `rate_limited`.
    pub reason: String,
    /// Calls refused so.
    pub count: u64,
}

/// LLM spend of one spend day.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpendDay {
    /// `YYYY-MM-DD` in `[spend] timezone`.
    pub day: String,
    /// Priced calls.
    pub calls: u64,
    /// Settled cost plus open reservations, USD.
    pub usd: f64,
}

/// Firings of one alert rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlertCount {
    /// Rule key, such as `error_rate`.
    pub key: String,
    /// Times it fired.
    pub fired: u64,
    /// The title of its last firing.
    pub last_title: String,
}

/// The readiness verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// Every criterion passes.
    pub ready: bool,
    /// The verdict's window, days (see the module docs).
    pub window_days: u32,
    /// Each criterion, in a fixed order.
    pub criteria: Vec<Criterion>,
}

impl Readiness {
    /// The criteria that do not pass.
    pub fn unmet(&self) -> impl Iterator<Item = &Criterion> {
        self.criteria.iter().filter(|c| c.status == Verdict::Fail)
    }
}

/// What [`gather`] needs besides the store.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Now.
    pub now: SystemTime,
    /// How far back the activity sections look (`--since`).
    pub since: Duration,
    /// `steward doctor`'s FAIL items (`Section: item`), scored by the caller
    /// (doctor resolves credentials and probes the disk; the report only counts).
    pub doctor_fails: Vec<String>,
}

/// Reads the report for `config` from `store`.
pub async fn gather(store: &Store, config: &Config, inputs: Inputs) -> Result<Report, StoreError> {
    let now_ms = crate::clock::unix_ms(inputs.now);
    let window = Window::ending_at(now_ms, inputs.since);
    let day_of = |ms: i64| config.spend.day_of(from_unix_ms(ms), 0);

    let mut per_day: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for bucket in store.calls_by_bucket(window, BUCKET_MS).await? {
        let tool = bucket.tool.unwrap_or_else(|| "(unmatched)".to_owned());
        let entry = per_day.entry((day_of(bucket.bucket_ms), tool)).or_default();
        entry.0 += bucket.calls;
        entry.1 += bucket.allowed;
    }
    let calls: Vec<ToolDay> =
        per_day.into_iter().map(|((day, tool), (calls, allowed))| ToolDay { day, tool, calls, allowed }).collect();
    let calls_total = calls.iter().map(|d| d.calls).sum();
    let allowed_total = calls.iter().map(|d| d.allowed).sum();

    let approvals = summarize_approvals(&store.approvals_in(window).await?);
    let refusals: Vec<ReasonCount> =
        store.refusals_in(window).await?.into_iter().map(|(reason, count)| ReasonCount { reason, count }).collect();
    let loop_breaker_trips =
        refusals.iter().find(|r| r.reason == Decision::LoopDetected.as_str()).map_or(0, |r| r.count);
    let upstream_errors = store.upstream_errors_in(window).await?;

    let mut spend_days: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in store.spend_by_day(&day_of(window.after_ms()), &day_of(now_ms)).await? {
        let entry = spend_days.entry(row.day).or_default();
        entry.0 += row.calls;
        entry.1 += row.settled_micros + row.reserved_micros;
    }
    let spend: Vec<SpendDay> = spend_days
        .into_iter()
        .map(|(day, (calls, micros))| SpendDay { day, calls, usd: micros as f64 / 1_000_000.0 })
        .collect();
    let spend_total_usd = spend.iter().map(|d| d.usd).sum();

    let mut alerts: BTreeMap<String, AlertCount> = BTreeMap::new();
    for fired in crate::monitor::read_fired(store, window.after_ms()).await? {
        let entry = alerts.entry(fired.key.clone()).or_insert_with(|| AlertCount {
            key: fired.key.clone(),
            fired: 0,
            last_title: String::new(),
        });
        entry.fired += 1;
        entry.last_title = fired.title;
    }

    let restore_tests_passed = store
        .kv_with_prefix(crate::backup::health::KV_VERIFIED_PREFIX)
        .await?
        .iter()
        .filter(|(_, value, _)| value.trim().parse::<i64>().is_ok_and(|ms| window.contains(ms)))
        .count() as u64;

    let supervision = crate::supervision::read(store).await?;
    let facts = measure(store, config, &supervision, now_ms, inputs.doctor_fails).await?;
    let readiness = readiness(&facts, &config.supervised.ready, now_ms);

    Ok(Report {
        agent: config.agent.name.clone(),
        generated_ms: now_ms,
        since_ms: window.after_ms(),
        timezone: config.spend.timezone_name.clone(),
        calls,
        calls_total,
        allowed_total,
        approvals,
        refusals,
        upstream_errors,
        spend,
        spend_total_usd,
        loop_breaker_trips,
        alerts: alerts.into_values().collect(),
        restore_tests_passed,
        supervision,
        readiness,
    })
}

/// The readiness verdict alone (what `steward graduate` checks).
pub async fn check_readiness(
    store: &Store,
    config: &Config,
    now: SystemTime,
    doctor_fails: Vec<String>,
) -> Result<Readiness, StoreError> {
    let now_ms = crate::clock::unix_ms(now);
    let supervision = crate::supervision::read(store).await?;
    let facts = measure(store, config, &supervision, now_ms, doctor_fails).await?;
    Ok(readiness(&facts, &config.supervised.ready, now_ms))
}

/// The days the readiness verdict looks back over: `min_days`, at least one.
pub fn readiness_window_days(config: &Config) -> u32 {
    config.supervised.ready.min_days.max(1)
}

/// Measures what the readiness criteria judge, over the verdict's window.
async fn measure(
    store: &Store,
    config: &Config,
    supervision: &SupervisionState,
    now_ms: i64,
    doctor_fails: Vec<String>,
) -> Result<ReadinessFacts, StoreError> {
    let window_days = readiness_window_days(config);
    let window = Window::after(now_ms.saturating_sub(i64::from(window_days) * DAY_MS));
    let decisions = summarize_approvals(&store.approvals_in(window).await?).decisions();
    let last_denial_ms = store.last_denial_ms().await?;
    // A crash loop in the window: the supervisor's sticky verdict (while it
    // holds, or declared inside the window), or the alert it raised
    // (`steward resume` clears the verdict, the alert history keeps it).
    let fatal = crate::agent_state::read_fatal(store).await?;
    let crash_loop_ms = crate::monitor::read_fired(store, window.after_ms())
        .await?
        .into_iter()
        .filter(|f| f.key == crate::monitor::engine::rules::CRASH_LOOP)
        .map(|f| f.at_ms)
        .chain(fatal.map(|f| f.since_ms))
        .max();
    let restore_test = match &config.backup {
        Some(_) => {
            let health = crate::backup::health(store, now_ms).await?;
            Some(health.last_restore_test.map(|(ms, ok)| (ms, ok && !health.restore_test_due)))
        }
        None => None,
    };
    Ok(ReadinessFacts {
        window_days,
        enabled: config.supervised.enabled,
        since_ms: supervision.since_ms,
        decisions,
        last_denial_ms,
        crash_loop_ms,
        restore_test,
        doctor_fails,
    })
}

/// Counts the requests by outcome; the median runs over human decisions.
fn summarize_approvals(rows: &[crate::store::ApprovalOutcome]) -> Approvals {
    let mut out = Approvals { requested: rows.len() as u64, ..Approvals::default() };
    let mut waits = Vec::new();
    for row in rows {
        match row.state.as_str() {
            "approved" | "released" => out.granted += 1,
            "denied" if row.decided_via.as_deref() == Some("expiry") => out.expired += 1,
            "denied" => out.denied += 1,
            "expired" => out.expired += 1,
            _ => out.pending += 1,
        }
        if matches!(row.state.as_str(), "approved" | "released" | "denied")
            && row.decided_via.as_deref() != Some("expiry")
            && let Some(decided) = row.decided_ms
        {
            waits.push(u64::try_from(decided.saturating_sub(row.created_ms)).unwrap_or(0));
        }
    }
    waits.sort_unstable();
    out.median_decide_ms = match waits.len() {
        0 => None,
        n if n % 2 == 1 => Some(waits[n / 2]),
        n => Some((waits[n / 2 - 1] + waits[n / 2]) / 2),
    };
    out
}
