//! The two human renderings of a [`Report`]: plain text for the terminal
//! and Markdown to paste into a ticket. Both show the same sections in the
//! same order as the JSON; neither holds a value the JSON lacks.

use std::fmt::Write as _;
use std::time::Duration;

use crate::clock::from_unix_ms;
use crate::monitor::engine::human_duration;

use super::{Readiness, Report};

/// `2026-11-26 04:00 UTC`.
fn when(ms: i64) -> String {
    let ts = crate::clock::format_ts(from_unix_ms(ms));
    format!("{} {} UTC", &ts[..10], &ts[11..16])
}

fn usd(v: f64) -> String {
    format!("${v:.2}")
}

fn median(report: &Report) -> String {
    report
        .approvals
        .median_decide_ms
        .map_or_else(|| "no decision yet".to_owned(), |ms| human_duration(Duration::from_millis(ms)))
}

fn verdict_line(readiness: &Readiness) -> String {
    let passed = readiness.criteria.iter().filter(|c| c.fix.is_none()).count();
    format!(
        "{} ({passed} of {} criteria pass, over the last {} day(s))",
        if readiness.ready { "READY" } else { "NOT READY" },
        readiness.criteria.len(),
        readiness.window_days
    )
}

/// The supervised mode line: graduated, supervised since, or never.
fn mode(report: &Report) -> String {
    let s = &report.supervision;
    match (&s.graduated, s.since_ms) {
        (Some(g), _) => format!(
            "graduated on {} by {}{}",
            when(g.at_ms),
            g.by,
            if g.forced { " (forced past the readiness verdict)" } else { "" }
        ),
        (None, Some(since)) => format!("supervised since {}", when(since)),
        (None, None) => "never supervised".to_owned(),
    }
}

/// Plain text for the terminal.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "steward report: {} from {} to {} (days in {})",
        report.agent,
        when(report.since_ms),
        when(report.generated_ms),
        report.timezone
    );
    let _ = writeln!(out, "mode: {}", mode(report));

    let _ = writeln!(out, "\nCalls per tool per day ({} calls, {} allowed)", report.calls_total, report.allowed_total);
    if report.calls.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let width = report.calls.iter().map(|d| d.tool.len()).max().unwrap_or(4).max(4);
        let _ = writeln!(out, "  {:<10}  {:<width$}  {:>7}  {:>7}", "day", "tool", "calls", "allowed");
        for d in &report.calls {
            let _ = writeln!(out, "  {:<10}  {:<width$}  {:>7}  {:>7}", d.day, d.tool, d.calls, d.allowed);
        }
    }

    let a = &report.approvals;
    let _ = writeln!(out, "\nApprovals");
    let _ = writeln!(
        out,
        "  {} requested · {} granted · {} denied · {} expired · {} pending · median time to decide: {}",
        a.requested,
        a.granted,
        a.denied,
        a.expired,
        a.pending,
        median(report)
    );

    let _ = writeln!(out, "\nRefusals by reason");
    if report.refusals.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for r in &report.refusals {
        let _ = writeln!(out, "  {:<22} {:>7}", r.reason, r.count);
    }

    let e = &report.upstream_errors;
    let _ = writeln!(out, "\nUpstream errors");
    let _ = writeln!(out, "  5xx {} · unreachable {} · timeout {}", e.status_5xx, e.unreachable, e.timeout);

    let _ = writeln!(out, "\nSpend per day ({} in all)", usd(report.spend_total_usd));
    if report.spend.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for d in &report.spend {
        let _ = writeln!(out, "  {:<10}  {:>10}  {:>5} calls", d.day, usd(d.usd), d.calls);
    }

    let _ = writeln!(out, "\nLoop-breaker trips: {}", report.loop_breaker_trips);
    let fired: u64 = report.alerts.iter().map(|a| a.fired).sum();
    let _ = writeln!(out, "Alerts fired: {fired}");
    for alert in &report.alerts {
        let _ = writeln!(out, "  {:<22} {:>5}  last: {}", alert.key, alert.fired, alert.last_title);
    }
    let _ = writeln!(out, "Restore tests passed: {}", report.restore_tests_passed);

    let _ = writeln!(out, "\nReadiness: {}", verdict_line(&report.readiness));
    for c in &report.readiness.criteria {
        let _ = writeln!(out, "  {}  {} — {}", c.status.label(), c.required, c.measured);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "        fix: {fix}");
        }
    }
    if report.readiness.ready && report.supervision.graduated.is_none() {
        let _ =
            writeln!(out, "\nNext: `steward graduate` ends supervised mode (recorded; `steward supervise` undoes it).");
    }
    out
}

