//! `steward config check`: validates the config and says what it declares.

use std::path::Path;
use std::process::ExitCode;

use steward_core::secrets::Secrets;

use super::{CliError, exit, load_config, print_json, runtime};

/// `steward config check`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a machine-readable summary.
    #[arg(long)]
    json: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    // Resolving credentials here catches a missing variable, an unsafe file or
    // a dev/prod share before `steward run` does; the values are dropped at once.
    let resolution = runtime()?.block_on(Secrets::resolve_all(&config));
    drop(resolution.secrets);
    let (refused, warnings): (Vec<_>, Vec<_>) = resolution.errors.into_iter().partition(|e| e.is_unsafe());
    let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
    let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    if !refused.is_empty() {
        if args.json {
            print_json(&serde_json::json!({
                "valid": false,
                "path": config.source_path,
                "credential_errors": refused,
                "credential_warnings": warnings,
            }))?;
        } else {
            for err in &refused {
                anstream::eprintln!("error: {err}");
            }
            anstream::eprintln!(
                "{}: refused; steward run will not start until this is fixed",
                config.source_path.display()
            );
        }
        return Ok(ExitCode::from(exit::CONFIG));
    }
    let credentials = (!warnings.is_empty()).then(|| warnings.join("; "));
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
            "credentials_error": credentials,
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
        if let Some(err) = &credentials {
            anstream::println!("  warning: {err}\n  (steward run will refuse to start until this is fixed)");
        }
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
