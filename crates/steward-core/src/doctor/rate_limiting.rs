//! Doctor, section Rate limiting: every side-effecting tool has a limit,
//! retries use backoff, a daily spend cap is set, the loop breaker is on,
//! and the store (which holds the windows) is writable.

use super::{CheckResult, Context, StoreProbe, list};
use crate::config::RetryPolicy;
use crate::pipeline::{BASE_DELAY, MAX_ATTEMPTS, MAX_DELAY};

/// The section name.
const SECTION: &str = "Rate limiting";

/// Names listed in one detail line before "and N more".
const MAX_LISTED: usize = 5;

/// Every item of the section, in order.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    vec![side_effects_limited(ctx), retries(ctx), spend_cap(ctx), loop_breaker(ctx), store(ctx)]
}

fn side_effects_limited(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "every side-effecting tool has a limit";
    let side: Vec<_> = ctx.config.tools.iter().filter(|t| t.side_effect).collect();
    let unlimited: Vec<String> = side.iter().filter(|t| t.limit.is_none()).map(|t| t.name.clone()).collect();
    if !unlimited.is_empty() {
        return CheckResult::fail(
            SECTION,
            ITEM,
            format!("no limit on: {}", list(&unlimited, MAX_LISTED)),
            "add limit = \"N/hour\" (or /minute, /day) to each of these [[tools]]",
        );
    }
    match side.len() {
        0 => CheckResult::pass(SECTION, ITEM, "no side-effecting tools are configured"),
        n => CheckResult::pass(SECTION, ITEM, format!("all {n} side-effecting tool(s) are limited")),
    }
}

fn retries(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "retries use backoff";
    let risky: Vec<String> = ctx
        .config
        .tools
        .iter()
        .filter(|t| {
            t.side_effect && t.retry == RetryPolicy::Idempotent && matches!(t.method.as_str(), "POST" | "PATCH" | "*")
        })
        .map(|t| t.name.clone())
        .collect();
    if !risky.is_empty() {
        return CheckResult::warn(
            SECTION,
            ITEM,
            format!(
                "retry = \"idempotent\" on side-effecting POST/PATCH tools may repeat them: {}",
                list(&risky, MAX_LISTED)
            ),
            "set retry = \"never\" on these tools unless the upstream deduplicates (Idempotency-Key)",
        );
    }
    CheckResult::pass(
        SECTION,
        ITEM,
        format!(
            "exponential backoff with full jitter ({} ms base, {} s cap, {MAX_ATTEMPTS} attempts), Retry-After honoured",
            BASE_DELAY.as_millis(),
            MAX_DELAY.as_secs()
        ),
    )
}

fn spend_cap(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "a daily spend cap is set";
    if ctx.config.llm.is_empty() {
        return CheckResult::pass(SECTION, ITEM, "no [llm.*] provider is configured, so nothing is spent");
    }
    match ctx.config.spend.daily_cap() {
        Some(cap) => CheckResult::pass(SECTION, ITEM, format!("{cap} per day")),
        None => CheckResult::fail(
            SECTION,
            ITEM,
            "LLM providers are configured without a daily cap",
            "add [spend] daily_cap_usd = 5.00 (your budget)",
        ),
    }
}

fn loop_breaker(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "the loop breaker is on";
    let breaker = ctx.config.loop_breaker;
    if breaker.max_identical == 0 {
        return CheckResult::fail(
            SECTION,
            ITEM,
            "[loop_breaker] max_identical = 0 disables it",
            "set [loop_breaker] max_identical = 5 (the default)",
        );
    }
    CheckResult::pass(
        SECTION,
        ITEM,
        format!("{} identical calls within {} s stop the agent", breaker.max_identical, breaker.window.as_secs()),
    )
}

fn store(ctx: &Context<'_>) -> CheckResult {
    const ITEM: &str = "the store is writable";
    match &ctx.store {
        StoreProbe::Writable => CheckResult::pass(SECTION, ITEM, "a write transaction went through"),
        StoreProbe::Missing => CheckResult::warn(
            SECTION,
            ITEM,
            "the state directory does not exist yet",
            "run `steward init` or start `steward run` once: it creates the store",
        ),
        StoreProbe::Failed(err) => CheckResult::fail(
            SECTION,
            ITEM,
            format!("the store refuses writes ({err}), so every call is refused"),
            "check disk space and that the state directory belongs to the user running steward",
        ),
    }
}
