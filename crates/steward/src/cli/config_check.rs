//! `steward config check`: validates the config, resolves every credential
//! and alert reference exactly as `steward run` does (so a check that passes
//! predicts a start that passes), and says what the config declares.
//! `--offline` validates the file alone, for a machine without the secrets.

use std::path::Path;
use std::process::ExitCode;

use steward_core::secrets::{Secrets, Unresolved};

use super::{CliError, exit, load_config, print_json, runtime};

/// `steward config check`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a machine-readable summary.
    #[arg(long)]
    pub(super) json: bool,
    /// Validate the file only: do not resolve credential and alert references
    /// (for a machine without the secrets; `steward run` still resolves them).
    #[arg(long)]
    offline: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let resolved = if args.offline {
        None
    } else {
        // What `steward run` resolves at start, every problem at once; the
        // values are dropped here and never printed.
        let resolution = runtime()?.block_on(Secrets::resolve_every_reference(&config));
        if !resolution.errors.is_empty() {
            return Err(CliError::unresolved(&config.source_path, &Unresolved { errors: resolution.errors }));
        }
        if let Err(err) = steward_core::supervisor::check_agent_env(&config, &resolution.secrets) {
            return Err(CliError::Credentials {
                path: config.source_path.clone(),
                problems: vec![err.to_string()],
                needs_a_person: true,
            });
        }
        let credentials = resolution.secrets.credential_count(&config);
        Some((credentials, resolution.secrets.names().count() - credentials))
    };
    let credentials = match resolved {
        None => "not resolved (--offline): steward run resolves every reference at start".to_owned(),
        Some((credentials, 0)) => format!("{credentials} credential(s) resolved"),
        Some((credentials, alerts)) => {
            format!("{credentials} credential(s) and {alerts} alert reference(s) resolved")
        }
    };
    if args.json {
        let tools: Vec<_> = config
            .tools
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name, "upstream": t.upstream, "method": t.method, "path": t.path,
                    "side_effect": t.side_effect,
                    "limit": t.limit.map(|l| format!("{}/{}s", l.max, l.per.as_secs())),
                })
            })
            .collect();
        let llm: Vec<_> = config
            .llm
            .iter()
            .map(|(name, p)| {
                serde_json::json!({
                    "name": name, "kind": p.kind.as_str(), "base_url": p.base_url, "credential": p.credential,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "valid": true,
            "path": config.source_path,
            "agent": config.agent.name,
            "listen": config.gateway.listen.to_string(),
            "upstreams": config.upstreams.keys().collect::<Vec<_>>(),
            "tools": tools,
            "llm": llm,
            "spend": {
                "daily_cap_usd": config.spend.daily_cap_usd,
                "alert_at_usd": config.spend.alert_at_usd,
            },
            "credentials": {
                "resolved": resolved.is_some(),
                "offline": args.offline,
                "count": resolved.map(|(c, _)| c),
                "alert_references": resolved.map(|(_, a)| a),
            },
        }))?;
    } else {
        anstream::println!("{}: valid", config.source_path.display());
        anstream::println!(
            "  agent {} ({:?}), gateway on {}",
            config.agent.name,
            config.agent.environment,
            config.gateway.listen
        );
        anstream::println!(
            "  {} upstream(s), {} tool(s), {} LLM provider(s)",
            config.upstreams.len(),
            config.tools.len(),
            config.llm.len()
        );
        for tool in &config.tools {
            let limit =
                tool.limit.map_or_else(|| "no limit".to_owned(), |l| format!("{} per {}s", l.max, l.per.as_secs()));
            anstream::println!("    {:<16} {} {} on {} ({limit})", tool.name, tool.method, tool.path, tool.upstream);
        }
        for (name, provider) in &config.llm {
            anstream::println!(
                "    {:<16} {} API at {} (credential {})",
                name,
                provider.kind.as_str(),
                provider.base_url,
                provider.credential
            );
        }
        if !config.llm.is_empty() {
            anstream::println!("  {}", spend_line(&config.spend));
        }
        anstream::println!("  credentials: {credentials}");
    }
    Ok(ExitCode::from(exit::OK))
}

/// What `[spend]` holds LLM calls to, in one line.
fn spend_line(spend: &steward_core::config::SpendConfig) -> String {
    match (spend.daily_cap_usd, spend.alert_at_usd) {
        (Some(cap), Some(alert)) => format!("spend cap ${cap} a day (alert at ${alert})"),
        (Some(cap), None) => format!("spend cap ${cap} a day"),
        (None, _) => {
            "no spend cap: LLM calls are priced and journaled but not capped; set [spend] daily_cap_usd".to_owned()
        }
    }
}
