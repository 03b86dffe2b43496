//! `steward status`: daemon, kill switch, spend, each tool's use of its
//! limit, firing alerts and failing alert sinks.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use owo_colors::OwoColorize;
use steward_core::config::Config;
use steward_core::daemon::running_pid;
use steward_core::monitor::delivery::read_health;
use steward_core::monitor::engine::read_firing;
use steward_core::monitor::{AlertsTestRecord, FiringAlert, LAST_TEST_KEY, SinkHealth};
use steward_core::store::Store;

use super::{CliError, exit, format_ms, load_config, now_ms, open_store, print_json, runtime};

/// `steward status`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let pid = running_pid(&config.state.dir);
    let addr =
        std::fs::read_to_string(config.state.addr_path()).ok().map(|s| s.trim().to_owned()).filter(|_| pid.is_some());
    let now = now_ms();
    let today = config.spend.day_of(std::time::SystemTime::now(), 0);
    let (kill, tools, spent, alerts) = runtime()?.block_on(async {
        let store = open_store(&config)?;
        let spent = store.spend_total(&today).await.context("cannot read the spend ledger")?;
        let kill = store.kill_state().await.context("cannot read the kill switch")?;
        let hour = store.tool_counts_since(now - 3_600_000).await.context("cannot read the journal")?;
        let mut tools = Vec::new();
        for tool in &config.tools {
            let in_hour = hour.iter().find(|(name, _)| name == &tool.name).map_or(0, |(_, n)| *n);
            let window = match tool.limit {
                Some(limit) => {
                    let since = now - i64::try_from(limit.per.as_millis()).unwrap_or(i64::MAX);
                    let counts = store.tool_counts_since(since).await.context("cannot read the journal")?;
                    Some((counts.iter().find(|(name, _)| name == &tool.name).map_or(0, |(_, n)| *n), limit))
                }
                None => None,
            };
            tools.push((tool.name.clone(), in_hour, window));
        }
        let alerts = alert_status(&store, &config).await?;
        Ok::<_, anyhow::Error>((kill, tools, spent, alerts))
    })?;

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
            "state": if kill.engaged { "stopped" } else { "running" },
            "kill_switch": { "engaged": kill.engaged, "reason": kill.reason, "source": kill.source, "changed_ms": kill.changed_ms },
            "tools": tools,
            "spend": {
                "day": today,
                "spent_usd": spent as f64 / 1_000_000.0,
                "cap_usd": config.spend.daily_cap().map(|c| c.as_dollars()),
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
    if kill.engaged {
        anstream::println!(
            "agent    {} since {}: {}  (`steward resume` to allow calls)",
            "STOPPED".red().bold(),
            format_ms(kill.changed_ms),
            kill.reason.unwrap_or_default()
        );
    } else {
        anstream::println!("agent    {} ({})", "allowed".green(), config.agent.name);
    }
    let cap = config.spend.daily_cap().map_or_else(|| "no cap".to_owned(), |c| format!("cap {c}"));
    anstream::println!("spend    {} today, {cap}", steward_core::config::units::Usd::from_micros(spent));
    anstream::println!("\ntool             last hour   window");
    for (name, in_hour, window) in tools {
        let window = match window {
            Some((used, limit)) => format!("{used}/{} per {}s", limit.max, limit.per.as_secs()),
            None => "no limit".into(),
        };
        anstream::println!("{name:<16} {in_hour:>9}   {window}");
    }
    print_alerts(&alerts);
    Ok(ExitCode::from(exit::OK))
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
        anstream::println!(
            "
alerts   {}",
            "none firing".green()
        );
    } else {
        anstream::println!(
            "
alerts   {} firing",
            alerts.firing.len().to_string().red().bold()
        );
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
