//! First deployment: the supervised first week (`[supervised]`, the store's
//! `supervised.*` records): supervised since when, graduated when and by
//! whom, or never supervised, with the fix.

use super::{CheckResult, Context};
use crate::clock::{format_day, from_unix_ms};

const SECTION: &str = "First deployment";
const ITEM: &str = "supervised mode for the first week";

/// The one item of the section.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let state = ctx.supervision.clone().unwrap_or_default();
    let day = |ms: i64| format_day(from_unix_ms(ms));
    let enabled = ctx.config.supervised.enabled;
    let result = match (&state.graduated, state.since_ms) {
        (Some(g), since) => CheckResult::pass(
            SECTION,
            ITEM,
            format!(
                "graduated on {} by {}{}{}; `steward supervise` goes back",
                day(g.at_ms),
                g.by,
                if g.forced { " (forced past the readiness verdict)" } else { "" },
                since.map(|s| format!(", after supervision since {}", day(s))).unwrap_or_default()
            ),
        ),
        (None, Some(since)) if enabled => CheckResult::pass(
            SECTION,
            ITEM,
            format!(
                "supervised since {}: side-effect calls wait for a human; `steward report` says when it is ready",
                day(since)
            ),
        ),
        (None, None) if enabled => CheckResult::pass(
            SECTION,
            ITEM,
            "supervised: [supervised] enabled; the first week counts from the next `steward run`",
        ),
        (None, Some(since)) => CheckResult::warn(
            SECTION,
            ITEM,
            format!("supervised since {}, but [supervised] enabled is off and no graduation is recorded", day(since)),
            "run `steward report`, then `steward graduate` to end supervised mode on the record, or set \
             [supervised] enabled = true again",
        ),
        (None, None) => CheckResult::warn(
            SECTION,
            ITEM,
            "never supervised: calls are forwarded without a human's approval",
            "set [supervised] enabled = true in steward.toml for the first week: side-effect calls wait for \
             `steward approve`; `steward report` says when it is ready and `steward graduate` ends it",
        ),
    };
    vec![result]
}
