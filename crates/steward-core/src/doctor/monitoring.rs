//! Doctor: Monitoring. The three default alerts have somewhere to go, the
//! last `steward alerts test` succeeded, and a dead-man heartbeat watches
//! steward itself.

use super::{CheckResult, Context};

const SECTION: &str = "Monitoring";

/// The Monitoring section.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let alerts = &ctx.config.alerts;
    let mut out = Vec::new();
    // WARN, not FAIL: without a sink alerts are still raised and logged; a
    // FAIL is kept for a sink that was tested and does not deliver.
    out.push(if alerts.sinks.is_empty() {
        CheckResult::warn(
            SECTION,
            "agent-down, error-rate and spend alerts have a sink",
            "no [[alerts.sinks]]: alerts are only logged",
            "add an [[alerts.sinks]] entry (webhook, slack, discord, ntfy, email or command)",
        )
    } else {
        CheckResult::pass(
            SECTION,
            "agent-down, error-rate and spend alerts have a sink",
            format!(
                "{} sink(s); error rate > {}% over the last hour (min {} calls), agent down after {}s",
                alerts.sinks.len(),
                alerts.error_rate_percent,
                alerts.error_rate_min_calls,
                alerts.agent_down_after.as_secs()
            ),
        )
    });
    let now_ms = crate::clock::unix_ms(ctx.now);
    out.push(match &ctx.alerts_test {
        Some(record) if record.ok => CheckResult::pass(
            SECTION,
            "the last alert test succeeded",
            format!("{:.1} h ago", (now_ms - record.at_ms) as f64 / 3_600_000.0),
        ),
        Some(record) => CheckResult::fail(
            SECTION,
            "the last alert test succeeded",
            format!("the test {:.1} h ago failed for a sink", (now_ms - record.at_ms) as f64 / 3_600_000.0),
            "run `steward alerts test` and fix the failing sink",
        ),
        None => CheckResult::warn(
            SECTION,
            "the last alert test succeeded",
            "no alert test recorded",
            "run `steward alerts test`",
        ),
    });
    out.push(match &ctx.config.heartbeat {
        Some(_) => {
            CheckResult::pass(SECTION, "dead-man heartbeat is configured", "[heartbeat] pings an outside service")
        }
        None => CheckResult::warn(
            SECTION,
            "dead-man heartbeat is configured",
            "no [heartbeat]: if the host dies, nothing tells anyone",
            "add a [heartbeat] section pinging an external dead-man service (healthchecks.io style)",
        ),
    });
    out
}