/// Escapes the characters that would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Markdown, to paste into a ticket.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## steward report: {}\n", cell(&report.agent));
    let _ = writeln!(
        out,
        "From {} to {} (days in {}). Mode: {}.\n",
        when(report.since_ms),
        when(report.generated_ms),
        report.timezone,
        cell(&mode(report))
    );

    let _ = writeln!(out, "### Readiness: {}\n", verdict_line(&report.readiness));
    let _ = writeln!(out, "| | criterion | measured | fix |");
    let _ = writeln!(out, "|---|---|---|---|");
    for c in &report.readiness.criteria {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.status.label(),
            cell(&c.required),
            cell(&c.measured),
            cell(c.fix.as_deref().unwrap_or(""))
        );
    }

    let _ = writeln!(out, "\n### Calls per tool per day\n");
    let _ = writeln!(out, "{} calls, {} allowed.\n", report.calls_total, report.allowed_total);
    if !report.calls.is_empty() {
        let _ = writeln!(out, "| day | tool | calls | allowed |");
        let _ = writeln!(out, "|---|---|---:|---:|");
        for d in &report.calls {
            let _ = writeln!(out, "| {} | {} | {} | {} |", d.day, cell(&d.tool), d.calls, d.allowed);
        }
    }

    let a = &report.approvals;
    let _ = writeln!(out, "\n### Approvals\n");
    let _ = writeln!(out, "| requested | granted | denied | expired | pending | median time to decide |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---|");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |",
        a.requested,
        a.granted,
        a.denied,
        a.expired,
        a.pending,
        median(report)
    );

    let _ = writeln!(out, "\n### Refusals by reason\n");
    if report.refusals.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(out, "| reason | calls |");
        let _ = writeln!(out, "|---|---:|");
        for r in &report.refusals {
            let _ = writeln!(out, "| {} | {} |", cell(&r.reason), r.count);
        }
    }

    let e = &report.upstream_errors;
    let _ = writeln!(out, "\n### Upstream errors\n");
    let _ = writeln!(out, "| 5xx | unreachable | timeout |");
    let _ = writeln!(out, "|---:|---:|---:|");
    let _ = writeln!(out, "| {} | {} | {} |", e.status_5xx, e.unreachable, e.timeout);

    let _ = writeln!(out, "\n### Spend per day\n");
    if report.spend.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(out, "| day | spend | calls |");
        let _ = writeln!(out, "|---|---:|---:|");
        for d in &report.spend {
            let _ = writeln!(out, "| {} | {} | {} |", d.day, usd(d.usd), d.calls);
        }
        let _ = writeln!(out, "| total | {} | |", usd(report.spend_total_usd));
    }

    let fired: u64 = report.alerts.iter().map(|a| a.fired).sum();
    let _ = writeln!(out, "\n### Incidents\n");
    let _ = writeln!(out, "- Loop-breaker trips: {}", report.loop_breaker_trips);
    let _ = writeln!(out, "- Alerts fired: {fired}");
    for alert in &report.alerts {
        let _ = writeln!(out, "  - `{}`: {} (last: {})", alert.key, alert.fired, cell(&alert.last_title));
    }
    let _ = writeln!(out, "- Restore tests passed: {}", report.restore_tests_passed);
    out
}
