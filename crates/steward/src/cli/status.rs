//! `steward status`: the agent (state, pid, uptime, restarts, last exit), the
//! daemon, the kill switch, each tool's use of its limit, firing alerts and
//! failing alert sinks, and the config the daemon runs: its SHA-256 and
//! whether the file on disk differs (edited, not yet `steward reload`ed).
//!
//! The agent's state comes from the status the daemon's supervisor publishes
//! in the store. When no daemon runs, that status is history: the agent is
//! `stopped` (or `fatal`, which persists), with the last known restarts and
//! exit. Without `[agent] command` the state is always `disabled` (steward
//! does not run the agent); the reason adds that the kill switch refuses its
//! calls when it is engaged.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use owo_colors::OwoColorize;
use steward_core::agent_state::{self, AgentStatus, FatalRecord, LastExit};
use steward_core::config::Config;
use steward_core::monitor::delivery::read_health;
use steward_core::monitor::engine::read_firing;
use steward_core::monitor::{AlertsTestRecord, FiringAlert, LAST_TEST_KEY, SinkHealth};
use steward_core::state_dir::running_pid;
use steward_core::store::{KillState, Store, Window};

use super::{CliError, exit, format_ms, load_config, now_ms, open_store_read_only, print_json, runtime};

/// `steward status`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
    /// With [store] url: every instance of the fleet (name, host, pid, last renewal, state, calls in
    /// flight) instead of this instance's view. With --json the fleet is always included.
    #[arg(long)]
    fleet: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let pid = running_pid(&config.state.dir);
    let addr =
        std::fs::read_to_string(config.state.addr_path()).ok().map(|s| s.trim().to_owned()).filter(|_| pid.is_some());
    let now = now_ms();
    let today = config.spend.day_of(std::time::SystemTime::now(), 0);
    if args.fleet && config.store.fleet.is_none() {
        return Err(anyhow::anyhow!(
            "--fleet needs a fleet: this steward's store is the embedded SQLite file; set [store] url to share a \
             PostgreSQL database between instances (docs/fleet.md)"
        )
        .into());
    }
    let (kill, tools, (spent, spend_stop), published, fatal, alerts, drift, mcp, fleet) =
        runtime()?.block_on(async {
            let store = open_store_read_only(&config).await?;
            let fleet = match store.fleet() {
                Some(fleet) => Some((
                    fleet.describe().to_owned(),
                    fleet.instance().to_owned(),
                    fleet.instances().await.context("cannot read the fleet's instances")?,
                )),
                None => None,
            };
            let spent = store.spend_total(&today).await.context("cannot read the spend ledger")?;
            let spend_stop = store.spend_stop(&today).await.context("cannot read the spend ledger")?;
            let kill = store.kill_state().await.context("cannot read the kill switch")?;
            let published = agent_state::read_status(&store).await.context("cannot read the agent status")?;
            let fatal = agent_state::read_fatal(&store).await.context("cannot read the agent status")?;
            let hour = store
                .tool_counts_in(Window::ending_at(now, std::time::Duration::from_secs(3600)))
                .await
                .context("cannot read the journal")?;
            let mut tools = Vec::new();
            for tool in &config.tools {
                let in_hour = hour.iter().find(|(name, _)| name == &tool.name).map_or(0, |(_, n)| *n);
                let window = match tool.limit {
                    Some(limit) => {
                        // Counted by the rule admission enforces.
                        let window = Window::ending_at(now, limit.per);
                        let counts = store.tool_counts_in(window).await.context("cannot read the journal")?;
                        Some((counts.iter().find(|(name, _)| name == &tool.name).map_or(0, |(_, n)| *n), limit))
                    }
                    None => None,
                };
                tools.push((tool.name.clone(), in_hour, window));
            }
            let alerts = alert_status(&store, &config).await?;
            let drift = match pid {
                Some(_) => Some(steward_core::daemon::config_drift(&store, &config).await),
                None => None,
            };
            let mcp = mcp_servers(&store, &config, pid.is_some()).await?;
            Ok::<_, anyhow::Error>((kill, tools, (spent, spend_stop), published, fatal, alerts, drift, mcp, fleet))
        })?;
    if args.fleet && !args.json {
        if let Some((database, me, instances)) = &fleet {
            print_fleet(database, me, instances, now);
        }
        return Ok(ExitCode::from(exit::OK));
    }
    let agent = AgentView::new(&config, pid.is_some(), &kill, published, fatal, now);

    if args.json {
        let tools: Vec<_> = tools
            .iter()
            .map(|(name, in_hour, window)| {
                serde_json::json!({
                    "tool": name,
                    "calls_last_hour": in_hour,
                    "window_used": window.map(|(used, _)| used),
                    "limit": window.map(|(_, l)| l.max),
                    "window_secs": window.map(|(_, l)| l.per.as_secs()),
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "agent": config.agent.name,
            "daemon": { "running": pid.is_some(), "pid": pid, "addr": addr },
            "config": {
                "path": config.source_path.display().to_string(),
                "file_sha256": config.source.sha256(),
                "running_sha256": drift.as_ref().and_then(|d| d.running_sha256.clone()),
                "differs": drift.as_ref().map(|d| d.differs),
                "restart_needed": drift.as_ref().map(|d| d.restart_needed.clone()).unwrap_or_default(),
            },
            "state": agent.state,
            "reason": agent.reason,
            "pid": agent.pid,
            "uptime_secs": agent.uptime_secs,
            "restarts": agent.restarts,
            "last_exit": agent.last_exit,
            "healthy": agent.healthy,
            "kill_switch": { "engaged": kill.engaged, "reason": kill.reason, "source": kill.source, "changed_ms": kill.changed_ms },
            "tools": tools,
            "mcp": mcp,
            "fleet": fleet.as_ref().map(|(database, me, instances)| serde_json::json!({
                "database": database, "instance": me, "instances": instances,
            })),
            "spend": {
                "day": today,
                "spent_usd": spent as f64 / 1_000_000.0,
                "cap_usd": config.spend.daily_cap().map(|c| c.as_dollars()),
                "stopped": spend_stop.as_ref().map(|s| &s.reason),
            },
            "alerts": {
                "firing": alerts.firing,
                "sinks": alerts.sinks.iter().map(|(name, kind, health)| serde_json::json!({
                    "name": name,
                    "kind": kind,
                    "ok": health.as_ref().map(|h| h.ok),
                    "last_delivery_ms": health.as_ref().map(|h| h.at_ms),
                    "error": health.as_ref().and_then(|h| h.error.clone()),
                })).collect::<Vec<_>>(),
                "last_test": alerts.last_test,
            },
        }))?;
        return Ok(ExitCode::from(exit::OK));
    }

    match (&pid, &addr) {
        (Some(pid), Some(addr)) => anstream::println!("daemon   running (pid {pid}) on {addr}"),
        (Some(pid), None) => anstream::println!("daemon   running (pid {pid})"),
        _ => anstream::println!("daemon   {}", "not running".yellow()),
    }
    print_config(&config, drift.as_ref());
    agent.print(&config.agent.name);
    if kill.engaged {
        anstream::println!(
            "calls    {} since {}: {}  (`steward resume` to allow calls)",
            "STOPPED".red().bold(),
            format_ms(kill.changed_ms),
            kill.reason.unwrap_or_default()
        );
    } else {
        anstream::println!("calls    {}", "allowed".green());
    }
    let cap = config.spend.daily_cap().map_or_else(|| "no cap".to_owned(), |c| format!("cap {c}"));
    anstream::println!("spend    {} today, {cap}", steward_core::config::units::Usd::from_micros(spent));
    if let Some(stop) = &spend_stop {
        anstream::println!(
            "         {}: {}; `steward resume` lifts it",
            "LLM calls STOPPED for today".red().bold(),
            stop.reason
        );
    }
    anstream::println!("\ntool             last hour   window");
    for (name, in_hour, window) in tools {
        let window = match window {
            Some((used, limit)) => format!("{used}/{} per {}s", limit.max, limit.per.as_secs()),
            None => "no limit".into(),
        };
        anstream::println!("{name:<16} {in_hour:>9}   {window}");
    }
    print_mcp(&mcp);
    print_alerts(&alerts);
    Ok(ExitCode::from(exit::OK))
}

