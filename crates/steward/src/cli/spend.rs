//! `steward spend`: LLM spend today against the cap, and per model per day.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{Table, presets};
use steward_core::config::units::Usd;
use steward_core::store::SpendRow;

use super::{CliError, exit, load_config, open_store_read_only, print_json, runtime};

/// `steward spend`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many days to show, today included.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=366))]
    days: u32,
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
}

fn usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let now = std::time::SystemTime::now();
    let today = config.spend.day_of(now, 0);
    let first = config.spend.day_of(now, args.days - 1);
    let (total, rows, stop) = runtime()?.block_on(async {
        let store = open_store_read_only(&config).await?;
        let total = store.spend_total(&today).await.context("cannot read the spend ledger")?;
        let rows = store.spend_by_day(&first, &today).await.context("cannot read the spend ledger")?;
        let stop = store.spend_stop(&today).await.context("cannot read the spend ledger")?;
        Ok::<_, anyhow::Error>((total, rows, stop))
    })?;
    let today_rows: Vec<&SpendRow> = rows.iter().filter(|r| r.day == today).collect();
    let settled: u64 = today_rows.iter().map(|r| r.settled_micros).sum();
    let reserved: u64 = today_rows.iter().map(|r| r.reserved_micros).sum();
    let cap = config.spend.daily_cap();
    if args.json {
        let days: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "day": r.day, "model": r.model, "calls": r.calls,
                    "settled_usd": usd(r.settled_micros), "reserved_usd": usd(r.reserved_micros),
                    "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "today": {
                "day": today,
                "spent_usd": usd(total),
                "settled_usd": usd(settled),
                "reserved_usd": usd(reserved),
                "cap_usd": cap.map(|c| c.as_dollars()),
                "alert_at_usd": config.spend.alert_at().map(|c| c.as_dollars()),
                "stopped": stop.as_ref().map(|s| &s.reason),
            },
            "days": days,
        }))?;
        return Ok(ExitCode::from(exit::OK));
    }
    let cap_text = cap.map_or_else(|| "no cap set ([spend] daily_cap_usd)".to_owned(), |c| format!("cap {c}"));
    anstream::println!(
        "today ({today}): {} spent ({} settled + {} reserved by calls in flight), {cap_text}",
        Usd::from_micros(total),
        Usd::from_micros(settled),
        Usd::from_micros(reserved)
    );
    if let Some(stop) = &stop {
        anstream::println!(
            "LLM calls are STOPPED for today: {}. Check the provider's bill, then `steward resume`.",
            stop.reason
        );
    }
    if rows.is_empty() {
        anstream::println!("no LLM calls recorded");
        return Ok(ExitCode::from(exit::OK));
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(["DAY", "MODEL", "CALLS", "SETTLED", "IN FLIGHT", "INPUT TOKENS", "OUTPUT TOKENS"]);
    for r in &rows {
        table.add_row([
            r.day.clone(),
            r.model.clone(),
            r.calls.to_string(),
            Usd::from_micros(r.settled_micros).to_string(),
            Usd::from_micros(r.reserved_micros).to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
        ]);
    }
    anstream::println!("{table}");
    Ok(ExitCode::from(exit::OK))
}
