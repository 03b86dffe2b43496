//! Doctor: MCP. Shown only with `[mcp.*]` servers. FAIL when a tool's
//! definition changed since it was pinned (the "rug pull": refused until
//! `steward mcp trust`), and when the running daemon recorded a server as
//! crash-looped or unreachable; both name the command that shows more.

use super::{CheckResult, Context, list};

const SECTION: &str = "MCP";

/// What the store holds about the MCP servers.
#[derive(Debug, Clone, Default)]
pub struct McpProbe {
    /// Every pin, as (server, tool, changed).
    pub pins: Vec<(String, String, bool)>,
    /// The running daemon's record of each server; `None` when no daemon runs.
    pub servers: Option<std::collections::BTreeMap<String, crate::store::mcp_servers::ServerRecord>>,
}

/// The MCP section (empty without `[mcp.*]`).
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    if ctx.config.mcp.is_empty() {
        return Vec::new();
    }
    let probe = ctx.mcp.clone().unwrap_or_default();
    vec![pins(ctx, &probe), servers(ctx, &probe)]
}

fn pins(ctx: &Context<'_>, probe: &McpProbe) -> CheckResult {
    const ITEM: &str = "MCP tool definitions are as pinned";
    let changed: Vec<String> = probe
        .pins
        .iter()
        .filter(|(_, _, changed)| *changed)
        .map(|(server, tool, _)| format!("{server}/{tool}"))
        .collect();
    if !changed.is_empty() {
        let servers: std::collections::BTreeSet<&str> =
            probe.pins.iter().filter(|(_, _, c)| *c).map(|(s, _, _)| s.as_str()).collect();
        let trust: Vec<String> = servers.iter().map(|s| format!("`steward mcp trust {s}`")).collect();
        return CheckResult::fail(
            SECTION,
            ITEM,
            format!("changed since pinned, refused until trusted: {}", list(&changed, 5)),
            format!(
                "read the new descriptions with `steward mcp list`; if the change is expected, run {}, else \
                 fix or replace the server",
                trust.join(" and ")
            ),
        );
    }
    if probe.pins.is_empty() {
        return CheckResult::pass(
            SECTION,
            ITEM,
            format!(
                "no tool pinned yet on {} server(s): each tool is pinned the first time the agent lists it",
                ctx.config.mcp.len()
            ),
        );
    }
    CheckResult::pass(SECTION, ITEM, format!("{} tool(s) pinned, none changed", probe.pins.len()))
}

fn servers(ctx: &Context<'_>, probe: &McpProbe) -> CheckResult {
    const ITEM: &str = "MCP servers are up";
    let Some(records) = &probe.servers else {
        return CheckResult::pass(SECTION, ITEM, "no daemon is running; `steward run` starts them on first use");
    };
    let failing: Vec<String> = ctx
        .config
        .mcp
        .keys()
        .filter_map(|name| {
            let record = records.get(name)?;
            record.is_failing().then(|| match &record.reason {
                Some(reason) => format!("{name} {}: {reason}", record.state),
                None => format!("{name} {}", record.state),
            })
        })
        .collect();
    if failing.is_empty() {
        let states: Vec<String> = ctx
            .config
            .mcp
            .keys()
            .map(|name| format!("{name} {}", records.get(name).map_or("idle", |r| r.state.as_str())))
            .collect();
        return CheckResult::pass(SECTION, ITEM, list(&states, 5));
    }
    CheckResult::fail(
        SECTION,
        ITEM,
        list(&failing, 3),
        "see the server's stderr in steward's own log (`journalctl -u steward`), fix its command, environment \
         or URL, then restart steward; `steward status` shows the state",
    )
}