/// Each `[mcp.NAME]` server: its transport, the state the daemon last
/// published (`stopped` when no daemon runs), and its tools whose
/// definition changed since it was pinned (refused until trusted).
async fn mcp_servers(store: &Store, config: &Config, daemon_running: bool) -> anyhow::Result<Vec<serde_json::Value>> {
    use steward_core::config::McpTransport;
    use steward_core::store::{mcp_servers, pins};
    if config.mcp.is_empty() {
        return Ok(Vec::new());
    }
    let records = mcp_servers::all(store).await.context("cannot read the MCP servers' states")?;
    let changed = pins::changed(store).await.context("cannot read the MCP tool pins")?;
    Ok(config
        .mcp
        .iter()
        .map(|(name, server)| {
            let record = records.get(name);
            let (state, reason) = mcp_servers::as_seen(record, daemon_running);
            let since_ms = record.filter(|r| r.state == state).map(|r| r.since_ms);
            let changed: Vec<&str> =
                changed.iter().filter(|(s, _, _)| s == name).map(|(_, tool, _)| tool.as_str()).collect();
            serde_json::json!({
                "server": name,
                "transport": match server.transport { McpTransport::Stdio { .. } => "stdio", McpTransport::Http { .. } => "http" },
                "state": state,
                "reason": reason,
                "since_ms": since_ms,
                "changed_tools": changed,
            })
        })
        .collect())
}

fn print_mcp(servers: &[serde_json::Value]) {
    if servers.is_empty() {
        return;
    }
    anstream::println!(
        "
mcp server       transport   state"
    );
    for server in servers {
        let name = server["server"].as_str().unwrap_or_default();
        let state = server["state"].as_str().unwrap_or_default();
        let shown = match state {
            "fatal" | "unreachable" => format!(
                "{}: {}  (its stderr is in steward's own log: `journalctl -u steward`)",
                state.red().bold(),
                server["reason"].as_str().unwrap_or("no reason recorded")
            ),
            "running" | "reachable" => state.green().to_string(),
            _ => state.to_owned(),
        };
        anstream::println!("{name:<16} {:<11} {shown}", server["transport"].as_str().unwrap_or_default());
        let changed: Vec<&str> =
            server["changed_tools"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_str).collect();
        if !changed.is_empty() {
            anstream::println!(
                "                 {}: {} (refused until `steward mcp trust {name}`; `steward mcp list` shows them)",
                "changed tool definitions".red().bold(),
                changed.join(", ")
            );
        }
    }
}

/// The `config` line: the running hash, and whether the file on disk differs.
fn print_config(config: &Config, drift: Option<&steward_core::daemon::ConfigDrift>) {
    let short = |sha: &str| sha.chars().take(12).collect::<String>();
    let file = short(config.source.sha256());
    let Some(drift) = drift else {
        anstream::println!("config   sha256 {file} (the file on disk; read when the daemon starts)");
        return;
    };
    match &drift.running_sha256 {
        None => anstream::println!("config   sha256 unknown (the daemon recorded none); file on disk sha256 {file}"),
        Some(running) if drift.differs => anstream::println!(
            "config   sha256 {} running; the file on disk {} (sha256 {file}): `steward reload` applies it",
            short(running),
            "differs".yellow().bold()
        ),
        Some(running) => anstream::println!("config   sha256 {} running, the same as the file on disk", short(running)),
    }
    if !drift.restart_needed.is_empty() {
        anstream::println!(
            "         {}: {} (not applied until steward restarts)",
            "restart needed".yellow().bold(),
            drift.restart_needed.join(", ")
        );
    }
}

/// The agent as `steward status` shows it.
struct AgentView {
    state: &'static str,
    reason: Option<String>,
    pid: Option<u32>,
    uptime_secs: Option<u64>,
    restarts: u64,
    last_exit: Option<LastExit>,
    healthy: Option<bool>,
}

impl AgentView {
    fn new(
        config: &Config,
        daemon_running: bool,
        kill: &KillState,
        published: Option<AgentStatus>,
        fatal: Option<FatalRecord>,
        now_ms: i64,
    ) -> Self {
        let kill_reason = || format!("kill switch engaged: {}", kill.reason.clone().unwrap_or_default());
        let mut view = Self {
            state: "stopped",
            reason: None,
            pid: None,
            uptime_secs: None,
            restarts: published.as_ref().map_or(0, |s| s.restarts),
            last_exit: published.as_ref().and_then(|s| s.last_exit.clone()),
            healthy: None,
        };
        if config.agent.process.is_none() {
            view.state = "disabled";
            let mut reason = "no [agent] command: steward does not run the agent".to_owned();
            if kill.engaged {
                reason.push_str(&format!("; its calls are refused ({})", kill_reason()));
            }
            view.reason = Some(reason);
            return view;
        }
        match published {
            Some(status) if daemon_running => {
                view.state = status.state.as_str();
                view.reason = status.reason;
                view.pid = status.pid;
                view.uptime_secs =
                    status.started_ms.map(|started| u64::try_from(now_ms.saturating_sub(started) / 1000).unwrap_or(0));
                view.healthy = status.healthy;
            }
            _ => {
                if let Some(fatal) = fatal {
                    view.state = "fatal";
                    view.reason = Some(fatal.reason);
                } else if kill.engaged {
                    view.reason = Some(kill_reason());
                } else if daemon_running {
                    view.state = "starting";
                } else {
                    view.reason = Some("steward is not running; `steward run` starts the agent".into());
                }
            }
        }
        view
    }

    fn print(&self, name: &str) {
        let state = match self.state {
            "running" => self.state.green().to_string(),
            "starting" | "backoff" | "disabled" => self.state.yellow().to_string(),
            _ => self.state.red().bold().to_string(),
        };
        let mut line = format!("agent    {state} ({name})");
        if let Some(pid) = self.pid {
            line.push_str(&format!("  pid {pid}"));
        }
        if let Some(uptime) = self.uptime_secs {
            line.push_str(&format!("  up {}", duration(uptime)));
        }
        if self.healthy == Some(false) {
            line.push_str(&format!("  {}", "health check failing".red()));
        }
        line.push_str(&format!("  restarts {}", self.restarts));
        anstream::println!("{line}");
        if let Some(reason) = &self.reason {
            anstream::println!("         {reason}");
        }
        if let Some(exit) = &self.last_exit {
            let how = match (exit.code, exit.signal) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                (None, None) => "ended".to_owned(),
            };
            anstream::println!(
                "         last exit: {how} after {} at {}",
                duration(exit.uptime_ms / 1000),
                format_ms(exit.at_ms)
            );
        }
    }
}

/// `3d4h`, `2h5m`, `4m10s`, `12s`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m{}s", secs / 60, secs % 60),
        3_600..86_400 => format!("{}h{}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// What `status` shows about alerting.
struct AlertStatus {
    /// Open incidents.
    firing: Vec<FiringAlert>,
    /// Each configured sink: name, kind, last delivery (None: never used).
    sinks: Vec<(String, &'static str, Option<SinkHealth>)>,
    /// The last `steward alerts test`.
    last_test: Option<AlertsTestRecord>,
}

async fn alert_status(store: &Store, config: &Config) -> anyhow::Result<AlertStatus> {
    let firing = read_firing(store).await.context("cannot read the alert state")?;
    let names = config.alerts.sinks.iter().map(|s| s.name.clone());
    let health = read_health(store, names).await.context("cannot read the alert sinks' state")?;
    let sinks = config.alerts.sinks.iter().zip(health).map(|(sink, (name, h))| (name, sink.kind.as_str(), h)).collect();
    let last_test = store
        .kv_get(LAST_TEST_KEY)
        .await
        .context("cannot read the last alerts test")?
        .and_then(|text| serde_json::from_str(&text).ok());
    Ok(AlertStatus { firing, sinks, last_test })
}

fn print_alerts(alerts: &AlertStatus) {
    if alerts.firing.is_empty() {
        anstream::println!("\nalerts   {}", "none firing".green());
    } else {
        anstream::println!("\nalerts   {} firing", alerts.firing.len().to_string().red().bold());
        for alert in &alerts.firing {
            anstream::println!("  {:<16} since {}  {}", alert.key, format_ms(alert.since_ms), alert.title);
        }
    }
    if alerts.sinks.is_empty() {
        anstream::println!("sinks    none configured: alerts are only logged");
    }
    for (name, kind, health) in &alerts.sinks {
        match health {
            Some(h) if !h.ok => anstream::println!(
                "sink     {name} ({kind}) {} at {}: {}",
                "FAILING".red().bold(),
                format_ms(h.at_ms),
                h.error.as_deref().unwrap_or("unknown error")
            ),
            Some(h) => anstream::println!("sink     {name} ({kind}) ok, last delivery {}", format_ms(h.at_ms)),
            None => anstream::println!("sink     {name} ({kind}) not used yet (`steward alerts test` tries it)"),
        }
    }
    match &alerts.last_test {
        Some(t) if t.ok => anstream::println!("tested   {} (every sink delivered)", format_ms(t.at_ms)),
        Some(t) => anstream::println!("tested   {} ({})", format_ms(t.at_ms), "some sinks failed".red()),
        None => {}
    }
}

/// `steward status --fleet`: one line per instance.
fn print_fleet(database: &str, me: &str, instances: &[steward_core::store::pg::lease::InstanceRow], now: i64) {
    anstream::println!("fleet    {database} (this instance: {me})");
    if instances.is_empty() {
        anstream::println!("no instance has run against this database yet");
        return;
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(["INSTANCE", "STATE", "HOST", "PID", "LAST SEEN", "IN FLIGHT"]);
    for i in instances {
        let seen = format!("{}s ago", (now - i.seen_ms).max(0) / 1000);
        table.add_row([
            i.name.clone(),
            i.state.clone(),
            i.host.clone(),
            i.pid.to_string(),
            seen,
            i.in_flight.to_string(),
        ]);
    }
    anstream::println!("{table}");
    if instances.iter().any(|i| i.state == "lapsed") {
        anstream::println!(
            "a lapsed instance stopped renewing its lease: its calls in flight were settled as interrupted; check its host \
             and its logs, then start it again"
        );
    }
}
